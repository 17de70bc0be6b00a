//! A new configuration applied to a running node, as a difference, without touching what did not
//! change.
//!
//! What the configuration file decides about a node's switch is two lists of values: the
//! switched networks ([`NetworkSpec`], one port each) and the static [`ControlUpdate`]s (peers,
//! routes, proxy-ARP bindings). [`Node::apply_config`] compares both with what is in force and
//! applies only the difference, so a network whose spec and statics are unchanged is never
//! touched: its port, FDB, peers and learned state stay as they are, and its traffic does not
//! notice the reload.
//!
//! - A network whose VNI is new is added (on the first free port); one whose VNI is gone is
//!   removed (its port is retired, and everything learned for it is forgotten). A network whose
//!   spec changed (MTU, mode, subnet, ...) is removed and added again: it starts afresh, as after
//!   a restart.
//! - Static updates are diffed as values: what is no longer configured is withdrawn with its
//!   inverse (`PeerUp` -> `PeerDown`, `RouteAdd` -> `RouteRemove`, `ArpBinding` -> `ArpUnbind`,
//!   `StaticFdb` -> `StaticFdbRemove`) while its network still exists, then networks are removed
//!   and added, then what is newly configured (including every static of an added network) is
//!   applied.
//!
//! The updates go to the switch only, not to the kernel programmers' queue: the networks those
//! program (kernel and host-subnet modes) are not reloadable (the daemon refuses such a reload),
//! and their queue takes gossip's updates for every VNI. Like any other static update, a
//! withdrawn static peer that gossip also announces comes back with gossip's next update about
//! it. The node's gossip record is not rebuilt.

use std::time::Instant;

use super::Node;
use crate::control::ControlUpdate;
use crate::dataplane::{NetworkSpec, PortId};
use crate::wire::vxlan::Vni;

/// What [`Node::apply_config`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConfigChange {
    /// Networks removed, as (port, VNI): the driver closes their TAPs. First, in this order.
    pub removed: Vec<(PortId, Vni)>,
    /// Networks added, as (port, VNI): the driver opens their TAPs. After the removals.
    pub added: Vec<(PortId, Vni)>,
    /// The control updates applied, in order (withdrawals first).
    pub updates: Vec<ControlUpdate>,
}

impl ConfigChange {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty() && self.updates.is_empty()
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
    /// Apply a new configuration of the switched networks (`networks`, none of them encrypted)
    /// and their static updates (`statics`) at `now`, as the difference from what is in force.
    pub fn apply_config(&mut self, now: Instant, networks: Vec<NetworkSpec>, statics: Vec<ControlUpdate>) -> ConfigChange {
        let mut change = ConfigChange::default();
        // VNIs whose network goes (removed, or changed and re-added), and the specs to add.
        let gone: Vec<Vni> = self.networks.iter().filter(|old| !networks.contains(old)).map(|old| old.vni).collect();
        let fresh: Vec<NetworkSpec> = networks.iter().filter(|new| !self.networks.contains(new)).cloned().collect();
        let kept = |u: &ControlUpdate| u.vni().is_none_or(|v| !gone.contains(&v));
        let withdrawn: Vec<ControlUpdate> = self.statics.iter().filter(|u| !(kept(u) && statics.contains(u))).filter_map(inverse).collect();
        let applied: Vec<ControlUpdate> = statics.iter().filter(|u| !(kept(u) && self.statics.contains(u))).cloned().collect();

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
        change
    }
}
