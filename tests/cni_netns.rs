//! The CNI plugin on real kernels, invoked exactly as a container runtime does (`cnitool`
//! style): the `vxswitch` binary run without arguments inside the host's namespace, `CNI_*` in
//! the environment and the network configuration on stdin.
//! Needs root; without it each test prints SKIP (or fails with VXSWITCH_REQUIRE_ROOT=1).

#[path = "common/cni.rs"]
mod cni_common;
#[path = "common/netns.rs"]
mod netns_common;
#[path = "common/traffic.rs"]
mod traffic;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use cni_common::*;
use netns_common::have_root;
use serde_json::{json, Value};
use traffic::{all_pairs_ping, Capture};
use vxswitch::testnet::lab::{host_gateway, host_subnet, underlay_ip, Addressing, HostKind, Lab};
use vxswitch::testnet::netns::Netns;

/// Wait until every host's proxy ARP holds `remote(h)` bindings.
fn wait_for_proxy_arp(lab: &Lab, remote: impl Fn(usize) -> u64, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let counts: Vec<u64> = (0..lab.hosts.len()).map(|h| bindings(lab, h)["proxy_arp"].as_u64().unwrap()).collect();
        if counts.iter().enumerate().all(|(h, &c)| c == remote(h)) {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "proxy ARP tables {counts:?} not as expected within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn with_prev_result(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

#[test]
fn netns_cni_overlay_3x5_ping_without_arp_del_add_check() {
    if !have_root("netns_cni_overlay_3x5_ping_without_arp_del_add_check") {
        return;
    }
    let mut lab = Lab::build_with("cno", &[HostKind::Bare; 3], 0, bin(), Addressing::Shared).unwrap();
    for i in 0..3 {
        let config = overlay_gossip_config(&lab, i);
        lab.start_vxswitch_with(i, &config).unwrap();
    }
    let results = add_containers(&mut lab, 5, |lab, h| conf(lab, h, "1.1.0", overlay_ipam(h)));
    eprintln!("cni ADD result: {}", results[0][0]);
    let first = &results[0][0];
    assert_eq!(first["cniVersion"], "1.1.0");
    assert_eq!(first["interfaces"][1]["name"], "eth0");
    assert_eq!(first["interfaces"][1]["mtu"], 1450, "the VXLAN network's MTU");
    assert_eq!(first["ips"][0]["interface"], 1);
    let ips: BTreeSet<Ipv4Addr> = lab.hosts.iter().flat_map(|h| h.containers.iter().map(|c| c.ip)).collect();
    assert_eq!(ips.len(), 15, "distinct addresses");
    for (h, host) in lab.hosts.iter().enumerate() {
        assert_eq!(bindings(&lab, h)["local"].as_array().unwrap().len(), 5);
        for c in &host.containers {
            assert!(c.ip.octets()[3] >= (20 * h + 10) as u8 && c.ip.octets()[3] <= (20 * h + 29) as u8, "{} in host {h}'s range", c.ip);
            let mtu = c.ns.output("cat", &["/sys/class/net/eth0/mtu"]).unwrap();
            assert_eq!(mtu.trim(), "1450");
        }
    }
    // Every host learns the other hosts' 10 containers by gossip, before any container sent a frame.
    let known = wait_for_proxy_arp(&lab, |_| 10, Duration::from_secs(20));
    eprintln!("cni: every host's proxy ARP knew all remote containers {known:?} after the last ADD");

    let pcap = lab.dir.join("cni-overlay.pcap");
    let capture = Capture::start(&lab, "ul", "udp port 4789", &pcap);
    all_pairs_ping(&lab, 1);
    let frames = capture.stop();
    let inner: Vec<&[u8]> = frames.iter().filter_map(|f| traffic::vxlan_inner(f)).collect();
    let arp = inner.iter().filter(|f| f.len() >= 14 && f[12..14] == [0x08, 0x06]).count();
    let ipv4 = inner.iter().filter(|f| f.len() >= 14 && f[12..14] == [0x08, 0x00]).count();
    eprintln!("cni: {ipv4} IPv4 frames and {arp} ARP frames crossed the overlay during 210 pings");
    // 150 of the 210 pings are between hosts; the capture must have seen them.
    assert!(ipv4 >= 150, "the pings between hosts crossed the overlay ({ipv4} frames)");
    assert_eq!(arp, 0, "no ARP crosses once containers are added through CNI");
    let kept: u64 = (0..3).map(|h| lab.stats(h).unwrap()["counters"]["arp_local_target"].as_u64().unwrap()).sum();
    assert!(kept > 0, "ARP between containers of one host stayed on the host bridge");

    // DEL withdraws the container cluster-wide; a second DEL succeeds too.
    let c = conf(&lab, 0, "1.1.0", overlay_ipam(0));
    let path0 = netns_path(&lab.hosts[0].containers[0].ns);
    assert!(cni(&lab, 0, "DEL", "h0c0", &path0, &c).ok);
    assert!(cni(&lab, 0, "DEL", "h0c0", &path0, &c).ok, "DEL of something already gone succeeds");
    wait_for_proxy_arp(&lab, |h| if h == 0 { 10 } else { 9 }, Duration::from_secs(10));
    assert_eq!(bindings(&lab, 0)["local"].as_array().unwrap().len(), 4);
    let gone = lab.hosts[0].containers[0].ns.output("ip", &["-o", "link", "show", "eth0"]);
    assert!(gone.is_err(), "eth0 removed: {gone:?}");

    // ADD again: a new address, known everywhere, reachable from another host.
    let again = cni(&lab, 0, "ADD", "h0c0", &path0, &c);
    assert!(again.ok, "{}", again.out);
    let ip = result_ip(&again.out);
    assert!(!ips.contains(&ip) || ip == lab.hosts[0].containers[0].ip);
    lab.hosts[0].containers[0].ip = ip;
    wait_for_proxy_arp(&lab, |_| 10, Duration::from_secs(10));
    assert_eq!(traffic::ping(&lab, 1, 0, ip, 3), (3, 3));

    // ADD for an interface that exists fails and leaves it alone.
    let twice = cni(&lab, 0, "ADD", "h0c0", &path0, &c);
    assert!(!twice.ok && twice.code() == Some(101), "{}", twice.out);
    assert_eq!(traffic::ping(&lab, 1, 0, ip, 1), (1, 1));

    // CHECK against the ADD result passes, and fails once the address is removed by hand.
    let check = with_prev_result(&c, &again.out);
    let passed = cni(&lab, 0, "CHECK", "h0c0", &path0, &check);
    assert!(passed.ok && passed.out.is_null(), "{}", passed.out);
    lab.hosts[0].containers[0].ns.ip(&["addr", "flush", "dev", "eth0"]).unwrap();
    let failed = cni(&lab, 0, "CHECK", "h0c0", &path0, &check);
    assert!(!failed.ok, "CHECK passed without the address");
    assert_eq!(failed.code(), Some(100), "{}", failed.out);
    assert!(failed.out["details"].as_str().unwrap().contains(&ip.to_string()), "{}", failed.out);
}

#[test]
fn netns_cni_routed_3x5_all_pairs_ping() {
    if !have_root("netns_cni_routed_3x5_all_pairs_ping") {
        return;
    }
    let mut lab = Lab::build_with("cnr", &[HostKind::Bare; 3], 0, bin(), Addressing::PerHost).unwrap();
    for i in 0..3 {
        let config = lab.gossip_config(i, "routed", &[0]).unwrap();
        lab.start_vxswitch_with(i, &config).unwrap();
    }
    // The IPAM takes subnet and gateway from the daemon: nothing but the type in the conflist.
    let results = add_containers(&mut lab, 5, |lab, h| conf(lab, h, "1.1.0", json!({})));
    eprintln!("cni ADD result (routed): {}", results[1][2]);
    for (h, per_host) in results.iter().enumerate() {
        for r in per_host {
            assert!(host_subnet(h).contains(&result_ip(r)), "{r}");
            assert_eq!(r["routes"][0], json!({ "dst": "0.0.0.0/0", "gw": host_gateway(h).to_string() }));
            assert_eq!(r["ips"][0]["gateway"], host_gateway(h).to_string());
        }
    }
    let start = Instant::now();
    while (0..3).any(|h| lab.stats(h).unwrap()["networks"][0]["routes"].as_array().unwrap().len() < 2) {
        assert!(start.elapsed() < Duration::from_secs(20), "routes not learned by gossip");
        std::thread::sleep(Duration::from_millis(50));
    }
    all_pairs_ping(&lab, 1);
}

/// One host with vxswitch on an overlay network whose IPAM range is 10.77.0.0/24.
fn single_host(tag: &str) -> Lab {
    Lab::build(tag, &[HostKind::Vxswitch], 0, bin()).unwrap()
}

fn single_conf(lab: &Lab) -> Value {
    conf(lab, 0, "1.1.0", json!({ "subnet": "10.77.0.0/24", "gateway": "10.77.0.1" }))
}

fn stored(lab: &Lab) -> Vec<(String, Ipv4Addr)> {
    let text = std::fs::read_to_string(ipam_dir(lab, 0).join("vxnet/allocations.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["container_id"].as_str().unwrap().to_string(), a["ip"].as_str().unwrap().parse().unwrap()))
        .collect()
}

#[test]
fn netns_cni_gc_after_runtime_crash_frees_exactly_the_lost_allocations() {
    if !have_root("netns_cni_gc_after_runtime_crash_frees_exactly_the_lost_allocations") {
        return;
    }
    let lab = single_host("cng");
    let c = single_conf(&lab);
    let mut namespaces = Vec::new();
    for j in 0..4 {
        let ns = container_ns(&lab, 0, j);
        assert!(cni(&lab, 0, "ADD", &format!("c{j}"), &netns_path(&ns), &c).ok);
        namespaces.push(Some(ns));
    }
    assert_eq!(stored(&lab).len(), 4);
    // The runtime crashes: containers c1 and c3 are gone without a DEL (their namespaces, and
    // with them their veths, are deleted); their addresses and bindings leak.
    namespaces[1] = None;
    namespaces[3] = None;
    assert_eq!(stored(&lab).len(), 4);
    assert_eq!(bindings(&lab, 0)["local"].as_array().unwrap().len(), 4);
    let mut gc = c.clone();
    let refused = cni(&lab, 0, "GC", "", "", &gc);
    assert_eq!(refused.code(), Some(7), "GC without the list of valid attachments releases nothing: {}", refused.out);
    assert_eq!(stored(&lab).len(), 4);
    gc["cni.dev/valid-attachments"] = json!([{ "containerID": "c0", "ifname": "eth0" }, { "containerID": "c2", "ifname": "eth0" }]);
    let answer = cni(&lab, 0, "GC", "", "", &gc);
    assert!(answer.ok, "{}", answer.out);
    let left: Vec<String> = stored(&lab).into_iter().map(|(id, _)| id).collect();
    assert_eq!(left, ["c0", "c2"], "exactly the lost allocations were freed");
    let local: Vec<String> = bindings(&lab, 0)["local"].as_array().unwrap().iter().map(|b| b[0].as_str().unwrap().to_string()).collect();
    let kept: Vec<String> = stored(&lab).into_iter().map(|(_, ip)| ip.to_string()).collect();
    assert_eq!(local, kept, "the lost containers' bindings were withdrawn");
    // GC again frees nothing more; the survivors still work.
    assert!(cni(&lab, 0, "GC", "", "", &gc).ok);
    assert_eq!(stored(&lab).len(), 2);
    let ns0 = namespaces[0].as_ref().unwrap();
    assert!(ns0.output("ip", &["-o", "addr", "show", "eth0"]).unwrap().contains(&kept[0]));
}

#[test]
fn netns_cni_20_concurrent_adds_get_distinct_addresses() {
    if !have_root("netns_cni_20_concurrent_adds_get_distinct_addresses") {
        return;
    }
    let lab = single_host("cnc");
    let c = single_conf(&lab);
    let namespaces: Vec<Netns> = (0..20).map(|j| container_ns(&lab, 0, j)).collect();
    let answers: Vec<Answer> = std::thread::scope(|s| {
        let handles: Vec<_> = namespaces
            .iter()
            .enumerate()
            .map(|(j, ns)| {
                let (lab, c) = (&lab, &c);
                s.spawn(move || cni(lab, 0, "ADD", &format!("c{j}"), &netns_path(ns), c))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|a| a.ok), "{:?}", answers.iter().filter(|a| !a.ok).collect::<Vec<_>>());
    let ips: BTreeSet<Ipv4Addr> = answers.iter().map(|a| result_ip(&a.out)).collect();
    assert_eq!(ips.len(), 20, "20 distinct addresses: {ips:?}");
    assert_eq!(stored(&lab).len(), 20);
    assert_eq!(bindings(&lab, 0)["local"].as_array().unwrap().len(), 20);
    for (ns, a) in namespaces.iter().zip(&answers) {
        assert!(ns.output("ip", &["-o", "addr", "show", "eth0"]).unwrap().contains(&result_ip(&a.out).to_string()));
    }
}

#[test]
fn netns_cni_status_while_the_daemon_is_stopped_and_allocations_survive_a_restart() {
    if !have_root("netns_cni_status_while_the_daemon_is_stopped_and_allocations_survive_a_restart") {
        return;
    }
    let mut lab = single_host("cns");
    let c = single_conf(&lab);
    assert!(cni(&lab, 0, "STATUS", "", "", &c).ok, "ready while the daemon runs");
    let ns = container_ns(&lab, 0, 0);
    let kept = cni(&lab, 0, "ADD", "c0", &netns_path(&ns), &c);
    assert!(kept.ok);
    let ns2 = container_ns(&lab, 0, 2);
    assert!(cni(&lab, 0, "ADD", "c2", &netns_path(&ns2), &c).ok);

    assert!(lab.stop_vxswitch(0).unwrap());
    // DEL while the daemon is down succeeds (the withdrawal cannot be delivered).
    assert!(cni(&lab, 0, "DEL", "c2", &netns_path(&ns2), &c).ok);
    let before = stored(&lab);
    assert_eq!(before.len(), 1);
    let status = cni(&lab, 0, "STATUS", "", "", &c);
    assert!(!status.ok);
    assert_eq!(status.code(), Some(50), "{}", status.out);
    assert_eq!(status.out["cniVersion"], "1.1.0");
    let ns1 = container_ns(&lab, 0, 1);
    let add = cni(&lab, 0, "ADD", "c1", &netns_path(&ns1), &c);
    assert_eq!(add.code(), Some(50), "ADD needs the daemon: {}", add.out);
    assert_eq!(stored(&lab), before, "a refused ADD takes no address");

    lab.start_vxswitch(0, "").unwrap();
    assert!(cni(&lab, 0, "STATUS", "", "", &c).ok);
    assert_eq!(stored(&lab), before, "allocations survive a daemon restart");
    // The restarted daemon announces the surviving container again, not the one deleted meanwhile.
    let local = bindings(&lab, 0)["local"].clone();
    assert_eq!(local, json!([[result_ip(&kept.out).to_string(), kept.out["interfaces"][1]["mac"]]]), "restored announcements");
    let version = cni(&lab, 0, "VERSION", "", "", &json!({ "cniVersion": "1.1.0" }));
    assert!(version.out["supportedVersions"].as_array().unwrap().contains(&json!("1.1.0")));
}

#[test]
fn netns_cni_chained_with_portmap_a_host_port_reaches_a_container_from_another_host() {
    if !have_root("netns_cni_chained_with_portmap_a_host_port_reaches_a_container_from_another_host") {
        return;
    }
    let portmap = Path::new(DEBIAN_CNI_PATH).join("portmap");
    assert!(portmap.is_file(), "apt-get install containernetworking-plugins");
    let mut lab = Lab::build_with("cnp", &[HostKind::Bare; 2], 0, bin(), Addressing::PerHost).unwrap();
    for i in 0..2 {
        let config = lab.subnet_config(i, "host-subnet", &[0, 1]);
        lab.start_vxswitch_with(i, &config).unwrap();
    }
    // The conflist [vxswitch, portmap] at version 1.0.0 (what Debian's portmap 1.1 speaks), run as
    // libcni does: each plugin gets the previous one's result and the runtime's port mappings.
    let ns = container_ns(&lab, 0, 0);
    let first = conf(&lab, 0, "1.0.0", json!({}));
    let added = cni(&lab, 0, "ADD", "web", &netns_path(&ns), &first);
    assert!(added.ok, "{}", added.out);
    let ip = result_ip(&added.out);
    assert!(host_subnet(0).contains(&ip));
    assert_eq!(added.out["interfaces"][1].get("mtu"), None, "no 1.1.0 fields in a 1.0.0 result");
    let mappings = json!({ "portMappings": [{ "hostPort": 8080, "containerPort": 80, "protocol": "tcp" }] });
    let second = json!({
        "cniVersion": "1.0.0", "name": "vxnet", "type": "portmap", "capabilities": { "portMappings": true },
        "runtimeConfig": mappings, "prevResult": added.out,
    });
    let chained = invoke(&lab, 0, &portmap, "ADD", "web", &netns_path(&ns), &second);
    assert!(chained.ok, "portmap ADD: {}", chained.out);
    assert_eq!(result_ip(&chained.out), ip, "portmap passes the result on");

    let sink = ns.spawn(&bin().to_string_lossy(), &["probe", "tcp-sink", "--port", "80"], Stdio::null()).unwrap();
    let sent = lab.hosts[1]
        .ns
        .output(&bin().to_string_lossy(), &["probe", "tcp-send", &underlay_ip(0).to_string(), "--port", "8080", "--secs", "0.5"]);
    let sink_out = sink.wait_with_output().unwrap();
    let sent: Value = serde_json::from_str(sent.as_ref().expect("tcp-send to host 0's port 8080").trim()).unwrap();
    assert!(sink_out.status.success());
    assert!(sent["bytes"].as_u64().unwrap() > 0, "the container on host 0 counted the bytes sent to host port 8080 from host 1: {sent}");

    // DEL in reverse order, as the runtime does; the mapping and the container are gone.
    let mut second_del = second.clone();
    second_del["prevResult"] = chained.out.clone();
    assert!(invoke(&lab, 0, &portmap, "DEL", "web", &netns_path(&ns), &second_del).ok);
    assert!(cni(&lab, 0, "DEL", "web", &netns_path(&ns), &with_prev_result(&first, &chained.out)).ok);
    assert!(ns.output("ip", &["-o", "link", "show", "eth0"]).is_err());
}

#[test]
fn netns_cni_delegates_to_the_host_local_ipam_plugin() {
    if !have_root("netns_cni_delegates_to_the_host_local_ipam_plugin") {
        return;
    }
    assert!(Path::new(DEBIAN_CNI_PATH).join("host-local").is_file(), "apt-get install containernetworking-plugins");
    let lab = single_host("cnd");
    let store = lab.dir.join("host-local");
    // Debian's host-local 1.1 speaks up to 1.0.0.
    let mut c = conf(&lab, 0, "1.0.0", json!({}));
    c["ipam"] = json!({
        "type": "host-local", "dataDir": store,
        "ranges": [[{ "subnet": "10.78.0.0/24", "rangeStart": "10.78.0.50", "rangeEnd": "10.78.0.60", "gateway": "10.78.0.1" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
    });
    let ns = container_ns(&lab, 0, 0);
    let added = cni(&lab, 0, "ADD", "d0", &netns_path(&ns), &c);
    assert!(added.ok, "{}", added.out);
    assert_eq!(result_ip(&added.out), Ipv4Addr::new(10, 78, 0, 50), "host-local's first address");
    assert_eq!(added.out["routes"][0], json!({ "dst": "0.0.0.0/0", "gw": "10.78.0.1" }));
    assert!(ns.output("ip", &["route"]).unwrap().contains("default via 10.78.0.1"));
    let held = store.join("vxnet/10.78.0.50");
    assert!(held.is_file(), "host-local recorded the allocation");
    assert_eq!(bindings(&lab, 0)["local"][0][0], "10.78.0.50");
    let check = cni(&lab, 0, "CHECK", "d0", &netns_path(&ns), &with_prev_result(&c, &added.out));
    assert!(check.ok, "CHECK with a delegated IPAM: {}", check.out);
    assert!(cni(&lab, 0, "DEL", "d0", &netns_path(&ns), &with_prev_result(&c, &added.out)).ok);
    assert!(!held.exists(), "host-local released the address on DEL");
    assert_eq!(bindings(&lab, 0)["local"].as_array().unwrap().len(), 0, "withdrawn using prevResult");
}
