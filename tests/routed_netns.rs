//! Routed overlay and host-subnet mode on real kernels: 3 hosts x 2 containers in namespaces.
//! Needs root; without it each test prints SKIP (or fails with VXSWITCH_REQUIRE_ROOT=1).

#[path = "common/netns.rs"]
mod netns_common;
#[path = "common/traffic.rs"]
mod traffic;

use std::path::Path;

use netns_common::have_root;
use traffic::{all_pairs_ping, vxlan_inner, Capture};
use vxswitch::testnet::lab::{host_subnet, Addressing, HostKind, Lab};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vxswitch"))
}

#[test]
fn netns_routed_overlay_all_pairs_without_arp_crossing() {
    if !have_root("netns_routed_overlay_all_pairs_without_arp_crossing") {
        return;
    }
    let mut lab = Lab::build_with("rt", &[HostKind::Bare; 3], 2, bin(), Addressing::PerHost).unwrap();
    for i in 0..3 {
        let config = lab.subnet_config(i, "routed", &[0, 1, 2]);
        lab.start_vxswitch_with(i, &config).unwrap();
    }
    let capture = Capture::start(&lab, "ul", "udp port 4789", &lab.dir.join("underlay.pcap"));
    all_pairs_ping(&lab, 5);
    let frames = capture.stop();
    let inner: Vec<&[u8]> = frames.iter().filter_map(|f| vxlan_inner(f)).collect();
    // 6 containers x 4 containers on other hosts x 5 pings x (request + reply).
    assert!(inner.len() >= 6 * 4 * 5 * 2, "routed traffic crossed the underlay: {} VXLAN frames", inner.len());
    let arp = inner.iter().filter(|f| f.len() >= 14 && f[12..14] == [0x08, 0x06]).count();
    let broadcast = inner.iter().filter(|f| f[..6] == [0xff; 6]).count();
    assert_eq!((arp, broadcast), (0, 0), "no ARP and no broadcast crossed between hosts");
    for i in 0..3 {
        let s = lab.stats(i).unwrap();
        assert!(s["counters"]["routed_packets"].as_u64().unwrap() > 0);
        assert_eq!(s["networks"][0]["routes"].as_array().unwrap().len(), 2, "{}", s["networks"][0]);
    }
}

fn proto86_routes(lab: &Lab, host: usize) -> String {
    lab.hosts[host].ns.output("ip", &["route", "show", "proto", "86"]).unwrap()
}

#[test]
fn netns_host_subnet_all_pairs_then_peer_removed() {
    if !have_root("netns_host_subnet_all_pairs_then_peer_removed") {
        return;
    }
    let mut lab = Lab::build_with("hs", &[HostKind::Bare; 3], 2, bin(), Addressing::PerHost).unwrap();
    for i in 0..3 {
        let config = lab.subnet_config(i, "host-subnet", &[0, 1, 2]);
        lab.start_vxswitch_with(i, &config).unwrap();
    }
    all_pairs_ping(&lab, 5);
    let routes = proto86_routes(&lab, 0);
    for k in [1, 2] {
        assert!(routes.contains(&format!("{} via 198.18.0.{}", host_subnet(k), k + 1)), "{routes}");
    }
    // An unrelated route that vxswitch must never touch.
    lab.hosts[0].ns.ip(&["route", "add", "203.0.113.0/24", "via", "198.18.0.2", "proto", "static"]).unwrap();

    // Host 0 crashes and comes back with host 2 removed from its peers: reconcile on start.
    lab.kill_vxswitch(0).unwrap();
    let config = lab.subnet_config(0, "host-subnet", &[1]);
    lab.start_vxswitch_with(0, &config).unwrap();
    let routes = proto86_routes(&lab, 0);
    assert!(routes.contains(&format!("{} via 198.18.0.2", host_subnet(1))), "{routes}");
    assert!(!routes.contains(&host_subnet(2).to_string()), "removed peer's route is gone: {routes}");
    let all = lab.hosts[0].ns.output("ip", &["route"]).unwrap();
    assert!(
        all.lines().any(|l| l.starts_with("203.0.113.0/24 via 198.18.0.2") && l.contains("proto static")),
        "unrelated route untouched: {all}"
    );
    let (sent, got) = traffic::ping(&lab, 0, 0, lab.hosts[1].containers[1].ip, 5);
    assert_eq!(got, sent, "the remaining peer is still reachable");

    // A clean shutdown withdraws what vxswitch installed, and only that.
    assert!(lab.stop_vxswitch(0).unwrap(), "clean exit");
    assert_eq!(proto86_routes(&lab, 0).trim(), "");
    assert!(lab.hosts[0].ns.output("ip", &["route"]).unwrap().contains("203.0.113.0/24"));
}

/// `sysctl net.ipv4.ip_forward` inside host `i`'s namespace.
fn ip_forward(lab: &Lab, i: usize) -> String {
    lab.hosts[i].ns.output("cat", &["/proc/sys/net/ipv4/ip_forward"]).unwrap().trim().to_string()
}

#[test]
fn netns_crash_then_config_change_leaves_no_host_state_behind() {
    if !have_root("netns_crash_then_config_change_leaves_no_host_state_behind") {
        return;
    }
    let mut lab = Lab::build_with("hstate", &[HostKind::Bare; 2], 1, bin(), Addressing::PerHost).unwrap();
    lab.hosts[0].ns.output("sysctl", &["-qw", "net.ipv4.ip_forward=0"]).unwrap();
    let gateway = format!("{}/{}", vxswitch::testnet::lab::host_gateway(0), host_subnet(0).prefix_len());
    let br0_addrs = |lab: &Lab| lab.hosts[0].ns.output("ip", &["-4", "-o", "addr", "show", "dev", "br0"]).unwrap();

    // Host-subnet mode changes the host: forwarding on, the gateway on br0, proto 86 routes.
    let config = lab.subnet_config(0, "host-subnet", &[0, 1]);
    lab.start_vxswitch_with(0, &config).unwrap();
    assert_eq!(ip_forward(&lab, 0), "1");
    assert!(br0_addrs(&lab).contains(&gateway), "{}", br0_addrs(&lab));
    assert!(!proto86_routes(&lab, 0).trim().is_empty());

    // Killed, then started with a configuration without host-subnet networks: nothing of the
    // first run may stay behind.
    lab.kill_vxswitch(0).unwrap();
    let overlay = lab.vxswitch_config(0, "");
    lab.start_vxswitch_with(0, &overlay).unwrap();
    assert_eq!(proto86_routes(&lab, 0).trim(), "", "orphaned routes removed");
    assert!(!br0_addrs(&lab).contains(&gateway), "gateway address removed: {}", br0_addrs(&lab));
    assert_eq!(ip_forward(&lab, 0), "0", "forwarding restored to the host's own setting");

    // A clean shutdown forgets the record.
    assert!(lab.stop_vxswitch(0).unwrap(), "clean exit");
    let state = vxswitch::sys::kernel::host_state::HostState::path_for(&lab.socket(0));
    assert!(!state.exists(), "{} removed at clean shutdown", state.display());
}
