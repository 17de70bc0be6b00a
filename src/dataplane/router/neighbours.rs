//! The local neighbour table of a routed network's gateway, for either family: containers behind
//! this host's TAP by address (snooped from their ARP/ND and packets, or learned from the answer
//! to the gateway's own request), and the packets held while a destination is being resolved.
//!
//! The IPv4 half asks with ARP, the IPv6 half with a Neighbor Solicitation; what they keep and
//! how long is the same, so it lives here once (as Linux keeps one `neighbour` core under ARP and
//! NDP). Every routed packet looks its destination up here, so the maps hash with keyed aHash,
//! as the FDB does, not SipHash.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::dataplane::counters::DropReason;
use crate::wire::ethernet::{EthernetAddress, EthernetFrame};

/// How long a snooped local neighbour stays valid without being seen again.
pub const NEIGHBOUR_TTL: Duration = Duration::from_secs(300);
/// How long packets wait for an ARP (or NDP) answer before they are dropped.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);
/// Packets held per unresolved destination (as Linux's `unres_qlen` idea, much smaller).
const PENDING_PER_IP: usize = 4;
/// Unresolved destinations held at once (per family).
const PENDING_IPS: usize = 256;
/// Local neighbours remembered at once (per family).
const MAX_NEIGHBOURS: usize = 4096;

#[derive(Debug)]
struct Pending {
    since: Instant,
    frames: Vec<Vec<u8>>,
}

/// Known local neighbours of one family, and packets held for unresolved ones.
#[derive(Debug)]
pub struct Neighbours<A> {
    known: HashMap<A, (EthernetAddress, Instant), ahash::RandomState>,
    pending: HashMap<A, Pending, ahash::RandomState>,
}

impl<A> Default for Neighbours<A> {
    fn default() -> Self {
        Neighbours { known: HashMap::default(), pending: HashMap::default() }
    }
}

/// What [`Neighbours::resolve`] did with a packet for a local destination.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The destination is known: the frame was rewritten to it (source: the gateway MAC).
    Known,
    /// Held; the first packet for this destination, so the caller sends a request.
    HeldFirst,
    /// Held behind earlier packets; a request is already out.
    Held,
}

impl<A: Copy + Eq + Hash> Neighbours<A> {
    /// The MAC last seen for `ip`, however old.
    pub fn get(&self, ip: A) -> Option<EthernetAddress> {
        self.known.get(&ip).map(|(mac, _)| *mac)
    }

    /// Forget everything (the network's subnet changed).
    pub fn clear(&mut self) {
        self.known.clear();
        self.pending.clear();
    }

    /// Learn that `ip` is at `mac`: packets held for it are rewritten (from `gateway_mac`) and
    /// returned for the TAP. Nothing is learned past the table's cap.
    pub fn learn(&mut self, now: Instant, ip: A, mac: EthernetAddress, gateway_mac: EthernetAddress) -> Vec<Vec<u8>> {
        if self.known.len() >= MAX_NEIGHBOURS && !self.known.contains_key(&ip) {
            return Vec::new();
        }
        self.known.insert(ip, (mac, now));
        let mut frames = self.pending.remove(&ip).map(|p| p.frames).unwrap_or_default();
        for f in &mut frames {
            rewrite(f, gateway_mac, mac);
        }
        frames
    }

    /// A packet for local destination `dst`: rewritten to its MAC if that is known and fresh,
    /// else held (a few per destination, a few destinations) until it is learned.
    pub fn resolve(&mut self, now: Instant, dst: A, frame: &mut [u8], gateway_mac: EthernetAddress) -> Result<Resolution, DropReason> {
        if let Some(&(mac, seen)) = self.known.get(&dst) {
            if now.saturating_duration_since(seen) < NEIGHBOUR_TTL {
                rewrite(frame, gateway_mac, mac);
                return Ok(Resolution::Known);
            }
        }
        let first = !self.pending.contains_key(&dst);
        if first && self.pending.len() >= PENDING_IPS {
            return Err(DropReason::NeighbourQueueFull);
        }
        let p = self.pending.entry(dst).or_insert_with(|| Pending { since: now, frames: Vec::new() });
        if p.frames.len() >= PENDING_PER_IP {
            return Err(DropReason::NeighbourQueueFull);
        }
        p.frames.push(frame.to_vec());
        Ok(if first { Resolution::HeldFirst } else { Resolution::Held })
    }

    /// Expire stale neighbours and packets that waited too long for an answer. Returns the
    /// packets dropped.
    pub fn handle_timeout(&mut self, now: Instant) -> u64 {
        self.known.retain(|_, (_, seen)| now.saturating_duration_since(*seen) < NEIGHBOUR_TTL);
        let mut dropped = 0;
        self.pending.retain(|_, p| {
            let keep = now.saturating_duration_since(p.since) < RESOLVE_TIMEOUT;
            if !keep {
                dropped += p.frames.len() as u64;
            }
            keep
        });
        dropped
    }

    /// When [`Neighbours::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.since + RESOLVE_TIMEOUT).min()
    }
}

/// Rewrite `frame`'s Ethernet header: from the gateway to the neighbour.
fn rewrite(frame: &mut [u8], gateway_mac: EthernetAddress, mac: EthernetAddress) {
    let mut eth = EthernetFrame::new_unchecked(frame);
    eth.set_src_addr(gateway_mac);
    eth.set_dst_addr(mac);
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: EthernetAddress = EthernetAddress([2, 0x76, 0x78, 0, 4, 0x12]);
    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 7]);

    #[test]
    fn held_packets_leave_rewritten_when_the_neighbour_is_learned_and_expire_otherwise() {
        let t0 = Instant::now();
        let mut n = Neighbours::<u32>::default();
        let mut frame = vec![0u8; 60];
        assert_eq!(n.resolve(t0, 7, &mut frame, GW), Ok(Resolution::HeldFirst));
        assert_eq!(n.resolve(t0, 7, &mut frame, GW), Ok(Resolution::Held));
        for _ in 2..PENDING_PER_IP {
            n.resolve(t0, 7, &mut frame, GW).unwrap();
        }
        assert_eq!(n.resolve(t0, 7, &mut frame, GW), Err(DropReason::NeighbourQueueFull));
        assert_eq!(n.poll_timeout(), Some(t0 + RESOLVE_TIMEOUT));
        let out = n.learn(t0, 7, MAC, GW);
        assert_eq!(out.len(), PENDING_PER_IP);
        assert!(out.iter().all(|f| f[..6] == MAC.0 && f[6..12] == GW.0));
        assert_eq!(n.resolve(t0, 7, &mut frame, GW), Ok(Resolution::Known));
        assert_eq!(frame[..6], MAC.0);
        // Unanswered: dropped after RESOLVE_TIMEOUT; a neighbour not seen for NEIGHBOUR_TTL goes.
        n.resolve(t0, 8, &mut frame, GW).unwrap();
        assert_eq!(n.handle_timeout(t0 + RESOLVE_TIMEOUT), 1);
        assert_eq!(n.get(7), Some(MAC));
        n.handle_timeout(t0 + NEIGHBOUR_TTL);
        assert_eq!(n.get(7), None);
    }

    #[test]
    fn the_table_and_the_queue_are_capped() {
        let t0 = Instant::now();
        let mut n = Neighbours::<u32>::default();
        for ip in 0..MAX_NEIGHBOURS as u32 {
            n.learn(t0, ip, MAC, GW);
        }
        n.learn(t0, u32::MAX, MAC, GW);
        assert_eq!(n.get(u32::MAX), None, "nothing learned past the cap");
        let mut frame = vec![0u8; 60];
        let mut m = Neighbours::<u32>::default();
        for ip in 0..PENDING_IPS as u32 {
            m.resolve(t0, ip, &mut frame, GW).unwrap();
        }
        assert_eq!(m.resolve(t0, u32::MAX, &mut frame, GW), Err(DropReason::NeighbourQueueFull));
    }
}
