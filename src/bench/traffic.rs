//! Measuring one prepared mode: latency, TCP throughput (1 and N streams) with CPU accounting,
//! and the 64-byte UDP packet rate.
//!
//! Order per repeat: a few warm-up echoes (ARP, FDB learning; also proves the path works), the
//! latency run on the idle path, then the TCP runs, then UDP (last, because a UDP flood may leave
//! queues full for a moment). Tools:
//! - [`Tool::Iperf3`]: `iperf3 -s -1 -B SERVER` in the server namespace and `iperf3 -c SERVER -J`
//!   (`-P N` for N streams, `-u -l 64 -b 0` for UDP) in the client namespace. Figures come from
//!   the receiver side (`end.sum_received`).
//! - [`Tool::Builtin`]: `vxswitch probe tcp-sink`/`tcp-send` (N pairs on N ports for N streams)
//!   and the in-process [`udpgen`](super::udpgen).
//!
//! Latency always uses the built-in ICMP echo probe (`vxswitch probe ping`, 1 ms apart), which
//! returns every round-trip time so p50/p99 are exact nearest-rank percentiles.

use std::io::Read;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use super::modes::{Endpoint, Prepared};
use super::summary::{percentile, Sample};
use super::{cpu, interrupted, udpgen};
use crate::testnet::probe::{PingReport, ThroughputReport};
use crate::testnet::setns;

/// The traffic generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tool {
    /// iperf3 (the version string).
    Iperf3(String),
    /// The generators built into vxswitch.
    Builtin,
}

/// What to run per repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Seconds per throughput run.
    pub secs: u32,
    /// Streams of the multi-stream TCP run.
    pub streams: u32,
    /// Latency probes.
    pub pings: u32,
    /// The generator.
    pub tool: Tool,
}

/// UDP payload of the packet-rate run.
pub const UDP_PAYLOAD: usize = 64;
const IPERF_PORT: u16 = 5201;
const TCP_PROBE_PORT: u16 = 5299;

/// The iperf3 version, if iperf3 is installed.
pub fn iperf3_version() -> Option<String> {
    let out = Command::new("iperf3").arg("--version").stdin(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success().then(|| text.lines().next().unwrap_or("iperf3").trim().to_string())
}

/// Measure one repeat of a prepared mode; `progress` receives one line per step.
pub fn measure(p: &Prepared, s: &Settings, bin: &Path, progress: &mut dyn FnMut(String)) -> anyhow::Result<Sample> {
    let warm = ping(bin, &p.client, p.server.ip, 5, 10)?;
    if warm.received == 0 {
        bail!("no echo replies from {} to {}: the path does not carry traffic", p.client.ip, p.server.ip);
    }
    let (pinged_at, pinged_before) = (Instant::now(), cpu::processes_ticks(&p.daemon_pids)?);
    let rtt = ping(bin, &p.client, p.server.ip, s.pings, 1)?;
    let pinged = per_daemon_pct(&p.daemon_pids, cpu::processes_ticks(&p.daemon_pids)? - pinged_before, pinged_at.elapsed());
    let p50 = percentile(&rtt.rtt_us, 50.0).ok_or_else(|| anyhow!("no echo replies in the latency run"))?;
    let p99 = percentile(&rtt.rtt_us, 99.0).unwrap_or(p50);
    progress(format!("latency p50 {p50} us, p99 {p99} us ({}/{} replies)", rtt.received, rtt.sent));
    if let Some(pct) = pinged {
        progress(format!("switch CPU during the latency run {pct:.1} % of a core per daemon"));
    }
    let idle = idle_cpu_pct(&p.daemon_pids)?;
    if let Some(pct) = idle {
        progress(format!("switch CPU while idle {pct:.1} % of a core per daemon"));
    }

    let (k0, d0) = (cpu::kernel_ticks()?, cpu::processes_ticks(&p.daemon_pids)?);
    let (tcp1, bytes1) = tcp(p, s, bin, 1)?;
    progress(format!("TCP 1 stream {tcp1:.2} Gbit/s"));
    let (tcpn, bytesn) = tcp(p, s, bin, s.streams)?;
    progress(format!("TCP {} streams {tcpn:.2} Gbit/s", s.streams));
    let (k1, d1) = (cpu::kernel_ticks()?, cpu::processes_ticks(&p.daemon_pids)?);
    let gb = (bytes1 + bytesn) as f64 / 1e9;
    if gb <= 0.0 {
        bail!("the TCP runs moved no data");
    }
    let tps = cpu::ticks_per_sec();
    let kernel = (k1 - k0) as f64 / tps / gb;
    let switch = (!p.daemon_pids.is_empty()).then(|| (d1 - d0) as f64 / tps / gb);

    let kpps = udp(p, s)? / 1000.0;
    progress(format!("UDP 64 B {kpps:.1} kpps delivered"));
    Ok(Sample {
        tcp_1_gbps: tcp1,
        tcp_n_gbps: tcpn,
        udp64_kpps: kpps,
        rtt_p50_us: p50 as f64,
        rtt_p99_us: p99 as f64,
        switch_cpu_s_per_gb: switch,
        switch_idle_cpu_pct: idle,
        switch_ping_cpu_pct: pinged,
        kernel_cpu_s_per_gb: kernel,
    })
}

/// Quiet time after the latency run before the idle window starts (busy-polling winds down).
const IDLE_SETTLE: Duration = Duration::from_millis(500);
/// Length of the idle CPU window: 200 clock ticks at 100 Hz, so one tick is 0.5 %.
const IDLE_WINDOW: Duration = Duration::from_secs(2);

/// CPU of each daemon (mean, percent of one core) over [`IDLE_WINDOW`] with no traffic: what
/// busy-polling and timers cost on an idle host. `None` for modes without a daemon.
fn idle_cpu_pct(pids: &[u32]) -> anyhow::Result<Option<f64>> {
    if pids.is_empty() {
        return Ok(None);
    }
    std::thread::sleep(IDLE_SETTLE);
    let before = cpu::processes_ticks(pids)?;
    std::thread::sleep(IDLE_WINDOW);
    let after = cpu::processes_ticks(pids)?;
    Ok(per_daemon_pct(pids, after - before, IDLE_WINDOW))
}

/// `ticks` of CPU spent by the daemons `pids` over `wall`, as the mean percent of one core per
/// daemon; `None` for modes without a daemon.
fn per_daemon_pct(pids: &[u32], ticks: u64, wall: Duration) -> Option<f64> {
    if pids.is_empty() || wall.is_zero() {
        return None;
    }
    let secs = ticks as f64 / cpu::ticks_per_sec();
    Some(100.0 * secs / wall.as_secs_f64() / pids.len() as f64)
}

/// `cmd` in namespace `ns`.
fn in_ns(ns: &str, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]);
    c
}

/// Run `cmd` to completion within `patience` (killing it on timeout or Ctrl-C); returns stdout.
fn run(cmd: &mut Command, patience: Duration) -> anyhow::Result<String> {
    let what = format!("{cmd:?}");
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().with_context(|| what.clone())?;
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if interrupted() || start.elapsed() > patience {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what}: {}", if interrupted() { "interrupted".to_string() } else { format!("no result after {patience:?}") });
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (out, err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    if !status.success() {
        // iperf3 -J reports its errors inside the JSON on stdout.
        let json_err = serde_json::from_str::<serde_json::Value>(&out).ok().and_then(|v| v["error"].as_str().map(str::to_string));
        bail!("{what} failed ({status}): {}", json_err.unwrap_or_else(|| err.trim().to_string()));
    }
    Ok(out)
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut s);
        }
        s
    })
}

/// A background server process, killed on drop if it has not finished.
struct Server(Child);

impl Server {
    /// Wait up to `patience` for it to exit on its own; returns its stdout.
    fn finish(mut self, patience: Duration) -> String {
        let start = Instant::now();
        while start.elapsed() < patience {
            if let Ok(Some(_)) = self.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        let mut s = String::new();
        if let Some(mut out) = self.0.stdout.take() {
            let _ = out.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ping(bin: &Path, from: &Endpoint, dst: Ipv4Addr, count: u32, interval_ms: u64) -> anyhow::Result<PingReport> {
    let patience = Duration::from_millis(u64::from(count) * (interval_ms + 5)) + Duration::from_secs(30);
    let out = run(
        in_ns(&from.ns, &bin.to_string_lossy()).args([
            "probe",
            "ping",
            &dst.to_string(),
            "--count",
            &count.to_string(),
            "--interval-ms",
            &interval_ms.to_string(),
            "--timeout-ms",
            "1000",
        ]),
        patience,
    )?;
    serde_json::from_str(out.trim()).context("parsing the ping probe's report")
}

/// Whether something listens on TCP `port` in namespace `ns` (from the namespace's own
/// `/proc/thread-self/net/tcp`: listening sockets have state `0A`).
fn listening(ns: &str, port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    setns::run_in(ns, move || std::fs::read_to_string("/proc/thread-self/net/tcp").unwrap_or_default())
        .map(|t| t.lines().any(|l| l.contains(&needle) && l.split_whitespace().nth(3) == Some("0A")))
        .unwrap_or(false)
}

fn spawn_server(cmd: &mut Command, ns: &str, port: u16) -> anyhow::Result<Server> {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().context("starting the server")?;
    let mut server = Server(child);
    let start = Instant::now();
    while !listening(ns, port) {
        if start.elapsed() > Duration::from_secs(5) || interrupted() {
            bail!("server did not listen on port {port} in {ns}");
        }
        if let Ok(Some(status)) = server.0.try_wait() {
            bail!("server in {ns} exited early ({status})");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(server)
}

/// One iperf3 run with `extra` client arguments; returns the client's JSON report.
fn iperf3(p: &Prepared, secs: u32, extra: &[&str]) -> anyhow::Result<serde_json::Value> {
    let port = IPERF_PORT.to_string();
    let server = spawn_server(
        in_ns(&p.server.ns, "iperf3").args(["-s", "-1", "-B", &p.server.ip.to_string(), "-p", &port]),
        &p.server.ns,
        IPERF_PORT,
    )?;
    let out = run(
        in_ns(&p.client.ns, "iperf3").args(["-c", &p.server.ip.to_string(), "-p", &port, "-t", &secs.to_string(), "-J"]).args(extra),
        Duration::from_secs(u64::from(secs) + 30),
    )?;
    server.finish(Duration::from_secs(3));
    serde_json::from_str(&out).context("parsing iperf3 -J output")
}

fn field(v: &serde_json::Value, path: &[&str]) -> anyhow::Result<f64> {
    path.iter().fold(v, |v, k| &v[*k]).as_f64().ok_or_else(|| anyhow!("iperf3 report lacks {}", path.join(".")))
}

/// TCP goodput with `streams` streams: (Gbit/s, bytes received).
fn tcp(p: &Prepared, s: &Settings, bin: &Path, streams: u32) -> anyhow::Result<(f64, u64)> {
    match s.tool {
        Tool::Iperf3(_) => {
            let v = iperf3(p, s.secs, &["-P", &streams.to_string()])?;
            let bps = field(&v, &["end", "sum_received", "bits_per_second"])?;
            let bytes = field(&v, &["end", "sum_received", "bytes"])?;
            Ok((bps / 1e9, bytes as u64))
        }
        Tool::Builtin => builtin_tcp(p, s.secs, bin, streams),
    }
}

fn builtin_tcp(p: &Prepared, secs: u32, bin: &Path, streams: u32) -> anyhow::Result<(f64, u64)> {
    let bin = bin.to_string_lossy().into_owned();
    let ports: Vec<u16> = (0..streams as u16).map(|k| TCP_PROBE_PORT + k).collect();
    let mut sinks = Vec::new();
    for &port in &ports {
        sinks.push(spawn_server(in_ns(&p.server.ns, &bin).args(["probe", "tcp-sink", "--port", &port.to_string()]), &p.server.ns, port)?);
    }
    let senders: Vec<_> = ports
        .iter()
        .map(|&port| {
            let mut cmd = in_ns(&p.client.ns, &bin);
            cmd.args(["probe", "tcp-send", &p.server.ip.to_string(), "--port", &port.to_string(), "--secs", &secs.to_string()]);
            std::thread::spawn(move || run(&mut cmd, Duration::from_secs(u64::from(secs) + 30)))
        })
        .collect();
    let mut bytes = 0u64;
    let mut longest = 0f64;
    for sender in senders {
        let out = sender.join().map_err(|_| anyhow!("tcp-send thread panicked"))??;
        let r: ThroughputReport = serde_json::from_str(out.trim()).context("parsing tcp-send's report")?;
        bytes += r.bytes;
        longest = longest.max(r.secs);
    }
    for sink in sinks {
        sink.finish(Duration::from_secs(3));
    }
    Ok((bytes as f64 * 8.0 / longest.max(1e-9) / 1e9, bytes))
}

/// Delivered 64-byte UDP datagrams per second.
fn udp(p: &Prepared, s: &Settings) -> anyhow::Result<f64> {
    match s.tool {
        Tool::Iperf3(_) => {
            let v = iperf3(p, s.secs, &["-u", "-l", &UDP_PAYLOAD.to_string(), "-b", "0"])?;
            let bytes = field(&v, &["end", "sum_received", "bytes"])?;
            let secs = field(&v, &["end", "sum_received", "seconds"])?;
            Ok(bytes / UDP_PAYLOAD as f64 / secs.max(1e-9))
        }
        Tool::Builtin => {
            let r = udpgen::run_pair(&p.server.ns, p.server.ip, &p.client.ns, UDP_PAYLOAD, Duration::from_secs(u64::from(s.secs)))?;
            Ok(r.pps())
        }
    }
}
