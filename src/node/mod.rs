//! One host: the switch core, the gossip membership and the fan-out of [`ControlUpdate`]s,
//! driven sans-IO.
//!
//! The daemon and the simulator both run a whole host, so what a host *is* lives here once
//! rather than in each driver: a [`Node`] owns the [`Switch`] and, when configured, the gossip
//! [`Membership`]; it hands every update the control plane produces to the switch and queues a
//! copy for the kernel programmers; it republishes the container bindings the switch has seen
//! (at most once per [`PUBLISH_EVERY`]) in this host's record. Inputs are `handle_*` calls with
//! `now` passed in, outputs are drained with `poll_*`, as in quinn-proto: the driver reads its
//! sockets, calls `handle_*`, drains [`Node::poll_transmit`], [`Node::poll_gossip`] and
//! [`Node::poll_kernel_update`], and sleeps until [`Node::poll_timeout`]. Nothing here reads a
//! clock: the wall clock at start comes in as an argument, and later wall-clock times are that
//! plus the monotonic time elapsed since.
//!
//! Kernel consumers (the kernel vxlan device programmer and the host-subnet route programmer in
//! `sys/kernel`) get updates through [`Node::poll_kernel_update`] rather than through a trait the
//! node would call. They make netlink calls, so calling them from inside `handle_*` would put I/O
//! in the middle of the state machine; a queue keeps the node free of I/O, lets the daemon decide
//! when to program the kernel, and lets the simulator record exactly what a host would program.
//!
//! The per-packet path stays on the switch: the daemon's batched data path works on
//! [`Node::switch_mut`] directly, so frames are not copied or re-dispatched on the way.

pub mod config;
mod floating;
pub mod lease;
mod leasing;
mod reconfig;
pub mod record;
mod services;
pub mod state;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::{Duration, Instant, SystemTime};

use crate::control::{ControlUpdate, MemberRecord, Membership, RecordTooLarge};
use crate::dataplane::{Forward, NetworkSpec, PortId, Switch, Transmit, Tunnel};
pub use config::{static_updates, switch_config, GossipJoin, GossipSetup, NodeConfig};
pub use reconfig::{ConfigChange, NewConfig};
pub use record::{local_record, start_epoch, unix_secs, with_bindings, LocalBinding};

/// How often changed local container bindings are published to the cluster.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// The gossip side of a node.
struct Gossip {
    membership: Membership,
    next_publish: Instant,
}

/// One host, sans-IO: switch, gossip membership and the fan-out of control updates.
pub struct Node {
    switch: Switch,
    gossip: Option<Gossip>,
    kernel_updates: VecDeque<ControlUpdate>,
    started: Instant,
    wall_at_start: SystemTime,
    /// The switched networks as configured (see [`Node::apply_config`]).
    networks: Vec<NetworkSpec>,
    /// The static updates as configured.
    statics: Vec<ControlUpdate>,
    /// Floating IPs (see [`floating`]).
    floating: floating::NodeFloating,
    /// Service VIPs (see [`services`]).
    services: services::NodeServices,
    /// The leased subnets of routed networks (see [`lease`]).
    leases: Vec<lease::Lease>,
    /// Lease changes not yet taken by the driver.
    lease_events: VecDeque<lease::LeaseEvent>,
}

impl Node {
    /// A node started at `now`, when the wall clock read `wall`.
    pub fn new(cfg: NodeConfig, now: Instant, wall: SystemTime) -> Result<Node, RecordTooLarge> {
        let networks = cfg.switch.networks.clone();
        let statics = cfg.static_updates.clone();
        let mut switch = Switch::new(cfg.switch, now);
        switch.set_flood_limit(cfg.flood);
        if let Some(esp) = cfg.esp {
            switch.set_esp(esp);
        }
        for update in cfg.static_updates {
            switch.apply(now, update);
        }
        let gossip = match cfg.gossip {
            Some(g) => {
                let mut creds = g.credentials;
                creds.wall_secs = unix_secs(wall);
                let membership = match g.seed {
                    Some(seed) => Membership::with_seed(g.config, g.record, &g.key, creds, now, seed)?,
                    None => Membership::new(g.config, g.record, &g.key, creds, now)?,
                };
                Some(Gossip { membership, next_publish: now })
            }
            None => None,
        };
        switch.watch(cfg.floating.iter().map(|s| (s.vni, s.target)));
        let floating = floating::NodeFloating::new(cfg.floating);
        let services = services::NodeServices::new(cfg.services);
        let mut node = Node {
            switch,
            gossip,
            kernel_updates: VecDeque::new(),
            started: now,
            wall_at_start: wall,
            networks,
            statics,
            floating,
            services,
            leases: Vec::new(),
            lease_events: VecDeque::new(),
        };
        node.start_leases(now, cfg.leases);
        node.fan_out(now);
        match node.local_services().to_vec() {
            local if local.is_empty() => node.evaluate_services(),
            local => node.set_services(now, local),
        }
        Ok(node)
    }

    /// The switch core.
    pub fn switch(&self) -> &Switch {
        &self.switch
    }

    /// The switch core, for the driver's batched data path and for tests.
    pub fn switch_mut(&mut self) -> &mut Switch {
        &mut self.switch
    }

    /// The gossip membership, when configured.
    pub fn membership(&self) -> Option<&Membership> {
        self.gossip.as_ref().map(|g| &g.membership)
    }

    /// The wall clock at `now`: the wall clock at start plus the monotonic time since.
    pub fn wall_clock(&self, now: Instant) -> SystemTime {
        self.wall_at_start + now.saturating_duration_since(self.started)
    }

    /// A frame read from the TAP of `port`, at `buf[frame]` with headroom.
    // hot path
    pub fn handle_tap_frame(&mut self, now: Instant, port: PortId, buf: &mut [u8], frame: Range<usize>) -> Forward<'_> {
        self.switch.handle_tap_frame(now, port, buf, frame)
    }

    /// A VXLAN datagram (UDP payload at `buf[payload]`) from the peer at `from`.
    // hot path
    pub fn handle_underlay(&mut self, now: Instant, from: IpAddr, buf: &mut [u8], payload: Range<usize>) -> Forward<'_> {
        self.switch.handle_underlay(now, from, buf, payload)
    }

    /// A datagram of `tunnel` (UDP payload at `buf[payload]`) from the peer at `from`.
    // hot path
    pub fn handle_datagram(&mut self, now: Instant, tunnel: Tunnel, from: IpAddr, buf: &mut [u8], payload: Range<usize>) -> Forward<'_> {
        self.switch.handle_datagram(now, tunnel, from, buf, payload)
    }

    /// An ESP-in-UDP datagram (UDP payload at `buf[payload]`) from the peer at `from`.
    // hot path
    pub fn handle_esp(&mut self, now: Instant, from: IpAddr, buf: &mut [u8], payload: Range<usize>) -> Forward<'_> {
        self.switch.handle_esp(now, from, buf, payload)
    }

    /// A datagram received on the gossip socket.
    pub fn handle_gossip(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if let Some(g) = self.gossip.as_mut() {
            g.membership.handle_datagram(now, from, bytes);
            self.fan_out(now);
            self.evaluate_floating(now);
            self.evaluate_services();
        }
    }

    /// Run whatever timers are due at `now`: FDB ageing, routers, ESP, gossip, publishing.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.switch.poll_timeout().is_some_and(|t| t <= now) {
            self.switch.handle_timeout(now);
        }
        let Some(g) = self.gossip.as_mut() else { return };
        if g.membership.poll_timeout().is_some_and(|t| t <= now) {
            g.membership.handle_timeout(now);
        }
        // A container moved here or away: tell the cluster now, not at the next round.
        let moved = self.switch.binding_publish_due().is_some_and(|t| t <= now);
        if now >= g.next_publish {
            g.next_publish = now + PUBLISH_EVERY;
            self.check_leases(now);
            self.publish_bindings(now);
        } else if moved {
            self.publish_bindings(now);
        }
        if let (true, Some(g)) = (moved, self.gossip.as_mut()) {
            g.membership.push_local_now(now);
        }
        self.fan_out(now);
        self.evaluate_floating(now);
        self.evaluate_services();
    }

    /// An update from outside the node (operator, test): applied and fanned out like gossip's.
    pub fn apply(&mut self, now: Instant, update: ControlUpdate) {
        self.kernel_updates.push_back(update.clone());
        self.switch.apply(now, update);
    }

    /// Replace this host's gossip record (name, gossip address and epoch are kept).
    pub fn set_record(&mut self, now: Instant, record: MemberRecord) -> Result<(), RecordTooLarge> {
        if let Some(g) = self.gossip.as_mut() {
            g.membership.set_local(now, record)?;
            self.fan_out(now);
        }
        Ok(())
    }

    /// The next packet the switch originates itself (replies, ESP copies of a flood, hellos).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.switch.poll_transmit()
    }

    /// Forget the signing key and underlay trusted for host `name` (`vxswitch forget`); whether
    /// one was bound.
    pub fn forget(&mut self, name: &str) -> bool {
        self.gossip.as_mut().is_some_and(|g| g.membership.forget(name))
    }

    /// The gossip trust store, if it changed since the last call: the driver saves it.
    pub fn take_trust_changed(&mut self) -> Option<crate::control::TrustStore> {
        self.gossip.as_mut()?.membership.take_trust_changed()
    }

    /// The next sealed gossip datagram to send, and where to.
    pub fn poll_gossip(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.gossip.as_mut()?.membership.poll_transmit()
    }

    /// The next update for the kernel programmers (every update the switch was given, in order,
    /// static ones excepted). Drain it after every `handle_*` call: it is not bounded otherwise.
    pub fn poll_kernel_update(&mut self) -> Option<ControlUpdate> {
        self.kernel_updates.pop_front()
    }

    /// When [`Node::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let gossip = self.gossip.as_ref().map(|g| {
            let publish = self.switch.binding_publish_due().map_or(g.next_publish, |t| t.min(g.next_publish));
            g.membership.poll_timeout().map_or(publish, |t| t.min(publish))
        });
        self.switch.poll_timeout().into_iter().chain(gossip).min()
    }

    /// Hand every update the membership produced to the switch and to the kernel queue.
    fn fan_out(&mut self, now: Instant) {
        let Some(g) = self.gossip.as_mut() else { return };
        while let Some(update) = g.membership.poll_update() {
            tracing::debug!(?update, "control update");
            self.kernel_updates.push_back(update.clone());
            self.switch.apply(now, update);
        }
    }

    /// Publish the container bindings seen behind this host, if they changed (bumps the record
    /// version).
    fn publish_bindings(&mut self, now: Instant) {
        let since = unix_secs(self.wall_clock(now));
        let Some(g) = self.gossip.as_mut() else { return };
        let Some(bindings) = self.switch.take_local_bindings_changed() else { return };
        let remote: Vec<&MemberRecord> = g.membership.live_records().collect();
        let record = with_bindings(g.membership.local(), &bindings, since, &remote);
        if let Err(e) = g.membership.set_local(now, record) {
            tracing::warn!("gossip record too large, bindings not published: {e}");
        }
    }
}

#[cfg(test)]
mod tests;
