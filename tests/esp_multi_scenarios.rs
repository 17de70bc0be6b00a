//! Several encrypted networks between the same two hosts, on the simulator: an encrypted L2
//! overlay, an encrypted routed network and a cleartext overlay carry traffic at the same time,
//! each network's frames reach only its own TAP (the SPI tells the network), with automatic and
//! with manual keys. Virtual time; no root needed.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use vxswitch::arp::UnknownArp;
use vxswitch::control::ControlUpdate;
use vxswitch::dataplane::{default_gateway_mac, EspTunnels, NetworkSpec, RoutedSpec, SwitchConfig, Tunnel};
use vxswitch::ipsec::{HostKey, ManualSa, SessionConfig, Suite};
use vxswitch::sim::{ethernet_frame, Sim};
use vxswitch::wire::arp::{ArpOperation, ArpRepr};
use vxswitch::wire::ethernet::EthernetAddress;
use vxswitch::wire::vxlan::Vni;

/// Encrypted L2 overlay (port 0).
const OVERLAY: Vni = Vni::new_const(10);
/// Encrypted routed network (port 1).
const ROUTED: Vni = Vni::new_const(20);
/// Cleartext overlay (port 2).
const CLEAR: Vni = Vni::new_const(30);
const BCAST: [u8; 6] = [0xff; 6];

fn ul(i: usize) -> std::net::IpAddr {
    Ipv4Addr::new(198, 18, 0, i as u8 + 1).into()
}
fn mac(i: usize, n: u8) -> [u8; 6] {
    [2, 0, 0, 0, i as u8 + 1, n]
}
fn container_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, i as u8 + 1, 10)
}
fn routed(i: usize) -> RoutedSpec {
    RoutedSpec {
        subnet: format!("198.19.{}.0/24", i + 1).parse().unwrap(),
        gateway_ip: Ipv4Addr::new(198, 19, i as u8 + 1, 1),
        gateway_mac: default_gateway_mac(ROUTED),
        v6: None,
    }
}

fn spec(i: usize) -> SwitchConfig {
    let net = |vni: Vni, routed: Option<RoutedSpec>, tunnel: Tunnel| NetworkSpec {
        vni,
        max_frame_len: 1464,
        peers: vec![ul(1 - i)],
        unknown_arp: UnknownArp::Flood,
        routed,
        tunnel,
        path: Default::default(),
    };
    SwitchConfig {
        fdb_ageing: Duration::from_secs(300),
        fdb_max_entries: 1024,
        networks: vec![net(OVERLAY, None, Tunnel::Esp), net(ROUTED, Some(routed(i)), Tunnel::Esp), net(CLEAR, None, Tunnel::Vxlan)],
    }
}

/// Two hosts with the three networks; `esp(i)` makes host `i`'s tunnels.
fn pair(esp: impl Fn(usize) -> EspTunnels) -> Sim {
    let mut sim = Sim::new((0..2).map(|i| (ul(i), spec(i))).collect());
    for i in 0..2 {
        sim.hosts[i].switch_mut().set_esp(esp(i));
        let now = sim.now;
        let update = ControlUpdate::RouteAdd { vni: ROUTED, subnet: routed(1 - i).subnet.into(), via: ul(1 - i), next_hop: None };
        sim.hosts[i].node_mut().apply(now, update);
    }
    sim
}

fn ip_packet(from: usize, marker: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2(mac(from, 2), default_gateway_mac(ROUTED).0)
        .ipv4(container_ip(from).octets(), container_ip(1 - from).octets(), 64)
        .udp(1, 2)
        .write(&mut frame, marker)
        .unwrap();
    frame
}

/// The container of host `i` on the routed network answers its gateway's ARP request.
fn answer_arp(sim: &mut Sim, i: usize) {
    let gw = routed(i);
    let reply = vxswitch::arp::arp_frame(
        &ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: EthernetAddress(mac(i, 2)),
            source_protocol_addr: container_ip(i),
            target_hardware_addr: gw.gateway_mac,
            target_protocol_addr: gw.gateway_ip,
        },
        gw.gateway_mac,
        None,
    );
    sim.tap_send(i, 1, &reply);
}

fn contains(frame: &[u8], marker: &[u8]) -> bool {
    frame.windows(marker.len()).any(|w| w == marker)
}

/// Traffic on all three networks both ways at once; every frame reaches its own network's TAP
/// only. Returns the SPIs seen per network (overlay, routed).
fn exchange_on_all_three(sim: &mut Sim) -> (HashSet<u32>, HashSet<u32>) {
    let markers: [&[u8]; 3] = [b"net-overlay-A", b"net-routed--B", b"net-clear---C"];
    // Resolve the routed containers first: the gateway ARPs on the TAP for a container it has
    // not seen yet, and the queued packet follows the answer.
    for i in 0..2 {
        sim.tap_send(i, 1, &ip_packet(i, b"warm-up"));
        let mut got = sim.take_tap(1 - i, 1);
        if got.len() == 1 && got[0][12..14] == [0x08, 0x06] {
            answer_arp(sim, 1 - i);
            got = sim.take_tap(1 - i, 1);
        }
        assert!(got.len() == 1 && contains(&got[0], b"warm-up"), "host {}: the routed packet arrives", 1 - i);
    }
    let (mut spis_overlay, mut spis_routed) = (HashSet::new(), HashSet::new());
    let rounds = 50;
    for round in 0..rounds {
        for i in 0..2 {
            let dst = if round == 0 { BCAST } else { mac(1 - i, 1) };
            let tag = |m: &[u8]| [m, &[i as u8, round as u8]].concat();
            sim.tap_send(i, 0, &ethernet_frame(dst, mac(i, 1), 0x0800, &tag(markers[0])));
            sim.tap_send(i, 1, &ip_packet(i, &tag(markers[1])));
            sim.tap_send(i, 2, &ethernet_frame(dst, mac(i, 3), 0x0800, &tag(markers[2])));
        }
        for d in sim.take_underlay() {
            match d.tunnel {
                Tunnel::Esp => {
                    assert!(!markers.iter().any(|m| contains(&d.payload, m)), "encrypted networks are not readable on the wire");
                    let spi = u32::from_be_bytes(d.payload[..4].try_into().unwrap());
                    let std::net::IpAddr::V4(from) = d.from else { panic!("an IPv4 underlay") };
                    let from = usize::from(from.octets()[3] - 1);
                    let esp = sim.hosts[from].switch().esp().unwrap();
                    if esp.outbound(OVERLAY, d.to).unwrap().spi() == spi {
                        spis_overlay.insert(spi);
                    } else {
                        assert_eq!(esp.outbound(ROUTED, d.to).unwrap().spi(), spi, "sealed by one of the two networks");
                        spis_routed.insert(spi);
                    }
                }
                Tunnel::Vxlan => assert!(contains(&d.payload, markers[2]), "only the cleartext network goes in VXLAN"),
            }
        }
        sim.advance(Duration::from_millis(10));
    }
    for h in 0..2 {
        for (port, marker) in markers.iter().enumerate() {
            let got = sim.take_tap(h, port);
            let data: Vec<_> = got.iter().filter(|f| f[12..14] != [0x08, 0x06]).collect();
            assert_eq!(data.len(), rounds, "host {h} port {port}: every frame of its network arrived");
            for f in &data {
                assert!(contains(f, marker), "host {h} port {port}: a frame of another network arrived");
                for other in markers.iter().filter(|m| *m != marker) {
                    assert!(!contains(f, other), "host {h} port {port}: cross-delivery");
                }
            }
        }
        let c = sim.hosts[h].switch().counters();
        assert_eq!(c.total_drops(), 0, "host {h}: {:?}", c.drops_by_label());
    }
    (spis_overlay, spis_routed)
}

#[test]
fn esp_two_encrypted_networks_and_a_cleartext_one_automatic_keys() {
    let key = |i: usize| HostKey::from_private_bytes(&[i as u8 + 41; 32]).unwrap();
    let public: Vec<[u8; 32]> = (0..2).map(|i| key(i).public_key()).collect();
    let mut sim = pair(|i| EspTunnels::new(Some(key(i)), 100 + i as u64, Suite::Aes256Gcm, SessionConfig::default()));
    for i in 0..2 {
        let now = sim.now;
        let k = 1 - i;
        sim.hosts[i].node_mut().apply(now, ControlUpdate::EspKey { underlay: ul(k), public_key: public[k], epoch: 100 + k as u64 });
        let esp = sim.hosts[i].switch().esp().unwrap();
        assert!(esp.has_session(OVERLAY, ul(k)) && esp.has_session(ROUTED, ul(k)), "one session per encrypted network");
        assert!(!esp.has_session(CLEAR, ul(k)), "none for the cleartext network");
        let s = esp.sessions();
        assert_eq!(s.len(), 2);
        assert!(s[0].2 != s[1].2 && s[0].3 != s[1].3, "each network has its own SPIs: {s:?}");
        let (a, b) = (esp.outbound(OVERLAY, ul(k)).unwrap().key_id(), esp.outbound(ROUTED, ul(k)).unwrap().key_id());
        assert_ne!(a, b, "each network has its own keys");
    }
    let (overlay, routed) = exchange_on_all_three(&mut sim);
    assert!(overlay.is_disjoint(&routed), "no SPI shared between the networks");
}

#[test]
fn esp_two_encrypted_networks_and_a_cleartext_one_manual_keys() {
    let key = |vni: Vni, from: usize| {
        format!("0x{}", (0..20).map(|b| format!("{:02x}", b * 3 + vni.get() as usize + from * 101)).collect::<String>())
    };
    let spi = |vni: Vni, from: usize| 0x1000 + vni.get() * 16 + from as u32;
    let sa = |vni: Vni, from: usize| ManualSa::parse(&format!("{:#x}", spi(vni, from)), "rfc4106(gcm(aes))", &key(vni, from), 128).unwrap();
    let mut sim = pair(|i| {
        let mut esp = EspTunnels::new(None, 1, Suite::Aes128Gcm, SessionConfig::default());
        for vni in [OVERLAY, ROUTED] {
            let out = sa(vni, i).outbound(false).unwrap().resume_after(0);
            esp.add_manual(std::time::Instant::now(), vni, ul(1 - i), out, sa(vni, 1 - i).inbound(false, 64).unwrap());
        }
        // What the daemon does with the state file: persist, then confirm.
        for r in esp.reservations_wanted() {
            esp.confirm_reservation(&r);
        }
        esp
    });
    let (overlay, routed) = exchange_on_all_three(&mut sim);
    assert_eq!(overlay, HashSet::from([spi(OVERLAY, 0), spi(OVERLAY, 1)]), "the overlay's configured SPIs");
    assert_eq!(routed, HashSet::from([spi(ROUTED, 0), spi(ROUTED, 1)]), "the routed network's configured SPIs");

    // A packet sealed for the overlay but replayed is refused, and a packet with another
    // network's inner type (an Ethernet frame under the routed network's SPI) is never delivered.
    sim.tap_send(0, 0, &ethernet_frame(mac(1, 1), mac(0, 1), 0x0800, b"once"));
    let d = sim.take_underlay().pop().unwrap();
    assert_eq!(sim.take_tap(1, 0).len(), 1);
    sim.inject_esp(ul(0), 1, &d.payload);
    for port in 0..3 {
        assert!(sim.take_tap(1, port).is_empty(), "a replay reaches no network");
    }
}

#[test]
fn esp_routed_packets_from_a_subnet_the_peer_does_not_own_are_dropped() {
    let key = |i: usize| HostKey::from_private_bytes(&[i as u8 + 61; 32]).unwrap();
    let public: Vec<[u8; 32]> = (0..2).map(|i| key(i).public_key()).collect();
    let mut sim = pair(|i| EspTunnels::new(Some(key(i)), 200 + i as u64, Suite::Aes256Gcm, SessionConfig::default()));
    for i in 0..2 {
        let now = sim.now;
        let k = 1 - i;
        sim.hosts[i].node_mut().apply(now, ControlUpdate::EspKey { underlay: ul(k), public_key: public[k], epoch: 200 + k as u64 });
    }
    exchange_on_all_three(&mut sim);
    // Host 0 sends, over the encrypted routed network, a packet whose source lies in host 1's
    // own subnet: host 1 must not route it to its container as if it came from a neighbour.
    let mut spoofed = Vec::new();
    etherparse::PacketBuilder::ethernet2(mac(0, 2), default_gateway_mac(ROUTED).0)
        .ipv4(Ipv4Addr::new(198, 19, 2, 99).octets(), container_ip(1).octets(), 64)
        .udp(1, 2)
        .write(&mut spoofed, b"spoofed")
        .unwrap();
    sim.tap_send(0, 1, &spoofed);
    let crossed = sim.take_underlay();
    assert!(crossed.iter().any(|d| d.tunnel == Tunnel::Esp), "host 0 routes it into the tunnel: {crossed:?}");
    assert!(sim.take_tap(1, 1).iter().all(|f| !contains(f, b"spoofed")), "the spoofed packet is not delivered");
    let drops = sim.hosts[1].switch().counters().drops_by_label();
    assert_eq!(drops.get("routed_source_spoofed").copied(), Some(1), "{drops:?}");
}
