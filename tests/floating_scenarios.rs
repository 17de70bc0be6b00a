//! Floating IPs on the simulator (whole nodes gossiping, virtual time, seeded): the address
//! follows its container from host to host, is never held by two hosts at once, and a dead
//! owner's address is taken over only after failure detection. Run with `--nocapture` to see the
//! measured times.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use vxswitch::control::{FloatingSpec, GossipConfig, Liveness};
use vxswitch::sim::{Sim, SIM_VNI};
use vxswitch::wire::ethernet::EthernetAddress;

const FIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 200);
const TARGET: Ipv4Addr = Ipv4Addr::new(198, 19, 200, 5);
const MAC: EthernetAddress = EthernetAddress([2, 0xaa, 0, 0, 0, 5]);

fn spec() -> FloatingSpec {
    FloatingSpec { ip: FIP, interface: "up0".into(), vni: SIM_VNI, target: TARGET }
}

/// Three converged hosts with the floating IP configured everywhere.
fn cluster(seed: u64) -> Sim {
    let mut sim = Sim::gossip(3, GossipConfig::default(), seed);
    let deadline = sim.now + Duration::from_secs(30);
    assert!(sim.run_until_cond(deadline, Sim::converged), "cluster did not converge");
    sim.set_floating_everywhere(&[spec()]);
    sim
}

/// Runs until `host` alone holds the address (checking every 10 ms that never two hosts hold
/// it); returns how long that took.
fn until_held_by(sim: &mut Sim, host: usize, within: Duration) -> Duration {
    let t0 = sim.now;
    let mut twice = None;
    let done = sim.run_until_cond(t0 + within, |s| {
        let holders = s.floating_holders(FIP);
        if holders.len() > 1 && twice.is_none() {
            twice = Some((s.now - t0, holders.clone()));
        }
        holders == [host]
    });
    assert_eq!(twice, None, "two hosts held {FIP} at once");
    assert!(done, "host {host} does not hold {FIP} after {within:?} (holders {:?})", sim.floating_holders(FIP));
    sim.now - t0
}

/// Whether host `observer` sees `victim` as dead.
fn sees_dead(sim: &Sim, observer: usize, victim: usize) -> bool {
    let addr = sim.hosts[victim].gossip_addr;
    sim.hosts[observer].membership().members().iter().any(|m| m.addr == addr && m.state == Liveness::Dead)
}

#[test]
fn floating_ip_is_held_where_its_container_is_and_nowhere_else() {
    let mut sim = cluster(1);
    sim.run_for(Duration::from_secs(3));
    assert!(sim.floating_holders(FIP).is_empty(), "no container seen, nobody holds");
    sim.container_speaks(0, TARGET, MAC);
    let took = until_held_by(&mut sim, 0, Duration::from_secs(1));
    println!("first hold after {took:?}");
    // Stable: nothing changes while the container stays.
    let claims: Vec<u64> = (0..3).map(|i| sim.hosts[i].node().floating_counters().claims).collect();
    let t0 = sim.now;
    assert!(!sim.run_until_cond(t0 + Duration::from_secs(20), |s| s.floating_holders(FIP) != [0]));
    assert_eq!((0..3).map(|i| sim.hosts[i].node().floating_counters().claims).collect::<Vec<_>>(), claims);
    // Every host sees host 0 as the owner.
    for i in 0..3 {
        let owners = sim.hosts[i].node().floating_owners();
        assert_eq!(owners[0].owner.as_deref(), Some("h000"), "host {i}");
    }
}

#[test]
fn floating_ip_moves_with_its_container_within_a_second_never_held_twice() {
    for seed in 1..=5 {
        let mut sim = cluster(seed);
        sim.container_speaks(0, TARGET, MAC);
        until_held_by(&mut sim, 0, Duration::from_secs(1));
        sim.run_for(Duration::from_secs(2));
        // The container stops on host 0 and starts on host 1 (same MAC, as a moved container).
        sim.container_speaks(1, TARGET, MAC);
        let took = until_held_by(&mut sim, 1, Duration::from_secs(1));
        println!("seed {seed}: moved 0 -> 1 in {took:?}");
        let c0 = sim.hosts[0].node().floating_counters();
        let c1 = sim.hosts[1].node().floating_counters();
        assert_eq!((c0.releases, c1.moves, c1.takeovers), (1, 1, 0), "seed {seed}");
        // And back again to host 2, then it stays there.
        sim.run_for(Duration::from_secs(2));
        sim.container_speaks(2, TARGET, MAC);
        let took = until_held_by(&mut sim, 2, Duration::from_secs(1));
        println!("seed {seed}: moved 1 -> 2 in {took:?}");
        let t0 = sim.now;
        assert!(!sim.run_until_cond(t0 + Duration::from_secs(10), |s| s.floating_holders(FIP) != [2]), "seed {seed}: flapped");
    }
}

#[test]
fn dead_owners_floating_ip_is_taken_over_only_after_failure_detection() {
    for seed in 1..=5 {
        let mut sim = cluster(seed);
        sim.container_speaks(1, TARGET, MAC);
        until_held_by(&mut sim, 1, Duration::from_secs(1));
        sim.run_for(Duration::from_secs(2));
        // Host 1 dies with its container; the container is started again on host 2 at once.
        sim.kill(1);
        let t0: Instant = sim.now;
        sim.container_speaks(2, TARGET, MAC);
        let mut early = None;
        let done = sim.run_until_cond(t0 + Duration::from_secs(20), |s| {
            let held = s.floating_holders(FIP) == [2];
            if held && !sees_dead(s, 2, 1) && early.is_none() {
                early = Some(s.now - t0);
            }
            held
        });
        assert!(done, "seed {seed}: not taken over");
        assert_eq!(early, None, "seed {seed}: taken while the owner was still considered live");
        let took = sim.now - t0;
        // Failure detection: the time host 2 needed to declare host 1 dead.
        println!("seed {seed}: owner killed -> taken over in {took:?}");
        let c2 = sim.hosts[2].node().floating_counters();
        assert_eq!((c2.takeovers, c2.moves), (1, 0), "seed {seed}");
        assert!(took > Duration::from_secs(1), "seed {seed}: {took:?} is faster than any failure detection");
        assert!(took < Duration::from_secs(10), "seed {seed}: {took:?}");
    }
}
