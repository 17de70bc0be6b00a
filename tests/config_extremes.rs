//! Every numeric configuration key fed with extreme values: `vxswitch check` (Config::parse)
//! either rejects the value naming the line and the key, or accepts a value inside the key's
//! documented range, and a host started from an accepted configuration runs its timers far into
//! the future without panicking (no `Instant + Duration` overflow).

use std::time::{Duration, Instant, SystemTime};

use proptest::prelude::*;
use vxswitch::config::{Config, NUMERIC_KEYS};
use vxswitch::control::ClusterKey;
use vxswitch::dataplane::EspTunnels;
use vxswitch::ipsec::{HostKey, SessionConfig};
use vxswitch::node::{GossipJoin, Node, NodeConfig};

/// A configuration with every section; `{KEY}` placeholders take the values under test.
const TEMPLATE: &str = r#"
[underlay]
address = "198.18.0.1"
port = {underlay.port}
mtu = {underlay.mtu}
busy_poll_us = {underlay.busy_poll_us}
priority_boost = {underlay.priority_boost}
workers = {underlay.workers}

[fdb]
ageing_secs = {fdb.ageing_secs}
max_entries = {fdb.max_entries}

[flood]
rate = {flood.rate}
burst = {flood.burst}
max_sources = {flood.max_sources}

[esp]
port = {esp.port}
replay_window = {esp.replay_window}
rekey_secs = {esp.rekey_secs}

[gossip]
cluster = "c"
key_file = "/nonexistent/cluster.key"
name = "a"
interval_ms = {gossip.interval_ms}
suspect_timeout_ms = {gossip.suspect_timeout_ms}
dead_grace_secs = {gossip.dead_grace_secs}
mtu = {gossip.mtu}

[[network]]
vni = {network[].vni}
tap = "vxs1"
mtu = {network[].mtu}
tap_mtu = {network[].tap_mtu}
mss_clamp = {network[].mss_clamp}
encryption = "esp"
peers = ["198.18.0.2"]

[[network]]
vni = 16777214
mode = "routed"
tap = "vxs2"
cluster_cidr = "10.42.0.0/16"
host_prefix = {network[].host_prefix}
"#;

/// Defaults that are valid together.
fn valid(key: &str) -> u64 {
    match key {
        "underlay.port" => 4789,
        "underlay.mtu" => 1500,
        "underlay.busy_poll_us" => 50,
        "underlay.priority_boost" => 10,
        "underlay.workers" => 2,
        "fdb.ageing_secs" => 300,
        "fdb.max_entries" => 1000,
        "flood.rate" => 2000,
        "flood.burst" => 500,
        "flood.max_sources" => 4096,
        "esp.port" => 4500,
        "esp.replay_window" => 1024,
        "esp.rekey_secs" => 120,
        "gossip.interval_ms" => 200,
        "gossip.suspect_timeout_ms" => 1000,
        "gossip.dead_grace_secs" => 5,
        "gossip.mtu" => 1400,
        "network[].vni" => 1,
        "network[].mtu" => 1400,
        "network[].tap_mtu" => 1500,
        "network[].mss_clamp" => 1360,
        "network[].host_prefix" => 24,
        other => panic!("no valid value for {other}: add it here"),
    }
}

fn render(key: &str, value: u64) -> String {
    let mut text = TEMPLATE.to_string();
    if key == "underlay.mtu" {
        // The network's MTU then follows the underlay's (its own bound depends on it).
        text = text.replace("mtu = {network[].mtu}\n", "");
    }
    for k in NUMERIC_KEYS {
        let v = if k.key == key { value } else { valid(k.key) };
        text = text.replace(&format!("{{{}}}", k.key), &v.to_string());
    }
    assert!(!text.contains('{'), "every placeholder is a numeric key: {text}");
    text
}

fn line_of_key(text: &str, key: &str) -> usize {
    let field = key.rsplit('.').next().unwrap();
    let section = key.split('.').next().unwrap().trim_end_matches("[]");
    let start = text.find(&format!("[{section}]")).or_else(|| text.find(&format!("[[{section}]]"))).unwrap();
    let at = start + text[start..].find(&format!("\n{field} =")).unwrap() + 1;
    text[..at].matches('\n').count() + 1
}

/// Start a whole node (switch, ESP tunnels, gossip) from `config` on virtual time and run every
/// timer well into the future.
fn start_and_run_timers(config: &Config) {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let mut esp = EspTunnels::new(
        Some(HostKey::generate().unwrap()),
        1,
        config.esp.suite,
        SessionConfig { window: config.esp.replay_window, rekey_after: config.esp.rekey_after, ..SessionConfig::default() },
    );
    esp.add_static_peer(now, "198.18.0.2".parse().unwrap(), HostKey::generate().unwrap().public_key()).unwrap();
    let join = GossipJoin::for_tests(ClusterKey::from_bytes([1; 32]), config.gossip.as_ref().unwrap().config.listen, 1);
    let mut node = Node::new(NodeConfig::from_config(config, 1, wall, Some(esp), Some(join)), now, wall).unwrap();
    let mut t = now;
    for _ in 0..50 {
        t += Duration::from_secs(3600 * 24 * 400);
        node.handle_timeout(t);
        while node.poll_transmit().is_some() || node.poll_gossip().is_some() || node.poll_kernel_update().is_some() {}
        let _ = node.poll_timeout();
    }
}

fn check_value(key: &str, value: u64) {
    let k = NUMERIC_KEYS.iter().find(|k| k.key == key).unwrap();
    let text = render(key, value);
    match Config::parse(&text) {
        Ok(config) => {
            assert!(k.range().contains(&value), "{key} = {value} accepted outside {:?}", k.range());
            start_and_run_timers(&config);
        }
        Err(e) => {
            // Two keys' bounds also depend on other keys: the encapsulation (mtu), cluster_cidr (host_prefix).
            if k.range().contains(&value) && key != "network[].mtu" && key != "network[].host_prefix" {
                panic!("{key} = {value} is inside {:?} but was rejected: {e}", k.range());
            }
            assert!(e.key.ends_with(key.rsplit('.').next().unwrap()), "{key} = {value}: error names {:?}", e.key);
            assert_eq!(e.line, Some(line_of_key(&text, key)), "{key} = {value}: {e}");
            assert!(!e.reason.is_empty());
        }
    }
}

#[test]
fn boundaries_of_every_numeric_key() {
    for k in NUMERIC_KEYS {
        let edges = [0, 1, k.min.saturating_sub(1), k.min, k.max, k.max + 1, u64::from(u32::MAX), i64::MAX as u64];
        for v in edges {
            check_value(k.key, v);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn arbitrary_values_are_rejected_with_line_and_key_or_start_cleanly(
        which in 0..NUMERIC_KEYS.len(),
        value in prop_oneof![0u64..=100_000, any::<u32>().prop_map(u64::from), 0u64..=i64::MAX as u64],
    ) {
        check_value(NUMERIC_KEYS[which].key, value);
    }
}
