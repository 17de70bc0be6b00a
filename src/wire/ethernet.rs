//! Ethernet II frames (IEEE 802.3) with an optional single 802.1Q VLAN tag.
//!
//! Layout: destination MAC (6), source MAC (6), EtherType (2), payload. With an 802.1Q tag the
//! EtherType slot holds 0x8100, followed by the tag control information (PCP 3 bits, DEI 1 bit,
//! VLAN ID 12 bits) and then the real EtherType. The frame check sequence never reaches
//! userspace (TAP devices and packet sockets strip it), so it is not part of the view.
//!
//! Stacked tags (802.1ad, 0x88a8) are not decoded: such a frame shows its outer EtherType and
//! the switch treats it as opaque payload.

use super::{read_u16, write_u16, Error, Result};
use core::fmt;
use core::str::FromStr;

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = 14;
/// Length of an Ethernet header carrying one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = 18;

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const TCI: usize = 14;
    pub const INNER_ETHERTYPE: usize = 16;
}

/// A 48-bit MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// The broadcast address ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    /// Builds an address from a slice; the slice must be exactly six bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; 6] = bytes.try_into().map_err(|_| Error::Truncated)?;
        Ok(EthernetAddress(arr))
    }

    /// The six address bytes.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// True for ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// True when the group bit is set (multicast, including broadcast).
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True when the group bit is clear.
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// True when the locally administered bit is set.
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl FromStr for EthernetAddress {
    type Err = Error;

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-` separators), case-insensitive.
    fn from_str(s: &str) -> Result<Self> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let part = parts.next().ok_or(Error::Malformed)?;
            if part.len() != 2 {
                return Err(Error::Malformed);
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| Error::Malformed)?;
        }
        if parts.next().is_some() {
            return Err(Error::Malformed);
        }
        Ok(EthernetAddress(out))
    }
}

impl serde::Serialize for EthernetAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for EthernetAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(|_| serde::de::Error::custom(format!("invalid MAC address {s:?}")))
    }
}

/// An EtherType value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4.
    pub const IPV4: EtherType = EtherType(0x0800);
    /// ARP.
    pub const ARP: EtherType = EtherType(0x0806);
    /// IEEE 802.1Q VLAN tag.
    pub const VLAN: EtherType = EtherType(0x8100);
    /// IPv6.
    pub const IPV6: EtherType = EtherType(0x86DD);
    /// Transparent Ethernet Bridging (Ethernet inside GRE/NVGRE).
    pub const TEB: EtherType = EtherType(0x6558);
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04x}", self.0)
    }
}

/// A read/write view of an Ethernet frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer, checking it holds the whole header (tag included).
    // hot path
    pub fn new_checked(buffer: T) -> Result<Self> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks the buffer holds the whole header (tag included).
    pub fn check_len(&self) -> Result<()> {
        let buf = self.buffer.as_ref();
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.raw_ethertype() == EtherType::VLAN && buf.len() < VLAN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC address.
    #[inline]
    pub fn dst_addr(&self) -> EthernetAddress {
        let mut a = [0u8; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        EthernetAddress(a)
    }

    /// Source MAC address.
    #[inline]
    pub fn src_addr(&self) -> EthernetAddress {
        let mut a = [0u8; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        EthernetAddress(a)
    }

    /// The EtherType right after the addresses (0x8100 for a tagged frame).
    #[inline]
    pub fn raw_ethertype(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// True when the frame carries an 802.1Q tag.
    #[inline]
    pub fn is_tagged(&self) -> bool {
        self.raw_ethertype() == EtherType::VLAN
    }

    /// The whole 802.1Q tag control information (PCP, DEI, VID) if tagged.
    pub fn vlan_tci(&self) -> Option<u16> {
        self.is_tagged().then(|| read_u16(self.buffer.as_ref(), field::TCI))
    }

    /// The 12-bit 802.1Q VLAN ID if tagged.
    #[inline]
    pub fn vlan_id(&self) -> Option<u16> {
        self.vlan_tci().map(|tci| tci & 0x0fff)
    }

    /// The EtherType of the payload (the inner one after an 802.1Q tag).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        if self.is_tagged() {
            EtherType(read_u16(self.buffer.as_ref(), field::INNER_ETHERTYPE))
        } else {
            self.raw_ethertype()
        }
    }

    /// Header length: 14, or 18 with an 802.1Q tag.
    #[inline]
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The bytes after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr.0);
    }

    /// Sets the source MAC address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr.0);
    }

    /// Sets the EtherType right after the addresses (an untagged frame's EtherType).
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype.0);
    }

    /// Writes an 802.1Q tag (0x8100, `tci`) followed by `inner`; needs an 18-byte header.
    pub fn set_vlan_tag(&mut self, tci: u16, inner: EtherType) {
        let buf = self.buffer.as_mut();
        write_u16(buf, field::ETHERTYPE, EtherType::VLAN.0);
        write_u16(buf, field::TCI, tci);
        write_u16(buf, field::INNER_ETHERTYPE, inner.0);
    }

    /// The bytes after the header, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for EthernetFrame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The parsed Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    /// Source MAC address.
    pub src_addr: EthernetAddress,
    /// Destination MAC address.
    pub dst_addr: EthernetAddress,
    /// 802.1Q VLAN ID, if tagged (PCP and DEI are not kept; `emit` writes them as zero).
    pub vlan_id: Option<u16>,
    /// EtherType of the payload (the inner one when tagged).
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Parses the header of a checked frame.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &EthernetFrame<&T>) -> Result<Self> {
        frame.check_len()?;
        Ok(EthernetRepr { src_addr: frame.src_addr(), dst_addr: frame.dst_addr(), vlan_id: frame.vlan_id(), ethertype: frame.ethertype() })
    }

    /// Header length this repr emits: 14, or 18 with a VLAN ID.
    pub const fn buffer_len(&self) -> usize {
        if self.vlan_id.is_some() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Writes the header (and tag) into the front of `frame`, which must hold `buffer_len()` bytes.
    // hot path
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        match self.vlan_id {
            Some(vid) => frame.set_vlan_tag(vid & 0x0fff, self.ethertype),
            None => frame.set_ethertype(self.ethertype),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::hex;
    use proptest::prelude::*;

    // Captured on the overlay side of a kernel vxlan pair (see the vxlan.rs tests for the full
    // setup): in netns B, `tcpdump -n -xx -c 6 -i vx0` while A ran `ping -c 1 -p 76787377 -s 16
    // 192.0.2.2`. This is A's ARP request for 192.0.2.2, as seen on B's vx0.
    const ARP_REQUEST: &str = "ffff ffff ffff 0200 0000 100a 0806 0001
        0800 0604 0001 0200 0000 100a c000 0201 0000 0000 0000 c000 0202";

    // Same capture: the ICMP echo request from 192.0.2.1 to 192.0.2.2.
    const ECHO_REQUEST: &str = "0200 0000 100b 0200 0000 100a 0800 4500
        002c 5da3 4000 4001 592a c000 0201 c000 0202 0800 fc95 18e9 0001 c85f 026b 0000
        0000 09b5 0e00 0000 0000";

    #[test]
    fn parse_captured_arp_broadcast() {
        let bytes = hex(ARP_REQUEST);
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        assert!(frame.dst_addr().is_broadcast());
        assert!(frame.dst_addr().is_multicast());
        assert_eq!(frame.src_addr().to_string(), "02:00:00:00:10:0a");
        assert!(frame.src_addr().is_unicast());
        assert_eq!(frame.ethertype(), EtherType::ARP);
        assert_eq!(frame.vlan_id(), None);
        assert_eq!(frame.header_len(), 14);
        assert_eq!(frame.payload().len(), 28);
    }

    #[test]
    fn round_trip_is_byte_exact() {
        for dump in [ARP_REQUEST, ECHO_REQUEST] {
            let bytes = hex(dump);
            let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
            let repr = EthernetRepr::parse(&frame).unwrap();
            let mut out = vec![0u8; bytes.len()];
            let mut f = EthernetFrame::new_unchecked(&mut out[..]);
            repr.emit(&mut f);
            f.payload_mut().copy_from_slice(frame.payload());
            assert_eq!(out, bytes);
        }
    }

    /// Inserts an 802.1Q tag after the MAC addresses of an untagged frame.
    fn tag(untagged: &[u8], tci: u16) -> Vec<u8> {
        let mut v = untagged[..12].to_vec();
        v.extend_from_slice(&0x8100u16.to_be_bytes());
        v.extend_from_slice(&tci.to_be_bytes());
        v.extend_from_slice(&untagged[12..]);
        v
    }

    #[test]
    fn vlan_tagged_frame_matches_etherparse() {
        // This kernel has neither 8021q nor VLAN-filtering bridges, so the tagged frame is the
        // captured echo request with a tag for VLAN 42 inserted; etherparse cross-checks it.
        let bytes = tag(&hex(ECHO_REQUEST), 42);
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        assert_eq!(frame.vlan_id(), Some(42));
        assert_eq!(frame.ethertype(), EtherType::IPV4);
        assert_eq!(frame.header_len(), VLAN_HEADER_LEN);

        let sliced = etherparse::SlicedPacket::from_ethernet(&bytes).unwrap();
        match &sliced.vlan {
            Some(etherparse::VlanSlice::SingleVlan(v)) => {
                assert_eq!(v.vlan_identifier().value(), 42);
                assert_eq!(v.ether_type().0, frame.ethertype().0);
            }
            other => panic!("etherparse saw {other:?}"),
        }
        let ip = match sliced.net {
            Some(etherparse::NetSlice::Ipv4(ip)) => ip,
            other => panic!("etherparse saw {other:?}"),
        };
        assert_eq!(ip.header().slice(), &frame.payload()[..20]);

        let repr = EthernetRepr::parse(&frame).unwrap();
        assert_eq!(repr.buffer_len(), 18);
        let mut out = vec![0u8; bytes.len()];
        let mut f = EthernetFrame::new_unchecked(&mut out[..]);
        repr.emit(&mut f);
        f.payload_mut().copy_from_slice(frame.payload());
        assert_eq!(out, bytes);
    }

    #[test]
    fn truncated_at_every_length() {
        let tagged = tag(&hex(ECHO_REQUEST), 7);
        for len in 0..VLAN_HEADER_LEN {
            assert_eq!(EthernetFrame::new_checked(&tagged[..len]).err(), Some(Error::Truncated), "{len}");
        }
        let plain = hex(ECHO_REQUEST);
        for len in 0..HEADER_LEN {
            assert_eq!(EthernetFrame::new_checked(&plain[..len]).err(), Some(Error::Truncated));
        }
        assert!(EthernetFrame::new_checked(&plain[..HEADER_LEN]).is_ok());
    }

    #[test]
    fn address_text_forms() {
        let a: EthernetAddress = "02:00:00:00:10:0A".parse().unwrap();
        assert_eq!(a, EthernetAddress([2, 0, 0, 0, 0x10, 0x0a]));
        assert_eq!(a.to_string(), "02:00:00:00:10:0a");
        assert!(a.is_local());
        assert_eq!("02-00-00-00-10-0a".parse::<EthernetAddress>(), Ok(a));
        for bad in ["", "02:00:00:00:10", "02:00:00:00:10:0a:00", "2:00:00:00:10:0a", "zz:00:00:00:10:0a"] {
            assert_eq!(bad.parse::<EthernetAddress>(), Err(Error::Malformed), "{bad}");
        }
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"02:00:00:00:10:0a\"");
        assert_eq!(serde_json::from_str::<EthernetAddress>(&json).unwrap(), a);
        assert!(serde_json::from_str::<EthernetAddress>("\"nope\"").is_err());
        let multicast = EthernetAddress([0x33, 0x33, 0, 0, 0, 1]);
        assert!(multicast.is_multicast() && !multicast.is_broadcast() && !multicast.is_unicast());
    }

    proptest! {
        #![proptest_config(crate::wire::testutil::proptest_config())]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(frame) = EthernetFrame::new_checked(&bytes[..]) {
                let repr = EthernetRepr::parse(&frame).unwrap();
                prop_assert_eq!(repr.buffer_len(), frame.header_len());
                prop_assert!(frame.payload().len() + frame.header_len() == bytes.len());
            } else {
                prop_assert!(bytes.len() < VLAN_HEADER_LEN);
            }
        }
    }
}
