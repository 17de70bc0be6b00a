//! The member record: everything one host tells the cluster about itself, and how it travels.
//!
//! A record is serialized as compact JSON with one-letter keys (readable in a capture, a few
//! hundred bytes for a typical host) and cut into chunks that each fit a gossip datagram next to
//! SWIM traffic. A chunk names its record by `(name, epoch, version)`; the receiver reassembles
//! the chunks of one version and ignores chunks of any version older than the newest complete
//! record it holds. `(epoch, version)` orders records: a restart raises the epoch, a change
//! raises the version.
//!
//! Chunk layout: `2 | name_len u8 | name | epoch u64 | version u64 | index u8 | count u8 | bytes`.
//! The bytes of all chunks together are the Ed25519 signature (64 bytes) over the JSON, then the
//! JSON; the JSON names the signing key (`p`), and a record whose signature does not verify under
//! it is refused on reassembly (see [`super::signing`] and [`super::trust`]).

use crate::wire::vxlan::Vni;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use super::floating::FloatingClaim;
use super::services::ServiceSpec;
use super::signing::{self, SigningKey, SIGNATURE_LEN};
use crate::wire::ethernet::EthernetAddress;

const CHUNK_VERSION: u8 = 2;
/// At most this many chunks make one record.
pub const MAX_CHUNKS: usize = 255;

/// One subnet a host owns on a network, with the epoch at which it claimed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubnetClaim {
    /// The subnet, IPv4 or IPv6 (a dual-stack host claims one of each; conflicts are decided
    /// per family, since subnets of different families never overlap).
    pub net: IpNet,
    /// When the claim was made (the claimant's epoch clock); the older claim wins conflicts.
    pub since: u64,
}

impl SubnetClaim {
    /// The subnet when it is IPv4 (leases, the CNI answer and host-subnet gateways are IPv4).
    pub fn ipv4(&self) -> Option<Ipv4Net> {
        match self.net {
            IpNet::V4(net) => Some(net),
            IpNet::V6(_) => None,
        }
    }
}

/// A container address on a network and its MAC (feeds proxy ARP, or the ND proxy for IPv6, on
/// the other hosts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Binding {
    /// The container's address (IPv4 or IPv6).
    pub ip: IpAddr,
    /// The container's MAC.
    pub mac: EthernetAddress,
    /// When the binding was made; the older binding wins conflicts.
    pub since: u64,
}

/// What a host has on one network (VNI).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkClaim {
    /// The VXLAN network identifier.
    pub vni: Vni,
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
    /// Underlay (outer) address, IPv4 or IPv6 (JSON spells both as text, so IPv4 records are
    /// unchanged on the wire).
    pub underlay: IpAddr,
    /// The host's IPv6 address on the underlay link when the underlay is IPv4 (`[underlay]
    /// address6`): the next hop of kernel routes to its IPv6 subnets (host-subnet mode).
    pub address6: Option<Ipv6Addr>,
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
    /// Ed25519 key the record is signed with (bound to the name on first sight).
    pub signing_key: Option<[u8; 32]>,
    /// Networks the host is on.
    pub networks: Vec<NetworkClaim>,
    /// Floating IPs this host claims (see [`super::floating`]).
    pub floating: Vec<FloatingClaim>,
    /// Service VIPs defined on this host (see [`super::services`]).
    pub services: Vec<ServiceSpec>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    n: String,
    g: SocketAddr,
    u: IpAddr,
    /// `address6`, absent unless configured (older readers skip it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    a: Option<Ipv6Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    m: Option<String>,
    e: u64,
    v: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    o: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<String>,
    #[serde(default)]
    w: Vec<WireNet>,
    /// Floating IP claims: (address, epoch, first sighting in ms).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    f: Vec<(Ipv4Addr, u64, u64)>,
    /// Services: ("VIP:PORT/PROTO", backends).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    x: Vec<(String, Vec<Ipv4Addr>)>,
}

#[derive(Serialize, Deserialize)]
struct WireNet {
    i: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    s: Vec<(Ipv4Net, u64)>,
    /// IPv6 subnet claims, apart from `s` for the same reason as `d`: a reader that knows only
    /// IPv4 claims would refuse the whole record over one IPv6 prefix in `s`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    t: Vec<(Ipv6Net, u64)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    b: Vec<(Ipv4Addr, String, u64)>,
    /// IPv6 bindings, apart from `b` so that hosts that know only IPv4 bindings still read the
    /// record (serde skips unknown keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    d: Vec<(Ipv6Addr, String, u64)>,
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
    pub fn network(&self, vni: Vni) -> Option<&NetworkClaim> {
        self.networks.iter().find(|n| n.vni == vni)
    }

    /// Serializes to compact JSON.
    pub fn encode(&self) -> Vec<u8> {
        let wire = Wire {
            n: self.name.clone(),
            g: self.gossip,
            u: self.underlay,
            a: self.address6,
            m: self.vtep_mac.as_ref().map(mac_hex),
            e: self.epoch,
            v: self.version,
            o: self.modes.clone(),
            k: self.esp_public_key.map(hex::encode),
            p: self.signing_key.map(hex::encode),
            w: self
                .networks
                .iter()
                .map(|n| WireNet {
                    i: n.vni.get(),
                    s: n.subnets
                        .iter()
                        .filter_map(|s| match s.net {
                            IpNet::V4(net) => Some((net, s.since)),
                            IpNet::V6(_) => None,
                        })
                        .collect(),
                    t: n.subnets
                        .iter()
                        .filter_map(|s| match s.net {
                            IpNet::V6(net) => Some((net, s.since)),
                            IpNet::V4(_) => None,
                        })
                        .collect(),
                    b: n.bindings
                        .iter()
                        .filter_map(|b| match b.ip {
                            IpAddr::V4(ip) => Some((ip, mac_hex(&b.mac), b.since)),
                            IpAddr::V6(_) => None,
                        })
                        .collect(),
                    d: n.bindings
                        .iter()
                        .filter_map(|b| match b.ip {
                            IpAddr::V6(ip) => Some((ip, mac_hex(&b.mac), b.since)),
                            IpAddr::V4(_) => None,
                        })
                        .collect(),
                })
                .collect(),
            f: self.floating.iter().map(|c| (c.ip, c.epoch, c.seen)).collect(),
            x: self.services.iter().map(|s| (s.key.to_string(), s.backends.clone())).collect(),
        };
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Parses compact JSON; `None` on anything malformed.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let wire: Wire = serde_json::from_slice(bytes).ok()?;
        let key32 = |k: Option<String>| -> Option<Option<[u8; 32]>> {
            match k {
                Some(k) => {
                    let mut key = [0u8; 32];
                    hex::decode_to_slice(k, &mut key).ok()?;
                    Some(Some(key))
                }
                None => Some(None),
            }
        };
        let esp_public_key = key32(wire.k)?;
        let signing_key = key32(wire.p)?;
        let vtep_mac = match wire.m {
            Some(m) => Some(mac_parse(&m)?),
            None => None,
        };
        let mut networks = Vec::with_capacity(wire.w.len());
        for n in wire.w {
            let mut bindings = Vec::with_capacity(n.b.len() + n.d.len());
            for (ip, mac, since) in n.b {
                bindings.push(Binding { ip: ip.into(), mac: mac_parse(&mac)?, since });
            }
            for (ip, mac, since) in n.d {
                bindings.push(Binding { ip: ip.into(), mac: mac_parse(&mac)?, since });
            }
            let v4 = n.s.into_iter().map(|(net, since)| SubnetClaim { net: IpNet::V4(net.trunc()), since });
            let v6 = n.t.into_iter().map(|(net, since)| SubnetClaim { net: IpNet::V6(net.trunc()), since });
            let subnets = v4.chain(v6).collect();
            networks.push(NetworkClaim { vni: Vni::new(n.i)?, subnets, bindings });
        }
        let mut services = Vec::with_capacity(wire.x.len());
        for (key, backends) in wire.x {
            services.push(ServiceSpec { key: key.parse().ok()?, backends });
        }
        Some(MemberRecord {
            services,
            name: wire.n,
            gossip: wire.g,
            underlay: wire.u,
            address6: wire.a,
            vtep_mac,
            epoch: wire.e,
            version: wire.v,
            modes: wire.o,
            esp_public_key,
            signing_key,
            networks,
            floating: wire.f.into_iter().map(|(ip, epoch, seen)| FloatingClaim { ip, epoch, seen }).collect(),
        })
    }

    /// Parses a signed body (signature, then JSON): `Err(true)` when the JSON is malformed,
    /// `Err(false)` when the signature does not verify under the key the record names.
    pub fn decode_signed(body: &[u8]) -> Result<Self, bool> {
        if body.len() < SIGNATURE_LEN {
            return Err(true);
        }
        let (sig, json) = body.split_at(SIGNATURE_LEN);
        let rec = Self::decode(json).ok_or(true)?;
        match rec.signing_key {
            Some(key) if signing::verify(&key, json, sig) => Ok(rec),
            _ => Err(false),
        }
    }

    /// Signs the record with `signer` and cuts it into chunks of at most `chunk_len` bytes each
    /// (header included). The record should name `signer`'s public key.
    pub fn chunks(&self, chunk_len: usize, signer: &SigningKey) -> Result<Vec<Vec<u8>>, RecordTooLarge> {
        let json = self.encode();
        let mut body = signer.sign(&json).to_vec();
        body.extend_from_slice(&json);
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

    /// The record's `(epoch, version)`.
    pub fn order(&self) -> (u64, u64) {
        (self.epoch, self.version)
    }
}

impl foca::Invalidates for ChunkKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.name == other.name && self.index == other.index && self.order() >= other.order()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record with `bindings` container bindings.
    pub(crate) fn sample(bindings: usize) -> MemberRecord {
        MemberRecord {
            name: "host-a".into(),
            gossip: "198.18.0.1:4790".parse().unwrap(),
            underlay: Ipv4Addr::new(198, 18, 0, 1).into(),
            address6: None,
            vtep_mac: Some(EthernetAddress([2, 0, 0, 0, 0, 1])),
            epoch: 17,
            version: 3,
            modes: vec!["vxlan".into(), "esp".into()],
            esp_public_key: Some([9; 32]),
            signing_key: None,
            networks: vec![NetworkClaim {
                vni: Vni::new_const(42),
                subnets: vec![SubnetClaim { net: "203.0.113.0/26".parse().unwrap(), since: 17 }],
                bindings: (0..bindings)
                    .map(|i| Binding {
                        ip: Ipv4Addr::new(203, 0, 113, (i % 250) as u8 + 1).into(),
                        mac: EthernetAddress([2, 0, 0, 0, 1, i as u8]),
                        since: 17,
                    })
                    .collect(),
            }],
            floating: Vec::new(),
            services: Vec::new(),
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
    fn ipv6_bindings_travel_apart_and_older_readers_keep_the_rest() {
        let mut r = sample(1);
        let v6 = Binding { ip: "fd00:42::21".parse().unwrap(), mac: EthernetAddress([2, 0, 0, 0, 2, 0x15]), since: 18 };
        r.networks[0].bindings.push(v6);
        let bytes = r.encode();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["w"][0]["b"], serde_json::json!([["203.0.113.1", "020000000100", 17]]), "IPv4 bindings where they were");
        assert_eq!(json["w"][0]["d"], serde_json::json!([["fd00:42::21", "020000000215", 18]]));
        assert_eq!(MemberRecord::decode(&bytes), Some(r.clone()));
        // A reader that predates `d` sees the same JSON minus a key it does not know; this reader
        // skips unknown keys the same way (no deny_unknown_fields), so it gets the IPv4 part.
        let mut with_unknown = json.clone();
        with_unknown["w"][0]["future"] = serde_json::json!([1, 2, 3]);
        let decoded = MemberRecord::decode(&serde_json::to_vec(&with_unknown).unwrap()).unwrap();
        assert_eq!(decoded, r);
        let mut without_d = json;
        without_d["w"][0].as_object_mut().unwrap().remove("d");
        let decoded = MemberRecord::decode(&serde_json::to_vec(&without_d).unwrap()).unwrap();
        assert_eq!(decoded.networks[0].bindings, r.networks[0].bindings[..1]);
        // A malformed IPv6 binding makes the record malformed, as an IPv4 one does.
        let bad = String::from_utf8(bytes).unwrap().replace("fd00:42::21", "fd00:42::zz");
        assert_eq!(MemberRecord::decode(bad.as_bytes()), None);
    }

    #[test]
    fn ipv6_subnets_and_address6_travel_apart_and_older_readers_keep_the_ipv4_claims() {
        let mut r = sample(0);
        r.address6 = Some("fd00:18::1".parse().unwrap());
        r.networks[0].subnets.push(SubnetClaim { net: "fd00:42:1::/64".parse().unwrap(), since: 19 });
        let bytes = r.encode();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["w"][0]["s"], serde_json::json!([["203.0.113.0/26", 17]]), "IPv4 claims where they were");
        assert_eq!(json["w"][0]["t"], serde_json::json!([["fd00:42:1::/64", 19]]));
        assert_eq!(json["a"], serde_json::json!("fd00:18::1"));
        assert_eq!(MemberRecord::decode(&bytes), Some(r.clone()));
        // Without `t` and `a` (an IPv4-only host, or a reader that predates them): the IPv4 claim.
        let mut old = json;
        old["w"][0].as_object_mut().unwrap().remove("t");
        old.as_object_mut().unwrap().remove("a");
        let decoded = MemberRecord::decode(&serde_json::to_vec(&old).unwrap()).unwrap();
        assert_eq!(decoded.networks[0].subnets, r.networks[0].subnets[..1]);
        assert_eq!(decoded.address6, None);
        // An IPv4-only record encodes exactly as before: no `t`, no `a`.
        let plain = String::from_utf8(sample(0).encode()).unwrap();
        assert!(!plain.contains("\"t\"") && !plain.contains("\"a\""), "{plain}");
        // A malformed IPv6 claim makes the record malformed, as an IPv4 one does.
        let bad = String::from_utf8(bytes).unwrap().replace("fd00:42:1::/64", "fd00:42:1::/129");
        assert_eq!(MemberRecord::decode(bad.as_bytes()), None);
    }
}
