//! Why an ESP packet was refused, and the per-reason drop counters an operator reads.

use core::fmt;

impl From<crate::replay::ReplayError> for EspError {
    fn from(e: crate::replay::ReplayError) -> Self {
        match e {
            crate::replay::ReplayError::Replay => EspError::Replay,
            crate::replay::ReplayError::LeftOfWindow => EspError::LeftOfWindow,
        }
    }
}

/// Every way sealing or opening an ESP packet can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EspError {
    /// The packet is shorter than header + IV + trailer + ICV.
    #[error("ESP packet truncated")]
    Truncated,
    /// No SA (current, previous or upcoming) has this SPI.
    #[error("unknown SPI")]
    UnknownSpi,
    /// The sequence number was already accepted (a duplicate or a replay).
    #[error("replayed sequence number")]
    Replay,
    /// The sequence number is older than the replay window (or is the never-sent 0).
    #[error("sequence number left of the replay window")]
    LeftOfWindow,
    /// The integrity check failed: the packet was tampered with or is for another key.
    #[error("ICV verification failed")]
    IcvFailure,
    /// The decrypted trailer has an impossible pad length or wrong pad bytes.
    #[error("bad ESP padding")]
    BadPadding,
    /// The outbound SA used its last sequence number; it must be replaced (rekeyed).
    #[error("sequence numbers exhausted, SA must be rekeyed")]
    SequenceExhausted,
    /// The caller's buffer lacks the headroom/tailroom that sealing needs.
    #[error("buffer too small for ESP headroom and tailroom")]
    BufferTooSmall,
    /// Key material of the wrong length for the suite (key || 4-byte salt).
    #[error("key material has the wrong length for the suite")]
    BadKeyLength,
}

/// Reasons a received packet is dropped, one counter each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Duplicate sequence number inside the window.
    Replay,
    /// Sequence number older than the window.
    LeftOfWindow,
    /// ICV failure: tampered, corrupted or wrong key.
    IcvFailure,
    /// Impossible pad length or wrong pad bytes.
    BadPadding,
    /// No SA with this SPI.
    UnknownSpi,
    /// Too short to be ESP.
    Truncated,
}

impl DropReason {
    /// All reasons, in counter order.
    pub const ALL: [DropReason; 6] = [
        DropReason::Replay,
        DropReason::LeftOfWindow,
        DropReason::IcvFailure,
        DropReason::BadPadding,
        DropReason::UnknownSpi,
        DropReason::Truncated,
    ];

    /// A stable metric label.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Replay => "replay",
            DropReason::LeftOfWindow => "left_of_window",
            DropReason::IcvFailure => "icv_failure",
            DropReason::BadPadding => "bad_padding",
            DropReason::UnknownSpi => "unknown_spi",
            DropReason::Truncated => "truncated",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl EspError {
    /// The receive-side drop reason this error counts as (`None` for send-side errors).
    pub const fn drop_reason(self) -> Option<DropReason> {
        match self {
            EspError::Truncated => Some(DropReason::Truncated),
            EspError::UnknownSpi => Some(DropReason::UnknownSpi),
            EspError::Replay => Some(DropReason::Replay),
            EspError::LeftOfWindow => Some(DropReason::LeftOfWindow),
            EspError::IcvFailure => Some(DropReason::IcvFailure),
            EspError::BadPadding => Some(DropReason::BadPadding),
            EspError::SequenceExhausted | EspError::BufferTooSmall | EspError::BadKeyLength => None,
        }
    }
}

/// One counter per [`DropReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounters {
    counts: [u64; DropReason::ALL.len()],
}

impl DropCounters {
    /// Counts one drop for `err` if it is a receive-side reason.
    // hot path
    #[inline]
    pub fn record(&mut self, err: EspError) {
        if let Some(reason) = err.drop_reason() {
            self.counts[reason.index()] += 1;
        }
    }

    /// The count for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason.index()]
    }

    /// The sum over all reasons.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(reason, count)` pairs for export.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(move |r| (*r, self.get(*r)))
    }

    /// Adds another set of counters into this one.
    pub fn merge(&mut self, other: &DropCounters) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_count_receive_reasons_only() {
        let mut c = DropCounters::default();
        c.record(EspError::Replay);
        c.record(EspError::Replay);
        c.record(EspError::IcvFailure);
        c.record(EspError::BufferTooSmall);
        assert_eq!(c.get(DropReason::Replay), 2);
        assert_eq!(c.get(DropReason::IcvFailure), 1);
        assert_eq!(c.get(DropReason::Truncated), 0);
        assert_eq!(c.total(), 3);
        let names: Vec<_> = c.iter().filter(|(_, n)| *n > 0).map(|(r, _)| r.name()).collect();
        assert_eq!(names, ["replay", "icv_failure"]);
        let mut d = DropCounters::default();
        d.merge(&c);
        d.merge(&c);
        assert_eq!(d.total(), 6);
    }
}
