//! Single-stream TCP throughput across a 2-host lab, for before/after comparisons.
//!
//! `overlay_throughput <kernel|vxswitch|mixed> <vxswitch-binary> [seconds] [runs] [extra-config]`
//! builds the lab once (both hosts kernel vxlan, both vxswitch run from the given binary, or
//! vxswitch on host 0 and kernel vxlan on host 1),
//! then runs `runs` transfers of `seconds` each from host 0's container to host 1's and prints
//! Gbit/s per run. Needs root. `extra-config` is appended to each host's vxswitch config.

use std::path::PathBuf;
use std::time::Duration;

use vxswitch::testnet::lab::{HostKind, Lab};
use vxswitch::testnet::probes;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let kind = match args.get(1).map(String::as_str) {
        Some("kernel") => HostKind::KernelVxlan,
        Some("vxswitch") => HostKind::Vxswitch,
        Some("mixed") => HostKind::Bare,
        _ => anyhow::bail!("usage: overlay_throughput <kernel|vxswitch> <vxswitch-binary> [seconds] [runs] [extra-config]"),
    };
    let bin = PathBuf::from(args.get(2).ok_or_else(|| anyhow::anyhow!("vxswitch binary path missing"))?);
    let secs: u64 = args.get(3).map_or(Ok(5), |s| s.parse())?;
    let runs: usize = args.get(4).map_or(Ok(3), |s| s.parse())?;
    let extra = args.get(5).cloned().unwrap_or_default();
    let mut lab = Lab::build("tput", &[HostKind::Bare, HostKind::Bare], 1, &bin)?;
    for i in 0..2 {
        match (kind, i) {
            (HostKind::KernelVxlan, _) | (HostKind::Bare, 1) => lab.add_kernel_vxlan(i)?,
            _ => lab.start_vxswitch(i, &extra)?,
        }
    }
    let (a, b) = (&lab.hosts[0].containers[0], &lab.hosts[1].containers[0]);
    // Warm up ARP and the FDB.
    probes::ping(&lab, a, b.ip, 3, Duration::from_millis(50))?;
    for run in 1..=runs {
        let r = probes::tcp_throughput(&lab, a, b, Duration::from_secs(secs))?;
        println!("{:?} run {run}: {:.2} Gbit/s ({} bytes in {:.2} s)", kind, r.gbps(), r.bytes, r.secs);
    }
    if std::env::var_os("HOLD").is_some() {
        println!("lab {} held; press Enter to remove it", lab.prefix());
        let _ = std::io::stdin().read_line(&mut String::new());
    }
    if kind != HostKind::KernelVxlan {
        for i in 0..if kind == HostKind::Vxswitch { 2 } else { 1 } {
            println!("host {i} driver: {}", lab.stats(i)?["driver"]);
        }
    }
    Ok(())
}
