//! Floating IPs in `stats`, `peers` and `/metrics`: who owns each address (as this host sees
//! it), whether it is programmed here, and the hand-over counters.

use serde_json::{json, Value};

use crate::node::Node;
use crate::sys::kernel::floating::FloatingDriver;

/// The `floating` section of `stats` and `peers`.
pub fn section(node: &Node, driver: Option<&FloatingDriver>) -> Value {
    let c = node.floating_counters();
    let io = driver.map(|d| d.io).unwrap_or_default();
    let ips: Vec<Value> = node
        .floating_owners()
        .into_iter()
        .map(|o| {
            json!({
                "address": o.spec.ip.to_string(),
                "interface": o.spec.interface,
                "container": o.spec.target.to_string(),
                "vni": o.spec.vni,
                "owner": o.owner,
                "epoch": o.epoch,
                "held_here": o.held_here,
            })
        })
        .collect();
    json!({
        "ips": ips,
        "claims": c.claims,
        "moves": c.moves,
        "takeovers": c.takeovers,
        "first_holds": c.first_holds,
        "releases": c.releases,
        "garps": io.garps,
        "conntrack_flushes": io.conntrack_flushes,
        "errors": io.errors,
    })
}

/// `text` (a JSON object) with `sections` added; unchanged if it is not an object.
pub fn add_to(text: &str, sections: &[(&str, Value)]) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(mut map)) => {
            for (name, value) in sections {
                map.insert(name.to_string(), value.clone());
            }
            serde_json::to_string_pretty(&Value::Object(map)).unwrap_or_default() + "\n"
        }
        _ => text.to_string(),
    }
}

/// The floating-IP counters in the Prometheus text format.
pub fn metrics(node: &Node, driver: Option<&FloatingDriver>) -> String {
    let c = node.floating_counters();
    let io = driver.map(|d| d.io).unwrap_or_default();
    let mut out = String::new();
    for (name, help, v) in [
        ("floating_moves", "Floating IPs taken after their previous owner released them.", c.moves),
        ("floating_takeovers", "Floating IPs taken after their previous owner was declared dead.", c.takeovers),
        ("floating_releases", "Floating IPs this host released.", c.releases),
        ("floating_claims", "Floating IP claims this host made.", c.claims),
        ("floating_errors", "Failed floating IP kernel operations (nft, address, ARP, conntrack).", io.errors),
    ] {
        out.push_str(&format!("# HELP vxswitch_{name}_total {help}\n# TYPE vxswitch_{name}_total counter\nvxswitch_{name}_total {v}\n"));
    }
    let held = node.floating_owners().iter().filter(|o| o.held_here).count();
    out.push_str(&format!("# HELP vxswitch_floating_held Floating IPs programmed on this host.\n# TYPE vxswitch_floating_held gauge\nvxswitch_floating_held {held}\n"));
    out
}
