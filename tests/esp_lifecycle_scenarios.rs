//! ESP session lifecycle on the simulator: replayed hellos after restarts, keys flipping between
//! two records, rekeying before the packet budget runs out, sessions of departed peers, and
//! manual SAs at the end of their sequence space. Virtual time; no root needed.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use vxswitch::arp::UnknownArp;
use vxswitch::control::{ControlUpdate, PeerInfo};
use vxswitch::dataplane::{DropReason, EspTunnels, NetworkSpec, SwitchConfig, Tunnel};
use vxswitch::ipsec::{HostKey, ManualSa, SessionConfig, Suite};
use vxswitch::node::NodeConfig;
use vxswitch::sim::{ethernet_frame, Sim};
use vxswitch::wire::vxlan::Vni;

const VNI: Vni = Vni::new_const(7);
const BCAST: [u8; 6] = [0xff; 6];

fn ul(i: usize) -> std::net::IpAddr {
    Ipv4Addr::new(198, 18, 0, i as u8 + 1).into()
}
fn mac(i: usize, n: u8) -> [u8; 6] {
    [2, 0, 0, 0, i as u8 + 1, n]
}

fn spec(i: usize, n: usize) -> SwitchConfig {
    SwitchConfig {
        fdb_ageing: Duration::from_secs(300),
        fdb_max_entries: 1024,
        networks: vec![NetworkSpec {
            vni: VNI,
            max_frame_len: 1464,
            peers: (0..n).filter(|&k| k != i).map(ul).collect(),
            unknown_arp: UnknownArp::Flood,
            routed: None,
            tunnel: Tunnel::Esp,
            path: Default::default(),
        }],
    }
}

fn key(seed: u8) -> HostKey {
    HostKey::from_private_bytes(&[seed; 32]).unwrap()
}

/// Two hosts with automatic keys (long-term keys from seeds 1 and 2), told each other's keys.
fn pair(session: SessionConfig) -> Sim {
    let mut sim = Sim::new((0..2).map(|i| (ul(i), spec(i, 2))).collect());
    for i in 0..2 {
        sim.hosts[i].switch_mut().set_esp(EspTunnels::new(Some(key(i as u8 + 1)), 100 + i as u64, Suite::Aes256Gcm, session.clone()));
    }
    for i in 0..2 {
        let k = 1 - i;
        let now = sim.now;
        let update = ControlUpdate::EspKey { underlay: ul(k), public_key: key(k as u8 + 1).public_key(), epoch: 100 + k as u64 };
        sim.hosts[i].node_mut().apply(now, update);
    }
    sim
}

fn esp_seq(payload: &[u8]) -> (u32, u64) {
    (u32::from_be_bytes(payload[0..4].try_into().unwrap()), u64::from_be_bytes(payload[8..16].try_into().unwrap()))
}

#[test]
fn esp_replayed_hello_after_restart_does_not_lock_the_tunnel() {
    let mut sim = Sim::new((0..2).map(|i| (ul(i), spec(i, 2))).collect());
    let start = |sim: &mut Sim, i: usize, epoch: u64| {
        let now = sim.now;
        let mut esp = EspTunnels::new(Some(key(i as u8 + 1)), epoch, Suite::Aes256Gcm, SessionConfig::default());
        esp.add_static_peer(now, ul(1 - i), key(2 - i as u8).public_key()).unwrap();
        sim.restart(i, NodeConfig { esp: Some(esp), ..NodeConfig::switch_only(spec(i, 2)) });
    };
    start(&mut sim, 0, 10);
    start(&mut sim, 1, 20);
    sim.advance(Duration::from_millis(1));
    let old_hello = sim.take_underlay().into_iter().find(|d| d.from == ul(1)).unwrap().payload;
    // Host 1 restarts (epoch 21), then host 0 restarts and learns epoch 21 from host 1's hello.
    start(&mut sim, 1, 21);
    sim.advance(Duration::from_millis(1));
    start(&mut sim, 0, 11);
    sim.advance(Duration::from_millis(1));
    sim.take_underlay();
    // An attacker replays host 1's hello from its previous life to the freshly started host 0.
    sim.inject_esp(ul(1), 0, &old_hello);
    assert_eq!(sim.hosts[0].switch().esp().unwrap().hellos.replayed, 1, "an older epoch is refused");
    // Genuine hellos keep being accepted and traffic flows both ways, now and later.
    for round in 0..3u8 {
        sim.advance(Duration::from_secs(6));
        sim.tap_send(0, 0, &ethernet_frame(BCAST, mac(0, 1), 0x0800, &[round; 40]));
        sim.tap_send(1, 0, &ethernet_frame(BCAST, mac(1, 1), 0x0800, &[round; 40]));
        assert_eq!(sim.take_tap(1, 0).len(), 1, "round {round}: host 1 reads host 0");
        assert_eq!(sim.take_tap(0, 0).len(), 1, "round {round}: host 0 reads host 1");
    }
    let hellos = sim.hosts[0].switch().esp().unwrap().hellos;
    assert!(hellos.current >= 2 && hellos.replayed == 1, "{hellos:?}");
}

#[test]
fn esp_key_flip_between_two_records_never_repeats_a_nonce() {
    let mut sim = pair(SessionConfig::default());
    let (genuine, rival) = ((key(2).public_key(), 101), (key(9).public_key(), 555));
    let mut used = HashSet::new();
    let mut delivered = 0;
    for flip in 0..6u8 {
        for n in 0..5u8 {
            sim.tap_send(0, 0, &ethernet_frame(BCAST, mac(0, 1), 0x0800, &[flip, n]));
            let key_id = sim.hosts[0].switch().esp().unwrap().outbound(VNI, ul(1)).unwrap().key_id();
            for d in sim.take_underlay() {
                let (spi, seq) = esp_seq(&d.payload);
                assert!(used.insert((key_id, seq)), "flip {flip}: SPI {spi:#x} sequence {seq} sealed twice under one key");
            }
        }
        delivered += sim.take_tap(1, 0).len();
        // Two records claim host 1's underlay address: the key flips away and back.
        let now = sim.now;
        for (public_key, epoch) in [rival, genuine] {
            sim.hosts[0].node_mut().apply(now, ControlUpdate::EspKey { underlay: ul(1), public_key, epoch });
        }
    }
    assert_eq!(delivered, 30, "the genuine peer follows every resumed generation");
    let c = sim.hosts[0].switch().esp().unwrap().counters();
    assert_eq!(c.sessions_resumed, 11, "{c:?}");
    assert_eq!(c.active_sessions, 1);
}

#[test]
fn esp_packet_budget_rekeys_under_traffic_without_loss() {
    let session = SessionConfig { packet_budget: 40, ..SessionConfig::default() };
    let mut sim = pair(session);
    let mut spis = HashSet::new();
    for i in 0..500u16 {
        sim.tap_send(0, 0, &ethernet_frame(mac(1, 1), mac(0, 1), 0x0800, &i.to_be_bytes()));
        sim.tap_send(1, 0, &ethernet_frame(mac(0, 1), mac(1, 1), 0x0800, &i.to_be_bytes()));
        spis.extend(sim.take_underlay().iter().map(|d| esp_seq(&d.payload).0));
        sim.advance(Duration::from_millis(1));
    }
    assert_eq!(sim.take_tap(1, 0).len(), 500, "nothing lost at a rekey");
    assert_eq!(sim.take_tap(0, 0).len(), 500);
    assert!(spis.len() >= 2 * 12, "a new SA every 40 packets each way: {} SPIs", spis.len());
    for h in 0..2 {
        let gens = sim.hosts[h].switch().esp().unwrap().sessions()[0].4;
        assert_eq!(gens, (12, 12), "host {h}: outbound and inbound generations");
        assert_eq!(sim.hosts[h].switch().counters().total_drops(), 0);
    }
}

#[test]
fn esp_sessions_of_departed_peers_are_removed_and_bounded() {
    let n = 4;
    let mut sim = Sim::new((0..n).map(|i| (ul(i), spec(i, n))).collect());
    let esp = EspTunnels::new(Some(key(1)), 100, Suite::Aes256Gcm, SessionConfig::default()).with_max_sessions(2);
    sim.hosts[0].switch_mut().set_esp(esp);
    let now = sim.now;
    for k in 1..n {
        let update = ControlUpdate::EspKey { underlay: ul(k), public_key: key(k as u8 + 1).public_key(), epoch: 100 + k as u64 };
        sim.hosts[0].node_mut().apply(now, update);
    }
    let esp = sim.hosts[0].switch().esp().unwrap();
    assert_eq!((esp.counters().active_sessions, esp.counters().session_limit), (2, 1), "the bound bites and is counted");
    assert!(!esp.has_session(VNI, ul(3)));
    // Host 1 leaves: its session goes, which makes room for host 3.
    sim.hosts[0].node_mut().apply(now, ControlUpdate::PeerDown { vni: VNI, underlay: ul(1) });
    assert!(!sim.hosts[0].switch().esp().unwrap().has_session(VNI, ul(1)));
    let update = ControlUpdate::EspKey { underlay: ul(3), public_key: key(4).public_key(), epoch: 103 };
    sim.hosts[0].node_mut().apply(now, update);
    // Host 1 comes back with the same epoch: it continues above the generations it used.
    sim.hosts[0].node_mut().apply(now, ControlUpdate::PeerDown { vni: VNI, underlay: ul(2) });
    sim.hosts[0].node_mut().apply(now, ControlUpdate::PeerUp { vni: VNI, peer: PeerInfo { underlay: ul(1), vtep_mac: None } });
    sim.hosts[0].node_mut().apply(now, ControlUpdate::EspKey { underlay: ul(1), public_key: key(2).public_key(), epoch: 101 });
    let esp = sim.hosts[0].switch().esp().unwrap();
    let c = esp.counters();
    assert_eq!((c.active_sessions, c.sessions_removed, c.sessions_resumed), (2, 2, 1), "{c:?}");
    assert!(esp.has_session(VNI, ul(1)) && esp.has_session(VNI, ul(3)) && !esp.has_session(VNI, ul(2)));
    assert_eq!(esp.sessions().iter().find(|s| s.1 == ul(1)).unwrap().4 .0, 1, "a resumed session starts at a new generation");
}

#[test]
fn esp_manual_sa_stops_at_its_last_sequence_number_and_counts() {
    let mut sim = Sim::new((0..2).map(|i| (ul(i), spec(i, 2))).collect());
    let sa = |spi: &str| ManualSa::parse(spi, "rfc4106(gcm(aes))", "0x0123456789abcdef0123456789abcdefcafebabe", 128).unwrap();
    let last = u64::from(u32::MAX);
    for i in 0..2 {
        let (out, inb) = if i == 0 { (sa("0x1000"), sa("0x2000")) } else { (sa("0x2000"), sa("0x1000")) };
        let mut esp = EspTunnels::new(None, 1, Suite::Aes128Gcm, SessionConfig::default());
        // Host 0 resumes just before the end of its sequence space (as after a long run).
        let outbound = out.outbound(false).unwrap().resume_after(if i == 0 { last - 5 } else { 0 });
        esp.add_manual(sim.now, VNI, ul(1 - i), outbound, inb.inbound(false, 64).unwrap());
        // What the daemon does with the state file: persist, then confirm.
        for r in esp.reservations_wanted() {
            esp.confirm_reservation(&r);
        }
        sim.hosts[i].switch_mut().set_esp(esp);
    }
    assert_eq!(sim.hosts[0].switch().esp().unwrap().counters().seq_near_exhaustion, 1, "past 90 %: warned");
    for n in 0..10u8 {
        sim.tap_send(0, 0, &ethernet_frame(mac(1, 1), mac(0, 1), 0x0800, &[n; 40]));
    }
    let seqs: Vec<u64> = sim.take_underlay().iter().map(|d| esp_seq(&d.payload).1).collect();
    assert_eq!(seqs, (last - 4..=last).collect::<Vec<_>>(), "the last five numbers, then nothing: no wrap");
    assert_eq!(sim.take_tap(1, 0).len(), 5);
    let c = sim.hosts[0].switch().counters();
    assert_eq!(c.drops(DropReason::EspSeqExhausted), 5);
    assert_eq!(sim.hosts[0].switch().esp().unwrap().counters().seq_exhausted, 5);
}
