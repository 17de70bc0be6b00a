//! Container bindings announced by the CNI plugin.
//!
//! Snooping learns a container's IP -> MAC only when the container first sends ARP, and forgets
//! it when its MAC ages out of the FDB. A container attached through `vxswitch cni` is known the
//! moment it is created: the plugin tells the daemon its network, IP and MAC. Such a binding is
//! published in this host's gossip record at once (so the other hosts' proxy ARP, or ND proxy
//! for an IPv6 address, answers for it before it ever sends a frame) and stays until the plugin withdraws it (`DEL`, `GC`), however
//! quiet the container is. ARP requests from a local container for another *local* announced
//! container are already delivered by the host bridge, so they are not flooded to the peers.

use std::net::IpAddr;

use super::{Switch, MAX_LOCAL_BINDINGS};
use crate::wire::arp::{ArpOperation, ArpRepr};
use crate::wire::ethernet::EthernetAddress;
use crate::wire::vxlan::Vni;

/// Why an announcement was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    /// The switch runs no network with this VNI.
    #[error("no such network")]
    UnknownNetwork,
    /// The MAC is not a unicast address.
    #[error("not a unicast MAC")]
    BadMac,
    /// The table of local bindings is full.
    #[error("too many local container bindings")]
    Full,
}

impl Switch {
    /// The CNI plugin attached container `ip` (either family) with `mac` to network `vni` on this
    /// host.
    pub fn announce_local(&mut self, vni: Vni, ip: IpAddr, mac: EthernetAddress) -> Result<(), AnnounceError> {
        if self.port(vni).is_none() {
            return Err(AnnounceError::UnknownNetwork);
        }
        if !mac.is_unicast() {
            return Err(AnnounceError::BadMac);
        }
        if self.announced.len() >= MAX_LOCAL_BINDINGS && !self.announced.contains_key(&(vni, ip)) {
            return Err(AnnounceError::Full);
        }
        if self.announced.insert((vni, ip), mac) != Some(mac) {
            self.local_bindings_changed = true;
        }
        self.local_bindings.remove(&(vni, ip));
        self.counters.cni_bindings_added += 1;
        Ok(())
    }

    /// The CNI plugin detached container `ip` from network `vni`; whether it was announced.
    pub fn withdraw_local(&mut self, vni: Vni, ip: IpAddr) -> bool {
        let gone = self.announced.remove(&(vni, ip)).is_some() | self.local_bindings.remove(&(vni, ip)).is_some();
        if gone {
            self.local_bindings_changed = true;
            self.counters.cni_bindings_removed += 1;
        }
        gone
    }

    /// The containers announced on network `vni`, sorted by IP (IPv4 before IPv6).
    pub fn announced(&self, vni: Vni) -> Vec<(IpAddr, EthernetAddress)> {
        let mut v: Vec<_> = self.announced.iter().filter(|(&(n, _), _)| n == vni).map(|(&(_, ip), &mac)| (ip, mac)).collect();
        v.sort();
        v
    }

    /// An ARP request from a local TAP for a container announced on this host: the bridge has
    /// delivered it to the container already, so it is counted and goes no further.
    // hot path
    pub(super) fn arp_for_announced(&mut self, vni: Vni, arp: &ArpRepr) -> bool {
        if self.announced.is_empty()
            || arp.operation != ArpOperation::Request
            || !self.announced.contains_key(&(vni, IpAddr::V4(arp.target_protocol_addr)))
        {
            return false;
        }
        self.counters.arp_local_target += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::dataplane::{NetworkSpec, SwitchConfig, Tunnel};

    fn switch() -> Switch {
        let spec = NetworkSpec {
            vni: Vni::new(1042).unwrap(),
            max_frame_len: 1464,
            peers: vec![Ipv4Addr::new(198, 18, 0, 2).into()],
            unknown_arp: crate::arp::UnknownArp::Flood,
            routed: None,
            tunnel: Tunnel::Vxlan,
            path: Default::default(),
        };
        Switch::new(SwitchConfig { fdb_ageing: Duration::from_secs(300), fdb_max_entries: 1024, networks: vec![spec] }, Instant::now())
    }

    #[test]
    fn announced_bindings_are_published_and_withdrawn() {
        let mut sw = switch();
        let vni = Vni::new(1042).unwrap();
        let mac = EthernetAddress([0x02, 0, 0, 0, 0, 7]);
        let ip = IpAddr::V4(Ipv4Addr::new(10, 42, 0, 7));
        sw.announce_local(vni, ip, mac).unwrap();
        assert_eq!(sw.take_local_bindings_changed(), Some(vec![(vni, ip, mac)]));
        assert_eq!(sw.take_local_bindings_changed(), None, "published once");
        sw.announce_local(vni, ip, mac).unwrap();
        assert_eq!(sw.take_local_bindings_changed(), None, "an unchanged announcement publishes nothing");
        assert!(sw.withdraw_local(vni, ip));
        assert_eq!(sw.take_local_bindings_changed(), Some(vec![]));
        assert!(!sw.withdraw_local(vni, ip));
        assert_eq!(sw.counters().cni_bindings_added, 2);
        assert_eq!(sw.counters().cni_bindings_removed, 1);
    }

    #[test]
    fn an_ipv6_announcement_is_published_next_to_the_ipv4_one_and_withdrawn_alone() {
        let mut sw = switch();
        let vni = Vni::new(1042).unwrap();
        let mac = EthernetAddress([0x02, 0, 0, 0, 0, 7]);
        let (ip4, ip6): (IpAddr, IpAddr) = (Ipv4Addr::new(10, 42, 0, 7).into(), "fd00:42::7".parse().unwrap());
        sw.announce_local(vni, ip4, mac).unwrap();
        sw.announce_local(vni, ip6, mac).unwrap();
        let mut published = sw.take_local_bindings_changed().unwrap();
        published.sort();
        assert_eq!(published, vec![(vni, ip4, mac), (vni, ip6, mac)]);
        assert_eq!(sw.announced(vni), vec![(ip4, mac), (ip6, mac)]);
        assert!(sw.withdraw_local(vni, ip6));
        assert_eq!(sw.take_local_bindings_changed(), Some(vec![(vni, ip4, mac)]));
    }

    #[test]
    fn announcements_for_unknown_networks_or_multicast_macs_are_refused() {
        let mut sw = switch();
        let ip = IpAddr::V4(Ipv4Addr::new(10, 42, 0, 7));
        let mac = EthernetAddress([0x02, 0, 0, 0, 0, 7]);
        assert_eq!(sw.announce_local(Vni::new(7).unwrap(), ip, mac), Err(AnnounceError::UnknownNetwork));
        assert_eq!(sw.announce_local(Vni::new(1042).unwrap(), ip, EthernetAddress([0x01, 0, 0x5e, 0, 0, 1])), Err(AnnounceError::BadMac));
        assert_eq!(sw.take_local_bindings_changed(), None);
    }
}
