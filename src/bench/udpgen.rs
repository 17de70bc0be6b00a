//! The built-in small-packet UDP generator and sink, used when iperf3 is not installed.
//!
//! Like `iperf3 -u -l 64 -b 0`: one sender writes 64-byte datagrams as fast as it can on a
//! connected socket for the run time; the sink counts what arrives. The figure is the delivered
//! rate, `received / send time`, so drops anywhere on the path (including the sink's socket
//! buffer) lower it, as they do for a real application.
//!
//! Both ends run inside their namespaces on dedicated threads ([`setns::run_in`]), so no extra
//! process and no `probe` subcommand is needed.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::testnet::setns;

/// UDP port of the sink.
pub const PORT: u16 = 5301;

/// Result of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UdpReport {
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams the sink counted.
    pub received: u64,
    /// Seconds the sender ran.
    pub secs: f64,
}

impl UdpReport {
    /// Delivered datagrams per second.
    pub fn pps(&self) -> f64 {
        self.received as f64 / self.secs.max(1e-9)
    }
}

/// Count datagrams on `sock` until `stop` is set (polled every 50 ms).
pub fn sink(sock: &UdpSocket, stop: &AtomicBool) -> io::Result<u64> {
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut buf = [0u8; 2048];
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        match sock.recv(&mut buf) {
            Ok(_) => n += 1,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Send `len`-byte datagrams on the connected `sock` for `duration`; returns (sent, seconds).
/// A full socket buffer (`ENOBUFS`) or an ICMP error relayed as `ECONNREFUSED` is a lost
/// datagram, not a failure.
pub fn flood(sock: &UdpSocket, len: usize, duration: Duration) -> io::Result<(u64, f64)> {
    let payload = vec![0x5au8; len];
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < duration {
        for _ in 0..64 {
            match sock.send(&payload) {
                Ok(_) => sent += 1,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOBUFS) | Some(libc::ECONNREFUSED)) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok((sent, start.elapsed().as_secs_f64()))
}

/// One run from namespace `client_ns` to the sink at `server_ip` in `server_ns`.
pub fn run_pair(server_ns: &str, server_ip: Ipv4Addr, client_ns: &str, len: usize, duration: Duration) -> io::Result<UdpReport> {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let (ns, flag) = (server_ns.to_string(), stop.clone());
    let sink_thread = std::thread::spawn(move || {
        setns::run_in(&ns, move || -> io::Result<u64> {
            let sock = UdpSocket::bind(SocketAddrV4::new(server_ip, PORT));
            let sock = match sock {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return Err(e);
                }
            };
            sink(&sock, &flag)
        })
    });
    let ready = ready_rx.recv_timeout(Duration::from_secs(5));
    let sent = match ready {
        Ok(Ok(())) => {
            let ns = client_ns.to_string();
            setns::run_in(&ns, move || -> io::Result<(u64, f64)> {
                let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
                sock.connect(SocketAddrV4::new(server_ip, PORT))?;
                flood(&sock, len, duration)
            })
            .map_err(io::Error::other)
            .and_then(|r| r)
        }
        Ok(Err(e)) => Err(io::Error::other(format!("udp sink: {e}"))),
        Err(_) => Err(io::Error::other("udp sink did not start")),
    };
    // Let the last datagrams drain before the sink stops counting.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let received = sink_thread.join().map_err(|_| io::Error::other("udp sink thread panicked"))?.map_err(io::Error::other)??;
    let (sent, secs) = sent?;
    Ok(UdpReport { sent, received, secs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_and_sink_count_the_same_datagrams_on_loopback() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let counter = std::thread::spawn(move || sink(&rx, &flag).unwrap());
        let (sent, secs) = flood(&tx, 64, Duration::from_millis(50)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        let got = counter.join().unwrap();
        assert!(sent >= 64 && secs >= 0.05, "sent {sent} in {secs}");
        assert!(got > 0 && got <= sent, "received {got} of {sent}");
        let r = UdpReport { sent, received: got, secs };
        assert!((r.pps() - got as f64 / secs).abs() < 1e-6);
    }
}
