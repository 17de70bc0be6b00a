//! The IPv6 gateway on its own: Neighbour Discovery for its two addresses, echo, the hop limit,
//! ICMPv6 errors and their limits, and resolving a local container with a solicitation.
//! Frames are built with etherparse (echo, UDP) and [`crate::nd::ndisc_frame`] (NS/NA).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use etherparse::{Icmpv6Type, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

use super::*;
use crate::dataplane::router::{RoutedSpec, Router, RESOLVE_TIMEOUT};
use crate::wire::icmpv6::NeighborFlags;

const GW_MAC: EthernetAddress = EthernetAddress([0x02, 0x76, 0x78, 0x00, 0x03, 0xe8]);
const A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 1, 10]);
const B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 1, 11]);
const VTEP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn gw6() -> Ipv6Addr {
    ip6("fd00:42:0:1::1")
}

fn router(now: Instant) -> Router {
    let spec = RoutedSpec {
        subnet: "198.19.1.0/24".parse().unwrap(),
        gateway_ip: Ipv4Addr::new(198, 19, 1, 1),
        gateway_mac: GW_MAC,
        v6: Some(RoutedSpec6 { subnet: "fd00:42:0:1::/64".parse().unwrap(), gateway_ip: gw6() }),
    };
    let mut r = Router::new(spec, now);
    r.routes_mut().insert("fd00:42:0:2::/64".parse::<ipnet::Ipv6Net>().unwrap(), VTEP);
    r
}

fn echo(src_mac: EthernetAddress, dst_mac: EthernetAddress, src: Ipv6Addr, dst: Ipv6Addr, hops: u8) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(src_mac.0, dst_mac.0)
        .ipv6(src.octets(), dst.octets(), hops)
        .icmpv6_echo_request(0x4242, 7)
        .write(&mut f, b"vxswitch ping6")
        .unwrap();
    f
}

fn udp(src: Ipv6Addr, dst: Ipv6Addr, hops: u8) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(A.0, GW_MAC.0).ipv6(src.octets(), dst.octets(), hops).udp(4000, 5000).write(&mut f, &[0x55; 100]).unwrap();
    f
}

struct Run {
    verdict: Routed,
    frame: Vec<u8>,
    out: VecDeque<Vec<u8>>,
}

fn from_tap(r: &mut Router, now: Instant, frame: &[u8], c: &mut Counters) -> Run {
    let mut frame = frame.to_vec();
    let eth = EthernetRepr::parse(&EthernetFrame::new_checked(&frame[..]).unwrap()).unwrap();
    let mut out = VecDeque::new();
    let verdict = r.from_tap(now, &mut frame, &eth, None, &mut out, c);
    Run { verdict, frame, out }
}

fn nd_of(frame: &[u8]) -> NdMessage {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    crate::nd::parse(eth.src_addr(), eth.payload()).expect("valid ND")
}

#[test]
fn link_local_and_solicited_node_addresses() {
    assert_eq!(link_local(GW_MAC), ip6("fe80::76:78ff:fe00:3e8"), "modified EUI-64: U/L bit flipped, ff:fe inserted");
    assert_eq!(
        solicited_node(ip6("fd00:42:0:1::a:bcde")),
        (ip6("ff02::1:ff0a:bcde"), EthernetAddress([0x33, 0x33, 0xff, 0x0a, 0xbc, 0xde]))
    );
}

#[test]
fn solicitations_for_both_gateway_addresses_are_answered_as_a_router() {
    let now = Instant::now();
    let mut r = router(now);
    let mut c = Counters::default();
    let a = ip6("fd00:42:0:1::10");
    for target in [gw6(), link_local(GW_MAC)] {
        let (group, group_mac) = solicited_node(target);
        let ns = ndisc_frame(&NdiscRepr::NeighborSolicit { target_addr: target, lladdr: Some(A) }, A, a, group_mac, group, None);
        let run = from_tap(&mut r, now, &ns, &mut c);
        assert_eq!(run.verdict, Routed::Consumed);
        assert_eq!(run.out.len(), 1, "one advertisement for {target}");
        let eth = EthernetFrame::new_checked(&run.out[0][..]).unwrap();
        assert_eq!((eth.src_addr(), eth.dst_addr()), (GW_MAC, A));
        let na = nd_of(&run.out[0]);
        assert_eq!((na.src, na.dst), (target, a));
        let flags = NeighborFlags::ROUTER | NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE;
        assert_eq!(na.repr, NdiscRepr::NeighborAdvert { flags, target_addr: target, lladdr: Some(GW_MAC) });
    }
    assert_eq!(c.gateway_nd_replies, 2);
    assert_eq!(r.v6().unwrap().neighbour(a), Some(A), "the solicitor is learned");
    // A DAD probe for the gateway address is defended to all-nodes; one for a container's is not ours.
    let (group, group_mac) = solicited_node(gw6());
    let dad =
        ndisc_frame(&NdiscRepr::NeighborSolicit { target_addr: gw6(), lladdr: None }, B, Ipv6Addr::UNSPECIFIED, group_mac, group, None);
    let run = from_tap(&mut r, now, &dad, &mut c);
    let na = nd_of(&run.out[0]);
    assert_eq!(na.dst, crate::nd::ALL_NODES);
    assert!(matches!(na.repr, NdiscRepr::NeighborAdvert { flags, .. } if !flags.contains(NeighborFlags::SOLICITED)));
    let (group, group_mac) = solicited_node(ip6("fd00:42:0:1::11"));
    let other =
        ndisc_frame(&NdiscRepr::NeighborSolicit { target_addr: ip6("fd00:42:0:1::11"), lladdr: Some(A) }, A, a, group_mac, group, None);
    let run = from_tap(&mut r, now, &other, &mut c);
    assert_eq!((run.verdict, run.out.len(), c.nd_kept_local), (Routed::Consumed, 0, 1), "between local containers: kept local");
}

#[test]
fn echo_requests_to_the_gateway_are_answered() {
    let now = Instant::now();
    let mut r = router(now);
    let mut c = Counters::default();
    let a = ip6("fd00:42:0:1::10");
    for dst in [gw6(), link_local(GW_MAC)] {
        let run = from_tap(&mut r, now, &echo(A, GW_MAC, a, dst, 64), &mut c);
        assert_eq!(run.verdict, Routed::Consumed);
        let p = SlicedPacket::from_ethernet(&run.out[0]).unwrap();
        let Some(NetSlice::Ipv6(ip)) = &p.net else { panic!("ipv6") };
        assert_eq!((ip.header().source_addr(), ip.header().destination_addr()), (dst, a));
        let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else { panic!("icmpv6") };
        assert!(matches!(icmp.icmp_type(), Icmpv6Type::EchoReply(h) if h.id == 0x4242 && h.seq == 7));
        assert_eq!(icmp.payload(), b"vxswitch ping6");
        assert!(icmp.is_checksum_valid(dst.octets(), a.octets()));
    }
    assert_eq!(c.gateway_echo_replies, 2);
    // Anything else for the gateway is dropped.
    let run = from_tap(&mut r, now, &udp(a, gw6(), 64), &mut c);
    assert_eq!(run.verdict, Routed::Drop(DropReason::RoutedForGateway));
}

#[test]
fn hop_limit_is_decremented_and_time_exceeded_answered_at_one() {
    let now = Instant::now();
    let mut r = router(now);
    let mut c = Counters::default();
    let (a, far) = (ip6("fd00:42:0:1::10"), ip6("fd00:42:0:2::20"));
    let run = from_tap(&mut r, now, &udp(a, far, 64), &mut c);
    assert_eq!(run.verdict, Routed::ToVtep(VTEP));
    let eth = EthernetFrame::new_checked(&run.frame[..]).unwrap();
    assert_eq!((eth.src_addr(), eth.dst_addr()), (GW_MAC, GW_MAC), "inner frame from and to the anycast gateway");
    assert_eq!(Ipv6Packet::new_checked(eth.payload()).unwrap().hop_limit(), 63);
    assert_eq!(c.routed_packets, 1);
    let expiring = udp(a, far, 1);
    let run = from_tap(&mut r, now, &expiring, &mut c);
    assert_eq!(run.verdict, Routed::Consumed);
    assert_eq!(c.drops(DropReason::TtlExpired), 1);
    let p = SlicedPacket::from_ethernet(&run.out[0]).unwrap();
    let Some(NetSlice::Ipv6(ip)) = &p.net else { panic!("ipv6") };
    assert_eq!((ip.header().source_addr(), ip.header().destination_addr()), (gw6(), a));
    let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else { panic!("icmpv6") };
    assert!(matches!(icmp.icmp_type(), Icmpv6Type::TimeExceeded(etherparse::icmpv6::TimeExceededCode::HopLimitExceeded)));
    assert_eq!(icmp.payload(), &expiring[14..], "the whole (small) packet is quoted");
    assert!(icmp.is_checksum_valid(gw6().octets(), a.octets()));
}

#[test]
fn a_route_miss_is_unreachable_and_errors_are_limited() {
    let now = Instant::now();
    let mut r = router(now);
    let mut c = Counters::default();
    let (a, nowhere) = (ip6("fd00:42:0:1::10"), ip6("fd00:99::1"));
    let run = from_tap(&mut r, now, &udp(a, nowhere, 64), &mut c);
    assert_eq!(run.verdict, Routed::Consumed);
    assert_eq!(c.drops(DropReason::NoRoute), 1);
    let p = SlicedPacket::from_ethernet(&run.out[0]).unwrap();
    let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else { panic!("icmpv6") };
    assert!(matches!(icmp.icmp_type(), Icmpv6Type::DestinationUnreachable(etherparse::icmpv6::DestUnreachableCode::NoRoute)));
    // An ICMPv6 error is never answered with one.
    let error = run.out[0].clone();
    let mut bounced = error.clone();
    bounced[..6].copy_from_slice(&GW_MAC.0);
    bounced[6..12].copy_from_slice(&A.0);
    Ipv6Packet::new_unchecked(&mut bounced[14..]).set_dst_addr(nowhere);
    let run = from_tap(&mut r, now, &bounced, &mut c);
    assert!(run.out.is_empty(), "no error about an error");
    // At most ICMP_PER_SEC a second.
    let sent: usize = (0..2 * ICMP_PER_SEC).map(|_| from_tap(&mut r, now, &udp(a, nowhere, 64), &mut c).out.len()).sum();
    assert_eq!(sent as u32, ICMP_PER_SEC - 1, "one was sent above");
    assert_eq!(c.icmp6_errors_sent, u64::from(ICMP_PER_SEC));
    let later = now + Duration::from_secs(1);
    assert_eq!(from_tap(&mut r, later, &udp(a, nowhere, 64), &mut c).out.len(), 1, "a new second, a new budget");
}

#[test]
fn link_local_and_multicast_are_never_routed() {
    let now = Instant::now();
    let mut r = router(now);
    let mut c = Counters::default();
    let a = ip6("fd00:42:0:1::10");
    for (src, dst) in [(a, ip6("fe80::99")), (ip6("fe80::10"), ip6("fd00:42:0:2::20")), (a, ip6("ff0e::1"))] {
        let run = from_tap(&mut r, now, &udp(src, dst, 64), &mut c);
        assert_eq!(run.verdict, Routed::Drop(DropReason::Routed6Scope), "{src} -> {dst}");
        assert!(run.out.is_empty());
    }
    // Multicast to a group MAC (an MLD report, say) stays on the host without counting as a drop.
    let mut mld = udp(a, ip6("ff02::16"), 1);
    mld[..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 0x16]);
    let run = from_tap(&mut r, now, &mld, &mut c);
    assert_eq!((run.verdict, c.ipv6_multicast_kept_local), (Routed::Consumed, 1));
}

#[test]
fn a_local_container_is_solicited_and_held_packets_follow_its_advertisement() {
    let now = Instant::now();
    let mut r = router(now);
    let mut c = Counters::default();
    let (far, b) = (ip6("fd00:42:0:2::20"), ip6("fd00:42:0:1::11"));
    // From the overlay, for a container this host has not seen yet.
    let mut frame = udp(far, b, 63);
    frame[..6].copy_from_slice(&GW_MAC.0);
    frame[6..12].copy_from_slice(&GW_MAC.0);
    let eth = EthernetRepr::parse(&EthernetFrame::new_checked(&frame[..]).unwrap()).unwrap();
    let mut out = VecDeque::new();
    assert_eq!(r.from_underlay(now, &mut frame.clone(), &eth, &mut out, &mut c), Routed::Consumed);
    let ns = nd_of(&out[0]);
    assert_eq!((ns.src, ns.dst), (gw6(), solicited_node(b).0));
    assert_eq!(ns.repr, NdiscRepr::NeighborSolicit { target_addr: b, lladdr: Some(GW_MAC) });
    assert_eq!(c.nd_solicits_sent, 1);
    assert!(r.poll_timeout().is_some(), "a packet waits for the answer");
    // The container answers; the held packet goes out to its MAC.
    let na = NdiscRepr::NeighborAdvert { flags: NeighborFlags::SOLICITED, target_addr: b, lladdr: Some(B) };
    let run = from_tap(&mut r, now, &ndisc_frame(&na, B, b, GW_MAC, gw6(), None), &mut c);
    assert_eq!(run.verdict, Routed::Consumed);
    let held = &run.out[0];
    assert_eq!(&held[..12], &[B.0, GW_MAC.0].concat()[..], "to B, from the gateway");
    assert_eq!(&held[12..], &frame[12..]);
    // Known now: the next one is delivered at once.
    let mut again = frame.clone();
    assert_eq!(r.from_underlay(now, &mut again, &eth, &mut VecDeque::new(), &mut c), Routed::ToTap);
    // A packet for an unknown container that never answers is dropped after the timeout.
    let mut lost = udp(far, ip6("fd00:42:0:1::99"), 63);
    lost[..6].copy_from_slice(&GW_MAC.0);
    assert_eq!(r.from_underlay(now, &mut lost, &eth, &mut VecDeque::new(), &mut c), Routed::Consumed);
    assert_eq!(r.handle_timeout(now + RESOLVE_TIMEOUT), 1);
    // Misdelivered: not in this host's subnet.
    let mut wrong = udp(far, ip6("fd00:42:0:3::1"), 63);
    wrong[..6].copy_from_slice(&GW_MAC.0);
    assert_eq!(r.from_underlay(now, &mut wrong, &eth, &mut VecDeque::new(), &mut c), Routed::Drop(DropReason::RoutedMisdelivered));
}
