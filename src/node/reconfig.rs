//! A new configuration applied to a running node, as a difference, without touching what did not
//! change.
//!
//! What the configuration file decides about a node is three values ([`NewConfig`]): the
//! switched networks ([`NetworkSpec`], one port each), the static [`ControlUpdate`]s (peers,
//! routes, proxy-ARP bindings) and the configured part of this host's gossip record (modes,
//! networks and their subnets). [`Node::apply_config`] compares them with what is in force and
//! applies only the difference, so a network whose spec and statics are unchanged is never
//! touched: its port, FDB, peers and learned state stay as they are, and its traffic does not
//! notice the reload.
//!
//! - A network whose VNI is new is added (on the first free port); one whose VNI is gone is
//!   removed (its port is retired, and everything learned for it is forgotten). A network whose
//!   spec changed (MTU, mode, subnet, ...) is removed and added again: it starts afresh, as after
//!   a restart, and gossip installs its peers, routes and bindings again.
//! - Static updates are diffed as values: what is no longer configured is withdrawn with its
//!   inverse (`PeerUp` -> `PeerDown`, `RouteAdd` -> `RouteRemove`, `ArpBinding` -> `ArpUnbind`,
//!   `StaticFdb` -> `StaticFdbRemove`) while its network still exists, then networks are removed
//!   and added, then what is newly configured (including every static of an added network) is
//!   applied.
//! - The gossip record is rebuilt so that the cluster sees what a restart would show it, minus the
//!   disruption (see [`super::record::reconfigured`]): an added network and its subnet are
//!   announced, a removed network's subnets and bindings are withdrawn, a changed subnet replaces
//!   the old one. A subnet that stays keeps its claim time (older claim wins, also across a
//!   reload); a new one is claimed at the reload. Leased subnets stay as leased, learned bindings
//!   stay on the networks that remain, floating IPs and services are left to their own setters.
//!   When the record changed, its version is bumped and it is pushed to every live member at
//!   once, so the other hosts follow within one round trip rather than a round of gossip.
//!
//! The static updates go to the switch only, not to the kernel programmers' queue: the networks
//! those program (kernel and host-subnet modes) are not reloadable (the daemon refuses such a
//! reload), and their queue takes gossip's updates for every VNI. Like any other static update, a
//! withdrawn static peer that gossip also announces comes back with gossip's next update about
//! it.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use super::{local_record, record, static_updates, switch_config, unix_secs, Node};
use crate::config::Config;
use crate::control::{ControlUpdate, MemberRecord};
use crate::dataplane::{NetworkSpec, PortId};
use crate::wire::vxlan::Vni;

/// A configuration as a running node takes it.
#[derive(Debug, Clone)]
pub struct NewConfig {
    /// The switched networks (none of them encrypted).
    pub networks: Vec<NetworkSpec>,
    /// Their static updates.
    pub statics: Vec<ControlUpdate>,
    /// This host's record as the configuration makes it: only its modes and networks are used.
    pub record: MemberRecord,
}

impl NewConfig {
    /// What `config` asks of a running node.
    pub fn of(config: &Config) -> Self {
        let name = config.gossip.as_ref().map_or("", |g| g.name.as_str());
        let record = local_record(config, name, SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), 0, None, 0);
        NewConfig { networks: switch_config(config).networks, statics: static_updates(config), record }
    }
}

/// What [`Node::apply_config`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConfigChange {
    /// Networks removed, as (port, VNI): the driver closes their TAPs. First, in this order.
    pub removed: Vec<(PortId, Vni)>,
    /// Networks added, as (port, VNI): the driver opens their TAPs. After the removals.
    pub added: Vec<(PortId, Vni)>,
    /// The static control updates applied, in order (withdrawals first).
    pub updates: Vec<ControlUpdate>,
    /// The version of this host's gossip record, when the reload changed it.
    pub record_version: Option<u64>,
}

impl ConfigChange {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty() && self.updates.is_empty() && self.record_version.is_none()
    }
}

/// The update that withdraws `u`, for those that add something.
fn inverse(u: &ControlUpdate) -> Option<ControlUpdate> {
    Some(match u.clone() {
        ControlUpdate::PeerUp { vni, peer } => ControlUpdate::PeerDown { vni, underlay: peer.underlay },
        ControlUpdate::RouteAdd { vni, subnet, .. } => ControlUpdate::RouteRemove { vni, subnet },
        ControlUpdate::ArpBinding { vni, ip, .. } => ControlUpdate::ArpUnbind { vni, ip },
        ControlUpdate::StaticFdb { vni, mac, .. } => ControlUpdate::StaticFdbRemove { vni, mac },
        _ => return None,
    })
}

impl Node {
    /// Apply configuration `new` at `now`, as the difference from what is in force.
    pub fn apply_config(&mut self, now: Instant, new: NewConfig) -> ConfigChange {
        let NewConfig { networks, statics, record } = new;
        let mut change = ConfigChange::default();
        // VNIs whose network goes (removed, or changed and re-added), and the specs to add.
        let gone: Vec<Vni> = self.networks.iter().filter(|old| !networks.contains(old)).map(|old| old.vni).collect();
        let fresh: Vec<NetworkSpec> = networks.iter().filter(|new| !self.networks.contains(new)).cloned().collect();
        let kept = |u: &ControlUpdate| u.vni().is_none_or(|v| !gone.contains(&v));
        let withdrawn: Vec<ControlUpdate> = self.statics.iter().filter(|u| !(kept(u) && statics.contains(u))).filter_map(inverse).collect();
        let applied: Vec<ControlUpdate> = statics.iter().filter(|u| !(kept(u) && self.statics.contains(u))).cloned().collect();
        let restarted: Vec<Vni> = gone.iter().copied().filter(|v| fresh.iter().any(|f| f.vni == *v)).collect();

        for u in withdrawn {
            self.switch.apply(now, u.clone());
            change.updates.push(u);
        }
        for vni in gone {
            if let Some(port) = self.switch.remove_network(vni) {
                change.removed.push((port, vni));
            }
        }
        for spec in fresh {
            let vni = spec.vni;
            change.added.push((self.switch.add_network(now, spec), vni));
        }
        for u in applied {
            self.switch.apply(now, u.clone());
            change.updates.push(u);
        }
        self.networks = networks;
        self.statics = statics;
        change.record_version = self.reannounce(now, &record, &restarted);
        change
    }

    /// Rebuild this host's gossip record from `configured` and push it to every live member if it
    /// changed (returns its new version); gossip's facts about the `restarted` networks are
    /// installed again, since the switch forgot them.
    fn reannounce(&mut self, now: Instant, configured: &MemberRecord, restarted: &[Vni]) -> Option<u64> {
        let since = unix_secs(self.wall_clock(now));
        let leased: Vec<Vni> = self.leases.iter().map(|l| l.vni()).collect();
        let g = self.gossip.as_mut()?;
        for &vni in restarted {
            g.membership.reinstall_network(now, vni);
        }
        let current = g.membership.local();
        let rebuilt = record::reconfigured(current, configured, &leased, restarted, since);
        let version = if rebuilt == *current {
            None
        } else {
            match g.membership.set_local(now, rebuilt) {
                Ok(()) => {
                    g.membership.push_local_now(now);
                    Some(g.membership.local().version)
                }
                Err(e) => {
                    tracing::warn!("gossip record too large, the reloaded networks are not announced: {e}");
                    None
                }
            }
        };
        // Whatever gossip now installs or withdraws for the networks added, changed or removed.
        self.fan_out(now);
        version
    }
}

#[cfg(test)]
#[path = "reconfig_tests.rs"]
mod tests;
