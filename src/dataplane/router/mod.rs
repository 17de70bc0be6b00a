//! Routed overlay mode: vxswitch is the containers' gateway on the TAP.
//!
//! Each host owns one subnet (e.g. 198.19.1.0/24 of a 198.19.0.0/16 cluster range) and answers
//! ARP for its gateway address (the first address by default) with an *anycast gateway MAC*:
//! the same virtual MAC on every host of the network (derived from the VNI unless configured).
//! A container sends off-subnet traffic to that MAC; vxswitch then
//! 1. decrements the TTL (answering ICMP time exceeded at 1) and looks the destination up in the
//!    longest-prefix-match table of per-host subnets (answering ICMP net unreachable on a miss);
//! 2. sends the packet over VXLAN to the owning host, inner Ethernet from and to the gateway MAC;
//! 3. the owning host sees its own gateway MAC, resolves the destination container's MAC from its
//!    local neighbour table (snooped from the TAP, or by sending an ARP request from the gateway
//!    while holding a few packets), rewrites the Ethernet header and writes the frame to its TAP.
//!
//! The TTL is decremented once per overlay crossing (one logical router, like an asymmetric
//! anycast gateway), not once per host. No broadcast crosses hosts in this mode: ARP stays local.
//!
//! A dual-stack network adds an IPv6 subnet per host; its half of the gateway (Neighbour
//! Discovery instead of ARP, ICMPv6, the hop limit) is [`v6`]. Both halves share the route table
//! (one longest-prefix table per family) and the anycast gateway MAC.

mod neighbours;
pub mod v6;

use std::collections::VecDeque;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ipnet::{Ipv4Net, Ipv6Net};

use super::counters::{Counters, DropReason};
use super::routes::RouteTable;
use crate::arp::{arp_frame, reply_frame};
use crate::wire::arp::{ArpOperation, ArpRepr};
use crate::wire::ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
use crate::wire::icmpv4::{self, Icmpv4DstUnreachable, Icmpv4Packet, Icmpv4Repr, Icmpv4TimeExceeded};
use crate::wire::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
use crate::wire::vxlan::Vni;
use neighbours::{Neighbours, Resolution};
pub use neighbours::{NEIGHBOUR_TTL, RESOLVE_TIMEOUT};
use v6::Router6;

/// ICMP errors sent per second per network (RFC 1812 asks routers to rate-limit them).
const ICMP_PER_SEC: u32 = 100;

/// The anycast gateway MAC for `vni`: locally administered, unicast, `02:76:78:VV:VV:VV`.
pub fn default_gateway_mac(vni: Vni) -> EthernetAddress {
    let v = vni.get().to_be_bytes();
    EthernetAddress([0x02, 0x76, 0x78, v[1], v[2], v[3]])
}

/// The subnet of a routed network whose host holds no lease yet: matches no container.
pub const UNLEASED: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::UNSPECIFIED, 32);

/// Configuration of a routed network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedSpec {
    /// This host's container subnet.
    pub subnet: Ipv4Net,
    /// The gateway address containers use.
    pub gateway_ip: Ipv4Addr,
    /// The anycast gateway MAC.
    pub gateway_mac: EthernetAddress,
    /// This host's IPv6 subnet and gateway next to the IPv4 ones (dual stack), when configured.
    pub v6: Option<RoutedSpec6>,
}

/// The IPv6 half of a dual-stack routed network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutedSpec6 {
    /// This host's IPv6 container subnet.
    pub subnet: Ipv6Net,
    /// The IPv6 gateway address containers use (they may also use the link-local address derived
    /// from the gateway MAC).
    pub gateway_ip: Ipv6Addr,
}

/// What to do with a frame after routing.
#[derive(Debug, PartialEq, Eq)]
pub enum Routed {
    /// Encapsulate the (rewritten) frame to this VTEP.
    ToVtep(std::net::IpAddr),
    /// Write the (rewritten) frame to the TAP.
    ToTap,
    /// Handled here (answer queued, or held until ARP resolves).
    Consumed,
    /// Dropped for this reason.
    Drop(DropReason),
}

/// State of one routed network.
#[derive(Debug)]
pub struct Router {
    spec: RoutedSpec,
    routes: RouteTable,
    neighbours: Neighbours<Ipv4Addr>,
    icmp_budget: (Instant, u32),
    /// The IPv6 half (dual stack), when the network has an IPv6 subnet.
    v6: Option<Router6>,
}

impl Router {
    /// A router with no routes yet.
    pub fn new(spec: RoutedSpec, now: Instant) -> Self {
        let v6 = spec.v6.map(|s| Router6::new(s, spec.gateway_mac, now));
        Router { spec, routes: RouteTable::new(), neighbours: Neighbours::default(), icmp_budget: (now, 0), v6 }
    }

    /// The configuration.
    pub fn spec(&self) -> &RoutedSpec {
        &self.spec
    }

    /// Take `subnet` with gateway `gateway_ip` as this host's (a leased subnet held or moved):
    /// the routes stay, neighbours and held packets of the old subnet are forgotten.
    pub fn set_subnet(&mut self, subnet: Ipv4Net, gateway_ip: Ipv4Addr) {
        if (self.spec.subnet, self.spec.gateway_ip) != (subnet, gateway_ip) {
            self.spec.subnet = subnet;
            self.spec.gateway_ip = gateway_ip;
            self.neighbours.clear();
        }
    }

    /// The per-host subnet routes.
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// Mutable access to the routes (control-plane updates).
    pub fn routes_mut(&mut self) -> &mut RouteTable {
        &mut self.routes
    }

    /// A known local neighbour's MAC.
    pub fn neighbour(&self, ip: Ipv4Addr) -> Option<EthernetAddress> {
        self.neighbours.get(ip)
    }

    /// The IPv6 half, on a dual-stack network.
    pub fn v6(&self) -> Option<&Router6> {
        self.v6.as_ref()
    }

    /// A frame from the local TAP, whose Ethernet header (and ARP payload, when it parsed) the
    /// switch has already parsed. `out` collects frames to write to the TAP.
    // hot path
    pub fn from_tap(
        &mut self,
        now: Instant,
        frame: &mut [u8],
        eth: &EthernetRepr,
        arp: Option<&ArpRepr>,
        out: &mut VecDeque<Vec<u8>>,
        counters: &mut Counters,
    ) -> Routed {
        match eth.ethertype {
            EtherType::ARP => match arp {
                Some(arp) => self.arp_from_tap(now, arp, out, counters),
                None => Routed::Drop(DropReason::TapMalformed),
            },
            EtherType::IPV4 if eth.dst_addr == self.spec.gateway_mac => {
                self.route_from_tap(now, frame, eth.buffer_len(), eth.src_addr, out, counters)
            }
            EtherType::IPV6 => match self.v6.as_mut() {
                Some(v6) => v6.from_tap(now, frame, eth, &self.routes, out, counters),
                None => Routed::Drop(DropReason::RoutedNotForGateway),
            },
            _ => Routed::Drop(DropReason::RoutedNotForGateway),
        }
    }

    fn arp_from_tap(&mut self, now: Instant, arp: &ArpRepr, out: &mut VecDeque<Vec<u8>>, counters: &mut Counters) -> Routed {
        self.snoop(now, arp.source_protocol_addr, arp.source_hardware_addr, out);
        if arp.operation == ArpOperation::Request && arp.target_protocol_addr == self.spec.gateway_ip && !arp.is_gratuitous() {
            out.push_back(reply_frame(arp, self.spec.gateway_mac, None));
            counters.arp_replies += 1;
            return Routed::Consumed;
        }
        // Everything else is between local containers (the bridge delivers it) or an answer we
        // already snooped: ARP never leaves the host in routed mode.
        counters.arp_kept_local += 1;
        Routed::Consumed
    }

    /// Learn a local container's address (only inside our subnet, never the gateway itself).
    fn snoop(&mut self, now: Instant, ip: Ipv4Addr, mac: EthernetAddress, out: &mut VecDeque<Vec<u8>>) {
        if !self.spec.subnet.contains(&ip) || ip == self.spec.gateway_ip || !mac.is_unicast() {
            return;
        }
        out.extend(self.neighbours.learn(now, ip, mac, self.spec.gateway_mac));
    }

    fn route_from_tap(
        &mut self,
        now: Instant,
        frame: &mut [u8],
        l3: usize,
        src_mac: EthernetAddress,
        out: &mut VecDeque<Vec<u8>>,
        counters: &mut Counters,
    ) -> Routed {
        let Ok(ip) = Ipv4Packet::new_checked(&frame[l3..]) else { return Routed::Drop(DropReason::RoutedMalformed) };
        if !ip.verify_checksum() {
            return Routed::Drop(DropReason::RoutedMalformed);
        }
        let (src, dst, ttl) = (ip.src_addr(), ip.dst_addr(), ip.ttl());
        self.snoop(now, src, src_mac, out);
        if dst == self.spec.gateway_ip {
            return self.answer_gateway_echo(now, frame, l3, src_mac, out, counters);
        }
        if ttl <= 1 {
            counters.drop(DropReason::TtlExpired);
            self.icmp_error(now, frame, l3, src_mac, IcmpError::TtlExpired, out);
            return Routed::Consumed;
        }
        let local = self.spec.subnet.contains(&dst);
        let vtep = if local { None } else { self.routes.lookup(dst) };
        if !local && vtep.is_none() {
            counters.drop(DropReason::NoRoute);
            self.icmp_error(now, frame, l3, src_mac, IcmpError::NetUnreachable, out);
            return Routed::Consumed;
        }
        decrement_ttl(&mut frame[l3..]);
        counters.routed_packets += 1;
        match vtep {
            Some(vtep) => {
                let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
                eth.set_src_addr(self.spec.gateway_mac);
                eth.set_dst_addr(self.spec.gateway_mac);
                Routed::ToVtep(vtep)
            }
            None => self.deliver_local(now, frame, dst, out, counters),
        }
    }

    /// A routed frame from the overlay (inner Ethernet to the anycast gateway MAC), whose
    /// Ethernet header the switch has already parsed.
    // hot path
    pub fn from_underlay(
        &mut self,
        now: Instant,
        frame: &mut [u8],
        eth: &EthernetRepr,
        out: &mut VecDeque<Vec<u8>>,
        counters: &mut Counters,
    ) -> Routed {
        if eth.dst_addr != self.spec.gateway_mac {
            return Routed::Drop(DropReason::RoutedNotForGateway);
        }
        match (eth.ethertype, self.v6.as_mut()) {
            (EtherType::IPV4, _) => {}
            (EtherType::IPV6, Some(v6)) => return v6.from_underlay(now, frame, eth, out, counters),
            _ => return Routed::Drop(DropReason::RoutedNotForGateway),
        }
        let Ok(ip) = Ipv4Packet::new_checked(&frame[eth.buffer_len()..]) else { return Routed::Drop(DropReason::RoutedMalformed) };
        let dst = ip.dst_addr();
        if !self.spec.subnet.contains(&dst) || dst == self.spec.gateway_ip {
            return Routed::Drop(DropReason::RoutedMisdelivered);
        }
        self.deliver_local(now, frame, dst, out, counters)
    }

    fn deliver_local(
        &mut self,
        now: Instant,
        frame: &mut [u8],
        dst: Ipv4Addr,
        out: &mut VecDeque<Vec<u8>>,
        counters: &mut Counters,
    ) -> Routed {
        match self.neighbours.resolve(now, dst, frame, self.spec.gateway_mac) {
            Err(reason) => return Routed::Drop(reason),
            Ok(Resolution::Known) => return Routed::ToTap,
            Ok(Resolution::Held) => return Routed::Consumed,
            Ok(Resolution::HeldFirst) => {}
        }
        counters.arp_requests_sent += 1;
        let request = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: self.spec.gateway_mac,
            source_protocol_addr: self.spec.gateway_ip,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: dst,
        };
        out.push_back(arp_frame(&request, EthernetAddress::BROADCAST, None));
        Routed::Consumed
    }

    fn answer_gateway_echo(
        &mut self,
        now: Instant,
        frame: &[u8],
        l3: usize,
        src_mac: EthernetAddress,
        out: &mut VecDeque<Vec<u8>>,
        counters: &mut Counters,
    ) -> Routed {
        let ip = Ipv4Packet::new_unchecked(&frame[l3..]);
        let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) else { return Routed::Drop(DropReason::RoutedForGateway) };
        let Ok(Icmpv4Repr::EchoRequest { ident, seq_no, data }) = Icmpv4Repr::parse(&icmp) else {
            return Routed::Drop(DropReason::RoutedForGateway);
        };
        let reply = Icmpv4Repr::EchoReply { ident, seq_no, data };
        let _ = now;
        out.push_back(self.icmp_frame(src_mac, ip.src_addr(), &reply));
        counters.gateway_echo_replies += 1;
        Routed::Consumed
    }

    fn icmp_error(
        &mut self,
        now: Instant,
        frame: &[u8],
        l3: usize,
        src_mac: EthernetAddress,
        kind: IcmpError,
        out: &mut VecDeque<Vec<u8>>,
    ) {
        let ip = Ipv4Packet::new_unchecked(&frame[l3..]);
        // Never answer an ICMP error with an error (RFC 1122 3.2.2), nor a non-first fragment.
        if ip.frag_offset() != 0 {
            return;
        }
        if ip.protocol() == protocol::ICMP {
            if let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) {
                if !matches!(icmp.msg_type(), icmpv4::message_type::ECHO_REQUEST | icmpv4::message_type::ECHO_REPLY) {
                    return;
                }
            }
        }
        if now.saturating_duration_since(self.icmp_budget.0) >= Duration::from_secs(1) {
            self.icmp_budget = (now, 0);
        }
        if self.icmp_budget.1 >= ICMP_PER_SEC {
            return;
        }
        self.icmp_budget.1 += 1;
        let total = usize::from(ip.total_len()).min(frame.len() - l3);
        let invoking = icmpv4::quote(&frame[l3..l3 + total]);
        let repr = match kind {
            IcmpError::TtlExpired => Icmpv4Repr::TimeExceeded { reason: Icmpv4TimeExceeded::TtlExpired, invoking },
            IcmpError::NetUnreachable => Icmpv4Repr::DstUnreachable { reason: Icmpv4DstUnreachable::NetUnreachable, invoking },
        };
        out.push_back(self.icmp_frame(src_mac, ip.src_addr(), &repr));
    }

    fn icmp_frame(&self, dst_mac: EthernetAddress, dst_ip: Ipv4Addr, icmp: &Icmpv4Repr<'_>) -> Vec<u8> {
        let eth = EthernetRepr { src_addr: self.spec.gateway_mac, dst_addr: dst_mac, vlan_id: None, ethertype: EtherType::IPV4 };
        let ip = Ipv4Repr {
            src_addr: self.spec.gateway_ip,
            dst_addr: dst_ip,
            protocol: protocol::ICMP,
            payload_len: icmp.buffer_len(),
            ttl: 64,
        };
        let mut frame = vec![0u8; (eth.buffer_len() + 20 + icmp.buffer_len()).max(60)];
        let mut e = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.emit(&mut e);
        let mut p = Ipv4Packet::new_unchecked(e.payload_mut());
        ip.emit(&mut p);
        icmp.emit(&mut Icmpv4Packet::new_unchecked(&mut p.payload_mut()[..icmp.buffer_len()]));
        frame
    }

    /// Expire stale neighbours and packets that waited too long for ARP (or NDP). Returns packets
    /// dropped.
    pub fn handle_timeout(&mut self, now: Instant) -> u64 {
        self.neighbours.handle_timeout(now) + self.v6.as_mut().map_or(0, |v6| v6.handle_timeout(now))
    }

    /// When [`Router::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let v6 = self.v6.as_ref().and_then(Router6::poll_timeout);
        self.neighbours.poll_timeout().into_iter().chain(v6).min()
    }
}

#[derive(Debug, Clone, Copy)]
enum IcmpError {
    TtlExpired,
    NetUnreachable,
}

/// Decrement the IPv4 TTL and patch the header checksum incrementally (RFC 1624).
// hot path
fn decrement_ttl(ip: &mut [u8]) {
    let mut ip = Ipv4Packet::new_unchecked(ip);
    let (ttl, proto) = (ip.ttl(), ip.protocol());
    ip.set_ttl(ttl - 1);
    // The TTL is the high byte of the 16-bit word it shares with the protocol:
    // HC' = ~(~HC + ~m + m').
    let old = u16::from_be_bytes([ttl, proto]);
    let new = u16::from_be_bytes([ttl - 1, proto]);
    let mut sum = u32::from(!ip.checksum()) + u32::from(!old) + u32::from(new);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    ip.set_checksum(!(sum as u16));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_decrement_keeps_the_checksum_valid() {
        for ttl in [2u8, 64, 255] {
            let repr = Ipv4Repr {
                src_addr: Ipv4Addr::new(198, 19, 1, 10),
                dst_addr: Ipv4Addr::new(198, 19, 2, 10),
                protocol: protocol::UDP,
                payload_len: 8,
                ttl,
            };
            let mut buf = vec![0u8; 28];
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
            decrement_ttl(&mut buf);
            let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
            assert_eq!(p.ttl(), ttl - 1);
            assert!(p.verify_checksum(), "ttl {ttl}");
        }
    }
}
