//! The `stats` answer of the control socket: counters, FDB, routes and ESP sessions as JSON.

use std::net::Ipv4Addr;
use std::time::Instant;

use serde::Serialize;

use super::gossip::GossipCounters;
use crate::config::{Config, Mode};
use crate::dataplane::{Counters, EspCounters, FdbCounters, MtuPlan, Switch};
use crate::sys::fastpath::DriverCounters;
use crate::sys::kernel::vtep::{DeviceStatus, VtepDriver};

/// The `stats` answer. The counter sections serialize themselves from their declarations
/// ([`crate::counters`]), the same lists the metrics page is rendered from.
#[derive(Debug, Serialize)]
struct Status<'a> {
    uptime_secs: u64,
    counters: &'a Counters,
    driver: &'a DriverCounters,
    fdb: FdbCounters,
    networks: Vec<NetworkStatus>,
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
    peer: String,
    spi_out: String,
    spi_in: String,
    generations: [u64; 2],
}

#[derive(Debug, Serialize)]
struct NetworkStatus {
    vni: u32,
    tap: String,
    mode: String,
    /// The TAP's (or kernel device's) MTU.
    mtu: u32,
    /// The largest MTU the encapsulation allows, with its breakdown.
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu_plan: Option<MtuPlan>,
    peers: Vec<Ipv4Addr>,
    routes: Vec<(String, Ipv4Addr)>,
    fdb: Vec<FdbRow>,
    /// The kernel VXLAN device (kernel mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<DeviceStatus>,
}

#[derive(Debug, Serialize)]
struct FdbRow {
    mac: String,
    location: String,
    is_static: bool,
    idle_secs: u64,
}

/// Answer a control-socket command about the switch.
pub fn answer(
    cmd: &str,
    started: Instant,
    switch: &Switch,
    driver: &DriverCounters,
    gossip: Option<&GossipCounters>,
    config: &Config,
    offload: Option<&VtepDriver>,
) -> String {
    match cmd {
        "stats" | "" => {
            let now = Instant::now();
            let networks = config
                .switched_networks()
                .enumerate()
                .map(|(port, n)| NetworkStatus {
                    vni: n.vni,
                    tap: n.tap.clone(),
                    mode: n.mode.to_string(),
                    mtu: n.mtu,
                    mtu_plan: Some(n.mtu_plan(config.underlay.mtu)),
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
                    device: None,
                })
                .chain(offload.into_iter().flat_map(VtepDriver::status).map(|d| kernel_network_status(d, config)))
                .collect();
            let status = Status {
                uptime_secs: started.elapsed().as_secs(),
                counters: switch.counters(),
                driver,
                fdb: switch.fdb().counters(),
                networks,
                esp: switch.esp().map(|t| EspStatus {
                    epoch: t.local_epoch(),
                    public_key: t.public_key().map(hex::encode),
                    counters: t.counters(),
                    sessions: t
                        .sessions()
                        .iter()
                        .map(|(peer, out, inb, gens)| SessionRow {
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
        other => format!("{{\"error\": \"unknown command {other:?}\"}}\n"),
    }
}

/// A kernel-mode network in `stats`: its flood list as peers, its unicast FDB, and the device.
fn kernel_network_status(d: DeviceStatus, config: &Config) -> NetworkStatus {
    let net = config.networks.iter().find(|n| n.vni == d.vni);
    NetworkStatus {
        mtu: net.map_or(0, |n| n.mtu),
        mtu_plan: net.map(|n| n.mtu_plan(config.underlay.mtu)),
        vni: d.vni,
        tap: String::new(),
        mode: format!("{:?}", Mode::Kernel),
        peers: d.programmed.flood.iter().copied().collect(),
        routes: Vec::new(),
        fdb: d
            .programmed
            .fdb
            .iter()
            .map(|(mac, peer)| FdbRow { mac: mac.to_string(), location: peer.to_string(), is_static: true, idle_secs: 0 })
            .collect(),
        device: Some(d),
    }
}
