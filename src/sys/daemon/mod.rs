//! The daemon: a thin driver of one [`Node`] over real descriptors.
//!
//! Event loop choice: one thread and `poll(2)` over a handful of fds (signalfd, the VXLAN socket,
//! the control socket, one TAP per network, and gossip, ESP and metrics when configured). The
//! node is a single-owner state machine, so a single thread drives it without locks; tokio would
//! add a scheduler and cross-thread wakeups and buy nothing for this few fds. Each wakeup: run
//! the node's due timers, read what is ready (bounded: at most [`udp::BATCH`] frames per TAP and
//! per `recvmmsg`, so one busy direction cannot starve the other), then drain what the node
//! queued: packets it originated, gossip datagrams, and control updates for the kernel
//! programmers (kernel vxlan device, host-subnet routes). Then sleep until the node's next
//! timeout, or, right after data-path work, poll again without sleeping for a short adaptive
//! window ([`busy_poll`], `[underlay] busy_poll_us`) so that the next frame of a conversation
//! costs no wake-up. Frames are read into preallocated buffers at offset [`HEADROOM`] and encapsulated in
//! place; the per-wakeup data path, with TSO/GSO/GRO offloads where they are on, is in
//! [`crate::sys::fastpath::datapath`] and works on the node's switch directly. The one other
//! thread (`[underlay] workers = 2`, the default) only hands batches this thread has already
//! switched and sealed to the kernel ([`crate::sys::fastpath::send_worker`]); the node keeps one
//! owner.
//!
//! Clients of the control socket and the metrics listener are served by the same loop, after the
//! data path, as non-blocking state machines with deadlines and a cap ([`clients`]): nothing a
//! client does or fails to do makes the loop wait.
//!
//! [`HEADROOM`]: crate::sys::fastpath::HEADROOM

pub mod busy_poll;
pub mod clients;
pub mod cni;
pub mod control_socket;
pub mod esp;
pub mod esp_state;
pub mod floating_cmd;
pub mod floating_status;
pub mod gossip;
pub mod instance_lock;
pub mod metrics;
mod poll;
pub mod reload;
pub mod sched;
pub mod services_cmd;
pub mod signals;
pub mod status;
pub mod taps;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::config::Config;
use crate::dataplane::{Transmit, Tunnel};
use crate::node::{self, Node, NodeConfig};
use crate::sys::fastpath::datapath::{self, RxPath, TxPath};
use crate::sys::fastpath::path_mtu::PathMtuProbe;
use crate::sys::fastpath::udp::{self, UnderlaySockets};
use crate::sys::fastpath::DriverCounters;
use crate::sys::kernel::floating::FloatingDriver;
use crate::sys::kernel::host_lease;
use crate::sys::kernel::host_state::HostState;
use crate::sys::kernel::host_subnet::HostSubnetDriver;
use crate::sys::kernel::services::ServicesDriver;
use crate::sys::kernel::vtep::VtepDriver;
use crate::sys::SysError;
use busy_poll::BusyPoll;
use control_socket::ControlSocket;
use esp::EspDriver;
use gossip::GossipSocket;
use metrics::MetricsListener;
use poll::{PollSet, Source, BROKEN, READABLE, WRITABLE};
use signals::SignalFd;
use taps::TapPorts;

/// Longest poll sleep, so that signals and timers are never missed for long.
const MAX_SLEEP: Duration = Duration::from_millis(500);

/// Run vxswitch with `config`, read from `path` (re-read on SIGHUP and `reload`; without a path
/// there is nothing to reload), until SIGINT or SIGTERM.
pub fn run(config: &Config, path: Option<&Path>) -> Result<(), SysError> {
    // Before any kernel state is touched: a second instance must change nothing.
    let _instance = instance_lock::InstanceLock::acquire(&config.control_socket)?;
    let signals = SignalFd::block_term_signals()?;
    // Before any thread is spawned, so that the send thread inherits it too.
    if let Err(e) = sched::raise_priority(config.underlay.priority_boost) {
        tracing::warn!(error = %e, boost = config.underlay.priority_boost, "could not raise the data path's scheduling priority; wake-ups may wait behind other work on a busy host");
    }
    let mut daemon = Daemon::start(config)?;
    daemon.config_path = path.map(Path::to_path_buf);
    let mut polls = PollSet::new([]);
    let mut busy = BusyPoll::new(config.underlay.busy_poll);
    loop {
        polls.clear();
        daemon.fill_poll_set(&signals, &mut polls);
        let now = Instant::now();
        let sleep = daemon.sleep(now);
        let timeout = busy.timeout(now, sleep);
        if !polls.wait(timeout)? {
            continue;
        }
        let work = polls.ready().any(|s| matches!(s, Source::Tap(_) | Source::Vxlan | Source::Esp));
        busy.woke(Instant::now(), work);
        if timeout.is_zero() && !sleep.is_zero() {
            daemon.driver.busy_poll_rounds += 1;
            daemon.driver.busy_poll_hits += u64::from(work);
        }
        if timeout.is_zero() && !sleep.is_zero() && polls.ready().next().is_none() {
            // A busy-poll round that found nothing, with no timer due: let whatever else is
            // runnable on this core (the peer daemon, the container's stack) go first, then poll
            // again.
            std::thread::yield_now();
            continue;
        }
        if polls.ready().any(|s| s == Source::Signals) {
            match signals.read() {
                0 => {}
                s if s == libc::SIGHUP as u32 => {
                    // The ports may have changed: serve the rest from a fresh poll set.
                    let _ = daemon.reload(Instant::now());
                    continue;
                }
                s => {
                    tracing::info!(signal = s, "shutting down");
                    break;
                }
            }
        }
        let now = Instant::now();
        daemon.node.handle_timeout(now);
        if let Some(p) = daemon.path_mtu.as_mut() {
            daemon.driver.path_mtu_errors += p.run(now, daemon.node.switch_mut());
        }
        for (source, events) in polls.ready_events() {
            daemon.serve(source, events, now);
        }
        daemon.tx.reap(&mut daemon.driver);
        daemon.ports.recover(now, &mut daemon.driver);
        daemon.serve_clients(now);
        daemon.drain();
    }
    daemon.shutdown();
    Ok(())
}

/// Everything the loop drives: the node and the descriptors and programmers around it.
struct Daemon {
    config: Config,
    /// Where the configuration was read from, for reloads.
    config_path: Option<PathBuf>,
    node: Node,
    ports: TapPorts,
    udp: UnderlaySockets,
    esp: Option<EspDriver>,
    gossip: Option<GossipSocket>,
    control: ControlSocket,
    metrics: Option<MetricsListener>,
    host_state: HostState,
    host_subnet: Option<HostSubnetDriver>,
    offload: Option<VtepDriver>,
    /// Floating IPs held here (also reconciles what an earlier run left).
    floating: Option<FloatingDriver>,
    /// Service VIPs (also deletes the table an earlier run left).
    services: ServicesDriver,
    tx: TxPath,
    rx: RxPath,
    /// Reads the kernel's path MTU to each peer (see `fastpath::path_mtu`).
    path_mtu: Option<PathMtuProbe>,
    driver: DriverCounters,
    started: Instant,
    state_files: Option<node::state::StateFiles>,
    /// The claim ages and leases as saved in the state directory (rewritten when a lease changes).
    claims: node::state::Claims,
    /// Containers announced by the CNI plugin (kept across restarts).
    cni: cni::Announced,
}

impl Daemon {
    /// Program the kernel, open every descriptor and build the node.
    fn start(config: &Config) -> Result<Self, SysError> {
        // Undo what an earlier run left that this configuration does not want, record what it will change.
        let host_state = HostState::start(&config.control_socket, config)?;
        let host_subnet = HostSubnetDriver::start(config)?;
        let offload = VtepDriver::start(config)?;
        let floating = Some(FloatingDriver::start().map_err(|source| SysError::Os { op: "reconcile floating IPs", source })?);
        let services = ServicesDriver::start().map_err(|source| SysError::Os { op: "start the service programmer", source })?;
        let ports = TapPorts::open(config)?;
        let udp = bind_underlay(config, &ports)?;
        let control = ControlSocket::bind(&config.control_socket, config.control_socket_group.as_ref().map(|g| g.1))?;
        let (wall, now) = (SystemTime::now(), Instant::now());
        let (epoch, esp) = EspDriver::start(config, node::start_epoch(wall), now)?;
        let (mut esp, tunnels) = esp.unzip();
        if let Some(e) = esp.as_mut() {
            enable_offloads(config, &ports, &mut e.sockets, "ESP");
        }
        let state_files = node::state::StateFiles::of(config);
        let (gossip, join) = match (GossipSocket::bind(config)?, &state_files) {
            (Some((socket, key, advertised)), Some(files)) => (
                Some(socket),
                Some(
                    files
                        .load_join(config, key, advertised, node::unix_secs(wall))
                        .map_err(|source| SysError::Os { op: "load gossip state", source })?,
                ),
            ),
            _ => (None, None),
        };
        let claims = join.as_ref().map(|j| j.claims.clone()).unwrap_or_default();
        let mut node = Node::new(NodeConfig::from_config(config, epoch, wall, tunnels, join), now, wall)
            .map_err(|e| SysError::Os { op: "build gossip record", source: io::Error::new(io::ErrorKind::InvalidInput, e.to_string()) })?;
        let mut host_state = host_state;
        for (vni, kept) in node.leases().iter().filter_map(|l| Some((l.vni(), l.current()?.ipv4()?))) {
            host_lease::follow(config, &mut host_state, vni, None, Some(kept))?;
        }
        let cni = cni::Announced::restore(cni::Announced::path_for(&config.control_socket), config, node.switch_mut(), cni::veth_exists);
        tracing::info!(underlay = %config.underlay.address, port = config.underlay.port, "vxswitch running");
        // A slot holds the largest frame a TAP gives (its MTU + a VLAN-tagged Ethernet header).
        let largest_tap = config.switched_networks().map(|n| n.tap_mtu as usize + 18).max().unwrap_or(0);
        let payload_len = (config.underlay.mtu as usize).max(largest_tap).max(2048);
        let gro = udp.gro_enabled() || esp.as_ref().is_some_and(|e| e.sockets.gro_enabled());
        let rx_len = if gro { payload_len.max(udp::GRO_BUFFER) } else { payload_len };
        let metrics = config.metrics_listen.map(MetricsListener::bind).transpose()?;
        let tx = tx_path(config, payload_len, &udp, esp.as_ref().map(|e| &e.sockets));
        Ok(Daemon {
            config: config.clone(),
            config_path: None,
            node,
            ports,
            udp,
            esp,
            gossip,
            control,
            metrics,
            host_state,
            host_subnet,
            offload,
            floating,
            services,
            tx,
            rx: RxPath::new(rx_len, config.underlay.max_udp_payload()),
            path_mtu: match PathMtuProbe::new(config.underlay.address, config.underlay.port, config.underlay.mtu, now) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!("no underlay path MTU probe ({e}): peers keep the configured underlay MTU");
                    None
                }
            },
            driver: DriverCounters::default(),
            started: Instant::now(),
            state_files,
            claims,
            cni,
        })
    }

    /// What the loop polls, in the order it serves them: TAPs before the underlay, as before,
    /// and clients last.
    fn fill_poll_set(&self, signals: &SignalFd, polls: &mut PollSet) {
        polls.push(signals.fd, Source::Signals, READABLE);
        for (port, tap) in self.ports.open_taps() {
            polls.push(tap.fd(), Source::Tap(port), READABLE);
        }
        polls.push(self.udp.rx_fd(), Source::Vxlan, READABLE);
        if let Some(e) = &self.esp {
            polls.push(e.sockets.rx_fd(), Source::Esp, READABLE);
        }
        if let Some(g) = &self.gossip {
            polls.push(g.fd(), Source::Gossip, READABLE);
        }
        let interest = |w: bool| if w { WRITABLE } else { READABLE };
        if let Some(m) = &self.metrics {
            polls.push(m.fd(), Source::Metrics, READABLE);
            for (slot, fd, w) in m.clients.interest() {
                polls.push(fd, Source::MetricsClient(slot), interest(w));
            }
        }
        polls.push(self.control.fd(), Source::Control, READABLE);
        for (slot, fd, w) in self.control.clients.interest() {
            polls.push(fd, Source::ControlClient(slot), interest(w));
        }
    }

    /// How long the loop may sleep from `now`: until the node's next timer or a client's
    /// deadline, not at all while an answer is pending, and never longer than [`MAX_SLEEP`].
    fn sleep(&self, now: Instant) -> Duration {
        let metrics = self.metrics.as_ref().map(|m| &m.clients);
        if self.control.clients.has_pending() || metrics.is_some_and(|c| c.has_pending()) {
            return Duration::ZERO;
        }
        let deadlines = self.control.clients.next_deadline().into_iter().chain(metrics.and_then(|c| c.next_deadline()));
        let next = self.node.poll_timeout().into_iter().chain(deadlines).chain(self.ports.next_retry()).min();
        next.map_or(MAX_SLEEP, |t| t.saturating_duration_since(now).min(MAX_SLEEP))
    }

    /// Read what `source` has (`events` were reported), hand it to the node and answer clients.
    fn serve(&mut self, source: Source, events: i16, now: Instant) {
        let esp_sockets = self.esp.as_ref().map(|e| &e.sockets);
        let switch = self.node.switch_mut();
        match source {
            Source::Signals => {}
            Source::Tap(port) => {
                let Some(tap) = self.ports.taps.get(port).and_then(Option::as_ref) else { return };
                let gone = if events & BROKEN != 0 {
                    Some(format!("poll reported {}", poll::describe(events)))
                } else {
                    datapath::tap_to_underlay(tap, port, now, switch, &self.udp, esp_sockets, &mut self.tx, &mut self.driver)
                        .map(|e| format!("read: {e}"))
                };
                if let Some(why) = gone {
                    self.ports.lost(port, &why, now, &mut self.driver);
                }
            }
            Source::Vxlan => {
                datapath::underlay_to_tap(&self.udp, Tunnel::Vxlan, now, switch, &self.ports.taps, &mut self.rx, &mut self.driver)
            }
            Source::Esp => {
                if let Some(sockets) = esp_sockets {
                    datapath::underlay_to_tap(sockets, Tunnel::Esp, now, switch, &self.ports.taps, &mut self.rx, &mut self.driver);
                }
            }
            Source::Gossip => {
                if let Some(g) = self.gossip.as_mut() {
                    g.receive(now, &mut self.node);
                }
            }
            Source::Metrics => {
                if let Some(m) = self.metrics.as_mut() {
                    m.clients.accept(now);
                }
            }
            Source::MetricsClient(slot) => {
                if let Some(m) = self.metrics.as_mut() {
                    m.clients.ready(slot);
                }
            }
            Source::Control => self.control.clients.accept(now),
            Source::ControlClient(slot) => self.control.clients.ready(slot),
        }
    }

    /// Answer the clients whose request is complete (a bounded number per wakeup), and drop
    /// those past their deadline.
    fn serve_clients(&mut self, now: Instant) {
        for (slot, command) in self.control.clients.take_pending() {
            let leases: Vec<_> = self.node.leases().iter().filter_map(|l| Some((l.vni(), l.current()?.ipv4()?))).collect();
            if let Some(reply) = self.cni.answer(&command, &self.config, self.node.switch_mut(), &leases) {
                self.control.clients.respond(slot, reply.into_bytes(), now);
                continue;
            }
            let reply = match command.strip_prefix("forget ") {
                // `vxswitch forget HOST` edited the trust store on disk; the node forgets too.
                Some(host) => {
                    let host = host.trim();
                    tracing::info!(%host, forgotten = self.node.forget(host), "gossip trust binding forgotten");
                    "ok\n".to_string()
                }
                None => self.answer(&command),
            };
            self.control.clients.respond(slot, reply.into_bytes(), now);
        }
        self.control.clients.expire(now);
        let control = self.control.clients.events;
        self.driver.control_clients_refused = control.refused;
        self.driver.clients_timed_out = control.timed_out;
        let Some(pending) = self.metrics.as_mut().map(|m| m.clients.take_pending()) else { return };
        let page = (!pending.is_empty()).then(|| metrics::http_response(&self.metrics_page()));
        if let (Some(m), Some(page)) = (self.metrics.as_mut(), page) {
            for (slot, _request) in pending {
                m.clients.respond(slot, page.clone(), now);
            }
        }
        if let Some(m) = self.metrics.as_mut() {
            m.clients.expire(now);
            self.driver.metrics_clients_refused = m.clients.events.refused;
            self.driver.clients_timed_out += m.clients.events.timed_out;
        }
    }

    /// Send what the node queued and hand its control updates to the kernel programmers.
    fn drain(&mut self) {
        // Floating IPs first, inline: a release must be done in the kernel (address off the
        // uplink) before the record announcing it leaves in the gossip sends below, or the next
        // owner could take the address while this host still answers ARP for it.
        while let Some(action) = self.node.poll_floating() {
            if let Some(f) = self.floating.as_mut() {
                f.apply(action);
            }
        }
        // Datagrams for the underlay go through the TAP side's batches, in the order they were
        // sealed (behind any batch still with the send thread); what is left is for the TAPs.
        let esp_sockets = self.esp.as_ref().map(|e| &e.sockets);
        self.tx.send_originated(self.node.switch_mut(), &self.udp, esp_sockets, &mut self.driver);
        while let Some(t) = self.node.poll_transmit() {
            self.transmit(t);
        }
        if let (Some(esp), Some(tunnels)) = (self.esp.as_mut(), self.node.switch_mut().esp_mut()) {
            if let Err(e) = esp.serve_reservations(tunnels, Instant::now()) {
                tracing::error!("ESP sequence numbers not reserved, manual SAs wait: {e}");
            }
        }
        if let Some(g) = self.gossip.as_mut() {
            g.send_pending(&mut self.node);
        }
        if let (Some(trust), Some(files)) = (self.node.take_trust_changed(), &self.state_files) {
            if let Err(e) = files.save_trust(&trust) {
                tracing::warn!("saving the gossip trust store: {e}");
            }
        }
        self.save_leases();
        while let Some(update) = self.node.poll_kernel_update() {
            if let Some(h) = self.host_subnet.as_mut() {
                h.apply(&update);
            }
            if let Some(o) = self.offload.as_mut() {
                o.apply(&update);
            }
        }
        if let Some(services) = self.node.poll_services() {
            self.services.apply(services);
        }
    }

    /// Persist every lease change the node made (durably, before the next loop turn), so a restart
    /// claims the same subnet again.
    fn save_leases(&mut self) {
        let mut changed = false;
        while let Some(event) = self.node.poll_lease_event() {
            self.claims = self.claims.with_lease(&event);
            changed = true;
            let current = event.claim.and_then(|c| c.ipv4());
            if let Err(e) = host_lease::follow(&self.config, &mut self.host_state, event.vni, event.previous, current) {
                tracing::error!(vni = %event.vni, "host-subnet gateway not moved to the lease: {e}");
            }
        }
        if let (true, Some(files)) = (changed, &self.state_files) {
            if let Err(e) = files.save_claims(&self.claims) {
                tracing::error!("saving the subnet lease to {}: {e}", files.claims().display());
            }
        }
    }

    /// Write one packet the node originated; the one place its tunnel picks the socket.
    fn transmit(&mut self, t: Transmit) {
        match t {
            Transmit::Tap { port, frame } => {
                if self.ports.taps.get(port).and_then(Option::as_ref).is_none_or(|t| t.write(&frame).is_err()) {
                    self.driver.tap_write_errors += 1;
                }
            }
            Transmit::Underlay { dst, tunnel, payload } => {
                let sockets = match tunnel {
                    Tunnel::Esp => self.esp.as_ref().map(|e| &e.sockets),
                    Tunnel::Vxlan => Some(&self.udp),
                };
                if let Some(s) = sockets {
                    s.send_batch(0, &[(dst, &payload[..])], |e| self.driver.send_failed(&e, 1));
                }
            }
        }
    }

    fn answer(&mut self, cmd: &str) -> String {
        if let Some(args) = cmd.strip_prefix("floating") {
            return self.floating_answer(args);
        }
        if let Some(args) = cmd.strip_prefix("service") {
            return self.service_answer(args);
        }
        match cmd {
            "metrics" => self.metrics_page(),
            "reload" => self.reload_answer(Instant::now()),
            "peers" => match self.node.membership() {
                Some(m) => {
                    let send_errors = self.gossip.as_ref().map_or(0, GossipSocket::send_errors);
                    let mut peers = gossip::peers_status(m, send_errors, Instant::now());
                    peers["floating"] = floating_status::section(&self.node, self.floating.as_ref());
                    peers["services"] = services_cmd::section(&self.node, &self.services);
                    serde_json::to_string_pretty(&peers).unwrap_or_default() + "\n"
                }
                None => "{\"error\": \"gossip is not configured; peers are static\"}\n".to_string(),
            },
            _ => {
                let gossip = self.gossip_counters();
                let networks: Vec<_> = self.ports.networks().collect();
                let sources = status::Sources {
                    started: self.started,
                    switch: self.node.switch(),
                    driver: &self.driver,
                    gossip: gossip.as_ref(),
                    networks: &networks,
                    config: &self.config,
                    offload: self.offload.as_ref(),
                };
                let text = status::answer(cmd, &sources);
                match cmd {
                    "stats" | "" => floating_status::add_to(
                        &text,
                        &[
                            ("floating", floating_status::section(&self.node, self.floating.as_ref())),
                            ("services", services_cmd::section(&self.node, &self.services)),
                        ],
                    ),
                    _ => text,
                }
            }
        }
    }

    /// The `service ...` commands (see [`services_cmd`]).
    fn service_answer(&mut self, args: &str) -> String {
        let cmd = match services_cmd::parse(args) {
            Ok(c) => c,
            Err(e) => return serde_json::json!({ "error": e }).to_string() + "\n",
        };
        if cmd != services_cmd::ServiceCommand::List {
            tracing::info!(?cmd, "services changed from the control socket");
            let specs = services_cmd::apply(self.node.local_services().to_vec(), &cmd);
            self.node.set_services(Instant::now(), specs);
            self.drain();
        }
        serde_json::to_string_pretty(&services_cmd::section(&self.node, &self.services)).unwrap_or_default() + "\n"
    }

    /// The `floating ...` commands (see [`floating_cmd`]).
    fn floating_answer(&mut self, args: &str) -> String {
        let cmd = match floating_cmd::parse(args, &self.config) {
            Ok(c) => c,
            Err(e) => return serde_json::json!({ "error": e }).to_string() + "\n",
        };
        let specs = floating_cmd::apply(self.node.floating_owners().into_iter().map(|o| o.spec).collect(), &cmd);
        if cmd != floating_cmd::FloatingCommand::List {
            tracing::info!(?cmd, "floating IPs changed from the control socket");
            self.node.set_floating(Instant::now(), specs);
            self.drain();
        }
        serde_json::to_string_pretty(&floating_status::section(&self.node, self.floating.as_ref())).unwrap_or_default() + "\n"
    }

    fn metrics_page(&self) -> String {
        let ports: Vec<_> = self.ports.networks().map(|(port, n)| (port, n.vni)).collect();
        metrics::render(self.node.switch(), &self.driver, &ports, self.gossip_counters().as_ref())
            + &floating_status::metrics(&self.node, self.floating.as_ref())
    }

    fn gossip_counters(&self) -> Option<gossip::GossipCounters> {
        let send_errors = self.gossip.as_ref().map_or(0, GossipSocket::send_errors);
        self.node.membership().map(|m| gossip::counters(m, send_errors, self.node.lease_stats()))
    }

    /// Clean shutdown: withdraw the routes and kernel entries this daemon installed.
    fn shutdown(self) {
        if let Some(f) = self.floating {
            f.shutdown();
        }
        self.services.shutdown();
        if let Some(h) = self.host_subnet {
            h.withdraw_all();
        }
        if let Some(o) = self.offload {
            o.shutdown();
        }
        self.host_state.finish();
    }
}

/// The TAP -> underlay path: with `workers = 2` its sends go through a thread of their own, on
/// copies of the underlay sockets made after their offloads were set.
fn tx_path(config: &Config, payload_len: usize, udp: &UnderlaySockets, esp: Option<&UnderlaySockets>) -> TxPath {
    if config.underlay.workers < 2 {
        return TxPath::new(payload_len);
    }
    let threaded = udp
        .try_clone()
        .and_then(|u| Ok((u, esp.map(UnderlaySockets::try_clone).transpose()?)))
        .and_then(|(u, e)| TxPath::with_send_thread(payload_len, u, e));
    match threaded {
        Ok(tx) => {
            tracing::info!(workers = 2, "sends to the underlay on a thread of their own");
            tx
        }
        Err(e) => {
            tracing::warn!("no send thread ({e}); sending on the daemon thread");
            TxPath::new(payload_len)
        }
    }
}

/// The VXLAN sockets, with UDP GSO/GRO when a TAP has offload.
fn bind_underlay(config: &Config, ports: &TapPorts) -> Result<UnderlaySockets, SysError> {
    // Without a switched network the VXLAN port is left to the kernel (kernel mode's device).
    let rx_port = if config.switched_networks().next().is_some() { config.underlay.port } else { 0 };
    let mut udp = UnderlaySockets::bind(config.underlay.address, rx_port, config.underlay.port)?;
    enable_offloads(config, ports, &mut udp, "VXLAN");
    Ok(udp)
}

/// Turn on UDP GSO and GRO on `sockets` (as configured) when a TAP has offload: the TAPs then
/// hand over TCP super-frames whose segments leave in runs, and take coalesced ones.
fn enable_offloads(config: &Config, ports: &TapPorts, sockets: &mut UnderlaySockets, what: &str) {
    if ports.open_taps().any(|(_, t)| t.offload()) {
        let gso = config.underlay.udp_gso && sockets.enable_gso();
        let gro = config.underlay.udp_gro && sockets.enable_gro();
        tracing::info!(sockets = what, udp_gso = gso, udp_gro = gro, "TAP offload on");
    }
}
