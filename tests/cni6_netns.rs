//! The CNI plugin with IPv6: dual-stack containers on an L2 overlay, from vxswitch's own IPAM
//! and from a delegated one (Debian's host-local), invoked exactly as a container runtime does.
//! Needs root; without it each test prints SKIP (or fails with VXSWITCH_REQUIRE_ROOT=1).

#[path = "common/cni.rs"]
mod cni_common;
#[path = "common/netns.rs"]
mod netns_common;
#[path = "common/traffic.rs"]
mod traffic;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use cni_common::*;
use netns_common::have_root;
use serde_json::{json, Value};
use traffic::{ping, Capture};
use vxswitch::testnet::lab::{Addressing, HostKind, Lab};

/// The overlay's IPv6 subnet in the conflists.
const SUBNET6: &str = "fd00:c6::/64";

/// Host `i`'s dual-stack IPAM: its IPv4 range and fd00:c6::i:10 - fd00:c6::i:1f.
fn dual_ipam(i: usize) -> Value {
    let mut ipam = overlay_ipam(i);
    ipam["subnet6"] = json!(SUBNET6);
    ipam["rangeStart6"] = json!(format!("fd00:c6::{i}:10"));
    ipam["rangeEnd6"] = json!(format!("fd00:c6::{i}:1f"));
    ipam
}

/// The IPv6 address in an ADD result.
fn result_ip6(result: &Value) -> Ipv6Addr {
    let ips = result["ips"].as_array().unwrap_or_else(|| panic!("no ips in {result}"));
    ips.iter()
        .filter_map(|ip| ip["address"].as_str()?.split('/').next()?.parse().ok())
        .next()
        .unwrap_or_else(|| panic!("no IPv6 address in {result}"))
}

/// Each host's (proxy ARP, proxy ND) table sizes.
fn proxy_tables(lab: &Lab) -> Vec<(u64, u64)> {
    (0..lab.hosts.len())
        .map(|h| {
            let b = bindings(lab, h);
            (b["proxy_arp"].as_u64().unwrap(), b["proxy_nd"].as_u64().unwrap())
        })
        .collect()
}

/// Wait until every host's proxy tables are `want(h)`.
fn wait_for_tables(lab: &Lab, want: impl Fn(usize) -> (u64, u64), limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let tables = proxy_tables(lab);
        if tables.iter().enumerate().all(|(h, &t)| t == want(h)) {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "proxy ARP/ND tables {tables:?} not as expected within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Inner frames of captured VXLAN packets.
#[derive(Debug, Default)]
struct Inner {
    arp: usize,
    ipv4: usize,
    /// Neighbour solicitations resolving an address (from a source address).
    resolve: usize,
    /// Duplicate address detection probes (from `::`): for link-local addresses, which no
    /// binding covers, they must reach every host.
    dad: usize,
    echo6: usize,
}

fn inner_counts(frames: &[Vec<u8>]) -> Inner {
    let mut n = Inner::default();
    for f in frames.iter().filter_map(|f| traffic::vxlan_inner(f)).filter(|f| f.len() >= 14) {
        match [f[12], f[13]] {
            [0x08, 0x06] => n.arp += 1,
            [0x08, 0x00] => n.ipv4 += 1,
            [0x86, 0xdd] if f.len() > 14 + 40 && f[14 + 6] == 58 => {
                let unspecified_source = f[14 + 8..14 + 24].iter().all(|&b| b == 0);
                match f[14 + 40] {
                    135 if unspecified_source => n.dad += 1,
                    135 => n.resolve += 1,
                    128 => n.echo6 += 1,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    n
}

fn with_prev_result(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

/// The addresses recorded in host `host`'s IPAM table, by container id.
fn stored(lab: &Lab, host: usize) -> Vec<(String, IpAddr)> {
    let text = std::fs::read_to_string(ipam_dir(lab, host).join("vxnet/allocations.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let mut all: Vec<(String, IpAddr)> = v["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["container_id"].as_str().unwrap().to_string(), a["ip"].as_str().unwrap().parse().unwrap()))
        .collect();
    all.sort();
    all
}

#[test]
fn netns_cni_dual_stack_overlay_3x2_ping_and_ping6_without_arp_or_ns_del_check_gc() {
    if !have_root("netns_cni_dual_stack_overlay_3x2_ping_and_ping6_without_arp_or_ns_del_check_gc") {
        return;
    }
    let mut lab = Lab::build_with("c6o", &[HostKind::Bare; 3], 0, bin(), Addressing::Shared).unwrap();
    for i in 0..3 {
        let config = overlay_gossip_config(&lab, i);
        lab.start_vxswitch_with(i, &config).unwrap();
    }
    let results = add_containers(&mut lab, 2, |lab, h| conf(lab, h, "1.1.0", dual_ipam(h)));
    eprintln!("cni dual-stack ADD result: {}", results[1][0]);
    let mut ip6 = Vec::new();
    for (h, per_host) in results.iter().enumerate() {
        let mut here = Vec::new();
        for (j, r) in per_host.iter().enumerate() {
            let ips = r["ips"].as_array().unwrap();
            assert_eq!(ips.len(), 2, "one address per family: {r}");
            assert_eq!((&ips[0]["interface"], &ips[1]["interface"]), (&json!(1), &json!(1)), "{r}");
            assert_eq!(r.get("routes"), None, "an L2 overlay without gateways gets no routes: {r}");
            let v6 = result_ip6(r);
            assert_eq!(v6.segments()[6], h as u16, "{v6} in host {h}'s IPv6 range");
            assert!((0x10..=0x1f).contains(&v6.segments()[7]), "{v6} in host {h}'s IPv6 range");
            assert!(ips[1]["address"].as_str().unwrap().ends_with("/64"));
            // Usable at once: not tentative (nodad).
            let shown = lab.hosts[h].containers[j].ns.output("ip", &["-6", "-o", "addr", "show", "dev", "eth0"]).unwrap();
            let line = shown.lines().find(|l| l.contains(&format!("{v6}/64"))).unwrap_or_else(|| panic!("{v6} missing: {shown}"));
            assert!(!line.contains("tentative"), "{line}");
            here.push(v6);
        }
        assert_eq!(bindings(&lab, h)["local"].as_array().unwrap().len(), 4, "2 containers x 2 families announced");
        ip6.push(here);
    }
    let distinct: BTreeSet<Ipv6Addr> = ip6.iter().flatten().copied().collect();
    assert_eq!(distinct.len(), 6);

    // Every host learns the other hosts' 4 containers in both families by gossip, before any
    // container sent a frame.
    let known = wait_for_tables(&lab, |_| (4, 4), Duration::from_secs(20));
    eprintln!("cni6: every host's proxy ARP and ND knew all remote containers {known:?} after the last ADD");

    // All pairs, both families, under capture: neither ARP nor a neighbour solicitation crosses.
    let all: Vec<(usize, usize)> = (0..3).flat_map(|h| (0..2).map(move |j| (h, j))).collect();
    let pcap = lab.dir.join("cni6.pcap");
    let capture = Capture::start(&lab, "ul", "udp port 4789", &pcap);
    let mut lost = Vec::new();
    for &(h, j) in &all {
        for &(dh, dj) in all.iter().filter(|&&d| d != (h, j)) {
            let (v4, v6) = (lab.hosts[dh].containers[dj].ip, ip6[dh][dj]);
            for dst in [IpAddr::V4(v4), IpAddr::V6(v6)] {
                if ping(&lab, h, j, dst, 1) != (1, 1) {
                    lost.push(format!("h{h}c{j} -> {dst}"));
                }
            }
        }
    }
    let frames = capture.stop();
    assert!(lost.is_empty(), "lost pings: {lost:?}; logs in {}", lab.dir.display());
    let n = inner_counts(&frames);
    eprintln!("cni6: {} VXLAN packets captured: {n:?}", frames.len());
    // 24 of the 30 ordered pairs are between hosts.
    assert_eq!(n.echo6, 24, "every cross-host echo request was captured");
    assert!(n.ipv4 >= 48, "the IPv4 pings between hosts crossed ({} frames)", n.ipv4);
    assert_eq!((n.arp, n.resolve), (0, 0), "no ARP and no address-resolution NS cross once containers are added through CNI");

    // DEL withdraws both families cluster-wide.
    let c0 = conf(&lab, 0, "1.1.0", dual_ipam(0));
    let path0 = netns_path(&lab.hosts[0].containers[0].ns);
    assert!(cni(&lab, 0, "DEL", "h0c0", &path0, &c0).ok);
    wait_for_tables(&lab, |h| if h == 0 { (4, 4) } else { (3, 3) }, Duration::from_secs(10));
    assert_eq!(bindings(&lab, 0)["local"].as_array().unwrap().len(), 2);
    assert_eq!(stored(&lab, 0).len(), 2, "both of h0c0's addresses released");

    // CHECK looks at both families: it passes, then fails once the IPv6 address is gone.
    let check = with_prev_result(&c0, &results[0][1]);
    let path1 = netns_path(&lab.hosts[0].containers[1].ns);
    let passed = cni(&lab, 0, "CHECK", "h0c1", &path1, &check);
    assert!(passed.ok && passed.out.is_null(), "{}", passed.out);
    lab.hosts[0].containers[1].ns.ip(&["-6", "addr", "del", &format!("{}/64", ip6[0][1]), "dev", "eth0"]).unwrap();
    let failed = cni(&lab, 0, "CHECK", "h0c1", &path1, &check);
    assert_eq!(failed.code(), Some(100), "{}", failed.out);
    assert!(failed.out["details"].as_str().unwrap().contains(&ip6[0][1].to_string()), "{}", failed.out);

    // GC on host 1 keeping only h1c0 frees both of h1c1's addresses and withdraws both bindings.
    let mut gc = conf(&lab, 1, "1.1.0", dual_ipam(1));
    gc["cni.dev/valid-attachments"] = json!([{ "containerID": "h1c0", "ifname": "eth0" }]);
    let answer = cni(&lab, 1, "GC", "", "", &gc);
    assert!(answer.ok, "{}", answer.out);
    let kept = stored(&lab, 1);
    assert_eq!(kept.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["h1c0", "h1c0"], "{kept:?}");
    assert!(kept.iter().any(|(_, ip)| *ip == IpAddr::V6(ip6[1][0])));
    assert_eq!(bindings(&lab, 1)["local"].as_array().unwrap().len(), 2);
    wait_for_tables(&lab, |h| [(3, 3), (3, 3), (2, 2)][h], Duration::from_secs(10));
}

#[test]
fn netns_cni_delegated_ipam_returning_ipv4_and_ipv6() {
    if !have_root("netns_cni_delegated_ipam_returning_ipv4_and_ipv6") {
        return;
    }
    assert!(Path::new(DEBIAN_CNI_PATH).join("host-local").is_file(), "apt-get install containernetworking-plugins");
    let lab = Lab::build("c6d", &[HostKind::Vxswitch], 0, bin()).unwrap();
    let store = lab.dir.join("host-local");
    // Debian's host-local 1.1 speaks up to 1.0.0; one range set per family, as host-local takes them.
    let mut c = conf(&lab, 0, "1.0.0", json!({}));
    c["ipam"] = json!({
        "type": "host-local", "dataDir": store,
        "ranges": [
            [{ "subnet": "10.78.0.0/24", "rangeStart": "10.78.0.50", "rangeEnd": "10.78.0.60", "gateway": "10.78.0.1" }],
            [{ "subnet": "fd00:78::/64", "rangeStart": "fd00:78::50", "rangeEnd": "fd00:78::60", "gateway": "fd00:78::1" }],
        ],
        "routes": [{ "dst": "0.0.0.0/0" }, { "dst": "::/0" }],
    });
    let ns = container_ns(&lab, 0, 0);
    let added = cni(&lab, 0, "ADD", "d6", &netns_path(&ns), &c);
    assert!(added.ok, "{}", added.out);
    eprintln!("cni6: delegated ADD result: {}", added.out);
    assert_eq!(result_ip6(&added.out), "fd00:78::50".parse::<Ipv6Addr>().unwrap(), "host-local's first IPv6 address");
    let routes = added.out["routes"].as_array().unwrap();
    assert!(routes.contains(&json!({ "dst": "::/0", "gw": "fd00:78::1" })), "the IPv6 route via the IPv6 gateway: {routes:?}");
    assert!(routes.contains(&json!({ "dst": "0.0.0.0/0", "gw": "10.78.0.1" })), "{routes:?}");
    assert!(ns.output("ip", &["-6", "route"]).unwrap().contains("default via fd00:78::1"));
    assert!(ns.output("ip", &["-6", "addr", "show", "dev", "eth0"]).unwrap().contains("fd00:78::50/64"));
    let announced = bindings(&lab, 0);
    let local: Vec<&str> = announced["local"].as_array().unwrap().iter().map(|b| b[0].as_str().unwrap()).collect();
    assert_eq!(local, ["10.78.0.50", "fd00:78::50"], "both addresses announced");
    let check = cni(&lab, 0, "CHECK", "d6", &netns_path(&ns), &with_prev_result(&c, &added.out));
    assert!(check.ok, "CHECK with a delegated dual-stack IPAM: {}", check.out);
    assert!(cni(&lab, 0, "DEL", "d6", &netns_path(&ns), &with_prev_result(&c, &added.out)).ok);
    assert!(!store.join("vxnet/fd00:78::50").exists(), "host-local released the IPv6 address on DEL");
    assert_eq!(bindings(&lab, 0)["local"].as_array().unwrap().len(), 0, "both withdrawn using prevResult");
}

/// A routed dual-stack network: the daemon answers `subnet6`/`gateway6` and the plugin's IPAM
/// takes both families from it; containers reach each other across hosts through the anycast
/// gateways of both families.
#[test]
fn netns_cni_routed_dual_stack_3x2_ping_and_ping6_through_the_gateways() {
    if !have_root("netns_cni_routed_dual_stack_3x2_ping_and_ping6_through_the_gateways") {
        return;
    }
    use vxswitch::testnet::lab::host_subnet;
    let mut lab = Lab::build_with("c6r", &[HostKind::Bare; 3], 0, bin(), Addressing::PerHost).unwrap();
    for i in 0..3 {
        let base = lab.gossip_config(i, "routed", &[0]).unwrap();
        let subnet = format!("subnet = \"{}\"\n", host_subnet(i));
        let config = base.replacen(&subnet, &format!("{subnet}subnet6 = \"fd00:19:{}::/64\"\n", i + 1), 1);
        assert!(config.contains("subnet6"), "{config}");
        lab.start_vxswitch_with(i, &config).unwrap();
    }
    let results = add_containers(&mut lab, 2, |lab, h| conf(lab, h, "1.1.0", json!({})));
    eprintln!("cni6: routed dual-stack ADD result: {}", results[2][1]);
    let ip6: Vec<Vec<Ipv6Addr>> = results.iter().map(|per_host| per_host.iter().map(result_ip6).collect()).collect();
    for (h, per_host) in results.iter().enumerate() {
        let gw6 = format!("fd00:19:{}::1", h + 1);
        for r in per_host {
            assert!(r["routes"].as_array().unwrap().contains(&json!({ "dst": "::/0", "gw": gw6 })), "{r}");
        }
    }
    // Routes of both families learned by gossip, then all pairs across hosts in both families.
    let start = Instant::now();
    let mut lost = vec!["not tried".to_string()];
    while !lost.is_empty() {
        assert!(start.elapsed() < Duration::from_secs(20), "lost pings: {lost:?}; logs in {}", lab.dir.display());
        std::thread::sleep(Duration::from_millis(200));
        lost.clear();
        for h in 0..3 {
            for j in 0..2 {
                for (dh, dj) in (0..3).filter(|&dh| dh != h).flat_map(|dh| (0..2).map(move |dj| (dh, dj))) {
                    for dst in [IpAddr::V4(lab.hosts[dh].containers[dj].ip), IpAddr::V6(ip6[dh][dj])] {
                        if ping(&lab, h, j, dst, 1) != (1, 1) {
                            lost.push(format!("h{h}c{j} -> {dst}"));
                        }
                    }
                }
            }
        }
    }
    eprintln!("cni6: routed dual stack, all 48 cross-host pings answered {:?} after the last ADD", start.elapsed());
}
