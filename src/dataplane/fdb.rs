//! The learned forwarding database: (VNI, MAC) -> where that MAC lives.
//!
//! Why it looks like this:
//! - Keyed by (VNI, MAC) so networks never see each other's addresses (VNI isolation).
//! - Ageing follows the Linux bridge: an entry not refreshed by traffic for `ageing` (default
//!   300 s) is removed. Expiry is computed from `last_seen`, and `now` is always passed in.
//! - The table has a hard cap, so a MAC flood cannot grow memory without bound. Static entries
//!   (from the control plane) are exempt from ageing, eviction and the cap.
//! - The cap is shared fairly between the *owners* of dynamic entries: the local TAPs (one owner,
//!   [`Location::Local`]) and each remote peer VTEP (by underlay address). A global LRU would let
//!   one peer (or one spoofed underlay source) sending random source MACs evict every other host's
//!   entries. Instead each owner's share is `max_entries / owners` (owners holding entries, counting
//!   the one learning; at least 1). An owner that learns a new MAC while at its share evicts its
//!   *own* least recently seen entry (counted `share_evicted`, and `evicted`); an owner below its
//!   share that finds the table full evicts the least recently seen entry of the largest owner,
//!   which is then necessarily above its share (`evicted`). A flood therefore only churns the
//!   flooder's own share, and the hosts that are actually talking keep their entries.
//! - Recency is kept in an ordered index `(last_seen, seq) -> key`. Refreshing that index on every
//!   frame would cost a tree update per packet, so it is only moved when the entry's recorded time
//!   is more than [`REFRESH_GRANULARITY`] old; ageing is therefore exact to within that granularity.
//! - The maps hash with aHash under a random per-process key, not the standard SipHash: keys are
//!   MACs containers choose, so the hash must stay keyed (no chosen-collision floods), but every
//!   frame costs a learn and a lookup: 31-38 ns each with SipHash, 13-19 ns with aHash
//!   (`benches/fdb.rs`, warm).

use crate::wire::vxlan::Vni;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::counters::counters;
use crate::wire::ethernet::EthernetAddress;

/// How stale an entry's recency stamp may get before the hot path refreshes the ordered index.
pub const REFRESH_GRANULARITY: Duration = Duration::from_secs(1);

/// Default ageing time (the Linux bridge and vxlan default).
pub const DEFAULT_AGEING: Duration = Duration::from_secs(300);

/// Default maximum number of dynamic entries.
pub const DEFAULT_MAX_ENTRIES: usize = 16 * 1024;

/// Where a MAC address lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Location {
    /// Behind the local TAP of the network.
    Local,
    /// Behind the peer VTEP with this underlay address.
    Remote(IpAddr),
}

/// The key of an FDB entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FdbKey {
    /// 24-bit VXLAN network identifier.
    pub vni: Vni,
    /// The MAC address.
    pub mac: EthernetAddress,
}

/// One FDB entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdbEntry {
    /// Where the MAC lives.
    pub location: Location,
    /// Static entries never age and are never evicted or moved by learning.
    pub is_static: bool,
    /// When traffic from this MAC was last seen (rounded to [`REFRESH_GRANULARITY`]).
    pub last_seen: Instant,
    seq: u64,
}

/// What learning a source address did to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// A new entry was created.
    New,
    /// The existing entry was refreshed.
    Refreshed,
    /// The MAC moved from another location (VM migration, container restart elsewhere).
    Moved {
        /// Where it was before.
        from: Location,
    },
    /// A static entry names another location; the static entry wins.
    StaticConflict,
}

counters! {
    /// FDB event counters and the table size: the `fdb` section of `stats`, `vxswitch_fdb_*` metrics.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct FdbCounters {
        /// Entries learned.
        pub learned: u64 = counter,
        /// MAC moves.
        pub moved: u64 = counter,
        /// Entries removed by ageing.
        pub aged: u64 = counter,
        /// Entries evicted because the table was full.
        pub evicted: u64 = counter,
        /// Of those, entries evicted within their owner's share (a peer or the TAPs learning more
        /// than their share of the cap: a MAC flood).
        pub share_evicted: u64 = counter,
        /// Learning attempts that contradicted a static entry.
        pub static_conflicts: u64 = counter,
        /// Entries in the table now (static and dynamic).
        pub entries: u64 = gauge,
    }
}

/// The forwarding database.
#[derive(Debug)]
pub struct Fdb {
    entries: HashMap<FdbKey, FdbEntry, ahash::RandomState>,
    /// Dynamic entries ordered by recency: (last_seen, seq) -> key.
    recency: BTreeMap<(Instant, u64), FdbKey>,
    /// The same entries by owner (the local TAPs, or a peer VTEP), each ordered by recency.
    owners: HashMap<Location, BTreeMap<(Instant, u64), FdbKey>, ahash::RandomState>,
    ageing: Duration,
    max_dynamic: usize,
    next_seq: u64,
    counters: FdbCounters,
}

impl Fdb {
    /// How long an entry lives without traffic.
    pub fn ageing(&self) -> Duration {
        self.ageing
    }

    /// An empty table with the given ageing time and dynamic-entry cap.
    pub fn new(ageing: Duration, max_dynamic: usize) -> Self {
        Fdb {
            entries: HashMap::default(),
            recency: BTreeMap::new(),
            owners: HashMap::default(),
            ageing,
            max_dynamic: max_dynamic.max(1),
            next_seq: 0,
            counters: FdbCounters::default(),
        }
    }

    /// Look up where `mac` on `vni` lives.
    // hot path
    #[inline]
    pub fn lookup(&self, vni: Vni, mac: EthernetAddress) -> Option<Location> {
        self.entries.get(&FdbKey { vni, mac }).map(|e| e.location)
    }

    /// Full entry, for status output and tests.
    pub fn get(&self, vni: Vni, mac: EthernetAddress) -> Option<&FdbEntry> {
        self.entries.get(&FdbKey { vni, mac })
    }

    /// Learn that `mac` on `vni` was seen at `location`.
    // hot path
    pub fn learn(&mut self, now: Instant, vni: Vni, mac: EthernetAddress, location: Location) -> Learned {
        let key = FdbKey { vni, mac };
        if let Some(entry) = self.entries.get_mut(&key) {
            if entry.is_static {
                if entry.location == location {
                    return Learned::Refreshed;
                }
                self.counters.static_conflicts += 1;
                return Learned::StaticConflict;
            }
            let (from, old) = (entry.location, (entry.last_seen, entry.seq));
            let stale = now.saturating_duration_since(entry.last_seen) >= REFRESH_GRANULARITY;
            if !stale && from == location {
                return Learned::Refreshed;
            }
            let stamp = if stale { (now, self.next_seq) } else { old };
            entry.location = location;
            (entry.last_seen, entry.seq) = stamp;
            self.unindex(from, old);
            self.index(location, stamp, key);
            if stale {
                self.next_seq += 1;
            }
            if from != location {
                self.counters.moved += 1;
                return Learned::Moved { from };
            }
            return Learned::Refreshed;
        }
        self.make_room(location);
        let stamp = (now, self.next_seq);
        self.next_seq += 1;
        self.entries.insert(key, FdbEntry { location, is_static: false, last_seen: stamp.0, seq: stamp.1 });
        self.index(location, stamp, key);
        self.counters.learned += 1;
        Learned::New
    }

    /// The share of the cap of each owner, were `learner` to hold an entry.
    fn share(&self, learner: Location) -> usize {
        let owners = self.owners.len() + usize::from(!self.owners.contains_key(&learner));
        (self.max_dynamic / owners).max(1)
    }

    /// Evict one entry if `learner` is at its share (its own oldest) or the table is full (the
    /// oldest of the largest owner).
    fn make_room(&mut self, learner: Location) {
        let own = self.owners.get(&learner).map_or(0, BTreeMap::len);
        let victim = if own >= self.share(learner) {
            self.counters.share_evicted += 1;
            learner
        } else if self.recency.len() >= self.max_dynamic {
            match self.owners.iter().max_by_key(|(_, r)| r.len()) {
                Some((&owner, _)) => owner,
                None => return,
            }
        } else {
            return;
        };
        let Some((&stamp, &key)) = self.owners.get(&victim).and_then(BTreeMap::first_key_value) else { return };
        self.unindex(victim, stamp);
        self.entries.remove(&key);
        self.counters.evicted += 1;
    }

    /// Record a dynamic entry in the recency indexes.
    fn index(&mut self, owner: Location, stamp: (Instant, u64), key: FdbKey) {
        self.recency.insert(stamp, key);
        self.owners.entry(owner).or_default().insert(stamp, key);
    }

    /// Remove a dynamic entry from the recency indexes (an owner without entries is forgotten).
    fn unindex(&mut self, owner: Location, stamp: (Instant, u64)) {
        self.recency.remove(&stamp);
        if let Some(r) = self.owners.get_mut(&owner) {
            r.remove(&stamp);
            if r.is_empty() {
                self.owners.remove(&owner);
            }
        }
    }

    /// Dynamic entries learned from `owner` (the local TAPs or a peer VTEP).
    pub fn owned_by(&self, owner: Location) -> usize {
        self.owners.get(&owner).map_or(0, BTreeMap::len)
    }

    /// Install or replace a static entry (from configuration or the control plane).
    pub fn insert_static(&mut self, now: Instant, vni: Vni, mac: EthernetAddress, location: Location) {
        let key = FdbKey { vni, mac };
        if let Some(old) = self.entries.get(&key).copied() {
            if !old.is_static {
                self.unindex(old.location, (old.last_seen, old.seq));
            }
        }
        self.entries.insert(key, FdbEntry { location, is_static: true, last_seen: now, seq: 0 });
    }

    /// Remove an entry (static or dynamic). Returns whether it existed.
    pub fn remove(&mut self, vni: Vni, mac: EthernetAddress) -> bool {
        match self.entries.remove(&FdbKey { vni, mac }) {
            Some(old) => {
                if !old.is_static {
                    self.unindex(old.location, (old.last_seen, old.seq));
                }
                true
            }
            None => false,
        }
    }

    /// Remove every dynamic entry that points at `peer` on `vni` (the peer went away).
    pub fn flush_remote(&mut self, vni: Vni, peer: IpAddr) -> usize {
        let doomed: Vec<FdbKey> =
            self.entries.iter().filter(|(k, e)| k.vni == vni && e.location == Location::Remote(peer)).map(|(k, _)| *k).collect();
        for key in &doomed {
            self.remove(key.vni, key.mac);
        }
        doomed.len()
    }

    /// Remove entries not seen for the ageing time. Bounded by the number of expired entries.
    pub fn age(&mut self, now: Instant) -> usize {
        let mut removed = 0;
        while let Some((&(seen, seq), &key)) = self.recency.first_key_value() {
            if seen + self.ageing > now {
                break;
            }
            match self.entries.remove(&key) {
                Some(old) => self.unindex(old.location, (seen, seq)),
                None => {
                    self.recency.remove(&(seen, seq));
                }
            }
            removed += 1;
        }
        self.counters.aged += removed as u64;
        removed
    }

    /// When the next entry expires, if any.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.recency.first_key_value().map(|(&(seen, _), _)| seen + self.ageing)
    }

    /// Number of entries (static and dynamic).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Event counters, with the current table size.
    pub fn counters(&self) -> FdbCounters {
        FdbCounters { entries: self.entries.len() as u64, ..self.counters }
    }

    /// All entries, for status output.
    pub fn iter(&self) -> impl Iterator<Item = (&FdbKey, &FdbEntry)> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    fn v(n: u32) -> Vni {
        Vni::new(n).unwrap()
    }
    use super::*;
    use std::net::Ipv4Addr;

    fn mac(n: u8) -> EthernetAddress {
        EthernetAddress([0x02, 0, 0, 0, 0, n])
    }
    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));

    #[test]
    fn learns_refreshes_and_moves() {
        let t0 = Instant::now();
        let mut fdb = Fdb::new(DEFAULT_AGEING, 16);
        assert_eq!(fdb.learn(t0, v(1), mac(1), Location::Remote(A)), Learned::New);
        assert_eq!(fdb.learn(t0, v(1), mac(1), Location::Remote(A)), Learned::Refreshed);
        assert_eq!(fdb.learn(t0, v(1), mac(1), Location::Remote(B)), Learned::Moved { from: Location::Remote(A) });
        assert_eq!(fdb.lookup(v(1), mac(1)), Some(Location::Remote(B)));
        assert_eq!(fdb.lookup(v(2), mac(1)), None, "VNIs are separate tables");
        assert_eq!(fdb.counters().moved, 1);
    }

    #[test]
    fn ages_only_idle_entries() {
        let t0 = Instant::now();
        let ageing = Duration::from_secs(10);
        let mut fdb = Fdb::new(ageing, 16);
        fdb.learn(t0, v(1), mac(1), Location::Local);
        fdb.learn(t0, v(1), mac(2), Location::Local);
        fdb.insert_static(t0, v(1), mac(3), Location::Remote(A));
        fdb.learn(t0 + Duration::from_secs(6), v(1), mac(2), Location::Local);
        assert_eq!(fdb.next_expiry(), Some(t0 + ageing));
        assert_eq!(fdb.age(t0 + Duration::from_secs(9)), 0);
        assert_eq!(fdb.age(t0 + Duration::from_secs(10)), 1);
        assert_eq!(fdb.lookup(v(1), mac(1)), None);
        assert_eq!(fdb.lookup(v(1), mac(2)), Some(Location::Local));
        assert_eq!(fdb.age(t0 + Duration::from_secs(3600)), 1);
        assert_eq!(fdb.lookup(v(1), mac(3)), Some(Location::Remote(A)), "static never ages");
        assert_eq!(fdb.counters().aged, 2);
    }

    #[test]
    fn cap_evicts_least_recently_seen_dynamic_entry() {
        let t0 = Instant::now();
        let mut fdb = Fdb::new(DEFAULT_AGEING, 3);
        fdb.insert_static(t0, v(1), mac(100), Location::Remote(A));
        for n in 1..=3 {
            fdb.learn(t0 + Duration::from_secs(n as u64 * 2), v(1), mac(n), Location::Local);
        }
        // mac(1) is talking again, so mac(2) becomes the least recently seen.
        fdb.learn(t0 + Duration::from_secs(10), v(1), mac(1), Location::Local);
        fdb.learn(t0 + Duration::from_secs(12), v(1), mac(4), Location::Local);
        assert_eq!(fdb.lookup(v(1), mac(2)), None);
        for n in [1, 3, 4, 100] {
            assert!(fdb.lookup(v(1), mac(n)).is_some(), "mac {n} kept");
        }
        assert_eq!(fdb.counters().evicted, 1);
        assert_eq!(fdb.len(), 4, "three dynamic entries plus the exempt static one");
    }

    #[test]
    fn static_entry_is_not_moved_by_learning() {
        let t0 = Instant::now();
        let mut fdb = Fdb::new(DEFAULT_AGEING, 8);
        fdb.insert_static(t0, v(1), mac(1), Location::Remote(A));
        assert_eq!(fdb.learn(t0, v(1), mac(1), Location::Remote(B)), Learned::StaticConflict);
        assert_eq!(fdb.lookup(v(1), mac(1)), Some(Location::Remote(A)));
        assert_eq!(fdb.counters().static_conflicts, 1);
    }

    #[test]
    fn flush_remote_removes_only_that_peer() {
        let t0 = Instant::now();
        let mut fdb = Fdb::new(DEFAULT_AGEING, 8);
        fdb.learn(t0, v(1), mac(1), Location::Remote(A));
        fdb.learn(t0, v(1), mac(2), Location::Remote(B));
        fdb.learn(t0, v(2), mac(3), Location::Remote(A));
        assert_eq!(fdb.flush_remote(v(1), A), 1);
        assert_eq!(fdb.lookup(v(1), mac(2)), Some(Location::Remote(B)));
        assert_eq!(fdb.lookup(v(2), mac(3)), Some(Location::Remote(A)));
    }

    #[test]
    fn flooding_peer_cannot_evict_honest_peers_or_local_entries() {
        const FLOODER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 66));
        let cap = 64;
        let t0 = Instant::now();
        let mut fdb = Fdb::new(DEFAULT_AGEING, cap);
        for n in 1..=8 {
            fdb.learn(t0, v(1), mac(n), Location::Remote(A));
            fdb.learn(t0, v(1), mac(100 + n), Location::Remote(B));
            fdb.learn(t0, v(1), mac(200 + n), Location::Local);
        }
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        for i in 0..10 * cap as u64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let b = rng.to_be_bytes();
            let random = EthernetAddress([0x02, b[1], b[2], b[3], b[4], b[5]]);
            fdb.learn(t0 + Duration::from_millis(i), v(1), random, Location::Remote(FLOODER));
        }
        for n in 1..=8 {
            assert_eq!(fdb.lookup(v(1), mac(n)), Some(Location::Remote(A)), "peer A's mac {n} kept");
            assert_eq!(fdb.lookup(v(1), mac(100 + n)), Some(Location::Remote(B)), "peer B's mac {n} kept");
            assert_eq!(fdb.lookup(v(1), mac(200 + n)), Some(Location::Local), "local mac {n} kept");
        }
        assert_eq!(fdb.owned_by(Location::Remote(FLOODER)), cap / 4, "the flooder keeps only its share");
        let c = fdb.counters();
        assert!(c.share_evicted >= 9 * cap as u64, "the share bit: {c:?}");
        assert_eq!(c.evicted, c.share_evicted, "only the flooder's own entries were evicted");
        // The honest peers still learn new MACs: the table is not full for them.
        assert_eq!(fdb.learn(t0 + Duration::from_secs(60), v(1), mac(50), Location::Remote(A)), Learned::New);
        assert_eq!(fdb.lookup(v(1), mac(1)), Some(Location::Remote(A)));
        assert!(fdb.len() <= cap);
    }

    #[test]
    fn newcomer_takes_its_share_from_the_largest_owner() {
        let t0 = Instant::now();
        let mut fdb = Fdb::new(DEFAULT_AGEING, 8);
        for n in 1..=8 {
            fdb.learn(t0 + Duration::from_secs(n as u64), v(1), mac(n), Location::Remote(A));
        }
        assert_eq!(fdb.owned_by(Location::Remote(A)), 8, "alone, a peer may use the whole table");
        for n in 1..=4 {
            fdb.learn(t0 + Duration::from_secs(20 + n as u64), v(1), mac(100 + n), Location::Local);
        }
        assert_eq!(fdb.owned_by(Location::Local), 4);
        assert_eq!(fdb.owned_by(Location::Remote(A)), 4, "A gave up its oldest entries");
        assert_eq!(fdb.lookup(v(1), mac(4)), None);
        assert_eq!(fdb.lookup(v(1), mac(5)), Some(Location::Remote(A)));
        // At its share, the next local MAC replaces the oldest local one, not A's.
        fdb.learn(t0 + Duration::from_secs(30), v(1), mac(105), Location::Local);
        assert_eq!(fdb.lookup(v(1), mac(101)), None);
        assert_eq!(fdb.owned_by(Location::Remote(A)), 4);
        let c = fdb.counters();
        assert_eq!((c.evicted, c.share_evicted), (5, 1));
        assert_eq!(fdb.len(), 8);
    }

    #[test]
    fn owner_indexes_follow_moves_ageing_and_removal() {
        let t0 = Instant::now();
        let mut fdb = Fdb::new(Duration::from_secs(10), 16);
        fdb.learn(t0, v(1), mac(1), Location::Remote(A));
        fdb.learn(t0, v(1), mac(2), Location::Remote(A));
        fdb.learn(t0, v(1), mac(1), Location::Remote(B));
        assert_eq!((fdb.owned_by(Location::Remote(A)), fdb.owned_by(Location::Remote(B))), (1, 1));
        fdb.insert_static(t0, v(1), mac(2), Location::Remote(B));
        assert_eq!(fdb.owned_by(Location::Remote(A)), 0, "a static entry is nobody's share");
        assert!(fdb.remove(v(1), mac(2)));
        assert_eq!(fdb.age(t0 + Duration::from_secs(10)), 1);
        assert_eq!(fdb.owned_by(Location::Remote(B)), 0);
        assert!(fdb.is_empty());
    }
}
