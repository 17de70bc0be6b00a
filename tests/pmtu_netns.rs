//! Path MTU on real kernels: two hosts whose underlay path crosses two routers joined by a
//! 1400-byte link (each direction leaves a router through the smaller link, which answers DF
//! packets above it with ICMP "fragmentation needed"). Every MTU in the vxswitch configurations
//! is left at its default (underlay 1500, so VXLAN's overlay MTU is 1450 and ESP's 1424/1438, TAP
//! MTU 1500, `mss_clamp = "auto"`). A checked TCP transfer must cross both ways with every byte
//! intact, first with the containers at the overlay MTU, then at the bridge default of 1500, for
//! VXLAN and ESP, L2 and routed; the kernel's path MTU to the peer must show up per peer in
//! `stats` and the containers must have been told with ICMP (counted). The same runs over an
//! IPv6 underlay, where the router answers with ICMPv6 "packet too big" (VXLAN and ESP, L2).
//! Needs root; without it each test prints SKIP (or fails with VXSWITCH_REQUIRE_ROOT=1).

#[path = "common/netns.rs"]
mod netns_common;

use std::path::Path;

use netns_common::have_root;
use vxswitch::testnet::lab::{Addressing, HostKind, Lab};
use vxswitch::testnet::probes::checked_transfer;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vxswitch"))
}

const BYTES: u64 = 8 << 20;
/// The MTU of the link between the two routers.
const PATH_MTU: u32 = 1400;

fn run(name: &str, tag: &str, esp: bool, routed: bool) {
    run_over(name, tag, esp, routed, false)
}

fn run_over(name: &str, tag: &str, esp: bool, routed: bool, ipv6: bool) {
    if !have_root(name) {
        return;
    }
    let addressing = if routed { Addressing::PerHost } else { Addressing::Shared };
    let build = if ipv6 { Lab::build_ipv6_with } else { Lab::build_with };
    let mut lab = build(tag, &[HostKind::Bare; 2], 1, bin(), addressing).unwrap();
    lab.route_underlay(PATH_MTU).unwrap();
    for i in 0..2 {
        let config = match (esp, routed) {
            (false, false) => lab.vxswitch_config(i, ""),
            (false, true) => lab.subnet_config(i, "routed", &[0, 1]),
            (true, routed) => lab.esp_manual_config(i, routed),
        };
        assert!(!config.contains("mtu") && !config.contains("mss_clamp"), "every MTU setting is the default: {config}");
        lab.start_vxswitch_with(i, &config).unwrap();
    }
    let net = lab.stats(0).unwrap()["networks"][0].clone();
    let overlay_mtu = net["mtu"].as_u64().unwrap() as u32;
    assert_eq!(net["tap_mtu"], 1500, "{net}");
    assert_eq!(net["mss_clamp"], "auto", "{net}");

    let bin = bin().to_string_lossy().into_owned();
    let (c0, c1) = (&lab.hosts[0].containers[0], &lab.hosts[1].containers[0]);
    let mut port = 5500;
    for container_mtu in [overlay_mtu, 1500] {
        lab.set_container_mtu(container_mtu).unwrap();
        for c in [c0, c1] {
            c.ns.ip(&["route", "flush", "cache"]).unwrap();
        }
        for (from, to) in [(c0, c1), (c1, c0)] {
            port += 1;
            let r = checked_transfer(&bin, &from.ns, &to.ns, to.ip, port, BYTES).unwrap();
            assert_eq!(
                (r.sent, r.received, r.intact),
                (BYTES, BYTES, true),
                "container MTU {container_mtu}, {} -> {}: {r:?}",
                from.ip,
                to.ip
            );
            eprintln!("{name}: container MTU {container_mtu}: {} -> {}: {} bytes intact in {:.2} s", from.ip, to.ip, r.received, r.secs);
        }
    }
    for h in 0..2 {
        let s = lab.stats(h).unwrap();
        let c = &s["counters"];
        eprintln!(
            "{name}: host {h}: peer_mtus {} pmtu_icmp_sent {} rate_limited {} mss_clamped {} tap_oversize {} peer_mtu_lowered {}",
            s["peer_mtus"],
            c["pmtu_icmp_sent"],
            c["pmtu_icmp_rate_limited"],
            c["mss_clamped"],
            c["drops"][if esp { "tap_oversize_esp" } else { "tap_oversize_vxlan" }],
            c["peer_mtu_lowered"]
        );
        // Host 0 sends first: its first full-size packets meet router A's smaller link, the
        // kernel learns the path MTU from the router's ICMP, vxswitch reads it and answers its
        // container with ICMP. Host 1 then need not learn anything: host 0 clamps the MSS of the
        // SYNs it delivers from host 1 to what the (now known) path carries, so host 1's
        // containers never send a segment too big for it.
        if h == 0 {
            let peer = lab.underlay_addr(1).to_string();
            assert_eq!(s["peer_mtus"][0]["peer"], peer, "the path to the peer is known to be smaller: {}", s["peer_mtus"]);
            assert_eq!(s["peer_mtus"][0]["mtu"], PATH_MTU, "{}", s["peer_mtus"]);
            assert!(c["peer_mtu_lowered"].as_u64().unwrap() >= 1, "{c}");
            assert!(c["pmtu_icmp_sent"].as_u64().unwrap() >= 1, "the sender was told with ICMP: {c}");
        }
        assert!(c["mss_clamped"].as_u64().unwrap() >= 1, "host {h}: SYNs were clamped: {c}");
        for key in ["esp_seal_failed", "esp_rejected"] {
            assert_eq!(c["drops"][key], 0, "host {h} {key}: {c}");
        }
    }
    // Traffic that no MSS clamp shrinks (DF pings of 1400 bytes from host 1's side): the first
    // meets router B's smaller link, host 1's kernel learns the path MTU from its ICMP, vxswitch
    // on host 1 reads it and answers the later pings itself with the MTU that fits.
    let out = c1
        .ns
        .command("ping")
        .args(["-c", "8", "-i", "0.5", "-W", "1", "-M", "do", "-s", &(PATH_MTU - 28).to_string()])
        .arg(c0.ip.to_string())
        .output()
        .unwrap();
    let s = lab.stats(1).unwrap();
    eprintln!("{name}: host 1 after DF pings: peer_mtus {} pmtu_icmp_sent {}", s["peer_mtus"], s["counters"]["pmtu_icmp_sent"]);
    assert_eq!(s["peer_mtus"][0]["mtu"], PATH_MTU, "{}\n{}", s["peer_mtus"], String::from_utf8_lossy(&out.stdout));
    assert!(s["counters"]["pmtu_icmp_sent"].as_u64().unwrap() >= 1, "{}", s["counters"]);
    let route = c1.ns.output("ip", &["route", "get", &c0.ip.to_string()]).unwrap();
    assert!(route.contains("mtu"), "host 1's container learned a smaller path MTU: {route}");

    // The kernel forgets the learned path MTU (here at once, by hand; by itself after 10
    // minutes): vxswitch reads the full size again within a few seconds and raises the peer back.
    let family = if ipv6 { "-6" } else { "-4" };
    lab.hosts[0].ns.ip(&[family, "route", "flush", "cache"]).unwrap();
    let start = std::time::Instant::now();
    loop {
        let s = lab.stats(0).unwrap();
        if s["peer_mtus"].as_array().unwrap().is_empty() {
            assert_eq!(s["counters"]["peer_mtu_raised"], 1, "{}", s["counters"]);
            break;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "still lowered: {}", s["peer_mtus"]);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn netns_pmtu_vxlan_l2_through_a_1400_byte_router_link() {
    run("netns_pmtu_vxlan_l2_through_a_1400_byte_router_link", "pmvl", false, false);
}

#[test]
fn netns_pmtu_vxlan_routed_through_a_1400_byte_router_link() {
    run("netns_pmtu_vxlan_routed_through_a_1400_byte_router_link", "pmvr", false, true);
}

#[test]
fn netns_pmtu_esp_l2_through_a_1400_byte_router_link() {
    run("netns_pmtu_esp_l2_through_a_1400_byte_router_link", "pmel", true, false);
}

#[test]
fn netns_pmtu_esp_routed_through_a_1400_byte_router_link() {
    run("netns_pmtu_esp_routed_through_a_1400_byte_router_link", "pmer", true, true);
}

#[test]
fn netns_pmtu_ipv6_underlay_vxlan_l2_through_a_1400_byte_router_link() {
    run_over("netns_pmtu_ipv6_underlay_vxlan_l2_through_a_1400_byte_router_link", "pm6v", false, false, true);
}

#[test]
fn netns_pmtu_ipv6_underlay_esp_l2_through_a_1400_byte_router_link() {
    run_over("netns_pmtu_ipv6_underlay_esp_l2_through_a_1400_byte_router_link", "pm6e", true, false, true);
}

/// The plain case the issue started from: a default L2 VXLAN overlay on a flat 1500-byte underlay,
/// containers left at the bridge default MTU of 1500. Before, the bridge dropped every full-size
/// frame (the TAP's MTU was 1450) and a 20 MB transfer moved 0 bytes.
#[test]
fn netns_pmtu_containers_at_1500_over_a_default_vxlan_overlay() {
    if !have_root("netns_pmtu_containers_at_1500_over_a_default_vxlan_overlay") {
        return;
    }
    const BIG: u64 = 20 << 20;
    let lab = Lab::build("pm15", &[HostKind::Vxswitch; 2], 1, bin()).unwrap();
    lab.set_container_mtu(1500).unwrap();
    let bin = bin().to_string_lossy().into_owned();
    let (c0, c1) = (&lab.hosts[0].containers[0], &lab.hosts[1].containers[0]);
    for (from, to, port) in [(c0, c1, 5601), (c1, c0, 5602)] {
        let r = checked_transfer(&bin, &from.ns, &to.ns, to.ip, port, BIG).unwrap();
        assert_eq!((r.sent, r.received, r.intact), (BIG, BIG, true), "{} -> {}: {r:?}", from.ip, to.ip);
        eprintln!("containers at 1500: {} -> {}: {} bytes intact in {:.2} s", from.ip, to.ip, r.received, r.secs);
    }
    for h in 0..2 {
        let s = lab.stats(h).unwrap();
        assert_eq!(s["networks"][0]["tap_mtu"], 1500);
        assert!(s["counters"]["mss_clamped"].as_u64().unwrap() >= 1, "host {h}: {}", s["counters"]);
        assert_eq!(s["driver"]["underlay_send_too_big"], 0);
    }
    // Without MSS clamping (UDP, or a stack that ignores MSS) the ICMP answer is what saves it:
    // a DF ping of 1500 bytes is answered with "fragmentation needed", MTU 1450.
    let out = c0.ns.command("ping").args(["-c", "1", "-W", "1", "-M", "do", "-s", "1472"]).arg(c1.ip.to_string()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("mtu = 1450") || text.contains("mtu=1450") || text.contains(" 0 received"), "{text}");
    let route = c0.ns.output("ip", &["route", "get", &c1.ip.to_string()]).unwrap();
    assert!(route.contains("mtu 1450"), "the container's kernel learned the overlay MTU: {route}");
    assert!(lab.stats(0).unwrap()["counters"]["pmtu_icmp_sent"].as_u64().unwrap() >= 1);
}
