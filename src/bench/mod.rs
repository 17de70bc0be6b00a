//! `vxswitch bench`: every container data path on this machine, measured side by side.
//!
//! Each mode is built as the same two-host lab in network namespaces (container - host ==
//! host - container, the hosts joined by a bridge in an underlay namespace; see
//! [`testnet::lab`](crate::testnet::lab)) and measured between the two endpoints. The modes are
//! data ([`modes::MODES`]): the veth baseline (host to host, the ceiling), host-subnet routing
//! (no encapsulation, the reference an overlay is judged against), kernel vxlan, vxswitch VXLAN,
//! vxswitch ESP and kernel xfrm ESP. A mode this build or this kernel cannot run is reported as
//! such, never with a number.
//!
//! Why it is measured this way:
//! - **Same run, interleaved.** Repeat r measures every mode before repeat r+1 starts, and each
//!   repeat builds a fresh lab, so slow drift of the machine (other load, frequency) spreads over
//!   all modes instead of penalising the one measured last. Ratios compare medians of this run.
//! - **Median and spread.** With few repeats the median resists one disturbed run; min-max shows
//!   how much to trust it.
//! - **Receiver-side figures.** Throughput is what the receiver got (iperf3 `sum_received`), UDP
//!   is the *delivered* rate of 64-byte datagrams sent as fast as one sender can, so drops count.
//! - **CPU per GB.** Throughput alone hides cost: a path can reach the same Gbit/s by burning
//!   more CPU. See [`cpu`] for what the two figures include.
//! - **Idle CPU.** Busy-polling buys latency with CPU; the daemon's CPU over 2 s without traffic
//!   (after the latency run) shows what that costs a host where nothing moves.
//! - **Latency on the idle path**, before any load, from at least 200 (default 1000) echoes 1 ms
//!   apart; p50 and p99 are exact nearest-rank percentiles of all round-trip times.
//!
//! Everything is removed at the end, on failure, and on Ctrl-C/SIGTERM: the signal only sets a
//! flag, running tools are killed at the next check, and the lab is dropped normally.

mod chart;
pub mod cpu;
pub mod knobs;
pub mod modes;
pub mod report;
pub mod summary;
pub mod traffic;
pub mod udpgen;
pub mod xfrm;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};

use self::knobs::{Knob, Variant};
use self::modes::{Availability, ModeSpec, Topology, MODES};
use self::report::{BenchReport, ModeResult, RunSettings, Status};
use self::summary::Sample;
use self::traffic::{Settings, Tool};

/// Which traffic generator to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generator {
    /// iperf3 when installed, else the built-in generators.
    Auto,
    /// iperf3 (fail if it is missing).
    Iperf3,
    /// The generators built into vxswitch.
    Builtin,
}

/// Options of `vxswitch bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Measurement repeats per mode (median and min-max are reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeats: u32,
    /// Seconds per throughput run.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub secs: u32,
    /// TCP streams of the multi-stream run.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub streams: u32,
    /// Latency probes per repeat.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(200..))]
    pub pings: u32,
    /// Quick run: one repeat, 1-second runs, 200 latency probes.
    #[arg(long)]
    pub quick: bool,
    /// Traffic generator.
    #[arg(long, value_enum, default_value_t = Generator::Auto)]
    pub generator: Generator,
    /// Only these modes (comma-separated ids: veth, host-subnet, kernel-vxlan, vxswitch-vxlan,
    /// vxswitch-vxlan6, vxswitch-routed, vxswitch-esp, kernel-xfrm).
    #[arg(long, value_delimiter = ',')]
    pub modes: Vec<String>,
    /// Set an `[underlay]` key of every vxswitch daemon of the run (repeatable), e.g.
    /// `--underlay workers=1`; the value is TOML as in the configuration file.
    #[arg(long = "underlay", value_name = "KEY=VALUE")]
    pub underlay: Vec<Knob>,
    /// Also measure each selected vxswitch mode with these `[underlay]` keys on top, as an extra
    /// row in the same run (repeatable), e.g. `--variant busy_poll_us=0 --variant workers=1,busy_poll_us=0`.
    #[arg(long = "variant", value_name = "KEY=VALUE[,KEY=VALUE...]")]
    pub variants: Vec<Variant>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also write the results as CSV to this file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Also draw the results as an SVG chart into this file.
    #[arg(long)]
    pub svg: Option<PathBuf>,
}

/// Whether Ctrl-C or SIGTERM arrived.
pub(crate) fn interrupted() -> bool {
    crate::testnet::interrupt::interrupted()
}

/// How the figures are measured, for the reports.
pub fn method(tool: &Tool, streams: u32) -> String {
    let gen = match tool {
        Tool::Iperf3(v) => format!(
            "{v}: TCP `iperf3 -c S -t T -J` (1 stream) and `-P {streams}`; UDP `-u -l 64 -b 0`; figures from end.sum_received"
        ),
        Tool::Builtin => format!(
            "built-in generators (`--generator builtin`, or iperf3 not installed): TCP `vxswitch probe tcp-send/tcp-sink` (1 and {streams} pairs); UDP 64-byte flood from one socket, delivered rate"
        ),
    };
    format!(
        "Two hosts in network namespaces joined by a bridge (veth MTU 1500), one container per host (veth into br0). \
         Per mode and repeat a fresh lab; repeats interleave the modes. Latency: built-in ICMP echo, 1 ms apart, idle path, nearest-rank p50/p99. \
         Throughput: {gen}. CPU per GB over both TCP runs: switch = utime+stime of the vxswitch daemons (/proc/PID/stat), \
         kernel = system+softirq of the whole machine (/proc/stat; includes the generators' and daemons' system time). \
         Switch CPU idle: utime+stime of each daemon over 2 s without traffic, 0.5 s after the latency run, in % of one core; \
         switch CPU pinged: the same over the latency run (what busy-polling costs on a path with one echo per millisecond). \
         Container MTU: the TAP's default in vxswitch modes (1450 VXLAN, {} ESP), 1450 for kernel vxlan, 1500 for host-subnet (routes by the vxswitch host-subnet driver), {} for kernel xfrm. Ratios = median / median of host-subnet, veth or kernel vxlan in the same run.",
        modes::esp_container_mtu(),
        xfrm::MTU
    )
}

fn choose_tool(g: Generator) -> anyhow::Result<Tool> {
    let version = traffic::iperf3_version();
    Ok(match (g, version) {
        (Generator::Builtin, _) => Tool::Builtin,
        (_, Some(v)) => Tool::Iperf3(v),
        (Generator::Iperf3, None) => bail!("iperf3 is not installed (apt-get install iperf3), or use --generator builtin"),
        (Generator::Auto, None) => {
            eprintln!("note: iperf3 not found; using the built-in generators. Install it (apt-get install iperf3) for figures comparable with other published numbers.");
            Tool::Builtin
        }
    })
}

fn selected(args: &BenchArgs) -> anyhow::Result<Vec<&'static ModeSpec>> {
    if args.modes.is_empty() {
        return Ok(MODES.iter().collect());
    }
    for id in &args.modes {
        if !MODES.iter().any(|m| m.id == id) {
            let ids: Vec<&str> = MODES.iter().map(|m| m.id).collect();
            bail!("unknown mode {id:?}; modes are {}", ids.join(", "));
        }
    }
    Ok(MODES.iter().filter(|m| args.modes.iter().any(|id| id == m.id)).collect())
}

/// One row of the run: a mode, and for vxswitch modes the `[underlay]` keys its daemons get.
struct Row {
    spec: &'static ModeSpec,
    id: String,
    name: String,
    knobs: Vec<Knob>,
}

/// The rows of the run: every selected mode with the run-wide keys, and after each vxswitch mode
/// one row per variant.
fn rows(specs: &[&'static ModeSpec], underlay: &[Knob], variants: &[Variant]) -> Vec<Row> {
    let mut rows = Vec::new();
    for &spec in specs {
        let vxswitch = matches!(spec.topology, Topology::Vxswitch { .. });
        let knobs = if vxswitch { underlay.to_vec() } else { Vec::new() };
        rows.push(Row { spec, id: spec.id.into(), name: spec.name.into(), knobs });
        if vxswitch {
            for v in variants {
                rows.push(Row {
                    spec,
                    id: format!("{}+{v}", spec.id),
                    name: format!("{} [{v}]", spec.name),
                    knobs: knobs::merged(underlay, &v.0),
                });
            }
        }
    }
    rows
}

fn build_kind() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Run the benchmark (needs root) and print/write the results.
pub fn run(mut args: BenchArgs) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the benchmark creates network namespaces and must run as root");
    }
    if args.quick {
        (args.repeats, args.secs, args.pings) = (1, 1, 200);
    }
    crate::testnet::interrupt::install().context("installing the Ctrl-C handler")?;
    let specs = rows(&selected(&args)?, &args.underlay, &args.variants);
    if build_kind() == "debug" {
        eprintln!("note: this is a debug build; the vxswitch figures will be far below a release build (cargo build --release)");
    }
    let tool = choose_tool(args.generator)?;
    let bin = std::env::current_exe().context("locating the vxswitch executable")?;
    let settings = Settings { secs: args.secs, streams: args.streams, pings: args.pings, tool: tool.clone() };
    let started = Instant::now();

    let mut outcome: Vec<(Option<Status>, Option<String>, Vec<Sample>)> = specs
        .iter()
        .map(|r| match modes::availability(r.spec) {
            Availability::Available => (None, None, Vec::new()),
            Availability::Unsupported(why) => (Some(Status::Unsupported), Some(why), Vec::new()),
            Availability::NotAvailable(why) => (Some(Status::NotAvailable), Some(why), Vec::new()),
        })
        .collect();
    for ((spec, why), _) in specs.iter().zip(outcome.iter().map(|o| o.1.clone())).zip(0..) {
        if let Some(why) = why {
            eprintln!("[bench] {}: {why}", spec.name);
        }
    }
    let runnable = outcome.iter().filter(|o| o.0.is_none()).count();
    let total = runnable * args.repeats as usize;
    let mut step = 0;
    for repeat in 1..=args.repeats {
        for (k, spec) in specs.iter().enumerate() {
            if outcome[k].0.is_some() {
                continue;
            }
            if interrupted() {
                bail!("interrupted; every namespace of this run has been removed");
            }
            step += 1;
            let head =
                format!("[bench {step}/{total} {:>4.0}s] repeat {repeat}/{} {}", started.elapsed().as_secs_f64(), args.repeats, spec.name);
            eprintln!("{head}: building the lab");
            let result = modes::prepare(spec.spec, &spec.knobs, &format!("b{k}"), &bin)
                .with_context(|| format!("building the {} lab", spec.name))
                .and_then(|p| traffic::measure(&p, &settings, &bin, &mut |line| eprintln!("{head}: {line}")));
            match result {
                Ok(sample) => outcome[k].2.push(sample),
                Err(e) if interrupted() => bail!("interrupted ({e:#}); every namespace of this run has been removed"),
                Err(e) => {
                    eprintln!("{head}: FAILED: {e:#}");
                    outcome[k] = (Some(Status::Failed), Some(format!("failed: {e:#}")), Vec::new());
                }
            }
        }
    }

    let results: Vec<ModeResult> = specs
        .iter()
        .zip(outcome)
        .map(|(spec, (status, why, samples))| match status {
            None => ModeResult::measured(&spec.id, &spec.name, samples),
            Some(st) => ModeResult::skipped(&spec.id, &spec.name, st, why.unwrap_or_default()),
        })
        .collect();
    let run_settings = RunSettings {
        repeats: args.repeats,
        secs: args.secs,
        streams: args.streams,
        pings: args.pings,
        generator: match &tool {
            Tool::Iperf3(v) => v.clone(),
            Tool::Builtin => "built-in".into(),
        },
        kernel: kernel_release(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        build: build_kind().into(),
        underlay: args.underlay.iter().map(Knob::to_string).collect(),
        variants: args.variants.iter().map(Variant::to_string).collect(),
    };
    let report = BenchReport::new(std::process::id(), run_settings, method(&tool, args.streams), results);
    println!("{}", report.table());
    println!("Method: {}", report.method);
    if let Some(path) = &args.json {
        std::fs::write(path, report.json()).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.csv {
        std::fs::write(path, report.csv()).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.svg {
        chart::write_svg(&report, path)?;
    }
    eprintln!("[bench] done in {:.0} s", started.elapsed().as_secs_f64());
    let failed: Vec<&str> = report.modes.iter().filter(|r| r.status == Status::Failed).map(|r| r.id.as_str()).collect();
    if !failed.is_empty() {
        bail!("modes failed: {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_add_rows_after_each_vxswitch_mode_only() {
        let pick = |id: &str| MODES.iter().find(|m| m.id == id).unwrap();
        let specs = [pick("kernel-vxlan"), pick("vxswitch-vxlan"), pick("vxswitch-esp")];
        let underlay: Vec<Knob> = vec!["workers=2".parse().unwrap()];
        let variants: Vec<Variant> = vec!["busy_poll_us=0".parse().unwrap(), "workers=1".parse().unwrap()];
        let rows = rows(&specs, &underlay, &variants);
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "kernel-vxlan",
                "vxswitch-vxlan",
                "vxswitch-vxlan+busy_poll_us=0",
                "vxswitch-vxlan+workers=1",
                "vxswitch-esp",
                "vxswitch-esp+busy_poll_us=0",
                "vxswitch-esp+workers=1"
            ]
        );
        assert!(rows[0].knobs.is_empty(), "no daemon in kernel vxlan");
        let knobs = |i: usize| rows[i].knobs.iter().map(Knob::to_string).collect::<Vec<_>>();
        assert_eq!(knobs(1), ["workers=2"]);
        assert_eq!(knobs(2), ["workers=2", "busy_poll_us=0"]);
        assert_eq!(knobs(3), ["workers=1"]);
        assert_eq!(rows[2].name, "vxswitch VXLAN [busy_poll_us=0]");
    }

    #[test]
    fn the_command_line_takes_repeated_knobs_and_variants() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let cli =
            Cli::try_parse_from(["x", "--underlay", "workers=1", "--underlay", "busy_poll_us=20", "--variant", "offload=false,workers=2"])
                .unwrap();
        assert_eq!(cli.bench.underlay.iter().map(Knob::to_string).collect::<Vec<_>>(), ["workers=1", "busy_poll_us=20"]);
        assert_eq!(cli.bench.variants.len(), 1);
        assert_eq!(cli.bench.variants[0].to_string(), "offload=false,workers=2");
        assert!(Cli::try_parse_from(["x", "--underlay", "workers"]).is_err());
    }
}
