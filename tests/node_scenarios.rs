//! Whole hosts on the simulator: each host is a node built from a configuration file, as the
//! daemon builds it, with its switch, gossip membership and control fan-out; hosts find each
//! other only through gossip (no static peers). Virtual time, seeded, no root needed.

use std::net::Ipv4Addr;
use std::time::Duration;

use vxswitch::arp::arp_frame;
use vxswitch::config::Config;
use vxswitch::control::{ClusterKey, ControlUpdate};
use vxswitch::dataplane::Tunnel;
use vxswitch::node::PUBLISH_EVERY;
use vxswitch::sim::{ethernet_frame, Sim};
use vxswitch::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use vxswitch::wire::ethernet::{EtherType, EthernetAddress, EthernetFrame};
use vxswitch::wire::vxlan::Vni;

const VNI: Vni = Vni::new_const(1042);

fn ul(i: usize) -> std::net::IpAddr {
    Ipv4Addr::new(198, 18, 0, i as u8 + 1).into()
}
fn ctr_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, i as u8 + 10)
}
fn ctr_mac(i: usize) -> EthernetAddress {
    EthernetAddress([2, 0, 0, 0, i as u8 + 1, 10])
}

/// Host `i` of a gossip cluster joining through host 0: one overlay network, no static peers.
fn config(i: usize, extra: &str) -> Config {
    let seeds = if i == 0 { String::new() } else { format!("\"{}\"", ul(0)) };
    Config::parse(&format!(
        "[underlay]\naddress = \"{}\"\n\n[[network]]\nvni = {VNI}\ntap = \"vxs{i}\"\n{extra}\n\n\
         [gossip]\ncluster = \"sim\"\nname = \"n{i}\"\nkey_file = \"/nonexistent\"\nseeds = [{seeds}]\n",
        ul(i)
    ))
    .unwrap()
}

/// `n` configured nodes on a network with 1 ms latency, gossiping until everyone knows everyone.
fn cluster(n: usize, extra: &str) -> Sim {
    let mut sim = Sim::empty(3);
    sim.latency = Duration::from_millis(1);
    sim.jitter = Duration::from_micros(200);
    for i in 0..n {
        sim.add_configured(&config(i, extra), ClusterKey::from_bytes([9; 32]), None, 1000 + i as u64);
    }
    let deadline = sim.now + Duration::from_secs(10);
    let all_peers = |s: &Sim| s.hosts.iter().all(|h| h.switch().peers(0).len() == n - 1);
    assert!(sim.run_until_cond(deadline, all_peers), "nodes did not learn each other by gossip");
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

#[test]
fn nodes_learn_each_other_by_gossip_then_carry_a_frame_end_to_end() {
    let mut sim = cluster(2, "");
    for (i, h) in sim.hosts.iter().enumerate() {
        assert_eq!(h.switch().peers(0), [ul(1 - i)], "host {i}'s peer came from gossip, not configuration");
        assert!(h.view.peers.contains_key(&(VNI, ul(1 - i))), "and was fanned out to the kernel consumers too");
    }
    sim.take_underlay();
    let hello = ethernet_frame([0xff; 6], ctr_mac(0).0, 0x0800, b"hello from a container on host 0");
    sim.tap_send(0, 0, &hello);
    sim.run_for(Duration::from_millis(5));
    assert_eq!(sim.take_tap(1, 0), vec![hello], "the exact frame reaches host 1's TAP");
    let reply = ethernet_frame(ctr_mac(0).0, ctr_mac(1).0, 0x0800, b"reply");
    sim.tap_send(1, 0, &reply);
    sim.run_for(Duration::from_millis(5));
    assert_eq!(sim.take_tap(0, 0), vec![reply], "and the unicast reply comes back");
    let crossed = sim.take_underlay();
    let pairs: Vec<_> = crossed.iter().map(|d| (d.from, d.to, d.tunnel)).collect();
    assert_eq!(pairs, [(ul(0), ul(1), Tunnel::Vxlan), (ul(1), ul(0), Tunnel::Vxlan)], "one VXLAN datagram each way");
    for h in 0..2 {
        assert_eq!(sim.hosts[h].switch().counters().total_drops(), 0);
    }
}

#[test]
fn snooped_binding_reaches_the_peer_proxy_arp_through_gossip() {
    let mut sim = cluster(2, "");
    // A container on host 0 announces itself (gratuitous ARP); host 0's switch notes the binding.
    sim.tap_send(0, 0, &arp(ArpOperation::Request, ctr_mac(0), ctr_ip(0), EthernetAddress([0; 6]), ctr_ip(0)));
    let t0 = sim.now;
    let bound = |s: &Sim| s.hosts[1].switch().proxy_arp().lookup(VNI, ctr_ip(0)) == Some(ctr_mac(0));
    assert!(sim.run_until_cond(t0 + Duration::from_secs(5), bound), "binding not in host 1's proxy ARP");
    assert!(sim.now - t0 <= PUBLISH_EVERY + Duration::from_millis(500), "published within a publish period: {:?}", sim.now - t0);
    let record = sim.hosts[0].membership().local().clone();
    assert_eq!(record.network(VNI).unwrap().bindings.iter().map(|b| (b.ip, b.mac)).collect::<Vec<_>>(), [(ctr_ip(0).into(), ctr_mac(0))]);
    assert!(record.version > 0, "the record was republished");
    assert_eq!(sim.hosts[1].view.arp.get(&(VNI, ctr_ip(0).into())), Some(&ctr_mac(0)));
    // Host 1's container asks for it: answered on host 1's TAP, nothing crosses the underlay.
    sim.take_underlay();
    sim.take_tap(1, 0);
    sim.tap_send(1, 0, &arp(ArpOperation::Request, ctr_mac(1), ctr_ip(1), EthernetAddress([0; 6]), ctr_ip(0)));
    sim.run_for(Duration::from_millis(5));
    assert!(sim.take_underlay().is_empty(), "the request never left host 1");
    let replies = sim.take_tap(1, 0);
    assert_eq!(replies.len(), 1);
    let eth = EthernetFrame::new_checked(&replies[0][..]).unwrap();
    assert_eq!(eth.ethertype(), EtherType::ARP);
    let r = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
    assert_eq!((r.operation, r.source_hardware_addr, r.source_protocol_addr), (ArpOperation::Reply, ctr_mac(0), ctr_ip(0)));
    assert_eq!(sim.hosts[1].switch().counters().arp_replies, 1);
}

#[test]
fn kernel_consumers_get_every_gossip_update_the_switch_gets() {
    let mut sim = cluster(3, "");
    sim.tap_send(2, 0, &arp(ArpOperation::Request, ctr_mac(2), ctr_ip(2), EthernetAddress([0; 6]), ctr_ip(2)));
    sim.run_for(Duration::from_secs(3));
    for i in 0..3 {
        let v = &sim.hosts[i].view;
        let peers: Vec<std::net::IpAddr> = v.peers.keys().map(|(_, ul)| *ul).collect();
        assert_eq!(peers, (0..3).filter(|&k| k != i).map(ul).collect::<Vec<_>>(), "host {i}");
        assert_eq!(peers, sim.hosts[i].switch().peers(0), "host {i}: the switch got the same peers");
        let expect_binding = (i != 2).then_some(ctr_mac(2));
        assert_eq!(v.arp.get(&(VNI, ctr_ip(2).into())).copied(), expect_binding, "host {i}");
    }
    // A host stops: its peers withdraw it from switch and kernel consumers alike.
    sim.kill(2);
    sim.run_for(Duration::from_secs(15));
    for i in 0..2 {
        assert_eq!(sim.hosts[i].switch().peers(0), [ul(1 - i)], "host {i}");
        assert_eq!(sim.hosts[i].view.peer_downs, 1, "host {i}");
        assert!(sim.hosts[i].view.arp.is_empty(), "host {i}: binding withdrawn");
        assert!(sim.hosts[i].switch().proxy_arp().lookup(VNI, ctr_ip(2)).is_none(), "host {i}");
    }
    // Updates from outside the node take the same path.
    let now = sim.now;
    sim.hosts[0].node_mut().apply(now, ControlUpdate::ArpBinding { vni: VNI, ip: ctr_ip(7).into(), mac: ctr_mac(7) });
    assert_eq!(
        sim.hosts[0].node_mut().poll_kernel_update(),
        Some(ControlUpdate::ArpBinding { vni: VNI, ip: ctr_ip(7).into(), mac: ctr_mac(7) })
    );
}
