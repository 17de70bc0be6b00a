//! What an ESP host must remember across restarts, as text: the last start epoch and, per
//! manual outbound SA, the highest sequence number that may have been used.
//!
//! Manual keys do not change when the daemon restarts, so their sequence numbers (the AES-GCM /
//! ChaCha20 IVs) must not start at 1 again. The driver persists a *reservation* before the
//! numbers are used: `sa SPI KEY_ID MARK` says every number up to `MARK` may have been sent under
//! that key, and a restart continues after it. The start epoch is kept for the same reason on
//! the automatic side: the next start takes an epoch above it even if the wall clock stepped back.
//!
//! Marks and the epoch only grow: [`EspState::merge`] keeps the larger of two values, so two
//! writers sharing one file can never move a value back. The format is strict; anything
//! unexpected (including a missing `end` line) is an error, and the driver refuses to start
//! rather than guess:
//!
//! ```text
//! vxswitch-esp-state 1
//! epoch 0x0193a5c8e21000a5
//! sa 0x00001000 0x9f86d081884c7d65 1048576
//! end
//! ```
//!
//! Several encrypted networks share the file: a mark names its SA by (SPI, key id), and the
//! configuration gives every outbound SA of the host its own key, so marks never mix SAs.
//!
//! Keys are named by a digest ([`super::OutboundSa::key_id`]), never stored. No file I/O here;
//! reading and writing the file is `sys`'s job.

use std::collections::BTreeMap;

const HEADER: &str = "vxswitch-esp-state 1";

/// The persisted ESP state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EspState {
    /// The largest start epoch used so far (0 = none).
    pub epoch: u64,
    /// (SPI, key id) -> the highest sequence number that may have been used.
    pub marks: BTreeMap<(u32, u64), u64>,
}

/// Why a state text was refused: the line (1-based) and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct StateError {
    /// 1-based line number (0 for the file as a whole).
    pub line: usize,
    /// What was expected.
    pub reason: &'static str,
}

impl EspState {
    /// The highest sequence number that may have been used under (SPI, key id); 0 if none.
    pub fn mark(&self, spi: u32, key_id: u64) -> u64 {
        self.marks.get(&(spi, key_id)).copied().unwrap_or(0)
    }

    /// Raise the mark of (SPI, key id) to `upto` (never lowers it).
    pub fn reserve(&mut self, spi: u32, key_id: u64, upto: u64) {
        let m = self.marks.entry((spi, key_id)).or_insert(0);
        *m = (*m).max(upto);
    }

    /// The epoch for a new start: `candidate` (from the wall clock), or above the last one when
    /// the clock stepped back. Records it.
    pub fn next_epoch(&mut self, candidate: u64) -> u64 {
        let epoch = candidate.max(self.epoch.saturating_add(1)).max(1);
        self.epoch = epoch;
        epoch
    }

    /// Keep the larger of every value in `self` and `other`.
    pub fn merge(&mut self, other: &EspState) {
        self.epoch = self.epoch.max(other.epoch);
        for (&(spi, key_id), &m) in &other.marks {
            self.reserve(spi, key_id, m);
        }
    }

    /// The text form.
    pub fn emit(&self) -> String {
        let mut s = format!("{HEADER}\nepoch {:#018x}\n", self.epoch);
        for ((spi, key_id), mark) in &self.marks {
            s.push_str(&format!("sa {spi:#010x} {key_id:#018x} {mark}\n"));
        }
        s.push_str("end\n");
        s
    }

    /// Parses the text form strictly.
    pub fn parse(text: &str) -> Result<Self, StateError> {
        let err = |line, reason| StateError { line, reason };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
        if lines.next().map(|(_, l)| l) != Some(HEADER) {
            return Err(err(1, "expected the header `vxswitch-esp-state 1`"));
        }
        let mut state = EspState::default();
        let mut ended = false;
        for (n, line) in lines {
            if ended {
                return Err(err(n, "text after `end`"));
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["epoch", e] => state.epoch = hex_u64(e).ok_or(err(n, "expected `epoch 0x<hex>`"))?,
                ["sa", spi, key, mark] => {
                    let spi = hex_u64(spi).and_then(|s| u32::try_from(s).ok()).ok_or(err(n, "bad SPI"))?;
                    let key = hex_u64(key).ok_or(err(n, "bad key id"))?;
                    let mark = mark.parse().map_err(|_| err(n, "bad sequence mark"))?;
                    if state.marks.insert((spi, key), mark).is_some() {
                        return Err(err(n, "SA listed twice"));
                    }
                }
                ["end"] => ended = true,
                _ => return Err(err(n, "expected `epoch`, `sa` or `end`")),
            }
        }
        if !ended {
            return Err(err(0, "truncated: no `end` line"));
        }
        Ok(state)
    }
}

fn hex_u64(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_values_only_grow() {
        let mut s = EspState::default();
        assert_eq!(s.next_epoch(500), 500);
        assert_eq!(s.next_epoch(100), 501, "a clock stepped back still gives a larger epoch");
        s.reserve(0x1000, 0xabc, 1 << 20);
        s.reserve(0x1000, 0xabc, 7);
        s.reserve(0x2000, 1, 5);
        assert_eq!(s.mark(0x1000, 0xabc), 1 << 20);
        assert_eq!(s.mark(0x1000, 0xabd), 0, "another key under the same SPI starts fresh");
        let text = s.emit();
        assert_eq!(EspState::parse(&text), Ok(s.clone()));
        let mut other = EspState::default();
        other.reserve(0x2000, 1, 9);
        other.epoch = 3;
        s.merge(&other);
        assert_eq!((s.epoch, s.mark(0x2000, 1), s.mark(0x1000, 0xabc)), (501, 9, 1 << 20));
    }

    #[test]
    fn anything_unexpected_is_refused() {
        let good = "vxswitch-esp-state 1\nepoch 0x5\nsa 0x00001000 0x0000000000000abc 42\nend\n";
        assert!(EspState::parse(good).is_ok());
        for (bad, line) in [
            ("", 1),
            ("vxswitch-esp-state 2\nend\n", 1),
            ("vxswitch-esp-state 1\nepoch 0x5\n", 0),
            ("vxswitch-esp-state 1\nepoch 5\nend\n", 2),
            ("vxswitch-esp-state 1\nsa 0x1 0x2 -3\nend\n", 2),
            ("vxswitch-esp-state 1\nsa 0x100000000 0x2 3\nend\n", 2),
            ("vxswitch-esp-state 1\nsa 0x1 0x2 3\nsa 0x1 0x2 4\nend\n", 3),
            ("vxswitch-esp-state 1\nend\nepoch 0x1\n", 3),
            ("vxswitch-esp-state 1\n\u{0}\u{0}\nend\n", 2),
        ] {
            assert_eq!(EspState::parse(bad).map_err(|e| e.line), Err(line), "{bad:?}");
        }
    }
}
