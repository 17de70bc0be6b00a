//! Prometheus metrics: the switch's counters in the text exposition format, encoded by
//! `prometheus-client`. Served on the control socket (`vxswitch metrics`) and, when
//! `metrics_listen` is set, over HTTP for a Prometheus scraper.
//!
//! Nothing here names a counter: the page is generated from the declared counter sets
//! ([`crate::counters`]) listed by [`sections`], so every declared counter is exported, under the
//! names the module doc of `counters` describes. The one series that is not a declared counter is
//! `vxswitch_peers{vni="..."}`, the size of each network's peer list.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::RawFd;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::clients::{Clients, Framing};
use super::gossip::GossipCounters;
use crate::counters::{self, CounterSet, Kind, Sample};
use crate::dataplane::{PortId, Switch};
use crate::sys::fastpath::DriverCounters;
use crate::sys::SysError;
use crate::wire::vxlan::Vni;

/// One exported counter set: its section in `stats`, its metric prefix, and the set.
pub struct Section<'a> {
    /// The key of the set in the `stats` JSON.
    pub name: &'static str,
    /// Prefix of its metric names (after `vxswitch_`).
    pub prefix: &'static str,
    /// The counters.
    pub set: Box<dyn CounterSet + 'a>,
}

/// Every counter set the daemon exports, in page order (ESP and gossip only when configured).
pub fn sections<'a>(switch: &'a Switch, driver: &'a DriverCounters, gossip: Option<&'a GossipCounters>) -> Vec<Section<'a>> {
    let mut v = vec![
        Section { name: "counters", prefix: "", set: Box::new(switch.counters()) },
        Section { name: "fdb", prefix: "fdb_", set: Box::new(switch.fdb().counters()) },
        Section { name: "driver", prefix: "", set: Box::new(driver) },
    ];
    if let Some(esp) = switch.esp() {
        v.push(Section { name: "esp", prefix: "esp_", set: Box::new(esp.counters()) });
    }
    if let Some(g) = gossip {
        v.push(Section { name: "gossip", prefix: "gossip_", set: Box::new(g) });
    }
    v
}

type Labels = Vec<(&'static str, &'static str)>;

/// Registers every counter of `set`, one metric per family.
fn register_set(r: &mut Registry, prefix: &str, set: &dyn CounterSet) {
    let mut families: Vec<(String, Vec<Sample>)> = Vec::new();
    for sample in counters::samples(prefix, set) {
        match families.iter_mut().find(|(name, _)| *name == sample.family) {
            Some((_, series)) => series.push(sample),
            None => families.push((sample.family.clone(), vec![sample])),
        }
    }
    for (name, series) in families {
        // The encoder ends the help text with a full stop itself.
        let (help, kind) = (series[0].help.trim_end_matches('.'), series[0].kind);
        match (series[0].label.is_some(), kind) {
            (false, Kind::Counter) => {
                let c: Counter = Counter::default();
                c.inc_by(series[0].value);
                r.register(name, help, c);
            }
            (false, Kind::Gauge) => {
                let g: Gauge = Gauge::default();
                g.set(series[0].value as i64);
                r.register(name, help, g);
            }
            (true, Kind::Counter) => {
                let f = Family::<Labels, Counter>::default();
                for s in &series {
                    f.get_or_create(&s.label.into_iter().collect()).inc_by(s.value);
                }
                r.register(name, help, f);
            }
            (true, Kind::Gauge) => {
                let f = Family::<Labels, Gauge>::default();
                for s in &series {
                    f.get_or_create(&s.label.into_iter().collect()).set(s.value as i64);
                }
                r.register(name, help, f);
            }
        }
    }
}

/// Render the current counters of `switch`, the driver and gossip; `ports` are the switch's ports
/// and their VNIs.
pub fn render(switch: &Switch, driver: &DriverCounters, ports: &[(PortId, Vni)], gossip: Option<&GossipCounters>) -> String {
    let mut r = Registry::with_prefix("vxswitch");
    for section in sections(switch, driver, gossip) {
        register_set(&mut r, section.prefix, &*section.set);
    }
    let peers = Family::<Vec<(&'static str, String)>, Gauge>::default();
    for &(port, vni) in ports {
        peers.get_or_create(&vec![("vni", vni.to_string())]).set(switch.peers(port).len() as i64);
    }
    r.register("peers", "Peer VTEPs per network", peers);
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}

/// A tiny HTTP endpoint for Prometheus: every request gets the metrics page. Its connections are
/// served by the event loop without blocking ([`super::clients`]).
#[derive(Debug)]
pub struct MetricsListener {
    /// The connected scrapers.
    pub clients: Clients<TcpListener>,
}

impl MetricsListener {
    /// Listen on `addr`.
    pub fn bind(addr: SocketAddr) -> Result<Self, SysError> {
        let listener = TcpListener::bind(addr).map_err(|source| SysError::Os { op: "bind metrics listener", source })?;
        listener.set_nonblocking(true).map_err(|source| SysError::Os { op: "metrics listener nonblocking", source })?;
        Ok(MetricsListener { clients: Clients::new(listener, Framing::Http) })
    }

    /// The listener's fd, for polling.
    pub fn fd(&self) -> RawFd {
        self.clients.fd()
    }
}

/// The HTTP response carrying the metrics page `body`.
pub fn http_response(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.0 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::control::GossipStats;
    use crate::counters::Sample;
    use crate::dataplane::{Counters, EspCounters, EspTunnels, FdbCounters, NetworkSpec, SwitchConfig};
    use crate::ipsec::{SessionConfig, Suite};
    use crate::wire::vxlan::Vni;
    use std::time::{Duration, Instant};

    fn switch(now: Instant, encrypted: bool) -> Switch {
        let spec = NetworkSpec {
            vni: Vni::new(1042).unwrap(),
            max_frame_len: 1464,
            peers: vec!["198.18.0.2".parse().unwrap()],
            unknown_arp: Default::default(),
            routed: None,
            tunnel: if encrypted { crate::dataplane::Tunnel::Esp } else { crate::dataplane::Tunnel::Vxlan },
            path: Default::default(),
        };
        Switch::new(SwitchConfig { fdb_ageing: Duration::from_secs(300), fdb_max_entries: 16, networks: vec![spec] }, now)
    }

    #[test]
    fn renders_counters_drops_and_peers_in_text_format() {
        let now = Instant::now();
        let mut sw = switch(now, false);
        let mut buf = vec![0u8; 128];
        buf[64..67].copy_from_slice(&[8, 0, 0]);
        let _ = sw.handle_underlay(now, "198.18.0.2".parse().unwrap(), &mut buf, 64..67);
        let gossip = GossipCounters { members_alive: 3, ..Default::default() };
        let page = render(&sw, &DriverCounters::default(), &[(0, Vni::new_const(1042))], Some(&gossip));
        assert!(page.contains("vxswitch_underlay_rx_packets_total 1"), "{page}");
        assert!(page.contains("vxswitch_drops_total{reason=\"vxlan_truncated\"} 1"), "{page}");
        assert!(page.contains("vxswitch_peers{vni=\"1042\"} 1"), "{page}");
        assert!(page.contains("vxswitch_gossip_members_alive 3"), "{page}");
        assert!(page.trim_end().ends_with("# EOF"));
    }

    /// The line of `sample` on the metrics page, without its value.
    fn series(s: &Sample) -> String {
        let suffix = if s.kind == Kind::Counter { "_total" } else { "" };
        match s.label {
            Some((key, value)) => format!("vxswitch_{}{suffix}{{{key}=\"{value}\"}}", s.family),
            None => format!("vxswitch_{}{suffix}", s.family),
        }
    }

    /// Every counter of every declared set must reach both exports: the sets are named here
    /// independently of [`sections`], and each of their counters is looked up on the rendered
    /// page and in the `stats` JSON of a daemon that has all of them (ESP and gossip on).
    #[test]
    fn every_declared_counter_is_on_the_metrics_page_and_in_stats() {
        let now = Instant::now();
        let mut sw = switch(now, true);
        sw.set_esp(EspTunnels::new(None, 1, Suite::Aes256Gcm, SessionConfig::default()));
        let driver = DriverCounters { rx_csum_partial_finished: 7, tap_read_errors: 5, ..Default::default() };
        let gossip = GossipCounters { members_alive: 2, send_errors: 4, ..Default::default() };
        let config = Config::parse("[underlay]\naddress = \"198.18.0.1\"\n\n[[network]]\nvni = 1042\ntap = \"vxs1042\"\n").unwrap();
        let page = render(&sw, &driver, &[(0, Vni::new_const(1042))], Some(&gossip));
        let networks: Vec<_> = config.switched_networks().enumerate().collect();
        let sources = super::super::status::Sources {
            started: now,
            switch: &sw,
            driver: &driver,
            gossip: Some(&gossip),
            networks: &networks,
            config: &config,
            offload: None,
        };
        let stats = super::super::status::answer("stats", &sources);
        let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();

        let declared: [(&str, &str, &dyn CounterSet); 5] = [
            ("counters", "", &Counters::default()),
            ("fdb", "fdb_", &FdbCounters::default()),
            ("driver", "", &DriverCounters::default()),
            ("esp", "esp_", &EspCounters::default()),
            ("gossip", "gossip_", &GossipCounters { membership: GossipStats::default(), ..Default::default() }),
        ];
        let mut checked = 0;
        for (section, prefix, set) in declared {
            for s in counters::samples(prefix, set) {
                let line = series(&s);
                assert!(
                    page.lines().any(|l| l.strip_prefix(&line).is_some_and(|v| v.starts_with(' '))),
                    "{line} missing from /metrics:\n{page}"
                );
                let pointer = format!("/{section}/{}", s.path.join("/"));
                assert!(stats.pointer(&pointer).is_some_and(|v| v.is_u64()), "{pointer} missing from stats:\n{stats:#}");
                checked += 1;
            }
        }
        assert!(checked > 90, "only {checked} counters declared?");
        // Values flow through, and the counters once missing from /metrics are there.
        for line in [
            "vxswitch_rx_csum_partial_finished_total 7",
            "vxswitch_io_errors_total{reason=\"tap_read\"} 5",
            "vxswitch_gossip_send_errors_total 4",
            "vxswitch_gossip_members_alive 2",
            "vxswitch_arp_kept_local_total 0",
            "vxswitch_arp_requests_sent_total 0",
            "vxswitch_gateway_echo_replies_total 0",
            "vxswitch_esp_drops_total{reason=\"replay\"} 0",
        ] {
            assert!(page.lines().any(|l| l == line), "{line} missing:\n{page}");
        }
        assert_eq!(stats["driver"]["rx_csum_partial_finished"], 7);
        assert_eq!(stats["driver"]["tap_read_errors"], 5);
        assert_eq!(stats["gossip"]["send_errors"], 4);
    }
}
