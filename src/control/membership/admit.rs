//! What the membership believes and whom it answers: records are admitted through the trust
//! store and the claim policy, and record requests are answered only to members, rate-limited
//! and bounded. The rules and their reasons are in [`crate::control::trust`] and
//! [`crate::control::policy`].

use std::net::SocketAddr;
use std::time::Instant;

use tracing::warn;

use super::{Membership, Seen};
use crate::control::identity::NodeId;
use crate::control::policy::{self, RefuseReason};
use crate::control::record::MemberRecord;
use crate::control::trust::TrustStore;

/// Most datagrams one answer to a record request may take (the rest of a large record spreads
/// by gossip).
pub const MAX_PULL_REPLY_DATAGRAMS: usize = 8;

impl Seen {
    pub(super) fn new(id: NodeId) -> Self {
        Seen { id, last_heard: None, down_since: None, last_pull: None, last_answer: None }
    }
}

impl Membership {
    /// The largest epoch believable now (see [`policy::max_epoch`]).
    pub(super) fn max_epoch(&self) -> u64 {
        policy::max_epoch(self.local.epoch, self.now.saturating_duration_since(self.started))
    }

    /// The wall clock now, in Unix seconds.
    fn wall_now(&self) -> u64 {
        self.wall_at_start + self.now.saturating_duration_since(self.started).as_secs()
    }

    pub(super) fn set_inbox_clock(&mut self) {
        let max_epoch = self.max_epoch();
        self.inbox.lock().unwrap_or_else(|e| e.into_inner()).set_clock(self.now, max_epoch);
    }

    /// Folds what the inbox refused or evicted since the last call into the counters.
    pub(super) fn count_inbox(&mut self) {
        let now = self.inbox.lock().unwrap_or_else(|e| e.into_inner()).counts();
        for _ in self.inbox_seen.bad_signatures..now.bad_signatures {
            self.refused.add(RefuseReason::BadSignature);
        }
        for _ in self.inbox_seen.future_epochs..now.future_epochs {
            self.refused.add(RefuseReason::FutureEpoch);
        }
        self.inbox_seen = now;
    }

    fn refuse(&mut self, reason: RefuseReason, rec: &MemberRecord) {
        self.refused.add(reason);
        warn!(name = %rec.name, underlay = %rec.underlay, %reason, "gossip record refused");
    }

    /// Checks a correctly signed record against the trust store and the claim policy; returns it
    /// with refused subnets removed and claim ages floored, or `None` when it is refused whole.
    pub(super) fn admit(&mut self, mut rec: MemberRecord) -> Option<MemberRecord> {
        let key = rec.signing_key?;
        if rec.name == self.local.name {
            if key == self.signer.public() {
                self.accept(&rec);
            } else {
                warn!(name = %rec.name, other = %rec.gossip, "another host gossips under our name");
            }
            return None;
        }
        if rec.epoch > self.max_epoch() {
            self.refuse(RefuseReason::FutureEpoch, &rec);
            return None;
        }
        if self.records.get(&rec.name).is_some_and(|old| (old.epoch, old.version) >= (rec.epoch, rec.version)) {
            return None;
        }
        let floor = match self.trust.check(&rec.name, key, rec.underlay, self.wall_now()) {
            Ok(floor) => floor,
            Err(reason) => {
                self.refuse(reason, &rec);
                return None;
            }
        };
        let hosts = std::iter::once(&self.local).chain(Some(&rec)).chain(self.records.values());
        let underlays: Vec<std::net::IpAddr> =
            hosts.flat_map(|r| std::iter::once(r.underlay).chain(r.address6.map(std::net::IpAddr::V6))).collect();
        let policy = self.policy;
        let mut refused = Vec::new();
        for net in &mut rec.networks {
            net.subnets.retain(|s| match policy.check_subnet(&s.net, &underlays) {
                Ok(()) => true,
                Err(reason) => {
                    refused.push((s.net, reason));
                    false
                }
            });
            for s in &mut net.subnets {
                s.since = s.since.max(floor);
            }
            for b in &mut net.bindings {
                b.since = b.since.max(floor);
            }
        }
        for (net, reason) in refused {
            self.refused.add(reason);
            warn!(name = %rec.name, subnet = %net, %reason, "subnet claim refused");
        }
        self.accept(&rec);
        Some(rec)
    }

    fn accept(&mut self, rec: &MemberRecord) {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner()).accept(&rec.name, (rec.epoch, rec.version));
    }

    /// Answers a record request from `from`: only to a member (or an address heard from with an
    /// authenticated SWIM message), at most once per probe period, in a bounded reply.
    pub(super) fn answer_pull(&mut self, from: SocketAddr) {
        let member = self.swim.iter_members().any(|m| m.id().addr == from);
        let Some(seen) = self.seen.get_mut(&from).filter(|s| member || s.last_heard.is_some()) else {
            self.refused.add(RefuseReason::PullFromStranger);
            return;
        };
        let now: Instant = self.now;
        if seen.last_answer.is_some_and(|t| now < t + self.cfg.interval) {
            self.refused.add(RefuseReason::PullRateLimited);
            return;
        }
        seen.last_answer = Some(now);
        self.push_local_to(from, MAX_PULL_REPLY_DATAGRAMS);
    }

    /// Forgets the signing key and underlay bound to `name` (key rotation, new address), so its
    /// next record is trusted anew; whether a binding existed.
    pub fn forget(&mut self, name: &str) -> bool {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner()).forget(name);
        self.trust.forget(name)
    }

    /// The trust store, if it changed since the last call (the driver saves it).
    pub fn take_trust_changed(&mut self) -> Option<TrustStore> {
        self.trust.take_changed().then(|| self.trust.clone())
    }

    /// The trust store.
    pub fn trust(&self) -> &TrustStore {
        &self.trust
    }
}
