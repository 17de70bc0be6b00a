//! VXLAN headers (RFC 7348).
//!
//! Layout (8 bytes): flags (the I flag 0x08 says the VNI is valid), 24 reserved bits, the 24-bit
//! VXLAN Network Identifier, 8 reserved bits. The inner Ethernet frame follows; the outer UDP
//! destination port is 4789.
//!
//! Reserved-bit policy: RFC 7348 says reserved fields "MUST be ignored on receipt"; the Linux
//! driver instead drops packets with unknown flags or reserved bits set. That choice belongs to
//! the switch core, not to this view: vxswitch ACCEPTS such packets and COUNTS them, so a peer
//! that sets Group Based Policy (VXLAN-GBP) or VXLAN-GPE bits still interoperates. The view only
//! reports them through [`VxlanPacket::reserved_bits_set`]. A missing I flag is `Malformed`
//! (without it the VNI means nothing).

use super::{Error, Result};
use core::fmt;

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// IANA-assigned UDP destination port for VXLAN.
pub const DEFAULT_PORT: u16 = 4789;
/// The I flag: the VNI field is valid.
pub const FLAG_I: u8 = 0x08;

mod field {
    use core::ops::Range;
    pub const FLAGS: usize = 0;
    pub const RESERVED1: Range<usize> = 1..4;
    pub const VNI: Range<usize> = 4..7;
    pub const RESERVED2: usize = 7;
}

/// A 24-bit VXLAN Network Identifier.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Vni(u32);

impl Vni {
    /// The largest VNI, 2^24 - 1.
    pub const MAX: u32 = 0x00ff_ffff;

    /// A VNI if `value` fits in 24 bits.
    pub const fn new(value: u32) -> Option<Vni> {
        if value <= Self::MAX {
            Some(Vni(value))
        } else {
            None
        }
    }

    /// A VNI from a constant known to fit in 24 bits (panics at compile time otherwise).
    pub const fn new_const(value: u32) -> Vni {
        match Vni::new(value) {
            Some(vni) => vni,
            None => panic!("a VNI has 24 bits"),
        }
    }

    /// The numeric value.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TryFrom<u32> for Vni {
    type Error = String;
    fn try_from(value: u32) -> core::result::Result<Self, String> {
        Vni::new(value).ok_or_else(|| format!("VNI {value} does not fit in 24 bits"))
    }
}

impl From<Vni> for u32 {
    fn from(vni: Vni) -> u32 {
        vni.0
    }
}

/// A read/write view of a VXLAN packet (header plus inner frame).
#[derive(Debug, Clone)]
pub struct VxlanPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanPacket<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        VxlanPacket { buffer }
    }

    /// Wraps a buffer, checking it holds the header and the I flag is set.
    // hot path
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
        if self.flags() & FLAG_I == 0 {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The 8 flag bits.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The VNI.
    #[inline]
    pub fn vni(&self) -> Vni {
        let b = &self.buffer.as_ref()[field::VNI];
        Vni(u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }

    /// True when any flag other than I, or any reserved bit, is set.
    // hot path
    #[inline]
    pub fn reserved_bits_set(&self) -> bool {
        let buf = self.buffer.as_ref();
        buf[field::FLAGS] & !FLAG_I != 0 || buf[field::RESERVED1] != [0, 0, 0] || buf[field::RESERVED2] != 0
    }

    /// The inner Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanPacket<T> {
    /// Sets the 8 flag bits.
    #[inline]
    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[field::FLAGS] = flags;
    }

    /// Sets the VNI.
    #[inline]
    pub fn set_vni(&mut self, vni: Vni) {
        self.buffer.as_mut()[field::VNI].copy_from_slice(&vni.0.to_be_bytes()[1..]);
    }

    /// Zeroes both reserved fields.
    #[inline]
    pub fn clear_reserved(&mut self) {
        let buf = self.buffer.as_mut();
        buf[field::RESERVED1].fill(0);
        buf[field::RESERVED2] = 0;
    }

    /// The inner Ethernet frame, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The parsed VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VxlanRepr {
    /// The VNI.
    pub vni: Vni,
}

impl VxlanRepr {
    /// Parses a packet (reserved bits are not an error; see the module doc).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &VxlanPacket<&T>) -> Result<Self> {
        packet.check()?;
        Ok(VxlanRepr { vni: packet.vni() })
    }

    /// Header bytes `emit` writes: 8.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes flags exactly 0x08, zero reserved fields and the VNI.
    // hot path
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut VxlanPacket<T>) {
        packet.set_flags(FLAG_I);
        packet.clear_reserved();
        packet.set_vni(self.vni);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
    use crate::wire::ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
    use crate::wire::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
    use crate::wire::testutil::hex;
    use crate::wire::udp::{UdpPacket, UdpRepr};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    // Captured with a kernel vxlan between two namespaces joined by veth (script as run, as root):
    //   ip netns add vxs-wcapA-$$; ip netns add vxs-wcapB-$$        (deleted by a trap on exit)
    //   ip link add vethA netns A type veth peer name vethB netns B
    //   vethA 02:00:00:00:00:0a 198.51.100.1/24, vethB 02:00:00:00:00:0b 198.51.100.2/24,
    //   `addrgenmode none` on every link (keeps IPv6 MLD/RS noise out)
    //   ip -n A link add vx0 address 02:00:00:00:10:0a type vxlan id 1042 dstport 4789 \
    //       local 198.51.100.1 remote 198.51.100.2 dev vethA      (mirrored in B, ...:10:0b)
    //   vx0: 192.0.2.1/24 in A, 192.0.2.2/24 in B
    //   ip netns exec B tcpdump -n -xx -c 6 -i vethB 'udp port 4789'
    //   ip netns exec A ping -c 1 -W 1 -p 76787377 -s 16 192.0.2.2
    //   ip netns exec A bash -c 'echo -n vxswitch > /dev/udp/192.0.2.2/5353'
    // Frame 1: A's ARP request for 192.0.2.2, VXLAN-encapsulated, as received by B.
    const UNDERLAY_ARP_REQUEST: &str = "0200 0000 000b 0200 0000 000a 0800 4500
        004e e610 0000 4011 4024 c633 6401 c633 6402 af59 12b5 003a 54b6 0800 0000 0004
        1200 ffff ffff ffff 0200 0000 100a 0806 0001 0800 0604 0001 0200 0000 100a c000
        0201 0000 0000 0000 c000 0202";
    // Frame 6: B's ICMP port unreachable for the UDP datagram, on its way back to A.
    const UNDERLAY_PORT_UNREACHABLE: &str = "0200 0000 000a 0200 0000 000b 0800 4500
        0072 7b8a 0000 4011 aa86 c633 6402 c633 6401 cbdb 12b5 005e 54da 0800 0000 0004
        1200 0200 0000 100a 0200 0000 100b 0800 45c0 0040 a001 0000 4001 55f8 c000 0202
        c000 0201 0303 da59 0000 0000 4500 0024 ca7a 4000 4011 ec4a c000 0201 c000 0202
        d2b7 14e9 0010 8425 7678 7377 6974 6368";

    /// Peels the outer Ethernet, IPv4 and UDP headers off a captured underlay frame.
    fn vxlan_of(frame: &[u8]) -> &[u8] {
        let eth = EthernetFrame::new_checked(frame).unwrap();
        assert_eq!(eth.ethertype(), EtherType::IPV4);
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(ip.protocol(), protocol::UDP);
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(udp.dst_port(), DEFAULT_PORT);
        let start = frame.len() - udp.payload().len();
        &frame[start..]
    }

    #[test]
    fn captured_header_parses_and_round_trips() {
        for dump in [UNDERLAY_ARP_REQUEST, UNDERLAY_PORT_UNREACHABLE] {
            let bytes = hex(dump);
            let vx = vxlan_of(&bytes);
            let p = VxlanPacket::new_checked(vx).unwrap();
            assert_eq!(p.flags(), 0x08);
            assert_eq!(p.vni().get(), 1042);
            assert!(!p.reserved_bits_set());
            let repr = VxlanRepr::parse(&p).unwrap();
            let mut out = vx.to_vec();
            out[..HEADER_LEN].fill(0xa5);
            repr.emit(&mut VxlanPacket::new_unchecked(&mut out[..]));
            assert_eq!(out, vx);
        }
    }

    #[test]
    fn whole_underlay_frame_rebuilds_byte_exact() {
        // Emit every layer from its repr into a fresh buffer, inside out, as the encap path does.
        let bytes = hex(UNDERLAY_ARP_REQUEST);
        let eth = EthernetFrame::new_checked(&bytes[..]).unwrap();
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        let vx = VxlanPacket::new_checked(udp.payload()).unwrap();
        let inner = EthernetFrame::new_checked(vx.payload()).unwrap();
        let arp = ArpRepr::parse(&ArpPacket::new_checked(inner.payload()).unwrap()).unwrap();
        assert_eq!(arp.operation, ArpOperation::Request);
        assert_eq!(EthernetRepr::parse(&inner).unwrap().dst_addr, EthernetAddress::BROADCAST);

        let mut out = vec![0u8; bytes.len()];
        let (o_eth, o_ip, o_udp, o_vx) = (0, 14, 34, 42);
        let i_eth = o_vx + HEADER_LEN;
        arp.emit(&mut ArpPacket::new_unchecked(&mut out[i_eth + 14..]));
        EthernetRepr::parse(&inner).unwrap().emit(&mut EthernetFrame::new_unchecked(&mut out[i_eth..]));
        VxlanRepr::parse(&vx).unwrap().emit(&mut VxlanPacket::new_unchecked(&mut out[o_vx..]));
        let udp_repr = UdpRepr::parse(&udp).unwrap();
        let payload_len = bytes.len() - o_vx;
        udp_repr.emit_without_checksum(&mut UdpPacket::new_unchecked(&mut out[o_udp..]), payload_len);
        let ip_repr = Ipv4Repr::parse(&ip).unwrap();
        assert_eq!(ip_repr.payload_len, payload_len + 8);
        let mut o = Ipv4Packet::new_unchecked(&mut out[o_ip..]);
        ip_repr.emit(&mut o);
        // The kernel leaves DF clear and counts idents; the checksum field holds the offload
        // seed (see udp.rs). Copy exactly those over, then everything else must match.
        o.set_ident(ip.ident());
        o.set_flags_and_frag_offset(0);
        o.fill_checksum();
        UdpPacket::new_unchecked(&mut out[o_udp..]).set_checksum(udp.checksum());
        EthernetRepr::parse(&eth).unwrap().emit(&mut EthernetFrame::new_unchecked(&mut out[o_eth..]));
        assert_eq!(out, bytes);
        assert_eq!(Ipv4Addr::new(198, 51, 100, 1), ip_repr.src_addr);
    }

    #[test]
    fn reserved_bits_are_reported_not_rejected() {
        let bytes = hex(UNDERLAY_ARP_REQUEST);
        let vx = vxlan_of(&bytes).to_vec();
        // GBP sets G (0x80) in the flags and a policy ID in the reserved bits; GPE uses 0x04 and
        // a next-protocol byte in the reserved field; the last byte is reserved too.
        for (at, value) in [(0, 0x88u8), (0, 0x0c), (1, 0x01), (2, 0x80), (3, 0x03), (7, 0x01)] {
            let mut b = vx.clone();
            b[at] = value;
            let p = VxlanPacket::new_checked(&b[..]).unwrap();
            assert!(p.reserved_bits_set(), "byte {at} = {value:#x}");
            assert_eq!(VxlanRepr::parse(&p).unwrap().vni.get(), 1042);
            let mut out = b.clone();
            VxlanRepr::parse(&p).unwrap().emit(&mut VxlanPacket::new_unchecked(&mut out[..]));
            assert_eq!(out, vx, "emit clears reserved bits");
        }
    }

    #[test]
    fn missing_i_flag_and_truncation() {
        let bytes = hex(UNDERLAY_ARP_REQUEST);
        let vx = vxlan_of(&bytes).to_vec();
        let mut no_i = vx.clone();
        no_i[0] = 0x00;
        assert_eq!(VxlanPacket::new_checked(&no_i[..]).err(), Some(Error::Malformed));
        no_i[0] = 0x80;
        assert_eq!(VxlanPacket::new_checked(&no_i[..]).err(), Some(Error::Malformed));
        for len in 0..HEADER_LEN {
            assert_eq!(VxlanPacket::new_checked(&vx[..len]).err(), Some(Error::Truncated));
        }
        assert_eq!(VxlanPacket::new_checked(&vx[..HEADER_LEN]).unwrap().payload(), b"");
        // Every prefix of the whole captured frame is refused by some layer, never a panic.
        for len in 0..bytes.len() - 28 {
            let ok = EthernetFrame::new_checked(&bytes[..len]).and_then(|e| Ipv4Packet::new_checked(e.payload()).map(|_| ()));
            assert!(ok.is_err(), "{len}");
        }
    }

    #[test]
    fn vni_bounds_and_text() {
        assert_eq!(Vni::new(Vni::MAX).map(Vni::get), Some(0xff_ffff));
        assert_eq!(Vni::new(1 << 24), None);
        assert_eq!(Vni::new(1042).unwrap().to_string(), "1042");
        assert_eq!(serde_json::to_string(&Vni::new(7).unwrap()).unwrap(), "7");
        assert_eq!(serde_json::from_str::<Vni>("1042").unwrap().get(), 1042);
        assert!(serde_json::from_str::<Vni>("16777216").is_err());
        let mut b = [0u8; 8];
        VxlanRepr { vni: Vni::new(0xabcdef).unwrap() }.emit(&mut VxlanPacket::new_unchecked(&mut b[..]));
        assert_eq!(b, [0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0]);
    }

    proptest! {
        #![proptest_config(crate::wire::testutil::proptest_config())]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            match VxlanPacket::new_checked(&bytes[..]) {
                Ok(p) => {
                    let repr = VxlanRepr::parse(&p).unwrap();
                    prop_assert!(repr.vni.get() <= Vni::MAX);
                    let _ = p.reserved_bits_set();
                }
                Err(_) => prop_assert!(VxlanRepr::parse(&VxlanPacket::new_unchecked(&bytes[..])).is_err()),
            }
        }
    }
}
