//! Traffic probes for the demo, tests and benchmark: ICMP echo (RTT, loss) and a TCP
//! throughput pair. They run inside container namespaces (`ip netns exec NS vxswitch probe ...`)
//! and print one JSON object, so the demo works on a machine without ping or iperf3.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};

use super::pattern;
use crate::wire::icmpv4::{message_type, Icmpv4Packet, Icmpv4Repr};
use crate::wire::ipv4::Ipv4Packet;

/// A probe to run.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ProbeCommand {
    /// Send ICMP echo requests and report loss and round-trip times.
    Ping {
        /// Destination address.
        dst: Ipv4Addr,
        /// Number of requests.
        #[arg(long, default_value_t = 10)]
        count: u32,
        /// Milliseconds between requests.
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
        /// Milliseconds to wait for each reply.
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
    },
    /// Accept one TCP connection, count the bytes until EOF, and send the count back.
    TcpSink {
        /// Port to listen on.
        #[arg(long, default_value_t = 5299)]
        port: u16,
    },
    /// Send TCP data for some seconds to a sink and report the goodput.
    TcpSend {
        /// The sink's address.
        dst: Ipv4Addr,
        /// The sink's port.
        #[arg(long, default_value_t = 5299)]
        port: u16,
        /// Seconds to send.
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
    },
    /// Accept one TCP connection and check every byte of the pattern stream until EOF.
    PatternSink {
        /// Port to listen on.
        #[arg(long, default_value_t = 5298)]
        port: u16,
        /// Seconds to wait for the connection.
        #[arg(long, default_value_t = 60)]
        wait_secs: u64,
    },
    /// Send BYTES of the pattern stream to a pattern sink and report its verdict.
    PatternSend {
        /// The sink's address.
        dst: Ipv4Addr,
        /// The sink's port.
        #[arg(long, default_value_t = 5298)]
        port: u16,
        /// Bytes to send.
        #[arg(long, default_value_t = 1 << 20)]
        bytes: u64,
    },
}

/// Result of a ping probe.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PingReport {
    /// Requests sent.
    pub sent: u32,
    /// Replies received.
    pub received: u32,
    /// Round-trip times in microseconds, in send order.
    pub rtt_us: Vec<u64>,
}

impl PingReport {
    /// Percentile (0..=100) of the RTTs in milliseconds.
    pub fn rtt_ms_percentile(&self, p: f64) -> Option<f64> {
        let mut v = self.rtt_us.clone();
        v.sort_unstable();
        let i = ((p / 100.0) * (v.len().saturating_sub(1)) as f64).round() as usize;
        v.get(i).map(|us| *us as f64 / 1000.0)
    }
}

/// Result of a TCP throughput probe.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThroughputReport {
    /// Bytes the sink counted.
    pub bytes: u64,
    /// Seconds from connect to the sink's count.
    pub secs: f64,
}

impl ThroughputReport {
    /// Goodput in Gbit/s.
    pub fn gbps(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.secs / 1e9
    }
}

/// Run a probe and print its JSON report.
pub fn run(cmd: ProbeCommand) -> anyhow::Result<()> {
    let json = match cmd {
        ProbeCommand::Ping { dst, count, interval_ms, timeout_ms } => {
            serde_json::to_string(&ping(dst, count, Duration::from_millis(interval_ms), Duration::from_millis(timeout_ms))?)?
        }
        ProbeCommand::TcpSink { port } => serde_json::to_string(&tcp_sink(port)?)?,
        ProbeCommand::TcpSend { dst, port, secs } => {
            serde_json::to_string(&tcp_send(SocketAddrV4::new(dst, port), Duration::from_secs_f64(secs))?)?
        }
        ProbeCommand::PatternSink { port, wait_secs } => serde_json::to_string(&pattern::sink(port, Duration::from_secs(wait_secs))?)?,
        ProbeCommand::PatternSend { dst, port, bytes } => {
            serde_json::to_string(&pattern::send(SocketAddrV4::new(dst, port), bytes, Duration::from_secs(20))?)?
        }
    };
    println!("{json}");
    Ok(())
}

/// Bytes of pattern data in each echo request (as `ping`'s default).
const ECHO_DATA_LEN: usize = 56;

/// An ICMP echo request (header, checksum and a counting pattern), as the raw socket sends it.
fn echo_request(ident: u16, seq_no: u16) -> Vec<u8> {
    let data: [u8; ECHO_DATA_LEN] = core::array::from_fn(|i| i as u8);
    let request = Icmpv4Repr::EchoRequest { ident, seq_no, data: &data };
    let mut pkt = vec![0u8; request.buffer_len()];
    request.emit(&mut Icmpv4Packet::new_unchecked(&mut pkt[..]));
    pkt
}

/// Whether `packet` (an IPv4 packet from the raw socket) is the echo reply from `dst` to
/// request (`ident`, `seq_no`).
fn is_echo_reply(packet: &[u8], dst: Ipv4Addr, ident: u16, seq_no: u16) -> bool {
    let Ok(ip) = Ipv4Packet::new_checked(packet) else { return false };
    let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) else { return false };
    icmp.msg_type() == message_type::ECHO_REPLY && ip.src_addr() == dst && icmp.echo_ident() == ident && icmp.echo_seq_no() == seq_no
}

/// Ping `dst` `count` times over a raw ICMP socket (needs CAP_NET_RAW).
pub fn ping(dst: Ipv4Addr, count: u32, interval: Duration, timeout: Duration) -> io::Result<PingReport> {
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
    let ident = (std::process::id() & 0xffff) as u16;
    let target: SocketAddr = SocketAddrV4::new(dst, 0).into();
    let mut report = PingReport { sent: 0, received: 0, rtt_us: Vec::new() };
    let mut buf = [0u8; 2048];
    for seq in 0..count as u16 {
        let pkt = echo_request(ident, seq);
        let sent_at = Instant::now();
        sock.send_to(&pkt, &target.into())?;
        report.sent += 1;
        let deadline = sent_at + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left))?;
            let n = match (&sock).read(&mut buf) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break,
                Err(e) => return Err(e),
            };
            if is_echo_reply(&buf[..n], dst, ident, seq) {
                report.received += 1;
                report.rtt_us.push(sent_at.elapsed().as_micros() as u64);
                break;
            }
        }
        let next = sent_at + interval;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    Ok(report)
}

/// Accept one connection on `port`, count bytes until EOF, answer with the count.
pub fn tcp_sink(port: u16) -> io::Result<ThroughputReport> {
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))?;
    let (mut stream, _) = listener.accept()?;
    let start = Instant::now();
    let mut buf = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    stream.write_all(&bytes.to_be_bytes())?;
    Ok(ThroughputReport { bytes, secs: start.elapsed().as_secs_f64() })
}

/// Send for `duration` to a sink at `dst` and report what the sink counted.
pub fn tcp_send(dst: SocketAddrV4, duration: Duration) -> io::Result<ThroughputReport> {
    let mut stream = connect_retry(dst, Duration::from_secs(5))?;
    let start = Instant::now();
    let buf = vec![0x5au8; 128 * 1024];
    while start.elapsed() < duration {
        stream.write_all(&buf)?;
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut count = [0u8; 8];
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.read_exact(&mut count)?;
    Ok(ThroughputReport { bytes: u64::from_be_bytes(count), secs: start.elapsed().as_secs_f64() })
}

pub(super) fn connect_retry(dst: SocketAddrV4, patience: Duration) -> io::Result<TcpStream> {
    let start = Instant::now();
    loop {
        match TcpStream::connect_timeout(&dst.into(), Duration::from_secs(2)) {
            Ok(s) => return Ok(s),
            Err(e) if start.elapsed() < patience => {
                tracing::debug!("connect {dst}: {e}, retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::{protocol, Ipv4Repr};

    #[test]
    fn echo_request_and_reply_go_through_the_wire_views() {
        let request = echo_request(0x1234, 7);
        let icmp = Icmpv4Packet::new_checked(&request[..]).unwrap();
        assert!(icmp.verify_checksum());
        let Ok(Icmpv4Repr::EchoRequest { ident, seq_no, data }) = Icmpv4Repr::parse(&icmp) else { panic!("not an echo request") };
        assert_eq!((ident, seq_no, data.len(), data[55]), (0x1234, 7, ECHO_DATA_LEN, 55));

        let (me, peer) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
        let reply = Icmpv4Repr::EchoReply { ident, seq_no, data };
        let ip = Ipv4Repr { src_addr: peer, dst_addr: me, protocol: protocol::ICMP, payload_len: reply.buffer_len(), ttl: 64 };
        let mut packet = vec![0u8; ip.buffer_len() + reply.buffer_len()];
        let mut view = Ipv4Packet::new_unchecked(&mut packet[..]);
        ip.emit(&mut view);
        reply.emit(&mut Icmpv4Packet::new_unchecked(view.payload_mut()));
        assert!(is_echo_reply(&packet, peer, 0x1234, 7));
        assert!(!is_echo_reply(&packet, me, 0x1234, 7), "from someone else");
        assert!(!is_echo_reply(&packet, peer, 0x1234, 8), "another sequence number");
        for len in 0..packet.len() {
            assert!(!is_echo_reply(&packet[..len], peer, 0x1234, 7), "truncated to {len}");
        }
    }

    #[test]
    fn tcp_pair_counts_every_byte_on_loopback() {
        let port = 40000 + (std::process::id() % 20000) as u16;
        let sink = std::thread::spawn(move || tcp_sink(port).unwrap());
        let sent = tcp_send(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port), Duration::from_millis(100)).unwrap();
        let got = sink.join().unwrap();
        assert_eq!(sent.bytes, got.bytes);
        assert!(got.bytes >= 128 * 1024);
    }

    #[test]
    fn percentiles_pick_from_sorted_rtts() {
        let r = PingReport { sent: 4, received: 4, rtt_us: vec![4000, 1000, 3000, 2000] };
        assert_eq!(r.rtt_ms_percentile(0.0), Some(1.0));
        assert_eq!(r.rtt_ms_percentile(100.0), Some(4.0));
    }
}
