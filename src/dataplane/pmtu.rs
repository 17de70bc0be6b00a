//! Path MTU: what the switch does with a frame too big for its tunnel, and what it knows about
//! each peer's underlay path.
//!
//! **Answer, don't just drop.** A frame that does not fit its tunnel once encapsulated is dropped
//! (counted as `tap_oversize_vxlan` / `tap_oversize_esp`, as before) and answered on the TAP, as
//! Linux vxlan does (`skb_tunnel_check_pmtu`): IPv4 with DF gets an ICMP "fragmentation needed"
//! (type 3 code 4) and IPv6 an ICMPv6 "packet too big" (type 2), carrying the inner MTU that
//! fits. The sender's stack lowers its path MTU for that destination and its TCP shrinks its
//! segments; nothing is retried blindly.
//!
//! Who the answer appears to come from:
//! - **overlay (L2) networks**: from the destination itself (source MAC and IP swapped), as Linux
//!   5.9 does for "PMTU discovery on directly bridged links": the sender sits on the same L2
//!   segment as the destination, so an ICMP from a router it does not know would be ignored or
//!   would need a gateway; from the destination it is accepted by every stack.
//! - **routed networks**: from the anycast gateway (its MAC and IP), as any router would.
//!
//! Never answered (see [`reply`]): ICMP errors (RFC 1122 3.2.2 / RFC 4443 2.4), non-first
//! fragments, packets from or to unspecified, loopback, broadcast or multicast addresses.
//! Answers are rate-limited per network ([`ICMP_PER_SEC`], like the routed gateway's errors,
//! RFC 1812 4.3.2.8); those suppressed are counted.
//!
//! **IPv4 without DF** is dropped and counted (`tap_oversize_no_df`), not fragmented inside.
//! Why: every current stack sets DF on TCP and (with the default `IP_PMTUDISC_WANT`) on UDP, so
//! such packets come only from applications that turned path MTU discovery off on purpose;
//! fragmenting them would put a copy and one encapsulation per fragment on the hot path, and the
//! receiver would have to reassemble inner fragments that overlay MTUs exist to avoid. RFC 1191
//! forbids answering them with "fragmentation needed", so the counter is what an operator sees.
//!
//! **Underlay path MTU per peer.** The driver asks the kernel what it learned about the path to
//! each peer (`IP_MTU` on a connected probe socket: the kernel records the ICMP "fragmentation
//! needed" a router sends back for our DF-marked tunnel packets) and reports it with
//! [`crate::dataplane::Switch::handle_path_mtu`]. A lower value lowers that peer's effective MTU:
//! frames to it that no longer fit are answered as above with the smaller inner MTU. The value is
//! forgotten after [`PEER_MTU_EXPIRY`] (10 minutes, the kernel's own `mtu_expires`), or as soon as
//! the kernel reports the path back at full size; if the path is still small, the kernel learns
//! it again from the next router ICMP and the driver reports it again: that is the probe.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

pub mod mss;
pub mod reply;

/// How long a learned peer path MTU is trusted (Linux `net.ipv4.route.mtu_expires`: 600 s).
pub const PEER_MTU_EXPIRY: Duration = Duration::from_secs(600);
/// ICMP "too big" answers per second per network.
pub const ICMP_PER_SEC: u32 = 100;
/// The smallest underlay path MTU taken from a report (the configuration's smallest underlay MTU).
pub const MIN_PEER_MTU: u32 = 576;
/// Most peers with a learned path MTU (the rest keep the configured underlay MTU).
pub const MAX_PEER_MTUS: usize = 4096;

/// One second's budget of ICMP answers.
#[derive(Debug, Clone, Copy)]
pub struct IcmpBudget {
    window: Option<Instant>,
    sent: u32,
}

impl IcmpBudget {
    /// A full budget.
    pub const fn new() -> Self {
        IcmpBudget { window: None, sent: 0 }
    }

    /// Whether the budget is spent at `now` (checked before building an answer, so a flood of
    /// oversize frames costs no allocations once it is).
    pub fn spent(&self, now: Instant) -> bool {
        matches!(self.window, Some(start) if now.saturating_duration_since(start) < Duration::from_secs(1)) && self.sent >= ICMP_PER_SEC
    }

    /// Whether one more answer may go out at `now` (and takes it from the budget).
    pub fn take(&mut self, now: Instant) -> bool {
        match self.window {
            Some(start) if now.saturating_duration_since(start) < Duration::from_secs(1) => {}
            _ => (self.window, self.sent) = (Some(now), 0),
        }
        if self.sent >= ICMP_PER_SEC {
            return false;
        }
        self.sent += 1;
        true
    }
}

impl Default for IcmpBudget {
    fn default() -> Self {
        Self::new()
    }
}

/// A peer's underlay path MTU as `stats` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PeerMtu {
    /// The peer's underlay address.
    pub peer: IpAddr,
    /// The path MTU the kernel reported.
    pub mtu: u32,
    /// Seconds until it is forgotten (back to the configured underlay MTU).
    pub expires_in_secs: u64,
}

/// What changed when a report was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerMtuChange {
    /// Nothing (same value; its expiry was renewed).
    Same,
    /// The peer's path MTU went down.
    Lowered,
    /// The peer's path MTU went up (or back to the underlay MTU).
    Raised,
    /// The table is full: the report was ignored.
    Full,
}

/// Learned underlay path MTUs, by peer, each with its expiry.
#[derive(Debug, Default)]
pub struct PeerMtus {
    by_peer: HashMap<IpAddr, (u32, Instant)>,
}

impl PeerMtus {
    /// Apply the kernel's path MTU to `peer`; `full` is the configured underlay MTU (a report at
    /// or above it forgets the peer's entry).
    pub fn learn(&mut self, now: Instant, peer: IpAddr, mtu: u32, full: u32) -> PeerMtuChange {
        let mtu = mtu.max(MIN_PEER_MTU);
        let old = self.by_peer.get(&peer).map(|e| e.0);
        if mtu >= full {
            return match self.by_peer.remove(&peer) {
                Some(_) => PeerMtuChange::Raised,
                None => PeerMtuChange::Same,
            };
        }
        if old.is_none() && self.by_peer.len() >= MAX_PEER_MTUS {
            return PeerMtuChange::Full;
        }
        self.by_peer.insert(peer, (mtu, now + PEER_MTU_EXPIRY));
        match old {
            Some(o) if o == mtu => PeerMtuChange::Same,
            Some(o) if o < mtu => PeerMtuChange::Raised,
            _ => PeerMtuChange::Lowered,
        }
    }

    /// The learned path MTU to `peer`, if one is in force.
    // hot path
    pub fn get(&self, peer: IpAddr) -> Option<u32> {
        if self.by_peer.is_empty() {
            return None;
        }
        self.by_peer.get(&peer).map(|e| e.0)
    }

    /// Forget the entries whose time is up; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let before = self.by_peer.len();
        self.by_peer.retain(|_, (_, at)| *at > now);
        before - self.by_peer.len()
    }

    /// When the next entry expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.by_peer.values().map(|e| e.1).min()
    }

    /// Forget `peer` (it left).
    pub fn remove(&mut self, peer: IpAddr) {
        self.by_peer.remove(&peer);
    }

    /// Every entry, sorted by peer, for `stats`.
    pub fn list(&self, now: Instant) -> Vec<PeerMtu> {
        let mut v: Vec<PeerMtu> = self
            .by_peer
            .iter()
            .map(|(&peer, &(mtu, at))| PeerMtu { peer, mtu, expires_in_secs: at.saturating_duration_since(now).as_secs() })
            .collect();
        v.sort_by_key(|p| p.peer);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const P: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));

    #[test]
    fn learn_lower_raise_and_expire() {
        let t0 = Instant::now();
        let mut m = PeerMtus::default();
        assert_eq!(m.learn(t0, P, 1500, 1500), PeerMtuChange::Same, "full size: nothing to remember");
        assert_eq!(m.get(P), None);
        assert_eq!(m.learn(t0, P, 1400, 1500), PeerMtuChange::Lowered);
        assert_eq!(m.learn(t0, P, 1400, 1500), PeerMtuChange::Same);
        assert_eq!(m.learn(t0, P, 1300, 1500), PeerMtuChange::Lowered);
        assert_eq!(m.learn(t0, P, 1350, 1500), PeerMtuChange::Raised);
        assert_eq!(m.get(P), Some(1350));
        assert_eq!(m.learn(t0, P, 100, 1500), PeerMtuChange::Lowered);
        assert_eq!(m.get(P), Some(MIN_PEER_MTU), "absurd reports are clamped");
        assert_eq!(m.next_expiry(), Some(t0 + PEER_MTU_EXPIRY));
        assert_eq!(m.expire(t0 + PEER_MTU_EXPIRY - Duration::from_secs(1)), 0);
        assert_eq!(m.list(t0)[0].expires_in_secs, 600);
        assert_eq!(m.expire(t0 + PEER_MTU_EXPIRY), 1);
        assert_eq!(m.get(P), None);
        m.learn(t0, P, 1400, 1500);
        assert_eq!(m.learn(t0, P, 9000, 1500), PeerMtuChange::Raised, "back at full size");
        assert_eq!(m.get(P), None);
    }

    #[test]
    fn the_table_is_bounded() {
        let t0 = Instant::now();
        let mut m = PeerMtus::default();
        for i in 0..MAX_PEER_MTUS as u32 {
            assert_eq!(m.learn(t0, Ipv4Addr::from(0x0a00_0000 + i).into(), 1400, 1500), PeerMtuChange::Lowered);
        }
        assert_eq!(m.learn(t0, P, 1400, 1500), PeerMtuChange::Full);
        assert_eq!(m.learn(t0, Ipv4Addr::from(0x0a00_0000).into(), 1300, 1500), PeerMtuChange::Lowered, "known peers still update");
    }

    #[test]
    fn the_icmp_budget_refills_each_second() {
        let t0 = Instant::now();
        let mut b = IcmpBudget::new();
        assert_eq!((0..200).filter(|_| b.take(t0)).count(), ICMP_PER_SEC as usize);
        assert!(!b.take(t0 + Duration::from_millis(999)));
        assert!(b.spent(t0 + Duration::from_millis(999)));
        assert!(!b.spent(t0 + Duration::from_secs(1)));
        assert!(b.take(t0 + Duration::from_secs(1)));
    }
}
