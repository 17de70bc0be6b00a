//! Reassembly of member records from their chunks, with every table bounded.
//!
//! Chunks of one record version (`name, epoch, version`) are collected until all have arrived;
//! the record is then checked against its signature and queued for the membership, which applies
//! trust and claim checks and confirms it with [`RecordInbox::accept`]. Only accepted records
//! move a name's high-water mark, so chunks forged under someone else's name (or with a far-future
//! epoch, refused here outright) cannot make that host's real records look stale.
//!
//! Incomplete records are kept per version, at most [`PENDING_PER_NAME`] versions per name and
//! one per tracked name overall, and forgotten after [`PENDING_TTL`]: a sender that never
//! finishes a record cannot fill the table and lock new hosts out. Evictions are counted.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::record::{ChunkKey, MemberRecord};

/// Most incomplete versions kept per host name.
pub const PENDING_PER_NAME: usize = 2;
/// How long an incomplete record waits for its missing chunks.
pub const PENDING_TTL: Duration = Duration::from_secs(30);

struct Pending {
    parts: Vec<Option<Vec<u8>>>,
    since: Instant,
    seq: u64,
}

type PendingKey = (String, u64, u64);

/// What [`RecordInbox::offer`] made of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// A chunk not seen before: keep spreading it.
    New,
    /// Already held, older than the newest record accepted, or refused (signature, epoch).
    Stale,
    /// Not a valid chunk.
    Malformed,
}

/// Counters of the inbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxCounts {
    /// Chunks malformed or reassembled into an invalid record.
    pub malformed: u64,
    /// Complete records whose signature did not verify.
    pub bad_signatures: u64,
    /// Chunks with an epoch beyond the bound set by [`RecordInbox::set_clock`].
    pub future_epochs: u64,
    /// Incomplete records dropped (too old, or to make room).
    pub pending_evicted: u64,
}

/// Reassembles records from chunks and tells new chunks from stale or duplicate ones.
pub struct RecordInbox {
    complete: HashMap<String, (u64, u64)>,
    pending: HashMap<PendingKey, Pending>,
    ready: Vec<MemberRecord>,
    max_names: usize,
    now: Instant,
    max_epoch: u64,
    seq: u64,
    counts: InboxCounts,
}

impl RecordInbox {
    /// An inbox tracking at most `max_names` hosts, started at `now`.
    pub fn new(max_names: usize, now: Instant) -> Self {
        RecordInbox {
            complete: HashMap::new(),
            pending: HashMap::new(),
            ready: Vec::new(),
            max_names: max_names.max(1),
            now,
            max_epoch: u64::MAX,
            seq: 0,
            counts: InboxCounts::default(),
        }
    }

    /// The time now and the largest believable epoch (chunks beyond it are refused).
    pub fn set_clock(&mut self, now: Instant, max_epoch: u64) {
        self.now = now;
        self.max_epoch = max_epoch;
    }

    /// Takes one chunk; completed, correctly signed records are queued for [`RecordInbox::take_ready`].
    pub fn offer(&mut self, chunk: &[u8]) -> Offer {
        let Some((key, body)) = ChunkKey::parse(chunk) else {
            self.counts.malformed += 1;
            return Offer::Malformed;
        };
        if key.epoch > self.max_epoch {
            self.counts.future_epochs += 1;
            return Offer::Stale;
        }
        match self.complete.get(&key.name) {
            Some(done) if *done >= key.order() => return Offer::Stale,
            None if self.complete.len() >= self.max_names => return Offer::Stale,
            _ => {}
        }
        let id = (key.name.clone(), key.epoch, key.version);
        if !self.pending.contains_key(&id) {
            self.make_room(&key.name);
            self.seq += 1;
            self.pending.insert(id.clone(), Pending { parts: vec![None; key.count as usize], since: self.now, seq: self.seq });
        }
        let Some(pending) = self.pending.get_mut(&id) else { return Offer::Stale };
        if pending.parts.len() != key.count as usize {
            self.counts.malformed += 1;
            return Offer::Malformed;
        }
        let slot = &mut pending.parts[key.index as usize];
        if slot.is_some() {
            return Offer::Stale;
        }
        *slot = Some(body.to_vec());
        if !pending.parts.iter().all(Option::is_some) {
            return Offer::New;
        }
        let body: Vec<u8> = pending.parts.iter().flatten().flatten().copied().collect();
        self.pending.remove(&id);
        match MemberRecord::decode_signed(&body) {
            Ok(rec) if rec.name == key.name && (rec.epoch, rec.version) == key.order() => {
                self.ready.push(rec);
                Offer::New
            }
            Err(false) => {
                self.counts.bad_signatures += 1;
                Offer::Stale
            }
            _ => {
                self.counts.malformed += 1;
                Offer::Malformed
            }
        }
    }

    /// Drops the oldest incomplete records of `name` (and overall) so that one more fits.
    fn make_room(&mut self, name: &str) {
        let of_name: Vec<(&PendingKey, u64)> = self.pending.iter().filter(|(k, _)| k.0 == name).map(|(k, p)| (k, p.seq)).collect();
        let victim = if of_name.len() >= PENDING_PER_NAME {
            of_name.into_iter().min_by_key(|(_, seq)| *seq).map(|(k, _)| k.clone())
        } else if self.pending.len() >= self.max_names {
            self.pending.iter().min_by_key(|(_, p)| p.seq).map(|(k, _)| k.clone())
        } else {
            None
        };
        if let Some(k) = victim {
            self.pending.remove(&k);
            self.counts.pending_evicted += 1;
        }
    }

    /// Marks the record `(epoch, version)` of `name` as held: older and equal chunks are stale.
    pub fn accept(&mut self, name: &str, order: (u64, u64)) {
        let done = self.complete.entry(name.to_string()).or_insert(order);
        *done = (*done).max(order);
        self.pending.retain(|k, _| k.0 != name || (k.1, k.2) > order);
    }

    /// Forgets incomplete records older than [`PENDING_TTL`]; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let before = self.pending.len();
        self.pending.retain(|_, p| now < p.since + PENDING_TTL);
        let gone = before - self.pending.len();
        self.counts.pending_evicted += gone as u64;
        gone
    }

    /// Records completed since the last call.
    pub fn take_ready(&mut self) -> Vec<MemberRecord> {
        std::mem::take(&mut self.ready)
    }

    /// Forgets a host (after its grace period, or its trust binding), so its records are taken
    /// from scratch.
    pub fn forget(&mut self, name: &str) {
        self.complete.remove(name);
        self.pending.retain(|k, _| k.0 != name);
    }

    /// Incomplete records held.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The inbox's counters.
    pub fn counts(&self) -> InboxCounts {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::record::tests::sample;
    use crate::control::record::MemberRecord;
    use crate::control::signing::SigningKey;

    fn signed(bindings: usize, key: &SigningKey) -> MemberRecord {
        MemberRecord { signing_key: Some(key.public()), ..sample(bindings) }
    }

    #[test]
    fn chunks_reassemble_in_any_order_and_duplicates_are_stale() {
        let key = SigningKey::for_tests(1);
        let r = signed(60, &key);
        let chunks = r.chunks(400, &key).unwrap();
        assert!(chunks.len() > 3);
        assert!(chunks.iter().all(|c| c.len() <= 400));
        let mut inbox = RecordInbox::new(16, Instant::now());
        for c in chunks.iter().rev().skip(1) {
            assert_eq!(inbox.offer(c), Offer::New);
            assert_eq!(inbox.offer(c), Offer::Stale);
        }
        assert!(inbox.take_ready().is_empty());
        assert_eq!(inbox.offer(&chunks[chunks.len() - 1]), Offer::New);
        assert_eq!(inbox.take_ready(), vec![r.clone()]);
        inbox.accept(&r.name, (r.epoch, r.version));
        // The same version again, or an older one, is stale once accepted.
        assert_eq!(inbox.offer(&chunks[0]), Offer::Stale);
        let older = MemberRecord { version: 2, ..r.clone() };
        assert_eq!(inbox.offer(&older.chunks(400, &key).unwrap()[0]), Offer::Stale);
        let newer = MemberRecord { epoch: 18, version: 0, ..r };
        for c in newer.chunks(400, &key).unwrap() {
            assert_eq!(inbox.offer(&c), Offer::New);
        }
        assert_eq!(inbox.take_ready(), vec![newer]);
    }

    #[test]
    fn garbage_chunks_are_malformed_not_panics() {
        let key = SigningKey::for_tests(1);
        let mut inbox = RecordInbox::new(16, Instant::now());
        let good = signed(1, &key).chunks(1000, &key).unwrap().remove(0);
        for cut in 0..good.len() - 1 {
            let o = inbox.offer(&good[..cut]);
            assert!(o == Offer::Malformed, "cut {cut}: {o:?}");
        }
        let mut bad_index = good.clone();
        bad_index[2 + "host-a".len() + 16] = 5;
        assert_eq!(inbox.offer(&bad_index), Offer::Malformed);
        assert!(inbox.counts().malformed > 0);
    }

    #[test]
    fn records_signed_by_another_key_or_unsigned_are_refused() {
        let (key, other) = (SigningKey::for_tests(1), SigningKey::for_tests(2));
        let mut inbox = RecordInbox::new(16, Instant::now());
        // Names `key` but is signed by `other`.
        for c in signed(1, &key).chunks(1000, &other).unwrap() {
            assert_eq!(inbox.offer(&c), Offer::Stale);
        }
        // Names no key at all.
        for c in MemberRecord::chunks(&sample(1), 1000, &key).unwrap() {
            assert_eq!(inbox.offer(&c), Offer::Stale);
        }
        assert!(inbox.take_ready().is_empty());
        assert_eq!(inbox.counts().bad_signatures, 2);
        // The forgeries did not mark the version as held: the real record still gets in.
        for c in signed(1, &key).chunks(1000, &key).unwrap() {
            assert_eq!(inbox.offer(&c), Offer::New);
        }
        assert_eq!(inbox.take_ready().len(), 1);
    }

    #[test]
    fn pending_records_expire_and_are_bounded_per_name_and_overall() {
        let key = SigningKey::for_tests(1);
        let t0 = Instant::now();
        let mut inbox = RecordInbox::new(4, t0);
        let first_chunk = |name: &str, version: u64| {
            let r = MemberRecord { name: name.into(), version, ..signed(60, &key) };
            r.chunks(400, &key).unwrap().remove(0)
        };
        // Far-future epochs are refused outright.
        inbox.set_clock(t0, 10);
        assert_eq!(inbox.offer(&first_chunk("a", 1)), Offer::Stale);
        assert_eq!(inbox.counts().future_epochs, 1);
        inbox.set_clock(t0, u64::MAX);
        for v in 0..5 {
            assert_eq!(inbox.offer(&first_chunk("a", v)), Offer::New);
        }
        assert_eq!(inbox.pending_len(), PENDING_PER_NAME);
        for n in ["b", "c", "d", "e", "f"] {
            assert_eq!(inbox.offer(&first_chunk(n, 0)), Offer::New, "{n}: new names are never locked out");
        }
        assert_eq!(inbox.pending_len(), 4);
        assert_eq!(inbox.counts().pending_evicted, 3 + 3);
        assert_eq!(inbox.expire(t0 + PENDING_TTL - Duration::from_millis(1)), 0);
        assert_eq!(inbox.expire(t0 + PENDING_TTL), 4);
        assert_eq!(inbox.pending_len(), 0);
    }
}
