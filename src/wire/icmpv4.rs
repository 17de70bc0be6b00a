//! ICMP for IPv4 (RFC 792): the echo and error messages a switch answers or originates.
//!
//! Every message starts with type, code and checksum (over the whole ICMP message, no
//! pseudo-header). Echo request/reply then carry identifier, sequence number and data.
//! Error messages (destination unreachable, time exceeded) carry 4 bytes of "unused" (for
//! "fragmentation needed", RFC 1191 puts the next-hop MTU in the low 16 bits) followed by the
//! *invoking* packet: its IP header plus at least the first 8 bytes of its payload, enough for
//! the sender to find the socket (ports or ICMP identifier) the error belongs to. RFC 1812
//! allows quoting more; Linux quotes up to 576 bytes in total.
//!
//! An error message keeps the invoking bytes raw rather than as a parsed header: it has to be
//! echoed bit for bit (identification, options, checksum), and the quote is usually a prefix of
//! a longer datagram, so its total length does not match what is present.

use super::ipv4::HEADER_LEN as IPV4_HEADER_LEN;
use super::{checksum, read_u16, write_u16, Error, Result};

/// Length of the fixed ICMP header (type, code, checksum, 4 type-specific bytes).
pub const HEADER_LEN: usize = 8;
/// Bytes of the invoking payload RFC 792 requires in an error message.
pub const QUOTED_PAYLOAD_LEN: usize = 8;

/// ICMP message types vxswitch handles.
pub mod message_type {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DST_UNREACHABLE: u8 = 3;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQNO: usize = 6;
    pub const UNUSED: usize = 4;
    pub const MTU: usize = 6;
}

/// A read/write view of an ICMPv4 message (the IPv4 payload).
#[derive(Debug, Clone)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }

    /// Wraps a buffer, checking it holds the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// The checks of [`Self::new_checked`].
    pub fn check(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type (see [`message_type`]).
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Stored checksum.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo identifier.
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo sequence number.
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// Next-hop MTU of a "fragmentation needed" message (RFC 1191).
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::MTU)
    }

    /// Everything after the 8-byte header: echo data, or the invoking packet of an error.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// True when the checksum over the whole message is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(checksum::data(self.buffer.as_ref()))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    /// Sets the message code.
    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the stored checksum.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT, value);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQNO, value);
    }

    /// Sets the 4 type-specific bytes of an error message: zero, then `mtu` in the low 16 bits.
    pub fn set_unused_and_mtu(&mut self, mtu: u16) {
        write_u16(self.buffer.as_mut(), field::UNUSED, 0);
        write_u16(self.buffer.as_mut(), field::MTU, mtu);
    }

    /// Everything after the 8-byte header, mutable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Computes and stores the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.buffer.as_ref());
        self.set_checksum(!sum);
    }
}

/// Why a destination is unreachable (the code of a type 3 message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv4DstUnreachable {
    /// Code 0: no route to the network.
    NetUnreachable,
    /// Code 1: the host is not reachable.
    HostUnreachable,
    /// Code 2: the protocol is not supported.
    ProtoUnreachable,
    /// Code 3: no socket on the port.
    PortUnreachable,
    /// Code 4: DF set and the datagram does not fit the next hop (RFC 1191 MTU).
    FragRequired {
        /// MTU of the next hop, in bytes.
        next_hop_mtu: u16,
    },
    /// Any other code (administratively prohibited and friends); emitted with MTU 0.
    Other(u8),
}

impl Icmpv4DstUnreachable {
    fn code(self) -> u8 {
        match self {
            Self::NetUnreachable => 0,
            Self::HostUnreachable => 1,
            Self::ProtoUnreachable => 2,
            Self::PortUnreachable => 3,
            Self::FragRequired { .. } => 4,
            Self::Other(code) => code,
        }
    }

    fn from_code(code: u8, mtu: u16) -> Self {
        match code {
            0 => Self::NetUnreachable,
            1 => Self::HostUnreachable,
            2 => Self::ProtoUnreachable,
            3 => Self::PortUnreachable,
            4 => Self::FragRequired { next_hop_mtu: mtu },
            other => Self::Other(other),
        }
    }
}

/// Which limit expired (the code of a type 11 message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv4TimeExceeded {
    /// Code 0: the TTL reached zero in transit.
    TtlExpired,
    /// Code 1: fragment reassembly timed out.
    FragReassembly,
}

/// A parsed ICMPv4 message of the kinds vxswitch builds or reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv4Repr<'a> {
    /// Echo request (ping).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// Echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// Destination unreachable, quoting the invoking packet.
    DstUnreachable {
        /// The code (and MTU for fragmentation needed).
        reason: Icmpv4DstUnreachable,
        /// The invoking IPv4 header plus the start of its payload (see [`quote`]).
        invoking: &'a [u8],
    },
    /// Time exceeded, quoting the invoking packet.
    TimeExceeded {
        /// The code.
        reason: Icmpv4TimeExceeded,
        /// The invoking IPv4 header plus the start of its payload (see [`quote`]).
        invoking: &'a [u8],
    },
}

/// The part of `original` (an IPv4 packet) an error message quotes per RFC 792: the header with
/// options plus the first 8 payload bytes, or less when the packet is shorter.
pub fn quote(original: &[u8]) -> &[u8] {
    let header_len = original.first().map_or(IPV4_HEADER_LEN, |b| usize::from(b & 0x0f) * 4);
    &original[..original.len().min(header_len + QUOTED_PAYLOAD_LEN)]
}

/// An invoking packet must at least hold a plausible IPv4 header.
fn check_invoking(invoking: &[u8]) -> Result<()> {
    let first = *invoking.first().ok_or(Error::Truncated)?;
    let header_len = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || header_len < IPV4_HEADER_LEN {
        return Err(Error::Malformed);
    }
    if invoking.len() < header_len {
        return Err(Error::Truncated);
    }
    Ok(())
}

impl<'a> Icmpv4Repr<'a> {
    /// Parses a message: checksum verified (`Malformed`), unknown types `Unsupported`. For an
    /// error message the invoking data holds at least a whole IPv4 header, so
    /// `Ipv4Packet::new_unchecked(invoking)` address and protocol accessors are safe on it.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Icmpv4Packet<&'a T>) -> Result<Self> {
        packet.check()?;
        if !packet.verify_checksum() {
            return Err(Error::Malformed);
        }
        let data = &packet.buffer.as_ref()[HEADER_LEN..];
        let (ty, code) = (packet.msg_type(), packet.msg_code());
        match (ty, code) {
            (message_type::ECHO_REQUEST, 0) | (message_type::ECHO_REPLY, 0) => {
                let (ident, seq_no) = (packet.echo_ident(), packet.echo_seq_no());
                Ok(if ty == message_type::ECHO_REQUEST {
                    Icmpv4Repr::EchoRequest { ident, seq_no, data }
                } else {
                    Icmpv4Repr::EchoReply { ident, seq_no, data }
                })
            }
            (message_type::DST_UNREACHABLE, _) => {
                check_invoking(data)?;
                let reason = Icmpv4DstUnreachable::from_code(code, packet.next_hop_mtu());
                Ok(Icmpv4Repr::DstUnreachable { reason, invoking: data })
            }
            (message_type::TIME_EXCEEDED, 0 | 1) => {
                check_invoking(data)?;
                let reason = if code == 0 { Icmpv4TimeExceeded::TtlExpired } else { Icmpv4TimeExceeded::FragReassembly };
                Ok(Icmpv4Repr::TimeExceeded { reason, invoking: data })
            }
            _ => Err(Error::Unsupported),
        }
    }

    /// Bytes `emit` writes: the 8-byte header plus data or invoking bytes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Icmpv4Repr::EchoRequest { data, .. } | Icmpv4Repr::EchoReply { data, .. } => data.len(),
                Icmpv4Repr::DstUnreachable { invoking, .. } | Icmpv4Repr::TimeExceeded { invoking, .. } => invoking.len(),
            }
    }

    /// Writes the whole message into the front of `packet` (exactly `buffer_len()` bytes long,
    /// since the checksum covers the whole buffer) and fills the checksum.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Icmpv4Packet<T>) {
        let body = match *self {
            Icmpv4Repr::EchoRequest { ident, seq_no, data } | Icmpv4Repr::EchoReply { ident, seq_no, data } => {
                let ty = if matches!(self, Icmpv4Repr::EchoRequest { .. }) { message_type::ECHO_REQUEST } else { message_type::ECHO_REPLY };
                packet.set_msg_type(ty);
                packet.set_msg_code(0);
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
                data
            }
            Icmpv4Repr::DstUnreachable { reason, invoking } => {
                packet.set_msg_type(message_type::DST_UNREACHABLE);
                packet.set_msg_code(reason.code());
                let mtu = match reason {
                    Icmpv4DstUnreachable::FragRequired { next_hop_mtu } => next_hop_mtu,
                    _ => 0,
                };
                packet.set_unused_and_mtu(mtu);
                invoking
            }
            Icmpv4Repr::TimeExceeded { reason, invoking } => {
                packet.set_msg_type(message_type::TIME_EXCEEDED);
                packet.set_msg_code(match reason {
                    Icmpv4TimeExceeded::TtlExpired => 0,
                    Icmpv4TimeExceeded::FragReassembly => 1,
                });
                packet.set_unused_and_mtu(0);
                invoking
            }
        };
        packet.data_mut()[..body.len()].copy_from_slice(body);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
    use crate::wire::testutil::hex;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    // IPv4 packets from the overlay capture described in vxlan.rs (`tcpdump -n -xx -i vx0` in
    // netns B during `ping -c 1 -p 76787377 -s 16 192.0.2.2` and `echo -n vxswitch >
    // /dev/udp/192.0.2.2/5353` from A); Ethernet headers stripped.
    const ECHO_REQUEST: &str = "4500 002c 5da3 4000 4001 592a c000 0201 c000 0202 0800 fc95
        18e9 0001 c85f 026b 0000 0000 09b5 0e00 0000 0000";
    const ECHO_REPLY: &str = "4500 002c 9fff 0000 4001 56ce c000 0202 c000 0201 0000 0496
        18e9 0001 c85f 026b 0000 0000 09b5 0e00 0000 0000";
    // B's answer to the UDP datagram: port unreachable quoting the whole 36-byte datagram.
    const PORT_UNREACHABLE: &str = "45c0 0040 a001 0000 4001 55f8 c000 0202 c000 0201 0303 da59
        0000 0000 4500 0024 ca7a 4000 4011 ec4a c000 0201 c000 0202 d2b7 14e9 0010 8425 7678
        7377 6974 6368";

    fn icmp_of(ip: &[u8]) -> &[u8] {
        Ipv4Packet::new_checked(ip).unwrap().into_inner().get(20..).unwrap()
    }

    fn roundtrip(icmp: &[u8]) -> Icmpv4Repr<'_> {
        let p = Icmpv4Packet::new_checked(icmp).unwrap();
        let repr = Icmpv4Repr::parse(&p).unwrap();
        assert_eq!(repr.buffer_len(), icmp.len());
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, icmp);
        repr
    }

    #[test]
    fn captured_echo_round_trips() {
        let req_ip = hex(ECHO_REQUEST);
        let req = roundtrip(icmp_of(&req_ip));
        let pattern = hex("c85f 026b 0000 0000 09b5 0e00 0000 0000");
        assert_eq!(req, Icmpv4Repr::EchoRequest { ident: 0x18e9, seq_no: 1, data: &pattern });
        let rep_ip = hex(ECHO_REPLY);
        assert!(matches!(roundtrip(icmp_of(&rep_ip)), Icmpv4Repr::EchoReply { ident: 0x18e9, .. }));
    }

    #[test]
    fn captured_port_unreachable_round_trips() {
        let ip = hex(PORT_UNREACHABLE);
        let repr = roundtrip(icmp_of(&ip));
        let Icmpv4Repr::DstUnreachable { reason, invoking } = repr else {
            panic!("{repr:?}");
        };
        assert_eq!(reason, Icmpv4DstUnreachable::PortUnreachable);
        let orig = Ipv4Packet::new_checked(invoking).unwrap();
        assert_eq!(orig.dst_addr(), Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(orig.protocol(), protocol::UDP);
    }

    /// Builds IPv4 + ICMP error around `original` the way the switch core will.
    fn build_error(reason: Icmpv4DstUnreachable, original: &[u8]) -> Vec<u8> {
        let orig = Ipv4Packet::new_checked(original).unwrap();
        let icmp = Icmpv4Repr::DstUnreachable { reason, invoking: quote(original) };
        let ip = Ipv4Repr {
            src_addr: Ipv4Addr::new(192, 0, 2, 254),
            dst_addr: orig.src_addr(),
            protocol: protocol::ICMP,
            payload_len: icmp.buffer_len(),
            ttl: 64,
        };
        let mut out = vec![0u8; ip.buffer_len() + icmp.buffer_len()];
        icmp.emit(&mut Icmpv4Packet::new_unchecked(&mut out[ip.buffer_len()..]));
        ip.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]));
        out
    }

    #[test]
    fn frag_needed_around_original_matches_etherparse() {
        let original = hex(ECHO_REQUEST);
        let reason = Icmpv4DstUnreachable::FragRequired { next_hop_mtu: 1450 };
        let out = build_error(reason, &original);
        assert_eq!(out.len(), 20 + 8 + 20 + 8);

        let sliced = etherparse::SlicedPacket::from_ip(&out).unwrap();
        let Some(etherparse::TransportSlice::Icmpv4(icmp)) = sliced.transport else {
            panic!("etherparse saw {:?}", sliced.transport);
        };
        use etherparse::icmpv4::DestUnreachableHeader;
        assert_eq!(
            icmp.icmp_type(),
            etherparse::Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1450 })
        );
        assert_eq!(icmp.payload(), &original[..28]);
        let (h, _) = etherparse::Icmpv4Header::from_slice(icmp.slice()).unwrap();
        assert_eq!(h.checksum, h.icmp_type.calc_checksum(icmp.payload()));

        let parsed = Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&out[20..]).unwrap()).unwrap();
        assert_eq!(parsed, Icmpv4Repr::DstUnreachable { reason, invoking: &original[..28] });
    }

    #[test]
    fn net_host_unreachable_and_time_exceeded_match_etherparse() {
        let original = hex(ECHO_REQUEST);
        use etherparse::icmpv4::DestUnreachableHeader as D;
        for (reason, expected) in [(Icmpv4DstUnreachable::NetUnreachable, D::Network), (Icmpv4DstUnreachable::HostUnreachable, D::Host)] {
            let out = build_error(reason, &original);
            let (h, rest) = etherparse::Icmpv4Header::from_slice(&out[20..]).unwrap();
            assert_eq!(h.icmp_type, etherparse::Icmpv4Type::DestinationUnreachable(expected));
            assert_eq!(h.checksum, h.icmp_type.calc_checksum(rest));
        }
        let te = Icmpv4Repr::TimeExceeded { reason: Icmpv4TimeExceeded::TtlExpired, invoking: quote(&original) };
        let mut out = vec![0u8; te.buffer_len()];
        te.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]));
        let (h, rest) = etherparse::Icmpv4Header::from_slice(&out).unwrap();
        assert_eq!(h.icmp_type, etherparse::Icmpv4Type::TimeExceeded(etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit));
        assert_eq!(h.checksum, h.icmp_type.calc_checksum(rest));
        assert_eq!(Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&out[..]).unwrap()), Ok(te));
    }

    #[test]
    fn quote_respects_options_and_short_packets() {
        let original = hex(ECHO_REQUEST);
        assert_eq!(quote(&original).len(), 28);
        assert_eq!(quote(&original[..24]).len(), 24);
        let mut with_options = original.clone();
        with_options[0] = 0x46;
        assert_eq!(quote(&with_options).len(), 32);
        assert_eq!(quote(&[]).len(), 0);
    }

    #[test]
    fn bad_checksum_truncation_and_unsupported() {
        let ip = hex(ECHO_REQUEST);
        let mut icmp = icmp_of(&ip).to_vec();
        for len in 0..HEADER_LEN {
            assert_eq!(Icmpv4Packet::new_checked(&icmp[..len]).err(), Some(Error::Truncated));
        }
        icmp[3] ^= 1;
        assert_eq!(Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&icmp[..]).unwrap()), Err(Error::Malformed));
        icmp[3] ^= 1;
        icmp[0] = 13; // timestamp request
        Icmpv4Packet::new_unchecked(&mut icmp[..]).fill_checksum();
        assert_eq!(Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&icmp[..]).unwrap()), Err(Error::Unsupported));
        // An error whose quote is too short for an IPv4 header is refused.
        let unreach = hex(PORT_UNREACHABLE);
        let mut short = icmp_of(&unreach)[..HEADER_LEN + 12].to_vec();
        Icmpv4Packet::new_unchecked(&mut short[..]).fill_checksum();
        assert_eq!(Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&short[..]).unwrap()), Err(Error::Truncated));
    }

    proptest! {
        #![proptest_config(crate::wire::testutil::proptest_config())]
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..64),
                                       fix_checksum in any::<bool>()) {
            if fix_checksum && bytes.len() >= HEADER_LEN {
                Icmpv4Packet::new_unchecked(&mut bytes[..]).fill_checksum();
            }
            match Icmpv4Packet::new_checked(&bytes[..]) {
                Ok(p) => {
                    if let Ok(repr) = Icmpv4Repr::parse(&p) {
                        prop_assert_eq!(repr.buffer_len(), bytes.len());
                        let mut out = vec![0u8; repr.buffer_len()];
                        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]));
                        prop_assert!(Icmpv4Packet::new_unchecked(&out[..]).verify_checksum());
                    }
                }
                Err(_) => prop_assert!(bytes.len() < HEADER_LEN),
            }
        }
    }
}
