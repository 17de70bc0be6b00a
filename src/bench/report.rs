//! The results of a run and their three renderings: a Markdown table (terminal and
//! `docs/bench.md`), JSON and CSV. The SVG chart is in [`chart`](super::chart).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::modes::{HOST_SUBNET, KERNEL_VXLAN, VETH};
use super::summary::{ratio, Metric, Sample, Summary};

/// What became of a mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Measured; every figure is positive.
    Measured,
    /// The kernel lacks what the mode needs.
    Unsupported,
    /// This build lacks the data path.
    NotAvailable,
    /// Set-up or measurement failed (the reason says how).
    Failed,
}

/// The results of one mode.
#[derive(Debug, Clone, Serialize)]
pub struct ModeResult {
    /// Stable id.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// What became of it.
    pub status: Status,
    /// Why it was not measured (or failed).
    pub reason: Option<String>,
    /// Every repeat.
    pub samples: Vec<Sample>,
    /// Summary per metric key.
    pub metrics: BTreeMap<&'static str, Summary>,
}

impl ModeResult {
    /// Median of a metric, if measured.
    pub fn median(&self, m: Metric) -> Option<f64> {
        self.metrics.get(m.key()).map(|s| s.median)
    }
}

/// Settings of the run, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct RunSettings {
    /// Repeats per mode.
    pub repeats: u32,
    /// Seconds per throughput run.
    pub secs: u32,
    /// Streams of the multi-stream run.
    pub streams: u32,
    /// Latency probes per repeat.
    pub pings: u32,
    /// The traffic generator (`iperf3 x.y` or `built-in`).
    pub generator: String,
    /// Kernel release.
    pub kernel: String,
    /// Online CPUs.
    pub cpus: usize,
    /// `release` or `debug`: the vxswitch figures of a debug build say little.
    pub build: String,
    /// `[underlay]` keys given to every vxswitch daemon (`--underlay`), as `KEY=VALUE`.
    pub underlay: Vec<String>,
    /// Extra rows of each vxswitch mode with these keys on top (`--variant`).
    pub variants: Vec<String>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Process id of the run; every namespace it made is named `vxs-*-<run_id>*`.
    pub run_id: u32,
    /// Settings.
    pub settings: RunSettings,
    /// How the figures were measured.
    pub method: String,
    /// One entry per mode, in report order.
    pub modes: Vec<ModeResult>,
}

impl ModeResult {
    /// Summarise the samples of a measured mode (ratios are filled in by [`BenchReport::new`]).
    pub fn measured(id: &str, name: &str, samples: Vec<Sample>) -> ModeResult {
        let metrics = Metric::ALL
            .iter()
            .filter_map(|m| {
                let values: Vec<f64> = samples.iter().filter_map(|s| m.of(s)).collect();
                Summary::of(&values).map(|s| (m.key(), s))
            })
            .collect();
        ModeResult { id: id.into(), name: name.into(), status: Status::Measured, reason: None, samples, metrics }
    }

    /// A mode that was not measured.
    pub fn skipped(id: &str, name: &str, status: Status, reason: String) -> ModeResult {
        ModeResult { id: id.into(), name: name.into(), status, reason: Some(reason), samples: Vec::new(), metrics: BTreeMap::new() }
    }
}

impl BenchReport {
    /// Assemble the report and compute every ratio against the references of this run.
    pub fn new(run_id: u32, settings: RunSettings, method: String, mut modes: Vec<ModeResult>) -> BenchReport {
        let reference = |modes: &[ModeResult], id: &str, m: Metric| {
            modes.iter().find(|r| r.id == id && r.status == Status::Measured).and_then(|r| r.median(m))
        };
        for m in Metric::ALL {
            let (hs, veth, kvx) = (reference(&modes, HOST_SUBNET, m), reference(&modes, VETH, m), reference(&modes, KERNEL_VXLAN, m));
            for r in &mut modes {
                if let Some(s) = r.metrics.get_mut(m.key()) {
                    s.vs_host_subnet = ratio(Some(s.median), hs);
                    s.vs_veth = ratio(Some(s.median), veth);
                    s.vs_kernel_vxlan = ratio(Some(s.median), kvx);
                }
            }
        }
        BenchReport { run_id, settings, method, modes }
    }

    /// The results table and the ratio table, in Markdown.
    pub fn table(&self) -> String {
        let st = &self.settings;
        let mut out = format!(
            "vxswitch bench ({} build): median (min-max) of {} repeat(s); {} s runs; {} latency probes; generator {}; kernel {}, {} CPUs\n\n",
            st.build, st.repeats, st.secs, st.pings, st.generator, st.kernel, st.cpus
        );
        if !st.underlay.is_empty() {
            let _ = writeln!(out, "vxswitch daemons with [underlay] {}\n", st.underlay.join(", "));
        }
        let heads: Vec<String> = Metric::ALL.iter().map(|m| format!("{} ({})", m.label(st.streams), m.unit())).collect();
        let _ = writeln!(out, "| mode | {} |", heads.join(" | "));
        let _ = writeln!(out, "|---|{}", "---:|".repeat(heads.len()));
        for r in &self.modes {
            let cells: Vec<String> = if r.status == Status::Measured {
                Metric::ALL.iter().map(|m| r.metrics.get(m.key()).map_or("-".into(), |s| cell(*m, s))).collect()
            } else {
                let mut c = vec![r.reason.clone().unwrap_or_default()];
                c.resize(Metric::ALL.len(), String::new());
                c
            };
            let _ = writeln!(out, "| {} | {} |", r.name, cells.join(" | "));
        }
        let ratio_metrics = [Metric::Tcp1, Metric::TcpN, Metric::Udp64, Metric::RttP50, Metric::RttP99];
        let _ = writeln!(
            out,
            "\nRatios of medians (throughput: higher is better; latency: lower is better), x host-subnet / x veth / x kernel vxlan:\n"
        );
        let heads: Vec<String> = ratio_metrics.iter().map(|m| m.label(st.streams)).collect();
        let _ = writeln!(out, "| mode | {} |", heads.join(" | "));
        let _ = writeln!(out, "|---|{}", "---:|".repeat(heads.len()));
        for r in self.modes.iter().filter(|r| r.status == Status::Measured) {
            let cells: Vec<String> = ratio_metrics
                .iter()
                .map(|m| match r.metrics.get(m.key()) {
                    Some(s) => format!("{} / {} / {}", times(s.vs_host_subnet), times(s.vs_veth), times(s.vs_kernel_vxlan)),
                    None => "-".into(),
                })
                .collect();
            let _ = writeln!(out, "| {} | {} |", r.name, cells.join(" | "));
        }
        out
    }

    /// The report as pretty JSON.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// One CSV row per mode and metric (one row with empty figures for a mode not measured).
    pub fn csv(&self) -> String {
        let mut out = String::from("mode,name,status,metric,unit,median,min,max,vs_host_subnet,vs_veth,vs_kernel_vxlan,repeats,reason\n");
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
        for r in &self.modes {
            let status = serde_json::to_value(r.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            let reason = csv_quote(r.reason.as_deref().unwrap_or(""));
            if r.metrics.is_empty() {
                let _ = writeln!(out, "{},{},{status},,,,,,,,,0,{reason}", r.id, csv_quote(&r.name));
            }
            for m in Metric::ALL {
                if let Some(s) = r.metrics.get(m.key()) {
                    let _ = writeln!(
                        out,
                        "{},{},{status},{},{},{:.6},{:.6},{:.6},{},{},{},{},{reason}",
                        r.id,
                        csv_quote(&r.name),
                        m.key(),
                        m.unit(),
                        s.median,
                        s.min,
                        s.max,
                        opt(s.vs_host_subnet),
                        opt(s.vs_veth),
                        opt(s.vs_kernel_vxlan),
                        s.samples.len()
                    );
                }
            }
        }
        out
    }
}

/// Decimal places per metric.
pub fn precision(m: Metric) -> usize {
    match m {
        Metric::Tcp1 | Metric::TcpN | Metric::SwitchCpu | Metric::KernelCpu => 2,
        Metric::Udp64 | Metric::SwitchIdleCpu | Metric::SwitchPingCpu => 1,
        Metric::RttP50 | Metric::RttP99 => 0,
    }
}

fn cell(m: Metric, s: &Summary) -> String {
    let p = precision(m);
    if s.samples.len() > 1 {
        format!("{:.p$} ({:.p$}-{:.p$})", s.median, s.min, s.max)
    } else {
        format!("{:.p$}", s.median)
    }
}

fn times(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.2}x"))
}

fn csv_quote(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(tcp: f64) -> Sample {
        Sample {
            tcp_1_gbps: tcp,
            tcp_n_gbps: 2.0 * tcp,
            udp64_kpps: 100.0,
            rtt_p50_us: 50.0,
            rtt_p99_us: 90.0,
            switch_cpu_s_per_gb: None,
            switch_idle_cpu_pct: None,
            switch_ping_cpu_pct: None,
            kernel_cpu_s_per_gb: 1.0,
        }
    }

    fn report() -> BenchReport {
        let settings = RunSettings {
            repeats: 2,
            secs: 1,
            streams: 4,
            pings: 200,
            generator: "iperf3 3.12".into(),
            kernel: "6.x".into(),
            cpus: 2,
            build: "release".into(),
            underlay: vec!["workers=1".into()],
            variants: vec!["busy_poll_us=0".into()],
        };
        BenchReport::new(
            1,
            settings,
            "method".into(),
            vec![
                ModeResult::measured(VETH, "veth baseline", vec![sample(10.0), sample(12.0)]),
                ModeResult::measured(HOST_SUBNET, "host-subnet", vec![sample(5.0), sample(5.0)]),
                ModeResult::measured(KERNEL_VXLAN, "kernel vxlan", vec![sample(4.0), sample(6.0)]),
                ModeResult::measured("x", "x, \"quoted\"", vec![sample(2.0), sample(3.0)]),
                ModeResult::skipped("esp", "esp", Status::NotAvailable, "not available in this build".into()),
            ],
        )
    }

    #[test]
    fn ratios_use_the_references_of_the_same_run() {
        let r = report();
        let x = &r.modes[3].metrics["tcp_1_gbps"];
        assert_eq!(x.median, 2.5);
        assert_eq!(x.vs_host_subnet, Some(0.5));
        assert_eq!(x.vs_veth, Some(2.5 / 11.0));
        assert_eq!(x.vs_kernel_vxlan, Some(0.5));
        assert_eq!(r.modes[3].metrics["rtt_p50_us"].vs_kernel_vxlan, Some(1.0), "same latency as kernel vxlan");
        assert_eq!(r.modes[1].metrics["tcp_1_gbps"].vs_host_subnet, Some(1.0));
    }

    #[test]
    fn table_shows_spread_and_reasons() {
        let t = report().table();
        assert!(t.contains("| veth baseline | 11.00 (10.00-12.00) |"), "{t}");
        assert!(t.contains("| esp | not available in this build |"), "{t}");
        assert!(t.contains("0.50x / 0.23x / 0.50x"), "{t}");
        assert!(t.contains("vxswitch daemons with [underlay] workers=1"), "{t}");
    }

    #[test]
    fn csv_has_one_row_per_figure_and_quotes_names() {
        let csv = report().csv();
        let lines: Vec<&str> = csv.lines().collect();
        // 4 measured modes x 6 metrics (no switch CPU) + 1 skipped + header.
        assert_eq!(lines.len(), 1 + 4 * 6 + 1, "{csv}");
        assert!(csv.contains("\"x, \"\"quoted\"\"\""));
        assert!(lines.last().unwrap().starts_with("esp,esp,not_available,"));
    }

    #[test]
    fn json_round_trips_through_serde_json() {
        let v: serde_json::Value = serde_json::from_str(&report().json()).unwrap();
        assert_eq!(v["modes"][4]["status"], "not_available");
        assert_eq!(v["modes"][0]["metrics"]["tcp_1_gbps"]["median"], 11.0);
        assert_eq!(v["settings"]["underlay"][0], "workers=1");
        assert_eq!(v["settings"]["variants"][0], "busy_poll_us=0");
    }
}
