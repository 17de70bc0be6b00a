//! The per-peer ESP state machine: which SA seals, which SAs open, and when keys rotate.
//!
//! Each direction has its own *generation* counter, advanced only by the sender:
//!
//! - **Sender.** The outbound SA of generation `g` is replaced by generation `g + 1` when its
//!   packet budget is used up ([`OutboundSa::needs_rekey`]) or when it is older than
//!   `rekey_after` *and has carried traffic* (an idle key is not worn out, and skipping idle
//!   generations keeps the receiver close behind).
//! - **Receiver.** Besides the current inbound SA (generation `g`) it derives the next one
//!   (`g + 1`) ahead of time. The first packet that verifies under `g + 1` promotes it; the old
//!   SA stays as *previous* for the `overlap` period so packets still in flight, or reordered
//!   across the switch, keep decrypting; then it is dropped. If packets of whole generations
//!   were lost (the peer rekeyed while we heard nothing), an unknown SPI triggers a *resync*:
//!   SPIs of the next `resync_span` generations are compared (SPI-only HKDF, no key setup), at
//!   most once per `resync_interval`, and a match is promoted only after its ICV verifies.
//!
//! No handshake is needed: both ends derive the same SAs from [`SessionKeys`] (see `keys`).
//! Time is passed in as `now`; nothing here reads a clock. The driver calls
//! [`PeerSession::handle_timeout`] at [`PeerSession::poll_timeout`].
//!
//! **Invariant for the owner:** never run two sessions for the same (local key, local epoch, peer
//! key, peer epoch) from generation 0: the second would reuse (key, nonce) pairs. A session that
//! is dropped and later rebuilt for the same epochs must [`resume`](PeerSession::resume) above
//! the generations the old one used ([`PeerSession::resume_point`]); a new epoch on either side
//! gives new keys. Demultiplex received packets to a session by the peer's underlay address first
//! (SPIs are only unique per peer).

use std::time::{Duration, Instant};

use super::error::{DropCounters, EspError};
use super::keys::{Direction, SessionKeys};
use super::sa::{InboundSa, Opened, OutboundSa, DEFAULT_PACKET_BUDGET, ESP_MIN_LEN};
use crate::replay::DEFAULT_WINDOW;

/// Tunables of a [`PeerSession`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Anti-replay window of every inbound SA (64..=4096).
    pub window: u32,
    /// Rotate an outbound SA that carried traffic after this long.
    pub rekey_after: Duration,
    /// Rotate an outbound SA after this many packets.
    pub packet_budget: u64,
    /// Keep decrypting with the previous inbound SA this long after switching.
    pub overlap: Duration,
    /// How many generations ahead an unknown SPI is looked for.
    pub resync_span: u64,
    /// At most one resync scan per this interval.
    pub resync_interval: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            window: DEFAULT_WINDOW,
            rekey_after: Duration::from_secs(120),
            packet_budget: DEFAULT_PACKET_BUDGET,
            overlap: Duration::from_secs(30),
            resync_span: 64,
            resync_interval: Duration::from_secs(1),
        }
    }
}

/// Counters of key rotation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Outbound SAs replaced.
    pub outbound_rekeys: u64,
    /// Inbound SAs promoted (including resyncs).
    pub inbound_rekeys: u64,
    /// Resync scans run.
    pub resync_scans: u64,
}

/// Where a retired derived-key session left off: a rebuilt session for the same keys resumes
/// here, so no outbound generation is used twice and no accepted packet is accepted again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResumePoint {
    /// The first outbound generation not used yet.
    pub out_generation: u64,
    /// The current inbound generation.
    pub in_generation: u64,
    /// The highest sequence number accepted under `in_generation`.
    pub in_seen: u64,
}

/// ESP state shared with one peer: current outbound SA, current/next/previous inbound SAs.
#[derive(Debug)]
pub struct PeerSession {
    keys: Option<SessionKeys>,
    config: SessionConfig,
    outbound: OutboundSa,
    out_generation: u64,
    out_since: Instant,
    inbound: InboundSa,
    in_generation: u64,
    next_inbound: Option<InboundSa>,
    previous: Option<(InboundSa, Instant)>,
    last_resync: Option<Instant>,
    drops: DropCounters,
    stats: SessionStats,
}

impl PeerSession {
    /// A derived-key session starting at generation 0 in both directions.
    pub fn new(keys: SessionKeys, config: SessionConfig, now: Instant) -> Result<Self, EspError> {
        Self::resume(keys, config, now, ResumePoint::default())
    }

    /// A derived-key session that continues where an earlier one for the same keys left off:
    /// outbound from generation `at.out_generation` (never used before), inbound at
    /// `at.in_generation` refusing every sequence number up to `at.in_seen`.
    pub fn resume(keys: SessionKeys, config: SessionConfig, now: Instant, at: ResumePoint) -> Result<Self, EspError> {
        let outbound = keys.outbound(at.out_generation)?.with_packet_budget(config.packet_budget);
        let inbound = keys.inbound(at.in_generation, config.window)?.with_seen_through(at.in_seen);
        let next_inbound = Some(keys.inbound(at.in_generation.saturating_add(1), config.window)?);
        Ok(PeerSession {
            keys: Some(keys),
            outbound,
            out_generation: at.out_generation,
            out_since: now,
            inbound,
            in_generation: at.in_generation,
            next_inbound,
            previous: None,
            last_resync: None,
            drops: DropCounters::default(),
            stats: SessionStats::default(),
            config,
        })
    }

    /// A manually keyed session: fixed SAs, no rotation (`needs_rekey` is only reported).
    pub fn manual(outbound: OutboundSa, inbound: InboundSa, now: Instant) -> Self {
        PeerSession {
            keys: None,
            outbound,
            out_generation: 0,
            out_since: now,
            inbound,
            in_generation: 0,
            next_inbound: None,
            previous: None,
            last_resync: None,
            drops: DropCounters::default(),
            stats: SessionStats::default(),
            config: SessionConfig::default(),
        }
    }

    /// Seals one packet with the current outbound SA, rotating it first if it is due.
    ///
    /// Same buffer contract as [`OutboundSa::seal`]: plaintext at `buf[ESP_HEADROOM..]`,
    /// returns the ESP length.
    // hot path
    pub fn seal(&mut self, now: Instant, buf: &mut [u8], inner_len: usize, next_header: u8) -> Result<usize, EspError> {
        if self.outbound_due(now) {
            self.rekey_outbound(now)?;
        }
        self.outbound.seal(buf, inner_len, next_header)
    }

    /// Verifies and decrypts one ESP packet (starting at the SPI) in place.
    ///
    /// Every failure is counted in [`drops`](Self::drops).
    // hot path
    pub fn open(&mut self, now: Instant, packet: &mut [u8]) -> Result<Opened, EspError> {
        let result = self.open_inner(now, packet);
        if let Err(e) = result {
            self.drops.record(e);
        }
        result
    }

    /// Whether `spi` is one of the inbound SAs this session holds now (current, previous during
    /// its overlap, or the next generation): a cheap check that picks the session of a packet
    /// before opening it. Later generations are found by [`open`](Self::open) alone.
    // hot path
    pub fn claims_spi(&self, now: Instant, spi: u32) -> bool {
        spi == self.inbound.spi()
            || self.previous.as_ref().is_some_and(|(prev, expires_at)| spi == prev.spi() && now < *expires_at)
            || self.next_inbound.as_ref().is_some_and(|next| spi == next.spi())
    }

    // hot path
    fn open_inner(&mut self, now: Instant, packet: &mut [u8]) -> Result<Opened, EspError> {
        if packet.len() < ESP_MIN_LEN {
            return Err(EspError::Truncated);
        }
        let spi = u32::from_be_bytes([packet[0], packet[1], packet[2], packet[3]]);
        if spi == self.inbound.spi() {
            return self.inbound.open(packet);
        }
        if let Some((prev, expires_at)) = &mut self.previous {
            if spi == prev.spi() && now < *expires_at {
                return prev.open(packet);
            }
        }
        if let Some(next) = &mut self.next_inbound {
            if spi == next.spi() {
                let opened = next.open(packet)?;
                let generation = self.in_generation + 1;
                if let Some(next) = self.next_inbound.take() {
                    self.promote(now, next, generation);
                }
                return Ok(opened);
            }
        }
        self.resync(now, spi, packet)
    }

    /// Looks for `spi` among later inbound generations (rate-limited), promoting a match whose
    /// ICV verifies.
    fn resync(&mut self, now: Instant, spi: u32, packet: &mut [u8]) -> Result<Opened, EspError> {
        let Some(keys) = &self.keys else {
            return Err(EspError::UnknownSpi);
        };
        if self.last_resync.is_some_and(|t| now < t + self.config.resync_interval) {
            return Err(EspError::UnknownSpi);
        }
        self.last_resync = Some(now);
        self.stats.resync_scans += 1;
        let first = self.in_generation + 2;
        let last = self.in_generation.saturating_add(self.config.resync_span);
        let Some(generation) = (first..=last).find(|g| keys.spi(Direction::Inbound, *g) == spi) else {
            return Err(EspError::UnknownSpi);
        };
        let mut candidate = keys.inbound(generation, self.config.window)?;
        let opened = candidate.open(packet)?;
        self.promote(now, candidate, generation);
        Ok(opened)
    }

    /// Makes `sa` (of `generation`) current; the old current becomes previous.
    fn promote(&mut self, now: Instant, sa: InboundSa, generation: u64) {
        let old = std::mem::replace(&mut self.inbound, sa);
        self.previous = Some((old, now + self.config.overlap));
        self.in_generation = generation;
        self.next_inbound = self.keys.as_ref().and_then(|k| k.inbound(generation + 1, self.config.window).ok());
        self.stats.inbound_rekeys += 1;
    }

    fn outbound_due(&self, now: Instant) -> bool {
        self.keys.is_some()
            && (self.outbound.needs_rekey() || (self.outbound.packets() > 0 && now >= self.out_since + self.config.rekey_after))
    }

    /// Replaces the outbound SA with the next generation now (a no-op for manual keys).
    pub fn rekey_outbound(&mut self, now: Instant) -> Result<(), EspError> {
        let Some(keys) = &self.keys else {
            return Ok(());
        };
        let generation = self.out_generation + 1;
        self.outbound = keys.outbound(generation)?.with_packet_budget(self.config.packet_budget);
        self.out_generation = generation;
        self.out_since = now;
        self.stats.outbound_rekeys += 1;
        Ok(())
    }

    /// Expires the previous inbound SA and rotates a due outbound SA.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), EspError> {
        if self.previous.as_ref().is_some_and(|(_, expires_at)| now >= *expires_at) {
            self.previous = None;
        }
        if self.outbound_due(now) {
            self.rekey_outbound(now)?;
        }
        Ok(())
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let expiry = self.previous.as_ref().map(|(_, t)| *t);
        let rekey = (self.keys.is_some() && self.outbound.packets() > 0).then(|| self.out_since + self.config.rekey_after);
        match (expiry, rekey) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True when the outbound SA has used its budget (manual sessions must be re-keyed by hand).
    pub fn needs_rekey(&self) -> bool {
        self.outbound.needs_rekey()
    }

    /// Where a session rebuilt for the same keys must continue (see [`ResumePoint`]).
    pub fn resume_point(&self) -> ResumePoint {
        ResumePoint {
            out_generation: self.out_generation.saturating_add(1),
            in_generation: self.in_generation,
            in_seen: self.inbound.window().top(),
        }
    }

    /// Whether the keys are manual (fixed SAs, sequence numbers persisted by the owner).
    pub fn is_manual(&self) -> bool {
        self.keys.is_none()
    }

    /// The current outbound SA, mutably (reservations of manual SAs).
    pub fn outbound_mut(&mut self) -> &mut OutboundSa {
        &mut self.outbound
    }

    /// SPI of the current outbound SA.
    pub fn outbound_spi(&self) -> u32 {
        self.outbound.spi()
    }

    /// SPI of the current inbound SA.
    pub fn inbound_spi(&self) -> u32 {
        self.inbound.spi()
    }

    /// SPI of the previous inbound SA while it is still kept.
    pub fn previous_inbound_spi(&self) -> Option<u32> {
        self.previous.as_ref().map(|(sa, _)| sa.spi())
    }

    /// Current (outbound, inbound) generations.
    pub fn generations(&self) -> (u64, u64) {
        (self.out_generation, self.in_generation)
    }

    /// Every drop seen by [`open`](Self::open), by reason.
    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// Key rotation counters.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// The current outbound SA (statistics, SPI, suite).
    pub fn outbound(&self) -> &OutboundSa {
        &self.outbound
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipsec::error::DropReason;
    use crate::ipsec::keys::{HostKey, ManualSa, KEY_LEN};
    use crate::ipsec::sa::{Suite, ESP_HEADROOM, ESP_TAILROOM};

    const A_EPOCH: u64 = 0x1111;
    const B_EPOCH: u64 = 0x2222;

    fn sessions(config: SessionConfig, now: Instant) -> (PeerSession, PeerSession) {
        let a = HostKey::from_private_bytes(&[7; KEY_LEN]).unwrap();
        let b = HostKey::from_private_bytes(&[9; KEY_LEN]).unwrap();
        let ka = SessionKeys::new(&a, A_EPOCH, b.public_key(), B_EPOCH, Suite::Aes256Gcm, false).unwrap();
        let kb = SessionKeys::new(&b, B_EPOCH, a.public_key(), A_EPOCH, Suite::Aes256Gcm, false).unwrap();
        (PeerSession::new(ka, config.clone(), now).unwrap(), PeerSession::new(kb, config, now).unwrap())
    }

    fn seal(s: &mut PeerSession, now: Instant, msg: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; ESP_HEADROOM + msg.len() + ESP_TAILROOM];
        buf[ESP_HEADROOM..ESP_HEADROOM + msg.len()].copy_from_slice(msg);
        let n = s.seal(now, &mut buf, msg.len(), 4).unwrap();
        buf.truncate(n);
        buf
    }

    fn open(s: &mut PeerSession, now: Instant, pkt: &[u8]) -> Result<Vec<u8>, EspError> {
        let mut p = pkt.to_vec();
        let o = s.open(now, &mut p)?;
        Ok(p[o.inner].to_vec())
    }

    fn spi(pkt: &[u8]) -> u32 {
        u32::from_be_bytes([pkt[0], pkt[1], pkt[2], pkt[3]])
    }

    #[test]
    fn both_directions_work_independently() {
        let t0 = Instant::now();
        let (mut a, mut b) = sessions(SessionConfig::default(), t0);
        assert_eq!(a.outbound_spi(), b.inbound_spi());
        assert_eq!(b.outbound_spi(), a.inbound_spi());
        assert_ne!(a.outbound_spi(), a.inbound_spi());
        let p = seal(&mut a, t0, b"from a");
        assert_eq!(open(&mut b, t0, &p).unwrap(), b"from a");
        let q = seal(&mut b, t0, b"from b");
        assert_eq!(open(&mut a, t0, &q).unwrap(), b"from b");
        assert_eq!(open(&mut a, t0, &q), Err(EspError::Replay));
        assert_eq!(a.drops().get(DropReason::Replay), 1);
    }

    #[test]
    fn timer_rekey_with_overlap_keeps_old_inbound_decrypting() {
        let t0 = Instant::now();
        let cfg = SessionConfig { rekey_after: Duration::from_secs(60), overlap: Duration::from_secs(10), ..Default::default() };
        let (mut a, mut b) = sessions(cfg, t0);
        let old1 = seal(&mut a, t0, b"old 1");
        let old2 = seal(&mut a, t0 + Duration::from_secs(59), b"old 2");
        assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_secs(60)));
        let t1 = t0 + Duration::from_secs(61);
        let new1 = seal(&mut a, t1, b"new 1");
        assert_ne!(spi(&new1), spi(&old1), "rekeyed after rekey_after");
        assert_eq!(a.generations().0, 1);

        // The new generation arrives first and is promoted; reordered old packets still open.
        assert_eq!(open(&mut b, t1, &new1).unwrap(), b"new 1");
        assert_eq!(b.inbound_spi(), spi(&new1));
        assert_eq!(b.previous_inbound_spi(), Some(spi(&old1)));
        assert_eq!(open(&mut b, t1, &old1).unwrap(), b"old 1");
        assert_eq!(b.poll_timeout(), Some(t1 + Duration::from_secs(10)));

        // After the overlap the previous SA is gone.
        let t2 = t1 + Duration::from_secs(10);
        b.handle_timeout(t2).unwrap();
        assert_eq!(b.previous_inbound_spi(), None);
        assert_eq!(open(&mut b, t2, &old2), Err(EspError::UnknownSpi));
        assert_eq!(b.stats().inbound_rekeys, 1);
    }

    #[test]
    fn idle_outbound_sa_is_not_rotated() {
        let t0 = Instant::now();
        let (mut a, mut b) = sessions(SessionConfig::default(), t0);
        assert_eq!(a.poll_timeout(), None);
        let later = t0 + Duration::from_secs(3600);
        a.handle_timeout(later).unwrap();
        let p = seal(&mut a, later, b"after a quiet hour");
        assert_eq!(a.generations().0, 0);
        assert_eq!(open(&mut b, later, &p).unwrap(), b"after a quiet hour");
    }

    #[test]
    fn packet_budget_rekeys_and_receiver_follows() {
        let t0 = Instant::now();
        let cfg = SessionConfig { packet_budget: 3, ..Default::default() };
        let (mut a, mut b) = sessions(cfg, t0);
        let mut spis = Vec::new();
        for i in 0..10u8 {
            let p = seal(&mut a, t0, &[i; 20]);
            spis.push(spi(&p));
            assert_eq!(open(&mut b, t0, &p).unwrap(), vec![i; 20]);
        }
        // 3 packets per generation: 0,0,0,1,1,1,2,2,2,3
        assert_eq!(a.generations().0, 3);
        assert_eq!(b.generations().1, 3);
        assert_eq!(spis[0], spis[2]);
        assert_ne!(spis[2], spis[3]);
        assert_eq!(a.stats().outbound_rekeys, 3);
    }

    #[test]
    fn receiver_resyncs_after_lost_generations() {
        let t0 = Instant::now();
        let cfg = SessionConfig { packet_budget: 1, ..Default::default() };
        let (mut a, mut b) = sessions(cfg, t0);
        // Six generations' worth of packets are lost.
        for _ in 0..6 {
            seal(&mut a, t0, b"lost");
        }
        let p = seal(&mut a, t0, b"found");
        assert_eq!(a.generations().0, 6);
        assert_eq!(open(&mut b, t0, &p).unwrap(), b"found");
        assert_eq!(b.generations().1, 6);
        assert_eq!(b.stats().resync_scans, 1);
        // And the normal next-generation path continues from there.
        let q = seal(&mut a, t0, b"next");
        assert_eq!(open(&mut b, t0, &q).unwrap(), b"next");
        assert_eq!(b.stats().resync_scans, 1);
    }

    #[test]
    fn resync_is_rate_limited_and_never_promotes_forgeries() {
        let t0 = Instant::now();
        let cfg = SessionConfig { packet_budget: 1, ..Default::default() };
        let (mut a, mut b) = sessions(cfg, t0);
        for _ in 0..4 {
            seal(&mut a, t0, b"lost");
        }
        let mut forged = seal(&mut a, t0, b"genuine");
        let genuine = forged.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(open(&mut b, t0, &forged), Err(EspError::IcvFailure));
        assert_eq!(b.generations().1, 0, "a forged packet never promotes");
        // Within the resync interval no second scan runs.
        assert_eq!(open(&mut b, t0, &genuine), Err(EspError::UnknownSpi));
        assert_eq!(b.stats().resync_scans, 1);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(open(&mut b, t1, &genuine).unwrap(), b"genuine");
        assert_eq!(b.stats().resync_scans, 2);
        // A forgery under the next generation's SPI does not promote either.
        let mut next = seal(&mut a, t1, b"next");
        let mid = next.len() / 2;
        next[mid] ^= 0x80;
        assert_eq!(open(&mut b, t1, &next), Err(EspError::IcvFailure));
        assert_eq!(b.generations().1, 4);
        assert_eq!(b.drops().get(DropReason::IcvFailure), 2);
        assert_eq!(b.drops().get(DropReason::UnknownSpi), 1);
    }

    #[test]
    fn restart_with_new_epoch_never_reuses_keys() {
        let t0 = Instant::now();
        let a = HostKey::from_private_bytes(&[7; KEY_LEN]).unwrap();
        let b = HostKey::from_private_bytes(&[9; KEY_LEN]).unwrap();
        let before = SessionKeys::new(&a, A_EPOCH, b.public_key(), B_EPOCH, Suite::Aes128Gcm, false).unwrap();
        let after = SessionKeys::new(&a, A_EPOCH + 1, b.public_key(), B_EPOCH, Suite::Aes128Gcm, false).unwrap();
        let mut s1 = PeerSession::new(before, SessionConfig::default(), t0).unwrap();
        let mut s2 = PeerSession::new(after, SessionConfig::default(), t0).unwrap();
        let p1 = seal(&mut s1, t0, b"same plaintext");
        let p2 = seal(&mut s2, t0, b"same plaintext");
        // Same sequence number 1 (same IV) but a different SPI and key: different ciphertext.
        assert_eq!(&p1[4..16], &p2[4..16]);
        assert_ne!(&p1[0..4], &p2[0..4]);
        assert_ne!(&p1[16..], &p2[16..]);
    }

    #[test]
    fn resumed_session_uses_new_generations_and_refuses_old_packets() {
        let t0 = Instant::now();
        let (mut a, mut b) = sessions(SessionConfig::default(), t0);
        let p = seal(&mut a, t0, b"first life");
        open(&mut b, t0, &p).unwrap();
        // Both ends drop and rebuild their sessions for the same epochs.
        let (ra, rb) = (a.resume_point(), b.resume_point());
        assert_eq!(ra, ResumePoint { out_generation: 1, in_generation: 0, in_seen: 0 });
        assert_eq!(rb, ResumePoint { out_generation: 1, in_generation: 0, in_seen: 1 });
        let host = |seed| HostKey::from_private_bytes(&[seed; KEY_LEN]).unwrap();
        let ka = SessionKeys::new(&host(7), A_EPOCH, host(9).public_key(), B_EPOCH, Suite::Aes256Gcm, false).unwrap();
        let kb = SessionKeys::new(&host(9), B_EPOCH, host(7).public_key(), A_EPOCH, Suite::Aes256Gcm, false).unwrap();
        let mut a2 = PeerSession::resume(ka, SessionConfig::default(), t0, ra).unwrap();
        let mut b2 = PeerSession::resume(kb, SessionConfig::default(), t0, rb).unwrap();
        assert_eq!(open(&mut b2, t0, &p), Err(EspError::Replay), "the old packet is not accepted again");
        let q = seal(&mut a2, t0, b"second life");
        assert_ne!(spi(&q), spi(&p), "a new generation: new key");
        assert_eq!(open(&mut b2, t0, &q).unwrap(), b"second life");
        assert_eq!(a2.generations().0, 1);
    }

    #[test]
    fn manual_session_never_rotates() {
        let t0 = Instant::now();
        let key = "0x0123456789abcdef0123456789abcdefcafebabe";
        let m = ManualSa::parse("0x1000", "rfc4106(gcm(aes))", key, 128).unwrap();
        let mut a = PeerSession::manual(m.outbound(false).unwrap().with_packet_budget(1), m.inbound(false, 64).unwrap(), t0);
        let mut b = PeerSession::manual(m.outbound(false).unwrap(), m.inbound(false, 64).unwrap(), t0);
        let later = t0 + Duration::from_secs(86_400);
        for _ in 0..3 {
            let p = seal(&mut a, later, b"x");
            assert_eq!(spi(&p), 0x1000);
            open(&mut b, later, &p).unwrap();
        }
        assert!(a.needs_rekey());
        assert_eq!(a.generations(), (0, 0));
        assert_eq!(a.poll_timeout(), None);
        let mut junk = [0u8; 40];
        junk[3] = 0x77;
        assert_eq!(b.open(later, &mut junk), Err(EspError::UnknownSpi));
        assert_eq!(b.open(later, &mut junk[..10]), Err(EspError::Truncated));
    }
}
