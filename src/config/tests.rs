use super::*;

const GOOD: &str = r#"
control_socket = "/run/vxswitch/a.sock"

[underlay]
address = "198.18.0.1"

[fdb]
ageing_secs = 120

[[network]]
vni = 1042
tap = "vxs1042"
bridge = "br0"
address = "192.0.2.1/24"
peers = ["198.18.0.2", "198.18.0.3"]

[[network]]
vni = 7
tap = "vxs7"
mtu = 1400
"#;

#[test]
fn parses_a_full_file_with_defaults() {
    let c = Config::parse(GOOD).unwrap();
    assert_eq!(
        c.underlay,
        Underlay {
            address: Ipv4Addr::new(198, 18, 0, 1).into(),
            address6: None,
            port: 4789,
            mtu: 1500,
            offload: None,
            udp_gso: true,
            udp_gro: true,
            busy_poll: Duration::from_micros(50),
            priority_boost: 0,
            workers: 2,
        }
    );
    assert_eq!(c.fdb_ageing, Duration::from_secs(120));
    assert_eq!(c.networks.len(), 2);
    assert_eq!(c.networks[0].mtu, 1450, "underlay MTU minus 50 bytes of VXLAN overhead");
    assert_eq!(c.networks[0].max_frame_len(1500), 1464);
    let peers: Vec<std::net::IpAddr> = c.networks[0].peers.iter().map(|p| p.address).collect();
    assert_eq!(peers, vec![Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 3)]);
    assert_eq!(c.networks[0].mode, Mode::Overlay);
    assert_eq!(c.networks[1].mtu, 1400);
    assert_eq!(c.networks[1].bridge, None);
}

fn rejected(text: &str) -> ConfigError {
    Config::parse(text).expect_err("must be rejected")
}

#[test]
fn rejects_out_of_range_vni_with_line_and_key() {
    let e = rejected(&GOOD.replace("vni = 7", "vni = 16777216"));
    assert_eq!(e.line, Some(18));
    assert_eq!(e.key, "network[1].vni");
    assert!(e.to_string().starts_with("18: network[1].vni: 16777216 is out of range"), "{e}");
}

#[test]
fn rejects_mtu_that_would_fragment_the_underlay() {
    let e = rejected(&GOOD.replace("mtu = 1400", "mtu = 1451"));
    assert_eq!(e.key, "network[1].mtu");
    assert!(e.reason.contains("at most 1450"), "{e}");
}

#[test]
fn rejects_unknown_keys_and_bad_addresses_with_lines() {
    let e = rejected(&GOOD.replace("bridge = \"br0\"", "brige = \"br0\""));
    assert_eq!(e.line, Some(13));
    assert!(e.reason.contains("unknown field `brige`"), "{e}");
    let e = rejected(&GOOD.replace("\"198.18.0.3\"", "\"198.18.0.300\""));
    assert_eq!(e.line, Some(15));
}

#[test]
fn rejects_duplicates_and_self_peering() {
    assert!(rejected(&GOOD.replace("vni = 7", "vni = 1042")).reason.contains("configured twice"));
    assert!(rejected(&GOOD.replace("tap = \"vxs7\"", "tap = \"vxs1042\"")).reason.contains("used twice"));
    assert!(rejected(&GOOD.replace("198.18.0.3", "198.18.0.2")).reason.contains("listed twice"));
    assert!(rejected(&GOOD.replace("198.18.0.3", "198.18.0.1")).reason.contains("own underlay address"));
    assert!(rejected(&GOOD.replace("vxs7", "a-much-too-long-name")).reason.contains("not a valid interface name"));
}

#[test]
fn requires_a_network() {
    let e = rejected("[underlay]\naddress = \"198.18.0.1\"\n");
    assert_eq!(e.key, "network");
}

const ROUTED: &str = r#"
[underlay]
address = "198.18.0.1"

[[network]]
vni = 42
mode = "routed"
tap = "vxs42"
bridge = "br0"
subnet = "198.19.1.0/24"
range_start = "198.19.1.10"
range_end = "198.19.1.200"
peers = [{ address = "198.18.0.2", subnet = "198.19.2.0/24" }, { address = "198.18.0.3", subnet = "198.19.3.0/24" }]

[[network.arp]]
ip = "198.19.2.10"
mac = "02:00:00:00:02:0a"
"#;

#[test]
fn routed_network_with_defaults_and_static_updates() {
    let c = Config::parse(ROUTED).unwrap();
    let n = &c.networks[0];
    assert_eq!(n.mode, Mode::Routed);
    let hs = n.host_subnet.as_ref().unwrap();
    assert_eq!(hs.gateway, Ipv4Addr::new(198, 19, 1, 1), "gateway defaults to the first address");
    assert_eq!(hs.range, Some((Ipv4Addr::new(198, 19, 1, 10), Ipv4Addr::new(198, 19, 1, 200))));
    assert_eq!(n.gateway_mac, crate::dataplane::default_gateway_mac(Vni::new_const(42)));
    let updates = n.static_updates();
    assert_eq!(updates.len(), 5, "2 peers up, 2 routes, 1 binding: {updates:?}");
    assert!(updates.contains(&ControlUpdate::RouteAdd {
        vni: Vni::new_const(42),
        subnet: "198.19.3.0/24".parse().unwrap(),
        via: Ipv4Addr::new(198, 18, 0, 3).into(),
        next_hop: Some(Ipv4Addr::new(198, 18, 0, 3).into()),
    }));
}

#[test]
fn routed_network_rejects_inconsistent_subnets() {
    let e = rejected(&ROUTED.replace("198.19.3.0/24", "198.19.0.0/16"));
    assert!(e.reason.contains("overlaps"), "{e}");
    let e = rejected(&ROUTED.replace("198.19.1.10", "198.19.1.1"));
    assert!(e.reason.contains("contains the gateway"), "{e}");
    let e = rejected(&ROUTED.replace(", subnet = \"198.19.2.0/24\"", ""));
    assert!(e.reason.contains("need the subnet each peer owns"), "{e}");
    let e = rejected(&ROUTED.replace("mode = \"routed\"", "mode = \"bridged\""));
    assert_eq!(e.key, "network[0].mode");
    let e = rejected(&ROUTED.replace("mode = \"routed\"", "mode = \"host-subnet\""));
    assert!(e.reason.contains("no TAP"), "{e}");
    let e = rejected(&ROUTED.replace("02:00:00:00:02:0a", "01:00:5e:00:00:01"));
    assert_eq!(e.key, "network[0].arp");
    let host_subnet = ROUTED.replace("mode = \"routed\"", "mode = \"host-subnet\"").replace("tap = \"vxs42\"\n", "");
    assert_eq!(Config::parse(&host_subnet).unwrap().networks[0].mode, Mode::HostSubnet);
}

#[test]
fn offload_switches_parse() {
    let c = Config::parse(
        &GOOD.replace("address = \"198.18.0.1\"\n", "address = \"198.18.0.1\"\noffload = false\nudp_gso = false\nudp_gro = true\n"),
    )
    .unwrap();
    assert_eq!((c.underlay.offload, c.underlay.udp_gso, c.underlay.udp_gro), (Some(false), false, true));
    let c = Config::parse(&GOOD.replace("address = \"198.18.0.1\"\n", "address = \"198.18.0.1\"\noffload = true\n")).unwrap();
    assert_eq!(c.underlay.offload, Some(true));
    assert!(Config::parse(&GOOD.replace("address = \"198.18.0.1\"\n", "address = \"198.18.0.1\"\noffload = \"yes\"\n")).is_err());
}

#[test]
fn busy_poll_window_parses_and_is_range_checked() {
    assert_eq!(Config::parse(GOOD).unwrap().underlay.busy_poll, Duration::from_micros(DEFAULT_BUSY_POLL_US));
    let with = |v: &str| GOOD.replace("address = \"198.18.0.1\"\n", &format!("address = \"198.18.0.1\"\nbusy_poll_us = {v}\n"));
    assert_eq!(Config::parse(&with("0")).unwrap().underlay.busy_poll, Duration::ZERO);
    assert_eq!(Config::parse(&with("200")).unwrap().underlay.busy_poll, Duration::from_micros(200));
    let e = rejected(&with("10001"));
    assert_eq!(e.key, "underlay.busy_poll_us");
    assert!(e.line.is_some() && e.reason.contains("out of range"), "{e}");
}

#[test]
fn workers_parse_and_are_range_checked() {
    assert_eq!(Config::parse(GOOD).unwrap().underlay.workers, DEFAULT_WORKERS as usize);
    let with = |v: &str| GOOD.replace("address = \"198.18.0.1\"\n", &format!("address = \"198.18.0.1\"\nworkers = {v}\n"));
    assert_eq!(Config::parse(&with("1")).unwrap().underlay.workers, 1);
    assert_eq!(Config::parse(&with("2")).unwrap().underlay.workers, 2);
    for bad in ["0", "3"] {
        let e = rejected(&with(bad));
        assert_eq!(e.key, "underlay.workers");
        assert!(e.line.is_some() && e.reason.contains("out of range"), "{bad}: {e}");
    }
}

#[test]
fn priority_boost_parses_and_is_range_checked() {
    assert_eq!(Config::parse(GOOD).unwrap().underlay.priority_boost, DEFAULT_PRIORITY_BOOST as u32);
    let with = |v: &str| GOOD.replace("address = \"198.18.0.1\"\n", &format!("address = \"198.18.0.1\"\npriority_boost = {v}\n"));
    assert_eq!(Config::parse(&with("10")).unwrap().underlay.priority_boost, 10);
    assert_eq!(Config::parse(&with("20")).unwrap().underlay.priority_boost, 20);
    for bad in ["21", "99"] {
        let e = rejected(&with(bad));
        assert_eq!(e.key, "underlay.priority_boost", "{bad}");
        assert!(e.line.is_some(), "{bad}: {e}");
    }
    let e = rejected(&with("21"));
    assert!(e.line.is_some() && e.reason.contains("out of range"), "{e}");
}

#[test]
fn mode_names_round_trip_and_print_as_configured() {
    for mode in Mode::ALL {
        assert_eq!(Mode::from_name(mode.name()), Some(mode));
        assert_eq!(mode.to_string(), mode.name());
        assert_eq!(serde_json::to_string(&mode).unwrap(), format!("\"{}\"", mode.name()));
    }
    assert_eq!(Mode::HostSubnet.to_string(), "host-subnet");
    assert_eq!(Mode::from_name("HostSubnet"), None);
}

#[test]
fn control_socket_group_must_exist() {
    let c = Config::parse(&format!("control_socket_group = \"root\"\n{GOOD}")).unwrap();
    assert_eq!(c.control_socket_group, Some(("root".to_string(), 0)));
    let e = rejected(&format!("control_socket_group = \"no-such-group-vxs\"\n{GOOD}"));
    assert_eq!((e.line, e.key.as_str()), (Some(1), "control_socket_group"));
    assert!(e.reason.contains("no group named"), "{e}");
}

const ESP_NET: &str = r#"
[underlay]
address = "198.18.0.1"

[[network]]
vni = 1042
tap = "vxs1042"
encryption = "esp"
peers = [{ address = "198.18.0.2", public_key = "0000000000000000000000000000000000000000000000000000000000000001" }]
"#;

const ESP_ROUTED: &str = r#"
[underlay]
address = "198.18.0.1"

[[network]]
vni = 1042
mode = "routed"
tap = "vxs1042"
subnet = "198.19.1.0/24"
encryption = "esp"
peers = [{ address = "198.18.0.2", subnet = "198.19.2.0/24", esp = { spi_out = "0x1001", key_out = "0x0101010101010101010101010101010101010101010101010101010101010101aabbccdd", spi_in = "0x1010", key_in = "0x0202020202020202020202020202020202020202020202020202020202020202aabbccdd", aead = "rfc7539esp(chacha20,poly1305)" } }]
"#;

#[test]
fn esp_networks_default_to_the_mtu_their_encapsulation_allows() {
    let c = Config::parse(ESP_NET).unwrap();
    let n = &c.networks[0];
    assert_eq!((n.mtu, n.max_frame_len(1500)), (1424, 1438), "ESP overlay: 50 bytes of ESP-in-UDP + 14 inner Ethernet + 12 IV/ICV");
    assert_eq!(n.encap, Encap::Esp { suite: Suite::Aes256Gcm, payload: Payload::Ethernet });
    assert!(
        n.mtu_line(1500).starts_with("network 1042 (overlay) vxs1042: mtu 1424 (default); largest mtu 1424 = underlay 1500"),
        "{}",
        n.mtu_line(1500)
    );
    let c = Config::parse(ESP_ROUTED).unwrap();
    let n = &c.networks[0];
    assert_eq!((n.mtu, n.max_frame_len(1500)), (1438, 1452), "ESP routed carries the IP packet only");
    assert_eq!(n.encap, Encap::Esp { suite: Suite::ChaCha20Poly1305, payload: Payload::Ipv4 }, "the manual keys' suite");
    let c = Config::parse(&ESP_NET.replace("address = \"198.18.0.1\"", "address = \"198.18.0.1\"\nmtu = 9000")).unwrap();
    assert_eq!(c.networks[0].mtu, 8924);
}

#[test]
fn esp_networks_reject_an_mtu_that_does_not_fit_once_sealed() {
    let e = rejected(&ESP_NET.replace("encryption", "mtu = 1425\nencryption"));
    assert_eq!(e.key, "network[0].mtu");
    assert!(e.reason.contains("allows at most 1424") && e.reason.contains("16 icv"), "{e}");
    assert_eq!(Config::parse(&ESP_NET.replace("encryption", "mtu = 1424\nencryption")).unwrap().networks[0].mtu, 1424);
    let e = rejected(&ESP_ROUTED.replace("encryption", "mtu = 1439\nencryption"));
    assert!(e.reason.contains("at most 1438"), "{e}");
}

#[test]
fn esp_state_file_defaults_next_to_the_key_file() {
    let c = Config::parse(GOOD).unwrap();
    assert_eq!(c.esp.state_file, PathBuf::from("/var/lib/vxswitch/host.esp-state"));
    let keyed = format!("{GOOD}\n[esp]\nkey_file = \"/srv/vx/h1.key\"\n");
    assert_eq!(Config::parse(&keyed).unwrap().esp.state_file, PathBuf::from("/srv/vx/h1.esp-state"));
    let explicit = format!("{GOOD}\n[esp]\nkey_file = \"/srv/vx/h1.key\"\nstate_file = \"/run/vx/s\"\n");
    assert_eq!(Config::parse(&explicit).unwrap().esp.state_file, PathBuf::from("/run/vx/s"));
}

const GOSSIP_ROUTED: &str = "[underlay]\naddress = \"198.18.0.1\"\n\n[[network]]\nvni = 5\nmode = \"routed\"\ntap = \"vxs5\"\nsubnet = \"10.42.1.0/24\"\n\n[gossip]\ncluster = \"c\"\nkey_file = \"/k\"\n";

#[test]
fn gossip_state_dir_defaults_next_to_the_esp_host_key_and_cluster_cidr_is_checked() {
    let c = Config::parse(GOSSIP_ROUTED).unwrap();
    let g = c.gossip.unwrap();
    assert_eq!(g.state_dir, PathBuf::from("/var/lib/vxswitch"));
    assert_eq!(g.config.cluster_cidr, None);
    let ok = Config::parse(&format!("{GOSSIP_ROUTED}cluster_cidr = \"10.42.0.0/16\"\nstate_dir = \"/srv/vxs\"\n")).unwrap();
    let g = ok.gossip.unwrap();
    assert_eq!((g.config.cluster_cidr, g.state_dir), (Some("10.42.0.0/16".parse().unwrap()), PathBuf::from("/srv/vxs")));
    for (value, reason) in
        [("10.42.0.0/33", "not an IPv4 prefix"), ("10.42.0.1/16", "host bits set"), ("10.43.0.0/16", "outside the cluster CIDR")]
    {
        let e = rejected(&format!("{GOSSIP_ROUTED}cluster_cidr = \"{value}\"\n"));
        assert_eq!((e.key.as_str(), e.line), ("gossip.cluster_cidr", Some(13)), "{value}: {e}");
        assert!(e.reason.contains(reason), "{value}: {e}");
    }
}

#[test]
fn flood_section_defaults_parses_and_checks_ranges() {
    let c = Config::parse(GOOD).unwrap();
    assert_eq!(c.flood, FloodLimit::default());
    let text = GOOD.replace("[fdb]\n", "[flood]\nrate = 100\nburst = 20\nmax_sources = 64\n\n[fdb]\n");
    let c = Config::parse(&text).unwrap();
    assert_eq!(c.flood, FloodLimit { rate: 100, burst: 20, max_sources: 64 });
    let e = rejected(&text.replace("rate = 100", "rate = 0"));
    assert_eq!((e.line, e.key.as_str()), (Some(8), "flood.rate"));
    assert!(e.reason.contains("out of range"), "{e}");
    let e = rejected(&text.replace("max_sources = 64", "max_sources = 8"));
    assert_eq!(e.key, "flood.max_sources");
    let e = rejected(&text.replace("burst = 20", "bursts = 20"));
    assert!(e.reason.contains("unknown field `bursts`"), "{e}");
}

/// Two encrypted networks (an overlay and a routed one, manual keys) and a cleartext one.
fn two_encrypted(overlay_spi_in: &str, overlay_key_out: &str) -> String {
    let key = |b: &str| format!("0x{}aabbccdd", b.repeat(32));
    format!(
        r#"
[underlay]
address = "198.18.0.1"

[[network]]
vni = 10
tap = "vxs10"
encryption = "esp"
peers = [{{ address = "198.18.0.2", esp = {{ spi_out = "0x2001", key_out = "{}", spi_in = "{overlay_spi_in}", key_in = "{}" }} }}]

[[network]]
vni = 20
mode = "routed"
tap = "vxs20"
subnet = "198.19.1.0/24"
encryption = "esp"
peers = [{{ address = "198.18.0.2", subnet = "198.19.2.0/24", esp = {{ spi_out = "0x3001", key_out = "{}", spi_in = "0x3010", key_in = "{}" }} }}]

[[network]]
vni = 30
tap = "vxs30"
peers = ["198.18.0.2"]
"#,
        key(overlay_key_out),
        key("02"),
        key("03"),
        key("04")
    )
}

#[test]
fn several_encrypted_networks_per_host_with_cleartext_ones() {
    let c = Config::parse(&two_encrypted("0x2010", "01")).unwrap();
    let encrypted: Vec<Vni> = c.networks.iter().filter(|n| n.encrypted).map(|n| n.vni).collect();
    assert_eq!(encrypted, [10, 20].map(Vni::new_const));
    assert!(!c.networks[2].encrypted);
    assert_eq!(c.networks[1].encap, Encap::Esp { suite: Suite::Aes256Gcm, payload: Payload::Ipv4 });
}

#[test]
fn an_inbound_spi_used_by_two_encrypted_networks_is_refused() {
    // The overlay's inbound SPI is the routed network's: the SPI would not tell the network.
    let e = Config::parse(&two_encrypted("0x3010", "01")).unwrap_err();
    assert_eq!(e.key, "network[1].peers", "{e}");
    assert_eq!(e.line, Some(17), "{e}");
    assert!(e.reason.contains("inbound SPI 0x3010 is already used by peer 198.18.0.2 of network 10"), "{e}");
    assert!(e.reason.contains("unique on this host"), "{e}");
}

#[test]
fn an_outbound_key_used_twice_on_the_host_is_refused() {
    // The overlay's outbound key is the routed network's: two SAs under one key repeat nonces.
    let e = Config::parse(&two_encrypted("0x2010", "03")).unwrap_err();
    assert_eq!(e.key, "network[1].peers", "{e}");
    assert_eq!(e.line, Some(17), "{e}");
    assert!(e.reason.contains("key_out is already the outbound key toward peer 198.18.0.2 of network 10"), "{e}");
}

#[test]
fn an_inbound_spi_used_twice_in_one_network_is_refused() {
    let text = ESP_ROUTED.replace(
        "}]\n",
        "}, { address = \"198.18.0.3\", subnet = \"198.19.3.0/24\", esp = { spi_out = \"0x1002\", key_out = \"0x0303030303030303030303030303030303030303030303030303030303030303aabbccdd\", spi_in = \"0x1010\", key_in = \"0x0404040404040404040404040404040404040404040404040404040404040404aabbccdd\", aead = \"rfc7539esp(chacha20,poly1305)\" } }]\n",
    );
    let e = Config::parse(&text).unwrap_err();
    assert_eq!(e.key, "network[0].peers", "{e}");
    assert!(e.reason.contains("inbound SPI 0x1010 is already used by peer 198.18.0.2 of network 1042"), "{e}");
}

#[test]
fn tap_mtu_and_mss_clamp_defaults_and_values() {
    let c = Config::parse(GOOD).unwrap();
    assert_eq!((c.networks[0].tap_mtu, c.networks[0].mss_clamp), (1500, MssClamp::Auto), "frames at the bridge default reach vxswitch");
    assert_eq!(c.networks[1].tap_mtu, 1500, "an explicit smaller mtu keeps the TAP at 1500");
    let jumbo = Config::parse(&GOOD.replace("address = \"198.18.0.1\"", "address = \"198.18.0.1\"\nmtu = 9000")).unwrap();
    assert_eq!((jumbo.networks[0].mtu, jumbo.networks[0].tap_mtu), (8950, 9000));
    let set = Config::parse(&GOOD.replace("mtu = 1400", "mtu = 1400\ntap_mtu = 1400\nmss_clamp = \"off\"")).unwrap();
    assert_eq!((set.networks[1].tap_mtu, set.networks[1].mss_clamp), (1400, MssClamp::Off));
    let n = Config::parse(&GOOD.replace("mtu = 1400", "mss_clamp = 1300")).unwrap();
    assert_eq!(n.networks[1].mss_clamp, MssClamp::Fixed(1300));
}

#[test]
fn rejects_bad_mss_clamp_and_tap_mtu_with_line_and_key() {
    let e = rejected(&GOOD.replace("mtu = 1400", "mss_clamp = \"always\""));
    assert_eq!((e.key.as_str(), e.line), ("network[1].mss_clamp", Some(20)));
    assert!(e.reason.contains("\"always\" is not \"auto\", \"off\" or a number"), "{e}");
    let e = rejected(&GOOD.replace("mtu = 1400", "mss_clamp = 40"));
    assert_eq!(e.key, "network[1].mss_clamp");
    assert!(e.reason.contains("out of range (88..=65495)"), "{e}");
    let e = rejected(&GOOD.replace("mtu = 1400", "tap_mtu = 70000"));
    assert_eq!((e.key.as_str(), e.line), ("network[1].tap_mtu", Some(20)));
}

#[test]
fn ipv6_bindings_feed_the_nd_proxy_of_overlay_networks_only() {
    let text = format!(
        "{GOOD}\n[[network.arp]]\nip = \"fd00:42::21\"\nmac = \"02:00:00:00:02:15\"\n\n[[network.arp]]\nip = \"192.0.2.21\"\nmac = \"02:00:00:00:02:15\"\n"
    );
    let c = Config::parse(&text).unwrap();
    let ip6: std::net::IpAddr = "fd00:42::21".parse().unwrap();
    let mac: EthernetAddress = "02:00:00:00:02:15".parse().unwrap();
    assert_eq!(c.networks[1].arp[0], (ip6, mac));
    assert!(c.networks[1].static_updates().contains(&ControlUpdate::ArpBinding { vni: Vni::new_const(7), ip: ip6, mac }));
    // Line 22 is the first binding's table header.
    for bad in ["ff02::1", "::", "::1"] {
        let e = rejected(&text.replace("fd00:42::21", bad));
        assert_eq!((e.key.as_str(), e.line), ("network[1].arp", Some(22)), "{bad}: {e}");
        assert!(e.reason.contains("not a unicast IPv6 address"), "{bad}: {e}");
    }
    let e = rejected(&text.replace("fd00:42::21", "fd00:42::zz"));
    assert_eq!(e.line, Some(23), "{e}");
    assert!(e.reason.contains("invalid IP address syntax"), "{e}");
    let e = rejected(
        &text
            .replace("fd00:42::21\"\nmac = \"02:00:00:00:02:15", "fd00:42::21\"\nmac = \"02:00:00:00:02:16")
            .replace("192.0.2.21", "fd00:42::21"),
    );
    assert!(e.reason.contains("bound twice"), "{e}");
    let routed = format!("{ROUTED}\n[[network.arp]]\nip = \"fd00:42::21\"\nmac = \"02:00:00:00:02:15\"\n");
    let e = rejected(&routed);
    assert_eq!(e.key, "network[0].arp");
    assert!(e.reason.contains("mode \"overlay\" only"), "{e}");
}
