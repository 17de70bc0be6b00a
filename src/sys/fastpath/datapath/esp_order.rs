//! Tests of the order in which the TAP -> underlay path hands sealed ESP datagrams to the
//! kernel: the receiver's replay window refuses a datagram that arrives after more than a
//! window's worth of later-numbered ones, so every datagram must leave in the order it was sealed,
//! the copies the switch makes of a flooded frame included. Loopback sockets, no privileges.

use super::*;
use crate::control::ControlUpdate;
use crate::dataplane::{EspTunnels, NetworkSpec, SwitchConfig};
use crate::ipsec::{InboundSa, OutboundSa, SessionConfig, Suite};
use crate::wire::ethernet::EthernetAddress;
use crate::wire::vxlan::Vni;
use std::net::Ipv4Addr;
use std::time::Duration;

const LOCAL: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const REMOTE: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

/// An encrypted switched network with manual keys toward its one peer `peer`, behind which
/// the FDB places `REMOTE`.
fn esp_switch(now: Instant, peer: IpAddr) -> Switch {
    let vni = Vni::new(1042).unwrap();
    let spec = NetworkSpec {
        vni,
        max_frame_len: 1464,
        peers: vec![peer],
        unknown_arp: Default::default(),
        routed: None,
        tunnel: Tunnel::Esp,
        path: Default::default(),
    };
    let mut sw = Switch::new(SwitchConfig { fdb_ageing: Duration::from_secs(300), fdb_max_entries: 16, networks: vec![spec] }, now);
    sw.set_esp(EspTunnels::new(None, 1, Suite::Aes256Gcm, SessionConfig::default()));
    let km = [7u8; 36];
    let out = OutboundSa::new(0x4242, Suite::Aes256Gcm, &km, false).unwrap();
    let inb = InboundSa::new(0x4343, Suite::Aes256Gcm, &km, false, 1024).unwrap();
    sw.esp_mut().unwrap().add_manual(now, vni, peer, out, inb);
    sw.apply(now, ControlUpdate::StaticFdb { vni, mac: REMOTE, underlay: peer });
    sw
}

/// A frame from `LOCAL` to `dst` (an EtherType the switch only forwards).
fn frame(dst: EthernetAddress, n: u8) -> Vec<u8> {
    let mut f = vec![n; 200];
    f[..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&LOCAL.0);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f
}

/// The ESP sequence numbers of the next `n` datagrams `sock` receives, in arrival order.
fn received_sequence_numbers(sock: &UnderlaySockets, n: usize) -> Vec<u32> {
    let mut bufs = vec![vec![0u8; 2048]; udp::BATCH];
    let mut meta = Vec::new();
    let mut seqs = Vec::new();
    for _ in 0..200 {
        let got = sock.recv_batch(&mut bufs, 0, &mut meta).unwrap();
        seqs.extend(bufs[..got].iter().map(|b| u32::from_be_bytes(b[4..8].try_into().unwrap())));
        if seqs.len() >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    seqs
}

/// Frames 1..=`count` to `REMOTE`, except those listed in `flooded` (broadcast): the
/// broadcast ones are sealed as copies the switch queues, the others in their slots.
fn switch_frames(tx: &mut TxPath, sw: &mut Switch, now: Instant, count: u8, flooded: &[u8]) {
    for n in 1..=count {
        let f = frame(if flooded.contains(&n) { EthernetAddress::BROADCAST } else { REMOTE }, n);
        let slot = usize::from(n - 1);
        tx.batch.slots.bufs[slot][HEADROOM..HEADROOM + f.len()].copy_from_slice(&f);
        tx.handle(sw, now, 0, slot, f.len());
    }
}

/// Sockets on two loopback addresses sharing one port, as ESP-in-UDP peers do.
fn esp_pair() -> (UnderlaySockets, UnderlaySockets, IpAddr) {
    let rx_addr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let rx = UnderlaySockets::bind_fixed_source(rx_addr, 0).unwrap();
    let port = rx.source_ports()[0];
    let tx = UnderlaySockets::bind_fixed_source(IpAddr::V4(Ipv4Addr::LOCALHOST), port).unwrap();
    (rx, tx, rx_addr)
}

#[test]
fn esp_copies_of_a_flood_leave_in_sequence_order_with_the_frames_around_them() {
    let (rx, esp, peer) = esp_pair();
    let udp = UnderlaySockets::bind(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, 4789).unwrap();
    let now = Instant::now();
    let mut sw = esp_switch(now, peer);
    let mut tx = TxPath::new(2048);
    let mut driver = DriverCounters::default();
    // Sealed in this order: 1, 2 (a flooded frame's copy), 3, 4, 5 (flooded), 6.
    switch_frames(&mut tx, &mut sw, now, 6, &[2, 5]);
    assert!(sw.poll_transmit().is_none(), "the flood copies joined the batch");
    tx.flush(&udp, Some(&esp), &mut driver);
    assert_eq!(received_sequence_numbers(&rx, 6), [1, 2, 3, 4, 5, 6], "handed to the kernel in sequence order");
    // A flood the switch queued outside a TAP read leaves through the same batches.
    let f = frame(EthernetAddress::BROADCAST, 7);
    let mut buf = vec![0u8; HEADROOM + f.len() + TAILROOM];
    buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(&f);
    assert_eq!(sw.handle_tap_frame(now, 0, &mut buf, HEADROOM..HEADROOM + f.len()), Forward::Nothing);
    tx.send_originated(&mut sw, &udp, Some(&esp), &mut driver);
    assert!(sw.poll_transmit().is_none());
    assert_eq!(received_sequence_numbers(&rx, 1), [7]);
    assert_eq!(driver.underlay_send_errors, 0);
}

#[test]
fn with_a_send_thread_originated_datagrams_queue_behind_the_batches_in_flight() {
    let (rx, esp, peer) = esp_pair();
    let udp = UnderlaySockets::bind(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, 4789).unwrap();
    let now = Instant::now();
    let mut sw = esp_switch(now, peer);
    let mut tx = TxPath::with_send_thread(2048, udp.try_clone().unwrap(), Some(esp.try_clone().unwrap())).unwrap();
    let mut driver = DriverCounters::default();
    for round in 0..20u32 {
        // A batch large enough for the send thread, a flood copy inside it...
        switch_frames(&mut tx, &mut sw, now, 12, &[3]);
        tx.flush(&udp, Some(&esp), &mut driver);
        // ...and a flood from outside a TAP read right behind it, while it may be in flight.
        let f = frame(EthernetAddress::BROADCAST, 13);
        let mut buf = vec![0u8; HEADROOM + f.len() + TAILROOM];
        buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(&f);
        let _ = sw.handle_tap_frame(now, 0, &mut buf, HEADROOM..HEADROOM + f.len());
        tx.send_originated(&mut sw, &udp, Some(&esp), &mut driver);
        let first = round * 13 + 1;
        let want: Vec<u32> = (first..first + 13).collect();
        assert_eq!(received_sequence_numbers(&rx, 13), want, "round {round}");
    }
    tx.reap(&mut driver);
    assert_eq!(driver.underlay_send_errors, 0);
}
