//! Path MTU on the simulator (virtual time, no root): the "too big" answer on the TAP (from the
//! destination on an overlay network, from the gateway on a routed one), its rate limit, no
//! answer to ICMP errors or to IPv4 without DF, MSS clamping both ways, and the per-peer path MTU
//! the kernel reports: lowered at once, forgotten after 10 minutes, raised when reported back.

#[path = "common/two_hosts.rs"]
mod two_hosts;

use std::net::Ipv4Addr;
use std::time::Duration;

use etherparse::{Icmpv4Type, Icmpv6Type, NetSlice, PacketBuilder, SlicedPacket, TcpOptionElement, TransportSlice};
use vxswitch::config::Config;
use vxswitch::dataplane::pmtu::{ICMP_PER_SEC, PEER_MTU_EXPIRY};
use vxswitch::dataplane::{default_gateway_mac, DropReason};
use vxswitch::sim::Sim;
use vxswitch::wire::vxlan::Vni;

const VNI: Vni = Vni::new_const(1042);
const A: [u8; 6] = [2, 0, 0, 0, 1, 10];
const B: [u8; 6] = [2, 0, 0, 0, 2, 10];

fn ul(i: usize) -> std::net::IpAddr {
    Ipv4Addr::new(198, 18, 0, i as u8 + 1).into()
}

/// Two hosts, one network each (`extra` goes into the network section).
fn pair(routed: bool, esp: bool, extra: &str) -> Sim {
    let configs: Vec<Config> = (0..2)
        .map(|i| {
            let k = 1 - i;
            let key = if esp { format!(", public_key = \"{}\"", "11".repeat(32)) } else { String::new() };
            let (mode, peer) = if routed {
                (
                    format!("mode = \"routed\"\nsubnet = \"198.19.{}.0/24\"\n", i + 1),
                    format!("{{ address = \"{}\", subnet = \"198.19.{}.0/24\"{key} }}", ul(k), k + 1),
                )
            } else {
                (String::new(), format!("{{ address = \"{}\"{key} }}", ul(k)))
            };
            let enc = if esp { "encryption = \"esp\"\n" } else { "" };
            let text = format!(
                "[underlay]\naddress = \"{}\"\n\n[[network]]\nvni = {VNI}\ntap = \"vxs\"\n{mode}{enc}{extra}peers = [{peer}]\n",
                ul(i)
            );
            Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
        })
        .collect();
    two_hosts::sim(&configs, ul, esp)
}

/// A TCP frame of `len` bytes from host 0's container to host 1's (gateway MAC when routed).
fn tcp(len: usize, routed: bool) -> Vec<u8> {
    let dst = if routed { default_gateway_mac(VNI).0 } else { B };
    let (s, d) = if routed { ([198, 19, 1, 10], [198, 19, 2, 10]) } else { ([192, 0, 2, 11], [192, 0, 2, 21]) };
    let mut f = Vec::new();
    PacketBuilder::ethernet2(A, dst).ipv4(s, d, 64).tcp(40000, 5201, 1, 64000).write(&mut f, &vec![7; len - 54]).unwrap();
    f
}

fn icmp_mtu(frame: &[u8]) -> (Ipv4Addr, [u8; 6], u16) {
    let p = SlicedPacket::from_ethernet(frame).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &p.net else { panic!("not IPv4: {frame:x?}") };
    let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else { panic!("not ICMP") };
    let Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu }) =
        icmp.icmp_type()
    else {
        panic!("{:?}", icmp.icmp_type())
    };
    (ip.header().source_addr(), frame[6..12].try_into().unwrap(), next_hop_mtu)
}

fn crossed(sim: &mut Sim) -> usize {
    sim.take_underlay().iter().filter(|d| d.from == ul(0)).count()
}

#[test]
fn overlay_too_big_gets_fragmentation_needed_from_the_destination() {
    for esp in [false, true] {
        let mut sim = pair(false, esp, "");
        let max = if esp { 1438 } else { 1464 };
        sim.tap_send(0, 0, &tcp(max, false));
        assert_eq!(crossed(&mut sim), 1, "esp {esp}: the largest frame crosses");
        sim.tap_send(0, 0, &tcp(1514, false));
        assert_eq!(crossed(&mut sim), 0, "a container at 1500 does not fit");
        let out = sim.take_tap(0, 0);
        assert_eq!(out.len(), 1, "one answer on the TAP");
        let (src, src_mac, mtu) = icmp_mtu(&out[0]);
        assert_eq!((src, src_mac, mtu as usize), (Ipv4Addr::new(192, 0, 2, 21), B, max - 14), "esp {esp}: from the destination");
        let c = sim.hosts[0].switch().counters();
        assert_eq!((c.pmtu_icmp_sent, c.drops(if esp { DropReason::TapOversizeEsp } else { DropReason::TapOversizeVxlan })), (1, 1));
    }
}

#[test]
fn routed_too_big_gets_fragmentation_needed_from_the_gateway() {
    for esp in [false, true] {
        let mut sim = pair(true, esp, "");
        // The gateway learns the container's MAC from its first packet.
        sim.tap_send(0, 0, &tcp(100, true));
        assert_eq!(crossed(&mut sim), 1);
        sim.tap_send(0, 0, &tcp(1514, true));
        assert_eq!(crossed(&mut sim), 0);
        let out = sim.take_tap(0, 0);
        let (src, src_mac, mtu) = icmp_mtu(out.last().unwrap());
        assert_eq!((src, src_mac), (Ipv4Addr::new(198, 19, 1, 1), default_gateway_mac(VNI).0), "esp {esp}");
        assert_eq!(mtu, if esp { 1438 } else { 1450 }, "esp {esp}: routed ESP carries the IP packet only");
    }
}

#[test]
fn ipv6_too_big_gets_packet_too_big() {
    let mut sim = pair(false, false, "");
    let (s6, d6) = ([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    let mut f = Vec::new();
    PacketBuilder::ethernet2(A, B).ipv6(s6, d6, 64).udp(5000, 6000).write(&mut f, &[1; 1452]).unwrap();
    sim.tap_send(0, 0, &f);
    let out = sim.take_tap(0, 0);
    let p = SlicedPacket::from_ethernet(&out[0]).unwrap();
    let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else { panic!() };
    assert_eq!(icmp.icmp_type(), Icmpv6Type::PacketTooBig { mtu: 1450 });
    assert_eq!(sim.hosts[0].switch().counters().pmtu_icmp6_sent, 1);
}

#[test]
fn routed_dual_stack_ipv6_too_big_gets_packet_too_big_from_gateway6() {
    let (a6, b6, gw6): (std::net::Ipv6Addr, std::net::Ipv6Addr, std::net::Ipv6Addr) =
        ("fd00:19:0:1::10".parse().unwrap(), "fd00:19:0:2::10".parse().unwrap(), "fd00:19:0:1::1".parse().unwrap());
    let ipv6 = |len: usize| {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(A, default_gateway_mac(VNI).0)
            .ipv6(a6.octets(), b6.octets(), 64)
            .udp(5000, 6000)
            .write(&mut f, &vec![1; len - 62])
            .unwrap();
        f
    };
    for esp in [false, true] {
        let mut sim = pair(true, esp, "subnet6 = \"fd00:19:0:1::/64\"\n");
        let now = sim.now;
        let route = vxswitch::control::ControlUpdate::RouteAdd {
            vni: VNI,
            subnet: "fd00:19:0:2::/64".parse().unwrap(),
            via: ul(1),
            next_hop: None,
        };
        sim.hosts[0].node_mut().apply(now, route);
        // The gateway learns the container's MAC from its first packet.
        sim.tap_send(0, 0, &ipv6(100));
        assert_eq!(crossed(&mut sim), 1, "esp {esp}");
        sim.tap_send(0, 0, &ipv6(1514));
        assert_eq!(crossed(&mut sim), 0);
        let out = sim.take_tap(0, 0);
        let answer = out.last().unwrap();
        assert_eq!(&answer[..12], &[A, default_gateway_mac(VNI).0].concat()[..], "esp {esp}: to the sender, from the gateway MAC");
        let p = SlicedPacket::from_ethernet(answer).unwrap();
        let Some(NetSlice::Ipv6(ip)) = &p.net else { panic!("ipv6") };
        assert_eq!((ip.header().source_addr(), ip.header().destination_addr()), (gw6, a6), "esp {esp}: from gateway6");
        let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else { panic!("icmpv6") };
        let mtu = if esp { 1438 } else { 1450 };
        assert_eq!(icmp.icmp_type(), Icmpv6Type::PacketTooBig { mtu }, "esp {esp}");
        assert_eq!(sim.hosts[0].switch().counters().pmtu_icmp6_sent, 1);
    }
}

#[test]
fn answers_are_rate_limited_per_second_of_virtual_time() {
    let mut sim = pair(false, false, "");
    for _ in 0..ICMP_PER_SEC + 50 {
        sim.tap_send(0, 0, &tcp(1514, false));
    }
    assert_eq!(sim.take_tap(0, 0).len(), ICMP_PER_SEC as usize);
    assert_eq!(sim.hosts[0].switch().counters().pmtu_icmp_rate_limited, 50);
    sim.advance(Duration::from_secs(1));
    sim.tap_send(0, 0, &tcp(1514, false));
    assert_eq!(sim.take_tap(0, 0).len(), 1, "a new second, a new budget");
}

#[test]
fn no_answer_to_icmp_errors_or_to_ipv4_without_df() {
    let mut sim = pair(false, false, "");
    // A large "fragmentation needed" itself (a quote padded past the MTU) is never answered.
    let mut err = Vec::new();
    let quote = {
        let mut q = Vec::new();
        PacketBuilder::ipv4([192, 0, 2, 21], [192, 0, 2, 11], 64).udp(1, 2).write(&mut q, &[0; 1440]).unwrap();
        q
    };
    PacketBuilder::ethernet2(A, B)
        .ipv4([192, 0, 2, 11], [192, 0, 2, 21], 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1000 }))
        .write(&mut err, &quote)
        .unwrap();
    assert!(err.len() > 1464);
    sim.tap_send(0, 0, &err);
    let mut nodf = tcp(1514, false);
    nodf[14 + 6] &= !0x40;
    let sum = {
        nodf[24] = 0;
        nodf[25] = 0;
        let s = etherparse::Ipv4HeaderSlice::from_slice(&nodf[14..]).unwrap().to_header().calc_header_checksum();
        s.to_be_bytes()
    };
    nodf[24..26].copy_from_slice(&sum);
    sim.tap_send(0, 0, &nodf);
    assert!(sim.take_tap(0, 0).is_empty(), "no answer to either");
    let c = sim.hosts[0].switch().counters();
    assert_eq!((c.pmtu_icmp_suppressed, c.pmtu_no_df, c.pmtu_icmp_sent), (1, 1, 0));
    assert_eq!(c.drops(DropReason::TapOversizeVxlan), 2, "both dropped and counted");
}

fn syn(mss: u16, from_host: usize) -> Vec<u8> {
    let (src, dst, s, d) = if from_host == 0 { (A, B, [192, 0, 2, 11], [192, 0, 2, 21]) } else { (B, A, [192, 0, 2, 21], [192, 0, 2, 11]) };
    let mut f = Vec::new();
    PacketBuilder::ethernet2(src, dst)
        .ipv4(s, d, 64)
        .tcp(40000, 5201, 1, 64000)
        .syn()
        .options(&[TcpOptionElement::MaximumSegmentSize(mss)])
        .unwrap()
        .write(&mut f, &[])
        .unwrap();
    f
}

fn mss_of(frame: &[u8]) -> u16 {
    let p = SlicedPacket::from_ethernet(frame).unwrap();
    let Some(TransportSlice::Tcp(t)) = p.transport else { panic!() };
    let Some(NetSlice::Ipv4(ip)) = p.net else { panic!() };
    assert_eq!(t.to_header().calc_checksum_ipv4(&ip.header().to_header(), t.payload()).unwrap(), t.checksum(), "checksum updated");
    t.options_iterator().find_map(|o| if let Ok(TcpOptionElement::MaximumSegmentSize(m)) = o { Some(m) } else { None }).unwrap()
}

#[test]
fn mss_is_clamped_to_the_path_both_ways_unless_off() {
    let mut sim = pair(false, false, "");
    sim.tap_send(1, 0, &syn(1200, 1)); // host 1's container is known behind host 1
    sim.take_tap(0, 0);
    sim.tap_send(0, 0, &syn(1460, 0));
    let got = sim.take_tap(1, 0);
    assert_eq!(mss_of(&got[0]), 1410, "1450 - 40");
    assert_eq!(sim.hosts[0].switch().counters().mss_clamped, 1, "clamped on egress");
    // Host 1 learns that the path to host 0 carries 1400: a SYN-ACK-like SYN from host 0's side
    // is clamped on ingress by host 1, so host 0's container sends segments that fit.
    let now = sim.now;
    sim.hosts[1].switch_mut().handle_path_mtu(now, ul(0), 1400);
    sim.tap_send(0, 0, &syn(1460, 0));
    assert_eq!(mss_of(&sim.take_tap(1, 0)[0]), 1310, "1400 - 50 VXLAN - 40");
    assert_eq!(sim.hosts[1].switch().counters().mss_clamped, 1, "clamped on ingress by host 1");

    let mut sim = pair(false, false, "mss_clamp = \"off\"\n");
    sim.tap_send(0, 0, &syn(1460, 0));
    assert_eq!(mss_of(&sim.take_tap(1, 0)[0]), 1460);
    let mut sim = pair(false, false, "mss_clamp = 1000\n");
    sim.tap_send(0, 0, &syn(1460, 0));
    assert_eq!(mss_of(&sim.take_tap(1, 0)[0]), 1000);
}

#[test]
fn peer_path_mtu_lowers_then_expires_after_ten_minutes_or_is_raised() {
    for esp in [false, true] {
        let mut sim = pair(false, esp, "");
        let frame = tcp(1400, false);
        sim.tap_send(0, 0, &frame);
        assert_eq!(crossed(&mut sim), 1, "fits the configured underlay");
        let now = sim.now;
        sim.hosts[0].switch_mut().handle_path_mtu(now, ul(1), 1400);
        assert_eq!(sim.hosts[0].switch().peer_mtu(ul(1)), Some(1400));
        sim.tap_send(0, 0, &frame);
        assert_eq!(crossed(&mut sim), 0, "esp {esp}: too big for the smaller path");
        let (_, _, mtu) = icmp_mtu(&sim.take_tap(0, 0)[0]);
        assert_eq!(mtu, if esp { 1324 } else { 1350 }, "esp {esp}: the inner MTU over a 1400-byte path");
        let small = tcp(mtu as usize + 14, false);
        sim.tap_send(0, 0, &small);
        assert_eq!(crossed(&mut sim), 1, "esp {esp}: the advertised MTU fits");

        sim.advance(PEER_MTU_EXPIRY - Duration::from_secs(1));
        assert_eq!(sim.hosts[0].switch().peer_mtu(ul(1)), Some(1400), "still in force");
        sim.advance(Duration::from_secs(2));
        assert_eq!(sim.hosts[0].switch().peer_mtu(ul(1)), None, "forgotten after 10 minutes");
        assert_eq!(sim.hosts[0].switch().counters().peer_mtu_expired, 1);
        sim.tap_send(0, 0, &frame);
        assert_eq!(crossed(&mut sim), 1, "full size again: the kernel relearns if the path is still small");

        let now = sim.now;
        sim.hosts[0].switch_mut().handle_path_mtu(now, ul(1), 1300);
        sim.hosts[0].switch_mut().handle_path_mtu(now, ul(1), 1500);
        assert_eq!(sim.hosts[0].switch().peer_mtu(ul(1)), None, "reported back at full size: raised at once");
        let c = sim.hosts[0].switch().counters();
        assert_eq!((c.peer_mtu_lowered, c.peer_mtu_raised), (2, 1));
    }
}
