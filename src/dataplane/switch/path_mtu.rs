//! The switch's side of path MTU (see [`crate::dataplane::pmtu`] for the rules and why): the
//! frame limit toward a peer, the "too big" answer on the TAP, MSS clamping, and the per-peer
//! underlay path MTUs the driver reports.

use std::net::IpAddr;
use std::time::Instant;

use super::{PortId, Switch, Transmit};
use crate::dataplane::counters::DropReason;
use crate::dataplane::mtu::{self, Encap, OuterIp};
use crate::dataplane::pmtu::mss::{self, MssClamp};
use crate::dataplane::pmtu::reply::{self, NoReply, Responder};
use crate::dataplane::pmtu::{PeerMtu, PeerMtuChange};
use crate::dataplane::tunnel::Tunnel;
use crate::wire::ethernet::{EtherType, EthernetFrame};
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6::Ipv6Packet;

/// How a network's frames fit the underlay path: what the limit toward a peer is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathSpec {
    /// The configured underlay MTU (the path MTU to a peer until the kernel reports less).
    pub underlay_mtu: u32,
    /// The encapsulation, for the frame limit over a smaller path ([`mtu::plan`]).
    pub encap: Encap,
    /// MSS clamping of TCP SYNs crossing the overlay.
    pub mss_clamp: MssClamp,
}

impl Default for PathSpec {
    fn default() -> Self {
        PathSpec { underlay_mtu: 1500, encap: Encap::Vxlan, mss_clamp: MssClamp::Auto }
    }
}

impl Switch {
    /// The largest frame `port` may send to `peer` (or, flooding, to every peer of the network).
    // hot path
    pub(super) fn frame_limit(&self, port: PortId, peer: Option<IpAddr>) -> usize {
        let net = &self.networks[port];
        // The peer's family sizes the outer header (one underlay has one family).
        let toward = |p: IpAddr| match self.peer_mtus.get(p) {
            Some(m) if m < net.path.underlay_mtu => {
                (mtu::plan_over(OuterIp::of(p), m, net.path.encap).max_frame_len as usize).min(net.max_frame_len)
            }
            _ => net.max_frame_len,
        };
        match peer {
            Some(p) => toward(p),
            None => net.peers.iter().map(|p| toward(*p)).min().unwrap_or(net.max_frame_len),
        }
    }

    /// A frame of `port` too big for its tunnel (`limit` bytes): drop and count it, and answer the
    /// sender on the TAP when the rules allow and the budget has room.
    pub(super) fn too_big(&mut self, now: Instant, port: PortId, frame: &[u8], limit: usize) {
        let net = &mut self.networks[port];
        self.counters.drop(match net.tunnel {
            Tunnel::Vxlan => DropReason::TapOversizeVxlan,
            Tunnel::Esp => DropReason::TapOversizeEsp,
        });
        if net.icmp.spent(now) {
            self.counters.pmtu_icmp_rate_limited += 1;
            return;
        }
        let from = match net.router.as_ref() {
            None => Responder::Destination,
            Some(router) => {
                let spec = router.spec();
                let sender_mac = match routed_sender(frame) {
                    Some(IpAddr::V4(ip)) => router.neighbour(ip),
                    Some(IpAddr::V6(ip)) => router.v6().and_then(|v6| v6.neighbour(ip)),
                    None => None,
                };
                let Some(dst_mac) = sender_mac else {
                    self.counters.pmtu_icmp_suppressed += 1;
                    return;
                };
                let ip6 = spec.v6.map(|v6| v6.gateway_ip);
                Responder::Gateway { mac: spec.gateway_mac, ip: spec.gateway_ip, ip6, dst_mac }
            }
        };
        let answer = match reply::too_big(frame, limit, from) {
            Ok(answer) => answer,
            Err(NoReply::NoDf) => {
                self.counters.pmtu_no_df += 1;
                return;
            }
            Err(_) => {
                self.counters.pmtu_icmp_suppressed += 1;
                return;
            }
        };
        if !net.icmp.take(now) {
            self.counters.pmtu_icmp_rate_limited += 1;
            return;
        }
        let v6 = EthernetFrame::new_unchecked(&answer[..]).ethertype() == EtherType::IPV6;
        if v6 {
            self.counters.pmtu_icmp6_sent += 1;
        } else {
            self.counters.pmtu_icmp_sent += 1;
        }
        self.transmits.push_back(Transmit::Tap { port, frame: answer });
    }

    /// Clamp the MSS of a TCP SYN crossing between `port` and `peer` (either way).
    // hot path
    pub(super) fn clamp_mss(&mut self, port: PortId, peer: Option<IpAddr>, frame: &mut [u8]) {
        let clamp = self.networks[port].path.mss_clamp;
        if clamp == MssClamp::Off {
            return;
        }
        let limit = self.frame_limit(port, peer);
        if mss::clamp_frame(frame, clamp, limit).is_some() {
            self.counters.mss_clamped += 1;
        }
    }

    /// The kernel's path MTU toward `peer` (from the driver's probe): lowers that peer's
    /// effective MTU, or raises it back. The configured underlay MTU is the most it can be.
    pub fn handle_path_mtu(&mut self, now: Instant, peer: IpAddr, mtu: u32) {
        let full = self.networks.iter().filter(|n| !n.retired).map(|n| n.path.underlay_mtu).max().unwrap_or(0);
        match self.peer_mtus.learn(now, peer, mtu, full) {
            PeerMtuChange::Lowered => {
                self.counters.peer_mtu_lowered += 1;
                tracing::info!(%peer, mtu, "underlay path MTU to peer lowered");
            }
            PeerMtuChange::Raised => {
                self.counters.peer_mtu_raised += 1;
                tracing::info!(%peer, mtu = mtu.min(full), "underlay path MTU to peer raised");
            }
            PeerMtuChange::Same => {}
            PeerMtuChange::Full => self.counters.peer_mtu_table_full += 1,
        }
    }

    /// The learned underlay path MTU to `peer`, if one is in force (the configured underlay MTU
    /// applies otherwise).
    pub fn peer_mtu(&self, peer: IpAddr) -> Option<u32> {
        self.peer_mtus.get(peer)
    }

    /// Every learned per-peer path MTU, for `stats`.
    pub fn peer_mtus(&self, now: Instant) -> Vec<PeerMtu> {
        self.peer_mtus.list(now)
    }

    /// Every peer of every network, sorted and deduplicated (what the driver probes).
    pub fn underlay_peers(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.networks.iter().filter(|n| !n.retired).flat_map(|n| n.peers.iter().copied()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Forget per-peer path MTUs whose time is up.
    pub(super) fn expire_peer_mtus(&mut self, now: Instant) {
        self.counters.peer_mtu_expired += self.peer_mtus.expire(now) as u64;
    }
}

/// The IP source of a routed frame (whose Ethernet source was already rewritten).
fn routed_sender(frame: &[u8]) -> Option<IpAddr> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    match eth.ethertype() {
        EtherType::IPV4 => Some(Ipv4Packet::new_checked(eth.payload()).ok()?.src_addr().into()),
        EtherType::IPV6 => Some(Ipv6Packet::new_checked(eth.payload()).ok()?.src_addr().into()),
        _ => None,
    }
}
