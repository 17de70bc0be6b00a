//! Underlay UDP sockets with batched I/O (`recvmmsg` / `sendmmsg`).
//!
//! One socket bound to `underlay:4789` receives VXLAN from any source port. Sending goes through a
//! small pool of sockets bound to the same address on kernel-chosen ephemeral ports: the switch's
//! inner-flow hash picks the socket, so the outer source port follows the inner flow the way
//! Linux vxlan does it, and ECMP underlays spread flows while each flow keeps one path.
//! All sockets set `IP_PMTUDISC_PROBE` (DF on, never fragmented, PMTU cache ignored): the switch
//! already guarantees that an encapsulated frame fits the configured underlay MTU.
//! The underlay may be IPv4 or IPv6: the sockets take the family of the local address (IPv6
//! ones are `IPV6_V6ONLY` with `IPV6_PMTUDISC_PROBE`) and the kernel builds the outer header;
//! addresses cross `recvmmsg`/`sendmmsg` as a [`RawSockAddr`] that holds either family.
#![allow(unsafe_code)] // raw syscalls the safe crates do not wrap; each block has a SAFETY note

use std::cell::Cell;
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

use crate::sys::SysError;

/// Most datagrams moved per `recvmmsg` / `sendmmsg` call.
pub const BATCH: usize = 64;

/// Number of source sockets (distinct outer source ports).
pub const SOURCE_PORTS: usize = 8;

/// Socket buffer size asked for (forced when running as root).
const SOCKET_BUFFER: usize = 4 << 20;

/// `UDP_SEGMENT` (linux/udp.h): GSO size of a send, as a socket option or a cmsg (u16).
const UDP_SEGMENT: libc::c_int = 103;
/// `UDP_GRO` (linux/udp.h): receive coalesced datagrams; the cmsg carries the stride (int).
const UDP_GRO: libc::c_int = 104;
/// Most datagrams in one `UDP_SEGMENT` send (`UDP_MAX_SEGMENTS` on older kernels).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// Most UDP payload bytes in one send over IPv4 (65535 - 20 - 8): beyond, `EMSGSIZE`. IPv6
/// allows 65527 (its payload length excludes the header); the smaller limit serves both.
pub const GSO_MAX_BYTES: usize = 65507;
/// Receive buffer needed per message when `UDP_GRO` is on (a coalesced datagram can be 64 KB).
pub const GRO_BUFFER: usize = 65535;

/// The underlay sockets.
#[derive(Debug)]
pub struct UnderlaySockets {
    rx: Socket,
    tx: Vec<Socket>,
    peer_port: u16,
    /// `UDP_SEGMENT` sends allowed (turned off for good when the kernel refuses one).
    gso: Cell<bool>,
    /// `UDP_GRO` is on for the receive socket.
    gro: bool,
}

/// One datagram received by [`UnderlaySockets::recv_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes received, or `usize::MAX` when the datagram was truncated.
    pub len: usize,
    /// The sender.
    pub from: SocketAddr,
    /// With `UDP_GRO`: the size of each coalesced datagram (the last may be shorter); 0 when the
    /// buffer holds one datagram.
    pub stride: usize,
}

fn set_int_opt(s: &Socket, level: libc::c_int, opt: libc::c_int, val: libc::c_int) -> io::Result<()> {
    // SAFETY: valid fd, pointer to a c_int that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            opt,
            (&val as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether an error of a `UDP_SEGMENT` send means "this path cannot do GSO" (no checksum offload
/// on the route's device: `EIO`; segment size or count not accepted: `EINVAL`), as quinn-udp and
/// wireguard-go treat them.
pub fn gso_refused(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::EINVAL))
}

fn udp_socket(addr: SocketAddr, what: &'static str) -> Result<Socket, SysError> {
    let ctx = |op: &'static str| move |source| SysError::Socket { op, what, addr, source };
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM.nonblocking().cloexec(), Some(Protocol::UDP)).map_err(ctx("socket"))?;
    if addr.is_ipv6() {
        // One family per underlay: an IPv6 socket never sees IPv4-mapped peers.
        s.set_only_v6(true).map_err(ctx("IPV6_V6ONLY"))?;
    }
    // No SO_REUSEADDR (nor SO_REUSEPORT): with it, any local user could bind the same
    // address and port with the same option and receive the overlay's traffic.
    if s.set_recv_buffer_size(SOCKET_BUFFER).is_err() {
        tracing::debug!("could not raise SO_RCVBUF");
    }
    let _ = force_buffers(&s);
    set_pmtudisc_probe(&s, addr.is_ipv6()).map_err(ctx("IP_MTU_DISCOVER"))?;
    s.bind(&addr.into()).map_err(ctx("bind"))?;
    Ok(s)
}

fn force_buffers(s: &Socket) -> io::Result<()> {
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        set_int_opt(s, libc::SOL_SOCKET, opt, SOCKET_BUFFER as libc::c_int)?;
    }
    Ok(())
}

fn set_pmtudisc_probe(s: &Socket, ipv6: bool) -> io::Result<()> {
    if ipv6 {
        set_int_opt(s, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, libc::IPV6_PMTUDISC_PROBE)
    } else {
        set_int_opt(s, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_PROBE)
    }
}

impl UnderlaySockets {
    /// Bind the receive socket to `local:port` and the source pool to `local:0`.
    pub fn bind(local: IpAddr, port: u16, peer_port: u16) -> Result<Self, SysError> {
        let rx = udp_socket(SocketAddr::new(local, port), "VXLAN receive socket")?;
        let tx = (0..SOURCE_PORTS).map(|_| udp_socket(SocketAddr::new(local, 0), "VXLAN source socket")).collect::<Result<_, _>>()?;
        Ok(UnderlaySockets { rx, tx, peer_port, gso: Cell::new(false), gro: false })
    }

    /// Another handle on the same sockets (duplicated descriptors), with the same GSO/GRO state;
    /// for a send thread, which then tracks a GSO refusal on its own.
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(UnderlaySockets {
            rx: self.rx.try_clone()?,
            tx: self.tx.iter().map(Socket::try_clone).collect::<io::Result<_>>()?,
            peer_port: self.peer_port,
            gso: Cell::new(self.gso.get()),
            gro: self.gro,
        })
    }

    /// Allow `UDP_SEGMENT` sends if the kernel knows the option; returns whether it does.
    pub fn enable_gso(&self) -> bool {
        // Setting the socket-wide size to 0 keeps segmentation per send (through the cmsg).
        let ok = self.tx.iter().all(|s| set_int_opt(s, libc::SOL_UDP, UDP_SEGMENT, 0).is_ok());
        self.gso.set(ok);
        ok
    }

    /// Whether `UDP_SEGMENT` sends are in use.
    pub fn gso_enabled(&self) -> bool {
        self.gso.get()
    }

    /// Stop using `UDP_SEGMENT` (after the kernel refused a send).
    pub fn disable_gso(&self) {
        self.gso.set(false);
    }

    /// Turn on `UDP_GRO` on the receive socket; returns whether the kernel accepted it. Receive
    /// buffers must then hold [`GRO_BUFFER`] bytes.
    pub fn enable_gro(&mut self) -> bool {
        self.gro = set_int_opt(&self.rx, libc::SOL_UDP, UDP_GRO, 1).is_ok();
        self.gro
    }

    /// Whether `UDP_GRO` is on.
    pub fn gro_enabled(&self) -> bool {
        self.gro
    }

    /// Send `segments` to `dest:peer_port` as one `sendmsg` with a `UDP_SEGMENT` cmsg: the kernel
    /// (or the NIC) cuts the concatenation into datagrams of `segments[0].len()` bytes. All but the
    /// last segment must have that length; at most [`GSO_MAX_SEGMENTS`] and [`GSO_MAX_BYTES`] in
    /// all. On an error for which [`gso_refused`] holds, the caller should disable GSO and resend
    /// the segments one by one.
    // hot path
    pub fn send_gso(&self, flow: u32, dest: IpAddr, segments: &[&[u8]]) -> io::Result<()> {
        debug_assert!(!segments.is_empty() && segments.len() <= GSO_MAX_SEGMENTS);
        let sock = &self.tx[flow as usize % self.tx.len()];
        let size = segments[0].len() as u16;
        let mut iovs: [libc::iovec; GSO_MAX_SEGMENTS] = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; GSO_MAX_SEGMENTS];
        for (iov, seg) in iovs.iter_mut().zip(segments) {
            *iov = libc::iovec { iov_base: seg.as_ptr() as *mut _, iov_len: seg.len() };
        }
        let mut addr = RawSockAddr::new(dest, self.peer_port);
        // u64 storage keeps the cmsg header aligned.
        let mut control = [0u64; 4];
        // SAFETY: msghdr is plain data; zeroed is a valid initial state.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut addr as *mut RawSockAddr).cast();
        msg.msg_namelen = addr.name_len();
        msg.msg_iov = iovs.as_mut_ptr();
        msg.msg_iovlen = segments.len().min(GSO_MAX_SEGMENTS) as _;
        if segments.len() > 1 {
            msg.msg_control = control.as_mut_ptr().cast();
            // SAFETY: CMSG_SPACE is a pure size computation.
            msg.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as _;
            // SAFETY: msg_control points at 32 zeroed, aligned bytes, enough for CMSG_SPACE(2);
            // CMSG_FIRSTHDR/CMSG_DATA stay inside it.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&msg);
                (*cmsg).cmsg_level = libc::SOL_UDP;
                (*cmsg).cmsg_type = UDP_SEGMENT;
                (*cmsg).cmsg_len = libc::CMSG_LEN(2) as _;
                std::ptr::copy_nonoverlapping(size.to_ne_bytes().as_ptr(), libc::CMSG_DATA(cmsg), 2);
            }
        }
        loop {
            // SAFETY: msg points at live iovecs, address and control data for the call.
            let rc = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, 0) };
            if rc >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// One socket bound to `local:port` that both receives and sends (ESP-in-UDP: RFC 3948
    /// expects port 4500 on both ends, and NAT-T peers key their mappings on it).
    pub fn bind_fixed_source(local: IpAddr, port: u16) -> Result<Self, SysError> {
        let rx = udp_socket(SocketAddr::new(local, port), "ESP-in-UDP socket")?;
        let tx = vec![rx.try_clone().map_err(|source| SysError::Socket {
            op: "dup",
            what: "ESP-in-UDP socket",
            addr: SocketAddr::new(local, port),
            source,
        })?];
        Ok(UnderlaySockets { rx, tx, peer_port: port, gso: Cell::new(false), gro: false })
    }

    /// The receive socket's fd (for polling).
    pub fn rx_fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }

    /// Local source ports of the pool (for tests and status).
    pub fn source_ports(&self) -> Vec<u16> {
        self.tx.iter().filter_map(|s| s.local_addr().ok()?.as_socket().map(|a| a.port())).collect()
    }

    /// Receive up to `bufs.len()` datagrams. Each lands at `bufs[i][offset..]`; returns how many
    /// arrived, with their lengths, sources and GRO strides in `meta`. `Ok(0)` when nothing is
    /// pending.
    // hot path
    pub fn recv_batch(&self, bufs: &mut [Vec<u8>], offset: usize, meta: &mut Vec<Received>) -> io::Result<usize> {
        meta.clear();
        let n = bufs.len().min(BATCH);
        let mut addrs: [MaybeUninit<RawSockAddr>; BATCH] = [MaybeUninit::uninit(); BATCH];
        let mut iovs: [libc::iovec; BATCH] = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; BATCH];
        // u64 storage keeps each cmsg header aligned; room for one int cmsg (UDP_GRO).
        let mut control = [[0u64; 4]; BATCH];
        // SAFETY: mmsghdr is plain data; zeroed is a valid initial state.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..n {
            let b = &mut bufs[i][offset..];
            iovs[i] = libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() };
            msgs[i].msg_hdr.msg_name = addrs[i].as_mut_ptr().cast();
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<RawSockAddr>() as libc::socklen_t;
            msgs[i].msg_hdr.msg_iov = &mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            if self.gro {
                msgs[i].msg_hdr.msg_control = control[i].as_mut_ptr().cast();
                msgs[i].msg_hdr.msg_controllen = std::mem::size_of_val(&control[i]) as _;
            }
        }
        // SAFETY: every mmsghdr points at live iovecs, address and control storage for the call.
        let rc = unsafe { libc::recvmmsg(self.rx.as_raw_fd(), msgs.as_mut_ptr(), n as u32, libc::MSG_DONTWAIT, std::ptr::null_mut()) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock { Ok(0) } else { Err(e) };
        }
        for i in 0..rc as usize {
            // SAFETY: the kernel filled a sockaddr_in or sockaddr_in6 (the socket's family) for
            // each received message; the union holds either.
            let from = unsafe { addrs[i].assume_init() }.get();
            let len = msgs[i].msg_len as usize;
            // A datagram longer than the buffer is truncated by the kernel: report it as such.
            let truncated = msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let stride = if self.gro { gro_stride(&msgs[i].msg_hdr) } else { 0 };
            meta.push(Received { len: if truncated { usize::MAX } else { len }, from, stride });
        }
        Ok(rc as usize)
    }

    /// Send each `(dest, payload)` to `dest:peer_port` from the source socket picked by `flow`.
    /// Returns the number sent; failures are reported per datagram through `on_error`.
    pub fn send_batch(&self, flow: u32, batch: &[(IpAddr, &[u8])], mut on_error: impl FnMut(io::Error)) -> usize {
        let sock = &self.tx[flow as usize % self.tx.len()];
        let mut sent = 0;
        for chunk in batch.chunks(BATCH) {
            let mut addrs: [RawSockAddr; BATCH] = [RawSockAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0); BATCH];
            let mut iovs: [libc::iovec; BATCH] = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; BATCH];
            // SAFETY: mmsghdr is plain data; zeroed is a valid initial state.
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for (i, (dest, payload)) in chunk.iter().enumerate() {
                addrs[i] = RawSockAddr::new(*dest, self.peer_port);
                iovs[i] = libc::iovec { iov_base: payload.as_ptr() as *mut _, iov_len: payload.len() };
                msgs[i].msg_hdr.msg_namelen = addrs[i].name_len();
                msgs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut RawSockAddr).cast();
                msgs[i].msg_hdr.msg_iov = &mut iovs[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
            }
            let mut done = 0;
            while done < chunk.len() {
                // SAFETY: the headers point at live iovecs/addresses; the kernel only reads them.
                let rc = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs[done..].as_mut_ptr(), (chunk.len() - done) as u32, 0) };
                if rc < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    on_error(e);
                    done += 1; // skip the datagram that failed, keep the rest
                } else {
                    done += rc as usize;
                    sent += rc as usize;
                }
            }
        }
        sent
    }
}

/// The datagrams of a receive buffer holding `whole` with the `UDP_GRO` stride `stride` (0: one
/// datagram): consecutive ranges of `stride` bytes, the last one possibly shorter.
// hot path
pub fn gro_datagrams(whole: std::ops::Range<usize>, stride: usize) -> GroDatagrams {
    let stride = if stride == 0 || stride >= whole.len() { whole.len().max(1) } else { stride };
    GroDatagrams { at: whole.start, end: whole.end, stride }
}

/// Iterator of [`gro_datagrams`].
#[derive(Debug, Clone)]
pub struct GroDatagrams {
    at: usize,
    end: usize,
    stride: usize,
}

impl Iterator for GroDatagrams {
    type Item = std::ops::Range<usize>;

    fn next(&mut self) -> Option<Self::Item> {
        (self.at < self.end).then(|| {
            let r = self.at..(self.at + self.stride).min(self.end);
            self.at = r.end;
            r
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.end.saturating_sub(self.at)).div_ceil(self.stride);
        (n, Some(n))
    }
}

impl ExactSizeIterator for GroDatagrams {}

/// The `UDP_GRO` stride of a received message, or 0 without the cmsg.
fn gro_stride(msg: &libc::msghdr) -> usize {
    // SAFETY: the kernel filled msg_control/msg_controllen; the CMSG_* macros walk inside it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == UDP_GRO {
                let mut v = [0u8; 4];
                std::ptr::copy_nonoverlapping(libc::CMSG_DATA(cmsg), v.as_mut_ptr(), 4);
                return usize::try_from(libc::c_int::from_ne_bytes(v)).unwrap_or(0);
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    0
}

/// A socket address of either family as the kernel reads and writes it (`sockaddr_in` or
/// `sockaddr_in6`, both starting with the family), without `sockaddr_storage`'s 128 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub union RawSockAddr {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

impl RawSockAddr {
    /// `ip:port` in the kernel's layout.
    pub fn new(ip: IpAddr, port: u16) -> Self {
        match ip {
            IpAddr::V4(ip) => RawSockAddr {
                v4: libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: port.to_be(),
                    sin_addr: libc::in_addr { s_addr: u32::from(ip).to_be() },
                    sin_zero: [0; 8],
                },
            },
            IpAddr::V6(ip) => RawSockAddr {
                v6: libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: port.to_be(),
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr { s6_addr: ip.octets() },
                    sin6_scope_id: 0,
                },
            },
        }
    }

    /// The length to pass as `msg_namelen`.
    pub fn name_len(&self) -> libc::socklen_t {
        // SAFETY: both variants start with the family field, always initialised by `new` or the kernel.
        let family = unsafe { self.v4.sin_family };
        if family == libc::AF_INET6 as libc::sa_family_t {
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        } else {
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
    }

    /// The address it holds (an unknown family reads as `0.0.0.0:0`, which no peer has).
    pub fn get(&self) -> SocketAddr {
        // SAFETY: the family field is initialised, and it says which variant the rest is.
        unsafe {
            match i32::from(self.v4.sin_family) {
                libc::AF_INET => {
                    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(u32::from_be(self.v4.sin_addr.s_addr)), u16::from_be(self.v4.sin_port)))
                }
                libc::AF_INET6 => {
                    SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(self.v6.sin6_addr.s6_addr), u16::from_be(self.v6.sin6_port), 0, 0))
                }
                _ => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an unprivileged process would try: bind the same address and port with SO_REUSEADDR.
    fn hijack(addr: SocketAddr) -> io::Result<Socket> {
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        s.bind(&addr.into())?;
        Ok(s)
    }

    #[test]
    fn a_second_bind_of_the_vxlan_or_esp_port_fails() {
        for lo in LOOPBACKS {
            second_bind_fails(lo);
        }
    }

    /// Both underlay families.
    const LOOPBACKS: [IpAddr; 2] = [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];

    fn second_bind_fails(lo: IpAddr) {
        let vxlan = UnderlaySockets::bind(lo, 0, 4789).unwrap();
        let addr = vxlan.rx.local_addr().unwrap().as_socket().unwrap();
        let err = hijack(addr).expect_err("the VXLAN port must not be shared");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let port = addr.port();
        drop(vxlan);
        let esp = UnderlaySockets::bind_fixed_source(lo, port).unwrap();
        let err = hijack(SocketAddr::new(lo, port)).expect_err("the ESP port must not be shared");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(esp);
    }

    #[test]
    fn batch_round_trip_on_loopback() {
        for lo in LOOPBACKS {
            batch_round_trip(lo);
        }
    }

    fn batch_round_trip(lo: IpAddr) {
        let a = UnderlaySockets::bind(lo, 0, 0).unwrap();
        let port = a.rx.local_addr().unwrap().as_socket().unwrap().port();
        let b = UnderlaySockets::bind(lo, 0, port).unwrap();
        let payloads: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 100 + i as usize]).collect();
        let batch: Vec<(IpAddr, &[u8])> = payloads.iter().map(|p| (lo, &p[..])).collect();
        assert_eq!(b.send_batch(3, &batch, |e| panic!("{e}")), 10);
        let mut bufs = vec![vec![0u8; 2048]; BATCH];
        let mut meta = Vec::new();
        let mut got = 0;
        for _ in 0..100 {
            got += a.recv_batch(&mut bufs[got..], 16, &mut meta).unwrap();
            if got == 10 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(got, 10);
        assert_eq!(&bufs[4][16..16 + 104], &payloads[4][..]);
        let src_ports = b.source_ports();
        assert_eq!(src_ports.len(), SOURCE_PORTS);
        assert!(src_ports.contains(&meta[0].from.port()), "sent from a pool socket");
        assert_eq!(meta[0].from.ip(), lo, "the sender's address, of the underlay's family");
        assert_eq!(meta[0].stride, 0);
    }

    #[test]
    fn gro_buffers_split_at_the_stride() {
        let split = |r: std::ops::Range<usize>, s| gro_datagrams(r, s).collect::<Vec<_>>();
        assert_eq!(split(16..16 + 2500, 1000), [16..1016, 1016..2016, 2016..2516]);
        assert_eq!(split(16..1016, 0), [16..1016, 0..0][..1], "no stride: one datagram");
        assert_eq!(split(16..1016, 4000), [16..1016, 0..0][..1], "stride beyond the data: one datagram");
        assert_eq!(split(0..3000, 1000).len(), 3);
        assert_eq!(gro_datagrams(0..3001, 1000).len(), 4);
        assert_eq!(split(5..5, 0), Vec::<std::ops::Range<usize>>::new());
    }

    #[test]
    fn gso_send_arrives_as_one_gro_datagram_or_as_separate_ones() {
        for lo in LOOPBACKS {
            gso_round_trip(lo);
        }
    }

    fn gso_round_trip(lo: IpAddr) {
        let mut a = UnderlaySockets::bind(lo, 0, 0).unwrap();
        let port = a.rx.local_addr().unwrap().as_socket().unwrap().port();
        let b = UnderlaySockets::bind(lo, 0, port).unwrap();
        assert!(b.enable_gso(), "this kernel has UDP_SEGMENT");
        assert!(a.enable_gro(), "this kernel has UDP_GRO");
        let segs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; if i == 4 { 300 } else { 1000 }]).collect();
        let refs: Vec<&[u8]> = segs.iter().map(|s| &s[..]).collect();
        b.send_gso(1, lo, &refs).unwrap();
        let mut bufs = vec![vec![0u8; GRO_BUFFER + 16]; 4];
        let mut meta = Vec::new();
        let mut got = Vec::new();
        for _ in 0..100 {
            a.recv_batch(&mut bufs, 16, &mut meta).unwrap();
            for (i, m) in meta.iter().enumerate() {
                let data = &bufs[i][16..16 + m.len];
                let stride = if m.stride == 0 { m.len } else { m.stride };
                got.extend(data.chunks(stride).map(<[u8]>::to_vec));
            }
            if got.len() >= 5 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(got, segs, "five datagrams, split at the segment size ({lo})");
    }
}
