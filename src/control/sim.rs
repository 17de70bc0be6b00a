//! An in-process gossip network on virtual time, for scenarios and measurements.
//!
//! Hosts are [`Membership`] instances; the network delivers their datagrams after a fixed
//! latency plus seeded jitter, drops a seeded fraction (`loss`), honours a partition (hosts only
//! reach hosts of the same group), and can capture or inject datagrams. Each host's applied
//! [`ControlUpdate`]s are folded into a [`View`] so scenarios can compare tables. Everything is
//! deterministic for a given seed, and every run is bounded by a step budget.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use rand_foca::rngs::SmallRng;
use rand_foca::{Rng, SeedableRng};

use super::config::GossipConfig;
use super::membership::Membership;
use super::record::{Binding, MemberRecord, NetworkClaim, SubnetClaim};
use super::seal::ClusterKey;
use super::update::ControlUpdate;
use crate::wire::ethernet::EthernetAddress;

/// Condition checks in [`SimNet::run_until_cond`] happen this often (simulated).
pub const CHECK_EVERY: Duration = Duration::from_millis(10);

/// The network all simulated hosts are on.
pub const SIM_VNI: u32 = 100;

/// The tables one host has built from the updates it received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// (vni, underlay) -> vtep mac.
    pub peers: BTreeMap<(u32, Ipv4Addr), Option<EthernetAddress>>,
    /// (vni, subnet) -> via.
    pub routes: BTreeMap<(u32, Ipv4Net), Ipv4Addr>,
    /// (vni, ip) -> mac.
    pub arp: BTreeMap<(u32, Ipv4Addr), EthernetAddress>,
    /// underlay -> (key, epoch).
    pub esp: BTreeMap<Ipv4Addr, ([u8; 32], u64)>,
    /// How many PeerDown updates arrived.
    pub peer_downs: u64,
}

impl View {
    /// Folds one update in.
    pub fn apply(&mut self, u: &ControlUpdate) {
        match u {
            ControlUpdate::PeerUp { vni, peer } => {
                self.peers.insert((*vni, peer.underlay), peer.vtep_mac);
            }
            ControlUpdate::PeerDown { vni, underlay } => {
                self.peer_downs += 1;
                self.peers.remove(&(*vni, *underlay));
                let alive = self.peers.keys().any(|(_, u)| u == underlay);
                if !alive {
                    self.esp.remove(underlay);
                }
            }
            ControlUpdate::RouteAdd { vni, subnet, via } => {
                self.routes.insert((*vni, *subnet), *via);
            }
            ControlUpdate::RouteRemove { vni, subnet } => {
                self.routes.remove(&(*vni, *subnet));
            }
            ControlUpdate::ArpBinding { vni, ip, mac } => {
                self.arp.insert((*vni, *ip), *mac);
            }
            ControlUpdate::ArpUnbind { vni, ip } => {
                self.arp.remove(&(*vni, *ip));
            }
            ControlUpdate::EspKey { underlay, public_key, epoch } => {
                self.esp.insert(*underlay, (*public_key, *epoch));
            }
            ControlUpdate::StaticFdb { .. } | ControlUpdate::StaticFdbRemove { .. } => {}
        }
    }

    /// The view without the counters, for comparisons.
    pub fn tables(&self) -> View {
        View { peer_downs: 0, ..self.clone() }
    }
}

/// (arrival, sequence, to, from, bytes).
type InFlight = (Instant, u64, SocketAddr, SocketAddr, Vec<u8>);

/// One simulated host.
pub struct SimHost {
    /// Running membership, `None` while killed.
    pub m: Option<Membership>,
    /// Gossip address.
    pub addr: SocketAddr,
    /// Current start epoch.
    pub epoch: u64,
    /// Tables built from updates.
    pub view: View,
}

/// The simulated network.
pub struct SimNet {
    /// Simulated clock.
    pub now: Instant,
    /// Start of the simulation.
    pub start: Instant,
    /// Hosts, by index.
    pub hosts: Vec<SimHost>,
    /// Fraction of datagrams dropped.
    pub loss: f64,
    /// Group of each host; datagrams only cross within a group.
    pub partition: Option<Vec<u8>>,
    /// One-way latency.
    pub latency: Duration,
    /// When set, every delivered datagram is copied here.
    pub capture: Option<Vec<(SocketAddr, SocketAddr, Vec<u8>)>>,
    cfg: GossipConfig,
    key: ClusterKey,
    rng: SmallRng,
    seed: u64,
    flight: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    /// Events processed so far (bounded by the step budget of each run).
    pub steps: u64,
}

/// Gossip address of host `i`.
pub fn host_addr(i: usize) -> SocketAddr {
    SocketAddr::from((host_ip(i), 4790))
}

/// Underlay address of host `i`.
pub fn host_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, (i / 250) as u8, (i % 250) as u8 + 1)
}

/// The record simulated host `i` announces: one /24 and one container on [`SIM_VNI`].
pub fn host_record(i: usize, epoch: u64) -> MemberRecord {
    let ip = Ipv4Addr::new(198, 19, i as u8, 10);
    MemberRecord {
        name: format!("h{i:03}"),
        gossip: host_addr(i),
        underlay: host_ip(i),
        vtep_mac: Some(EthernetAddress([2, 0, 0, 0, (i >> 8) as u8, i as u8])),
        epoch,
        version: 0,
        modes: vec!["vxlan".into(), "esp".into()],
        esp_public_key: Some([i as u8; 32]),
        networks: vec![NetworkClaim {
            vni: SIM_VNI,
            subnets: vec![SubnetClaim { net: Ipv4Net::new(Ipv4Addr::new(198, 19, i as u8, 0), 24).unwrap_or_default(), since: epoch }],
            bindings: vec![Binding { ip, mac: EthernetAddress([2, 1, 0, 0, (i >> 8) as u8, i as u8]), since: epoch }],
        }],
    }
}

impl SimNet {
    /// `n` hosts with `cfg` (seeds: hosts 0 and 1), all started at time zero.
    pub fn new(n: usize, mut cfg: GossipConfig, seed: u64) -> Self {
        let start = Instant::now();
        cfg.seeds = (0..n.min(2)).map(host_addr).collect();
        let key = ClusterKey::from_bytes([0x5a; 32]);
        let mut net = SimNet {
            now: start,
            start,
            hosts: Vec::new(),
            loss: 0.0,
            partition: None,
            latency: Duration::from_millis(1),
            capture: None,
            cfg,
            key,
            rng: SmallRng::seed_from_u64(seed),
            seed,
            flight: BinaryHeap::new(),
            seq: 0,
            steps: 0,
        };
        for i in 0..n {
            net.hosts.push(SimHost { m: None, addr: host_addr(i), epoch: 0, view: View::default() });
            net.start_host(i, 1000);
        }
        net
    }

    /// Seconds since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// (Re)starts host `i` with start epoch `epoch` and an empty view.
    pub fn start_host(&mut self, i: usize, epoch: u64) {
        let mut cfg = self.cfg.clone();
        cfg.listen = host_addr(i);
        let seed = self.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ epoch.rotate_left(17);
        let m = Membership::with_seed(cfg, host_record(i, epoch), &self.key, self.now, seed).unwrap_or_else(|e| panic!("host {i}: {e}"));
        let h = &mut self.hosts[i];
        h.m = Some(m);
        h.epoch = epoch;
        h.view = View::default();
        self.drain(i);
    }

    /// Starts host `i` with its own record replaced by `record`.
    pub fn set_record(&mut self, i: usize, record: MemberRecord) {
        let now = self.now;
        if let Some(m) = self.hosts[i].m.as_mut() {
            m.set_local(now, record).unwrap_or_else(|e| panic!("host {i}: {e}"));
        }
        self.drain(i);
    }

    /// Stops host `i` (its datagrams in flight still arrive; nothing reaches it).
    pub fn kill(&mut self, i: usize) {
        self.hosts[i].m = None;
    }

    /// Queues `bytes` from `from` to `to` as if sent now.
    pub fn inject(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        self.seq += 1;
        self.flight.push(Reverse((self.now + self.latency, self.seq, to, from, bytes)));
    }

    fn index_of(&self, addr: SocketAddr) -> Option<usize> {
        self.hosts.iter().position(|h| h.addr == addr)
    }

    fn drain(&mut self, i: usize) {
        let h = &mut self.hosts[i];
        let from = h.addr;
        let Some(m) = h.m.as_mut() else { return };
        let mut out = Vec::new();
        while let Some(t) = m.poll_transmit() {
            out.push(t);
        }
        while let Some(u) = m.poll_update() {
            h.view.apply(&u);
        }
        for (to, bytes) in out {
            if self.loss > 0.0 && (self.rng.next_u64() as f64 / u64::MAX as f64) < self.loss {
                continue;
            }
            if let (Some(p), Some(j)) = (&self.partition, self.index_of(to)) {
                if p[i] != p[j] {
                    continue;
                }
            }
            let jitter = Duration::from_micros(self.rng.next_u64() % 500);
            self.seq += 1;
            self.flight.push(Reverse((self.now + self.latency + jitter, self.seq, to, from, bytes)));
        }
    }

    /// Runs until `deadline` (simulated). Panics when the step budget is exhausted.
    pub fn run_until(&mut self, deadline: Instant) {
        self.run_while(deadline, |_| true);
    }

    /// Runs for `d` simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let deadline = self.now + d;
        self.run_until(deadline);
    }

    /// Runs until `done` holds (checked after every event) or `deadline`; returns whether `done`
    /// held.
    pub fn run_until_cond(&mut self, deadline: Instant, mut done: impl FnMut(&SimNet) -> bool) -> bool {
        // Checked every 10 ms of simulated time (checks can cost O(hosts^2)).
        let mut met = done(self);
        let mut next_check = self.now + CHECK_EVERY;
        if !met {
            self.run_while(deadline, |net| {
                if net.now >= next_check {
                    next_check = net.now + CHECK_EVERY;
                    met = done(net);
                }
                !met
            });
            met = met || done(self);
        }
        met
    }

    fn run_while(&mut self, deadline: Instant, mut go_on: impl FnMut(&SimNet) -> bool) {
        let budget = self.steps + 50_000_000;
        loop {
            let next_timer =
                self.hosts.iter().enumerate().filter_map(|(i, h)| h.m.as_ref().and_then(|m| m.poll_timeout()).map(|t| (t, i))).min();
            let next_packet = self.flight.peek().map(|Reverse(p)| p.0);
            let t = match (next_timer.map(|(t, _)| t), next_packet) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if t > deadline {
                self.now = self.now.max(deadline);
                break;
            }
            self.steps += 1;
            assert!(self.steps < budget, "step budget exhausted at {:?}", self.elapsed());
            self.now = self.now.max(t);
            if next_packet == Some(t) {
                let Some(Reverse((_, _, to, from, bytes))) = self.flight.pop() else { break };
                if let Some(j) = self.index_of(to) {
                    if let Some(cap) = self.capture.as_mut() {
                        cap.push((from, to, bytes.clone()));
                    }
                    let now = self.now;
                    if let Some(m) = self.hosts[j].m.as_mut() {
                        m.handle_datagram(now, from, &bytes);
                        self.drain(j);
                    }
                }
            } else if let Some((_, i)) = next_timer {
                let now = self.now;
                if let Some(m) = self.hosts[i].m.as_mut() {
                    m.handle_timeout(now);
                }
                self.drain(i);
            }
            if !go_on(self) {
                return;
            }
        }
        self.now = self.now.max(deadline);
    }

    /// The tables host `i` should have, given which hosts are running now.
    pub fn expected_view(&self, i: usize) -> View {
        let mut v = View::default();
        for (j, h) in self.hosts.iter().enumerate() {
            if j == i || h.m.is_none() {
                continue;
            }
            let r = host_record(j, h.epoch);
            v.apply(&ControlUpdate::PeerUp { vni: SIM_VNI, peer: super::update::PeerInfo { underlay: r.underlay, vtep_mac: r.vtep_mac } });
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
        self.hosts.iter().enumerate().all(|(i, h)| h.m.is_none() || h.view.tables() == self.expected_view(i))
    }

    /// Total gossip bytes sent by running hosts.
    pub fn tx_bytes(&self) -> u64 {
        self.hosts.iter().filter_map(|h| h.m.as_ref()).map(|m| m.stats().tx_bytes).sum()
    }

    /// Largest datagram any running host sent.
    pub fn max_datagram(&self) -> usize {
        self.hosts.iter().filter_map(|h| h.m.as_ref()).map(|m| m.stats().max_datagram as usize).max().unwrap_or(0)
    }
}
