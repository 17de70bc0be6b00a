//! Configuration reloads on the simulator: a node takes a changed configuration file as a
//! difference (peers, bindings, networks added and removed) while traffic crosses a network that
//! did not change, which loses nothing. Virtual time, no root needed.

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vxswitch::config::Config;
use vxswitch::control::{ControlUpdate, PeerInfo};
use vxswitch::node::NodeConfig;
use vxswitch::sim::{ethernet_frame, Sim};
use vxswitch::wire::ethernet::EthernetAddress;
use vxswitch::wire::vxlan::Vni;

const V1042: Vni = Vni::new_const(1042);
const V2000: Vni = Vni::new_const(2000);

fn ul(i: usize) -> std::net::IpAddr {
    Ipv4Addr::new(198, 18, 0, i as u8 + 1).into()
}

/// A configuration of host `i` with the given `[[network]]` sections.
fn config(i: usize, networks: &str) -> Config {
    Config::parse(&format!("[underlay]\naddress = \"{}\"\n\n{networks}", ul(i))).unwrap()
}

fn network(vni: u32, peers: &[usize], extra: &str) -> String {
    let peers: Vec<String> = peers.iter().map(|&p| format!("\"{}\"", ul(p))).collect();
    format!("[[network]]\nvni = {vni}\ntap = \"vxs{vni}\"\npeers = [{}]\n{extra}\n", peers.join(", "))
}

fn start(configs: &[Config]) -> Sim {
    let wall: SystemTime = UNIX_EPOCH + Duration::from_secs(1_000_000);
    Sim::with_nodes(configs.iter().map(|c| (c.underlay.address, NodeConfig::from_config(c, 1, wall, None, None))).collect())
}

/// A frame on host `from`'s TAP `port` from MAC `src` to an unknown unicast MAC (flooded).
fn frame(src: u8, seq: u16) -> Vec<u8> {
    ethernet_frame([2, 0, 0, 0, 9, 9], [2, 0, 0, 0, 0, src], 0x88b5, &seq.to_be_bytes())
}

/// Send `count` frames from host 1's `port` to host 0, one per virtual millisecond; returns how
/// many reached host 0's TAP `to_port`.
fn stream(sim: &mut Sim, port: usize, to_port: usize, count: u16) -> usize {
    for seq in 0..count {
        sim.tap_send(1, port, &frame(1, seq));
        sim.run_for(Duration::from_millis(1));
    }
    sim.take_tap(0, to_port).len()
}

#[test]
fn reload_adds_and_removes_a_peer_and_a_network_and_loses_nothing_elsewhere() {
    let a = |peers: &[usize]| network(1042, peers, "");
    let b = network(2000, &[1], "arp = [{ ip = \"192.0.2.99\", mac = \"02:00:00:00:00:99\" }]");
    let mut sim = start(&[config(0, &a(&[1])), config(1, &(a(&[0]) + &network(2000, &[0], "")))]);
    assert_eq!(stream(&mut sim, 0, 0, 100), 100);
    let learned = sim.hosts[0].switch().fdb().len();
    assert!(learned > 0);

    // Add a peer to the unchanged network's neighbour list, and a second network.
    let change = sim.reload(0, &config(0, &(a(&[1, 2]) + &b)));
    assert!(change.removed.is_empty());
    assert_eq!(change.added, [(1, V2000)]);
    let peer = |vni, i| ControlUpdate::PeerUp { vni, peer: PeerInfo { underlay: ul(i), vtep_mac: None } };
    let bind =
        ControlUpdate::ArpBinding { vni: V2000, ip: Ipv4Addr::new(192, 0, 2, 99).into(), mac: EthernetAddress([2, 0, 0, 0, 0, 0x99]) };
    assert_eq!(change.updates, [peer(V1042, 2), peer(V2000, 1), bind.clone()]);
    assert_eq!(sim.hosts[0].switch().peers(0), [ul(1), ul(2)]);
    assert_eq!(sim.hosts[0].switch().fdb().len(), learned, "the unchanged network keeps what it learned");
    assert_eq!(stream(&mut sim, 0, 0, 100), 100, "nothing lost on the unchanged network");
    assert_eq!(stream(&mut sim, 1, 1, 50), 50, "the added network forwards");
    assert_eq!(sim.hosts[0].switch().proxy_arp().lookup(V2000, Ipv4Addr::new(192, 0, 2, 99)), Some(EthernetAddress([2, 0, 0, 0, 0, 0x99])));

    // The same file again changes nothing.
    assert!(sim.reload(0, &config(0, &(a(&[1, 2]) + &b))).is_empty());

    // And back: the peer and the network go, the unchanged network does not notice.
    let change = sim.reload(0, &config(0, &a(&[1])));
    assert_eq!(change.removed, [(1, V2000)]);
    assert!(change.added.is_empty());
    let down = |vni, i| ControlUpdate::PeerDown { vni, underlay: ul(i) };
    let unbind = ControlUpdate::ArpUnbind { vni: V2000, ip: Ipv4Addr::new(192, 0, 2, 99).into() };
    assert_eq!(change.updates, [down(V1042, 2), down(V2000, 1), unbind]);
    assert_eq!(sim.hosts[0].switch().peers(0), [ul(1)]);
    assert_eq!(sim.hosts[0].switch().port(V2000), None);
    assert_eq!(sim.hosts[0].switch().vni(1), None, "the port is retired");
    assert_eq!(stream(&mut sim, 0, 0, 100), 100, "nothing lost on the unchanged network");
    assert_eq!(stream(&mut sim, 1, 1, 20), 0, "the removed network forwards nothing");
    let counters = sim.hosts[0].switch().counters();
    assert_eq!(counters.drops(vxswitch::dataplane::DropReason::UnknownVni), 20, "counted as unknown VNI");
}

#[test]
fn a_changed_network_starts_afresh_on_a_port_while_the_others_keep_theirs() {
    let two = |extra: &str| config(0, &(network(1042, &[1], "") + &network(2000, &[1], extra)));
    let mut sim = start(&[two(""), config(1, &(network(1042, &[0], "") + &network(2000, &[0], "")))]);
    assert_eq!(stream(&mut sim, 1, 1, 10), 10);
    assert_eq!(stream(&mut sim, 0, 0, 10), 10);
    let fdb = sim.hosts[0].switch().fdb().len();
    assert_eq!(fdb, 2, "one MAC learned per network");

    let change = sim.reload(0, &two("unknown_arp = \"drop\""));
    assert_eq!((change.removed.as_slice(), change.added.as_slice()), ([(1, V2000)].as_slice(), [(1, V2000)].as_slice()));
    assert_eq!(
        change.updates,
        [
            ControlUpdate::PeerDown { vni: V2000, underlay: ul(1) },
            ControlUpdate::PeerUp { vni: V2000, peer: PeerInfo { underlay: ul(1), vtep_mac: None } }
        ]
    );
    assert_eq!(sim.hosts[0].switch().fdb().len(), 1, "the changed network forgot what it learned, the other did not");
    assert_eq!(sim.hosts[0].switch().port(V1042), Some(0));
    assert_eq!(stream(&mut sim, 0, 0, 50), 50);
    assert_eq!(stream(&mut sim, 1, 1, 50), 50);
}
