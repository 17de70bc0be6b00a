//! Subnet leases on real kernels: three hosts in network namespaces run the daemon on a routed
//! (then a host-subnet) network that gives only `cluster_cidr` and `host_prefix`; each leases a
//! /24 over gossip, the CNI plugin (run as a runtime runs it) takes container addresses from the
//! lease, containers on different hosts ping each other, and a restarted daemon serves the same
//! lease at once. In host-subnet mode the bridge's gateway address and the kernel routes follow
//! the leases.
//! Needs root; without it the test prints SKIP (or fails with VXSWITCH_REQUIRE_ROOT=1).

#[path = "common/cni.rs"]
mod cni_common;
#[path = "common/netns.rs"]
mod netns_common;
#[path = "common/traffic.rs"]
mod traffic;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use cni_common::{add_containers, bin, conf, result_ip};
use ipnet::Ipv4Net;
use netns_common::have_root;
use serde_json::{json, Value};
use traffic::all_pairs_ping;
use vxswitch::testnet::lab::{host_subnet, Addressing, HostKind, Lab, VNI};

const RANGE: &str = "198.19.0.0/16";

/// Host `i` in a gossip cluster on a `mode` network ("routed" or "host-subnet") leasing a /24
/// of [`RANGE`].
fn leased_config(lab: &Lab, i: usize, mode: &str) -> String {
    let config = lab.gossip_config(i, mode, &[0]).unwrap();
    let subnet = format!("subnet = \"{}\"\n", host_subnet(i));
    assert!(config.contains(&subnet));
    config.replace(&subnet, &format!("cluster_cidr = \"{RANGE}\"\nhost_prefix = 24\n"))
}

/// The daemon's `cni network` answer on host `h`.
fn network(lab: &Lab, h: usize) -> Value {
    let text = vxswitch::sys::daemon::control_socket::query(&lab.socket(h), &format!("cni network {VNI}")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The subnet and gateway host `h` holds, if it holds a lease.
fn lease(lab: &Lab, h: usize) -> Option<(Ipv4Net, Ipv4Addr)> {
    let v = network(lab, h);
    Some((v["subnet"].as_str()?.parse().unwrap(), v["gateway"].as_str()?.parse().unwrap()))
}

/// Wait until every host holds a lease; returns them.
fn wait_for_leases(lab: &Lab, limit: Duration) -> Vec<(Ipv4Net, Ipv4Addr)> {
    let start = Instant::now();
    loop {
        let leases: Vec<_> = (0..lab.hosts.len()).map(|h| lease(lab, h)).collect();
        if leases.iter().all(Option::is_some) {
            return leases.into_iter().flatten().collect();
        }
        assert!(start.elapsed() < limit, "leases {leases:?} after {limit:?}; logs in {}", lab.dir.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The routes host `h` has to the other hosts' subnets: the router's table (routed) or the
/// kernel's `proto 86` routes (host-subnet).
fn routes(lab: &Lab, h: usize, mode: &str) -> usize {
    if mode == "routed" {
        lab.stats(h).unwrap()["networks"][0]["routes"].as_array().unwrap().len()
    } else {
        lab.hosts[h].ns.output("ip", &["-4", "route", "show", "proto", "86"]).unwrap().lines().count()
    }
}

/// Wait until every host routes the other hosts' subnets.
fn wait_for_routes(lab: &Lab, mode: &str, limit: Duration) {
    let start = Instant::now();
    while (0..lab.hosts.len()).any(|h| routes(lab, h, mode) < lab.hosts.len() - 1) {
        assert!(start.elapsed() < limit, "routes not learned by gossip; logs in {}", lab.dir.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The IPv4 addresses on host `h`'s bridge.
fn bridge_addresses(lab: &Lab, h: usize) -> String {
    lab.hosts[h].ns.output("ip", &["-4", "-o", "addr", "show", "br0"]).unwrap()
}

#[test]
fn netns_lease_3_hosts_lease_over_gossip_and_containers_ping_across_hosts() {
    if !have_root("netns_lease_3_hosts_lease_over_gossip_and_containers_ping_across_hosts") {
        return;
    }
    three_hosts_lease_and_ping("lsn", "routed");
}

#[test]
fn netns_lease_host_subnet_gateway_and_kernel_routes_follow_the_lease() {
    if !have_root("netns_lease_host_subnet_gateway_and_kernel_routes_follow_the_lease") {
        return;
    }
    three_hosts_lease_and_ping("lsh", "host-subnet");
}

/// Three hosts lease over gossip on a `mode` network; CNI containers ping across hosts; host 1's
/// daemon restarts and serves the same lease at once.
fn three_hosts_lease_and_ping(tag: &str, mode: &str) {
    let mut lab = Lab::build_with(tag, &[HostKind::Bare; 3], 0, bin(), Addressing::PerHost).unwrap();
    let configs: Vec<String> = (0..3).map(|i| leased_config(&lab, i, mode)).collect();
    let start = Instant::now();
    for (i, config) in configs.iter().enumerate() {
        lab.start_vxswitch_with(i, config).unwrap();
    }
    // Before a lease, the plugin's STATUS says not ready (50).
    if lease(&lab, 0).is_none() {
        let status = cni_common::cni(&lab, 0, "STATUS", "", "", &conf(&lab, 0, "1.1.0", json!({})));
        assert_eq!(status.code(), Some(50), "{}", status.out);
    }
    let leases = wait_for_leases(&lab, Duration::from_secs(20));
    let took = start.elapsed();
    let range: Ipv4Net = RANGE.parse().unwrap();
    let nets: BTreeSet<Ipv4Net> = leases.iter().map(|l| l.0).collect();
    assert_eq!(nets.len(), 3, "distinct leases: {leases:?}");
    for (net, gw) in &leases {
        assert!(range.contains(net) && net.prefix_len() == 24, "{net}");
        assert_eq!(u32::from(*gw), u32::from(net.network()) + 1);
    }
    eprintln!("{mode}: 3 hosts leased {leases:?} {took:?} after start");
    if mode == "host-subnet" {
        for (h, (net, gw)) in leases.iter().enumerate() {
            let on_bridge = bridge_addresses(&lab, h);
            assert!(on_bridge.contains(&format!("{gw}/{}", net.prefix_len())), "host {h}'s bridge lacks the lease gateway: {on_bridge}");
        }
    }

    // Containers get addresses from their host's lease and reach every other container.
    let results = add_containers(&mut lab, 2, |lab, h| conf(lab, h, "1.1.0", json!({})));
    for (h, per_host) in results.iter().enumerate() {
        for r in per_host {
            assert!(leases[h].0.contains(&result_ip(r)), "host {h}: {r} outside {:?}", leases[h]);
            assert_eq!(r["routes"][0], json!({ "dst": "0.0.0.0/0", "gw": leases[h].1.to_string() }));
        }
    }
    wait_for_routes(&lab, mode, Duration::from_secs(20));
    all_pairs_ping(&lab, 1);
    let stats = lab.stats(1).unwrap();
    assert_eq!(stats["gossip"]["leases"]["acquired"], 1, "{}", stats["gossip"]);

    // The lease is on disk; a restarted daemon serves it at once, with no settle time.
    let saved = std::fs::read_to_string(lab.dir.join("h1-state/gossip-claims.json")).unwrap();
    assert!(saved.contains(&leases[1].0.to_string()), "lease not saved: {saved}");
    assert!(lab.stop_vxswitch(1).unwrap());
    if mode == "host-subnet" {
        let gw = leases[1].1.to_string();
        assert!(!bridge_addresses(&lab, 1).contains(&gw), "a clean shutdown removes the lease gateway");
    }
    lab.start_vxswitch_with(1, &configs[1]).unwrap();
    assert_eq!(lease(&lab, 1), Some(leases[1]), "the restarted daemon must serve its saved lease at once");
    let stats = lab.stats(1).unwrap();
    assert_eq!((stats["gossip"]["leases"]["kept"].as_u64(), stats["gossip"]["leases"]["acquired"].as_u64()), (Some(1), Some(0)));
    if mode == "host-subnet" {
        assert!(bridge_addresses(&lab, 1).contains(&leases[1].1.to_string()), "the kept lease's gateway is back on the bridge");
    }
    wait_for_routes(&lab, mode, Duration::from_secs(20));
    all_pairs_ping(&lab, 1);
    for (h, held) in leases.iter().enumerate() {
        assert_eq!(lease(&lab, h), Some(*held), "host {h}'s lease changed");
    }
}
