//! A checked TCP transfer: the sender writes a fixed pseudo-random byte stream, the receiver
//! compares every byte with the same stream and reports how many arrived and whether all were
//! intact. Lost, duplicated, reordered or corrupted data all show up as a mismatch at a known
//! offset. Both ends are `vxswitch probe` subcommands, so they run in a lab container and in a
//! QEMU guest alike, with nothing installed there.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What a checked transfer delivered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TransferReport {
    /// Bytes the sender wrote.
    pub sent: u64,
    /// Bytes the receiver read.
    pub received: u64,
    /// Whether every received byte matched the stream.
    pub intact: bool,
    /// Seconds from connect to the receiver's answer (sender) or from accept to EOF (receiver).
    pub secs: f64,
}

/// The stream's bytes at `offset..offset + buf.len()`: 8-byte words of splitmix64(word index).
pub fn fill(offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let pos = offset + i as u64;
        let mut z = (pos / 8).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        *b = z.to_le_bytes()[(pos % 8) as usize];
    }
}

/// Accept one connection on `port`, check the stream until EOF, answer the sender with the
/// count and the verdict (8-byte count, 1 byte intact). Gives up after `patience` without one.
pub fn sink(port: u16, patience: Duration) -> io::Result<TransferReport> {
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))?;
    listener.set_nonblocking(true)?;
    let started = Instant::now();
    let mut stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && started.elapsed() < patience => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => return Err(e),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let start = Instant::now();
    let (mut buf, mut want) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let (mut received, mut intact) = (0u64, true);
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        fill(received, &mut want[..n]);
        intact &= buf[..n] == want[..n];
        received += n as u64;
    }
    let mut answer = received.to_be_bytes().to_vec();
    answer.push(u8::from(intact));
    stream.write_all(&answer)?;
    Ok(TransferReport { sent: received, received, intact, secs: start.elapsed().as_secs_f64() })
}

/// Send `bytes` of the stream to a sink at `dst` and report what the sink found.
pub fn send(dst: SocketAddrV4, bytes: u64, patience: Duration) -> io::Result<TransferReport> {
    let mut stream = super::probe::connect_retry(dst, patience)?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    let start = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(buf.len() as u64) as usize;
        fill(sent, &mut buf[..n]);
        stream.write_all(&buf[..n])?;
        sent += n as u64;
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut answer = [0u8; 9];
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.read_exact(&mut answer)?;
    let received = u64::from_be_bytes(answer[..8].try_into().expect("8 bytes"));
    Ok(TransferReport { sent, received, intact: answer[8] == 1, secs: start.elapsed().as_secs_f64() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_does_not_depend_on_how_it_is_cut() {
        let mut whole = vec![0u8; 100];
        fill(5, &mut whole);
        let mut parts = vec![0u8; 100];
        fill(5, &mut parts[..37]);
        fill(42, &mut parts[37..]);
        assert_eq!(whole, parts);
        assert!(whole.windows(8).all(|w| w.iter().any(|b| *b != w[0])), "not constant");
    }

    #[test]
    fn a_transfer_on_loopback_arrives_intact() {
        let port = 20000 + (std::process::id() % 20000) as u16;
        let sink = std::thread::spawn(move || sink(port, Duration::from_secs(5)).unwrap());
        let sent = send(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port), 1_000_003, Duration::from_secs(5)).unwrap();
        let got = sink.join().unwrap();
        assert_eq!((sent.sent, sent.received, sent.intact), (1_000_003, 1_000_003, true));
        assert_eq!((got.received, got.intact), (1_000_003, true));
    }
}
