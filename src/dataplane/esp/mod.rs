//! ESP tunnels of the encrypted networks: one [`PeerSession`] per (network, peer host).
//!
//! Keys come from two places, both ending in a `PeerSession`:
//! - **automatic**: the peer's X25519 public key and start epoch arrive as
//!   [`ControlUpdate::EspKey`](crate::control::ControlUpdate::EspKey) (gossip carries them) or in
//!   hellos ([`hello`]); both sides derive the same per-direction SAs with HKDF, no handshake.
//! - **manual**: SPI, key and salt per direction from the configuration, exactly as
//!   `ip xfrm state` takes them, for interop with other ESP implementations.
//!
//! How no (key, nonce) pair is used twice (the argument in full is in [`crate::ipsec`]):
//! - an automatic session is kept while the peer's (public key, epoch) is unchanged. When it is
//!   dropped anyway (the peer left, or two gossip records claiming one underlay address made the
//!   key flip back and forth), its [`ResumePoint`](crate::ipsec::ResumePoint) goes into a bounded [`resume::ResumeTable`],
//!   and a later session for the same key and epoch continues above the generations used. At most
//!   one live session exists per (public key, epoch), whatever underlay address claims it.
//! - a manual SA's sequence numbers survive restarts through reservations: the driver persists the
//!   end of the next block ([`EspTunnels::reservations_wanted`]) before
//!   [`EspTunnels::confirm_reservation`] lets the SA use it, so after a crash the numbers skip
//!   forward, never back. At 90 % of the sequence space a warning is logged; at the end sealing
//!   stops with an error and a counter (manual keys cannot be rekeyed automatically).
//!
//! Sessions of peers that left are removed ([`EspTunnels::remove_peer`]) and their number is
//! bounded ([`DEFAULT_MAX_SESSIONS`]); when the bound bites a new peer gets no session and the
//! refusal is counted.
//!
//! Several encrypted networks per host: ESP carries no VNI, so **the SPI tells the network**.
//! Every encrypted network has its own sessions, keyed by (VNI, peer underlay address):
//! - automatic keys put the VNI into the HKDF info ([`SessionKeys::for_network`]), so each
//!   network between the same two hosts gets its own keys and SPIs, and its own resume entries
//!   (keyed by VNI, peer key and epoch). A (key, nonce) pair of one network can therefore never
//!   be one of another's, and the generations of each network move forward on their own.
//! - manual keys are configured per network and per peer; the configuration refuses an inbound
//!   SPI used twice on the host (it would not tell the network) and an outbound key used twice
//!   (two SAs under one key would repeat nonces). Sequence reservations stay keyed by (SPI, key
//!   id), which with distinct keys names one SA, so a restart resumes each SA on its own.
//!
//! On receive, [`EspTunnels::open`] picks the session of the sending peer whose inbound SPIs
//! (current, previous in its overlap, next generation) hold the packet's SPI and returns that
//! session's VNI; a packet of no such SPI (a peer several generations ahead) is offered to the
//! peer's sessions in turn, each looking the SPI up among its own upcoming generations, and only
//! an ICV that verifies delivers it. Never is a packet opened
//! with one network's keys delivered to another: the caller delivers to the VNI returned. The
//! inner packet says what it is (next header 143 = Ethernet for a switched network, 4 = IPv4 for
//! a routed one) and must match the network's mode.
//!
//! Gossip announces one key per host ([`EspTunnels::set_peer_key`]): it derives a session for
//! every encrypted network ([`EspTunnels::set_networks`]) that has no manual keys for the peer.
//! Hellos, the host key and the epoch belong to the host, not to a network.

pub mod hello;
pub mod resume;

use crate::wire::vxlan::Vni;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

use crate::counters::counters;
use crate::ipsec::{DropCounters, EspError, HostKey, InboundSa, Opened, OutboundSa, PeerSession, SessionConfig, SessionKeys, Suite};
use hello::StaticPeer;
pub use hello::{HelloCounters, HELLO_INTERVAL};
use resume::{PeerKeyId, ResumeTable};

/// Default bound on live sessions (and on retired sessions remembered for resuming).
pub const DEFAULT_MAX_SESSIONS: usize = 4096;

counters! {
    /// Counters of this host's ESP sessions: part of the `esp` section of `stats`, `vxswitch_esp_*` metrics.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct EspCounters {
        /// Automatic keys that could not be used (e.g. an invalid public key).
        pub bad_keys: u64 = counter,
        /// Sessions now (one per peer host with keys).
        pub active_sessions: u64 = gauge,
        /// Sessions removed because their peer left.
        pub sessions_removed: u64 = counter,
        /// Sessions refused because the session table was full.
        pub session_limit: u64 = counter,
        /// Automatic sessions that continued the generations of an earlier one for the same keys.
        pub sessions_resumed: u64 = counter,
        /// Retired sessions forgotten because the resume table was full.
        pub resume_forgotten: u64 = counter,
        /// Blocks of manual sequence numbers persisted before use.
        pub seq_reservations: u64 = counter,
        /// Packets not sealed because the next sequence number was not yet persisted.
        pub seq_unreserved: u64 = counter,
        /// Packets not sealed because a manual SA used its last sequence number (new keys needed).
        pub seq_exhausted: u64 = counter,
        /// Manual SAs past 90 % of their sequence space (new keys needed soon).
        pub seq_near_exhaustion: u64 = gauge,
        /// Hellos exchanged with static peers.
        pub hellos: HelloCounters = nested,
        /// ESP packets accepted after a later-numbered one of the same SA: reordered between
        /// the peer's seal and this host (underlay paths, the peer's send threads), inside the
        /// replay window. Reordering deeper than the window shows as `drops.left_of_window`.
        pub reordered: u64 = counter,
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

/// Sequence numbers a manual SA asks to have persisted before it uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// The network of the SA.
    pub vni: Vni,
    /// The peer of the SA.
    pub peer: IpAddr,
    /// The outbound SPI.
    pub spi: u32,
    /// Digest of the outbound key ([`OutboundSa::key_id`]).
    pub key_id: u64,
    /// Persist this as the highest number that may have been used, then confirm.
    pub upto: u64,
}

/// One session for status output: (VNI, peer, outbound SPI, inbound SPI, (outbound, inbound) generations).
pub type SessionRow = (Vni, IpAddr, u32, u32, (u64, u64));

struct PeerTunnel {
    session: PeerSession,
    /// (public key, epoch) the automatic session was derived from; `None` for manual keys.
    derived_from: Option<PeerKeyId>,
    /// The 90 % warning was logged (manual keys).
    warned: bool,
    /// The exhaustion error was logged (manual keys).
    exhausted: bool,
}

/// The ESP sessions of this host.
pub struct EspTunnels {
    host: Option<HostKey>,
    local_epoch: u64,
    suite: Suite,
    config: SessionConfig,
    /// Encrypted networks (VNIs), sorted.
    networks: Vec<Vni>,
    peers: HashMap<(Vni, IpAddr), PeerTunnel>,
    manual: Vec<(Vni, IpAddr)>,
    max_sessions: usize,
    resume: ResumeTable,
    /// Drops of sessions that were replaced, so the totals never go backwards.
    retired_drops: DropCounters,
    counts: EspCounters,
    static_peers: HashMap<IpAddr, StaticPeer>,
    hello_out: VecDeque<(IpAddr, Vec<u8>)>,
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
            networks: Vec::new(),
            peers: HashMap::new(),
            manual: Vec::new(),
            max_sessions: DEFAULT_MAX_SESSIONS,
            resume: ResumeTable::new(DEFAULT_MAX_SESSIONS),
            retired_drops: DropCounters::default(),
            counts: EspCounters::default(),
            static_peers: HashMap::new(),
            hello_out: VecDeque::new(),
            hellos: HelloCounters::default(),
        }
    }

    /// Bounds the live sessions and the retired ones remembered to `n` each.
    pub fn with_max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = n.max(1);
        self.resume = ResumeTable::new(n);
        self
    }

    /// The encrypted networks are `vnis` (added to those already known).
    pub fn set_networks(&mut self, vnis: &[Vni]) {
        self.networks.extend_from_slice(vnis);
        self.networks.sort_unstable();
        self.networks.dedup();
    }

    /// Builder form of [`set_networks`](Self::set_networks).
    pub fn with_networks(mut self, vnis: &[Vni]) -> Self {
        self.set_networks(vnis);
        self
    }

    /// The encrypted networks (VNIs).
    pub fn networks(&self) -> &[Vni] {
        &self.networks
    }

    /// This host's public key (automatic mode).
    pub fn public_key(&self) -> Option<[u8; 32]> {
        self.host.as_ref().map(HostKey::public_key)
    }

    /// This host's start epoch.
    pub fn local_epoch(&self) -> u64 {
        self.local_epoch
    }

    /// Install manual SAs for `peer` in the encrypted network `vni`. An outbound SA made with
    /// [`OutboundSa::resume_after`] seals only what [`confirm_reservation`](Self::confirm_reservation) allowed.
    pub fn add_manual(&mut self, now: Instant, vni: Vni, peer: IpAddr, outbound: OutboundSa, inbound: InboundSa) {
        self.set_networks(&[vni]);
        let warn_at = outbound.last_sequence() / 10 * 9;
        let session = PeerSession::manual(outbound.with_packet_budget(warn_at), inbound, now);
        if let Some(old) = self.peers.insert((vni, peer), PeerTunnel { session, derived_from: None, warned: false, exhausted: false }) {
            self.retire(old);
        }
        if !self.manual.contains(&(vni, peer)) {
            self.manual.push((vni, peer));
        }
    }

    /// The peer at `peer` has this public key and epoch: derive (or keep) its session in every
    /// encrypted network (those with manual keys for it keep them).
    pub fn set_peer_key(&mut self, now: Instant, peer: IpAddr, public_key: [u8; 32], epoch: u64) {
        for i in 0..self.networks.len() {
            let vni = self.networks[i];
            self.set_network_peer_key(now, vni, peer, public_key, epoch);
        }
    }

    fn set_network_peer_key(&mut self, now: Instant, vni: Vni, peer: IpAddr, public_key: [u8; 32], epoch: u64) {
        let key = (vni, public_key, epoch);
        let id = (vni, peer);
        match self.peers.get(&id).map(|t| t.derived_from) {
            Some(Some(k)) if k == key => return, // same epochs: keep the session
            Some(None) => return,                // manual keys win over gossip
            _ => {}
        }
        if self.host.is_none() {
            return;
        }
        // One live session per peer key: another address claiming the same key and epoch takes
        // the session over (resumed), it never gets a second one from generation 0.
        let holder = self.peers.iter().find(|(a, t)| **a != id && t.derived_from == Some(key)).map(|(a, _)| *a);
        for old in [holder, Some(id)].into_iter().flatten() {
            if let Some(t) = self.peers.remove(&old) {
                self.retire(t);
            }
        }
        if self.peers.len() >= self.max_sessions {
            self.counts.session_limit += 1;
            tracing::warn!(%peer, %vni, max = self.max_sessions, "ESP session table full: no session for this peer");
            return;
        }
        let at = self.resume.take(key);
        let Some(host) = &self.host else { return };
        let session = SessionKeys::new(host, self.local_epoch, public_key, epoch, self.suite, true)
            .map(|keys| keys.for_network(vni.get()))
            .map_err(|_| EspError::BadKeyLength)
            .and_then(|keys| PeerSession::resume(keys, self.config.clone(), now, at));
        match session {
            Ok(session) => {
                if at != Default::default() {
                    self.counts.sessions_resumed += 1;
                }
                self.peers.insert(id, PeerTunnel { session, derived_from: Some(key), warned: false, exhausted: false });
            }
            Err(e) => {
                self.resume.retire(key, at);
                self.counts.bad_keys += 1;
                tracing::warn!(%peer, %vni, "cannot derive ESP keys: {e:?}");
            }
        }
    }

    /// The peer at `peer` left the encrypted network `vni`: drop its automatic session there
    /// (remembering where it left off). Manual and configured (static-key) peers keep theirs:
    /// they are part of the configuration.
    pub fn remove_peer(&mut self, vni: Vni, peer: IpAddr) {
        let id = (vni, peer);
        if self.static_peers.contains_key(&peer) || self.peers.get(&id).is_none_or(|t| t.derived_from.is_none()) {
            return;
        }
        if let Some(t) = self.peers.remove(&id) {
            self.counts.sessions_removed += 1;
            self.retire(t);
        }
    }

    fn retire(&mut self, old: PeerTunnel) {
        self.retired_drops.merge(old.session.drops());
        if let Some(key) = old.derived_from {
            self.resume.retire(key, old.session.resume_point());
        }
    }

    /// Whether there are keys for `peer` in the encrypted network `vni`.
    pub fn has_session(&self, vni: Vni, peer: IpAddr) -> bool {
        self.peers.contains_key(&(vni, peer))
    }

    /// Seal `buf[ESP_HEADROOM..ESP_HEADROOM + inner_len]` for `peer` in network `vni`; returns the ESP length.
    // hot path
    pub fn seal(
        &mut self,
        now: Instant,
        vni: Vni,
        peer: IpAddr,
        buf: &mut [u8],
        inner_len: usize,
        next_header: u8,
    ) -> Result<usize, TunnelError> {
        let t = self.peers.get_mut(&(vni, peer)).ok_or(TunnelError::NoSession)?;
        match t.session.seal(now, buf, inner_len, next_header) {
            Ok(len) => Ok(len),
            Err(e) => {
                match e {
                    EspError::NotReserved => self.counts.seq_unreserved += 1,
                    EspError::SequenceExhausted => {
                        self.counts.seq_exhausted += 1;
                        if !std::mem::replace(&mut t.exhausted, true) {
                            tracing::error!(%peer, %vni, spi = format_args!("{:#010x}", t.session.outbound_spi()),
                                "ESP SA used its last sequence number: nothing more is sent to this peer until new manual keys are configured");
                        }
                    }
                    _ => {}
                }
                Err(TunnelError::Esp(e))
            }
        }
    }

    /// Verify and decrypt an ESP packet from `peer` in place; returns the VNI of the network
    /// whose SA opened it (the SPI tells the network, see the module doc).
    // hot path
    pub fn open(&mut self, now: Instant, peer: IpAddr, packet: &mut [u8]) -> Result<(Vni, Opened), TunnelError> {
        let opened = self.open_session(now, peer, packet);
        if opened.as_ref().is_ok_and(|(_, o)| o.late) {
            self.counts.reordered += 1;
        }
        opened
    }

    // hot path
    fn open_session(&mut self, now: Instant, peer: IpAddr, packet: &mut [u8]) -> Result<(Vni, Opened), TunnelError> {
        let spi = match packet.get(..4) {
            Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            None => 0,
        };
        // The session holding this SPI; with one network that is simply the peer's session.
        let owner = self.networks.iter().copied().find(|vni| self.peers.get(&(*vni, peer)).is_some_and(|t| t.session.claims_spi(now, spi)));
        if let Some(vni) = owner {
            let t = self.peers.get_mut(&(vni, peer)).ok_or(TunnelError::NoSession)?;
            return t.session.open(now, packet).map(|o| (vni, o)).map_err(TunnelError::Esp);
        }
        // A later generation (or garbage): each session of the peer looks for the SPI among its
        // upcoming generations (by SPI, before any decryption, so a session that does not know
        // it leaves the packet untouched); only a verified ICV opens.
        let mut result = Err(TunnelError::NoSession);
        for i in 0..self.networks.len() {
            let vni = self.networks[i];
            let Some(t) = self.peers.get_mut(&(vni, peer)) else { continue };
            match t.session.open(now, packet) {
                Ok(o) => return Ok((vni, o)),
                Err(e) => result = Err(TunnelError::Esp(e)),
            }
        }
        result
    }

    /// Blocks of sequence numbers manual SAs need persisted now (also logs the 90 % warning).
    /// The driver writes each `upto` durably, then calls [`confirm_reservation`](Self::confirm_reservation).
    pub fn reservations_wanted(&mut self) -> Vec<Reservation> {
        let mut out = Vec::new();
        for &(vni, peer) in &self.manual {
            let Some(t) = self.peers.get_mut(&(vni, peer)) else { continue };
            if t.session.needs_rekey() && !std::mem::replace(&mut t.warned, true) {
                let sa = t.session.outbound();
                tracing::warn!(%peer, %vni, spi = format_args!("{:#010x}", sa.spi()), used = sa.packets(), last = sa.last_sequence(),
                    "ESP SA passed 90 % of its sequence numbers: configure new manual keys before it runs out");
            }
            let sa = t.session.outbound();
            if let Some(upto) = sa.reservation_wanted() {
                out.push(Reservation { vni, peer, spi: sa.spi(), key_id: sa.key_id(), upto });
            }
        }
        out
    }

    /// `r.upto` is persisted: the SA may use sequence numbers up to it.
    pub fn confirm_reservation(&mut self, r: &Reservation) {
        if let Some(t) = self.peers.get_mut(&(r.vni, r.peer)) {
            let sa = t.session.outbound_mut();
            if (sa.spi(), sa.key_id()) == (r.spi, r.key_id) {
                sa.confirm_reservation(r.upto);
                self.counts.seq_reservations += 1;
            }
        }
    }

    /// Rekey timers, overlap expiry and hello repeats.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.queue_due_hellos(now);
        for ((vni, peer), t) in &mut self.peers {
            if let Err(e) = t.session.handle_timeout(now) {
                tracing::warn!(%peer, %vni, "ESP rekey failed: {e:?}");
            }
        }
    }

    /// When [`EspTunnels::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers.values().filter_map(|t| t.session.poll_timeout()).chain(self.next_hello()).min()
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
        let near = self.manual.iter().filter(|p| self.peers.get(p).is_some_and(|t| t.session.needs_rekey())).count();
        EspCounters {
            active_sessions: self.peers.len() as u64,
            resume_forgotten: self.resume.forgotten,
            seq_near_exhaustion: near as u64,
            hellos: self.hellos,
            drops: self.drops(),
            ..self.counts
        }
    }

    /// Per-(network, peer) (VNI, peer, outbound SPI, inbound SPI, generations) for status output.
    pub fn sessions(&self) -> Vec<SessionRow> {
        let mut v: Vec<_> = self
            .peers
            .iter()
            .map(|((vni, p), t)| (*vni, *p, t.session.outbound_spi(), t.session.inbound_spi(), t.session.generations()))
            .collect();
        v.sort();
        v
    }

    /// The current outbound SA of `peer` in network `vni` (SPI, key digest, packets; for tests and status).
    pub fn outbound(&self, vni: Vni, peer: IpAddr) -> Option<&OutboundSa> {
        self.peers.get(&(vni, peer)).map(|t| t.session.outbound())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipsec::{ESP_HEADROOM, ESP_TAILROOM, NEXT_HEADER_ETHERNET};
    use std::net::Ipv4Addr;

    #[test]
    fn packets_accepted_out_of_order_are_counted_as_reordered() {
        let now = Instant::now();
        let (vni, peer) = (Vni::new(1042).unwrap(), IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)));
        let km = [9u8; 36];
        let mut tunnels = EspTunnels::new(None, 1, Suite::Aes256Gcm, SessionConfig::default());
        let out = OutboundSa::new(0x4242, Suite::Aes256Gcm, &km, false).unwrap();
        let inb = InboundSa::new(0x4343, Suite::Aes256Gcm, &km, false, 1024).unwrap();
        tunnels.add_manual(now, vni, peer, out, inb);
        // The peer's outbound SA: the SPI and key of this host's inbound one.
        let mut peer_out = OutboundSa::new(0x4343, Suite::Aes256Gcm, &km, false).unwrap();
        let sealed: Vec<Vec<u8>> = (0..3u8)
            .map(|i| {
                let mut buf = vec![i; ESP_HEADROOM + 60 + ESP_TAILROOM];
                let len = peer_out.seal(&mut buf, 60, NEXT_HEADER_ETHERNET).unwrap();
                buf.truncate(len);
                buf
            })
            .collect();
        for i in [0, 2, 1] {
            let (got_vni, o) = tunnels.open(now, peer, &mut sealed[i].clone()).unwrap();
            assert_eq!((got_vni, o.sequence), (vni, i as u64 + 1));
        }
        assert_eq!(tunnels.counters().reordered, 1, "sequence 2 arrived after 3");
        assert_eq!(tunnels.counters().drops.total(), 0);
        assert!(tunnels.open(now, peer, &mut sealed[1].clone()).is_err(), "and a second copy is a replay");
        assert_eq!(tunnels.counters().reordered, 1, "a refused packet is not counted as reordered");
    }
}
