//! The daemon's event loop: TAPs and the underlay socket in, the switch core in the middle.
//!
//! Event loop choice: one thread and `poll(2)` over a handful of fds (signalfd, the VXLAN socket,
//! the control socket, one TAP per network). The switch core is a single-owner state machine, so a
//! single thread drives it without locks; tokio would add a scheduler and cross-thread wakeups and
//! buy nothing for this few fds. Work per wakeup is bounded: at most [`udp::BATCH`] frames per TAP
//! and per `recvmmsg`, so one busy direction cannot starve the other. Frames are read into
//! preallocated buffers at offset [`HEADROOM`], encapsulated in place and sent with one `sendmmsg`
//! per flow group, so no inner frame is ever copied.

use std::io;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::control_socket::ControlSocket;
use super::tap::Tap;
use super::udp::{self, UnderlaySockets};
use super::{links, SysError};
use super::gossip::GossipDriver;
use super::hostsubnet_driver::HostSubnetDriver;
use crate::config::{Config, Mode};
use crate::dataplane::{CountersSnapshot, Forward, NetworkSpec, RoutedSpec, Switch, SwitchConfig, Transmit};
use crate::wire::vxlan::Vni;

/// Headroom in front of every frame buffer: room for outer headers prepended in place.
pub const HEADROOM: usize = 64;
/// Spare bytes behind every frame (for trailers such as ESP's).
pub const TAILROOM: usize = 64;
/// Longest poll sleep, so that signals and timers are never missed for long.
const MAX_SLEEP: Duration = Duration::from_millis(500);
/// Poll slot of the first TAP (after signals, VXLAN, control and gossip).
const FIRST_TAP_SLOT: usize = 4;
/// How often changed local container bindings are published to the cluster.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Driver-level counters (I/O failures that the sans-IO core cannot see).
#[derive(Debug, Default, Clone, Serialize)]
pub struct DriverCounters {
    /// `sendmmsg` failures (per datagram).
    pub underlay_send_errors: u64,
    /// Datagrams longer than the receive buffer.
    pub underlay_rx_truncated: u64,
    /// `recvmmsg` failures.
    pub underlay_recv_errors: u64,
    /// TAP write failures (queue full, device down).
    pub tap_write_errors: u64,
    /// TAP read failures.
    pub tap_read_errors: u64,
}

/// The `stats` answer.
#[derive(Debug, Serialize)]
struct Status<'a> {
    uptime_secs: u64,
    counters: CountersSnapshot,
    driver: &'a DriverCounters,
    fdb: crate::dataplane::fdb::FdbCounters,
    networks: Vec<NetworkStatus>,
}

#[derive(Debug, Serialize)]
struct NetworkStatus {
    vni: u32,
    tap: String,
    mode: String,
    peers: Vec<Ipv4Addr>,
    routes: Vec<(String, Ipv4Addr)>,
    fdb: Vec<FdbRow>,
}

#[derive(Debug, Serialize)]
struct FdbRow {
    mac: String,
    location: String,
    is_static: bool,
    idle_secs: u64,
}

struct Buffers {
    bufs: Vec<Vec<u8>>,
}

impl Buffers {
    fn new(count: usize, payload: usize) -> Self {
        Buffers { bufs: vec![vec![0u8; HEADROOM + payload + TAILROOM]; count] }
    }
}

/// One frame encapsulated and waiting for `sendmmsg`.
struct PendingSend {
    buf: usize,
    payload: Range<usize>,
    dests: Range<usize>,
    flow: u32,
}

/// Run vxswitch with `config` until SIGINT or SIGTERM.
pub fn run(config: &Config) -> Result<(), SysError> {
    let signals = SignalFd::block_term_signals()?;
    let mut host_subnet = HostSubnetDriver::start(config)?;
    let mut taps = Vec::new();
    for net in switched_networks(config) {
        let tap = Tap::create(&net.tap, net.mtu)?;
        links::configure_tap(&net.tap, net.bridge.as_deref(), net.address)?;
        tracing::info!(tap = %net.tap, vni = net.vni, mtu = net.mtu, "TAP up");
        taps.push(tap);
    }
    let udp = UnderlaySockets::bind(config.underlay.address, config.underlay.port, config.underlay.port)?;
    let control = ControlSocket::bind(&config.control_socket)?;
    let mut switch = Switch::new(switch_config(config), Instant::now());
    for net in switched_networks(config) {
        for update in net.static_updates() {
            switch.apply(Instant::now(), update);
        }
    }
    tracing::info!(underlay = %config.underlay.address, port = config.underlay.port, "vxswitch running");

    let mut gossip = GossipDriver::start(config, None, Instant::now())?;
    let mut next_publish = Instant::now();
    let started = Instant::now();
    let payload_len = (config.underlay.mtu as usize).max(2048);
    let mut tap_bufs = Buffers::new(udp::BATCH, payload_len);
    let mut rx_bufs = Buffers::new(udp::BATCH, payload_len);
    let mut meta = Vec::with_capacity(udp::BATCH);
    let mut pending: Vec<PendingSend> = Vec::with_capacity(udp::BATCH);
    let mut dests: Vec<Ipv4Addr> = Vec::new();
    let mut driver = DriverCounters::default();

    // Fixed slots: 0 signals, 1 VXLAN socket, 2 control socket, 3 gossip (or -1), then TAPs.
    let gossip_fd = gossip.as_ref().map_or(-1, GossipDriver::fd);
    let mut pollfds: Vec<libc::pollfd> = [signals.fd, udp.rx_fd(), control.fd(), gossip_fd]
        .into_iter()
        .chain(taps.iter().map(Tap::fd))
        .map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
        .collect();

    loop {
        let now = Instant::now();
        let next = switch.poll_timeout().into_iter().chain(gossip.as_ref().and_then(GossipDriver::poll_timeout)).min();
        let sleep = next.map_or(MAX_SLEEP, |t| t.saturating_duration_since(now).min(MAX_SLEEP));
        // SAFETY: pollfds is a valid array of pollfd for the duration of the call.
        let rc = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, sleep.as_millis() as i32) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(SysError::Os { op: "poll", source: e });
        }
        let now = Instant::now();
        if pollfds[0].revents != 0 {
            tracing::info!(signal = signals.read(), "shutting down");
            break;
        }
        if switch.poll_timeout().is_some_and(|t| t <= now) {
            switch.handle_timeout(now);
        }
        // TAP -> underlay.
        for (port, tap) in taps.iter().enumerate() {
            if pollfds[FIRST_TAP_SLOT + port].revents == 0 {
                continue;
            }
            pending.clear();
            dests.clear();
            for (i, buf) in tap_bufs.bufs.iter_mut().enumerate() {
                let len = match tap.read(&mut buf[HEADROOM..]) {
                    Ok(Some(len)) => len,
                    Ok(None) => break,
                    Err(e) => {
                        driver.tap_read_errors += 1;
                        tracing::debug!(tap = tap.name(), "read: {e}");
                        break;
                    }
                };
                if let Forward::Underlay { payload, dests: d, flow_hash } =
                    switch.handle_tap_frame(now, port, buf, HEADROOM..HEADROOM + len)
                {
                    let start = dests.len();
                    dests.extend_from_slice(d);
                    pending.push(PendingSend { buf: i, payload, dests: start..dests.len(), flow: flow_hash });
                }
            }
            flush_sends(&udp, &tap_bufs, &pending, &dests, &mut driver);
        }
        // Underlay -> TAP.
        if pollfds[1].revents != 0 {
            match udp.recv_batch(&mut rx_bufs.bufs, HEADROOM, &mut meta) {
                Ok(_) => {
                    for (i, &(len, from)) in meta.iter().enumerate() {
                        if len == usize::MAX {
                            driver.underlay_rx_truncated += 1;
                            continue;
                        }
                        let buf = &mut rx_bufs.bufs[i];
                        if let Forward::Tap { port, frame } =
                            switch.handle_underlay(now, *from.ip(), buf, HEADROOM..HEADROOM + len)
                        {
                            if taps[port].write(&buf[frame]).is_err() {
                                driver.tap_write_errors += 1;
                            }
                        }
                    }
                }
                Err(e) => {
                    driver.underlay_recv_errors += 1;
                    tracing::debug!("recvmmsg: {e}");
                }
            }
        }
        while let Some(t) = switch.poll_transmit() {
            match t {
                Transmit::Tap { port, frame } => {
                    if taps[port].write(&frame).is_err() {
                        driver.tap_write_errors += 1;
                    }
                }
            }
        }
        if let Some(g) = gossip.as_mut() {
            if pollfds[3].revents != 0 {
                g.on_readable(now);
            }
            g.poll(now, |update| {
                if let Some(h) = host_subnet.as_mut() {
                    h.apply(&update);
                }
                switch.apply(now, update);
            });
            if now >= next_publish {
                next_publish = now + PUBLISH_EVERY;
                if let Some(bindings) = switch.take_local_bindings_changed() {
                    g.publish_bindings(now, config, &bindings);
                }
            }
        }
        if pollfds[2].revents != 0 {
            control.serve(|cmd| match cmd {
                "peers" => match gossip.as_ref() {
                    Some(g) => serde_json::to_string_pretty(&g.status(Instant::now())).unwrap_or_default() + "\n",
                    None => "{\"error\": \"gossip is not configured; peers are static\"}\n".to_string(),
                },
                _ => answer(cmd, started, &switch, &driver, config),
            });
        }
    }
    if let Some(h) = host_subnet {
        h.withdraw_all();
    }
    Ok(())
}

/// The networks that have a TAP and go through the switch core (overlay and routed), in port order.
pub fn switched_networks(config: &Config) -> impl Iterator<Item = &crate::config::Network> {
    config.networks.iter().filter(|n| n.mode != Mode::HostSubnet)
}

/// Send every pending frame to its destinations, one `sendmmsg` per run of equal flow sockets.
fn flush_sends(udp: &UnderlaySockets, bufs: &Buffers, pending: &[PendingSend], dests: &[Ipv4Addr], driver: &mut DriverCounters) {
    let mut batch: Vec<(Ipv4Addr, &[u8])> = Vec::with_capacity(udp::BATCH);
    let mut flow = None;
    for p in pending {
        let socket = p.flow as usize % udp::SOURCE_PORTS;
        if flow.is_some_and(|f: u32| f as usize % udp::SOURCE_PORTS != socket) {
            udp.send_batch(flow.unwrap_or(0), &batch, |_| driver.underlay_send_errors += 1);
            batch.clear();
        }
        flow = Some(p.flow);
        let payload = &bufs.bufs[p.buf][p.payload.clone()];
        batch.extend(dests[p.dests.clone()].iter().map(|d| (*d, payload)));
    }
    if let Some(f) = flow {
        udp.send_batch(f, &batch, |_| driver.underlay_send_errors += 1);
    }
}

fn answer(cmd: &str, started: Instant, switch: &Switch, driver: &DriverCounters, config: &Config) -> String {
    match cmd {
        "stats" | "" => {
            let now = Instant::now();
            let networks = switched_networks(config)
                .enumerate()
                .map(|(port, n)| NetworkStatus {
                    vni: n.vni,
                    tap: n.tap.clone(),
                    mode: format!("{:?}", n.mode),
                    peers: switch.peers(port).to_vec(),
                    routes: switch
                        .router(port)
                        .map(|r| r.routes().iter().map(|(net, via)| (net.to_string(), via)).collect())
                        .unwrap_or_default(),
                    fdb: switch
                        .fdb()
                        .iter()
                        .filter(|(k, _)| k.vni == n.vni)
                        .map(|(k, e)| FdbRow {
                            mac: k.mac.to_string(),
                            location: match e.location {
                                crate::dataplane::Location::Local => "local".into(),
                                crate::dataplane::Location::Remote(ip) => ip.to_string(),
                            },
                            is_static: e.is_static,
                            idle_secs: now.saturating_duration_since(e.last_seen).as_secs(),
                        })
                        .collect(),
                })
                .collect();
            let status = Status {
                uptime_secs: started.elapsed().as_secs(),
                counters: switch.counters().snapshot(),
                driver,
                fdb: switch.fdb().counters(),
                networks,
            };
            serde_json::to_string_pretty(&status).unwrap_or_default() + "\n"
        }
        other => format!("{{\"error\": \"unknown command {other:?}\"}}\n"),
    }
}

/// The switch core's view of the configuration.
pub fn switch_config(config: &Config) -> SwitchConfig {
    SwitchConfig {
        fdb_ageing: config.fdb_ageing,
        fdb_max_entries: config.fdb_max_entries,
        networks: switched_networks(config)
            .map(|n| NetworkSpec {
                vni: Vni::new(n.vni).expect("validated by config"),
                max_frame_len: n.max_frame_len(config.underlay.mtu),
                // Peers, routes and bindings arrive as ControlUpdates, like gossip's.
                peers: Vec::new(),
                unknown_arp: n.unknown_arp,
                routed: match (n.mode, &n.host_subnet) {
                    (Mode::Routed, Some(h)) => {
                        Some(RoutedSpec { subnet: h.subnet, gateway_ip: h.gateway, gateway_mac: n.gateway_mac })
                    }
                    _ => None,
                },
            })
            .collect(),
    }
}

/// SIGINT/SIGTERM delivered through a signalfd, so the poll loop sees them as an fd.
struct SignalFd {
    fd: libc::c_int,
}

impl SignalFd {
    fn block_term_signals() -> Result<Self, SysError> {
        // SAFETY: plain libc calls on a locally owned, initialised sigset.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(SysError::Os { op: "pthread_sigmask", source: io::Error::last_os_error() });
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(SysError::Os { op: "signalfd", source: io::Error::last_os_error() });
            }
            Ok(SignalFd { fd })
        }
    }

    fn read(&self) -> u32 {
        // SAFETY: reading one signalfd_siginfo into properly sized storage.
        unsafe {
            let mut info: libc::signalfd_siginfo = std::mem::zeroed();
            libc::read(self.fd, (&mut info as *mut libc::signalfd_siginfo).cast(), std::mem::size_of::<libc::signalfd_siginfo>());
            info.ssi_signo
        }
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        // SAFETY: closing an fd we own.
        unsafe { libc::close(self.fd) };
    }
}
