//! Nonce safety as properties: over random sequences of restarts, crashes (at any point, also
//! between persisting a reservation and using it), rekeys, epoch flips, peers leaving and coming
//! back, and wall-clock steps, every packet sealed is recorded as (SPI, key id, sequence number)
//! and no (key, sequence number) pair, i.e. no AES-GCM (key, nonce) pair, appears twice.
//!
//! The drivers here do what the daemon does (`sys/daemon/esp.rs`): the "disk" is the text of the
//! ESP state file, written only through `EspState::emit` and read back through `EspState::parse`;
//! a crash drops everything else. Virtual time; no root needed.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use vxswitch::dataplane::EspTunnels;
use vxswitch::ipsec::{start_epoch, EspState, HostKey, ManualSa, SessionConfig, Suite, ESP_HEADROOM, ESP_TAILROOM};
use vxswitch::wire::vxlan::Vni;

const PEER: std::net::IpAddr = std::net::IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
const RIVAL: std::net::IpAddr = std::net::IpAddr::V4(Ipv4Addr::new(198, 18, 0, 3));
const BLOCK: u64 = 16;
/// Two encrypted networks between the same hosts: their SAs share one record of nonces used.
const NETS: [Vni; 2] = [Vni::new_const(7), Vni::new_const(8)];

/// Every packet sealed: (SPI, key id, sequence number), checked for repeats as it is recorded.
#[derive(Default)]
struct Sent {
    seen: HashSet<(u64, u64)>,
    packets: u64,
}

impl Sent {
    fn record(&mut self, spi: u32, key_id: u64, seq: u64) -> Result<(), TestCaseError> {
        prop_assert!(self.seen.insert((key_id, seq)), "nonce reused: SPI {spi:#x}, key {key_id:#x}, sequence {seq}");
        self.packets += 1;
        Ok(())
    }
}

/// Seal one frame for `peer` in network `vni`; on success record it. Returns whether it was sent.
fn seal_in(t: &mut EspTunnels, now: Instant, vni: Vni, peer: std::net::IpAddr, sent: &mut Sent) -> Result<bool, TestCaseError> {
    let mut buf = vec![0u8; ESP_HEADROOM + 60 + ESP_TAILROOM];
    let Ok(len) = t.seal(now, vni, peer, &mut buf, 60, 143) else { return Ok(false) };
    let spi = u32::from_be_bytes(buf[0..4].try_into().unwrap());
    let seq = u64::from_be_bytes(buf[8..16].try_into().unwrap());
    prop_assert!(len > 16);
    let sa = t.outbound(vni, peer).unwrap();
    prop_assert_eq!(sa.spi(), spi);
    sent.record(spi, sa.key_id(), seq)?;
    Ok(true)
}

/// Seal one frame for `peer` in the first network.
fn seal(t: &mut EspTunnels, now: Instant, peer: std::net::IpAddr, sent: &mut Sent) -> Result<bool, TestCaseError> {
    seal_in(t, now, NETS[0], peer, sent)
}

/// Seal one frame for `peer` in every network; whether all were sent.
fn seal_all(t: &mut EspTunnels, now: Instant, peer: std::net::IpAddr, sent: &mut Sent) -> Result<bool, TestCaseError> {
    let mut all = true;
    for vni in NETS {
        all &= seal_in(t, now, vni, peer, sent)?;
    }
    Ok(all)
}

// ---------------------------------------------------------------- manual keys

#[derive(Debug, Clone)]
enum ManualEvent {
    /// Seal this many packets, serving reservations as the daemon loop does.
    Send(u16),
    /// The process dies after computing a reservation, before writing it.
    CrashBeforeWrite,
    /// The process dies after the reservation is on disk, before the SA was told.
    CrashAfterWrite,
    /// The process dies between two packets.
    Crash,
    /// A clean restart.
    Restart,
    /// The operator installs a new key (same SPI).
    NewKey,
}

fn manual_event() -> impl Strategy<Value = ManualEvent> {
    prop_oneof![
        6 => (1u16..60).prop_map(ManualEvent::Send),
        1 => Just(ManualEvent::CrashBeforeWrite),
        1 => Just(ManualEvent::CrashAfterWrite),
        1 => Just(ManualEvent::Crash),
        1 => Just(ManualEvent::Restart),
        1 => Just(ManualEvent::NewKey),
    ]
}

/// A manual-key host as the daemon runs it: tunnels plus the state it last wrote.
struct ManualHost {
    tunnels: EspTunnels,
    disk_mark: u64,
}

fn manual_key(generation: u8) -> ManualSa {
    ManualSa::parse("0x1000", "rfc4106(gcm(aes))", &format!("0x{}", hex::encode([generation; 20])), 128).unwrap()
}

/// Start from the disk: continue after the persisted mark, reserve before the first packet.
fn start_manual(disk: &mut String, key: &ManualSa, now: Instant) -> ManualHost {
    let state = if disk.is_empty() { EspState::default() } else { EspState::parse(disk).expect("the disk is always a whole state") };
    let out = key.outbound(false).unwrap().with_reservation_block(BLOCK);
    let mark = state.mark(out.spi(), out.key_id());
    let mut tunnels = EspTunnels::new(None, 1, Suite::Aes128Gcm, SessionConfig::default());
    tunnels.add_manual(now, NETS[0], PEER, out.resume_after(mark), key.inbound(false, 64).unwrap());
    let mut host = ManualHost { tunnels, disk_mark: mark };
    serve(&mut host, disk, true);
    host
}

/// The daemon's `serve_reservations`: persist, then (unless the process dies first) confirm.
fn serve(host: &mut ManualHost, disk: &mut String, confirm: bool) {
    let wanted = host.tunnels.reservations_wanted();
    if wanted.is_empty() {
        return;
    }
    let mut state = if disk.is_empty() { EspState::default() } else { EspState::parse(disk).unwrap() };
    for r in &wanted {
        state.reserve(r.spi, r.key_id, r.upto);
        host.disk_mark = host.disk_mark.max(r.upto);
    }
    *disk = state.emit();
    if confirm {
        for r in &wanted {
            host.tunnels.confirm_reservation(r);
        }
    }
}

fn run_manual(events: Vec<ManualEvent>) -> Result<(), TestCaseError> {
    let now = Instant::now();
    let mut disk = String::new();
    let mut generation = 1u8;
    let mut host = start_manual(&mut disk, &manual_key(generation), now);
    let mut sent = Sent::default();
    for e in events {
        match e {
            ManualEvent::Send(n) => {
                for _ in 0..n {
                    if !seal(&mut host.tunnels, now, PEER, &mut sent)? {
                        serve(&mut host, &mut disk, true);
                        prop_assert!(seal(&mut host.tunnels, now, PEER, &mut sent)?, "sealing resumes after a reservation");
                    }
                    let sa = host.tunnels.outbound(NETS[0], PEER).unwrap();
                    prop_assert!(sa.packets() <= host.disk_mark, "never past what is on disk");
                    serve(&mut host, &mut disk, true);
                }
            }
            ManualEvent::CrashBeforeWrite | ManualEvent::Crash => {
                let _ = host.tunnels.reservations_wanted();
                host = start_manual(&mut disk, &manual_key(generation), now);
            }
            ManualEvent::CrashAfterWrite => {
                serve(&mut host, &mut disk, false);
                host = start_manual(&mut disk, &manual_key(generation), now);
            }
            ManualEvent::Restart => host = start_manual(&mut disk, &manual_key(generation), now),
            ManualEvent::NewKey => {
                generation = generation.wrapping_add(1).max(1);
                host = start_manual(&mut disk, &manual_key(generation), now);
            }
        }
    }
    prop_assert!(sent.packets > 0 || sent.seen.is_empty());
    Ok(())
}

// ------------------------------------------------------------- automatic keys

#[derive(Debug, Clone)]
enum AutoEvent {
    /// Seal this many packets to the peer.
    Send(u8),
    /// Restart (or crash) of the local host: a new start epoch from the wall clock and disk.
    Restart,
    /// The peer restarts: a new peer epoch.
    PeerRestart,
    /// A second record claims the peer's address with another key, then the genuine one returns.
    Flip,
    /// The peer leaves (PeerDown) and comes back with the same epoch.
    LeaveAndReturn,
    /// Virtual time passes (timer rekeys).
    Wait(u16),
    /// The wall clock steps by this many seconds (negative: backwards).
    ClockStep(i32),
}

fn auto_event() -> impl Strategy<Value = AutoEvent> {
    prop_oneof![
        6 => (1u8..20).prop_map(AutoEvent::Send),
        1 => Just(AutoEvent::Restart),
        1 => Just(AutoEvent::PeerRestart),
        2 => Just(AutoEvent::Flip),
        2 => Just(AutoEvent::LeaveAndReturn),
        2 => (1u16..300).prop_map(AutoEvent::Wait),
        1 => (-3600i32..3600).prop_map(AutoEvent::ClockStep),
    ]
}

fn host(seed: u8) -> HostKey {
    HostKey::from_private_bytes(&[seed; 32]).unwrap()
}

fn start_auto(disk: &mut EspState, wall_ms: u64, now: Instant, peer_epoch: u64) -> EspTunnels {
    // The daemon: epoch from the wall clock, kept above the last one, persisted before use.
    let epoch = disk.next_epoch(start_epoch(wall_ms));
    let config = SessionConfig { packet_budget: 7, rekey_after: Duration::from_secs(60), ..SessionConfig::default() };
    let mut t = EspTunnels::new(Some(host(1)), epoch, Suite::Aes256Gcm, config).with_max_sessions(8).with_networks(&NETS);
    t.set_peer_key(now, PEER, host(2).public_key(), peer_epoch);
    t
}

fn run_auto(events: Vec<AutoEvent>) -> Result<(), TestCaseError> {
    let mut now = Instant::now();
    let mut wall_ms: u64 = 1_700_000_000_000;
    let mut disk = EspState::default();
    let mut peer_epoch = 77;
    let mut t = start_auto(&mut disk, wall_ms, now, peer_epoch);
    let mut sent = Sent::default();
    for e in events {
        match e {
            AutoEvent::Send(n) => {
                for _ in 0..n {
                    prop_assert!(seal_all(&mut t, now, PEER, &mut sent)?, "automatic SAs always seal");
                }
            }
            AutoEvent::Restart => t = start_auto(&mut disk, wall_ms, now, peer_epoch),
            AutoEvent::PeerRestart => {
                peer_epoch += 1;
                for vni in NETS {
                    t.remove_peer(vni, PEER);
                }
                t.set_peer_key(now, PEER, host(2).public_key(), peer_epoch);
            }
            AutoEvent::Flip => {
                t.set_peer_key(now, PEER, host(3).public_key(), 5);
                seal_all(&mut t, now, PEER, &mut sent)?;
                t.set_peer_key(now, PEER, host(2).public_key(), peer_epoch);
            }
            AutoEvent::LeaveAndReturn => {
                for vni in NETS {
                    t.remove_peer(vni, PEER);
                    prop_assert!(!t.has_session(vni, PEER));
                }
                // Meanwhile another address claims the same key and epoch.
                t.set_peer_key(now, RIVAL, host(2).public_key(), peer_epoch);
                seal_all(&mut t, now, RIVAL, &mut sent)?;
                t.set_peer_key(now, PEER, host(2).public_key(), peer_epoch);
                for vni in NETS {
                    prop_assert!(!t.has_session(vni, RIVAL), "one live session per network, peer key and epoch");
                }
            }
            AutoEvent::Wait(s) => {
                now += Duration::from_secs(u64::from(s));
                t.handle_timeout(now);
            }
            AutoEvent::ClockStep(s) => wall_ms = wall_ms.saturating_add_signed(i64::from(s) * 1000),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Manual keys: crashes anywhere never make a sequence number go back under one key.
    #[test]
    fn manual_keys_never_repeat_a_nonce(events in proptest::collection::vec(manual_event(), 1..40)) {
        run_manual(events)?;
    }

    /// Automatic keys: restarts, flips, departures, timers and clock steps never repeat a nonce,
    /// in either of two encrypted networks nor between them.
    #[test]
    fn automatic_keys_never_repeat_a_nonce(events in proptest::collection::vec(auto_event(), 1..40)) {
        run_auto(events)?;
    }
}

#[test]
fn manual_crash_after_write_skips_forward() {
    run_manual(vec![ManualEvent::Send(10), ManualEvent::CrashAfterWrite, ManualEvent::Send(40), ManualEvent::Crash, ManualEvent::Send(5)])
        .unwrap();
}
