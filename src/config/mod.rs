//! The configuration file (TOML) and its validation.
//!
//! Everything is checked before vxswitch touches the system: a bad file is rejected with the line,
//! the key and the reason (`vxswitch.toml:12: network[0].vni: 16777216 is out of range ...`).
//! Parsing goes through raw structs with `toml::Spanned` fields, so semantic errors (ranges,
//! duplicates, MTU arithmetic) can still point at the line they come from.

mod dual_stack;
mod floating;
pub mod lease;
mod ranges;
mod raw;
mod services;

pub use dual_stack::{HostSubnet6, MAX_SUBNET6_PREFIX, MIN_SUBNET6_PREFIX};
pub use lease::LeaseRange;
pub use ranges::{NumericKey, ALL as NUMERIC_KEYS};

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::arp::UnknownArp;
use crate::control::{ControlUpdate, GossipConfig, PeerInfo};
use crate::dataplane::default_gateway_mac;
use crate::dataplane::flood::{self, FloodLimit};
use crate::dataplane::mtu::{self, Encap, MtuPlan, OuterIp, Payload};
use crate::dataplane::MssClamp;
use crate::ipsec::{ManualSa, Suite};
use crate::wire::ethernet::EthernetAddress;
use crate::wire::vxlan::Vni;

/// Default VXLAN UDP port (IANA, RFC 7348).
pub const DEFAULT_PORT: u16 = 4789;
/// Default underlay MTU.
pub const DEFAULT_UNDERLAY_MTU: u32 = 1500;
/// Default `underlay.busy_poll_us`: about two scheduler wake-ups, long enough to catch the reply
/// of a request just forwarded between containers on one machine (measured: RTT p50 halved),
/// short enough that sparse traffic costs little (the window shrinks to nothing when spinning
/// keeps finding nothing), and nothing at all when idle.
///
/// Not longer, although a longer window lowers latency further: with 2000 a conversation with a
/// frame every millisecond keeps the daemon polling, and the full `vxswitch bench` run in
/// `docs/bench.md` measured RTT p50 56 us against 140 us (kernel vxlan 12 us), but 95 % of a core
/// per daemon while the 1 kpps of echoes flowed, against 5.8 % (1000: p50 58 against 90 us and
/// 42 % of a core in a loaded run). A host's background traffic (health checks, DNS, metrics
/// scrapes) is such a trickle, so a long default would keep a core busy on most hosts. See
/// `sys::daemon::busy_poll` and the README's "Latency" for the trade.
pub const DEFAULT_BUSY_POLL_US: u64 = 50;
/// Default `underlay.priority_boost`: 0, the nice value the daemon was started with (see
/// `sys::daemon::sched` for what a boost measured).
pub const DEFAULT_PRIORITY_BOOST: u64 = 0;
/// Default `underlay.workers`: see [`Underlay::workers`] for the measurement behind it.
pub const DEFAULT_WORKERS: u64 = 2;
/// Default control socket path.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/vxswitch/vxswitch.sock";

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The local underlay.
    pub underlay: Underlay,
    /// Unix socket on which `vxswitch stats` / `peers` / `metrics` query the daemon.
    pub control_socket: PathBuf,
    /// Group given read/write access to the control socket (mode 0660); `None`: root's group.
    pub control_socket_group: Option<(String, u32)>,
    /// Optional HTTP address serving Prometheus metrics (e.g. `127.0.0.1:9742`).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// FDB ageing time.
    pub fdb_ageing: Duration,
    /// FDB cap on dynamic entries.
    pub fdb_max_entries: usize,
    /// Per-source rate limit of flooded frames (`[flood]`).
    pub flood: FloodLimit,
    /// The overlay networks (one TAP each).
    pub networks: Vec<Network>,
    /// Gossip membership, when the cluster is formed by gossip instead of (or besides) static peers.
    pub gossip: Option<Gossip>,
    /// ESP settings (used when a network is encrypted).
    pub esp: EspSettings,
    /// Floating IPs (`[[floating_ip]]`).
    pub floating: Vec<crate::control::FloatingSpec>,
    /// Service VIPs (`[[service]]`).
    pub services: Vec<crate::control::ServiceSpec>,
}

/// Default path of the host's X25519 key.
pub const DEFAULT_HOST_KEY: &str = "/var/lib/vxswitch/host.key";

/// The `[esp]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspSettings {
    /// The host's long-term X25519 key (created with mode 0600 on first start).
    pub key_file: PathBuf,
    /// Sequence reservations of manual SAs and the last start epoch (see `ipsec::state`);
    /// by default next to the key file, named `<key file stem>.esp-state`.
    pub state_file: PathBuf,
    /// AEAD suite of automatically keyed SAs.
    pub suite: Suite,
    /// ESP-in-UDP port (RFC 3948), local and peers'.
    pub port: u16,
    /// Anti-replay window (packets).
    pub replay_window: u32,
    /// Rekey an SA that carried traffic after this long.
    pub rekey_after: Duration,
}

/// Default gossip UDP port.
pub const DEFAULT_GOSSIP_PORT: u16 = 4790;

/// The `[gossip]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct Gossip {
    /// This host's name in the cluster (default: the hostname).
    pub name: String,
    /// File holding the 32-byte cluster key (hex or raw, not readable by group or others).
    pub key_file: PathBuf,
    /// Where this host's record signing key, trust store and claim ages live (default: the
    /// directory of the ESP host key, `/var/lib/vxswitch`).
    pub state_dir: PathBuf,
    /// Timers, addresses and limits (and the cluster CIDR).
    pub config: GossipConfig,
}

/// The local underlay endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Underlay {
    /// Local underlay address, IPv4 or IPv6: the tunnel sockets bind to it, and every peer of
    /// every network must be of the same family (one underlay, one family).
    pub address: IpAddr,
    /// The host's IPv6 address on the underlay link when `address` is IPv4 (`address6`): announced
    /// in the gossip record as the next hop of host-subnet routes to this host's `subnet6`.
    pub address6: Option<Ipv6Addr>,
    /// VXLAN UDP port (local and peers').
    pub port: u16,
    /// Underlay MTU.
    pub mtu: u32,
    /// TAP TSO/checksum offload with userspace segmentation and coalescing: `None` (default) uses
    /// it when the kernel accepts it, `Some(false)` never, `Some(true)` requires it. Encrypted
    /// networks use it too: each segment is sealed on its own, runs leave in `UDP_SEGMENT` sends.
    pub offload: Option<bool>,
    /// Send segmented TCP with one `UDP_SEGMENT` send per run of equal datagrams (default on;
    /// off for kernels with UDP GSO bugs).
    pub udp_gso: bool,
    /// Receive coalesced datagrams with `UDP_GRO` (default on; off for kernels with UDP GRO bugs).
    pub udp_gro: bool,
    /// Longest busy-poll window after data-path work before the loop sleeps (adaptive below it;
    /// zero: never busy-poll). `busy_poll_us`, default [`DEFAULT_BUSY_POLL_US`].
    pub busy_poll: Duration,
    /// The daemon runs at nice `-priority_boost` (default [`DEFAULT_PRIORITY_BOOST`]; 0: the
    /// nice value it was started with), so that a frame waking it on a busy host is forwarded
    /// before other work's turn is over (see `sys::daemon::sched`).
    pub priority_boost: u32,
    /// Threads that move data-path bytes (`workers`, 1..=2, default [`DEFAULT_WORKERS`]): 1 is
    /// the daemon thread alone; 2 adds a send thread that hands each batch of encapsulated (and
    /// sealed) datagrams to the kernel while the daemon thread reads and switches the next one
    /// (see `sys::fastpath::send_worker`).
    pub workers: usize,
}

impl Underlay {
    /// The most UDP payload one underlay datagram carries: the MTU minus the outer IPv4 or IPv6
    /// header and UDP.
    pub fn max_udp_payload(&self) -> usize {
        self.mtu.saturating_sub(OuterIp::of(self.address).header_len() + mtu::UDP) as usize
    }

    /// This host's IPv6 address on the underlay link: `address6`, or `address` when it is IPv6.
    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        match self.address {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => self.address6,
        }
    }
}

/// How a network carries traffic between hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// L2 overlay: one broadcast domain across hosts over VXLAN, with a learned FDB.
    Overlay,
    /// Routed overlay: one subnet per host, vxswitch is the containers' gateway; VXLAN between hosts.
    Routed,
    /// No encapsulation: kernel routes `PEER_SUBNET via PEER_UNDERLAY` (peers on one L2 segment).
    HostSubnet,
    /// L2 overlay carried by a Linux kernel VXLAN device that vxswitch programs (`sys::kernel::vtep`).
    Kernel,
}

impl Mode {
    /// Every mode, in the order the README lists them.
    pub const ALL: [Mode; 4] = [Mode::Overlay, Mode::Routed, Mode::HostSubnet, Mode::Kernel];

    /// The name the configuration file uses (`mode = "host-subnet"`); `stats` and gossip records
    /// spell it the same way.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Overlay => "overlay",
            Mode::Routed => "routed",
            Mode::HostSubnet => "host-subnet",
            Mode::Kernel => "kernel",
        }
    }

    /// The mode a configuration name stands for.
    pub fn from_name(name: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Mode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// This host's container subnet (routed and host-subnet modes), as Rancher's host-subnet options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSubnet {
    /// The subnet this host owns.
    pub subnet: Ipv4Net,
    /// The containers' gateway (default: the first address of the subnet).
    pub gateway: Ipv4Addr,
    /// Optional range container addresses are taken from.
    pub range: Option<(Ipv4Addr, Ipv4Addr)>,
}

/// A peer host of a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its underlay address (of the same family as `[underlay] address`).
    pub address: IpAddr,
    /// Its IPv6 address on the underlay link, over an IPv4 underlay (the next hop of host-subnet
    /// routes to its `subnet6`).
    pub address6: Option<Ipv6Addr>,
    /// The container subnet it owns (routed and host-subnet modes).
    pub subnet: Option<Ipv4Net>,
    /// The IPv6 container subnet it owns next to `subnet` (dual stack).
    pub subnet6: Option<Ipv6Net>,
    /// Manual ESP keys: (outbound SA, inbound SA), as `ip xfrm state` takes them.
    pub manual_keys: Option<(ManualSa, ManualSa)>,
    /// The peer's long-term X25519 public key (automatic ESP keys without gossip).
    pub public_key: Option<[u8; 32]>,
}

/// One overlay network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// VXLAN network identifier (24 bit).
    pub vni: Vni,
    /// How traffic crosses hosts.
    pub mode: Mode,
    /// TAP device name (created by vxswitch); empty in host-subnet mode, which has no TAP.
    pub tap: String,
    /// The overlay MTU: the largest IP packet that crosses the tunnel in one piece; by default
    /// the underlay MTU minus the encapsulation overhead ([`Network::mtu_plan`]). Containers
    /// should use it; larger packets are answered with ICMP "too big" (see [`crate::dataplane::pmtu`]).
    pub mtu: u32,
    /// The TAP device's MTU: by default the larger of 1500 and the underlay MTU, so that frames
    /// from containers left at the bridge default reach vxswitch (a Linux bridge silently drops
    /// frames above the port's MTU) and get an ICMP answer instead of vanishing.
    pub tap_mtu: u32,
    /// MSS clamping of TCP SYNs crossing the overlay (default `auto`).
    pub mss_clamp: MssClamp,
    /// How the network's frames cross the underlay (sizes only): decides the default MTU.
    pub encap: Encap,
    /// The underlay's family (the size of the outer IP header), from `[underlay] address`.
    pub outer: OuterIp,
    /// Bridge to enslave the TAP to (must exist).
    pub bridge: Option<String>,
    /// Address to put on the TAP.
    pub address: Option<Ipv4Net>,
    /// Static peers.
    pub peers: Vec<Peer>,
    /// This host's subnet (routed and host-subnet modes), when configured.
    pub host_subnet: Option<HostSubnet>,
    /// This host's IPv6 subnet next to it (dual stack: `subnet6`, `gateway6`), when configured.
    pub host_subnet6: Option<HostSubnet6>,
    /// The range this host leases its subnet from instead (routed mode; see [`lease`]).
    pub lease: Option<LeaseRange>,
    /// The anycast gateway MAC (routed mode).
    pub gateway_mac: EthernetAddress,
    /// Policy for ARP requests without a binding (overlay mode).
    pub unknown_arp: UnknownArp,
    /// Static IP -> MAC bindings for the proxy-ARP responder (IPv4) and the ND proxy (IPv6).
    pub arp: Vec<(std::net::IpAddr, EthernetAddress)>,
    /// Carried in ESP-in-UDP instead of cleartext VXLAN.
    pub encrypted: bool,
    /// Kernel VXLAN device name (kernel mode, default `vtep<VNI>`); empty in the other modes.
    pub device: String,
}

impl Network {
    /// The static configuration as control-plane updates: the same path gossip uses.
    pub fn static_updates(&self) -> Vec<ControlUpdate> {
        let vni = self.vni;
        let mut out = Vec::new();
        for p in &self.peers {
            out.push(ControlUpdate::PeerUp { vni, peer: PeerInfo { underlay: p.address, vtep_mac: None } });
            for subnet in p.subnet.map(IpNet::V4).into_iter().chain(p.subnet6.map(IpNet::V6)) {
                let next_hop = crate::control::next_hop(&subnet, p.address, p.address6);
                out.push(ControlUpdate::RouteAdd { vni, subnet, via: p.address, next_hop });
            }
        }
        for &(ip, mac) in &self.arp {
            out.push(ControlUpdate::ArpBinding { vni, ip, mac });
        }
        out
    }

    /// The largest TAP MTU over `underlay_mtu` and where the bytes go ([`mtu::plan`]).
    pub fn mtu_plan(&self, underlay_mtu: u32) -> MtuPlan {
        mtu::plan_over(self.outer, underlay_mtu, self.encap)
    }

    /// One line for `vxswitch check`: the network, its MTU and how the underlay MTU is spent.
    pub fn mtu_line(&self, underlay_mtu: u32) -> String {
        let plan = self.mtu_plan(underlay_mtu);
        let name = if self.tap.is_empty() { &self.device } else { &self.tap };
        let chosen = if self.mtu == plan.mtu { "default" } else { "configured" };
        let name = if name.is_empty() { String::new() } else { format!(" {name}") };
        format!("network {} ({}){name}: mtu {} ({chosen}); largest {}", self.vni, self.mode, self.mtu, plan.describe())
    }

    /// Largest inner Ethernet frame that fits the underlay after encapsulation.
    pub fn max_frame_len(&self, underlay_mtu: u32) -> usize {
        self.mtu_plan(underlay_mtu).max_frame_len as usize
    }
}

/// Why a configuration was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, when read from one.
    pub file: Option<PathBuf>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key, e.g. `network[0].vni`.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}:", file.display())?;
        }
        if let Some(line) = self.line {
            write!(f, "{line}:")?;
        }
        if self.file.is_some() || self.line.is_some() {
            f.write_str(" ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Read and validate a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_path_buf()),
            line: None,
            key: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        Config::parse(&text).map_err(|e| ConfigError { file: Some(path.to_path_buf()), ..e })
    }

    /// Parse and validate configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: None,
            line: e.span().map(|s| line_of(text, s.start)),
            key: String::new(),
            reason: e.message().to_string(),
        })?;
        validate(text, raw)
    }

    /// The networks that have a TAP and go through the switch core (overlay and routed), in port order.
    pub fn switched_networks(&self) -> impl Iterator<Item = &Network> {
        self.networks.iter().filter(|n| !matches!(n.mode, Mode::HostSubnet | Mode::Kernel))
    }
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

fn validate(text: &str, raw: raw::RawConfig) -> Result<Config, ConfigError> {
    let err = |span: std::ops::Range<usize>, key: String, reason: String| ConfigError {
        file: None,
        line: Some(line_of(text, span.start)),
        key,
        reason,
    };
    let u = raw.underlay;
    let address = *u.address.get_ref();
    if !is_unicast(address) {
        return Err(err(u.address.span(), "underlay.address".into(), format!("{address} is not a unicast address")));
    }
    let address6 = dual_stack::validate_address6(text, &u)?;
    let num =
        |v: &Option<toml::Spanned<u64>>, k: NumericKey, default: u64| Ok::<_, ConfigError>(ranges::checked(text, v, k)?.unwrap_or(default));
    let port = num(&u.port, ranges::UNDERLAY_PORT, u64::from(DEFAULT_PORT))? as u16;
    let underlay_mtu = num(&u.mtu, ranges::UNDERLAY_MTU, u64::from(DEFAULT_UNDERLAY_MTU))? as u32;
    let fdb = raw.fdb.unwrap_or_default();
    let fdb_ageing = Duration::from_secs(num(&fdb.ageing_secs, ranges::FDB_AGEING_SECS, 300)?);
    let fdb_max_entries = num(&fdb.max_entries, ranges::FDB_MAX_ENTRIES, crate::dataplane::fdb::DEFAULT_MAX_ENTRIES as u64)? as usize;
    let fl = raw.flood.unwrap_or_default();
    let flood = FloodLimit {
        rate: num(&fl.rate, ranges::FLOOD_RATE, u64::from(flood::DEFAULT_RATE))? as u32,
        burst: num(&fl.burst, ranges::FLOOD_BURST, u64::from(flood::DEFAULT_BURST))? as u32,
        max_sources: num(&fl.max_sources, ranges::FLOOD_MAX_SOURCES, flood::DEFAULT_MAX_SOURCES as u64)? as usize,
    };
    if raw.network.is_empty() {
        return Err(ConfigError { file: None, line: None, key: "network".into(), reason: "at least one [[network]] is required".into() });
    }
    let esp = validate_esp(text, raw.esp)?;
    let mut seen = Seen::default();
    let mut networks = Vec::new();
    for (i, n) in raw.network.into_iter().enumerate() {
        let net = validate_network(text, i, n, (address, address6), (underlay_mtu, (esp.suite, raw.gossip.is_some())), &mut seen)?;
        networks.push(net);
    }
    let kernel = networks.iter().find(|n| n.mode == Mode::Kernel);
    let switched = networks.iter().find(|n| matches!(n.mode, Mode::Overlay | Mode::Routed));
    if let (Some(k), Some(s)) = (kernel, switched) {
        return Err(ConfigError {
            file: None,
            line: None,
            key: "network.mode".into(),
            reason: format!(
                "network {} (kernel) and network {} ({:?}) cannot share a host: the kernel VXLAN device owns UDP port {port}",
                k.vni, s.vni, s.mode
            ),
        });
    }
    let mut gossip = match raw.gossip {
        None => None,
        Some(g) => Some(validate_gossip(text, g, address)?),
    };
    if let Some(g) = gossip.as_mut() {
        if g.state_dir.as_os_str().is_empty() {
            g.state_dir = esp.key_file.parent().map_or_else(|| PathBuf::from("."), PathBuf::from);
        }
        check_cluster_cidr(text, g, &networks)?;
    }
    for n in networks.iter().filter(|n| n.encrypted) {
        if gossip.is_none() {
            if let Some(p) = n.peers.iter().find(|p| p.manual_keys.is_none() && p.public_key.is_none()) {
                return Err(ConfigError {
                    file: None,
                    line: None,
                    key: format!("network[vni={}].peers", n.vni),
                    reason: format!(
                        "peer {} of encrypted network {} has no key: give its `public_key` (vxswitch pubkey prints it), manual keys `esp = {{ spi_out, key_out, spi_in, key_in }}`, or configure [gossip] to learn keys",
                        p.address, n.vni
                    ),
                });
            }
        }
    }
    let metrics_listen = match &raw.metrics_listen {
        None => None,
        Some(m) => Some(m.get_ref().parse().map_err(|_| ConfigError {
            file: None,
            line: Some(line_of(text, m.span().start)),
            key: "metrics_listen".into(),
            reason: format!("{:?} is not an IP:PORT address", m.get_ref()),
        })?),
    };
    let control_socket_group = match &raw.control_socket_group {
        None => None,
        Some(g) => match nix::unistd::Group::from_name(g.get_ref()) {
            Ok(Some(group)) => Some((group.name, group.gid.as_raw())),
            _ => {
                return Err(ConfigError {
                    file: None,
                    line: Some(line_of(text, g.span().start)),
                    key: "control_socket_group".into(),
                    reason: format!("no group named {:?} on this host", g.get_ref()),
                })
            }
        },
    };
    let floating = floating::validate(text, raw.floating_ip, &networks, gossip.is_some())?;
    let services = services::validate(text, raw.service)?;
    Ok(Config {
        floating,
        services,
        control_socket_group,
        metrics_listen,
        gossip,
        esp,
        underlay: Underlay {
            address,
            address6,
            port,
            mtu: underlay_mtu,
            offload: u.offload,
            udp_gso: u.udp_gso.unwrap_or(true),
            udp_gro: u.udp_gro.unwrap_or(true),
            busy_poll: Duration::from_micros(num(&u.busy_poll_us, ranges::UNDERLAY_BUSY_POLL_US, DEFAULT_BUSY_POLL_US)?),
            priority_boost: num(&u.priority_boost, ranges::UNDERLAY_PRIORITY_BOOST, DEFAULT_PRIORITY_BOOST)? as u32,
            workers: num(&u.workers, ranges::UNDERLAY_WORKERS, DEFAULT_WORKERS)? as usize,
        },
        control_socket: raw.control_socket.map_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET), PathBuf::from),
        fdb_ageing,
        fdb_max_entries,
        flood,
        networks,
    })
}

/// What the networks validated so far use, for the host-wide uniqueness rules.
#[derive(Default)]
struct Seen {
    vnis: HashSet<u32>,
    taps: HashSet<String>,
    /// Manual inbound SPI -> (VNI, peer): the SPI tells the network on receive.
    spis_in: HashMap<u32, (u32, IpAddr)>,
    /// Manual outbound key digest -> (VNI, peer): two SAs under one key would repeat nonces.
    keys_out: HashMap<u64, (u32, IpAddr)>,
}

fn validate_network(
    text: &str,
    i: usize,
    n: raw::RawNetwork,
    (local, local6): (IpAddr, Option<Ipv6Addr>),
    (underlay_mtu, auto): (u32, (Suite, bool)),
    seen: &mut Seen,
) -> Result<Network, ConfigError> {
    let Seen { vnis, taps, .. } = seen;
    let err = |span: std::ops::Range<usize>, k: &str, reason: String| ConfigError {
        file: None,
        line: Some(line_of(text, span.start)),
        key: format!("network[{i}].{k}"),
        reason,
    };
    let vni = ranges::NETWORK_VNI.check(*n.vni.get_ref()).map_err(|reason| err(n.vni.span(), "vni", reason))? as u32;
    if !vnis.insert(vni) {
        return Err(err(n.vni.span(), "vni", format!("VNI {vni} is configured twice")));
    }
    let mode = match n.mode.as_ref() {
        None => Mode::Overlay,
        Some(m) => match Mode::from_name(m.get_ref()) {
            Some(mode) => mode,
            None => {
                let names: Vec<String> = Mode::ALL.iter().map(|m| format!("{:?}", m.name())).collect();
                return Err(err(m.span(), "mode", format!("{:?} is not one of {}", m.get_ref(), names.join(", "))));
            }
        },
    };
    let tap = match (&n.tap, mode) {
        (Some(t), Mode::HostSubnet) => return Err(err(t.span(), "tap", "host-subnet mode has no TAP (no encapsulation)".into())),
        (Some(t), Mode::Kernel) => {
            return Err(err(t.span(), "tap", "kernel mode has no TAP (the kernel VXLAN device is set by `device`)".into()))
        }
        (None, Mode::HostSubnet | Mode::Kernel) => String::new(),
        (None, _) => return Err(err(n.vni.span(), "tap", "a TAP name is required in overlay and routed mode".into())),
        (Some(t), _) => {
            let tap = t.get_ref().clone();
            if tap.is_empty() || tap.len() > 15 || tap.contains(['/', ' ', ':']) || tap == "." || tap == ".." {
                return Err(err(
                    t.span(),
                    "tap",
                    format!("{tap:?} is not a valid interface name (1-15 characters, no '/', ':' or spaces)"),
                ));
            }
            if !taps.insert(tap.clone()) {
                return Err(err(t.span(), "tap", format!("TAP {tap:?} is used twice")));
            }
            tap
        }
    };
    let device = validate_device(&n, mode, vni, taps).map_err(|(span, reason)| err(span, "device", reason))?;
    let lease = lease::validate(&n, mode, auto.1, text, &err)?;
    let host_subnet = if lease.is_some() { None } else { validate_host_subnet(&n, mode, &err)? };
    let host_subnet6 = dual_stack::validate_host_subnet6(&n, mode, &err)?;
    if let (Some(s), Mode::HostSubnet, IpAddr::V4(_), None) = (&n.subnet6, mode, local, local6) {
        return Err(err(
            s.span(),
            "subnet6",
            "the other hosts route this subnet via this host's IPv6 address on the underlay link: set [underlay] address6".into(),
        ));
    }
    let mut peers: Vec<Peer> = Vec::new();
    for p in n.peers.unwrap_or_default() {
        let span = p.span();
        let peer = match p.into_inner() {
            raw::RawPeer::Address(address) => {
                Peer { address, address6: None, subnet: None, subnet6: None, manual_keys: None, public_key: None }
            }
            raw::RawPeer::Full(t) => {
                let (address6, subnet6) = dual_stack::validate_peer6(&t, mode, host_subnet6.as_ref(), &peers)
                    .map_err(|reason| err(span.clone(), "peers", reason))?;
                if address6.is_some() && address6 == local6 {
                    return Err(err(
                        span.clone(),
                        "peers",
                        format!("peer {}: address6 {} is this host's own", t.address, local6.unwrap_or(Ipv6Addr::UNSPECIFIED)),
                    ));
                }
                let manual_keys = match t.esp {
                    None => None,
                    Some(k) => {
                        let aead = k.aead.as_deref().unwrap_or("rfc4106(gcm(aes))");
                        let parse = |spi: &str, key: &str| ManualSa::parse(spi, aead, key, 128);
                        match (parse(&k.spi_out, &k.key_out), parse(&k.spi_in, &k.key_in)) {
                            (Ok(o), Ok(i)) => Some((o, i)),
                            (Err(e), _) | (_, Err(e)) => {
                                return Err(err(span, "peers", format!("peer {}: manual ESP keys: {e}", t.address)))
                            }
                        }
                    }
                };
                let public_key = match &t.public_key {
                    None => None,
                    Some(k) => match hex::decode(k.trim_start_matches("0x")).ok().and_then(|v| <[u8; 32]>::try_from(v).ok()) {
                        Some(key) => Some(key),
                        None => {
                            return Err(err(
                                span,
                                "peers",
                                format!("peer {}: public_key must be 64 hex digits (vxswitch pubkey prints it)", t.address),
                            ))
                        }
                    },
                };
                if manual_keys.is_some() && public_key.is_some() {
                    return Err(err(span, "peers", format!("peer {}: give either manual ESP keys or a public_key, not both", t.address)));
                }
                if let Some((out, inb)) = &manual_keys {
                    // The inbound SPI is what selects the network (and the peer) on receive.
                    if let Some((v, p)) = seen.spis_in.insert(inb.spi, (vni, t.address)) {
                        return Err(err(
                            span,
                            "peers",
                            format!(
                                "peer {}: inbound SPI {:#x} is already used by peer {p} of network {v}: every inbound SPI must be unique on this host (the SPI tells the network)",
                                t.address, inb.spi
                            ),
                        ));
                    }
                    let key_id = out.outbound(false).map(|sa| sa.key_id()).unwrap_or_default();
                    if let Some((v, p)) = seen.keys_out.insert(key_id, (vni, t.address)) {
                        return Err(err(
                            span,
                            "peers",
                            format!(
                                "peer {}: key_out is already the outbound key toward peer {p} of network {v}: two SAs under one key would repeat nonces, give each its own key",
                                t.address
                            ),
                        ));
                    }
                }
                Peer { address: t.address, address6, subnet: t.subnet.map(|s| s.trunc()), subnet6, manual_keys, public_key }
            }
        };
        let addr = peer.address;
        if addr == local {
            return Err(err(span, "peers", format!("{addr} is this host's own underlay address")));
        }
        if !is_unicast(addr) {
            return Err(err(span, "peers", format!("{addr} is not a unicast address")));
        }
        if addr.is_ipv4() != local.is_ipv4() {
            return Err(err(
                span,
                "peers",
                format!("peer {addr}: the underlay address {local} is of the other family; one underlay carries one family (IPv4 or IPv6), not both"),
            ));
        }
        if peers.iter().any(|q| q.address == addr) {
            return Err(err(span, "peers", format!("{addr} is listed twice")));
        }
        match (mode, peer.subnet) {
            (Mode::Overlay | Mode::Kernel, Some(_)) => {
                return Err(err(span, "peers", format!("peer {addr}: a subnet only applies to routed and host-subnet networks")))
            }
            (Mode::Routed | Mode::HostSubnet, None) if lease.is_none() => {
                return Err(err(span, "peers", format!("peer {addr}: routed and host-subnet networks need the subnet each peer owns ({{ address = \"{addr}\", subnet = \"...\" }})")))
            }
            (_, Some(subnet)) => {
                let own = host_subnet.as_ref().map(|h| h.subnet);
                let clash = own.into_iter().chain(peers.iter().filter_map(|q| q.subnet)).find(|o| o.contains(&subnet) || subnet.contains(o));
                if let Some(other) = clash {
                    return Err(err(span, "peers", format!("peer {addr}: subnet {subnet} overlaps {other}")));
                }
            }
            (_, None) => {}
        }
        peers.push(peer);
    }
    let gateway_mac = match &n.gateway_mac {
        None => default_gateway_mac(Vni::new(vni).expect("range-checked")),
        Some(m) => match m.get_ref().parse::<EthernetAddress>() {
            Ok(mac) if mac.is_unicast() => mac,
            _ => return Err(err(m.span(), "gateway_mac", format!("{:?} is not a unicast MAC address", m.get_ref()))),
        },
    };
    let unknown_arp = match n.unknown_arp.as_ref().map(|u| (u.get_ref().as_str(), u.span())) {
        // Kernel mode answers ARP from the device's neighbour table (`proxy`) unless told to flood.
        None if mode == Mode::Kernel => UnknownArp::Drop,
        None | Some(("flood", _)) => UnknownArp::Flood,
        Some(("drop", _)) => UnknownArp::Drop,
        Some((other, span)) => return Err(err(span, "unknown_arp", format!("{other:?} is not \"flood\" or \"drop\""))),
    };
    let encrypted = match n.encryption.as_ref().map(|e| (e.get_ref().as_str(), e.span())) {
        None | Some(("none", _)) => false,
        Some(("esp", _)) if mode == Mode::HostSubnet => {
            return Err(err(
                n.encryption.as_ref().map_or(0..0, |e| e.span()),
                "encryption",
                "host-subnet mode has no tunnel to encrypt".into(),
            ))
        }
        Some(("esp", span)) if mode == Mode::Kernel => {
            return Err(err(
                span,
                "encryption",
                "kernel mode carries cleartext VXLAN (the kernel device has no ESP); use mode = \"overlay\"".into(),
            ))
        }
        Some(("esp", _)) => true,
        Some((other, span)) => return Err(err(span, "encryption", format!("{other:?} is not \"none\" or \"esp\""))),
    };
    if !encrypted {
        if let Some(p) = peers.iter().find(|p| p.manual_keys.is_some() || p.public_key.is_some()) {
            return Err(err(
                n.vni.span(),
                "peers",
                format!("peer {}: ESP keys given but the network is not encrypted (encryption = \"esp\")", p.address),
            ));
        }
    }
    if mode == Mode::HostSubnet && local.is_ipv6() {
        return Err(err(
            n.vni.span(),
            "mode",
            format!("host-subnet networks route IPv4 subnets via IPv4 underlay addresses; the underlay address {local} is IPv6 (use mode = \"routed\")"),
        ));
    }
    let outer = OuterIp::of(local);
    let encap = network_encap(mode, encrypted, auto, &peers, underlay_mtu);
    let plan = mtu::plan_over(outer, underlay_mtu, encap);
    let mtu = match &n.mtu {
        None => plan.mtu,
        Some(m) if (ranges::NETWORK_MTU.min..=u64::from(plan.mtu)).contains(m.get_ref()) => *m.get_ref() as u32,
        Some(m) => {
            return Err(err(
                m.span(),
                "mtu",
                format!("{} does not fit: {} allows at most {} (and at least 68)", m.get_ref(), plan.describe(), plan.mtu),
            ))
        }
    };
    // Containers default to 1500 whatever the underlay; a jumbo underlay's hosts may use more.
    let tap_mtu = match &n.tap_mtu {
        None if mode == Mode::HostSubnet || mode == Mode::Kernel => mtu,
        None => mtu.max(DEFAULT_UNDERLAY_MTU).max(underlay_mtu),
        Some(t) => ranges::NETWORK_TAP_MTU.check(*t.get_ref()).map_err(|reason| err(t.span(), "tap_mtu", reason))? as u32,
    };
    let mss_clamp = match n.mss_clamp.as_ref().map(|m| (m.get_ref(), m.span())) {
        None => MssClamp::Auto,
        Some((raw::RawMssClamp::Word(w), _)) if w == "auto" => MssClamp::Auto,
        Some((raw::RawMssClamp::Word(w), _)) if w == "off" => MssClamp::Off,
        Some((raw::RawMssClamp::Word(w), span)) => {
            return Err(err(span, "mss_clamp", format!("{w:?} is not \"auto\", \"off\" or a number")))
        }
        Some((raw::RawMssClamp::Number(v), span)) => {
            MssClamp::Fixed(ranges::NETWORK_MSS_CLAMP.check(*v).map_err(|reason| err(span, "mss_clamp", reason))? as u16)
        }
    };
    let mut arp = Vec::new();
    for b in n.arp {
        let span = b.span();
        let b = b.into_inner();
        let mac = match b.mac.parse::<EthernetAddress>() {
            Ok(mac) if mac.is_unicast() => mac,
            _ => return Err(err(span, "arp", format!("{:?} is not a unicast MAC address", b.mac))),
        };
        if arp.iter().any(|(ip, _)| *ip == b.ip) {
            return Err(err(span, "arp", format!("{} is bound twice", b.ip)));
        }
        if let std::net::IpAddr::V6(ip6) = b.ip {
            if ip6.is_unspecified() || ip6.is_multicast() || ip6.is_loopback() {
                return Err(err(span, "arp", format!("{ip6} is not a unicast IPv6 address")));
            }
            if mode != Mode::Overlay {
                return Err(err(span, "arp", format!("{ip6}: IPv6 bindings feed the ND proxy of mode \"overlay\" only")));
            }
        }
        arp.push((b.ip, mac));
    }
    Ok(Network {
        vni: Vni::new(vni).expect("range-checked"),
        mode,
        tap,
        mtu,
        tap_mtu,
        mss_clamp,
        encap,
        outer,
        bridge: n.bridge.map(|b| b.into_inner()),
        address: n.address.map(|a| a.into_inner()),
        peers,
        host_subnet,
        host_subnet6,
        lease,
        gateway_mac,
        unknown_arp,
        arp,
        encrypted,
        device,
    })
}

/// The encapsulation of a network: VXLAN, none, or ESP with the suite that costs the most among
/// those in use: manual keys name their own, every other peer (and any peer gossip brings, when
/// `gossip`) uses `[esp] suite`.
fn network_encap(mode: Mode, encrypted: bool, (auto_suite, gossip): (Suite, bool), peers: &[Peer], underlay_mtu: u32) -> Encap {
    let payload = if mode == Mode::Routed { Payload::Ipv4 } else { Payload::Ethernet };
    let automatic = gossip || peers.is_empty() || peers.iter().any(|p| p.manual_keys.is_none());
    match mode {
        Mode::HostSubnet => Encap::None,
        _ if !encrypted => Encap::Vxlan,
        _ => peers
            .iter()
            .filter_map(|p| p.manual_keys.as_ref().map(|(out, _)| out.suite))
            .chain(automatic.then_some(auto_suite))
            .map(|suite| Encap::Esp { suite, payload })
            .min_by_key(|e| mtu::plan(underlay_mtu, *e).mtu)
            .unwrap_or(Encap::Vxlan),
    }
}

/// The kernel VXLAN device name of a kernel-mode network (`vtep<VNI>` unless `device` is given);
/// empty for the other modes, which refuse the key.
fn validate_device(
    n: &raw::RawNetwork,
    mode: Mode,
    vni: u32,
    names: &mut HashSet<String>,
) -> Result<String, (std::ops::Range<usize>, String)> {
    let span = n.device.as_ref().map_or_else(|| n.vni.span(), |d| d.span());
    let name = match (&n.device, mode) {
        (Some(d), Mode::Kernel) => d.get_ref().clone(),
        (None, Mode::Kernel) => format!("vtep{vni}"),
        (Some(_), _) => return Err((span, "only kernel-mode networks have a kernel VXLAN device".into())),
        (None, _) => return Ok(String::new()),
    };
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', ':']) || name == "." || name == ".." {
        return Err((span, format!("{name:?} is not a valid interface name (1-15 characters, no '/', ':' or spaces)")));
    }
    if !names.insert(name.clone()) {
        return Err((span, format!("device {name:?} is used twice")));
    }
    Ok(name)
}

fn validate_esp(text: &str, e: Option<toml::Spanned<raw::RawEsp>>) -> Result<EspSettings, ConfigError> {
    let mut esp = EspSettings {
        key_file: PathBuf::from(DEFAULT_HOST_KEY),
        state_file: PathBuf::from(DEFAULT_HOST_KEY).with_extension("esp-state"),
        suite: Suite::Aes256Gcm,
        port: crate::wire::esp::ESP_IN_UDP_PORT,
        replay_window: crate::ipsec::DEFAULT_WINDOW,
        rekey_after: Duration::from_secs(120),
    };
    let Some(e) = e else { return Ok(esp) };
    let line = Some(line_of(text, e.span().start));
    let err = |k: &str, reason: String| ConfigError { file: None, line, key: format!("esp.{k}"), reason };
    let e = e.into_inner();
    if let Some(k) = e.key_file {
        esp.key_file = PathBuf::from(k);
        esp.state_file = esp.key_file.with_extension("esp-state");
    }
    if let Some(s) = e.state_file {
        esp.state_file = PathBuf::from(s);
    }
    if let Some(s) = e.suite {
        esp.suite = match s.as_str() {
            "aes-128-gcm" => Suite::Aes128Gcm,
            "aes-256-gcm" => Suite::Aes256Gcm,
            "chacha20-poly1305" => Suite::ChaCha20Poly1305,
            other => return Err(err("suite", format!("{other:?} is not aes-128-gcm, aes-256-gcm or chacha20-poly1305"))),
        };
    }
    let num = |v: &Option<toml::Spanned<u64>>, k: NumericKey| ranges::checked(text, v, k);
    if let Some(p) = num(&e.port, ranges::ESP_PORT)? {
        esp.port = p as u16;
    }
    if let Some(w) = num(&e.replay_window, ranges::ESP_REPLAY_WINDOW)? {
        esp.replay_window = w as u32;
    }
    if let Some(r) = num(&e.rekey_secs, ranges::ESP_REKEY_SECS)? {
        esp.rekey_after = Duration::from_secs(r);
    }
    Ok(esp)
}

fn validate_gossip(text: &str, g: toml::Spanned<raw::RawGossip>, underlay: IpAddr) -> Result<Gossip, ConfigError> {
    let line = Some(line_of(text, g.span().start));
    let err = |k: &str, reason: String| ConfigError { file: None, line, key: format!("gossip.{k}"), reason };
    let g = g.into_inner();
    let addr = |s: &str, k: &str| -> Result<std::net::SocketAddr, ConfigError> {
        if let Ok(a) = s.parse() {
            return Ok(a);
        }
        s.parse::<IpAddr>()
            .map(|ip| std::net::SocketAddr::from((ip, DEFAULT_GOSSIP_PORT)))
            .map_err(|_| err(k, format!("{s:?} is not an address (IP or IP:PORT)")))
    };
    if g.cluster.is_empty() {
        return Err(err("cluster", "the cluster name must not be empty".into()));
    }
    let mut config = GossipConfig { cluster: g.cluster, ..GossipConfig::default() };
    config.listen = match &g.listen {
        Some(l) => addr(l, "listen")?,
        None => std::net::SocketAddr::from((underlay, DEFAULT_GOSSIP_PORT)),
    };
    config.seeds = g.seeds.iter().map(|s| addr(s, "seeds")).collect::<Result<_, _>>()?;
    // One socket of the listen address's family sends to every seed.
    if let Some(s) = config.seeds.iter().find(|s| s.is_ipv4() != config.listen.is_ipv4()) {
        return Err(err("seeds", format!("seed {s} is of the other family than the gossip address {}", config.listen)));
    }
    let num = |v: &Option<toml::Spanned<u64>>, k: NumericKey| ranges::checked(text, v, k);
    if let Some(ms) = num(&g.interval_ms, ranges::GOSSIP_INTERVAL_MS)? {
        config.interval = Duration::from_millis(ms);
    }
    if let Some(ms) = num(&g.suspect_timeout_ms, ranges::GOSSIP_SUSPECT_TIMEOUT_MS)? {
        config.suspect_timeout = Duration::from_millis(ms);
    }
    if let Some(s) = num(&g.dead_grace_secs, ranges::GOSSIP_DEAD_GRACE_SECS)? {
        config.dead_grace = Duration::from_secs(s);
    }
    if let Some(mtu) = num(&g.mtu, ranges::GOSSIP_MTU)? {
        config.mtu = mtu as usize;
    }
    let name = match g.name {
        Some(n) if !n.is_empty() => n,
        Some(_) => return Err(err("name", "must not be empty".into())),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| underlay.to_string()),
    };
    if let Some(c) = &g.cluster_cidr {
        let net: ipnet::Ipv4Net = c.get_ref().parse().map_err(|_| ConfigError {
            file: None,
            line: Some(line_of(text, c.span().start)),
            key: "gossip.cluster_cidr".into(),
            reason: format!("{:?} is not an IPv4 prefix (e.g. \"10.42.0.0/16\")", c.get_ref()),
        })?;
        if net != net.trunc() {
            return Err(ConfigError {
                file: None,
                line: Some(line_of(text, c.span().start)),
                key: "gossip.cluster_cidr".into(),
                reason: format!("{net} has host bits set (did you mean {}?)", net.trunc()),
            });
        }
        config.cluster_cidr = Some(net);
    }
    if let Some(c) = &g.cluster_cidr6 {
        let refuse = |reason: String| ConfigError {
            file: None,
            line: Some(line_of(text, c.span().start)),
            key: "gossip.cluster_cidr6".into(),
            reason,
        };
        let net: Ipv6Net =
            c.get_ref().parse().map_err(|_| refuse(format!("{:?} is not an IPv6 prefix (e.g. \"fd00:42::/48\")", c.get_ref())))?;
        if net != net.trunc() {
            return Err(refuse(format!("{net} has host bits set (did you mean {}?)", net.trunc())));
        }
        config.cluster_cidr6 = Some(net);
    }
    let state_dir = g.state_dir.map(PathBuf::from).unwrap_or_default();
    Ok(Gossip { name, key_file: PathBuf::from(g.key_file), state_dir, config })
}

/// This host's own subnets must lie inside the cluster CIDR, or every other host refuses them.
fn check_cluster_cidr(text: &str, g: &Gossip, networks: &[Network]) -> Result<(), ConfigError> {
    let refuse_at = |key: &str, reason: String| {
        // The line of the key in the [gossip] table, not a network's `cluster_cidr` (leases).
        let line = text
            .lines()
            .enumerate()
            .skip_while(|(_, l)| l.trim() != "[gossip]")
            .skip(1)
            .take_while(|(_, l)| !l.trim_start().starts_with('['))
            .find(|(_, l)| l.trim_start().strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('=')))
            .map(|(i, _)| i + 1);
        ConfigError { file: None, line, key: format!("gossip.{key}"), reason }
    };
    if let Some(cidr6) = g.config.cluster_cidr6 {
        if let Some((n, h)) = networks.iter().find_map(|n| Some((n, n.host_subnet6.filter(|h| !cidr6.contains(&h.subnet))?))) {
            return Err(refuse_at(
                "cluster_cidr6",
                format!("network {}'s subnet6 {} lies outside the cluster CIDR {cidr6}: the other hosts would refuse it", n.vni, h.subnet),
            ));
        }
    }
    let Some(cidr) = g.config.cluster_cidr else { return Ok(()) };
    let refuse = |reason: String| refuse_at("cluster_cidr", reason);
    for n in networks {
        if let Some(l) = n.lease.as_ref().filter(|l| !cidr.contains(&l.cluster_cidr)) {
            return Err(refuse(format!(
                "network {}'s cluster_cidr {} lies outside the gossip cluster CIDR {cidr}: the other hosts would refuse its leases",
                n.vni, l.cluster_cidr
            )));
        }
        if let Some(h) = n.host_subnet.as_ref().filter(|h| !cidr.contains(&h.subnet)) {
            return Err(refuse(format!(
                "network {}'s subnet {} lies outside the cluster CIDR {cidr}: the other hosts would refuse it",
                n.vni, h.subnet
            )));
        }
    }
    Ok(())
}

fn validate_host_subnet(
    n: &raw::RawNetwork,
    mode: Mode,
    err: &impl Fn(std::ops::Range<usize>, &str, String) -> ConfigError,
) -> Result<Option<HostSubnet>, ConfigError> {
    let l2 = matches!(mode, Mode::Overlay | Mode::Kernel);
    let Some(subnet) = &n.subnet else {
        if !l2 {
            return Err(err(n.vni.span(), "subnet", "routed and host-subnet networks need this host's subnet".into()));
        }
        return Ok(None);
    };
    if l2 {
        return Err(err(subnet.span(), "subnet", "only routed and host-subnet networks own a subnet".into()));
    }
    let net = subnet.get_ref().trunc();
    if net.prefix_len() > 30 {
        return Err(err(subnet.span(), "subnet", format!("{net} is too small (at most /30)")));
    }
    let usable = |a: &Ipv4Addr| net.contains(a) && *a != net.network() && *a != net.broadcast();
    let gateway = match &n.gateway {
        Some(g) if !usable(g.get_ref()) => return Err(err(g.span(), "gateway", format!("{} is not a host address of {net}", g.get_ref()))),
        Some(g) => *g.get_ref(),
        None => Ipv4Addr::from(u32::from(net.network()) + 1),
    };
    let range = match (&n.range_start, &n.range_end) {
        (None, None) => None,
        (Some(s), Some(e)) => {
            let (start, end) = (*s.get_ref(), *e.get_ref());
            for (a, span, k) in [(start, s.span(), "range_start"), (end, e.span(), "range_end")] {
                if !usable(&a) {
                    return Err(err(span, k, format!("{a} is not a host address of {net}")));
                }
            }
            if start > end {
                return Err(err(s.span(), "range_start", format!("{start} is after range_end {end}")));
            }
            if (start..=end).contains(&gateway) {
                return Err(err(s.span(), "range_start", format!("the range {start}-{end} contains the gateway {gateway}")));
            }
            Some((start, end))
        }
        (Some(s), None) => return Err(err(s.span(), "range_end", "range_start needs range_end".into())),
        (None, Some(e)) => return Err(err(e.span(), "range_start", "range_end needs range_start".into())),
    };
    Ok(Some(HostSubnet { subnet: net, gateway, range }))
}

/// An address a host can have on the underlay: not unspecified, loopback-free checks are left to
/// the kernel; multicast and the IPv4 broadcast address are refused.
fn is_unicast(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_dual_stack;
#[cfg(test)]
mod tests_ipv6;
