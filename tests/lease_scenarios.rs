//! Subnet leases on the simulator, with hosts built from configuration files exactly as the
//! daemon builds them (`cluster_cidr` + `host_prefix` instead of `subnet`), on virtual time:
//! 64 hosts lease distinct subnets from one range and route to each other; a restarted host
//! claims the same subnet with the same age; two halves of a split cluster that leased the same
//! subnets separate after the heal, the younger claims moving.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ipnet::Ipv4Net;
use vxswitch::config::Config;
use vxswitch::config::LeaseRange;
use vxswitch::control::{ClusterKey, SubnetClaim};
use vxswitch::node::lease::{first_choice, LEASE_SETTLE};
use vxswitch::sim::Sim;
use vxswitch::wire::vxlan::Vni;

const VNI: Vni = Vni::new_const(1042);

fn ul(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, (i / 200) as u8, (i % 200) as u8 + 1)
}

fn key() -> ClusterKey {
    ClusterKey::from_bytes([9; 32])
}

/// Host `i` (named `n{i}`) on a routed network leasing a /`prefix` of `cidr`, joining through
/// host 0 (host 0 through host 1).
fn config(i: usize, cidr: &str, prefix: u8) -> Config {
    named_config(i, &format!("n{i}"), cidr, prefix, &format!("\"{}\"", ul(usize::from(i == 0))))
}

/// Host `i` named `name`, leasing from `cidr`, with gossip seeds `seeds` (TOML list items).
fn named_config(i: usize, name: &str, cidr: &str, prefix: u8, seeds: &str) -> Config {
    Config::parse(&format!(
        "[underlay]\naddress = \"{}\"\n\n[[network]]\nvni = {VNI}\nmode = \"routed\"\ntap = \"vxs{i}\"\n\
         cluster_cidr = \"{cidr}\"\nhost_prefix = {prefix}\n\n\
         [gossip]\ncluster = \"sim\"\nname = \"{name}\"\nkey_file = \"/nonexistent\"\nseeds = [{seeds}]\n",
        ul(i)
    ))
    .unwrap()
}

fn lease(sim: &Sim, i: usize) -> Option<SubnetClaim> {
    sim.hosts[i].node().lease(VNI).expect("a leased network").current()
}

/// Every host holds a lease, all distinct, each host routes every other host's subnet to it,
/// and no host sees a conflict.
fn settled(sim: &Sim, hosts: &[usize]) -> bool {
    let leases: Vec<Option<SubnetClaim>> = hosts.iter().map(|&i| lease(sim, i)).collect();
    let nets: BTreeSet<Ipv4Net> = leases.iter().flatten().map(|c| c.ipv4().unwrap()).collect();
    nets.len() == hosts.len()
        && hosts.iter().all(|&i| {
            let h = &sim.hosts[i];
            h.membership().conflicts().is_empty()
                && hosts
                    .iter()
                    .filter(|&&j| j != i)
                    .all(|&j| h.view.routes.get(&(VNI, lease(sim, j).unwrap().net)) == Some(&IpAddr::V4(ul(j))))
        })
}

/// The subnet the router of host `i` serves.
fn served(sim: &Sim, i: usize) -> Ipv4Net {
    let switch = sim.hosts[i].switch();
    switch.router(switch.port(VNI).unwrap()).unwrap().spec().subnet
}

#[test]
fn lease_64_hosts_lease_distinct_subnets_from_one_range() {
    // Names as a cluster would have them; some start probing at the same subnet, and they all
    // pick at the same moment, so those collide and must be separated by the conflict rule.
    let range = LeaseRange { cluster_cidr: "10.42.0.0/16".parse().unwrap(), host_prefix: 24 };
    let names: Vec<String> = (0..64).map(|i| format!("worker-{i}.cluster.local")).collect();
    let firsts: BTreeSet<Ipv4Net> = names.iter().map(|n| first_choice(&range, n)).collect();
    assert!(firsts.len() < 64, "the scenario needs colliding first choices");
    let mut sim = Sim::empty(21);
    sim.latency = Duration::from_millis(1);
    sim.jitter = Duration::from_millis(2);
    let hosts: Vec<usize> = (0..64)
        .map(|i| {
            let seed = format!("\"{}\"", ul(usize::from(i == 0)));
            sim.add_configured(&named_config(i, &names[i], "10.42.0.0/16", 24, &seed), key(), None, 1000)
        })
        .collect();
    // Nobody leases before the settle time.
    sim.run_for(LEASE_SETTLE - Duration::from_millis(100));
    assert!(hosts.iter().all(|&i| lease(&sim, i).is_none()));
    let deadline = sim.now + Duration::from_secs(60);
    assert!(sim.run_until_cond(deadline, |s| settled(s, &hosts)), "64 hosts did not settle on distinct subnets in 60 s");
    let t = sim.elapsed();
    let range: Ipv4Net = "10.42.0.0/16".parse().unwrap();
    for &i in &hosts {
        let c = lease(&sim, i).unwrap();
        assert!(range.contains(&c.ipv4().unwrap()) && c.ipv4().unwrap().prefix_len() == 24, "host {i}: {c:?}");
        assert_eq!(served(&sim, i), c.ipv4().unwrap(), "host {i}'s router serves its lease");
        let saved = sim.hosts[i].saved.as_ref().unwrap().1.leased(VNI.get(), &LeaseRange { cluster_cidr: range, host_prefix: 24 });
        assert_eq!(saved, Some(c), "host {i} saved its lease");
    }
    let moves: u64 = hosts.iter().map(|&i| sim.hosts[i].node().lease(VNI).unwrap().stats().moved).sum();
    println!("64 hosts: distinct leases and full routes after {t:?} (simulated), {moves} moves after collisions");
    assert!(moves >= (64 - firsts.len()) as u64, "every simultaneous collision moves one host");
    // And it stays so: no lease changes in the next minute.
    let logged: usize = sim.hosts.iter().map(|h| h.lease_log.len()).sum();
    sim.run_for(Duration::from_secs(60));
    assert!(settled(&sim, &hosts));
    assert_eq!(sim.hosts.iter().map(|h| h.lease_log.len()).sum::<usize>(), logged, "leases changed in a settled cluster");
}

#[test]
fn lease_a_restart_keeps_the_lease_and_its_age() {
    let mut sim = Sim::empty(22);
    sim.latency = Duration::from_millis(1);
    let hosts: Vec<usize> = (0..4).map(|i| sim.add_configured(&config(i, "10.42.0.0/16", 24), key(), None, 1000)).collect();
    let deadline = sim.now + Duration::from_secs(30);
    assert!(sim.run_until_cond(deadline, |s| settled(s, &hosts)));
    let before = lease(&sim, 2).unwrap();
    let first_log = sim.hosts[2].lease_log.len();
    sim.run_for(Duration::from_secs(100));

    // Host 2 stops for 20 s and starts again (new epoch, its saved state).
    sim.kill(2);
    sim.run_for(Duration::from_secs(20));
    sim.restart_configured(2, &config(2, "10.42.0.0/16", 24), key(), 2000);
    // Held at once, before any settle time: same subnet, same claim time.
    assert_eq!(lease(&sim, 2), Some(before), "the restarted host must claim its old lease again");
    assert_eq!(served(&sim, 2), before.ipv4().unwrap());
    assert_eq!(sim.hosts[2].node().lease(VNI).unwrap().stats().kept, 1);
    assert_eq!(sim.hosts[2].membership().local().networks[0].subnets, [before]);
    let deadline = sim.now + Duration::from_secs(30);
    assert!(sim.run_until_cond(deadline, |s| settled(s, &hosts)));
    assert_eq!(lease(&sim, 2), Some(before));
    assert_eq!(sim.hosts[2].lease_log.len(), first_log, "no lease change across the restart");
    assert_eq!(sim.hosts[2].epoch, 2000);
}

#[test]
fn lease_split_brain_conflicts_resolve_to_distinct_subnets_after_the_heal() {
    // A /22 cut into four /24s, four hosts in two halves that cannot talk while they lease. Host
    // 2's name is chosen so that it starts probing where host 0 does: both halves lease that
    // subnet, independently, at the same claim time; the lower name keeps it after the heal.
    let range = LeaseRange { cluster_cidr: "10.42.0.0/22".parse().unwrap(), host_prefix: 24 };
    let twin = (0..).map(|k| format!("m{k}")).find(|n| first_choice(&range, n) == first_choice(&range, "n0")).unwrap();
    let names = ["n0".to_string(), "n1".to_string(), twin, "n3".to_string()];
    let mut sim = Sim::empty(23);
    sim.latency = Duration::from_millis(1);
    let hosts: Vec<usize> = (0..4)
        .map(|i| {
            let seed = format!("\"{}\"", ul(usize::from(i == 0)));
            sim.add_configured(&named_config(i, &names[i], "10.42.0.0/22", 24, &seed), key(), None, 1000)
        })
        .collect();
    // The cluster forms, then splits before anyone has leased (the settle time is not over).
    let deadline = sim.now + Duration::from_secs(1);
    assert!(sim.run_until_cond(deadline, |s| hosts.iter().all(|&i| s.hosts[i].membership().live_records().count() == 3)));
    assert!(hosts.iter().all(|&i| lease(&sim, i).is_none()));
    sim.partition = Some(vec![0, 0, 1, 1]);
    let deadline = sim.now + Duration::from_secs(30);
    assert!(sim.run_until_cond(deadline, |s| settled(s, &[0, 1]) && settled(s, &[2, 3])), "each half settles alone");
    let left: BTreeSet<Ipv4Net> = [0, 1].iter().map(|&i| lease(&sim, i).unwrap().ipv4().unwrap()).collect();
    let right: BTreeSet<Ipv4Net> = [2, 3].iter().map(|&i| lease(&sim, i).unwrap().ipv4().unwrap()).collect();
    assert!(!left.is_disjoint(&right), "the halves must have leased a common subnet: {left:?} {right:?}");
    let before: Vec<SubnetClaim> = hosts.iter().map(|&i| lease(&sim, i).unwrap()).collect();

    // Long enough for each half to declare the other down, then heal.
    sim.run_for(Duration::from_secs(20));
    sim.partition = None;
    let healed = sim.now;
    let deadline = sim.now + Duration::from_secs(60);
    assert!(sim.run_until_cond(deadline, |s| settled(s, &hosts)), "no distinct leases 60 s after the heal");
    let t = sim.now - healed;
    let after: Vec<SubnetClaim> = hosts.iter().map(|&i| lease(&sim, i).unwrap()).collect();
    let moved: Vec<usize> = hosts.iter().copied().filter(|&i| before[i] != after[i]).collect();
    assert!(!moved.is_empty(), "a conflict must move at least one host");
    for &i in &moved {
        let stats = sim.hosts[i].node().lease(VNI).unwrap().stats();
        assert!(stats.moved >= 1, "host {i} moved without counting it: {stats:?}");
        let ev = sim.hosts[i].lease_log.last().unwrap();
        assert_eq!(ev.previous, Some(before[i].ipv4().unwrap()), "host {i} logged the subnet it gave up");
        // The subnet given up is held by a host with an older (since, name) claim.
        let winner = hosts.iter().copied().find(|&j| j != i && after[j].net == before[i].net).expect("the contested subnet is held");
        assert!((after[winner].since, &names[winner]) < (before[i].since, &names[i]), "{winner} beat {i}");
        assert_eq!(served(&sim, i), after[i].ipv4().unwrap());
    }
    for &i in &hosts {
        if !moved.contains(&i) {
            assert_eq!(sim.hosts[i].node().lease(VNI).unwrap().stats().moved, 0, "host {i} moved and came back");
        }
    }
    let show = |v: &[SubnetClaim]| v.iter().map(|c| c.net.to_string()).collect::<Vec<_>>().join(" ");
    println!(
        "split brain: {} of 4 hosts moved, distinct and fully routed {t:?} after the heal: {} -> {}",
        moved.len(),
        show(&before),
        show(&after)
    );
}
