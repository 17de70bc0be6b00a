//! The control-socket commands of the CNI plugin (`vxswitch cni`).
//!
//! The plugin runs once per container operation and knows nothing of the host's configuration;
//! it asks the daemon for what it needs and tells it what it did:
//!
//! - `cni network VNI`: the network's mode, bridge, MTU (from its encapsulation), subnet, gateway
//!   and address range, and its IPv6 subnet and gateway when it has them (`subnet6`,
//!   `gateway6`, absent otherwise), as JSON. The plugin's STATUS is this query too: no answer, not ready.
//!   A network leasing its subnet (`cluster_cidr`) answers the lease held now, or an error
//!   while it holds none yet (the plugin's ADD then fails and the runtime retries).
//! - `cni add VNI IP MAC [VETH]`: a container was attached (its host-side veth is `VETH`); `IP`
//!   is IPv4 or IPv6, one command per address. The switch publishes the binding in this host's
//!   gossip record at once, so every other host's proxy ARP or ND proxy and FDB know it before
//!   the container sends a frame.
//! - `cni del VNI IP`: the container was detached; the binding is withdrawn cluster-wide.
//! - `cni bindings VNI`: the announced local containers and the size of the proxy-ARP table.
//!
//! Every answer is one JSON object; a refused command answers `{"error": "..."}`.
//!
//! Announced containers outlive a restart of the daemon: they are kept in
//! `<control_socket>.cni.json` (next to the instance lock, on the tmpfs `/run`, so a reboot,
//! which ends every container too, starts empty), rewritten atomically on every change. At start
//! the daemon announces again each container whose host-side veth still exists; one removed
//! while the daemon was down (a `DEL` it could not hear) is dropped.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::{Config, Mode, Network};
use crate::dataplane::Switch;
use crate::wire::ethernet::EthernetAddress;
use crate::wire::vxlan::Vni;
use ipnet::Ipv4Net;

/// One announced container, as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Saved {
    vni: u32,
    ip: IpAddr,
    mac: String,
    /// The host-side veth; empty when the plugin did not name it (never restored then).
    veth: String,
}

/// The containers announced on this host, and where they are saved.
#[derive(Debug)]
pub struct Announced {
    path: Option<PathBuf>,
    saved: BTreeMap<(u32, IpAddr), Saved>,
}

impl Announced {
    /// The file next to `control_socket`.
    pub fn path_for(control_socket: &Path) -> PathBuf {
        let mut name = control_socket.as_os_str().to_owned();
        name.push(".cni.json");
        PathBuf::from(name)
    }

    /// Nothing announced and nothing saved (tests).
    pub fn in_memory() -> Self {
        Announced { path: None, saved: BTreeMap::new() }
    }

    /// Load what an earlier run saved at `path` and announce again every container for which
    /// `alive(veth)` holds; the rest is dropped (and the file rewritten).
    pub fn restore(path: PathBuf, config: &Config, switch: &mut Switch, alive: impl Fn(&str) -> bool) -> Self {
        let list: Vec<Saved> = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        let mut me = Announced { path: Some(path), saved: BTreeMap::new() };
        let total = list.len();
        for s in list {
            let live = !s.veth.is_empty() && alive(&s.veth);
            if live && add(config, switch, &s.vni.to_string(), &s.ip.to_string(), &s.mac).is_ok() {
                me.saved.insert((s.vni, s.ip), s);
            }
        }
        if total > 0 {
            tracing::info!(restored = me.saved.len(), dropped = total - me.saved.len(), "containers announced by an earlier run");
        }
        if me.saved.len() != total {
            me.save();
        }
        me
    }

    fn save(&self) {
        let Some(path) = &self.path else { return };
        let list: Vec<&Saved> = self.saved.values().collect();
        let bytes = serde_json::to_vec(&list).unwrap_or_default();
        if let Err(e) = crate::keyfile::write_atomically(path, &bytes) {
            tracing::warn!("saving the announced containers to {}: {e}", path.display());
        }
    }

    /// The answer to `command` when it is a CNI command (`cni ...`), else `None`.
    /// `leases` are the subnets the leased networks hold now.
    pub fn answer(&mut self, command: &str, config: &Config, switch: &mut Switch, leases: &[(Vni, Ipv4Net)]) -> Option<String> {
        let rest = command.strip_prefix("cni ")?;
        let words: Vec<&str> = rest.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["network", vni] => network(config, leases, vni),
            ["add", vni, ip, mac] => add(config, switch, vni, ip, mac),
            ["add", vni, ip, mac, veth] => add(config, switch, vni, ip, mac).inspect(|_| self.remember(vni, ip, mac, veth)),
            ["del", vni, ip] => del(config, switch, vni, ip).inspect(|_| self.forget(vni, ip)),
            ["bindings", vni] => bindings(config, switch, vni),
            _ => Err(format!("unknown cni command: {rest}")),
        };
        Some(match reply {
            Ok(v) => v.to_string() + "\n",
            Err(e) => json!({ "error": e }).to_string() + "\n",
        })
    }

    fn remember(&mut self, vni: &str, ip: &str, mac: &str, veth: &str) {
        let (Ok(vni), Ok(ip)) = (vni.parse(), ip.parse()) else { return };
        let entry = Saved { vni, ip, mac: mac.to_string(), veth: veth.to_string() };
        if self.saved.insert((vni, ip), entry.clone()) != Some(entry) {
            self.save();
        }
    }

    fn forget(&mut self, vni: &str, ip: &str) {
        let (Ok(vni), Ok(ip)) = (vni.parse(), ip.parse()) else { return };
        if self.saved.remove(&(vni, ip)).is_some() {
            self.save();
        }
    }
}

/// Whether host-side veth `name` still exists (a container attached before a restart).
pub fn veth_exists(name: &str) -> bool {
    crate::sys::kernel::netlink::Netlink::new().ok().and_then(|nl| nl.find_link(name).ok().flatten()).is_some()
}

fn find<'a>(config: &'a Config, vni: &str) -> Result<&'a Network, String> {
    let vni: u32 = vni.parse().map_err(|_| format!("bad VNI {vni:?}"))?;
    config.networks.iter().find(|n| n.vni.get() == vni).ok_or_else(|| format!("no network with VNI {vni} on this host"))
}

fn network(config: &Config, leases: &[(Vni, Ipv4Net)], vni: &str) -> Result<serde_json::Value, String> {
    let n = find(config, vni)?;
    let (subnet, gateway, range) = match (&n.host_subnet, n.address) {
        // A leased subnet: the one held now; its gateway is its first address.
        _ if n.lease.is_some() => match leases.iter().find(|l| l.0 == n.vni) {
            Some(&(_, net)) => (Some(net), Some(Ipv4Addr::from(u32::from(net.network()) + 1)), None),
            None => {
                return Ok(
                    json!({ "error": format!("network {} has not leased a subnet from its cluster_cidr yet", n.vni), "not_ready": true }),
                )
            }
        },
        (Some(hs), _) => (Some(hs.subnet), Some(hs.gateway), hs.range),
        (None, Some(addr)) => (Some(addr.trunc()), Some(addr.addr()), None),
        (None, None) => (None, None, None),
    };
    // Dual stack: the host's IPv6 subnet and gateway next to the IPv4 ones.
    let (subnet6, gateway6) = n.host_subnet6.as_ref().map_or((None, None), |h| (Some(h.subnet), Some(h.gateway)));
    Ok(json!({
        "vni": n.vni.get(),
        "mode": n.mode.name(),
        "bridge": n.bridge,
        "mtu": n.mtu,
        "subnet": subnet.map(|s| s.to_string()),
        "gateway": gateway.map(|g| g.to_string()),
        "range_start": range.map(|r| r.0.to_string()),
        "range_end": range.map(|r| r.1.to_string()),
        "subnet6": subnet6.map(|s| s.to_string()),
        "gateway6": gateway6.map(|g| g.to_string()),
    }))
}

fn parse_ip(ip: &str) -> Result<IpAddr, String> {
    ip.parse().map_err(|_| format!("bad IP address {ip:?}"))
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
    Ok(json!({ "local": local, "proxy_arp": switch.proxy_arp().len(), "proxy_nd": switch.proxy_nd().len() }))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::node::switch_config;

    const CONFIG: &str = r#"
[underlay]
address = "198.18.0.1"

[[network]]
vni = 42
tap = "vxs42"
mode = "routed"
bridge = "br0"
subnet = "10.42.1.0/24"

[[network]]
vni = 9
mode = "host-subnet"
bridge = "br9"
subnet = "10.9.1.0/24"
"#;

    fn setup() -> (Config, Switch) {
        let config = Config::parse(CONFIG).unwrap();
        let switch = Switch::new(switch_config(&config), Instant::now());
        (config, switch)
    }

    fn ask(a: &mut Announced, config: &Config, switch: &mut Switch, command: &str) -> serde_json::Value {
        serde_json::from_str(&a.answer(command, config, switch, &[]).unwrap()).unwrap()
    }

    #[test]
    fn network_settings_come_from_the_configuration() {
        let (config, mut switch) = setup();
        let mut a = Announced::in_memory();
        let v = ask(&mut a, &config, &mut switch, "cni network 42");
        assert_eq!(v["mode"], "routed");
        assert_eq!(v["bridge"], "br0");
        assert_eq!(v["mtu"], 1450);
        assert_eq!(v["subnet"], "10.42.1.0/24");
        assert_eq!(v["gateway"], "10.42.1.1");
        assert_eq!(ask(&mut a, &config, &mut switch, "cni network 9")["mtu"], 1500);
        assert_eq!(v["subnet6"], serde_json::Value::Null, "an IPv4-only network");
        let dual =
            Config::parse(&CONFIG.replace("subnet = \"10.42.1.0/24\"\n", "subnet = \"10.42.1.0/24\"\nsubnet6 = \"fd00:42:1::/64\"\n"))
                .unwrap();
        let v: serde_json::Value = serde_json::from_str(&a.answer("cni network 42", &dual, &mut switch, &[]).unwrap()).unwrap();
        assert_eq!((v["subnet6"].as_str(), v["gateway6"].as_str()), (Some("fd00:42:1::/64"), Some("fd00:42:1::1")), "{v}");
        assert!(a.answer("stats", &config, &mut switch, &[]).is_none(), "other commands are not ours");
    }

    #[test]
    fn a_leased_network_answers_its_current_lease_and_not_ready_before() {
        let text = "[underlay]\naddress = \"198.18.0.1\"\n\n[[network]]\nvni = 42\ntap = \"vxs42\"\nmode = \"routed\"\nbridge = \"br0\"\n\
                    cluster_cidr = \"10.42.0.0/16\"\nhost_prefix = 24\n\n[gossip]\ncluster = \"c\"\nkey_file = \"/k\"\n";
        let config = Config::parse(text).unwrap();
        let mut switch = Switch::new(switch_config(&config), Instant::now());
        let mut a = Announced::in_memory();
        let v = ask(&mut a, &config, &mut switch, "cni network 42");
        assert_eq!(v["not_ready"], true, "{v}");
        assert!(v["error"].as_str().unwrap().contains("not leased"), "{v}");
        let leases = [(Vni::new_const(42), "10.42.7.0/24".parse().unwrap())];
        let v: serde_json::Value = serde_json::from_str(&a.answer("cni network 42", &config, &mut switch, &leases).unwrap()).unwrap();
        assert_eq!((v["subnet"].as_str(), v["gateway"].as_str()), (Some("10.42.7.0/24"), Some("10.42.7.1")), "{v}");
        assert_eq!(v["range_start"], serde_json::Value::Null);
    }

    #[test]
    fn malformed_commands_are_refused_with_an_error_never_a_panic() {
        let (config, mut switch) = setup();
        let mut a = Announced::in_memory();
        for bad in [
            "cni network 7",
            "cni network x",
            "cni add 42 10.42.1.5",
            "cni add 42 not-an-ip 02:00:00:00:00:01",
            "cni add 42 10.42.1.5 zz:zz",
            "cni add 42 fd00::zz 02:00:00:00:00:01",
            "cni del 42 fd00:::1",
            "cni add 42 10.42.1.5 01:00:5e:00:00:01",
            "cni add 99999999999 10.42.1.5 02:00:00:00:00:01",
            "cni del 42",
            "cni frobnicate",
            "cni ",
        ] {
            let v = ask(&mut a, &config, &mut switch, bad);
            assert!(v["error"].is_string(), "{bad}: {v}");
        }
        assert_eq!(switch.take_local_bindings_changed(), None, "nothing was announced");
    }

    #[test]
    fn announced_containers_are_saved_and_only_live_ones_restored() {
        let dir = std::env::temp_dir().join(format!("vxs-cni-announced-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = Announced::path_for(&dir.join("vxswitch.sock"));
        let (config, mut switch) = setup();
        let mut a = Announced::restore(path.clone(), &config, &mut switch, |_| true);
        for (ip, mac, veth) in [
            ("10.42.1.5", "02:00:00:00:00:05", "vxa"),
            ("10.42.1.6", "02:00:00:00:00:06", "vxb"),
            ("10.42.1.7", "02:00:00:00:00:07", "vxc"),
            ("fd00:42::5", "02:00:00:00:00:05", "vxa"),
        ] {
            assert_eq!(ask(&mut a, &config, &mut switch, &format!("cni add 42 {ip} {mac} {veth}"))["announced"], true);
        }
        assert_eq!(ask(&mut a, &config, &mut switch, "cni del 42 10.42.1.7")["withdrawn"], true);
        // A restart: vxb's veth went away while the daemon was down.
        let (config, mut switch) = setup();
        let _restored = Announced::restore(path.clone(), &config, &mut switch, |veth| veth != "vxb");
        let vni = crate::wire::vxlan::Vni::new(42).unwrap();
        let ips: Vec<String> = switch.announced(vni).iter().map(|(ip, _)| ip.to_string()).collect();
        assert_eq!(ips, ["10.42.1.5", "fd00:42::5"], "both families of the live container");
        let saved: Vec<Saved> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(saved.len(), 2, "the file keeps only what was restored");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
