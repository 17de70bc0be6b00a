//! What one simulated host's control plane told its consumers, folded into tables.
//!
//! Every update a node queues for its kernel programmers (everything it also gave its switch)
//! is applied to that host's [`View`], so scenarios can compare hosts' tables with each other
//! and with what the cluster's records say they should be.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::control::ControlUpdate;
use crate::wire::ethernet::EthernetAddress;
use crate::wire::vxlan::Vni;

/// The tables one host has built from the updates it received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// (vni, underlay) -> vtep mac.
    pub peers: BTreeMap<(Vni, IpAddr), Option<EthernetAddress>>,
    /// (vni, subnet) -> via.
    pub routes: BTreeMap<(Vni, IpNet), IpAddr>,
    /// (vni, ip) -> mac.
    pub arp: BTreeMap<(Vni, IpAddr), EthernetAddress>,
    /// underlay -> (key, epoch).
    pub esp: BTreeMap<IpAddr, ([u8; 32], u64)>,
    /// How many PeerDown updates arrived.
    pub peer_downs: u64,
}

impl View {
    /// Folds one update in.
    pub fn apply(&mut self, u: &ControlUpdate) {
        match u {
            ControlUpdate::PeerUp { vni, peer } => {
                self.peers.insert((*vni, peer.underlay), peer.vtep_mac);
            }
            ControlUpdate::PeerDown { vni, underlay } => {
                self.peer_downs += 1;
                self.peers.remove(&(*vni, *underlay));
                let alive = self.peers.keys().any(|(_, u)| u == underlay);
                if !alive {
                    self.esp.remove(underlay);
                }
            }
            ControlUpdate::RouteAdd { vni, subnet, via, .. } => {
                self.routes.insert((*vni, *subnet), *via);
            }
            ControlUpdate::RouteRemove { vni, subnet } => {
                self.routes.remove(&(*vni, *subnet));
            }
            ControlUpdate::ArpBinding { vni, ip, mac } => {
                self.arp.insert((*vni, *ip), *mac);
            }
            ControlUpdate::ArpUnbind { vni, ip } => {
                self.arp.remove(&(*vni, *ip));
            }
            ControlUpdate::EspKey { underlay, public_key, epoch } => {
                self.esp.insert(*underlay, (*public_key, *epoch));
            }
            ControlUpdate::StaticFdb { .. } | ControlUpdate::StaticFdbRemove { .. } => {}
        }
    }

    /// The view without the counters, for comparisons.
    pub fn tables(&self) -> View {
        View { peer_downs: 0, ..self.clone() }
    }
}
