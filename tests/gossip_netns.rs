//! The gossip control plane on real kernels: 4 hosts x 2 containers that know only a seed list,
//! and a configuration reload that the other host follows (networks announced and withdrawn).
//! Needs root; without it each test prints SKIP (or fails with VXSWITCH_REQUIRE_ROOT=1).

#[path = "common/netns.rs"]
mod netns_common;
#[path = "common/traffic.rs"]
mod traffic;

use std::path::Path;
use std::time::{Duration, Instant};

use netns_common::{have_root, reload_cli, wait_for};
use traffic::all_pairs_ping;
use vxswitch::testnet::lab::{host_subnet, Addressing, HostKind, Lab};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vxswitch"))
}

fn routes(lab: &Lab, i: usize) -> Vec<String> {
    let s = lab.stats(i).unwrap();
    s["networks"][0]["routes"].as_array().unwrap().iter().map(|r| r[0].as_str().unwrap().to_string()).collect()
}

/// Wait until `check` holds on every host in `hosts`; returns how long it took.
fn wait_until(lab: &Lab, hosts: &[usize], limit: Duration, check: impl Fn(&[String]) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if hosts.iter().all(|&i| check(&routes(lab, i))) {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "not reached within {limit:?}: {:?}", hosts.iter().map(|&i| routes(lab, i)).collect::<Vec<_>>());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn netns_gossip_cluster_converges_detects_kill_and_rejoins() {
    if !have_root("netns_gossip_cluster_converges_detects_kill_and_rejoins") {
        return;
    }
    let mut lab = Lab::build_with("gs", &[HostKind::Bare; 4], 2, bin(), Addressing::PerHost).unwrap();
    let started = Instant::now();
    for i in 0..4 {
        let config = lab.gossip_config(i, "routed", &[0]).unwrap();
        lab.start_vxswitch_with(i, &config).unwrap();
    }
    let converged = wait_until(&lab, &[0, 1, 2, 3], Duration::from_secs(20), |r| r.len() == 3);
    eprintln!("gossip: 4 hosts converged {converged:?} after the last start ({:?} after the first)", started.elapsed());
    all_pairs_ping(&lab, 3);

    let peers: serde_json::Value =
        serde_json::from_str(&vxswitch::sys::daemon::control_socket::query(&lab.socket(0), "peers").unwrap()).unwrap();
    let members = peers["members"].as_array().unwrap();
    assert_eq!(members.iter().filter(|m| m["state"] == "alive").count(), 3, "{peers}");

    // Host 3 dies without a word: the others withdraw its subnet within the bound.
    lab.kill_vxswitch(3).unwrap();
    let gone = host_subnet(3).to_string();
    let detected = wait_until(&lab, &[0, 1, 2], Duration::from_secs(10), |r| !r.contains(&gone));
    eprintln!("gossip: SIGKILLed host withdrawn after {detected:?}");

    // It restarts with a new epoch and is reachable again.
    let config = lab.gossip_config(3, "routed", &[0]).unwrap();
    let restart = Instant::now();
    lab.start_vxswitch_with(3, &config).unwrap();
    let rejoined = wait_until(&lab, &[0, 1, 2, 3], Duration::from_secs(5), |r| r.len() == 3);
    eprintln!("gossip: restarted host routable everywhere after {rejoined:?} ({:?} incl. start)", restart.elapsed());
    all_pairs_ping(&lab, 3);
}

/// The routes of network `vni` on host `i`, from `vxswitch stats`.
fn routes_of(lab: &Lab, i: usize, vni: u64) -> Vec<String> {
    let s = lab.stats(i).unwrap();
    let nets = s["networks"].as_array().unwrap();
    let Some(net) = nets.iter().find(|n| n["vni"].as_u64() == Some(vni)) else { return Vec::new() };
    net["routes"].as_array().unwrap().iter().map(|r| r[0].as_str().unwrap().to_string()).collect()
}

#[test]
fn netns_gossip_reload_announces_added_and_removed_networks_and_refuses_a_gossip_change_by_key() {
    if !have_root("netns_gossip_reload_announces_added_and_removed_networks_and_refuses_a_gossip_change_by_key") {
        return;
    }
    let mut lab = Lab::build_with("grl", &[HostKind::Bare; 2], 1, bin(), Addressing::PerHost).unwrap();
    // A second routed network (TAP only, no bridge) with subnet 10.77.i.0/24, before [gossip].
    let second =
        |i: usize| format!("\n[[network]]\nvni = 2000\nmode = \"routed\"\ntap = \"vxs2000\"\nsubnet = \"10.77.{i}.0/24\"\n\n[gossip]");
    let first = lab.gossip_config(0, "routed", &[1]).unwrap();
    lab.start_vxswitch_with(0, &first).unwrap();
    let other = lab.gossip_config(1, "routed", &[0]).unwrap().replace("\n[gossip]", &second(1));
    lab.start_vxswitch_with(1, &other).unwrap();
    wait_until(&lab, &[0, 1], Duration::from_secs(20), |r| r.len() == 1);
    assert!(routes_of(&lab, 1, 2000).is_empty(), "host 0 is not on network 2000 yet");

    // Host 0 adds network 2000 by reload: host 1 routes its subnet there, and the claim is saved.
    let file = lab.dir.join("h0.toml");
    std::fs::write(&file, first.replace("\n[gossip]", &second(0))).unwrap();
    let (ok, out) = reload_cli(bin(), &lab.socket(0));
    assert!(ok, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["added"], serde_json::json!([2000]), "{report}");
    assert!(report["record_version"].as_u64().is_some(), "the record was republished: {report}");
    let took = wait_for(Duration::from_secs(3), "host 1 routes the added subnet", || routes_of(&lab, 1, 2000) == ["10.77.0.0/24"]);
    eprintln!("gossip reload: the added subnet was routed by the other host after {took:?}");
    assert_eq!(routes_of(&lab, 0, 2000), ["10.77.1.0/24"], "and host 0 routes host 1's subnet on the added network");
    let claims = std::fs::read_to_string(lab.dir.join("h0-state/gossip-claims.json")).unwrap();
    assert!(claims.contains("10.77.0.0/24"), "the reload's claim is saved for a restart: {claims}");

    // A change to [gossip] is refused, naming the key, and changes nothing.
    std::fs::write(&file, first.replace("\n[gossip]", &second(0)).replace("cluster = \"lab\"", "cluster = \"lab2\"")).unwrap();
    let (ok, out) = reload_cli(bin(), &lab.socket(0));
    assert!(!ok && out.contains("gossip.cluster cannot change without a restart"), "{out}");
    assert_eq!(routes_of(&lab, 1, 2000), ["10.77.0.0/24"]);

    // Host 0 leaves network 2000 again: host 1 withdraws the route, the other network is untouched.
    std::fs::write(&file, &first).unwrap();
    let (ok, out) = reload_cli(bin(), &lab.socket(0));
    assert!(ok, "{out}");
    wait_for(Duration::from_secs(3), "host 1 withdraws the removed subnet", || routes_of(&lab, 1, 2000).is_empty());
    assert_eq!(routes(&lab, 1), [host_subnet(0).to_string()]);
}
