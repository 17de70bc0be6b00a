//! The IPv6 half of the anycast gateway on a dual-stack routed network.
//!
//! Next to its IPv4 subnet, each host owns an IPv6 subnet (`subnet6`, e.g. fd00:42:0:1::/64 of a
//! fd00:42::/48 cluster) and the gateway answers for two IPv6 addresses with the same anycast
//! gateway MAC as for IPv4:
//! - `gateway6` (the subnet's `::1` by default): the address a container's static
//!   `ip -6 route add default via GATEWAY6` names;
//! - the link-local address derived from the gateway MAC (modified EUI-64, RFC 4291 2.5.1), the
//!   address routers are normally known by on a link (RFC 4861 requires a link-local next hop
//!   for redirects and router advertisements; stacks accept either as a next hop).
//!
//! vxswitch sends no Router Advertisements: containers get their IPv6 address and route the way
//! they get the IPv4 ones (CNI or static configuration), and an RA from every host's gateway
//! would make each container's stack autoconfigure from whatever prefix the RA carried. Neighbor
//! Solicitations for either address are answered with a Neighbor Advertisement (Router flag set),
//! DAD probes for them are defended, and echo requests to either are answered.
//!
//! Routing mirrors the IPv4 path: the hop limit is decremented once per overlay crossing (ICMPv6
//! time exceeded at 1), the destination is looked up in the IPv6 routes learned from gossip
//! (ICMPv6 destination unreachable, "no route", on a miss), and the owning host resolves the
//! container's MAC from its neighbour table (snooped from NS/NA and routed packets, or by
//! soliciting it from `gateway6` while holding a few packets). Packets with a link-local or
//! multicast destination, or a link-local source, are never routed (RFC 4291 2.5.6).
//! ICMPv6 errors follow RFC 4443 2.4: never in answer to an ICMPv6 error or to a packet from an
//! unspecified or multicast source, at most [`ICMP_PER_SEC`] a second per network (a budget apart
//! from the IPv4 errors', so neither family starves the other), quoting as
//! much of the packet as fits 1280 bytes. "Packet too big" is the path-MTU code's
//! ([`crate::dataplane::pmtu`]), answered from `gateway6`.

use std::collections::VecDeque;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use super::neighbours::{Neighbours, Resolution};
use super::{Routed, RoutedSpec6};
use crate::dataplane::counters::{Counters, DropReason};
use crate::dataplane::routes::RouteTable;
use crate::nd::{ndisc_frame, solicited_node, NdMessage};
use crate::wire::ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
use crate::wire::icmpv6::{message_type, Icmpv6Packet, NdiscRepr, NeighborFlags};
use crate::wire::ipv4::protocol;
use crate::wire::ipv6::{Ipv6Packet, Ipv6Repr, HEADER_LEN};

/// ICMPv6 errors sent per second per network (RFC 4443 2.4(f) asks for a limit).
pub const ICMP_PER_SEC: u32 = 100;
/// ICMPv6 "destination unreachable" (RFC 4443 3.1), code 0 "no route to destination".
const DST_UNREACHABLE: u8 = 1;
/// ICMPv6 "time exceeded" (RFC 4443 3.3), code 0 "hop limit exceeded in transit".
const TIME_EXCEEDED: u8 = 3;
/// Hop limit of the gateway's own packets.
const HOP_LIMIT: u8 = 64;
/// An ICMPv6 error must not exceed the IPv6 minimum MTU (RFC 4443 2.4(c)).
const IPV6_MIN_MTU: usize = 1280;

/// The link-local address of an interface with MAC `mac` (modified EUI-64, RFC 4291 appendix A):
/// `fe80::` + the MAC with the universal/local bit flipped and `ff:fe` in the middle.
pub fn link_local(mac: EthernetAddress) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]])
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// The kind of ICMPv6 error the gateway sends.
#[derive(Debug, Clone, Copy)]
enum Icmp6Error {
    HopLimit,
    NoRoute,
}

/// The IPv6 state of one routed network: subnet, gateway addresses, neighbours.
#[derive(Debug)]
pub struct Router6 {
    spec: RoutedSpec6,
    gateway_mac: EthernetAddress,
    link_local: Ipv6Addr,
    neighbours: Neighbours<Ipv6Addr>,
    icmp_budget: (Instant, u32),
}

impl Router6 {
    /// The IPv6 half for `spec`, answering with `gateway_mac`.
    pub fn new(spec: RoutedSpec6, gateway_mac: EthernetAddress, now: Instant) -> Self {
        Router6 { spec, gateway_mac, link_local: link_local(gateway_mac), neighbours: Neighbours::default(), icmp_budget: (now, 0) }
    }

    /// The configuration.
    pub fn spec(&self) -> &RoutedSpec6 {
        &self.spec
    }

    /// The gateway's link-local address.
    pub fn link_local(&self) -> Ipv6Addr {
        self.link_local
    }

    /// A known local neighbour's MAC.
    pub fn neighbour(&self, ip: Ipv6Addr) -> Option<EthernetAddress> {
        self.neighbours.get(ip)
    }

    fn is_gateway(&self, ip: &Ipv6Addr) -> bool {
        *ip == self.spec.gateway_ip || *ip == self.link_local
    }

    /// An IPv6 frame from the local TAP (Ethernet header parsed by the switch). `out` collects
    /// frames to write to the TAP.
    // hot path
    pub fn from_tap(
        &mut self,
        now: Instant,
        frame: &mut [u8],
        eth: &EthernetRepr,
        routes: &RouteTable,
        out: &mut VecDeque<Vec<u8>>,
        counters: &mut Counters,
    ) -> Routed {
        let l3 = eth.buffer_len();
        // Neighbour Discovery first: solicitations go to multicast groups, not to the gateway MAC.
        if let Some(msg) = crate::nd::parse(eth.src_addr, &frame[l3..]) {
            return self.nd_from_tap(now, &msg, eth.vlan_id, out, counters);
        }
        if eth.dst_addr.is_multicast() {
            // MLD reports, router solicitations and the like: link-scope traffic the bridge
            // delivers on the host; nothing for the gateway to route or answer.
            counters.ipv6_multicast_kept_local += 1;
            return Routed::Consumed;
        }
        if eth.dst_addr != self.gateway_mac {
            return Routed::Drop(DropReason::RoutedNotForGateway);
        }
        let Ok(ip) = Ipv6Packet::new_checked(&frame[l3..]) else { return Routed::Drop(DropReason::RoutedMalformed) };
        let (src, dst, hops) = (ip.src_addr(), ip.dst_addr(), ip.hop_limit());
        self.snoop(now, src, eth.src_addr, out);
        if self.is_gateway(&dst) {
            return self.answer_echo(frame, l3, eth.src_addr, out, counters);
        }
        // Link-local and multicast traffic stays on the link; unspecified sources are never routed.
        if dst.is_multicast() || is_link_local(&dst) || is_link_local(&src) || src.is_unspecified() || src.is_multicast() {
            return Routed::Drop(DropReason::Routed6Scope);
        }
        if hops <= 1 {
            counters.drop(DropReason::TtlExpired);
            self.icmp_error(now, frame, l3, eth.src_addr, Icmp6Error::HopLimit, out, counters);
            return Routed::Consumed;
        }
        let local = self.spec.subnet.contains(&dst);
        let vtep = if local { None } else { routes.lookup6(dst) };
        if !local && vtep.is_none() {
            counters.drop(DropReason::NoRoute);
            self.icmp_error(now, frame, l3, eth.src_addr, Icmp6Error::NoRoute, out, counters);
            return Routed::Consumed;
        }
        Ipv6Packet::new_unchecked(&mut frame[l3..]).set_hop_limit(hops - 1);
        counters.routed_packets += 1;
        match vtep {
            Some(vtep) => {
                let mut e = EthernetFrame::new_unchecked(&mut frame[..]);
                e.set_src_addr(self.gateway_mac);
                e.set_dst_addr(self.gateway_mac);
                Routed::ToVtep(vtep)
            }
            None => self.deliver_local(now, frame, dst, out, counters),
        }
    }

    /// A routed IPv6 frame from the overlay, to the gateway MAC: deliver it to a local container.
    // hot path
    pub fn from_underlay(
        &mut self,
        now: Instant,
        frame: &mut [u8],
        eth: &EthernetRepr,
        out: &mut VecDeque<Vec<u8>>,
        counters: &mut Counters,
    ) -> Routed {
        let Ok(ip) = Ipv6Packet::new_checked(&frame[eth.buffer_len()..]) else { return Routed::Drop(DropReason::RoutedMalformed) };
        let dst = ip.dst_addr();
        if !self.spec.subnet.contains(&dst) || self.is_gateway(&dst) {
            return Routed::Drop(DropReason::RoutedMisdelivered);
        }
        self.deliver_local(now, frame, dst, out, counters)
    }

    /// NS and NA from a local container: answer solicitations for the gateway, learn the sender,
    /// and keep everything else on the host (the bridge delivers it between local containers).
    fn nd_from_tap(
        &mut self,
        now: Instant,
        msg: &NdMessage,
        vlan_id: Option<u16>,
        out: &mut VecDeque<Vec<u8>>,
        counters: &mut Counters,
    ) -> Routed {
        if let Some((ip, mac)) = msg.claim() {
            self.snoop(now, ip, mac, out);
        }
        match msg.repr {
            NdiscRepr::NeighborSolicit { target_addr, lladdr } if self.is_gateway(&target_addr) => {
                // RFC 4861 7.2.4: solicited and unicast to the solicitor, or (DAD probe for our
                // address) to all-nodes so the prober sees the address is taken.
                let (dst_ip, dst_mac, flags) = if msg.src.is_unspecified() {
                    (crate::nd::ALL_NODES, EthernetAddress([0x33, 0x33, 0, 0, 0, 1]), NeighborFlags::ROUTER | NeighborFlags::OVERRIDE)
                } else {
                    (msg.src, lladdr.unwrap_or(msg.eth_src), NeighborFlags::ROUTER | NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE)
                };
                let na = NdiscRepr::NeighborAdvert { flags, target_addr, lladdr: Some(self.gateway_mac) };
                out.push_back(ndisc_frame(&na, self.gateway_mac, target_addr, dst_mac, dst_ip, vlan_id));
                counters.gateway_nd_replies += 1;
            }
            _ => counters.nd_kept_local += 1,
        }
        Routed::Consumed
    }

    /// Learn a local container's address (inside our IPv6 subnet only, never the gateway's).
    fn snoop(&mut self, now: Instant, ip: Ipv6Addr, mac: EthernetAddress, out: &mut VecDeque<Vec<u8>>) {
        if !self.spec.subnet.contains(&ip) || self.is_gateway(&ip) || !mac.is_unicast() {
            return;
        }
        out.extend(self.neighbours.learn(now, ip, mac, self.gateway_mac));
    }

    fn deliver_local(
        &mut self,
        now: Instant,
        frame: &mut [u8],
        dst: Ipv6Addr,
        out: &mut VecDeque<Vec<u8>>,
        counters: &mut Counters,
    ) -> Routed {
        match self.neighbours.resolve(now, dst, frame, self.gateway_mac) {
            Err(reason) => return Routed::Drop(reason),
            Ok(Resolution::Known) => return Routed::ToTap,
            Ok(Resolution::Held) => return Routed::Consumed,
            Ok(Resolution::HeldFirst) => {}
        }
        counters.nd_solicits_sent += 1;
        let (group, group_mac) = solicited_node(dst);
        let ns = NdiscRepr::NeighborSolicit { target_addr: dst, lladdr: Some(self.gateway_mac) };
        out.push_back(ndisc_frame(&ns, self.gateway_mac, self.spec.gateway_ip, group_mac, group, None));
        Routed::Consumed
    }

    /// Answer an echo request to a gateway address; anything else to it is dropped.
    fn answer_echo(
        &mut self,
        frame: &[u8],
        l3: usize,
        src_mac: EthernetAddress,
        out: &mut VecDeque<Vec<u8>>,
        counters: &mut Counters,
    ) -> Routed {
        let ip = Ipv6Packet::new_unchecked(&frame[l3..]);
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let body = ip.payload();
        let valid = ip.next_header() == protocol::ICMPV6
            && Icmpv6Packet::new_checked(body).is_ok_and(|p| p.msg_type() == message_type::ECHO_REQUEST && p.verify_checksum(&src, &dst))
            && body.len() >= 8
            && !src.is_unspecified()
            && !src.is_multicast();
        if !valid {
            return Routed::Drop(DropReason::RoutedForGateway);
        }
        let mut reply = self.ipv6_frame(src_mac, dst, src, body.len());
        let icmp = &mut reply[14 + HEADER_LEN..];
        icmp.copy_from_slice(body);
        icmp[0] = message_type::ECHO_REPLY;
        Icmpv6Packet::new_unchecked(icmp).fill_checksum(&dst, &src);
        counters.gateway_echo_replies += 1;
        out.push_back(reply);
        Routed::Consumed
    }

    /// An Ethernet + IPv6 frame from the gateway MAC and `src` to `dst_mac`/`dst` with room for
    /// `payload_len` bytes of ICMPv6.
    fn ipv6_frame(&self, dst_mac: EthernetAddress, src: Ipv6Addr, dst: Ipv6Addr, payload_len: usize) -> Vec<u8> {
        let eth = EthernetRepr { src_addr: self.gateway_mac, dst_addr: dst_mac, vlan_id: None, ethertype: EtherType::IPV6 };
        let ip = Ipv6Repr { src_addr: src, dst_addr: dst, next_header: protocol::ICMPV6, payload_len, hop_limit: HOP_LIMIT };
        let mut frame = vec![0u8; eth.buffer_len() + HEADER_LEN + payload_len];
        let mut e = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.emit(&mut e);
        ip.emit(&mut Ipv6Packet::new_unchecked(e.payload_mut()));
        frame
    }

    #[allow(clippy::too_many_arguments)]
    fn icmp_error(
        &mut self,
        now: Instant,
        frame: &[u8],
        l3: usize,
        src_mac: EthernetAddress,
        kind: Icmp6Error,
        out: &mut VecDeque<Vec<u8>>,
        counters: &mut Counters,
    ) {
        let ip = Ipv6Packet::new_unchecked(&frame[l3..]);
        // Never answer an ICMPv6 error (types below 128, RFC 4443 2.4(e)); extension headers
        // before it are not walked.
        if ip.next_header() == protocol::ICMPV6 && ip.payload().first().is_some_and(|&t| t < 128) {
            counters.icmp6_errors_suppressed += 1;
            return;
        }
        if now.saturating_duration_since(self.icmp_budget.0) >= Duration::from_secs(1) {
            self.icmp_budget = (now, 0);
        }
        if self.icmp_budget.1 >= ICMP_PER_SEC {
            counters.icmp6_errors_suppressed += 1;
            return;
        }
        self.icmp_budget.1 += 1;
        let whole = (HEADER_LEN + usize::from(ip.payload_len())).min(frame.len() - l3);
        let quoted = whole.min(IPV6_MIN_MTU - HEADER_LEN - 8);
        let src = ip.src_addr();
        let mut reply = self.ipv6_frame(src_mac, self.spec.gateway_ip, src, 8 + quoted);
        let icmp = &mut reply[14 + HEADER_LEN..];
        icmp[0] = match kind {
            Icmp6Error::HopLimit => TIME_EXCEEDED,
            Icmp6Error::NoRoute => DST_UNREACHABLE,
        };
        icmp[8..].copy_from_slice(&frame[l3..l3 + quoted]);
        Icmpv6Packet::new_unchecked(icmp).fill_checksum(&self.spec.gateway_ip, &src);
        counters.icmp6_errors_sent += 1;
        out.push_back(reply);
    }

    /// Expire stale neighbours and packets that waited too long for an NA. Returns packets dropped.
    pub fn handle_timeout(&mut self, now: Instant) -> u64 {
        self.neighbours.handle_timeout(now)
    }

    /// When [`Router6::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.neighbours.poll_timeout()
    }
}

#[cfg(test)]
mod tests;
