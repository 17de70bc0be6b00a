//! Where retired automatic ESP sessions left off, so a session rebuilt for the same keys
//! continues instead of starting over.
//!
//! An automatic session's keys depend only on (local key, local epoch, peer key, peer epoch,
//! generation, VNI). When a session is dropped (its peer left, or two records claiming one underlay
//! address made the key flip) and the same peer key and epoch come back later in this run, a
//! fresh session would start at generation 0 again and repeat (key, nonce) pairs. So a retired
//! session leaves its [`ResumePoint`] here, and the next session for those keys resumes from it.
//!
//! The table is bounded. When it is full the oldest entry is forgotten, and what it protected is
//! folded into two numbers: `floor`, above every outbound generation a forgotten entry used, and
//! `forgotten_epoch`, the largest peer epoch forgotten. A session for a peer epoch at or below
//! `forgotten_epoch` that has no entry may be one of the forgotten ones, so it starts at `floor`;
//! newer epochs (start epochs grow with time) start at 0 as usual. Either way no generation
//! repeats; only a long-forgotten peer may have to wait for its receiver to resynchronise.

use crate::wire::vxlan::Vni;
use std::collections::{HashMap, VecDeque};

use crate::ipsec::ResumePoint;

/// Identity of an automatic session's keys on the peer's side: (VNI of the network, public key, epoch).
pub type PeerKeyId = (Vni, [u8; 32], u64);

/// Resume points of retired automatic sessions, bounded, oldest forgotten first.
#[derive(Debug)]
pub struct ResumeTable {
    entries: HashMap<PeerKeyId, ResumePoint>,
    order: VecDeque<PeerKeyId>,
    capacity: usize,
    floor: u64,
    forgotten_epoch: Option<u64>,
    /// Entries forgotten because the table was full.
    pub forgotten: u64,
}

impl ResumeTable {
    /// An empty table keeping at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        ResumeTable {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            floor: 0,
            forgotten_epoch: None,
            forgotten: 0,
        }
    }

    /// Remember where the session for `key` left off (keeping the later point if one exists).
    pub fn retire(&mut self, key: PeerKeyId, at: ResumePoint) {
        match self.entries.get_mut(&key) {
            Some(old) => *old = later(*old, at),
            None => {
                self.entries.insert(key, at);
                self.order.push_back(key);
            }
        }
        while self.entries.len() > self.capacity {
            let Some(oldest) = self.order.pop_front() else { break };
            if let Some(p) = self.entries.remove(&oldest) {
                self.floor = self.floor.max(p.out_generation);
                self.forgotten_epoch = self.forgotten_epoch.max(Some(oldest.2));
                self.forgotten += 1;
            }
        }
    }

    /// Where a new session for `key` starts (and forget the entry: the new session owns it).
    pub fn take(&mut self, key: PeerKeyId) -> ResumePoint {
        if let Some(p) = self.entries.remove(&key) {
            self.order.retain(|k| *k != key);
            return ResumePoint { out_generation: p.out_generation.max(self.floor_for(key)), ..p };
        }
        ResumePoint { out_generation: self.floor_for(key), ..ResumePoint::default() }
    }

    fn floor_for(&self, key: PeerKeyId) -> u64 {
        if self.forgotten_epoch.is_some_and(|e| key.2 <= e) {
            self.floor
        } else {
            0
        }
    }

    /// Entries kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn later(a: ResumePoint, b: ResumePoint) -> ResumePoint {
    let inbound = if (b.in_generation, b.in_seen) > (a.in_generation, a.in_seen) { b } else { a };
    ResumePoint { out_generation: a.out_generation.max(b.out_generation), ..inbound }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(out: u64) -> ResumePoint {
        ResumePoint { out_generation: out, in_generation: 2, in_seen: 9 }
    }

    #[test]
    fn a_retired_session_resumes_and_unknown_keys_start_at_zero() {
        let mut t = ResumeTable::new(4);
        t.retire((Vni::new_const(7), [1; 32], 10), at(5));
        assert_eq!(t.take((Vni::new_const(7), [2; 32], 10)), ResumePoint::default());
        assert_eq!(t.take((Vni::new_const(7), [1; 32], 10)), at(5));
        assert!(t.is_empty(), "the new session owns the entry");
        t.retire((Vni::new_const(7), [1; 32], 10), at(3));
        t.retire((Vni::new_const(7), [1; 32], 10), at(7));
        assert_eq!(t.take((Vni::new_const(7), [1; 32], 10)).out_generation, 7, "the later point wins");
    }

    #[test]
    fn forgotten_entries_raise_the_floor_for_old_epochs_only() {
        let mut t = ResumeTable::new(2);
        t.retire((Vni::new_const(7), [1; 32], 10), at(40));
        t.retire((Vni::new_const(7), [2; 32], 11), at(3));
        t.retire((Vni::new_const(7), [3; 32], 12), at(1));
        assert_eq!((t.len(), t.forgotten), (2, 1));
        // Key 1 at epoch 10 was forgotten: any epoch up to 10 without an entry starts above 40.
        assert_eq!(t.take((Vni::new_const(7), [1; 32], 10)).out_generation, 40);
        assert_eq!(t.take((Vni::new_const(7), [9; 32], 9)).out_generation, 40);
        // A later epoch cannot be a forgotten one.
        assert_eq!(t.take((Vni::new_const(7), [9; 32], 13)).out_generation, 0);
        assert_eq!(t.take((Vni::new_const(7), [2; 32], 11)), at(3), "kept entries are exact");
    }
}
