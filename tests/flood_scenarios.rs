//! Tables that a hostile neighbour cannot fill for everyone, on the simulator (virtual time): the
//! FDB cap shared per peer, and the per-source rate limit of flooded frames.

use std::net::Ipv4Addr;
use std::time::Duration;

use vxswitch::arp::UnknownArp;
use vxswitch::control::ControlUpdate;
use vxswitch::dataplane::{DropReason, FloodLimit, Location, NetworkSpec, SwitchConfig, Tunnel};
use vxswitch::sim::{ethernet_frame, Sim};
use vxswitch::wire::ethernet::EthernetAddress;
use vxswitch::wire::vxlan::Vni;

const VNI: Vni = Vni::new_const(1042);
const BCAST: [u8; 6] = [0xff; 6];

fn mac(host: u8, n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, host, n]
}

fn ul(i: usize) -> std::net::IpAddr {
    Ipv4Addr::new(198, 18, 0, i as u8 + 1).into()
}

/// `n` hosts on one VNI, every host a static peer of every other, FDB cap `cap`.
fn cluster(n: usize, cap: usize) -> Sim {
    let hosts = (0..n)
        .map(|i| {
            let net = NetworkSpec {
                vni: VNI,
                max_frame_len: 1464,
                peers: (0..n).filter(|&k| k != i).map(ul).collect(),
                unknown_arp: UnknownArp::Flood,
                routed: None,
                tunnel: Tunnel::Vxlan,
                path: Default::default(),
            };
            (ul(i), SwitchConfig { fdb_ageing: Duration::from_secs(300), fdb_max_entries: cap, networks: vec![net] })
        })
        .collect();
    Sim::new(hosts)
}

fn arp_like(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    ethernet_frame(dst, src, 0x0806, &[0u8; 28])
}

/// A real ARP request from `src` (`src_ip`) for `target`.
fn arp_request(src: [u8; 6], src_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0, 1, 0x08, 0, 6, 4, 0, 1];
    p.extend_from_slice(&src);
    p.extend_from_slice(&src_ip.octets());
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&target.octets());
    ethernet_frame(BCAST, src, 0x0806, &p)
}

fn vxlan(inner: &[u8]) -> Vec<u8> {
    let mut p = vec![0x08, 0, 0, 0];
    p.extend_from_slice(&(VNI.get() << 8).to_be_bytes());
    p.extend_from_slice(inner);
    p
}

#[test]
fn fdb_share_keeps_honest_peers_and_local_entries_under_a_spoofed_mac_flood() {
    let cap = 64;
    let mut sim = cluster(4, cap);
    // Host 0 learns 8 MACs behind each of two honest peers and 8 behind its own TAP.
    for n in 0..8 {
        sim.tap_send(1, 0, &arp_like(BCAST, mac(1, n)));
        sim.tap_send(2, 0, &arp_like(BCAST, mac(2, n)));
        sim.tap_send(0, 0, &arp_like(BCAST, mac(0, n)));
    }
    // Datagrams claiming to come from host 3 carry 10x the cap in random source MACs.
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..10 * cap {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let b = rng.to_be_bytes();
        sim.inject_underlay(ul(3), 0, &vxlan(&arp_like(BCAST, [0x02, b[1], b[2], b[3], b[4], b[5]])));
        sim.advance(Duration::from_millis(1));
    }
    let fdb = sim.hosts[0].switch().fdb();
    for n in 0..8 {
        assert_eq!(fdb.lookup(VNI, EthernetAddress(mac(1, n))), Some(Location::Remote(ul(1))), "peer 1's mac {n}");
        assert_eq!(fdb.lookup(VNI, EthernetAddress(mac(2, n))), Some(Location::Remote(ul(2))), "peer 2's mac {n}");
        assert_eq!(fdb.lookup(VNI, EthernetAddress(mac(0, n))), Some(Location::Local), "local mac {n}");
    }
    assert_eq!(fdb.owned_by(Location::Remote(ul(3))), cap / 4, "the flooding peer keeps only its share");
    assert!(fdb.len() <= cap);
    let c = fdb.counters();
    assert!(c.share_evicted > 0 && c.evicted == c.share_evicted, "{c:?}");
}

/// Count the flooded frames from `src` that crossed the underlay (one copy per peer each).
fn crossed_from(sim: &mut Sim, src: [u8; 6]) -> usize {
    sim.take_underlay().iter().filter(|d| d.payload.get(14..20) == Some(&src[..])).count()
}

#[test]
fn flood_limit_holds_a_source_to_its_rate_and_spares_others_and_proxy_arp() {
    let mut sim = cluster(2, 1024);
    sim.hosts[0].switch_mut().set_flood_limit(FloodLimit { rate: 100, burst: 10, max_sources: 64 });
    let (noisy, quiet) = (mac(0, 1), mac(0, 2));
    let (mut noisy_sent, mut quiet_sent) = (0, 0);
    // Two seconds: the noisy source broadcasts every millisecond, the quiet one every 50 ms.
    for ms in 0..2000 {
        sim.tap_send(0, 0, &arp_like(BCAST, noisy));
        noisy_sent += crossed_from(&mut sim, noisy);
        if ms % 50 == 0 {
            sim.tap_send(0, 0, &arp_like(BCAST, quiet));
            quiet_sent += crossed_from(&mut sim, quiet);
        }
        sim.advance(Duration::from_millis(1));
    }
    // The burst, then 100 frames per second.
    assert!((209..=211).contains(&noisy_sent), "noisy source flooded {noisy_sent} frames");
    assert_eq!(quiet_sent, 40, "the quiet source is unaffected");
    let c = sim.hosts[0].switch().counters();
    assert_eq!(c.drops(DropReason::FloodRateLimited), 2000 - noisy_sent as u64);

    // ARP that proxy ARP answers on the host never floods, so the exhausted bucket does not matter.
    let bound = Ipv4Addr::new(10, 0, 0, 9);
    let now = sim.now;
    sim.hosts[0].node_mut().apply(now, ControlUpdate::ArpBinding { vni: VNI, ip: bound.into(), mac: EthernetAddress(mac(1, 9)) });
    for _ in 0..50 {
        sim.tap_send(0, 0, &arp_like(BCAST, noisy));
    }
    crossed_from(&mut sim, noisy);
    let replies = sim.hosts[0].switch().counters().arp_replies;
    for _ in 0..50 {
        sim.tap_send(0, 0, &arp_request(noisy, Ipv4Addr::new(10, 0, 0, 1), bound));
    }
    assert_eq!(sim.hosts[0].switch().counters().arp_replies, replies + 50, "every request answered locally");
    assert_eq!(crossed_from(&mut sim, noisy), 0, "answered locally, never flooded");
}

#[test]
fn flood_limit_bounds_the_source_table_against_random_source_macs() {
    let mut sim = cluster(2, 1024);
    sim.hosts[0].switch_mut().set_flood_limit(FloodLimit { rate: 100, burst: 10, max_sources: 16 });
    // A container cycling through source MACs gets no more than one shared bucket once the table
    // is full.
    let mut crossed = 0;
    for n in 0..=255u8 {
        sim.tap_send(0, 0, &arp_like(BCAST, [0x02, 0, 0, 0, 7, n]));
        crossed += sim.take_underlay().len();
    }
    assert_eq!(crossed, 16 + 10, "16 sources with their own bucket, then one shared burst");
    let c = sim.hosts[0].switch().counters();
    assert_eq!(c.flood_overflow_frames, 256 - 16);
    // Once idle, their buckets are forgotten to make room for new sources.
    sim.advance(Duration::from_secs(2));
    sim.tap_send(0, 0, &arp_like(BCAST, mac(0, 1)));
    assert_eq!(sim.take_underlay().len(), 1);
    assert_eq!(sim.hosts[0].switch().counters().flood_sources_evicted, 16);
}
