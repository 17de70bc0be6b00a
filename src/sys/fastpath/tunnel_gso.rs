//! UDP-tunnel GSO super-datagrams from a kernel vxlan on the same kernel: one VXLAN header around
//! a whole TCP super-frame, cut into ordinary VXLAN datagrams before the switch sees them.
//!
//! A kernel vxlan device never segments a TSO frame itself: it wraps the whole super-frame in one
//! outer UDP/VXLAN header and marks the skb `SKB_GSO_UDP_TUNNEL`, to be segmented by the device
//! that finally transmits it. Over a real NIC that happens on the way out, but over veth the skb
//! crosses into the peer namespace whole, and the UDP socket there receives it as one datagram of
//! up to 64 KB (the kernel segments only `SKB_GSO_UDP_L4` skbs for sockets without `UDP_GRO`, and
//! the `UDP_GRO` control message is only given for those: measured on 6.18, the datagram comes
//! with no segment size at all). The inner IP header gives the whole super-frame's length.
//!
//! Such a datagram is recognised by being longer than any datagram the underlay carries while its
//! inner IPv4/IPv6 length covers exactly the rest of it and the inner protocol is TCP. Its
//! segment size is not in the packet, so it is cut the way the wire would have cut it: each
//! inner frame as large as fits one underlay datagram ([`plan`]'s `max_frame`). The receiving TCP
//! stack does not care about the cut (the coalescer rebuilds one super-frame for the TAP anyway);
//! only the frame sizes must fit what the switch accepts. Each piece gets a copy of the VXLAN
//! header and patched inner headers with a full checksum ([`TcpSplit`]), so the switch handles it
//! exactly like a datagram from the wire: VNI check, learning, counters.
//!
//! Anything else that long (not TCP, lengths that disagree) is not one of these and is handed to
//! the switch unchanged, as before.

use super::gso::{GsoError, TcpSplit};
use super::virtio::{VirtioNetHdr, F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, TCP_CSUM_OFFSET};
use crate::wire::ethernet::{EtherType, EthernetFrame};
use crate::wire::ipv4::{self, protocol, Ipv4Packet};
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::tcp::TcpPacket;
use crate::wire::vxlan::HEADER_LEN as VXLAN_HEADER;

/// A planned cut of one super-datagram: the inner frame starts at [`VXLAN_HEADER`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuperDatagram {
    /// The split of the inner super-frame (Ethernet-relative offsets).
    pub split: TcpSplit,
}

impl SuperDatagram {
    /// Length of piece `i`: the VXLAN header and inner segment `i`.
    pub fn piece_len(&self, i: usize) -> usize {
        VXLAN_HEADER + self.split.segment_len(i)
    }

    /// Write piece `i` of `datagram` (the one planned) to the start of `out`: the VXLAN header,
    /// then inner segment `i` with patched headers. Returns its length.
    // hot path
    pub fn write_piece(&self, datagram: &[u8], i: usize, out: &mut [u8]) -> usize {
        out[..VXLAN_HEADER].copy_from_slice(&datagram[..VXLAN_HEADER]);
        VXLAN_HEADER + self.split.write_segment(&datagram[VXLAN_HEADER..], i, &mut out[VXLAN_HEADER..])
    }
}

/// Plan the cut of `datagram` (a VXLAN datagram longer than the underlay carries) into VXLAN
/// datagrams whose inner frames are at most `max_frame` bytes, if it is one VXLAN header around a
/// TCP super-frame whose IP length matches the datagram.
pub fn plan(datagram: &[u8], max_frame: usize) -> Result<SuperDatagram, GsoError> {
    let inner = datagram.get(VXLAN_HEADER..).ok_or(GsoError::Malformed("shorter than a VXLAN header"))?;
    let eth = EthernetFrame::new_checked(inner).map_err(|_| GsoError::Malformed("shorter than an Ethernet header"))?;
    let (l3, ethertype) = (eth.header_len(), eth.ethertype());
    let ip = inner.get(l3..).ok_or(GsoError::Malformed("no IP header"))?;
    let (l4, gso_type) = if ethertype == EtherType::IPV4 {
        let ip = Ipv4Packet::new_checked(ip).map_err(|_| GsoError::Malformed("IPv4 header cut short"))?;
        let whole = usize::from(ip.total_len()) == inner.len() - l3;
        if ip.header_len() < ipv4::HEADER_LEN || ip.protocol() != protocol::TCP || ip.is_fragment() || !whole {
            return Err(GsoError::Malformed("not one whole IPv4/TCP packet"));
        }
        (l3 + ip.header_len(), GSO_TCPV4)
    } else if ethertype == EtherType::IPV6 {
        let ip = Ipv6Packet::new_checked(ip).map_err(|_| GsoError::Malformed("IPv6 header cut short"))?;
        let whole = usize::from(ip.payload_len()) + ipv6::HEADER_LEN == inner.len() - l3;
        if ip.next_header() != protocol::TCP || !whole {
            return Err(GsoError::Malformed("not one whole IPv6/TCP packet"));
        }
        (l3 + ipv6::HEADER_LEN, GSO_TCPV6)
    } else {
        return Err(GsoError::Malformed("not IP"));
    };
    let tcp = inner.get(l4..).and_then(|t| TcpPacket::new_checked(t).ok()).ok_or(GsoError::Malformed("TCP header cut short"))?;
    let hlen = l4 + tcp.header_len();
    let mss = max_frame
        .checked_sub(hlen)
        .filter(|&m| m > 0 && m <= usize::from(u16::MAX))
        .ok_or(GsoError::Malformed("headers fill the frame"))?;
    let hdr = VirtioNetHdr {
        flags: F_NEEDS_CSUM,
        gso_type,
        hdr_len: hlen as u16,
        gso_size: mss as u16,
        csum_start: l4 as u16,
        csum_offset: TCP_CSUM_OFFSET,
    };
    Ok(SuperDatagram { split: TcpSplit::new(inner, &hdr)? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

    const VXLAN: [u8; 8] = [0x08, 0, 0, 0, 0, 0x04, 0x12, 0];

    /// What a kernel vxlan device in another namespace hands over veth (captured shape: VNI 1042,
    /// inner IPv4 total length covering the whole super-frame, checksum left partial).
    fn super_datagram(v6: bool, payload: usize) -> (Vec<u8>, Vec<u8>) {
        let data: Vec<u8> = (0..payload).map(|i| (i * 13 + i / 255) as u8).collect();
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let ip = if v6 { eth.ipv6([0xfd; 16], [0xfe; 16], 64) } else { eth.ipv4([192, 0, 2, 21], [192, 0, 2, 11], 64) };
        let tcp = ip
            .tcp(47128, 5304, 0x49ca_ca38, 64)
            .ack(0x8c5c_eac4)
            .psh()
            .options(&[
                etherparse::TcpOptionElement::Noop,
                etherparse::TcpOptionElement::Noop,
                etherparse::TcpOptionElement::Timestamp(1, 2),
            ])
            .unwrap();
        let mut frame = Vec::new();
        tcp.write(&mut frame, &data).unwrap();
        let l4 = if v6 { 54 } else { 34 };
        frame[l4 + 16..l4 + 18].copy_from_slice(&[0x12, 0x34]); // partial: not a valid checksum
        ([&VXLAN[..], &frame].concat(), data)
    }

    fn pieces(datagram: &[u8], max_frame: usize) -> Vec<Vec<u8>> {
        let plan = plan(datagram, max_frame).unwrap();
        (0..plan.split.count())
            .map(|i| {
                let mut out = vec![0u8; plan.piece_len(i)];
                assert_eq!(plan.write_piece(datagram, i, &mut out), out.len());
                out
            })
            .collect()
    }

    fn check(v6: bool, payload: usize) {
        let (datagram, data) = super_datagram(v6, payload);
        let max_frame = 1464;
        let pieces = pieces(&datagram, max_frame);
        let mut joined = Vec::new();
        let mut seq = 0x49ca_ca38u32;
        for (i, p) in pieces.iter().enumerate() {
            assert_eq!(&p[..8], &VXLAN, "every piece keeps the VXLAN header");
            assert!(p.len() - 8 <= max_frame);
            let s = SlicedPacket::from_ethernet(&p[8..]).unwrap();
            let Some(TransportSlice::Tcp(tcp)) = s.transport else { panic!("TCP") };
            let expected = match s.net.unwrap() {
                NetSlice::Ipv4(ip) => tcp.to_header().calc_checksum_ipv4(&ip.header().to_header(), tcp.payload()).unwrap(),
                NetSlice::Ipv6(ip) => tcp.to_header().calc_checksum_ipv6(&ip.header().to_header(), tcp.payload()).unwrap(),
            };
            assert_eq!(tcp.checksum(), expected, "piece {i} has a full checksum");
            assert_eq!(tcp.sequence_number(), seq);
            assert_eq!(tcp.psh(), i + 1 == pieces.len(), "PSH only on the last piece");
            seq = seq.wrapping_add(tcp.payload().len() as u32);
            joined.extend_from_slice(tcp.payload());
        }
        assert_eq!(joined, data, "the pieces carry the payload, in order, byte for byte");
        assert_eq!(pieces.len(), payload.div_ceil(max_frame - if v6 { 86 } else { 66 }));
    }

    #[test]
    fn cuts_ipv4_super_datagram_into_wire_sized_vxlan_datagrams() {
        check(false, 6990);
        check(false, 65000);
        check(false, 1);
    }

    #[test]
    fn cuts_ipv6_super_datagram() {
        check(true, 20000);
    }

    #[test]
    fn anything_else_is_refused_not_cut() {
        let (good, _) = super_datagram(false, 5000);
        let mut bad_len = good.clone();
        bad_len.truncate(good.len() - 1); // IP length no longer matches
        assert!(plan(&bad_len, 1464).is_err());
        let mut udp = good.clone();
        udp[8 + 14 + 9] = 17;
        assert!(plan(&udp, 1464).is_err());
        let mut frag = good.clone();
        frag[8 + 14 + 6] = 0x20; // more fragments
        assert!(plan(&frag, 1464).is_err());
        assert!(plan(&good, 60).is_err(), "no room for payload");
        for n in 0..80 {
            let _ = plan(&good[..n], 1464);
        }
    }

    proptest::proptest! {
        /// The same inputs as the `tunnel_gso` fuzz target: arbitrary bytes never panic, and a
        /// plan's pieces fit the size announced; a real super-datagram always cuts back exactly.
        #[test]
        fn arbitrary_bytes_never_panic_and_pieces_fit(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            max_frame in 0usize..2000,
            payload in 1usize..20000,
        ) {
            if let Ok(p) = plan(&bytes, max_frame) {
                let mut out = vec![0u8; p.piece_len(0)];
                for i in 0..p.split.count().min(4096) {
                    proptest::prop_assert!(p.write_piece(&bytes, i, &mut out) <= 8 + max_frame);
                }
            }
            let (datagram, data) = super_datagram(false, payload);
            let joined: Vec<u8> = pieces(&datagram, 1464).iter().flat_map(|p| p[8 + 66..].to_vec()).collect();
            proptest::prop_assert_eq!(joined, data);
        }
    }
}
