//! This host's gossip record: built from the configuration at start and again on every reload
//! ([`reconfigured`]), and rebuilt whenever the container bindings seen behind this host change.
//!
//! Claim times (`since`) decide overlapping claims cluster-wide (the older claim wins), so a
//! claim keeps the time it was first made: a subnet keeps its start time for the whole run (a
//! reload that still configures it keeps it too; only a newly configured subnet is claimed at the
//! reload), and a binding that is published again keeps its first `since`. Times are wall-clock seconds handed in
//! by the caller; nothing here reads a clock.

use crate::wire::vxlan::Vni;
use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use crate::config::Config;
use crate::control::{Binding, MemberRecord, NetworkClaim, SubnetClaim};
use crate::wire::ethernet::EthernetAddress;

/// A container binding seen behind this host: (vni, ip, mac).
pub type LocalBinding = (Vni, IpAddr, EthernetAddress);

/// Whole seconds since the Unix epoch at `wall` (0 before it).
pub fn unix_secs(wall: SystemTime) -> u64 {
    wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// This start's epoch, from the wall clock at start: larger after every restart, so the cluster
/// prefers this start's record over the last one's (shared with the ESP key derivation).
pub fn start_epoch(wall: SystemTime) -> u64 {
    crate::ipsec::start_epoch(wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64))
}

/// This host's record as configured: underlay, modes and subnets per network, no bindings yet.
/// `since` is the wall-clock time of the claims, in Unix seconds.
pub fn local_record(
    config: &Config,
    name: &str,
    gossip: SocketAddr,
    epoch: u64,
    esp_public_key: Option<[u8; 32]>,
    since: u64,
) -> MemberRecord {
    let mut modes: Vec<String> = config.networks.iter().map(|n| n.mode.to_string()).collect();
    modes.sort();
    modes.dedup();
    MemberRecord {
        name: name.to_string(),
        gossip,
        underlay: config.underlay.address,
        address6: config.underlay.address6,
        vtep_mac: None,
        epoch,
        version: 0,
        modes,
        esp_public_key,
        signing_key: None,
        networks: config
            .networks
            .iter()
            .map(|n| NetworkClaim {
                vni: n.vni,
                subnets: (n.host_subnet.iter().map(|h| IpNet::V4(h.subnet)))
                    .chain(n.host_subnet6.iter().map(|h| IpNet::V6(h.subnet)))
                    .map(|net| SubnetClaim { net, since })
                    .collect(),
                bindings: Vec::new(),
            })
            .collect(),
        floating: Vec::new(),
        services: Vec::new(),
    }
}

/// This host's record after a configuration reload: the modes and networks of `configured` (the
/// new configuration's record, as [`local_record`] makes it), everything else of `current`.
/// A subnet `current` already claims on the same network keeps its claim time, a new one is
/// claimed at `since` (Unix seconds); a `leased` network keeps the claim its lease holds; the
/// bindings of a network stay unless it is gone or `restarted` (its switch state was dropped; the
/// next publish brings back whatever is seen again).
pub fn reconfigured(current: &MemberRecord, configured: &MemberRecord, leased: &[Vni], restarted: &[Vni], since: u64) -> MemberRecord {
    let networks = configured
        .networks
        .iter()
        .map(|n| {
            let old = current.network(n.vni);
            let subnets = match old {
                Some(old) if leased.contains(&n.vni) => old.subnets.clone(),
                _ => n
                    .subnets
                    .iter()
                    .map(|s| {
                        let kept = old.and_then(|o| o.subnets.iter().find(|c| c.net == s.net));
                        SubnetClaim { net: s.net, since: kept.map_or(since, |c| c.since) }
                    })
                    .collect(),
            };
            let bindings = match old {
                Some(old) if !restarted.contains(&n.vni) => old.bindings.clone(),
                _ => Vec::new(),
            };
            NetworkClaim { vni: n.vni, subnets, bindings }
        })
        .collect();
    MemberRecord { modes: configured.modes.clone(), networks, ..current.clone() }
}

/// `current` with each network's bindings replaced by `local`; a binding already published keeps
/// its claim time and move sequence, a new one is claimed at `since` (Unix seconds).
///
/// A local binding that a live member in `remote` claims with the same MAC and a claim that
/// outranks this host's (see [`crate::control::tables`]) is a container that moved here: it is
/// claimed with that claim's `since` and its move sequence plus one, so it wins everywhere.
pub fn with_bindings(current: &MemberRecord, local: &[LocalBinding], since: u64, remote: &[&MemberRecord]) -> MemberRecord {
    let mut record = current.clone();
    for net in &mut record.networks {
        let old = std::mem::take(&mut net.bindings);
        net.bindings = local
            .iter()
            .filter(|b| b.0 == net.vni)
            .map(|&(vni, ip, mac)| {
                let own = old.iter().find(|o| o.ip == ip && o.mac == mac).copied();
                let top = best_remote(remote, vni, ip, mac);
                match (top, own) {
                    (Some((top, name)), own) if own.is_none_or(|o| outranks(&top, name, &o, &current.name)) => {
                        Binding { ip, mac, since: top.since, seq: top.seq + 1 }
                    }
                    (_, Some(own)) => own,
                    (_, None) => Binding { ip, mac, since, seq: 0 },
                }
            })
            .collect();
    }
    record
}

/// The best claim of `(vni, ip)` with `mac` among `remote`, and its host's name.
fn best_remote<'a>(remote: &[&'a MemberRecord], vni: Vni, ip: IpAddr, mac: EthernetAddress) -> Option<(Binding, &'a str)> {
    remote
        .iter()
        .filter_map(|r| {
            let b = r.network(vni)?.bindings.iter().find(|b| b.ip == ip && b.mac == mac)?;
            Some((*b, r.name.as_str()))
        })
        .min_by(|a, b| rank(&a.0, a.1).cmp(&rank(&b.0, b.1)))
}

/// The order of address claims: older first, then the higher move sequence, then the lower name.
fn rank<'a>(b: &Binding, name: &'a str) -> (u64, std::cmp::Reverse<u64>, &'a str) {
    (b.since, std::cmp::Reverse(b.seq), name)
}

fn outranks(a: &Binding, a_name: &str, b: &Binding, b_name: &str) -> bool {
    rank(a, a_name) < rank(b, b_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[underlay]
address = "198.18.0.1"

[[network]]
vni = 42
tap = "vxs42"
mode = "routed"
subnet = "10.42.1.0/24"

[[network]]
vni = 7
tap = "vxs7"
peers = ["198.18.0.2"]

[[network]]
vni = 9
mode = "host-subnet"
bridge = "br9"
subnet = "10.9.1.0/24"
"#;

    fn mac(n: u8) -> EthernetAddress {
        EthernetAddress([2, 0, 0, 0, 0, n])
    }

    #[test]
    fn record_carries_underlay_modes_subnets_and_no_bindings() {
        let config = Config::parse(CONFIG).unwrap();
        let gossip: SocketAddr = "198.18.0.1:4790".parse().unwrap();
        let r = local_record(&config, "a", gossip, 17, Some([3; 32]), 1_000);
        assert_eq!((r.name.as_str(), r.gossip, r.underlay, r.epoch, r.version), ("a", gossip, config.underlay.address, 17, 0));
        assert_eq!(r.modes, ["host-subnet", "overlay", "routed"], "sorted, one each");
        assert_eq!(r.esp_public_key, Some([3; 32]));
        assert_eq!(r.networks.iter().map(|n| n.vni).collect::<Vec<_>>(), [42, 7, 9].map(Vni::new_const));
        let subnets: Vec<_> =
            r.networks.iter().map(|n| n.subnets.iter().map(|s| (s.net.to_string(), s.since)).collect::<Vec<_>>()).collect();
        assert_eq!(subnets[0], [("10.42.1.0/24".to_string(), 1_000)]);
        assert!(subnets[1].is_empty(), "an overlay network claims no subnet");
        assert_eq!(subnets[2], [("10.9.1.0/24".to_string(), 1_000)]);
        assert!(r.networks.iter().all(|n| n.bindings.is_empty()));
    }

    #[test]
    fn bindings_go_to_their_network_and_keep_their_first_claim_time() {
        let config = Config::parse(CONFIG).unwrap();
        let base = local_record(&config, "a", "198.18.0.1:4790".parse().unwrap(), 1, None, 1_000);
        let ip = |n: u8| IpAddr::from(std::net::Ipv4Addr::new(10, 42, 1, n));
        let first = with_bindings(&base, &[(Vni::new_const(42), ip(10), mac(10)), (Vni::new_const(7), ip(11), mac(11))], 2_000, &[]);
        assert_eq!(first.networks[0].bindings, [Binding { ip: ip(10), mac: mac(10), since: 2_000, seq: 0 }]);
        assert_eq!(first.networks[1].bindings, [Binding { ip: ip(11), mac: mac(11), since: 2_000, seq: 0 }]);
        assert!(first.networks[2].bindings.is_empty());
        // Later: .10 is still there, .11 has gone, .12 is new, and .10's twin with another MAC is new too.
        let second = with_bindings(
            &first,
            &[(Vni::new_const(42), ip(10), mac(10)), (Vni::new_const(42), ip(12), mac(12)), (Vni::new_const(7), ip(11), mac(99))],
            3_000,
            &[],
        );
        let got: Vec<_> = second.networks[0].bindings.iter().map(|b| (b.ip, b.since)).collect();
        assert_eq!(got, [(ip(10), 2_000), (ip(12), 3_000)]);
        assert_eq!(second.networks[1].bindings, [Binding { ip: ip(11), mac: mac(99), since: 3_000, seq: 0 }]);
        // Subnets and everything else are untouched.
        assert_eq!(second.networks[0].subnets, base.networks[0].subnets);
        assert_eq!((second.name.as_str(), second.epoch, second.modes.clone()), ("a", 1, base.modes.clone()));
    }

    #[test]
    fn a_container_seen_here_that_another_host_claims_is_taken_with_a_higher_sequence() {
        let config = Config::parse(CONFIG).unwrap();
        let vni = Vni::new_const(42);
        let ip = IpAddr::from(std::net::Ipv4Addr::new(10, 42, 1, 10));
        let mut other = local_record(&config, "b", "198.18.0.2:4790".parse().unwrap(), 1, None, 500);
        other.networks[0].bindings = vec![Binding { ip, mac: mac(10), since: 700, seq: 4 }];
        let base = local_record(&config, "a", "198.18.0.1:4790".parse().unwrap(), 1, None, 1_000);
        // Seen here while "b" still claims it: taken over with b's since and sequence 5.
        let moved = with_bindings(&base, &[(vni, ip, mac(10))], 2_000, &[&other]);
        assert_eq!(moved.networks[0].bindings, [Binding { ip, mac: mac(10), since: 700, seq: 5 }]);
        // Published again while b has not caught up yet: kept as it is, not bumped again.
        let again = with_bindings(&moved, &[(vni, ip, mac(10))], 3_000, &[&other]);
        assert_eq!(again.networks[0].bindings, moved.networks[0].bindings);
        // Another MAC for the address is no move: a claim of its own, by age.
        let other_mac = with_bindings(&base, &[(vni, ip, mac(11))], 2_000, &[&other]);
        assert_eq!(other_mac.networks[0].bindings, [Binding { ip, mac: mac(11), since: 2_000, seq: 0 }]);
        // b took it back (sequence 6): seen here again, this host claims 7.
        other.networks[0].bindings[0].seq = 6;
        let back = with_bindings(&again, &[(vni, ip, mac(10))], 4_000, &[&other]);
        assert_eq!(back.networks[0].bindings[0].seq, 7);
    }

    #[test]
    fn wall_clock_helpers() {
        let t = UNIX_EPOCH + std::time::Duration::from_millis(5_500);
        assert_eq!(unix_secs(t), 5);
        assert_eq!(unix_secs(UNIX_EPOCH - std::time::Duration::from_secs(1)), 0);
        assert!(start_epoch(t + std::time::Duration::from_secs(1)) > start_epoch(t));
    }
}
