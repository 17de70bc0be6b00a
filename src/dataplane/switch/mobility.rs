//! Container moves (MAC mobility): a container that stops on one host and starts on another with
//! the same MAC and addresses (live migration, a restart with a pinned MAC).
//!
//! The other hosts' proxy ARP/ND and static FDB entries point at the old host until the cluster
//! learns otherwise, and snooping alone would never tell it: an address bound elsewhere is not
//! snooped. So, as EVPN does (RFC 7432 section 15), the newest sighting wins. A frame on a local
//! TAP whose source MAC the control plane places behind another host (the FDB refuses to learn
//! it over the static entry) is a move: every address bound to that MAC becomes a local binding
//! at once, and the node publishes it with a higher move sequence right away (see
//! `node/record.rs`, `control/tables.rs`). When the control plane later binds one of this host's
//! own local addresses to the same MAC elsewhere, the container has moved away: the local binding
//! is dropped and the FDB entry now points at the new host.
//!
//! Two live containers with one MAC on two hosts would take the binding from each other on every
//! frame and storm the gossip. Like EVPN's duplicate-MAC detection, a MAC that moved here more
//! than [`MAX_MOVES`] times within [`MOVE_WINDOW`] is held where it is for [`MOVE_HOLD`]: further
//! takeovers are refused, counted (`binding_moves_damped`) and logged once per hold.
//!
//! Spoofing is unaffected: ARP or ND claiming a bound address with another MAC is refused before
//! it gets here, and only addresses already bound to the very MAC seen are ever taken.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::{Location, Switch, MAX_LOCAL_BINDINGS};
use crate::wire::ethernet::EthernetAddress;
use crate::wire::vxlan::Vni;

/// Most moves of one MAC to this host within [`MOVE_WINDOW`] before it is held.
pub const MAX_MOVES: usize = 5;
/// The window in which moves are counted (EVPN's default of 5 moves in 180 s).
pub const MOVE_WINDOW: Duration = Duration::from_secs(180);
/// How long a MAC that moved too often is held where it is.
pub const MOVE_HOLD: Duration = Duration::from_secs(180);
/// Most MACs whose recent moves are remembered.
const MAX_TRACKED: usize = 1024;

/// Recent moves of one MAC to this host.
#[derive(Debug, Default)]
struct History {
    moves: VecDeque<Instant>,
    held_until: Option<Instant>,
}

/// Move damping and the pending publication of moved bindings.
#[derive(Debug, Default)]
pub(super) struct Mobility {
    history: HashMap<(Vni, EthernetAddress), History>,
    /// When a binding moved here or away and has not been published yet.
    publish_due: Option<Instant>,
    /// MACs that moved here while the control plane still places them elsewhere: learned behind
    /// the local TAP the moment that placement is withdrawn, so frames to them are not flooded.
    moved_here: HashSet<(Vni, EthernetAddress)>,
}

/// What [`Mobility::admit`] decided.
#[derive(Debug, PartialEq, Eq)]
enum Admit {
    Yes,
    /// Refused; `true` when this refusal starts the hold.
    Held(bool),
}

impl Mobility {
    /// Whether `mac` is held at `now` (a cheap check before any work).
    fn held(&self, now: Instant, vni: Vni, mac: EthernetAddress) -> bool {
        self.history.get(&(vni, mac)).and_then(|h| h.held_until).is_some_and(|t| now < t)
    }

    /// Record a move of `mac` to this host at `now`, unless it moved too often.
    fn admit(&mut self, now: Instant, vni: Vni, mac: EthernetAddress) -> Admit {
        if self.history.len() >= MAX_TRACKED && !self.history.contains_key(&(vni, mac)) {
            self.history.retain(|_, h| h.held_until.is_some_and(|t| now < t) || h.moves.back().is_some_and(|&t| now < t + MOVE_WINDOW));
        }
        let h = self.history.entry((vni, mac)).or_default();
        match h.held_until {
            Some(t) if now < t => return Admit::Held(false),
            Some(_) => *h = History::default(),
            None => {}
        }
        while h.moves.front().is_some_and(|&t| now >= t + MOVE_WINDOW) {
            h.moves.pop_front();
        }
        if h.moves.len() >= MAX_MOVES {
            h.held_until = Some(now + MOVE_HOLD);
            return Admit::Held(true);
        }
        h.moves.push_back(now);
        Admit::Yes
    }
}

impl Switch {
    /// `mac` was seen on the TAP of `vni` while the control plane places it behind another host:
    /// claim every address bound to it here (the container moved here).
    pub(super) fn mac_seen_here(&mut self, now: Instant, vni: Vni, mac: EthernetAddress) {
        if self.mobility.held(now, vni, mac) {
            return;
        }
        let v4 = self.proxy_arp.addresses_of(vni, mac).iter().map(|&ip| IpAddr::V4(ip));
        let v6 = self.proxy_nd.addresses_of(vni, mac).iter().map(|&ip| IpAddr::V6(ip));
        let local = &self.local_bindings;
        let taken: Vec<IpAddr> = v4.chain(v6).filter(|&ip| local.get(&(vni, ip)) != Some(&mac)).collect();
        if taken.is_empty() {
            // Not a container binding (a configured static entry), or already taken.
            return;
        }
        match self.mobility.admit(now, vni, mac) {
            Admit::Yes => {}
            Admit::Held(started) => {
                if started {
                    self.counters.binding_moves_damped += 1;
                    tracing::warn!(%vni, %mac, "container MAC moved more than {MAX_MOVES} times in {MOVE_WINDOW:?}; held where it is for {MOVE_HOLD:?} (two containers with one MAC?)");
                }
                return;
            }
        }
        for ip in taken {
            if self.local_bindings.len() >= MAX_LOCAL_BINDINGS && !self.local_bindings.contains_key(&(vni, ip)) {
                break;
            }
            self.local_bindings.insert((vni, ip), mac);
        }
        if self.mobility.moved_here.len() >= MAX_TRACKED {
            self.mobility.moved_here.clear();
        }
        self.mobility.moved_here.insert((vni, mac));
        tracing::info!(%vni, %mac, "container moved here; claiming its addresses");
        self.counters.binding_moves_in += 1;
        self.local_bindings_changed = true;
        self.mobility.publish_due.get_or_insert(now);
    }

    /// The control plane bound `ip` to `mac` on `vni` behind another host. If this host has the
    /// same container locally, it moved away: the local binding goes (published at once).
    pub(super) fn bound_elsewhere(&mut self, now: Instant, vni: Vni, ip: IpAddr, mac: EthernetAddress) {
        let key = (vni, ip);
        let snooped = self.local_bindings.get(&key) == Some(&mac);
        let announced = self.announced.get(&key) == Some(&mac);
        if !snooped && !announced {
            return;
        }
        self.local_bindings.remove(&key);
        self.announced.remove(&key);
        self.mobility.moved_here.remove(&(vni, mac));
        tracing::info!(%vni, %ip, %mac, "container moved to another host; local binding dropped");
        self.counters.binding_moves_out += 1;
        self.local_bindings_changed = true;
        self.mobility.publish_due.get_or_insert(now);
    }

    /// The control plane withdrew its static entry of `mac`: if the MAC moved here, it lives
    /// behind the local TAP from now on.
    pub(super) fn placement_withdrawn(&mut self, now: Instant, vni: Vni, mac: EthernetAddress) {
        if self.mobility.moved_here.remove(&(vni, mac)) {
            self.fdb.learn(now, vni, mac, Location::Local);
        }
    }

    /// When a moved binding waits to be published: the node publishes at once instead of at its
    /// usual pace. Cleared by [`Switch::take_local_bindings_changed`].
    pub fn binding_publish_due(&self) -> Option<Instant> {
        self.mobility.publish_due
    }

    pub(super) fn clear_publish_due(&mut self) {
        self.mobility.publish_due = None;
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::arp::arp_frame;
    use crate::control::ControlUpdate;
    use crate::dataplane::counters::DropReason;
    use crate::dataplane::{NetworkSpec, SwitchConfig, Tunnel};
    use crate::wire::arp::{ArpOperation, ArpRepr};

    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 7]);
    const EVIL: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xe]);
    const VNI: Vni = Vni::new_const(1042);
    const IP: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 7);
    const OLD_HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));

    fn switch(now: Instant) -> Switch {
        let spec = NetworkSpec {
            vni: VNI,
            max_frame_len: 1464,
            peers: vec![OLD_HOST],
            unknown_arp: crate::arp::UnknownArp::Flood,
            routed: None,
            tunnel: Tunnel::Vxlan,
            path: Default::default(),
        };
        Switch::new(SwitchConfig { fdb_ageing: Duration::from_secs(300), fdb_max_entries: 1024, networks: vec![spec] }, now)
    }

    /// What the control plane tells this host while the container lives behind `host`.
    fn bound_at(sw: &mut Switch, now: Instant, host: IpAddr) {
        sw.apply(now, ControlUpdate::ArpBinding { vni: VNI, ip: IP.into(), mac: MAC });
        sw.apply(now, ControlUpdate::StaticFdb { vni: VNI, mac: MAC, underlay: host });
    }

    fn tap(sw: &mut Switch, now: Instant, frame: &[u8]) {
        let mut buf = vec![0u8; 128 + frame.len()];
        buf[128..].copy_from_slice(frame);
        let _ = sw.handle_tap_frame(now, 0, &mut buf, 128..128 + frame.len());
    }

    /// A gratuitous ARP of `ip` at `mac`.
    fn garp(mac: EthernetAddress, ip: Ipv4Addr) -> Vec<u8> {
        let arp = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: mac,
            source_protocol_addr: ip,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: ip,
        };
        arp_frame(&arp, EthernetAddress::BROADCAST, None)
    }

    /// Any IPv4 frame from `mac` to the broadcast address (contents do not matter here).
    fn any_frame(mac: EthernetAddress) -> Vec<u8> {
        crate::sim::ethernet_frame([0xff; 6], mac.0, 0x0800, &[0x45; 40])
    }

    #[test]
    fn a_container_bound_elsewhere_is_claimed_on_its_first_frame_here() {
        for frame in [garp(MAC, IP), any_frame(MAC)] {
            let now = Instant::now();
            let mut sw = switch(now);
            bound_at(&mut sw, now, OLD_HOST);
            sw.take_local_bindings_changed();
            assert_eq!(sw.binding_publish_due(), None);
            tap(&mut sw, now, &frame);
            assert_eq!(sw.binding_publish_due(), Some(now), "published at once, not at the next round");
            assert_eq!(sw.take_local_bindings_changed(), Some(vec![(VNI, IP.into(), MAC)]));
            assert_eq!(sw.binding_publish_due(), None);
            assert_eq!(sw.counters().binding_moves_in, 1);
            // Until the control plane withdraws the old placement, further frames change nothing.
            tap(&mut sw, now, &frame);
            assert_eq!(sw.take_local_bindings_changed(), None);
            assert_eq!(sw.counters().binding_moves_in, 1);
            // The cluster accepted the claim: the static entry goes, the MAC is learned here.
            sw.apply(now, ControlUpdate::ArpUnbind { vni: VNI, ip: IP.into() });
            sw.apply(now, ControlUpdate::StaticFdbRemove { vni: VNI, mac: MAC });
            assert_eq!(sw.fdb().lookup(VNI, MAC), Some(Location::Local), "learned here at once");
            tap(&mut sw, now, &frame);
            assert_eq!(sw.fdb().lookup(VNI, MAC), Some(Location::Local));
            assert_eq!(sw.counters().binding_moves_in, 1);
        }
    }

    #[test]
    fn another_mac_claiming_the_address_is_still_refused_and_a_plain_static_mac_never_moves() {
        let now = Instant::now();
        let mut sw = switch(now);
        bound_at(&mut sw, now, OLD_HOST);
        sw.take_local_bindings_changed();
        tap(&mut sw, now, &garp(EVIL, IP));
        assert_eq!(sw.counters().drops(DropReason::ArpSpoofed), 1);
        assert_eq!(sw.take_local_bindings_changed(), None);
        assert_eq!(sw.counters().binding_moves_in, 0);
        // A configured static FDB entry with no address bound to it is not a container binding.
        let other = EthernetAddress([2, 0, 0, 0, 0, 8]);
        sw.apply(now, ControlUpdate::StaticFdb { vni: VNI, mac: other, underlay: OLD_HOST });
        tap(&mut sw, now, &any_frame(other));
        assert_eq!((sw.counters().binding_moves_in, sw.binding_publish_due()), (0, None));
        assert_eq!(sw.fdb().lookup(VNI, other), Some(Location::Remote(OLD_HOST)));
    }

    #[test]
    fn a_local_container_claimed_elsewhere_with_its_mac_moved_away() {
        let now = Instant::now();
        let mut sw = switch(now);
        tap(&mut sw, now, &garp(MAC, IP));
        assert_eq!(sw.take_local_bindings_changed(), Some(vec![(VNI, IP.into(), MAC)]), "snooped");
        // Another host claims the address with another MAC: a conflict for the control plane,
        // not a move; the local binding stays.
        sw.apply(now, ControlUpdate::ArpBinding { vni: VNI, ip: IP.into(), mac: EVIL });
        assert_eq!(sw.take_local_bindings_changed(), None);
        sw.apply(now, ControlUpdate::ArpUnbind { vni: VNI, ip: IP.into() });
        // The same MAC claimed elsewhere: it moved away.
        bound_at(&mut sw, now, OLD_HOST);
        assert_eq!(sw.binding_publish_due(), Some(now));
        assert_eq!(sw.take_local_bindings_changed(), Some(vec![]));
        assert_eq!(sw.counters().binding_moves_out, 1);
        assert_eq!(sw.fdb().lookup(VNI, MAC), Some(Location::Remote(OLD_HOST)), "frames for it go to its new host");
    }

    #[test]
    fn a_mac_flapping_between_hosts_is_held_after_max_moves() {
        let t0 = Instant::now();
        let mut sw = switch(t0);
        for i in 0..10u64 {
            let now = t0 + Duration::from_secs(i);
            // The other host took it (again); then the container here speaks (again).
            bound_at(&mut sw, now, OLD_HOST);
            tap(&mut sw, now, &any_frame(MAC));
            sw.take_local_bindings_changed();
        }
        assert_eq!(sw.counters().binding_moves_in, MAX_MOVES as u64);
        assert_eq!(sw.counters().binding_moves_out, MAX_MOVES as u64);
        assert_eq!(sw.counters().binding_moves_damped, 1, "one hold, counted once");
        // After the hold the MAC may move here again.
        let later = t0 + Duration::from_secs(10) + MOVE_HOLD;
        bound_at(&mut sw, later, OLD_HOST);
        tap(&mut sw, later, &any_frame(MAC));
        assert_eq!(sw.counters().binding_moves_in, MAX_MOVES as u64 + 1);
    }

    #[test]
    fn more_than_max_moves_in_the_window_are_held_then_released() {
        let vni = Vni::new_const(7);
        let t0 = Instant::now();
        let mut m = Mobility::default();
        for i in 0..MAX_MOVES as u64 {
            assert_eq!(m.admit(t0 + Duration::from_secs(i), vni, MAC), Admit::Yes);
        }
        let t = t0 + Duration::from_secs(10);
        assert_eq!(m.admit(t, vni, MAC), Admit::Held(true), "the sixth move starts the hold");
        assert_eq!(m.admit(t + Duration::from_secs(1), vni, MAC), Admit::Held(false), "counted once per hold");
        assert!(m.held(t + MOVE_HOLD - Duration::from_secs(1), vni, MAC));
        assert!(!m.held(t0, Vni::new_const(8), MAC), "per network");
        assert_eq!(m.admit(t + MOVE_HOLD, vni, MAC), Admit::Yes, "free again after the hold, with a fresh count");
        for i in 1..MAX_MOVES as u64 {
            assert_eq!(m.admit(t + MOVE_HOLD + Duration::from_secs(i), vni, MAC), Admit::Yes);
        }
    }

    #[test]
    fn moves_spread_wider_than_the_window_are_never_held() {
        let vni = Vni::new_const(7);
        let t0 = Instant::now();
        let mut m = Mobility::default();
        let every = MOVE_WINDOW / MAX_MOVES as u32 + Duration::from_secs(1);
        for i in 0..50 {
            assert_eq!(m.admit(t0 + every * i, vni, MAC), Admit::Yes, "move {i}");
        }
    }
}
