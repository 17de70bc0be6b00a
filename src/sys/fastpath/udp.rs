//! Underlay UDP sockets with batched I/O (`recvmmsg` / `sendmmsg`).
//!
//! One socket bound to `underlay:4789` receives VXLAN from any source port. Sending goes through a
//! small pool of sockets bound to the same address on kernel-chosen ephemeral ports: the switch's
//! inner-flow hash picks the socket, so the outer source port follows the inner flow the way
//! Linux vxlan does it, and ECMP underlays spread flows while each flow keeps one path.
//! All sockets set `IP_PMTUDISC_PROBE` (DF on, never fragmented, PMTU cache ignored): the switch
//! already guarantees that an encapsulated frame fits the configured underlay MTU.
#![allow(unsafe_code)] // raw syscalls the safe crates do not wrap; each block has a SAFETY note

use std::cell::Cell;
use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
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
/// Most UDP payload bytes in one send over IPv4 (65535 - 20 - 8): beyond, `EMSGSIZE`.
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
    pub from: SocketAddrV4,
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

fn udp_socket(addr: SocketAddrV4, what: &'static str) -> Result<Socket, SysError> {
    let ctx = |op: &'static str| move |source| SysError::Socket { op, what, addr, source };
    let s = Socket::new(Domain::IPV4, Type::DGRAM.nonblocking().cloexec(), Some(Protocol::UDP)).map_err(ctx("socket"))?;
    // No SO_REUSEADDR (nor SO_REUSEPORT): with it, any local user could bind the same
    // address and port with the same option and receive the overlay's traffic.
    if s.set_recv_buffer_size(SOCKET_BUFFER).is_err() {
        tracing::debug!("could not raise SO_RCVBUF");
    }
    let _ = force_buffers(&s);
    set_pmtudisc_probe(&s).map_err(ctx("IP_MTU_DISCOVER"))?;
    s.bind(&SocketAddr::V4(addr).into()).map_err(ctx("bind"))?;
    Ok(s)
}

fn force_buffers(s: &Socket) -> io::Result<()> {
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        set_int_opt(s, libc::SOL_SOCKET, opt, SOCKET_BUFFER as libc::c_int)?;
    }
    Ok(())
}

fn set_pmtudisc_probe(s: &Socket) -> io::Result<()> {
    set_int_opt(s, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_PROBE)
}

impl UnderlaySockets {
    /// Bind the receive socket to `local:port` and the source pool to `local:0`.
    pub fn bind(local: Ipv4Addr, port: u16, peer_port: u16) -> Result<Self, SysError> {
        let rx = udp_socket(SocketAddrV4::new(local, port), "VXLAN receive socket")?;
        let tx = (0..SOURCE_PORTS).map(|_| udp_socket(SocketAddrV4::new(local, 0), "VXLAN source socket")).collect::<Result<_, _>>()?;
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
    pub fn send_gso(&self, flow: u32, dest: Ipv4Addr, segments: &[&[u8]]) -> io::Result<()> {
        debug_assert!(!segments.is_empty() && segments.len() <= GSO_MAX_SEGMENTS);
        let sock = &self.tx[flow as usize % self.tx.len()];
        let size = segments[0].len() as u16;
        let mut iovs: [libc::iovec; GSO_MAX_SEGMENTS] = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; GSO_MAX_SEGMENTS];
        for (iov, seg) in iovs.iter_mut().zip(segments) {
            *iov = libc::iovec { iov_base: seg.as_ptr() as *mut _, iov_len: seg.len() };
        }
        let mut addr = sockaddr_in(dest, self.peer_port);
        // u64 storage keeps the cmsg header aligned.
        let mut control = [0u64; 4];
        // SAFETY: msghdr is plain data; zeroed is a valid initial state.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut addr as *mut libc::sockaddr_in).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
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
    pub fn bind_fixed_source(local: Ipv4Addr, port: u16) -> Result<Self, SysError> {
        let rx = udp_socket(SocketAddrV4::new(local, port), "ESP-in-UDP socket")?;
        let tx = vec![rx.try_clone().map_err(|source| SysError::Socket {
            op: "dup",
            what: "ESP-in-UDP socket",
            addr: SocketAddrV4::new(local, port),
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
        self.tx.iter().filter_map(|s| s.local_addr().ok()?.as_socket_ipv4().map(|a| a.port())).collect()
    }

    /// Receive up to `bufs.len()` datagrams. Each lands at `bufs[i][offset..]`; returns how many
    /// arrived, with their lengths, sources and GRO strides in `meta`. `Ok(0)` when nothing is
    /// pending.
    // hot path
    pub fn recv_batch(&self, bufs: &mut [Vec<u8>], offset: usize, meta: &mut Vec<Received>) -> io::Result<usize> {
        meta.clear();
        let n = bufs.len().min(BATCH);
        let mut addrs: [MaybeUninit<libc::sockaddr_in>; BATCH] = [MaybeUninit::uninit(); BATCH];
        let mut iovs: [libc::iovec; BATCH] = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; BATCH];
        // u64 storage keeps each cmsg header aligned; room for one int cmsg (UDP_GRO).
        let mut control = [[0u64; 4]; BATCH];
        // SAFETY: mmsghdr is plain data; zeroed is a valid initial state.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..n {
            let b = &mut bufs[i][offset..];
            iovs[i] = libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() };
            msgs[i].msg_hdr.msg_name = addrs[i].as_mut_ptr().cast();
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
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
            // SAFETY: the kernel filled a sockaddr_in for each received message on an AF_INET socket.
            let sa = unsafe { addrs[i].assume_init() };
            let from = SocketAddrV4::new(Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)), u16::from_be(sa.sin_port));
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
    pub fn send_batch(&self, flow: u32, batch: &[(Ipv4Addr, &[u8])], mut on_error: impl FnMut(io::Error)) -> usize {
        let sock = &self.tx[flow as usize % self.tx.len()];
        let mut sent = 0;
        for chunk in batch.chunks(BATCH) {
            let mut addrs: [libc::sockaddr_in; BATCH] = [sockaddr_in(Ipv4Addr::UNSPECIFIED, 0); BATCH];
            let mut iovs: [libc::iovec; BATCH] = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; BATCH];
            // SAFETY: mmsghdr is plain data; zeroed is a valid initial state.
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for (i, (dest, payload)) in chunk.iter().enumerate() {
                addrs[i] = sockaddr_in(*dest, self.peer_port);
                iovs[i] = libc::iovec { iov_base: payload.as_ptr() as *mut _, iov_len: payload.len() };
                msgs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_in).cast();
                msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
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

fn sockaddr_in(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(ip).to_be() },
        sin_zero: [0; 8],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an unprivileged process would try: bind the same address and port with SO_REUSEADDR.
    fn hijack(addr: SocketAddrV4) -> io::Result<Socket> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        s.bind(&SocketAddr::V4(addr).into())?;
        Ok(s)
    }

    #[test]
    fn a_second_bind_of_the_vxlan_or_esp_port_fails() {
        let vxlan = UnderlaySockets::bind(Ipv4Addr::LOCALHOST, 0, 4789).unwrap();
        let addr = vxlan.rx.local_addr().unwrap().as_socket_ipv4().unwrap();
        let err = hijack(addr).expect_err("the VXLAN port must not be shared");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let port = addr.port();
        drop(vxlan);
        let esp = UnderlaySockets::bind_fixed_source(Ipv4Addr::LOCALHOST, port).unwrap();
        let err = hijack(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).expect_err("the ESP port must not be shared");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(esp);
    }

    #[test]
    fn batch_round_trip_on_loopback() {
        let a = UnderlaySockets::bind(Ipv4Addr::LOCALHOST, 0, 0).unwrap();
        let port = a.rx.local_addr().unwrap().as_socket_ipv4().unwrap().port();
        let b = UnderlaySockets::bind(Ipv4Addr::LOCALHOST, 0, port).unwrap();
        let payloads: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 100 + i as usize]).collect();
        let batch: Vec<(Ipv4Addr, &[u8])> = payloads.iter().map(|p| (Ipv4Addr::LOCALHOST, &p[..])).collect();
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
        let mut a = UnderlaySockets::bind(Ipv4Addr::LOCALHOST, 0, 0).unwrap();
        let port = a.rx.local_addr().unwrap().as_socket_ipv4().unwrap().port();
        let b = UnderlaySockets::bind(Ipv4Addr::LOCALHOST, 0, port).unwrap();
        assert!(b.enable_gso(), "this kernel has UDP_SEGMENT");
        assert!(a.enable_gro(), "this kernel has UDP_GRO");
        let segs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; if i == 4 { 300 } else { 1000 }]).collect();
        let refs: Vec<&[u8]> = segs.iter().map(|s| &s[..]).collect();
        b.send_gso(1, Ipv4Addr::LOCALHOST, &refs).unwrap();
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
        assert_eq!(got, segs, "five datagrams, split at the segment size");
    }
}
