//! The switch: forwarding decisions between local TAPs and peer VTEPs.
//!
//! Sans-IO, in the style of quinn-proto: the driver feeds frames in with `handle_*` (with `now`
//! passed in), and gets back a [`Forward`] decision naming ranges of *its own* buffer, so a
//! frame is read once into a buffer with headroom, encapsulated in place and sent without a copy.
//! Packets the switch originates itself (replies, later ICMP errors) are queued and drained with
//! [`Switch::poll_transmit`]. Timers are exposed through [`Switch::poll_timeout`].
//!
//! Forwarding rules (one TAP per VNI, every peer VTEP reachable directly over the underlay):
//! - TAP -> underlay: learn the source MAC as local; a known unicast destination goes to the VTEP
//!   it was learned behind; broadcast, multicast and unknown unicast are flooded by head-end
//!   replication to every peer of the VNI (one copy each), within a per-source rate (see
//!   [`super::flood`]).
//! - underlay -> TAP: learn the inner source MAC as behind the sending VTEP and deliver to the TAP
//!   of the VNI. Never forwarded back to the underlay (split horizon), so no loops between VTEPs.
//! - Proxy ARP (see [`crate::arp`]): ARP requests for bound IPs are answered on the TAP and never
//!   cross the overlay; ARP contradicting a binding is dropped in both directions.
//! - Routed networks (see [`super::router`]) replace L2 switching with the anycast gateway: only
//!   routed unicast crosses the overlay, never a broadcast.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::time::{Duration, Instant};

mod announced;
mod encap;
mod esp_path;
mod mobility;
mod nd;
mod path_mtu;

pub use path_mtu::PathSpec;

use super::counters::{Counters, DropReason};
use super::esp::EspTunnels;
use super::fdb::{Fdb, Learned, Location};
use super::flood::{FloodLimit, FloodLimiter};
use super::pmtu::{IcmpBudget, PeerMtus};
use super::router::{Routed, RoutedSpec, Router};
use super::tunnel::Tunnel;
use crate::arp::{ArpVerdict, ProxyArp, UnknownArp};
use crate::control::ControlUpdate;
use crate::nd::ProxyNd;
use crate::vxlan;
use crate::wire::arp::ArpRepr;
use crate::wire::ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::vxlan::Vni;
use crate::wire::Error as WireError;

/// Identifies a local TAP port: the index of its network in [`SwitchConfig::networks`]. Ports are
/// stable: a removed network leaves its port retired (reused by the next network added), so the
/// ports of the other networks never move.
pub type PortId = usize;

/// Configuration of one overlay network (one VNI, one TAP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// VXLAN network identifier.
    pub vni: Vni,
    /// Largest inner Ethernet frame (header included) that fits the underlay after encapsulation.
    pub max_frame_len: usize,
    /// Peer VTEPs known from static configuration.
    pub peers: Vec<IpAddr>,
    /// What to do with ARP requests for IPs without a binding (switched networks).
    pub unknown_arp: UnknownArp,
    /// Routed mode: this host's subnet and gateway. `None` for a switched (L2) network.
    pub routed: Option<RoutedSpec>,
    /// The tunnel that carries it: cleartext VXLAN, or ESP (see [`Switch::set_esp`]).
    pub tunnel: Tunnel,
    /// The underlay path: limits toward peers whose path MTU is smaller, MSS clamping.
    pub path: PathSpec,
}

/// Configuration of the switch core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchConfig {
    /// FDB ageing time.
    pub fdb_ageing: Duration,
    /// FDB cap on dynamic entries.
    pub fdb_max_entries: usize,
    /// The networks, indexed by [`PortId`].
    pub networks: Vec<NetworkSpec>,
}

/// What to do with the packet the driver just handed in.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub enum Forward<'a> {
    /// Send `buf[payload]` (tunnel header already in place) to the `tunnel`'s port of every
    /// address in `dests`, from a source port chosen by `flow_hash`.
    Underlay {
        /// The UDP payload inside the driver's buffer.
        payload: Range<usize>,
        /// Destination VTEPs: one for known unicast, every peer for flooding.
        dests: &'a [IpAddr],
        /// Hash of the inner flow, for the outer source port.
        flow_hash: u32,
        /// The tunnel the payload is encapsulated in (which socket sends it).
        tunnel: Tunnel,
    },
    /// Write `buf[frame]` to the TAP of `port`.
    Tap {
        /// The TAP to write to.
        port: PortId,
        /// The inner frame inside the driver's buffer.
        frame: Range<usize>,
    },
    /// Nothing to send: the packet was dropped (and counted) or consumed.
    Nothing,
}

/// A packet the switch originates itself, drained with [`Switch::poll_transmit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// A frame to write to a local TAP.
    Tap {
        /// The TAP to write to.
        port: PortId,
        /// The whole Ethernet frame.
        frame: Vec<u8>,
    },
    /// A datagram to send to a peer (ESP copies of a flooded frame).
    Underlay {
        /// The peer's underlay address.
        dst: IpAddr,
        /// The tunnel the payload is encapsulated in (which socket sends it).
        tunnel: Tunnel,
        /// The UDP payload.
        payload: Vec<u8>,
    },
}

#[derive(Debug)]
struct Network {
    vni: Vni,
    max_frame_len: usize,
    /// Sorted, deduplicated.
    peers: Vec<IpAddr>,
    unknown_arp: UnknownArp,
    router: Option<Router>,
    tunnel: Tunnel,
    path: PathSpec,
    /// Budget of "too big" answers on this network's TAP.
    icmp: IcmpBudget,
    /// The network was removed; the port waits for the next network added.
    retired: bool,
}

impl Network {
    fn new(spec: NetworkSpec, now: Instant) -> Self {
        let mut peers = spec.peers;
        peers.sort_unstable();
        peers.dedup();
        Network {
            vni: spec.vni,
            max_frame_len: spec.max_frame_len,
            peers,
            unknown_arp: spec.unknown_arp,
            router: spec.routed.map(|r| Router::new(r, now)),
            tunnel: spec.tunnel,
            path: spec.path,
            icmp: IcmpBudget::new(),
            retired: false,
        }
    }

    fn has_peer(&self, addr: IpAddr) -> bool {
        self.peers.binary_search(&addr).is_ok()
    }
}

/// The sans-IO switch core.
#[derive(Debug)]
pub struct Switch {
    networks: Vec<Network>,
    by_vni: HashMap<Vni, PortId>,
    fdb: Fdb,
    /// Per-source rate limit of flooded frames.
    flood: FloodLimiter,
    counters: Counters,
    /// The single destination of a unicast decision (borrowed by [`Forward::Underlay`]).
    unicast_dest: [IpAddr; 1],
    transmits: VecDeque<Transmit>,
    proxy_arp: ProxyArp,
    /// The ND proxy's IPv6 bindings (see [`crate::nd`]).
    proxy_nd: ProxyNd,
    /// Frames the router wants written to the TAP it is working for.
    router_out: VecDeque<Vec<u8>>,
    /// Container bindings seen in ARP and ND from local TAPs: (vni, ip) -> mac.
    local_bindings: HashMap<(Vni, IpAddr), EthernetAddress>,
    /// Set when `local_bindings` changed since the last [`Switch::take_local_bindings_changed`].
    local_bindings_changed: bool,
    /// ESP sessions of the encrypted networks (keyed by VNI and peer inside).
    esp: Option<EspTunnels>,
    /// Container bindings announced by the CNI plugin: kept until withdrawn (see [`announced`]).
    announced: HashMap<(Vni, IpAddr), EthernetAddress>,
    /// Underlay path MTUs learned per peer (see [`super::pmtu`]).
    peer_mtus: PeerMtus,
    /// Container addresses whose location a floating IP follows: (vni, ip) -> MAC and time last
    /// seen in ARP from a local TAP (see [`Switch::watched_local`]).
    watched: HashMap<(Vni, Ipv4Addr), Option<(EthernetAddress, Instant)>>,
    /// Containers moving between hosts (see [`mobility`]).
    mobility: mobility::Mobility,
}

/// Most watched container addresses (see [`Switch::watch`]).
pub const MAX_WATCHED: usize = 1024;

/// Most local container bindings remembered (the gossip record must stay small).
const MAX_LOCAL_BINDINGS: usize = 1024;

impl Switch {
    /// A switch for the given networks; `now` starts the routers' clocks.
    pub fn new(config: SwitchConfig, now: Instant) -> Self {
        let mut by_vni = HashMap::new();
        let networks = config
            .networks
            .into_iter()
            .enumerate()
            .map(|(port, spec)| {
                by_vni.insert(spec.vni, port);
                Network::new(spec, now)
            })
            .collect();
        Switch {
            networks,
            by_vni,
            fdb: Fdb::new(config.fdb_ageing, config.fdb_max_entries),
            flood: FloodLimiter::new(FloodLimit::default()),
            counters: Counters::default(),
            unicast_dest: [IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
            transmits: VecDeque::new(),
            proxy_arp: ProxyArp::new(),
            proxy_nd: ProxyNd::new(),
            router_out: VecDeque::new(),
            local_bindings: HashMap::new(),
            local_bindings_changed: false,
            esp: None,
            announced: HashMap::new(),
            peer_mtus: PeerMtus::default(),
            watched: HashMap::new(),
            mobility: mobility::Mobility::default(),
        }
    }

    /// Handle a frame read from the TAP of `port`, lying at `buf[frame]` with at least
    /// [`vxlan::ENCAP_HEADROOM`] bytes of headroom in front.
    // hot path
    pub fn handle_tap_frame(&mut self, now: Instant, port: PortId, buf: &mut [u8], frame: Range<usize>) -> Forward<'_> {
        self.counters.tap_rx_frames += 1;
        self.counters.tap_rx_bytes += frame.len() as u64;
        let Some(net) = self.networks.get(port).filter(|n| !n.retired) else {
            self.counters.drop(DropReason::TapMalformed);
            return Forward::Nothing;
        };
        let vni = net.vni;
        // Parse once: the Ethernet header (and an ARP payload) here, handed down as values to
        // proxy ARP and the router, which never look at the frame's Ethernet bytes again.
        let Ok(view) = EthernetFrame::new_checked(&buf[frame.clone()]) else {
            self.counters.drop(DropReason::TapMalformed);
            return Forward::Nothing;
        };
        let eth =
            EthernetRepr { src_addr: view.src_addr(), dst_addr: view.dst_addr(), vlan_id: view.vlan_id(), ethertype: view.ethertype() };
        if eth.src_addr.is_multicast() {
            self.counters.drop(DropReason::TapBadSourceMac);
            return Forward::Nothing;
        }
        let arp = if eth.ethertype == EtherType::ARP { crate::arp::parse(view.payload()) } else { None };
        if let (Some(a), false) = (&arp, self.watched.is_empty()) {
            self.note_watched(now, vni, a);
        }
        if self.networks[port].router.is_some() {
            return self.route_tap_frame(now, port, buf, frame, &eth, arp.as_ref());
        }
        let (src, dst) = (eth.src_addr, eth.dst_addr);
        if let Some(arp) = arp {
            if self.arp_for_announced(vni, &arp) {
                return Forward::Nothing;
            }
            match self.proxy_arp.judge(vni, &arp, eth.vlan_id) {
                ArpVerdict::Reply(reply) => {
                    self.counters.arp_replies += 1;
                    self.transmits.push_back(Transmit::Tap { port, frame: reply });
                    return Forward::Nothing;
                }
                ArpVerdict::Spoofed => {
                    self.counters.drop(DropReason::ArpSpoofed);
                    return Forward::Nothing;
                }
                ArpVerdict::Unknown if self.networks[port].unknown_arp == UnknownArp::Drop => {
                    self.counters.drop(DropReason::ArpUnknownDropped);
                    return Forward::Nothing;
                }
                ArpVerdict::Unknown | ArpVerdict::Forward => self.snoop_local_binding(vni, &arp),
            }
        } else if eth.ethertype == EtherType::IPV6 {
            if let Some(msg) = crate::nd::parse(src, view.payload()) {
                if self.nd_from_tap(port, vni, &msg, eth.vlan_id) {
                    return Forward::Nothing;
                }
            }
        }
        if self.fdb.learn(now, vni, src, Location::Local) == Learned::StaticConflict {
            // Placed behind another host by the control plane, yet here: maybe a move.
            self.mac_seen_here(now, vni, src);
        }
        let known = if dst.is_unicast() { self.fdb.lookup(vni, dst) } else { None };
        let target = match known {
            Some(Location::Local) => {
                self.counters.drop(DropReason::TapLocalDestination);
                return Forward::Nothing;
            }
            Some(Location::Remote(vtep)) => Some(vtep),
            None if !self.flood.admit(now, port, src, &mut self.counters) => {
                self.counters.drop(DropReason::FloodRateLimited);
                return Forward::Nothing;
            }
            None => None,
        };
        self.encap(now, port, buf, frame, target)
    }

    /// A frame from the TAP of a routed network.
    // hot path
    fn route_tap_frame(
        &mut self,
        now: Instant,
        port: PortId,
        buf: &mut [u8],
        frame: Range<usize>,
        eth: &EthernetRepr,
        arp: Option<&ArpRepr>,
    ) -> Forward<'_> {
        let router = self.networks[port].router.as_mut().expect("routed network");
        let verdict = router.from_tap(now, &mut buf[frame.clone()], eth, arp, &mut self.router_out, &mut self.counters);
        self.flush_router_out(port);
        match verdict {
            Routed::ToVtep(vtep) => self.encap(now, port, buf, frame, Some(vtep)),
            Routed::ToTap => {
                self.counters.tap_tx_frames += 1;
                Forward::Tap { port, frame }
            }
            Routed::Consumed => Forward::Nothing,
            Routed::Drop(reason) => {
                self.counters.drop(reason);
                Forward::Nothing
            }
        }
    }

    /// Watch these container addresses (floating IP targets). Sightings of addresses no longer
    /// watched are kept (up to [`MAX_WATCHED`] in all), so unbinding and binding a floating IP
    /// again does not forget where its container is.
    pub fn watch(&mut self, keys: impl IntoIterator<Item = (Vni, Ipv4Addr)>) {
        let mut old = std::mem::take(&mut self.watched);
        for k in keys {
            self.watched.insert(k, old.remove(&k).flatten());
        }
        for (k, seen) in old {
            if self.watched.len() >= MAX_WATCHED {
                break;
            }
            if seen.is_some() {
                self.watched.insert(k, seen);
            }
        }
    }

    /// The MAC of watched container `ip` on `vni`, if it was seen in ARP from a local TAP within
    /// the FDB ageing time before `now`. (Not the FDB itself: a gossip binding of the container's
    /// old host pins its MAC there with a static entry until that host lets go.)
    pub fn watched_local(&self, now: Instant, vni: Vni, ip: Ipv4Addr) -> Option<EthernetAddress> {
        let (mac, at) = (*self.watched.get(&(vni, ip))?)?;
        (now.saturating_duration_since(at) < self.fdb.ageing()).then_some(mac)
    }

    fn note_watched(&mut self, now: Instant, vni: Vni, arp: &ArpRepr) {
        let mac = arp.source_hardware_addr;
        if arp.is_probe() || !mac.is_unicast() {
            return;
        }
        if let Some(w) = self.watched.get_mut(&(vni, arp.source_protocol_addr)) {
            *w = Some((mac, now));
        }
    }

    /// Remember which container IP sits behind this host (for the gossip record).
    fn snoop_local_binding(&mut self, vni: Vni, arp: &ArpRepr) {
        let (ip, mac) = (arp.source_protocol_addr, arp.source_hardware_addr);
        if arp.is_probe() || self.proxy_arp.lookup(vni, ip).is_some() {
            return;
        }
        self.snoop_binding(vni, IpAddr::V4(ip), mac);
    }

    /// Remember that container `ip` with `mac` sits behind this host (ARP or ND snooping).
    fn snoop_binding(&mut self, vni: Vni, ip: IpAddr, mac: EthernetAddress) {
        if !mac.is_unicast() {
            return;
        }
        if self.local_bindings.len() >= MAX_LOCAL_BINDINGS && !self.local_bindings.contains_key(&(vni, ip)) {
            return;
        }
        if self.local_bindings.insert((vni, ip), mac) != Some(mac) {
            self.local_bindings_changed = true;
        }
    }

    /// Forget snooped bindings whose MAC is no longer behind the local TAP (its FDB entry aged out
    /// or moved): the container went away, and its IP may be reused on another host, which the
    /// stale binding would black-hole.
    fn expire_local_bindings(&mut self) {
        let before = self.local_bindings.len();
        let fdb = &self.fdb;
        // A MAC the control plane placed elsewhere is not aged: whether the binding stays is the
        // control plane's call (see [`mobility`]).
        self.local_bindings.retain(|&(vni, _), mac| fdb.get(vni, *mac).is_some_and(|e| e.location == Location::Local || e.is_static));
        let gone = (before - self.local_bindings.len()) as u64;
        if gone > 0 {
            self.counters.local_bindings_expired += gone;
            self.local_bindings_changed = true;
        }
    }

    /// The local container bindings, if they changed since the last call.
    pub fn take_local_bindings_changed(&mut self) -> Option<Vec<(Vni, IpAddr, EthernetAddress)>> {
        if !std::mem::take(&mut self.local_bindings_changed) {
            return None;
        }
        self.clear_publish_due();
        let snooped = self.local_bindings.iter().filter(|(k, _)| !self.announced.contains_key(k));
        let mut v: Vec<_> = self.announced.iter().chain(snooped).map(|(&(vni, ip), &mac)| (vni, ip, mac)).collect();
        v.sort();
        Some(v)
    }

    fn flush_router_out(&mut self, port: PortId) {
        while let Some(frame) = self.router_out.pop_front() {
            self.counters.tap_tx_frames += 1;
            self.transmits.push_back(Transmit::Tap { port, frame });
        }
    }

    /// Handle a UDP datagram of `tunnel` (received on its port) from `from`, at `buf[payload]`:
    /// the one decapsulation entry point for drivers, which know the tunnel by the socket.
    // hot path
    pub fn handle_datagram(&mut self, now: Instant, tunnel: Tunnel, from: IpAddr, buf: &mut [u8], payload: Range<usize>) -> Forward<'_> {
        match tunnel {
            Tunnel::Vxlan => self.handle_underlay(now, from, buf, payload),
            Tunnel::Esp => self.handle_esp(now, from, buf, payload),
        }
    }

    /// Handle a UDP datagram received on the VXLAN port from `from`, lying at `buf[payload]`.
    // hot path
    pub fn handle_underlay(&mut self, now: Instant, from: IpAddr, buf: &mut [u8], payload: Range<usize>) -> Forward<'_> {
        self.counters.underlay_rx_packets += 1;
        self.counters.underlay_rx_bytes += payload.len() as u64;
        let decapped = match vxlan::decap(buf, payload) {
            Ok(d) => d,
            Err(WireError::Truncated) => {
                self.counters.drop(DropReason::VxlanTruncated);
                return Forward::Nothing;
            }
            Err(_) => {
                self.counters.drop(DropReason::VxlanBadFlags);
                return Forward::Nothing;
            }
        };
        let Some(&port) = self.by_vni.get(&decapped.vni) else {
            self.counters.drop(DropReason::UnknownVni);
            return Forward::Nothing;
        };
        if !self.networks[port].has_peer(from) {
            self.counters.drop(DropReason::UnknownPeer);
            return Forward::Nothing;
        }
        if self.networks[port].tunnel != Tunnel::Vxlan {
            self.counters.drop(DropReason::CleartextOnEncrypted);
            return Forward::Nothing;
        }
        if decapped.reserved_bits {
            self.counters.vxlan_reserved_bits += 1;
        }
        if self.networks[port].router.is_some() {
            if self.routed_source_spoofed(port, from, &buf[decapped.inner.clone()]) {
                self.counters.drop(DropReason::RoutedSourceSpoofed);
                return Forward::Nothing;
            }
            self.clamp_mss(port, Some(from), &mut buf[decapped.inner.clone()]);
            return self.deliver_routed(now, port, buf, decapped.inner);
        }
        self.deliver_switched(now, port, from, buf, decapped.inner)
    }

    /// An inner Ethernet frame from peer `from` on a switched network: learn and deliver.
    fn deliver_switched(&mut self, now: Instant, port: PortId, from: IpAddr, buf: &mut [u8], inner: Range<usize>) -> Forward<'_> {
        let vni = self.networks[port].vni;
        let Ok(eth) = EthernetFrame::new_checked(&buf[inner.clone()]) else {
            self.counters.drop(DropReason::InnerMalformed);
            return Forward::Nothing;
        };
        let src = eth.src_addr();
        if src.is_multicast() {
            self.counters.drop(DropReason::InnerBadSourceMac);
            return Forward::Nothing;
        }
        let arp = if eth.ethertype() == EtherType::ARP { crate::arp::parse(eth.payload()) } else { None };
        if arp.is_some_and(|arp| self.proxy_arp.judge(vni, &arp, eth.vlan_id()) == ArpVerdict::Spoofed) {
            self.counters.drop(DropReason::ArpSpoofed);
            return Forward::Nothing;
        }
        if self.nd_spoofed_from_peer(vni, &eth) {
            self.counters.drop(DropReason::NdSpoofed);
            return Forward::Nothing;
        }
        if self.inner_source_spoofed(vni, from, &eth) {
            self.counters.drop(DropReason::InnerSourceSpoofed);
            return Forward::Nothing;
        }
        self.fdb.learn(now, vni, src, Location::Remote(from));
        self.clamp_mss(port, Some(from), &mut buf[inner.clone()]);
        self.counters.tap_tx_frames += 1;
        Forward::Tap { port, frame: inner }
    }

    /// Whether a frame from peer `from` claims a container the control plane places elsewhere: its
    /// source MAC is statically (by gossip) behind another host, or its IPv4 source is bound to
    /// another MAC. // hot path
    fn inner_source_spoofed(&self, vni: Vni, from: IpAddr, eth: &EthernetFrame<&[u8]>) -> bool {
        let src = eth.src_addr();
        if self.fdb.get(vni, src).is_some_and(|e| e.is_static && e.location != Location::Remote(from)) {
            return true;
        }
        if eth.ethertype() == EtherType::IPV6 {
            return self.inner_source6_spoofed(vni, eth);
        }
        if eth.ethertype() != EtherType::IPV4 {
            return false;
        }
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { return false };
        self.proxy_arp.lookup(vni, ip.src_addr()).is_some_and(|mac| mac != src)
    }

    /// Whether a routed packet from peer `from` has an IP source in a subnet the control plane
    /// routes via another host, or in this host's own subnet. Unknown sources pass. // hot path
    fn routed_source_spoofed(&self, port: PortId, from: IpAddr, frame: &[u8]) -> bool {
        let Some(router) = self.networks[port].router.as_ref() else { return false };
        let Ok(eth) = EthernetFrame::new_checked(frame) else { return false };
        if eth.ethertype() == EtherType::IPV6 {
            let Ok(ip) = crate::wire::ipv6::Ipv6Packet::new_checked(eth.payload()) else { return false };
            let src = ip.src_addr();
            let own = router.v6().is_some_and(|v6| v6.spec().subnet.contains(&src));
            return own || router.routes().lookup6(src).is_some_and(|via| via != from);
        }
        if eth.ethertype() != EtherType::IPV4 {
            return false;
        }
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { return false };
        let src = ip.src_addr();
        router.spec().subnet.contains(&src) || router.routes().lookup(src).is_some_and(|via| via != from)
    }

    /// An inner frame addressed to the anycast gateway on a routed network.
    fn deliver_routed(&mut self, now: Instant, port: PortId, buf: &mut [u8], frame: Range<usize>) -> Forward<'_> {
        let Ok(eth) = EthernetFrame::new_checked(&buf[frame.clone()]).and_then(|view| EthernetRepr::parse(&view)) else {
            self.counters.drop(DropReason::InnerMalformed);
            return Forward::Nothing;
        };
        if eth.src_addr.is_multicast() {
            self.counters.drop(DropReason::InnerBadSourceMac);
            return Forward::Nothing;
        }
        let router = self.networks[port].router.as_mut().expect("routed network");
        let verdict = router.from_underlay(now, &mut buf[frame.clone()], &eth, &mut self.router_out, &mut self.counters);
        self.flush_router_out(port);
        match verdict {
            Routed::ToTap => {
                self.counters.tap_tx_frames += 1;
                Forward::Tap { port, frame }
            }
            Routed::Drop(reason) => {
                self.counters.drop(reason);
                Forward::Nothing
            }
            Routed::Consumed | Routed::ToVtep(_) => Forward::Nothing,
        }
    }

    /// Apply a control-plane update.
    pub fn apply(&mut self, now: Instant, update: ControlUpdate) {
        match update {
            ControlUpdate::PeerUp { vni, peer } => {
                if let Some(net) = self.network_mut(vni) {
                    if let Err(at) = net.peers.binary_search(&peer.underlay) {
                        net.peers.insert(at, peer.underlay);
                    }
                }
            }
            ControlUpdate::PeerDown { vni, underlay } => {
                if let Some(net) = self.network_mut(vni) {
                    net.peers.retain(|p| *p != underlay);
                    if let Some(router) = net.router.as_mut() {
                        router.routes_mut().remove_via(underlay);
                    }
                }
                self.fdb.flush_remote(vni, underlay);
                // A peer the encrypted network no longer lists has left it: drop its ESP session there.
                if let (Some(esp), Some(&port)) = (self.esp.as_mut(), self.by_vni.get(&vni)) {
                    let net = &self.networks[port];
                    if net.tunnel == Tunnel::Esp && !net.peers.contains(&underlay) {
                        esp.remove_peer(vni, underlay);
                    }
                }
            }
            ControlUpdate::RouteAdd { vni, subnet, via, .. } => {
                if let Some(router) = self.network_mut(vni).and_then(|n| n.router.as_mut()) {
                    router.routes_mut().insert(subnet, via);
                }
            }
            ControlUpdate::RouteRemove { vni, subnet } => {
                if let Some(router) = self.network_mut(vni).and_then(|n| n.router.as_mut()) {
                    router.routes_mut().remove(subnet);
                }
            }
            ControlUpdate::ArpBinding { vni, ip, mac } => {
                self.bound_elsewhere(now, vni, ip, mac);
                match ip {
                    IpAddr::V4(ip) => self.proxy_arp.bind(vni, ip, mac),
                    IpAddr::V6(ip) => self.proxy_nd.bind(vni, ip, mac),
                }
            }
            ControlUpdate::ArpUnbind { vni, ip: IpAddr::V4(ip) } => self.proxy_arp.unbind(vni, ip),
            ControlUpdate::ArpUnbind { vni, ip: IpAddr::V6(ip) } => self.proxy_nd.unbind(vni, ip),
            // Only for networks this switch runs (kernel-mode VNIs are programmed elsewhere).
            ControlUpdate::StaticFdb { vni, mac, underlay } if self.by_vni.contains_key(&vni) => {
                self.fdb.insert_static(now, vni, mac, Location::Remote(underlay));
            }
            ControlUpdate::StaticFdb { .. } => {}
            ControlUpdate::StaticFdbRemove { vni, mac } => {
                self.fdb.remove(vni, mac);
                self.placement_withdrawn(now, vni, mac);
            }
            ControlUpdate::EspKey { underlay, public_key, epoch } => {
                if let Some(esp) = self.esp.as_mut() {
                    esp.set_peer_key(now, underlay, public_key, epoch);
                }
            }
        }
    }

    /// Replace the per-source rate limit of flooded frames (forgetting every source's bucket).
    pub fn set_flood_limit(&mut self, limit: FloodLimit) {
        self.flood = FloodLimiter::new(limit);
    }

    /// The per-source rate limit of flooded frames.
    pub fn flood_limit(&self) -> FloodLimit {
        self.flood.limit()
    }

    /// Run timers due at `now` (FDB ageing, routers' neighbour resolution, ESP rekeying).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.fdb.age(now) > 0 {
            self.expire_local_bindings();
        }
        self.expire_peer_mtus(now);
        if let Some(esp) = self.esp.as_mut() {
            esp.handle_timeout(now);
            self.flush_hellos();
        }
        for net in &mut self.networks {
            if let Some(router) = net.router.as_mut() {
                for _ in 0..router.handle_timeout(now) {
                    self.counters.drop(DropReason::NeighbourUnresolved);
                }
            }
        }
    }

    /// When [`Switch::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let routers = self.networks.iter().filter_map(|n| n.router.as_ref()?.poll_timeout());
        let esp = self.esp.as_ref().and_then(EspTunnels::poll_timeout);
        self.fdb.next_expiry().into_iter().chain(routers).chain(esp).chain(self.peer_mtus.next_expiry()).min()
    }

    /// Add a network (not an encrypted one: ESP is set up once, with [`Switch::set_esp`]) on
    /// the first retired port, else on a new one; returns its port. A network of the same VNI is
    /// replaced.
    pub fn add_network(&mut self, now: Instant, spec: NetworkSpec) -> PortId {
        self.remove_network(spec.vni);
        let vni = spec.vni;
        let net = Network::new(spec, now);
        let port = match self.networks.iter().position(|n| n.retired) {
            Some(port) => {
                self.networks[port] = net;
                port
            }
            None => {
                self.networks.push(net);
                self.networks.len() - 1
            }
        };
        self.by_vni.insert(vni, port);
        port
    }

    /// Remove the network `vni`, forgetting its peers, routes, FDB entries and snooped bindings;
    /// returns the port it had, which is retired. Other networks keep their ports.
    pub fn remove_network(&mut self, vni: Vni) -> Option<PortId> {
        let port = self.by_vni.remove(&vni)?;
        let net = &mut self.networks[port];
        net.retired = true;
        net.peers.clear();
        net.router = None;
        net.tunnel = Tunnel::Vxlan;
        net.path = PathSpec::default();
        let macs: Vec<EthernetAddress> = self.fdb.iter().filter(|(k, _)| k.vni == vni).map(|(k, _)| k.mac).collect();
        for mac in macs {
            self.fdb.remove(vni, mac);
        }
        self.flood.forget_port(port);
        let before = self.local_bindings.len();
        self.local_bindings.retain(|&(v, _), _| v != vni);
        self.announced.retain(|&(v, _), _| v != vni);
        self.local_bindings_changed |= self.local_bindings.len() != before;
        Some(port)
    }

    /// The port of network `vni`.
    pub fn port(&self, vni: Vni) -> Option<PortId> {
        self.by_vni.get(&vni).copied()
    }

    /// Give routed network `vni` the (leased) `subnet` and `gateway_ip`; whether it is routed.
    pub fn set_routed_subnet(&mut self, vni: Vni, subnet: ipnet::Ipv4Net, gateway_ip: Ipv4Addr) -> bool {
        let router = self.network_mut(vni).and_then(|n| n.router.as_mut());
        router.map(|r| r.set_subnet(subnet, gateway_ip)).is_some()
    }

    /// The router of a routed network.
    pub fn router(&self, port: PortId) -> Option<&Router> {
        self.networks.get(port)?.router.as_ref()
    }

    /// The proxy-ARP bindings.
    pub fn proxy_arp(&self) -> &ProxyArp {
        &self.proxy_arp
    }

    /// Next packet the switch originated itself.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next datagram the switch originated for the underlay (the ESP copies of a flood, hellos),
    /// leaving the frames for the TAPs queued. A driver that batches its sends takes these into
    /// the batch it is filling, in order: an ESP copy took its sequence number when it was sealed,
    /// and one handed to the kernel after the datagrams sealed behind it arrives late at the
    /// peer, beyond its replay window once more than a window's worth overtook it.
    // hot path
    pub fn poll_underlay_transmit(&mut self) -> Option<Transmit> {
        if self.transmits.is_empty() {
            return None;
        }
        let at = self.transmits.iter().position(|t| matches!(t, Transmit::Underlay { .. }))?;
        self.transmits.remove(at)
    }

    /// Traffic and drop counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The forwarding database.
    pub fn fdb(&self) -> &Fdb {
        &self.fdb
    }

    /// The VNI of a port (`None` for a retired one).
    pub fn vni(&self, port: PortId) -> Option<Vni> {
        self.networks.get(port).filter(|n| !n.retired).map(|n| n.vni)
    }

    /// Current peers of a port's network.
    pub fn peers(&self, port: PortId) -> &[IpAddr] {
        self.networks.get(port).map_or(&[], |n| &n.peers)
    }

    fn network_mut(&mut self, vni: Vni) -> Option<&mut Network> {
        let port = *self.by_vni.get(&vni)?;
        self.networks.get_mut(port)
    }
}
