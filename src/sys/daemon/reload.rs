//! Reloading the configuration file under a running daemon: `SIGHUP`, or `vxswitch reload`
//! (control command `reload`, which also returns the outcome).
//!
//! The file is read and validated first; an invalid file changes nothing (the daemon keeps
//! running on the configuration in force) and its error, with line, key and reason, is logged
//! and returned. A valid file is applied as a difference: the node takes the switched networks
//! and their static updates and changes only what differs ([`crate::node::Node::apply_config`]),
//! and this driver does the descriptor side: it closes the TAPs of removed networks, then opens
//! those of added ones (a TAP that cannot be created is retried like a lost one, see
//! [`super::taps`]). A network whose TAP settings alone changed (name, MTU, bridge, address)
//! keeps its switch state and gets its TAP recreated. Networks that did not change are not
//! touched at all: their TAP stays open and their frames keep flowing.
//!
//! The node also rebuilds this host's gossip record from the new file and pushes it to the
//! cluster, so the other hosts see what a restart would show them (networks and subnets added,
//! changed or removed); the subnet claim times it keeps or makes are saved with the claims in
//! the state directory, so a later restart claims with the same times.
//!
//! What a reload cannot change, because it is bound into sockets, keys or kernel state set up at
//! start: the underlay, the control socket and its group, `metrics_listen`, the `[fdb]` limits,
//! every key of `[gossip]` (its socket, keys, cluster and timers are set up once; each changed
//! key is named, e.g. `gossip.listen`), `[esp]`, encrypted networks (their SAs are set up once),
//! networks that lease their subnet, and kernel or host-subnet networks (programmed into the
//! kernel at start). A file that changes any of these is refused as a whole, naming the keys, and
//! the daemon keeps running as it is: a restart applies it.

use std::time::Instant;

use serde::Serialize;

use super::taps::tap_offload;
use super::Daemon;
use crate::config::{Config, Gossip, Mode, Network};
use crate::node::NewConfig;
use crate::wire::vxlan::Vni;

/// The outcome of a reload, as `vxswitch reload` prints it.
#[derive(Debug, Default, Serialize)]
pub struct ReloadReport {
    /// VNIs of the networks added.
    pub added: Vec<Vni>,
    /// VNIs of the networks removed.
    pub removed: Vec<Vni>,
    /// VNIs of the networks whose TAP was recreated for new TAP settings.
    pub retapped: Vec<Vni>,
    /// Control updates applied (peers, routes, bindings).
    pub updates: usize,
    /// The new version of this host's gossip record, when the reload changed what it announces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_version: Option<u64>,
    /// TAPs that could not be created (their networks are retried until they can).
    pub tap_errors: Vec<String>,
}

/// The keys `new` changes that a running daemon cannot apply; empty when it can.
pub fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut keys = Vec::new();
    let mut check = |differs: bool, key: &str| {
        if differs {
            keys.push(key.to_string());
        }
    };
    check(old.underlay != new.underlay, "underlay");
    check(old.control_socket != new.control_socket || old.control_socket_group != new.control_socket_group, "control_socket");
    check(old.metrics_listen != new.metrics_listen, "metrics_listen");
    check(old.fdb_ageing != new.fdb_ageing || old.fdb_max_entries != new.fdb_max_entries, "fdb");
    check(old.flood != new.flood, "flood");
    match (&old.gossip, &new.gossip) {
        (Some(a), Some(b)) => match gossip_keys(a, b) {
            // A difference `gossip_keys` does not name: refuse the section as a whole.
            named if named.is_empty() => check(a != b, "gossip"),
            named => named.into_iter().for_each(|k| check(true, &format!("gossip.{k}"))),
        },
        (a, b) => check(a.is_some() != b.is_some(), "gossip"),
    }
    check(old.esp != new.esp, "esp");
    let frozen = |c: &Config| -> Vec<Network> {
        // A leased network's lease is set up once, at start, like an encrypted network's SAs.
        c.networks
            .iter()
            .filter(|n| matches!(n.mode, Mode::Kernel | Mode::HostSubnet) || n.encrypted || n.lease.is_some())
            .cloned()
            .collect()
    };
    let (was, will) = (frozen(old), frozen(new));
    for n in was.iter().filter(|n| !will.contains(n)).chain(will.iter().filter(|n| !was.contains(n))) {
        let what = match (n.encrypted, n.lease) {
            (true, _) => "encrypted".to_string(),
            (false, Some(_)) => "leased subnet".to_string(),
            (false, None) => n.mode.to_string(),
        };
        keys.push(format!("network (vni {}, {what})", n.vni));
    }
    keys.dedup();
    keys
}

/// The keys of `[gossip]` that differ between `a` and `b`, as the file spells them.
fn gossip_keys(a: &Gossip, b: &Gossip) -> Vec<&'static str> {
    let (x, y) = (&a.config, &b.config);
    [
        ("name", a.name != b.name),
        ("cluster", x.cluster != y.cluster),
        ("key_file", a.key_file != b.key_file),
        ("state_dir", a.state_dir != b.state_dir),
        ("listen", x.listen != y.listen),
        ("seeds", x.seeds != y.seeds),
        ("interval_ms", x.interval != y.interval),
        ("suspect_timeout_ms", x.suspect_timeout != y.suspect_timeout),
        ("dead_grace_secs", x.dead_grace != y.dead_grace),
        ("mtu", x.mtu != y.mtu),
        ("cluster_cidr", x.cluster_cidr != y.cluster_cidr),
    ]
    .into_iter()
    .filter_map(|(key, differs)| differs.then_some(key))
    .collect()
}

/// Whether two configurations of a network make the same TAP (name, MTU, bridge, address,
/// offload); peers and bindings are the node's business.
fn same_tap(a: &Network, b: &Network) -> bool {
    (&a.tap, a.mtu, a.tap_mtu, &a.bridge, a.address, a.encrypted) == (&b.tap, b.mtu, b.tap_mtu, &b.bridge, b.address, b.encrypted)
}

impl Daemon {
    /// Re-read the configuration file and apply the difference; logs the outcome.
    pub(super) fn reload(&mut self, now: Instant) -> Result<ReloadReport, String> {
        let result = self.try_reload(now);
        match &result {
            Ok(r) => {
                tracing::info!(added = ?r.added, removed = ?r.removed, retapped = ?r.retapped, updates = r.updates, "configuration reloaded")
            }
            Err(e) => tracing::error!("reload refused, running configuration kept: {e}"),
        }
        result
    }

    fn try_reload(&mut self, now: Instant) -> Result<ReloadReport, String> {
        let path = self.config_path.clone().ok_or("vxswitch was started without a configuration file")?;
        let new = Config::load(&path).map_err(|e| e.to_string())?;
        let keys = needs_restart(&self.config, &new);
        if !keys.is_empty() {
            return Err(format!("{}: {} cannot change without a restart", path.display(), keys.join(", ")));
        }
        let change = self.node.apply_config(now, NewConfig::of(&new));
        let mut report = ReloadReport { updates: change.updates.len(), record_version: change.record_version, ..Default::default() };
        if change.record_version.is_some() {
            self.save_claims();
        }
        for &(port, vni) in &change.removed {
            self.ports.remove(port);
            report.removed.push(vni);
        }
        for net in new.switched_networks() {
            let Some(port) = self.node.switch().port(net.vni) else { continue };
            let added = change.added.iter().any(|&(p, _)| p == port);
            if added {
                report.added.push(net.vni);
            } else if self.ports.network(port).is_some_and(|old| same_tap(old, net)) {
                self.ports.set_network(port, net.clone());
                continue;
            } else {
                self.ports.remove(port);
                report.retapped.push(net.vni);
            }
            if let Err(e) = self.ports.add_or_retry(port, net.clone(), tap_offload(&new, net), now, &mut self.driver) {
                report.tap_errors.push(format!("network {}: {e}", net.vni));
            }
        }
        if new.services != self.config.services {
            self.node.set_services(now, new.services.clone());
        }
        if new.floating != self.config.floating {
            self.node.set_floating(now, new.floating.clone());
        }
        self.config = new;
        Ok(report)
    }

    /// Save the subnet claims of the record the reload rebuilt, so that a restart claims the
    /// subnets added by the reload with the same times.
    fn save_claims(&mut self) {
        let Some(local) = self.node.membership().map(|m| m.local()) else { return };
        let leased: Vec<Vni> = self.node.leases().iter().map(|l| l.vni()).collect();
        let claims = self.claims.with_record(local, &leased);
        if claims == self.claims {
            return;
        }
        self.claims = claims;
        if let Some(files) = &self.state_files {
            if let Err(e) = files.save_claims(&self.claims) {
                tracing::error!("saving the subnet claims to {}: {e}", files.claims().display());
            }
        }
    }

    /// The `reload` command's answer.
    pub(super) fn reload_answer(&mut self, now: Instant) -> String {
        match self.reload(now) {
            Ok(report) => serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
            Err(e) => serde_json::json!({ "error": e }).to_string() + "\n",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        Config::parse(&format!(
            "[underlay]\naddress = \"198.18.0.1\"\n\n[[network]]\nvni = 1\ntap = \"vxs1\"\npeers = [\"198.18.0.2\"]\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn peers_and_switched_networks_reload_while_sockets_keys_and_kernel_state_need_a_restart() {
        let old = config("");
        assert!(needs_restart(&old, &config("\n[[network]]\nvni = 2\ntap = \"vxs2\"\nmode = \"routed\"\nsubnet = \"198.19.1.0/24\"\n"))
            .is_empty());
        assert!(needs_restart(&old, &config("arp = [{ ip = \"192.0.2.9\", mac = \"02:00:00:00:00:09\" }]\n")).is_empty());
        let new =
            Config::parse("[underlay]\naddress = \"198.18.0.9\"\n\n[fdb]\nageing_secs = 60\n\n[[network]]\nvni = 1\ntap = \"vxs1\"\n")
                .unwrap();
        assert_eq!(needs_restart(&old, &new), ["underlay", "fdb"]);
        let kernel = config("\n[[network]]\nvni = 7\nmode = \"host-subnet\"\nbridge = \"br0\"\nsubnet = \"198.19.1.0/24\"\n");
        assert_eq!(needs_restart(&old, &kernel), ["network (vni 7, host-subnet)"]);
    }

    #[test]
    fn a_gossip_change_is_refused_naming_each_key_that_changed() {
        let gossip = |keys: &str| config(&format!("\n[gossip]\ncluster = \"c\"\nkey_file = \"/k\"\nname = \"a\"\n{keys}"));
        let base = gossip("listen = \"198.18.0.1:4790\"\n");
        assert!(needs_restart(&base, &gossip("listen = \"198.18.0.1:4790\"\n")).is_empty());
        assert_eq!(needs_restart(&base, &gossip("listen = \"198.18.0.1:4791\"\n")), ["gossip.listen"]);
        let many = Config::parse(
            "[underlay]\naddress = \"198.18.0.1\"\n\n[[network]]\nvni = 1\ntap = \"vxs1\"\npeers = [\"198.18.0.2\"]\n\n\
             [gossip]\ncluster = \"d\"\nkey_file = \"/k2\"\nname = \"a\"\nlisten = \"198.18.0.1:4790\"\ninterval_ms = 900\n",
        )
        .unwrap();
        assert_eq!(needs_restart(&base, &many), ["gossip.cluster", "gossip.key_file", "gossip.interval_ms"]);
        assert_eq!(needs_restart(&config(""), &base), ["gossip"], "joining a cluster takes a restart");
        assert_eq!(needs_restart(&base, &config("")), ["gossip"], "and so does leaving it");
    }

    #[test]
    fn a_leased_network_needs_a_restart_to_come_go_or_change() {
        let gossip = "\n[gossip]\ncluster = \"c\"\nkey_file = \"/k\"\n";
        let leased = |cidr: &str| {
            config(&format!(
                "\n[[network]]\nvni = 2\ntap = \"vxs2\"\nmode = \"routed\"\ncluster_cidr = \"{cidr}\"\nhost_prefix = 24\n{gossip}"
            ))
        };
        let plain = config(gossip);
        assert_eq!(needs_restart(&plain, &leased("10.42.0.0/16")), ["network (vni 2, leased subnet)"]);
        assert_eq!(needs_restart(&leased("10.42.0.0/16"), &leased("10.43.0.0/16")), ["network (vni 2, leased subnet)"]);
        assert!(needs_restart(&leased("10.42.0.0/16"), &leased("10.42.0.0/16")).is_empty());
    }
}
