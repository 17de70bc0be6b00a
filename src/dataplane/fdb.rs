//! The learned forwarding database: (VNI, MAC) -> where that MAC lives.
//!
//! Why it looks like this:
//! - Keyed by (VNI, MAC) so networks never see each other's addresses (VNI isolation).
//! - Ageing follows the Linux bridge: an entry not refreshed by traffic for `ageing` (default
//!   300 s) is removed. Expiry is computed from `last_seen`, and `now` is always passed in.
//! - The table has a hard cap. When it is full, the least recently seen *dynamic* entry is evicted
//!   and counted (`evicted`), so a MAC flood cannot grow memory without bound and the hosts that
//!   are actually talking keep their entries. Static entries (from the control plane) are exempt
//!   from ageing, eviction and the cap.
//! - Recency is kept in an ordered index `(last_seen, seq) -> key`. Refreshing that index on every
//!   frame would cost a tree update per packet, so it is only moved when the entry's recorded time
//!   is more than [`REFRESH_GRANULARITY`] old; ageing is therefore exact to within that granularity.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
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
    Remote(Ipv4Addr),
}

/// The key of an FDB entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FdbKey {
    /// 24-bit VXLAN network identifier.
    pub vni: u32,
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
        /// Learning attempts that contradicted a static entry.
        pub static_conflicts: u64 = counter,
        /// Entries in the table now (static and dynamic).
        pub entries: u64 = gauge,
    }
}

/// The forwarding database.
#[derive(Debug)]
pub struct Fdb {
    entries: HashMap<FdbKey, FdbEntry>,
    /// Dynamic entries ordered by recency: (last_seen, seq) -> key.
    recency: BTreeMap<(Instant, u64), FdbKey>,
    ageing: Duration,
    max_dynamic: usize,
    next_seq: u64,
    counters: FdbCounters,
}

impl Fdb {
    /// An empty table with the given ageing time and dynamic-entry cap.
    pub fn new(ageing: Duration, max_dynamic: usize) -> Self {
        Fdb {
            entries: HashMap::new(),
            recency: BTreeMap::new(),
            ageing,
            max_dynamic: max_dynamic.max(1),
            next_seq: 0,
            counters: FdbCounters::default(),
        }
    }

    /// Look up where `mac` on `vni` lives.
    // hot path
    #[inline]
    pub fn lookup(&self, vni: u32, mac: EthernetAddress) -> Option<Location> {
        self.entries.get(&FdbKey { vni, mac }).map(|e| e.location)
    }

    /// Full entry, for status output and tests.
    pub fn get(&self, vni: u32, mac: EthernetAddress) -> Option<&FdbEntry> {
        self.entries.get(&FdbKey { vni, mac })
    }

    /// Learn that `mac` on `vni` was seen at `location`.
    // hot path
    pub fn learn(&mut self, now: Instant, vni: u32, mac: EthernetAddress, location: Location) -> Learned {
        let key = FdbKey { vni, mac };
        if let Some(entry) = self.entries.get_mut(&key) {
            if entry.is_static {
                if entry.location == location {
                    return Learned::Refreshed;
                }
                self.counters.static_conflicts += 1;
                return Learned::StaticConflict;
            }
            let from = entry.location;
            entry.location = location;
            if now.saturating_duration_since(entry.last_seen) >= REFRESH_GRANULARITY {
                let old = (entry.last_seen, entry.seq);
                entry.last_seen = now;
                entry.seq = self.next_seq;
                self.recency.remove(&old);
                self.recency.insert((now, self.next_seq), key);
                self.next_seq += 1;
            }
            if from != location {
                self.counters.moved += 1;
                return Learned::Moved { from };
            }
            return Learned::Refreshed;
        }
        while self.recency.len() >= self.max_dynamic {
            match self.recency.pop_first() {
                Some((_, victim)) => {
                    self.entries.remove(&victim);
                    self.counters.evicted += 1;
                }
                None => break,
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.insert(key, FdbEntry { location, is_static: false, last_seen: now, seq });
        self.recency.insert((now, seq), key);
        self.counters.learned += 1;
        Learned::New
    }

    /// Install or replace a static entry (from configuration or the control plane).
    pub fn insert_static(&mut self, now: Instant, vni: u32, mac: EthernetAddress, location: Location) {
        let key = FdbKey { vni, mac };
        if let Some(old) = self.entries.get(&key) {
            if !old.is_static {
                self.recency.remove(&(old.last_seen, old.seq));
            }
        }
        self.entries.insert(key, FdbEntry { location, is_static: true, last_seen: now, seq: 0 });
    }

    /// Remove an entry (static or dynamic). Returns whether it existed.
    pub fn remove(&mut self, vni: u32, mac: EthernetAddress) -> bool {
        match self.entries.remove(&FdbKey { vni, mac }) {
            Some(old) => {
                if !old.is_static {
                    self.recency.remove(&(old.last_seen, old.seq));
                }
                true
            }
            None => false,
        }
    }

    /// Remove every dynamic entry that points at `peer` on `vni` (the peer went away).
    pub fn flush_remote(&mut self, vni: u32, peer: Ipv4Addr) -> usize {
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
            self.recency.remove(&(seen, seq));
            self.entries.remove(&key);
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
    use super::*;

    fn mac(n: u8) -> EthernetAddress {
        EthernetAddress([0x02, 0, 0, 0, 0, n])
    }
    const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    #[test]
    fn learns_refreshes_and_moves() {
        let t0 = Instant::now();
        let mut fdb = Fdb::new(DEFAULT_AGEING, 16);
        assert_eq!(fdb.learn(t0, 1, mac(1), Location::Remote(A)), Learned::New);
        assert_eq!(fdb.learn(t0, 1, mac(1), Location::Remote(A)), Learned::Refreshed);
        assert_eq!(fdb.learn(t0, 1, mac(1), Location::Remote(B)), Learned::Moved { from: Location::Remote(A) });
        assert_eq!(fdb.lookup(1, mac(1)), Some(Location::Remote(B)));
        assert_eq!(fdb.lookup(2, mac(1)), None, "VNIs are separate tables");
        assert_eq!(fdb.counters().moved, 1);
    }

    #[test]
    fn ages_only_idle_entries() {
        let t0 = Instant::now();
        let ageing = Duration::from_secs(10);
        let mut fdb = Fdb::new(ageing, 16);
        fdb.learn(t0, 1, mac(1), Location::Local);
        fdb.learn(t0, 1, mac(2), Location::Local);
        fdb.insert_static(t0, 1, mac(3), Location::Remote(A));
        fdb.learn(t0 + Duration::from_secs(6), 1, mac(2), Location::Local);
        assert_eq!(fdb.next_expiry(), Some(t0 + ageing));
        assert_eq!(fdb.age(t0 + Duration::from_secs(9)), 0);
        assert_eq!(fdb.age(t0 + Duration::from_secs(10)), 1);
        assert_eq!(fdb.lookup(1, mac(1)), None);
        assert_eq!(fdb.lookup(1, mac(2)), Some(Location::Local));
        assert_eq!(fdb.age(t0 + Duration::from_secs(3600)), 1);
        assert_eq!(fdb.lookup(1, mac(3)), Some(Location::Remote(A)), "static never ages");
        assert_eq!(fdb.counters().aged, 2);
    }

    #[test]
    fn cap_evicts_least_recently_seen_dynamic_entry() {
        let t0 = Instant::now();
        let mut fdb = Fdb::new(DEFAULT_AGEING, 3);
        fdb.insert_static(t0, 1, mac(100), Location::Remote(A));
        for n in 1..=3 {
            fdb.learn(t0 + Duration::from_secs(n as u64 * 2), 1, mac(n), Location::Local);
        }
        // mac(1) is talking again, so mac(2) becomes the least recently seen.
        fdb.learn(t0 + Duration::from_secs(10), 1, mac(1), Location::Local);
        fdb.learn(t0 + Duration::from_secs(12), 1, mac(4), Location::Local);
        assert_eq!(fdb.lookup(1, mac(2)), None);
        for n in [1, 3, 4, 100] {
            assert!(fdb.lookup(1, mac(n)).is_some(), "mac {n} kept");
        }
        assert_eq!(fdb.counters().evicted, 1);
        assert_eq!(fdb.len(), 4, "three dynamic entries plus the exempt static one");
    }

    #[test]
    fn static_entry_is_not_moved_by_learning() {
        let t0 = Instant::now();
        let mut fdb = Fdb::new(DEFAULT_AGEING, 8);
        fdb.insert_static(t0, 1, mac(1), Location::Remote(A));
        assert_eq!(fdb.learn(t0, 1, mac(1), Location::Remote(B)), Learned::StaticConflict);
        assert_eq!(fdb.lookup(1, mac(1)), Some(Location::Remote(A)));
        assert_eq!(fdb.counters().static_conflicts, 1);
    }

    #[test]
    fn flush_remote_removes_only_that_peer() {
        let t0 = Instant::now();
        let mut fdb = Fdb::new(DEFAULT_AGEING, 8);
        fdb.learn(t0, 1, mac(1), Location::Remote(A));
        fdb.learn(t0, 1, mac(2), Location::Remote(B));
        fdb.learn(t0, 2, mac(3), Location::Remote(A));
        assert_eq!(fdb.flush_remote(1, A), 1);
        assert_eq!(fdb.lookup(1, mac(2)), Some(Location::Remote(B)));
        assert_eq!(fdb.lookup(2, mac(3)), Some(Location::Remote(A)));
    }
}
