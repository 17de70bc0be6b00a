//! Interop with a real kernel ESP stack: vxswitch (routed mode, ESP-in-UDP, manual AES-256-GCM
//! keys) in a test namespace against Linux xfrm tunnel mode in a QEMU guest running Debian's
//! stock kernel (this machine's kernel has no ESP in xfrm). The guest's virtio-net is a TAP on
//! the lab's underlay bridge; the guest runs `tests/qemu/xfrm-peer.sh`.
//!
//! Checked: 1,000 pings each way at 10 ms with none lost, a checked TCP stream each way with
//! every byte intact, and no replay or integrity failure on either side (the kernel's
//! `ip -s xfrm state` counters, vxswitch's ESP drops). Takes 40-55 s here, 10-35 s of it
//! the guest's boot under software emulation.
//! Needs root, QEMU, busybox and the guest kernel from `tests/qemu/prepare-kernel.sh` (which
//! `.ci/run` runs); without them it prints SKIP, or fails with VXSWITCH_REQUIRE_ROOT=1.

#[path = "common/netns.rs"]
mod netns_common;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use netns_common::have_root;
use vxswitch::testnet::lab::{host_subnet, lab_esp_key, lab_esp_spi, underlay_ip, Addressing, HostKind, Lab};
use vxswitch::testnet::pattern::TransferReport;
use vxswitch::testnet::probe::PingReport;
use vxswitch::testnet::qemu::{self, Guest, GuestSpec, Kernel};

const PINGS: u32 = 1000;
const BYTES: u64 = 4 << 20;
const PORT_TO_GUEST: u16 = 5501;
const PORT_TO_HOST: u16 = 5502;

/// A child process killed (and reaped) when dropped, also when the test fails.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vxswitch"))
}

/// The guest kernel and tools, or why the test cannot run (a failure under VXSWITCH_REQUIRE_ROOT=1).
fn prerequisites(test: &str) -> Option<Kernel> {
    if !have_root(test) {
        return None;
    }
    let missing = qemu::missing_tools();
    let kernel = Kernel::find();
    let why = match (&kernel, missing.is_empty()) {
        (Ok(_), true) => return kernel.ok(),
        (Err(e), _) => format!("{e}; missing programs: {missing:?}"),
        (Ok(_), false) => format!("missing programs: {missing:?} (apt-get install qemu-system-x86 busybox-static)"),
    };
    assert!(std::env::var("VXSWITCH_REQUIRE_ROOT").as_deref() != Ok("1"), "{test}: {why}");
    eprintln!("SKIP {test}: {why}");
    None
}

/// vxswitch's configuration: routed ESP, the guest (underlay_ip(1)) as the one peer.
fn vxswitch_config(lab: &Lab) -> String {
    let peer = format!(
        "{{ address = \"{}\", subnet = \"{}\", esp = {{ spi_out = \"{:#x}\", key_out = \"{}\", spi_in = \"{:#x}\", key_in = \"{}\" }} }}",
        underlay_ip(1),
        host_subnet(1),
        lab_esp_spi(0, 1),
        lab_esp_key(0, 1),
        lab_esp_spi(1, 0),
        lab_esp_key(1, 0)
    );
    // The sequence reservations go to the lab directory, not to /var/lib/vxswitch.
    let state = format!("[esp]\nstate_file = \"{}\"\n\n[[network]]", lab.esp_state_file(0).display());
    lab.subnet_config(0, "routed", &[])
        .replacen("[[network]]", &state, 1)
        .replace("peers = []", &format!("encryption = \"esp\"\npeers = [{peer}]"))
}

/// The `stats:` counters of the SA with `spi` in `ip -s xfrm state` output:
/// (replay-window drops, replays, integrity failures), and its `lifetime current` packets.
fn xfrm_stats(state: &str, spi: u32) -> ([u64; 3], u64) {
    let sa = state.split("\nsrc ").find(|b| b.contains(&format!("spi {spi:#010x}"))).unwrap_or_else(|| panic!("SA {spi:#x} in:\n{state}"));
    let stats: Vec<&str> = sa.split("stats:").nth(1).unwrap_or_else(|| panic!("stats of SA {spi:#x}:\n{sa}")).split_whitespace().collect();
    let value = |key: &str| -> u64 {
        let at = stats.iter().position(|w| *w == key).unwrap_or_else(|| panic!("{key} of SA {spi:#x}:\n{sa}"));
        stats[at + 1].parse().unwrap()
    };
    let current = sa.split("lifetime current:").nth(1).unwrap_or("");
    let packets = current.split_whitespace().find_map(|w| w.strip_suffix("(packets)")).and_then(|p| p.parse().ok()).unwrap_or(0);
    ([value("replay-window"), value("replay"), value("failed")], packets)
}

#[test]
fn qemu_xfrm_kernel_peer_interoperates_with_vxswitch_routed_esp() {
    let test = "qemu_xfrm_kernel_peer_interoperates_with_vxswitch_routed_esp";
    let Some(kernel) = prerequisites(test) else { return };
    let started = Instant::now();
    let mut lab = Lab::build_with("xq", &[HostKind::Bare], 1, bin(), Addressing::PerHost).unwrap();
    let config = vxswitch_config(&lab);
    lab.start_vxswitch_with(0, &config).unwrap();
    let tap_mtu = lab.stats(0).unwrap()["networks"][0]["mtu"].as_u64().unwrap();
    assert_eq!(tap_mtu, 1438, "routed ESP TAP MTU at underlay 1500");
    lab.set_container_mtu(tap_mtu as u32).unwrap();

    let container = &lab.hosts[0].containers[0];
    let guest_inner = host_subnet(1).hosts().nth(9).unwrap(); // .10, as lab containers
    let b = bin().to_string_lossy().into_owned();
    let mut host_sink = Reaped(
        container
            .ns
            .command(&b)
            .args(["probe", "pattern-sink", "--port", &PORT_TO_HOST.to_string(), "--wait-secs", "600"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let kv = |k: &str, v: String| (k.to_string(), v);
    let spec = GuestSpec {
        kernel,
        script: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/qemu/xfrm-peer.sh"),
        env: vec![
            kv("VXS_BIN", b.clone()),
            kv("GUEST_UL", underlay_ip(1).to_string()),
            kv("HOST_UL", underlay_ip(0).to_string()),
            kv("GUEST_INNER", guest_inner.to_string()),
            kv("GUEST_SUBNET", host_subnet(1).to_string()),
            kv("HOST_SUBNET", host_subnet(0).to_string()),
            kv("HOST_INNER", container.ip.to_string()),
            kv("SPI_IN", format!("{:#x}", lab_esp_spi(0, 1))),
            kv("KEY_IN", lab_esp_key(0, 1)),
            kv("SPI_OUT", format!("{:#x}", lab_esp_spi(1, 0))),
            kv("KEY_OUT", lab_esp_key(1, 0)),
            kv("PINGS", PINGS.to_string()),
            kv("BYTES", BYTES.to_string()),
            kv("PORT_IN", PORT_TO_GUEST.to_string()),
            kv("PORT_OUT", PORT_TO_HOST.to_string()),
        ],
        tap: "qg0".into(),
        dir: lab.dir.join("guest"),
    };
    let mut guest = Guest::boot(&lab.underlay, &spec).unwrap();
    let wait_tap = Instant::now();
    while lab.underlay.ip(&["link", "set", "qg0", "master", "ul", "up"]).is_err() {
        assert!(wait_tap.elapsed() < Duration::from_secs(10), "QEMU created no TAP qg0");
        std::thread::sleep(Duration::from_millis(50));
    }
    guest.wait_for("VXS-READY", Duration::from_secs(240)).unwrap();
    let booted = guest.elapsed();

    // Host -> guest while the guest pings and sends the other way.
    let ping = container
        .ns
        .output(
            &b,
            &["probe", "ping", &guest_inner.to_string(), "--count", &PINGS.to_string(), "--interval-ms", "10", "--timeout-ms", "5000"],
        )
        .unwrap();
    let to_guest: PingReport = serde_json::from_str(ping.trim()).unwrap();
    let sent = container
        .ns
        .output(
            &b,
            &["probe", "pattern-send", &guest_inner.to_string(), "--port", &PORT_TO_GUEST.to_string(), "--bytes", &BYTES.to_string()],
        )
        .unwrap();
    let sent_to_guest: TransferReport = serde_json::from_str(sent.trim()).unwrap();

    let console = guest.wait_for("VXS-EXIT", Duration::from_secs(300)).unwrap();
    let _ = guest.wait_exit(Duration::from_secs(20));
    let mut out = String::new();
    host_sink.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let got_from_guest: TransferReport = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("host sink {out:?}: {e}"));
    let results = qemu::results(&console, "VXS-RESULT ");
    let result = |name: &str| results.iter().find(|(k, _)| *k == name).unwrap_or_else(|| panic!("{name} in console:\n{console}")).1;
    let from_guest: PingReport = serde_json::from_str(result("ping")).unwrap();
    let guest_sent: TransferReport = serde_json::from_str(result("send")).unwrap();
    let guest_sink: TransferReport = serde_json::from_str(result("sink")).unwrap();
    let state = qemu::section(&console, "VXS-XFRM-BEGIN", "VXS-XFRM-END").unwrap();
    assert!(!console.contains("VXS-FAIL"), "guest:\n{console}");

    eprintln!("guest booted in {:.1} s; whole test {:.1} s", booted.as_secs_f64(), started.elapsed().as_secs_f64());
    eprintln!(
        "pings vxswitch -> kernel: {}/{}; kernel -> vxswitch: {}/{}",
        to_guest.received, to_guest.sent, from_guest.received, from_guest.sent
    );
    eprintln!(
        "TCP vxswitch -> kernel: {} bytes, intact {}; kernel -> vxswitch: {} bytes, intact {}",
        guest_sink.received, guest_sink.intact, got_from_guest.received, got_from_guest.intact
    );
    eprintln!("guest xfrm state:{state}");
    assert_eq!((to_guest.sent, to_guest.received), (PINGS, PINGS), "vxswitch -> kernel pings");
    assert_eq!((from_guest.sent, from_guest.received), (PINGS, PINGS), "kernel -> vxswitch pings");
    assert_eq!((sent_to_guest.received, sent_to_guest.intact, guest_sink.received, guest_sink.intact), (BYTES, true, BYTES, true));
    assert_eq!((guest_sent.received, guest_sent.intact, got_from_guest.received, got_from_guest.intact), (BYTES, true, BYTES, true));
    for spi in [lab_esp_spi(0, 1), lab_esp_spi(1, 0)] {
        let (drops, packets) = xfrm_stats(state, spi);
        eprintln!("kernel SA {spi:#x}: {packets} packets; stats replay-window {} replay {} failed {}", drops[0], drops[1], drops[2]);
        assert_eq!(drops, [0, 0, 0], "kernel SA {spi:#x}: replay-window, replay and integrity failures");
        assert!(packets >= u64::from(PINGS), "kernel SA {spi:#x} carried the traffic: {packets} packets");
    }
    let stats = lab.stats(0).unwrap();
    eprintln!("vxswitch esp drops: {}", stats["esp"]["drops"]);
    for (reason, n) in stats["esp"]["drops"].as_object().unwrap() {
        assert_eq!(n, 0, "vxswitch ESP drop {reason}: {}", stats["esp"]);
    }
    assert_eq!(stats["counters"]["drops"]["esp_rejected"], 0);
}
