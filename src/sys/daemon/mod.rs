//! The daemon's event loop: TAPs and the underlay socket in, the switch core in the middle.
//!
//! Event loop choice: one thread and `poll(2)` over a handful of fds (signalfd, the VXLAN socket,
//! the control socket, one TAP per network). The switch core is a single-owner state machine, so a
//! single thread drives it without locks; tokio would add a scheduler and cross-thread wakeups and
//! buy nothing for this few fds. Work per wakeup is bounded: at most [`udp::BATCH`] frames per TAP
//! and per `recvmmsg`, so one busy direction cannot starve the other. Frames are read into
//! preallocated buffers at offset [`HEADROOM`] and encapsulated in place; the per-wakeup data
//! path, with TSO/GSO/GRO offloads where they are on, is in [`crate::sys::fastpath::datapath`].

pub mod control_socket;
pub mod esp;
pub mod gossip;
pub mod instance_lock;
pub mod metrics;
pub mod signals;
pub mod status;

use std::io;
use std::time::{Duration, Instant};

use crate::config::{Config, Mode};
use crate::dataplane::{NetworkSpec, RoutedSpec, Switch, SwitchConfig, Transmit, Tunnel};
use crate::sys::fastpath::datapath::{self, RxPath, TxPath};
use crate::sys::fastpath::tap::Tap;
use crate::sys::fastpath::udp::{self, UnderlaySockets};
use crate::sys::fastpath::DriverCounters;
use crate::sys::kernel::host_subnet::HostSubnetDriver;
use crate::sys::kernel::links;
use crate::sys::kernel::vtep::VtepDriver;
use crate::sys::SysError;
use crate::wire::vxlan::Vni;
use control_socket::ControlSocket;
use esp::EspDriver;
use gossip::GossipDriver;
use metrics::MetricsListener;
use signals::SignalFd;
use status::answer;

/// Longest poll sleep, so that signals and timers are never missed for long.
const MAX_SLEEP: Duration = Duration::from_millis(500);
/// Poll slot of the first TAP (after signals, VXLAN, control and gossip).
const FIRST_TAP_SLOT: usize = 6;
/// How often changed local container bindings are published to the cluster.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Run vxswitch with `config` until SIGINT or SIGTERM.
pub fn run(config: &Config) -> Result<(), SysError> {
    // Before any kernel state is touched: a second instance must change nothing.
    let _instance = instance_lock::InstanceLock::acquire(&config.control_socket)?;
    let signals = SignalFd::block_term_signals()?;
    let mut host_subnet = HostSubnetDriver::start(config)?;
    let mut offload = VtepDriver::start(config)?;
    let mut taps = Vec::new();
    for net in config.switched_networks() {
        // ESP stays on the per-packet path: its TAP never gets offload.
        let tap_offload = if net.encrypted { Some(false) } else { config.underlay.offload };
        let tap = Tap::create(&net.tap, net.mtu, tap_offload)?;
        links::configure_link(&net.tap, net.bridge.as_deref(), net.address)?;
        tracing::info!(tap = %net.tap, vni = net.vni, mtu = net.mtu, offload = tap.offload(), "TAP up");
        taps.push(tap);
    }
    // Without a switched network the VXLAN port is left to the kernel (kernel mode's device).
    let rx_port = if config.switched_networks().next().is_some() { config.underlay.port } else { 0 };
    let mut udp = UnderlaySockets::bind(config.underlay.address, rx_port, config.underlay.port)?;
    if taps.iter().any(Tap::offload) {
        let gso = config.underlay.udp_gso && udp.enable_gso();
        let gro = config.underlay.udp_gro && udp.enable_gro();
        tracing::info!(udp_gso = gso, udp_gro = gro, "TAP offload on");
    }
    let control = ControlSocket::bind(&config.control_socket, config.control_socket_group.as_ref().map(|g| g.1))?;
    let mut switch = Switch::new(switch_config(config), Instant::now());
    for net in config.switched_networks() {
        for update in net.static_updates() {
            switch.apply(Instant::now(), update);
        }
    }
    tracing::info!(underlay = %config.underlay.address, port = config.underlay.port, "vxswitch running");

    // Larger after every restart, so the cluster prefers this start's record over the last one's.
    let unix_millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let epoch = crate::ipsec::start_epoch(unix_millis);
    let esp = EspDriver::start(config, epoch, &mut switch)?;
    let mut gossip = GossipDriver::start(config, esp.as_ref().and_then(|e| e.public_key), epoch, Instant::now())?;
    let mut next_publish = Instant::now();
    let started = Instant::now();
    let payload_len = (config.underlay.mtu as usize).max(2048);
    let mut tx = TxPath::new(payload_len);
    let mut rx = RxPath::new(if udp.gro_enabled() { payload_len.max(udp::GRO_BUFFER) } else { payload_len });
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
        #[allow(unsafe_code)]
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
            if pollfds[FIRST_TAP_SLOT + port].revents != 0 {
                let esp_sockets = esp.as_ref().map(|e| &e.sockets);
                datapath::tap_to_underlay(tap, port, now, &mut switch, &udp, esp_sockets, &mut tx, &mut driver);
            }
        }
        // Underlay -> TAP.
        if pollfds[1].revents != 0 {
            datapath::underlay_to_tap(&udp, Tunnel::Vxlan, now, &mut switch, &taps, &mut rx, &mut driver);
        }
        if let Some(e) = esp.as_ref() {
            if pollfds[4].revents != 0 {
                datapath::underlay_to_tap(&e.sockets, Tunnel::Esp, now, &mut switch, &taps, &mut rx, &mut driver);
            }
        }
        while let Some(t) = switch.poll_transmit() {
            match t {
                Transmit::Tap { port, frame } => {
                    if taps[port].write(&frame).is_err() {
                        driver.tap_write_errors += 1;
                    }
                }
                Transmit::Underlay { dst, tunnel, payload } => {
                    let sockets = match tunnel {
                        Tunnel::Esp => esp.as_ref().map(|e| &e.sockets),
                        Tunnel::Vxlan => Some(&udp),
                    };
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
                _ => answer(cmd, started, &switch, &driver, gossip.as_ref().map(GossipDriver::counters).as_ref(), config, offload.as_ref()),
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
    let vnis: Vec<u32> = config.switched_networks().map(|n| n.vni).collect();
    metrics::render(switch, driver, &vnis, gossip.map(GossipDriver::counters).as_ref())
}

/// The switch core's view of the configuration.
pub fn switch_config(config: &Config) -> SwitchConfig {
    SwitchConfig {
        fdb_ageing: config.fdb_ageing,
        fdb_max_entries: config.fdb_max_entries,
        networks: config
            .switched_networks()
            .map(|n| NetworkSpec {
                vni: Vni::new(n.vni).expect("validated by config"),
                max_frame_len: n.max_frame_len(config.underlay.mtu),
                // Peers, routes and bindings arrive as ControlUpdates, like gossip's.
                peers: Vec::new(),
                unknown_arp: n.unknown_arp,
                routed: match (n.mode, &n.host_subnet) {
                    (Mode::Routed, Some(h)) => Some(RoutedSpec { subnet: h.subnet, gateway_ip: h.gateway, gateway_mac: n.gateway_mac }),
                    _ => None,
                },
                tunnel: if n.encrypted { Tunnel::Esp } else { Tunnel::Vxlan },
            })
            .collect(),
    }
}
