//! ESP tunnels of the encrypted network: one [`PeerSession`] per peer host.
//!
//! Keys come from two places, both ending in a `PeerSession`:
//! - **automatic**: the peer's X25519 public key and start epoch arrive as
//!   [`ControlUpdate::EspKey`](crate::control::ControlUpdate::EspKey) (gossip carries them); both
//!   sides derive the same per-direction SAs with HKDF, no handshake. A session is kept while the
//!   (public key, epoch) pair is unchanged and replaced when it changes, so a restarted peer (new
//!   epoch) gets fresh keys and no (key, nonce) pair is ever reused.
//! - **manual**: SPI, key and salt per direction from the configuration, exactly as
//!   `ip xfrm state` takes them, for interop with other ESP implementations.
//!
//! Why one session per peer host and not per VNI: ESP carries no VNI, and the SPI space of a
//! session belongs to the host pair. vxswitch therefore encrypts one network per host (the
//! configuration rejects a second); the inner packet says what it is (next header 143 =
//! Ethernet for a switched network, 4 = IPv4 for a routed one).

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::counters::counters;
use crate::ipsec::hello::{self, Hello};
use crate::ipsec::{DropCounters, EspError, HostKey, InboundSa, Opened, OutboundSa, PeerSession, SessionConfig, SessionKeys, Suite};

/// How often a hello is repeated to each static peer.
pub const HELLO_INTERVAL: Duration = Duration::from_secs(5);
/// At most one immediate answer per peer per this interval.
const HELLO_ANSWER_GAP: Duration = Duration::from_secs(1);
/// Epochs remembered per peer (a replayed older epoch is refused).
const SEEN_EPOCHS: usize = 64;

/// A peer whose public key is configured: its epoch arrives in hellos.
struct StaticPeer {
    public_key: [u8; 32],
    hello_key: [u8; 32],
    epoch: Option<u64>,
    seen: VecDeque<u64>,
    next_hello: Instant,
    last_answer: Option<Instant>,
}

counters! {
    /// Hello counters.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct HelloCounters {
        /// Hellos sent.
        pub sent: u64 = counter,
        /// Hellos that announced a new epoch (a session was derived).
        pub accepted: u64 = counter,
        /// Hellos for the epoch already in use.
        pub current: u64 = counter,
        /// Hellos with an epoch seen before (replays).
        pub replayed: u64 = counter,
        /// Hellos that failed authentication or came from a peer without a configured key.
        pub rejected: u64 = counter,
    }
}

counters! {
    /// Counters of this host's ESP sessions: part of the `esp` section of `stats`, `vxswitch_esp_*` metrics.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct EspCounters {
        /// Automatic keys that could not be used (e.g. an invalid public key).
        pub bad_keys: u64 = counter,
        /// Hellos exchanged with static peers.
        pub hellos: HelloCounters = nested,
        /// ESP packets dropped by the ESP layer, by reason.
        pub drops: DropCounters = nested,
    }
}

/// Why an ESP operation could not be done for a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelError {
    /// No keys for this peer (unknown peer, or its key has not arrived yet).
    NoSession,
    /// The ESP layer refused (counted in the session's drop counters on receive).
    Esp(EspError),
}

struct PeerTunnel {
    session: PeerSession,
    /// (public key, epoch) the automatic session was derived from; `None` for manual keys.
    derived_from: Option<([u8; 32], u64)>,
}

/// The ESP sessions of this host.
pub struct EspTunnels {
    host: Option<HostKey>,
    local_epoch: u64,
    suite: Suite,
    config: SessionConfig,
    peers: HashMap<Ipv4Addr, PeerTunnel>,
    /// Drops of sessions that were replaced, so the totals never go backwards.
    retired_drops: DropCounters,
    /// Automatic keys that could not be used (e.g. an invalid public key).
    pub bad_keys: u64,
    static_peers: HashMap<Ipv4Addr, StaticPeer>,
    hello_out: VecDeque<(Ipv4Addr, Vec<u8>)>,
    /// Hello counters.
    pub hellos: HelloCounters,
}

impl std::fmt::Debug for EspTunnels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EspTunnels").field("suite", &self.suite).field("peers", &self.peers.len()).finish_non_exhaustive()
    }
}

impl EspTunnels {
    /// Tunnels with automatic keys from `host` (optional: manual-only without it).
    pub fn new(host: Option<HostKey>, local_epoch: u64, suite: Suite, config: SessionConfig) -> Self {
        EspTunnels {
            host,
            local_epoch,
            suite,
            config,
            peers: HashMap::new(),
            retired_drops: DropCounters::default(),
            bad_keys: 0,
            static_peers: HashMap::new(),
            hello_out: VecDeque::new(),
            hellos: HelloCounters::default(),
        }
    }

    /// This host's public key (automatic mode).
    pub fn public_key(&self) -> Option<[u8; 32]> {
        self.host.as_ref().map(HostKey::public_key)
    }

    /// This host's start epoch.
    pub fn local_epoch(&self) -> u64 {
        self.local_epoch
    }

    /// Install manual SAs for `peer`.
    pub fn add_manual(&mut self, now: Instant, peer: Ipv4Addr, outbound: OutboundSa, inbound: InboundSa) {
        let session = PeerSession::manual(outbound, inbound, now);
        self.replace(peer, PeerTunnel { session, derived_from: None });
    }

    /// The peer at `peer` has this public key and epoch: derive (or keep) its session.
    pub fn set_peer_key(&mut self, now: Instant, peer: Ipv4Addr, public_key: [u8; 32], epoch: u64) {
        if self.peers.get(&peer).is_some_and(|t| t.derived_from == Some((public_key, epoch))) {
            return; // same epochs: keep the session (a new one would restart at generation 0)
        }
        if self.peers.get(&peer).is_some_and(|t| t.derived_from.is_none()) {
            return; // manual keys win over gossip
        }
        let Some(host) = &self.host else { return };
        let session = SessionKeys::new(host, self.local_epoch, public_key, epoch, self.suite, true)
            .map_err(|_| EspError::BadKeyLength)
            .and_then(|keys| PeerSession::new(keys, self.config.clone(), now));
        match session {
            Ok(session) => self.replace(peer, PeerTunnel { session, derived_from: Some((public_key, epoch)) }),
            Err(e) => {
                self.bad_keys += 1;
                tracing::warn!(%peer, "cannot derive ESP keys: {e:?}");
            }
        }
    }

    /// A peer whose public key is configured: hellos tell each other the epochs.
    pub fn add_static_peer(&mut self, now: Instant, peer: Ipv4Addr, public_key: [u8; 32]) -> Result<(), TunnelError> {
        let host = self.host.as_ref().ok_or(TunnelError::NoSession)?;
        let hello_key = host.hello_key(&public_key).map_err(|_| TunnelError::Esp(EspError::BadKeyLength))?;
        self.static_peers
            .insert(peer, StaticPeer { public_key, hello_key, epoch: None, seen: VecDeque::new(), next_hello: now, last_answer: None });
        Ok(())
    }

    /// A hello arrived from `from`: accept a new epoch (deriving the session), and answer at once
    /// if the peer does not know our epoch yet.
    pub fn handle_hello(&mut self, now: Instant, from: Ipv4Addr, payload: &[u8]) {
        let local_epoch = self.local_epoch;
        let Some(sp) = self.static_peers.get_mut(&from) else {
            self.hellos.rejected += 1;
            return;
        };
        let Ok(h) = hello::decode(&sp.hello_key, payload) else {
            self.hellos.rejected += 1;
            return;
        };
        if h.public_key != sp.public_key {
            self.hellos.rejected += 1;
            return;
        }
        let new_epoch = sp.epoch != Some(h.epoch);
        if new_epoch && sp.seen.contains(&h.epoch) {
            self.hellos.replayed += 1;
            return;
        }
        // A new epoch is always answered at once (the peer has just started and needs ours);
        // hellos for the current epoch that lack our epoch are answered at most once a second.
        let rate_ok = sp.last_answer.is_none_or(|t| now.saturating_duration_since(t) >= HELLO_ANSWER_GAP);
        if h.echo != local_epoch && (new_epoch || rate_ok) {
            sp.last_answer = Some(now);
            sp.next_hello = now;
        }
        if new_epoch {
            sp.epoch = Some(h.epoch);
            sp.seen.push_back(h.epoch);
            if sp.seen.len() > SEEN_EPOCHS {
                sp.seen.pop_front();
            }
            self.hellos.accepted += 1;
            let public_key = sp.public_key;
            self.set_peer_key(now, from, public_key, h.epoch);
        } else {
            self.hellos.current += 1;
        }
        self.queue_due_hellos(now);
    }

    fn queue_due_hellos(&mut self, now: Instant) {
        let Some(host) = self.host.as_ref() else { return };
        let public_key = host.public_key();
        for (peer, sp) in &mut self.static_peers {
            if sp.next_hello <= now {
                let h = Hello { public_key, epoch: self.local_epoch, echo: sp.epoch.unwrap_or(0) };
                self.hello_out.push_back((*peer, hello::encode(&sp.hello_key, &h)));
                self.hellos.sent += 1;
                sp.next_hello = now + HELLO_INTERVAL;
            }
        }
    }

    /// Next hello datagram to send: (peer, UDP payload for the ESP port).
    pub fn poll_hello(&mut self) -> Option<(Ipv4Addr, Vec<u8>)> {
        self.hello_out.pop_front()
    }

    fn replace(&mut self, peer: Ipv4Addr, tunnel: PeerTunnel) {
        if let Some(old) = self.peers.insert(peer, tunnel) {
            self.retired_drops.merge(old.session.drops());
        }
    }

    /// Whether there are keys for `peer`.
    pub fn has_session(&self, peer: Ipv4Addr) -> bool {
        self.peers.contains_key(&peer)
    }

    /// Seal `buf[ESP_HEADROOM..ESP_HEADROOM + inner_len]` for `peer`; returns the ESP length.
    // hot path
    pub fn seal(&mut self, now: Instant, peer: Ipv4Addr, buf: &mut [u8], inner_len: usize, next_header: u8) -> Result<usize, TunnelError> {
        let t = self.peers.get_mut(&peer).ok_or(TunnelError::NoSession)?;
        t.session.seal(now, buf, inner_len, next_header).map_err(TunnelError::Esp)
    }

    /// Verify and decrypt an ESP packet from `peer` in place.
    // hot path
    pub fn open(&mut self, now: Instant, peer: Ipv4Addr, packet: &mut [u8]) -> Result<Opened, TunnelError> {
        let t = self.peers.get_mut(&peer).ok_or(TunnelError::NoSession)?;
        t.session.open(now, packet).map_err(TunnelError::Esp)
    }

    /// Rekey timers, overlap expiry and hello repeats.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.queue_due_hellos(now);
        for (peer, t) in &mut self.peers {
            if let Err(e) = t.session.handle_timeout(now) {
                tracing::warn!(%peer, "ESP rekey failed: {e:?}");
            }
        }
    }

    /// When [`EspTunnels::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let hellos = self.static_peers.values().map(|p| p.next_hello);
        self.peers.values().filter_map(|t| t.session.poll_timeout()).chain(hellos).min()
    }

    /// Receive drops of every session, including replaced ones.
    pub fn drops(&self) -> DropCounters {
        let mut total = self.retired_drops;
        for t in self.peers.values() {
            total.merge(t.session.drops());
        }
        total
    }

    /// All counters of the ESP sessions, for export.
    pub fn counters(&self) -> EspCounters {
        EspCounters { bad_keys: self.bad_keys, hellos: self.hellos, drops: self.drops() }
    }

    /// Per-peer (outbound SPI, inbound SPI, generations) for status output.
    pub fn sessions(&self) -> Vec<(Ipv4Addr, u32, u32, (u64, u64))> {
        let mut v: Vec<_> =
            self.peers.iter().map(|(p, t)| (*p, t.session.outbound_spi(), t.session.inbound_spi(), t.session.generations())).collect();
        v.sort();
        v
    }
}
