//! Gossip clusters on the simulator: `n` example hosts (see [`crate::control::fixtures`]) that
//! find each other through two seeds, and what their tables should be.
//!
//! Each host is a whole node whose switch runs [`SIM_VNI`] and whose record is
//! [`host_record`]`(i, epoch)`; gossip datagrams take 1 ms plus up to 0.5 ms of seeded jitter.

use std::time::Duration;

use super::{host_addr, host_ip, host_record, Sim, View, SIM_VNI};
use crate::arp::UnknownArp;
use crate::control::{ClusterKey, ControlUpdate, Credentials, GossipConfig, PeerInfo};
use crate::dataplane::{NetworkSpec, SwitchConfig};
use crate::node::{unix_secs, GossipSetup, NodeConfig};

/// The cluster key of example clusters.
pub const CLUSTER_KEY: [u8; 32] = [0x5a; 32];

/// The epoch every example host starts with.
pub const FIRST_EPOCH: u64 = 1000;

impl Sim {
    /// `n` example hosts gossiping with `cfg` (seeds: hosts 0 and 1), all started at time zero.
    pub fn gossip(n: usize, mut cfg: GossipConfig, seed: u64) -> Sim {
        let mut sim = Sim::empty(seed);
        sim.latency = Duration::from_millis(1);
        sim.jitter = Duration::from_micros(500);
        cfg.seeds = (0..n.min(2)).map(host_addr).collect();
        sim.gossip_config = Some(cfg);
        for i in 0..n {
            let node = sim.example_node(i, FIRST_EPOCH);
            sim.add_host(host_ip(i).into(), host_addr(i), node);
            sim.hosts[i].epoch = FIRST_EPOCH;
        }
        sim
    }

    /// (Re)starts example host `i` with start epoch `epoch` and an empty view.
    pub fn start_host(&mut self, i: usize, epoch: u64) {
        let node = self.example_node(i, epoch);
        self.restart(i, node);
        self.hosts[i].epoch = epoch;
    }

    fn example_node(&self, i: usize, epoch: u64) -> NodeConfig {
        let mut cfg = self.gossip_config.clone().expect("a gossip cluster");
        cfg.listen = host_addr(i);
        let seed = self.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ epoch.rotate_left(17);
        let network = NetworkSpec {
            vni: SIM_VNI,
            max_frame_len: 1464,
            peers: Vec::new(),
            unknown_arp: UnknownArp::Flood,
            routed: None,
            tunnel: crate::dataplane::Tunnel::Vxlan,
            path: Default::default(),
        };
        let switch = SwitchConfig { fdb_ageing: Duration::from_secs(300), fdb_max_entries: 1024, networks: vec![network] };
        let credentials = Credentials::for_tests(i as u64, unix_secs(self.wall_clock()));
        let gossip = GossipSetup {
            config: cfg,
            key: ClusterKey::from_bytes(CLUSTER_KEY),
            record: host_record(i, epoch),
            seed: Some(seed),
            credentials,
        };
        NodeConfig { gossip: Some(gossip), ..NodeConfig::switch_only(switch) }
    }

    /// Starts a host that announces `record` signed with `credentials` (its gossip and underlay
    /// addresses are the record's): a misbehaving member in scenarios. Returns its index.
    pub fn add_gossip_host(&mut self, record: crate::control::MemberRecord, credentials: Credentials) -> usize {
        let (underlay, gossip, epoch) = (record.underlay, record.gossip, record.epoch);
        let cfg = self.gossip_host(self.hosts.len(), record, credentials);
        let j = self.add_host(underlay, gossip, cfg);
        self.hosts[j].epoch = epoch;
        j
    }

    /// The node of host `i` announcing `record` signed with `credentials` (for [`Sim::restart`]).
    pub fn gossip_host(&self, i: usize, record: crate::control::MemberRecord, credentials: Credentials) -> NodeConfig {
        let mut cfg = self.example_node(i, record.epoch);
        if let Some(g) = cfg.gossip.as_mut() {
            g.config.listen = record.gossip;
            g.record = record;
            g.credentials = credentials;
        }
        cfg
    }

    /// The tables host `i` should have, given which example hosts are running now.
    pub fn expected_view(&self, i: usize) -> View {
        let mut v = View::default();
        for (j, h) in self.hosts.iter().enumerate() {
            if j == i || h.node.is_none() {
                continue;
            }
            let r = host_record(j, h.epoch);
            v.apply(&ControlUpdate::PeerUp { vni: SIM_VNI, peer: PeerInfo { underlay: r.underlay, vtep_mac: r.vtep_mac } });
            for n in &r.networks {
                for s in &n.subnets {
                    v.routes.insert((n.vni, s.net), r.underlay);
                }
                for b in &n.bindings {
                    v.arp.insert((n.vni, b.ip), b.mac);
                }
            }
            if let Some(k) = r.esp_public_key {
                v.esp.insert(r.underlay, (k, r.epoch));
            }
        }
        v
    }

    /// Whether every running host has exactly its expected tables.
    pub fn converged(&self) -> bool {
        self.hosts.iter().enumerate().all(|(i, h)| h.node.is_none() || h.view.tables() == self.expected_view(i))
    }

    /// Total gossip bytes sent by running hosts.
    pub fn tx_bytes(&self) -> u64 {
        self.running_memberships().map(|m| m.stats().tx_bytes).sum()
    }

    /// Largest gossip datagram any running host sent.
    pub fn max_datagram(&self) -> usize {
        self.running_memberships().map(|m| m.stats().max_datagram as usize).max().unwrap_or(0)
    }

    fn running_memberships(&self) -> impl Iterator<Item = &crate::control::Membership> {
        self.hosts.iter().filter_map(|h| h.node.as_ref()?.membership())
    }
}
