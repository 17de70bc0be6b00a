//! TAP-side offload on read: finishing partial checksums and splitting TCP super-frames (TSO)
//! into MSS-sized Ethernet frames, in userspace, before the switch sees them.
//!
//! A TAP with `TUN_F_TSO4|TUN_F_TSO6` receives whatever the bridge forwards unsegmented: the
//! container's TCP stack builds frames of up to 64 KB and the virtio header says `GSO_TCPV4/6`
//! with the MSS in `gso_size`. Each segment gets a copy of the Ethernet/IP/TCP headers, patched as
//! the kernel's `tcp_gso_segment` would: IPv4 total length, identification `+i` and header
//! checksum (IPv6: payload length); TCP sequence number `+i*mss`; FIN and PSH only on the last
//! segment, CWR only on the first; and a full TCP checksum, so that any receiver (a kernel-vxlan
//! host, a middlebox, a container without offload) can verify it.
//!
//! Unlike tun-rs' helpers (written for TUN, where the frame starts with the IP header) everything
//! here is Ethernet-relative: the IP header starts at 14, or 18 behind one 802.1Q tag, and
//! `csum_start` from the kernel already counts the Ethernet header. `hdr_len` is recomputed as
//! `csum_start + doff*4`: the kernel's value is only a hint (wireguard-go: "don't trust hdrLen").
//!
//! Each segment is written contiguously into a caller buffer (one copy of the payload), so the
//! switch core gets an ordinary frame with headroom and handles it exactly as one read from a TAP
//! without offload.

use super::virtio::{VirtioNetHdr, F_NEEDS_CSUM, GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, TCP_CSUM_OFFSET};
use crate::wire::checksum;
use crate::wire::ethernet::{self, EtherType, EthernetFrame};
use crate::wire::ipv4::{self, protocol, Ipv4Packet};
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::tcp::{flags, TcpPacket};

/// Why a frame read with a virtio header cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoError {
    /// Header and frame disagree (offsets outside the frame, wrong protocol, zero MSS...).
    Malformed(&'static str),
    /// A GSO type this driver never asked the kernel for (UDP, ECN).
    Unsupported(u8),
}

/// What a frame read from an offload TAP is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapFrame {
    /// An ordinary frame (its checksum finished if it was partial).
    Plain,
    /// A TCP super-frame to split.
    Split(TcpSplit),
}

/// Interpret `frame` read with `hdr`: finish a partial checksum in place, or plan a TCP split.
// hot path
pub fn classify(frame: &mut [u8], hdr: &VirtioNetHdr) -> Result<TapFrame, GsoError> {
    match hdr.gso_type {
        GSO_NONE => {
            if hdr.flags & F_NEEDS_CSUM != 0 {
                finish_checksum(frame, hdr)?;
            }
            Ok(TapFrame::Plain)
        }
        GSO_TCPV4 | GSO_TCPV6 => TcpSplit::new(frame, hdr).map(TapFrame::Split),
        t => Err(GsoError::Unsupported(t)),
    }
}

/// Complete the checksum the kernel left partial: the field at `csum_start + csum_offset` holds
/// the pseudo-header sum; summing everything from `csum_start` on (field included) and
/// complementing gives the final value. The protocol (TCP, UDP...) does not matter here.
// hot path
pub fn finish_checksum(frame: &mut [u8], hdr: &VirtioNetHdr) -> Result<(), GsoError> {
    let start = usize::from(hdr.csum_start);
    let field = start + usize::from(hdr.csum_offset);
    if field + 2 > frame.len() || start < ethernet::HEADER_LEN {
        return Err(GsoError::Malformed("checksum offsets outside the frame"));
    }
    let c = !checksum::data(&frame[start..]);
    frame[field..field + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// A validated plan for splitting one TCP super-frame (offsets are Ethernet-relative).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSplit {
    l3: usize,
    l4: usize,
    hlen: usize,
    mss: usize,
    v6: bool,
    payload: usize,
    count: usize,
}

impl TcpSplit {
    /// Check `frame` against `hdr` and plan the split.
    pub fn new(frame: &[u8], hdr: &VirtioNetHdr) -> Result<Self, GsoError> {
        if hdr.gso_type & GSO_ECN != 0 {
            return Err(GsoError::Unsupported(hdr.gso_type));
        }
        let v6 = hdr.gso_type == GSO_TCPV6;
        let eth = EthernetFrame::new_checked(frame).map_err(|_| GsoError::Malformed("shorter than an Ethernet header"))?;
        let (l3, ethertype) = (eth.header_len(), eth.ethertype());
        let l4 = usize::from(hdr.csum_start);
        if hdr.csum_offset != TCP_CSUM_OFFSET {
            return Err(GsoError::Malformed("TCP checksum offset is not 16"));
        }
        if l4 + 20 > frame.len() {
            return Err(GsoError::Malformed("TCP header outside the frame"));
        }
        // From here on frame.len() >= 20 > l3, so the IP views below have their first byte.
        if v6 {
            let ok = ethertype == EtherType::IPV6 && l4 == l3 + ipv6::HEADER_LEN && {
                let ip = Ipv6Packet::new_unchecked(&frame[l3..l4]);
                ip.version() == 6 && ip.next_header() == protocol::TCP
            };
            if !ok {
                return Err(GsoError::Malformed("not IPv6/TCP without extension headers"));
            }
        } else {
            let ok = ethertype == EtherType::IPV4 && {
                let ip = Ipv4Packet::new_unchecked(&frame[l3..]);
                let ihl = ip.header_len();
                ihl >= ipv4::HEADER_LEN && l4 == l3 + ihl && ip.version() == 4 && ip.protocol() == protocol::TCP
            };
            if !ok {
                return Err(GsoError::Malformed("not IPv4/TCP"));
            }
        }
        let tcp = TcpPacket::new_checked(&frame[l4..]).map_err(|_| GsoError::Malformed("TCP data offset outside the frame"))?;
        let hlen = l4 + tcp.header_len();
        let mss = usize::from(hdr.gso_size);
        if mss == 0 {
            return Err(GsoError::Malformed("zero gso_size"));
        }
        let payload = frame.len() - hlen;
        let count = payload.div_ceil(mss).max(1);
        Ok(TcpSplit { l3, l4, hlen, mss, v6, payload, count })
    }

    /// Number of segments.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Length of the longest segment (header plus one MSS, or less).
    pub fn max_segment_len(&self) -> usize {
        self.hlen + self.mss.min(self.payload)
    }

    /// Length of segment `i` (headers included).
    pub fn segment_len(&self, i: usize) -> usize {
        self.hlen + self.payload.saturating_sub(i * self.mss).min(self.mss)
    }

    /// Write segment `i` of `frame` (the super-frame this plan was made for) to the start of
    /// `out`, with patched headers and a full TCP checksum; returns its length.
    /// `out` must hold [`TcpSplit::segment_len`] bytes.
    // hot path
    pub fn write_segment(&self, frame: &[u8], i: usize, out: &mut [u8]) -> usize {
        let (l3, l4, hlen) = (self.l3, self.l4, self.hlen);
        let start = hlen + i * self.mss;
        let len = self.segment_len(i);
        let out = &mut out[..len];
        out[..hlen].copy_from_slice(&frame[..hlen]);
        out[hlen..].copy_from_slice(&frame[start..start + (len - hlen)]);
        let (ip, tcp) = out[l3..].split_at_mut(l4 - l3);
        let mut tcp = TcpPacket::new_unchecked(tcp);
        tcp.set_seq_number(tcp.seq_number().wrapping_add((i * self.mss) as u32));
        let mut bits = tcp.flags();
        if i + 1 != self.count {
            bits &= !(flags::FIN | flags::PSH);
        }
        if i > 0 {
            bits &= !flags::CWR;
        }
        tcp.set_flags(bits);
        if self.v6 {
            let mut ip = Ipv6Packet::new_unchecked(ip);
            ip.set_payload_len((len - l4) as u16);
            tcp.fill_checksum_v6(&ip.src_addr(), &ip.dst_addr());
        } else {
            let mut ip = Ipv4Packet::new_unchecked(ip);
            ip.set_total_len((len - l3) as u16);
            ip.set_ident(ip.ident().wrapping_add(i as u16));
            ip.fill_checksum();
            tcp.fill_checksum_v4(ip.src_addr(), ip.dst_addr());
        }
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

    const MSS: usize = 1398;

    /// A super-frame as the kernel hands it to an offload TAP: one header, `payload` bytes, and
    /// only the pseudo-header sum in the TCP checksum field (CHECKSUM_PARTIAL).
    fn super_frame(v6: bool, vlan: bool, payload: usize, flags_fin_psh: bool) -> (Vec<u8>, VirtioNetHdr) {
        let data: Vec<u8> = (0..payload).map(|i| (i * 7 + i / 251) as u8).collect();
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let ip = if v6 {
            eth.ipv6(
                [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                64,
            )
        } else {
            eth.ipv4([192, 0, 2, 11], [192, 0, 2, 21], 64)
        };
        let mut tcp = ip.tcp(40000, 5201, 0xfffff000, 502).ack(0x1234_5678).cwr();
        if flags_fin_psh {
            tcp = tcp.psh().fin();
        }
        let tcp = tcp
            .options(&[
                etherparse::TcpOptionElement::Noop,
                etherparse::TcpOptionElement::Noop,
                etherparse::TcpOptionElement::Timestamp(1, 2),
            ])
            .unwrap();
        let mut frame = Vec::new();
        tcp.write(&mut frame, &data).unwrap();
        if vlan {
            // 802.1Q tag, VLAN 42, in front of the original ethertype.
            frame.splice(12..12, [0x81, 0x00, 0x00, 0x2a]);
        }
        let l3 = if vlan { 18 } else { 14 };
        let l4 = if v6 { l3 + 40 } else { l3 + 20 };
        // Replace the full checksum by the pseudo-header sum, as the kernel leaves it.
        let (ip, tcp) = frame[l3..].split_at_mut(l4 - l3);
        let mut tcp = TcpPacket::new_unchecked(tcp);
        let seed = if v6 {
            let ip = Ipv6Packet::new_unchecked(&ip[..]);
            tcp.pseudo_v6(&ip.src_addr(), &ip.dst_addr())
        } else {
            let ip = Ipv4Packet::new_unchecked(&ip[..]);
            tcp.pseudo_v4(ip.src_addr(), ip.dst_addr())
        };
        tcp.set_checksum(seed);
        let hdr = VirtioNetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: if v6 { GSO_TCPV6 } else { GSO_TCPV4 },
            hdr_len: frame.len() as u16, // the kernel's hint can be this wrong
            gso_size: MSS as u16,
            csum_start: l4 as u16,
            csum_offset: 16,
        };
        (frame, hdr)
    }

    fn tcp_checksum_ok(seg: &[u8]) -> bool {
        let p = SlicedPacket::from_ethernet(seg).unwrap();
        let Some(TransportSlice::Tcp(tcp)) = p.transport else { panic!("TCP") };
        let expected = match p.net.unwrap() {
            NetSlice::Ipv4(ip) => tcp.to_header().calc_checksum_ipv4(&ip.header().to_header(), tcp.payload()).unwrap(),
            NetSlice::Ipv6(ip) => tcp.to_header().calc_checksum_ipv6(&ip.header().to_header(), tcp.payload()).unwrap(),
        };
        tcp.checksum() == expected
    }

    fn check_split(v6: bool, vlan: bool, payload: usize) {
        let (frame, hdr) = super_frame(v6, vlan, payload, true);
        let original = SlicedPacket::from_ethernet(&frame).unwrap();
        let Some(TransportSlice::Tcp(otcp)) = &original.transport else { panic!() };
        let split = match TcpSplit::new(&frame, &hdr) {
            Ok(s) => s,
            Err(e) => panic!("{e:?}"),
        };
        assert_eq!(split.count(), payload.div_ceil(MSS));
        let mut joined = Vec::new();
        for i in 0..split.count() {
            let mut out = vec![0u8; 2048];
            let len = split.write_segment(&frame, i, &mut out);
            assert_eq!(len, split.segment_len(i));
            let seg = &out[..len];
            let p = SlicedPacket::from_ethernet(seg).unwrap_or_else(|e| panic!("segment {i}: {e}"));
            assert_eq!(p.link.as_ref().unwrap().to_header(), original.link.as_ref().unwrap().to_header());
            match (p.net.as_ref().unwrap(), original.net.as_ref().unwrap()) {
                (NetSlice::Ipv4(ip), NetSlice::Ipv4(oip)) => {
                    let h = ip.header().to_header();
                    assert_eq!(usize::from(h.total_len), len - if vlan { 18 } else { 14 });
                    assert_eq!(h.identification, oip.header().identification().wrapping_add(i as u16));
                    assert_eq!(h.header_checksum, h.calc_header_checksum(), "IP checksum of segment {i}");
                }
                (NetSlice::Ipv6(ip), NetSlice::Ipv6(_)) => {
                    assert_eq!(usize::from(ip.header().payload_length()), len - if vlan { 18 } else { 14 } - 40);
                }
                _ => panic!("IP version changed"),
            }
            let Some(TransportSlice::Tcp(tcp)) = &p.transport else { panic!() };
            assert_eq!(tcp.sequence_number(), otcp.sequence_number().wrapping_add((i * MSS) as u32), "seq of {i}");
            assert_eq!(tcp.acknowledgment_number(), otcp.acknowledgment_number());
            assert_eq!(tcp.options(), otcp.options());
            let last = i + 1 == split.count();
            assert_eq!(tcp.fin(), last, "FIN only on the last segment");
            assert_eq!(tcp.psh(), last, "PSH only on the last segment");
            assert_eq!(tcp.cwr(), i == 0, "CWR only on the first segment");
            assert!(tcp.ack());
            assert!(tcp_checksum_ok(seg), "TCP checksum of segment {i}");
            assert!(tcp.payload().len() == MSS || last);
            joined.extend_from_slice(tcp.payload());
        }
        assert_eq!(joined, otcp.payload(), "payload reassembles");
    }

    #[test]
    fn splits_ipv4_super_frame_with_valid_headers_and_checksums() {
        check_split(false, false, 64000);
        check_split(false, false, MSS * 3);
        check_split(false, false, 1);
    }

    #[test]
    fn splits_ipv6_and_vlan_tagged_super_frames() {
        check_split(true, false, 30000);
        check_split(false, true, 20000);
        check_split(true, true, MSS + 1);
    }

    #[test]
    fn sequence_numbers_wrap() {
        // The builder's initial sequence 0xfffff000 wraps within the first few segments.
        check_split(false, false, 10 * MSS);
    }

    #[test]
    fn finishes_a_partial_checksum() {
        let (mut frame, mut hdr) = super_frame(false, false, 700, false);
        hdr.gso_type = GSO_NONE;
        assert!(!tcp_checksum_ok(&frame));
        assert_eq!(classify(&mut frame, &hdr), Ok(TapFrame::Plain));
        assert!(tcp_checksum_ok(&frame));
    }

    #[test]
    fn malformed_headers_are_errors_not_panics() {
        let (frame, hdr) = super_frame(false, false, 5000, false);
        for bad in [
            VirtioNetHdr { gso_size: 0, ..hdr },
            VirtioNetHdr { csum_start: 5000, ..hdr },
            VirtioNetHdr { csum_start: 13, ..hdr },
            VirtioNetHdr { csum_offset: 6, ..hdr },
            VirtioNetHdr { gso_type: GSO_TCPV6, ..hdr },
            VirtioNetHdr { gso_type: GSO_TCPV4 | GSO_ECN, ..hdr },
        ] {
            assert!(TcpSplit::new(&frame, &bad).is_err(), "{bad:?}");
        }
        for len in 0..80 {
            let mut f = frame[..len].to_vec();
            let _ = classify(&mut f, &hdr);
            let _ = classify(&mut f, &VirtioNetHdr { gso_type: GSO_NONE, ..hdr });
        }
        assert_eq!(classify(&mut frame.clone(), &VirtioNetHdr { gso_type: 5, ..hdr }), Err(GsoError::Unsupported(5)));
    }
}
