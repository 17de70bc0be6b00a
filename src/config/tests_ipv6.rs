//! Configurations over an IPv6 underlay: what is accepted, the MTU it gives, and the refusals
//! (mixed families, host-subnet, gossip seeds of the other family) with their line, key and reason.

use std::net::{IpAddr, Ipv6Addr};

use super::*;

const V6: &str = r#"
[underlay]
address = "2001:db8:18::1"

[[network]]
vni = 1042
tap = "vxs1042"
peers = ["2001:db8:18::2", { address = "2001:db8:18::3" }]

[[network]]
vni = 7
tap = "vxs7"
encryption = "esp"
peers = [{ address = "2001:db8:18::2", public_key = "0101010101010101010101010101010101010101010101010101010101010101" }]
"#;

fn v6(last: u16) -> IpAddr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x18, 0, 0, 0, 0, last).into()
}

fn rejected(text: &str) -> ConfigError {
    Config::parse(text).expect_err("must be rejected")
}

#[test]
fn an_ipv6_underlay_with_ipv6_peers_and_its_mtus() {
    let c = Config::parse(V6).unwrap();
    assert_eq!(c.underlay.address, v6(1));
    assert_eq!(c.underlay.max_udp_payload(), 1452, "1500 - 40 IPv6 - 8 UDP");
    let v4 = V6.replace("2001:db8:18::1", "198.18.0.1").replace("2001:db8:18::2", "198.18.0.2").replace("2001:db8:18::3", "198.18.0.3");
    assert_eq!(Config::parse(&v4).unwrap().underlay.max_udp_payload(), 1472);
    let peers: Vec<IpAddr> = c.networks[0].peers.iter().map(|p| p.address).collect();
    assert_eq!(peers, [v6(2), v6(3)]);
    assert_eq!(c.networks[0].outer, OuterIp::V6);
    assert_eq!(c.networks[0].mtu, 1430, "VXLAN over IPv6: 70 bytes");
    assert_eq!(c.networks[0].max_frame_len(1500), 1444);
    assert!(c.networks[0]
        .mtu_line(1500)
        .ends_with("largest mtu 1430 = underlay 1500 - 40 ipv6 - 8 udp - 8 vxlan - 14 inner ethernet (vxlan)"));
    assert_eq!(c.networks[1].mtu, 1404, "ESP overlay over IPv6: 20 bytes less than over IPv4 (1424)");
    assert_eq!(
        c.networks[0].static_updates()[0],
        ControlUpdate::PeerUp { vni: Vni::new_const(1042), peer: PeerInfo { underlay: v6(2), vtep_mac: None } }
    );
    let e = rejected(&V6.replace("tap = \"vxs1042\"", "tap = \"vxs1042\"\nmtu = 1431"));
    assert_eq!(e.key, "network[0].mtu");
    assert!(e.reason.contains("- 40 ipv6"), "{e}");
}

#[test]
fn mixing_families_in_one_underlay_is_refused_with_line_and_key() {
    let e = rejected(&V6.replace("\"2001:db8:18::2\", {", "\"198.18.0.2\", {"));
    assert_eq!((e.key.as_str(), e.line), ("network[0].peers", Some(8)));
    assert!(e.reason.contains("one underlay carries one family"), "{e}");
    let e = rejected(&V6.replace("address = \"2001:db8:18::1\"", "address = \"198.18.0.1\""));
    assert_eq!(e.key, "network[0].peers");
    assert!(e.reason.contains("peer 2001:db8:18::2"), "{e}");
}

#[test]
fn bad_ipv6_addresses_are_refused_with_line_and_key() {
    let e = rejected(&V6.replace("address = \"2001:db8:18::1\"", "address = \"ff02::1\""));
    assert_eq!((e.key.as_str(), e.line), ("underlay.address", Some(3)));
    assert!(e.reason.contains("not a unicast address"), "{e}");
    let e = rejected(&V6.replace("address = \"2001:db8:18::1\"", "address = \"::\""));
    assert_eq!(e.key, "underlay.address");
    let e = rejected(&V6.replace("\"2001:db8:18::2\", {", "\"ff05::2\", {"));
    assert_eq!(e.key, "network[0].peers");
    assert!(e.reason.contains("not a unicast address"), "{e}");
    let e = rejected(&V6.replace("\"2001:db8:18::2\", {", "\"2001:db8:18::1\", {"));
    assert!(e.reason.contains("own underlay address"), "{e}");
    let e = rejected(&V6.replace("\"2001:db8:18::2\", {", "\"2001:db8:18::3\", {"));
    assert!(e.reason.contains("listed twice"), "{e}");
    let e = rejected(&V6.replace("\"2001:db8:18::2\", {", "\"2001:db8:18::g\", {"));
    assert!(e.line.is_some(), "a malformed address names its line: {e}");
}

#[test]
fn host_subnet_needs_an_ipv4_underlay_and_gossip_runs_over_ipv6() {
    let hs = "[underlay]\naddress = \"2001:db8:18::1\"\n\n[[network]]\nvni = 5\nmode = \"host-subnet\"\nsubnet = \"10.42.1.0/24\"\n";
    let e = rejected(hs);
    assert_eq!((e.key.as_str(), e.line), ("network[0].mode", Some(5)));
    assert!(e.reason.contains("is IPv6"), "{e}");
    let gossip = "[underlay]\naddress = \"2001:db8:18::1\"\n\n[[network]]\nvni = 5\nmode = \"routed\"\ntap = \"vxs5\"\nsubnet = \"10.42.1.0/24\"\n\n[gossip]\ncluster = \"c\"\nkey_file = \"/k\"\nseeds = [\"2001:db8:18::2\", \"[2001:db8:18::3]:4800\"]\n";
    let g = Config::parse(gossip).unwrap().gossip.unwrap();
    assert_eq!(g.config.listen, "[2001:db8:18::1]:4790".parse().unwrap(), "gossip listens on the IPv6 underlay address");
    assert_eq!(g.config.seeds, ["[2001:db8:18::2]:4790".parse().unwrap(), "[2001:db8:18::3]:4800".parse().unwrap()]);
    let e = rejected(&gossip.replace("\"2001:db8:18::2\"", "\"198.18.0.2\""));
    assert_eq!((e.key.as_str(), e.line), ("gossip.seeds", Some(10)));
    assert!(e.reason.contains("other family"), "{e}");
    // Routed networks with static IPv6 peers are fine.
    let routed = "[underlay]\naddress = \"2001:db8:18::1\"\n\n[[network]]\nvni = 5\nmode = \"routed\"\ntap = \"vxs5\"\nsubnet = \"10.42.1.0/24\"\npeers = [{ address = \"2001:db8:18::2\", subnet = \"10.42.2.0/24\" }]\n";
    let c = Config::parse(routed).unwrap();
    assert_eq!(c.networks[0].mtu, 1430);
    assert!(c.networks[0].static_updates().contains(&ControlUpdate::RouteAdd {
        vni: Vni::new_const(5),
        subnet: "10.42.2.0/24".parse().unwrap(),
        via: v6(2),
        next_hop: None,
    }));
}
