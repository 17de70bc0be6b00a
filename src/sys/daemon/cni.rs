//! The control-socket commands of the CNI plugin (`vxswitch cni`).
//!
//! The plugin runs once per container operation and knows nothing of the host's configuration;
//! it asks the daemon for what it needs and tells it what it did:
//!
//! - `cni network VNI`: the network's mode, bridge, MTU (from its encapsulation), subnet, gateway
//!   and address range, as JSON. The plugin's STATUS is this query too: no answer, not ready.
//! - `cni add VNI IP MAC`: a container was attached. The switch publishes the binding in this
//!   host's gossip record at once, so every other host's proxy ARP and FDB know it before the
//!   container sends a frame.
//! - `cni del VNI IP`: the container was detached; the binding is withdrawn cluster-wide.
//! - `cni bindings VNI`: the announced local containers and the size of the proxy-ARP table.
//!
//! Every answer is one JSON object; a refused command answers `{"error": "..."}`.

use std::net::Ipv4Addr;
use std::str::FromStr;

use serde_json::json;

use crate::config::{Config, Mode, Network};
use crate::dataplane::Switch;
use crate::wire::ethernet::EthernetAddress;
use crate::wire::vxlan::Vni;

/// The answer to `command` when it is a CNI command (`cni ...`), else `None`.
pub fn answer(command: &str, config: &Config, switch: &mut Switch) -> Option<String> {
    let rest = command.strip_prefix("cni ")?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    let reply = match words.as_slice() {
        ["network", vni] => network(config, vni),
        ["add", vni, ip, mac] => add(config, switch, vni, ip, mac),
        ["del", vni, ip] => del(config, switch, vni, ip),
        ["bindings", vni] => bindings(config, switch, vni),
        _ => Err(format!("unknown cni command: {rest}")),
    };
    Some(match reply {
        Ok(v) => v.to_string() + "\n",
        Err(e) => json!({ "error": e }).to_string() + "\n",
    })
}

fn find<'a>(config: &'a Config, vni: &str) -> Result<&'a Network, String> {
    let vni: u32 = vni.parse().map_err(|_| format!("bad VNI {vni:?}"))?;
    config.networks.iter().find(|n| n.vni.get() == vni).ok_or_else(|| format!("no network with VNI {vni} on this host"))
}

fn network(config: &Config, vni: &str) -> Result<serde_json::Value, String> {
    let n = find(config, vni)?;
    let (subnet, gateway, range) = match (&n.host_subnet, n.address) {
        (Some(hs), _) => (Some(hs.subnet), Some(hs.gateway), hs.range),
        (None, Some(addr)) => (Some(addr.trunc()), Some(addr.addr()), None),
        (None, None) => (None, None, None),
    };
    Ok(json!({
        "vni": n.vni.get(),
        "mode": n.mode.name(),
        "bridge": n.bridge,
        "mtu": n.mtu,
        "subnet": subnet.map(|s| s.to_string()),
        "gateway": gateway.map(|g| g.to_string()),
        "range_start": range.map(|r| r.0.to_string()),
        "range_end": range.map(|r| r.1.to_string()),
    }))
}

fn parse_ip(ip: &str) -> Result<Ipv4Addr, String> {
    ip.parse().map_err(|_| format!("bad IPv4 address {ip:?}"))
}

/// Whether the switch carries the network (overlay and routed); host-subnet and kernel
/// networks need no announcement (routes, or the kernel's own neighbour handling).
fn switched(n: &Network) -> bool {
    matches!(n.mode, Mode::Overlay | Mode::Routed)
}

fn add(config: &Config, switch: &mut Switch, vni: &str, ip: &str, mac: &str) -> Result<serde_json::Value, String> {
    let n = find(config, vni)?;
    let ip = parse_ip(ip)?;
    let mac = EthernetAddress::from_str(mac).map_err(|_| format!("bad MAC {mac:?}"))?;
    if !switched(n) {
        return Ok(json!({ "ok": true, "announced": false }));
    }
    switch.announce_local(n.vni, ip, mac).map_err(|e| e.to_string())?;
    tracing::info!(vni = n.vni.get(), %ip, %mac, "container attached (cni)");
    Ok(json!({ "ok": true, "announced": true }))
}

fn del(config: &Config, switch: &mut Switch, vni: &str, ip: &str) -> Result<serde_json::Value, String> {
    let n = find(config, vni)?;
    let ip = parse_ip(ip)?;
    let withdrawn = switched(n) && switch.withdraw_local(n.vni, ip);
    if withdrawn {
        tracing::info!(vni = n.vni.get(), %ip, "container detached (cni)");
    }
    Ok(json!({ "ok": true, "withdrawn": withdrawn }))
}

fn bindings(config: &Config, switch: &Switch, vni: &str) -> Result<serde_json::Value, String> {
    let n = find(config, vni)?;
    let vni: Vni = n.vni;
    let local: Vec<_> = switch.announced(vni).into_iter().map(|(ip, mac)| json!([ip.to_string(), mac.to_string()])).collect();
    Ok(json!({ "local": local, "proxy_arp": switch.proxy_arp().len() }))
}
