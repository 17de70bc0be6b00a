//! The underlay path MTU to each peer, as the kernel knows it.
//!
//! The tunnel sockets send with DF (`IP_PMTUDISC_PROBE`). A router whose next link is smaller
//! drops such a packet and answers with ICMP "fragmentation needed"; the kernel matches it to our
//! socket and records the smaller MTU as a route exception for the peer's address (kept 10
//! minutes, `net.ipv4.route.mtu_expires`), but `PROBE` sockets keep sending at the device MTU, so
//! nothing else would ever change and the peer would be a black hole for large frames.
//!
//! Why not `IP_RECVERR` on the tunnel sockets: with it, every ICMP error also sets the socket's
//! pending error, which the next `recvmmsg` or send on that socket returns instead of data, on
//! the hot path of every socket of the pool. Asking the route instead costs nothing there: once a
//! second (off the data path, a bounded number of peers per round) a probe socket is connected to
//! each peer in turn and `getsockopt(IP_MTU)` reads the route's MTU, exception included. What
//! differs from what the switch holds is reported with
//! [`crate::dataplane::Switch::handle_path_mtu`], which lowers or raises that peer's limit and
//! answers senders with ICMP. Connecting a UDP socket sends nothing; both calls are non-blocking.
//! On an IPv6 underlay the same holds with ICMPv6 "packet too big" and `IPV6_MTU` (the kernel
//! keeps IPv6 route exceptions for `net.ipv6.route.mtu_expires`, also 10 minutes).

#![allow(unsafe_code)] // getsockopt(IP_MTU / IPV6_MTU), which socket2 does not wrap; the block has a SAFETY note

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::dataplane::Switch;

/// How often the peers' path MTUs are read.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// Most peers read per round (the rest wait for the next rounds).
pub const PEERS_PER_ROUND: usize = 256;

/// Reads the kernel's path MTU to each peer and tells the switch what changed.
#[derive(Debug)]
pub struct PathMtuProbe {
    socket: Socket,
    port: u16,
    underlay_mtu: u32,
    next: Instant,
    cursor: usize,
}

impl PathMtuProbe {
    /// A probe from `local` (the underlay address, so the route is the tunnel's) toward peers'
    /// `port`, for an underlay of `underlay_mtu` bytes.
    pub fn new(local: IpAddr, port: u16, underlay_mtu: u32, now: Instant) -> io::Result<Self> {
        let local = SocketAddr::new(local, 0);
        let socket = Socket::new(Domain::for_address(local), Type::DGRAM.nonblocking().cloexec(), Some(Protocol::UDP))?;
        if local.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.bind(&local.into())?;
        Ok(PathMtuProbe { socket, port, underlay_mtu, next: now, cursor: 0 })
    }

    /// The kernel's MTU of the route to `peer` (with any learned exception).
    pub fn path_mtu(&self, peer: IpAddr) -> io::Result<u32> {
        self.socket.connect(&SocketAddr::new(peer, self.port).into())?;
        let (level, opt) = if peer.is_ipv6() { (libc::IPPROTO_IPV6, libc::IPV6_MTU) } else { (libc::IPPROTO_IP, libc::IP_MTU) };
        let mut mtu: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: valid fd; `mtu` and `len` outlive the call and `len` is the size of `mtu`.
        let rc = unsafe { libc::getsockopt(self.socket.as_raw_fd(), level, opt, (&mut mtu as *mut libc::c_int).cast(), &mut len) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(u32::try_from(mtu).unwrap_or(0))
    }

    /// When [`PathMtuProbe::run`] next has work.
    pub fn next_due(&self) -> Instant {
        self.next
    }

    /// If a round is due at `now`, read up to [`PEERS_PER_ROUND`] peers' path MTUs and report to
    /// `switch` those that differ from what it holds. Returns the read errors.
    pub fn run(&mut self, now: Instant, switch: &mut Switch) -> u64 {
        if now < self.next {
            return 0;
        }
        self.next = now + PROBE_EVERY;
        let peers = switch.underlay_peers();
        if peers.is_empty() {
            return 0;
        }
        let mut errors = 0;
        for i in 0..peers.len().min(PEERS_PER_ROUND) {
            let peer = peers[(self.cursor + i) % peers.len()];
            match self.path_mtu(peer) {
                Ok(mtu) if mtu > 0 => {
                    let kernel = mtu.min(self.underlay_mtu);
                    if kernel != switch.peer_mtu(peer).unwrap_or(self.underlay_mtu) {
                        switch.handle_path_mtu(now, peer, kernel);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    errors += 1;
                    tracing::debug!(%peer, "path MTU: {e}");
                }
            }
        }
        self.cursor = (self.cursor + PEERS_PER_ROUND) % peers.len();
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_path_mtu_is_the_device_mtu() {
        for lo in [IpAddr::from(std::net::Ipv4Addr::LOCALHOST), IpAddr::from(std::net::Ipv6Addr::LOCALHOST)] {
            let probe = PathMtuProbe::new(lo, 4789, 1500, Instant::now()).unwrap();
            let mtu = probe.path_mtu(lo).unwrap();
            assert!(mtu >= 1500, "lo has a large MTU over {lo}: {mtu}");
        }
    }
}
