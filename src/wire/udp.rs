//! UDP datagrams (RFC 768).
//!
//! Layout: source port, destination port, length (header + payload), checksum. The checksum
//! covers an IPv4 pseudo-header (addresses, protocol 17, UDP length), the header and the
//! payload; over IPv4 a stored 0 means "no checksum" and a computed 0 is sent as 0xffff.
//!
//! VXLAN (RFC 7348 section 5) allows a zero outer checksum over IPv4; the encap path can use
//! [`UdpRepr::emit_without_checksum`] to skip summing the whole inner frame. Linux sends one by
//! default and lets the NIC finish it, which is why a capture on veth shows only the
//! pseudo-header seed in the checksum field (see the tests).

use super::{checksum, ipv4::protocol, read_u16, write_u16, Error, Result};
use std::net::Ipv4Addr;

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps a buffer, checking 8 <= length field <= buffer length.
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
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len > buf.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length field: header plus payload.
    #[inline]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Stored checksum (0 = none).
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The payload, up to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// True when the checksum is absent (0) or right for these IPv4 addresses.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        checksum::verify(self.sum(src, dst))
    }

    /// Pseudo-header plus datagram partial sum.
    fn sum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        let len = self.len();
        checksum::combine(&[
            checksum::pseudo_header_v4(src, dst, protocol::UDP, u32::from(len)),
            checksum::data(&self.buffer.as_ref()[..usize::from(len)]),
        ])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, port);
    }

    /// Sets the length field.
    #[inline]
    pub fn set_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the stored checksum.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Computes and stores the checksum over the pseudo-header, header and payload (the length
    /// field must be set and the payload in place). A computed 0 is stored as 0xffff.
    // hot path
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let value = !self.sum(src, dst);
        self.set_checksum(if value == 0 { 0xffff } else { value });
    }

    /// The payload, mutable, up to the length field.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The parsed UDP header (length and checksum are derived on emit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl UdpRepr {
    /// Parses a datagram. The checksum is not verified here: call
    /// [`UdpPacket::verify_checksum`] when the addresses are known.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &UdpPacket<&T>) -> Result<Self> {
        packet.check()?;
        Ok(UdpRepr { src_port: packet.src_port(), dst_port: packet.dst_port() })
    }

    /// Header bytes `emit` writes: 8.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header with length `8 + payload_len` and a checksum. The payload must already
    /// be in place behind the header (the in-place encap layout). `payload_len` <= 65527.
    // hot path
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut UdpPacket<T>, src: Ipv4Addr, dst: Ipv4Addr, payload_len: usize) {
        self.emit_without_checksum(packet, payload_len);
        packet.fill_checksum(src, dst);
    }

    /// Writes the header with length `8 + payload_len` and checksum 0 (none; legal over IPv4).
    // hot path
    pub fn emit_without_checksum<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut UdpPacket<T>, payload_len: usize) {
        debug_assert!(payload_len <= usize::from(u16::MAX) - HEADER_LEN);
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len((HEADER_LEN + payload_len).min(usize::from(u16::MAX)) as u16);
        packet.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::hex;
    use proptest::prelude::*;

    const INNER_SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const INNER_DST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    // The UDP datagram of `echo -n vxswitch > /dev/udp/192.0.2.2/5353` run in netns A, captured
    // on B's vx0 (overlay side of the kernel vxlan setup described in vxlan.rs).
    const INNER: &str = "d2b7 14e9 0010 8425 7678 7377 6974 6368";

    const OUTER_SRC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    const OUTER_DST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
    // The outer VXLAN datagram carrying A's ARP request, captured on B's vethB (underlay).
    const OUTER: &str = "af59 12b5 003a 54b6 0800 0000 0004 1200 ffff ffff ffff 0200 0000 100a
        0806 0001 0800 0604 0001 0200 0000 100a c000 0201 0000 0000 0000 c000 0202";

    // Frame 5 of the same underlay capture: that datagram inside VXLAN, as received on vethB.
    const OUTER_WITH_UDP: &str = "b8ca 12b5 0042 1d8c 0800 0000 0004 1200 0200 0000 100b 0200
        0000 100a 0800 4500 0024 ca7a 4000 4011 ec4a c000 0201 c000 0202 d2b7 14e9 0010 8425
        7678 7377 6974 6368";

    #[test]
    fn captured_inner_datagram_round_trips() {
        let bytes = hex(INNER);
        let p = UdpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (53943, 5353, 16));
        assert_eq!(p.payload(), b"vxswitch");
        // Checksum offload was still pending when tcpdump saw it: the field is the seed.
        let seed = checksum::pseudo_header_v4(INNER_SRC, INNER_DST, protocol::UDP, 16);
        assert_eq!(p.checksum(), seed);
        let repr = UdpRepr::parse(&p).unwrap();
        let mut out = bytes.clone();
        out[..HEADER_LEN].fill(0);
        let mut q = UdpPacket::new_unchecked(&mut out[..]);
        repr.emit_without_checksum(&mut q, 8);
        q.set_checksum(seed);
        assert_eq!(out, bytes);

        let mut q = UdpPacket::new_unchecked(&mut out[..]);
        repr.emit(&mut q, INNER_SRC, INNER_DST, 8);
        assert!(q.verify_checksum(INNER_SRC, INNER_DST));
        assert!(!q.verify_checksum(INNER_SRC, Ipv4Addr::new(192, 0, 2, 3)));
        let (h, _) = etherparse::UdpHeader::from_slice(&out).unwrap();
        let ep = h.calc_checksum_ipv4_raw(INNER_SRC.octets(), INNER_DST.octets(), b"vxswitch");
        assert_eq!(h.checksum, ep.unwrap());
    }

    #[test]
    fn kernel_outer_checksum_verifies_once_inner_is_finished() {
        // Linux computed the outer checksum in software with local checksum offload (LCO): it
        // assumes the inner checksum gets finished by the NIC. Finish it, and the kernel's outer
        // checksum must verify with ours; before that it must not.
        let mut bytes = hex(OUTER_WITH_UDP);
        assert!(!UdpPacket::new_checked(&bytes[..]).unwrap().verify_checksum(OUTER_SRC, OUTER_DST));
        let inner_udp = HEADER_LEN + 8 + 14 + 20;
        UdpPacket::new_checked(&mut bytes[inner_udp..]).unwrap().fill_checksum(INNER_SRC, INNER_DST);
        let outer = UdpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(outer.checksum(), 0x1d8c);
        assert!(outer.verify_checksum(OUTER_SRC, OUTER_DST));
    }

    #[test]
    fn captured_outer_datagram_carries_offload_seed() {
        // veth hands the packet to tcpdump before checksum offload finishes it: the field holds
        // the folded pseudo-header sum. Filling it ourselves gives a checksum etherparse accepts.
        let bytes = hex(OUTER);
        let p = UdpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.dst_port(), crate::wire::vxlan::DEFAULT_PORT);
        let seed = checksum::pseudo_header_v4(OUTER_SRC, OUTER_DST, protocol::UDP, 0x3a);
        assert_eq!(p.checksum(), seed);
        assert!(!p.verify_checksum(OUTER_SRC, OUTER_DST));

        let repr = UdpRepr::parse(&p).unwrap();
        let mut out = bytes.clone();
        let mut q = UdpPacket::new_unchecked(&mut out[..]);
        repr.emit(&mut q, OUTER_SRC, OUTER_DST, bytes.len() - HEADER_LEN);
        assert!(q.verify_checksum(OUTER_SRC, OUTER_DST));
        let (h, _) = etherparse::UdpHeader::from_slice(&out).unwrap();
        let ep = h.calc_checksum_ipv4_raw(OUTER_SRC.octets(), OUTER_DST.octets(), &out[HEADER_LEN..]).unwrap();
        assert_eq!(h.checksum, ep);
        assert_eq!(&out[2..6], &bytes[2..6]);

        repr.emit_without_checksum(&mut UdpPacket::new_unchecked(&mut out[..]), bytes.len() - 8);
        let q = UdpPacket::new_checked(&out[..]).unwrap();
        assert_eq!(q.checksum(), 0);
        assert!(q.verify_checksum(OUTER_SRC, OUTER_DST));
    }

    #[test]
    fn zero_sum_is_sent_as_ffff() {
        // Choose the payload word so the datagram sums to 0xffff before complementing.
        let mut out = [0u8; 10];
        let repr = UdpRepr { src_port: 1, dst_port: 2 };
        repr.emit_without_checksum(&mut UdpPacket::new_unchecked(&mut out[..]), 2);
        let partial = UdpPacket::new_unchecked(&out[..]).sum(INNER_SRC, INNER_DST);
        out[8..10].copy_from_slice(&(!partial).to_be_bytes());
        let mut p = UdpPacket::new_unchecked(&mut out[..]);
        p.fill_checksum(INNER_SRC, INNER_DST);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(INNER_SRC, INNER_DST));
    }

    #[test]
    fn truncated_and_malformed() {
        let bytes = hex(INNER);
        for len in 0..bytes.len() {
            assert_eq!(UdpPacket::new_checked(&bytes[..len]).err(), Some(Error::Truncated), "{len}");
        }
        let mut short = bytes.clone();
        short[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(UdpPacket::new_checked(&short[..]).err(), Some(Error::Malformed));
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0; 4]);
        assert_eq!(UdpPacket::new_checked(&padded[..]).unwrap().payload(), b"vxswitch");
    }

    proptest! {
        #![proptest_config(crate::wire::testutil::proptest_config())]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            match UdpPacket::new_checked(&bytes[..]) {
                Ok(p) => {
                    UdpRepr::parse(&p).unwrap();
                    let _ = p.verify_checksum(INNER_SRC, INNER_DST);
                    prop_assert_eq!(p.payload().len() + HEADER_LEN, usize::from(p.len()));
                }
                Err(_) => prop_assert!(UdpRepr::parse(&UdpPacket::new_unchecked(&bytes[..])).is_err()),
            }
        }
    }
}
