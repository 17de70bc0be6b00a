//! `vxswitch demo`: two hosts with one container each, joined by the userspace VXLAN overlay.
//!
//! Builds the lab in network namespaces, starts one vxswitch per host, pings container to
//! container, measures a short TCP throughput, prints the switch counters, and removes
//! everything it created (also on Ctrl-C: the signal only sets a flag, the probes running in
//! children end, and the lab is dropped normally).

use std::time::Duration;

use anyhow::{bail, Context};

use super::lab::{HostKind, Lab};
use super::probes;

fn check_interrupted() -> anyhow::Result<()> {
    if super::interrupt::interrupted() {
        bail!("interrupted");
    }
    Ok(())
}

/// Run the demo; `seconds` of throughput measurement.
pub fn run(seconds: u64) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the demo creates network namespaces and must run as root");
    }
    super::interrupt::install().context("installing the Ctrl-C handler")?;
    let bin = std::env::current_exe().context("locating the vxswitch executable")?;
    println!("vxswitch demo: building 2 hosts x 1 container in network namespaces ...");
    let lab = Lab::build("demo", &[HostKind::Vxswitch, HostKind::Vxswitch], 1, &bin).context("building the lab")?;
    let result = show(&lab, seconds);
    println!("\nremoving namespaces {}-* ...", lab.prefix());
    drop(lab);
    result
}

fn show(lab: &Lab, seconds: u64) -> anyhow::Result<()> {
    for (i, h) in lab.hosts.iter().enumerate() {
        println!(
            "  host {i}: namespace {:<22} underlay {:<12} vxswitch TAP vxs1042 on br0, container {} ({})",
            h.ns.name(),
            h.underlay_ip,
            h.containers[0].ip,
            h.containers[0].ns.name()
        );
    }
    let (a, b) = (&lab.hosts[0].containers[0], &lab.hosts[1].containers[0]);
    check_interrupted()?;
    println!("\nping {} -> {} (20 echo requests over the userspace VXLAN overlay):", a.ip, b.ip);
    let ping = probes::ping(lab, a, b.ip, 20, Duration::from_millis(50))?;
    println!(
        "  {} sent, {} received, {:.0}% loss; rtt min/p50/max = {:.3}/{:.3}/{:.3} ms",
        ping.sent,
        ping.received,
        100.0 * f64::from(ping.sent - ping.received) / f64::from(ping.sent.max(1)),
        ping.rtt_ms_percentile(0.0).unwrap_or(f64::NAN),
        ping.rtt_ms_percentile(50.0).unwrap_or(f64::NAN),
        ping.rtt_ms_percentile(100.0).unwrap_or(f64::NAN),
    );
    check_interrupted()?;
    println!("\nTCP throughput {} -> {} for {seconds} s (one stream, built-in generator):", a.ip, b.ip);
    let tput = probes::tcp_throughput(lab, a, b, Duration::from_secs(seconds))?;
    println!("  {:.2} Gbit/s ({} MB in {:.1} s)", tput.gbps(), tput.bytes / 1_000_000, tput.secs);
    check_interrupted()?;
    println!("\nswitch counters:");
    for i in 0..lab.hosts.len() {
        let s = lab.stats(i)?;
        let c = &s["counters"];
        println!(
            "  host {i}: tap rx {} frames, underlay tx {} datagrams, underlay rx {} datagrams, flooded {}, drops {}, fdb entries {}",
            c["tap_rx_frames"],
            c["underlay_tx_packets"],
            c["underlay_rx_packets"],
            c["flooded_frames"],
            c["drops"].as_object().map_or(0, |d| d.values().filter_map(|v| v.as_u64()).sum::<u64>()),
            s["networks"][0]["fdb"].as_array().map_or(0, Vec::len),
        );
    }
    if ping.received == 0 {
        bail!("no ping replies: the overlay did not carry traffic (logs in {})", lab.dir.display());
    }
    Ok(())
}
