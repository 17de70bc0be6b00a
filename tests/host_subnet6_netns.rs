//! Host-subnet mode in dual stack on real kernels: three hosts over gossip, each owning an IPv4
//! and an IPv6 container subnet, reach each other's containers through plain kernel routes
//! `PEER_SUBNET via PEER_IP` and `PEER_SUBNET6 via PEER_IP6` (`proto 86`). Containers are
//! attached through the CNI plugin, whose IPAM takes both subnets and gateways from the daemon.
//! Needs root; without it each test prints SKIP (or fails with VXSWITCH_REQUIRE_ROOT=1).

#[path = "common/cni.rs"]
mod cni_common;
#[path = "common/netns.rs"]
mod netns_common;
#[path = "common/traffic.rs"]
mod traffic;

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use cni_common::*;
use ipnet::Ipv6Net;
use netns_common::have_root;
use serde_json::{json, Value};
use traffic::ping;
use vxswitch::testnet::lab::{host_subnet, underlay_ip, underlay_ip6, Addressing, HostKind, Lab};

/// Host `i`'s IPv6 container subnet.
fn subnet6(i: usize) -> Ipv6Net {
    format!("fd00:19:{}::/64", i + 1).parse().unwrap()
}

/// Host `i`'s dual-stack host-subnet configuration in a gossip cluster seeded by host 0.
fn config(lab: &Lab, i: usize) -> String {
    let base = lab.gossip_config(i, "host-subnet", &[0]).unwrap();
    let base = base.replacen(
        &format!("address = \"{}\"\n", underlay_ip(i)),
        &format!("address = \"{}\"\naddress6 = \"{}\"\n", underlay_ip(i), underlay_ip6(i)),
        1,
    );
    let with6 = base.replacen(
        &format!("subnet = \"{}\"\n", host_subnet(i)),
        &format!("subnet = \"{}\"\nsubnet6 = \"{}\"\n", host_subnet(i), subnet6(i)),
        1,
    );
    assert!(with6.contains("address6") && with6.contains("subnet6"), "{with6}");
    with6
}

/// Host `i`'s `proto 86` routes of one family (`-4` or `-6`), sorted.
fn proto86(lab: &Lab, i: usize, family: &str) -> Vec<String> {
    let out = lab.hosts[i].ns.output("ip", &[family, "route", "show", "proto", "86"]).unwrap();
    let mut lines: Vec<String> = out.lines().map(|l| l.split_whitespace().take(5).collect::<Vec<_>>().join(" ")).collect();
    lines.sort();
    lines
}

/// The IPv6 routes host `i` should hold: every other host's subnet6 via its IPv6 address.
fn expected6(i: usize) -> Vec<String> {
    (0..3).filter(|&k| k != i).map(|k| format!("{} via {} dev eth0", subnet6(k), underlay_ip6(k))).collect()
}

fn wait_for_routes6(lab: &Lab, i: usize, limit: Duration) {
    let start = Instant::now();
    while proto86(lab, i, "-6") != expected6(i) {
        assert!(start.elapsed() < limit, "host {i}: IPv6 routes {:?}, expected {:?}", proto86(lab, i, "-6"), expected6(i));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The IPv6 address in an ADD result.
fn result_ip6(result: &Value) -> Ipv6Addr {
    result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|ip| ip["address"].as_str()?.split('/').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no IPv6 address in {result}"))
}

/// Every container pings every other container of another host, both families; the lost pairs.
fn lost_pings(lab: &Lab, ip6: &[Vec<Ipv6Addr>]) -> Vec<String> {
    let all: Vec<(usize, usize)> = (0..3).flat_map(|h| (0..2).map(move |j| (h, j))).collect();
    let mut lost = Vec::new();
    for &(h, j) in &all {
        for &(dh, dj) in all.iter().filter(|&&(dh, _)| dh != h) {
            for dst in [IpAddr::V4(lab.hosts[dh].containers[dj].ip), IpAddr::V6(ip6[dh][dj])] {
                if ping(lab, h, j, dst, 1) != (1, 1) {
                    lost.push(format!("h{h}c{j} -> {dst}"));
                }
            }
        }
    }
    lost
}

#[test]
fn netns_host_subnet_dual_stack_over_gossip_ping_ping6_and_reconcile_after_a_crash() {
    if !have_root("netns_host_subnet_dual_stack_over_gossip_ping_ping6_and_reconcile_after_a_crash") {
        return;
    }
    let mut lab = Lab::build_with("hs6", &[HostKind::Bare; 3], 0, bin(), Addressing::PerHost).unwrap();
    for i in 0..3 {
        let c = config(&lab, i);
        lab.start_vxswitch_with(i, &c).unwrap();
    }
    // The IPAM takes both subnets and gateways from the daemon: nothing but the type in the conflist.
    let results = add_containers(&mut lab, 2, |lab, h| conf(lab, h, "1.1.0", json!({})));
    eprintln!("hs6: ADD result: {}", results[1][0]);
    let mut ip6 = Vec::new();
    for (h, per_host) in results.iter().enumerate() {
        let gw6 = format!("fd00:19:{}::1", h + 1);
        let bridge = lab.hosts[h].ns.output("ip", &["-6", "addr", "show", "dev", "br0"]).unwrap();
        assert!(bridge.contains(&format!("{gw6}/64")), "the bridge carries the IPv6 gateway: {bridge}");
        let mut here = Vec::new();
        for r in per_host {
            let v6 = result_ip6(r);
            assert!(subnet6(h).contains(&v6), "{v6} in host {h}'s subnet6: {r}");
            assert!(r["routes"].as_array().unwrap().contains(&json!({ "dst": "::/0", "gw": gw6 })), "{r}");
            here.push(v6);
        }
        ip6.push(here);
    }
    for i in 0..3 {
        wait_for_routes6(&lab, i, Duration::from_secs(20));
        assert_eq!(proto86(&lab, i, "-4").len(), 2, "host {i}: the IPv4 routes next to them");
    }
    eprintln!("hs6: host 0's IPv6 routes: {:?}", proto86(&lab, 0, "-6"));
    // First contact resolves neighbours at up to three hops each way, which on a loaded machine
    // can outlast ping's 2 s wait: warm up until every pair answers, then a full round must
    // lose nothing.
    let start = Instant::now();
    loop {
        let lost = lost_pings(&lab, &ip6);
        if lost.is_empty() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "lost pings: {lost:?}; logs in {}", lab.dir.display());
    }
    let lost = lost_pings(&lab, &ip6);
    assert!(lost.is_empty(), "lost pings after the warm-up: {lost:?}; logs in {}", lab.dir.display());

    // Host 0 crashes; meanwhile a stale route of ours appears and someone adds an unrelated one.
    lab.kill_vxswitch(0).unwrap();
    let h0 = &lab.hosts[0].ns;
    h0.ip(&["-6", "route", "add", "fd00:19:99::/64", "via", &underlay_ip6(2).to_string(), "proto", "86"]).unwrap();
    h0.ip(&["-6", "route", "add", "fd00:77::/64", "via", &underlay_ip6(1).to_string(), "proto", "static"]).unwrap();
    let c = config(&lab, 0);
    lab.start_vxswitch_with(0, &c).unwrap();
    wait_for_routes6(&lab, 0, Duration::from_secs(20));
    let all = lab.hosts[0].ns.output("ip", &["-6", "route"]).unwrap();
    assert!(!all.contains("fd00:19:99::"), "the stale route was reconciled away: {all}");
    assert!(all.lines().any(|l| l.starts_with("fd00:77::/64") && l.contains("proto static")), "unrelated route untouched: {all}");
    assert_eq!(ping(&lab, 0, 0, ip6[1][1], 3), (3, 3), "reachable again after the restart");
    assert_eq!(ping(&lab, 2, 1, ip6[0][0], 3), (3, 3));

    // A clean shutdown withdraws the routes of both families and the bridge's IPv6 gateway.
    assert!(lab.stop_vxswitch(0).unwrap(), "clean exit");
    assert_eq!((proto86(&lab, 0, "-4"), proto86(&lab, 0, "-6")), (vec![], vec![]));
    let bridge = lab.hosts[0].ns.output("ip", &["-6", "addr", "show", "dev", "br0"]).unwrap();
    assert!(!bridge.contains("fd00:19:1::1/64"), "gateway removed: {bridge}");
    assert!(lab.hosts[0].ns.output("ip", &["-6", "route"]).unwrap().contains("fd00:77::/64"));
}
