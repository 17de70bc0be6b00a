//! An encrypted L2 overlay with every MTU left at its default: two hosts, `encryption = "esp"`
//! (overlay mode, manual AES-256-GCM keys), containers on the bridge at the MTU vxswitch gave the
//! TAP. A checked TCP transfer must cross both ways with every byte intact and no frame lost to
//! size; a container at a larger MTU gets ICMP "fragmentation needed" for its full-size frames
//! (counted), never silence.
//! Needs root; without it each test prints SKIP (or fails with VXSWITCH_REQUIRE_ROOT=1).

#[path = "common/netns.rs"]
mod netns_common;
#[path = "common/traffic.rs"]
mod traffic;

use std::path::Path;

use netns_common::have_root;
use traffic::all_pairs_ping;
use vxswitch::testnet::lab::{HostKind, Lab};
use vxswitch::testnet::probes::checked_transfer;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vxswitch"))
}

const BYTES: u64 = 16 << 20;

#[test]
fn netns_esp_overlay_tcp_at_the_default_mtu_both_ways() {
    if !have_root("netns_esp_overlay_tcp_at_the_default_mtu_both_ways") {
        return;
    }
    let mut lab = Lab::build("espm", &[HostKind::Bare; 2], 1, bin()).unwrap();
    for i in 0..2 {
        let config = lab.esp_manual_config(i, false);
        assert!(!config.contains("mtu"), "every MTU is the default");
        lab.start_vxswitch_with(i, &config).unwrap();
    }
    let stats = lab.stats(0).unwrap();
    let net = &stats["networks"][0];
    let mtu = net["mtu"].as_u64().unwrap() as u32;
    assert_eq!(mtu, 1424, "ESP overlay TAP at underlay 1500: {net}");
    assert_eq!(net["mtu_plan"]["tunnel"], "esp");
    assert_eq!(net["mtu_plan"]["max_frame_len"], 1438);
    lab.set_container_mtu(mtu).unwrap();
    all_pairs_ping(&lab, 3);

    let bin = bin().to_string_lossy().into_owned();
    let (c0, c1) = (&lab.hosts[0].containers[0], &lab.hosts[1].containers[0]);
    for (from, to, port) in [(c0, c1, 5401), (c1, c0, 5402)] {
        let r = checked_transfer(&bin, &from.ns, &to.ns, to.ip, port, BYTES).unwrap();
        assert_eq!((r.sent, r.received, r.intact), (BYTES, BYTES, true), "{} -> {}: {r:?}", from.ip, to.ip);
        eprintln!("{} -> {}: {} bytes intact in {:.2} s", from.ip, to.ip, r.received, r.secs);
    }
    for h in 0..2 {
        let s = lab.stats(h).unwrap();
        for key in ["tap_oversize_esp", "tap_oversize_vxlan", "esp_seal_failed", "esp_rejected"] {
            assert_eq!(s["counters"]["drops"][key], 0, "host {h} {key}: {}", s["counters"]);
        }
        for key in ["underlay_send_errors", "underlay_send_too_big"] {
            assert_eq!(s["driver"][key], 0, "host {h} {key}: {}", s["driver"]);
        }
        assert!(s["counters"]["tap_rx_bytes"].as_u64().unwrap() > BYTES, "host {h} carried the transfer");
    }

    // Containers at the old VXLAN default (1450): full-size frames reach vxswitch (the TAP's MTU
    // is 1500) but do not fit once sealed. They are dropped and counted as tap_oversize_esp, and
    // the sender is told with ICMP "fragmentation needed" (MTU 1424) from the destination, so its
    // kernel records the path MTU instead of retrying a size that can never pass.
    assert_eq!(lab.stats(0).unwrap()["networks"][0]["tap_mtu"], 1500);
    lab.set_container_mtu(1450).unwrap();
    let out = c0
        .ns
        .command("ping")
        .args(["-c", "3", "-i", "0.05", "-W", "1", "-M", "do", "-s", "1422", "-q"])
        .arg(c1.ip.to_string())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(" 0 received"), "{}", String::from_utf8_lossy(&out.stdout));
    let s = lab.stats(0).unwrap();
    let oversize = s["counters"]["drops"]["tap_oversize_esp"].as_u64().unwrap();
    assert!((1..=3).contains(&oversize), "{}", s["counters"]);
    assert_eq!(s["counters"]["pmtu_icmp_sent"], oversize, "every oversize frame was answered: {}", s["counters"]);
    assert_eq!(s["driver"]["underlay_send_too_big"], 0);
    let route = c0.ns.output("ip", &["route", "get", &c1.ip.to_string()]).unwrap();
    assert!(route.contains("mtu 1424"), "the container's kernel learned the overlay MTU: {route}");
}
