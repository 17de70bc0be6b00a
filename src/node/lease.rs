//! Subnet leases: a host of a routed or host-subnet network configured with `cluster_cidr` and
//! `host_prefix` takes a free subnet of the range through gossip instead of having one configured.
//!
//! A lease is nothing more than a subnet claim in this host's gossip record, so it rides on what
//! gossip already has: every host sees every claim, and overlapping claims are settled by the
//! rule of [`crate::control::tables`] (ordered by `(since, host name)`, the older claim keeps
//! the subnet). This module only decides *which* subnet to claim and when to give it up:
//!
//! - **Start.** A lease kept from an earlier run (persisted by the driver, with its claim time)
//!   is claimed again at once, so a restart keeps the subnet and its age. Without one, the host
//!   first listens for [`LEASE_SETTLE`] so it knows the claims of the hosts already up, then
//!   picks.
//! - **Choice.** Deterministic and spread out: a linear probe over the range's subnets starting
//!   at `fnv1a(host name) % count`, skipping every subnet a held record claims. Hosts starting
//!   together thus mostly pick different subnets without talking; when two still collide the
//!   conflict rule below separates them.
//! - **Conflict.** On every check, if a live host claims a subnet overlapping ours with an older
//!   `(since, name)`, we lost: the lease moves to a fresh pick (claimed now), the move is logged
//!   with the winner and both claim times, and counted. The winner never moves, so each conflict
//!   ends with one move, and the loser's new claim is younger than every claim it saw, so it
//!   cannot take a subnet away from anybody.
//! - **Claim times.** Received records carry claim times already floored by trust (a host's
//!   claims count from no earlier than when this host first trusted it, see
//!   [`crate::control::trust`]); our own claim time is compared raw. A fresh lease is always made
//!   after the host's first record went out, so the floor does not change its order; a lease kept
//!   from long ago, seen by a host whose trust store was reset, can be judged younger there than
//!   here: that host refuses it (a logged conflict) while this one does not move.
//! - **Exhaustion.** With no free subnet left the host holds no lease and says so (counted); it
//!   tries again on the next check.
//!
//! Sans-IO: time comes in as `now` (monotonic) and `wall` (Unix seconds for claim times); the
//! records come in as an iterator; the result is a [`LeaseEvent`] the node acts on.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv4Net};

use crate::config::LeaseRange;
use crate::control::{MemberRecord, SubnetClaim};
use crate::counters::counters;

use crate::wire::vxlan::Vni;

/// How long a host without a kept lease listens to gossip before it picks a subnet.
pub const LEASE_SETTLE: Duration = Duration::from_secs(3);

counters! {
    /// What the subnet leases of one host did.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct LeaseStats {
        /// Subnets leased fresh (first pick, or a pick after a lost conflict).
        pub acquired: u64 = counter,
        /// Leases kept from an earlier run and claimed again at start.
        pub kept: u64 = counter,
        /// Leases given up because an older claim overlapped them.
        pub moved: u64 = counter,
        /// Checks that found no free subnet in the range.
        pub exhausted: u64 = counter,
    }
}

/// What one network's lease starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSetup {
    /// The network.
    pub vni: Vni,
    /// The range leased from.
    pub range: LeaseRange,
    /// The lease of an earlier run, with its first claim time, if any.
    pub kept: Option<SubnetClaim>,
}

/// A change of a lease, for the node to apply and the driver to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseEvent {
    /// The network.
    pub vni: Vni,
    /// The subnet now held, with its claim time; `None` when the host holds none.
    pub claim: Option<SubnetClaim>,
    /// The subnet given up, if any.
    pub previous: Option<Ipv4Net>,
}

/// One network's lease.
#[derive(Debug, Clone)]
pub struct Lease {
    vni: Vni,
    range: LeaseRange,
    current: Option<SubnetClaim>,
    settle_until: Instant,
    stats: LeaseStats,
}

/// 64-bit FNV-1a: a hash that is the same on every host and every build.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The IPv4 prefix of a claim: leases are IPv4 only, so IPv6 claims (a host's `subnet6`) are
/// neither ours to move nor in the way of a pick.
fn ipv4(net: IpNet) -> Option<Ipv4Net> {
    match net {
        IpNet::V4(n) => Some(n),
        IpNet::V6(_) => None,
    }
}

/// Where host `name` starts probing `range`.
pub fn first_choice(range: &LeaseRange, name: &str) -> Ipv4Net {
    range.subnet((fnv1a(name.as_bytes()) % u64::from(range.count())) as u32)
}

/// The first subnet of `range` from `name`'s starting point that overlaps none of `taken`.
pub fn pick(range: &LeaseRange, name: &str, taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    let count = range.count();
    let start = (fnv1a(name.as_bytes()) % u64::from(count)) as u32;
    (0..count).map(|i| range.subnet((start + i) % count)).find(|s| !taken.iter().any(|t| overlaps(t, s)))
}

/// The IPv4 subnet claims of `records` on `vni`, with their owners and claim times.
fn claims_on<'a>(vni: Vni, records: impl Iterator<Item = &'a MemberRecord>) -> impl Iterator<Item = (&'a str, Ipv4Net, u64)> {
    records.flat_map(move |r| {
        r.network(vni).into_iter().flat_map(move |n| n.subnets.iter().filter_map(move |s| Some((r.name.as_str(), ipv4(s.net)?, s.since))))
    })
}

impl Lease {
    /// A lease started at `now`: the kept one is held at once, otherwise none until a pick.
    pub fn new(setup: LeaseSetup, now: Instant) -> Lease {
        let mut stats = LeaseStats::default();
        let kept = setup.kept.filter(|k| ipv4(k.net).is_some_and(|n| setup.range.holds(n)));
        if kept.is_some() {
            stats.kept += 1;
        }
        Lease { vni: setup.vni, range: setup.range, current: kept, settle_until: now + LEASE_SETTLE, stats }
    }

    /// The network.
    pub fn vni(&self) -> Vni {
        self.vni
    }

    /// The range leased from.
    pub fn range(&self) -> LeaseRange {
        self.range
    }

    /// The subnet held now, with its claim time.
    pub fn current(&self) -> Option<SubnetClaim> {
        self.current
    }

    /// The gateway of the subnet held: its first address, as for a configured subnet.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.current.and_then(|c| ipv4(c.net)).map(|n| Ipv4Addr::from(u32::from(n.network()) + 1))
    }

    /// What the lease did so far.
    pub fn stats(&self) -> LeaseStats {
        self.stats
    }

    /// Check the lease at `now` (`wall` in Unix seconds) as host `name`, against the `live`
    /// remote records (conflicts) and every `held` one (subnets to avoid); the change, if any.
    pub fn check<'a>(
        &mut self,
        now: Instant,
        wall: u64,
        name: &str,
        live: impl Iterator<Item = &'a MemberRecord>,
        held: impl Iterator<Item = &'a MemberRecord>,
    ) -> Option<LeaseEvent> {
        let previous = match self.current.and_then(|c| Some((ipv4(c.net)?, c.since))) {
            Some((ours, our_since)) => {
                let older = claims_on(self.vni, live)
                    .filter(|&(owner, net, since)| owner != name && overlaps(&net, &ours) && (since, owner) < (our_since, name))
                    .min_by_key(|&(owner, _, since)| (since, owner))?;
                let (winner, theirs, their_since) = older;
                tracing::warn!(
                    vni = %self.vni, lost = %ours, winner, winner_since = their_since, our_since,
                    "subnet lease conflict: {winner} claims {theirs} since {their_since}, older than our claim of {ours} since {our_since}; moving"
                );
                self.stats.moved += 1;
                Some(ours)
            }
            None if now < self.settle_until => return None,
            None => None,
        };
        let taken: Vec<Ipv4Net> =
            claims_on(self.vni, held).filter(|&(owner, _, _)| owner != name).map(|(_, net, _)| net).chain(previous).collect();
        self.current = pick(&self.range, name, &taken).map(|net| SubnetClaim { net: net.into(), since: wall });
        match self.current {
            Some(c) => {
                self.stats.acquired += 1;
                tracing::info!(vni = %self.vni, subnet = %c.net, previous = ?previous, "subnet leased from {}", self.range.cluster_cidr);
            }
            None => {
                self.stats.exhausted += 1;
                tracing::warn!(vni = %self.vni, "no free /{} left in {}: no subnet leased", self.range.host_prefix, self.range.cluster_cidr);
            }
        }
        (self.current.is_some() || previous.is_some()).then_some(LeaseEvent { vni: self.vni, claim: self.current, previous })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::fixtures::host_record;

    fn range(cidr: &str, p: u8) -> LeaseRange {
        LeaseRange { cluster_cidr: cidr.parse().unwrap(), host_prefix: p }
    }

    fn claiming(i: usize, vni: Vni, net: &str, since: u64) -> MemberRecord {
        let mut r = host_record(i, 1);
        r.networks[0].vni = vni;
        r.networks[0].subnets = vec![SubnetClaim { net: net.parse().unwrap(), since }];
        r
    }

    #[test]
    fn range_cuts_and_picks_skip_taken_subnets() {
        let r = range("10.42.0.0/22", 24);
        assert_eq!(r.count(), 4);
        assert_eq!(r.subnet(3).to_string(), "10.42.3.0/24");
        assert!(r.holds("10.42.2.0/24".parse().unwrap()) && !r.holds("10.42.2.0/25".parse().unwrap()));
        let first = first_choice(&r, "a");
        assert_eq!(pick(&r, "a", &[]), Some(first));
        let all: Vec<Ipv4Net> = (0..4).map(|i| r.subnet(i)).collect();
        let second = pick(&r, "a", &[first]).unwrap();
        assert_ne!(second, first);
        // A wider claim blocks every subnet it covers.
        assert_eq!(pick(&r, "a", &["10.42.0.0/22".parse().unwrap()]), None);
        assert_eq!(pick(&r, "a", &all[..3]), Some(all[3]));
    }

    #[test]
    fn settles_first_then_picks_and_moves_only_for_an_older_claim() {
        let vni = crate::sim::SIM_VNI;
        let t0 = Instant::now();
        let r = range("10.42.0.0/22", 24);
        let mut lease = Lease::new(LeaseSetup { vni, range: r, kept: None }, t0);
        assert_eq!(lease.check(t0, 100, "me", std::iter::empty(), std::iter::empty()), None, "still settling");
        let t1 = t0 + LEASE_SETTLE;
        let ev = lease.check(t1, 103, "me", std::iter::empty(), std::iter::empty()).unwrap();
        let mine = ev.claim.unwrap();
        assert_eq!((mine.ipv4(), mine.since, ev.previous), (Some(first_choice(&r, "me")), 103, None));
        // A younger claim on the same subnet does not move us; neither does a tie with a larger name.
        let younger = claiming(1, vni, &mine.net.to_string(), 200);
        let tie = claiming(2, vni, &mine.net.to_string(), 103);
        assert_eq!(lease.check(t1, 300, "h000", [&younger, &tie].into_iter(), std::iter::empty()), None);
        // An older one does: the lease moves to a subnet nobody holds and is claimed now.
        let older = claiming(3, vni, &mine.net.to_string(), 50);
        let other = claiming(4, vni, &pick(&r, "h000", &[mine.ipv4().unwrap()]).unwrap().to_string(), 60);
        let ev = lease.check(t1, 400, "h000", [&older].into_iter(), [&older, &other].into_iter()).unwrap();
        let moved = ev.claim.unwrap();
        assert_eq!(ev.previous, mine.ipv4());
        assert_eq!(moved.since, 400);
        assert!(moved.net != mine.net && moved.net != other.networks[0].subnets[0].net);
        assert_eq!(lease.stats(), LeaseStats { acquired: 2, kept: 0, moved: 1, exhausted: 0 });
        assert_eq!(lease.gateway(), Some(Ipv4Addr::from(u32::from(moved.ipv4().unwrap().network()) + 1)));
        // Other networks' claims are ignored.
        let elsewhere = claiming(5, Vni::new_const(99), &moved.net.to_string(), 1);
        assert_eq!(lease.check(t1, 500, "h000", [&elsewhere].into_iter(), std::iter::empty()), None);
    }

    #[test]
    fn a_kept_lease_is_held_at_once_and_a_full_range_leases_nothing() {
        let vni = crate::sim::SIM_VNI;
        let t0 = Instant::now();
        let r = range("10.42.0.0/23", 24);
        let kept = SubnetClaim { net: "10.42.1.0/24".parse().unwrap(), since: 7 };
        let lease = Lease::new(LeaseSetup { vni, range: r, kept: Some(kept) }, t0);
        assert_eq!((lease.current(), lease.stats().kept), (Some(kept), 1));
        // A kept lease outside the range (the range was changed) is not held.
        let outside = SubnetClaim { net: "10.9.0.0/24".parse().unwrap(), since: 7 };
        assert_eq!(Lease::new(LeaseSetup { vni, range: r, kept: Some(outside) }, t0).current(), None);
        let mut empty = Lease::new(LeaseSetup { vni, range: r, kept: None }, t0);
        let a = claiming(1, vni, "10.42.0.0/24", 1);
        let b = claiming(2, vni, "10.42.1.0/24", 1);
        assert_eq!(empty.check(t0 + LEASE_SETTLE, 9, "me", std::iter::empty(), [&a, &b].into_iter()), None);
        assert_eq!(empty.stats().exhausted, 1);
    }
}
