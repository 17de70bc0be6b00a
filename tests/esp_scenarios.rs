//! ESP tunnels on the simulator: encrypted exchange, rekey under traffic, restart without nonce
//! reuse, fail-closed behaviour. Virtual time; no root needed.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use vxswitch::arp::UnknownArp;
use vxswitch::control::ControlUpdate;
use vxswitch::dataplane::{DropReason, EspTunnels, NetworkSpec, RoutedSpec, SwitchConfig, Tunnel};
use vxswitch::ipsec::{HostKey, SessionConfig, Suite};
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

fn spec(i: usize, n: usize, routed: Option<RoutedSpec>) -> SwitchConfig {
    let peers: Vec<std::net::IpAddr> = (0..n).filter(|&k| k != i).map(ul).collect();
    SwitchConfig {
        fdb_ageing: Duration::from_secs(300),
        fdb_max_entries: 1024,
        networks: vec![NetworkSpec {
            vni: VNI,
            max_frame_len: 1464,
            peers,
            unknown_arp: UnknownArp::Flood,
            routed,
            tunnel: Tunnel::Esp,
            path: Default::default(),
        }],
    }
}

struct Keys {
    public: Vec<[u8; 32]>,
    epochs: Vec<u64>,
}

/// `n` encrypted hosts with automatic keys, every host told every other's key and epoch.
fn encrypted_cluster(n: usize, session: SessionConfig) -> (Sim, Keys) {
    let mut sim = Sim::new((0..n).map(|i| (ul(i), spec(i, n, None))).collect());
    let mut keys = Keys { public: Vec::new(), epochs: Vec::new() };
    for i in 0..n {
        let host = HostKey::generate().unwrap();
        keys.public.push(host.public_key());
        keys.epochs.push(1000 + i as u64);
        sim.hosts[i].switch_mut().set_esp(EspTunnels::new(Some(host), 1000 + i as u64, Suite::Aes256Gcm, session.clone()));
    }
    for i in 0..n {
        for k in (0..n).filter(|&k| k != i) {
            let now = sim.now;
            let update = ControlUpdate::EspKey { underlay: ul(k), public_key: keys.public[k], epoch: keys.epochs[k] };
            sim.hosts[i].node_mut().apply(now, update);
        }
    }
    (sim, keys)
}

fn spi(payload: &[u8]) -> u32 {
    u32::from_be_bytes(payload[..4].try_into().unwrap())
}

#[test]
fn esp_two_and_three_hosts_exchange_encrypted_traffic() {
    for n in [2, 3] {
        let (mut sim, _) = encrypted_cluster(n, SessionConfig::default());
        let hello = ethernet_frame(BCAST, mac(0, 1), 0x0800, b"secret payload seen by nobody");
        sim.tap_send(0, 0, &hello);
        let crossed = sim.take_underlay();
        assert_eq!(crossed.len(), n - 1, "one ESP copy per peer");
        for d in &crossed {
            assert_eq!(d.tunnel, Tunnel::Esp, "carried in ESP, not VXLAN");
            assert!(!d.payload.windows(14).any(|w| w == b"secret payload"), "the payload is not visible on the wire");
        }
        for h in 1..n {
            assert_eq!(sim.take_tap(h, 0), vec![hello.clone()], "host {h} decrypts the exact frame");
        }
        // The reply is unicast to the learned VTEP, again in ESP.
        sim.tap_send(n - 1, 0, &ethernet_frame(mac(0, 1), mac(n - 1, 1), 0x0800, b"reply"));
        let crossed = sim.take_underlay();
        assert_eq!(crossed.len(), 1);
        assert!(crossed[0].tunnel == Tunnel::Esp && crossed[0].to == ul(0));
        assert_eq!(sim.take_tap(0, 0).len(), 1);
    }
}

#[test]
fn esp_rekey_under_traffic_loses_nothing() {
    let session = SessionConfig { rekey_after: Duration::from_secs(10), overlap: Duration::from_secs(5), ..SessionConfig::default() };
    let (mut sim, _) = encrypted_cluster(2, session);
    let mut spis = HashSet::new();
    let mut sent = 0;
    for step in 0..600 {
        // Traffic both ways every 100 ms of virtual time, for a minute: about six rekeys.
        sim.tap_send(0, 0, &ethernet_frame(mac(1, 1), mac(0, 1), 0x0800, &[step as u8; 100]));
        sim.tap_send(1, 0, &ethernet_frame(mac(0, 1), mac(1, 1), 0x0800, &[step as u8; 100]));
        sent += 1;
        for d in sim.take_underlay() {
            spis.insert((d.from, spi(&d.payload)));
        }
        sim.advance(Duration::from_millis(100));
    }
    assert_eq!(sim.take_tap(1, 0).len(), sent, "host 1 received every frame");
    assert_eq!(sim.take_tap(0, 0).len(), sent, "host 0 received every frame");
    assert!(spis.len() >= 10, "SAs rotated under traffic: {} SPIs seen", spis.len());
    for h in 0..2 {
        let c = sim.hosts[h].switch().counters();
        assert_eq!(c.total_drops(), 0, "host {h}: {:?}", c.drops_by_label());
    }
}

#[test]
fn esp_restart_recovers_with_fresh_keys() {
    let (mut sim, keys) = encrypted_cluster(2, SessionConfig::default());
    let mut before = HashSet::new();
    for i in 0..20u8 {
        sim.tap_send(1, 0, &ethernet_frame(BCAST, mac(1, 1), 0x0800, &[i; 64]));
    }
    for d in sim.take_underlay() {
        before.insert(spi(&d.payload));
    }
    assert_eq!(sim.take_tap(0, 0).len(), 20);

    // Host 1 restarts: new switch, same long-term key, new epoch. Gossip tells host 0.
    let host = HostKey::generate().unwrap();
    let (public, epoch) = (host.public_key(), 99_999);
    let now = sim.now;
    let fresh = NodeConfig {
        esp: Some(EspTunnels::new(Some(host), epoch, Suite::Aes256Gcm, SessionConfig::default())),
        static_updates: vec![ControlUpdate::EspKey { underlay: ul(0), public_key: keys.public[0], epoch: keys.epochs[0] }],
        ..NodeConfig::switch_only(spec(1, 2, None))
    };
    sim.restart(1, fresh);
    sim.hosts[0].node_mut().apply(now, ControlUpdate::EspKey { underlay: ul(1), public_key: public, epoch });

    let mut after = HashSet::new();
    for i in 0..20u8 {
        sim.tap_send(1, 0, &ethernet_frame(BCAST, mac(1, 1), 0x0800, &[i; 64]));
        sim.tap_send(0, 0, &ethernet_frame(mac(1, 1), mac(0, 1), 0x0800, &[i; 64]));
    }
    for d in sim.take_underlay().iter().filter(|d| d.from == ul(1)) {
        after.insert(spi(&d.payload));
    }
    assert_eq!(sim.take_tap(0, 0).len(), 20, "host 0 reads the restarted host");
    assert_eq!(sim.take_tap(1, 0).len(), 20, "the restarted host reads host 0");
    assert!(before.is_disjoint(&after), "new epoch, new SAs: no (key, nonce) pair reused ({before:?} vs {after:?})");
}

#[test]
fn esp_fails_closed() {
    let (mut sim, _) = encrypted_cluster(2, SessionConfig::default());
    // Cleartext VXLAN for the encrypted VNI from a real peer.
    let mut vx = vec![0x08, 0, 0, 0, 0, 0, VNI.get() as u8, 0];
    vx.extend_from_slice(&ethernet_frame(BCAST, mac(0, 1), 0x0800, b"plain"));
    sim.inject_underlay(ul(0), 1, &vx);
    // ESP from an address that is not a peer, and forged ESP from the peer.
    sim.inject_esp(Ipv4Addr::new(203, 0, 113, 7).into(), 1, &[0u8; 64]);
    let mut forged = vec![0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1];
    forged.extend_from_slice(&[0xab; 80]);
    sim.inject_esp(ul(0), 1, &forged);
    sim.inject_esp(ul(0), 1, &[0xff]);
    assert!(sim.take_tap(1, 0).is_empty());
    let c = sim.hosts[1].switch().counters();
    assert_eq!(c.drops(DropReason::CleartextOnEncrypted), 1);
    assert_eq!(c.drops(DropReason::EspIke), 1, "the all-zero datagram carries the non-ESP marker");
    assert_eq!(c.drops(DropReason::EspRejected), 1);
    assert_eq!(c.esp_keepalives, 1);
    let esp_drops = sim.hosts[1].switch().esp().unwrap().drops();
    assert_eq!(esp_drops.total(), 1, "the forged packet is counted by the ESP layer");
    // A captured packet replayed is rejected too.
    sim.tap_send(0, 0, &ethernet_frame(BCAST, mac(0, 1), 0x0800, b"once"));
    let d = sim.take_underlay().pop().unwrap();
    assert_eq!(sim.take_tap(1, 0).len(), 1);
    sim.inject_esp(ul(0), 1, &d.payload);
    assert!(sim.take_tap(1, 0).is_empty(), "replay dropped");
    assert_eq!(sim.hosts[1].switch().esp().unwrap().drops().get(vxswitch::ipsec::DropReason::Replay), 1);
}

/// Two hosts on a routed ESP network (`routed(i)` is host `i`'s spec), with each other's ESP
/// key and a route to `route(k)` via host `k`, as gossip would give them.
fn routed_esp_pair(routed: impl Fn(usize) -> RoutedSpec, route: impl Fn(usize) -> ipnet::IpNet) -> Sim {
    let mut sim = Sim::new((0..2).map(|i| (ul(i), spec(i, 2, Some(routed(i))))).collect());
    let hosts: Vec<HostKey> = (0..2).map(|_| HostKey::generate().unwrap()).collect();
    let public: Vec<[u8; 32]> = hosts.iter().map(HostKey::public_key).collect();
    for (i, host) in hosts.into_iter().enumerate() {
        sim.hosts[i].switch_mut().set_esp(EspTunnels::new(Some(host), i as u64 + 5, Suite::Aes128Gcm, SessionConfig::default()));
    }
    let now = sim.now;
    for i in 0..2 {
        let k = 1 - i;
        sim.hosts[i].node_mut().apply(now, ControlUpdate::EspKey { underlay: ul(k), public_key: public[k], epoch: k as u64 + 5 });
        sim.hosts[i].node_mut().apply(now, ControlUpdate::RouteAdd { vni: VNI, subnet: route(k), via: ul(k), next_hop: None });
    }
    sim
}

#[test]
fn esp_routed_network_carries_ip_packets() {
    let gw_mac = vxswitch::dataplane::default_gateway_mac(VNI);
    let routed = |i: usize| RoutedSpec {
        subnet: format!("198.19.{}.0/24", i + 1).parse().unwrap(),
        gateway_ip: Ipv4Addr::new(198, 19, i as u8 + 1, 1),
        gateway_mac: gw_mac,
        v6: None,
    };
    let mut sim = routed_esp_pair(routed, |k| routed(k).subnet.into());
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2(mac(0, 1), gw_mac.0)
        .ipv4([198, 19, 1, 10], [198, 19, 2, 10], 64)
        .udp(1, 2)
        .write(&mut frame, b"x")
        .unwrap();
    sim.tap_send(0, 0, &frame);
    let crossed = sim.take_underlay();
    assert_eq!(crossed.len(), 1);
    assert_eq!(crossed[0].tunnel, Tunnel::Esp);
    // Host 1 asks for the container's MAC, then delivers the decrypted IP packet.
    assert_eq!(sim.take_tap(1, 0).len(), 1, "ARP request from the gateway");
    let reply = vxswitch::arp::arp_frame(
        &vxswitch::wire::arp::ArpRepr {
            operation: vxswitch::wire::arp::ArpOperation::Reply,
            source_hardware_addr: vxswitch::wire::ethernet::EthernetAddress(mac(1, 1)),
            source_protocol_addr: Ipv4Addr::new(198, 19, 2, 10),
            target_hardware_addr: gw_mac,
            target_protocol_addr: Ipv4Addr::new(198, 19, 2, 1),
        },
        gw_mac,
        None,
    );
    sim.tap_send(1, 0, &reply);
    let got = sim.take_tap(1, 0);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0][..6], &mac(1, 1));
    assert_eq!(&got[0][14 + 12..14 + 20], &[198, 19, 1, 10, 198, 19, 2, 10]);
}

#[test]
fn esp_routed_dual_stack_network_carries_ipv6_packets() {
    use std::net::Ipv6Addr;
    use vxswitch::nd::ndisc_frame;
    use vxswitch::wire::ethernet::EthernetAddress;
    use vxswitch::wire::icmpv6::{NdiscRepr, NeighborFlags};
    let gw_mac = vxswitch::dataplane::default_gateway_mac(VNI);
    let subnet6 = |i: usize| -> ipnet::Ipv6Net { format!("fd00:19:0:{}::/64", i + 1).parse().unwrap() };
    let gw6 = |i: usize| -> Ipv6Addr { format!("fd00:19:0:{}::1", i + 1).parse().unwrap() };
    let ctr6 = |i: usize| -> Ipv6Addr { format!("fd00:19:0:{}::10", i + 1).parse().unwrap() };
    let routed = |i: usize| RoutedSpec {
        subnet: format!("198.19.{}.0/24", i + 1).parse().unwrap(),
        gateway_ip: Ipv4Addr::new(198, 19, i as u8 + 1, 1),
        gateway_mac: gw_mac,
        v6: Some(vxswitch::dataplane::RoutedSpec6 { subnet: subnet6(i), gateway_ip: gw6(i) }),
    };
    let mut sim = routed_esp_pair(routed, |k| subnet6(k).into());
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2(mac(0, 1), gw_mac.0)
        .ipv6(ctr6(0).octets(), ctr6(1).octets(), 64)
        .udp(1, 2)
        .write(&mut frame, b"x")
        .unwrap();
    sim.tap_send(0, 0, &frame);
    let crossed = sim.take_underlay();
    assert_eq!(crossed.len(), 1);
    assert_eq!(crossed[0].tunnel, Tunnel::Esp);
    // Host 1 solicits the container from its gateway, then delivers the decrypted IPv6 packet.
    assert_eq!(sim.take_tap(1, 0).len(), 1, "neighbor solicitation from the gateway");
    let na = NdiscRepr::NeighborAdvert { flags: NeighborFlags::SOLICITED, target_addr: ctr6(1), lladdr: Some(EthernetAddress(mac(1, 1))) };
    sim.tap_send(1, 0, &ndisc_frame(&na, EthernetAddress(mac(1, 1)), ctr6(1), gw_mac, gw6(1), None));
    let got = sim.take_tap(1, 0);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0][..6], &mac(1, 1));
    assert_eq!(&got[0][12..14], &[0x86, 0xdd], "an IPv6 frame again (next header 41 inside ESP)");
    assert_eq!(got[0][14 + 7], 63, "hop limit decremented once");
    assert_eq!(&got[0][14 + 8..14 + 40], &[ctr6(0).octets(), ctr6(1).octets()].concat()[..]);
}

#[test]
fn esp_static_public_keys_exchange_epochs_by_hello() {
    let mut sim = Sim::new((0..2).map(|i| (ul(i), spec(i, 2, None))).collect());
    let long_term: Vec<[u8; 32]> = (0..2).map(|_| rand_private()).collect();
    let key = |i: usize| HostKey::from_private_bytes(&long_term[i]).unwrap();
    let public: Vec<[u8; 32]> = (0..2).map(|i| key(i).public_key()).collect();
    let start = |sim: &mut Sim, i: usize, epoch: u64| {
        let now = sim.now;
        let mut esp = EspTunnels::new(Some(key(i)), epoch, Suite::Aes256Gcm, SessionConfig::default());
        esp.add_static_peer(now, ul(1 - i), public[1 - i]).unwrap();
        sim.restart(i, NodeConfig { esp: Some(esp), ..NodeConfig::switch_only(spec(i, 2, None)) });
    };
    start(&mut sim, 0, 10);
    start(&mut sim, 1, 20);
    sim.advance(Duration::from_millis(1));
    let hellos: Vec<_> = sim.take_underlay();
    assert!(hellos.iter().all(|d| d.tunnel == Tunnel::Esp && d.payload.len() == vxswitch::ipsec::hello::HELLO_LEN));
    for i in 0..2 {
        assert!(sim.hosts[i].switch().esp().unwrap().has_session(VNI, ul(1 - i)), "host {i} derived keys from the hello");
    }
    sim.tap_send(0, 0, &ethernet_frame(BCAST, mac(0, 1), 0x0800, b"after hello"));
    assert_eq!(sim.take_tap(1, 0).len(), 1);
    let old_hello = hellos.iter().find(|d| d.from == ul(1)).unwrap().payload.clone();

    // Host 1 restarts with a new epoch: its first hello re-keys host 0, which answers at once.
    start(&mut sim, 1, 21);
    sim.advance(Duration::from_millis(1));
    sim.take_underlay();
    sim.tap_send(0, 0, &ethernet_frame(BCAST, mac(0, 1), 0x0800, b"after restart"));
    sim.tap_send(1, 0, &ethernet_frame(BCAST, mac(1, 1), 0x0800, b"back"));
    assert_eq!(sim.take_tap(1, 0).len(), 1, "host 1 reads host 0 after its restart");
    assert_eq!(sim.take_tap(0, 0).len(), 1, "host 0 reads the restarted host 1");

    // An attacker replays host 1's hello from its previous run: refused, keys unchanged.
    sim.inject_esp(ul(1), 0, &old_hello);
    assert_eq!(sim.hosts[0].switch().esp().unwrap().hellos.replayed, 1);
    sim.take_underlay();
    sim.tap_send(1, 0, &ethernet_frame(BCAST, mac(1, 1), 0x0800, b"still fine"));
    assert_eq!(sim.take_tap(0, 0).len(), 1);
}

fn rand_private() -> [u8; 32] {
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = rand::random::<u8>() ^ i as u8;
    }
    k
}
