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
    assert_eq!(c.underlay, Underlay { address: Ipv4Addr::new(198, 18, 0, 1), port: 4789, mtu: 1500 });
    assert_eq!(c.fdb_ageing, Duration::from_secs(120));
    assert_eq!(c.networks.len(), 2);
    assert_eq!(c.networks[0].mtu, 1450, "underlay MTU minus 50 bytes of VXLAN overhead");
    assert_eq!(c.networks[0].max_frame_len(1500), 1464);
    assert_eq!(c.networks[0].peers, vec![Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 3)]);
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
