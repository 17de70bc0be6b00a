//! Dual-stack routed and host-subnet networks: `subnet6`/`gateway6`, peers' `subnet6`/`address6`,
//! `[underlay] address6` and `[gossip] cluster_cidr6`, accepted and refused with line, key and reason.

use std::net::Ipv6Addr;

use super::*;

const ROUTED: &str = r#"[underlay]
address = "198.18.0.1"

[[network]]
vni = 5
mode = "routed"
tap = "vxs5"
subnet = "10.42.1.0/24"
subnet6 = "fd00:42:0:1::/64"
peers = [{ address = "198.18.0.2", subnet = "10.42.2.0/24", subnet6 = "fd00:42:0:2::/64" }, { address = "198.18.0.3", subnet = "10.42.3.0/24" }]
"#;

const HOST_SUBNET: &str = r#"[underlay]
address = "198.18.0.1"
address6 = "fd00:18::1"

[[network]]
vni = 6
mode = "host-subnet"
bridge = "br0"
subnet = "10.43.1.0/24"
subnet6 = "fd00:43:0:1::/64"
peers = [{ address = "198.18.0.2", address6 = "fd00:18::2", subnet = "10.43.2.0/24", subnet6 = "fd00:43:0:2::/64" }]
"#;

fn rejected(text: &str) -> ConfigError {
    Config::parse(text).expect_err("must be rejected")
}

#[test]
fn a_dual_stack_routed_network_and_its_routes() {
    let c = Config::parse(ROUTED).unwrap();
    let n = &c.networks[0];
    let h6 = n.host_subnet6.unwrap();
    assert_eq!(h6.subnet.to_string(), "fd00:42:0:1::/64");
    assert_eq!(h6.gateway, "fd00:42:0:1::1".parse::<Ipv6Addr>().unwrap(), "gateway6 defaults to the first address");
    assert_eq!(n.peers[0].subnet6, Some("fd00:42:0:2::/64".parse().unwrap()));
    assert_eq!(n.peers[1].subnet6, None, "a peer without an IPv6 subnet is fine");
    let routes: Vec<_> = n.static_updates().into_iter().filter(|u| matches!(u, ControlUpdate::RouteAdd { .. })).collect();
    let via: IpAddr = "198.18.0.2".parse().unwrap();
    assert_eq!(
        routes[1],
        ControlUpdate::RouteAdd { vni: n.vni, subnet: "fd00:42:0:2::/64".parse().unwrap(), via, next_hop: None },
        "routed mode tunnels IPv6 to the peer's IPv4 underlay; no IPv6 next hop known"
    );
    assert_eq!(routes.len(), 3);
    assert_eq!(c.underlay.address6, None);
    // A configured gateway6, and host bits in subnet6 are dropped.
    let g =
        Config::parse(&ROUTED.replace("subnet6 = \"fd00:42:0:1::/64\"", "subnet6 = \"fd00:42:0:1::5/64\"\ngateway6 = \"fd00:42:0:1::fe\""))
            .unwrap();
    let h6 = g.networks[0].host_subnet6.unwrap();
    assert_eq!((h6.subnet.to_string(), h6.gateway.to_string()), ("fd00:42:0:1::/64".into(), "fd00:42:0:1::fe".into()));
    // IPv4-only routed networks are unchanged.
    let v4 =
        Config::parse(&ROUTED.replace("subnet6 = \"fd00:42:0:1::/64\"\n", "").replace(", subnet6 = \"fd00:42:0:2::/64\"", "")).unwrap();
    assert_eq!(v4.networks[0].host_subnet6, None);
}

#[test]
fn host_subnet_ipv6_routes_go_via_address6() {
    let c = Config::parse(HOST_SUBNET).unwrap();
    assert_eq!(c.underlay.address6, Some("fd00:18::1".parse().unwrap()));
    assert_eq!(c.underlay.ipv6(), c.underlay.address6);
    let n = &c.networks[0];
    assert_eq!(n.peers[0].address6, Some("fd00:18::2".parse().unwrap()));
    assert!(n.static_updates().contains(&ControlUpdate::RouteAdd {
        vni: n.vni,
        subnet: "fd00:43:0:2::/64".parse().unwrap(),
        via: "198.18.0.2".parse().unwrap(),
        next_hop: Some("fd00:18::2".parse().unwrap()),
    }));
    assert!(n.static_updates().contains(&ControlUpdate::RouteAdd {
        vni: n.vni,
        subnet: "10.43.2.0/24".parse().unwrap(),
        via: "198.18.0.2".parse().unwrap(),
        next_hop: Some("198.18.0.2".parse().unwrap()),
    }));
}

#[test]
fn bad_dual_stack_keys_are_rejected_with_line_key_and_reason() {
    let cases: Vec<(String, &str, usize, &str)> = vec![
        (ROUTED.replace("fd00:42:0:1::/64", "fd00:42::/40"), "network[0].subnet6", 9, "/48 to /126"),
        (ROUTED.replace("fd00:42:0:1::/64", "fd00:42::/127"), "network[0].subnet6", 9, "/48 to /126"),
        (ROUTED.replace("fd00:42:0:1::/64", "fe80::/64"), "network[0].subnet6", 9, "link-local"),
        (ROUTED.replace("fd00:42:0:1::/64", "ff02::/64"), "network[0].subnet6", 9, "multicast"),
        (ROUTED.replace("fd00:42:0:1::/64", "10.42.9.0/24"), "", 9, "invalid IP address syntax"),
        (
            ROUTED.replace("subnet6 = \"fd00:42:0:1::/64\"", "subnet6 = \"fd00:42:0:1::/64\"\ngateway6 = \"fd00:42:0:9::1\""),
            "network[0].gateway6",
            10,
            "not a host address",
        ),
        (
            ROUTED.replace("subnet6 = \"fd00:42:0:1::/64\"", "subnet6 = \"fd00:42:0:1::/64\"\ngateway6 = \"fd00:42:0:1::\""),
            "network[0].gateway6",
            10,
            "Subnet-Router anycast",
        ),
        (ROUTED.replace("subnet6 = \"fd00:42:0:1::/64\"", "gateway6 = \"fd00:42:0:1::1\""), "network[0].gateway6", 9, "needs subnet6"),
        (
            ROUTED.replace("subnet6 = \"fd00:42:0:2::/64\"", "subnet6 = \"fd00:42:0:1:8000::/80\""),
            "network[0].peers",
            10,
            "overlaps fd00:42:0:1::/64",
        ),
        (
            ROUTED.replace("subnet = \"10.42.3.0/24\" }", "subnet = \"10.42.3.0/24\", subnet6 = \"fd00:42:0:2::/96\" }"),
            "network[0].peers",
            10,
            "overlaps fd00:42:0:2::/64",
        ),
        (ROUTED.replace("subnet6 = \"fd00:42:0:2::/64\"", "subnet6 = \"fd00:42::/32\""), "network[0].peers", 10, "/48 to /126"),
        (
            ROUTED.replace("mode = \"routed\"", "mode = \"overlay\"").replace("subnet = \"10.42.1.0/24\"\n", ""),
            "network[0].subnet6",
            8,
            "only routed and host-subnet",
        ),
        (HOST_SUBNET.replace("address6 = \"fd00:18::2\", ", ""), "network[0].peers", 11, "give it"),
        (HOST_SUBNET.replace("address6 = \"fd00:18::1\"\n", ""), "network[0].subnet6", 9, "set [underlay] address6"),
        (HOST_SUBNET.replace("address6 = \"fd00:18::1\"", "address6 = \"fe80::1\""), "underlay.address6", 3, "link-local"),
        (HOST_SUBNET.replace("address6 = \"fd00:18::1\"", "address6 = \"ff02::1\""), "underlay.address6", 3, "not a unicast"),
        (HOST_SUBNET.replace("address6 = \"fd00:18::2\"", "address6 = \"fd00:18::1\""), "network[0].peers", 11, "this host's own"),
        (ROUTED.replace("{ address = \"198.18.0.3\"", "{ address = \"198.18.0.3\", address6 = \"fd00:18::3\""), "", 0, ""),
    ];
    for (text, key, line, reason) in cases {
        if key.is_empty() && reason.is_empty() {
            assert!(Config::parse(&text).is_ok(), "a routed peer may name its address6: {text}");
            continue;
        }
        let e = rejected(&text);
        assert!(e.reason.contains(reason), "{text}\n{e}");
        if !key.is_empty() {
            assert_eq!((e.key.as_str(), e.line), (key, Some(line)), "{text}\n{e}");
        }
    }
    // address6 next to an IPv6 underlay is refused: the address is IPv6 already.
    let v6 = "[underlay]\naddress = \"2001:db8:18::1\"\naddress6 = \"2001:db8:18::9\"\n\n[[network]]\nvni = 1\ntap = \"vxs1\"\n";
    let e = rejected(v6);
    assert_eq!((e.key.as_str(), e.line), ("underlay.address6", Some(3)), "{e}");
    assert!(e.reason.contains("IPv6 already"), "{e}");
}

#[test]
fn subnet6_must_lie_inside_the_gossip_cluster_cidr6() {
    let gossip = "\n[gossip]\ncluster = \"c\"\nkey_file = \"/k\"\ncluster_cidr = \"10.42.0.0/16\"\ncluster_cidr6 = \"fd00:42::/48\"\n";
    let c = Config::parse(&format!("{ROUTED}{gossip}")).unwrap();
    let g = c.gossip.unwrap().config;
    assert_eq!(g.cluster_cidr6, Some("fd00:42::/48".parse().unwrap()));
    let e = rejected(&format!("{ROUTED}{}", gossip.replace("fd00:42::/48", "fd00:99::/48")));
    assert_eq!((e.key.as_str(), e.line), ("gossip.cluster_cidr6", Some(16)), "{e}");
    assert!(e.reason.contains("subnet6 fd00:42:0:1::/64 lies outside"), "{e}");
    let e = rejected(&format!("{ROUTED}{}", gossip.replace("fd00:42::/48", "fd00:42::1/48")));
    assert_eq!((e.key.as_str(), e.line), ("gossip.cluster_cidr6", Some(16)), "{e}");
    assert!(e.reason.contains("host bits"), "{e}");
    let e = rejected(&format!("{ROUTED}{}", gossip.replace("fd00:42::/48", "10.42.0.0/16")));
    assert!(e.reason.contains("not an IPv6 prefix"), "{e}");
    // The IPv4 key's errors still point at the IPv4 key's line, not at cluster_cidr6.
    let e = rejected(&format!("{ROUTED}{}", gossip.replace("10.42.0.0/16", "10.9.0.0/16")));
    assert_eq!((e.key.as_str(), e.line), ("gossip.cluster_cidr", Some(15)), "{e}");
}
