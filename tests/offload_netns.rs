//! Kernel offload mode on real kernels: host A runs vxswitch with `mode = "kernel"` (a kernel
//! vxlan device programmed by vxswitch), host B runs the userspace overlay; both with static
//! peers. Needs root; without it each test prints SKIP (or fails with VXSWITCH_REQUIRE_ROOT=1).

#[path = "common/netns.rs"]
mod netns_common;
#[path = "common/traffic.rs"]
mod traffic;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use netns_common::{have_root, wait_for};
use traffic::all_pairs_ping;
use vxswitch::testnet::lab::{underlay_ip, HostKind, Lab, CONTAINER_MTU, VNI};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vxswitch"))
}

/// `arp = [...]` binding every container of `host` (IP and real MAC).
fn arp_bindings(lab: &Lab, host: usize) -> String {
    let entries: Vec<String> =
        lab.hosts[host].containers.iter().map(|c| format!("{{ ip = \"{}\", mac = \"{}\" }}", c.ip, c.mac().unwrap())).collect();
    format!("arp = [{}]\n", entries.join(", "))
}

/// Host `i` in kernel mode on the lab network, every other host a static peer, plus `extra`.
fn kernel_config(lab: &Lab, i: usize, extra: &str) -> String {
    kernel_config_with_peers(lab, i, &lab.peers_of(i), extra)
}

fn kernel_config_with_peers(lab: &Lab, i: usize, peers: &[std::net::IpAddr], extra: &str) -> String {
    let peers: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        "control_socket = \"{sock}\"\n\n[underlay]\naddress = \"{ip}\"\n\n[[network]]\nvni = {VNI}\nmode = \"kernel\"\nbridge = \"br0\"\npeers = [{peers}]\n{extra}",
        sock = lab.socket(i).display(),
        ip = underlay_ip(i),
        peers = peers.join(", "),
    )
}

/// The words of the `vxlan id ...` line of `ip -d link show` (the bridge-port line has
/// look-alikes such as `proxy_arp off`).
fn vxlan_flags(link: &str) -> Vec<String> {
    let line = link.lines().find(|l| l.trim_start().starts_with("vxlan id")).unwrap_or_else(|| panic!("no vxlan line: {link}"));
    line.split_whitespace().map(str::to_string).collect()
}

/// Names of the vxlan links in host `i`'s namespace.
fn vxlan_links(lab: &Lab, i: usize) -> Vec<String> {
    let out = lab.hosts[i].ns.output("ip", &["-o", "link", "show", "type", "vxlan"]).unwrap();
    out.lines().filter_map(|l| l.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n).to_string())).collect()
}

#[test]
fn netns_kernel_offload_to_userspace_overlay() {
    if !have_root("netns_kernel_offload_to_userspace_overlay") {
        return;
    }
    // Host 0 starts bare (containers on br0); host 1 runs the userspace overlay.
    let mut lab = Lab::build("kofl", &[HostKind::Bare, HostKind::Vxswitch], 2, bin()).unwrap();
    // The kernel device answers ARP from its neighbour table and tunnels no ARP at all (`proxy`),
    // so each side is told the other side's containers: A by its config (-> ip neigh), B by its
    // proxy-ARP bindings.
    let a_bindings = arp_bindings(&lab, 0);
    let b_bindings = arp_bindings(&lab, 1);
    assert!(lab.stop_vxswitch(1).unwrap(), "host 1 restarts cleanly");
    lab.start_vxswitch(1, &a_bindings).unwrap();
    let config = kernel_config(&lab, 0, &b_bindings);
    lab.start_vxswitch_with(0, &config).unwrap();

    all_pairs_ping(&lab, 3);

    // The device, as `ip -d link show` reports it.
    let link = lab.hosts[0].ns.output("ip", &["-d", "link", "show", "vtep1042"]).unwrap();
    for want in ["vxlan id 1042", "local 198.18.0.1", "dev eth0", "dstport 4789", "nolearning", "master br0"] {
        assert!(link.contains(want), "{want:?} in: {link}");
    }
    assert!(vxlan_flags(&link).contains(&"proxy".to_string()), "proxy on the vxlan line: {link}");
    assert!(link.contains(&format!("mtu {CONTAINER_MTU}")), "MTU underlay - 50: {link}");
    assert!(link.contains("state UP") || link.contains(",UP"), "up: {link}");
    // Flood list: host 1.
    let fdb = lab.hosts[0].ns.output("bridge", &["fdb", "show", "dev", "vtep1042"]).unwrap();
    assert!(fdb.lines().any(|l| l.starts_with("00:00:00:00:00:00 dst 198.18.0.2")), "flood entry to host 1: {fdb}");
    // Permanent neighbours for host 1's containers.
    let neigh = lab.hosts[0].ns.output("ip", &["neigh", "show", "dev", "vtep1042"]).unwrap();
    for c in &lab.hosts[1].containers {
        let line = format!("{} lladdr {} PERMANENT", c.ip, c.mac().unwrap());
        assert!(neigh.contains(&line), "{line:?} in: {neigh}");
    }
    // ...and the kernel answered the containers' ARP from them: host 0's containers know host 1's.
    let cache = lab.hosts[0].containers[0].ns.output("ip", &["neigh", "show", "dev", "eth0"]).unwrap();
    assert!(cache.contains(&lab.hosts[1].containers[0].ip.to_string()), "{cache}");

    // `vxswitch stats` lists the device and its entries.
    let stats = lab.stats(0).unwrap();
    let net = &stats["networks"][0];
    assert_eq!(net["mode"], "kernel", "spelled as in the configuration");
    assert_eq!(net["device"]["name"], "vtep1042");
    assert_eq!(net["device"]["proxy"], true);
    assert_eq!(net["device"]["errors"], 0);
    assert_eq!(net["peers"], serde_json::json!(["198.18.0.2"]));
    assert_eq!(net["device"]["programmed"]["neigh"].as_object().unwrap().len(), 2, "{net}");

    // A crash leaves the device behind; the next start replaces it with exactly one.
    lab.kill_vxswitch(0).unwrap();
    assert_eq!(vxlan_links(&lab, 0), vec!["vtep1042".to_string()], "left by SIGKILL");
    lab.start_vxswitch_with(0, &config).unwrap();
    assert_eq!(vxlan_links(&lab, 0), vec!["vtep1042".to_string()], "exactly one device after restart");
    let fdb = lab.hosts[0].ns.output("bridge", &["fdb", "show", "dev", "vtep1042"]).unwrap();
    assert_eq!(fdb.lines().filter(|l| l.starts_with("00:00:00:00:00:00")).count(), 1, "{fdb}");
    all_pairs_ping(&lab, 3);

    // A clean shutdown removes it.
    assert!(lab.stop_vxswitch(0).unwrap(), "SIGTERM: clean exit; log in {}", lab.log(0).display());
    assert!(vxlan_links(&lab, 0).is_empty(), "device deleted on SIGTERM");
    assert!(lab.hosts[0].ns.ip(&["link", "show", "vtep1042"]).is_err());
}

/// A `[gossip]` section for host `i` joining through host 0; the cluster key is made once.
fn gossip_section(lab: &Lab, i: usize) -> String {
    let key = lab.dir.join("cluster.key");
    if !key.exists() {
        netns_common::run(&bin().to_string_lossy(), &["genkey", &key.to_string_lossy()]);
    }
    let seeds = if i == 0 { String::new() } else { format!("\"{}\"", underlay_ip(0)) };
    // Signing key, trust store and claim ages stay in the lab directory.
    let state = lab.dir.join(format!("h{i}-state"));
    format!(
        "\n[gossip]\ncluster = \"lab\"\nname = \"h{i}\"\nkey_file = \"{}\"\nseeds = [{seeds}]\nstate_dir = \"{}\"\n",
        key.display(),
        state.display()
    )
}

#[test]
fn netns_kernel_offload_programmed_by_gossip() {
    if !have_root("netns_kernel_offload_programmed_by_gossip") {
        return;
    }
    let mut lab = Lab::build("kofg", &[HostKind::Bare, HostKind::Bare], 2, bin()).unwrap();
    // No static peers anywhere: host 0 (kernel device, ARP flooded instead of proxied, since
    // host 1 cannot learn host 0's containers) and host 1 (userspace) meet through gossip.
    let a = kernel_config_with_peers(&lab, 0, &[], "unknown_arp = \"flood\"\n") + &gossip_section(&lab, 0);
    let b = lab.vxswitch_config(1, "").replace("peers = [\"198.18.0.1\"]", "peers = []") + &gossip_section(&lab, 1);
    lab.start_vxswitch_with(0, &a).unwrap();
    lab.start_vxswitch_with(1, &b).unwrap();
    let fdb = |lab: &Lab| lab.hosts[0].ns.output("bridge", &["fdb", "show", "dev", "vtep1042"]).unwrap();

    // PeerUp from gossip: the flood entry.
    let joined = wait_for(Duration::from_secs(20), "flood entry from gossip", || {
        fdb(&lab).lines().any(|l| l.starts_with("00:00:00:00:00:00 dst 198.18.0.2"))
    });
    eprintln!("offload: flood entry programmed {joined:?} after start");
    let link = lab.hosts[0].ns.output("ip", &["-d", "link", "show", "vtep1042"]).unwrap();
    assert!(!vxlan_flags(&link).contains(&"proxy".to_string()), "unknown_arp = flood: no proxy: {link}");
    assert!(vxlan_flags(&link).contains(&"nolearning".to_string()), "{link}");
    all_pairs_ping(&lab, 3);

    // Host 1 publishes the containers it saw; host 0 programs a unicast FDB entry and a
    // permanent neighbour for each (StaticFdb and ArpBinding next to each other).
    let macs: Vec<(Ipv4Addr, String)> = lab.hosts[1].containers.iter().map(|c| (c.ip, c.mac().unwrap())).collect();
    let learned = wait_for(Duration::from_secs(20), "host 1's containers in host 0's kernel FDB", || {
        let f = fdb(&lab);
        macs.iter().all(|(_, m)| f.lines().any(|l| l.starts_with(&format!("{m} dst 198.18.0.2"))))
    });
    eprintln!("offload: container MACs programmed {learned:?} after the pings");
    let neigh = lab.hosts[0].ns.output("ip", &["neigh", "show", "dev", "vtep1042"]).unwrap();
    for (ip, mac) in &macs {
        assert!(neigh.contains(&format!("{ip} lladdr {mac} PERMANENT")), "{ip} in: {neigh}");
    }
    all_pairs_ping(&lab, 3);

    // Host 1 dies: gossip withdraws it and every entry towards it leaves the device.
    lab.kill_vxswitch(1).unwrap();
    let gone = wait_for(Duration::from_secs(20), "entries towards host 1 withdrawn", || !fdb(&lab).contains("dst 198.18.0.2"));
    eprintln!("offload: dead peer's entries withdrawn {gone:?} after SIGKILL");
    assert_eq!(lab.hosts[0].ns.output("ip", &["neigh", "show", "dev", "vtep1042"]).unwrap().trim(), "");
    let stats = lab.stats(0).unwrap();
    assert_eq!(stats["networks"][0]["device"]["errors"], 0, "{stats}");
    assert!(lab.stop_vxswitch(0).unwrap());
    assert!(vxlan_links(&lab, 0).is_empty());
}
