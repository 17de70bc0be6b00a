//! The daemon under a bad day, on real kernels: slow and hostile local clients, a TAP deleted
//! from outside, configuration reloads under traffic. Each check runs against a running daemon
//! while a ping crosses the overlay, and asserts that forwarding does not notice.
//! Needs root; without it each test prints SKIP (or fails with VXSWITCH_REQUIRE_ROOT=1).

#[path = "common/netns.rs"]
mod netns_common;

use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use netns_common::{have_root, reload_cli};
use vxswitch::sys::daemon::control_socket::query_with_timeout;
use vxswitch::testnet::lab::{container_ip, underlay_ip, HostKind, Lab};
use vxswitch::testnet::netns::Netns;
use vxswitch::testnet::setns;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vxswitch"))
}

/// Metrics address of host 0 (inside its namespace).
const METRICS: &str = "127.0.0.1:9742";

/// A ping running in the background from a container: `count` echoes every 20 ms.
struct Ping(Child);

impl Ping {
    fn start(lab: &Lab, host: usize, container: usize, dst: Ipv4Addr, count: u32) -> Ping {
        Ping::start_in(&lab.hosts[host].containers[container].ns, dst, count)
    }

    fn start_in(ns: &Netns, dst: Ipv4Addr, count: u32) -> Ping {
        // `-w`: wait for every echo until a deadline. With only `-W`, ping gives up on the last
        // replies two round trips after its last request, and a loaded machine then reports a
        // late reply as a lost one.
        let deadline = (count / 50 + 5).to_string();
        let child = ns
            .command("ping")
            .args(["-c", &count.to_string(), "-i", "0.02", "-w", &deadline, "-q", &dst.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("ping runs (apt-get install iputils-ping)");
        Ping(child)
    }

    /// Wait for the end: (transmitted, received, largest round trip in ms).
    fn finish(mut self) -> (u32, u32, f64) {
        let out = std::mem::replace(&mut self.0, std::process::Command::new("true").spawn().unwrap()).wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.contains("packets transmitted")).unwrap_or_else(|| panic!("ping output: {text}"));
        let nums: Vec<u32> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect();
        let max = text
            .lines()
            .find_map(|l| l.strip_prefix("rtt min/avg/max/mdev = "))
            .and_then(|v| v.split('/').nth(2)?.parse().ok())
            .unwrap_or(f64::INFINITY);
        (nums[0], nums[1], max)
    }
}

impl Drop for Ping {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Send `count` broadcast frames with distinct source MACs out of a container's `eth0`, so that
/// the FDB of the container's host grows by as many entries.
fn flood_source_macs(ns: &str, count: u32) {
    setns::run_in(ns, move || {
        // SAFETY: a raw packet socket written from a local buffer; closed at the end.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(fd >= 0, "AF_PACKET socket");
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = libc::if_nametoindex(c"eth0".as_ptr()) as i32;
            addr.sll_halen = 6;
            for i in 0..count {
                let mut frame = [0u8; 60];
                frame[..6].copy_from_slice(&[0xff; 6]);
                frame[6..12].copy_from_slice(&[0x02, 0xaa, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
                frame[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental EtherType
                let sent = libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                assert_eq!(sent, 60);
                if i % 50 == 49 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            libc::close(fd);
        }
    })
    .unwrap();
}

/// Query the daemon, retrying refused or cut connections, until `patience` is over.
fn query_patiently(lab: &Lab, host: usize, command: &str, patience: Duration) -> Option<String> {
    let start = Instant::now();
    while start.elapsed() < patience {
        if let Ok(reply) = query_with_timeout(&lab.socket(host), command, Duration::from_millis(500)) {
            if !reply.is_empty() {
                return Some(reply);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn netns_slow_clients_do_not_stall_forwarding() {
    if !have_root("netns_slow_clients_do_not_stall_forwarding") {
        return;
    }
    let mut lab = Lab::build("slow", &[HostKind::Bare, HostKind::Bare], 1, bin()).unwrap();
    let config = format!("metrics_listen = \"{METRICS}\"\n{}", lab.vxswitch_config(0, ""));
    lab.start_vxswitch_with(0, &config).unwrap();
    let config = lab.vxswitch_config(1, "");
    lab.start_vxswitch_with(1, &config).unwrap();

    // A large FDB, so that an unpaged `stats` would be far larger than a socket buffer.
    flood_source_macs(lab.hosts[0].containers[0].ns.name(), 3000);
    let start = Instant::now();
    let total = loop {
        let stats = json(&query_patiently(&lab, 0, "stats", Duration::from_secs(2)).unwrap());
        let total = stats["fdb"]["entries"].as_u64().unwrap();
        if total >= 2500 || start.elapsed() > Duration::from_secs(5) {
            break total;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(total >= 2500, "FDB filled: {total}");

    let ping = Ping::start(&lab, 0, 0, container_ip(1, 0), 150);
    std::thread::sleep(Duration::from_millis(300));
    // Hostile and careless clients, all held open: silent ones, and ones that ask and never read.
    let socket = lab.socket(0);
    let mut held: Vec<UnixStream> = (0..20).map(|_| UnixStream::connect(&socket).unwrap()).collect();
    for _ in 0..4 {
        let mut s = UnixStream::connect(&socket).unwrap();
        // Past MAX_CLIENTS the daemon refuses by closing: the write may then see a broken pipe,
        // which is that refusal (counted in control_clients_refused below), not a failure.
        let _ = s.write_all(b"stats\n");
        held.push(s);
    }
    let tcp: Vec<TcpStream> = setns::run_in(lab.hosts[0].ns.name(), || {
        let mut v: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(METRICS).unwrap()).collect();
        for _ in 0..2 {
            let mut s = TcpStream::connect(METRICS).unwrap();
            let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n"); // may be refused (closed), as above
            v.push(s);
        }
        v
    })
    .unwrap();

    // Others are still answered while those are held (after the silent ones' deadline at worst).
    let asked = Instant::now();
    let stats = query_patiently(&lab, 0, "stats", Duration::from_millis(2500));
    let waited = asked.elapsed();
    let stats = json(&stats.unwrap_or_else(|| panic!("no answer within {waited:?} while slow clients were held")));
    let (sent, got, max_rtt) = ping.finish();
    drop((held, tcp));

    assert_eq!((sent, got), (150, 150), "no echo lost while slow clients were held");
    assert!(max_rtt < 200.0, "forwarding never stalled: largest round trip {max_rtt} ms");
    let net = &stats["networks"][0];
    assert!(net["fdb"].as_array().unwrap().len() <= 256, "stats lists one page of the FDB");
    assert!(net["fdb_total"].as_u64().unwrap() >= 2500, "{net}");
    let driver = &stats["driver"];
    assert!(driver["control_clients_refused"].as_u64().unwrap() > 0, "{driver}");
    let page = json(&query_patiently(&lab, 0, "fdb 256", Duration::from_secs(2)).unwrap());
    assert_eq!(page["offset"], 256);
    assert_eq!(page["entries"].as_array().unwrap().len(), 256);
    assert_eq!(page["next_offset"], 512, "{}", page["next_offset"]);
    assert!(page["entries"][0]["vni"].is_u64());
    // The held clients were dropped at their deadlines, and counted.
    std::thread::sleep(Duration::from_millis(200));
    let driver = json(&query_patiently(&lab, 0, "stats", Duration::from_secs(2)).unwrap())["driver"].clone();
    assert!(driver["clients_timed_out"].as_u64().unwrap() >= 16, "{driver}");
    let metrics = query_patiently(&lab, 0, "metrics", Duration::from_secs(2)).unwrap();
    assert!(metrics.contains("vxswitch_clients_refused_total{listener=\"control\"}"), "{metrics}");
}

/// CPU time (user + system) of process `pid` so far, in clock ticks, from `/proc/PID/stat`.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at field 3; utime, stime are 14, 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Wait until `driver.<counter>` of host `host` reaches `at_least`; returns the driver section.
fn wait_driver_counter(lab: &Lab, host: usize, counter: &str, at_least: u64, patience: Duration) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let driver = json(&query_patiently(lab, host, "stats", Duration::from_secs(2)).unwrap())["driver"].clone();
        if driver[counter].as_u64().unwrap() >= at_least {
            return driver;
        }
        assert!(start.elapsed() < patience, "driver.{counter} did not reach {at_least} within {patience:?}: {driver}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The nice value of every thread of process `pid` (field 19 of `/proc/PID/task/TID/stat`).
fn thread_nice(pid: u32) -> Vec<i64> {
    let mut nice = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap();
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        nice.push(rest.split_whitespace().nth(16).unwrap().parse().unwrap());
    }
    nice
}

/// CPU ticks the daemon of host `host` uses over `period`.
fn cpu_over(lab: &Lab, host: usize, period: Duration) -> u64 {
    let pid = lab.daemon_pid(host).unwrap();
    let before = cpu_ticks(pid);
    std::thread::sleep(period);
    cpu_ticks(pid) - before
}

/// `(sent, received)` of `count` pings from host 0's container to host 1's.
fn ping_across(lab: &Lab, count: u32) -> (u32, u32) {
    let (sent, got, _) = Ping::start(lab, 0, 0, container_ip(1, 0), count).finish();
    (sent, got)
}

#[test]
fn netns_tap_deleted_from_outside_is_recreated_without_spinning() {
    if !have_root("netns_tap_deleted_from_outside_is_recreated_without_spinning") {
        return;
    }
    let lab = Lab::build("tapdel", &[HostKind::Vxswitch, HostKind::Vxswitch], 1, bin()).unwrap();
    assert_eq!(ping_across(&lab, 10), (10, 10));
    let nice = thread_nice(lab.daemon_pid(0).unwrap());
    let ours = thread_nice(std::process::id())[0];
    assert!(nice.iter().all(|&n| n == ours), "by default the daemon keeps the nice value it was started with: {nice:?}");
    let h0 = &lab.hosts[0].ns;

    // Deleted under the daemon: no spin (a spinning loop burns the whole 2 s), and it comes back.
    h0.ip(&["link", "del", "vxs1042"]).unwrap();
    let ticks = cpu_over(&lab, 0, Duration::from_secs(2));
    assert!(ticks < 40, "the daemon spun after its TAP was deleted: {ticks} ticks of CPU in 2 s");
    let driver = wait_driver_counter(&lab, 0, "taps_recreated", 1, Duration::from_secs(5));
    assert_eq!(driver["taps_lost"], 1, "{driver}");
    let link = h0.output("ip", &["link", "show", "vxs1042"]).unwrap();
    assert!(link.contains("master br0") && link.contains(",UP"), "recreated on its bridge, up: {link}");
    assert_eq!(ping_across(&lab, 20), (20, 20), "the network works again");

    // Its bridge gone too: the network is down, loudly (counted, retried), until the bridge is back.
    h0.ip(&["link", "del", "br0"]).unwrap();
    h0.ip(&["link", "del", "vxs1042"]).unwrap();
    let driver = wait_driver_counter(&lab, 0, "tap_recreate_failures", 1, Duration::from_secs(5));
    assert_eq!(driver["taps_lost"], 2, "{driver}");
    let ticks = cpu_over(&lab, 0, Duration::from_secs(1));
    assert!(ticks < 20, "the daemon spun while its network was down: {ticks} ticks of CPU in 1 s");
    h0.ip(&["link", "add", "br0", "type", "bridge"]).unwrap();
    h0.ip(&["link", "set", "br0", "up"]).unwrap();
    h0.ip(&["link", "set", "c0", "master", "br0"]).unwrap();
    wait_driver_counter(&lab, 0, "taps_recreated", 2, Duration::from_secs(10));
    let log = std::fs::read_to_string(lab.log(0)).unwrap();
    assert!(log.contains("TAP lost") && log.contains("network down: cannot recreate its TAP"), "{log}");
    assert_eq!(ping_across(&lab, 20), (20, 20), "the network works again");
}

/// Host `i`'s configuration: network 1042 on `br0` with `peers`, and network 2000 (TAP address
/// 10.20.0.(i+1)/24, no bridge) with `second` as peers when given.
fn reload_config(lab: &Lab, i: usize, peers: &[usize], second: Option<&[usize]>) -> String {
    let list = |p: &[usize]| p.iter().map(|&k| format!("\"{}\"", underlay_ip(k))).collect::<Vec<_>>().join(", ");
    let mut text = format!(
        "control_socket = \"{}\"\n\n[underlay]\naddress = \"{}\"\n\n[[network]]\nvni = 1042\ntap = \"vxs1042\"\nbridge = \"br0\"\npeers = [{}]\n",
        lab.socket(i).display(),
        underlay_ip(i),
        list(peers)
    );
    if let Some(second) = second {
        text += &format!("\n[[network]]\nvni = 2000\ntap = \"vxs2000\"\naddress = \"10.20.0.{}/24\"\npeers = [{}]\n", i + 1, list(second));
    }
    text
}

/// `(sent, received)` of `count` quick pings from `ns` to `dst`.
fn ping_from(ns: &Netns, dst: Ipv4Addr, count: u32) -> (u32, u32) {
    let (sent, got, _) = Ping::start_in(ns, dst, count).finish();
    (sent, got)
}

#[test]
fn netns_reload_adds_and_removes_a_peer_and_a_network_without_losing_a_ping() {
    if !have_root("netns_reload_adds_and_removes_a_peer_and_a_network_without_losing_a_ping") {
        return;
    }
    let mut lab = Lab::build("reload", &[HostKind::Bare; 3], 1, bin()).unwrap();
    let configs = [reload_config(&lab, 0, &[1], None), reload_config(&lab, 1, &[0, 2], Some(&[0])), reload_config(&lab, 2, &[0, 1], None)];
    for (i, config) in configs.iter().enumerate() {
        lab.start_vxswitch_with(i, config).unwrap();
    }
    let file = lab.dir.join("h0.toml");
    let h0c0 = &lab.hosts[0].containers[0].ns;
    assert_eq!(ping_from(h0c0, container_ip(1, 0), 5), (5, 5));
    assert_eq!(ping_from(h0c0, container_ip(2, 0), 3).1, 0, "host 2 is not a peer of host 0 yet");

    // Under a running ping on network 1042: add peer host 2 and network 2000 (`vxswitch reload`).
    let ping = Ping::start(&lab, 0, 0, container_ip(1, 0), 300);
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&file, reload_config(&lab, 0, &[1, 2], Some(&[1]))).unwrap();
    let (ok, out) = reload_cli(bin(), &lab.socket(0));
    assert!(ok, "{out}");
    let report = json(&out);
    assert_eq!((report["added"].clone(), report["removed"].clone()), (serde_json::json!([2000]), serde_json::json!([])), "{report}");
    // The failed attempt above left a FAILED neighbour entry, which the kernel is slow to retry.
    h0c0.ip(&["neigh", "flush", "dev", "eth0"]).unwrap();
    assert_eq!(ping_from(h0c0, container_ip(2, 0), 5), (5, 5), "the added peer is reachable");
    assert_eq!(ping_from(&lab.hosts[0].ns, "10.20.0.2".parse().unwrap(), 5), (5, 5), "the added network forwards");

    // An invalid file is refused with its line, key and reason; nothing changes.
    std::fs::write(&file, reload_config(&lab, 0, &[1, 2], Some(&[1])).replace("vni = 2000", "vni = 16777216")).unwrap();
    let (ok, out) = reload_cli(bin(), &lab.socket(0));
    assert!(!ok && out.contains("h0.toml:") && out.contains("vni") && out.contains("out of range"), "{out}");
    assert_eq!(ping_from(&lab.hosts[0].ns, "10.20.0.2".parse().unwrap(), 3), (3, 3), "still running the previous configuration");

    // And back with SIGHUP: the peer and the network go.
    std::fs::write(&file, &configs[0]).unwrap();
    let pid = nix::unistd::Pid::from_raw(lab.daemon_pid(0).unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    let start = Instant::now();
    while lab.hosts[0].ns.output("ip", &["link", "show", "vxs2000"]).is_ok() {
        assert!(start.elapsed() < Duration::from_secs(5), "the removed network's TAP is closed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = json(&query_patiently(&lab, 0, "stats", Duration::from_secs(2)).unwrap());
    assert_eq!(stats["networks"].as_array().unwrap().len(), 1, "{stats}");
    assert_eq!(stats["networks"][0]["peers"], serde_json::json!(["198.18.0.2"]));
    assert_eq!(ping_from(h0c0, container_ip(2, 0), 3).1, 0, "host 2 is no longer a peer");

    let (sent, got, _) = ping.finish();
    assert_eq!((sent, got), (300, 300), "not one echo lost on the unchanged network");
    let log = std::fs::read_to_string(lab.log(0)).unwrap();
    assert!(log.contains("configuration reloaded") && log.contains("reload refused"), "{log}");
}

#[test]
fn netns_priority_boost_reaches_every_daemon_thread() {
    if !have_root("netns_priority_boost_reaches_every_daemon_thread") {
        return;
    }
    let mut lab = Lab::build("prio", &[HostKind::Bare, HostKind::Bare], 1, bin()).unwrap();
    for i in 0..2 {
        let config = lab.vxswitch_config(i, "").replace("[underlay]\n", "[underlay]\npriority_boost = 7\n");
        assert!(config.contains("priority_boost = 7"), "{config}");
        lab.start_vxswitch_with(i, &config).unwrap();
    }
    assert_eq!(ping_across(&lab, 10), (10, 10));
    let nice = thread_nice(lab.daemon_pid(0).unwrap());
    assert!(nice.len() >= 2 && nice.iter().all(|&n| n == -7), "the daemon thread and its send thread at nice -7: {nice:?}");
}
