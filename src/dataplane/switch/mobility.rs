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

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::{Switch, MAX_LOCAL_BINDINGS};
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
        tracing::info!(%vni, %ip, %mac, "container moved to another host; local binding dropped");
        self.counters.binding_moves_out += 1;
        self.local_bindings_changed = true;
        self.mobility.publish_due.get_or_insert(now);
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
    use super::*;

    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 7]);

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
