//! Prometheus metrics: the switch's counters in the text exposition format, encoded by
//! `prometheus-client`. Served on the control socket (`vxswitch metrics`) and, when
//! `metrics_listen` is set, over HTTP for a Prometheus scraper.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::dataplane::{DropReason, Switch};
use crate::sys::fastpath::DriverCounters;
use crate::sys::SysError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VniLabel {
    vni: String,
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter = Counter::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

/// Render the current counters of `switch` and the driver.
pub fn render(switch: &Switch, driver: &DriverCounters, ports: &[u32], gossip_members_alive: Option<usize>) -> String {
    let mut r = Registry::with_prefix("vxswitch");
    let c = switch.counters();
    counter(&mut r, "tap_rx_frames", "Frames read from TAPs", c.tap_rx_frames);
    counter(&mut r, "tap_rx_bytes", "Bytes read from TAPs", c.tap_rx_bytes);
    counter(&mut r, "tap_tx_frames", "Frames handed to TAPs", c.tap_tx_frames);
    counter(&mut r, "underlay_rx_packets", "Datagrams received from the underlay", c.underlay_rx_packets);
    counter(&mut r, "underlay_rx_bytes", "UDP payload bytes received from the underlay", c.underlay_rx_bytes);
    counter(&mut r, "underlay_tx_packets", "Datagrams sent to the underlay", c.underlay_tx_packets);
    counter(&mut r, "flooded_frames", "Frames flooded by head-end replication", c.flooded_frames);
    counter(&mut r, "flood_copies", "Copies sent by head-end replication", c.flood_copies);
    counter(&mut r, "vxlan_reserved_bits", "VXLAN datagrams accepted with reserved bits set", c.vxlan_reserved_bits);
    counter(&mut r, "arp_replies", "ARP requests answered locally", c.arp_replies);
    counter(&mut r, "routed_packets", "Packets routed in routed mode", c.routed_packets);
    counter(&mut r, "esp_keepalives", "ESP-in-UDP NAT keepalives received", c.esp_keepalives);
    let drops = Family::<ReasonLabel, Counter>::default();
    for reason in DropReason::ALL {
        drops.get_or_create(&ReasonLabel { reason: reason.label().to_string() }).inc_by(c.drops(*reason));
    }
    r.register("drops", "Packets dropped, by reason", drops.clone());
    let esp_drops = Family::<ReasonLabel, Counter>::default();
    if let Some(esp) = switch.esp() {
        let d = esp.drops();
        for reason in crate::ipsec::DropReason::ALL {
            esp_drops.get_or_create(&ReasonLabel { reason: reason.name().to_string() }).inc_by(d.get(reason));
        }
    }
    r.register("esp_drops", "ESP packets dropped by the ESP layer, by reason", esp_drops.clone());
    let f = switch.fdb().counters();
    counter(&mut r, "fdb_learned", "FDB entries learned", f.learned);
    counter(&mut r, "fdb_moved", "MAC moves", f.moved);
    counter(&mut r, "fdb_aged", "FDB entries aged out", f.aged);
    counter(&mut r, "fdb_evicted", "FDB entries evicted at the size cap", f.evicted);
    let fdb_entries: Gauge = Gauge::default();
    fdb_entries.set(switch.fdb().len() as i64);
    r.register("fdb_entries", "FDB entries now", fdb_entries);
    let peers = Family::<VniLabel, Gauge>::default();
    for (port, vni) in ports.iter().enumerate() {
        peers.get_or_create(&VniLabel { vni: vni.to_string() }).set(switch.peers(port).len() as i64);
    }
    r.register("peers", "Peer VTEPs per network", peers.clone());
    let io = Family::<ReasonLabel, Counter>::default();
    for (reason, value) in [
        ("underlay_send", driver.underlay_send_errors),
        ("underlay_recv", driver.underlay_recv_errors),
        ("underlay_rx_truncated", driver.underlay_rx_truncated),
        ("tap_write", driver.tap_write_errors),
        ("tap_read", driver.tap_read_errors),
        ("tap_offload", driver.tap_offload_errors),
        ("tap_segment_oversize", driver.tap_segment_oversize),
        ("rx_checksum", driver.rx_csum_failures),
    ] {
        io.get_or_create(&ReasonLabel { reason: reason.to_string() }).inc_by(value);
    }
    r.register("io_errors", "I/O failures in the drivers, by kind", io.clone());
    counter(&mut r, "tap_super_frames", "TCP super-frames (TSO) read from offload TAPs", driver.tap_super_frames);
    counter(&mut r, "tap_segments", "Segments split from TCP super-frames", driver.tap_segments);
    counter(&mut r, "gso_sends", "UDP_SEGMENT sends", driver.gso_sends);
    counter(&mut r, "gso_segments", "Datagrams carried by UDP_SEGMENT sends", driver.gso_segments);
    counter(&mut r, "gso_fallbacks", "UDP_SEGMENT sends refused by the kernel (GSO then off)", driver.gso_fallbacks);
    counter(&mut r, "gro_batches", "Receive buffers holding several datagrams (UDP_GRO)", driver.gro_batches);
    counter(&mut r, "gro_datagrams", "Datagrams in UDP_GRO receive buffers", driver.gro_datagrams);
    counter(&mut r, "coalesced_writes", "TAP writes carrying coalesced TCP segments", driver.coalesced_writes);
    counter(&mut r, "coalesced_segments", "TCP segments carried by coalesced TAP writes", driver.coalesced_segments);
    if let Some(alive) = gossip_members_alive {
        let g: Gauge = Gauge::default();
        g.set(alive as i64);
        r.register("gossip_members_alive", "Gossip members seen alive", g);
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}

/// A tiny HTTP endpoint for Prometheus: every request gets the metrics page.
pub struct MetricsListener {
    listener: TcpListener,
}

impl MetricsListener {
    /// Listen on `addr`.
    pub fn bind(addr: SocketAddr) -> Result<Self, SysError> {
        let listener = TcpListener::bind(addr).map_err(|source| SysError::Os { op: "bind metrics listener", source })?;
        listener.set_nonblocking(true).map_err(|source| SysError::Os { op: "metrics listener nonblocking", source })?;
        Ok(MetricsListener { listener })
    }

    /// The fd, for polling.
    pub fn fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Answer pending scrapes with `page()`.
    pub fn serve(&self, page: impl Fn() -> String) {
        while let Ok((mut stream, _)) = self.listener.accept() {
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = stream.set_write_timeout(Some(Duration::from_millis(500)));
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let body = page();
            let _ = write!(
                stream,
                "HTTP/1.0 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::{NetworkSpec, SwitchConfig};
    use crate::wire::vxlan::Vni;
    use std::time::Instant;

    #[test]
    fn renders_counters_drops_and_peers_in_text_format() {
        let now = Instant::now();
        let spec = NetworkSpec {
            vni: Vni::new(1042).unwrap(),
            max_frame_len: 1464,
            peers: vec!["198.18.0.2".parse().unwrap()],
            unknown_arp: Default::default(),
            routed: None,
            tunnel: crate::dataplane::Tunnel::Vxlan,
        };
        let mut sw = Switch::new(SwitchConfig { fdb_ageing: Duration::from_secs(300), fdb_max_entries: 16, networks: vec![spec] }, now);
        let mut buf = vec![0u8; 128];
        buf[64..67].copy_from_slice(&[8, 0, 0]);
        let _ = sw.handle_underlay(now, "198.18.0.2".parse().unwrap(), &mut buf, 64..67);
        let page = render(&sw, &DriverCounters::default(), &[1042], Some(3));
        assert!(page.contains("vxswitch_underlay_rx_packets_total 1"), "{page}");
        assert!(page.contains("vxswitch_drops_total{reason=\"vxlan_truncated\"} 1"), "{page}");
        assert!(page.contains("vxswitch_peers{vni=\"1042\"} 1"), "{page}");
        assert!(page.contains("vxswitch_gossip_members_alive 3"), "{page}");
        assert!(page.trim_end().ends_with("# EOF"));
    }
}
