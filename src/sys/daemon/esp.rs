//! The ESP side of the daemon: the ESP-in-UDP socket, the host key, manual and static-key peers.

use std::io;
use std::time::Instant;

use crate::config::Config;
use crate::dataplane::{EspTunnels, Switch};
use crate::ipsec::{HostKey, SessionConfig};
use crate::sys::fastpath::udp::UnderlaySockets;
use crate::sys::SysError;

/// The ESP side of the daemon: the ESP-in-UDP socket and the host key.
pub struct EspDriver {
    /// The ESP-in-UDP socket (port 4500 on both ends).
    pub sockets: UnderlaySockets,
    /// This host's public key when automatic keys are in use.
    pub public_key: Option<[u8; 32]>,
}

impl EspDriver {
    /// Set up ESP when a network is encrypted: load (or create) the host key for automatic keys,
    /// install manual SAs, bind the ESP-in-UDP socket.
    pub fn start(config: &Config, epoch: u64, switch: &mut Switch) -> Result<Option<Self>, SysError> {
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
        let public_key = host.as_ref().map(HostKey::public_key);
        let session = SessionConfig { window: config.esp.replay_window, rekey_after: config.esp.rekey_after, ..SessionConfig::default() };
        switch.set_esp(EspTunnels::new(host, epoch, config.esp.suite, session));
        let now = Instant::now();
        for peer in &net.peers {
            if let Some(key) = peer.public_key {
                switch.esp_mut().expect("set above").add_static_peer(now, peer.address, key).map_err(|e| SysError::Os {
                    op: "add ESP peer",
                    source: io::Error::new(io::ErrorKind::InvalidInput, format!("peer {}: unusable public key ({e:?})", peer.address)),
                })?;
            }
            if let Some((out, inb)) = &peer.manual_keys {
                // Manual SAs follow `ip xfrm state` defaults: no ESN.
                let sas = out.outbound(false).and_then(|o| Ok((o, inb.inbound(false, config.esp.replay_window)?)));
                match sas {
                    Ok((o, i)) => switch.esp_mut().expect("set above").add_manual(now, peer.address, o, i),
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
        Ok(Some(EspDriver { sockets, public_key }))
    }
}
