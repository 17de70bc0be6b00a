//! Running the traffic probes inside lab containers.

use std::io;
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

use super::lab::{Container, Lab};
use super::netns::Netns;
use super::pattern::TransferReport;
use crate::testnet::probe::{PingReport, ThroughputReport};

fn bin(lab: &Lab) -> String {
    lab.bin().to_string_lossy().into_owned()
}

/// Ping `dst` from container `from` with the built-in ICMP probe (1 s for each reply).
pub fn ping(lab: &Lab, from: &Container, dst: Ipv4Addr, count: u32, interval: Duration) -> io::Result<PingReport> {
    ping_with_timeout(lab, from, dst, count, interval, Duration::from_secs(1))
}

/// Ping `dst` from container `from`, waiting up to `timeout` for each reply before the next
/// request.
pub fn ping_with_timeout(
    lab: &Lab,
    from: &Container,
    dst: Ipv4Addr,
    count: u32,
    interval: Duration,
    timeout: Duration,
) -> io::Result<PingReport> {
    let out = from.ns.output(
        &bin(lab),
        &[
            "probe",
            "ping",
            &dst.to_string(),
            "--count",
            &count.to_string(),
            "--interval-ms",
            &interval.as_millis().to_string(),
            "--timeout-ms",
            &timeout.as_millis().to_string(),
        ],
    )?;
    serde_json::from_str(out.trim()).map_err(io::Error::other)
}

/// One TCP stream from `from` to `to` for `duration`, with the built-in generator.
pub fn tcp_throughput(lab: &Lab, from: &Container, to: &Container, duration: Duration) -> io::Result<ThroughputReport> {
    let mut sink =
        to.ns.command(&bin(lab)).args(["probe", "tcp-sink", "--port", "5299"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    let sent = from
        .ns
        .output(&bin(lab), &["probe", "tcp-send", &to.ip.to_string(), "--port", "5299", "--secs", &duration.as_secs_f64().to_string()]);
    let sent = match sent {
        Ok(s) => s,
        Err(e) => {
            let _ = sink.kill();
            let _ = sink.wait();
            return Err(e);
        }
    };
    let _ = sink.wait();
    serde_json::from_str(sent.trim()).map_err(io::Error::other)
}

/// A checked transfer of `bytes` from namespace `from` to a pattern sink in namespace `to`
/// listening on `to_ip:port` (both ends are `bin probe`); the sender's report carries the sink's
/// count and verdict.
pub fn checked_transfer(bin: &str, from: &Netns, to: &Netns, to_ip: Ipv4Addr, port: u16, bytes: u64) -> io::Result<TransferReport> {
    let mut sink = to
        .command(bin)
        .args(["probe", "pattern-sink", "--port", &port.to_string(), "--wait-secs", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let sent = from.output(bin, &["probe", "pattern-send", &to_ip.to_string(), "--port", &port.to_string(), "--bytes", &bytes.to_string()]);
    if sent.is_err() {
        let _ = sink.kill();
    }
    let _ = sink.wait();
    serde_json::from_str(sent?.trim()).map_err(io::Error::other)
}
