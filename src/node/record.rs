//! This host's gossip record: built once from the configuration, then rebuilt whenever the
//! container bindings seen behind this host change.
//!
//! Claim times (`since`) decide overlapping claims cluster-wide (the older claim wins), so a
//! claim keeps the time it was first made: a subnet keeps its start time for the whole run, and a
//! binding that is published again keeps its first `since`. Times are wall-clock seconds handed in
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

/// `current` with each network's bindings replaced by `local`; a binding already published keeps
/// its claim time, a new one is claimed at `since` (Unix seconds).
pub fn with_bindings(current: &MemberRecord, local: &[LocalBinding], since: u64) -> MemberRecord {
    let mut record = current.clone();
    for net in &mut record.networks {
        let old = std::mem::take(&mut net.bindings);
        net.bindings = local
            .iter()
            .filter(|b| b.0 == net.vni)
            .map(|&(_, ip, mac)| {
                let since = old.iter().find(|o| o.ip == ip && o.mac == mac).map_or(since, |o| o.since);
                Binding { ip, mac, since }
            })
            .collect();
    }
    record
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
        let first = with_bindings(&base, &[(Vni::new_const(42), ip(10), mac(10)), (Vni::new_const(7), ip(11), mac(11))], 2_000);
        assert_eq!(first.networks[0].bindings, [Binding { ip: ip(10), mac: mac(10), since: 2_000 }]);
        assert_eq!(first.networks[1].bindings, [Binding { ip: ip(11), mac: mac(11), since: 2_000 }]);
        assert!(first.networks[2].bindings.is_empty());
        // Later: .10 is still there, .11 has gone, .12 is new, and .10's twin with another MAC is new too.
        let second = with_bindings(
            &first,
            &[(Vni::new_const(42), ip(10), mac(10)), (Vni::new_const(42), ip(12), mac(12)), (Vni::new_const(7), ip(11), mac(99))],
            3_000,
        );
        let got: Vec<_> = second.networks[0].bindings.iter().map(|b| (b.ip, b.since)).collect();
        assert_eq!(got, [(ip(10), 2_000), (ip(12), 3_000)]);
        assert_eq!(second.networks[1].bindings, [Binding { ip: ip(11), mac: mac(99), since: 3_000 }]);
        // Subnets and everything else are untouched.
        assert_eq!(second.networks[0].subnets, base.networks[0].subnets);
        assert_eq!((second.name.as_str(), second.epoch, second.modes.clone()), ("a", 1, base.modes.clone()));
    }

    #[test]
    fn wall_clock_helpers() {
        let t = UNIX_EPOCH + std::time::Duration::from_millis(5_500);
        assert_eq!(unix_secs(t), 5);
        assert_eq!(unix_secs(UNIX_EPOCH - std::time::Duration::from_secs(1)), 0);
        assert!(start_epoch(t + std::time::Duration::from_secs(1)) > start_epoch(t));
    }
}
