//! The member record: everything one host tells the cluster about itself, and how it travels.
//!
//! A record is serialized as compact JSON with one-letter keys (readable in a capture, a few
//! hundred bytes for a typical host) and cut into chunks that each fit a gossip datagram next to
//! SWIM traffic. A chunk names its record by `(name, epoch, version)`; the receiver reassembles
//! the chunks of one version and ignores chunks of any version older than the newest complete
//! record it holds. `(epoch, version)` orders records: a restart raises the epoch, a change
//! raises the version.
//!
//! Chunk layout: `1 | name_len u8 | name | epoch u64 | version u64 | index u8 | count u8 | bytes`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::wire::ethernet::EthernetAddress;

const CHUNK_VERSION: u8 = 1;
/// At most this many chunks make one record.
pub const MAX_CHUNKS: usize = 255;

/// One subnet a host owns on a network, with the epoch at which it claimed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubnetClaim {
    /// The subnet.
    pub net: Ipv4Net,
    /// When the claim was made (the claimant's epoch clock); the older claim wins conflicts.
    pub since: u64,
}

/// A container address on a network and its MAC (feeds proxy-ARP on the other hosts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Binding {
    /// The container's IPv4 address.
    pub ip: Ipv4Addr,
    /// The container's MAC.
    pub mac: EthernetAddress,
    /// When the binding was made; the older binding wins conflicts.
    pub since: u64,
}

/// What a host has on one network (VNI).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkClaim {
    /// The VXLAN network identifier.
    pub vni: u32,
    /// Subnets routed to this host.
    pub subnets: Vec<SubnetClaim>,
    /// Container IP to MAC bindings.
    pub bindings: Vec<Binding>,
}

/// Everything one host announces about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// Unique host name.
    pub name: String,
    /// The host's gossip address (links the record to its SWIM identity).
    pub gossip: SocketAddr,
    /// Underlay (outer) IPv4 address.
    pub underlay: Ipv4Addr,
    /// VTEP MAC, if the host has one.
    pub vtep_mac: Option<EthernetAddress>,
    /// Start epoch: larger on every restart of the host.
    pub epoch: u64,
    /// Bumped on every change within one epoch.
    pub version: u64,
    /// Modes the host runs (e.g. "vxlan", "esp", "offload").
    pub modes: Vec<String>,
    /// Long-term X25519 public key for ESP, if the host runs ESP.
    pub esp_public_key: Option<[u8; 32]>,
    /// Networks the host is on.
    pub networks: Vec<NetworkClaim>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    n: String,
    g: SocketAddr,
    u: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    m: Option<String>,
    e: u64,
    v: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    o: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<String>,
    #[serde(default)]
    w: Vec<WireNet>,
}

#[derive(Serialize, Deserialize)]
struct WireNet {
    i: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    s: Vec<(Ipv4Net, u64)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    b: Vec<(Ipv4Addr, String, u64)>,
}

fn mac_hex(mac: &EthernetAddress) -> String {
    hex::encode(mac.0)
}

fn mac_parse(text: &str) -> Option<EthernetAddress> {
    let mut m = [0u8; 6];
    hex::decode_to_slice(text, &mut m).ok()?;
    Some(EthernetAddress(m))
}

impl MemberRecord {
    /// The claim of network `vni`, if the host is on it.
    pub fn network(&self, vni: u32) -> Option<&NetworkClaim> {
        self.networks.iter().find(|n| n.vni == vni)
    }

    /// Serializes to compact JSON.
    pub fn encode(&self) -> Vec<u8> {
        let wire = Wire {
            n: self.name.clone(),
            g: self.gossip,
            u: self.underlay,
            m: self.vtep_mac.as_ref().map(mac_hex),
            e: self.epoch,
            v: self.version,
            o: self.modes.clone(),
            k: self.esp_public_key.map(hex::encode),
            w: self
                .networks
                .iter()
                .map(|n| WireNet {
                    i: n.vni,
                    s: n.subnets.iter().map(|s| (s.net, s.since)).collect(),
                    b: n.bindings.iter().map(|b| (b.ip, mac_hex(&b.mac), b.since)).collect(),
                })
                .collect(),
        };
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Parses compact JSON; `None` on anything malformed.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let wire: Wire = serde_json::from_slice(bytes).ok()?;
        let esp_public_key = match wire.k {
            Some(k) => {
                let mut key = [0u8; 32];
                hex::decode_to_slice(k, &mut key).ok()?;
                Some(key)
            }
            None => None,
        };
        let vtep_mac = match wire.m {
            Some(m) => Some(mac_parse(&m)?),
            None => None,
        };
        let mut networks = Vec::with_capacity(wire.w.len());
        for n in wire.w {
            let mut bindings = Vec::with_capacity(n.b.len());
            for (ip, mac, since) in n.b {
                bindings.push(Binding { ip, mac: mac_parse(&mac)?, since });
            }
            let subnets = n.s.into_iter().map(|(net, since)| SubnetClaim { net: net.trunc(), since }).collect();
            networks.push(NetworkClaim { vni: n.i, subnets, bindings });
        }
        Some(MemberRecord {
            name: wire.n,
            gossip: wire.g,
            underlay: wire.u,
            vtep_mac,
            epoch: wire.e,
            version: wire.v,
            modes: wire.o,
            esp_public_key,
            networks,
        })
    }

    /// Cuts the record into chunks of at most `chunk_len` bytes each (header included).
    pub fn chunks(&self, chunk_len: usize) -> Result<Vec<Vec<u8>>, RecordTooLarge> {
        let body = self.encode();
        let header_len = chunk_header_len(&self.name);
        if self.name.len() > 255 || chunk_len <= header_len {
            return Err(RecordTooLarge);
        }
        let room = chunk_len - header_len;
        let count = body.len().div_ceil(room).max(1);
        if count > MAX_CHUNKS {
            return Err(RecordTooLarge);
        }
        let mut out = Vec::with_capacity(count);
        for index in 0..count {
            let part = &body[(index * room).min(body.len())..((index + 1) * room).min(body.len())];
            let mut c = Vec::with_capacity(header_len + part.len());
            c.push(CHUNK_VERSION);
            c.push(self.name.len() as u8);
            c.extend_from_slice(self.name.as_bytes());
            c.extend_from_slice(&self.epoch.to_be_bytes());
            c.extend_from_slice(&self.version.to_be_bytes());
            c.push(index as u8);
            c.push(count as u8);
            c.extend_from_slice(part);
            out.push(c);
        }
        Ok(out)
    }
}

/// The record does not fit in [`MAX_CHUNKS`] chunks (or the name is longer than 255 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("member record too large to gossip")]
pub struct RecordTooLarge;

fn chunk_header_len(name: &str) -> usize {
    1 + 1 + name.len() + 8 + 8 + 1 + 1
}

/// The parsed header of one chunk, which also serves as its dissemination key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChunkKey {
    /// Host name.
    pub name: String,
    /// Record epoch.
    pub epoch: u64,
    /// Record version.
    pub version: u64,
    /// Index of this chunk.
    pub index: u8,
    /// Number of chunks of the record.
    pub count: u8,
}

impl ChunkKey {
    /// Parses a chunk into its key and body.
    pub fn parse(chunk: &[u8]) -> Option<(ChunkKey, &[u8])> {
        let (&ver, rest) = chunk.split_first()?;
        if ver != CHUNK_VERSION {
            return None;
        }
        let (&name_len, rest) = rest.split_first()?;
        let name_len = name_len as usize;
        if rest.len() < name_len + 18 {
            return None;
        }
        let name = std::str::from_utf8(&rest[..name_len]).ok()?.to_string();
        let rest = &rest[name_len..];
        let epoch = u64::from_be_bytes(rest[..8].try_into().ok()?);
        let version = u64::from_be_bytes(rest[8..16].try_into().ok()?);
        let (index, count) = (rest[16], rest[17]);
        if count == 0 || index >= count {
            return None;
        }
        Some((ChunkKey { name, epoch, version, index, count }, &rest[18..]))
    }

    fn order(&self) -> (u64, u64) {
        (self.epoch, self.version)
    }
}

impl foca::Invalidates for ChunkKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.name == other.name && self.index == other.index && self.order() >= other.order()
    }
}

struct Pending {
    order: (u64, u64),
    parts: Vec<Option<Vec<u8>>>,
}

/// Reassembles records from chunks and tells new chunks from stale or duplicate ones.
#[derive(Default)]
pub struct RecordInbox {
    complete: HashMap<String, (u64, u64)>,
    pending: HashMap<String, Pending>,
    ready: Vec<MemberRecord>,
    malformed: u64,
    max_names: usize,
}

/// What [`RecordInbox::offer`] made of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// A chunk not seen before: keep spreading it.
    New,
    /// Already held, or older than the newest record held.
    Stale,
    /// Not a valid chunk.
    Malformed,
}

impl RecordInbox {
    /// An inbox tracking at most `max_names` hosts.
    pub fn new(max_names: usize) -> Self {
        RecordInbox { max_names, ..Default::default() }
    }

    /// Takes one chunk; completed records are queued for [`RecordInbox::take_ready`].
    pub fn offer(&mut self, chunk: &[u8]) -> Offer {
        let Some((key, body)) = ChunkKey::parse(chunk) else {
            self.malformed += 1;
            return Offer::Malformed;
        };
        if self.complete.get(&key.name).is_some_and(|done| *done >= key.order()) {
            return Offer::Stale;
        }
        if !self.pending.contains_key(&key.name)
            && !self.complete.contains_key(&key.name)
            && self.complete.len() + self.pending.len() >= self.max_names
        {
            return Offer::Stale;
        }
        let pending = self.pending.entry(key.name.clone()).or_insert_with(|| Pending { order: (0, 0), parts: Vec::new() });
        if pending.order > key.order() {
            return Offer::Stale;
        }
        if pending.order < key.order() || pending.parts.len() != key.count as usize {
            pending.order = key.order();
            pending.parts = vec![None; key.count as usize];
        }
        let slot = &mut pending.parts[key.index as usize];
        if slot.is_some() {
            return Offer::Stale;
        }
        *slot = Some(body.to_vec());
        if pending.parts.iter().all(Option::is_some) {
            let body: Vec<u8> = pending.parts.iter().flatten().flatten().copied().collect();
            self.pending.remove(&key.name);
            match MemberRecord::decode(&body) {
                Some(rec) if rec.name == key.name && (rec.epoch, rec.version) == key.order() => {
                    let order = key.order();
                    self.complete.insert(key.name, order);
                    self.ready.push(rec);
                }
                _ => {
                    self.malformed += 1;
                    return Offer::Malformed;
                }
            }
        }
        Offer::New
    }

    /// Records completed since the last call.
    pub fn take_ready(&mut self) -> Vec<MemberRecord> {
        std::mem::take(&mut self.ready)
    }

    /// Forgets a host (after its grace period), so a later life is accepted from scratch.
    pub fn forget(&mut self, name: &str) {
        self.complete.remove(name);
        self.pending.remove(name);
    }

    /// How many chunks were malformed or reassembled into an invalid record.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(bindings: usize) -> MemberRecord {
        MemberRecord {
            name: "host-a".into(),
            gossip: "198.18.0.1:4790".parse().unwrap(),
            underlay: Ipv4Addr::new(198, 18, 0, 1),
            vtep_mac: Some(EthernetAddress([2, 0, 0, 0, 0, 1])),
            epoch: 17,
            version: 3,
            modes: vec!["vxlan".into(), "esp".into()],
            esp_public_key: Some([9; 32]),
            networks: vec![NetworkClaim {
                vni: 42,
                subnets: vec![SubnetClaim { net: "203.0.113.0/26".parse().unwrap(), since: 17 }],
                bindings: (0..bindings)
                    .map(|i| Binding {
                        ip: Ipv4Addr::new(203, 0, 113, (i % 250) as u8 + 1),
                        mac: EthernetAddress([2, 0, 0, 0, 1, i as u8]),
                        since: 17,
                    })
                    .collect(),
            }],
        }
    }

    #[test]
    fn encode_decode_round_trip_is_compact() {
        let r = sample(2);
        let bytes = r.encode();
        assert!(bytes.len() < 330, "{} bytes: {}", bytes.len(), String::from_utf8_lossy(&bytes));
        assert_eq!(MemberRecord::decode(&bytes), Some(r));
        assert_eq!(MemberRecord::decode(b"{\"n\":1}"), None);
    }

    #[test]
    fn chunks_reassemble_in_any_order_and_duplicates_are_stale() {
        let r = sample(60);
        let chunks = r.chunks(400).unwrap();
        assert!(chunks.len() > 3);
        assert!(chunks.iter().all(|c| c.len() <= 400));
        let mut inbox = RecordInbox::new(16);
        for c in chunks.iter().rev().skip(1) {
            assert_eq!(inbox.offer(c), Offer::New);
            assert_eq!(inbox.offer(c), Offer::Stale);
        }
        assert!(inbox.take_ready().is_empty());
        assert_eq!(inbox.offer(&chunks[chunks.len() - 1]), Offer::New);
        assert_eq!(inbox.take_ready(), vec![r.clone()]);
        // The same version again, or an older one, is stale.
        assert_eq!(inbox.offer(&chunks[0]), Offer::Stale);
        let older = MemberRecord { version: 2, ..r.clone() };
        assert_eq!(inbox.offer(&older.chunks(400).unwrap()[0]), Offer::Stale);
        // A newer epoch is accepted.
        let newer = MemberRecord { epoch: 18, version: 0, ..r };
        for c in newer.chunks(400).unwrap() {
            assert_eq!(inbox.offer(&c), Offer::New);
        }
        assert_eq!(inbox.take_ready(), vec![newer]);
    }

    #[test]
    fn garbage_chunks_are_malformed_not_panics() {
        let mut inbox = RecordInbox::new(16);
        let good = sample(1).chunks(1000).unwrap().remove(0);
        for cut in 0..good.len() - 1 {
            let o = inbox.offer(&good[..cut]);
            assert!(o == Offer::Malformed, "cut {cut}: {o:?}");
        }
        let mut bad_index = good.clone();
        let idx_pos = 2 + "host-a".len() + 16;
        bad_index[idx_pos] = 5;
        assert_eq!(inbox.offer(&bad_index), Offer::Malformed);
        assert!(inbox.malformed() > 0);
    }
}
