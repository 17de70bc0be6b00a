//! Floating IPs: an external address that follows its container from host to host, held by
//! exactly one host at a time.
//!
//! Rancher's floating-IP plugin moved the address by polling metadata: the new host added it
//! while the old one might still answer ARP for it (both hosts answer), or the old host removed
//! it before the new one added it (nobody answers), for as long as the polls were apart. Here the
//! hand-over is a small protocol on the gossip records instead:
//!
//! - A host that sees the container behind its own TAP (ARP from the target address, its MAC
//!   learned as local) *claims* the address in its record with an epoch one higher than any
//!   claim it has seen. It does not take the address yet.
//! - A host holding a claim that sees a higher claim `(epoch, name)` from a live member
//!   *releases*: it removes the address, its NAT rules and their conntrack entries, then drops
//!   the claim from its record.
//! - A claimant *holds* (programs the host) only once no other live member claims the address:
//!   the old owner has released, or failure detection has declared it dead. A dead owner's claim
//!   is therefore taken over only after failure detection, never while it may still answer.
//! - Who claims when two hosts both see the container (a stale sighting on the old host): the
//!   host whose sighting is newer. Each claim carries the wall-clock time (ms) at which its host
//!   first saw the container, and a host claims over a live claim only with a newer sighting.
//!
//! The state machine is sans-IO: [`Floating::evaluate`] takes this host's record, the records of
//! the live members and the local sightings, returns this host's new claims when they changed
//! (to publish), and queues [`FloatingAction`]s for the kernel programmer.

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;

use super::record::MemberRecord;
use crate::wire::vxlan::Vni;

/// One floating IP as configured: `ip` on the uplink `interface` forwards to container `target`
/// on network `vni`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FloatingSpec {
    /// The external address.
    pub ip: Ipv4Addr,
    /// The uplink (external) interface the address lives on.
    pub interface: String,
    /// The network of the container.
    pub vni: Vni,
    /// The container's address.
    pub target: Ipv4Addr,
}

/// A claim on a floating IP, as spread in a member record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FloatingClaim {
    /// The external address.
    pub ip: Ipv4Addr,
    /// Higher than every claim on `ip` its host had seen when claiming.
    pub epoch: u64,
    /// When the claimant first saw the container (wall clock, ms since the Unix epoch).
    pub seen: u64,
}

/// What the host must do about one floating IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FloatingAction {
    /// Take the address: add it, announce it (gratuitous ARP), NAT to and from the container.
    Hold(FloatingSpec),
    /// Give it up: remove address and NAT rules, flush its conntrack entries.
    Release(FloatingSpec),
}

/// Counters of the hand-over protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FloatingCounters {
    /// Claims this host made.
    pub claims: u64,
    /// Addresses taken after the previous owner released them (a move).
    pub moves: u64,
    /// Addresses taken after the previous owner was declared dead.
    pub takeovers: u64,
    /// Addresses taken with no previous owner.
    pub first_holds: u64,
    /// Addresses this host released.
    pub releases: u64,
}

/// Who holds a floating IP, as this host sees it (for status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloatingOwner {
    /// The configured floating IP.
    pub spec: FloatingSpec,
    /// The live member with the highest claim, if any.
    pub owner: Option<String>,
    /// That claim's epoch.
    pub epoch: u64,
    /// Whether this host has the address programmed.
    pub held_here: bool,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    /// This host's claim.
    claim: Option<FloatingClaim>,
    held: bool,
    /// Highest epoch ever seen for the address.
    top_epoch: u64,
    /// The owner our claim displaced.
    displaced: Option<String>,
    /// Highest live claim seen at the last evaluation.
    owner: Option<(u64, String)>,
}

/// The floating IPs of one host (see the module doc).
#[derive(Debug, Default)]
pub struct Floating {
    specs: Vec<FloatingSpec>,
    slots: BTreeMap<Ipv4Addr, Slot>,
    actions: VecDeque<FloatingAction>,
    counters: FloatingCounters,
}

impl Floating {
    /// Floating IPs `specs` (one per address), none claimed yet.
    pub fn new(specs: Vec<FloatingSpec>) -> Self {
        let mut f = Floating::default();
        f.set_specs(specs);
        f
    }

    /// The configured floating IPs.
    pub fn specs(&self) -> &[FloatingSpec] {
        &self.specs
    }

    /// Replace the configured floating IPs; ones removed are released if held. Returns whether
    /// this host's claims changed (the caller then publishes [`Floating::claims`]).
    pub fn set_specs(&mut self, mut specs: Vec<FloatingSpec>) -> bool {
        specs.sort();
        specs.dedup_by(|a, b| a.ip == b.ip);
        let mut changed = false;
        for old in std::mem::take(&mut self.specs) {
            if specs.contains(&old) {
                continue;
            }
            if let Some(slot) = self.slots.remove(&old.ip) {
                changed |= slot.claim.is_some();
                if slot.held {
                    self.counters.releases += 1;
                    self.actions.push_back(FloatingAction::Release(old));
                }
            }
        }
        self.specs = specs;
        changed
    }

    /// This host's current claims, for its record.
    pub fn claims(&self) -> Vec<FloatingClaim> {
        self.slots.values().filter_map(|s| s.claim).collect()
    }

    /// The next thing the host must program.
    pub fn poll_action(&mut self) -> Option<FloatingAction> {
        self.actions.pop_front()
    }

    /// Counters.
    pub fn counters(&self) -> FloatingCounters {
        self.counters
    }

    /// Who holds each floating IP, as of the last evaluation.
    pub fn owners(&self) -> Vec<FloatingOwner> {
        self.specs
            .iter()
            .map(|spec| {
                let slot = self.slots.get(&spec.ip);
                let owner = slot.and_then(|s| s.owner.clone());
                FloatingOwner {
                    spec: spec.clone(),
                    epoch: owner.as_ref().map_or(0, |o| o.0),
                    owner: owner.map(|o| o.1),
                    held_here: slot.is_some_and(|s| s.held),
                }
            })
            .collect()
    }

    /// Decide every floating IP from `local` (this host's record), `live` (the records of the
    /// other live members) and `sighting(vni, target)`: since when (wall ms) the target has been
    /// seen behind this host, if it is. Returns whether this host's claims changed.
    pub fn evaluate(&mut self, local: &MemberRecord, live: &[&MemberRecord], sighting: impl Fn(Vni, Ipv4Addr) -> Option<u64>) -> bool {
        let mut changed = false;
        for spec in self.specs.clone() {
            changed |= self.evaluate_one(&spec, local, live, sighting(spec.vni, spec.target));
        }
        changed
    }

    fn evaluate_one(&mut self, spec: &FloatingSpec, local: &MemberRecord, live: &[&MemberRecord], seen_here: Option<u64>) -> bool {
        let others: Vec<(FloatingClaim, &str)> = live
            .iter()
            .filter(|r| r.name != local.name)
            .filter_map(|r| r.floating.iter().find(|c| c.ip == spec.ip).map(|c| (*c, r.name.as_str())))
            .collect();
        let top = others.iter().max_by(|a, b| (a.0.epoch, a.1).cmp(&(b.0.epoch, b.1))).map(|(c, n)| (*c, n.to_string()));
        let slot = self.slots.entry(spec.ip).or_default();
        slot.top_epoch = slot.top_epoch.max(top.as_ref().map_or(0, |t| t.0.epoch));
        let mut changed = false;
        match slot.claim {
            Some(mine) if top.as_ref().is_some_and(|(c, n)| (c.epoch, n.as_str()) > (mine.epoch, local.name.as_str())) => {
                // A higher claim from a live member: give the address up.
                slot.claim = None;
                slot.displaced = None;
                changed = true;
                if std::mem::take(&mut slot.held) {
                    self.counters.releases += 1;
                    self.actions.push_back(FloatingAction::Release(spec.clone()));
                }
            }
            Some(_) if !slot.held && others.is_empty() => {
                // Every other claim is gone (released, or its host declared dead): take it.
                slot.held = true;
                match slot.displaced.take() {
                    Some(prev) if live.iter().any(|r| r.name == prev) => self.counters.moves += 1,
                    Some(_) => self.counters.takeovers += 1,
                    None => self.counters.first_holds += 1,
                }
                self.actions.push_back(FloatingAction::Hold(spec.clone()));
            }
            Some(_) => {}
            None => {
                let wants = match (seen_here, &top) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    // Claim over a live owner only with a newer sighting of the container.
                    (Some(seen), Some((c, _))) => seen > c.seen,
                };
                if wants {
                    let epoch = slot.top_epoch + 1;
                    slot.top_epoch = epoch;
                    slot.claim = Some(FloatingClaim { ip: spec.ip, epoch, seen: seen_here.unwrap_or(0) });
                    slot.displaced = top.as_ref().map(|t| t.1.clone());
                    self.counters.claims += 1;
                    changed = true;
                    if others.is_empty() {
                        slot.held = true;
                        self.counters.first_holds += 1;
                        self.actions.push_back(FloatingAction::Hold(spec.clone()));
                    }
                }
            }
        }
        let mine = slot.claim.map(|c| (c.epoch, local.name.clone()));
        slot.owner = match (mine, top.map(|(c, n)| (c.epoch, n))) {
            (Some(m), Some(t)) => Some(m.max(t)),
            (m, t) => m.or(t),
        };
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::fixtures::host_record;

    fn spec() -> FloatingSpec {
        FloatingSpec {
            ip: Ipv4Addr::new(192, 0, 2, 200),
            interface: "up0".into(),
            vni: Vni::new_const(100),
            target: Ipv4Addr::new(10, 0, 0, 5),
        }
    }

    fn with_claims(i: usize, claims: Vec<FloatingClaim>) -> MemberRecord {
        MemberRecord { floating: claims, ..host_record(i, 1) }
    }

    #[test]
    fn lone_sighting_claims_and_holds_at_once() {
        let mut f = Floating::new(vec![spec()]);
        let me = host_record(0, 1);
        assert!(!f.evaluate(&me, &[], |_, _| None), "nothing seen, nothing claimed");
        assert!(f.evaluate(&me, &[], |_, _| Some(5)));
        assert_eq!(f.claims(), [FloatingClaim { ip: spec().ip, epoch: 1, seen: 5 }]);
        assert_eq!(f.poll_action(), Some(FloatingAction::Hold(spec())));
        assert_eq!(f.counters().first_holds, 1);
    }

    #[test]
    fn move_claims_higher_waits_for_release_then_holds() {
        let (a, b) = (0, 1);
        let mut fa = Floating::new(vec![spec()]);
        let mut fb = Floating::new(vec![spec()]);
        let ra = host_record(a, 1);
        fa.evaluate(&ra, &[], |_, _| Some(5));
        let ra = with_claims(a, fa.claims());
        assert_eq!(fa.poll_action(), Some(FloatingAction::Hold(spec())));
        // B sees the container later: claims with a higher epoch, but does not hold yet.
        let rb = host_record(b, 1);
        assert!(fb.evaluate(&rb, &[&ra], |_, _| Some(9)));
        assert_eq!(fb.claims()[0].epoch, 2);
        assert_eq!(fb.poll_action(), None, "the old owner has not released");
        let rb = with_claims(b, fb.claims());
        // A (still seeing its stale sighting) releases on B's higher claim, and does not re-claim.
        assert!(fa.evaluate(&ra, &[&rb], |_, _| Some(5)));
        assert_eq!(fa.poll_action(), Some(FloatingAction::Release(spec())));
        assert!(fa.claims().is_empty());
        let ra = with_claims(a, fa.claims());
        assert!(!fa.evaluate(&ra, &[&rb], |_, _| Some(5)), "an older sighting never claims over a live owner");
        // B holds once A's record carries no claim.
        fb.evaluate(&rb, &[&ra], |_, _| Some(9));
        assert_eq!(fb.poll_action(), Some(FloatingAction::Hold(spec())));
        assert_eq!((fb.counters().moves, fb.counters().takeovers, fa.counters().releases), (1, 0, 1));
        assert_eq!(fb.owners()[0].owner.as_deref(), Some("h001"));
    }

    #[test]
    fn dead_owner_is_taken_over_only_once_it_is_gone() {
        let mut fa = Floating::new(vec![spec()]);
        let mut fb = Floating::new(vec![spec()]);
        fa.evaluate(&host_record(0, 1), &[], |_, _| Some(5));
        let ra = with_claims(0, fa.claims());
        let rb = host_record(1, 1);
        fb.evaluate(&rb, &[&ra], |_, _| Some(9));
        for _ in 0..3 {
            fb.evaluate(&with_claims(1, fb.claims()), &[&ra], |_, _| Some(9));
            assert_eq!(fb.poll_action(), None, "A is live (not yet detected dead): B waits");
        }
        fb.evaluate(&with_claims(1, fb.claims()), &[], |_, _| Some(9));
        assert_eq!(fb.poll_action(), Some(FloatingAction::Hold(spec())));
        assert_eq!(fb.counters().takeovers, 1);
    }

    #[test]
    fn equal_epochs_resolve_by_name_and_removed_spec_releases() {
        let mut fa = Floating::new(vec![spec()]);
        let mut fb = Floating::new(vec![spec()]);
        fa.evaluate(&host_record(0, 1), &[], |_, _| Some(5));
        fb.evaluate(&host_record(1, 1), &[], |_, _| Some(5));
        let (ra, rb) = (with_claims(0, fa.claims()), with_claims(1, fb.claims()));
        fa.evaluate(&ra, &[&rb], |_, _| Some(5));
        fb.evaluate(&rb, &[&ra], |_, _| Some(5));
        assert!(fa.claims().is_empty(), "h000 < h001: A gives way");
        assert_eq!(fb.claims().len(), 1);
        assert_eq!(fa.poll_action(), Some(FloatingAction::Hold(spec())));
        assert_eq!(fa.poll_action(), Some(FloatingAction::Release(spec())));
        assert_eq!(fb.poll_action(), Some(FloatingAction::Hold(spec())));
        assert!(fb.set_specs(Vec::new()));
        assert_eq!(fb.poll_action(), Some(FloatingAction::Release(spec())));
        assert!(fb.claims().is_empty());
    }
}
