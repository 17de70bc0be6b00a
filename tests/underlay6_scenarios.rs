//! An IPv6 underlay on the simulator (virtual time, no root): hosts whose configurations name
//! only IPv6 underlay addresses exchange VXLAN and ESP datagrams addressed to those, learn remote
//! MACs behind them, and size frames for the 40-byte outer IPv6 header (the largest frame
//! crosses, one byte more is answered with the MTU that fits), also over a smaller path to an
//! IPv6 peer reported by the kernel.

#[path = "common/two_hosts.rs"]
mod two_hosts;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{Icmpv4Type, PacketBuilder, SlicedPacket, TransportSlice};
use vxswitch::config::Config;
use vxswitch::dataplane::Location;
use vxswitch::sim::Sim;
use vxswitch::wire::vxlan::Vni;

const VNI: Vni = Vni::new_const(1042);
const A: [u8; 6] = [2, 0, 0, 0, 1, 10];
const B: [u8; 6] = [2, 0, 0, 0, 2, 10];

fn ul(i: usize) -> IpAddr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x18, 0, 0, 0, 0, i as u16 + 1).into()
}

/// Two hosts on an IPv6 underlay, one L2 network, cleartext or ESP.
fn pair(esp: bool) -> Sim {
    let configs: Vec<Config> = (0..2)
        .map(|i| {
            let key = if esp { format!(", public_key = \"{}\"", "11".repeat(32)) } else { String::new() };
            let enc = if esp { "encryption = \"esp\"\n" } else { "" };
            let text = format!(
                "[underlay]\naddress = \"{}\"\n\n[[network]]\nvni = {VNI}\ntap = \"vxs\"\n{enc}peers = [{{ address = \"{}\"{key} }}]\n",
                ul(i),
                ul(1 - i)
            );
            Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
        })
        .collect();
    two_hosts::sim(&configs, ul, esp)
}

/// A TCP frame of `len` bytes (Ethernet header included) from `src` to `dst`.
fn tcp(len: usize, src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    let (s, d) = if src == A { ([192, 0, 2, 11], [192, 0, 2, 21]) } else { ([192, 0, 2, 21], [192, 0, 2, 11]) };
    let mut f = Vec::new();
    PacketBuilder::ethernet2(src, dst).ipv4(s, d, 64).tcp(40000, 5201, 1, 64000).write(&mut f, &vec![7; len - 54]).unwrap();
    f
}

/// The MTU an ICMP "fragmentation needed" on the TAP carries.
fn icmp_mtu(frame: &[u8]) -> u16 {
    let p = SlicedPacket::from_ethernet(frame).unwrap();
    let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else { panic!("not ICMP: {frame:x?}") };
    let Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu }) =
        icmp.icmp_type()
    else {
        panic!("{:?}", icmp.icmp_type())
    };
    next_hop_mtu
}

#[test]
fn datagrams_go_to_ipv6_peers_and_macs_are_learned_behind_them() {
    for esp in [false, true] {
        let mut sim = pair(esp);
        sim.tap_send(0, 0, &tcp(200, A, B));
        let sent = sim.take_underlay();
        assert!(!sent.is_empty(), "esp {esp}: the unknown unicast was flooded");
        assert!(sent.iter().all(|d| d.from == ul(0) && d.to == ul(1)), "esp {esp}: IPv6 VTEP to IPv6 VTEP: {:?}", sent.len());
        assert_eq!(sim.take_tap(1, 0).len(), 1, "esp {esp}: delivered on host 1");
        let fdb = sim.hosts[1].switch().fdb();
        assert_eq!(fdb.lookup(VNI, vxswitch::wire::ethernet::EthernetAddress(A)), Some(Location::Remote(ul(0))), "esp {esp}");
        // The answer goes unicast to the learned IPv6 VTEP.
        sim.tap_send(1, 0, &tcp(200, B, A));
        let back = sim.take_underlay();
        assert!(back.iter().any(|d| d.from == ul(1) && d.to == ul(0)), "esp {esp}");
        assert_eq!(sim.take_tap(0, 0).len(), 1, "esp {esp}: delivered on host 0");
        let c = sim.hosts[1].switch().counters();
        assert_eq!(c.total_drops(), 0, "esp {esp}: {c:?}");
    }
}

#[test]
fn frames_are_sized_for_the_outer_ipv6_header_also_over_a_smaller_path() {
    for esp in [false, true] {
        let mut sim = pair(esp);
        // VXLAN over IPv6: 1430 + 14; ESP overlay: 1404 + 14.
        let max = if esp { 1418 } else { 1444 };
        sim.tap_send(0, 0, &tcp(max, A, B));
        assert_eq!(sim.take_underlay().len(), 1, "esp {esp}: the largest frame crosses");
        sim.tap_send(0, 0, &tcp(max + 1, A, B));
        assert!(sim.take_underlay().is_empty(), "esp {esp}: one byte more does not");
        let out = sim.take_tap(0, 0);
        assert_eq!(out.len(), 1, "esp {esp}: one answer on the TAP");
        assert_eq!(icmp_mtu(&out[0]) as usize, max - 14, "esp {esp}");
        // The kernel reports a 1400-byte path to the IPv6 peer: 70 (VXLAN) or 96 (ESP) bytes less.
        let now = sim.now;
        sim.hosts[0].switch_mut().handle_path_mtu(now, ul(1), 1400);
        sim.tap_send(0, 0, &tcp(max, A, B));
        assert!(sim.take_underlay().is_empty(), "esp {esp}: too big for the smaller path");
        let out = sim.take_tap(0, 0);
        assert_eq!(icmp_mtu(&out[0]), if esp { 1304 } else { 1330 }, "esp {esp}: the inner MTU over a 1400-byte IPv6 path");
        assert_eq!(sim.hosts[0].switch().peer_mtus(now)[0].peer, ul(1));
    }
}

#[test]
fn an_ipv4_underlay_is_unchanged() {
    let text = "[underlay]\naddress = \"198.18.0.1\"\n\n[[network]]\nvni = 1042\ntap = \"vxs\"\npeers = [\"198.18.0.2\"]\n";
    let c = Config::parse(text).unwrap();
    assert_eq!(c.networks[0].mtu, 1450);
    assert_eq!(c.networks[0].peers[0].address, IpAddr::from(Ipv4Addr::new(198, 18, 0, 2)));
}
