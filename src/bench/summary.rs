//! Figures of one measurement ([`Sample`]), the list of figures ([`Metric`]) and their summary
//! over repeats (median and min-max spread, plus ratios to the references measured in the same
//! run).

use serde::Serialize;

/// The figures of one repeat of one mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Sample {
    /// TCP goodput of one stream, Gbit/s.
    pub tcp_1_gbps: f64,
    /// TCP goodput of N parallel streams, Gbit/s.
    pub tcp_n_gbps: f64,
    /// UDP datagrams with 64-byte payloads delivered per second, thousands.
    pub udp64_kpps: f64,
    /// Median round-trip time, microseconds.
    pub rtt_p50_us: f64,
    /// 99th percentile round-trip time, microseconds.
    pub rtt_p99_us: f64,
    /// CPU seconds (user + system) of the vxswitch daemons per GB of TCP goodput; `None` for
    /// modes without a daemon.
    pub switch_cpu_s_per_gb: Option<f64>,
    /// CPU of one vxswitch daemon while the path is idle (after the latency run, no traffic), in
    /// percent of one core: what busy-polling costs when nothing moves; `None` without a daemon.
    pub switch_idle_cpu_pct: Option<f64>,
    /// CPU of one vxswitch daemon during the latency run (one echo every millisecond), in percent
    /// of one core: what busy-polling costs on a path that carries a steady trickle of traffic;
    /// `None` without a daemon.
    pub switch_ping_cpu_pct: Option<f64>,
    /// Machine-wide kernel CPU seconds (system + softirq) per GB of TCP goodput.
    pub kernel_cpu_s_per_gb: f64,
}

/// One reported figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// [`Sample::tcp_1_gbps`].
    Tcp1,
    /// [`Sample::tcp_n_gbps`].
    TcpN,
    /// [`Sample::udp64_kpps`].
    Udp64,
    /// [`Sample::rtt_p50_us`].
    RttP50,
    /// [`Sample::rtt_p99_us`].
    RttP99,
    /// [`Sample::switch_cpu_s_per_gb`].
    SwitchCpu,
    /// [`Sample::switch_idle_cpu_pct`].
    SwitchIdleCpu,
    /// [`Sample::switch_ping_cpu_pct`].
    SwitchPingCpu,
    /// [`Sample::kernel_cpu_s_per_gb`].
    KernelCpu,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 9] = [
        Metric::Tcp1,
        Metric::TcpN,
        Metric::Udp64,
        Metric::RttP50,
        Metric::RttP99,
        Metric::SwitchCpu,
        Metric::SwitchIdleCpu,
        Metric::SwitchPingCpu,
        Metric::KernelCpu,
    ];

    /// Stable key for JSON and CSV.
    pub fn key(self) -> &'static str {
        match self {
            Metric::Tcp1 => "tcp_1_gbps",
            Metric::TcpN => "tcp_n_gbps",
            Metric::Udp64 => "udp64_kpps",
            Metric::RttP50 => "rtt_p50_us",
            Metric::RttP99 => "rtt_p99_us",
            Metric::SwitchCpu => "switch_cpu_s_per_gb",
            Metric::SwitchIdleCpu => "switch_idle_cpu_pct",
            Metric::SwitchPingCpu => "switch_ping_cpu_pct",
            Metric::KernelCpu => "kernel_cpu_s_per_gb",
        }
    }

    /// Column heading (`streams` is N).
    pub fn label(self, streams: u32) -> String {
        match self {
            Metric::Tcp1 => "TCP 1 stream".into(),
            Metric::TcpN => format!("TCP {streams} streams"),
            Metric::Udp64 => "UDP 64 B".into(),
            Metric::RttP50 => "RTT p50".into(),
            Metric::RttP99 => "RTT p99".into(),
            Metric::SwitchCpu => "switch CPU".into(),
            Metric::SwitchIdleCpu => "switch CPU idle".into(),
            Metric::SwitchPingCpu => "switch CPU pinged".into(),
            Metric::KernelCpu => "kernel CPU".into(),
        }
    }

    /// Unit of the figure.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Tcp1 | Metric::TcpN => "Gbit/s",
            Metric::Udp64 => "kpps",
            Metric::RttP50 | Metric::RttP99 => "us",
            Metric::SwitchCpu | Metric::KernelCpu => "s/GB",
            Metric::SwitchIdleCpu | Metric::SwitchPingCpu => "% core",
        }
    }

    /// Whether a larger figure is better (throughput) or worse (latency, CPU).
    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::Tcp1 | Metric::TcpN | Metric::Udp64)
    }

    /// The figure in a sample.
    pub fn of(self, s: &Sample) -> Option<f64> {
        match self {
            Metric::Tcp1 => Some(s.tcp_1_gbps),
            Metric::TcpN => Some(s.tcp_n_gbps),
            Metric::Udp64 => Some(s.udp64_kpps),
            Metric::RttP50 => Some(s.rtt_p50_us),
            Metric::RttP99 => Some(s.rtt_p99_us),
            Metric::SwitchCpu => s.switch_cpu_s_per_gb,
            Metric::SwitchIdleCpu => s.switch_idle_cpu_pct,
            Metric::SwitchPingCpu => s.switch_ping_cpu_pct,
            Metric::KernelCpu => Some(s.kernel_cpu_s_per_gb),
        }
    }
}

/// A figure over the repeats.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Median of the repeats (mean of the middle two for an even count).
    pub median: f64,
    /// Smallest repeat.
    pub min: f64,
    /// Largest repeat.
    pub max: f64,
    /// Every repeat, in run order.
    pub samples: Vec<f64>,
    /// This median divided by the host-subnet median of the same run.
    pub vs_host_subnet: Option<f64>,
    /// This median divided by the veth-baseline median of the same run.
    pub vs_veth: Option<f64>,
    /// This median divided by the kernel-vxlan median of the same run (the fast path's yardstick).
    pub vs_kernel_vxlan: Option<f64>,
}

impl Summary {
    /// Summarise `samples`; `None` when empty.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 };
        Some(Summary {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            samples: samples.to_vec(),
            vs_host_subnet: None,
            vs_veth: None,
            vs_kernel_vxlan: None,
        })
    }
}

/// Percentile `p` (0..=100) of `values` by nearest rank on the sorted values.
pub fn percentile(values: &[u64], p: f64) -> Option<u64> {
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v.get(rank.clamp(1, v.len().max(1)) - 1).copied()
}

/// Ratio of two medians, if both exist and the reference is positive.
pub fn ratio(value: Option<f64>, reference: Option<f64>) -> Option<f64> {
    match (value, reference) {
        (Some(v), Some(r)) if r > 0.0 => Some(v / r),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread_of_odd_and_even_counts() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(s.samples, vec![3.0, 1.0, 2.0]);
        let s = Summary::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 50.0), Some(500));
        assert_eq!(percentile(&v, 99.0), Some(990));
        assert_eq!(percentile(&v, 100.0), Some(1000));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn ratios_need_a_positive_reference() {
        assert_eq!(ratio(Some(5.0), Some(10.0)), Some(0.5));
        assert_eq!(ratio(Some(5.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
    }

    #[test]
    fn metrics_read_their_own_field() {
        let s = Sample {
            tcp_1_gbps: 1.0,
            tcp_n_gbps: 2.0,
            udp64_kpps: 3.0,
            rtt_p50_us: 4.0,
            rtt_p99_us: 5.0,
            switch_cpu_s_per_gb: None,
            switch_idle_cpu_pct: Some(6.5),
            switch_ping_cpu_pct: Some(42.5),
            kernel_cpu_s_per_gb: 7.0,
        };
        let got: Vec<Option<f64>> = Metric::ALL.iter().map(|m| m.of(&s)).collect();
        assert_eq!(got, vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0), Some(5.0), None, Some(6.5), Some(42.5), Some(7.0)]);
        let keys: std::collections::HashSet<&str> = Metric::ALL.iter().map(|m| m.key()).collect();
        assert_eq!(keys.len(), Metric::ALL.len());
    }
}
