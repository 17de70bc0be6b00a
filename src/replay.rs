//! The anti-replay window (RFC 4303 section 3.4.3) with extended sequence numbers
//! (RFC 4303 Appendix A2) and the ring-of-blocks bitmap of RFC 6479. One implementation serves
//! both ESP's inbound SAs and the gossip opener (which maps its 32-bit per-epoch counter `c` to
//! sequence number `c + 1`, since 0 is never acceptable here).
//!
//! The receiver remembers the highest authenticated sequence number `top` and one bit for each
//! of the `size` numbers at or below it. A packet is acceptable when it is right of the window
//! (`seq > top`) or inside it with its bit clear. The check runs *before* decryption, so replays
//! and stale packets cost no AES work; the window only moves *after* the ICV verified, so a
//! forged packet can never shift it.
//!
//! The bitmap is a ring of 64-bit blocks, one more block than the window needs (RFC 6479): moving
//! the window forward clears whole blocks instead of shifting bits, so an update costs O(1) for
//! in-order traffic and at most one pass over the ring for a large jump.
//!
//! With ESN only the low 32 bits travel on the wire. The high half is inferred from where the
//! low half falls relative to the window (Appendix A2.1): just below the window's bottom means
//! the counter wrapped into the next 2^32 block; otherwise it is in the window's block. The
//! inferred value is then authenticated, because the AAD carries the high bits too.

/// Why a sequence number is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// Already received.
    Replay,
    /// Older than the window remembers (or 0).
    LeftOfWindow,
}

/// The default window: 1024 packets.
pub const DEFAULT_WINDOW: u32 = 1024;
/// The largest supported window: 4096 packets.
pub const MAX_WINDOW: u32 = 4096;
const BLOCK_BITS: u64 = 64;
const MAX_BLOCKS: usize = MAX_WINDOW as usize / BLOCK_BITS as usize + 1;

/// Anti-replay state of one inbound SA.
#[derive(Clone)]
pub struct ReplayWindow {
    /// Window size in packets (a multiple of 64, 64..=4096).
    size: u64,
    /// Highest sequence number that passed the ICV; 0 before the first packet.
    top: u64,
    /// Blocks of the ring in use: `size / 64 + 1`.
    blocks: u64,
    bitmap: [u64; MAX_BLOCKS],
}

impl core::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplayWindow").field("size", &self.size).field("top", &self.top).finish()
    }
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW)
    }
}

impl ReplayWindow {
    /// A window of `size` packets, rounded up to a multiple of 64 and clamped to 64..=4096.
    pub fn new(size: u32) -> Self {
        let size = size.clamp(64, MAX_WINDOW).div_ceil(64) * 64;
        let size = u64::from(size);
        ReplayWindow { size, top: 0, blocks: size / BLOCK_BITS + 1, bitmap: [0; MAX_BLOCKS] }
    }

    /// The window size in packets.
    pub fn size(&self) -> u32 {
        self.size as u32
    }

    /// The highest authenticated sequence number (0 = none yet).
    pub fn top(&self) -> u64 {
        self.top
    }

    /// Infers the full 64-bit sequence number from the 32 bits on the wire.
    ///
    /// Without ESN the wire value is the sequence number. With ESN the high half follows
    /// RFC 4303 A2.1; `None` means the value would lie before sequence number 0 (or past
    /// 2^64), which no honest sender produces.
    // hot path
    #[inline]
    pub fn infer(&self, seq_lo: u32, esn: bool) -> Option<u64> {
        let seq = u64::from(seq_lo);
        if !esn {
            return Some(seq);
        }
        let w = self.size;
        let tl = self.top & 0xffff_ffff;
        let th = self.top >> 32;
        let hi = if tl >= w - 1 {
            // Case A: the window lies inside one 2^32 block.
            if seq >= tl - (w - 1) {
                th
            } else {
                th.checked_add(1).filter(|h| *h <= 0xffff_ffff)?
            }
        } else if seq >= tl + (1 << 32) - (w - 1) {
            // Case B: the window straddles two blocks and seq sits in the lower one.
            th.checked_sub(1)?
        } else {
            th
        };
        Some((hi << 32) | seq)
    }

    /// Is `seq` acceptable (right of the window, or inside it and unseen)? Does not modify.
    // hot path
    #[inline]
    pub fn check(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 {
            return Err(ReplayError::LeftOfWindow);
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= self.size {
            return Err(ReplayError::LeftOfWindow);
        }
        let (block, bit) = self.position(seq);
        if self.bitmap[block] & bit != 0 {
            Err(ReplayError::Replay)
        } else {
            Ok(())
        }
    }

    /// Records `seq` as received. Call only after [`check`](Self::check) passed and the ICV
    /// verified.
    // hot path
    #[inline]
    pub fn update(&mut self, seq: u64) {
        if seq > self.top {
            let current = self.top / BLOCK_BITS;
            let target = seq / BLOCK_BITS;
            let clear = (target - current).min(self.blocks);
            for i in 1..=clear {
                let idx = ((current + i) % self.blocks) as usize;
                self.bitmap[idx] = 0;
            }
            self.top = seq;
        }
        let (block, bit) = self.position(seq);
        self.bitmap[block] |= bit;
    }

    /// `check` then `update` in one step (for callers that already verified the packet).
    pub fn check_and_update(&mut self, seq: u64) -> Result<(), ReplayError> {
        self.check(seq)?;
        self.update(seq);
        Ok(())
    }

    #[inline]
    fn position(&self, seq: u64) -> (usize, u64) {
        (((seq / BLOCK_BITS) % self.blocks) as usize, 1u64 << (seq % BLOCK_BITS))
    }

    /// Treats every sequence number up to `seq` as received: a session resumed after a gap
    /// (see `dataplane::esp`) accepts only what is newer than what it had accepted before.
    pub fn seen_through(&mut self, seq: u64) {
        self.top = seq;
        self.bitmap = [u64::MAX; MAX_BLOCKS];
    }

    /// Sets the window's top directly (tests start ESN windows near a 2^32 boundary).
    #[cfg(test)]
    pub(crate) fn set_top(&mut self, top: u64) {
        self.top = top;
        self.bitmap = [0; MAX_BLOCKS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReplayError::{LeftOfWindow, Replay};

    /// Runs `(seq, expected)` steps: `Ok` ones are recorded like an authenticated packet.
    fn run(w: &mut ReplayWindow, steps: &[(u64, Result<(), ReplayError>)]) {
        for (i, (seq, want)) in steps.iter().enumerate() {
            let got = w.check(*seq);
            assert_eq!(got, *want, "step {i}: seq {seq}");
            if got.is_ok() {
                w.update(*seq);
            }
        }
    }

    #[test]
    fn in_order_then_duplicates() {
        let mut w = ReplayWindow::new(64);
        run(&mut w, &[(1, Ok(())), (2, Ok(())), (3, Ok(())), (3, Err(Replay)), (1, Err(Replay))]);
        assert_eq!(w.top(), 3);
    }

    #[test]
    fn out_of_order_inside_window() {
        let mut w = ReplayWindow::new(64);
        run(&mut w, &[(10, Ok(())), (7, Ok(())), (9, Ok(())), (8, Ok(())), (9, Err(Replay)), (11, Ok(())), (7, Err(Replay))]);
    }

    #[test]
    fn left_of_window_and_edges() {
        let mut w = ReplayWindow::new(64);
        run(
            &mut w,
            &[
                (100, Ok(())),
                (37, Ok(())),            // 100 - 63: the oldest number still inside
                (36, Err(LeftOfWindow)), // 100 - 64: just outside
                (0, Err(LeftOfWindow)),  // never sent
                (163, Ok(())),           // jump: the window is now [100, 163]
                (100, Err(Replay)),      // still inside, already seen
                (99, Err(LeftOfWindow)), // fell out
                (101, Ok(())),           // inside, never seen
            ],
        );
    }

    #[test]
    fn zero_is_never_accepted_even_first() {
        let w = ReplayWindow::default();
        assert_eq!(w.check(0), Err(LeftOfWindow));
        assert_eq!(w.size(), 1024);
    }

    #[test]
    fn sizes_round_and_clamp() {
        assert_eq!(ReplayWindow::new(1).size(), 64);
        assert_eq!(ReplayWindow::new(100).size(), 128);
        assert_eq!(ReplayWindow::new(4096).size(), 4096);
        assert_eq!(ReplayWindow::new(100_000).size(), 4096);
    }

    #[test]
    fn big_window_remembers_every_bit_after_ring_wraps() {
        let mut w = ReplayWindow::new(4096);
        // Fill well past one lap of the ring, skipping every third number.
        for seq in 1..=20_000u64 {
            if seq % 3 != 0 {
                w.check_and_update(seq).unwrap();
            }
        }
        for seq in (20_000 - 4095)..=20_000u64 {
            let want = if seq % 3 == 0 { Ok(()) } else { Err(Replay) };
            assert_eq!(w.check(seq), want, "seq {seq}");
        }
        assert_eq!(w.check(20_000 - 4096), Err(LeftOfWindow));
    }

    #[test]
    fn large_jump_clears_stale_bits() {
        let mut w = ReplayWindow::new(128);
        for seq in 1..=128 {
            w.update(seq);
        }
        // Jump far ahead: every number in the new window must be fresh, although the ring
        // positions were all set before.
        w.check_and_update(1_000_000).unwrap();
        for seq in (1_000_000 - 127)..1_000_000 {
            assert_eq!(w.check(seq), Ok(()), "seq {seq}");
        }
    }

    #[test]
    fn non_esn_inference_is_identity() {
        let w = ReplayWindow::default();
        assert_eq!(w.infer(0xffff_ffff, false), Some(0xffff_ffff));
        assert_eq!(w.infer(5, false), Some(5));
    }

    #[test]
    fn esn_crosses_the_2_32_boundary() {
        let mut w = ReplayWindow::new(64);
        w.set_top(0xffff_fff0);
        w.update(0xffff_fff0);
        // Case A: the window [0xffff_ffb1, 0xffff_fff0] lies in block 0.
        assert_eq!(w.infer(0xffff_ffff, true), Some(0xffff_ffff));
        assert_eq!(w.infer(0xffff_ffc0, true), Some(0xffff_ffc0));
        assert_eq!(w.infer(0, true), Some(1 << 32)); // wrapped: next block
        assert_eq!(w.infer(3, true), Some((1 << 32) | 3));
        run(&mut w, &[(0xffff_ffff, Ok(())), ((1 << 32) | 3, Ok(())), ((1 << 32) | 3, Err(Replay))]);
        assert_eq!(w.top(), (1 << 32) | 3);
        // Case B: the window now straddles blocks 0 and 1.
        assert_eq!(w.infer(0xffff_ffff, true), Some(0xffff_ffff)); // late packet from block 0
        assert_eq!(w.infer(0xffff_ffc5, true), Some(0xffff_ffc5));
        assert_eq!(w.infer(2, true), Some((1 << 32) | 2));
        assert_eq!(w.infer(1000, true), Some((1 << 32) | 1000));
        run(
            &mut w,
            &[
                (0xffff_ffff, Err(Replay)),
                (0xffff_fffe, Ok(())), // late, inside the window, across the boundary
                (0xffff_ffc4, Ok(())), // top - 63: the oldest number inside
                ((1 << 32) | 2, Ok(())),
            ],
        );
        // One below the window's bottom reads as the far future (A2.1); the ICV decides.
        assert_eq!(w.infer(0xffff_ffc3, true), Some((1 << 32) | 0xffff_ffc3));
    }

    #[test]
    fn esn_fresh_window_rejects_values_before_zero() {
        let w = ReplayWindow::new(64);
        // A fresh window is "Case B" with th = 0: the top of block 0 would mean block -1.
        assert_eq!(w.infer(0xffff_fff0, true), None);
        assert_eq!(w.infer(1, true), Some(1));
    }

    #[test]
    fn esn_refuses_to_infer_past_2_64() {
        let mut w = ReplayWindow::new(64);
        w.set_top(u64::MAX - 1);
        assert_eq!(w.infer(0xffff_ffff, true), Some(u64::MAX));
        assert_eq!(w.infer(0, true), None);
    }

    proptest::proptest! {
        /// The bitmap window agrees with a naive set-based model on random traffic.
        #[test]
        fn matches_a_naive_model(
            size in proptest::sample::select(vec![64u32, 128, 1024, 4096]),
            steps in proptest::collection::vec((0u64..6000, proptest::bool::ANY), 1..400),
        ) {
            let mut w = ReplayWindow::new(size);
            let mut seen = std::collections::BTreeSet::new();
            let mut top = 0u64;
            for (seq, authentic) in steps {
                let want = if seq == 0 || (seq <= top && top - seq >= u64::from(size)) {
                    Err(LeftOfWindow)
                } else if seen.contains(&seq) {
                    Err(Replay)
                } else {
                    Ok(())
                };
                proptest::prop_assert_eq!(w.check(seq), want, "seq {}", seq);
                // Only packets that would pass the ICV move the window.
                if want.is_ok() && authentic {
                    w.update(seq);
                    seen.insert(seq);
                    top = top.max(seq);
                }
            }
        }
    }
}
