//! The one update path from control sources to consumers.

use crate::wire::vxlan::Vni;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::wire::ethernet::EthernetAddress;

/// What the control plane knows about one peer host on one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's underlay (outer) address, IPv4 or IPv6.
    pub underlay: IpAddr,
    /// The peer's VTEP MAC (its gateway MAC in routed mode), when known.
    pub vtep_mac: Option<EthernetAddress>,
}

/// A change of cluster state, consumed by the dataplane and the kernel drivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlUpdate {
    /// A peer host joined network `vni` (it receives flooded traffic from now on).
    PeerUp { vni: Vni, peer: PeerInfo },
    /// A peer host left network `vni`: withdraw everything learned or installed for it.
    PeerDown { vni: Vni, underlay: IpAddr },
    /// `subnet` (IPv4 or IPv6) is owned by the host at `via` (its underlay address: the VTEP a
    /// routed network tunnels to, whatever the subnet's family). `next_hop` is that host's
    /// address of the subnet's family on the underlay link, which a kernel route
    /// (`ip route add SUBNET via NEXT_HOP`, host-subnet mode) goes via: `via` itself when the
    /// families match, else the host's `[underlay] address6`; `None` when it announced none.
    RouteAdd { vni: Vni, subnet: IpNet, via: IpAddr, next_hop: Option<IpAddr> },
    /// `subnet` is no longer owned by anyone we know.
    RouteRemove { vni: Vni, subnet: IpNet },
    /// A static FDB entry: `mac` on network `vni` lives behind the host at `underlay`.
    StaticFdb { vni: Vni, mac: EthernetAddress, underlay: IpAddr },
    /// Remove a static FDB entry.
    StaticFdbRemove { vni: Vni, mac: EthernetAddress },
    /// Container `ip` on network `vni` has MAC `mac` (feeds the proxy-ARP responder for IPv4,
    /// the ND proxy for IPv6).
    ArpBinding { vni: Vni, ip: IpAddr, mac: EthernetAddress },
    /// Forget the binding of `ip`.
    ArpUnbind { vni: Vni, ip: IpAddr },
    /// The peer at `underlay` has this long-term X25519 public key and start epoch.
    EspKey { underlay: IpAddr, public_key: [u8; 32], epoch: u64 },
}

/// The next hop of a route to `subnet` owned by the host at `underlay` whose IPv6 address on the
/// underlay link is `address6` (see [`ControlUpdate::RouteAdd`]).
pub fn next_hop(subnet: &IpNet, underlay: IpAddr, address6: Option<std::net::Ipv6Addr>) -> Option<IpAddr> {
    match (subnet, underlay) {
        (IpNet::V4(_), IpAddr::V4(_)) | (IpNet::V6(_), IpAddr::V6(_)) => Some(underlay),
        (IpNet::V6(_), IpAddr::V4(_)) => address6.map(IpAddr::V6),
        (IpNet::V4(_), IpAddr::V6(_)) => None,
    }
}

impl ControlUpdate {
    /// The network the update is about; `None` for ESP keys, which belong to a host.
    pub fn vni(&self) -> Option<Vni> {
        match *self {
            ControlUpdate::PeerUp { vni, .. }
            | ControlUpdate::PeerDown { vni, .. }
            | ControlUpdate::RouteAdd { vni, .. }
            | ControlUpdate::RouteRemove { vni, .. }
            | ControlUpdate::StaticFdb { vni, .. }
            | ControlUpdate::StaticFdbRemove { vni, .. }
            | ControlUpdate::ArpBinding { vni, .. }
            | ControlUpdate::ArpUnbind { vni, .. } => Some(vni),
            ControlUpdate::EspKey { .. } => None,
        }
    }
}
