//! A dual-stack routed network on real kernels: 3 hosts x 2 containers in namespaces, joined by
//! gossip (no static peers), every container with an IPv4 and an IPv6 address and default routes
//! via the anycast gateway (IPv6: via `gateway6` or via the gateway's link-local address). All pairs ping and ping6 across hosts; the gateway answers ping6 at
//! `gateway6` and at its link-local address. Needs root; without it the test prints SKIP (or
//! fails with VXSWITCH_REQUIRE_ROOT=1).

#[path = "common/netns.rs"]
mod netns_common;
#[path = "common/traffic.rs"]
mod traffic;

use std::net::Ipv6Addr;
use std::path::Path;

use netns_common::have_root;
use traffic::{all_pairs_ping, ping6, vxlan_inner, Capture};
use vxswitch::testnet::lab::{Addressing, HostKind, Lab};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vxswitch"))
}

/// Host `i`'s IPv6 subnet.
fn subnet6(i: usize) -> String {
    format!("fd00:19:0:{}::/64", i + 1)
}

/// Host `i`'s IPv6 gateway (the subnet's `::1`, the default).
fn gateway6(i: usize) -> Ipv6Addr {
    format!("fd00:19:0:{}::1", i + 1).parse().unwrap()
}

/// Container `j` of host `i`.
fn ctr6(i: usize, j: usize) -> Ipv6Addr {
    format!("fd00:19:0:{}::{}", i + 1, 10 + j).parse().unwrap()
}

#[test]
fn netns_dual_stack_routed_over_gossip_all_pairs_ping_and_ping6() {
    if !have_root("netns_dual_stack_routed_over_gossip_all_pairs_ping_and_ping6") {
        return;
    }
    let mut lab = Lab::build_with("rt6", &[HostKind::Bare; 3], 2, bin(), Addressing::PerHost).unwrap();
    let mac = vxswitch::dataplane::default_gateway_mac(vxswitch::wire::vxlan::Vni::new_const(vxswitch::testnet::lab::VNI));
    let link_local = vxswitch::dataplane::router::v6::link_local(mac).to_string();
    for i in 0..3 {
        let config = lab.gossip_config(i, "routed", &[0, 1, 2]).unwrap();
        let ipv4_subnet = "subnet = \"198.19.";
        assert!(config.contains(ipv4_subnet), "{config}");
        let config = config.replacen(ipv4_subnet, &format!("subnet6 = \"{}\"\n{ipv4_subnet}", subnet6(i)), 1);
        lab.start_vxswitch_with(i, &config).unwrap();
        for (j, c) in lab.hosts[i].containers.iter().enumerate() {
            c.ns.ip(&["-6", "addr", "add", &format!("{}/64", ctr6(i, j)), "dev", "eth0", "nodad"]).unwrap();
            // Container 0 routes via gateway6, container 1 via the gateway's link-local address.
            let via = if j == 0 { gateway6(i).to_string() } else { link_local.clone() };
            c.ns.ip(&["-6", "route", "add", "default", "via", &via, "dev", "eth0"]).unwrap();
        }
    }
    // Gossip spreads both families' subnets: two IPv4 and two IPv6 routes on every host.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let routes = |lab: &Lab, i: usize| lab.stats(i).unwrap()["networks"][0]["routes"].as_array().map_or(0, Vec::len);
    while (0..3).any(|i| routes(&lab, i) < 4) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for i in 0..3 {
        assert_eq!(routes(&lab, i), 4, "host {i}: {}", lab.stats(i).unwrap()["networks"][0]);
    }

    let capture = Capture::start(&lab, "ul", "udp port 4789", &lab.dir.join("underlay.pcap"));
    all_pairs_ping(&lab, 3);
    let mut failures = Vec::new();
    for h in 0..3 {
        for c in 0..2 {
            for (k, j) in (0..3).flat_map(|k| (0..2).map(move |j| (k, j))).filter(|&(k, j)| (k, j) != (h, c)) {
                let (sent, got) = ping6(&lab, h, c, &ctr6(k, j).to_string(), 3);
                if sent != 3 || got != 3 {
                    failures.push(format!("{} -> {}: {got}/{sent}", ctr6(h, c), ctr6(k, j)));
                }
            }
        }
    }
    assert!(failures.is_empty(), "ping6 lost: {failures:?}");
    let frames = capture.stop();
    let inner: Vec<&[u8]> = frames.iter().filter_map(|f| vxlan_inner(f)).collect();
    let v6 = inner.iter().filter(|f| f.len() >= 14 && f[12..14] == [0x86, 0xdd]).count();
    // 6 containers x 4 on other hosts x 3 pings x (request + reply) = 144 IPv6 frames routed over
    // VXLAN; the capture may miss a few of them on a loaded machine, so at least the requests.
    assert!(v6 >= 6 * 4 * 3, "IPv6 crossed the underlay: {v6} frames");
    let nd = inner
        .iter()
        .filter(|f| f.len() >= 14 + 41 && f[12..14] == [0x86, 0xdd] && f[14 + 6] == 58 && (133..=137).contains(&f[14 + 40]))
        .count();
    assert_eq!(nd, 0, "no Neighbour Discovery crossed between hosts");

    // The gateway answers ping6 at gateway6 and at its link-local address (from the anycast MAC).
    assert_eq!(ping6(&lab, 0, 0, &gateway6(0).to_string(), 3), (3, 3));
    assert_eq!(ping6(&lab, 1, 0, &format!("{link_local}%eth0"), 3), (3, 3));
    for i in 0..3 {
        let s = lab.stats(i).unwrap();
        let c = &s["counters"];
        // Gateway and containers met through ND: a container solicited the gateway, or the gateway
        // solicited a container (whose stack then knows the gateway from the solicitation).
        let nd = c["gateway_nd_replies"].as_u64().unwrap() + c["nd_solicits_sent"].as_u64().unwrap();
        assert!(nd > 0, "host {i}: {c}");
        // The containers announced themselves soliciting the gateway: nothing left to resolve.
        assert_eq!(c["drops"]["neighbour_unresolved"], 0, "host {i}: {c}");
        assert!(c["routed_packets"].as_u64().unwrap() >= 2 * 5 * 3 * 2, "host {i}: {c}");
    }
}
