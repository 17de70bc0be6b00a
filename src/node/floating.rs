//! The node's side of floating IPs: feeds [`Floating`] with this host's record, the live
//! members' records and the local sightings of each target container, publishes this host's
//! claims, and queues the resulting [`FloatingAction`]s for the kernel programmer.
//!
//! A sighting starts when the switch first reports ARP from the target behind a local TAP
//! ([`crate::dataplane::Switch::watched_local`]) and is stamped with the wall clock then (ms);
//! it ends when the container has been silent for the FDB ageing time. A stale sighting on the
//! old host does no harm: it is older than the new host's, and only a newer sighting claims. Evaluation runs after every gossip input and
//! timer, but only does work when the membership view or a sighting changed. A changed claim is
//! pushed to every live member at once: each hand-over step then costs one datagram's latency,
//! not a round of gossip.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Instant, UNIX_EPOCH};

use super::Node;
use crate::control::{Floating, FloatingAction, FloatingCounters, FloatingOwner, FloatingSpec};
use crate::wire::vxlan::Vni;

/// Floating-IP state of a node.
#[derive(Debug, Default)]
pub(super) struct NodeFloating {
    pub(super) state: Floating,
    /// (vni, target) -> wall ms of the first sighting of the current stay.
    sightings: BTreeMap<(Vni, Ipv4Addr), u64>,
    /// Membership view generation at the last evaluation (`None`: evaluate next time).
    generation: Option<u64>,
}

impl NodeFloating {
    pub(super) fn new(specs: Vec<FloatingSpec>) -> Self {
        NodeFloating { state: Floating::new(specs), sightings: BTreeMap::new(), generation: None }
    }
}

impl Node {
    /// Replace the floating IPs this host serves (configuration reload, control socket).
    pub fn set_floating(&mut self, now: Instant, specs: Vec<FloatingSpec>) {
        self.switch.watch(specs.iter().map(|s| (s.vni, s.target)));
        let changed = self.floating.state.set_specs(specs);
        self.floating.generation = None;
        if changed {
            self.publish_floating(now);
        }
        self.evaluate_floating(now);
    }

    /// The next floating-IP change for the kernel programmer.
    pub fn poll_floating(&mut self) -> Option<FloatingAction> {
        self.floating.state.poll_action()
    }

    /// Who holds each configured floating IP, as this host sees it.
    pub fn floating_owners(&self) -> Vec<FloatingOwner> {
        self.floating.state.owners()
    }

    /// Hand-over counters.
    pub fn floating_counters(&self) -> FloatingCounters {
        self.floating.state.counters()
    }

    /// Re-decide the floating IPs if the view or a sighting changed.
    pub(super) fn evaluate_floating(&mut self, now: Instant) {
        if self.floating.state.specs().is_empty() {
            return;
        }
        let wall_ms = self.wall_clock(now).duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let mut sightings_changed = false;
        for spec in self.floating.state.specs() {
            let key = (spec.vni, spec.target);
            let here = self.switch.watched_local(now, spec.vni, spec.target).is_some();
            match (here, self.floating.sightings.contains_key(&key)) {
                (true, false) => {
                    self.floating.sightings.insert(key, wall_ms);
                    sightings_changed = true;
                }
                (false, true) => {
                    self.floating.sightings.remove(&key);
                    sightings_changed = true;
                }
                _ => {}
            }
        }
        let Some(g) = self.gossip.as_ref() else { return };
        let generation = g.membership.view_generation();
        if !sightings_changed && self.floating.generation == Some(generation) {
            return;
        }
        self.floating.generation = Some(generation);
        let live: Vec<_> = g.membership.live_records().collect();
        let sightings = &self.floating.sightings;
        let changed = self.floating.state.evaluate(g.membership.local(), &live, |vni, ip| sightings.get(&(vni, ip)).copied());
        if changed {
            self.publish_floating(now);
        }
    }

    /// Put this host's claims in its record and push it to every live member.
    fn publish_floating(&mut self, now: Instant) {
        let Some(g) = self.gossip.as_mut() else { return };
        let mut record = g.membership.local().clone();
        record.floating = self.floating.state.claims();
        if let Err(e) = g.membership.set_local(now, record) {
            tracing::warn!("gossip record too large, floating IP claims not published: {e}");
            return;
        }
        g.membership.push_local_now(now);
    }
}
