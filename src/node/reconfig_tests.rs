//! Unit tests of a reload's effect on this host's gossip record; the cluster's view of it is in
//! `tests/reload_scenarios.rs`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::*;
use crate::control::{Binding, ClusterKey, NetworkClaim, SubnetClaim};
use crate::node::state::Claims;
use crate::node::{unix_secs, GossipJoin, NodeConfig};
use crate::wire::ethernet::EthernetAddress;

const WALL: u64 = 1_000_000;

fn vni(n: u32) -> Vni {
    Vni::new(n).unwrap()
}

fn routed(n: u32, subnet: &str) -> String {
    format!("[[network]]\nvni = {n}\ntap = \"vxs{n}\"\nmode = \"routed\"\nsubnet = \"{subnet}\"\n\n")
}

fn overlay(n: u32) -> String {
    format!("[[network]]\nvni = {n}\ntap = \"vxs{n}\"\n\n")
}

fn leased(n: u32) -> String {
    format!("[[network]]\nvni = {n}\ntap = \"vxs{n}\"\nmode = \"routed\"\ncluster_cidr = \"10.60.0.0/16\"\nhost_prefix = 24\n\n")
}

fn config(networks: &str) -> Config {
    Config::parse(&format!(
        "[underlay]\naddress = \"198.18.0.1\"\n\n{networks}[gossip]\ncluster = \"c\"\nname = \"a\"\nkey_file = \"/k\"\n"
    ))
    .unwrap()
}

/// A gossiping node of `config` started at `t0` (wall clock [`WALL`]), with `claims` saved before.
fn node(config: &Config, t0: Instant, claims: Claims) -> Node {
    let wall = UNIX_EPOCH + Duration::from_secs(WALL);
    let advertised: SocketAddr = "198.18.0.1:4790".parse().unwrap();
    let join = GossipJoin { claims, ..GossipJoin::for_tests(ClusterKey::from_bytes([1; 32]), advertised, 0) };
    let mut cfg = NodeConfig::from_config(config, 5, wall, None, Some(join));
    cfg.gossip.as_mut().unwrap().seed = Some(3);
    Node::new(cfg, t0, wall).unwrap()
}

fn local(node: &Node) -> &MemberRecord {
    node.membership().unwrap().local()
}

fn subnets(node: &Node, n: u32) -> Option<Vec<(String, u64)>> {
    let net = local(node).network(vni(n))?;
    Some(net.subnets.iter().map(|s| (s.net.to_string(), s.since)).collect())
}

fn binding(last: u8) -> Binding {
    Binding { ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), mac: EthernetAddress([2, 0, 0, 0, 0, last]), since: 77, seq: 0 }
}

#[test]
fn a_reload_that_adds_a_routed_network_announces_its_subnet_claimed_now_and_keeps_older_claims() {
    let t0 = Instant::now();
    let first = config(&(routed(42, "10.42.1.0/24") + &overlay(7)));
    let mut node = node(&first, t0, Claims::default());
    let v0 = local(&node).version;
    assert_eq!(subnets(&node, 42).unwrap(), [("10.42.1.0/24".to_string(), WALL)]);

    let t1 = t0 + Duration::from_secs(100);
    let second = config(&(routed(42, "10.42.1.0/24") + &overlay(7) + &routed(50, "10.50.1.0/24")));
    let change = node.apply_config(t1, NewConfig::of(&second));
    assert_eq!(change.added, [(2, vni(50))]);
    assert_eq!(local(&node).version, v0 + 1, "one new version for the whole reload");
    assert_eq!(change.record_version, Some(v0 + 1));
    assert_eq!(subnets(&node, 50).unwrap(), [("10.50.1.0/24".to_string(), unix_secs(node.wall_clock(t1)))]);
    assert_eq!(unix_secs(node.wall_clock(t1)), WALL + 100);
    assert_eq!(subnets(&node, 42).unwrap(), [("10.42.1.0/24".to_string(), WALL)], "an unchanged claim keeps its time");
    assert_eq!(local(&node).networks.iter().map(|n| n.vni).collect::<Vec<_>>(), [vni(42), vni(7), vni(50)]);
    assert_eq!((local(&node).name.as_str(), local(&node).epoch), ("a", 5), "name and epoch stay");

    // The same file again: nothing to announce, no new version.
    let change = node.apply_config(t1 + Duration::from_secs(5), NewConfig::of(&second));
    assert!(change.is_empty(), "{change:?}");
    assert_eq!(local(&node).version, v0 + 1);
}

#[test]
fn a_removed_network_leaves_the_record_a_changed_subnet_replaces_the_old_and_bindings_stay_where_they_may() {
    let t0 = Instant::now();
    let first = config(&(routed(42, "10.42.1.0/24") + &overlay(7) + &overlay(8)));
    let mut node = node(&first, t0, Claims::default());
    // Bindings published on every network (as snooping or the CNI plugin would have them).
    let mut rec = local(&node).clone();
    for (i, net) in rec.networks.iter_mut().enumerate() {
        net.bindings = vec![binding(i as u8 + 1)];
    }
    node.set_record(t0, rec).unwrap();
    let v0 = local(&node).version;

    let t1 = t0 + Duration::from_secs(60);
    let second = config(&(routed(42, "10.42.2.0/24") + &overlay(8)));
    let change = node.apply_config(t1, NewConfig::of(&second));
    assert_eq!(change.removed, [(0, vni(42)), (1, vni(7))]);
    assert_eq!(change.added, [(0, vni(42))], "the changed network starts afresh on the first free port");
    let r = local(&node);
    assert_eq!(r.version, v0 + 1);
    assert_eq!(r.network(vni(7)), None, "the removed network's claim and bindings are gone");
    assert_eq!(subnets(&node, 42).unwrap(), [("10.42.2.0/24".to_string(), WALL + 60)], "the old subnet is withdrawn");
    assert_eq!(r.network(vni(42)).unwrap().bindings, [], "the restarted network forgot its bindings, as its switch did");
    assert_eq!(r.network(vni(8)).unwrap(), &NetworkClaim { vni: vni(8), subnets: vec![], bindings: vec![binding(3)] });
    assert_eq!(r.modes, ["overlay", "routed"]);

    // The last routed network goes: the record stops announcing the mode too.
    node.apply_config(t1, NewConfig::of(&config(&overlay(8))));
    assert_eq!((local(&node).modes.as_slice(), local(&node).version), (["overlay".to_string()].as_slice(), v0 + 2));
}

#[test]
fn a_leased_subnet_stays_claimed_across_a_reload_of_the_other_networks() {
    let t0 = Instant::now();
    let kept = SubnetClaim { net: "10.60.9.0/24".parse().unwrap(), since: 33 };
    let claims = Claims { subnets: vec![], leases: vec![(5, kept.ipv4().unwrap(), kept.since)] };
    let first = config(&(leased(5) + &overlay(7)));
    let mut node = node(&first, t0, claims);
    assert_eq!(local(&node).network(vni(5)).unwrap().subnets, [kept]);

    let second = config(&(leased(5) + &overlay(7) + &routed(42, "10.42.1.0/24")));
    let change = node.apply_config(t0 + Duration::from_secs(1), NewConfig::of(&second));
    assert!(change.record_version.is_some());
    assert_eq!(local(&node).network(vni(5)).unwrap().subnets, [kept], "the lease's claim, not the configuration's (none)");
    assert_eq!(node.lease(vni(5)).unwrap().current(), Some(kept));
    // What the daemon saves: the new subnet with its claim time, the lease as it was.
    let saved = Claims::default().with_record(local(&node), &[vni(5)]);
    assert_eq!(saved.subnets, [(42, "10.42.1.0/24".parse().unwrap(), WALL + 1)]);
}

#[test]
fn without_gossip_a_reload_announces_nothing() {
    let t0 = Instant::now();
    let plain = |nets: &str| Config::parse(&format!("[underlay]\naddress = \"198.18.0.1\"\n\n{nets}")).unwrap();
    let wall = UNIX_EPOCH + Duration::from_secs(WALL);
    let mut node = Node::new(NodeConfig::from_config(&plain(&overlay(7)), 1, wall, None, None), t0, wall).unwrap();
    let change = node.apply_config(t0, NewConfig::of(&plain(&(overlay(7) + &routed(42, "10.42.1.0/24")))));
    assert_eq!((change.added.as_slice(), change.record_version), ([(1, vni(42))].as_slice(), None));
    assert!(node.membership().is_none());
}
