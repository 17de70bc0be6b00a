//! Trust in the control plane, on the simulator: a member holding the cluster key cannot rewrite
//! another host's record, claim default routes or the underlay, outrun everyone with a far-future
//! epoch, or win conflicts by back-dating its claims; record requests cannot be used to amplify.

use std::time::Duration;

use ipnet::IpNet;
use vxswitch::control::{Credentials, GossipConfig, RefuseReason, SubnetClaim};
use vxswitch::sim::{host_addr, host_ip, host_record, Sim, FIRST_EPOCH, SIM_VNI};

fn cluster(n: usize, cfg: GossipConfig, seed: u64) -> Sim {
    let mut net = Sim::gossip(n, cfg, seed);
    let deadline = net.now + Duration::from_secs(10);
    assert!(net.run_until_cond(deadline, Sim::converged), "not converged");
    net
}

fn refused(net: &Sim, i: usize, reason: RefuseReason) -> u64 {
    net.hosts[i].membership().stats().refused.get(reason)
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
fn gossip_record_rewritten_under_another_key_is_refused() {
    let mut sim = cluster(4, GossipConfig::default(), 31);
    // A member with the cluster key but its own signing key announces host 1's name with its own
    // underlay and ESP key, and a newer epoch: without signatures everyone would switch to it.
    let mut forged = host_record(1, FIRST_EPOCH + 5);
    forged.gossip = host_addr(9);
    forged.underlay = host_ip(9).into();
    forged.esp_public_key = Some([0xee; 32]);
    sim.add_gossip_host(forged, Credentials::for_tests(999, 0));
    sim.run_for(Duration::from_secs(15));
    let subnet = host_record(1, FIRST_EPOCH).networks[0].subnets[0].net;
    for i in [0, 2, 3] {
        let v = &sim.hosts[i].view;
        assert_eq!(v.esp.get(&host_ip(1).into()), Some(&([1; 32], FIRST_EPOCH)), "host {i}");
        assert!(!v.esp.contains_key(&host_ip(9).into()) && !v.peers.contains_key(&(SIM_VNI, host_ip(9).into())), "host {i}");
        assert_eq!(v.routes.get(&(SIM_VNI, subnet)), Some(&host_ip(1).into()), "host {i}");
        assert!(refused(&sim, i, RefuseReason::KeyChanged) > 0, "host {i}");
    }
}

#[test]
fn gossip_default_route_and_underlay_claims_are_refused() {
    let mut sim = cluster(3, GossipConfig::default(), 32);
    let mut rogue = host_record(20, FIRST_EPOCH);
    for s in ["0.0.0.0/1", "198.18.0.0/16"] {
        rogue.networks[0].subnets.push(SubnetClaim { net: net(s), since: 1 });
    }
    sim.add_gossip_host(rogue, Credentials::for_tests(20, 0));
    sim.run_for(Duration::from_secs(5));
    for i in 0..3 {
        let v = &sim.hosts[i].view;
        assert_eq!(v.routes.get(&(SIM_VNI, net("198.19.20.0/24"))), Some(&host_ip(20).into()), "its own subnet is fine");
        assert!(!v.routes.contains_key(&(SIM_VNI, net("0.0.0.0/1"))), "host {i}: default-route-like prefix installed");
        assert!(!v.routes.contains_key(&(SIM_VNI, net("198.18.0.0/16"))), "host {i}: a route over the underlay installed");
        assert!(refused(&sim, i, RefuseReason::SubnetTooBroad) >= 1);
        assert!(refused(&sim, i, RefuseReason::SubnetOverUnderlay) >= 1);
    }
}

#[test]
fn gossip_subnets_outside_the_cluster_cidr_are_refused() {
    let cfg = GossipConfig { cluster_cidr: Some("198.19.0.0/16".parse().unwrap()), ..GossipConfig::default() };
    let mut sim = cluster(3, cfg, 33);
    let mut rogue = host_record(21, FIRST_EPOCH);
    rogue.networks[0].subnets.push(SubnetClaim { net: net("10.0.0.0/24"), since: 1 });
    sim.add_gossip_host(rogue, Credentials::for_tests(21, 0));
    sim.run_for(Duration::from_secs(5));
    for i in 0..3 {
        let v = &sim.hosts[i].view;
        assert_eq!(v.routes.get(&(SIM_VNI, net("198.19.21.0/24"))), Some(&host_ip(21).into()));
        assert!(!v.routes.contains_key(&(SIM_VNI, net("10.0.0.0/24"))), "host {i}");
        assert!(refused(&sim, i, RefuseReason::SubnetOutsideCluster) >= 1);
    }
}

#[test]
fn gossip_far_future_epoch_is_refused() {
    let mut sim = cluster(3, GossipConfig::default(), 34);
    // An epoch hours ahead of every clock would outrank every honest restart of that name.
    sim.add_gossip_host(host_record(22, u64::MAX / 2), Credentials::for_tests(22, 0));
    sim.run_for(Duration::from_secs(5));
    for i in 0..3 {
        assert!(!sim.hosts[i].view.peers.contains_key(&(SIM_VNI, host_ip(22).into())), "host {i}");
    }
    // It announces itself to the seeds, hosts 0 and 1, who refuse to talk to it.
    assert!(refused(&sim, 0, RefuseReason::FutureEpoch) > 0 && refused(&sim, 1, RefuseReason::FutureEpoch) > 0);
    let members = sim.hosts[0].membership().members();
    assert!(members.iter().all(|m| m.addr != host_addr(22)), "{members:?}");
}

#[test]
fn gossip_rotated_key_is_refused_until_forgotten() {
    let mut sim = cluster(3, GossipConfig::default(), 35);
    // Host 1 comes back with a new signing key (its key file was lost or rotated).
    sim.kill(1);
    let epoch = FIRST_EPOCH + 10;
    let cfg = sim.gossip_host(1, host_record(1, epoch), Credentials::for_tests(777, 0));
    sim.restart(1, cfg);
    sim.hosts[1].epoch = epoch;
    sim.run_for(Duration::from_secs(12));
    for i in [0, 2] {
        assert!(!sim.hosts[i].view.peers.contains_key(&(SIM_VNI, host_ip(1).into())), "host {i} trusted a new key unasked");
        assert!(refused(&sim, i, RefuseReason::KeyChanged) > 0);
    }
    // The operator runs `vxswitch forget h001` on host 0 only.
    assert!(sim.hosts[0].node_mut().forget("h001"));
    sim.run_for(Duration::from_secs(12));
    assert_eq!(sim.hosts[0].view.esp.get(&host_ip(1).into()), Some(&([1; 32], epoch)));
    assert!(!sim.hosts[2].view.peers.contains_key(&(SIM_VNI, host_ip(1).into())));
    let trusted = sim.hosts[0].membership().trust().hosts["h001"].key;
    assert_eq!(trusted, vxswitch::control::SigningKey::for_tests(777).public());
}

#[test]
fn gossip_captured_pull_replayed_from_spoofed_sources_is_not_answered() {
    use std::net::SocketAddr;
    use vxswitch::control::seal::Sealer;
    use vxswitch::control::{Binding, ClusterKey, DropReason};
    use vxswitch::sim::CLUSTER_KEY;
    use vxswitch::wire::ethernet::EthernetAddress;

    let mut sim = Sim::gossip(3, GossipConfig::default(), 36);
    sim.capture = Some(Vec::new());
    let deadline = sim.now + Duration::from_secs(10);
    assert!(sim.run_until_cond(deadline, Sim::converged));
    // A record request is one kind byte sealed: 33 bytes on the wire.
    let captured = sim.capture.take().unwrap();
    let (_, _, pull) = captured.iter().find(|(_, to, b)| *to == host_addr(0) && b.len() == 33).cloned().expect("a captured pull");
    let replays_before = sim.hosts[0].membership().dropped(DropReason::Replay);
    let victim = |n: u8| SocketAddr::from(([203, 0, 113, n], 4790));
    for n in 1..=50 {
        sim.inject(victim(n), host_addr(0), pull.clone());
    }
    sim.run_for(Duration::from_millis(100));
    assert_eq!(sim.hosts[0].membership().dropped(DropReason::Replay) - replays_before, 50, "replays from spoofed sources answered");

    // A fresh request (someone with the cluster key) from an address that is not a member.
    let mut sealer = Sealer::new(&ClusterKey::from_bytes(CLUSTER_KEY), "vxswitch", 0xdead_beef);
    sim.inject(victim(99), host_addr(0), sealer.seal(&[2]));
    sim.run_for(Duration::from_millis(100));
    assert_eq!(refused(&sim, 0, RefuseReason::PullFromStranger), 1);

    // A member asking twice within a probe period gets one bounded answer.
    let mut big = host_record(0, FIRST_EPOCH);
    big.networks[0].bindings = (0..2000u32)
        .map(|n| Binding {
            ip: std::net::Ipv4Addr::from(0xc613_0000 + n).into(),
            mac: EthernetAddress([2, 9, 0, 0, (n >> 8) as u8, n as u8]),
            since: 1,
        })
        .collect();
    sim.set_record(0, big);
    sim.run_for(Duration::from_secs(1));
    let mut member = Sealer::new(&ClusterKey::from_bytes(CLUSTER_KEY), "vxswitch", 0xfeed);
    sim.inject(host_addr(1), host_addr(0), member.seal(&[2]));
    sim.inject(host_addr(1), host_addr(0), member.seal(&[2]));
    sim.run_for(Duration::from_millis(100));
    assert!(refused(&sim, 0, RefuseReason::PullRateLimited) >= 1);
    assert!(refused(&sim, 0, RefuseReason::PullReplyCut) >= 1, "the answer to one request is bounded");
}
