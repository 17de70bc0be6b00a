//! The hosts of the simulation: adding, restarting and stopping them, and what a scenario does
//! to one host (a frame from its TAP, a datagram from outside) and reads from it.

use std::net::{IpAddr, SocketAddr};

use super::{outcome, Datagram, Packet, Sim, View, HEADROOM};
use crate::config::Config;
use crate::control::{ClusterKey, Credentials, MemberRecord, Membership, SigningKey, TrustStore};
use crate::dataplane::{EspTunnels, PortId, Switch, SwitchConfig, Tunnel};
use crate::node::lease::LeaseEvent;
use crate::node::state::Claims;
use crate::node::{unix_secs, ConfigChange, GossipJoin, NewConfig, Node, NodeConfig};

/// The default gossip port of simulated hosts.
pub const GOSSIP_PORT: u16 = 4790;

/// One simulated host.
pub struct SimHost {
    /// Underlay address.
    pub underlay: IpAddr,
    /// Gossip address.
    pub gossip_addr: SocketAddr,
    /// The running node, `None` while stopped.
    pub node: Option<Node>,
    /// Frames written to each TAP, per port, not yet taken.
    pub tap_out: Vec<Vec<Vec<u8>>>,
    /// The tables built from the updates the node fanned out.
    pub view: View,
    /// The start epoch of its gossip record (0 without gossip).
    pub epoch: u64,
    /// What a configured host keeps on disk across restarts: its trust store (saved whenever it
    /// changes) and the ages of its subnet claims.
    pub saved: Option<(TrustStore, Claims)>,
    /// Every subnet lease change of this host, across restarts.
    pub lease_log: Vec<LeaseEvent>,
}

impl SimHost {
    /// The running node.
    pub fn node(&self) -> &Node {
        self.node.as_ref().expect("host is running")
    }

    /// The running node, mutably.
    pub fn node_mut(&mut self) -> &mut Node {
        self.node.as_mut().expect("host is running")
    }

    /// The node's switch.
    pub fn switch(&self) -> &Switch {
        self.node().switch()
    }

    /// The node's switch, mutably.
    pub fn switch_mut(&mut self) -> &mut Switch {
        self.node_mut().switch_mut()
    }

    /// The node's gossip membership.
    pub fn membership(&self) -> &Membership {
        self.node().membership().expect("host runs gossip")
    }
}

impl Sim {
    /// Switch-only hosts given as (underlay address, switch configuration), no latency.
    pub fn new(hosts: Vec<(IpAddr, SwitchConfig)>) -> Sim {
        Sim::with_nodes(hosts.into_iter().map(|(ul, cfg)| (ul, NodeConfig::switch_only(cfg))).collect())
    }

    /// Hosts given as (underlay address, node configuration), no latency; gossip on port 4790.
    pub fn with_nodes(hosts: Vec<(IpAddr, NodeConfig)>) -> Sim {
        let mut sim = Sim::empty(7);
        for (underlay, cfg) in hosts {
            sim.add_host(underlay, SocketAddr::from((underlay, GOSSIP_PORT)), cfg);
        }
        sim
    }

    /// Add a host started now; returns its index.
    pub fn add_host(&mut self, underlay: IpAddr, gossip_addr: SocketAddr, cfg: NodeConfig) -> usize {
        let ports = cfg.switch.networks.len();
        let host = SimHost {
            underlay,
            gossip_addr,
            node: None,
            tap_out: vec![Vec::new(); ports],
            view: View::default(),
            epoch: 0,
            saved: None,
            lease_log: Vec::new(),
        };
        self.hosts.push(host);
        let i = self.hosts.len() - 1;
        self.restart(i, cfg);
        i
    }

    /// Add the host of a configuration file, as the daemon would start it (gossip keyed with
    /// `key`, its RNG seeded from the simulation's seed); returns its index.
    pub fn add_configured(&mut self, config: &Config, key: ClusterKey, esp: Option<EspTunnels>, epoch: u64) -> usize {
        let i = self.hosts.len();
        let (cfg, advertised, saved) = self.configured_node(i, config, key, esp, epoch);
        let j = self.add_host(config.underlay.address, advertised, cfg);
        self.hosts[j].epoch = epoch;
        self.hosts[j].saved = Some(saved);
        j
    }

    /// Restart configured host `i` with `config`, as the daemon would after a restart: same
    /// signing key, its saved trust store and claim ages, a new epoch.
    pub fn restart_configured(&mut self, i: usize, config: &Config, key: ClusterKey, epoch: u64) {
        let (cfg, _, saved) = self.configured_node(i, config, key, None, epoch);
        self.hosts[i].saved = Some(saved);
        self.restart(i, cfg);
        self.hosts[i].epoch = epoch;
    }

    /// The node of configured host `i`, with what it saved earlier (or a first start's state).
    fn configured_node(
        &self,
        i: usize,
        config: &Config,
        key: ClusterKey,
        esp: Option<EspTunnels>,
        epoch: u64,
    ) -> (NodeConfig, SocketAddr, (TrustStore, Claims)) {
        let listen = config.gossip.as_ref().map(|g| g.config.listen);
        let advertised = match listen {
            Some(l) if !l.ip().is_unspecified() => l,
            Some(l) => SocketAddr::from((config.underlay.address, l.port())),
            None => SocketAddr::from((config.underlay.address, GOSSIP_PORT)),
        };
        let wall = unix_secs(self.wall_clock());
        let (trust, old_claims) =
            self.hosts.get(i).and_then(|h| h.saved.clone()).unwrap_or_else(|| (TrustStore::new(wall), Claims::default()));
        let claims = old_claims.update(config, wall);
        let credentials = Credentials { signer: SigningKey::for_tests(self.seed ^ i as u64), trust: trust.clone(), wall_secs: wall };
        let join = GossipJoin { key, advertised, credentials, claims: claims.clone() };
        let mut cfg = NodeConfig::from_config(config, epoch, self.wall_clock(), esp, Some(join));
        if let Some(g) = cfg.gossip.as_mut() {
            g.seed = Some(self.seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ epoch);
        }
        (cfg, advertised, (trust, claims))
    }

    /// (Re)start host `i` with a fresh node: empty view, TAP frames not yet taken kept.
    pub fn restart(&mut self, i: usize, cfg: NodeConfig) {
        let node = Node::new(cfg, self.now, self.wall_clock()).unwrap_or_else(|e| panic!("host {i}: {e}"));
        let host = &mut self.hosts[i];
        host.node = Some(node);
        host.view = View::default();
        self.drain(i);
    }

    /// Apply a changed configuration file to running host `i`, as the daemon's reload does (the
    /// node takes the difference, and a changed record's claim times are saved); returns what
    /// changed. New ports get a TAP of their own.
    pub fn reload(&mut self, i: usize, config: &Config) -> ConfigChange {
        let now = self.now;
        let host = &mut self.hosts[i];
        let node = host.node.as_mut().expect("host is running");
        let change = node.apply_config(now, NewConfig::of(config));
        if let (Some(_), Some((_, claims)), Some(m)) = (change.record_version, host.saved.as_mut(), node.membership()) {
            let leased: Vec<_> = node.leases().iter().map(|l| l.vni()).collect();
            *claims = claims.with_record(m.local(), &leased);
        }
        if let Some(&(last, _)) = change.added.iter().max() {
            if host.tap_out.len() <= last {
                host.tap_out.resize(last + 1, Vec::new());
            }
        }
        self.drain(i);
        change
    }

    /// Stop host `i` (its datagrams in flight still arrive; nothing reaches it).
    pub fn kill(&mut self, i: usize) {
        self.hosts[i].node = None;
    }

    /// Replace host `i`'s gossip record.
    pub fn set_record(&mut self, i: usize, record: MemberRecord) {
        let now = self.now;
        if let Some(node) = self.hosts[i].node.as_mut() {
            node.set_record(now, record).unwrap_or_else(|e| panic!("host {i}: {e}"));
        }
        self.drain(i);
    }

    /// Host index by underlay address.
    pub fn host_by_addr(&self, addr: IpAddr) -> Option<usize> {
        self.hosts.iter().position(|h| h.underlay == addr)
    }

    /// Host index by gossip address.
    pub fn host_by_gossip_addr(&self, addr: SocketAddr) -> Option<usize> {
        self.hosts.iter().position(|h| h.gossip_addr == addr)
    }

    /// A frame read from the TAP `port` of `host`; then everything due now runs.
    pub fn tap_send(&mut self, host: usize, port: PortId, frame: &[u8]) {
        let range = HEADROOM..HEADROOM + frame.len();
        self.buf[range.clone()].copy_from_slice(frame);
        let now = self.now;
        let h = &mut self.hosts[host];
        let node = h.node.as_mut().expect("host is running");
        let out = outcome(node.handle_tap_frame(now, port, &mut self.buf, range), h.underlay, &self.buf, &mut h.tap_out);
        self.after(host, out);
        self.run_until(now);
    }

    /// Deliver a VXLAN datagram to host `to` as if it came from `from`; then everything due now runs.
    pub fn inject_underlay(&mut self, from: IpAddr, to: usize, payload: &[u8]) {
        self.inject_datagram(Datagram { from, to: self.hosts[to].underlay, tunnel: Tunnel::Vxlan, payload: payload.to_vec() });
    }

    /// Deliver an ESP-in-UDP datagram to host `to` as if it came from `from`; then everything due
    /// now runs.
    pub fn inject_esp(&mut self, from: IpAddr, to: usize, payload: &[u8]) {
        self.inject_datagram(Datagram { from, to: self.hosts[to].underlay, tunnel: Tunnel::Esp, payload: payload.to_vec() });
    }

    fn inject_datagram(&mut self, d: Datagram) {
        let now = self.now;
        self.queue(now, Packet::Underlay(d));
        self.run_until(now);
    }

    /// Queue gossip `bytes` from `from` to `to`, arriving after the latency (no loss, no jitter).
    pub fn inject(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        let at = self.now + self.latency;
        self.queue(at, Packet::Gossip((from, to, bytes)));
    }

    /// Take the frames written to a TAP so far.
    pub fn take_tap(&mut self, host: usize, port: PortId) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.hosts[host].tap_out[port])
    }

    /// Take the underlay log.
    pub fn take_underlay(&mut self) -> Vec<Datagram> {
        std::mem::take(&mut self.underlay_log)
    }
}
