//! Proxy ARP and the routed overlay as scenarios on the simulator (virtual time, no root).

use std::net::Ipv4Addr;
use std::time::Duration;

use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use vxswitch::arp::{arp_frame, UnknownArp};
use vxswitch::control::ControlUpdate;
use vxswitch::dataplane::{default_gateway_mac, DropReason, NetworkSpec, RoutedSpec, SwitchConfig};
use vxswitch::sim::Sim;
use vxswitch::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use vxswitch::wire::ethernet::{EtherType, EthernetAddress, EthernetFrame};
use vxswitch::wire::vxlan::Vni;

const VNI: Vni = Vni::new_const(42);

fn ul(i: usize) -> std::net::IpAddr {
    Ipv4Addr::new(198, 18, 0, i as u8 + 1).into()
}
fn subnet(i: usize) -> ipnet::Ipv4Net {
    format!("198.19.{}.0/24", i + 1).parse().unwrap()
}
fn gw(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, i as u8 + 1, 1)
}
fn ctr_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, i as u8 + 1, 10)
}
fn ctr_mac(i: usize) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0, 0, i as u8 + 1, 10])
}

fn cluster(n: usize, routed: bool, unknown_arp: UnknownArp) -> Sim {
    let hosts = (0..n)
        .map(|i| {
            let peers: Vec<std::net::IpAddr> = (0..n).filter(|&k| k != i).map(ul).collect();
            let routed =
                routed.then(|| RoutedSpec { subnet: subnet(i), gateway_ip: gw(i), gateway_mac: default_gateway_mac(VNI), v6: None });
            let networks = vec![NetworkSpec {
                vni: VNI,
                max_frame_len: 1464,
                peers,
                unknown_arp,
                routed,
                tunnel: vxswitch::dataplane::Tunnel::Vxlan,
                path: Default::default(),
            }];
            (ul(i), SwitchConfig { fdb_ageing: Duration::from_secs(300), fdb_max_entries: 1024, networks })
        })
        .collect();
    let mut sim = Sim::new(hosts);
    if routed {
        for i in 0..n {
            for k in (0..n).filter(|&k| k != i) {
                let now = sim.now;
                sim.hosts[i]
                    .node_mut()
                    .apply(now, ControlUpdate::RouteAdd { vni: VNI, subnet: subnet(k).into(), via: ul(k), next_hop: None });
            }
        }
    }
    sim
}

fn arp(op: ArpOperation, sha: EthernetAddress, spa: Ipv4Addr, tha: EthernetAddress, tpa: Ipv4Addr) -> Vec<u8> {
    let repr = ArpRepr {
        operation: op,
        source_hardware_addr: sha,
        source_protocol_addr: spa,
        target_hardware_addr: tha,
        target_protocol_addr: tpa,
    };
    let dst = if op == ArpOperation::Request { EthernetAddress::BROADCAST } else { tha };
    arp_frame(&repr, dst, None)
}

fn parse_arp(frame: &[u8]) -> ArpRepr {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    assert_eq!(eth.ethertype(), EtherType::ARP);
    ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap()
}

fn udp_frame(dst_mac: EthernetAddress, src_mac: EthernetAddress, src: Ipv4Addr, dst: Ipv4Addr, ttl: u8) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(src_mac.0, dst_mac.0)
        .ipv4(src.octets(), dst.octets(), ttl)
        .udp(5000, 6000)
        .write(&mut f, b"routed payload")
        .unwrap();
    f
}

#[test]
fn proxy_arp_answers_locally_and_nothing_crosses() {
    let mut sim = cluster(3, false, UnknownArp::Flood);
    let (a_ip, b_ip) = (Ipv4Addr::new(192, 0, 2, 11), Ipv4Addr::new(192, 0, 2, 21));
    let (a, b) = (EthernetAddress([2, 0, 0, 0, 0, 0xa]), EthernetAddress([2, 0, 0, 0, 0, 0xb]));
    let now = sim.now;
    sim.hosts[0].node_mut().apply(now, ControlUpdate::ArpBinding { vni: VNI, ip: b_ip.into(), mac: b });
    // Host 1 (the owner) is down: no datagram can reach it anyway.
    sim.hosts.remove(1);
    for _ in 0..5 {
        sim.tap_send(0, 0, &arp(ArpOperation::Request, a, a_ip, EthernetAddress([0; 6]), b_ip));
    }
    assert!(sim.take_underlay().is_empty(), "zero ARP requests for a bound IP cross the overlay");
    let replies = sim.take_tap(0, 0);
    assert_eq!(replies.len(), 5);
    let r = parse_arp(&replies[0]);
    assert_eq!((r.operation, r.source_hardware_addr, r.source_protocol_addr), (ArpOperation::Reply, b, b_ip));
    assert_eq!((r.target_hardware_addr, r.target_protocol_addr), (a, a_ip));
    assert_eq!(EthernetFrame::new_checked(&replies[0][..]).unwrap().dst_addr(), a);
    assert_eq!(sim.hosts[0].switch().counters().arp_replies, 5);
}

#[test]
fn unknown_ip_floods_or_drops_by_policy() {
    let a = EthernetAddress([2, 0, 0, 0, 0, 0xa]);
    let req = arp(ArpOperation::Request, a, Ipv4Addr::new(192, 0, 2, 11), EthernetAddress([0; 6]), Ipv4Addr::new(192, 0, 2, 99));
    let mut flood = cluster(3, false, UnknownArp::Flood);
    flood.tap_send(0, 0, &req);
    assert_eq!(flood.take_underlay().len(), 2, "flooded to both peers");
    let mut drop = cluster(3, false, UnknownArp::Drop);
    drop.tap_send(0, 0, &req);
    assert!(drop.take_underlay().is_empty());
    assert_eq!(drop.hosts[0].switch().counters().drops(DropReason::ArpUnknownDropped), 1);
}

#[test]
fn spoofed_gratuitous_arp_is_dropped_both_ways() {
    let mut sim = cluster(2, false, UnknownArp::Flood);
    let b_ip = Ipv4Addr::new(192, 0, 2, 21);
    let (b, evil) = (EthernetAddress([2, 0, 0, 0, 0, 0xb]), EthernetAddress([2, 0, 0, 0, 0, 0xe]));
    let now = sim.now;
    for h in 0..2 {
        sim.hosts[h].node_mut().apply(now, ControlUpdate::ArpBinding { vni: VNI, ip: b_ip.into(), mac: b });
    }
    let garp = arp(ArpOperation::Request, evil, b_ip, EthernetAddress([0; 6]), b_ip);
    sim.tap_send(0, 0, &garp);
    assert!(sim.take_underlay().is_empty(), "a local container cannot claim a bound IP");
    assert_eq!(sim.hosts[0].switch().counters().drops(DropReason::ArpSpoofed), 1);
    // The same lie arriving over the underlay (e.g. from a host with a stale or hostile view).
    let mut payload = vec![0x08, 0, 0, 0, 0, 0, VNI.get() as u8, 0];
    payload.extend_from_slice(&garp);
    sim.inject_underlay(ul(0), 1, &payload);
    assert!(sim.take_tap(1, 0).is_empty());
    assert_eq!(sim.hosts[1].switch().counters().drops(DropReason::ArpSpoofed), 1);
    sim.take_underlay();
    // The rightful owner announcing itself still passes.
    sim.tap_send(0, 0, &arp(ArpOperation::Request, b, b_ip, EthernetAddress([0; 6]), b_ip));
    assert_eq!(sim.take_underlay().len(), 1);
}

#[test]
fn routed_gateway_answers_arp_and_echo() {
    let mut sim = cluster(2, true, UnknownArp::Flood);
    sim.tap_send(0, 0, &arp(ArpOperation::Request, ctr_mac(0), ctr_ip(0), EthernetAddress([0; 6]), gw(0)));
    let out = sim.take_tap(0, 0);
    assert_eq!(out.len(), 1);
    let r = parse_arp(&out[0]);
    assert_eq!((r.source_hardware_addr, r.source_protocol_addr), (default_gateway_mac(VNI), gw(0)));
    assert!(sim.take_underlay().is_empty(), "no ARP crosses hosts in routed mode");
    let mut ping = Vec::new();
    PacketBuilder::ethernet2(ctr_mac(0).0, default_gateway_mac(VNI).0)
        .ipv4(ctr_ip(0).octets(), gw(0).octets(), 64)
        .icmpv4_echo_request(7, 1)
        .write(&mut ping, b"hello")
        .unwrap();
    sim.tap_send(0, 0, &ping);
    let out = sim.take_tap(0, 0);
    let reply = SlicedPacket::from_ethernet(&out[0]).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = reply.net else { panic!("ipv4 reply") };
    assert_eq!(ip.header().source_addr(), gw(0));
    assert!(
        matches!(reply.transport, Some(TransportSlice::Icmpv4(ref i)) if i.icmp_type() == etherparse::Icmpv4Type::EchoReply(etherparse::IcmpEchoHeader { id: 7, seq: 1 }))
    );
}

#[test]
fn routed_delivery_across_three_hosts() {
    let mut sim = cluster(3, true, UnknownArp::Flood);
    let gw_mac = default_gateway_mac(VNI);
    let frame = udp_frame(gw_mac, ctr_mac(0), ctr_ip(0), ctr_ip(2), 64);
    sim.tap_send(0, 0, &frame);
    let crossed = sim.take_underlay();
    assert_eq!(crossed.len(), 1, "one routed datagram");
    assert_eq!((crossed[0].from, crossed[0].to), (ul(0), ul(2)));
    assert!(sim.take_tap(1, 0).is_empty(), "host 1 sees nothing");
    // Host 2 does not know the container yet: it asks on its TAP and holds the packet.
    let out = sim.take_tap(2, 0);
    assert_eq!(out.len(), 1);
    let ask = parse_arp(&out[0]);
    assert_eq!((ask.operation, ask.source_protocol_addr, ask.target_protocol_addr), (ArpOperation::Request, gw(2), ctr_ip(2)));
    sim.tap_send(2, 0, &arp(ArpOperation::Reply, ctr_mac(2), ctr_ip(2), gw_mac, gw(2)));
    let delivered = sim.take_tap(2, 0);
    assert_eq!(delivered.len(), 1, "the held packet is released");
    {
        let f = &delivered[0];
        let p = SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::LinkSlice::Ethernet2(eth)) = p.link else { panic!() };
        assert_eq!((eth.source(), eth.destination()), (gw_mac.0, ctr_mac(2).0));
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else { panic!() };
        assert_eq!(ip.header().ttl(), 63, "TTL decremented once per overlay crossing");
        let header = ip.header().to_header();
        assert_eq!(header.header_checksum, header.calc_header_checksum(), "header checksum still valid");
        let Some(TransportSlice::Udp(udp)) = p.transport else { panic!("udp") };
        assert_eq!(udp.payload(), b"routed payload");
    }
    // Now resolved: the next packet goes straight through.
    sim.tap_send(0, 0, &udp_frame(gw_mac, ctr_mac(0), ctr_ip(0), ctr_ip(2), 64));
    assert_eq!(sim.take_tap(2, 0).len(), 1);
    assert_eq!(sim.hosts[0].switch().counters().routed_packets, 2);
}

#[test]
fn routed_icmp_errors_for_no_route_and_ttl_expiry() {
    let mut sim = cluster(2, true, UnknownArp::Flood);
    let gw_mac = default_gateway_mac(VNI);
    sim.tap_send(0, 0, &udp_frame(gw_mac, ctr_mac(0), ctr_ip(0), Ipv4Addr::new(203, 0, 113, 5), 64));
    sim.tap_send(0, 0, &udp_frame(gw_mac, ctr_mac(0), ctr_ip(0), ctr_ip(1), 1));
    assert!(sim.take_underlay().is_empty());
    let out = sim.take_tap(0, 0);
    assert_eq!(out.len(), 2);
    let types: Vec<etherparse::Icmpv4Type> = out
        .iter()
        .map(|f| {
            let p = SlicedPacket::from_ethernet(f).unwrap();
            let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else { panic!() };
            assert_eq!((ip.header().source_addr(), ip.header().destination_addr()), (gw(0), ctr_ip(0)));
            let Some(TransportSlice::Icmpv4(icmp)) = p.transport else { panic!("icmp") };
            icmp.icmp_type()
        })
        .collect();
    assert!(
        matches!(types[0], etherparse::Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::Network)),
        "{types:?}"
    );
    assert!(
        matches!(types[1], etherparse::Icmpv4Type::TimeExceeded(etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit)),
        "{types:?}"
    );
    let c = sim.hosts[0].switch().counters();
    assert_eq!((c.drops(DropReason::NoRoute), c.drops(DropReason::TtlExpired)), (1, 1));
    // A peer going down withdraws its routes: now there is no route.
    let now = sim.now;
    sim.hosts[0].node_mut().apply(now, ControlUpdate::PeerDown { vni: VNI, underlay: ul(1) });
    sim.tap_send(0, 0, &udp_frame(gw_mac, ctr_mac(0), ctr_ip(0), ctr_ip(1), 64));
    assert_eq!(sim.hosts[0].switch().counters().drops(DropReason::NoRoute), 2);
}

#[test]
fn routed_unresolved_packets_expire_and_are_counted() {
    let mut sim = cluster(2, true, UnknownArp::Flood);
    let gw_mac = default_gateway_mac(VNI);
    sim.tap_send(0, 0, &udp_frame(gw_mac, ctr_mac(0), ctr_ip(0), ctr_ip(1), 64));
    assert_eq!(sim.take_tap(1, 0).len(), 1, "the ARP request");
    sim.advance(Duration::from_secs(4));
    assert_eq!(sim.hosts[1].switch().counters().drops(DropReason::NeighbourUnresolved), 1);
}
