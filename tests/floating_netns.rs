//! Floating IPs on real kernels: 3 hosts gossiping over an overlay network, each with an uplink
//! `up0` on a shared uplink bridge where an "outside" namespace lives. The outside client reaches
//! a container through the floating IP; the container moves (stopped on one host, started on
//! another) and the client reaches it again within a second, while a capture of every ARP answer
//! for the address shows no request ever answered by two MACs; the owning host dies (SIGKILL of
//! its daemon, its links down) and another host takes the address over within one second of
//! failure detection; a restart of the crashed host removes what the crash left; after a clean stop no
//! address or nftables table is left on any host.
//!
//! Needs root; without it the test prints SKIP (or fails with VXSWITCH_REQUIRE_ROOT=1).

#[path = "common/netns.rs"]
mod netns_common;
#[path = "common/traffic.rs"]
mod traffic;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use netns_common::have_root;
use traffic::read_pcap;
use vxswitch::testnet::lab::{Addressing, HostKind, Lab, VNI};
use vxswitch::testnet::netns::Netns;

const FIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 200);
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
const APP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const APP_MAC: &str = "02:aa:00:00:00:64";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vxswitch"))
}

/// Host `i`'s address on the container network (the app's gateway when it runs there).
fn gateway(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 250 + i as u8)
}

fn config(lab: &Lab, i: usize) -> String {
    lab.overlay_gossip_config(i, &[0, 1]).expect("gossip configuration")
        + &format!("\n[[floating_ip]]\naddress = \"{FIP}\"\ninterface = \"up0\"\ncontainer = \"{APP}\"\nvni = {VNI}\n")
}

/// The uplink bridge `upl` (in the underlay namespace) with every host's `up0` and the outside
/// namespace's `eth0` on it.
fn build_uplink(lab: &Lab, outside: &Netns) {
    lab.underlay.ip(&["link", "add", "upl", "type", "bridge"]).unwrap();
    lab.underlay.ip(&["link", "set", "upl", "up"]).unwrap();
    for (i, h) in lab.hosts.iter().enumerate() {
        let port = format!("u{i}");
        lab.underlay.ip(&["link", "add", &port, "type", "veth", "peer", "name", "up0", "netns", h.ns.name()]).unwrap();
        lab.underlay.ip(&["link", "set", &port, "master", "upl", "up"]).unwrap();
        h.ns.ip(&["addr", "add", &format!("203.0.113.{}/24", i + 1), "dev", "up0"]).unwrap();
        h.ns.ip(&["link", "set", "up0", "up"]).unwrap();
        h.ns.ip(&["addr", "add", &format!("{}/24", gateway(i)), "dev", "br0"]).unwrap();
        h.ns.sysctl("net.ipv4.ip_forward", "1").unwrap();
    }
    lab.underlay.ip(&["link", "add", "out", "type", "veth", "peer", "name", "eth0", "netns", outside.name()]).unwrap();
    lab.underlay.ip(&["link", "set", "out", "master", "upl", "up"]).unwrap();
    outside.ip(&["addr", "add", &format!("{OUTSIDE}/24"), "dev", "eth0"]).unwrap();
    outside.ip(&["link", "set", "eth0", "up"]).unwrap();
}

/// Start the app container on host `i`: a veth into its bridge with the app's address and MAC,
/// default route via that host; it says hello to its gateway (as any starting container does).
fn start_app(lab: &Lab, app: &Netns, i: usize) {
    let h = &lab.hosts[i].ns;
    h.ip(&["link", "add", "app", "type", "veth", "peer", "name", "eth0", "netns", app.name()]).unwrap();
    h.ip(&["link", "set", "app", "master", "br0", "up"]).unwrap();
    app.ip(&["link", "set", "eth0", "address", APP_MAC]).unwrap();
    app.ip(&["addr", "add", &format!("{APP}/24"), "dev", "eth0"]).unwrap();
    app.ip(&["link", "set", "eth0", "up"]).unwrap();
    app.ip(&["route", "add", "default", "via", &gateway(i).to_string()]).unwrap();
    let _ = app.output("ping", &["-c", "1", "-W", "1", &gateway(i).to_string()]);
}

/// Stop the app container on host `i` (its veth goes away).
fn stop_app(lab: &Lab, i: usize) {
    lab.hosts[i].ns.ip(&["link", "del", "app"]).unwrap();
}

/// One ping from outside to the floating IP with a fresh ARP lookup (so every attempt asks who
/// has the address).
fn outside_ping(outside: &Netns) -> bool {
    let _ = outside.ip(&["neigh", "flush", "dev", "eth0"]);
    outside.output("ping", &["-c", "1", "-W", "0.2", &FIP.to_string()]).is_ok()
}

/// Ping from outside until one echo comes back; how long that took.
fn until_reachable(outside: &Netns, limit: Duration, what: &str) -> Duration {
    let t0 = Instant::now();
    while !outside_ping(outside) {
        assert!(t0.elapsed() < limit, "{what}: {FIP} not reachable within {limit:?}");
    }
    t0.elapsed()
}

/// tcpdump of `filter` on the namespace's `eth0` into `path`, listening when this returns.
fn capture(ns: &Netns, filter: &str, path: &Path) -> Child {
    let child = ns
        .command("tcpdump")
        .args(["-i", "eth0", "-U", "-n", "-w", &path.to_string_lossy(), filter])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump");
    let t0 = Instant::now();
    while std::fs::metadata(path).map(|m| m.len() < 24).unwrap_or(true) {
        assert!(t0.elapsed() < Duration::from_secs(10), "tcpdump did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    child
}

/// Stop a [`capture`] and read its frames.
fn stop_capture(mut child: Child, path: &Path) -> Vec<Vec<u8>> {
    std::thread::sleep(Duration::from_millis(300));
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT);
    let _ = child.wait();
    read_pcap(&std::fs::read(path).expect("pcap written"))
}

/// Host `i`'s view of member `name` ("alive", "suspect", "dead").
fn member_state(lab: &Lab, i: usize, name: &str) -> Option<String> {
    let text = vxswitch::sys::daemon::control_socket::query(&lab.socket(i), "peers").ok()?;
    let peers: serde_json::Value = serde_json::from_str(&text).ok()?;
    let m = peers["members"].as_array()?.iter().find(|m| m["name"] == name)?.clone();
    m["state"].as_str().map(str::to_string)
}

fn holder_json(lab: &Lab, i: usize) -> serde_json::Value {
    lab.stats(i).unwrap()["floating"].clone()
}

fn has_address(h: &Netns) -> bool {
    h.output("ip", &["-4", "addr", "show", "dev", "up0"]).unwrap().contains(&format!("{FIP}/32"))
}

fn has_table(h: &Netns) -> bool {
    h.output("nft", &["list", "tables"]).unwrap().contains("vxswitch_floating")
}

/// ARP replies and announcements for the floating IP in a capture: for each request, the MACs
/// that answered it (before the next request); and every MAC that announced the address.
fn arp_answers(frames: &[Vec<u8>]) -> (Vec<Vec<[u8; 6]>>, Vec<[u8; 6]>) {
    let mut per_request: Vec<Vec<[u8; 6]>> = Vec::new();
    let mut announcers = Vec::new();
    for f in frames {
        if f.len() < 42 || f[12..14] != [0x08, 0x06] {
            continue;
        }
        let op = u16::from_be_bytes([f[20], f[21]]);
        let sender_mac: [u8; 6] = f[22..28].try_into().unwrap();
        let sender_ip = Ipv4Addr::new(f[28], f[29], f[30], f[31]);
        let target_ip = Ipv4Addr::new(f[38], f[39], f[40], f[41]);
        match op {
            1 if sender_ip == FIP && target_ip == FIP => announcers.push(sender_mac),
            1 if target_ip == FIP => per_request.push(Vec::new()),
            2 if sender_ip == FIP => {
                if let Some(last) = per_request.last_mut() {
                    if !last.contains(&sender_mac) {
                        last.push(sender_mac);
                    }
                }
                announcers.push(sender_mac);
            }
            _ => {}
        }
    }
    (per_request, announcers)
}

#[test]
fn netns_floating_ip_follows_its_container_and_survives_its_owner() {
    if !have_root("netns_floating_ip_follows_its_container_and_survives_its_owner") {
        return;
    }
    let mut lab = Lab::build_with("fip", &[HostKind::Bare; 3], 0, bin(), Addressing::Shared).expect("lab");
    let outside = Netns::create(&format!("{}-out", lab.prefix())).unwrap();
    let app = Netns::create(&format!("{}-app", lab.prefix())).unwrap();
    build_uplink(&lab, &outside);
    for i in 0..3 {
        let cfg = config(&lab, i);
        lab.start_vxswitch_with(i, &cfg).unwrap();
    }
    // Every ARP on the outside link, for the whole test.
    let pcap = lab.dir.join("outside.pcap");
    let tcpdump = capture(&outside, "arp", &pcap);
    // Let the cluster form, then start the app on host 0.
    std::thread::sleep(Duration::from_secs(2));
    start_app(&lab, &app, 0);
    let first = until_reachable(&outside, Duration::from_secs(10), "first hold");
    assert!(has_address(&lab.hosts[0].ns) && has_table(&lab.hosts[0].ns), "host 0 holds the address");
    assert!(!has_address(&lab.hosts[1].ns) && !has_address(&lab.hosts[2].ns));
    // The container's own outbound traffic leaves as the floating IP (SNAT).
    // The container's own traffic to outside leaves as the floating IP (SNAT): the echo is
    // answered, and host 0's conntrack entry for it expects the answer at the floating IP.
    assert!(app.output("ping", &["-c", "1", "-W", "1", &OUTSIDE.to_string()]).is_ok(), "container -> outside");
    let ct = lab.hosts[0].ns.output("conntrack", &["-L", "-p", "icmp", "-s", &APP.to_string(), "-d", &OUTSIDE.to_string()]).unwrap();
    assert!(ct.contains(&format!("dst={FIP}")) && !ct.contains("UNREPLIED"), "no SNAT to {FIP}: {ct}");
    std::thread::sleep(Duration::from_secs(2));

    // Move: stop on host 0, start on host 1.
    stop_app(&lab, 0);
    let moved_at = Instant::now();
    start_app(&lab, &app, 1);
    until_reachable(&outside, Duration::from_secs(1), "move 0 -> 1");
    // Reachable may still mean through host 0: until it sees host 1's claim it keeps DNATing the
    // address over the overlay to the container's new host. The move is complete once host 1
    // holds the address and host 0 has released everything.
    while !(has_address(&lab.hosts[1].ns) && !has_address(&lab.hosts[0].ns) && !has_table(&lab.hosts[0].ns)) {
        assert!(moved_at.elapsed() < Duration::from_secs(1), "move 0 -> 1 not complete within 1 s (host 0 still holds or host 1 does not)");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(outside_ping(&outside), "reachable through host 1");
    let moved = moved_at.elapsed();
    // ... and flushed the conntrack entries of the address (the outside's pings were DNATed there).
    std::thread::sleep(Duration::from_millis(200));
    let ct = lab.hosts[0].ns.output("conntrack", &["-L", "-d", &FIP.to_string()]).unwrap();
    assert!(ct.trim().is_empty(), "host 0 kept conntrack entries of {FIP}: {ct}");
    let f1 = holder_json(&lab, 1);
    assert_eq!(f1["ips"][0]["held_here"], true, "{f1}");
    assert_eq!(f1["moves"], 1, "{f1}");
    for i in 0..3 {
        let f = holder_json(&lab, i);
        assert_eq!(f["ips"][0]["owner"], "h1", "host {i}: {f}");
    }
    std::thread::sleep(Duration::from_secs(2));

    // Host 1 dies: SIGKILL its daemon and take its links down; the app is started on host 2.
    lab.kill_vxswitch(1).unwrap();
    let killed_at = Instant::now();
    lab.hosts[1].ns.ip(&["link", "set", "up0", "down"]).unwrap();
    lab.hosts[1].ns.ip(&["link", "set", "eth0", "down"]).unwrap();
    stop_app(&lab, 1);
    start_app(&lab, &app, 2);
    // Watch host 2's view of host 1 while pinging: failure detection is the moment host 2
    // declares host 1 dead.
    let mut detected = None;
    loop {
        if detected.is_none() && member_state(&lab, 2, "h1").as_deref() == Some("dead") {
            detected = Some(killed_at.elapsed());
        }
        if outside_ping(&outside) {
            break;
        }
        assert!(killed_at.elapsed() < Duration::from_secs(15), "not taken over within 15 s");
    }
    let takeover = killed_at.elapsed();
    let detected = detected.or_else(|| (member_state(&lab, 2, "h1").as_deref() == Some("dead")).then_some(takeover));
    let detected = detected.expect("taken over while host 1 was not declared dead");
    assert!(takeover <= detected + Duration::from_secs(1), "takeover {takeover:?}, failure detected at {detected:?}");
    let f2 = holder_json(&lab, 2);
    assert_eq!(f2["takeovers"], 1, "{f2}");
    let peers: serde_json::Value =
        serde_json::from_str(&vxswitch::sys::daemon::control_socket::query(&lab.socket(2), "peers").unwrap()).unwrap();
    assert_eq!(peers["floating"]["ips"][0]["owner"], "h2", "{peers}");
    let h1 = peers["members"].as_array().unwrap().iter().find(|m| m["name"] == "h1").cloned();
    assert_eq!(h1.as_ref().map(|m| m["state"].clone()), Some(serde_json::json!("dead")), "{peers}");

    // The crashed host comes back: its start removes what the crash left, and it stays away.
    assert!(has_address(&lab.hosts[1].ns) && has_table(&lab.hosts[1].ns), "the crash left state (else this proves nothing)");
    lab.hosts[1].ns.ip(&["link", "set", "eth0", "up"]).unwrap();
    lab.hosts[1].ns.ip(&["link", "set", "up0", "up"]).unwrap();
    let cfg = config(&lab, 1);
    lab.start_vxswitch_with(1, &cfg).unwrap();
    assert!(!has_address(&lab.hosts[1].ns) && !has_table(&lab.hosts[1].ns), "restart reconciled the crash's leftovers");
    std::thread::sleep(Duration::from_secs(2));
    assert!(!has_address(&lab.hosts[1].ns), "a host without the container took the address");
    assert!(outside_ping(&outside), "still reachable through host 2");

    // No ARP request for the address was ever answered by two MACs.
    let frames = stop_capture(tcpdump, &pcap);
    let (answers, announcers) = arp_answers(&frames);
    let doubled: Vec<_> = answers.iter().filter(|a| a.len() > 1).collect();
    assert!(doubled.is_empty(), "requests answered by two MACs: {doubled:?}");
    let mut macs = announcers.clone();
    macs.sort();
    macs.dedup();
    assert_eq!(macs.len(), 3, "three hosts held the address in turn");
    println!(
        "floating IP: first hold {first:?}, move {moved:?}, takeover after SIGKILL {takeover:?} (failure detected at {detected:?}); {} ARP requests for it, none answered twice",
        answers.len()
    );

    // The control socket: unbinding everywhere releases the address; binding again (as the
    // configuration has it) brings it back on the host where the container runs.
    let cli = |i: usize, args: &[&str]| {
        let mut full: Vec<String> = vec!["floating".into()];
        full.extend(args.iter().map(|a| a.to_string()));
        full.extend(["--socket".to_string(), lab.socket(i).to_string_lossy().into_owned()]);
        vxswitch::testnet::netns::run_cmd(std::process::Command::new(lab.bin()).args(&full)).expect("vxswitch floating")
    };
    for i in 0..3 {
        cli(i, &["del", &FIP.to_string()]);
    }
    assert!(!has_address(&lab.hosts[2].ns) && !has_table(&lab.hosts[2].ns), "unbound but still held");
    assert!(!outside_ping(&outside), "unbound address still answers");
    for i in 0..3 {
        cli(i, &["add", &FIP.to_string(), "--interface", "up0", "--container", &APP.to_string(), "--vni", &VNI.to_string()]);
    }
    until_reachable(&outside, Duration::from_secs(2), "bound again");
    assert!(has_address(&lab.hosts[2].ns), "bound again where the container runs");

    // Clean stop: nothing left anywhere.
    for i in 0..3 {
        assert!(lab.stop_vxswitch(i).unwrap(), "host {i} stopped cleanly");
        assert!(!has_address(&lab.hosts[i].ns), "host {i} kept {FIP}");
        assert!(!has_table(&lab.hosts[i].ns), "host {i} kept its nftables table");
    }
}
