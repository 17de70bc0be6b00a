//! Why an ESP packet was refused, and the per-reason drop counters an operator reads.

use crate::counters::reasons;

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
    /// The next sequence number is not yet reserved in persistent state (manual keys).
    #[error("sequence number not yet reserved")]
    NotReserved,
    /// The caller's buffer lacks the headroom/tailroom that sealing needs.
    #[error("buffer too small for ESP headroom and tailroom")]
    BufferTooSmall,
    /// Key material of the wrong length for the suite (key || 4-byte salt).
    #[error("key material has the wrong length for the suite")]
    BadKeyLength,
}

reasons! {
    /// Reasons a received packet is dropped, one counter each.
    pub enum DropReason;
    /// One counter per [`DropReason`].
    pub struct DropCounters;
    /// Duplicate sequence number inside the window.
    Replay => "replay",
    /// Sequence number older than the window.
    LeftOfWindow => "left_of_window",
    /// ICV failure: tampered, corrupted or wrong key.
    IcvFailure => "icv_failure",
    /// Impossible pad length or wrong pad bytes.
    BadPadding => "bad_padding",
    /// No SA with this SPI.
    UnknownSpi => "unknown_spi",
    /// Too short to be ESP.
    Truncated => "truncated",
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
            EspError::SequenceExhausted | EspError::NotReserved | EspError::BufferTooSmall | EspError::BadKeyLength => None,
        }
    }
}

impl DropCounters {
    /// Counts one drop for `err` if it is a receive-side reason.
    // hot path
    #[inline]
    pub fn record(&mut self, err: EspError) {
        if let Some(reason) = err.drop_reason() {
            self.add(reason);
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
        let names: Vec<_> = c.iter().filter(|(_, n)| *n > 0).map(|(r, _)| r.label()).collect();
        assert_eq!(names, ["replay", "icv_failure"]);
        let mut d = DropCounters::default();
        d.merge(&c);
        d.merge(&c);
        assert_eq!(d.total(), 6);
    }
}
