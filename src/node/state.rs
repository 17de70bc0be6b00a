//! The files behind this host's place in a gossip cluster, kept in `[gossip] state_dir` (by
//! default the directory of the ESP host key, `/var/lib/vxswitch`):
//!
//! - `gossip-sign.key`: the record signing key, created with mode 0600 on first start;
//! - `gossip-trust.json`: the names, keys and underlays trusted on first use (see
//!   [`crate::control::trust`]), saved by the driver whenever it changes and edited by
//!   `vxswitch forget HOST`;
//! - `gossip-claims.json`: when this host first claimed each of its subnets. Claim age decides
//!   ownership conflicts; without this file every restart would make the claims new, and a host
//!   that started claiming the same subnet meanwhile would take it over. It also holds the
//!   subnets leased from a cluster range (`leases`), rewritten whenever a lease changes, so a
//!   restart claims the same subnet again with its first claim time.
//!
//! The node never touches these files itself: the driver loads them at start and hands the node
//! plain values.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

use super::config::GossipJoin;
use super::lease::LeaseEvent;
use crate::config::{Config, LeaseRange};
use crate::control::SubnetClaim;
use crate::control::{ClusterKey, Credentials, SigningKey, TrustStore};
use crate::keyfile::write_atomically;

/// When this host first claimed each of its subnets, in Unix seconds, by `(vni, subnet)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// `(vni, subnet, since)` for every subnet configured now (IPv4 and IPv6; an IPv4 subnet is
    /// written as before, `"10.42.1.0/24"`).
    pub subnets: Vec<(u32, IpNet, u64)>,
    /// `(vni, subnet, since)` of every subnet leased (see [`crate::node::lease`]).
    #[serde(default)]
    pub leases: Vec<(u32, Ipv4Net, u64)>,
}

impl Claims {
    /// The claims of `config`'s subnets: a subnet claimed before keeps its time, a new one is
    /// claimed at `wall` (Unix seconds), and subnets no longer configured are dropped.
    pub fn update(&self, config: &Config, wall: u64) -> Claims {
        let old: BTreeMap<(u32, IpNet), u64> = self.subnets.iter().map(|&(v, n, s)| ((v, n), s)).collect();
        let subnets = config
            .networks
            .iter()
            .flat_map(|n| {
                let v4 = n.host_subnet.as_ref().map(|h| IpNet::V4(h.subnet));
                v4.into_iter().chain(n.host_subnet6.map(|h| IpNet::V6(h.subnet))).map(|net| (n.vni.get(), net))
            })
            .map(|(vni, net)| (vni, net, old.get(&(vni, net)).copied().unwrap_or(wall)))
            .collect();
        // A lease is kept while its network still leases from a range that holds it.
        let leases = self
            .leases
            .iter()
            .filter(|&&(v, net, _)| config.networks.iter().any(|n| n.vni.get() == v && n.lease.is_some_and(|r| r.holds(net))))
            .copied()
            .collect();
        Claims { subnets, leases }
    }

    /// The lease kept for network `vni` from `range`, if any.
    pub fn leased(&self, vni: u32, range: &LeaseRange) -> Option<SubnetClaim> {
        self.leases.iter().find(|&&(v, net, _)| v == vni && range.holds(net)).map(|&(_, net, since)| SubnetClaim { net: net.into(), since })
    }

    /// These claims after lease change `event`.
    pub fn with_lease(&self, event: &LeaseEvent) -> Claims {
        let vni = event.vni.get();
        let mut leases: Vec<_> = self.leases.iter().filter(|l| l.0 != vni).copied().collect();
        leases.extend(event.claim.and_then(|c| match c.net {
            IpNet::V4(net) => Some((vni, net, c.since)),
            IpNet::V6(_) => None,
        }));
        Claims { subnets: self.subnets.clone(), leases }
    }

    /// When `net` on `vni` was first claimed, if it was.
    pub fn since(&self, vni: u32, net: IpNet) -> Option<u64> {
        self.subnets.iter().find(|&&(v, n, _)| v == vni && n == net).map(|&(_, _, s)| s)
    }
}

/// Where the gossip state files of one host are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFiles {
    dir: PathBuf,
}

impl StateFiles {
    /// The state files of `config`'s `[gossip]` section, if any.
    pub fn of(config: &Config) -> Option<StateFiles> {
        config.gossip.as_ref().map(|g| StateFiles { dir: g.state_dir.clone() })
    }

    /// The record signing key.
    pub fn signing_key(&self) -> PathBuf {
        self.dir.join("gossip-sign.key")
    }

    /// The trust store.
    pub fn trust(&self) -> PathBuf {
        self.dir.join("gossip-trust.json")
    }

    /// The claim ages.
    pub fn claims(&self) -> PathBuf {
        self.dir.join("gossip-claims.json")
    }

    /// Saves the claims (after a lease changed), durably: temp file, fsync, rename.
    pub fn save_claims(&self, claims: &Claims) -> io::Result<()> {
        write_atomically(&self.claims(), &serde_json::to_vec_pretty(claims).map_err(io::Error::other)?)
    }

    /// Saves the trust store.
    pub fn save_trust(&self, trust: &TrustStore) -> io::Result<()> {
        trust.save(&self.trust())
    }

    /// Removes `name` from the saved trust store; whether it was there.
    pub fn forget(&self, name: &str) -> io::Result<bool> {
        let mut trust = TrustStore::load(&self.trust(), 0)?;
        let had = trust.forget(name);
        if had {
            self.save_trust(&trust)?;
        }
        Ok(had)
    }

    /// Loads (creating on first start) the signing key, the trust store and the claim ages, saves
    /// the claims of this start, and returns what the node needs to join the cluster.
    pub fn load_join(&self, config: &Config, key: ClusterKey, advertised: SocketAddr, wall: u64) -> io::Result<GossipJoin> {
        let signer = SigningKey::load_or_create(&self.signing_key()).map_err(io::Error::other)?;
        let trust = TrustStore::load(&self.trust(), wall).map_err(|e| context(&self.trust(), e))?;
        let claims_path = self.claims();
        let old = match std::fs::read(&claims_path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| context(&claims_path, io::Error::new(io::ErrorKind::InvalidData, e)))?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Claims::default(),
            Err(e) => return Err(context(&claims_path, e)),
        };
        let claims = old.update(config, wall);
        if claims != old {
            write_atomically(&claims_path, &serde_json::to_vec_pretty(&claims).map_err(io::Error::other)?)?;
        }
        self.save_trust(&trust).map_err(|e| context(&self.trust(), e))?;
        Ok(GossipJoin { key, advertised, credentials: Credentials { signer, trust, wall_secs: wall }, claims })
    }
}

fn context(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, subnets: &[&str]) -> Config {
        let nets: String = subnets
            .iter()
            .enumerate()
            .map(|(i, s)| format!("[[network]]\nvni = {}\nmode = \"host-subnet\"\nbridge = \"br{i}\"\nsubnet = \"{s}\"\n", i + 1))
            .collect();
        Config::parse(&format!(
            "[underlay]\naddress = \"198.18.0.1\"\n{nets}[gossip]\ncluster = \"c\"\nkey_file = \"/k\"\nstate_dir = \"{}\"\n",
            dir.display()
        ))
        .unwrap()
    }

    #[test]
    fn claim_ages_and_signing_key_survive_restarts() {
        let dir = std::env::temp_dir().join(format!("vxs-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let key = ClusterKey::from_bytes([1; 32]);
        let ul: SocketAddr = "198.18.0.1:4790".parse().unwrap();
        let first = config(&dir, &["10.1.0.0/24"]);
        let files = StateFiles::of(&first).unwrap();
        let j1 = files.load_join(&first, key.clone(), ul, 1_000).unwrap();
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        assert_eq!(j1.claims.since(1, net("10.1.0.0/24")), Some(1_000));
        // Restarted later with one more subnet: the old claim keeps its age.
        let second = config(&dir, &["10.1.0.0/24", "10.2.0.0/24"]);
        let j2 = files.load_join(&second, key, ul, 5_000).unwrap();
        assert_eq!(j2.claims.since(1, net("10.1.0.0/24")), Some(1_000));
        assert_eq!(j2.claims.since(2, net("10.2.0.0/24")), Some(5_000));
        assert_eq!(j1.credentials.signer.public(), j2.credentials.signer.public());
        assert_eq!(j2.credentials.trust.created, 1_000, "the trust store is the first start's");
        assert!(!files.forget("nobody").unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn leases_are_saved_and_kept_while_the_network_leases_from_a_range_that_holds_them() {
        let dir = std::env::temp_dir().join(format!("vxs-lease-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let leased = |cidr: &str| {
            Config::parse(&format!(
                "[underlay]\naddress = \"198.18.0.1\"\n[[network]]\nvni = 5\nmode = \"routed\"\ntap = \"vxs5\"\n\
                 cluster_cidr = \"{cidr}\"\nhost_prefix = 24\n[gossip]\ncluster = \"c\"\nkey_file = \"/k\"\nstate_dir = \"{}\"\n",
                dir.display()
            ))
            .unwrap()
        };
        let config = leased("10.42.0.0/16");
        let files = StateFiles::of(&config).unwrap();
        let ul: SocketAddr = "198.18.0.1:4790".parse().unwrap();
        let j = files.load_join(&config, ClusterKey::from_bytes([1; 32]), ul, 1_000).unwrap();
        let range = config.networks[0].lease.unwrap();
        assert_eq!(j.claims.leased(5, &range), None);
        // A lease is taken, then moved: the file holds the latest, durably.
        let vni = crate::wire::vxlan::Vni::new_const(5);
        let first = SubnetClaim { net: "10.42.9.0/24".parse().unwrap(), since: 1_003 };
        let moved = SubnetClaim { net: "10.42.10.0/24".parse().unwrap(), since: 1_040 };
        let c = j.claims.with_lease(&LeaseEvent { vni, claim: Some(first), previous: None });
        let c = c.with_lease(&LeaseEvent { vni, claim: Some(moved), previous: first.ipv4() });
        files.save_claims(&c).unwrap();
        // Restarted: the lease and its claim time come back.
        let j2 = files.load_join(&config, ClusterKey::from_bytes([1; 32]), ul, 9_000).unwrap();
        assert_eq!(j2.claims.leased(5, &range), Some(moved));
        // The range changed so that it no longer holds the lease: it is dropped.
        let other = leased("10.43.0.0/16");
        let j3 = files.load_join(&other, ClusterKey::from_bytes([1; 32]), ul, 9_500).unwrap();
        assert_eq!(j3.claims.leases, []);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
