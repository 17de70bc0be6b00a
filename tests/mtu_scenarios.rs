//! The default TAP MTU against the whole switch on the simulator: for every mode (overlay,
//! routed) and tunnel (VXLAN, each ESP suite), a configuration with the default MTU is parsed,
//! the largest frame that MTU allows goes through the real switch (encapsulation or sealing
//! included), and the outer packet must fit the underlay MTU and reach the peer intact; a frame
//! one byte longer must be dropped and counted by tunnel, never handed to the underlay.
//! Virtual time; no root needed.

use std::net::Ipv4Addr;

use etherparse::PacketBuilder;
use vxswitch::config::Config;
use vxswitch::control::ControlUpdate;
use vxswitch::dataplane::{default_gateway_mac, DropReason, EspTunnels, Tunnel};
use vxswitch::ipsec::{HostKey, SessionConfig, Suite};
use vxswitch::node::switch_config;
use vxswitch::sim::Sim;
use vxswitch::wire::vxlan::Vni;

const VNI: Vni = Vni::new_const(1042);
/// Outer IPv4 + UDP headers around the datagram the simulator logs.
const OUTER: usize = 28;

fn ul(i: usize) -> std::net::IpAddr {
    Ipv4Addr::new(198, 18, 0, i as u8 + 1).into()
}

/// Host `i`'s configuration: underlay MTU `mtu`, one network in `mode`, encrypted with `suite`.
fn config(i: usize, underlay_mtu: u32, routed: bool, suite: Option<Suite>) -> Config {
    let k = 1 - i;
    let (section, net_esp, peer_key) = match suite {
        Some(s) => (
            format!("[esp]\nsuite = \"{}\"\n", vxswitch::dataplane::mtu::suite_name(s)),
            "encryption = \"esp\"\n",
            format!(", public_key = \"{}\"", "11".repeat(32)),
        ),
        None => (String::new(), "", String::new()),
    };
    let (mode, peer) = if routed {
        let peer = format!("{{ address = \"{}\", subnet = \"198.19.{}.0/24\"{peer_key} }}", ul(k), k + 1);
        (format!("mode = \"routed\"\nsubnet = \"198.19.{}.0/24\"\n", i + 1), peer)
    } else {
        (String::new(), format!("{{ address = \"{}\"{peer_key} }}", ul(k)))
    };
    let text = format!(
        "[underlay]\naddress = \"{}\"\nmtu = {underlay_mtu}\n\n{section}\n[[network]]\nvni = {VNI}\ntap = \"vxs{VNI}\"\n{mode}{net_esp}peers = [{peer}]\n",
        ul(i)
    );
    Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Two hosts built from their configurations, with ESP keys exchanged when encrypted.
fn pair(underlay_mtu: u32, routed: bool, suite: Option<Suite>) -> (Sim, Vec<Config>) {
    let configs: Vec<Config> = (0..2).map(|i| config(i, underlay_mtu, routed, suite)).collect();
    let mut sim = Sim::new(configs.iter().enumerate().map(|(i, c)| (ul(i), switch_config(c))).collect());
    for (i, c) in configs.iter().enumerate() {
        for u in c.networks[0].static_updates() {
            let now = sim.now;
            sim.hosts[i].node_mut().apply(now, u);
        }
    }
    if let Some(suite) = suite {
        let keys: Vec<HostKey> = (0..2).map(|_| HostKey::generate().unwrap()).collect();
        let public: Vec<[u8; 32]> = keys.iter().map(HostKey::public_key).collect();
        for (i, key) in keys.into_iter().enumerate() {
            sim.hosts[i].switch_mut().set_esp(EspTunnels::new(Some(key), 100 + i as u64, suite, SessionConfig::default()));
        }
        for i in 0..2 {
            let (k, now) = (1 - i, sim.now);
            sim.hosts[i].node_mut().apply(now, ControlUpdate::EspKey { underlay: ul(k), public_key: public[k], epoch: 100 + k as u64 });
        }
    }
    (sim, configs)
}

/// A TAP frame of exactly `len` bytes from host 0's container toward host 1.
fn frame(len: usize, routed: bool) -> Vec<u8> {
    let payload = vec![0x5a; len - 14 - 20 - 8];
    let mut f = Vec::new();
    let (src, dst) = ([2, 0, 0, 0, 1, 10], if routed { default_gateway_mac(VNI).0 } else { [2, 0, 0, 0, 2, 10] });
    let (sip, dip) = if routed { ([198, 19, 1, 10], [198, 19, 2, 10]) } else { ([192, 0, 2, 11], [192, 0, 2, 21]) };
    PacketBuilder::ethernet2(src, dst).ipv4(sip, dip, 64).udp(5000, 6000).write(&mut f, &payload).unwrap();
    f
}

fn check(underlay_mtu: u32, routed: bool, suite: Option<Suite>) {
    let what = format!("underlay {underlay_mtu}, routed {routed}, {suite:?}");
    let (mut sim, configs) = pair(underlay_mtu, routed, suite);
    let net = &configs[0].networks[0];
    let max = net.mtu as usize + 14;
    assert_eq!(max, net.max_frame_len(underlay_mtu), "{what}");

    sim.tap_send(0, 0, &frame(max, routed));
    let sent = sim.take_underlay();
    let carried: Vec<_> = sent.iter().filter(|d| d.from == ul(0)).collect();
    assert_eq!(carried.len(), 1, "{what}: the largest frame crosses: {:?}", sim.hosts[0].switch().counters().drops_by_label());
    let outer = carried[0].payload.len() + OUTER;
    assert!(outer <= underlay_mtu as usize, "{what}: outer packet {outer} > {underlay_mtu}");
    assert!(outer + 4 > underlay_mtu as usize, "{what}: the MTU wastes {} bytes", underlay_mtu as usize - outer);
    let tunnel = if suite.is_some() { Tunnel::Esp } else { Tunnel::Vxlan };
    assert_eq!(carried[0].tunnel, tunnel);
    if !routed {
        assert_eq!(sim.take_tap(1, 0), vec![frame(max, false)], "{what}: the peer got the exact frame");
    }
    assert_eq!(sim.hosts[1].switch().counters().total_drops(), 0, "{what}: {:?}", sim.hosts[1].switch().counters().drops_by_label());

    sim.tap_send(0, 0, &frame(max + 1, routed));
    assert!(sim.take_underlay().iter().all(|d| d.from != ul(0)), "{what}: one byte more never reaches the underlay");
    let reason = if suite.is_some() { DropReason::TapOversizeEsp } else { DropReason::TapOversizeVxlan };
    assert_eq!(sim.hosts[0].switch().counters().drops(reason), 1, "{what}: counted as {}", reason.label());
}

#[test]
fn default_mtu_frames_fit_the_underlay_in_every_mode_and_suite() {
    for underlay_mtu in [1500, 1501, 1502, 1503, 1280, 9000] {
        for routed in [false, true] {
            check(underlay_mtu, routed, None);
            for suite in [Suite::Aes128Gcm, Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
                check(underlay_mtu, routed, Some(suite));
            }
        }
    }
}

#[test]
fn default_mtus_at_1500() {
    let mtu = |routed, suite| config(0, 1500, routed, suite).networks[0].mtu;
    assert_eq!((mtu(false, None), mtu(true, None)), (1450, 1450));
    for suite in [Suite::Aes128Gcm, Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
        assert_eq!((mtu(false, Some(suite)), mtu(true, Some(suite))), (1424, 1438), "{suite:?}");
    }
}

#[test]
fn check_prints_each_network_mtu_and_its_breakdown() {
    let dir = std::env::temp_dir().join(format!("vxs-mtu-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("esp.toml");
    let text = format!(
        "[underlay]\naddress = \"198.18.0.1\"\n\n[[network]]\nvni = 1\ntap = \"a\"\nencryption = \"esp\"\npeers = [{{ address = \"198.18.0.2\", public_key = \"{}\" }}]\n\n[[network]]\nvni = 2\ntap = \"b\"\nmtu = 1400\n",
        "11".repeat(32)
    );
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vxswitch")).args(["check", "--config"]).arg(&path).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[1],
        "network 1 (overlay) a: mtu 1424 (default); largest mtu 1424 = underlay 1500 - 20 ipv4 - 8 udp - 8 esp - 8 iv - 14 inner ethernet - 2 esp trailer - 16 icv (esp aes-256-gcm)"
    );
    assert_eq!(lines[2], "network 2 (overlay) b: mtu 1400 (configured); largest mtu 1450 = underlay 1500 - 20 ipv4 - 8 udp - 8 vxlan - 14 inner ethernet (vxlan)");
}
