//! The ESP side of the daemon: the ESP-in-UDP socket, the host key, manual and static-key peers.
//! The tunnels it sets up are handed to the node, whose switch owns them from then on.

use std::io;
use std::time::Instant;

use crate::config::Config;
use crate::dataplane::EspTunnels;
use crate::ipsec::{HostKey, SessionConfig};
use crate::sys::fastpath::udp::UnderlaySockets;
use crate::sys::SysError;

/// The ESP side of the daemon: the ESP-in-UDP socket and the host key.
pub struct EspDriver {
    /// The ESP-in-UDP socket (port 4500 on both ends).
    pub sockets: UnderlaySockets,
}

impl EspDriver {
    /// Set up ESP when a network is encrypted: load (or create) the host key for automatic keys,
    /// install manual SAs, bind the ESP-in-UDP socket. Returns the driver and the tunnels for the
    /// node (their public key is this host's when automatic keys are in use).
    pub fn start(config: &Config, epoch: u64, now: Instant) -> Result<Option<(Self, EspTunnels)>, SysError> {
        let Some(net) = config.networks.iter().find(|n| n.encrypted) else { return Ok(None) };
        let automatic = config.gossip.is_some() || net.peers.iter().any(|p| p.public_key.is_some());
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
        let mut tunnels = EspTunnels::new(host, epoch, config.esp.suite, session);
        for peer in &net.peers {
            if let Some(key) = peer.public_key {
                tunnels.add_static_peer(now, peer.address, key).map_err(|e| SysError::Os {
                    op: "add ESP peer",
                    source: io::Error::new(io::ErrorKind::InvalidInput, format!("peer {}: unusable public key ({e:?})", peer.address)),
                })?;
            }
            if let Some((out, inb)) = &peer.manual_keys {
                // Manual SAs follow `ip xfrm state` defaults: no ESN.
                let sas = out.outbound(false).and_then(|o| Ok((o, inb.inbound(false, config.esp.replay_window)?)));
                match sas {
                    Ok((o, i)) => tunnels.add_manual(now, peer.address, o, i),
                    Err(e) => {
                        return Err(SysError::Os {
                            op: "install manual ESP keys",
                            source: io::Error::new(io::ErrorKind::InvalidInput, format!("peer {}: {e:?}", peer.address)),
                        })
                    }
                }
            }
        }
        let sockets = UnderlaySockets::bind_fixed_source(config.underlay.address, config.esp.port)?;
        tracing::info!(vni = net.vni, port = config.esp.port, automatic, "ESP tunnels ready");
        Ok(Some((EspDriver { sockets }, tunnels)))
    }
}
