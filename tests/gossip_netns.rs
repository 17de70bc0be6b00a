//! The gossip control plane on real kernels: 4 hosts x 2 containers that know only a seed list.
//! Needs root; without it each test prints SKIP (or fails with VXSWITCH_REQUIRE_ROOT=1).

#[path = "common/netns.rs"]
mod netns_common;
#[path = "common/traffic.rs"]
mod traffic;

use std::path::Path;
use std::time::{Duration, Instant};

use netns_common::have_root;
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
