//! The one update path from control sources to consumers.

use crate::wire::vxlan::Vni;
use std::net::IpAddr;

use ipnet::Ipv4Net;

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
    /// `subnet` is owned by the host at `via` (its underlay address).
    RouteAdd { vni: Vni, subnet: Ipv4Net, via: IpAddr },
    /// `subnet` is no longer owned by anyone we know.
    RouteRemove { vni: Vni, subnet: Ipv4Net },
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
