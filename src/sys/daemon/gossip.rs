//! The gossip driver: a UDP socket feeding the sans-IO [`Membership`], and this host's record
//! built from its configuration.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::config::Config;
use crate::control::{Binding, ClusterKey, ControlUpdate, GossipStats, Liveness, MemberRecord, Membership, NetworkClaim, SubnetClaim};
use crate::counters::counters;
use crate::sys::SysError;

counters! {
    /// The gossip counters of this host: the `gossip` section of `stats`, `vxswitch_gossip_*` metrics.
    #[derive(Debug, Clone, Default)]
    pub struct GossipCounters {
        /// Gossip members seen alive.
        pub members_alive: u64 = gauge,
        /// Gossip datagrams the socket refused to send.
        pub send_errors: u64 = counter,
        /// The membership's traffic and drops.
        pub membership: GossipStats = flatten,
    }
}

/// Most datagrams read per wakeup.
const BATCH: usize = 64;

/// A running gossip member.
pub struct GossipDriver {
    socket: UdpSocket,
    membership: Membership,
    buf: Vec<u8>,
    send_errors: u64,
}

/// This host's record as configured: underlay, subnets and static bindings per network.
pub fn local_record(config: &Config, name: &str, gossip: SocketAddr, epoch: u64, esp_public_key: Option<[u8; 32]>) -> MemberRecord {
    local_record_with(config, name, gossip, epoch, esp_public_key, &[])
}

/// As [`local_record`], plus the container bindings seen behind this host: (vni, ip, mac).
pub fn local_record_with(
    config: &Config,
    name: &str,
    gossip: SocketAddr,
    epoch: u64,
    esp_public_key: Option<[u8; 32]>,
    local: &[(u32, std::net::Ipv4Addr, crate::wire::ethernet::EthernetAddress)],
) -> MemberRecord {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut modes: Vec<String> = config.networks.iter().map(|n| n.mode.to_string()).collect();
    modes.sort();
    modes.dedup();
    MemberRecord {
        name: name.to_string(),
        gossip,
        underlay: config.underlay.address,
        vtep_mac: None,
        epoch,
        version: 0,
        modes,
        esp_public_key,
        networks: config
            .networks
            .iter()
            .map(|n| NetworkClaim {
                vni: n.vni,
                subnets: n.host_subnet.iter().map(|h| SubnetClaim { net: h.subnet, since }).collect(),
                bindings: local.iter().filter(|b| b.0 == n.vni).map(|&(_, ip, mac)| Binding { ip, mac, since }).collect(),
            })
            .collect(),
    }
}

impl GossipDriver {
    /// Bind the gossip socket and join through the configured seeds.
    /// `epoch` is this start's epoch, shared with the ESP key derivation.
    pub fn start(config: &Config, esp_public_key: Option<[u8; 32]>, epoch: u64, now: Instant) -> Result<Option<Self>, SysError> {
        let Some(g) = &config.gossip else { return Ok(None) };
        let key = ClusterKey::load(&g.key_file).map_err(|e| SysError::Os {
            op: "load cluster key",
            source: io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", g.key_file.display())),
        })?;
        let listen = g.config.listen;
        let socket = UdpSocket::bind(listen).map_err(|source| SysError::Os { op: "bind gossip socket", source })?;
        socket.set_nonblocking(true).map_err(|source| SysError::Os { op: "gossip socket nonblocking", source })?;
        let advertised = if listen.ip().is_unspecified() { SocketAddr::from((config.underlay.address, listen.port())) } else { listen };
        let record = local_record(config, &g.name, advertised, epoch, esp_public_key);
        let membership = Membership::new(g.config.clone(), record, &key, now)
            .map_err(|e| SysError::Os { op: "build gossip record", source: io::Error::new(io::ErrorKind::InvalidInput, e.to_string()) })?;
        tracing::info!(name = %g.name, %advertised, seeds = ?g.config.seeds, "gossip started");
        Ok(Some(GossipDriver { socket, membership, buf: vec![0u8; 65536], send_errors: 0 }))
    }

    /// The socket, for polling.
    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Read pending datagrams (bounded per call).
    pub fn on_readable(&mut self, now: Instant) {
        for _ in 0..BATCH {
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, from)) => self.membership.handle_datagram(now, from, &self.buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!("gossip recv: {e}");
                    break;
                }
            }
        }
    }

    /// Run timers, send what is due, and hand every resulting update to `apply`.
    pub fn poll(&mut self, now: Instant, mut apply: impl FnMut(ControlUpdate)) {
        if self.membership.poll_timeout().is_some_and(|t| t <= now) {
            self.membership.handle_timeout(now);
        }
        while let Some((to, bytes)) = self.membership.poll_transmit() {
            if self.socket.send_to(&bytes, to).is_err() {
                self.send_errors += 1;
            }
        }
        while let Some(update) = self.membership.poll_update() {
            tracing::debug!(?update, "control update");
            apply(update);
        }
    }

    /// Publish the container bindings now seen behind this host (bumps the record version).
    pub fn publish_bindings(
        &mut self,
        now: Instant,
        config: &Config,
        local: &[(u32, std::net::Ipv4Addr, crate::wire::ethernet::EthernetAddress)],
    ) {
        let current = self.membership.local().clone();
        let mut record = local_record_with(config, &current.name, current.gossip, current.epoch, current.esp_public_key, local);
        // Keep the original claim times so the older-claim-wins rule stays stable.
        for (new, old) in record.networks.iter_mut().zip(&current.networks) {
            for s in &mut new.subnets {
                if let Some(o) = old.subnets.iter().find(|o| o.net == s.net) {
                    s.since = o.since;
                }
            }
            for b in &mut new.bindings {
                if let Some(o) = old.bindings.iter().find(|o| o.ip == b.ip && o.mac == b.mac) {
                    b.since = o.since;
                }
            }
        }
        if let Err(e) = self.membership.set_local(now, record) {
            tracing::warn!("gossip record too large, bindings not published: {e}");
        }
    }

    /// Members seen alive now.
    pub fn alive_members(&self) -> usize {
        self.membership.members().iter().filter(|m| m.state == Liveness::Alive).count()
    }

    /// All gossip counters, for export.
    pub fn counters(&self) -> GossipCounters {
        GossipCounters { members_alive: self.alive_members() as u64, send_errors: self.send_errors, membership: self.membership.stats() }
    }

    /// When [`GossipDriver::poll`] next has timer work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.membership.poll_timeout()
    }

    /// The `peers` answer: members, their state and records, conflicts and counters.
    pub fn status(&self, now: Instant) -> serde_json::Value {
        let members: Vec<serde_json::Value> = self
            .membership
            .members()
            .into_iter()
            .map(|m| {
                json!({
                    "name": m.name,
                    "addr": m.addr.to_string(),
                    "state": match m.state { Liveness::Alive => "alive", Liveness::Suspect => "suspect", Liveness::Dead => "dead" },
                    "last_heard_ms": m.last_heard.map(|t| now.saturating_duration_since(t).as_millis() as u64),
                    "record": m.record.map(|r| json!({
                        "underlay": r.underlay.to_string(),
                        "epoch": r.epoch,
                        "version": r.version,
                        "modes": r.modes,
                        "esp_public_key": r.esp_public_key.map(hex::encode),
                        "networks": r.networks.iter().map(|n| json!({
                            "vni": n.vni,
                            "subnets": n.subnets.iter().map(|s| s.net.to_string()).collect::<Vec<_>>(),
                            "bindings": n.bindings.iter().map(|b| format!("{} {}", b.ip, b.mac)).collect::<Vec<_>>(),
                        })).collect::<Vec<_>>(),
                    })),
                })
            })
            .collect();
        let stats = self.membership.stats();
        json!({
            "local": self.membership.local().name,
            "members": members,
            "conflicts": self.membership.conflicts().iter().map(|c| format!("{c:?}")).collect::<Vec<_>>(),
            "tx_datagrams": stats.tx_datagrams,
            "tx_bytes": stats.tx_bytes,
            "send_errors": self.send_errors,
            "drops": crate::control::DropReason::ALL.iter().map(|r| (format!("{r:?}"), self.membership.dropped(*r))).collect::<std::collections::BTreeMap<_, _>>(),
        })
    }
}
