//! What a [`Node`](super::Node) is built from, and how the daemon's [`Config`] becomes that.
//!
//! The node takes plain values rather than the configuration file's [`Config`]: the switch core's
//! [`SwitchConfig`], the static [`ControlUpdate`]s, the ESP tunnels and the gossip set-up. That
//! keeps everything that touches files (host key, cluster key) in the driver, and lets the
//! simulator build nodes directly, with or without a configuration file.

use std::net::SocketAddr;
use std::time::SystemTime;

use super::lease::LeaseSetup;
use super::record::{local_record, unix_secs};
use super::state::Claims;
use crate::config::{Config, Mode};
use crate::control::{ClusterKey, ControlUpdate, Credentials, FloatingSpec, GossipConfig, MemberRecord, ServiceSpec};
use crate::dataplane::{EspTunnels, FloodLimit, NetworkSpec, PathSpec, RoutedSpec, RoutedSpec6, SwitchConfig, Tunnel, UNLEASED};

/// Everything one node is built from.
pub struct NodeConfig {
    /// The switch core: FDB limits and one network per TAP.
    pub switch: SwitchConfig,
    /// The per-source rate limit of flooded frames.
    pub flood: FloodLimit,
    /// Updates applied to the switch at start (static peers, routes, FDB entries, bindings).
    pub static_updates: Vec<ControlUpdate>,
    /// The ESP tunnels of the encrypted networks, when there are any (one set for all of them).
    pub esp: Option<EspTunnels>,
    /// Gossip membership, when configured.
    pub gossip: Option<GossipSetup>,
    /// Floating IPs this host may hold (they need gossip to move).
    pub floating: Vec<FloatingSpec>,
    /// Service VIPs defined on this host.
    pub services: Vec<ServiceSpec>,
    /// The routed networks whose subnet is leased from a cluster range (needs gossip).
    pub leases: Vec<LeaseSetup>,
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
    /// The record signing key and the hosts trusted so far.
    pub credentials: Credentials,
}

/// What the driver loaded for a configuration with `[gossip]`: the cluster key, the address to
/// advertise, and this host's state files' content (see [`super::state`]).
pub struct GossipJoin {
    /// The cluster key.
    pub key: ClusterKey,
    /// The gossip address other hosts reach this one at.
    pub advertised: SocketAddr,
    /// The signing key and trust store.
    pub credentials: Credentials,
    /// When this host first claimed its subnets.
    pub claims: Claims,
}

impl GossipJoin {
    /// A join for tests: a signing key derived from `n`, nothing trusted or claimed before.
    pub fn for_tests(key: ClusterKey, advertised: SocketAddr, n: u64) -> Self {
        GossipJoin { key, advertised, credentials: Credentials::for_tests(n, 0), claims: Claims::default() }
    }
}

impl NodeConfig {
    /// A node that only switches: no gossip, no ESP, no static updates.
    pub fn switch_only(switch: SwitchConfig) -> Self {
        NodeConfig {
            switch,
            flood: FloodLimit::default(),
            static_updates: Vec::new(),
            esp: None,
            gossip: None,
            floating: Vec::new(),
            services: Vec::new(),
            leases: Vec::new(),
        }
    }

    /// The node of a configuration file. `epoch` is this start's epoch and `wall` the wall clock
    /// now (the claim time of subnets not claimed before); `esp` the tunnels the driver set up
    /// (their public key goes into the record); `gossip` what the driver loaded to join.
    pub fn from_config(config: &Config, epoch: u64, wall: SystemTime, esp: Option<EspTunnels>, gossip: Option<GossipJoin>) -> Self {
        let public_key = esp.as_ref().and_then(EspTunnels::public_key);
        let mut leases = lease_setups(config);
        let gossip = config.gossip.as_ref().zip(gossip).map(|(g, join)| {
            let mut record = local_record(config, &g.name, join.advertised, epoch, public_key, unix_secs(wall));
            for net in &mut record.networks {
                for s in &mut net.subnets {
                    s.since = join.claims.since(net.vni.get(), s.net).unwrap_or(s.since);
                }
            }
            for l in &mut leases {
                l.kept = join.claims.leased(l.vni.get(), &l.range);
                if let Some(net) = record.networks.iter_mut().find(|n| n.vni == l.vni) {
                    // The lease replaces the IPv4 claim; a configured subnet6 stays.
                    let v6 = net.subnets.iter().filter(|s| matches!(s.net, ipnet::IpNet::V6(_))).copied();
                    net.subnets = l.kept.into_iter().chain(v6).collect();
                }
            }
            GossipSetup { config: g.config.clone(), key: join.key, record, seed: None, credentials: join.credentials }
        });
        if gossip.is_none() {
            leases.clear();
        }
        let (floating, services) = (config.floating.clone(), config.services.clone());
        NodeConfig {
            switch: switch_config(config),
            flood: config.flood,
            static_updates: static_updates(config),
            esp,
            gossip,
            floating,
            services,
            leases,
        }
    }
}

/// The static updates of the switched networks (peers, routes, bindings), as a node takes them.
pub fn static_updates(config: &Config) -> Vec<ControlUpdate> {
    config.switched_networks().flat_map(|n| n.static_updates()).collect()
}

/// The leased networks of `config` (routed and host-subnet), nothing kept yet.
pub fn lease_setups(config: &Config) -> Vec<LeaseSetup> {
    config.networks.iter().filter_map(|n| Some(LeaseSetup { vni: n.vni, range: n.lease?, kept: None })).collect()
}

/// The switch core's view of the configuration.
pub fn switch_config(config: &Config) -> SwitchConfig {
    SwitchConfig {
        fdb_ageing: config.fdb_ageing,
        fdb_max_entries: config.fdb_max_entries,
        networks: config
            .switched_networks()
            .map(|n| NetworkSpec {
                vni: n.vni,
                max_frame_len: n.max_frame_len(config.underlay.mtu),
                // Peers, routes and bindings arrive as ControlUpdates, like gossip's.
                peers: Vec::new(),
                unknown_arp: n.unknown_arp,
                routed: match (n.mode, &n.host_subnet) {
                    (Mode::Routed, h) => {
                        // Leased: a router from the start (it keeps gossip's routes); the subnet follows the lease.
                        let (subnet, gateway_ip) = h.as_ref().map_or((UNLEASED, UNLEASED.network()), |h| (h.subnet, h.gateway));
                        let v6 = n.host_subnet6.map(|h| RoutedSpec6 { subnet: h.subnet, gateway_ip: h.gateway });
                        Some(RoutedSpec { subnet, gateway_ip, gateway_mac: n.gateway_mac, v6 })
                    }
                    _ => None,
                },
                tunnel: if n.encrypted { Tunnel::Esp } else { Tunnel::Vxlan },
                path: PathSpec { underlay_mtu: config.underlay.mtu, encap: n.encap, mss_clamp: n.mss_clamp },
            })
            .collect(),
    }
}
