//! The "too big" answer to a frame that does not fit its tunnel: ICMP "fragmentation needed"
//! (RFC 792, RFC 1191) for IPv4 with DF, ICMPv6 "packet too big" (RFC 4443 3.2) for IPv6.
//!
//! Which packets get no answer follows Linux's `iptunnel_pmtud_check_icmp{,v6}` and the ICMP
//! RFCs: never an ICMP error (RFC 1122 3.2.2, RFC 4443 2.4(e)), never a non-first fragment,
//! never a packet from an unspecified, loopback, broadcast or multicast source, and never one to a
//! broadcast or multicast destination (an overlay answer claims to come *from* the destination).
//! IPv4 without DF gets none either (RFC 1191: only DF packets): see [`super`] for why vxswitch
//! drops those instead of fragmenting them.
//!
//! The quote is the invoking IPv4 header plus 8 bytes ([`icmpv4::quote`]: what every stack needs
//! to find the socket), and for IPv6 as much of the packet as fits a 1280-byte answer (RFC 4443).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::checksum;
use crate::wire::ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
use crate::wire::icmpv4::{self, Icmpv4DstUnreachable, Icmpv4Packet, Icmpv4Repr};
use crate::wire::icmpv6::Icmpv6Packet;
use crate::wire::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
use crate::wire::ipv6::{Ipv6Packet, Ipv6Repr};

/// ICMPv6 "packet too big" (RFC 4443 3.2).
pub const ICMPV6_PACKET_TOO_BIG: u8 = 2;
/// Hop limit / TTL of the answers.
const TTL: u8 = 64;
/// An ICMPv6 error must not exceed the IPv6 minimum MTU (RFC 4443 2.4(c)).
const IPV6_MIN_MTU: usize = 1280;

/// Whom the answer appears to come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Responder {
    /// The frame's destination (overlay networks): its MAC and IP become the answer's source.
    Destination,
    /// The routed network's anycast gateway, answering the container at `dst_mac`.
    Gateway {
        /// The gateway MAC.
        mac: EthernetAddress,
        /// The gateway IPv4 address.
        ip: Ipv4Addr,
        /// The gateway IPv6 address, on a dual-stack network.
        ip6: Option<Ipv6Addr>,
        /// The sender's MAC (the routed frame's source MAC was already rewritten).
        dst_mac: EthernetAddress,
    },
}

/// Why a too-big frame gets no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoReply {
    /// Neither IPv4 nor IPv6 (or IPv6 on a routed network without an IPv6 gateway).
    NotIp,
    /// A header that does not parse (or a bad IPv4 header checksum).
    Malformed,
    /// IPv4 without DF.
    NoDf,
    /// A non-first fragment.
    Fragment,
    /// An ICMP error itself.
    IcmpError,
    /// A source or destination an answer must not go to or claim.
    BadAddress,
}

/// The answer to `frame` (a whole Ethernet frame) that does not fit a tunnel whose largest frame
/// is `max_frame_len` bytes, or why there is none.
pub fn too_big(frame: &[u8], max_frame_len: usize, from: Responder) -> Result<Vec<u8>, NoReply> {
    let view = EthernetFrame::new_checked(frame).map_err(|_| NoReply::Malformed)?;
    let eth = EthernetRepr::parse(&view).map_err(|_| NoReply::Malformed)?;
    if from == Responder::Destination && eth.dst_addr.is_multicast() {
        // The answer would claim a group MAC as its source.
        return Err(NoReply::BadAddress);
    }
    let mtu = max_frame_len.saturating_sub(eth.buffer_len());
    let (src_mac, dst_mac) = match from {
        Responder::Destination => (eth.dst_addr, eth.src_addr),
        Responder::Gateway { mac, dst_mac, .. } => (mac, dst_mac),
    };
    let out = EthernetRepr { src_addr: src_mac, dst_addr: dst_mac, vlan_id: eth.vlan_id, ethertype: eth.ethertype };
    match eth.ethertype {
        EtherType::IPV4 => ipv4(view.payload(), mtu, from, out),
        EtherType::IPV6 => match from {
            Responder::Destination => ipv6(view.payload(), mtu, out, None),
            Responder::Gateway { ip6: Some(gateway), .. } => ipv6(view.payload(), mtu, out, Some(gateway)),
            Responder::Gateway { ip6: None, .. } => Err(NoReply::NotIp),
        },
        _ => Err(NoReply::NotIp),
    }
}

/// ICMP types that are errors (Linux `icmp_is_err`): unreachable, source quench, redirect, time
/// exceeded, parameter problem.
fn is_icmpv4_error(ty: u8) -> bool {
    matches!(ty, 3 | 4 | 5 | 11 | 12)
}

fn bad_v4_source(a: Ipv4Addr) -> bool {
    a.is_unspecified() || a.is_loopback() || a.is_broadcast() || a.is_multicast()
}

fn ipv4(packet: &[u8], mtu: usize, from: Responder, eth: EthernetRepr) -> Result<Vec<u8>, NoReply> {
    let ip = Ipv4Packet::new_checked(packet).map_err(|_| NoReply::Malformed)?;
    if !ip.verify_checksum() {
        return Err(NoReply::Malformed);
    }
    if ip.frag_offset() != 0 {
        return Err(NoReply::Fragment);
    }
    if !ip.dont_frag() {
        return Err(NoReply::NoDf);
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if bad_v4_source(src) || dst.is_broadcast() || dst.is_multicast() || dst.is_unspecified() {
        return Err(NoReply::BadAddress);
    }
    if ip.protocol() == protocol::ICMP && ip.payload().first().is_some_and(|&t| is_icmpv4_error(t)) {
        return Err(NoReply::IcmpError);
    }
    let total = usize::from(ip.total_len()).min(packet.len());
    let icmp = Icmpv4Repr::DstUnreachable {
        reason: Icmpv4DstUnreachable::FragRequired { next_hop_mtu: mtu.min(usize::from(u16::MAX)) as u16 },
        invoking: icmpv4::quote(&packet[..total]),
    };
    let reply_src = match from {
        Responder::Destination => dst,
        Responder::Gateway { ip, .. } => ip,
    };
    let ip = Ipv4Repr { src_addr: reply_src, dst_addr: src, protocol: protocol::ICMP, payload_len: icmp.buffer_len(), ttl: TTL };
    let mut frame = vec![0u8; (eth.buffer_len() + ip.buffer_len() + icmp.buffer_len()).max(60)];
    let mut e = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.emit(&mut e);
    let mut p = Ipv4Packet::new_unchecked(&mut e.payload_mut()[..]);
    ip.emit(&mut p);
    icmp.emit(&mut Icmpv4Packet::new_unchecked(&mut p.payload_mut()[..icmp.buffer_len()]));
    Ok(frame)
}

/// The IPv6 answer: from the destination, or from `gateway` on a routed network.
fn ipv6(packet: &[u8], mtu: usize, eth: EthernetRepr, gateway: Option<Ipv6Addr>) -> Result<Vec<u8>, NoReply> {
    let ip = Ipv6Packet::new_checked(packet).map_err(|_| NoReply::Malformed)?;
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if src.is_unspecified() || src.is_loopback() || src.is_multicast() || dst.is_multicast() || dst.is_unspecified() {
        return Err(NoReply::BadAddress);
    }
    // Types below 128 are errors (RFC 4443 2.1); extension headers before ICMPv6 are not walked.
    if ip.next_header() == protocol::ICMPV6 && ip.payload().first().is_some_and(|&t| t < 128) {
        return Err(NoReply::IcmpError);
    }
    let whole = (crate::wire::ipv6::HEADER_LEN + usize::from(ip.payload_len())).min(packet.len());
    let quoted = whole.min(IPV6_MIN_MTU - 40 - 8);
    let icmp_len = 8 + quoted;
    let from = gateway.unwrap_or(dst);
    let repr = Ipv6Repr { src_addr: from, dst_addr: src, next_header: protocol::ICMPV6, payload_len: icmp_len, hop_limit: TTL };
    let mut frame = vec![0u8; eth.buffer_len() + 40 + icmp_len];
    let mut e = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.emit(&mut e);
    let mut p = Ipv6Packet::new_unchecked(&mut e.payload_mut()[..]);
    repr.emit(&mut p);
    let body = &mut p.payload_mut()[..icmp_len];
    body[0] = ICMPV6_PACKET_TOO_BIG;
    body[1] = 0;
    body[4..8].copy_from_slice(&(mtu as u32).to_be_bytes());
    body[8..].copy_from_slice(&packet[..quoted]);
    Icmpv6Packet::new_unchecked(body).fill_checksum(&from, &src);
    debug_assert!(checksum::verify(checksum::combine(&[
        checksum::pseudo_header_v6(&from, &src, protocol::ICMPV6, icmp_len as u32),
        checksum::data(&p.payload_mut()[..icmp_len]),
    ])));
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Icmpv4Type, Icmpv6Type, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

    const A: [u8; 6] = [2, 0, 0, 0, 1, 10];
    const B: [u8; 6] = [2, 0, 0, 0, 2, 10];

    fn tcp4(len: usize, df: bool) -> Vec<u8> {
        let mut f = Vec::new();
        let payload = vec![0x11; len - 14 - 20 - 20];
        PacketBuilder::ethernet2(A, B)
            .ipv4([192, 0, 2, 11], [192, 0, 2, 21], 64)
            .tcp(40000, 5201, 7, 1000)
            .write(&mut f, &payload)
            .unwrap();
        assert!(Ipv4Packet::new_checked(&f[14..]).unwrap().dont_frag(), "etherparse sets DF");
        if !df {
            f[14 + 6] &= !0x40;
            Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
        }
        f
    }

    #[test]
    fn ipv4_with_df_gets_fragmentation_needed_from_the_destination() {
        let frame = tcp4(1514, true);
        let reply = too_big(&frame, 1464, Responder::Destination).unwrap();
        let p = SlicedPacket::from_ethernet(&reply).unwrap();
        let eth = p.link.unwrap().to_header().unwrap();
        let eth = match eth {
            etherparse::LinkHeader::Ethernet2(e) => e,
            _ => unreachable!(),
        };
        assert_eq!((eth.source, eth.destination), (B, A), "appears to come from the destination");
        let Some(NetSlice::Ipv4(ip)) = p.net else { panic!("ipv4") };
        assert_eq!((ip.header().source(), ip.header().destination()), ([192, 0, 2, 21], [192, 0, 2, 11]));
        let Some(TransportSlice::Icmpv4(icmp)) = p.transport else { panic!("icmp") };
        match icmp.icmp_type() {
            Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu }) => {
                assert_eq!(next_hop_mtu, 1450)
            }
            other => panic!("{other:?}"),
        }
        // The quote: the invoking header and the first 8 bytes (ports and sequence number).
        assert_eq!(icmp.payload(), &frame[14..14 + 28]);
        let repr = Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&reply[34..34 + 8 + 28]).unwrap()).unwrap();
        assert!(matches!(repr, Icmpv4Repr::DstUnreachable { .. }), "checksum verifies");
    }

    #[test]
    fn routed_answers_come_from_the_gateway() {
        let frame = tcp4(1514, true);
        let gw = EthernetAddress([2, 0x76, 0x78, 0, 4, 0x12]);
        let from = Responder::Gateway { mac: gw, ip: Ipv4Addr::new(192, 0, 2, 1), ip6: None, dst_mac: EthernetAddress(A) };
        let reply = too_big(&frame, 1452, from).unwrap();
        assert_eq!((&reply[0..6], &reply[6..12]), (&A[..], &gw.0[..]));
        let ip = Ipv4Packet::new_checked(&reply[14..]).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 11)));
        assert_eq!(Icmpv4Packet::new_checked(ip.payload()).unwrap().next_hop_mtu(), 1438);
    }

    #[test]
    fn no_answer_without_df_to_errors_fragments_or_multicast() {
        assert_eq!(too_big(&tcp4(1514, false), 1464, Responder::Destination), Err(NoReply::NoDf));
        // An ICMP error (fragmentation needed itself) is never answered.
        let reply = too_big(&tcp4(1514, true), 1464, Responder::Destination).unwrap();
        assert_eq!(too_big(&reply, 40, Responder::Destination), Err(NoReply::IcmpError));
        // An echo request is answered.
        let mut ping = Vec::new();
        PacketBuilder::ethernet2(A, B)
            .ipv4([192, 0, 2, 11], [192, 0, 2, 21], 64)
            .icmpv4_echo_request(1, 1)
            .write(&mut ping, &[0; 1472])
            .unwrap();
        assert!(too_big(&ping, 1464, Responder::Destination).is_ok());
        let mut frag = tcp4(1514, true);
        frag[14 + 6..14 + 8].copy_from_slice(&(0x4000u16 | 10).to_be_bytes());
        Ipv4Packet::new_unchecked(&mut frag[14..]).fill_checksum();
        assert_eq!(too_big(&frag, 1464, Responder::Destination), Err(NoReply::Fragment));
        let mut mcast = tcp4(1514, true);
        mcast[14 + 16..14 + 20].copy_from_slice(&[224, 0, 0, 5]);
        Ipv4Packet::new_unchecked(&mut mcast[14..]).fill_checksum();
        assert_eq!(too_big(&mcast, 1464, Responder::Destination), Err(NoReply::BadAddress));
        let mut bad = tcp4(1514, true);
        bad[14 + 10] ^= 0xff;
        assert_eq!(too_big(&bad, 1464, Responder::Destination), Err(NoReply::Malformed));
        assert_eq!(too_big(&[0u8; 10], 1464, Responder::Destination), Err(NoReply::Malformed));
        let mut to_group = tcp4(1514, true);
        to_group[..6].copy_from_slice(&[0xff; 6]);
        assert_eq!(too_big(&to_group, 1464, Responder::Destination), Err(NoReply::BadAddress), "never from a group MAC");
    }

    #[test]
    fn ipv6_gets_packet_too_big_and_errors_do_not() {
        let (s6, d6) = ([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        let mut f = Vec::new();
        PacketBuilder::ethernet2(A, B).ipv6(s6, d6, 64).tcp(40000, 5201, 7, 1000).write(&mut f, &[0x22; 1440]).unwrap();
        let reply = too_big(&f, 1464, Responder::Destination).unwrap();
        assert!(reply.len() - 14 <= IPV6_MIN_MTU, "an ICMPv6 error fits the minimum MTU");
        let p = SlicedPacket::from_ethernet(&reply).unwrap();
        let Some(NetSlice::Ipv6(ip)) = &p.net else { panic!("ipv6") };
        assert_eq!((ip.header().source(), ip.header().destination()), (d6, s6));
        let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else { panic!("icmpv6") };
        assert_eq!(icmp.icmp_type(), Icmpv6Type::PacketTooBig { mtu: 1450 });
        assert!(icmp.is_checksum_valid(s6, d6) || icmp.is_checksum_valid(d6, s6), "checksum over the reversed addresses");
        assert_eq!(too_big(&reply, 100, Responder::Destination), Err(NoReply::IcmpError));
        let gw = Responder::Gateway { mac: EthernetAddress(B), ip: Ipv4Addr::new(192, 0, 2, 1), ip6: None, dst_mac: EthernetAddress(A) };
        assert_eq!(too_big(&f, 1464, gw), Err(NoReply::NotIp), "an IPv4-only routed network has no IPv6 gateway to answer from");
        // A dual-stack routed network answers from its IPv6 gateway address.
        let g6: Ipv6Addr = "fd00:42:0:1::1".parse().unwrap();
        let gw =
            Responder::Gateway { mac: EthernetAddress(B), ip: Ipv4Addr::new(192, 0, 2, 1), ip6: Some(g6), dst_mac: EthernetAddress(A) };
        let reply = too_big(&f, 1464, gw).unwrap();
        let p = SlicedPacket::from_ethernet(&reply).unwrap();
        let Some(NetSlice::Ipv6(ip)) = &p.net else { panic!("ipv6") };
        assert_eq!((ip.header().source(), ip.header().destination()), (g6.octets(), s6));
        let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else { panic!("icmpv6") };
        assert_eq!(icmp.icmp_type(), Icmpv6Type::PacketTooBig { mtu: 1450 });
        assert!(icmp.is_checksum_valid(g6.octets(), s6), "checksum from the gateway address");
    }
}
