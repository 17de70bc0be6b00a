//! Service VIPs on real kernels: 3 hosts gossiping over an overlay network, one backend container
//! on each, a client container on host 0. The service is defined on host 1 only and reaches host
//! 0 by gossip; 300 new TCP connections from the client spread over all three backends (each gets
//! 20-46 %); a backend's host dies (SIGKILL of its daemon, its underlay down): once failure
//! detection withdraws it, no new connection goes to it and the UDP conntrack entries towards it
//! are gone; a clean stop leaves no table.
//!
//! Needs root; without it the test prints SKIP (or fails with VXSWITCH_REQUIRE_ROOT=1).

#[path = "common/netns.rs"]
mod netns_common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use netns_common::have_root;
use vxswitch::testnet::lab::{container_ip, Addressing, HostKind, Lab};
use vxswitch::testnet::setns::run_in;

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vxswitch"))
}

/// Host `i`'s address on the container network (its containers' route to the VIPs).
fn gateway(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 250 + i as u8)
}

fn backend(i: usize) -> Ipv4Addr {
    container_ip(i, 0)
}

fn config(lab: &Lab, i: usize) -> String {
    let backends: Vec<String> = (0..3).map(|k| format!("\"{}\"", backend(k))).collect();
    let services = if i == 1 {
        format!(
            "\n[[service]]\naddress = \"{VIP}:80/tcp\"\nbackends = [{b}]\n\n[[service]]\naddress = \"{VIP}:53/udp\"\nbackends = [{b}]\n",
            b = backends.join(", ")
        )
    } else {
        String::new()
    };
    lab.overlay_gossip_config(i, &[0, 1]).expect("gossip configuration") + &services
}

/// The live backends of the TCP service as host `i` sees them.
fn live(lab: &Lab, i: usize) -> Vec<String> {
    let s = lab.stats(i).unwrap();
    let svc = s["services"]["services"].as_array().cloned().unwrap_or_default();
    let tcp = svc.iter().find(|v| v["service"] == format!("{VIP}:80/tcp"));
    tcp.and_then(|v| v["live"].as_array().cloned()).unwrap_or_default().iter().map(|b| b.as_str().unwrap_or("").to_string()).collect()
}

fn wait_live(lab: &Lab, i: usize, want: usize, limit: Duration) -> Duration {
    let t0 = Instant::now();
    while live(lab, i).len() != want {
        assert!(t0.elapsed() < limit, "host {i}: {:?} live backends, want {want}", live(lab, i));
        std::thread::sleep(Duration::from_millis(50));
    }
    t0.elapsed()
}

/// `n` new TCP connections from namespace `client_ns` to the VIP; how many each backend answered, and the
/// failures.
fn connect_many(client_ns: String, n: usize) -> ([usize; 3], usize) {
    run_in(&client_ns, move || {
        let mut counts = [0usize; 3];
        let mut failed = 0;
        for _ in 0..n {
            let answer = TcpStream::connect_timeout(&SocketAddr::from((VIP, 80)), Duration::from_secs(2)).and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(2)))?;
                let mut b = [0u8; 1];
                s.read_exact(&mut b)?;
                Ok(b[0])
            });
            match answer {
                Ok(k) if (k as usize) < 3 => counts[k as usize] += 1,
                _ => failed += 1,
            }
        }
        (counts, failed)
    })
    .expect("client namespace")
}

fn conntrack_udp_to(lab: &Lab, i: usize, b: Ipv4Addr) -> usize {
    let out = lab.hosts[i].ns.output("conntrack", &["-L", "-p", "udp", "-d", &VIP.to_string(), "-r", &b.to_string()]).unwrap();
    out.lines().filter(|l| l.contains("udp")).count()
}

#[test]
fn netns_service_vip_spreads_connections_and_withdraws_a_dead_backend() {
    if !have_root("netns_service_vip_spreads_connections_and_withdraws_a_dead_backend") {
        return;
    }
    let mut lab = Lab::build_with("svc", &[HostKind::Bare; 3], 2, bin(), Addressing::Shared).expect("lab");
    for (i, h) in lab.hosts.iter().enumerate() {
        h.ns.ip(&["addr", "add", &format!("{}/24", gateway(i)), "dev", "br0"]).unwrap();
        h.ns.sysctl("net.ipv4.ip_forward", "1").unwrap();
        // Container traffic to a VIP is routed by the host, not bridged: with br_netfilter
        // loaded, bridged frames would meet the DNAT in the bridge and skip the masquerade (see
        // the README). Absent when br_netfilter is not loaded.
        let _ = h.ns.sysctl("net.bridge.bridge-nf-call-iptables", "0");
        for c in &h.containers {
            c.ns.ip(&["route", "add", "10.96.0.0/24", "via", &gateway(i).to_string()]).unwrap();
        }
    }
    for i in 0..3 {
        let cfg = config(&lab, i);
        lab.start_vxswitch_with(i, &cfg).unwrap();
    }
    // Backends: answer each TCP connection with their index; a UDP socket so datagrams are taken.
    for (i, h) in lab.hosts.iter().enumerate() {
        let ns = h.containers[0].ns.name().to_string();
        let (tcp, udp) = run_in(&ns, || (TcpListener::bind("0.0.0.0:80").unwrap(), UdpSocket::bind("0.0.0.0:53").unwrap())).unwrap();
        std::thread::spawn(move || {
            let _udp = udp;
            for mut s in tcp.incoming().flatten() {
                let _ = s.write_all(&[i as u8]);
            }
        });
        // A starting container says hello to its gateway: its host sees it and announces it.
        let _ = h.containers[0].ns.output("ping", &["-c", "1", "-W", "1", &gateway(i).to_string()]);
    }
    let client = lab.hosts[0].containers[1].ns.name().to_string();
    let _ = lab.hosts[0].containers[1].ns.output("ping", &["-c", "1", "-W", "1", &gateway(0).to_string()]);
    let spread_in = wait_live(&lab, 0, 3, Duration::from_secs(15));
    println!("service reached host 0 with 3 live backends after {spread_in:?}");

    // From a host itself (the output chain; the host needs a route towards the VIPs, here the
    // bridge): host 2.
    wait_live(&lab, 2, 3, Duration::from_secs(15));
    lab.hosts[2].ns.ip(&["route", "add", "10.96.0.0/24", "dev", "br0"]).unwrap();
    let (from_host, host_failed) = connect_many(lab.hosts[2].ns.name().to_string(), 30);
    assert_eq!(host_failed, 0, "from host 2: {from_host:?}");
    assert!(from_host.iter().filter(|&&c| c > 0).count() >= 2, "from host 2: {from_host:?}");

    let (counts, failed) = connect_many(client.clone(), 300);
    println!("300 connections: {counts:?}, {failed} failed");
    assert_eq!(failed, 0, "{counts:?}");
    for (k, &c) in counts.iter().enumerate() {
        assert!((60..=138).contains(&c), "backend {k} got {c} of 300 ({counts:?})");
    }

    // UDP flows from 60 source ports: some land on backend 2.
    run_in(&client, || {
        for _ in 0..60 {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            let _ = s.send_to(b"q", SocketAddr::from((VIP, 53)));
        }
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let before = conntrack_udp_to(&lab, 0, backend(2));
    assert!(before > 0, "no UDP flow went to backend 2 (the check below would prove nothing)");

    // Host 2 dies.
    lab.kill_vxswitch(2).unwrap();
    let killed = Instant::now();
    lab.hosts[2].ns.ip(&["link", "set", "eth0", "down"]).unwrap();
    wait_live(&lab, 0, 2, Duration::from_secs(15));
    let withdrawn = killed.elapsed();
    assert!(!live(&lab, 0).contains(&backend(2).to_string()));
    std::thread::sleep(Duration::from_millis(300));
    let after = conntrack_udp_to(&lab, 0, backend(2));
    assert_eq!(after, 0, "UDP conntrack entries to the dead backend remain ({before} before)");
    let s = lab.stats(0).unwrap();
    assert_eq!(s["services"]["backends_withdrawn"], 2, "tcp and udp: {}", s["services"]);

    let (counts2, failed2) = connect_many(client, 100);
    println!("after the kill: {counts2:?}, {failed2} failed; withdrawn {withdrawn:?} after SIGKILL, {before} UDP entries flushed");
    assert_eq!(failed2, 0, "{counts2:?}");
    assert_eq!(counts2[2], 0, "a new connection went to the dead backend");
    assert!(counts2[0] > 0 && counts2[1] > 0, "{counts2:?}");

    for i in 0..2 {
        assert!(lab.stop_vxswitch(i).unwrap(), "host {i} stopped cleanly");
        let tables = lab.hosts[i].ns.output("nft", &["list", "tables"]).unwrap();
        assert!(!tables.contains("vxswitch_services"), "host {i} kept its table: {tables}");
    }
}
