//! From member records to [`ControlUpdate`] values: the desired table, conflicts, and the diff.
//!
//! The desired table is a pure function of (the local record, the records of live remote hosts).
//! Each call to [`Tables::sync`] recomputes it and emits the difference from the previous one:
//! removals first (ARP and static FDB, routes, then peers), then additions (peers, ESP keys,
//! routes, ARP and static FDB), so a consumer never sees a route via a peer it does not know.
//! Each container binding `(ip, mac)` of a member yields both an `ArpBinding` (proxy-ARP) and a
//! `StaticFdb` (`mac` behind the member's underlay), so known MACs are unicast, not flooded.
//! A fact carries the epoch of the host
//! it came from; when a host restarts (new epoch) every fact of it is withdrawn and announced
//! again, so consumers flush whatever they learned from the old life.
//!
//! Only networks the local host is on produce updates.
//!
//! Ownership conflicts. Two hosts may claim overlapping subnets or the same container address on
//! one network. Every host resolves them with the same deterministic rule, so all hosts agree
//! without talking: claims are ordered by `(since, host name)` and taken in that order; a claim
//! that overlaps one already taken is refused and reported as a [`Conflict`]. The older claim
//! (lower `since`, then lower name) keeps the subnet or address; the newer claim is not
//! installed anywhere. Both sides (and every other host) log a warning once per conflict and
//! show it in status.

use crate::wire::vxlan::Vni;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::record::MemberRecord;
use super::update::{ControlUpdate, PeerInfo};
use crate::wire::ethernet::EthernetAddress;

/// What is in conflict.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Contested {
    /// Overlapping subnets: the winner's and the loser's.
    Subnet {
        /// The subnet kept.
        kept: IpNet,
        /// The subnet refused.
        refused: IpNet,
    },
    /// The same container address.
    Address(IpAddr),
}

/// One refused claim.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Conflict {
    /// The network.
    pub vni: Vni,
    /// What both hosts claim.
    pub what: Contested,
    /// Host that keeps it (the older claim).
    pub winner: String,
    /// Host whose claim is not installed.
    pub loser: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Peer(Vni, IpAddr),
    Route(Vni, IpNet),
    Arp(Vni, IpAddr),
    Esp(IpAddr),
    Fdb(Vni, EthernetAddress),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Val {
    Peer { vtep_mac: Option<EthernetAddress>, epoch: u64 },
    Route { via: IpAddr, next_hop: Option<IpAddr>, epoch: u64 },
    Arp { mac: EthernetAddress, epoch: u64 },
    Esp { key: [u8; 32], epoch: u64 },
    Fdb { underlay: IpAddr, epoch: u64 },
}

/// The installed view: last desired table and known conflicts.
#[derive(Debug, Default)]
pub struct Tables {
    facts: BTreeMap<Key, Val>,
    conflicts: BTreeSet<Conflict>,
}

impl Tables {
    /// Conflicts found by the last [`Tables::sync`].
    pub fn conflicts(&self) -> impl Iterator<Item = &Conflict> {
        self.conflicts.iter()
    }

    /// Recomputes the desired table from `local` and the `remote` live records, appends the
    /// updates that turn the previous table into it, and returns newly found conflicts.
    pub fn sync<'a>(
        &mut self,
        local: &'a MemberRecord,
        remote: impl Iterator<Item = &'a MemberRecord> + Clone,
        out: &mut Vec<ControlUpdate>,
    ) -> Vec<Conflict> {
        let all = || std::iter::once(local).chain(remote.clone());
        let (accepted, conflicts) = resolve(local, all());
        let mut want = BTreeMap::new();
        for rec in remote.clone() {
            let mut shares_a_network = false;
            for net in &rec.networks {
                if local.network(net.vni).is_none() {
                    continue;
                }
                shares_a_network = true;
                want.insert(Key::Peer(net.vni, rec.underlay), Val::Peer { vtep_mac: rec.vtep_mac, epoch: rec.epoch });
                for s in &net.subnets {
                    if accepted.contains(&(net.vni, Owned::Subnet(s.net), rec.name.as_str())) {
                        let next_hop = super::update::next_hop(&s.net, rec.underlay, rec.address6);
                        want.insert(Key::Route(net.vni, s.net), Val::Route { via: rec.underlay, next_hop, epoch: rec.epoch });
                    }
                }
                for b in &net.bindings {
                    if accepted.contains(&(net.vni, Owned::Ip(b.ip), rec.name.as_str())) {
                        want.insert(Key::Arp(net.vni, b.ip), Val::Arp { mac: b.mac, epoch: rec.epoch });
                        // The container's MAC lives behind that member: unicast to it, no flooding.
                        want.insert(Key::Fdb(net.vni, b.mac), Val::Fdb { underlay: rec.underlay, epoch: rec.epoch });
                    }
                }
            }
            if let (true, Some(key)) = (shares_a_network, rec.esp_public_key) {
                want.insert(Key::Esp(rec.underlay), Val::Esp { key, epoch: rec.epoch });
            }
        }
        diff(&self.facts, &want, out);
        self.facts = want;
        let fresh: Vec<Conflict> = conflicts.difference(&self.conflicts).cloned().collect();
        self.conflicts = conflicts;
        fresh
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Owned {
    Subnet(IpNet),
    Ip(IpAddr),
}

/// Whether two subnets share an address (never across families).
fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Applies the ownership rule on the networks `local` is on. Returns the accepted claims as
/// `(vni, owned, host name)` and the conflicts.
fn resolve<'a>(local: &MemberRecord, all: impl Iterator<Item = &'a MemberRecord>) -> (BTreeSet<(Vni, Owned, &'a str)>, BTreeSet<Conflict>) {
    // (vni) -> claims sorted by (since, name)
    let mut subnets: BTreeMap<Vni, Vec<(u64, &'a str, IpNet)>> = BTreeMap::new();
    let mut ips: BTreeMap<Vni, Vec<(u64, &'a str, IpAddr)>> = BTreeMap::new();
    for rec in all {
        for net in &rec.networks {
            if local.network(net.vni).is_none() {
                continue;
            }
            for s in &net.subnets {
                subnets.entry(net.vni).or_default().push((s.since, rec.name.as_str(), s.net));
            }
            for b in &net.bindings {
                ips.entry(net.vni).or_default().push((b.since, rec.name.as_str(), b.ip));
            }
        }
    }
    let mut accepted = BTreeSet::new();
    let mut conflicts = BTreeSet::new();
    for (vni, mut claims) in subnets {
        claims.sort();
        let mut taken: Vec<(IpNet, &str)> = Vec::new();
        for (_, name, net) in claims {
            match taken.iter().find(|(t, _)| overlaps(t, &net)) {
                Some((kept, winner)) if *winner != name => {
                    conflicts.insert(Conflict {
                        vni,
                        what: Contested::Subnet { kept: *kept, refused: net },
                        winner: winner.to_string(),
                        loser: name.to_string(),
                    });
                }
                // A host overlapping itself: keep the first, quietly.
                Some(_) => {}
                None => {
                    taken.push((net, name));
                    accepted.insert((vni, Owned::Subnet(net), name));
                }
            }
        }
    }
    for (vni, mut claims) in ips {
        claims.sort();
        let mut taken: BTreeMap<IpAddr, &str> = BTreeMap::new();
        for (_, name, ip) in claims {
            match taken.get(&ip) {
                Some(winner) if *winner != name => {
                    conflicts.insert(Conflict { vni, what: Contested::Address(ip), winner: winner.to_string(), loser: name.to_string() });
                }
                Some(_) => {}
                None => {
                    taken.insert(ip, name);
                    accepted.insert((vni, Owned::Ip(ip), name));
                }
            }
        }
    }
    (accepted, conflicts)
}

fn removal(key: &Key) -> Option<ControlUpdate> {
    match *key {
        Key::Peer(vni, underlay) => Some(ControlUpdate::PeerDown { vni, underlay }),
        Key::Route(vni, subnet) => Some(ControlUpdate::RouteRemove { vni, subnet }),
        Key::Arp(vni, ip) => Some(ControlUpdate::ArpUnbind { vni, ip }),
        Key::Fdb(vni, mac) => Some(ControlUpdate::StaticFdbRemove { vni, mac }),
        // There is no key withdrawal: a peer without a PeerUp is not used.
        Key::Esp(_) => None,
    }
}

fn addition(key: &Key, val: &Val) -> ControlUpdate {
    match (*key, val) {
        (Key::Peer(vni, underlay), Val::Peer { vtep_mac, .. }) => {
            ControlUpdate::PeerUp { vni, peer: PeerInfo { underlay, vtep_mac: *vtep_mac } }
        }
        (Key::Route(vni, subnet), Val::Route { via, next_hop, .. }) => {
            ControlUpdate::RouteAdd { vni, subnet, via: *via, next_hop: *next_hop }
        }
        (Key::Arp(vni, ip), Val::Arp { mac, .. }) => ControlUpdate::ArpBinding { vni, ip, mac: *mac },
        (Key::Esp(underlay), Val::Esp { key, epoch }) => ControlUpdate::EspKey { underlay, public_key: *key, epoch: *epoch },
        (Key::Fdb(vni, mac), Val::Fdb { underlay, .. }) => ControlUpdate::StaticFdb { vni, mac, underlay: *underlay },
        // Keys and values are built in pairs above.
        (key, _) => unreachable!("mismatched fact {key:?}"),
    }
}

fn rank(key: &Key) -> u8 {
    match key {
        Key::Peer(..) => 0,
        Key::Esp(..) => 1,
        Key::Route(..) => 2,
        Key::Arp(..) | Key::Fdb(..) => 3,
    }
}

fn diff(old: &BTreeMap<Key, Val>, new: &BTreeMap<Key, Val>, out: &mut Vec<ControlUpdate>) {
    let mut gone: Vec<&Key> = old.iter().filter(|(k, v)| new.get(k) != Some(v)).map(|(k, _)| k).collect();
    // Withdraw ARP and routes before peers.
    gone.sort_by_key(|k| std::cmp::Reverse(rank(k)));
    // A changed ESP key or route needs no explicit removal: the addition replaces it, unless the
    // host restarted (epoch changed), which withdraws its peer and so everything behind it.
    out.extend(gone.iter().filter(|k| !new.contains_key(k) || matches!(k, Key::Peer(..) | Key::Arp(..))).filter_map(|k| removal(k)));
    let mut came: Vec<(&Key, &Val)> = new.iter().filter(|(k, v)| old.get(k) != Some(v)).collect();
    came.sort_by_key(|(k, _)| rank(k));
    out.extend(came.into_iter().map(|(k, v)| addition(k, v)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::fixtures::{host_ip, host_record, SIM_VNI};

    #[test]
    fn peer_first_then_routes_and_withdrawal_in_reverse() {
        let local = host_record(0, 1);
        let r1 = host_record(1, 1);
        let mut t = Tables::default();
        let mut out = Vec::new();
        t.sync(&local, [&r1].into_iter(), &mut out);
        assert!(matches!(out[0], ControlUpdate::PeerUp { vni: SIM_VNI, .. }));
        assert!(matches!(out[1], ControlUpdate::EspKey { epoch: 1, .. }));
        assert!(matches!(out[2], ControlUpdate::RouteAdd { via, .. } if via == host_ip(1)));
        assert!(matches!(out[3], ControlUpdate::ArpBinding { .. }));
        // Next to the binding: the container's MAC behind that member's underlay.
        let binding = &r1.networks[0].bindings[0];
        assert_eq!(out[4], ControlUpdate::StaticFdb { vni: SIM_VNI, mac: binding.mac, underlay: host_ip(1).into() });
        assert_eq!(out.len(), 5);
        out.clear();
        t.sync(&local, [&r1].into_iter(), &mut out);
        assert!(out.is_empty(), "no change, no updates");
        t.sync(&local, std::iter::empty(), &mut out);
        assert!(matches!(out[0], ControlUpdate::ArpUnbind { .. }));
        assert_eq!(out[1], ControlUpdate::StaticFdbRemove { vni: SIM_VNI, mac: binding.mac });
        assert!(matches!(out[2], ControlUpdate::RouteRemove { .. }));
        assert!(matches!(out[3], ControlUpdate::PeerDown { underlay, .. } if underlay == host_ip(1)));
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn restart_withdraws_and_reannounces() {
        let local = host_record(0, 1);
        let mut t = Tables::default();
        let mut out = Vec::new();
        t.sync(&local, [&host_record(1, 1)].into_iter(), &mut out);
        out.clear();
        t.sync(&local, [&host_record(1, 2)].into_iter(), &mut out);
        assert!(matches!(out[0], ControlUpdate::ArpUnbind { .. }));
        assert!(matches!(out[1], ControlUpdate::PeerDown { .. }));
        assert!(matches!(out[2], ControlUpdate::PeerUp { .. }));
        assert!(matches!(out[3], ControlUpdate::EspKey { epoch: 2, .. }));
        assert!(out.iter().any(|u| matches!(u, ControlUpdate::RouteAdd { .. })));
        // The MAC did not move, so no explicit removal: the PeerDown flushed it and it comes back.
        assert!(!out.iter().any(|u| matches!(u, ControlUpdate::StaticFdbRemove { .. })));
        assert!(out.iter().any(|u| matches!(u, ControlUpdate::StaticFdb { underlay, .. } if *underlay == host_ip(1))));
    }

    #[test]
    fn other_networks_are_ignored_and_conflicts_resolved_by_age_then_name() {
        let local = host_record(0, 1);
        let mut other_net = host_record(1, 1);
        other_net.networks[0].vni = Vni::new_const(7);
        let mut a = host_record(2, 1);
        let mut b = host_record(3, 1);
        let net: IpNet = "198.19.200.0/24".parse().unwrap();
        a.networks[0].subnets = vec![super::super::record::SubnetClaim { net, since: 9 }];
        b.networks[0].subnets = vec![super::super::record::SubnetClaim { net, since: 9 }];
        let mut t = Tables::default();
        let mut out = Vec::new();
        let fresh = t.sync(&local, [&other_net, &a, &b].into_iter(), &mut out);
        assert!(!out.iter().any(|u| matches!(u, ControlUpdate::PeerUp { peer, .. } if peer.underlay == host_ip(1))));
        // Same age: the lower name (h002) keeps it.
        assert_eq!(fresh.len(), 1);
        assert_eq!((fresh[0].winner.as_str(), fresh[0].loser.as_str()), ("h002", "h003"));
        assert!(out.iter().any(|u| matches!(u, ControlUpdate::RouteAdd { subnet, via, .. } if *subnet == net && *via == host_ip(2))));
        // Reported once only.
        out.clear();
        assert!(t.sync(&local, [&other_net, &a, &b].into_iter(), &mut out).is_empty());
        assert_eq!(t.conflicts().count(), 1);
    }

    #[test]
    fn ipv6_subnets_route_via_the_underlay_with_address6_as_next_hop_and_conflict_per_family() {
        let local = host_record(0, 1);
        let mut a = host_record(1, 1);
        let mut b = host_record(2, 1);
        let net6: IpNet = "fd00:42:1::/64".parse().unwrap();
        a.address6 = Some("fd00:18::2".parse().unwrap());
        a.networks[0].subnets.push(super::super::record::SubnetClaim { net: net6, since: 1 });
        // b claims an overlapping IPv6 prefix later: refused, its IPv4 subnet is kept.
        b.networks[0].subnets.push(super::super::record::SubnetClaim { net: "fd00:42::/32".parse().unwrap(), since: 5 });
        let mut t = Tables::default();
        let mut out = Vec::new();
        let fresh = t.sync(&local, [&a, &b].into_iter(), &mut out);
        let v6 = ControlUpdate::RouteAdd { vni: SIM_VNI, subnet: net6, via: host_ip(1).into(), next_hop: a.address6.map(IpAddr::V6) };
        assert!(out.contains(&v6), "{out:?}");
        assert!(out.iter().any(|u| matches!(u, ControlUpdate::RouteAdd { subnet: IpNet::V4(_), via, next_hop, .. }
            if *via == IpAddr::from(host_ip(2)) && *next_hop == Some(*via))));
        assert!(!out.iter().any(|u| matches!(u, ControlUpdate::RouteAdd { subnet, .. } if subnet.prefix_len() == 32)));
        assert_eq!(fresh.len(), 1);
        assert_eq!(fresh[0].what, Contested::Subnet { kept: net6, refused: "fd00:42::/32".parse().unwrap() });
        // A new address6 re-announces the route with the new next hop.
        out.clear();
        a.address6 = Some("fd00:18::22".parse().unwrap());
        t.sync(&local, [&a, &b].into_iter(), &mut out);
        let renewed = ControlUpdate::RouteAdd { vni: SIM_VNI, subnet: net6, via: host_ip(1).into(), next_hop: a.address6.map(IpAddr::V6) };
        assert_eq!(out, vec![renewed]);
    }
}
