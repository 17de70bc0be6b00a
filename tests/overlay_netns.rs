//! The L2 overlay on real kernels: vxswitch hosts and kernel-vxlan hosts in network namespaces.
//! Needs root; without it each test prints SKIP (or fails with VXSWITCH_REQUIRE_ROOT=1).

#[path = "common/netns.rs"]
mod netns_common;
#[path = "common/traffic.rs"]
mod traffic;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::time::Duration;

use netns_common::have_root;
use traffic::{all_pairs_ping, ping};
use vxswitch::testnet::lab::{HostKind, Lab};
use vxswitch::testnet::setns;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vxswitch"))
}

#[test]
fn netns_vxswitch_to_vxswitch_all_pairs() {
    if !have_root("netns_vxswitch_to_vxswitch_all_pairs") {
        return;
    }
    let lab = Lab::build("l2vv", &[HostKind::Vxswitch, HostKind::Vxswitch], 2, bin()).unwrap();
    all_pairs_ping(&lab, 5);
    let stats = lab.stats(0).unwrap();
    assert_eq!(stats["counters"]["drops"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>(), 0);
    let fdb = stats["networks"][0]["fdb"].as_array().unwrap();
    for c in &lab.hosts[1].containers {
        let mac = c.mac().unwrap();
        assert!(
            fdb.iter().any(|e| e["mac"] == mac.as_str() && e["location"] == "198.18.0.2"),
            "container {mac} of host 1 learned behind its VTEP: {fdb:?}"
        );
    }
    for c in &lab.hosts[0].containers {
        let mac = c.mac().unwrap();
        assert!(fdb.iter().any(|e| e["mac"] == mac.as_str() && e["location"] == "local"), "{mac} local");
    }
    let metrics = vxswitch::sys::daemon::control_socket::query(&lab.socket(0), "metrics").unwrap();
    let frames: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("vxswitch_tap_rx_frames_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    let earlier = stats["counters"]["tap_rx_frames"].as_u64().unwrap();
    assert!(frames >= earlier && earlier > 0, "metrics ({frames}) agree with the earlier stats ({earlier})");
    assert!(metrics.contains("vxswitch_drops_total{reason=\"unknown_peer\"} 0"), "{metrics}");
}

#[test]
fn netns_vxswitch_and_kernel_vxlan_interoperate() {
    if !have_root("netns_vxswitch_and_kernel_vxlan_interoperate") {
        return;
    }
    let lab = Lab::build("l2vk", &[HostKind::Vxswitch, HostKind::KernelVxlan], 2, bin()).unwrap();
    // Both directions, ARP included: every ping starts from an empty neighbour cache.
    all_pairs_ping(&lab, 5);
    let stats = lab.stats(0).unwrap();
    let c = &stats["counters"];
    assert!(c["underlay_rx_packets"].as_u64().unwrap() > 0 && c["underlay_tx_packets"].as_u64().unwrap() > 0);
    let neigh = lab.hosts[1].containers[0].ns.output("ip", &["neigh", "show", "dev", "eth0"]).unwrap();
    assert!(neigh.contains("192.0.2.11"), "the kernel-vxlan side resolved a vxswitch-side container by ARP: {neigh}");
}

fn drops(stats: &serde_json::Value) -> u64 {
    stats["counters"]["drops"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum()
}

/// UDP receive-buffer overflows in a namespace (datagrams the kernel dropped before vxswitch).
fn udp_rcvbuf_errors(lab: &Lab, host: usize) -> u64 {
    let snmp = lab.hosts[host].ns.output("cat", &["/proc/net/snmp"]).unwrap();
    let udp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp:")).collect();
    let names: Vec<&str> = udp[0].split_whitespace().collect();
    let values: Vec<&str> = udp[1].split_whitespace().collect();
    let i = names.iter().position(|n| *n == "RcvbufErrors").unwrap();
    values[i].parse().unwrap()
}

#[test]
fn netns_malformed_flood_is_counted_and_traffic_flows() {
    if !have_root("netns_malformed_flood_is_counted_and_traffic_flows") {
        return;
    }
    let lab = Lab::build("l2mf", &[HostKind::Vxswitch, HostKind::Vxswitch], 1, bin()).unwrap();
    all_pairs_ping(&lab, 3);
    // A second address on host 1, so some garbage comes from a non-peer.
    lab.hosts[1].ns.ip(&["addr", "add", "198.18.0.99/24", "dev", "eth0"]).unwrap();
    let before = drops(&lab.stats(0).unwrap());
    let rcvbuf_before = udp_rcvbuf_errors(&lab, 0);

    let target = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 4789);
    let flood = {
        let ns = lab.hosts[1].ns.name().to_string();
        std::thread::spawn(move || {
            setns::run_in(&ns, move || {
                let peer = UdpSocket::bind("198.18.0.2:0").unwrap();
                let stranger = UdpSocket::bind("198.18.0.99:0").unwrap();
                let inner_ok = [[0xffu8; 6], [2, 0, 0, 0, 0, 1]].concat();
                for i in 0..10_000u32 {
                    let mut vx = vec![0x08, 0, 0, 0, 0x00, 0x04, 0x12, 0x00];
                    let (sock, payload) = match i % 5 {
                        0 => (&peer, vec![0x08, 0, 0]),
                        1 => (&peer, {
                            vx[0] = 0;
                            vx.extend_from_slice(&inner_ok);
                            vx.extend_from_slice(&[8, 6]);
                            vx
                        }),
                        2 => (&peer, {
                            vx[4..7].copy_from_slice(&[0, 3, 0xe7]);
                            vx.extend_from_slice(&[0u8; 60]);
                            vx
                        }),
                        3 => (&peer, {
                            vx.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
                            vx
                        }),
                        _ => (&stranger, {
                            vx.extend_from_slice(&inner_ok);
                            vx.extend_from_slice(&[0u8; 50]);
                            vx
                        }),
                    };
                    sock.send_to(&payload, target).unwrap();
                    if i % 50 == 49 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            })
            .unwrap()
        })
    };
    // Traffic flows during the flood.
    let (sent, got) = ping(&lab, 0, 0, lab.hosts[1].containers[0].ip, 20);
    flood.join().unwrap();
    assert_eq!(got, sent, "pings during the flood");
    all_pairs_ping(&lab, 3);

    let stats = lab.stats(0).unwrap();
    let dropped = drops(&stats) - before;
    let kernel_dropped = udp_rcvbuf_errors(&lab, 0) - rcvbuf_before;
    assert_eq!(dropped + kernel_dropped, 10_000, "every malformed datagram accounted for: {}", stats["counters"]["drops"]);
    let d = &stats["counters"]["drops"];
    for reason in ["vxlan_truncated", "vxlan_bad_flags", "unknown_vni", "inner_malformed", "unknown_peer"] {
        assert!(d[reason].as_u64().unwrap() > 0, "{reason} counted: {d}");
    }
}
