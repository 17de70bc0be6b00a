//! Traffic checks shared by the netns tests: ping (iputils) from containers, and reading an
//! underlay capture (pcap written by tcpdump) to see which inner frames crossed.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use vxswitch::testnet::lab::Lab;
use vxswitch::testnet::probes;

/// `COUNT` ICMP echo requests from a container, 50 ms apart; returns (sent, received).
///
/// Uses the built-in probe (`vxswitch probe ping`), which waits up to 2 s for each reply before
/// it sends the next request. iputils `ping -c N` is not fit to count losses on a busy machine:
/// once it has sent the last request and seen any reply, it waits only max(2 x the largest RTT so
/// far, the interval) for the rest (`-W` applies only while no reply came), so a last reply that
/// is 50 ms late is reported as lost although it arrived.
/// An IPv6 `dst` goes to [`ping6`] (the probe speaks IPv4 only).
pub fn ping(lab: &Lab, host: usize, container: usize, dst: impl Into<IpAddr>, count: u32) -> (u32, u32) {
    let dst = match dst.into() {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => return ping6(lab, host, container, &v6.to_string(), count),
    };
    let from = &lab.hosts[host].containers[container];
    let report = probes::ping_with_timeout(lab, from, dst, count, Duration::from_millis(50), Duration::from_secs(2))
        .expect("the ping probe runs in the container");
    (report.sent, report.received)
}

/// `COUNT` ICMPv6 echo requests from a container to `dst` (an address, or `fe80::..%eth0`);
/// returns (sent, received).
///
/// One iputils `ping -6 -c 1 -W 2` per request: with a single request and no reply yet, iputils
/// waits the full `-W` for it, whereas `ping -c N` gives the replies outstanding after its last
/// request only max(2 x largest RTT, interval) (see [`ping`]).
pub fn ping6(lab: &Lab, host: usize, container: usize, dst: &str, count: u32) -> (u32, u32) {
    let ns = &lab.hosts[host].containers[container].ns;
    let (mut sent, mut got) = (0, 0);
    for _ in 0..count {
        let out =
            ns.command("ping").args(["-6", "-c", "1", "-W", "2", "-q", dst]).output().expect("ping runs (apt-get install iputils-ping)");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.contains("packets transmitted")).unwrap_or_else(|| panic!("ping output: {text}"));
        let nums: Vec<u32> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect();
        (sent, got) = (sent + nums[0], got + nums[1]);
    }
    (sent, got)
}

/// Every container pings every other container; asserts nothing is lost.
pub fn all_pairs_ping(lab: &Lab, count: u32) {
    let all: Vec<(usize, usize, Ipv4Addr)> =
        lab.hosts.iter().enumerate().flat_map(|(h, host)| host.containers.iter().enumerate().map(move |(c, ct)| (h, c, ct.ip))).collect();
    let mut failures = Vec::new();
    for &(h, c, src) in &all {
        for &(_, _, dst) in all.iter().filter(|(_, _, d)| *d != src) {
            let (sent, got) = ping(lab, h, c, dst, count);
            if sent != count || got != count {
                failures.push(format!("{src} -> {dst}: {got}/{sent}"));
            }
        }
    }
    assert!(failures.is_empty(), "lost pings: {failures:?}; logs in {}", lab.dir.display());
}

/// A tcpdump running on the underlay bridge, writing a pcap file.
pub struct Capture {
    child: Child,
    path: std::path::PathBuf,
}

impl Capture {
    /// Capture `filter` on interface `dev` of the lab's underlay namespace.
    pub fn start(lab: &Lab, dev: &str, filter: &str, path: &Path) -> Capture {
        let child = lab
            .underlay
            .command("tcpdump")
            // --immediate-mode: every frame reaches tcpdump (and, with -U, the file) at once.
            // Without it libpcap's TPACKET_V3 ring hands over a block only when it is full or
            // after tcpdump's 1 s timeout, and tcpdump exits on SIGINT without reading the
            // partly filled block: the last frames of a test were missing from the file.
            .args(["-i", dev, "--immediate-mode", "-U", "-n", "-B", "8192", "-w", &path.to_string_lossy(), filter])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump runs (apt-get install tcpdump)");
        // Wait until the pcap header is written: tcpdump is then listening.
        let start = Instant::now();
        while std::fs::metadata(path).map(|m| m.len() < 24).unwrap_or(true) {
            assert!(start.elapsed() < Duration::from_secs(10), "tcpdump did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
        Capture { child, path: path.to_path_buf() }
    }

    /// Stop capturing and return the captured frames.
    pub fn stop(mut self) -> Vec<Vec<u8>> {
        // Let tcpdump drain what the kernel still buffers: on SIGINT it stops reading at once, so
        // wait until the file (written per packet, `-U`) has stopped growing for 500 ms. A fixed
        // pause lost the last frames when the machine was busy and tcpdump was not scheduled.
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let (start, mut last, mut stable_since) = (Instant::now(), size(&self.path), Instant::now());
        while stable_since.elapsed() < Duration::from_millis(500) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
            let now = size(&self.path);
            if now != last {
                (last, stable_since) = (now, Instant::now());
            }
        }
        // SAFETY: signalling our own child so it flushes and exits.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let mut report = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut report);
        }
        let _ = self.child.wait();
        // Frames the kernel could not hand to tcpdump are missing from the file: a count of
        // captured frames would then be wrong, so say so instead of failing on the count.
        let dropped =
            report.lines().find(|l| l.contains("dropped by kernel")).and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok());
        assert_eq!(dropped, Some(0), "tcpdump lost frames: {report}");
        read_pcap(&std::fs::read(&self.path).expect("pcap written"))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Frames of a classic little-endian pcap file with Ethernet link type.
pub fn read_pcap(data: &[u8]) -> Vec<Vec<u8>> {
    assert!(data.len() >= 24 && data[..4] == [0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    assert_eq!(u32::from_le_bytes(data[20..24].try_into().unwrap()), 1, "Ethernet link type");
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let len = u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
        let end = (at + 16 + len).min(data.len());
        frames.push(data[at + 16..end].to_vec());
        at = end;
    }
    frames
}

/// The inner Ethernet frame of an outer Ethernet/IPv4/UDP/VXLAN frame.
pub fn vxlan_inner(frame: &[u8]) -> Option<&[u8]> {
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let udp = 14 + ihl;
    if frame.get(udp + 9) != Some(&0x08) && frame.len() < udp + 16 {
        return None;
    }
    let dport = u16::from_be_bytes([frame[udp + 2], frame[udp + 3]]);
    (dport == 4789).then(|| &frame[udp + 16..])
}
