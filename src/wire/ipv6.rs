//! The fixed IPv6 header (RFC 8200), enough to find and answer Neighbor Discovery.
//!
//! Layout (40 bytes): version (4 bits), traffic class (8), flow label (20), payload length,
//! next header, hop limit, source and destination addresses. Extension headers are not walked:
//! Neighbor Discovery messages are sent without them (RFC 4861 requires hop limit 255 and a
//! directly following ICMPv6 header in practice), and everything else is switched as opaque
//! payload. Jumbograms (payload length 0 plus a hop-by-hop option) are not supported.

use super::{read_u16, write_u16, Error, Result};
use std::net::Ipv6Addr;

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// A read/write view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps a buffer, checking version 6 and that header and payload fit.
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
        if self.version() != 6 {
            return Err(Error::Malformed);
        }
        if buf.len() < HEADER_LEN + usize::from(self.payload_len()) {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn word0(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VER_TC_FLOW..field::VER_TC_FLOW + 4];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// IP version (6 for a checked packet).
    pub fn version(&self) -> u8 {
        (self.word0() >> 28) as u8
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        (self.word0() >> 20) as u8
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        self.word0() & 0x000f_ffff
    }

    /// Payload length (everything after the fixed header).
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Next header (see `ipv4::protocol`).
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::SRC..field::SRC + 16])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::DST..field::DST + 16])
    }

    /// The payload, `payload_len` bytes after the header (padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

fn addr(bytes: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(bytes);
    Ipv6Addr::from(a)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets version 6, the traffic class and the flow label.
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let word = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        self.buffer.as_mut()[field::VER_TC_FLOW..field::VER_TC_FLOW + 4].copy_from_slice(&word.to_be_bytes());
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the next header.
    pub fn set_next_header(&mut self, value: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = value;
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 16].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 16].copy_from_slice(&addr.octets());
    }

    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The parsed fixed IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header.
    pub next_header: u8,
    /// Payload length.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Ipv6Repr {
    /// Parses the fixed header.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Ipv6Packet<&T>) -> Result<Self> {
        packet.check()?;
        Ok(Ipv6Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
        })
    }

    /// Header bytes `emit` writes: 40.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header with traffic class and flow label 0.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv6Packet<T>) {
        debug_assert!(self.payload_len <= usize::from(u16::MAX));
        packet.set_version_tc_flow(0, 0);
        packet.set_payload_len(self.payload_len.min(usize::from(u16::MAX)) as u16);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::protocol;
    use crate::wire::testutil::hex;
    use proptest::prelude::*;

    // From the IPv6 run of the capture in vxlan.rs (vx0 also got 2001:db8::1/64 and ::2/64 with
    // `nodad`; `tcpdump -n -xx -c 4 -i vx0` in B during `ping -6 -c 1 -s 8 2001:db8::2` from A),
    // Ethernet header stripped. A's Neighbor Solicitation for 2001:db8::2.
    const NS: &str = "6000 0000 0020 3aff 2001 0db8 0000 0000 0000 0000 0000 0001 ff02 0000
        0000 0000 0000 0001 ff00 0002 8700 0c1e 0000 0000 2001 0db8 0000 0000 0000 0000 0000
        0002 0101 0200 0000 100a";
    // A's echo request, which carries a non-zero flow label.
    const ECHO: &str = "6002 77d0 0010 3a40 2001 0db8 0000 0000 0000 0000 0000 0001 2001 0db8
        0000 0000 0000 0000 0000 0002 8000 feb5 1979 0001 0001 0203 0405 0607";

    #[test]
    fn captured_ns_header_round_trips() {
        let bytes = hex(NS);
        let p = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        let repr = Ipv6Repr::parse(&p).unwrap();
        assert_eq!(repr.src_addr, "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(repr.dst_addr, "ff02::1:ff00:2".parse::<Ipv6Addr>().unwrap());
        assert_eq!((repr.next_header, repr.hop_limit, repr.payload_len), (protocol::ICMPV6, 255, 32));
        let mut out = bytes.clone();
        out[..HEADER_LEN].fill(0xee);
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, bytes);
    }

    #[test]
    fn flow_label_is_read_and_settable() {
        let bytes = hex(ECHO);
        let p = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!((p.traffic_class(), p.flow_label(), p.hop_limit()), (0, 0x277d0, 64));
        assert_eq!(p.payload().len(), 16);
        let repr = Ipv6Repr::parse(&p).unwrap();
        let mut out = bytes.clone();
        let mut q = Ipv6Packet::new_unchecked(&mut out[..]);
        repr.emit(&mut q);
        q.set_version_tc_flow(0, 0x277d0);
        assert_eq!(out, bytes);
        let (h, _) = etherparse::Ipv6Header::from_slice(&bytes).unwrap();
        assert_eq!(h.flow_label.value(), p.flow_label());
    }

    #[test]
    fn truncated_and_malformed() {
        let bytes = hex(NS);
        for len in 0..bytes.len() {
            assert_eq!(Ipv6Packet::new_checked(&bytes[..len]).err(), Some(Error::Truncated), "{len}");
        }
        let mut v4 = bytes.clone();
        v4[0] = 0x40;
        assert_eq!(Ipv6Packet::new_checked(&v4[..]).err(), Some(Error::Malformed));
    }

    proptest! {
        #![proptest_config(crate::wire::testutil::proptest_config())]
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if !bytes.is_empty() {
                bytes[0] = 0x60 | (bytes[0] & 0x0f);
            }
            match Ipv6Packet::new_checked(&bytes[..]) {
                Ok(p) => {
                    let repr = Ipv6Repr::parse(&p).unwrap();
                    prop_assert_eq!(repr.payload_len, p.payload().len());
                }
                Err(_) => prop_assert!(Ipv6Repr::parse(&Ipv6Packet::new_unchecked(&bytes[..])).is_err()),
            }
        }
    }
}
