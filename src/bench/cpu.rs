//! CPU accounting from `/proc`, for "CPU seconds per GB moved".
//!
//! Two views, both read before and after a measurement:
//! - the switch: `utime + stime` of each vxswitch daemon from `/proc/PID/stat` (all its threads);
//! - the kernel: `system + softirq` of the whole machine from the `cpu` line of `/proc/stat`.
//!   That covers every packet the kernel touched on either side (sockets, veth, bridge, vxlan,
//!   routing, TAP) and also the system time of the daemons and the traffic generators, so the two
//!   views overlap by the daemons' `stime`. `/proc/stat` is not namespaced: it sees both "hosts".
//!
//! Both are in clock ticks (`sysconf(_SC_CLK_TCK)`, usually 100 per second), so a figure is only
//! meaningful over runs of a second or more.

use std::fs;
use std::io;

/// Ticks per second of `/proc` CPU times.
pub fn ticks_per_sec() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}

/// Machine-wide `system + softirq` ticks so far.
pub fn kernel_ticks() -> io::Result<u64> {
    let text = fs::read_to_string("/proc/stat")?;
    parse_proc_stat(&text).ok_or_else(|| io::Error::other("no cpu line in /proc/stat"))
}

/// `utime + stime` ticks of process `pid` so far.
pub fn process_ticks(pid: u32) -> io::Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_pid_stat(&text).ok_or_else(|| io::Error::other(format!("malformed /proc/{pid}/stat")))
}

/// Sum of [`process_ticks`] over `pids`.
pub fn processes_ticks(pids: &[u32]) -> io::Result<u64> {
    pids.iter().map(|&p| process_ticks(p)).sum()
}

/// `system + softirq` from the aggregate `cpu` line:
/// `cpu user nice system idle iowait irq softirq steal ...`.
fn parse_proc_stat(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line.split_whitespace().skip(1).map(|v| v.parse().ok()).collect::<Option<_>>()?;
    Some(f.get(2)? + f.get(6)?)
}

/// `utime + stime` (fields 14 and 15) of `/proc/PID/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after the *last* `)`.
fn parse_pid_stat(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime = field 14 -> index 11, stime -> index 12.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_sums_system_and_softirq() {
        let text = "cpu  100 5 300 9000 10 7 40 0 0 0\ncpu0 50 2 150 4500 5 3 20 0 0 0\nintr 1\n";
        assert_eq!(parse_proc_stat(text), Some(340));
        assert_eq!(parse_proc_stat("intr 1\n"), None);
        assert_eq!(parse_proc_stat("cpu  1 2\n"), None);
    }

    #[test]
    fn pid_stat_counts_fields_after_the_last_parenthesis() {
        // Shape of a real /proc/PID/stat line (first 17 fields), with a tricky command name.
        let text = "4242 (vx (s) witch) S 1 4242 4242 0 -1 4194560 500 0 0 0 123 45 0 0 20 0 3 0";
        assert_eq!(parse_pid_stat(text), Some(168));
        assert_eq!(parse_pid_stat("4242 (x) S 1"), None);
    }

    #[test]
    fn own_process_and_machine_counters_are_readable() {
        assert!(process_ticks(std::process::id()).is_ok());
        assert!(kernel_ticks().unwrap() > 0);
        assert!(ticks_per_sec() >= 1.0);
    }
}
