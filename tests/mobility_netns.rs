//! A container move on real kernels: 3 hosts gossiping over one L2 overlay network, a client
//! container on host 2 pinging an app container on host 0; the app stops on host 0 and starts on
//! host 1 with the same MAC and address (its veth now on host 1's bridge). The client's pings
//! reach it again as soon as it has said anything on host 1, with no wait for host 0's binding to
//! age out; the counters show the move on both hosts. The time from the app's first frame on
//! host 1 to the client's first answered ping is printed.
//!
//! Needs root; without it the test prints SKIP (or fails with VXSWITCH_REQUIRE_ROOT=1).

#[path = "common/netns.rs"]
mod netns_common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use netns_common::have_root;
use vxswitch::testnet::lab::{Addressing, HostKind, Lab};
use vxswitch::testnet::netns::Netns;

const APP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const APP_MAC: &str = "02:aa:00:00:00:64";
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);
const CLIENT_MAC: &str = "02:aa:00:00:00:14";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vxswitch"))
}

fn config(lab: &Lab, i: usize) -> String {
    lab.overlay_gossip_config(i, &[0, 1]).expect("gossip configuration")
}

/// Plug container `ns` into host `i`'s bridge through a veth named `port` there, with `ip` and
/// `mac` on its `eth0`.
fn plug(lab: &Lab, ns: &Netns, i: usize, port: &str, ip: Ipv4Addr, mac: &str) {
    let h = &lab.hosts[i].ns;
    h.ip(&["link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns.name()]).unwrap();
    h.ip(&["link", "set", port, "master", "br0", "up"]).unwrap();
    ns.ip(&["link", "set", "eth0", "address", mac]).unwrap();
    ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]).unwrap();
    ns.ip(&["link", "set", "eth0", "up"]).unwrap();
}

fn ping(from: &Netns, to: Ipv4Addr, wait: &str) -> bool {
    from.output("ping", &["-c", "1", "-W", wait, &to.to_string()]).is_ok()
}

fn counter(lab: &Lab, i: usize, name: &str) -> u64 {
    lab.stats(i).unwrap()["counters"][name].as_u64().unwrap_or_else(|| panic!("no counter {name}"))
}

#[test]
fn netns_container_moving_with_its_mac_and_ip_is_reached_on_its_new_host_at_once() {
    if !have_root("netns_container_moving_with_its_mac_and_ip_is_reached_on_its_new_host_at_once") {
        return;
    }
    let mut lab = Lab::build_with("mv", &[HostKind::Bare; 3], 0, bin(), Addressing::Shared).expect("lab");
    let client = Netns::create(&format!("{}-cli", lab.prefix())).unwrap();
    let app = Netns::create(&format!("{}-app", lab.prefix())).unwrap();
    for i in 0..3 {
        let cfg = config(&lab, i);
        lab.start_vxswitch_with(i, &cfg).unwrap();
    }
    std::thread::sleep(Duration::from_secs(2));
    plug(&lab, &client, 2, "cli", CLIENT, CLIENT_MAC);
    plug(&lab, &app, 0, "app", APP, APP_MAC);
    let t0 = Instant::now();
    while !ping(&client, APP, "0.2") {
        assert!(t0.elapsed() < Duration::from_secs(10), "client never reached the app on host 0");
    }
    // Both containers have spoken: their bindings are in the records (published every second).
    std::thread::sleep(Duration::from_secs(2));
    assert!(ping(&client, APP, "1"));

    // The app stops on host 0 and starts on host 1 with the same MAC and address. Like any
    // starting container it says something (here: one ping to the client, whose answer may race
    // the move); then the client pings until it is answered.
    lab.hosts[0].ns.ip(&["link", "del", "app"]).unwrap();
    plug(&lab, &app, 1, "app", APP, APP_MAC);
    let started = Instant::now();
    let hello = ping(&app, CLIENT, "0.01");
    let mut lost = 0;
    while !ping(&client, APP, "0.05") {
        lost += 1;
        assert!(started.elapsed() < Duration::from_secs(3), "client does not reach the moved app within 3 s ({lost} pings lost)");
    }
    let resumed = started.elapsed();
    println!("container move 0 -> 1: client reaches it again {resumed:?} after its start on host 1 (hello answered: {hello}, {lost} client pings lost)");
    assert!(resumed < Duration::from_millis(500), "took {resumed:?}");
    assert_eq!(counter(&lab, 1, "binding_moves_in"), 1);
    assert_eq!(counter(&lab, 0, "binding_moves_out"), 1);
    assert_eq!(counter(&lab, 2, "binding_moves_in") + counter(&lab, 2, "binding_moves_out"), 0);
    // Host 0 no longer publishes it: only host 1's record carries the app.
    let peers: serde_json::Value =
        serde_json::from_str(&vxswitch::sys::daemon::control_socket::query(&lab.socket(2), "peers").unwrap()).unwrap();
    assert!(peers["conflicts"].as_array().is_none_or(|c| c.is_empty()), "a move is no conflict: {peers}");
    for _ in 0..20 {
        assert!(ping(&client, APP, "1"), "the moved app became unreachable again");
    }
    for i in 0..3 {
        assert!(lab.stop_vxswitch(i).unwrap(), "host {i} stopped cleanly");
    }
}
