//! The `stats` and `fdb` answers of the control socket: counters, FDB, routes and ESP sessions
//! as JSON.
//!
//! Answers are computed inside the forwarding loop, so their size is bounded: the FDB can hold
//! millions of entries, and serialising all of them on every `stats` would stall forwarding for
//! as long as that takes (and hand a slow client megabytes to hold). `stats` therefore lists the
//! first [`FDB_PAGE`] entries of each network with the network's total (`fdb_total`), and
//! `fdb OFFSET` (`vxswitch stats --fdb-offset OFFSET`) pages through the whole table,
//! [`FDB_PAGE`] entries at a time. Pages follow the table's own order, which holds while the
//! table does not change; on a busy table, as with `bridge fdb show`, a page is a view of a
//! moving target. Building a page costs one pass over the table's keys (no copy, no sort).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use serde::Serialize;

use super::gossip::GossipCounters;
use crate::config::{Config, Mode, Network};
use crate::dataplane::pmtu::PeerMtu;
use crate::dataplane::{Counters, EspCounters, FdbCounters, FdbEntry, FdbKey, Location, MtuPlan, PortId, Switch};
use crate::sys::fastpath::DriverCounters;
use crate::sys::kernel::vtep::{DeviceStatus, VtepDriver};
use crate::wire::vxlan::Vni;

/// The `stats` answer. The counter sections serialize themselves from their declarations
/// ([`crate::counters`]), the same lists the metrics page is rendered from.
#[derive(Debug, Serialize)]
struct Status<'a> {
    uptime_secs: u64,
    counters: &'a Counters,
    driver: &'a DriverCounters,
    fdb: FdbCounters,
    networks: Vec<NetworkStatus>,
    /// Peers whose underlay path MTU the kernel reported below the configured underlay MTU.
    peer_mtus: Vec<PeerMtu>,
    esp: Option<EspStatus>,
    gossip: Option<&'a GossipCounters>,
}

/// The `esp` section: this host's key epoch and sessions next to the ESP counters.
#[derive(Debug, Serialize)]
struct EspStatus {
    epoch: u64,
    public_key: Option<String>,
    #[serde(flatten)]
    counters: EspCounters,
    sessions: Vec<SessionRow>,
}

#[derive(Debug, Serialize)]
struct SessionRow {
    vni: Vni,
    peer: String,
    spi_out: String,
    spi_in: String,
    generations: [u64; 2],
}

#[derive(Debug, Serialize)]
struct NetworkStatus {
    vni: Vni,
    tap: String,
    mode: String,
    /// The overlay MTU: the largest IP packet that crosses in one piece (containers should use it).
    mtu: u32,
    /// The TAP device's MTU (larger, so that bigger frames reach vxswitch and get an ICMP answer).
    tap_mtu: u32,
    /// MSS clamping of TCP SYNs: `auto`, a number, or `off`.
    mss_clamp: String,
    /// The largest MTU the encapsulation allows, with its breakdown.
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu_plan: Option<MtuPlan>,
    peers: Vec<IpAddr>,
    routes: Vec<(String, IpAddr)>,
    /// The first [`FDB_PAGE`] entries of this network.
    fdb: Vec<FdbRow>,
    /// Entries of this network in the FDB (page the rest with `fdb OFFSET`).
    fdb_total: usize,
    /// The kernel VXLAN device (kernel mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<DeviceStatus>,
}

#[derive(Debug, Serialize)]
struct FdbRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    vni: Option<Vni>,
    mac: String,
    location: String,
    is_static: bool,
    idle_secs: u64,
}

impl FdbRow {
    fn new(now: Instant, k: &FdbKey, e: &FdbEntry, with_vni: bool) -> Self {
        FdbRow {
            vni: with_vni.then_some(k.vni),
            mac: k.mac.to_string(),
            location: match e.location {
                Location::Local => "local".into(),
                Location::Remote(ip) => ip.to_string(),
            },
            is_static: e.is_static,
            idle_secs: now.saturating_duration_since(e.last_seen).as_secs(),
        }
    }
}

/// FDB entries listed per network in `stats`, and per page of `fdb OFFSET`.
pub const FDB_PAGE: usize = 256;

/// The `fdb OFFSET` answer: one page of the whole FDB.
#[derive(Debug, Serialize)]
struct FdbPage {
    total: usize,
    offset: usize,
    entries: Vec<FdbRow>,
    /// The offset of the next page, if there is one.
    next_offset: Option<usize>,
}

/// One page of the FDB from `offset`, as JSON.
fn fdb_page(switch: &Switch, offset: usize) -> String {
    let now = Instant::now();
    let fdb = switch.fdb();
    let entries: Vec<FdbRow> = fdb.iter().skip(offset).take(FDB_PAGE).map(|(k, e)| FdbRow::new(now, k, e, true)).collect();
    let end = offset.saturating_add(entries.len());
    let page = FdbPage { total: fdb.len(), offset, next_offset: (end < fdb.len()).then_some(end), entries };
    serde_json::to_string_pretty(&page).unwrap_or_default() + "\n"
}

/// The first [`FDB_PAGE`] entries of every network and each network's total, in one pass.
fn fdb_heads(switch: &Switch) -> HashMap<Vni, (Vec<FdbRow>, usize)> {
    let now = Instant::now();
    let mut heads: HashMap<Vni, (Vec<FdbRow>, usize)> = HashMap::new();
    for (k, e) in switch.fdb().iter() {
        let (rows, total) = heads.entry(k.vni).or_default();
        if rows.len() < FDB_PAGE {
            rows.push(FdbRow::new(now, k, e, false));
        }
        *total += 1;
    }
    heads
}

/// What the `stats` answer reports on.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    /// When the daemon started.
    pub started: Instant,
    /// The switch core.
    pub switch: &'a Switch,
    /// The drivers' counters.
    pub driver: &'a DriverCounters,
    /// The gossip counters, when gossip runs.
    pub gossip: Option<&'a GossipCounters>,
    /// The switched networks by port.
    pub networks: &'a [(PortId, &'a Network)],
    /// The configuration in force.
    pub config: &'a Config,
    /// The kernel VXLAN devices, in kernel mode.
    pub offload: Option<&'a VtepDriver>,
}

/// Answer a control-socket command about the switch.
pub fn answer(cmd: &str, sources: &Sources<'_>) -> String {
    let Sources { started, switch, driver, gossip, networks, config, offload } = *sources;
    match cmd {
        "stats" | "" => {
            let mut heads = fdb_heads(switch);
            let networks = networks
                .iter()
                .map(|&(port, n)| {
                    let (fdb, fdb_total) = heads.remove(&n.vni).unwrap_or_default();
                    NetworkStatus {
                        vni: n.vni,
                        tap: n.tap.clone(),
                        mode: n.mode.to_string(),
                        mtu: n.mtu,
                        tap_mtu: n.tap_mtu,
                        mss_clamp: n.mss_clamp.to_string(),
                        mtu_plan: Some(n.mtu_plan(config.underlay.mtu)),
                        peers: switch.peers(port).to_vec(),
                        routes: switch
                            .router(port)
                            .map(|r| {
                                let v4 = r.routes().iter().map(|(net, via)| (net.to_string(), via));
                                v4.chain(r.routes().iter6().map(|(net, via)| (net.to_string(), via))).collect()
                            })
                            .unwrap_or_default(),
                        fdb,
                        fdb_total,
                        device: None,
                    }
                })
                .chain(offload.into_iter().flat_map(VtepDriver::status).map(|d| kernel_network_status(d, config)))
                .collect();
            let status = Status {
                uptime_secs: started.elapsed().as_secs(),
                counters: switch.counters(),
                driver,
                fdb: switch.fdb().counters(),
                networks,
                peer_mtus: switch.peer_mtus(Instant::now()),
                esp: switch.esp().map(|t| EspStatus {
                    epoch: t.local_epoch(),
                    public_key: t.public_key().map(hex::encode),
                    counters: t.counters(),
                    sessions: t
                        .sessions()
                        .iter()
                        .map(|(vni, peer, out, inb, gens)| SessionRow {
                            vni: *vni,
                            peer: peer.to_string(),
                            spi_out: format!("{out:#010x}"),
                            spi_in: format!("{inb:#010x}"),
                            generations: [gens.0, gens.1],
                        })
                        .collect(),
                }),
                gossip,
            };
            serde_json::to_string_pretty(&status).unwrap_or_default() + "\n"
        }
        fdb if fdb.starts_with("fdb") => match fdb["fdb".len()..].trim() {
            "" => fdb_page(switch, 0),
            offset => match offset.parse() {
                Ok(offset) => fdb_page(switch, offset),
                Err(_) => format!("{{\"error\": \"fdb takes an entry offset, not {offset:?}\"}}\n"),
            },
        },
        other => format!("{{\"error\": \"unknown command {other:?}\"}}\n"),
    }
}

/// A kernel-mode network in `stats`: its flood list as peers, its unicast FDB, and the device.
fn kernel_network_status(d: DeviceStatus, config: &Config) -> NetworkStatus {
    let net = config.networks.iter().find(|n| n.vni == d.vni);
    NetworkStatus {
        mtu: net.map_or(0, |n| n.mtu),
        tap_mtu: net.map_or(0, |n| n.tap_mtu),
        mss_clamp: "off".into(),
        mtu_plan: net.map(|n| n.mtu_plan(config.underlay.mtu)),
        vni: d.vni,
        tap: String::new(),
        mode: Mode::Kernel.to_string(),
        peers: d.programmed.flood.iter().copied().collect(),
        routes: Vec::new(),
        fdb: d
            .programmed
            .fdb
            .iter()
            .map(|(mac, peer)| FdbRow { vni: None, mac: mac.to_string(), location: peer.to_string(), is_static: true, idle_secs: 0 })
            .collect(),
        fdb_total: d.programmed.fdb.len(),
        device: Some(d),
    }
}
