//! Container moves on the simulator (three whole nodes gossiping, virtual time, seeded): a
//! container that stops on one host and starts on another with the same MAC and address is
//! followed by every host's proxy ARP and FDB within one gossip round, the old host lets go of it,
//! and two live containers with one MAC on two hosts are damped instead of storming the gossip.
//! Run with `--nocapture` to see the measured times.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use vxswitch::arp::arp_frame;
use vxswitch::control::GossipConfig;
use vxswitch::dataplane::fdb::Location;
use vxswitch::sim::{host_ip, Sim, SIM_VNI};
use vxswitch::wire::arp::{ArpOperation, ArpRepr};
use vxswitch::wire::ethernet::EthernetAddress;

const IP: Ipv4Addr = Ipv4Addr::new(198, 19, 200, 7);
const MAC: EthernetAddress = EthernetAddress([2, 0xaa, 0, 0, 0, 7]);
/// Membership gossip goes out every 200 ms (see `GossipConfig`): "one gossip round".
const GOSSIP_ROUND: Duration = Duration::from_millis(200);

/// Three converged hosts.
fn cluster(seed: u64) -> Sim {
    let mut sim = Sim::gossip(3, GossipConfig::default(), seed);
    let deadline = sim.now + Duration::from_secs(30);
    assert!(sim.run_until_cond(deadline, Sim::converged), "cluster did not converge");
    sim
}

/// The container announces itself on the TAP of `host` (gratuitous ARP, as after a migration).
fn garp(sim: &mut Sim, host: usize) {
    let arp = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: MAC,
        source_protocol_addr: IP,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: IP,
    };
    sim.tap_send(host, 0, &arp_frame(&arp, EthernetAddress::BROADCAST, None));
}

/// Any frame of the container from the TAP of `host` (an IPv4 broadcast; contents do not matter).
fn speaks(sim: &mut Sim, host: usize) {
    sim.tap_send(host, 0, &vxswitch::sim::ethernet_frame([0xff; 6], MAC.0, 0x0800, &[0x45; 40]));
}

/// Whether `host`'s own record claims the container, and with which move sequence.
fn claim_of(sim: &Sim, host: usize) -> Option<u64> {
    let rec = sim.hosts[host].membership().local();
    rec.network(SIM_VNI)?.bindings.iter().find(|b| b.ip == IpAddr::V4(IP) && b.mac == MAC).map(|b| b.seq)
}

/// Every host agrees the container lives behind `owner`: the owner claims it and no control-plane
/// entry places it elsewhere there, nobody else claims it, every other host's FDB points at the
/// owner and its proxy ARP answers with the container's MAC.
fn all_point_at(sim: &Sim, owner: usize) -> bool {
    (0..sim.hosts.len()).all(|i| {
        let sw = sim.hosts[i].switch();
        if i == owner {
            claim_of(sim, i).is_some() && !sw.fdb().get(SIM_VNI, MAC).is_some_and(|e| e.is_static)
        } else {
            claim_of(sim, i).is_none()
                && sw.fdb().lookup(SIM_VNI, MAC) == Some(Location::Remote(host_ip(owner).into()))
                && sw.proxy_arp().lookup(SIM_VNI, IP) == Some(MAC)
        }
    })
}

/// Each host's claim, FDB entry and proxy-ARP binding of the container, for failure messages.
fn describe(sim: &Sim) -> String {
    let each = (0..sim.hosts.len()).map(|i| {
        let sw = sim.hosts[i].switch();
        let e = sw.fdb().get(SIM_VNI, MAC);
        format!(
            "host {i}: claim {:?}, fdb {:?}, proxy {:?}",
            claim_of(sim, i),
            e.map(|e| (e.location, e.is_static)),
            sw.proxy_arp().lookup(SIM_VNI, IP)
        )
    });
    each.collect::<Vec<_>>().join("; ")
}

/// Runs until every host points at `owner`, checking every millisecond; returns how long that
/// took.
fn until_at(sim: &mut Sim, owner: usize, within: Duration) -> Duration {
    let t0 = sim.now;
    while !all_point_at(sim, owner) {
        assert!(sim.now - t0 < within, "after {within:?} not every host points at host {owner}: {}", describe(sim));
        sim.run_for(Duration::from_millis(1));
    }
    sim.now - t0
}

#[test]
fn container_moving_with_its_mac_and_ip_is_followed_within_one_gossip_round() {
    let mut sim = cluster(7);
    garp(&mut sim, 0);
    // First sighting: published at the usual pace (at most one second).
    let first = until_at(&mut sim, 0, Duration::from_secs(2));
    println!("first sighting on host 0 known everywhere after {first:?}");
    assert_eq!(claim_of(&sim, 0), Some(0));
    sim.run_for(Duration::from_secs(5));

    // The container stops on host 0 and starts on host 1 with the same MAC and address.
    garp(&mut sim, 1);
    // A frame of host 1's side moves at once: host 1 claimed it (sequence 1) before any gossip.
    assert_eq!(sim.hosts[1].switch().counters().binding_moves_in, 1);
    let moved = until_at(&mut sim, 1, GOSSIP_ROUND);
    println!("move 0 -> 1: every host's proxy ARP and FDB point at host 1 after {moved:?}");
    assert_eq!(claim_of(&sim, 1), Some(1), "claimed with a higher move sequence");
    assert_eq!(sim.hosts[1].switch().fdb().lookup(SIM_VNI, MAC), Some(Location::Local), "no flooding gap on the new host");
    assert_eq!(sim.hosts[0].switch().counters().binding_moves_out, 1, "host 0 let go");
    assert_eq!(sim.hosts[2].view.arp.get(&(SIM_VNI, IP.into())), Some(&MAC));
    for h in &sim.hosts {
        assert!(h.membership().conflicts().is_empty(), "a move is no conflict: {:?}", h.membership().conflicts());
    }

    // Unicast from host 2 to the container now goes to host 1, nowhere else.
    sim.take_underlay();
    let from2 = EthernetAddress([2, 0xbb, 0, 0, 0, 2]);
    sim.tap_send(2, 0, &vxswitch::sim::ethernet_frame(MAC.0, from2.0, 0x0800, &[0x45; 40]));
    sim.run_for(Duration::from_millis(10));
    let sent: Vec<_> = sim.take_underlay().into_iter().filter(|d| d.from == IpAddr::from(host_ip(2))).map(|d| d.to).collect();
    assert_eq!(sent, [IpAddr::from(host_ip(1))]);

    // And on to host 2 by any frame (no ARP at all), then back to host 0: each move wins.
    speaks(&mut sim, 2);
    let moved2 = until_at(&mut sim, 2, GOSSIP_ROUND);
    assert_eq!(claim_of(&sim, 2), Some(2));
    speaks(&mut sim, 0);
    let moved0 = until_at(&mut sim, 0, GOSSIP_ROUND);
    assert_eq!(claim_of(&sim, 0), Some(3));
    println!("move 1 -> 2 (any frame) after {moved2:?}, 2 -> 0 after {moved0:?}");
    // Stable afterwards: nothing moves without a new sighting.
    let versions: Vec<u64> = sim.hosts.iter().map(|h| h.membership().local().version).collect();
    sim.run_for(Duration::from_secs(30));
    assert!(all_point_at(&sim, 0));
    assert_eq!(versions, sim.hosts.iter().map(|h| h.membership().local().version).collect::<Vec<_>>(), "no record churn");
    let moves_in: u64 = sim.hosts.iter().map(|h| h.switch().counters().binding_moves_in).sum();
    assert_eq!(moves_in, 3);
}

#[test]
fn a_spoofed_claim_with_another_mac_still_moves_nothing() {
    let mut sim = cluster(8);
    garp(&mut sim, 0);
    until_at(&mut sim, 0, Duration::from_secs(2));
    let evil = EthernetAddress([2, 0xee, 0, 0, 0, 1]);
    let arp = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: evil,
        source_protocol_addr: IP,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: IP,
    };
    sim.tap_send(1, 0, &arp_frame(&arp, EthernetAddress::BROADCAST, None));
    sim.run_for(Duration::from_secs(3));
    assert!(all_point_at(&sim, 0), "the container stays where it is");
    let c = sim.hosts[1].switch().counters();
    assert_eq!((c.drops(vxswitch::dataplane::DropReason::ArpSpoofed), c.binding_moves_in), (1, 0));
}

#[test]
fn two_live_containers_with_one_mac_are_damped_not_a_gossip_storm() {
    let mut sim = cluster(9);
    garp(&mut sim, 0);
    until_at(&mut sim, 0, Duration::from_secs(2));
    let versions: Vec<u64> = sim.hosts.iter().map(|h| h.membership().local().version).collect();
    // A second container with the same MAC and address starts on host 1; both talk every 50 ms
    // for two minutes.
    for _ in 0..2400 {
        speaks(&mut sim, 1);
        speaks(&mut sim, 0);
        sim.run_for(Duration::from_millis(50));
    }
    let moves: Vec<u64> = sim.hosts.iter().map(|h| h.switch().counters().binding_moves_in).collect();
    let damped: Vec<u64> = sim.hosts.iter().map(|h| h.switch().counters().binding_moves_damped).collect();
    let bumps: Vec<u64> = sim.hosts.iter().zip(&versions).map(|(h, v)| h.membership().local().version - v).collect();
    println!("flapping for 120 s: moves {moves:?}, holds {damped:?}, record versions published {bumps:?}");
    assert!(moves.iter().all(|&m| m <= 5), "at most 5 moves per host and 180 s: {moves:?}");
    assert!(damped[0] + damped[1] >= 1, "the flapping was detected: {damped:?}");
    assert!(bumps.iter().all(|&b| b <= 12), "record publications bounded: {bumps:?}");
    // Exactly one host holds it, and once the containers are quiet every host agrees which.
    sim.run_for(Duration::from_secs(1));
    let owners: Vec<usize> = (0..3).filter(|&i| claim_of(&sim, i).is_some()).collect();
    assert_eq!(owners.len(), 1, "claimed by {owners:?}");
    assert!(all_point_at(&sim, owners[0]), "hosts disagree on where the MAC lives: {}", describe(&sim));
}

#[test]
fn an_ipv6_container_moves_by_its_unsolicited_neighbor_advertisement() {
    use std::net::Ipv6Addr;
    use vxswitch::nd::{ndisc_frame, ALL_NODES};
    use vxswitch::wire::icmpv6::{NdiscRepr, NeighborFlags};
    let ip6 = Ipv6Addr::new(0xfd00, 0x42, 0, 0, 0, 0, 0, 7);
    let na = |sim: &mut Sim, host: usize| {
        let nd = NdiscRepr::NeighborAdvert { flags: NeighborFlags::OVERRIDE, target_addr: ip6, lladdr: Some(MAC) };
        let frame = ndisc_frame(&nd, MAC, ip6, EthernetAddress([0x33, 0x33, 0, 0, 0, 1]), ALL_NODES, None);
        sim.tap_send(host, 0, &frame);
    };
    let at = |sim: &Sim, owner: usize| {
        (0..3).all(|i| {
            let sw = sim.hosts[i].switch();
            let claims =
                sim.hosts[i].membership().local().network(SIM_VNI).is_some_and(|n| n.bindings.iter().any(|b| b.ip == IpAddr::V6(ip6)));
            if i == owner {
                claims
            } else {
                !claims
                    && sw.proxy_nd().lookup(SIM_VNI, ip6) == Some(MAC)
                    && sw.fdb().lookup(SIM_VNI, MAC) == Some(Location::Remote(host_ip(owner).into()))
            }
        })
    };
    let mut sim = cluster(10);
    na(&mut sim, 0);
    let deadline = sim.now + Duration::from_secs(2);
    assert!(sim.run_until_cond(deadline, |s| at(s, 0)), "first sighting not known everywhere");
    na(&mut sim, 1);
    let t0 = sim.now;
    while !at(&sim, 1) {
        assert!(sim.now - t0 < GOSSIP_ROUND, "IPv6 move not followed within one gossip round");
        sim.run_for(Duration::from_millis(1));
    }
    println!("IPv6 move 0 -> 1 followed after {:?}", sim.now - t0);
    assert_eq!((sim.hosts[1].switch().counters().binding_moves_in, sim.hosts[0].switch().counters().binding_moves_out), (1, 1));
}
