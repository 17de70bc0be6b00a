//! ARP (RFC 826) for Ethernet and IPv4 only: the one combination an overlay switch proxies.
//!
//! Layout (28 bytes): hardware type 1, protocol type 0x0800, hardware length 6, protocol length
//! 4, operation, sender MAC, sender IP, target MAC, target IP. Ethernet pads ARP to 46 bytes, so
//! trailing bytes after the 28 are allowed and ignored.
//!
//! RFC 5227 gives two special shapes the proxy must not answer or learn blindly from:
//! a *probe* (sender IP 0.0.0.0: "is anyone using this address?") and a *gratuitous* ARP or
//! announcement (sender IP == target IP: "this address is at my MAC now").

use super::ethernet::EthernetAddress;
use super::{read_ipv4, read_u16, write_u16, Error, Result};
use std::net::Ipv4Addr;

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// Length of the fixed part before the addresses.
const FIXED_LEN: usize = 8;
/// Hardware type for Ethernet.
const HTYPE_ETHERNET: u16 = 1;
/// Protocol type for IPv4.
const PTYPE_IPV4: u16 = 0x0800;

mod field {
    use core::ops::Range;
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: usize = 14;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: usize = 24;
}

/// The ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// 1: who has the target IP?
    Request,
    /// 2: the sender IP is at the sender MAC.
    Reply,
    /// Anything else (RARP and friends).
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => ArpOperation::Unknown(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(op: ArpOperation) -> u16 {
        match op {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(other) => other,
        }
    }
}

/// A read/write view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps a buffer, checking it is a complete Ethernet/IPv4 ARP packet.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// Checks length and address types (other types are `Unsupported`).
    pub fn check(&self) -> Result<()> {
        let buf = self.buffer.as_ref();
        if buf.len() < FIXED_LEN {
            return Err(Error::Truncated);
        }
        if read_u16(buf, field::HTYPE) != HTYPE_ETHERNET
            || read_u16(buf, field::PTYPE) != PTYPE_IPV4
            || buf[field::HLEN] != 6
            || buf[field::PLEN] != 4
        {
            return Err(Error::Unsupported);
        }
        if buf.len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The operation.
    pub fn operation(&self) -> ArpOperation {
        read_u16(self.buffer.as_ref(), field::OPER).into()
    }

    /// Sender MAC address.
    pub fn source_hardware_addr(&self) -> EthernetAddress {
        mac(&self.buffer.as_ref()[field::SHA])
    }

    /// Sender IPv4 address.
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SPA)
    }

    /// Target MAC address (all zero in a request).
    pub fn target_hardware_addr(&self) -> EthernetAddress {
        mac(&self.buffer.as_ref()[field::THA])
    }

    /// Target IPv4 address.
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::TPA)
    }
}

fn mac(bytes: &[u8]) -> EthernetAddress {
    let mut a = [0u8; 6];
    a.copy_from_slice(bytes);
    EthernetAddress(a)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes the fixed Ethernet/IPv4 header fields (types and lengths).
    pub fn set_ethernet_ipv4_types(&mut self) {
        let buf = self.buffer.as_mut();
        write_u16(buf, field::HTYPE, HTYPE_ETHERNET);
        write_u16(buf, field::PTYPE, PTYPE_IPV4);
        buf[field::HLEN] = 6;
        buf[field::PLEN] = 4;
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, op: ArpOperation) {
        write_u16(self.buffer.as_mut(), field::OPER, op.into());
    }

    /// Sets the sender MAC address.
    pub fn set_source_hardware_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&addr.0);
    }

    /// Sets the sender IPv4 address.
    pub fn set_source_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA..field::SPA + 4].copy_from_slice(&addr.octets());
    }

    /// Sets the target MAC address.
    pub fn set_target_hardware_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&addr.0);
    }

    /// Sets the target IPv4 address.
    pub fn set_target_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA..field::TPA + 4].copy_from_slice(&addr.octets());
    }
}

/// A parsed Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    /// Request, reply or other.
    pub operation: ArpOperation,
    /// Sender MAC address.
    pub source_hardware_addr: EthernetAddress,
    /// Sender IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC address.
    pub target_hardware_addr: EthernetAddress,
    /// Target IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Parses a packet (checks it again, so an unchecked view is fine too).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &ArpPacket<&T>) -> Result<Self> {
        packet.check()?;
        Ok(ArpRepr {
            operation: packet.operation(),
            source_hardware_addr: packet.source_hardware_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// Bytes `emit` writes: 28.
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet into the front of `packet` (at least 28 bytes).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        packet.set_ethernet_ipv4_types();
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(self.source_hardware_addr);
        packet.set_source_protocol_addr(self.source_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }

    /// RFC 5227 announcement / gratuitous ARP: a request or reply whose sender IP equals its
    /// target IP (and is not 0.0.0.0).
    pub fn is_gratuitous(&self) -> bool {
        matches!(self.operation, ArpOperation::Request | ArpOperation::Reply)
            && self.source_protocol_addr == self.target_protocol_addr
            && !self.source_protocol_addr.is_unspecified()
    }

    /// RFC 5227 probe: the sender IP is 0.0.0.0 (the sender does not own an address yet).
    pub fn is_probe(&self) -> bool {
        self.source_protocol_addr.is_unspecified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::hex;
    use proptest::prelude::*;

    // ARP payloads (Ethernet header stripped) from the overlay capture described in vxlan.rs:
    // in netns B, `tcpdump -n -xx -c 6 -i vx0` while A ran `ping -c 1 192.0.2.2` over a kernel
    // vxlan (id 1042). A's request and B's reply.
    const REQUEST: &str = "0001 0800 0604 0001 0200 0000 100a c000 0201 0000 0000 0000 c000 0202";
    const REPLY: &str = "0001 0800 0604 0002 0200 0000 100b c000 0202 0200 0000 100a c000 0201";

    fn roundtrip(bytes: &[u8]) -> ArpRepr {
        let p = ArpPacket::new_checked(bytes).unwrap();
        let repr = ArpRepr::parse(&p).unwrap();
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
        assert_eq!(out, &bytes[..PACKET_LEN]);
        repr
    }

    #[test]
    fn captured_request_and_reply() {
        let req = roundtrip(&hex(REQUEST));
        assert_eq!(req.operation, ArpOperation::Request);
        assert_eq!(req.source_protocol_addr, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(req.target_protocol_addr, Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(req.target_hardware_addr, EthernetAddress::default());
        assert!(!req.is_gratuitous() && !req.is_probe());

        let rep = roundtrip(&hex(REPLY));
        assert_eq!(rep.operation, ArpOperation::Reply);
        assert_eq!(rep.source_hardware_addr.to_string(), "02:00:00:00:10:0b");
        assert!(!rep.is_gratuitous() && !rep.is_probe());
    }

    #[test]
    fn ethernet_padding_is_ignored() {
        let mut bytes = hex(REQUEST);
        bytes.extend_from_slice(&[0u8; 18]);
        assert_eq!(roundtrip(&bytes).operation, ArpOperation::Request);
    }

    #[test]
    fn gratuitous_and_probe() {
        let base = ArpRepr::parse(&ArpPacket::new_checked(&hex(REQUEST)[..]).unwrap()).unwrap();
        let announce = ArpRepr { target_protocol_addr: base.source_protocol_addr, ..base };
        assert!(announce.is_gratuitous() && !announce.is_probe());
        let reply_announce = ArpRepr { operation: ArpOperation::Reply, ..announce };
        assert!(reply_announce.is_gratuitous());
        let odd = ArpRepr { operation: ArpOperation::Unknown(3), ..announce };
        assert!(!odd.is_gratuitous());
        let probe = ArpRepr { source_protocol_addr: Ipv4Addr::UNSPECIFIED, ..base };
        assert!(probe.is_probe() && !probe.is_gratuitous());
        let both_zero = ArpRepr { target_protocol_addr: Ipv4Addr::UNSPECIFIED, ..probe };
        assert!(both_zero.is_probe() && !both_zero.is_gratuitous());
    }

    #[test]
    fn truncated_and_unsupported() {
        let bytes = hex(REQUEST);
        for len in 0..PACKET_LEN {
            assert_eq!(ArpPacket::new_checked(&bytes[..len]).err(), Some(Error::Truncated), "{len}");
        }
        for (at, value) in [(1, 6u8), (2, 0x86), (4, 8), (5, 16)] {
            let mut b = bytes.clone();
            b[at] = value;
            assert_eq!(ArpPacket::new_checked(&b[..]).err(), Some(Error::Unsupported));
        }
    }

    proptest! {
        #![proptest_config(crate::wire::testutil::proptest_config())]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40),
                                       fix_types in any::<bool>()) {
            let mut bytes = bytes;
            if fix_types && bytes.len() >= FIXED_LEN {
                bytes[..6].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
            }
            match ArpPacket::new_checked(&bytes[..]) {
                Ok(p) => { ArpRepr::parse(&p).unwrap(); }
                Err(_) => prop_assert!(ArpRepr::parse(&ArpPacket::new_unchecked(&bytes[..])).is_err()),
            }
        }
    }
}
