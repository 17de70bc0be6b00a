//! The sans-IO membership state machine: SWIM (foca) + sealed transport + record gossip + tables.
//!
//! Inputs: [`Membership::handle_datagram`], [`Membership::handle_timeout`], and local changes
//! ([`Membership::set_local`]). Outputs: [`Membership::poll_transmit`] (sealed datagrams),
//! [`Membership::poll_timeout`], [`Membership::poll_update`] ([`ControlUpdate`] values) and
//! [`Membership::members`] for status. Time only enters as `now`.
//!
//! Plaintext inside a sealed datagram starts with one kind byte:
//! `0` a SWIM message (foca), `1` record chunks pushed directly (`(u16 len, chunk)*`),
//! `2` a request for the sender's record. Direct pushes complement SWIM's piggybacked
//! dissemination: when a member comes up, both sides push their record to each other, and a
//! host that hears from an identity whose record it lacks asks for it (at most once per probe
//! period), so joins and partition heals converge in a few round trips even under loss.
//!
//! Records are signed by their host and checked before they are believed (see
//! [`super::trust`] and [`super::policy`], applied in `admit`); record requests are answered only
//! to known members, at most once per probe period each and with a bounded reply, so a captured
//! request replayed from spoofed sources cannot turn this host into an amplifier.

mod admit;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foca::{BroadcastHandler, Codec, Foca, Notification, OwnedNotification, Runtime, State, Timer};
use rand_foca::rngs::SmallRng;
use rand_foca::{Rng, SeedableRng};
use tracing::{debug, info, warn};

use super::config::GossipConfig;
use super::identity::{NodeId, SwimCodec};
use super::inbox::{Offer, RecordInbox};
use super::policy::{ClaimPolicy, RefuseReason, RefusedCounts};
use super::record::{ChunkKey, MemberRecord, RecordTooLarge};
use super::seal::{ClusterKey, DropCounts, DropReason, Opener, Sealer, SEAL_OVERHEAD};
use super::signing::SigningKey;
use super::tables::{Conflict, Tables};
use super::trust::TrustStore;
use super::update::ControlUpdate;
use crate::counters::counters;

const KIND_SWIM: u8 = 0;
const KIND_PUSH: u8 = 1;
const KIND_PULL: u8 = 2;
/// At most this many hosts are tracked.
pub const MAX_HOSTS: usize = 4096;

/// Liveness of a member as seen from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Answering probes.
    Alive,
    /// Missed a probe; dead unless it refutes within the suspicion timeout.
    Suspect,
    /// Declared dead: everything it announced is withdrawn.
    Dead,
}

/// One line of `vxswitch peers`.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberStatus {
    /// Host name (from its record), or the address while the record is unknown.
    pub name: String,
    /// Gossip address.
    pub addr: SocketAddr,
    /// Liveness.
    pub state: Liveness,
    /// When an authenticated datagram from it last arrived.
    pub last_heard: Option<Instant>,
    /// Its record, once received.
    pub record: Option<MemberRecord>,
}

counters! {
    /// Traffic and drop counters of the gossip membership.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct GossipStats {
        /// Datagrams handed to the driver.
        pub tx_datagrams: u64 = counter,
        /// Bytes handed to the driver (UDP payload).
        pub tx_bytes: u64 = counter,
        /// Datagrams received (before any check).
        pub rx_datagrams: u64 = counter,
        /// Bytes received.
        pub rx_bytes: u64 = counter,
        /// Largest datagram sent, in bytes.
        pub max_datagram: u64 = gauge,
        /// Members this host declared down (failure detection; a restart of theirs also counts).
        pub members_down: u64 = counter,
        /// Times this host learned that the cluster had declared *it* down.
        pub declared_down: u64 = counter,
        /// Received datagrams dropped, by reason.
        pub drops: DropCounts = nested,
        /// Records, claims and requests refused, by reason.
        pub refused: RefusedCounts = nested,
        /// Incomplete records dropped (too old, or to make room).
        pub pending_evicted: u64 = counter,
    }
}

/// What this host proves itself with and whom it already trusts.
pub struct Credentials {
    /// This host's record signing key.
    pub signer: SigningKey,
    /// Name -> key and underlay bindings from earlier runs.
    pub trust: TrustStore,
    /// The wall clock at the `now` the membership starts, in Unix seconds.
    pub wall_secs: u64,
}

impl Credentials {
    /// Credentials for simulations and tests: a key derived from `n`, a new trust store.
    pub fn for_tests(n: u64, wall_secs: u64) -> Self {
        Credentials { signer: SigningKey::for_tests(n), trust: TrustStore::new(wall_secs), wall_secs }
    }
}

/// Record chunks travel as foca custom broadcasts; this decides which are worth spreading.
struct RecordGossip {
    inbox: Arc<Mutex<RecordInbox>>,
}

#[derive(Debug, thiserror::Error)]
#[error("malformed record chunk")]
struct BadChunk;

impl BroadcastHandler<NodeId> for RecordGossip {
    type Key = ChunkKey;
    type Error = BadChunk;

    fn receive_item(&mut self, data: &[u8], sender: Option<&NodeId>) -> Result<Option<ChunkKey>, BadChunk> {
        let (key, _) = ChunkKey::parse(data).ok_or(BadChunk)?;
        if sender.is_none() {
            // Our own record: always (re)spread.
            return Ok(Some(key));
        }
        let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        match inbox.offer(data) {
            Offer::New => Ok(Some(key)),
            Offer::Stale => Ok(None),
            Offer::Malformed => Err(BadChunk),
        }
    }
}

type Swim = Foca<NodeId, SwimCodec, SmallRng, RecordGossip>;

/// What foca asked for during one call.
struct Effects<'a> {
    now: Instant,
    timers: &'a mut BTreeMap<(Instant, u64), Timer<NodeId>>,
    seq: &'a mut u64,
    sends: &'a mut Vec<(SocketAddr, Vec<u8>)>,
    notes: &'a mut Vec<OwnedNotification<NodeId>>,
}

impl Runtime<NodeId> for Effects<'_> {
    fn notify(&mut self, notification: Notification<'_, NodeId>) {
        self.notes.push(notification.to_owned());
    }

    fn send_to(&mut self, to: NodeId, data: &[u8]) {
        let mut plain = Vec::with_capacity(1 + data.len());
        plain.push(KIND_SWIM);
        plain.extend_from_slice(data);
        self.sends.push((to.addr, plain));
    }

    fn submit_after(&mut self, event: Timer<NodeId>, after: Duration) {
        *self.seq += 1;
        self.timers.insert((self.now + after, *self.seq), event);
    }
}

#[derive(Debug, Clone)]
struct Seen {
    id: NodeId,
    last_heard: Option<Instant>,
    down_since: Option<Instant>,
    last_pull: Option<Instant>,
    last_answer: Option<Instant>,
}

/// One host's gossip membership: see the module doc of [`crate::control`].
pub struct Membership {
    cfg: GossipConfig,
    now: Instant,
    swim: Swim,
    inbox: Arc<Mutex<RecordInbox>>,
    rng: SmallRng,
    sealer: Sealer,
    opener: Opener,
    timers: BTreeMap<(Instant, u64), Timer<NodeId>>,
    timer_seq: u64,
    plain_out: Vec<(SocketAddr, Vec<u8>)>,
    notes: Vec<OwnedNotification<NodeId>>,
    outbox: VecDeque<(SocketAddr, Vec<u8>)>,
    updates: VecDeque<ControlUpdate>,
    local: MemberRecord,
    records: HashMap<String, MemberRecord>,
    seen: HashMap<SocketAddr, Seen>,
    tables: Tables,
    dirty: bool,
    next_refresh: Instant,
    next_seed_announce: Instant,
    chunk_len: usize,
    stats: GossipStats,
    signer: SigningKey,
    trust: TrustStore,
    policy: ClaimPolicy,
    started: Instant,
    wall_at_start: u64,
    refused: RefusedCounts,
    inbox_seen: super::inbox::InboxCounts,
    view_generation: u64,
}

impl Membership {
    /// Starts membership for `local` (its `gossip` field is the address others reach it at and
    /// its `epoch` must be larger than any earlier run's). The sender epoch and SWIM randomness
    /// come from the operating system.
    pub fn new(cfg: GossipConfig, local: MemberRecord, key: &ClusterKey, creds: Credentials, now: Instant) -> Result<Self, RecordTooLarge> {
        let mut seed = [0u8; 8];
        // A failing system RNG leaves the seed at zero; the local epoch still separates runs.
        let _ = aws_lc_rs::rand::fill(&mut seed);
        let salt = local_salt(&local);
        Self::with_seed(cfg, local, key, creds, now, u64::from_le_bytes(seed) ^ salt)
    }

    /// Like [`Membership::new`] with every random choice drawn from `seed` (simulations).
    pub fn with_seed(
        cfg: GossipConfig,
        mut local: MemberRecord,
        key: &ClusterKey,
        creds: Credentials,
        now: Instant,
        seed: u64,
    ) -> Result<Self, RecordTooLarge> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let swim_mtu = cfg.mtu.saturating_sub(SEAL_OVERHEAD + 1);
        let chunk_len = (swim_mtu / 2).max(64);
        local.signing_key = Some(creds.signer.public());
        local.chunks(chunk_len, &creds.signer)?;
        let inbox = Arc::new(Mutex::new(RecordInbox::new(MAX_HOSTS, now)));
        let id = NodeId { addr: local.gossip, epoch: local.epoch, generation: 0 };
        let swim = Foca::with_custom_broadcast(
            id,
            cfg.foca(swim_mtu),
            SmallRng::seed_from_u64(rng.next_u64()),
            SwimCodec,
            RecordGossip { inbox: inbox.clone() },
        );
        let sealer = Sealer::new(key, &cfg.cluster, rng.next_u64());
        let opener = Opener::new(key, &cfg.cluster, cfg.window, cfg.mtu);
        let mut m = Membership {
            now,
            swim,
            inbox,
            rng,
            sealer,
            opener,
            timers: BTreeMap::new(),
            timer_seq: 0,
            plain_out: Vec::new(),
            notes: Vec::new(),
            outbox: VecDeque::new(),
            updates: VecDeque::new(),
            local,
            records: HashMap::new(),
            seen: HashMap::new(),
            tables: Tables::default(),
            dirty: true,
            next_refresh: now + cfg.refresh_every,
            next_seed_announce: now,
            chunk_len,
            stats: GossipStats::default(),
            signer: creds.signer,
            trust: creds.trust,
            policy: ClaimPolicy { cluster_cidr: cfg.cluster_cidr, cluster_cidr6: cfg.cluster_cidr6 },
            started: now,
            wall_at_start: creds.wall_secs,
            refused: RefusedCounts::default(),
            inbox_seen: Default::default(),
            view_generation: 0,
            cfg,
        };
        m.spread_local();
        m.announce_to_seeds();
        m.after_effects();
        Ok(m)
    }

    /// This host's record.
    pub fn local(&self) -> &MemberRecord {
        &self.local
    }

    /// This host's current SWIM identity.
    pub fn identity(&self) -> NodeId {
        *self.swim.identity()
    }

    /// Replaces this host's record (networks, bindings, keys...); the version is bumped and the
    /// change spread. Name, gossip address and epoch are kept.
    pub fn set_local(&mut self, now: Instant, mut record: MemberRecord) -> Result<(), RecordTooLarge> {
        self.now = now;
        record.name = self.local.name.clone();
        record.gossip = self.local.gossip;
        record.epoch = self.local.epoch;
        record.version = self.local.version + 1;
        record.signing_key = Some(self.signer.public());
        record.chunks(self.chunk_len, &self.signer)?;
        self.local = record;
        self.dirty = true;
        self.spread_local();
        self.after_effects();
        Ok(())
    }

    /// Feeds one datagram received on the gossip socket.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.now = now;
        self.stats.rx_datagrams += 1;
        self.stats.rx_bytes += bytes.len() as u64;
        self.set_inbox_clock();
        let Ok(plain) = self.opener.open(from, bytes) else { return };
        let Some((&kind, body)) = plain.split_first() else {
            self.opener.count_drop(DropReason::Malformed);
            return;
        };
        self.heard(from);
        let ok = match kind {
            KIND_SWIM => self.handle_swim(from, body),
            KIND_PUSH => self.handle_push(body),
            KIND_PULL if body.is_empty() => {
                self.answer_pull(from);
                true
            }
            _ => false,
        };
        if !ok {
            self.opener.count_drop(DropReason::Malformed);
        }
        self.after_effects();
    }

    /// Runs timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.set_inbox_clock();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            let mut fx =
                Effects { now, timers: &mut self.timers, seq: &mut self.timer_seq, sends: &mut self.plain_out, notes: &mut self.notes };
            if let Err(e) = self.swim.handle_timer(timer, &mut fx) {
                debug!(error = %e, "swim timer");
            }
        }
        if now >= self.next_refresh {
            self.next_refresh = now + self.cfg.refresh_every;
            self.spread_local();
        }
        if self.swim.num_members() == 0 && now >= self.next_seed_announce {
            self.announce_to_seeds();
        }
        self.collect_garbage();
        self.after_effects();
    }

    /// The next sealed datagram to send, with its destination.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.outbox.pop_front()
    }

    /// When [`Membership::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_refresh;
        if let Some(((first, _), _)) = self.timers.first_key_value() {
            t = t.min(*first);
        }
        if self.swim.num_members() == 0 && !self.cfg.seeds.is_empty() {
            t = t.min(self.next_seed_announce);
        }
        Some(t)
    }

    /// The next change for the dataplane and kernel drivers.
    pub fn poll_update(&mut self) -> Option<ControlUpdate> {
        self.updates.pop_front()
    }

    /// Every known member (including dead ones within their grace period), sorted by name.
    pub fn members(&self) -> Vec<MemberStatus> {
        let mut out: Vec<MemberStatus> = self
            .swim
            .iter_membership_state()
            .map(|m| {
                let id = m.id();
                let record = self.record_of(id).cloned();
                MemberStatus {
                    name: record.as_ref().map_or_else(|| id.addr.to_string(), |r| r.name.clone()),
                    addr: id.addr,
                    state: match m.state() {
                        State::Alive => Liveness::Alive,
                        State::Suspect => Liveness::Suspect,
                        State::Down => Liveness::Dead,
                    },
                    last_heard: self.seen.get(&id.addr).and_then(|s| s.last_heard),
                    record,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.addr.cmp(&b.addr)));
        out
    }

    /// Bumped whenever the live members or their records may have changed.
    pub fn view_generation(&self) -> u64 {
        self.view_generation
    }

    /// Sends this host's record directly to every live member now, instead of waiting for it to
    /// spread (floating IP hand-overs, where every round of gossip is time without an owner).
    pub fn push_local_now(&mut self, now: Instant) {
        self.now = now;
        let to: Vec<SocketAddr> = self.swim.iter_members().map(|m| m.id().addr).collect();
        for addr in to {
            self.push_local_to(addr, 4);
        }
        self.after_effects();
    }

    /// Ownership conflicts currently detected (see [`crate::control::tables`]).
    pub fn conflicts(&self) -> Vec<Conflict> {
        self.tables.conflicts().cloned().collect()
    }

    /// Datagrams dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.opener.dropped(reason)
    }

    /// Traffic and drop counters.
    pub fn stats(&self) -> GossipStats {
        let pending_evicted = self.inbox_seen.pending_evicted;
        GossipStats { drops: *self.opener.drops(), refused: self.refused, pending_evicted, ..self.stats.clone() }
    }

    /// The records of the live (alive or suspect) remote members: what the tables are built from.
    pub fn live_records(&self) -> impl Iterator<Item = &MemberRecord> + '_ {
        self.swim.iter_members().filter_map(|m| self.record_of(m.id()))
    }

    /// Every remote record held, live or not yet forgotten.
    pub fn held_records(&self) -> impl Iterator<Item = &MemberRecord> + '_ {
        self.records.values()
    }

    /// The record of the life `id`, if held.
    fn record_of(&self, id: &NodeId) -> Option<&MemberRecord> {
        self.records.values().find(|r| r.gossip == id.addr && r.epoch == id.epoch)
    }

    fn heard(&mut self, from: SocketAddr) {
        if let Some(s) = self.seen.get_mut(&from) {
            s.last_heard = Some(self.now);
        }
    }

    fn handle_swim(&mut self, from: SocketAddr, body: &[u8]) -> bool {
        let Ok(header) = SwimCodec.decode_header(body) else { return false };
        let src = header.src;
        if src.addr != from {
            return false;
        }
        if src.epoch > self.max_epoch() {
            self.refused.add(RefuseReason::FutureEpoch);
            return true;
        }
        let entry = self.seen.entry(src.addr).or_insert(Seen::new(src));
        entry.last_heard = Some(self.now);
        let mut fx = Effects {
            now: self.now,
            timers: &mut self.timers,
            seq: &mut self.timer_seq,
            sends: &mut self.plain_out,
            notes: &mut self.notes,
        };
        let ok = match self.swim.handle_data(body, &mut fx) {
            Ok(()) => true,
            Err(e) => {
                debug!(error = %e, %from, "swim data rejected");
                false
            }
        };
        if self.record_of(&src).is_none() && src != *self.swim.identity() {
            self.pull_from(src.addr);
        }
        ok
    }

    fn handle_push(&mut self, mut body: &[u8]) -> bool {
        let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        while !body.is_empty() {
            if body.len() < 2 {
                return false;
            }
            let len = u16::from_be_bytes([body[0], body[1]]) as usize;
            if len == 0 || body.len() < 2 + len {
                return false;
            }
            if inbox.offer(&body[2..2 + len]) == Offer::Malformed {
                return false;
            }
            body = &body[2 + len..];
        }
        true
    }

    fn pull_from(&mut self, addr: SocketAddr) {
        let now = self.now;
        let every = self.cfg.interval;
        let Some(seen) = self.seen.get_mut(&addr) else { return };
        if seen.last_pull.is_some_and(|t| now < t + every) {
            return;
        }
        seen.last_pull = Some(now);
        self.plain_out.push((addr, vec![KIND_PULL]));
    }

    /// Sends this host's record to `to` directly, in at most `limit` datagrams.
    fn push_local_to(&mut self, to: SocketAddr, limit: usize) {
        let Ok(chunks) = self.local.chunks(self.chunk_len, &self.signer) else { return };
        let room = self.cfg.mtu.saturating_sub(SEAL_OVERHEAD);
        let mut plain = vec![KIND_PUSH];
        let mut sent = 0;
        for c in chunks {
            if plain.len() + 2 + c.len() > room {
                sent += 1;
                if sent >= limit {
                    self.refused.add(RefuseReason::PullReplyCut);
                    break;
                }
                self.plain_out.push((to, std::mem::replace(&mut plain, vec![KIND_PUSH])));
            }
            plain.extend_from_slice(&(c.len() as u16).to_be_bytes());
            plain.extend_from_slice(&c);
        }
        self.plain_out.push((to, plain));
    }

    fn spread_local(&mut self) {
        let Ok(chunks) = self.local.chunks(self.chunk_len, &self.signer) else { return };
        for c in chunks {
            if let Err(e) = self.swim.add_broadcast(&c) {
                warn!(error = %e, "cannot spread local record");
            }
        }
    }

    fn announce_to_seeds(&mut self) {
        self.next_seed_announce = self.now + self.cfg.interval;
        let seeds: Vec<SocketAddr> = self.cfg.seeds.iter().copied().filter(|s| *s != self.local.gossip).collect();
        for seed in seeds {
            let mut fx = Effects {
                now: self.now,
                timers: &mut self.timers,
                seq: &mut self.timer_seq,
                sends: &mut self.plain_out,
                notes: &mut self.notes,
            };
            if let Err(e) = self.swim.announce(NodeId::seed(seed), &mut fx) {
                debug!(error = %e, %seed, "announce");
            }
        }
    }

    fn collect_garbage(&mut self) {
        let grace = self.cfg.dead_grace;
        let now = self.now;
        let expired: Vec<SocketAddr> =
            self.seen.iter().filter(|(_, s)| s.down_since.is_some_and(|t| now >= t + grace)).map(|(a, _)| *a).collect();
        self.inbox.lock().unwrap_or_else(|e| e.into_inner()).expire(now);
        for addr in expired {
            self.seen.remove(&addr);
            let names: Vec<String> = self.records.values().filter(|r| r.gossip == addr).map(|r| r.name.clone()).collect();
            let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
            for name in names {
                self.records.remove(&name);
                inbox.forget(&name);
            }
        }
    }

    /// Applies what foca and the inbox produced: notifications, records, tables, sealing.
    fn after_effects(&mut self) {
        for note in std::mem::take(&mut self.notes) {
            self.on_notification(note);
        }
        let ready = self.inbox.lock().unwrap_or_else(|e| e.into_inner()).take_ready();
        for rec in ready {
            if let Some(rec) = self.admit(rec) {
                debug!(name = %rec.name, epoch = rec.epoch, version = rec.version, "record");
                self.records.insert(rec.name.clone(), rec);
                self.dirty = true;
            }
        }
        self.count_inbox();
        if self.dirty {
            self.dirty = false;
            self.sync_tables();
        }
        for (to, plain) in std::mem::take(&mut self.plain_out) {
            if self.sealer.needs_new_epoch() {
                self.sealer.rekey_epoch(self.rng.next_u64());
            }
            let datagram = self.sealer.seal(&plain);
            debug_assert!(datagram.len() <= self.cfg.mtu, "{} > mtu", datagram.len());
            self.stats.tx_datagrams += 1;
            self.stats.tx_bytes += datagram.len() as u64;
            self.stats.max_datagram = self.stats.max_datagram.max(datagram.len() as u64);
            self.outbox.push_back((to, datagram));
        }
    }

    fn on_notification(&mut self, note: OwnedNotification<NodeId>) {
        match note {
            OwnedNotification::MemberUp(id) => {
                info!(member = %id.addr, epoch = id.epoch, "member up");
                self.mark(id, None);
                self.push_local_to(id.addr, usize::MAX);
                if self.record_of(&id).is_none() {
                    self.pull_from(id.addr);
                }
            }
            OwnedNotification::MemberDown(id) => {
                info!(member = %id.addr, epoch = id.epoch, "member down");
                self.stats.members_down += 1;
                self.mark(id, Some(self.now));
            }
            OwnedNotification::Rename(old, new) => {
                debug!(member = %new.addr, old = old.epoch, new = new.epoch, "member renamed");
                let down = self.seen.get(&old.addr).and_then(|s| s.down_since);
                self.mark(new, down);
                if self.record_of(&new).is_none() {
                    self.pull_from(new.addr);
                }
            }
            OwnedNotification::Rejoin(id) => {
                info!(generation = id.generation, "rejoined the cluster after being declared down");
                self.spread_local();
            }
            OwnedNotification::Defunct => {
                warn!("declared down by the cluster");
                self.stats.declared_down += 1;
            }
            OwnedNotification::Active => debug!("joined the cluster"),
            OwnedNotification::Idle => debug!("no live members"),
        }
        self.dirty = true;
    }

    fn mark(&mut self, id: NodeId, down_since: Option<Instant>) {
        let seen = self.seen.entry(id.addr).or_insert(Seen::new(id));
        seen.id = id;
        seen.down_since = down_since;
    }

    fn sync_tables(&mut self) {
        self.view_generation += 1;
        let live: Vec<MemberRecord> = self.swim.iter_members().filter_map(|m| self.record_of(m.id())).cloned().collect();
        let mut out = Vec::new();
        let fresh = self.tables.sync(&self.local, live.iter(), &mut out);
        for c in fresh {
            warn!(vni = %c.vni, what = ?c.what, winner = %c.winner, loser = %c.loser,
                "ownership conflict: the older claim keeps it, the newer is not installed");
        }
        self.updates.extend(out);
    }
}

fn local_salt(local: &MemberRecord) -> u64 {
    let mut h: u64 = local.epoch;
    for b in local.name.bytes() {
        h = h.rotate_left(5) ^ u64::from(b);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::fixtures::{host_addr, host_record};

    #[test]
    fn garbage_and_truncated_datagrams_are_counted_not_panics() {
        let key = ClusterKey::from_bytes([4; 32]);
        let now = Instant::now();
        let mut m = Membership::with_seed(GossipConfig::default(), host_record(0, 1), &key, Credentials::for_tests(0, 0), now, 1).unwrap();
        let mut peer = Sealer::new(&key, "vxswitch", 77);
        let mut rng = SmallRng::seed_from_u64(3);
        for len in 0..300usize {
            let mut junk = vec![0u8; len];
            rng.fill_bytes(&mut junk);
            m.handle_datagram(now, host_addr(1), &junk);
            // Authenticated but meaningless content, of every kind byte.
            junk.insert(0, (len % 4) as u8);
            m.handle_datagram(now, host_addr(1), &peer.seal(&junk));
        }
        assert!(m.dropped(DropReason::Malformed) > 250);
        assert!(m.dropped(DropReason::Truncated) > 0);
        assert!(m.dropped(DropReason::BadHeader) + m.dropped(DropReason::AuthFailed) > 250);
        assert!(m.poll_update().is_none());
    }

    #[test]
    fn lone_host_keeps_announcing_to_seeds() {
        let key = ClusterKey::from_bytes([4; 32]);
        let now = Instant::now();
        let cfg = GossipConfig { seeds: vec![host_addr(1)], ..GossipConfig::default() };
        let mut m = Membership::with_seed(cfg, host_record(0, 1), &key, Credentials::for_tests(0, 0), now, 1).unwrap();
        let first: Vec<_> = std::iter::from_fn(|| m.poll_transmit()).collect();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].0, host_addr(1));
        let t = m.poll_timeout().unwrap();
        assert!(t <= now + Duration::from_secs(1));
        m.handle_timeout(now + Duration::from_secs(1));
        assert!(std::iter::from_fn(|| m.poll_transmit()).any(|(to, _)| to == host_addr(1)));
    }
}
