//! Static peers with configured public keys: their epochs arrive in hellos
//! ([`crate::ipsec::hello`]), and a hello only ever moves a peer's epoch forward.
//!
//! Why forward only: a hello is authentic but not fresh, so anyone who captured one can send it
//! again later. Start epochs grow with every start (wall clock, kept monotonic across restarts
//! and clock steps by the daemon's state file), so a hello with an epoch below the one in use
//! comes from an earlier life of the peer and is refused. Had it been adopted, the peer's genuine
//! hellos would have looked like a change back and the tunnel would stay dark until the peer
//! restarted. A host that has just started knows no epoch yet and may adopt a replayed old one
//! first; the genuine hello, whose epoch is larger, still replaces it.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::{EspTunnels, TunnelError};
use crate::counters::counters;
use crate::ipsec::hello::{self, Hello};
use crate::ipsec::EspError;

/// How often a hello is repeated to each static peer.
pub const HELLO_INTERVAL: Duration = Duration::from_secs(5);
/// At most one immediate answer per peer per this interval.
const HELLO_ANSWER_GAP: Duration = Duration::from_secs(1);

/// A peer whose public key is configured: its epoch arrives in hellos.
pub(super) struct StaticPeer {
    pub(super) public_key: [u8; 32],
    hello_key: [u8; 32],
    epoch: Option<u64>,
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
        /// Hellos with an epoch older than the one in use (replays of an earlier life).
        pub replayed: u64 = counter,
        /// Hellos that failed authentication or came from a peer without a configured key.
        pub rejected: u64 = counter,
    }
}

impl EspTunnels {
    /// A peer whose public key is configured: hellos tell each other the epochs.
    pub fn add_static_peer(&mut self, now: Instant, peer: IpAddr, public_key: [u8; 32]) -> Result<(), TunnelError> {
        let host = self.host.as_ref().ok_or(TunnelError::NoSession)?;
        let hello_key = host.hello_key(&public_key).map_err(|_| TunnelError::Esp(EspError::BadKeyLength))?;
        self.static_peers.insert(peer, StaticPeer { public_key, hello_key, epoch: None, next_hello: now, last_answer: None });
        Ok(())
    }

    /// A hello arrived from `from`: accept a newer epoch (deriving the session), and answer at
    /// once if the peer does not know our epoch yet.
    pub fn handle_hello(&mut self, now: Instant, from: IpAddr, payload: &[u8]) {
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
        if sp.epoch.is_some_and(|current| h.epoch < current) {
            self.hellos.replayed += 1;
            return;
        }
        let new_epoch = sp.epoch != Some(h.epoch);
        // A new epoch is always answered at once (the peer has just started and needs ours);
        // hellos for the current epoch that lack our epoch are answered at most once a second.
        let rate_ok = sp.last_answer.is_none_or(|t| now.saturating_duration_since(t) >= HELLO_ANSWER_GAP);
        if h.echo != local_epoch && (new_epoch || rate_ok) {
            sp.last_answer = Some(now);
            sp.next_hello = now;
        }
        if new_epoch {
            sp.epoch = Some(h.epoch);
            self.hellos.accepted += 1;
            let public_key = sp.public_key;
            self.set_peer_key(now, from, public_key, h.epoch);
        } else {
            self.hellos.current += 1;
        }
        self.queue_due_hellos(now);
    }

    pub(super) fn queue_due_hellos(&mut self, now: Instant) {
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
    pub fn poll_hello(&mut self) -> Option<(IpAddr, Vec<u8>)> {
        self.hello_out.pop_front()
    }

    pub(super) fn next_hello(&self) -> Option<Instant> {
        self.static_peers.values().map(|p| p.next_hello).min()
    }
}
