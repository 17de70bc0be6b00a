//! TAP-side offload on write: coalescing consecutive TCP segments that arrived from the underlay
//! into one super-frame, written to the TAP with a single `writev` and a virtio header saying
//! `GSO_TCPV4/6` + `NEEDS_CSUM`, so the container's stack takes one 64 KB frame instead of 45.
//!
//! The rules are those of the kernel's TCP GRO (`tcp_gro_receive`, mirrored by wireguard-go's
//! `tcpPacketsCanCoalesce`), plus the Ethernet header because this is a TAP:
//! - untagged IPv4 without options and not fragmented, or IPv6 without extension headers;
//! - same MACs, addresses, ports, ACK number, TCP header length and options; same TOS/TTL (IPv4)
//!   or traffic class/flow label/hop limit (IPv6);
//! - flags exactly ACK or ACK|PSH, a payload, and the next expected sequence number;
//! - no segment larger than the first one; a shorter segment or PSH ends the group;
//! - at most [`MAX_SEGMENTS`] segments and 64 KB per group.
//!
//! Anything else is written alone with a zeroed virtio header, after the pending group, so the
//! order of frames on the TAP is the order they arrived in.
//!
//! Checksums: a coalesced frame is handed to the kernel as CHECKSUM_PARTIAL, which the receiving
//! stack treats as already verified. The outer UDP checksum does not protect us here: peers may
//! send VXLAN with a zero UDP checksum (kernel vxlan with `noudpcsum`, several CNIs), and a UDP
//! socket cannot tell. So the TCP/UDP checksum of every frame bound for an offload TAP is verified
//! before anything else; a frame that fails is counted and written alone with a zeroed header, so
//! the container's kernel drops it (and counts it) exactly as it would without offload.
//!
//! Frames that arrived in ESP skip that check ([`Integrity::Authenticated`]): the AEAD tag has
//! already proved every byte of the inner frame is what the peer sealed, and the peer sealed a
//! frame whose checksum it had computed (vxswitch finishes every checksum before it seals, a
//! kernel ESP stack does too). Checking again cannot find corruption, only spend a pass over the
//! payload (3 % of all CPU samples at 6 Gbit/s in a whole-machine profile); the kernel's WireGuard
//! marks decrypted packets `CHECKSUM_UNNECESSARY` for the same reason.
//!
//! One exception: a frame whose checksum field holds exactly the pseudo-header sum was left
//! CHECKSUM_PARTIAL by a sender on the same machine (kernel vxlan in another namespace, over veth,
//! which never finishes checksums; the kernel's own vxlan receiver trusts such frames). Its
//! checksum is finished here instead of having the frame dropped. A real wire never carries that
//! value by accident except with probability 2^-16 per *valid* frame, which then verifies anyway.
//!
//! Frames stay where `recvmmsg` put them: the group remembers ranges of the receive buffers, the
//! first frame's headers are patched in place, and `writev` gathers the rest without a copy.

use std::io::IoSlice;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use super::virtio::{VirtioNetHdr, F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, TCP_CSUM_OFFSET, VNET_HDR_LEN};
use crate::dataplane::PortId;
use crate::wire::checksum;
use crate::wire::ethernet::{EtherType, EthernetFrame, HEADER_LEN as ETH};
use crate::wire::ipv4::{self, protocol, Ipv4Packet};
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::tcp::{self, flags, TcpPacket};
use crate::wire::udp::{self, UdpPacket};

/// Most segments coalesced into one write.
pub const MAX_SEGMENTS: usize = 64;
/// Largest IP packet a coalesced frame may carry.
const MAX_IP_LEN: usize = 65535;
/// What already vouches for the bytes of a frame offered to the coalescer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// Nothing (VXLAN: the outer UDP checksum may be zero): the transport checksum is verified.
    Unverified,
    /// An AEAD tag (ESP): the transport checksum is trusted as sealed.
    Authenticated,
}

/// A zeroed virtio header: an ordinary frame, checksum to be verified by the kernel.
pub const ZERO_HDR: [u8; VNET_HDR_LEN] = [0; VNET_HDR_LEN];

/// Counters of the coalescer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GroStats {
    /// Writes that carried two or more coalesced segments.
    pub coalesced_writes: u64,
    /// Segments carried by those writes.
    pub coalesced_segments: u64,
    /// TCP/UDP frames whose checksum was wrong (written alone for the kernel to drop).
    pub csum_failures: u64,
    /// Frames whose checksum a same-host sender left partial, finished here.
    pub csum_partial_finished: u64,
}

/// Where a frame lies: `bufs[buf][range]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Loc {
    buf: usize,
    range: Range<usize>,
}

#[derive(Debug)]
struct Group {
    port: PortId,
    first: Loc,
    v6: bool,
    l4: usize,
    hlen: usize,
    gso_size: usize,
    next_seq: u32,
    payload: usize,
    closed: bool,
    psh: bool,
    window: u16,
}

/// Coalesces frames on their way to offload TAPs (see the module doc).
#[derive(Debug, Default)]
pub struct Coalescer {
    group: Option<Group>,
    /// Payload ranges of the group's segments after the first.
    more: Vec<Loc>,
    /// Counters.
    pub stats: GroStats,
}

/// What [`inspect`] found in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tcp {
    v6: bool,
    l4: usize,
    hlen: usize,
    seq: u32,
    flags: u8,
    window: u16,
    payload: usize,
}

/// A TCP segment that may be coalesced, or `None`.
// hot path
fn inspect(frame: &[u8]) -> Option<Tcp> {
    if frame.len() < ETH + 40 {
        return None;
    }
    // Untagged only: a tagged frame shows 0x8100 here and is written alone.
    let (v6, l4) = match EthernetFrame::new_unchecked(frame).raw_ethertype() {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_unchecked(&frame[ETH..]);
            let options = ip.version() != 4 || ip.header_len() != ipv4::HEADER_LEN;
            if options
                || usize::from(ip.total_len()) != frame.len() - ETH
                || ip.is_fragment()
                || ip.protocol() != protocol::TCP
                || !ip.verify_checksum()
            {
                return None;
            }
            (false, ETH + ipv4::HEADER_LEN)
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_unchecked(&frame[ETH..]);
            if ip.version() != 6
                || ip.next_header() != protocol::TCP
                || usize::from(ip.payload_len()) + ipv6::HEADER_LEN != frame.len() - ETH
                || frame.len() < ETH + 60
            {
                return None;
            }
            (true, ETH + ipv6::HEADER_LEN)
        }
        _ => return None,
    };
    let tcp = TcpPacket::new_checked(&frame[l4..]).ok()?;
    let bits = tcp.flags();
    if tcp.reserved_bits() != 0 || (bits != flags::ACK && bits != flags::ACK | flags::PSH) || tcp.payload().is_empty() {
        return None;
    }
    let (seq, window, payload) = (tcp.seq_number(), tcp.window_len(), tcp.payload().len());
    Some(Tcp { v6, l4, hlen: l4 + tcp.header_len(), seq, flags: bits, window, payload })
}

/// The addresses of a transport checksum's pseudo-header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pseudo {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

impl Pseudo {
    /// The pseudo-header partial sum for `proto` and a transport length of `len`.
    fn sum(&self, proto: u8, len: usize) -> u16 {
        match self {
            Pseudo::V4(s, d) => checksum::pseudo_header_v4(*s, *d, proto, len as u32),
            Pseudo::V6(s, d) => checksum::pseudo_header_v6(s, d, proto, len as u32),
        }
    }
}

/// The state of a frame's transport checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Csum {
    /// Not untagged IPv4/IPv6 TCP/UDP (or a fragment, or no UDP checksum): nothing to check.
    NotChecked,
    /// Verified.
    Valid,
    /// Left partial by a same-host sender: finish the `proto` checksum over `l4..end`.
    Partial { l4: usize, end: usize, proto: u8 },
    /// Wrong.
    Bad,
}

/// Verify the TCP/UDP checksum of `frame`.
// hot path
fn check_transport(frame: &[u8]) -> Csum {
    if frame.len() < ETH + 20 {
        return Csum::NotChecked;
    }
    let (proto, l4, end, pseudo) = match EthernetFrame::new_unchecked(frame).raw_ethertype() {
        EtherType::IPV4 => match Ipv4Packet::new_checked(&frame[ETH..]) {
            Ok(ip) if !ip.is_fragment() => {
                (ip.protocol(), ETH + ip.header_len(), ETH + usize::from(ip.total_len()), Pseudo::V4(ip.src_addr(), ip.dst_addr()))
            }
            _ => return Csum::NotChecked,
        },
        EtherType::IPV6 => match Ipv6Packet::new_checked(&frame[ETH..]) {
            Ok(ip) => (
                ip.next_header(),
                ETH + ipv6::HEADER_LEN,
                ETH + ipv6::HEADER_LEN + usize::from(ip.payload_len()),
                Pseudo::V6(ip.src_addr(), ip.dst_addr()),
            ),
            Err(_) => return Csum::NotChecked,
        },
        _ => return Csum::NotChecked,
    };
    let segment = &frame[l4..end];
    let stored = match proto {
        protocol::TCP if segment.len() >= tcp::HEADER_LEN => TcpPacket::new_unchecked(segment).checksum(),
        protocol::UDP if segment.len() >= udp::HEADER_LEN => UdpPacket::new_unchecked(segment).checksum(),
        _ => return Csum::NotChecked,
    };
    if proto == protocol::UDP && stored == 0 && matches!(pseudo, Pseudo::V4(..)) {
        return Csum::NotChecked; // IPv4 UDP without a checksum
    }
    let seed = pseudo.sum(proto, segment.len());
    if checksum::verify(checksum::combine(&[seed, checksum::data(segment)])) {
        Csum::Valid
    } else if stored == seed {
        Csum::Partial { l4, end, proto }
    } else {
        Csum::Bad
    }
}

/// Whether `cand` continues the flow whose first segment is `first`.
// hot path
fn same_flow(first: &[u8], cand: &[u8], t: &Tcp) -> bool {
    let ip_same = if t.v6 {
        let (a, b) = (Ipv6Packet::new_unchecked(&first[ETH..]), Ipv6Packet::new_unchecked(&cand[ETH..]));
        a.traffic_class() == b.traffic_class()
            && a.flow_label() == b.flow_label()
            && a.hop_limit() == b.hop_limit()
            && a.src_addr() == b.src_addr()
            && a.dst_addr() == b.dst_addr()
    } else {
        let (a, b) = (Ipv4Packet::new_unchecked(&first[ETH..]), Ipv4Packet::new_unchecked(&cand[ETH..]));
        a.dscp_ecn() == b.dscp_ecn()
            && a.dont_frag() == b.dont_frag()
            && a.ttl() == b.ttl()
            && a.src_addr() == b.src_addr()
            && a.dst_addr() == b.dst_addr()
    };
    let (ea, eb) = (EthernetFrame::new_unchecked(first), EthernetFrame::new_unchecked(cand));
    let (ta, tb) = (TcpPacket::new_unchecked(&first[t.l4..]), TcpPacket::new_unchecked(&cand[t.l4..]));
    // Both passed `inspect` with the same header length, so the option slices are in range.
    ip_same
        && ea.dst_addr() == eb.dst_addr()
        && ea.src_addr() == eb.src_addr()
        && ta.src_port() == tb.src_port()
        && ta.dst_port() == tb.dst_port()
        && ta.ack_number() == tb.ack_number()
        && ta.header_len() == tb.header_len()
        && ta.options() == tb.options()
}

impl Coalescer {
    /// A coalescer with nothing pending.
    pub fn new() -> Self {
        Coalescer::default()
    }

    /// Offer the frame at `bufs[buf][range]`, bound for the TAP of `port`. It joins the pending
    /// group, or the group is written first and the frame starts a new one or is written alone.
    /// `integrity` says whether its transport checksum still needs verifying.
    /// `write(port, iov)` writes one TAP frame (virtio header first).
    // hot path
    pub fn offer(
        &mut self,
        bufs: &mut [Vec<u8>],
        port: PortId,
        (buf, range): (usize, Range<usize>),
        integrity: Integrity,
        write: &mut dyn FnMut(PortId, &[IoSlice<'_>]),
    ) {
        let csum = match integrity {
            Integrity::Unverified => check_transport(&bufs[buf][range.clone()]),
            Integrity::Authenticated => Csum::NotChecked,
        };
        match csum {
            Csum::Bad => {
                self.stats.csum_failures += 1;
                self.flush(bufs, write);
                write(port, &[IoSlice::new(&ZERO_HDR), IoSlice::new(&bufs[buf][range])]);
                return;
            }
            Csum::Partial { l4, end, proto } => {
                // The field holds the pseudo-header sum: summing over it finishes the checksum.
                let segment = &mut bufs[buf][range.clone()][l4..end];
                if proto == protocol::TCP {
                    TcpPacket::new_unchecked(segment).finish_partial_checksum();
                } else {
                    let c = !checksum::data(segment);
                    UdpPacket::new_unchecked(segment).set_checksum(c);
                }
                self.stats.csum_partial_finished += 1;
            }
            Csum::Valid | Csum::NotChecked => {}
        }
        let frame = &bufs[buf][range.clone()];
        let Some(t) = inspect(frame) else {
            self.flush(bufs, write);
            write(port, &[IoSlice::new(&ZERO_HDR), IoSlice::new(&bufs[buf][range])]);
            return;
        };
        if let Some(g) = self.group.as_mut() {
            let first = &bufs[g.first.buf][g.first.range.clone()];
            let fits = g.port == port
                && !g.closed
                && t.v6 == g.v6
                && t.hlen == g.hlen
                && t.seq == g.next_seq
                && t.payload <= g.gso_size
                && self.more.len() + 1 < MAX_SEGMENTS
                && g.hlen - ETH + g.payload + t.payload <= MAX_IP_LEN
                && same_flow(first, frame, &t);
            if fits {
                g.next_seq = g.next_seq.wrapping_add(t.payload as u32);
                g.payload += t.payload;
                g.closed = t.payload < g.gso_size || t.flags & flags::PSH != 0;
                g.psh = t.flags & flags::PSH != 0;
                g.window = t.window;
                self.more.push(Loc { buf, range: range.start + t.hlen..range.end });
                return;
            }
        }
        self.flush(bufs, write);
        self.group = Some(Group {
            port,
            first: Loc { buf, range },
            v6: t.v6,
            l4: t.l4,
            hlen: t.hlen,
            gso_size: t.payload,
            next_seq: t.seq.wrapping_add(t.payload as u32),
            payload: t.payload,
            closed: t.flags & flags::PSH != 0,
            psh: t.flags & flags::PSH != 0,
            window: t.window,
        });
    }

    /// Write the pending group, if any. Call before the buffers are reused.
    // hot path
    pub fn flush(&mut self, bufs: &mut [Vec<u8>], write: &mut dyn FnMut(PortId, &[IoSlice<'_>])) {
        let Some(g) = self.group.take() else { return };
        if self.more.is_empty() {
            write(g.port, &[IoSlice::new(&ZERO_HDR), IoSlice::new(&bufs[g.first.buf][g.first.range])]);
            return;
        }
        let hdr = {
            let frame = &mut bufs[g.first.buf][g.first.range.clone()];
            patch_first(frame, &g)
        };
        let vhdr = hdr.emit();
        let mut iov = Vec::with_capacity(self.more.len() + 2);
        iov.push(IoSlice::new(&vhdr));
        iov.push(IoSlice::new(&bufs[g.first.buf][g.first.range.clone()]));
        iov.extend(self.more.iter().map(|l| IoSlice::new(&bufs[l.buf][l.range.clone()])));
        write(g.port, &iov);
        self.stats.coalesced_writes += 1;
        self.stats.coalesced_segments += self.more.len() as u64 + 1;
        self.more.clear();
    }
}

/// Turn the first segment's headers into those of the whole group (lengths, PSH, latest window,
/// pseudo-header sum in the TCP checksum field) and return the virtio header.
// hot path
fn patch_first(frame: &mut [u8], g: &Group) -> VirtioNetHdr {
    let tcp_len = g.hlen - g.l4 + g.payload;
    let (ip, tcp) = frame[ETH..].split_at_mut(g.l4 - ETH);
    let seed = if g.v6 {
        let mut ip = Ipv6Packet::new_unchecked(ip);
        ip.set_payload_len(tcp_len as u16);
        checksum::pseudo_header_v6(&ip.src_addr(), &ip.dst_addr(), protocol::TCP, tcp_len as u32)
    } else {
        let mut ip = Ipv4Packet::new_unchecked(ip);
        ip.set_total_len((g.hlen - ETH + g.payload) as u16);
        ip.fill_checksum();
        checksum::pseudo_header_v4(ip.src_addr(), ip.dst_addr(), protocol::TCP, tcp_len as u32)
    };
    let mut tcp = TcpPacket::new_unchecked(tcp);
    if g.psh {
        tcp.set_flags(tcp.flags() | flags::PSH);
    }
    tcp.set_window_len(g.window);
    tcp.set_checksum(seed);
    VirtioNetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: if g.v6 { GSO_TCPV6 } else { GSO_TCPV4 },
        hdr_len: g.hlen as u16,
        gso_size: g.gso_size as u16,
        csum_start: g.l4 as u16,
        csum_offset: TCP_CSUM_OFFSET,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fastpath::gso::TcpSplit;
    use etherparse::PacketBuilder;

    const MSS: usize = 1398;

    fn segment(v6: bool, seq: u32, id: u16, payload: usize, psh: bool, sport: u16) -> Vec<u8> {
        let data: Vec<u8> = (0..payload).map(|i| (seq as usize + i) as u8).collect();
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let ip = if v6 {
            eth.ipv6(
                [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                64,
            )
        } else {
            let mut h = etherparse::Ipv4Header::new(0, 64, etherparse::IpNumber::TCP, [192, 0, 2, 11], [192, 0, 2, 21]).unwrap();
            h.identification = id;
            h.dont_fragment = true;
            eth.ip(etherparse::IpHeaders::Ipv4(h, Default::default()))
        };
        let mut tcp = ip.tcp(sport, 5201, seq, 502).ack(77);
        if psh {
            tcp = tcp.psh();
        }
        let tcp = tcp
            .options(&[
                etherparse::TcpOptionElement::Noop,
                etherparse::TcpOptionElement::Noop,
                etherparse::TcpOptionElement::Timestamp(5, 6),
            ])
            .unwrap();
        let mut out = Vec::new();
        tcp.write(&mut out, &data).unwrap();
        out
    }

    /// The IPv4 addresses of an untagged frame built by [`segment`].
    fn addrs(frame: &[u8]) -> (Ipv4Addr, Ipv4Addr) {
        let ip = Ipv4Packet::new_checked(&frame[ETH..]).unwrap();
        (ip.src_addr(), ip.dst_addr())
    }

    /// Put frames one per buffer (as recvmmsg would) and offer them all; returns the writes.
    fn run(frames: &[Vec<u8>]) -> (Vec<(PortId, Vec<u8>)>, GroStats) {
        run_with(frames, Integrity::Unverified)
    }

    fn run_with(frames: &[Vec<u8>], integrity: Integrity) -> (Vec<(PortId, Vec<u8>)>, GroStats) {
        let mut bufs: Vec<Vec<u8>> = frames.iter().map(|f| [vec![0xee; 30], f.clone()].concat()).collect();
        let mut out = Vec::new();
        let mut c = Coalescer::new();
        let mut w = |port: PortId, iov: &[IoSlice<'_>]| out.push((port, iov.iter().flat_map(|s| s.to_vec()).collect::<Vec<u8>>()));
        for (i, f) in frames.iter().enumerate() {
            c.offer(&mut bufs, 0, (i, 30..30 + f.len()), integrity, &mut w);
        }
        c.flush(&mut bufs, &mut w);
        (out, c.stats)
    }

    fn split_write(write: &[u8]) -> Vec<Vec<u8>> {
        let hdr = VirtioNetHdr::parse(write[..VNET_HDR_LEN].try_into().unwrap());
        let frame = &write[VNET_HDR_LEN..];
        if hdr.gso_type == 0 {
            assert_eq!(hdr, VirtioNetHdr::default());
            return vec![frame.to_vec()];
        }
        assert_eq!(hdr.flags, F_NEEDS_CSUM);
        assert_eq!(hdr.csum_offset, 16);
        let split = TcpSplit::new(frame, &hdr).unwrap();
        (0..split.count())
            .map(|i| {
                let mut o = vec![0; 2048];
                let n = split.write_segment(frame, i, &mut o);
                o.truncate(n);
                o
            })
            .collect()
    }

    fn check_round_trip(v6: bool) {
        let mut frames: Vec<Vec<u8>> = (0..10).map(|i| segment(v6, 1000 + (i * MSS) as u32, 7 + i as u16, MSS, false, 40000)).collect();
        frames.push(segment(v6, 1000 + (10 * MSS) as u32, 17, 500, true, 40000));
        let (writes, stats) = run(&frames);
        assert_eq!(writes.len(), 1, "one write for the whole run");
        assert_eq!(stats, GroStats { coalesced_writes: 1, coalesced_segments: 11, ..GroStats::default() });
        let hdr = VirtioNetHdr::parse(writes[0].1[..VNET_HDR_LEN].try_into().unwrap());
        assert_eq!(hdr.gso_type, if v6 { GSO_TCPV6 } else { GSO_TCPV4 });
        assert_eq!(usize::from(hdr.gso_size), MSS);
        assert_eq!(usize::from(hdr.csum_start), if v6 { 54 } else { 34 });
        assert_eq!(hdr.hdr_len, hdr.csum_start + 32);
        // Segmenting the coalesced frame again gives back the original segments byte for byte.
        assert_eq!(split_write(&writes[0].1), frames);
    }

    #[test]
    fn coalesces_ipv4_run_and_splits_back_identically() {
        check_round_trip(false);
    }

    #[test]
    fn coalesces_ipv6_run_and_splits_back_identically() {
        check_round_trip(true);
    }

    #[test]
    fn gap_other_flow_and_other_traffic_break_groups_in_order() {
        let s = |seq: usize, sport| segment(false, seq as u32, (seq / MSS) as u16, MSS, false, sport);
        let arp = {
            let mut f = vec![0xff; 6];
            f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
            f.extend_from_slice(&[0; 28]);
            f
        };
        let frames = vec![s(0, 1), s(MSS, 1), s(3 * MSS, 1), s(4 * MSS, 1), s(0, 2), arp.clone(), s(5 * MSS, 1)];
        let (writes, stats) = run(&frames);
        let lens: Vec<usize> = writes.iter().map(|(_, w)| split_write(w).len()).collect();
        assert_eq!(lens, vec![2, 2, 1, 1, 1]);
        let all: Vec<Vec<u8>> = writes.iter().flat_map(|(_, w)| split_write(w)).collect();
        assert_eq!(all, frames, "every frame written once, in arrival order");
        assert_eq!(stats.coalesced_writes, 2);
    }

    #[test]
    fn bad_checksum_is_counted_and_written_alone() {
        let mut frames: Vec<Vec<u8>> = (0..4).map(|i| segment(false, (i * MSS) as u32, i as u16, MSS, false, 9)).collect();
        let last = frames[2].len() - 1;
        frames[2][last] ^= 0x55;
        let (writes, stats) = run(&frames);
        assert_eq!(stats.csum_failures, 1);
        assert_eq!(writes.len(), 3);
        assert_eq!(writes[1].1[VNET_HDR_LEN..], frames[2][..], "the corrupted frame goes out alone, unchanged");
        assert_eq!(writes[1].1[..VNET_HDR_LEN], ZERO_HDR);
    }

    #[test]
    fn authenticated_frames_are_coalesced_without_a_checksum_pass() {
        let frames: Vec<Vec<u8>> = (0..4).map(|i| segment(false, (i * MSS) as u32, i as u16, MSS, false, 9)).collect();
        // A frame whose checksum is wrong is the proof that nothing summed the payload: an
        // authenticated one is coalesced with the rest (its field is rewritten to the
        // pseudo-header sum like every coalesced frame's), an unverified one goes out alone.
        let mut corrupt = frames.clone();
        let last = corrupt[2].len() - 1;
        corrupt[2][last] ^= 0x55;
        let (writes, stats) = run_with(&corrupt, Integrity::Authenticated);
        assert_eq!((stats.csum_failures, stats.coalesced_writes, stats.coalesced_segments), (0, 1, 4), "{writes:?}");
        assert_eq!(writes.len(), 1);
        let (writes, stats) = run_with(&corrupt, Integrity::Unverified);
        assert_eq!(stats.csum_failures, 1);
        assert_eq!(writes.len(), 3);
        // Good frames come out the same either way.
        assert_eq!(run_with(&frames, Integrity::Authenticated).0, run(&frames).0);
    }

    #[test]
    fn checksums_left_partial_by_a_same_host_sender_are_finished() {
        let mut frames: Vec<Vec<u8>> = (0..3).map(|i| segment(false, (i * MSS) as u32, i as u16, MSS, false, 9)).collect();
        let syn = {
            let mut f = segment(false, 5, 0, 0, false, 10);
            let (src, dst) = addrs(&f);
            let mut tcp = TcpPacket::new_unchecked(&mut f[34..]);
            tcp.set_flags(flags::SYN);
            tcp.fill_checksum_v4(src, dst);
            assert_eq!(check_transport(&f), Csum::Valid);
            f
        };
        frames.push(syn);
        let originals = frames.clone();
        // Replace each full checksum by the pseudo-header sum, as kernel vxlan over veth leaves it.
        for f in &mut frames {
            let (src, dst) = addrs(f);
            let mut tcp = TcpPacket::new_unchecked(&mut f[34..]);
            tcp.set_checksum(tcp.pseudo_v4(src, dst));
        }
        let (writes, stats) = run(&frames);
        assert_eq!(stats.csum_partial_finished, 4);
        assert_eq!(stats.csum_failures, 0);
        assert_eq!(stats.coalesced_segments, 3);
        // The SYN's checksum is finished to the value its sender would have computed.
        assert_eq!(writes.last().unwrap().1[VNET_HDR_LEN..], originals[3][..]);
        let all: Vec<Vec<u8>> = writes.iter().flat_map(|(_, w)| split_write(w)).collect();
        assert_eq!(all, originals);
    }

    #[test]
    fn short_segment_and_psh_close_the_group() {
        let frames = vec![
            segment(false, 0, 1, MSS, false, 9),
            segment(false, MSS as u32, 2, 100, false, 9),
            segment(false, MSS as u32 + 100, 3, 100, false, 9),
            segment(false, MSS as u32 + 200, 4, 100, true, 9),
            segment(false, MSS as u32 + 300, 5, 100, false, 9),
        ];
        let (writes, _) = run(&frames);
        let lens: Vec<usize> = writes.iter().map(|(_, w)| split_write(w).len()).collect();
        assert_eq!(lens, vec![2, 2, 1]);
    }

    #[test]
    fn garbage_never_panics() {
        let base = segment(false, 0, 1, 200, false, 9);
        let mut frames = Vec::new();
        for len in 0..base.len() {
            frames.push(base[..len].to_vec());
        }
        for i in 12..80 {
            let mut f = base.clone();
            f[i] = 0xff;
            frames.push(f);
        }
        let (writes, _) = run(&frames);
        assert_eq!(writes.len(), frames.len());
    }
}
