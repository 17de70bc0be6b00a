//! The gossip socket of the daemon: datagrams in and out for the node's membership, the cluster
//! key from its file, and the `peers` answer. The membership itself and this host's record live
//! in the node ([`crate::node`]).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use serde_json::json;

use crate::config::Config;
use crate::control::{ClusterKey, GossipStats, Liveness, Membership};
use crate::counters::counters;
use crate::node::lease::LeaseStats;
use crate::node::Node;
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
        /// What the subnet leases did (networks with `cluster_cidr`).
        pub leases: LeaseStats = nested,
    }
}

/// Most datagrams read per wakeup.
const BATCH: usize = 64;

/// The gossip socket.
pub struct GossipSocket {
    socket: UdpSocket,
    buf: Vec<u8>,
    send_errors: u64,
}

/// The gossip socket with what the node needs to join: the cluster key and the advertised address.
pub type GossipStart = (GossipSocket, ClusterKey, SocketAddr);

impl GossipSocket {
    /// Load the cluster key and bind the gossip socket; `None` when gossip is not configured.
    pub fn bind(config: &Config) -> Result<Option<GossipStart>, SysError> {
        let Some(g) = &config.gossip else { return Ok(None) };
        let key = ClusterKey::load(&g.key_file).map_err(|e| SysError::Os {
            op: "load cluster key",
            source: io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", g.key_file.display())),
        })?;
        let listen = g.config.listen;
        let socket = UdpSocket::bind(listen).map_err(|source| SysError::Os { op: "bind gossip socket", source })?;
        socket.set_nonblocking(true).map_err(|source| SysError::Os { op: "gossip socket nonblocking", source })?;
        let advertised = if listen.ip().is_unspecified() { SocketAddr::from((config.underlay.address, listen.port())) } else { listen };
        tracing::info!(name = %g.name, %advertised, seeds = ?g.config.seeds, "gossip started");
        Ok(Some((GossipSocket { socket, buf: vec![0u8; 65536], send_errors: 0 }, key, advertised)))
    }

    /// The socket, for polling.
    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Read pending datagrams into the node (bounded per call).
    pub fn receive(&mut self, now: Instant, node: &mut Node) {
        for _ in 0..BATCH {
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, from)) => node.handle_gossip(now, from, &self.buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!("gossip recv: {e}");
                    break;
                }
            }
        }
    }

    /// Send everything the node has for the cluster.
    pub fn send_pending(&mut self, node: &mut Node) {
        while let Some((to, bytes)) = node.poll_gossip() {
            if self.socket.send_to(&bytes, to).is_err() {
                self.send_errors += 1;
            }
        }
    }

    /// Datagrams the kernel refused to send.
    pub fn send_errors(&self) -> u64 {
        self.send_errors
    }
}

/// Members seen alive now.
pub fn alive_members(membership: &Membership) -> usize {
    membership.members().iter().filter(|m| m.state == Liveness::Alive).count()
}

/// All gossip counters of this host, for export.
pub fn counters(membership: &Membership, send_errors: u64, leases: LeaseStats) -> GossipCounters {
    GossipCounters { members_alive: alive_members(membership) as u64, send_errors, membership: membership.stats(), leases }
}

/// The `peers` answer: members, their state and records, conflicts and counters.
pub fn peers_status(membership: &Membership, send_errors: u64, now: Instant) -> serde_json::Value {
    let members: Vec<serde_json::Value> = membership
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
    let stats = membership.stats();
    json!({
        "local": membership.local().name,
        // This host's own claims, leased subnets included, with their claim times.
        "local_subnets": membership.local().networks.iter().map(|n| json!({
            "vni": n.vni,
            "subnets": n.subnets.iter().map(|s| json!({ "subnet": s.net.to_string(), "since": s.since })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "members": members,
        "conflicts": membership.conflicts().iter().map(|c| format!("{c:?}")).collect::<Vec<_>>(),
        "tx_datagrams": stats.tx_datagrams,
        "tx_bytes": stats.tx_bytes,
        "send_errors": send_errors,
        "drops": crate::control::DropReason::ALL.iter().map(|r| (format!("{r:?}"), membership.dropped(*r))).collect::<std::collections::BTreeMap<_, _>>(),
    })
}
