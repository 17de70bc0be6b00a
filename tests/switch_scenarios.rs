//! Behaviour of the switch core as scenarios on the simulator (virtual time, no root needed).

use std::net::Ipv4Addr;
use std::time::Duration;

use proptest::prelude::*;
use vxswitch::arp::UnknownArp;
use vxswitch::dataplane::{DropReason, Location, NetworkSpec, SwitchConfig};
use vxswitch::sim::{ethernet_frame, Sim};
use vxswitch::wire::ethernet::EthernetAddress;
use vxswitch::wire::vxlan::Vni;

const BCAST: [u8; 6] = [0xff; 6];

fn mac(host: u8, n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, host, n]
}

fn ul(i: usize) -> std::net::IpAddr {
    Ipv4Addr::new(198, 18, 0, i as u8 + 1).into()
}

/// `n` hosts, each running the given VNIs, every host a static peer of every other.
fn cluster(n: usize, vnis: &[u32], ageing: Duration, cap: usize) -> Sim {
    let hosts = (0..n)
        .map(|i| {
            let peers: Vec<std::net::IpAddr> = (0..n).filter(|&k| k != i).map(ul).collect();
            let networks = vnis
                .iter()
                .map(|&v| NetworkSpec {
                    vni: Vni::new(v).unwrap(),
                    max_frame_len: 1464,
                    peers: peers.clone(),
                    unknown_arp: UnknownArp::Flood,
                    routed: None,
                    tunnel: vxswitch::dataplane::Tunnel::Vxlan,
                    path: Default::default(),
                })
                .collect();
            (ul(i), SwitchConfig { fdb_ageing: ageing, fdb_max_entries: cap, networks })
        })
        .collect();
    Sim::new(hosts)
}

fn arp_like(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    ethernet_frame(dst, src, 0x0806, &[0u8; 28])
}

#[test]
fn switch_floods_broadcast_once_to_every_peer_and_never_back() {
    let mut sim = cluster(4, &[1042], Duration::from_secs(300), 1024);
    sim.tap_send(0, 0, &arp_like(BCAST, mac(0, 1)));
    let crossed = sim.take_underlay();
    let mut dests: Vec<std::net::IpAddr> = crossed.iter().map(|d| d.to).collect();
    dests.sort();
    assert_eq!(dests, vec![ul(1), ul(2), ul(3)], "exactly one copy per peer, none to the origin");
    assert!(crossed.iter().all(|d| d.from == ul(0)));
    for h in 1..4 {
        assert_eq!(sim.take_tap(h, 0).len(), 1, "host {h} delivers the broadcast once");
    }
    assert!(sim.take_tap(0, 0).is_empty(), "never back to the TAP it came from");
    assert_eq!(sim.hosts[0].switch().counters().flood_copies, 3);
}

#[test]
fn switch_learns_and_then_unicasts_to_one_vtep() {
    let mut sim = cluster(3, &[1042], Duration::from_secs(300), 1024);
    let (a, b) = (mac(0, 1), mac(1, 1));
    sim.tap_send(0, 0, &arp_like(BCAST, a));
    sim.take_underlay();
    sim.take_tap(1, 0);
    assert_eq!(sim.take_tap(2, 0).len(), 1, "the broadcast reached host 2 too");
    // b answers a: host 1 learned a behind host 0, so exactly one datagram, to host 0.
    sim.tap_send(1, 0, &arp_like(a, b));
    let crossed = sim.take_underlay();
    assert_eq!(crossed.len(), 1);
    assert_eq!((crossed[0].from, crossed[0].to), (ul(1), ul(0)));
    assert_eq!(sim.take_tap(0, 0).len(), 1);
    assert!(sim.take_tap(2, 0).is_empty());
    assert_eq!(sim.hosts[0].switch().fdb().lookup(Vni::new_const(1042), EthernetAddress(b)), Some(Location::Remote(ul(1))));
    assert_eq!(sim.hosts[0].switch().fdb().lookup(Vni::new_const(1042), EthernetAddress(a)), Some(Location::Local));
}

#[test]
fn switch_ages_idle_entries_and_floods_again() {
    let ageing = Duration::from_secs(300);
    let mut sim = cluster(3, &[1042], ageing, 1024);
    let (a, b) = (mac(0, 1), mac(1, 1));
    sim.tap_send(1, 0, &arp_like(BCAST, b));
    sim.take_underlay();
    sim.advance(ageing - Duration::from_secs(2));
    sim.tap_send(0, 0, &arp_like(b, a));
    assert_eq!(sim.take_underlay().len(), 1, "b still known just before it ages");
    sim.advance(Duration::from_secs(3));
    assert_eq!(sim.hosts[0].switch().fdb().lookup(Vni::new_const(1042), EthernetAddress(b)), None, "aged out");
    assert_eq!(sim.hosts[0].switch().fdb().counters().aged, 1);
    sim.tap_send(0, 0, &arp_like(b, a));
    assert_eq!(sim.take_underlay().len(), 2, "unknown unicast is flooded to both peers");
    assert_eq!(sim.hosts[0].switch().poll_timeout(), sim.hosts[0].switch().fdb().next_expiry());
}

#[test]
fn switch_follows_a_mac_move_to_another_host() {
    let mut sim = cluster(3, &[1042], Duration::from_secs(300), 1024);
    let (a, roamer) = (mac(0, 1), mac(9, 9));
    sim.tap_send(1, 0, &arp_like(BCAST, roamer));
    assert_eq!(sim.hosts[0].switch().fdb().lookup(Vni::new_const(1042), EthernetAddress(roamer)), Some(Location::Remote(ul(1))));
    sim.advance(Duration::from_secs(5));
    // The workload moves to host 2 and announces itself (gratuitous ARP).
    sim.tap_send(2, 0, &arp_like(BCAST, roamer));
    assert_eq!(sim.hosts[0].switch().fdb().lookup(Vni::new_const(1042), EthernetAddress(roamer)), Some(Location::Remote(ul(2))));
    assert_eq!(sim.hosts[0].switch().fdb().counters().moved, 1);
    sim.take_underlay();
    sim.tap_send(0, 0, &arp_like(roamer, a));
    let crossed = sim.take_underlay();
    assert_eq!(crossed.iter().map(|d| d.to).collect::<Vec<_>>(), vec![ul(2)]);
}

#[test]
fn switch_caps_the_table_and_counts_evictions() {
    let mut sim = cluster(2, &[1042], Duration::from_secs(300), 8);
    for n in 0..20 {
        sim.tap_send(0, 0, &arp_like(BCAST, mac(0, n)));
        sim.advance(Duration::from_secs(2));
    }
    let fdb = sim.hosts[1].switch().fdb();
    assert_eq!(fdb.len(), 8);
    assert_eq!(fdb.counters().evicted, 12);
    for n in 12..20 {
        assert!(fdb.lookup(Vni::new_const(1042), EthernetAddress(mac(0, n))).is_some(), "most recent MACs kept");
    }
}

#[test]
fn switch_keeps_vnis_apart() {
    let mut sim = cluster(2, &[100, 200], Duration::from_secs(300), 1024);
    let a = mac(0, 1);
    sim.tap_send(0, 0, &arp_like(BCAST, a));
    assert_eq!(sim.take_tap(1, 0).len(), 1, "VNI 100 delivered on VNI 100's TAP");
    assert!(sim.take_tap(1, 1).is_empty(), "nothing leaks into VNI 200");
    let fdb = sim.hosts[1].switch().fdb();
    assert!(fdb.lookup(Vni::new_const(100), EthernetAddress(a)).is_some());
    assert!(fdb.lookup(Vni::new_const(200), EthernetAddress(a)).is_none());
    // The same MAC may live in another place on another VNI.
    sim.tap_send(1, 1, &arp_like(BCAST, a));
    assert_eq!(sim.hosts[0].switch().fdb().lookup(Vni::new_const(200), EthernetAddress(a)), Some(Location::Remote(ul(1))));
    assert_eq!(sim.hosts[0].switch().fdb().lookup(Vni::new_const(100), EthernetAddress(a)), Some(Location::Local));
}

fn vxlan(vni: u32, flags: u8, inner: &[u8]) -> Vec<u8> {
    let mut p = vec![flags, 0, 0, 0];
    p.extend_from_slice(&(vni << 8).to_be_bytes());
    p.extend_from_slice(inner);
    p
}

#[test]
fn switch_drops_and_counts_malformed_underlay_packets() {
    let mut sim = cluster(2, &[1042], Duration::from_secs(300), 1024);
    let good_inner = arp_like(BCAST, mac(0, 1));
    let cases: Vec<(std::net::IpAddr, Vec<u8>, DropReason)> = vec![
        (ul(0), vec![0x08, 0, 0], DropReason::VxlanTruncated),
        (ul(0), vxlan(1042, 0x00, &good_inner), DropReason::VxlanBadFlags),
        (ul(0), vxlan(7, 0x08, &good_inner), DropReason::UnknownVni),
        (Ipv4Addr::new(203, 0, 113, 9).into(), vxlan(1042, 0x08, &good_inner), DropReason::UnknownPeer),
        (ul(0), vxlan(1042, 0x08, &good_inner[..10]), DropReason::InnerMalformed),
        (ul(0), vxlan(1042, 0x08, &arp_like(BCAST, BCAST)), DropReason::InnerBadSourceMac),
    ];
    for (from, payload, reason) in &cases {
        let before = sim.hosts[1].switch().counters().drops(*reason);
        sim.inject_underlay(*from, 1, payload);
        assert_eq!(sim.hosts[1].switch().counters().drops(*reason), before + 1, "{reason:?}");
    }
    assert!(sim.take_tap(1, 0).is_empty(), "nothing malformed reaches the TAP");
    assert_eq!(sim.hosts[1].switch().counters().total_drops(), cases.len() as u64);
    // Reserved bits set: accepted (RFC 7348) and counted.
    sim.inject_underlay(ul(0), 1, &vxlan(1042, 0x0c, &good_inner));
    assert_eq!(sim.take_tap(1, 0).len(), 1);
    assert_eq!(sim.hosts[1].switch().counters().vxlan_reserved_bits, 1);
}

#[test]
fn switch_drops_oversize_and_bad_source_tap_frames() {
    let mut sim = cluster(2, &[1042], Duration::from_secs(300), 1024);
    sim.tap_send(0, 0, &ethernet_frame(BCAST, mac(0, 1), 0x0800, &[0u8; 1451]));
    sim.tap_send(0, 0, &arp_like(BCAST, BCAST));
    sim.tap_send(0, 0, &[0u8; 10]);
    let c = sim.hosts[0].switch().counters();
    assert_eq!(c.drops(DropReason::TapOversizeVxlan), 1);
    assert_eq!(c.drops(DropReason::TapBadSourceMac), 1);
    assert_eq!(c.drops(DropReason::TapMalformed), 1);
    assert!(sim.take_underlay().is_empty());
    // The largest frame that fits (1464 bytes) is carried.
    sim.tap_send(0, 0, &ethernet_frame(BCAST, mac(0, 1), 0x0800, &[0u8; 1450]));
    assert_eq!(sim.take_underlay().len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    #[test]
    fn every_underlay_datagram_is_delivered_or_counted(payload in proptest::collection::vec(any::<u8>(), 0..120), flags in prop_oneof![Just(0x08u8), any::<u8>()]) {
        let mut sim = cluster(2, &[1042], Duration::from_secs(300), 1024);
        let mut p = payload.clone();
        if p.len() >= 8 { p[0] = flags; p[4..7].copy_from_slice(&[0, 0x04, 0x12]); }
        sim.inject_underlay(ul(0), 1, &p);
        let delivered = sim.take_tap(1, 0).len() as u64;
        prop_assert_eq!(delivered + sim.hosts[1].switch().counters().total_drops(), 1);
    }
}
