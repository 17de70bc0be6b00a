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
use super::esp_driver::EspDriver;
use super::gossip::GossipDriver;
use super::signals::SignalFd;
use super::status::answer;
use super::metrics::MetricsListener;
use super::hostsubnet_driver::HostSubnetDriver;
use super::offload::OffloadDriver;
use crate::config::{Config, Mode};
use crate::dataplane::{Forward, NetworkSpec, RoutedSpec, Switch, SwitchConfig, Transmit};
use crate::wire::vxlan::Vni;

/// Headroom in front of every frame buffer: room for outer headers prepended in place.
pub const HEADROOM: usize = 64;
/// Spare bytes behind every frame (for trailers such as ESP's).
pub const TAILROOM: usize = 64;
/// Longest poll sleep, so that signals and timers are never missed for long.
const MAX_SLEEP: Duration = Duration::from_millis(500);
/// Poll slot of the first TAP (after signals, VXLAN, control and gossip).
const FIRST_TAP_SLOT: usize = 6;
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
    esp: bool,
}

/// Run vxswitch with `config` until SIGINT or SIGTERM.
pub fn run(config: &Config) -> Result<(), SysError> {
    let signals = SignalFd::block_term_signals()?;
    let mut host_subnet = HostSubnetDriver::start(config)?;
    let mut offload = OffloadDriver::start(config)?;
    let mut taps = Vec::new();
    for net in switched_networks(config) {
        let tap = Tap::create(&net.tap, net.mtu)?;
        links::configure_link(&net.tap, net.bridge.as_deref(), net.address)?;
        tracing::info!(tap = %net.tap, vni = net.vni, mtu = net.mtu, "TAP up");
        taps.push(tap);
    }
    // Without a switched network the VXLAN port is left to the kernel (kernel mode's device).
    let rx_port = if switched_networks(config).next().is_some() { config.underlay.port } else { 0 };
    let udp = UnderlaySockets::bind(config.underlay.address, rx_port, config.underlay.port)?;
    let control = ControlSocket::bind(&config.control_socket)?;
    let mut switch = Switch::new(switch_config(config), Instant::now());
    for net in switched_networks(config) {
        for update in net.static_updates() {
            switch.apply(Instant::now(), update);
        }
    }
    tracing::info!(underlay = %config.underlay.address, port = config.underlay.port, "vxswitch running");

    let epoch = crate::ipsec::random_epoch();
    let esp = EspDriver::start(config, epoch, &mut switch)?;
    let mut gossip = GossipDriver::start(config, esp.as_ref().and_then(|e| e.public_key), epoch, Instant::now())?;
    let mut next_publish = Instant::now();
    let started = Instant::now();
    let payload_len = (config.underlay.mtu as usize).max(2048);
    let mut tap_bufs = Buffers::new(udp::BATCH, payload_len);
    let mut rx_bufs = Buffers::new(udp::BATCH, payload_len);
    let mut meta = Vec::with_capacity(udp::BATCH);
    let mut pending: Vec<PendingSend> = Vec::with_capacity(udp::BATCH);
    let mut dests: Vec<Ipv4Addr> = Vec::new();
    let mut driver = DriverCounters::default();

    let metrics = config.metrics_listen.map(MetricsListener::bind).transpose()?;
    // Fixed slots: 0 signals, 1 VXLAN, 2 control, 3 gossip, 4 ESP, 5 metrics (-1 when absent), then TAPs.
    let gossip_fd = gossip.as_ref().map_or(-1, GossipDriver::fd);
    let esp_fd = esp.as_ref().map_or(-1, |e| e.sockets.rx_fd());
    let metrics_fd = metrics.as_ref().map_or(-1, MetricsListener::fd);
    let mut pollfds: Vec<libc::pollfd> = [signals.fd, udp.rx_fd(), control.fd(), gossip_fd, esp_fd, metrics_fd]
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
                if let Forward::Underlay { payload, dests: d, flow_hash, esp } =
                    switch.handle_tap_frame(now, port, buf, HEADROOM..HEADROOM + len)
                {
                    let start = dests.len();
                    dests.extend_from_slice(d);
                    pending.push(PendingSend { buf: i, payload, dests: start..dests.len(), flow: flow_hash, esp });
                }
            }
            flush_sends(&udp, esp.as_ref().map(|e| &e.sockets), &tap_bufs, &pending, &dests, &mut driver);
        }
        // Underlay -> TAP.
        if pollfds[1].revents != 0 {
            receive(&udp, false, now, &mut switch, &taps, &mut rx_bufs, &mut meta, &mut driver);
        }
        if let Some(e) = esp.as_ref() {
            if pollfds[4].revents != 0 {
                receive(&e.sockets, true, now, &mut switch, &taps, &mut rx_bufs, &mut meta, &mut driver);
            }
        }
        while let Some(t) = switch.poll_transmit() {
            match t {
                Transmit::Tap { port, frame } => {
                    if taps[port].write(&frame).is_err() {
                        driver.tap_write_errors += 1;
                    }
                }
                Transmit::Underlay { dst, esp: is_esp, payload } => {
                    let sockets = if is_esp { esp.as_ref().map(|e| &e.sockets) } else { Some(&udp) };
                    if let Some(s) = sockets {
                        s.send_batch(0, &[(dst, &payload[..])], |_| driver.underlay_send_errors += 1);
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
                if let Some(o) = offload.as_mut() {
                    o.apply(&update);
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
        if let Some(m) = metrics.as_ref() {
            if pollfds[5].revents != 0 {
                m.serve(|| metrics_page(&switch, &driver, config, gossip.as_ref()));
            }
        }
        if pollfds[2].revents != 0 {
            control.serve(|cmd| match cmd {
                "metrics" => metrics_page(&switch, &driver, config, gossip.as_ref()),
                "peers" => match gossip.as_ref() {
                    Some(g) => serde_json::to_string_pretty(&g.status(Instant::now())).unwrap_or_default() + "\n",
                    None => "{\"error\": \"gossip is not configured; peers are static\"}\n".to_string(),
                },
                _ => answer(cmd, started, &switch, &driver, config, offload.as_ref()),
            });
        }
    }
    if let Some(h) = host_subnet {
        h.withdraw_all();
    }
    if let Some(o) = offload {
        o.shutdown();
    }
    Ok(())
}

fn metrics_page(switch: &Switch, driver: &DriverCounters, config: &Config, gossip: Option<&GossipDriver>) -> String {
    let vnis: Vec<u32> = switched_networks(config).map(|n| n.vni).collect();
    super::metrics::render(switch, driver, &vnis, gossip.map(GossipDriver::alive_members))
}

/// The networks that have a TAP and go through the switch core (overlay and routed), in port order.
pub fn switched_networks(config: &Config) -> impl Iterator<Item = &crate::config::Network> {
    config.networks.iter().filter(|n| !matches!(n.mode, Mode::HostSubnet | Mode::Kernel))
}

/// Read a batch from `sockets` (VXLAN or ESP) and write what the switch delivers to the TAPs.
#[allow(clippy::too_many_arguments)]
fn receive(
    sockets: &UnderlaySockets,
    is_esp: bool,
    now: Instant,
    switch: &mut Switch,
    taps: &[Tap],
    rx_bufs: &mut Buffers,
    meta: &mut Vec<(usize, std::net::SocketAddrV4)>,
    driver: &mut DriverCounters,
) {
    if let Err(e) = sockets.recv_batch(&mut rx_bufs.bufs, HEADROOM, meta) {
        driver.underlay_recv_errors += 1;
        tracing::debug!("recvmmsg: {e}");
        return;
    }
    for (i, &(len, from)) in meta.iter().enumerate() {
        if len == usize::MAX {
            driver.underlay_rx_truncated += 1;
            continue;
        }
        let buf = &mut rx_bufs.bufs[i];
        let range = HEADROOM..HEADROOM + len;
        let forward = if is_esp {
            switch.handle_esp(now, *from.ip(), buf, range)
        } else {
            switch.handle_underlay(now, *from.ip(), buf, range)
        };
        if let Forward::Tap { port, frame } = forward {
            if taps[port].write(&buf[frame]).is_err() {
                driver.tap_write_errors += 1;
            }
        }
    }
}

/// Send every pending frame to its destinations, one `sendmmsg` per run of frames that leave
/// through the same socket (the flow's VXLAN source socket, or the ESP socket).
fn flush_sends(
    udp: &UnderlaySockets,
    esp: Option<&UnderlaySockets>,
    bufs: &Buffers,
    pending: &[PendingSend],
    dests: &[Ipv4Addr],
    driver: &mut DriverCounters,
) {
    let mut batch: Vec<(Ipv4Addr, &[u8])> = Vec::with_capacity(udp::BATCH);
    let mut current: Option<(bool, usize, u32)> = None;
    let mut send = |key: Option<(bool, usize, u32)>, batch: &mut Vec<(Ipv4Addr, &[u8])>| {
        if let Some((is_esp, _, flow)) = key {
            let sockets = if is_esp { esp } else { Some(udp) };
            match sockets {
                Some(s) => {
                    s.send_batch(flow, batch, |_| driver.underlay_send_errors += 1);
                }
                None => driver.underlay_send_errors += batch.len() as u64,
            }
        }
        batch.clear();
    };
    for p in pending {
        let key = (p.esp, p.flow as usize % udp::SOURCE_PORTS, p.flow);
        if current.is_some_and(|c| (c.0, c.1) != (key.0, key.1)) {
            send(current, &mut batch);
        }
        current = Some(key);
        let payload = &bufs.bufs[p.buf][p.payload.clone()];
        batch.extend(dests[p.dests.clone()].iter().map(|d| (*d, payload)));
    }
    send(current, &mut batch);
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
                encrypted: n.encrypted,
            })
            .collect(),
    }
}

