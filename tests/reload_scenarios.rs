//! Configuration reloads on the simulator: a node takes a changed configuration file as a
//! difference (peers, bindings, networks added and removed) while traffic crosses a network that
//! did not change, which loses nothing; with gossip, the other hosts follow what the reload
//! announces (subnets added, changed and removed) as they would after a restart. Virtual time,
//! no root needed.

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

mod gossip {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use ipnet::IpNet;
    use vxswitch::config::Config;
    use vxswitch::control::{ClusterKey, GossipConfig};
    use vxswitch::sim::Sim;
    use vxswitch::wire::vxlan::Vni;

    use super::{ul, V1042, V2000};

    /// Host `i` of a gossip cluster with the given routed networks as (vni, subnet); joins through
    /// host 0 (host 0 through host 1).
    fn config(i: usize, routed: &[(Vni, String)]) -> Config {
        let nets: String = routed
            .iter()
            .map(|(vni, subnet)| format!("[[network]]\nvni = {vni}\nmode = \"routed\"\ntap = \"vxs{vni}\"\nsubnet = \"{subnet}\"\n\n"))
            .collect();
        let seeds = format!("\"{}\"", ul(usize::from(i == 0)));
        Config::parse(&format!(
            "[underlay]\naddress = \"{}\"\n\n{nets}[gossip]\ncluster = \"sim\"\nname = \"n{i}\"\nkey_file = \"/nonexistent\"\nseeds = [{seeds}]\n",
            ul(i)
        ))
        .unwrap()
    }

    /// Host `i`'s usual networks: 10.9.i.0/24 on 1042 and 10.20.i.0/24 on 2000.
    fn both(i: usize) -> Vec<(Vni, String)> {
        vec![(V1042, format!("10.9.{i}.0/24")), (V2000, format!("10.20.{i}.0/24"))]
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    /// The route host `h`'s control plane installed for `subnet` on `vni`.
    fn route(sim: &Sim, h: usize, vni: Vni, subnet: &str) -> Option<IpAddr> {
        sim.hosts[h].view.routes.get(&(vni, net(subnet))).copied()
    }

    /// Where host `h`'s router on `vni` sends `dst` (the forwarding table itself).
    fn forwards(sim: &Sim, h: usize, vni: Vni, dst: [u8; 4]) -> Option<IpAddr> {
        let sw = sim.hosts[h].switch();
        sw.router(sw.port(vni)?)?.routes().lookup(Ipv4Addr::from(dst))
    }

    fn claim_since(sim: &Sim, h: usize, vni: Vni, subnet: &str) -> Option<u64> {
        let rec = sim.hosts[h].membership().local();
        rec.network(vni)?.subnets.iter().find(|c| c.net == net(subnet)).map(|c| c.since)
    }

    #[test]
    fn the_cluster_follows_a_reload_that_adds_a_network_changes_a_subnet_and_removes_a_network() {
        let key = || ClusterKey::from_bytes([7; 32]);
        let mut sim = Sim::empty(21);
        sim.latency = Duration::from_millis(1);
        let round = GossipConfig::default().interval;
        sim.add_configured(&config(0, &both(0)[..1]), key(), None, 1000);
        sim.add_configured(&config(1, &both(1)), key(), None, 1001);
        sim.add_configured(&config(2, &both(2)), key(), None, 1002);
        sim.run_for(Duration::from_secs(30));
        for h in [1, 2] {
            assert_eq!(route(&sim, h, V1042, "10.9.0.0/24"), Some(ul(0)));
            assert_eq!(route(&sim, h, V2000, "10.20.0.0/24"), None, "host 0 is not on 2000 yet");
        }
        assert_eq!(forwards(&sim, 0, V1042, [10, 9, 1, 5]), Some(ul(1)));
        let first_claim = claim_since(&sim, 0, V1042, "10.9.0.0/24").unwrap();

        // Host 0 reloads: network 2000 added with its subnet, 1042's subnet moved to 10.9.10.0/24.
        sim.run_for(Duration::from_secs(60));
        let reloaded = vec![(V1042, "10.9.10.0/24".to_string()), (V2000, "10.20.0.0/24".to_string())];
        let version = sim.hosts[0].membership().local().version;
        let change = sim.reload(0, &config(0, &reloaded));
        assert_eq!(change.record_version, Some(version + 1));
        let reload_secs = vxswitch::node::unix_secs(sim.wall_clock());
        assert_eq!(claim_since(&sim, 0, V1042, "10.9.10.0/24"), Some(reload_secs), "a new subnet is claimed at the reload");
        assert!(reload_secs > first_claim);

        // Within one gossip round the other hosts route the new subnets to host 0, not the old one.
        sim.run_for(round);
        for h in [1, 2] {
            assert_eq!(route(&sim, h, V1042, "10.9.10.0/24"), Some(ul(0)), "host {h}");
            assert_eq!(route(&sim, h, V1042, "10.9.0.0/24"), None, "host {h} still routes the old subnet");
            assert_eq!(route(&sim, h, V2000, "10.20.0.0/24"), Some(ul(0)), "host {h}");
            assert_eq!(forwards(&sim, h, V1042, [10, 9, 10, 5]), Some(ul(0)));
            assert_eq!(forwards(&sim, h, V1042, [10, 9, 0, 5]), None);
            assert_eq!(forwards(&sim, h, V2000, [10, 20, 0, 5]), Some(ul(0)));
            assert!(sim.hosts[h].view.peers.contains_key(&(V2000, ul(0))));
        }
        // Host 0's changed network started afresh, and gossip gave it its peers and routes again;
        // the added network got them too.
        assert_eq!(sim.hosts[0].switch().peers(sim.hosts[0].switch().port(V1042).unwrap()), [ul(1), ul(2)]);
        assert_eq!(forwards(&sim, 0, V1042, [10, 9, 1, 5]), Some(ul(1)));
        assert_eq!(forwards(&sim, 0, V1042, [10, 9, 2, 5]), Some(ul(2)));
        assert_eq!(forwards(&sim, 0, V2000, [10, 20, 2, 5]), Some(ul(2)));

        // A restart later claims the subnet with the reload's time, saved with the claims.
        sim.run_for(Duration::from_secs(30));
        sim.restart_configured(0, &config(0, &reloaded), key(), 2000);
        assert_eq!(claim_since(&sim, 0, V1042, "10.9.10.0/24"), Some(reload_secs));
        sim.run_for(Duration::from_secs(10));
        assert_eq!(route(&sim, 1, V1042, "10.9.10.0/24"), Some(ul(0)));

        // Host 0 leaves network 2000 by reload: its subnet and its peer are withdrawn there.
        let change = sim.reload(0, &config(0, &reloaded[..1]));
        assert_eq!(change.removed.iter().map(|r| r.1).collect::<Vec<_>>(), [V2000]);
        sim.run_for(round);
        for h in [1, 2] {
            assert_eq!(route(&sim, h, V2000, "10.20.0.0/24"), None, "host {h}");
            assert_eq!(forwards(&sim, h, V2000, [10, 20, 0, 5]), None);
            assert!(!sim.hosts[h].view.peers.contains_key(&(V2000, ul(0))), "host {h} keeps host 0 as a peer on 2000");
            assert_eq!(route(&sim, h, V1042, "10.9.10.0/24"), Some(ul(0)), "the other network is untouched");
        }
        assert!(sim.hosts[1].membership().conflicts().is_empty());
    }
}
