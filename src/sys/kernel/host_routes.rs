//! Host-subnet mode: each peer host owns a container subnet, and this host reaches it with a
//! plain kernel route `PEER_SUBNET via PEER_UNDERLAY_IP` (flannel "host-gw", Rancher's
//! per-host subnets); a dual-stack network adds `PEER_SUBNET6 via PEER_IP6`, through the peer's
//! address of the subnet's family. No encapsulation at all: the underlay routers never see the
//! container addresses because every hop is a direct L2 delivery to the owning host. That only
//! works when every peer is on the same L2 segment as this host, so each peer is checked before
//! its route is installed: the kernel's own route to the peer's address must have no gateway
//! (`ip route get PEER` shows no `via`). A peer behind a router is refused with an error naming
//! it, instead of installing a route the router would blackhole.
//!
//! Ownership: every route installed here carries the routing protocol number
//! [`VXSWITCH_RT_PROTO`] (86), in both families. After a restart,
//! [`HostSubnetRoutes::reconcile`] lists the IPv4 and IPv6 routes with that number, deletes the
//! ones no longer wanted and installs the missing ones; routes with any other protocol (static,
//! kernel, dhcp, bird...) are never listed, replaced or deleted. A new route is added with
//! `ip route add` semantics (not `replace`), so a subnet that someone else already routes is
//! refused rather than taken over; only our own routes are replaced when a subnet moves to
//! another gateway.
//!
//! The decisions (desired vs. installed, update vs. current table, peer verdict) are pure
//! functions ([`plan_reconcile`], [`plan_update`], [`on_link_verdict`]) tested without root;
//! [`HostSubnetRoutes`] only carries them out through [`Netlink`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::netlink::{Ipv4Route, Ipv6Route, Netlink, NetlinkError, Route, RouteFamily, RouteLookup};
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
        subnet: IpNet,
        /// Its gateway, if the installed route has one.
        via: Option<IpAddr>,
    },
    /// Install `subnet via via`: replace our current route for the subnet if `replace`,
    /// else add it exclusively (never overwriting a route someone else owns).
    Install {
        /// The peer's container subnet.
        subnet: IpNet,
        /// The peer's address of the subnet's family.
        via: IpAddr,
        /// A route of ours for the subnet exists (with another gateway).
        replace: bool,
        /// That route's gateway, if it has one.
        old: Option<IpAddr>,
    },
}

/// A route this host believes it has installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnedRoute {
    /// The gateway: the peer's address of the subnet's family.
    pub via: IpAddr,
    /// The peer's underlay address (its identity in `PeerDown`), when it differs from `via` or
    /// is known; `None` for routes adopted by `reconcile`.
    pub peer: Option<IpAddr>,
    /// The network the route was announced on; `None` for routes adopted by `reconcile`.
    pub vni: Option<Vni>,
}

/// One of our routes as the kernel lists it, either family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelRoute {
    /// Destination.
    pub dst: IpNet,
    /// Gateway.
    pub gateway: Option<IpAddr>,
    /// Routing protocol number.
    pub proto: u8,
}

impl From<&Ipv4Route> for KernelRoute {
    fn from(r: &Ipv4Route) -> Self {
        KernelRoute { dst: IpNet::V4(r.dst), gateway: r.gateway.map(IpAddr::V4), proto: r.proto }
    }
}

impl From<&Ipv6Route> for KernelRoute {
    fn from(r: &Ipv6Route) -> Self {
        KernelRoute { dst: IpNet::V6(r.dst), gateway: r.gateway.map(IpAddr::V6), proto: r.proto }
    }
}

/// Whether `ip` is of `net`'s family.
fn same_family(net: &IpNet, ip: &IpAddr) -> bool {
    matches!((net, ip), (IpNet::V4(_), IpAddr::V4(_)) | (IpNet::V6(_), IpAddr::V6(_)))
}

/// The gateway of a route to `subnet` announced by the peer at underlay address `via`: the
/// peer's address of the subnet's family, i.e. `next_hop` (the peer's address in that family,
/// when the control plane knows it) or the underlay address itself. `None` when the peer has no
/// address of that family: such a subnet cannot be routed without encapsulation.
pub fn gateway_for(subnet: &IpNet, via: IpAddr, next_hop: Option<IpAddr>) -> Option<IpAddr> {
    [next_hop, Some(via)].into_iter().flatten().find(|a| same_family(subnet, a))
}

/// Plans the start-up reconciliation: `installed` are the kernel routes (only those with
/// [`VXSWITCH_RT_PROTO`] are considered), `desired` the wanted `(subnet, via)` pairs (for a
/// subnet listed twice the last entry wins). Deletes come first, then installs, each sorted.
pub fn plan_reconcile(desired: &[(IpNet, IpAddr)], installed: &[KernelRoute]) -> Vec<RouteAction> {
    let want: BTreeMap<IpNet, IpAddr> = desired.iter().map(|(n, v)| (n.trunc(), *v)).collect();
    let ours: Vec<&KernelRoute> = installed.iter().filter(|r| r.proto == VXSWITCH_RT_PROTO).collect();
    let mut actions = Vec::new();
    for r in &ours {
        if !want.contains_key(&r.dst.trunc()) {
            actions.push(RouteAction::Delete { subnet: r.dst.trunc(), via: r.gateway });
        }
    }
    for (subnet, via) in &want {
        let existing: Vec<&&KernelRoute> = ours.iter().filter(|r| r.dst.trunc() == *subnet).collect();
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
pub fn plan_update(table: &BTreeMap<IpNet, OwnedRoute>, update: &ControlUpdate) -> Vec<RouteAction> {
    match update {
        ControlUpdate::RouteAdd { subnet, via, next_hop, .. } => {
            let subnet = subnet.trunc();
            let Some(gateway) = gateway_for(&subnet, *via, *next_hop) else { return Vec::new() };
            match table.get(&subnet) {
                Some(r) if r.via == gateway => Vec::new(),
                current => vec![RouteAction::Install { subnet, via: gateway, replace: current.is_some(), old: current.map(|r| r.via) }],
            }
        }
        ControlUpdate::RouteRemove { subnet, .. } => {
            let subnet = subnet.trunc();
            table.get(&subnet).map(|r| vec![RouteAction::Delete { subnet, via: Some(r.via) }]).unwrap_or_default()
        }
        ControlUpdate::PeerDown { vni, underlay } => table
            .iter()
            .filter(|(_, r)| (r.via == *underlay || r.peer == Some(*underlay)) && r.vni.is_none_or(|v| v == *vni))
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
        /// The peer's address (the route's gateway).
        peer: IpAddr,
        /// The subnet it owns.
        subnet: IpNet,
        /// The router the kernel would use to reach it.
        gateway: IpAddr,
    },
    /// The peer address is one of this host's own addresses.
    #[error("host-subnet: peer {peer} (owner of {subnet}) is a local address of this host; route not installed")]
    PeerIsLocal {
        /// The peer's address.
        peer: IpAddr,
        /// The subnet it claims.
        subnet: IpNet,
    },
    /// The kernel has no route to the peer at all.
    #[error("host-subnet: peer {peer} (owner of {subnet}) is unreachable; route not installed: {source}")]
    PeerUnreachable {
        /// The peer's address.
        peer: IpAddr,
        /// The subnet it owns.
        subnet: IpNet,
        /// The failed `ip route get`.
        #[source]
        source: Box<NetlinkError>,
    },
    /// A route for the subnet exists with another protocol; it is left alone.
    #[error("host-subnet: {subnet} is already routed by someone else (not proto {VXSWITCH_RT_PROTO}); left untouched: {source}")]
    SubnetTaken {
        /// The subnet.
        subnet: IpNet,
        /// The EEXIST from `ip route add`.
        #[source]
        source: Box<NetlinkError>,
    },
    /// Any other kernel failure.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
}

/// Judges the kernel's route to `peer`: direct (no gateway, not local) or an error.
pub fn on_link_verdict(peer: IpAddr, subnet: IpNet, lookup: &RouteLookup) -> Result<(), HostSubnetError> {
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
    pub removed: Vec<IpNet>,
    /// Routes added or replaced.
    pub installed: Vec<(IpNet, IpAddr)>,
    /// Desired routes not installed, with the reason (also logged).
    pub refused: Vec<HostSubnetError>,
}

/// The host-subnet route programmer: consumes [`ControlUpdate`]s and keeps the kernel's
/// `proto 86` routes (both families) equal to the cluster's subnet ownership.
#[derive(Debug)]
pub struct HostSubnetRoutes {
    nl: Netlink,
    table: BTreeMap<IpNet, OwnedRoute>,
}

impl HostSubnetRoutes {
    /// A programmer working through `nl` (open it in the namespace to program).
    pub fn new(nl: Netlink) -> Self {
        HostSubnetRoutes { nl, table: BTreeMap::new() }
    }

    /// The routes this programmer owns, by subnet.
    pub fn routes(&self) -> &BTreeMap<IpNet, OwnedRoute> {
        &self.table
    }

    /// The kernel's `proto 86` routes of both families.
    fn installed(&self) -> Result<Vec<KernelRoute>, NetlinkError> {
        let v4 = self.nl.routes_by_proto(VXSWITCH_RT_PROTO)?;
        let v6 = self.nl.routes6_by_proto(VXSWITCH_RT_PROTO)?;
        Ok(v4.iter().map(KernelRoute::from).chain(v6.iter().map(KernelRoute::from)).collect())
    }

    /// Brings the kernel's `proto 86` routes to exactly `desired` (start-up). Refused peers
    /// are logged and reported, not fatal; a kernel failure on anything else is returned.
    pub fn reconcile(&mut self, desired: &[(IpNet, IpAddr)]) -> Result<ReconcileReport, HostSubnetError> {
        let installed = self.installed()?;
        self.table =
            installed.iter().filter_map(|r| Some((r.dst.trunc(), OwnedRoute { via: r.gateway?, peer: None, vni: None }))).collect();
        let mut report = ReconcileReport::default();
        for action in plan_reconcile(desired, &installed) {
            match self.execute(&action, None, None) {
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
        let (vni, peer) = match update {
            ControlUpdate::RouteAdd { vni, via, .. } => (Some(*vni), Some(*via)),
            _ => (None, None),
        };
        let mut first_err = None;
        for action in plan_update(&self.table, update) {
            if let Err(e) = self.execute(&action, vni, peer) {
                tracing::warn!("{e}");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Carries out one action and updates the owned-route table to match the kernel.
    fn execute(&mut self, action: &RouteAction, vni: Option<Vni>, peer: Option<IpAddr>) -> Result<(), HostSubnetError> {
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
                let result = match (subnet, via) {
                    (IpNet::V4(dst), IpAddr::V4(gw)) => install(&self.nl, &Ipv4Route::via(dst, gw, VXSWITCH_RT_PROTO), replace),
                    (IpNet::V6(dst), IpAddr::V6(gw)) => install(&self.nl, &Ipv6Route::via(dst, gw, VXSWITCH_RT_PROTO), replace),
                    // The planner only pairs a subnet with a gateway of its family.
                    _ => return Ok(()),
                };
                match result {
                    Ok(()) => {
                        self.table.insert(subnet, OwnedRoute { via, peer, vni });
                        Ok(())
                    }
                    Err(e) if e.errno() == Some(libc::EEXIST) => Err(HostSubnetError::SubnetTaken { subnet, source: Box::new(e) }),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    fn delete(&mut self, subnet: IpNet, via: Option<IpAddr>) -> Result<(), HostSubnetError> {
        let result = match subnet {
            IpNet::V4(dst) => {
                let mut route = Ipv4Route::via(dst, Ipv4Addr::UNSPECIFIED, VXSWITCH_RT_PROTO);
                route.gateway = via.and_then(|v| if let IpAddr::V4(v) = v { Some(v) } else { None });
                self.nl.route_delete(&route)
            }
            IpNet::V6(dst) => {
                let mut route = Ipv6Route::via(dst, Ipv6Addr::UNSPECIFIED, VXSWITCH_RT_PROTO);
                route.gateway = via.and_then(|v| if let IpAddr::V6(v) = v { Some(v) } else { None });
                self.nl.route_delete(&route)
            }
        };
        match result {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {} // already gone: the goal is reached
            Err(e) => return Err(e.into()),
        }
        self.table.remove(&subnet);
        Ok(())
    }

    /// `ip route get PEER` must show a direct route.
    fn check_peer(&self, peer: IpAddr, subnet: IpNet) -> Result<(), HostSubnetError> {
        let lookup = self.nl.route_get(peer).map_err(|e| HostSubnetError::PeerUnreachable { peer, subnet, source: Box::new(e) })?;
        on_link_verdict(peer, subnet, &lookup)
    }
}

/// Add `route`, or replace whatever route the kernel has to its destination.
fn install<A: RouteFamily>(nl: &Netlink, route: &Route<A>, replace: bool) -> Result<(), NetlinkError> {
    if replace {
        nl.route_replace(route)
    } else {
        nl.route_add(route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn route(dst: &str, gw: &str, proto: u8) -> KernelRoute {
        KernelRoute { dst: net(dst).trunc(), gateway: Some(ip(gw)), proto }
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

    fn table(entries: &[(&str, &str, Option<Vni>)]) -> BTreeMap<IpNet, OwnedRoute> {
        entries.iter().map(|(n, v, vni)| (net(n), OwnedRoute { via: ip(v), peer: None, vni: *vni })).collect()
    }

    #[test]
    fn route_add_installs_replaces_or_does_nothing() {
        let t = table(&[("198.19.1.0/24", "198.18.0.2", Some(Vni::new_const(1042)))]);
        let add =
            |s: &str, v: &str| ControlUpdate::RouteAdd { vni: Vni::new_const(1042), subnet: net(s), via: ip(v), next_hop: Some(ip(v)) };
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
        let rm = |s: &str| ControlUpdate::RouteRemove { vni: Vni::new_const(1042), subnet: net(s) };
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
        let down = ControlUpdate::PeerDown { vni: Vni::new_const(1042), underlay: ip("198.18.0.2") };
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
        let u = ControlUpdate::ArpUnbind { vni: Vni::new_const(1042), ip: ip("198.19.1.5") };
        assert_eq!(plan_update(&t, &u), vec![]);
    }

    #[test]
    fn ipv6_reconcile_and_family_of_the_gateway() {
        let installed = [
            route("fd00:19:1::/64", "2001:db8:18::2", VXSWITCH_RT_PROTO), // wanted as is
            route("fd00:19:9::/64", "2001:db8:18::9", VXSWITCH_RT_PROTO), // stale
            route("198.19.1.0/24", "198.18.0.2", VXSWITCH_RT_PROTO),      // IPv4 next to it, wanted
        ];
        let desired = [
            (net("fd00:19:1::/64"), ip("2001:db8:18::2")),
            (net("198.19.1.0/24"), ip("198.18.0.2")),
            (net("fd00:19:2::/64"), ip("2001:db8:18::3")),
        ];
        assert_eq!(
            plan_reconcile(&desired, &installed),
            vec![
                RouteAction::Delete { subnet: net("fd00:19:9::/64"), via: Some(ip("2001:db8:18::9")) },
                RouteAction::Install { subnet: net("fd00:19:2::/64"), via: ip("2001:db8:18::3"), replace: false, old: None },
            ]
        );
        // An IPv6 subnet goes via the peer's IPv6 address, an IPv4 one via its IPv4 address.
        let (v4, v6) = (ip("198.18.0.2"), ip("2001:db8:18::2"));
        assert_eq!(gateway_for(&net("fd00:19:1::/64"), v4, Some(v6)), Some(v6));
        assert_eq!(gateway_for(&net("198.19.1.0/24"), v4, Some(v6)), Some(v4));
        assert_eq!(gateway_for(&net("fd00:19:1::/64"), v6, None), Some(v6), "an IPv6 underlay");
        assert_eq!(gateway_for(&net("fd00:19:1::/64"), v4, None), None, "a peer without an IPv6 address");
        // A peer going down takes the IPv6 routes it was the underlay peer of.
        let mut t = table(&[("198.19.1.0/24", "198.18.0.2", Some(Vni::new_const(1042)))]);
        t.insert(net("fd00:19:1::/64"), OwnedRoute { via: v6, peer: Some(v4), vni: Some(Vni::new_const(1042)) });
        let down = ControlUpdate::PeerDown { vni: Vni::new_const(1042), underlay: v4 };
        assert_eq!(plan_update(&t, &down).len(), 2);
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
