//! Host-subnet mode: each peer host owns a container subnet, and this host reaches it with a
//! plain kernel route `PEER_SUBNET via PEER_UNDERLAY_IP` (flannel "host-gw", Rancher's
//! per-host subnets). No encapsulation at all: the underlay routers never see the container
//! addresses because every hop is a direct L2 delivery to the owning host. That only works
//! when every peer is on the same L2 segment as this host, so each peer is checked before its
//! route is installed: the kernel's own route to the peer's underlay address must have no
//! gateway (`ip route get PEER` shows no `via`). A peer behind a router is refused with an
//! error naming it, instead of installing a route the router would blackhole.
//!
//! Ownership: every route installed here carries the routing protocol number
//! [`VXSWITCH_RT_PROTO`] (86). After a restart, [`HostSubnetRoutes::reconcile`] lists the
//! routes with that number, deletes the ones no longer wanted and installs the missing ones;
//! routes with any other protocol (static, kernel, dhcp, bird...) are never listed, replaced or
//! deleted. A new route is added with `ip route add` semantics (not `replace`), so a subnet
//! that someone else already routes is refused rather than taken over; only our own routes
//! are replaced when a subnet moves to another gateway.
//!
//! The decisions (desired vs. installed, update vs. current table, peer verdict) are pure
//! functions ([`plan_reconcile`], [`plan_update`], [`on_link_verdict`]) tested without root;
//! [`HostSubnetRoutes`] only carries them out through [`Netlink`].

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};

use super::netlink::{Ipv4Route, Netlink, NetlinkError, RouteLookup};
use crate::control::ControlUpdate;
use crate::wire::vxlan::Vni;

/// The routing protocol number of vxswitch routes (`ip route ... proto 86`).
///
/// 86 (0x56, ASCII 'V') is free in iproute2's `rt_protos` (reserved: 0-4, 8-16, 18, 42, 99,
/// 186-189, 192) and in the kernel's `RTPROT_*` list. Add `86 vxswitch` to
/// `/etc/iproute2/rt_protos` to see the name in `ip route` output.
pub const VXSWITCH_RT_PROTO: u8 = 86;

/// One kernel change decided by the planner.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RouteAction {
    /// Delete our route for `subnet` (matching gateway `via` when known).
    Delete {
        /// The subnet to withdraw.
        subnet: Ipv4Net,
        /// Its gateway, if the installed route has one.
        via: Option<Ipv4Addr>,
    },
    /// Install `subnet via via`: replace our current route for the subnet if `replace`,
    /// else add it exclusively (never overwriting a route someone else owns).
    Install {
        /// The peer's container subnet.
        subnet: Ipv4Net,
        /// The peer's underlay address.
        via: Ipv4Addr,
        /// A route of ours for the subnet exists (with another gateway).
        replace: bool,
        /// That route's gateway, if it has one.
        old: Option<Ipv4Addr>,
    },
}

/// A route this host believes it has installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnedRoute {
    /// The peer's underlay address (the gateway).
    pub via: Ipv4Addr,
    /// The network the route was announced on; `None` for routes adopted by `reconcile`.
    pub vni: Option<Vni>,
}

/// Plans the start-up reconciliation: `installed` are the kernel routes (only those with
/// [`VXSWITCH_RT_PROTO`] are considered), `desired` the wanted `(subnet, via)` pairs (for a
/// subnet listed twice the last entry wins). Deletes come first, then installs, each sorted.
pub fn plan_reconcile(desired: &[(Ipv4Net, Ipv4Addr)], installed: &[Ipv4Route]) -> Vec<RouteAction> {
    let want: BTreeMap<Ipv4Net, Ipv4Addr> = desired.iter().map(|(n, v)| (n.trunc(), *v)).collect();
    let ours: Vec<&Ipv4Route> = installed.iter().filter(|r| r.proto == VXSWITCH_RT_PROTO).collect();
    let mut actions = Vec::new();
    for r in &ours {
        if !want.contains_key(&r.dst.trunc()) {
            actions.push(RouteAction::Delete { subnet: r.dst.trunc(), via: r.gateway });
        }
    }
    for (subnet, via) in &want {
        let existing: Vec<&&Ipv4Route> = ours.iter().filter(|r| r.dst.trunc() == *subnet).collect();
        if existing.iter().any(|r| r.gateway == Some(*via)) {
            continue;
        }
        let replace = !existing.is_empty();
        let old = existing.first().and_then(|r| r.gateway);
        actions.push(RouteAction::Install { subnet: *subnet, via: *via, replace, old });
    }
    actions.sort();
    actions
}

/// Plans the kernel changes for one control-plane update against the routes we own.
/// Updates that do not concern host-subnet routes plan nothing.
pub fn plan_update(table: &BTreeMap<Ipv4Net, OwnedRoute>, update: &ControlUpdate) -> Vec<RouteAction> {
    match update {
        // Host-subnet networks need an IPv4 underlay (the configuration says so); IPv6 subnets
        // are not programmed here.
        ControlUpdate::RouteAdd { subnet: IpNet::V4(subnet), via: std::net::IpAddr::V4(via), .. } => {
            let subnet = subnet.trunc();
            match table.get(&subnet) {
                Some(r) if r.via == *via => Vec::new(),
                current => vec![RouteAction::Install { subnet, via: *via, replace: current.is_some(), old: current.map(|r| r.via) }],
            }
        }
        ControlUpdate::RouteRemove { subnet: IpNet::V4(subnet), .. } => {
            table.get(&subnet.trunc()).map(|r| vec![RouteAction::Delete { subnet: subnet.trunc(), via: Some(r.via) }]).unwrap_or_default()
        }
        ControlUpdate::PeerDown { vni, underlay } => table
            .iter()
            .filter(|(_, r)| r.via == *underlay && r.vni.is_none_or(|v| v == *vni))
            .map(|(subnet, r)| RouteAction::Delete { subnet: *subnet, via: Some(r.via) })
            .collect(),
        _ => Vec::new(),
    }
}

/// Why a route was not installed, or a kernel request failed.
#[derive(Debug, thiserror::Error)]
pub enum HostSubnetError {
    /// The peer is reached through a router, so a `via PEER` route cannot work.
    #[error(
        "host-subnet: peer {peer} (owner of {subnet}) is not directly reachable on the underlay: \
         the kernel routes it via {gateway}; host-subnet mode needs every peer on the same L2 \
         segment (use a VXLAN/ESP network for this peer); route not installed"
    )]
    PeerNotOnLink {
        /// The peer's underlay address.
        peer: Ipv4Addr,
        /// The subnet it owns.
        subnet: Ipv4Net,
        /// The router the kernel would use to reach it.
        gateway: Ipv4Addr,
    },
    /// The peer address is one of this host's own addresses.
    #[error("host-subnet: peer {peer} (owner of {subnet}) is a local address of this host; route not installed")]
    PeerIsLocal {
        /// The peer's underlay address.
        peer: Ipv4Addr,
        /// The subnet it claims.
        subnet: Ipv4Net,
    },
    /// The kernel has no route to the peer at all.
    #[error("host-subnet: peer {peer} (owner of {subnet}) is unreachable; route not installed: {source}")]
    PeerUnreachable {
        /// The peer's underlay address.
        peer: Ipv4Addr,
        /// The subnet it owns.
        subnet: Ipv4Net,
        /// The failed `ip route get`.
        #[source]
        source: NetlinkError,
    },
    /// A route for the subnet exists with another protocol; it is left alone.
    #[error("host-subnet: {subnet} is already routed by someone else (not proto {VXSWITCH_RT_PROTO}); left untouched: {source}")]
    SubnetTaken {
        /// The subnet.
        subnet: Ipv4Net,
        /// The EEXIST from `ip route add`.
        #[source]
        source: NetlinkError,
    },
    /// Any other kernel failure.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
}

/// Judges the kernel's route to `peer`: direct (no gateway, not local) or an error.
pub fn on_link_verdict(peer: Ipv4Addr, subnet: Ipv4Net, lookup: &RouteLookup) -> Result<(), HostSubnetError> {
    if lookup.local {
        return Err(HostSubnetError::PeerIsLocal { peer, subnet });
    }
    match lookup.gateway {
        Some(gateway) => Err(HostSubnetError::PeerNotOnLink { peer, subnet, gateway }),
        None => Ok(()),
    }
}

/// What [`HostSubnetRoutes::reconcile`] did.
#[derive(Debug, Default)]
pub struct ReconcileReport {
    /// Stale routes deleted.
    pub removed: Vec<Ipv4Net>,
    /// Routes added or replaced.
    pub installed: Vec<(Ipv4Net, Ipv4Addr)>,
    /// Desired routes not installed, with the reason (also logged).
    pub refused: Vec<HostSubnetError>,
}

/// The host-subnet route programmer: consumes [`ControlUpdate`]s and keeps the kernel's
/// `proto 86` routes equal to the cluster's subnet ownership.
#[derive(Debug)]
pub struct HostSubnetRoutes {
    nl: Netlink,
    table: BTreeMap<Ipv4Net, OwnedRoute>,
}

impl HostSubnetRoutes {
    /// A programmer working through `nl` (open it in the namespace to program).
    pub fn new(nl: Netlink) -> Self {
        HostSubnetRoutes { nl, table: BTreeMap::new() }
    }

    /// The routes this programmer owns, by subnet.
    pub fn routes(&self) -> &BTreeMap<Ipv4Net, OwnedRoute> {
        &self.table
    }

    /// Brings the kernel's `proto 86` routes to exactly `desired` (start-up). Refused peers
    /// are logged and reported, not fatal; a kernel failure on anything else is returned.
    pub fn reconcile(&mut self, desired: &[(Ipv4Net, Ipv4Addr)]) -> Result<ReconcileReport, HostSubnetError> {
        let installed = self.nl.routes_by_proto(VXSWITCH_RT_PROTO)?;
        self.table = installed.iter().filter_map(|r| Some((r.dst.trunc(), OwnedRoute { via: r.gateway?, vni: None }))).collect();
        let mut report = ReconcileReport::default();
        for action in plan_reconcile(desired, &installed) {
            match self.execute(&action, None) {
                Ok(()) => match action {
                    RouteAction::Delete { subnet, .. } => report.removed.push(subnet),
                    RouteAction::Install { subnet, via, .. } => report.installed.push((subnet, via)),
                },
                Err(e @ HostSubnetError::Netlink(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!("{e}");
                    report.refused.push(e);
                }
            }
        }
        Ok(report)
    }

    /// Applies one control-plane update. A refused peer is logged and returned as the error
    /// (other routes are unaffected); updates unrelated to routes are ignored.
    pub fn apply(&mut self, update: &ControlUpdate) -> Result<(), HostSubnetError> {
        let vni = match update {
            ControlUpdate::RouteAdd { vni, .. } => Some(*vni),
            _ => None,
        };
        let mut first_err = None;
        for action in plan_update(&self.table, update) {
            if let Err(e) = self.execute(&action, vni) {
                tracing::warn!("{e}");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Carries out one action and updates the owned-route table to match the kernel.
    fn execute(&mut self, action: &RouteAction, vni: Option<Vni>) -> Result<(), HostSubnetError> {
        match *action {
            RouteAction::Delete { subnet, via } => self.delete(subnet, via),
            RouteAction::Install { subnet, via, replace, old } => {
                if let Err(refusal) = self.check_peer(via, subnet) {
                    // The subnet no longer lives behind the old gateway: withdraw that too.
                    if replace {
                        self.delete(subnet, old)?;
                    }
                    return Err(refusal);
                }
                let route = Ipv4Route::via(subnet, via, VXSWITCH_RT_PROTO);
                let result = if replace { self.nl.route_replace(&route) } else { self.nl.route_add(&route) };
                match result {
                    Ok(()) => {
                        self.table.insert(subnet, OwnedRoute { via, vni });
                        Ok(())
                    }
                    Err(e) if e.errno() == Some(libc::EEXIST) => Err(HostSubnetError::SubnetTaken { subnet, source: e }),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    fn delete(&mut self, subnet: Ipv4Net, via: Option<Ipv4Addr>) -> Result<(), HostSubnetError> {
        let mut route = Ipv4Route::via(subnet, Ipv4Addr::UNSPECIFIED, VXSWITCH_RT_PROTO);
        route.gateway = via;
        match self.nl.route_delete(&route) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {} // already gone: the goal is reached
            Err(e) => return Err(e.into()),
        }
        self.table.remove(&subnet);
        Ok(())
    }

    /// `ip route get PEER` must show a direct route.
    fn check_peer(&self, peer: Ipv4Addr, subnet: Ipv4Net) -> Result<(), HostSubnetError> {
        let lookup = self.nl.route_get(peer).map_err(|source| HostSubnetError::PeerUnreachable { peer, subnet, source })?;
        on_link_verdict(peer, subnet, &lookup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }
    fn route(dst: &str, gw: &str, proto: u8) -> Ipv4Route {
        Ipv4Route::via(net(dst), ip(gw), proto)
    }

    #[test]
    fn reconcile_deletes_stale_adds_missing_keeps_correct() {
        let installed = [
            route("198.19.1.0/24", "198.18.0.2", VXSWITCH_RT_PROTO), // wanted as is
            route("198.19.9.0/24", "198.18.0.9", VXSWITCH_RT_PROTO), // stale
            route("198.19.3.0/24", "198.18.0.3", 4),                 // static: not ours
        ];
        let desired = [(net("198.19.1.0/24"), ip("198.18.0.2")), (net("198.19.2.0/24"), ip("198.18.0.3"))];
        assert_eq!(
            plan_reconcile(&desired, &installed),
            vec![
                RouteAction::Delete { subnet: net("198.19.9.0/24"), via: Some(ip("198.18.0.9")) },
                RouteAction::Install { subnet: net("198.19.2.0/24"), via: ip("198.18.0.3"), replace: false, old: None },
            ]
        );
    }

    #[test]
    fn reconcile_never_deletes_other_protocols() {
        let installed = [route("198.19.3.0/24", "198.18.0.3", 4), route("198.19.4.0/24", "198.18.0.4", 2)];
        assert_eq!(plan_reconcile(&[], &installed), vec![]);
    }

    #[test]
    fn reconcile_replaces_a_moved_gateway_and_last_duplicate_wins() {
        let installed = [route("198.19.1.0/24", "198.18.0.2", VXSWITCH_RT_PROTO)];
        let desired = [(net("198.19.1.0/24"), ip("198.18.0.7")), (net("198.19.1.5/24"), ip("198.18.0.5"))];
        assert_eq!(
            plan_reconcile(&desired, &installed),
            vec![RouteAction::Install { subnet: net("198.19.1.0/24"), via: ip("198.18.0.5"), replace: true, old: Some(ip("198.18.0.2")) }]
        );
    }

    #[test]
    fn reconcile_of_an_exact_match_does_nothing() {
        let installed = [route("198.19.1.0/24", "198.18.0.2", VXSWITCH_RT_PROTO)];
        assert_eq!(plan_reconcile(&[(net("198.19.1.0/24"), ip("198.18.0.2"))], &installed), vec![]);
    }

    fn table(entries: &[(&str, &str, Option<Vni>)]) -> BTreeMap<Ipv4Net, OwnedRoute> {
        entries.iter().map(|(n, v, vni)| (net(n), OwnedRoute { via: ip(v), vni: *vni })).collect()
    }

    #[test]
    fn route_add_installs_replaces_or_does_nothing() {
        let t = table(&[("198.19.1.0/24", "198.18.0.2", Some(Vni::new_const(1042)))]);
        let add = |s: &str, v: &str| ControlUpdate::RouteAdd {
            vni: Vni::new_const(1042),
            subnet: net(s).into(),
            via: ip(v).into(),
            next_hop: Some(ip(v).into()),
        };
        assert_eq!(plan_update(&t, &add("198.19.1.0/24", "198.18.0.2")), vec![]);
        assert_eq!(
            plan_update(&t, &add("198.19.1.0/24", "198.18.0.4")),
            vec![RouteAction::Install { subnet: net("198.19.1.0/24"), via: ip("198.18.0.4"), replace: true, old: Some(ip("198.18.0.2")) }]
        );
        assert_eq!(
            plan_update(&t, &add("198.19.2.9/24", "198.18.0.3")),
            vec![RouteAction::Install { subnet: net("198.19.2.0/24"), via: ip("198.18.0.3"), replace: false, old: None }]
        );
    }

    #[test]
    fn route_remove_deletes_only_known_subnets() {
        let t = table(&[("198.19.1.0/24", "198.18.0.2", Some(Vni::new_const(1042)))]);
        let rm = |s: &str| ControlUpdate::RouteRemove { vni: Vni::new_const(1042), subnet: net(s).into() };
        assert_eq!(
            plan_update(&t, &rm("198.19.1.0/24")),
            vec![RouteAction::Delete { subnet: net("198.19.1.0/24"), via: Some(ip("198.18.0.2")) }]
        );
        assert_eq!(plan_update(&t, &rm("198.19.2.0/24")), vec![]);
    }

    #[test]
    fn peer_down_withdraws_that_peers_routes_on_that_network() {
        let t = table(&[
            ("198.19.1.0/24", "198.18.0.2", Some(Vni::new_const(1042))),
            ("198.19.5.0/24", "198.18.0.2", Some(Vni::new_const(7))), // same peer, other network
            ("198.19.6.0/24", "198.18.0.2", None),                    // adopted at start-up
            ("198.19.2.0/24", "198.18.0.3", Some(Vni::new_const(1042))), // other peer
        ]);
        let down = ControlUpdate::PeerDown { vni: Vni::new_const(1042), underlay: ip("198.18.0.2").into() };
        assert_eq!(
            plan_update(&t, &down),
            vec![
                RouteAction::Delete { subnet: net("198.19.1.0/24"), via: Some(ip("198.18.0.2")) },
                RouteAction::Delete { subnet: net("198.19.6.0/24"), via: Some(ip("198.18.0.2")) },
            ]
        );
    }

    #[test]
    fn unrelated_updates_plan_nothing() {
        let t = table(&[("198.19.1.0/24", "198.18.0.2", Some(Vni::new_const(1042)))]);
        let u = ControlUpdate::ArpUnbind { vni: Vni::new_const(1042), ip: ip("198.19.1.5").into() };
        assert_eq!(plan_update(&t, &u), vec![]);
    }

    #[test]
    fn verdict_accepts_direct_and_names_a_routed_peer() {
        let subnet = net("198.19.1.0/24");
        let direct = RouteLookup { gateway: None, oif: Some(2), local: false };
        assert!(on_link_verdict(ip("198.18.0.2"), subnet, &direct).is_ok());
        let routed = RouteLookup { gateway: Some(ip("198.18.0.254")), oif: Some(2), local: false };
        let err = on_link_verdict(ip("203.0.113.7"), subnet, &routed).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("peer 203.0.113.7") && msg.contains("via 198.18.0.254"), "{msg}");
        assert!(msg.contains("198.19.1.0/24") && msg.contains("not directly reachable"), "{msg}");
        let local = RouteLookup { gateway: None, oif: Some(1), local: true };
        assert!(matches!(on_link_verdict(ip("198.18.0.1"), subnet, &local), Err(HostSubnetError::PeerIsLocal { .. })));
    }
}
