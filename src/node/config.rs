//! What a [`Node`](super::Node) is built from, and how the daemon's [`Config`] becomes that.
//!
//! The node takes plain values rather than the configuration file's [`Config`]: the switch core's
//! [`SwitchConfig`], the static [`ControlUpdate`]s, the ESP tunnels and the gossip set-up. That
//! keeps everything that touches files (host key, cluster key) in the driver, and lets the
//! simulator build nodes directly, with or without a configuration file.

use std::net::SocketAddr;
use std::time::SystemTime;

use super::record::{local_record, unix_secs};
use crate::config::{Config, Mode};
use crate::control::{ClusterKey, ControlUpdate, GossipConfig, MemberRecord};
use crate::dataplane::{EspTunnels, NetworkSpec, RoutedSpec, SwitchConfig, Tunnel};
use crate::wire::vxlan::Vni;

/// Everything one node is built from.
pub struct NodeConfig {
    /// The switch core: FDB limits and one network per TAP.
    pub switch: SwitchConfig,
    /// Updates applied to the switch at start (static peers, routes, FDB entries, bindings).
    pub static_updates: Vec<ControlUpdate>,
    /// The ESP tunnels of the encrypted network, when there is one.
    pub esp: Option<EspTunnels>,
    /// Gossip membership, when configured.
    pub gossip: Option<GossipSetup>,
}

/// How this node joins the cluster.
pub struct GossipSetup {
    /// Timers, addresses and limits.
    pub config: GossipConfig,
    /// The cluster key.
    pub key: ClusterKey,
    /// This host's record at start (bindings are added as containers are seen).
    pub record: MemberRecord,
    /// Seed of the membership's RNG; `None` seeds it from the operating system.
    pub seed: Option<u64>,
}

impl NodeConfig {
    /// A node that only switches: no gossip, no ESP, no static updates.
    pub fn switch_only(switch: SwitchConfig) -> Self {
        NodeConfig { switch, static_updates: Vec::new(), esp: None, gossip: None }
    }

    /// The node of a configuration file. `epoch` is this start's epoch and `wall` the wall clock
    /// now (the claim time of the configured subnets); `esp` the tunnels the driver set up (their
    /// public key goes into the record); `gossip` the cluster key and the address to advertise.
    pub fn from_config(
        config: &Config,
        epoch: u64,
        wall: SystemTime,
        esp: Option<EspTunnels>,
        gossip: Option<(ClusterKey, SocketAddr)>,
    ) -> Self {
        let public_key = esp.as_ref().and_then(EspTunnels::public_key);
        let gossip = config.gossip.as_ref().zip(gossip).map(|(g, (key, advertised))| GossipSetup {
            config: g.config.clone(),
            key,
            record: local_record(config, &g.name, advertised, epoch, public_key, unix_secs(wall)),
            seed: None,
        });
        NodeConfig { switch: switch_config(config), static_updates: static_updates(config), esp, gossip }
    }
}

/// The static updates of the switched networks (peers, routes, bindings), as a node takes them.
pub fn static_updates(config: &Config) -> Vec<ControlUpdate> {
    config.switched_networks().flat_map(|n| n.static_updates()).collect()
}

/// The switch core's view of the configuration.
pub fn switch_config(config: &Config) -> SwitchConfig {
    SwitchConfig {
        fdb_ageing: config.fdb_ageing,
        fdb_max_entries: config.fdb_max_entries,
        networks: config
            .switched_networks()
            .map(|n| NetworkSpec {
                vni: Vni::new(n.vni).expect("validated by config"),
                max_frame_len: n.max_frame_len(config.underlay.mtu),
                // Peers, routes and bindings arrive as ControlUpdates, like gossip's.
                peers: Vec::new(),
                unknown_arp: n.unknown_arp,
                routed: match (n.mode, &n.host_subnet) {
                    (Mode::Routed, Some(h)) => Some(RoutedSpec { subnet: h.subnet, gateway_ip: h.gateway, gateway_mac: n.gateway_mac }),
                    _ => None,
                },
                tunnel: if n.encrypted { Tunnel::Esp } else { Tunnel::Vxlan },
            })
            .collect(),
    }
}
