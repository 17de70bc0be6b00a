//! IPv4 headers (RFC 791).
//!
//! Layout: version/IHL, DSCP/ECN, total length, identification, flags/fragment offset, TTL,
//! protocol, header checksum, source, destination, then options (IHL > 5) and payload.
//!
//! vxswitch reads inner IPv4 headers (ARP proxying, ICMP errors, MTU handling) and writes outer
//! ones for tunnels. It never fragments: the outer header it emits has DF set and
//! identification 0 (RFC 6864 allows that for atomic datagrams), so path MTU problems surface as
//! ICMP "fragmentation needed" instead of silent reassembly cost. A frame on Ethernet may carry
//! padding after `total_len`; the view ignores it.

use super::{checksum, read_ipv4, read_u16, write_u16, Error, Result};
use std::net::Ipv4Addr;

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;
/// The "don't fragment" flag in the flags/fragment-offset word.
const FLAG_DF: u16 = 0x4000;
/// The "more fragments" flag in the flags/fragment-offset word.
const FLAG_MF: u16 = 0x2000;
/// Default TTL for packets vxswitch originates.
pub const DEFAULT_TTL: u8 = 64;

/// IP protocol numbers (IANA), shared by IPv4 `protocol`, IPv6 `next_header` and ESP's next header.
pub mod protocol {
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// IPv4-in-IP (ESP next header for a tunnelled IPv4 packet).
    pub const IPV4: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6-in-IP.
    pub const IPV6: u8 = 41;
    /// Encapsulating Security Payload.
    pub const ESP: u8 = 50;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// Ethernet (RFC 8986; ESP next header for a tunnelled Ethernet frame).
    pub const ETHERNET: u8 = 143;
}

mod field {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// A read/write view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer, checking version 4, IHL >= 5, and that header and total length fit.
    // hot path
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// The checks of [`Self::new_checked`].
    pub fn check(&self) -> Result<()> {
        let buf = self.buffer.as_ref();
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 || self.header_len() < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if buf.len() < self.header_len() {
            return Err(Error::Truncated);
        }
        let total = usize::from(self.total_len());
        if total < self.header_len() {
            return Err(Error::Malformed);
        }
        if buf.len() < total {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// IP version (4 for a checked packet).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// DSCP (upper 6 bits) and ECN (lower 2 bits).
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length: header plus payload.
    #[inline]
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// The "don't fragment" flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    /// The "more fragments" flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.buffer.as_ref(), field::FLG_OFF) & 0x1fff) << 3
    }

    /// True for any fragment (MF set or a non-zero offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload (see [`protocol`]).
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Stored header checksum.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SRC)
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::DST)
    }

    /// True when the header checksum is right.
    // hot path
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(checksum::data(self.header()))
    }

    /// The header bytes, options included.
    #[inline]
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// The payload: from the end of the header to `total_len` (Ethernet padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version 4 and the header length in bytes (a multiple of 4, 20..=60).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    /// Sets DSCP and ECN.
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, ident: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, ident);
    }

    /// Sets the flags and fragment offset word directly (DF = 0x4000, MF = 0x2000).
    pub fn set_flags_and_frag_offset(&mut self, word: u16) {
        write_u16(self.buffer.as_mut(), field::FLG_OFF, word);
    }

    /// Sets the TTL.
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol.
    pub fn set_protocol(&mut self, protocol: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol;
    }

    /// Sets the stored checksum (see [`Self::fill_checksum`]).
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 4].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 4].copy_from_slice(&addr.octets());
    }

    /// Computes and stores the header checksum.
    // hot path
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.header());
        self.set_checksum(!sum);
    }

    /// The payload, mutable (up to `total_len`).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[start..end]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Ipv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The parsed IPv4 header, as much as vxswitch needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol (see [`protocol`]).
    pub protocol: u8,
    /// Payload length (`total_len - header_len`).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
}

impl Ipv4Repr {
    /// Parses a packet; a wrong header checksum is `Malformed`. Options are skipped; fragments
    /// are accepted (the caller decides what to do with them).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Ipv4Packet<&T>) -> Result<Self> {
        packet.check()?;
        if !packet.verify_checksum() {
            return Err(Error::Malformed);
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            ttl: packet.ttl(),
        })
    }

    /// Header bytes `emit` writes: 20 (no options).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header: DSCP 0, identification 0, DF set, checksum filled.
    /// `payload_len` must be at most 65515 (the total length is clamped to 65535).
    // hot path
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        debug_assert!(self.payload_len <= usize::from(u16::MAX) - HEADER_LEN);
        let total = (HEADER_LEN + self.payload_len).min(usize::from(u16::MAX)) as u16;
        // Build the header on the stack and store it once: one bounds check, not ten.
        let mut h = [0u8; HEADER_LEN];
        h[field::VER_IHL] = 0x45;
        h[field::LENGTH..field::LENGTH + 2].copy_from_slice(&total.to_be_bytes());
        h[field::FLG_OFF..field::FLG_OFF + 2].copy_from_slice(&FLAG_DF.to_be_bytes());
        h[field::TTL] = self.ttl;
        h[field::PROTOCOL] = self.protocol;
        h[field::SRC..field::SRC + 4].copy_from_slice(&self.src_addr.octets());
        h[field::DST..field::DST + 4].copy_from_slice(&self.dst_addr.octets());
        let sum = !checksum::data(&h);
        h[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&sum.to_be_bytes());
        packet.buffer.as_mut()[..HEADER_LEN].copy_from_slice(&h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::hex;
    use proptest::prelude::*;

    // IPv4 packets (Ethernet header stripped) from the kernel vxlan capture described in vxlan.rs.
    // Overlay (`tcpdump -n -xx -i vx0` in B): A's ICMP echo request 192.0.2.1 -> 192.0.2.2, DF set.
    const ECHO_REQUEST: &str = "4500 002c 5da3 4000 4001 592a c000 0201 c000 0202 0800 fc95 18e9
        0001 c85f 026b 0000 0000 09b5 0e00 0000 0000";
    // Underlay (`tcpdump -n -xx -i vethB 'udp port 4789'` in B): the outer header of the VXLAN
    // packet carrying A's ARP request; the kernel sends it without DF and with a counter ident.
    const OUTER_ARP: &str = "4500 004e e610 0000 4011 4024 c633 6401 c633 6402 af59 12b5 003a 54b6
        0800 0000 0004 1200 ffff ffff ffff 0200 0000 100a 0806 0001 0800 0604 0001 0200 0000
        100a c000 0201 0000 0000 0000 c000 0202";

    /// Parse, emit, then restore the two fields the repr normalises (ident, flags) and compare.
    fn roundtrip(bytes: &[u8]) -> Ipv4Repr {
        let p = Ipv4Packet::new_checked(bytes).unwrap();
        assert!(p.verify_checksum());
        let repr = Ipv4Repr::parse(&p).unwrap();
        let mut out = bytes.to_vec();
        out[..HEADER_LEN].fill(0);
        let mut q = Ipv4Packet::new_unchecked(&mut out[..]);
        repr.emit(&mut q);
        assert!(q.verify_checksum());
        assert_eq!((q.ident(), q.dont_frag(), q.dscp_ecn()), (0, true, 0));
        q.set_ident(p.ident());
        q.set_flags_and_frag_offset(read_u16(bytes, field::FLG_OFF));
        q.fill_checksum();
        assert_eq!(out, bytes);
        repr
    }

    #[test]
    fn captured_inner_echo_request() {
        let bytes = hex(ECHO_REQUEST);
        let repr = roundtrip(&bytes);
        assert_eq!(repr.src_addr, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(repr.dst_addr, Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!((repr.protocol, repr.ttl, repr.payload_len), (protocol::ICMP, 64, 24));
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!((p.ident(), p.frag_offset(), p.header_len()), (0x5da3, 0, 20));
        assert_eq!(p.payload(), &bytes[20..]);
    }

    #[test]
    fn captured_outer_vxlan_header() {
        let repr = roundtrip(&hex(OUTER_ARP));
        assert_eq!(repr.src_addr, Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!((repr.protocol, repr.payload_len), (protocol::UDP, 58));
    }

    #[test]
    fn emit_checksum_matches_etherparse() {
        let repr = Ipv4Repr {
            src_addr: Ipv4Addr::new(198, 18, 0, 1),
            dst_addr: Ipv4Addr::new(198, 18, 0, 2),
            protocol: protocol::UDP,
            payload_len: 1450,
            ttl: 64,
        };
        let mut out = [0u8; HEADER_LEN];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]));
        let (h, _) = etherparse::Ipv4Header::from_slice(&out).unwrap();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert!(h.dont_fragment && h.identification == 0 && h.total_len == 1470);
    }

    #[test]
    fn padding_after_total_len_is_allowed() {
        let mut bytes = hex(ECHO_REQUEST);
        bytes.extend_from_slice(&[0xee; 6]);
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.payload().len(), 24);
    }

    #[test]
    fn bad_checksum_is_malformed() {
        let mut bytes = hex(ECHO_REQUEST);
        bytes[11] ^= 0x01;
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(!p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p), Err(Error::Malformed));
        // A changed TTL without a refill is caught the same way.
        let mut bytes = hex(ECHO_REQUEST);
        bytes[8] -= 1;
        assert_eq!(Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&bytes[..])), Err(Error::Malformed));
        let mut q = Ipv4Packet::new_unchecked(&mut bytes[..]);
        q.fill_checksum();
        assert!(q.verify_checksum());
    }

    #[test]
    fn truncated_and_malformed() {
        let bytes = hex(ECHO_REQUEST);
        for len in 0..bytes.len() {
            assert_eq!(Ipv4Packet::new_checked(&bytes[..len]).err(), Some(Error::Truncated), "{len}");
        }
        let mut v6 = bytes.clone();
        v6[0] = 0x65;
        assert_eq!(Ipv4Packet::new_checked(&v6[..]).err(), Some(Error::Malformed));
        let mut ihl4 = bytes.clone();
        ihl4[0] = 0x44;
        assert_eq!(Ipv4Packet::new_checked(&ihl4[..]).err(), Some(Error::Malformed));
        let mut ihl15 = bytes.clone();
        ihl15[0] = 0x4f;
        assert_eq!(Ipv4Packet::new_checked(&ihl15[..]).err(), Some(Error::Truncated));
        let mut short_total = bytes.clone();
        short_total[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(Ipv4Packet::new_checked(&short_total[..]).err(), Some(Error::Malformed));
    }

    proptest! {
        #![proptest_config(crate::wire::testutil::proptest_config())]
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..80),
                                       fix_version in any::<bool>()) {
            if fix_version && !bytes.is_empty() {
                bytes[0] = 0x40 | (bytes[0] & 0x0f);
            }
            if let Ok(p) = Ipv4Packet::new_checked(&bytes[..]) {
                let _ = Ipv4Repr::parse(&p);
                prop_assert!(p.header_len() + p.payload().len() == usize::from(p.total_len()));
                let _ = (p.ident(), p.frag_offset(), p.more_frags(), p.verify_checksum());
            } else {
                prop_assert!(Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&bytes[..])).is_err());
            }
        }
    }
}
