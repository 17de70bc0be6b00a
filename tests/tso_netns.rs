//! The offload fast path on real kernels: TSO super-frames from the TAP split in userspace, UDP
//! GSO sends, UDP GRO receives and TCP coalescing into the TAP, checked by moving a known number
//! of bytes with a known pattern through the overlay and comparing every byte on arrival.
//! Needs root; without it each test prints SKIP (or fails with VXSWITCH_REQUIRE_ROOT=1).

#[path = "common/netns.rs"]
mod netns_common;
#[path = "common/traffic.rs"]
mod traffic;

use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use netns_common::have_root;
use traffic::all_pairs_ping;
use vxswitch::testnet::lab::{Addressing, HostKind, Lab};
use vxswitch::testnet::setns;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vxswitch"))
}

const BLOCK: usize = 1 << 20;

/// Block `k` of the stream: a fixed pseudo-random MiB with `k` stamped at its start, so lost,
/// duplicated, reordered or corrupted data all show up as a mismatch.
fn block(base: &[u8], k: u64) -> Vec<u8> {
    let mut b = base.to_vec();
    b[..8].copy_from_slice(&k.to_le_bytes());
    b
}

fn base_block() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..BLOCK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Send `blocks` MiB from container 0 of host `from` to container 0 of host `to` over TCP and
/// check every byte at the receiver. Returns the bytes received intact.
fn transfer(lab: &Lab, from: usize, to: usize, blocks: u64, port: u16) -> u64 {
    let dst = lab.hosts[to].containers[0].ip;
    let (rx_ns, tx_ns) = (lab.hosts[to].containers[0].ns.name().to_string(), lab.hosts[from].containers[0].ns.name().to_string());
    let listener = setns::run_in(&rx_ns, move || TcpListener::bind(SocketAddrV4::new(dst, port))).unwrap().unwrap();
    let sink = std::thread::spawn(move || {
        let base = base_block();
        listener.set_nonblocking(true).unwrap();
        let start = Instant::now();
        let mut s = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && start.elapsed() < Duration::from_secs(20) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = vec![0u8; BLOCK];
        let mut k = 0u64;
        loop {
            let mut filled = 0;
            while filled < BLOCK {
                match s.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => panic!("receive after {k} blocks: {e}"),
                }
            }
            if filled == 0 {
                return k * BLOCK as u64;
            }
            assert_eq!(filled, BLOCK, "stream ended inside block {k}");
            assert!(buf == block(&base, k), "block {k} arrived corrupted");
            k += 1;
        }
    });
    let sender = setns::run_in(&tx_ns, move || {
        let base = base_block();
        let start = Instant::now();
        let mut s = loop {
            match TcpStream::connect_timeout(&SocketAddrV4::new(dst, port).into(), Duration::from_secs(2)) {
                Ok(s) => break s,
                Err(e) if start.elapsed() < Duration::from_secs(10) => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("connect: {e}"),
            }
        };
        s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        for k in 0..blocks {
            s.write_all(&block(&base, k)).unwrap();
        }
        s.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let sent = sender.map_err(|e| format!("{e:?}"));
    let got = sink.join();
    sent.expect("sender");
    got.expect("receiver")
}

fn driver(lab: &Lab, host: usize, key: &str) -> u64 {
    let stats = lab.stats(host).unwrap();
    stats["driver"][key].as_u64().unwrap_or_else(|| panic!("driver.{key} in {}", stats["driver"]))
}

#[test]
fn netns_tcp_through_offload_fast_path_arrives_intact() {
    if !have_root("netns_tcp_through_offload_fast_path_arrives_intact") {
        return;
    }
    let lab = Lab::build("ofvv", &[HostKind::Vxswitch, HostKind::Vxswitch], 1, bin()).unwrap();
    all_pairs_ping(&lab, 2);
    let blocks = 128;
    assert_eq!(transfer(&lab, 0, 1, blocks, 5301), blocks * BLOCK as u64, "every byte arrived, in order");
    assert_eq!(transfer(&lab, 1, 0, 32, 5302), 32 * BLOCK as u64, "and the other way");
    // Sender side: super-frames split and sent with UDP GSO.
    assert!(driver(&lab, 0, "tap_super_frames") > 0, "TSO super-frames read: {}", lab.stats(0).unwrap()["driver"]);
    assert!(driver(&lab, 0, "tap_segments") > driver(&lab, 0, "tap_super_frames"));
    assert!(driver(&lab, 0, "gso_sends") > 0 && driver(&lab, 0, "gso_segments") > driver(&lab, 0, "gso_sends"));
    assert_eq!(driver(&lab, 0, "gso_fallbacks"), 0);
    // Receiver side: GRO batches split, segments coalesced into the TAP, no bad checksums.
    assert!(driver(&lab, 1, "gro_batches") > 0, "UDP GRO batches: {}", lab.stats(1).unwrap()["driver"]);
    assert!(driver(&lab, 1, "coalesced_writes") > 0 && driver(&lab, 1, "coalesced_segments") > driver(&lab, 1, "coalesced_writes"));
    for h in 0..2 {
        for key in ["rx_csum_failures", "tap_offload_errors", "tap_segment_oversize", "underlay_send_errors", "tap_write_errors"] {
            assert_eq!(driver(&lab, h, key), 0, "host {h} {key}");
        }
    }
}

#[test]
fn netns_tcp_over_esp_through_offload_fast_path_arrives_intact() {
    if !have_root("netns_tcp_over_esp_through_offload_fast_path_arrives_intact") {
        return;
    }
    // An encrypted L2 overlay (manual AES-GCM keys) at its default MTU, offload left at its default.
    let mut lab = Lab::build("ofes", &[HostKind::Bare, HostKind::Bare], 1, bin()).unwrap();
    start_at_tap_mtu(&mut lab, |lab, i| lab.esp_manual_config(i, false));
    let blocks = 64;
    assert_eq!(transfer(&lab, 0, 1, blocks, 5307), blocks * BLOCK as u64, "every byte arrived, in order");
    assert_eq!(transfer(&lab, 1, 0, 32, 5308), 32 * BLOCK as u64, "and the other way");
    for (tx, rx) in [(0, 1), (1, 0)] {
        let (s, r) = (lab.stats(tx).unwrap(), lab.stats(rx).unwrap());
        // Sender: super-frames split, each segment sealed, runs sent with UDP GSO.
        assert!(driver(&lab, tx, "tap_super_frames") > 0, "host {tx}: {}", s["driver"]);
        assert!(driver(&lab, tx, "gso_sends") > 0 && driver(&lab, tx, "gso_segments") > driver(&lab, tx, "gso_sends"), "{}", s["driver"]);
        // Receiver: GRO batches on port 4500 opened one by one and coalesced into the TAP.
        assert!(driver(&lab, rx, "gro_batches") > 0, "host {rx}: {}", r["driver"]);
        assert!(driver(&lab, rx, "coalesced_writes") > 0, "host {rx}: {}", r["driver"]);
    }
    for h in 0..2 {
        let s = lab.stats(h).unwrap();
        for key in [
            "gso_fallbacks",
            "rx_csum_failures",
            "tap_offload_errors",
            "tap_segment_oversize",
            "underlay_send_errors",
            "underlay_send_too_big",
            "tap_write_errors",
        ] {
            assert_eq!(driver(&lab, h, key), 0, "host {h} {key}: {}", s["driver"]);
        }
        // Every datagram sealed once and sent once: nothing refused, not even as a replay.
        for key in ["esp_rejected", "esp_seal_failed", "esp_seq_unreserved", "tap_oversize_esp"] {
            assert_eq!(s["counters"]["drops"][key], 0, "host {h} {key}: {} (esp: {})", s["counters"]["drops"], s["esp"]);
        }
        assert_eq!(s["esp"]["drops"]["replay"], 0, "host {h}: {}", s["esp"]);
        assert!(s["counters"]["tap_rx_bytes"].as_u64().unwrap() > 32 * BLOCK as u64, "host {h} carried a transfer");
    }
}

#[test]
fn netns_esp_over_offload_fast_path_leaves_in_sequence_order() {
    if !have_root("netns_esp_over_offload_fast_path_leaves_in_sequence_order") {
        return;
    }
    // The smallest replay window (64): a datagram handed to the kernel behind more than 63
    // later-numbered ones is refused as left of the window. The copies of flooded frames were
    // once sent after the batches sealed behind them and were refused here in every run.
    let mut lab = Lab::build("ofeo", &[HostKind::Bare, HostKind::Bare], 1, bin()).unwrap();
    start_at_tap_mtu(&mut lab, |lab, i| {
        let config = lab.esp_manual_config(i, false).replace("[esp]\n", "[esp]\nreplay_window = 64\n");
        assert!(config.contains("replay_window = 64"), "{config}");
        config
    });
    assert_eq!(transfer(&lab, 0, 1, 64, 5316), 64 * BLOCK as u64, "every byte arrived, in order");
    // Through the offload path: runs of sealed segments sent with UDP GSO, received with GRO.
    assert!(driver(&lab, 0, "gso_sends") > 0, "{}", lab.stats(0).unwrap()["driver"]);
    assert!(driver(&lab, 1, "gro_batches") > 0, "{}", lab.stats(1).unwrap()["driver"]);
    for h in 0..2 {
        let s = lab.stats(h).unwrap();
        assert_eq!(s["esp"]["drops"]["left_of_window"], 0, "host {h}: {}", s["esp"]);
        assert_eq!(s["counters"]["drops"]["esp_rejected"], 0, "host {h}: {} (esp: {})", s["counters"]["drops"], s["esp"]);
    }
}

#[test]
fn netns_tcp_over_routed_esp_through_offload_fast_path_arrives_intact() {
    if !have_root("netns_tcp_over_routed_esp_through_offload_fast_path_arrives_intact") {
        return;
    }
    // A routed encrypted network: IPv4 packets in ESP (next header 4), per-host subnets.
    let mut lab = Lab::build_with("ofer", &[HostKind::Bare, HostKind::Bare], 1, bin(), Addressing::PerHost).unwrap();
    start_at_tap_mtu(&mut lab, |lab, i| lab.esp_manual_config(i, true));
    assert_eq!(transfer(&lab, 0, 1, 32, 5309), 32 * BLOCK as u64, "every byte arrived, in order");
    assert_eq!(transfer(&lab, 1, 0, 32, 5310), 32 * BLOCK as u64, "and the other way");
    for h in 0..2 {
        let s = lab.stats(h).unwrap();
        assert!(driver(&lab, h, "tap_super_frames") > 0 && driver(&lab, h, "gso_sends") > 0, "host {h}: {}", s["driver"]);
        assert!(driver(&lab, h, "gro_batches") > 0 && driver(&lab, h, "coalesced_writes") > 0, "host {h}: {}", s["driver"]);
        for key in ["rx_csum_failures", "tap_offload_errors", "underlay_send_errors", "underlay_send_too_big", "tap_write_errors"] {
            assert_eq!(driver(&lab, h, key), 0, "host {h} {key}: {}", s["driver"]);
        }
        for key in ["esp_rejected", "esp_seal_failed", "routed_source_spoofed"] {
            assert_eq!(s["counters"]["drops"][key], 0, "host {h} {key}: {}", s["counters"]["drops"]);
        }
    }
}

#[test]
fn netns_tcp_between_offload_vxswitch_and_kernel_vxlan_arrives_intact() {
    if !have_root("netns_tcp_between_offload_vxswitch_and_kernel_vxlan_arrives_intact") {
        return;
    }
    let lab = Lab::build("ofvk", &[HostKind::Vxswitch, HostKind::KernelVxlan], 1, bin()).unwrap();
    // Default GSO settings everywhere: kernel vxlan over veth hands its TCP to vxswitch's socket
    // as UDP-tunnel GSO super-datagrams (one VXLAN header around a TSO frame).
    all_pairs_ping(&lab, 2);
    // vxswitch -> kernel vxlan: the kernel verifies every inner checksum we computed.
    assert_eq!(transfer(&lab, 0, 1, 64, 5303), 64 * BLOCK as u64);
    // kernel vxlan -> vxswitch: verified, coalesced and written to the TAP as super-frames.
    assert_eq!(transfer(&lab, 1, 0, 64, 5304), 64 * BLOCK as u64);
    assert!(driver(&lab, 0, "tap_super_frames") > 0 && driver(&lab, 0, "gso_sends") > 0);
    assert!(driver(&lab, 0, "coalesced_writes") > 0, "{}", lab.stats(0).unwrap()["driver"]);
    assert!(driver(&lab, 0, "rx_super_datagrams") > 0, "super-datagrams cut: {}", lab.stats(0).unwrap()["driver"]);
    assert!(driver(&lab, 0, "rx_super_pieces") > driver(&lab, 0, "rx_super_datagrams"));
    assert_eq!(driver(&lab, 0, "rx_super_unusable"), 0);
    assert_eq!(driver(&lab, 0, "rx_csum_failures"), 0);
    // Over veth the kernel leaves inner TCP checksums partial; they were finished, not dropped.
    assert!(driver(&lab, 0, "rx_csum_partial_finished") > 0);
}

#[test]
fn netns_tcp_with_offload_turned_off_takes_the_per_frame_path() {
    if !have_root("netns_tcp_with_offload_turned_off_takes_the_per_frame_path") {
        return;
    }
    let mut lab = Lab::build("ofof", &[HostKind::Bare, HostKind::Bare], 1, bin()).unwrap();
    for i in 0..2 {
        let config = lab.vxswitch_config(i, "").replace("[underlay]\n", "[underlay]\noffload = false\n");
        lab.start_vxswitch_with(i, &config).unwrap();
    }
    all_pairs_ping(&lab, 2);
    assert_eq!(transfer(&lab, 0, 1, 16, 5305), 16 * BLOCK as u64);
    for h in 0..2 {
        for key in ["tap_super_frames", "gso_sends", "gro_batches", "coalesced_writes"] {
            assert_eq!(driver(&lab, h, key), 0, "host {h} {key} with offload = false");
        }
    }
    assert!(lab.stats(0).unwrap()["counters"]["tap_rx_frames"].as_u64().unwrap() > 16 * BLOCK as u64 / 1500);
}

#[test]
fn netns_tcp_with_udp_gso_and_gro_turned_off_still_splits_and_coalesces() {
    if !have_root("netns_tcp_with_udp_gso_and_gro_turned_off_still_splits_and_coalesces") {
        return;
    }
    let mut lab = Lab::build("ofng", &[HostKind::Bare, HostKind::Bare], 1, bin()).unwrap();
    for i in 0..2 {
        let config = lab.vxswitch_config(i, "").replace("[underlay]\n", "[underlay]\nudp_gso = false\nudp_gro = false\n");
        lab.start_vxswitch_with(i, &config).unwrap();
    }
    all_pairs_ping(&lab, 2);
    assert_eq!(transfer(&lab, 0, 1, 32, 5306), 32 * BLOCK as u64);
    assert!(driver(&lab, 0, "tap_super_frames") > 0);
    assert_eq!(driver(&lab, 0, "gso_sends"), 0);
    assert_eq!(driver(&lab, 1, "gro_batches"), 0);
    assert!(driver(&lab, 1, "coalesced_writes") > 0, "consecutive datagrams of one recvmmsg still coalesce");
}

/// A two-host lab, VXLAN or ESP overlay (manual keys) at its default MTU, with `[underlay]
/// workers` set.
fn lab_with_workers(tag: &str, esp: bool, workers: u32) -> Lab {
    let mut lab = Lab::build(tag, &[HostKind::Bare, HostKind::Bare], 1, bin()).unwrap();
    start_at_tap_mtu(&mut lab, |lab, i| {
        let config = if esp { lab.esp_manual_config(i, false) } else { lab.vxswitch_config(i, "") };
        config.replace("[underlay]\n", &format!("[underlay]\nworkers = {workers}\n"))
    });
    lab
}

/// Start both hosts' daemons with `config(lab, host)`, give the containers the TAP's default MTU
/// (read back from `stats`), and check every pair answers.
fn start_at_tap_mtu(lab: &mut Lab, config: impl Fn(&Lab, usize) -> String) {
    for i in 0..2 {
        let text = config(lab, i);
        lab.start_vxswitch_with(i, &text).unwrap();
    }
    let mtu = lab.stats(0).unwrap()["networks"][0]["mtu"].as_u64().unwrap() as u32;
    lab.set_container_mtu(mtu).unwrap();
    all_pairs_ping(lab, 2);
}

/// Nothing lost or refused on either host: no send, checksum or TAP errors, no ESP refusals.
fn assert_clean(lab: &Lab) {
    for h in 0..2 {
        let s = lab.stats(h).unwrap();
        for key in
            ["gso_fallbacks", "rx_csum_failures", "tap_offload_errors", "underlay_send_errors", "underlay_send_too_big", "tap_write_errors"]
        {
            assert_eq!(driver(lab, h, key), 0, "host {h} {key}: {}", s["driver"]);
        }
        for key in ["esp_rejected", "esp_seal_failed", "esp_seq_unreserved"] {
            assert_eq!(s["counters"]["drops"][key], 0, "host {h} {key}: {}", s["counters"]["drops"]);
        }
        if !s["esp"].is_null() {
            assert_eq!(s["esp"]["drops"]["replay"], 0, "host {h}: {}", s["esp"]);
        }
    }
}

fn tcp_both_ways_through_the_send_thread(tag: &str, esp: bool, (p0, p1): (u16, u16)) {
    let lab = lab_with_workers(tag, esp, 2);
    assert_eq!(transfer(&lab, 0, 1, 64, p0), 64 * BLOCK as u64, "every byte arrived, in order");
    assert_eq!(transfer(&lab, 1, 0, 32, p1), 32 * BLOCK as u64, "and the other way");
    for h in 0..2 {
        let d = &lab.stats(h).unwrap()["driver"];
        // The sends went through the send thread, as UDP GSO runs, and every batch came back.
        assert!(driver(&lab, h, "send_thread_batches") > 0, "host {h}: {d}");
        assert!(driver(&lab, h, "gso_sends") > 0 && driver(&lab, h, "gso_segments") > driver(&lab, h, "gso_sends"), "host {h}: {d}");
    }
    assert_clean(&lab);
}

#[test]
fn netns_tcp_over_vxlan_through_the_send_thread_arrives_intact_both_ways() {
    if !have_root("netns_tcp_over_vxlan_through_the_send_thread_arrives_intact_both_ways") {
        return;
    }
    tcp_both_ways_through_the_send_thread("swvx", false, (5311, 5312));
}

#[test]
fn netns_tcp_over_esp_through_the_send_thread_arrives_intact_both_ways() {
    if !have_root("netns_tcp_over_esp_through_the_send_thread_arrives_intact_both_ways") {
        return;
    }
    tcp_both_ways_through_the_send_thread("swes", true, (5313, 5314));
}

#[test]
fn netns_one_worker_sends_on_the_daemon_thread() {
    if !have_root("netns_one_worker_sends_on_the_daemon_thread") {
        return;
    }
    let lab = lab_with_workers("sw1w", false, 1);
    assert_eq!(transfer(&lab, 0, 1, 16, 5315), 16 * BLOCK as u64);
    assert!(driver(&lab, 0, "gso_sends") > 0);
    for h in 0..2 {
        assert_eq!(driver(&lab, h, "send_thread_batches"), 0, "host {h}: workers = 1 has no send thread");
    }
    assert_clean(&lab);
}

/// What arrived of [`udp_flows`]: datagrams per flow, and how many arrived after a later one of
/// their flow.
struct FlowReport {
    received: Vec<u64>,
    out_of_order: u64,
}

/// Send `per_flow` sequence-numbered datagrams on each of `flows` UDP flows (distinct source
/// ports, so distinct outer source sockets) from container 0 of host `from` to container 0 of
/// host `to`, interleaved as fast as one thread can; at the receiver, count per flow the
/// datagrams that arrive with a lower sequence number than one already seen.
fn udp_flows(lab: &Lab, from: usize, to: usize, flows: u16, per_flow: u64, port: u16) -> FlowReport {
    let dst = SocketAddrV4::new(lab.hosts[to].containers[0].ip, port);
    let src_ip = lab.hosts[from].containers[0].ip;
    let (rx_ns, tx_ns) = (lab.hosts[to].containers[0].ns.name().to_string(), lab.hosts[from].containers[0].ns.name().to_string());
    let sink = setns::run_in(&rx_ns, move || UdpSocket::bind(dst)).unwrap().unwrap();
    let sink = {
        let s = socket2::Socket::from(sink);
        s.set_recv_buffer_size(8 << 20).unwrap();
        UdpSocket::from(s)
    };
    sink.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let receiver = std::thread::spawn(move || {
        let mut last = vec![None::<u64>; flows as usize];
        let mut report = FlowReport { received: vec![0; flows as usize], out_of_order: 0 };
        let mut buf = [0u8; 2048];
        // Until two seconds pass without a datagram (the sender has finished by then).
        while let Ok(n) = sink.recv(&mut buf) {
            assert!(n >= 10, "short datagram");
            let flow = u16::from_le_bytes([buf[0], buf[1]]) as usize;
            let seq = u64::from_le_bytes(buf[2..10].try_into().unwrap());
            assert!(buf[10..n].iter().all(|&b| b == (seq as u8) ^ (flow as u8)), "payload of flow {flow} #{seq} corrupted");
            report.received[flow] += 1;
            if last[flow].is_some_and(|l| seq < l) {
                report.out_of_order += 1;
            }
            last[flow] = Some(last[flow].map_or(seq, |l: u64| l.max(seq)));
        }
        report
    });
    setns::run_in(&tx_ns, move || {
        let socks: Vec<UdpSocket> = (0..flows).map(|f| UdpSocket::bind(SocketAddrV4::new(src_ip, 40000 + f)).unwrap()).collect();
        let mut buf = [0u8; 600];
        for seq in 0..per_flow {
            for (f, s) in socks.iter().enumerate() {
                // Sizes vary per datagram, so runs of equal sizes and single sends mix.
                let len = 10 + (seq as usize * 37 + f * 101) % 590;
                buf[..2].copy_from_slice(&(f as u16).to_le_bytes());
                buf[2..10].copy_from_slice(&seq.to_le_bytes());
                buf[10..len].fill((seq as u8) ^ (f as u8));
                // A full socket buffer drops the datagram: allowed, only the order is checked.
                let _ = s.send_to(&buf[..len], dst);
            }
            if seq % 16 == 15 {
                // Bursts of 128 datagrams: enough to fill more than one batch, not so many that
                // most are dropped at the TAP queue.
                std::thread::sleep(Duration::from_micros(500));
            }
        }
    })
    .unwrap();
    receiver.join().expect("receiver")
}

/// Flows spread over the outer source sockets and sent through the send thread keep their
/// order, over VXLAN and over ESP, in both directions.
#[test]
fn netns_udp_flows_keep_their_order_through_the_send_thread() {
    if !have_root("netns_udp_flows_keep_their_order_through_the_send_thread") {
        return;
    }
    for (tag, esp) in [("sovx", false), ("soes", true)] {
        let lab = lab_with_workers(tag, esp, 2);
        for (from, to, port) in [(0, 1, 5320), (1, 0, 5321)] {
            let before = driver(&lab, from, "send_thread_batches");
            let (flows, per_flow) = (8, 6000);
            let r = udp_flows(&lab, from, to, flows, per_flow, port);
            let total: u64 = r.received.iter().sum();
            assert_eq!(r.out_of_order, 0, "{tag} {from}->{to}: datagrams overtaken within their flow ({:?} received)", r.received);
            eprintln!("{tag} {from}->{to}: {total} of {} arrived, {:?}", u64::from(flows) * per_flow, r.received);
            assert!(total > u64::from(flows) * per_flow / 10, "{tag} {from}->{to}: too few arrived to judge ({:?})", r.received);
            assert!(r.received.iter().all(|&n| n > 0), "{tag}: every flow arrived: {:?}", r.received);
            assert!(driver(&lab, from, "send_thread_batches") > before + 10, "{tag}: the flows went through the send thread");
        }
        assert_clean(&lab);
    }
}
