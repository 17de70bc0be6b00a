//! vxswitch over an IPv6 underlay, on real kernels: hosts in network namespaces reach each other
//! only through their 2001:db8:18::/64 underlay addresses (the configuration names no IPv4 one).
//! Needs root; without it each test prints SKIP (or fails with VXSWITCH_REQUIRE_ROOT=1).

#[path = "common/netns.rs"]
mod netns_common;
#[path = "common/traffic.rs"]
mod traffic;

use std::path::Path;

use netns_common::have_root;
use traffic::{all_pairs_ping, ping, Capture};
use vxswitch::testnet::lab::{underlay_ip6, Addressing, HostKind, Lab, CONTAINER_MTU_IPV6};
use vxswitch::testnet::probes::checked_transfer;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vxswitch"))
}

fn drops(stats: &serde_json::Value) -> u64 {
    stats["counters"]["drops"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum()
}

fn driver(lab: &Lab, host: usize, key: &str) -> u64 {
    let stats = lab.stats(host).unwrap();
    stats["driver"][key].as_u64().unwrap_or_else(|| panic!("driver.{key} in {}", stats["driver"]))
}

/// `ping -M do -s SIZE -c COUNT` (don't fragment) from container 0 of `host`; returns received.
fn df_ping(lab: &Lab, host: usize, dst: std::net::Ipv4Addr, size: u32, count: u32) -> u32 {
    let out = lab.hosts[host].containers[0]
        .ns
        .command("ping")
        .args(["-M", "do", "-s", &size.to_string(), "-c", &count.to_string(), "-i", "0.05", "-W", "2", "-q", &dst.to_string()])
        .output()
        .expect("ping runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("packets transmitted")).unwrap_or_else(|| panic!("ping output: {text}"));
    line.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).nth(1).unwrap()
}

/// Every datagram of the capture is IPv6 (ethertype 0x86dd) and there was at least `min`.
fn assert_all_ipv6(frames: &[Vec<u8>], min: usize, what: &str) {
    assert!(frames.len() >= min, "{what}: {} frames crossed the underlay, expected at least {min}", frames.len());
    let v4 = frames.iter().filter(|f| f.len() < 14 || f[12..14] != [0x86, 0xdd]).count();
    assert_eq!(v4, 0, "{what}: every tunnel datagram is IPv6");
}

#[test]
fn netns_ipv6_underlay_vxlan_all_pairs() {
    if !have_root("netns_ipv6_underlay_vxlan_all_pairs") {
        return;
    }
    let lab = Lab::build_ipv6("u6vx", &[HostKind::Vxswitch; 3], 1, bin()).unwrap();
    let pcap = lab.dir.join("vxlan6.pcap");
    let capture = Capture::start(&lab, "ul", "udp port 4789", &pcap);
    all_pairs_ping(&lab, 3);
    // The largest packet the plan allows crosses without fragmentation: 1430 = 1500 - 70.
    let dst = lab.hosts[1].containers[0].ip;
    assert_eq!(df_ping(&lab, 0, dst, CONTAINER_MTU_IPV6 - 28, 3), 3, "a full-size frame fits VXLAN over IPv6");
    let frames = capture.stop();
    assert_all_ipv6(&frames, 3 * 2 * 3 * 2, "VXLAN");
    for i in 0..3 {
        let stats = lab.stats(i).unwrap();
        assert_eq!(drops(&stats), 0, "host {i}: {}", stats["counters"]["drops"]);
        let net = &stats["networks"][0];
        assert_eq!(net["mtu"], CONTAINER_MTU_IPV6, "host {i}: the overlay MTU accounts for the outer IPv6 header");
        assert_eq!((net["mtu_plan"]["outer_ipv6"].as_u64(), net["mtu_plan"]["outer_ipv4"].as_u64()), (Some(40), Some(0)));
        let peers: Vec<String> = net["peers"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
        let want: Vec<String> = (0..3).filter(|&k| k != i).map(|k| underlay_ip6(k).to_string()).collect();
        assert_eq!(peers, want, "host {i}");
    }
    // Host 0 learned host 1's container behind host 1's IPv6 VTEP address.
    let fdb = lab.stats(0).unwrap()["networks"][0]["fdb"].clone();
    let mac = lab.hosts[1].containers[0].mac().unwrap();
    let at = underlay_ip6(1).to_string();
    assert!(fdb.as_array().unwrap().iter().any(|e| e["mac"] == mac.as_str() && e["location"] == at.as_str()), "{mac} behind {at}: {fdb}");
}

#[test]
fn netns_ipv6_underlay_tcp_uses_gso_and_gro() {
    if !have_root("netns_ipv6_underlay_tcp_uses_gso_and_gro") {
        return;
    }
    let lab = Lab::build_ipv6("u6gs", &[HostKind::Vxswitch; 2], 1, bin()).unwrap();
    all_pairs_ping(&lab, 2);
    let bin = bin().to_string_lossy().into_owned();
    let (a, b) = (&lab.hosts[0].containers[0], &lab.hosts[1].containers[0]);
    let bytes = 16 << 20;
    for (from, to, port) in [(a, b, 5401), (b, a, 5402)] {
        let report = checked_transfer(&bin, &from.ns, &to.ns, to.ip, port, bytes).unwrap();
        assert!(report.intact && report.received == bytes, "{} -> {}: {report:?}", from.ip, to.ip);
    }
    for (tx, rx) in [(0, 1), (1, 0)] {
        assert!(driver(&lab, tx, "gso_sends") > 0 && driver(&lab, tx, "gso_segments") > driver(&lab, tx, "gso_sends"), "host {tx}");
        assert_eq!(driver(&lab, tx, "gso_fallbacks"), 0, "host {tx}");
        assert!(driver(&lab, rx, "gro_batches") > 0, "host {rx}: UDP GRO over IPv6");
    }
    for h in 0..2 {
        for key in ["rx_csum_failures", "underlay_send_errors", "tap_write_errors"] {
            assert_eq!(driver(&lab, h, key), 0, "host {h} {key}");
        }
    }
}

#[test]
fn netns_ipv6_underlay_esp_all_pairs() {
    if !have_root("netns_ipv6_underlay_esp_all_pairs") {
        return;
    }
    let mut lab = Lab::build_ipv6("u6es", &[HostKind::Bare; 3], 1, bin()).unwrap();
    for i in 0..3 {
        let config = lab.esp_manual_config(i, false);
        lab.start_vxswitch_with(i, &config).unwrap();
    }
    // ESP overlay over IPv6: 1500 - 40 IPv6 - 8 UDP - 8 ESP - 8 IV - 14 Ethernet - 2 - 16 ICV.
    let mtu = lab.stats(0).unwrap()["networks"][0]["mtu"].as_u64().unwrap() as u32;
    assert_eq!(mtu, 1404);
    lab.set_container_mtu(mtu).unwrap();
    let pcap = lab.dir.join("esp6.pcap");
    let capture = Capture::start(&lab, "ul", "udp port 4500 or udp port 4789", &pcap);
    all_pairs_ping(&lab, 3);
    let dst = lab.hosts[2].containers[0].ip;
    assert_eq!(df_ping(&lab, 1, dst, mtu - 28, 3), 3, "a full-size frame fits ESP over IPv6");
    let frames = capture.stop();
    assert_all_ipv6(&frames, 3 * 2 * 3 * 2, "ESP");
    let udp_ports = |f: &Vec<u8>| (u16::from_be_bytes([f[54], f[55]]), u16::from_be_bytes([f[56], f[57]]));
    assert!(frames.iter().all(|f| f.len() > 58 && udp_ports(f) == (4500, 4500)), "ESP in UDP 4500 -> 4500, nothing in cleartext VXLAN");
    for i in 0..3 {
        let stats = lab.stats(i).unwrap();
        assert_eq!(drops(&stats), 0, "host {i}: {}", stats["counters"]["drops"]);
    }
}

#[test]
fn netns_ipv6_underlay_vxswitch_and_kernel_vxlan_interoperate() {
    if !have_root("netns_ipv6_underlay_vxswitch_and_kernel_vxlan_interoperate") {
        return;
    }
    let lab = Lab::build_ipv6("u6vk", &[HostKind::Vxswitch, HostKind::KernelVxlan], 2, bin()).unwrap();
    let link = lab.hosts[1].ns.output("ip", &["-d", "link", "show", "vtep1042"]).unwrap();
    assert!(link.contains(&format!("local {}", underlay_ip6(1))), "the kernel device runs over IPv6: {link}");
    // Both directions, ARP included, 0 lost (all_pairs_ping asserts every reply).
    all_pairs_ping(&lab, 10);
    let c = &lab.hosts[1].containers[0];
    for (host, dst) in [(0, c.ip), (1, lab.hosts[0].containers[0].ip)] {
        assert_eq!(ping(&lab, host, 0, dst, 20), (20, 20), "host {host} -> {dst}");
    }
    let stats = lab.stats(0).unwrap();
    assert_eq!(drops(&stats), 0, "{}", stats["counters"]["drops"]);
    let fdb = stats["networks"][0]["fdb"].clone();
    let at = underlay_ip6(1).to_string();
    assert!(fdb.as_array().unwrap().iter().any(|e| e["location"] == at.as_str()), "kernel-side MACs behind {at}: {fdb}");
}

/// `arp = [...]` binding every container of `host` (IP and real MAC).
fn arp_bindings(lab: &Lab, host: usize) -> String {
    let entries: Vec<String> =
        lab.hosts[host].containers.iter().map(|c| format!("{{ ip = \"{}\", mac = \"{}\" }}", c.ip, c.mac().unwrap())).collect();
    format!("arp = [{}]\n", entries.join(", "))
}

#[test]
fn netns_ipv6_underlay_kernel_mode_vtep_has_local6() {
    if !have_root("netns_ipv6_underlay_kernel_mode_vtep_has_local6") {
        return;
    }
    // Host 0 runs kernel mode (a vtep created over netlink), host 1 the userspace overlay; the
    // kernel device answers ARP from its neighbour table, so each side is told the other's.
    let mut lab = Lab::build_ipv6("u6km", &[HostKind::Bare, HostKind::Vxswitch], 1, bin()).unwrap();
    let (a_bindings, b_bindings) = (arp_bindings(&lab, 0), arp_bindings(&lab, 1));
    assert!(lab.stop_vxswitch(1).unwrap());
    lab.start_vxswitch(1, &a_bindings).unwrap();
    let config = lab.vxswitch_config(0, &b_bindings).replace("tap = \"vxs1042\"\n", "mode = \"kernel\"\n");
    lab.start_vxswitch_with(0, &config).unwrap();
    all_pairs_ping(&lab, 5);
    let link = lab.hosts[0].ns.output("ip", &["-d", "link", "show", "vtep1042"]).unwrap();
    for want in ["vxlan id 1042", &format!("local {}", underlay_ip6(0)), "dev eth0", "dstport 4789", "nolearning", "master br0"] {
        assert!(link.contains(want), "{want:?} in: {link}");
    }
    assert!(link.contains(&format!("mtu {CONTAINER_MTU_IPV6}")), "MTU underlay - 70: {link}");
    let fdb = lab.hosts[0].ns.output("bridge", &["fdb", "show", "dev", "vtep1042"]).unwrap();
    assert!(fdb.lines().any(|l| l.starts_with(&format!("00:00:00:00:00:00 dst {}", underlay_ip6(1)))), "IPv6 flood entry: {fdb}");
    let stats = lab.stats(0).unwrap();
    assert_eq!(stats["networks"][0]["device"]["errors"], 0, "{}", stats["networks"][0]);
    assert_eq!(stats["networks"][0]["peers"], serde_json::json!([underlay_ip6(1).to_string()]));
    // A clean shutdown removes the device.
    assert!(lab.stop_vxswitch(0).unwrap(), "SIGTERM: clean exit; log in {}", lab.log(0).display());
    assert!(lab.hosts[0].ns.ip(&["link", "show", "vtep1042"]).is_err());
}

/// Polls host `i`'s `peer_mtus` until `want` holds (the probe reads the routes once a second).
fn wait_peer_mtus(lab: &Lab, i: usize, want: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let start = std::time::Instant::now();
    loop {
        let mtus = lab.stats(i).unwrap()["peer_mtus"].clone();
        if want(&mtus) {
            return mtus;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "host {i}: peer_mtus stayed {mtus}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn netns_ipv6_underlay_peer_path_mtu_is_read_with_ipv6_mtu() {
    if !have_root("netns_ipv6_underlay_peer_path_mtu_is_read_with_ipv6_mtu") {
        return;
    }
    let lab = Lab::build_ipv6("u6pm", &[HostKind::Vxswitch; 2], 1, bin()).unwrap();
    all_pairs_ping(&lab, 2);
    // The kernel's route to host 1 becomes smaller (as an ICMPv6 "packet too big" would make it).
    let peer = underlay_ip6(1).to_string();
    lab.hosts[0].ns.ip(&["-6", "route", "replace", &format!("{peer}/128"), "dev", "eth0", "mtu", "1400"]).unwrap();
    let mtus = wait_peer_mtus(&lab, 0, |m| m.as_array().is_some_and(|a| a.len() == 1));
    assert_eq!((mtus[0]["peer"].as_str(), mtus[0]["mtu"].as_u64()), (Some(peer.as_str()), Some(1400)), "{mtus}");
    // A full-size DF frame now gets "fragmentation needed" with 1400 - 70 = 1330; one that fits crosses.
    let dst = lab.hosts[1].containers[0].ip;
    assert_eq!(df_ping(&lab, 0, dst, CONTAINER_MTU_IPV6 - 28, 2), 0, "too big for the smaller path");
    assert!(lab.stats(0).unwrap()["counters"]["pmtu_icmp_sent"].as_u64().unwrap() > 0, "the sender was told");
    let route = lab.hosts[0].containers[0].ns.output("ip", &["route", "get", &dst.to_string()]).unwrap();
    assert!(route.contains("mtu 1330"), "the container learned the MTU that fits: {route}");
    assert_eq!(df_ping(&lab, 0, dst, 1330 - 28, 3), 3);
    // The route back at full size: raised again.
    lab.hosts[0].ns.ip(&["-6", "route", "del", &format!("{peer}/128"), "dev", "eth0"]).unwrap();
    wait_peer_mtus(&lab, 0, |m| m.as_array().is_some_and(|a| a.is_empty()));
}

/// Routes host `i`'s daemon holds (`stats`), as text.
fn routes(lab: &Lab, i: usize) -> Vec<String> {
    let stats = lab.stats(i).unwrap();
    stats["networks"][0]["routes"].as_array().map(|r| r.iter().map(|x| x.to_string()).collect()).unwrap_or_default()
}

#[test]
fn netns_ipv6_underlay_gossip_cluster_from_an_ipv6_seed() {
    if !have_root("netns_ipv6_underlay_gossip_cluster_from_an_ipv6_seed") {
        return;
    }
    let mut lab = Lab::build_ipv6_with("u6gp", &[HostKind::Bare; 3], 1, bin(), Addressing::PerHost).unwrap();
    for i in 0..3 {
        let config = lab.gossip_config(i, "routed", &[0]).unwrap();
        assert!(i == 0 || config.contains(&format!("seeds = [\"{}\"]", underlay_ip6(0))), "{config}");
        lab.start_vxswitch_with(i, &config).unwrap();
    }
    let start = std::time::Instant::now();
    while !(0..3).all(|i| routes(&lab, i).len() == 2) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "no convergence: {:?}",
            (0..3).map(|i| routes(&lab, i)).collect::<Vec<_>>()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    all_pairs_ping(&lab, 3);
    for i in 0..3 {
        let stats = lab.stats(i).unwrap();
        let net = &stats["networks"][0];
        let mut peers: Vec<String> = net["peers"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
        peers.sort();
        let want: Vec<String> = (0..3).filter(|&k| k != i).map(|k| underlay_ip6(k).to_string()).collect();
        assert_eq!(peers, want, "host {i}: members learned by gossip at their IPv6 underlay addresses");
        for r in net["routes"].as_array().unwrap() {
            assert!(r[1].as_str().unwrap().starts_with("2001:db8:18::"), "host {i}: routes via IPv6 VTEPs: {r}");
        }
        // Routed mode drops what on the bridge is not for the gateway (as over IPv4); nothing
        // else may be dropped, above all nothing from an unknown underlay peer.
        let other = drops(&stats) - stats["counters"]["drops"]["routed_not_for_gateway"].as_u64().unwrap();
        assert_eq!(other, 0, "host {i}: {}", stats["counters"]["drops"]);
    }
    let peers: serde_json::Value =
        serde_json::from_str(&vxswitch::sys::daemon::control_socket::query(&lab.socket(0), "peers").unwrap()).unwrap();
    let members = peers["members"].as_array().unwrap();
    assert_eq!(members.iter().filter(|m| m["state"] == "alive").count(), 2, "{peers}");
}

#[test]
fn netns_ipv6_underlay_tcp_between_vxswitch_and_kernel_vxlan_arrives_intact() {
    if !have_root("netns_ipv6_underlay_tcp_between_vxswitch_and_kernel_vxlan_arrives_intact") {
        return;
    }
    // The kernel device on the same kernel hands vxswitch whole TCP super-frames in one datagram;
    // they are cut at what an IPv6 underlay carries (1452 bytes of UDP payload), so every piece
    // fits the containers' MTU (1430).
    let lab = Lab::build_ipv6("u6kt", &[HostKind::Vxswitch, HostKind::KernelVxlan], 1, bin()).unwrap();
    all_pairs_ping(&lab, 2);
    let bin = bin().to_string_lossy().into_owned();
    let (a, b) = (&lab.hosts[0].containers[0], &lab.hosts[1].containers[0]);
    let bytes = 16 << 20;
    for (from, to, port) in [(b, a, 5411), (a, b, 5412)] {
        let report = checked_transfer(&bin, &from.ns, &to.ns, to.ip, port, bytes).unwrap();
        assert!(report.intact && report.received == bytes, "{} -> {}: {report:?}", from.ip, to.ip);
    }
    assert!(driver(&lab, 0, "rx_super_datagrams") > 0, "{}", lab.stats(0).unwrap()["driver"]);
    assert_eq!(driver(&lab, 0, "rx_super_unusable"), 0);
    assert_eq!(drops(&lab.stats(0).unwrap()), 0, "{}", lab.stats(0).unwrap()["counters"]["drops"]);
}
