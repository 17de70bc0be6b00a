//! The ND proxy on the simulator: whole hosts that find each other by gossip, IPv6 bindings
//! snooped from one host's TAP and published in its record, Neighbor Solicitations answered on
//! the other host's TAP without crossing the underlay, DAD probes defended or left alone, and
//! spoofed advertisements dropped from containers and from peers. Virtual time, no root.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use vxswitch::config::Config;
use vxswitch::control::ClusterKey;
use vxswitch::dataplane::DropReason;
use vxswitch::nd::{ndisc_frame, parse, solicited_node, ALL_NODES};
use vxswitch::node::PUBLISH_EVERY;
use vxswitch::sim::Sim;
use vxswitch::wire::ethernet::{EthernetAddress, EthernetFrame};
use vxswitch::wire::icmpv6::{NdiscRepr, NeighborFlags};
use vxswitch::wire::vxlan::Vni;

const VNI: Vni = Vni::new_const(1042);

fn ul(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, i as u8 + 1)
}
fn ctr_ip(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x42, 0, 0, 0, 0, 0, i as u16 + 0x10)
}
fn ctr_mac(i: usize) -> EthernetAddress {
    EthernetAddress([2, 0, 0, 0, i as u8 + 1, 10])
}
const EVIL: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0xee, 0xee]);

/// Host `i` of a gossip cluster joining through host 0: one overlay network, no static peers.
fn config(i: usize) -> Config {
    let seeds = if i == 0 { String::new() } else { format!("\"{}\"", ul(0)) };
    Config::parse(&format!(
        "[underlay]\naddress = \"{}\"\n\n[[network]]\nvni = {VNI}\ntap = \"vxs{i}\"\n\n\
         [gossip]\ncluster = \"sim\"\nname = \"n{i}\"\nkey_file = \"/nonexistent\"\nseeds = [{seeds}]\n",
        ul(i)
    ))
    .unwrap()
}

fn cluster(n: usize) -> Sim {
    let mut sim = Sim::empty(5);
    sim.latency = Duration::from_millis(1);
    sim.jitter = Duration::from_micros(200);
    for i in 0..n {
        sim.add_configured(&config(i), ClusterKey::from_bytes([9; 32]), None, 1000 + i as u64);
    }
    let deadline = sim.now + Duration::from_secs(10);
    let all_peers = |s: &Sim| s.hosts.iter().all(|h| h.switch().peers(0).len() == n - 1);
    assert!(sim.run_until_cond(deadline, all_peers), "nodes did not learn each other by gossip");
    sim
}

/// A Neighbor Solicitation for `target` (a DAD probe when `src` is `::`).
fn ns(from: EthernetAddress, src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let lladdr = (!src.is_unspecified()).then_some(from);
    let (dst, dmac) = solicited_node(target);
    ndisc_frame(&NdiscRepr::NeighborSolicit { target_addr: target, lladdr }, from, src, dmac, dst, None)
}

/// An unsolicited Neighbor Advertisement to all-nodes: `target` is at `from`.
fn na(from: EthernetAddress, target: Ipv6Addr) -> Vec<u8> {
    let nd = NdiscRepr::NeighborAdvert { flags: NeighborFlags::OVERRIDE, target_addr: target, lladdr: Some(from) };
    ndisc_frame(&nd, from, target, EthernetAddress([0x33, 0x33, 0, 0, 0, 1]), ALL_NODES, None)
}

/// VXLAN header (I flag) + `inner`.
fn vxlan(inner: &[u8]) -> Vec<u8> {
    let mut v = vec![0x08, 0, 0, 0];
    v.extend_from_slice(&(VNI.get() << 8).to_be_bytes());
    v.extend_from_slice(inner);
    v
}

/// A cluster of 2 where host 1 knows, by gossip, that container 0 (on host 0) has `ctr_ip(0)`.
fn bound_cluster() -> Sim {
    let mut sim = cluster(2);
    sim.tap_send(0, 0, &na(ctr_mac(0), ctr_ip(0)));
    let t0 = sim.now;
    let bound = |s: &Sim| s.hosts[1].switch().proxy_nd().lookup(VNI, ctr_ip(0)) == Some(ctr_mac(0));
    assert!(sim.run_until_cond(t0 + Duration::from_secs(5), bound), "binding not in host 1's ND proxy");
    assert!(sim.now - t0 <= PUBLISH_EVERY + Duration::from_millis(500), "published within a publish period: {:?}", sim.now - t0);
    sim.take_underlay();
    sim.take_tap(0, 0);
    sim.take_tap(1, 0);
    sim
}

#[test]
fn snooped_ipv6_binding_spreads_by_gossip_and_solicitations_are_answered_locally() {
    let mut sim = bound_cluster();
    let record = sim.hosts[0].membership().local().clone();
    let bindings: Vec<_> = record.network(VNI).unwrap().bindings.iter().map(|b| (b.ip, b.mac)).collect();
    assert_eq!(bindings, [(ctr_ip(0).into(), ctr_mac(0))]);
    let json = String::from_utf8(record.encode()).unwrap();
    assert!(json.contains("\"d\":[[\"fd00:42::10\""), "IPv6 bindings travel apart from IPv4 ones: {json}");
    assert!(!json.contains("\"b\":"), "no IPv4 binding, no `b` key: {json}");
    assert_eq!(sim.hosts[1].view.arp.get(&(VNI, ctr_ip(0).into())), Some(&ctr_mac(0)));

    // Container 1 on host 1 resolves container 0: answered on host 1's TAP, nothing crosses.
    for _ in 0..3 {
        sim.tap_send(1, 0, &ns(ctr_mac(1), ctr_ip(1), ctr_ip(0)));
    }
    sim.run_for(Duration::from_millis(5));
    let crossed = sim.take_underlay();
    assert!(crossed.is_empty(), "{} solicitations crossed the underlay", crossed.len());
    let replies = sim.take_tap(1, 0);
    assert_eq!(replies.len(), 3);
    let eth = EthernetFrame::new_checked(&replies[0][..]).unwrap();
    assert_eq!((eth.src_addr(), eth.dst_addr()), (ctr_mac(0), ctr_mac(1)));
    let m = parse(eth.src_addr(), eth.payload()).expect("a valid advertisement");
    assert_eq!((m.src, m.dst), (ctr_ip(0), ctr_ip(1)));
    assert_eq!(
        m.repr,
        NdiscRepr::NeighborAdvert {
            flags: NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
            target_addr: ctr_ip(0),
            lladdr: Some(ctr_mac(0))
        }
    );
    let c = sim.hosts[1].switch().counters();
    assert_eq!((c.nd_replies, c.total_drops()), (3, 0));
    // Host 1's own container was learned from its solicitation and is published too.
    let seen = |s: &Sim| s.hosts[0].switch().proxy_nd().lookup(VNI, ctr_ip(1)) == Some(ctr_mac(1));
    let deadline = sim.now + Duration::from_secs(5);
    assert!(sim.run_until_cond(deadline, seen), "host 0 did not learn container 1 by gossip");

    // Another container on host 1 resolves container 1, which sits behind the same TAP: the
    // bridge delivered the solicitation already, so it goes no further.
    sim.take_underlay();
    sim.tap_send(1, 0, &ns(ctr_mac(2), ctr_ip(2), ctr_ip(1)));
    sim.run_for(Duration::from_millis(5));
    assert!(sim.take_underlay().is_empty(), "a solicitation for a local container crossed");
    assert_eq!(sim.hosts[1].switch().counters().nd_local_target, 1);

    // Unknown addresses still resolve the plain L2 way: flooded to the peer.
    sim.take_underlay();
    sim.tap_send(1, 0, &ns(ctr_mac(1), ctr_ip(1), ctr_ip(7)));
    sim.run_for(Duration::from_millis(5));
    assert_eq!(sim.take_underlay().len(), 1, "a solicitation without binding is flooded");
}

#[test]
fn dad_probes_are_defended_for_the_owner_and_never_answered_for_the_owner_itself() {
    let mut sim = bound_cluster();
    // A newcomer on host 1 probes container 0's address: host 1 defends it on container 0's
    // behalf (advertisement to all-nodes, Solicited clear), and the probe stays on host 1.
    let newcomer = EthernetAddress([2, 0, 0, 0, 9, 9]);
    sim.tap_send(1, 0, &ns(newcomer, Ipv6Addr::UNSPECIFIED, ctr_ip(0)));
    sim.run_for(Duration::from_millis(5));
    assert!(sim.take_underlay().is_empty(), "the probe did not cross");
    let out = sim.take_tap(1, 0);
    assert_eq!(out.len(), 1);
    let eth = EthernetFrame::new_checked(&out[0][..]).unwrap();
    let m = parse(eth.src_addr(), eth.payload()).unwrap();
    assert_eq!((m.src, m.dst, eth.src_addr()), (ctr_ip(0), ALL_NODES, ctr_mac(0)));
    assert_eq!(m.repr, NdiscRepr::NeighborAdvert { flags: NeighborFlags::OVERRIDE, target_addr: ctr_ip(0), lladdr: Some(ctr_mac(0)) });
    assert_eq!(sim.hosts[1].switch().counters().nd_dad_defended, 1);

    // The owner probing its own address again (container 0 moved to host 1, interface
    // restarted): nothing may answer, and nothing crosses.
    sim.tap_send(1, 0, &ns(ctr_mac(0), Ipv6Addr::UNSPECIFIED, ctr_ip(0)));
    sim.run_for(Duration::from_millis(5));
    assert!(sim.take_underlay().is_empty());
    assert!(sim.take_tap(1, 0).is_empty(), "the owner's own probe is never answered");
    assert_eq!(sim.hosts[1].switch().counters().nd_dad_own, 1);

    // On host 0, where container 0 lives, its probe is not in the ND proxy (its own binding is
    // local): it is flooded like any probe, and host 1 does not answer it either.
    sim.tap_send(0, 0, &ns(ctr_mac(0), Ipv6Addr::UNSPECIFIED, ctr_ip(0)));
    sim.run_for(Duration::from_millis(5));
    assert_eq!(sim.take_underlay().len(), 1);
    assert!(sim.take_tap(0, 0).is_empty(), "no defence against the owner");
    assert_eq!(sim.take_tap(1, 0).len(), 1, "the probe reaches host 1's containers unchanged");
    // A probe never creates a binding.
    sim.tap_send(1, 0, &ns(newcomer, Ipv6Addr::UNSPECIFIED, ctr_ip(5)));
    sim.run_for(PUBLISH_EVERY * 2);
    assert!(sim.hosts[0].switch().proxy_nd().lookup(VNI, ctr_ip(5)).is_none());
    for h in 0..2 {
        assert_eq!(sim.hosts[h].switch().counters().total_drops(), 0, "host {h}");
    }
}

#[test]
fn spoofed_advertisements_are_dropped_from_containers_and_from_peers() {
    let mut sim = bound_cluster();
    // From a container on host 1: an advertisement claiming container 0's address.
    sim.tap_send(1, 0, &na(EVIL, ctr_ip(0)));
    // And a solicitation sent from container 0's address with another MAC.
    sim.tap_send(1, 0, &ns(EVIL, ctr_ip(0), ctr_ip(1)));
    sim.run_for(Duration::from_millis(5));
    assert!(sim.take_underlay().is_empty(), "no spoofed ND crossed");
    assert_eq!(sim.hosts[1].switch().counters().drops(DropReason::NdSpoofed), 2);
    // From a peer: host 0 sends (or an attacker on the underlay forges) the same advertisement.
    sim.inject_underlay(ul(0).into(), 1, &vxlan(&na(EVIL, ctr_ip(0))));
    sim.run_for(Duration::from_millis(5));
    assert!(sim.take_tap(1, 0).is_empty(), "not delivered");
    assert_eq!(sim.hosts[1].switch().counters().drops(DropReason::NdSpoofed), 3);
    // The binding is untouched: solicitations still get container 0's real MAC.
    sim.tap_send(1, 0, &ns(ctr_mac(1), ctr_ip(1), ctr_ip(0)));
    sim.run_for(Duration::from_millis(5));
    let out = sim.take_tap(1, 0);
    assert_eq!(out.len(), 1);
    assert_eq!(EthernetFrame::new_checked(&out[0][..]).unwrap().src_addr(), ctr_mac(0));
    // The true owner's advertisement passes.
    sim.inject_underlay(ul(0).into(), 1, &vxlan(&na(ctr_mac(0), ctr_ip(0))));
    sim.run_for(Duration::from_millis(5));
    assert_eq!(sim.take_tap(1, 0).len(), 1);
    assert_eq!(sim.hosts[1].switch().counters().drops(DropReason::NdSpoofed), 3);
    // Spoofed claims were not published: host 0 learns container 1 (from its solicitation)
    // and nothing else.
    sim.run_for(PUBLISH_EVERY * 2);
    let nd0 = sim.hosts[0].switch().proxy_nd();
    assert_eq!((nd0.len(), nd0.lookup(VNI, ctr_ip(1))), (1, Some(ctr_mac(1))));
}
