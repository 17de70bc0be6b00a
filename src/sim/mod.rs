//! The simulator: many vxswitch hosts in one process on virtual time.
//!
//! It plays the part of `sys/`: it owns the buffers, feeds frames into each host's
//! [`Switch`] through the same `handle_*` calls the daemon uses, carries underlay datagrams
//! between hosts (optionally losing some, from a seeded RNG), and records what reaches each TAP
//! and what crossed the underlay. Time only moves when a test calls [`Sim::advance`], so ageing
//! and other timers are tested exactly and instantly. Used by tests and benches.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::dataplane::{Forward, PortId, Switch, SwitchConfig, Transmit, Tunnel};

/// Headroom the simulator reserves in front of every frame, as the daemon does.
pub const HEADROOM: usize = 64;

/// An underlay datagram (UDP payload) between two hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Sender's underlay address.
    pub from: Ipv4Addr,
    /// Receiver's underlay address.
    pub to: Ipv4Addr,
    /// The tunnel: ESP-in-UDP (port 4500) or VXLAN (port 4789).
    pub tunnel: Tunnel,
    /// UDP payload (VXLAN header + inner frame, or ESP).
    pub payload: Vec<u8>,
}

/// One simulated host.
#[derive(Debug)]
pub struct SimHost {
    /// Underlay address.
    pub underlay: Ipv4Addr,
    /// The switch core under test.
    pub switch: Switch,
    /// Frames written to each TAP, per port, not yet taken.
    pub tap_out: Vec<Vec<Vec<u8>>>,
}

/// The simulated cluster.
#[derive(Debug)]
pub struct Sim {
    /// Virtual now.
    pub now: Instant,
    /// The hosts.
    pub hosts: Vec<SimHost>,
    /// Every datagram that crossed the underlay, in order (cleared with [`Sim::take_underlay`]).
    pub underlay_log: Vec<Datagram>,
    /// Datagrams dropped by simulated loss.
    pub lost: u64,
    in_flight: VecDeque<Datagram>,
    loss: f64,
    rng: StdRng,
    buf: Vec<u8>,
}

/// Most datagrams delivered per [`Sim::run`]: bounds any forwarding loop.
const MAX_STEPS: usize = 100_000;

impl Sim {
    /// Hosts given as (underlay address, switch configuration).
    pub fn new(hosts: Vec<(Ipv4Addr, SwitchConfig)>) -> Sim {
        let now = Instant::now();
        let hosts = hosts
            .into_iter()
            .map(|(underlay, cfg)| {
                let ports = cfg.networks.len();
                SimHost { underlay, switch: Switch::new(cfg, now), tap_out: vec![Vec::new(); ports] }
            })
            .collect();
        Sim {
            now: Instant::now(),
            hosts,
            underlay_log: Vec::new(),
            lost: 0,
            in_flight: VecDeque::new(),
            loss: 0.0,
            rng: StdRng::seed_from_u64(7),
            buf: vec![0u8; 65536 + 2 * HEADROOM],
        }
    }

    /// Lose each underlay datagram with probability `loss`, from an RNG seeded with `seed`.
    pub fn set_loss(&mut self, loss: f64, seed: u64) {
        self.loss = loss;
        self.rng = StdRng::seed_from_u64(seed);
    }

    /// Host index by underlay address.
    pub fn host_by_addr(&self, addr: Ipv4Addr) -> Option<usize> {
        self.hosts.iter().position(|h| h.underlay == addr)
    }

    /// A frame read from the TAP `port` of `host`; then the network runs until quiet.
    pub fn tap_send(&mut self, host: usize, port: PortId, frame: &[u8]) {
        let range = HEADROOM..HEADROOM + frame.len();
        self.buf[range.clone()].copy_from_slice(frame);
        let now = self.now;
        let from = self.hosts[host].underlay;
        match self.hosts[host].switch.handle_tap_frame(now, port, &mut self.buf, range) {
            Forward::Underlay { payload, dests, tunnel, .. } => {
                for to in dests {
                    self.in_flight.push_back(Datagram { from, to: *to, tunnel, payload: self.buf[payload.clone()].to_vec() });
                }
            }
            Forward::Tap { port, frame } => self.hosts[host].tap_out[port].push(self.buf[frame].to_vec()),
            Forward::Nothing => {}
        }
        self.drain_transmits(host);
        self.run();
    }

    /// Deliver an ESP-in-UDP datagram to host `to` as if it came from `from`.
    pub fn inject_esp(&mut self, from: Ipv4Addr, to: usize, payload: &[u8]) {
        let to = self.hosts[to].underlay;
        self.in_flight.push_back(Datagram { from, to, tunnel: Tunnel::Esp, payload: payload.to_vec() });
        self.run();
    }

    /// Deliver a datagram to host `to` as if it came from `from` over the underlay.
    pub fn inject_underlay(&mut self, from: Ipv4Addr, to: usize, payload: &[u8]) {
        let to = self.hosts[to].underlay;
        self.in_flight.push_back(Datagram { from, to, tunnel: Tunnel::Vxlan, payload: payload.to_vec() });
        self.run();
    }

    /// Deliver in-flight datagrams until none are left (bounded).
    pub fn run(&mut self) {
        for _ in 0..MAX_STEPS {
            let Some(d) = self.in_flight.pop_front() else { return };
            if self.loss > 0.0 && self.rng.gen_bool(self.loss) {
                self.lost += 1;
                continue;
            }
            self.underlay_log.push(d.clone());
            let Some(host) = self.host_by_addr(d.to) else { continue };
            let range = HEADROOM..HEADROOM + d.payload.len();
            self.buf[range.clone()].copy_from_slice(&d.payload);
            let now = self.now;
            let from = self.hosts[host].underlay;
            let switch = &mut self.hosts[host].switch;
            let forward = switch.handle_datagram(now, d.tunnel, d.from, &mut self.buf, range);
            match forward {
                Forward::Tap { port, frame } => self.hosts[host].tap_out[port].push(self.buf[frame].to_vec()),
                Forward::Underlay { payload, dests, tunnel, .. } => {
                    for to in dests {
                        self.in_flight.push_back(Datagram { from, to: *to, tunnel, payload: self.buf[payload.clone()].to_vec() });
                    }
                }
                Forward::Nothing => {}
            }
            self.drain_transmits(host);
        }
        panic!("simulation did not settle within {MAX_STEPS} datagrams (forwarding loop?)");
    }

    fn drain_transmits(&mut self, host: usize) {
        while let Some(t) = self.hosts[host].switch.poll_transmit() {
            match t {
                Transmit::Tap { port, frame } => self.hosts[host].tap_out[port].push(frame),
                Transmit::Underlay { dst, tunnel, payload } => {
                    let from = self.hosts[host].underlay;
                    self.in_flight.push_back(Datagram { from, to: dst, tunnel, payload });
                }
            }
        }
    }

    /// Move virtual time forward and run every host's timers.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        let now = self.now;
        for h in 0..self.hosts.len() {
            self.hosts[h].switch.handle_timeout(now);
            self.drain_transmits(h);
        }
        self.run();
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
