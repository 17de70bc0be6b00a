//! The ESP side of the daemon: the ESP-in-UDP socket, the host key, manual and static-key peers,
//! and the state file that keeps manual sequence numbers and start epochs moving forward across
//! restarts. The tunnels it sets up are handed to the node, whose switch owns them from then on;
//! the daemon loop hands their sequence reservations back here ([`EspDriver::serve_reservations`]).

use std::io;
use std::time::{Duration, Instant};

use super::esp_state::StateFile;
use crate::config::Config;
use crate::dataplane::EspTunnels;
use crate::ipsec::{HostKey, SessionConfig};
use crate::sys::fastpath::udp::UnderlaySockets;
use crate::sys::SysError;
use crate::wire::vxlan::Vni;

/// After a failed state write, wait this long before trying again (sealing waits meanwhile).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The ESP side of the daemon: the ESP-in-UDP socket and the state file.
pub struct EspDriver {
    /// The ESP-in-UDP socket (port 4500 on both ends).
    pub sockets: UnderlaySockets,
    state: StateFile,
    retry_at: Option<Instant>,
}

impl EspDriver {
    /// Set up ESP when networks are encrypted: take this start's epoch (`candidate`, or above the
    /// last one in the state file), load (or create) the host key for automatic keys, install
    /// every encrypted network's manual SAs continuing after their persisted marks, bind the
    /// ESP-in-UDP socket (one for all encrypted networks: the SPI tells them apart). Returns the
    /// epoch, and the driver with the tunnels for the node when a network is encrypted.
    pub fn start(config: &Config, candidate: u64, now: Instant) -> Result<(u64, Option<(Self, EspTunnels)>), SysError> {
        let encrypted: Vec<_> = config.networks.iter().filter(|n| n.encrypted).collect();
        if encrypted.is_empty() {
            return Ok((candidate, None));
        }
        let mut state = StateFile::open(&config.esp.state_file)?;
        let epoch = state.state.next_epoch(candidate);
        state.persist()?;
        let automatic = config.gossip.is_some() || encrypted.iter().flat_map(|n| &n.peers).any(|p| p.public_key.is_some());
        let host = if automatic {
            let key = HostKey::load_or_create(&config.esp.key_file).map_err(|e| SysError::Os {
                op: "load ESP host key",
                source: io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", config.esp.key_file.display())),
            })?;
            Some(key)
        } else {
            None
        };
        let session = SessionConfig { window: config.esp.replay_window, rekey_after: config.esp.rekey_after, ..SessionConfig::default() };
        let vnis: Vec<Vni> = encrypted.iter().map(|n| n.vni).collect();
        let mut tunnels = EspTunnels::new(host, epoch, config.esp.suite, session).with_networks(&vnis);
        for (net, peer) in encrypted.iter().flat_map(|n| n.peers.iter().map(move |p| (*n, p))) {
            if let Some(key) = peer.public_key {
                tunnels.add_static_peer(now, peer.address, key).map_err(|e| SysError::Os {
                    op: "add ESP peer",
                    source: io::Error::new(io::ErrorKind::InvalidInput, format!("peer {}: unusable public key ({e:?})", peer.address)),
                })?;
            }
            if let Some((out, inb)) = &peer.manual_keys {
                // Manual SAs follow `ip xfrm state` defaults: no ESN.
                let sas = out.outbound(false).and_then(|o| Ok((o, inb.inbound(false, config.esp.replay_window)?)));
                let (o, i) = sas.map_err(|e| SysError::Os {
                    op: "install manual ESP keys",
                    source: io::Error::new(io::ErrorKind::InvalidInput, format!("peer {}: {e:?}", peer.address)),
                })?;
                let mark = state.state.mark(o.spi(), o.key_id());
                if mark >= o.last_sequence() {
                    tracing::error!(peer = %peer.address, vni = %net.vni, spi = format_args!("{:#010x}", o.spi()),
                        "manual ESP SA has used every sequence number: configure new keys for this peer");
                }
                tracing::info!(peer = %peer.address, vni = %net.vni, spi = format_args!("{:#010x}", o.spi()), after = mark, "manual ESP SA continues");
                tunnels.add_manual(now, net.vni, peer.address, o.resume_after(mark), i);
            }
        }
        let sockets = UnderlaySockets::bind_fixed_source(config.underlay.address, config.esp.port)?;
        let mut driver = EspDriver { sockets, state, retry_at: None };
        // Reserve the first blocks before the first packet, so nothing waits for it.
        driver.serve_reservations(&mut tunnels, now)?;
        tracing::info!(vnis = ?vnis, port = config.esp.port, automatic, epoch, state = %config.esp.state_file.display(), "ESP tunnels ready");
        Ok((epoch, Some((driver, tunnels))))
    }

    /// Persist the sequence numbers the manual SAs asked for, then let them use them. A failed
    /// write is logged and retried a second later; the SAs seal nothing past their last
    /// confirmed number meanwhile (counted as `esp_seq_unreserved`).
    pub fn serve_reservations(&mut self, tunnels: &mut EspTunnels, now: Instant) -> Result<(), SysError> {
        if self.retry_at.is_some_and(|t| now < t) {
            return Ok(());
        }
        let wanted = tunnels.reservations_wanted();
        if wanted.is_empty() {
            return Ok(());
        }
        for r in &wanted {
            self.state.state.reserve(r.spi, r.key_id, r.upto);
        }
        if let Err(e) = self.state.persist() {
            self.retry_at = Some(now + RETRY_AFTER);
            return Err(e);
        }
        self.retry_at = None;
        for r in &wanted {
            tunnels.confirm_reservation(r);
        }
        Ok(())
    }
}
