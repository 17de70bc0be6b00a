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
//! timeout. Frames are read into preallocated buffers at offset [`HEADROOM`] and encapsulated in
//! place; the per-wakeup data path, with TSO/GSO/GRO offloads where they are on, is in
//! [`crate::sys::fastpath::datapath`] and works on the node's switch directly.
//!
//! [`HEADROOM`]: crate::sys::fastpath::HEADROOM

pub mod control_socket;
pub mod esp;
pub mod gossip;
pub mod instance_lock;
pub mod metrics;
mod poll;
pub mod signals;
pub mod status;

use std::io;
use std::time::{Duration, Instant, SystemTime};

use crate::config::Config;
use crate::dataplane::{Transmit, Tunnel};
use crate::node::{self, Node, NodeConfig};
use crate::sys::fastpath::datapath::{self, RxPath, TxPath};
use crate::sys::fastpath::tap::Tap;
use crate::sys::fastpath::udp::{self, UnderlaySockets};
use crate::sys::fastpath::DriverCounters;
use crate::sys::kernel::host_subnet::HostSubnetDriver;
use crate::sys::kernel::links;
use crate::sys::kernel::vtep::VtepDriver;
use crate::sys::SysError;
use control_socket::ControlSocket;
use esp::EspDriver;
use gossip::GossipSocket;
use metrics::MetricsListener;
use poll::{PollSet, Source};
use signals::SignalFd;

/// Longest poll sleep, so that signals and timers are never missed for long.
const MAX_SLEEP: Duration = Duration::from_millis(500);

/// Run vxswitch with `config` until SIGINT or SIGTERM.
pub fn run(config: &Config) -> Result<(), SysError> {
    // Before any kernel state is touched: a second instance must change nothing.
    let _instance = instance_lock::InstanceLock::acquire(&config.control_socket)?;
    let signals = SignalFd::block_term_signals()?;
    let mut daemon = Daemon::start(config)?;
    let mut polls = PollSet::new(daemon.poll_entries(&signals));
    loop {
        let sleep = daemon.node.poll_timeout().map_or(MAX_SLEEP, |t| t.saturating_duration_since(Instant::now()).min(MAX_SLEEP));
        if !polls.wait(sleep)? {
            continue;
        }
        if polls.ready().any(|s| s == Source::Signals) {
            tracing::info!(signal = signals.read(), "shutting down");
            break;
        }
        let now = Instant::now();
        daemon.node.handle_timeout(now);
        for source in polls.ready() {
            daemon.serve(source, now);
        }
        daemon.drain();
    }
    daemon.shutdown();
    Ok(())
}

/// Everything the loop drives: the node and the descriptors and programmers around it.
struct Daemon<'c> {
    config: &'c Config,
    node: Node,
    taps: Vec<Tap>,
    udp: UnderlaySockets,
    esp: Option<EspDriver>,
    gossip: Option<GossipSocket>,
    control: ControlSocket,
    metrics: Option<MetricsListener>,
    host_subnet: Option<HostSubnetDriver>,
    offload: Option<VtepDriver>,
    tx: TxPath,
    rx: RxPath,
    driver: DriverCounters,
    started: Instant,
    state_files: Option<node::state::StateFiles>,
}

impl<'c> Daemon<'c> {
    /// Program the kernel, open every descriptor and build the node.
    fn start(config: &'c Config) -> Result<Self, SysError> {
        let host_subnet = HostSubnetDriver::start(config)?;
        let offload = VtepDriver::start(config)?;
        let taps = open_taps(config)?;
        let udp = bind_underlay(config, &taps)?;
        let control = ControlSocket::bind(&config.control_socket, config.control_socket_group.as_ref().map(|g| g.1))?;
        let (wall, now) = (SystemTime::now(), Instant::now());
        let epoch = node::start_epoch(wall);
        let (esp, tunnels) = EspDriver::start(config, epoch, now)?.unzip();
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
        let node = Node::new(NodeConfig::from_config(config, epoch, wall, tunnels, join), now, wall)
            .map_err(|e| SysError::Os { op: "build gossip record", source: io::Error::new(io::ErrorKind::InvalidInput, e.to_string()) })?;
        tracing::info!(underlay = %config.underlay.address, port = config.underlay.port, "vxswitch running");
        let payload_len = (config.underlay.mtu as usize).max(2048);
        let rx_len = if udp.gro_enabled() { payload_len.max(udp::GRO_BUFFER) } else { payload_len };
        let metrics = config.metrics_listen.map(MetricsListener::bind).transpose()?;
        Ok(Daemon {
            config,
            node,
            taps,
            udp,
            esp,
            gossip,
            control,
            metrics,
            host_subnet,
            offload,
            tx: TxPath::new(payload_len),
            rx: RxPath::new(rx_len),
            driver: DriverCounters::default(),
            started: Instant::now(),
            state_files,
        })
    }

    /// What the loop polls, in the order it serves them: TAPs before the underlay, as before.
    fn poll_entries(&self, signals: &SignalFd) -> Vec<(std::os::fd::RawFd, Source)> {
        let mut entries = vec![(signals.fd, Source::Signals)];
        entries.extend(self.taps.iter().enumerate().map(|(port, tap)| (tap.fd(), Source::Tap(port))));
        entries.push((self.udp.rx_fd(), Source::Vxlan));
        entries.extend(self.esp.as_ref().map(|e| (e.sockets.rx_fd(), Source::Esp)));
        entries.extend(self.gossip.as_ref().map(|g| (g.fd(), Source::Gossip)));
        entries.extend(self.metrics.as_ref().map(|m| (m.fd(), Source::Metrics)));
        entries.push((self.control.fd(), Source::Control));
        entries
    }

    /// Read what `source` has, hand it to the node and answer clients.
    fn serve(&mut self, source: Source, now: Instant) {
        let esp_sockets = self.esp.as_ref().map(|e| &e.sockets);
        let switch = self.node.switch_mut();
        match source {
            Source::Signals => {}
            Source::Tap(port) => {
                datapath::tap_to_underlay(&self.taps[port], port, now, switch, &self.udp, esp_sockets, &mut self.tx, &mut self.driver)
            }
            Source::Vxlan => datapath::underlay_to_tap(&self.udp, Tunnel::Vxlan, now, switch, &self.taps, &mut self.rx, &mut self.driver),
            Source::Esp => {
                if let Some(sockets) = esp_sockets {
                    datapath::underlay_to_tap(sockets, Tunnel::Esp, now, switch, &self.taps, &mut self.rx, &mut self.driver);
                }
            }
            Source::Gossip => {
                if let Some(g) = self.gossip.as_mut() {
                    g.receive(now, &mut self.node);
                }
            }
            Source::Metrics => {
                if let Some(m) = self.metrics.as_ref() {
                    m.serve(|| self.metrics_page());
                }
            }
            Source::Control => {
                let mut forget = Vec::new();
                self.control.serve(|cmd| match cmd.strip_prefix("forget ") {
                    Some(host) => {
                        forget.push(host.trim().to_string());
                        "ok\n".to_string()
                    }
                    None => self.answer(cmd),
                });
                for host in forget {
                    tracing::info!(%host, forgotten = self.node.forget(&host), "gossip trust binding forgotten");
                }
            }
        }
    }

    /// Send what the node queued and hand its control updates to the kernel programmers.
    fn drain(&mut self) {
        while let Some(t) = self.node.poll_transmit() {
            self.transmit(t);
        }
        if let Some(g) = self.gossip.as_mut() {
            g.send_pending(&mut self.node);
        }
        if let (Some(trust), Some(files)) = (self.node.take_trust_changed(), &self.state_files) {
            if let Err(e) = files.save_trust(&trust) {
                tracing::warn!("saving the gossip trust store: {e}");
            }
        }
        while let Some(update) = self.node.poll_kernel_update() {
            if let Some(h) = self.host_subnet.as_mut() {
                h.apply(&update);
            }
            if let Some(o) = self.offload.as_mut() {
                o.apply(&update);
            }
        }
    }

    /// Write one packet the node originated; the one place its tunnel picks the socket.
    fn transmit(&mut self, t: Transmit) {
        match t {
            Transmit::Tap { port, frame } => {
                if self.taps[port].write(&frame).is_err() {
                    self.driver.tap_write_errors += 1;
                }
            }
            Transmit::Underlay { dst, tunnel, payload } => {
                let sockets = match tunnel {
                    Tunnel::Esp => self.esp.as_ref().map(|e| &e.sockets),
                    Tunnel::Vxlan => Some(&self.udp),
                };
                if let Some(s) = sockets {
                    s.send_batch(0, &[(dst, &payload[..])], |_| self.driver.underlay_send_errors += 1);
                }
            }
        }
    }

    fn answer(&self, cmd: &str) -> String {
        match cmd {
            "metrics" => self.metrics_page(),
            "peers" => match self.node.membership() {
                Some(m) => {
                    let send_errors = self.gossip.as_ref().map_or(0, GossipSocket::send_errors);
                    serde_json::to_string_pretty(&gossip::peers_status(m, send_errors, Instant::now())).unwrap_or_default() + "\n"
                }
                None => "{\"error\": \"gossip is not configured; peers are static\"}\n".to_string(),
            },
            _ => status::answer(
                cmd,
                self.started,
                self.node.switch(),
                &self.driver,
                self.gossip_counters().as_ref(),
                self.config,
                self.offload.as_ref(),
            ),
        }
    }

    fn metrics_page(&self) -> String {
        let vnis: Vec<u32> = self.config.switched_networks().map(|n| n.vni).collect();
        metrics::render(self.node.switch(), &self.driver, &vnis, self.gossip_counters().as_ref())
    }

    fn gossip_counters(&self) -> Option<gossip::GossipCounters> {
        let send_errors = self.gossip.as_ref().map_or(0, GossipSocket::send_errors);
        self.node.membership().map(|m| gossip::counters(m, send_errors))
    }

    /// Clean shutdown: withdraw the routes and kernel entries this daemon installed.
    fn shutdown(self) {
        if let Some(h) = self.host_subnet {
            h.withdraw_all();
        }
        if let Some(o) = self.offload {
            o.shutdown();
        }
    }
}

/// One TAP per switched network, configured and up.
fn open_taps(config: &Config) -> Result<Vec<Tap>, SysError> {
    let mut taps = Vec::new();
    for net in config.switched_networks() {
        // ESP stays on the per-packet path: its TAP never gets offload.
        let tap_offload = if net.encrypted { Some(false) } else { config.underlay.offload };
        let tap = Tap::create(&net.tap, net.mtu, tap_offload)?;
        links::configure_link(&net.tap, net.bridge.as_deref(), net.address)?;
        tracing::info!(tap = %net.tap, vni = net.vni, mtu = net.mtu, offload = tap.offload(), "TAP up");
        taps.push(tap);
    }
    Ok(taps)
}

/// The VXLAN sockets, with UDP GSO/GRO when a TAP has offload.
fn bind_underlay(config: &Config, taps: &[Tap]) -> Result<UnderlaySockets, SysError> {
    // Without a switched network the VXLAN port is left to the kernel (kernel mode's device).
    let rx_port = if config.switched_networks().next().is_some() { config.underlay.port } else { 0 };
    let mut udp = UnderlaySockets::bind(config.underlay.address, rx_port, config.underlay.port)?;
    if taps.iter().any(Tap::offload) {
        let gso = config.underlay.udp_gso && udp.enable_gso();
        let gro = config.underlay.udp_gro && udp.enable_gro();
        tracing::info!(udp_gso = gso, udp_gro = gro, "TAP offload on");
    }
    Ok(udp)
}
