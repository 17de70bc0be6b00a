//! The simulator: many whole vxswitch nodes in one process, on one virtual network and clock.
//!
//! It plays the part of `sys/` for every host at once. Each host is a [`Node`] (switch, gossip
//! membership, control fan-out), fed through the same `handle_*` calls the daemon makes and
//! drained through the same `poll_*` calls. One network carries both kinds of datagram: underlay
//! datagrams between switches (VXLAN or ESP) and gossip datagrams between memberships, each
//! after `latency` plus seeded `jitter`, a seeded fraction lost (`loss`), and only within a group
//! when `partition` is set. What reaches a TAP is kept per host and port; every underlay datagram
//! delivered is logged; what each node hands its kernel programmers is folded into its [`View`].
//!
//! Time is virtual: it moves only when a scenario runs the network ([`Sim::run_for`],
//! [`Sim::advance`], ...), from one event (a datagram arriving, a node's timer) to the next, so
//! ageing, rekeying and failure detection are tested exactly and instantly. Everything is
//! deterministic for a given seed, and every run is bounded: a step budget per run, and a bound
//! on events at one instant that catches forwarding loops. Used by tests and benches only.

mod floating;
mod gossip;
mod hosts;
mod view;

use std::collections::BinaryHeap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand_foca::rngs::SmallRng;
use rand_foca::{Rng, SeedableRng};

pub use crate::control::fixtures::{host_addr, host_ip, host_record, SIM_VNI};
use crate::dataplane::{Forward, Transmit, Tunnel};
pub use gossip::{CLUSTER_KEY, FIRST_EPOCH};
pub use hosts::{SimHost, GOSSIP_PORT};
pub use view::View;

/// Headroom the simulator reserves in front of every frame, as the daemon does.
pub const HEADROOM: usize = 64;

/// Condition checks in [`Sim::run_until_cond`] happen this often (simulated).
pub const CHECK_EVERY: Duration = Duration::from_millis(10);

/// Most events one run may process.
const STEP_BUDGET: u64 = 50_000_000;

/// Most events at one instant: more means datagrams chase each other at zero latency (a loop).
const MAX_STEPS_AT_ONE_INSTANT: u64 = 100_000;

/// An underlay datagram (UDP payload) between two hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Sender's underlay address.
    pub from: IpAddr,
    /// Receiver's underlay address.
    pub to: IpAddr,
    /// The tunnel: VXLAN (port 4789) or ESP-in-UDP (port 4500).
    pub tunnel: Tunnel,
    /// UDP payload (VXLAN header + inner frame, or ESP).
    pub payload: Vec<u8>,
}

/// A gossip datagram: (from, to, sealed bytes).
pub type GossipDatagram = (SocketAddr, SocketAddr, Vec<u8>);

/// Anything on the virtual network.
#[derive(Debug)]
enum Packet {
    Underlay(Datagram),
    Gossip(GossipDatagram),
}

/// A packet on its way, ordered by arrival (earliest first), then by sending order.
#[derive(Debug)]
struct InFlight {
    at: Instant,
    seq: u64,
    packet: Packet,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The simulated cluster: hosts, the network between them and the clock.
pub struct Sim {
    /// Virtual now.
    pub now: Instant,
    /// Start of the simulation.
    pub start: Instant,
    /// The wall clock at `start` (nodes' claim times derive from it).
    pub wall_at_start: SystemTime,
    /// The hosts, by index.
    pub hosts: Vec<SimHost>,
    /// Fraction of datagrams lost (both kinds).
    pub loss: f64,
    /// Group of each host; datagrams only cross within a group.
    pub partition: Option<Vec<u8>>,
    /// One-way latency.
    pub latency: Duration,
    /// Up to this much extra latency per datagram, drawn from the seeded RNG.
    pub jitter: Duration,
    /// When set, every gossip datagram delivered is copied here.
    pub capture: Option<Vec<GossipDatagram>>,
    /// Every underlay datagram delivered, in order (cleared with [`Sim::take_underlay`]).
    pub underlay_log: Vec<Datagram>,
    /// Datagrams lost to `loss`.
    pub lost: u64,
    /// Events processed so far.
    pub steps: u64,
    seed: u64,
    gossip_config: Option<crate::control::GossipConfig>,
    rng: SmallRng,
    flight: BinaryHeap<InFlight>,
    seq: u64,
    buf: Vec<u8>,
}

impl Sim {
    /// An empty network (no latency, no loss) whose RNG is seeded with `seed`.
    pub fn empty(seed: u64) -> Sim {
        let now = Instant::now();
        Sim {
            now,
            start: now,
            wall_at_start: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            hosts: Vec::new(),
            loss: 0.0,
            partition: None,
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            capture: None,
            underlay_log: Vec::new(),
            lost: 0,
            steps: 0,
            seed,
            gossip_config: None,
            rng: SmallRng::seed_from_u64(seed),
            flight: BinaryHeap::new(),
            seq: 0,
            buf: vec![0u8; 65536 + 2 * HEADROOM],
        }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The wall clock now.
    pub fn wall_clock(&self) -> SystemTime {
        self.wall_at_start + self.elapsed()
    }

    /// Move virtual time forward by `by`, running every event on the way.
    pub fn advance(&mut self, by: Duration) {
        self.run_for(by);
    }

    /// Runs for `d` simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let deadline = self.now + d;
        self.run_until(deadline);
    }

    /// Runs every event due up to `deadline` (simulated). Panics when the step budget is exhausted.
    pub fn run_until(&mut self, deadline: Instant) {
        self.run_while(deadline, |_| true);
    }

    /// Runs until `done` holds (checked every [`CHECK_EVERY`]) or `deadline`; returns whether
    /// `done` held.
    pub fn run_until_cond(&mut self, deadline: Instant, mut done: impl FnMut(&Sim) -> bool) -> bool {
        // Checked every 10 ms of simulated time (checks can cost O(hosts^2)).
        let mut met = done(self);
        let mut next_check = self.now + CHECK_EVERY;
        if !met {
            self.run_while(deadline, |sim| {
                if sim.now >= next_check {
                    next_check = sim.now + CHECK_EVERY;
                    met = done(sim);
                }
                !met
            });
            met = met || done(self);
        }
        met
    }

    fn run_while(&mut self, deadline: Instant, mut go_on: impl FnMut(&Sim) -> bool) {
        let budget = self.steps + STEP_BUDGET;
        let mut at_this_instant = 0;
        loop {
            let next_timer = self.hosts.iter().enumerate().filter_map(|(i, h)| Some((h.node.as_ref()?.poll_timeout()?, i))).min();
            let next_packet = self.flight.peek().map(|p| p.at);
            let Some(t) = next_timer.map(|(t, _)| t).into_iter().chain(next_packet).min() else { break };
            if t > deadline {
                break;
            }
            self.steps += 1;
            assert!(self.steps < budget, "step budget exhausted at {:?}", self.elapsed());
            at_this_instant = if t > self.now { 0 } else { at_this_instant + 1 };
            assert!(at_this_instant < MAX_STEPS_AT_ONE_INSTANT, "simulation did not settle at {:?} (forwarding loop?)", self.elapsed());
            self.now = self.now.max(t);
            if next_packet == Some(t) {
                let Some(p) = self.flight.pop() else { break };
                self.deliver(p.packet);
            } else if let Some((_, i)) = next_timer {
                let now = self.now;
                if let Some(node) = self.hosts[i].node.as_mut() {
                    node.handle_timeout(now);
                }
                self.drain(i);
            }
            if !go_on(self) {
                return;
            }
        }
        self.now = self.now.max(deadline);
    }

    /// Put `packet` from host `from` on the network: maybe lost, maybe cut off by the partition,
    /// else delivered after latency and jitter.
    fn send(&mut self, from: usize, packet: Packet) {
        if self.loss > 0.0 && (self.rng.next_u64() as f64 / u64::MAX as f64) < self.loss {
            self.lost += 1;
            return;
        }
        let to = match &packet {
            Packet::Underlay(d) => self.host_by_addr(d.to),
            Packet::Gossip((_, to, _)) => self.host_by_gossip_addr(*to),
        };
        if let (Some(p), Some(j)) = (&self.partition, to) {
            if p[from] != p[j] {
                return;
            }
        }
        let jitter = match self.jitter.as_micros() as u64 {
            0 => Duration::ZERO,
            max => Duration::from_micros(self.rng.next_u64() % max),
        };
        self.queue(self.now + self.latency + jitter, packet);
    }

    fn queue(&mut self, at: Instant, packet: Packet) {
        self.seq += 1;
        self.flight.push(InFlight { at, seq: self.seq, packet });
    }

    fn deliver(&mut self, packet: Packet) {
        match packet {
            Packet::Underlay(d) => {
                self.underlay_log.push(d.clone());
                if let Some(j) = self.host_by_addr(d.to) {
                    self.receive_underlay(j, &d);
                }
            }
            Packet::Gossip((from, to, bytes)) => {
                let Some(j) = self.host_by_gossip_addr(to) else { return };
                if let Some(cap) = self.capture.as_mut() {
                    cap.push((from, to, bytes.clone()));
                }
                let now = self.now;
                if let Some(node) = self.hosts[j].node.as_mut() {
                    node.handle_gossip(now, from, &bytes);
                    self.drain(j);
                }
            }
        }
    }

    /// Hand an underlay datagram to host `j`'s node and send on what it decides.
    fn receive_underlay(&mut self, j: usize, d: &Datagram) {
        let range = HEADROOM..HEADROOM + d.payload.len();
        self.buf[range.clone()].copy_from_slice(&d.payload);
        let now = self.now;
        let host = &mut self.hosts[j];
        let Some(node) = host.node.as_mut() else { return };
        // The one place the tunnel of a received datagram is looked at.
        let forward = node.handle_datagram(now, d.tunnel, d.from, &mut self.buf, range);
        let out = outcome(forward, host.underlay, &self.buf, &mut host.tap_out);
        self.after(j, out);
    }

    /// Send what host `i` decided, then drain what its node queued.
    fn after(&mut self, i: usize, out: Vec<Datagram>) {
        for d in out {
            self.send(i, Packet::Underlay(d));
        }
        self.drain(i);
    }

    /// Drain host `i`'s node: transmits, gossip datagrams and kernel updates.
    fn drain(&mut self, i: usize) {
        let host = &mut self.hosts[i];
        let Some(node) = host.node.as_mut() else { return };
        let mut out = Vec::new();
        while let Some(t) = node.poll_transmit() {
            match t {
                Transmit::Tap { port, frame } => host.tap_out[port].push(frame),
                Transmit::Underlay { dst, tunnel, payload } => {
                    out.push(Packet::Underlay(Datagram { from: host.underlay, to: dst, tunnel, payload }))
                }
            }
        }
        while let Some((to, bytes)) = node.poll_gossip() {
            out.push(Packet::Gossip((host.gossip_addr, to, bytes)));
        }
        while let Some(update) = node.poll_kernel_update() {
            host.view.apply(&update);
        }
        if let (Some(trust), Some(saved)) = (node.take_trust_changed(), host.saved.as_mut()) {
            saved.0 = trust;
        }
        // Lease changes are saved as the daemon saves them, and logged for scenarios.
        while let Some(event) = node.poll_lease_event() {
            if let Some(saved) = host.saved.as_mut() {
                saved.1 = saved.1.with_lease(&event);
            }
            host.lease_log.push(event);
        }
        for p in out {
            self.send(i, p);
        }
    }
}

/// What a [`Forward`] decision means on the simulated network: frames for the TAP are kept,
/// datagrams for peers are returned to be sent.
fn outcome(forward: Forward<'_>, from: IpAddr, buf: &[u8], tap_out: &mut [Vec<Vec<u8>>]) -> Vec<Datagram> {
    match forward {
        Forward::Underlay { payload, dests, tunnel, .. } => {
            dests.iter().map(|&to| Datagram { from, to, tunnel, payload: buf[payload.clone()].to_vec() }).collect()
        }
        Forward::Tap { port, frame } => {
            tap_out[port].push(buf[frame].to_vec());
            Vec::new()
        }
        Forward::Nothing => Vec::new(),
    }
}

/// Build an Ethernet frame: dst, src, ethertype, payload (padded to the 60-byte minimum).
pub fn ethernet_frame(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len().max(46));
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}
