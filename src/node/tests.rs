//! Unit tests of one node on its own; scenarios with many nodes are in `tests/*_scenarios.rs`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::*;
use crate::arp::{arp_frame, UnknownArp};
use crate::control::fixtures::{host_record, SIM_VNI};
use crate::control::{ClusterKey, GossipConfig, PeerInfo};
use crate::dataplane::{NetworkSpec, SwitchConfig};
use crate::wire::arp::{ArpOperation, ArpRepr};
use crate::wire::ethernet::EthernetAddress;

fn switch_config() -> SwitchConfig {
    let net = NetworkSpec {
        vni: SIM_VNI,
        max_frame_len: 1464,
        peers: Vec::new(),
        unknown_arp: UnknownArp::Flood,
        routed: None,
        tunnel: crate::dataplane::Tunnel::Vxlan,
        path: Default::default(),
    };
    SwitchConfig { fdb_ageing: Duration::from_secs(300), fdb_max_entries: 64, networks: vec![net] }
}

fn wall() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_000_000)
}

fn gossiping(now: Instant) -> Node {
    let mut record = host_record(0, 1);
    record.networks[0].bindings.clear();
    let credentials = crate::control::Credentials::for_tests(0, 0);
    let gossip = GossipSetup { config: GossipConfig::default(), key: ClusterKey::from_bytes([1; 32]), record, seed: Some(5), credentials };
    Node::new(NodeConfig { gossip: Some(gossip), ..NodeConfig::switch_only(switch_config()) }, now, wall()).unwrap()
}

#[test]
fn static_updates_reach_the_switch_and_later_updates_the_kernel_queue_too() {
    let now = Instant::now();
    let peer =
        |n: u8| ControlUpdate::PeerUp { vni: SIM_VNI, peer: PeerInfo { underlay: Ipv4Addr::new(198, 18, 0, n).into(), vtep_mac: None } };
    let cfg = NodeConfig { static_updates: vec![peer(2)], ..NodeConfig::switch_only(switch_config()) };
    let mut node = Node::new(cfg, now, wall()).unwrap();
    assert_eq!(node.switch().peers(0), [Ipv4Addr::new(198, 18, 0, 2)]);
    assert_eq!(node.poll_kernel_update(), None, "the kernel programmers read static updates from the configuration");
    node.apply(now, peer(3));
    assert_eq!(node.switch().peers(0).len(), 2);
    assert_eq!(node.poll_kernel_update(), Some(peer(3)));
    assert!(node.membership().is_none() && node.poll_gossip().is_none());
    assert_eq!(node.poll_timeout(), None, "no gossip, empty FDB: nothing to wake up for");
}

#[test]
fn snooped_bindings_are_published_once_per_period_with_wall_clock_claim_times() {
    let t0 = Instant::now();
    let mut node = gossiping(t0);
    assert_eq!(node.poll_timeout().map(|t| t <= t0), Some(true), "first publish check at start");
    node.handle_timeout(t0);
    assert!(node.poll_timeout().unwrap() <= t0 + PUBLISH_EVERY);
    let version = node.membership().unwrap().local().version;
    let (ip, mac) = (Ipv4Addr::new(198, 19, 0, 10), EthernetAddress([2, 0, 0, 0, 0, 10]));
    let repr = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: mac,
        source_protocol_addr: ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: ip,
    };
    let frame = arp_frame(&repr, EthernetAddress::BROADCAST, None);
    let mut buf = vec![0u8; 64 + frame.len()];
    buf[64..].copy_from_slice(&frame);
    let _ = node.handle_tap_frame(t0, 0, &mut buf, 64..64 + frame.len());
    node.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(node.membership().unwrap().local().version, version, "not before the period is over");
    let t1 = t0 + PUBLISH_EVERY + Duration::from_secs(2);
    node.handle_timeout(t1);
    let local = node.membership().unwrap().local();
    assert_eq!(local.version, version + 1);
    let since = unix_secs(wall()) + (t1 - t0).as_secs();
    assert_eq!(local.networks[0].bindings, [crate::control::Binding { ip: ip.into(), mac, since, seq: 0 }]);
    assert_eq!(node.wall_clock(t1), wall() + (t1 - t0));
}

#[test]
fn snooped_bindings_expire_with_their_mac_and_are_withdrawn() {
    let t0 = Instant::now();
    let mut node = gossiping(t0);
    node.handle_timeout(t0);
    let (ip, mac) = (Ipv4Addr::new(198, 19, 0, 10), EthernetAddress([2, 0, 0, 0, 0, 10]));
    let repr = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: mac,
        source_protocol_addr: ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: ip,
    };
    let frame = arp_frame(&repr, EthernetAddress::BROADCAST, None);
    let mut buf = vec![0u8; 64 + frame.len()];
    buf[64..].copy_from_slice(&frame);
    let _ = node.handle_tap_frame(t0, 0, &mut buf, 64..64 + frame.len());
    let t1 = t0 + PUBLISH_EVERY * 2;
    node.handle_timeout(t1);
    assert_eq!(node.membership().unwrap().local().networks[0].bindings.len(), 1);
    // The container goes quiet; once its FDB entry ages out, the binding is withdrawn.
    let t2 = t0 + Duration::from_secs(301);
    node.handle_timeout(t2);
    node.handle_timeout(t2 + PUBLISH_EVERY * 2);
    assert!(node.membership().unwrap().local().networks[0].bindings.is_empty(), "a stale binding stays published");
    assert_eq!(node.switch().counters().local_bindings_expired, 1);
}
