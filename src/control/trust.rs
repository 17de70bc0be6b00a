//! Trust on first use: which signing key and underlay each host name is bound to.
//!
//! Threat model. Every member holds the cluster key, so the cluster key alone cannot tell one
//! member from another. Each host therefore signs its record with its own key
//! ([`super::signing`]), and the first record seen under a name binds that name to the record's
//! key and underlay here. Later records for the name must carry the same key and underlay, or
//! they are refused and counted: a member (or a stolen cluster key) can no longer rewrite another
//! host's underlay, subnets or ESP public key, which would make it a man in the middle of ESP.
//! What is not covered: whoever holds the cluster key and reaches the cluster first can claim a
//! name nobody has used yet, and a host's own key holder can still lie about that host.
//!
//! The store is persisted by the driver (it survives restarts, or a restart would be a fresh
//! first use), and an operator rotates a host's key or moves it to a new underlay with
//! `vxswitch forget HOST`, which removes the binding so the next record is trusted anew.
//!
//! The store also dates claims: a host's claims count from no earlier than when it was first
//! trusted here (`first_seen`), so a newcomer cannot win every ownership conflict with
//! `since = 0`. Hosts first seen within [`BOOTSTRAP`] of the store's creation (a cluster starting
//! together, or this host joining an existing one) are taken at their word: `first_seen` 0.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::policy::RefuseReason;

/// Hosts first trusted this long (seconds) after the store was created keep their claimed ages.
pub const BOOTSTRAP: u64 = 60;
/// At most this many names are remembered; beyond it the least recently used binding is dropped.
pub const MAX_TRUSTED: usize = 4096;

/// What is known about one host name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trusted {
    /// Its record signing key.
    #[serde(with = "hex_key")]
    pub key: [u8; 32],
    /// Its underlay address.
    pub underlay: IpAddr,
    /// Unix seconds when it was first trusted here (0: taken at its word, see [`BOOTSTRAP`]).
    pub first_seen: u64,
    /// Unix seconds when a record of it was last accepted.
    #[serde(default)]
    pub last_seen: u64,
}

/// Name -> key and underlay bindings, persisted by the driver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustStore {
    /// Unix seconds when this store was started.
    pub created: u64,
    /// The bindings, by host name.
    pub hosts: BTreeMap<String, Trusted>,
    #[serde(skip)]
    changed: bool,
}

impl TrustStore {
    /// An empty store started at `wall` (Unix seconds).
    pub fn new(wall: u64) -> Self {
        TrustStore { created: wall, hosts: BTreeMap::new(), changed: true }
    }

    /// Checks the record of `name` signed by `key` with `underlay` at `wall` (Unix seconds):
    /// the first record binds; later ones must match. Returns the floor of its claim ages.
    pub fn check(&mut self, name: &str, key: [u8; 32], underlay: IpAddr, wall: u64) -> Result<u64, RefuseReason> {
        if let Some(t) = self.hosts.get_mut(name) {
            if t.key != key {
                return Err(RefuseReason::KeyChanged);
            }
            if t.underlay != underlay {
                return Err(RefuseReason::UnderlayChanged);
            }
            t.last_seen = wall;
            return Ok(t.first_seen);
        }
        if self.hosts.len() >= MAX_TRUSTED {
            let oldest = self.hosts.iter().min_by_key(|(_, t)| t.last_seen).map(|(n, _)| n.clone());
            if let Some(n) = oldest {
                self.hosts.remove(&n);
            }
        }
        let first_seen = if wall < self.created.saturating_add(BOOTSTRAP) { 0 } else { wall };
        self.hosts.insert(name.to_string(), Trusted { key, underlay, first_seen, last_seen: wall });
        self.changed = true;
        Ok(first_seen)
    }

    /// Removes the binding of `name` (key rotation, new underlay); whether there was one.
    pub fn forget(&mut self, name: &str) -> bool {
        let had = self.hosts.remove(name).is_some();
        self.changed |= had;
        had
    }

    /// Whether bindings changed since the last call (the driver then saves the store).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Reads a store saved by [`TrustStore::save`]; a missing file is a new store started at `wall`.
    pub fn load(path: &Path, wall: u64) -> io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::new(wall)),
            Err(e) => Err(e),
        }
    }

    /// Writes the store to `path` atomically (a temporary file renamed over it), mode 0600.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        crate::keyfile::write_atomically(path, &json)
    }
}

mod hex_key {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(k: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(k))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut k = [0u8; 32];
        hex::decode_to_slice(text, &mut k).map_err(serde::de::Error::custom)?;
        Ok(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 2));

    #[test]
    fn first_record_binds_key_and_underlay_until_forgotten() {
        let mut t = TrustStore::new(1000);
        assert!(t.take_changed());
        assert_eq!(t.check("b", [1; 32], UL, 1010), Ok(0), "within the bootstrap window: taken at its word");
        assert!(t.take_changed());
        assert_eq!(t.check("b", [1; 32], UL, 5000), Ok(0));
        assert!(!t.take_changed(), "a known binding is no change");
        assert_eq!(t.check("b", [2; 32], UL, 5000), Err(RefuseReason::KeyChanged));
        assert_eq!(t.check("b", [1; 32], std::net::Ipv4Addr::new(198, 18, 0, 9).into(), 5000), Err(RefuseReason::UnderlayChanged));
        assert_eq!(t.check("c", [3; 32], UL, 5000), Ok(5000), "a newcomer's claims count from now");
        assert!(t.forget("b"));
        assert!(!t.forget("b"));
        assert_eq!(t.check("b", [2; 32], UL, 6000), Ok(6000), "rebound to the new key");
    }

    #[test]
    fn saved_and_loaded_across_restarts() {
        let dir = std::env::temp_dir().join(format!("vxs-trust-{}", std::process::id()));
        let path = dir.join("trust.json");
        let _ = std::fs::remove_dir_all(&dir);
        let fresh = TrustStore::load(&path, 77).unwrap();
        assert_eq!((fresh.created, fresh.hosts.len()), (77, 0));
        let mut t = TrustStore::new(100);
        t.check("b", [1; 32], UL, 500).unwrap();
        t.save(&path).unwrap();
        let back = TrustStore::load(&path, 999).unwrap();
        assert_eq!((back.created, back.hosts.clone()), (100, t.hosts.clone()));
        std::fs::write(&path, b"not json").unwrap();
        assert!(TrustStore::load(&path, 1).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bounded_by_evicting_the_least_recently_seen() {
        let mut t = TrustStore::new(0);
        for i in 0..MAX_TRUSTED {
            t.check(&format!("h{i}"), [1; 32], UL, 100 + i as u64).unwrap();
        }
        t.check("new", [1; 32], UL, 1_000_000).unwrap();
        assert_eq!(t.hosts.len(), MAX_TRUSTED);
        assert!(!t.hosts.contains_key("h0") && t.hosts.contains_key("h1"));
    }
}
