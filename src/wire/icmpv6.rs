//! ICMPv6 (RFC 4443) Neighbor Solicitation and Advertisement (RFC 4861), for ND proxying.
//!
//! Every ICMPv6 message starts with type, code and a checksum over an IPv6 pseudo-header
//! (source, destination, upper-layer length, next header 58) plus the whole message. NS and NA
//! then carry 4 bytes (reserved / the R, S, O flags of an advertisement), the 16-byte target
//! address, and options as type-length-value records in units of 8 bytes. The ones a switch
//! cares about map IPv6 to Ethernet: Source Link-Layer Address (type 1, in a solicitation) and
//! Target Link-Layer Address (type 2, in an advertisement).
//!
//! Validation follows RFC 4861 sections 7.1.1 and 7.1.2 as far as the message itself goes (code
//! 0, checksum, length, no zero-length option, unicast target, no source link-layer option from
//! the unspecified address). The IPv6 hop limit of 255 must be checked by the caller, which holds
//! the IPv6 header. Unknown options are skipped, as the RFC requires.

use super::ethernet::EthernetAddress;
use super::ipv4::protocol;
use super::{checksum, read_u16, write_u16, Error, Result};
use core::ops::BitOr;
use std::net::Ipv6Addr;

/// Length of the fixed ICMPv6 header (type, code, checksum).
pub const HEADER_LEN: usize = 4;
/// Length of an NS or NA message without options.
pub const NDISC_LEN: usize = 24;
/// Length of a link-layer address option for Ethernet.
const LLADDR_OPT_LEN: usize = 8;

/// ICMPv6 message types.
pub mod message_type {
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Neighbor Solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbor Advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

/// Neighbor Discovery option types.
mod option_type {
    pub const SOURCE_LLADDR: u8 = 1;
    pub const TARGET_LLADDR: u8 = 2;
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const FLAGS: usize = 4;
    pub const RESERVED: usize = 5;
    pub const TARGET: usize = 8;
    pub const OPTIONS: usize = 24;
}

/// A read/write view of an ICMPv6 message (the IPv6 payload).
#[derive(Debug, Clone)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }

    /// Wraps a buffer, checking it holds the 4-byte header (and 24 bytes for NS/NA).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// The checks of [`Self::new_checked`].
    pub fn check(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let ndisc = matches!(self.msg_type(), message_type::NEIGHBOR_SOLICIT | message_type::NEIGHBOR_ADVERT);
        if ndisc && len < NDISC_LEN {
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

    /// Flags of a Neighbor Advertisement (R, S, O in the top bits).
    pub fn neighbor_flags(&self) -> NeighborFlags {
        NeighborFlags(self.buffer.as_ref()[field::FLAGS] & NeighborFlags::ALL.0)
    }

    /// Target address of an NS or NA.
    pub fn target_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::TARGET..field::TARGET + 16]);
        Ipv6Addr::from(a)
    }

    /// The option bytes of an NS or NA.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..]
    }

    /// True when the checksum over pseudo-header and the whole buffer is right.
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        checksum::verify(self.sum(src, dst))
    }

    fn sum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> u16 {
        let buf = self.buffer.as_ref();
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        checksum::combine(&[checksum::pseudo_header_v6(src, dst, protocol::ICMPV6, len), checksum::data(buf)])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
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

    /// Sets the NA flags and zeroes the rest of the reserved word.
    pub fn set_neighbor_flags(&mut self, flags: NeighborFlags) {
        let buf = self.buffer.as_mut();
        buf[field::FLAGS] = flags.0;
        buf[field::RESERVED..field::TARGET].fill(0);
    }

    /// Sets the target address of an NS or NA.
    pub fn set_target_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::TARGET..field::TARGET + 16].copy_from_slice(&addr.octets());
    }

    /// The option bytes, mutable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::OPTIONS..]
    }

    /// Computes and stores the checksum over pseudo-header and the whole buffer.
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let sum = self.sum(src, dst);
        self.set_checksum(!sum);
    }
}

/// The R (router), S (solicited) and O (override) flags of a Neighbor Advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NeighborFlags(u8);

impl NeighborFlags {
    /// No flag.
    pub const NONE: NeighborFlags = NeighborFlags(0);
    /// R: the sender is a router.
    pub const ROUTER: NeighborFlags = NeighborFlags(0x80);
    /// S: sent in response to a solicitation.
    pub const SOLICITED: NeighborFlags = NeighborFlags(0x40);
    /// O: override an existing cache entry.
    pub const OVERRIDE: NeighborFlags = NeighborFlags(0x20);
    const ALL: NeighborFlags = NeighborFlags(0xe0);

    /// True when every flag of `other` is set.
    pub const fn contains(self, other: NeighborFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for NeighborFlags {
    type Output = NeighborFlags;
    fn bitor(self, rhs: NeighborFlags) -> NeighborFlags {
        NeighborFlags(self.0 | rhs.0)
    }
}

/// A parsed Neighbor Solicitation or Advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NdiscRepr {
    /// Who has `target_addr`? (`lladdr` = the sender's MAC, absent during DAD.)
    NeighborSolicit {
        /// The address being resolved.
        target_addr: Ipv6Addr,
        /// Source link-layer address option.
        lladdr: Option<EthernetAddress>,
    },
    /// `target_addr` is at `lladdr`.
    NeighborAdvert {
        /// R, S and O flags.
        flags: NeighborFlags,
        /// The address advertised.
        target_addr: Ipv6Addr,
        /// Target link-layer address option.
        lladdr: Option<EthernetAddress>,
    },
}

/// Finds the Ethernet link-layer address option of `wanted` type; validates all options.
fn find_lladdr(mut options: &[u8], wanted: u8) -> Result<Option<EthernetAddress>> {
    let mut found = None;
    while !options.is_empty() {
        if options.len() < 2 {
            return Err(Error::Truncated);
        }
        let len = usize::from(options[1]) * 8;
        if len == 0 {
            return Err(Error::Malformed);
        }
        if len > options.len() {
            return Err(Error::Truncated);
        }
        if options[0] == wanted && len == LLADDR_OPT_LEN && found.is_none() {
            found = Some(EthernetAddress::from_bytes(&options[2..8])?);
        }
        options = &options[len..];
    }
    Ok(found)
}

impl NdiscRepr {
    /// Parses an NS or NA sent from `src` to `dst` (checksum verified); other ICMPv6 messages
    /// are `Unsupported`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Icmpv6Packet<&T>, src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<Self> {
        packet.check()?;
        let ty = packet.msg_type();
        if ty != message_type::NEIGHBOR_SOLICIT && ty != message_type::NEIGHBOR_ADVERT {
            return Err(Error::Unsupported);
        }
        if !packet.verify_checksum(src, dst) || packet.msg_code() != 0 {
            return Err(Error::Malformed);
        }
        let target_addr = packet.target_addr();
        if target_addr.is_multicast() {
            return Err(Error::Malformed);
        }
        if ty == message_type::NEIGHBOR_SOLICIT {
            let lladdr = find_lladdr(packet.options(), option_type::SOURCE_LLADDR)?;
            if src.is_unspecified() && lladdr.is_some() {
                return Err(Error::Malformed);
            }
            Ok(NdiscRepr::NeighborSolicit { target_addr, lladdr })
        } else {
            let lladdr = find_lladdr(packet.options(), option_type::TARGET_LLADDR)?;
            let flags = packet.neighbor_flags();
            Ok(NdiscRepr::NeighborAdvert { flags, target_addr, lladdr })
        }
    }

    /// Bytes `emit` writes: 24, plus 8 with a link-layer address option.
    pub const fn buffer_len(&self) -> usize {
        let lladdr = match self {
            NdiscRepr::NeighborSolicit { lladdr, .. } | NdiscRepr::NeighborAdvert { lladdr, .. } => lladdr,
        };
        if lladdr.is_some() {
            NDISC_LEN + LLADDR_OPT_LEN
        } else {
            NDISC_LEN
        }
    }

    /// Writes the message into `packet` (exactly `buffer_len()` bytes, since the checksum covers
    /// the whole buffer) and fills the checksum for `src` -> `dst`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Icmpv6Packet<T>, src: &Ipv6Addr, dst: &Ipv6Addr) {
        let (ty, flags, target, lladdr, opt) = match *self {
            NdiscRepr::NeighborSolicit { target_addr, lladdr } => {
                (message_type::NEIGHBOR_SOLICIT, NeighborFlags::NONE, target_addr, lladdr, option_type::SOURCE_LLADDR)
            }
            NdiscRepr::NeighborAdvert { flags, target_addr, lladdr } => {
                (message_type::NEIGHBOR_ADVERT, flags, target_addr, lladdr, option_type::TARGET_LLADDR)
            }
        };
        packet.set_msg_type(ty);
        packet.set_msg_code(0);
        packet.set_neighbor_flags(flags);
        packet.set_target_addr(target);
        if let Some(mac) = lladdr {
            let o = packet.options_mut();
            o[0] = opt;
            o[1] = (LLADDR_OPT_LEN / 8) as u8;
            o[2..8].copy_from_slice(&mac.0);
        }
        packet.fill_checksum(src, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::{EtherType, EthernetFrame, EthernetRepr};
    use crate::wire::ipv6::{Ipv6Packet, Ipv6Repr};
    use crate::wire::testutil::hex;
    use proptest::prelude::*;

    // From the IPv6 run of the capture in vxlan.rs: vx0 with 2001:db8::1/64 (A) and ::2/64 (B),
    // both `nodad`; `tcpdump -n -xx -c 4 -i vx0` in B during `ping -6 -c 1 -s 8 2001:db8::2`
    // from A. Whole overlay frames: A's solicitation and B's advertisement.
    const NS_FRAME: &str = "3333 ff00 0002 0200 0000 100a 86dd 6000 0000 0020 3aff 2001 0db8
        0000 0000 0000 0000 0000 0001 ff02 0000 0000 0000 0000 0001 ff00 0002 8700 0c1e 0000
        0000 2001 0db8 0000 0000 0000 0000 0000 0002 0101 0200 0000 100a";
    const NA_FRAME: &str = "0200 0000 100a 0200 0000 100b 86dd 6000 0000 0020 3aff 2001 0db8
        0000 0000 0000 0000 0000 0002 2001 0db8 0000 0000 0000 0000 0000 0001 8800 7a68 6000
        0000 2001 0db8 0000 0000 0000 0000 0000 0002 0201 0200 0000 100b";

    /// Parses all three layers, rebuilds the frame from the reprs and checks it byte for byte.
    fn roundtrip(bytes: &[u8]) -> NdiscRepr {
        let eth = EthernetFrame::new_checked(bytes).unwrap();
        assert_eq!(eth.ethertype(), EtherType::IPV6);
        let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
        let ip_repr = Ipv6Repr::parse(&ip).unwrap();
        assert_eq!(ip_repr.hop_limit, 255);
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        let nd = NdiscRepr::parse(&icmp, &ip_repr.src_addr, &ip_repr.dst_addr).unwrap();
        assert_eq!(nd.buffer_len(), ip_repr.payload_len);

        let mut out = vec![0u8; bytes.len()];
        EthernetRepr::parse(&eth).unwrap().emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
        ip_repr.emit(&mut Ipv6Packet::new_unchecked(&mut out[14..]));
        let mut p = Icmpv6Packet::new_unchecked(&mut out[54..]);
        nd.emit(&mut p, &ip_repr.src_addr, &ip_repr.dst_addr);
        assert_eq!(out, bytes);
        nd
    }

    #[test]
    fn captured_solicitation() {
        let nd = roundtrip(&hex(NS_FRAME));
        assert_eq!(
            nd,
            NdiscRepr::NeighborSolicit { target_addr: "2001:db8::2".parse().unwrap(), lladdr: Some("02:00:00:00:10:0a".parse().unwrap()) }
        );
    }

    #[test]
    fn captured_advertisement() {
        let nd = roundtrip(&hex(NA_FRAME));
        let NdiscRepr::NeighborAdvert { flags, target_addr, lladdr } = nd else {
            panic!("{nd:?}");
        };
        assert_eq!(flags, NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE);
        assert!(!flags.contains(NeighborFlags::ROUTER));
        assert_eq!(target_addr, "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(lladdr.unwrap().to_string(), "02:00:00:00:10:0b");
    }

    #[test]
    fn proxy_answer_matches_etherparse() {
        let src: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let na = NdiscRepr::NeighborAdvert {
            flags: NeighborFlags::SOLICITED,
            target_addr: src,
            lladdr: Some("02:00:00:00:10:0b".parse().unwrap()),
        };
        let mut out = vec![0u8; na.buffer_len()];
        na.emit(&mut Icmpv6Packet::new_unchecked(&mut out[..]), &src, &dst);
        let (h, rest) = etherparse::Icmpv6Header::from_slice(&out).unwrap();
        let expected = h.icmp_type.calc_checksum(src.octets(), dst.octets(), rest).unwrap();
        assert_eq!(h.checksum, expected);
        assert_eq!(out[4], 0x40);
    }

    #[test]
    fn validation() {
        let frame = hex(NS_FRAME);
        let icmp = frame[54..].to_vec();
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "ff02::1:ff00:2".parse().unwrap();
        let parse = |b: &[u8], s: &Ipv6Addr| NdiscRepr::parse(&Icmpv6Packet::new_unchecked(b), s, &dst);
        let refill = |mut b: Vec<u8>, s: &Ipv6Addr| {
            Icmpv6Packet::new_unchecked(&mut b[..]).fill_checksum(s, &dst);
            b
        };
        assert!(parse(&icmp, &src).is_ok());
        assert_eq!(parse(&icmp, &"2001:db8::9".parse().unwrap()), Err(Error::Malformed));
        for len in 0..NDISC_LEN {
            assert_eq!(Icmpv6Packet::new_checked(&icmp[..len]).err(), Some(Error::Truncated), "{len}");
        }
        let mut zero_opt = icmp.clone();
        zero_opt[25] = 0;
        assert_eq!(parse(&refill(zero_opt, &src), &src), Err(Error::Malformed));
        let mut long_opt = icmp.clone();
        long_opt[25] = 2;
        assert_eq!(parse(&refill(long_opt, &src), &src), Err(Error::Truncated));
        let mut code = icmp.clone();
        code[1] = 1;
        assert_eq!(parse(&refill(code, &src), &src), Err(Error::Malformed));
        let mut mcast_target = icmp.clone();
        mcast_target[8] = 0xff;
        assert_eq!(parse(&refill(mcast_target, &src), &src), Err(Error::Malformed));
        // DAD: from :: with a source link-layer option is invalid, without it is a probe.
        let unspec = Ipv6Addr::UNSPECIFIED;
        assert_eq!(parse(&refill(icmp.clone(), &unspec), &unspec), Err(Error::Malformed));
        let dad = refill(icmp[..NDISC_LEN].to_vec(), &unspec);
        assert!(matches!(parse(&dad, &unspec), Ok(NdiscRepr::NeighborSolicit { lladdr: None, .. })));
        // Unknown options are skipped.
        let mut extra = icmp.clone();
        extra.extend_from_slice(&[14, 1, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(parse(&refill(extra, &src), &src), Ok(NdiscRepr::NeighborSolicit { lladdr: Some(_), .. })));
        let mut echo = icmp.clone();
        echo[0] = message_type::ECHO_REQUEST;
        assert_eq!(parse(&echo, &src), Err(Error::Unsupported));
    }

    proptest! {
        #![proptest_config(crate::wire::testutil::proptest_config())]
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..64),
                                       ns in any::<bool>(), fix in any::<bool>()) {
            let (src, dst) = (Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST);
            if !bytes.is_empty() {
                bytes[0] = if ns { message_type::NEIGHBOR_SOLICIT } else { message_type::NEIGHBOR_ADVERT };
            }
            if fix && bytes.len() >= HEADER_LEN {
                if bytes.len() > 1 { bytes[1] = 0; }
                Icmpv6Packet::new_unchecked(&mut bytes[..]).fill_checksum(&src, &dst);
            }
            if let Ok(p) = Icmpv6Packet::new_checked(&bytes[..]) {
                if let Ok(repr) = NdiscRepr::parse(&p, &src, &dst) {
                    let mut out = vec![0u8; repr.buffer_len()];
                    repr.emit(&mut Icmpv6Packet::new_unchecked(&mut out[..]), &src, &dst);
                    prop_assert_eq!(NdiscRepr::parse(&Icmpv6Packet::new_checked(&out[..]).unwrap(), &src, &dst), Ok(repr));
                }
            } else {
                prop_assert!(NdiscRepr::parse(&Icmpv6Packet::new_unchecked(&bytes[..]), &src, &dst).is_err());
            }
        }
    }
}
