//! Zero-copy packet views (smoltcp style): `Packet<T: AsRef<[u8]>>` with `new_checked`, plus a
//! `Repr` with `parse` / `emit` / `buffer_len`. Nothing here imports anything above `wire`.
//!
//! Conventions shared by every view:
//! - `new_unchecked` wraps any buffer; accessors may then panic on a short buffer. Anything that
//!   came off the wire goes through `new_checked`, which validates every length the accessors
//!   rely on, so accessors on a checked view never panic.
//! - Malformed input is an [`Error`], never a panic; the switch core counts it per drop reason.
//! - A `Repr` is the parsed, owned summary of a header. `emit` writes exactly `buffer_len()`
//!   header bytes into a caller-owned buffer (so outer headers are prepended in place).

use core::fmt;

pub mod arp;
pub mod checksum;
pub mod esp;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;
pub mod vxlan;

/// Why a buffer could not be viewed or parsed as the expected packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than a header or a length field says it must be.
    Truncated,
    /// A field holds a value the protocol forbids (bad version, bad checksum, missing flag).
    Malformed,
    /// Well formed, but a variant vxswitch does not handle (e.g. non-Ethernet/IPv4 ARP).
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated packet",
            Error::Malformed => "malformed packet",
            Error::Unsupported => "unsupported packet",
        })
    }
}

impl std::error::Error for Error {}

/// Result of parsing wire data.
pub type Result<T> = core::result::Result<T, Error>;

/// Reads a big-endian `u16` at `at`; the caller has checked the length.
#[inline]
pub(crate) fn read_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

/// Writes a big-endian `u16` at `at`; the caller has checked the length.
#[inline]
pub(crate) fn write_u16(buf: &mut [u8], at: usize, value: u16) {
    buf[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Reads an IPv4 address at `at`; the caller has checked the length.
#[inline]
pub(crate) fn read_ipv4(buf: &[u8], at: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(buf[at], buf[at + 1], buf[at + 2], buf[at + 3])
}

#[cfg(test)]
pub(crate) mod testutil {
    /// Decodes a `tcpdump -xx` style hex dump (whitespace ignored) into bytes.
    pub fn hex(dump: &str) -> Vec<u8> {
        let clean: String = dump.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        hex::decode(clean).expect("test vector is valid hex")
    }

    /// Deterministic property tests: fixed seed, many cases, no regression files.
    pub fn proptest_config() -> proptest::test_runner::Config {
        proptest::test_runner::Config {
            cases: 2048,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x7673_7769),
            failure_persistence: None,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::arp::{ArpPacket, ArpRepr};
    use super::ethernet::{EtherType, EthernetFrame, EthernetRepr};
    use super::icmpv4::{Icmpv4Packet, Icmpv4Repr};
    use super::icmpv6::{Icmpv6Packet, NdiscRepr};
    use super::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
    use super::ipv6::{Ipv6Packet, Ipv6Repr};
    use super::tcp::{TcpPacket, TcpRepr};
    use super::testutil::hex;
    use super::udp::{UdpPacket, UdpRepr};
    use super::vxlan::{VxlanPacket, VxlanRepr, DEFAULT_PORT};
    use super::*;
    use proptest::prelude::*;

    // Whole underlay frames from the kernel vxlan capture described in vxlan.rs, as received on
    // vethB: the ICMP port unreachable (VXLAN > Ethernet > IPv4 > ICMP quoting IPv4 > UDP) and,
    // from the IPv6 run, A's Neighbor Solicitation (VXLAN > Ethernet > IPv6 > ICMPv6).
    const FRAMES: [&str; 3] = [
        "0200 0000 000a 0200 0000 000b 0800 4500 0072 7b8a 0000 4011 aa86 c633 6402 c633 6401
         cbdb 12b5 005e 54da 0800 0000 0004 1200 0200 0000 100a 0200 0000 100b 0800 45c0 0040
         a001 0000 4001 55f8 c000 0202 c000 0201 0303 da59 0000 0000 4500 0024 ca7a 4000 4011
         ec4a c000 0201 c000 0202 d2b7 14e9 0010 8425 7678 7377 6974 6368",
        "0200 0000 000b 0200 0000 000a 0800 4500 007a 7ce6 0000 4011 a922 c633 6401 c633 6402
         d8bd 12b5 0066 54e2 0800 0000 0004 1200 3333 ff00 0002 0200 0000 100a 86dd 6000 0000
         0020 3aff 2001 0db8 0000 0000 0000 0000 0000 0001 ff02 0000 0000 0000 0000 0001 ff00
         0002 8700 0c1e 0000 0000 2001 0db8 0000 0000 0000 0000 0000 0002 0101 0200 0000 100a",
        "0200 0000 000b 0200 0000 000a 0800 4500 004e e610 0000 4011 4024 c633 6401 c633 6402
         af59 12b5 003a 54b6 0800 0000 0004 1200 ffff ffff ffff 0200 0000 100a 0806 0001 0800
         0604 0001 0200 0000 100a c000 0201 0000 0000 0000 c000 0202",
    ];

    /// Decodes every layer the views know, as deep as it goes; returns how many layers parsed.
    fn decode_all(frame: &[u8]) -> Result<usize> {
        let eth = EthernetFrame::new_checked(frame)?;
        EthernetRepr::parse(&eth)?;
        let inner = match eth.ethertype() {
            EtherType::ARP => ArpRepr::parse(&ArpPacket::new_checked(eth.payload())?).map(|_| 1)?,
            EtherType::IPV4 => decode_ipv4(eth.payload())?,
            EtherType::IPV6 => decode_ipv6(eth.payload())?,
            _ => 0,
        };
        Ok(1 + inner)
    }

    fn decode_ipv4(bytes: &[u8]) -> Result<usize> {
        let ip = Ipv4Packet::new_checked(bytes)?;
        let repr = Ipv4Repr::parse(&ip)?;
        let inner = match repr.protocol {
            protocol::UDP => {
                let udp = UdpPacket::new_checked(ip.payload())?;
                UdpRepr::parse(&udp)?;
                let _ = udp.verify_checksum(repr.src_addr, repr.dst_addr);
                if udp.dst_port() == DEFAULT_PORT {
                    let vx = VxlanPacket::new_checked(udp.payload())?;
                    VxlanRepr::parse(&vx)?;
                    let _ = vx.reserved_bits_set();
                    2 + decode_all(vx.payload())?
                } else {
                    1
                }
            }
            protocol::TCP => {
                let tcp = TcpPacket::new_checked(ip.payload())?;
                TcpRepr::parse(&tcp)?;
                let _ = tcp.verify_checksum_v4(repr.src_addr, repr.dst_addr);
                1
            }
            protocol::ICMP => match Icmpv4Repr::parse(&Icmpv4Packet::new_checked(ip.payload())?)? {
                Icmpv4Repr::DstUnreachable { invoking, .. } | Icmpv4Repr::TimeExceeded { invoking, .. } => {
                    let quoted = Ipv4Packet::new_unchecked(invoking);
                    let _ = (quoted.src_addr(), quoted.dst_addr(), quoted.protocol(), quoted.header());
                    1
                }
                _ => 1,
            },
            _ => 0,
        };
        Ok(1 + inner)
    }

    fn decode_ipv6(bytes: &[u8]) -> Result<usize> {
        let ip = Ipv6Packet::new_checked(bytes)?;
        let repr = Ipv6Repr::parse(&ip)?;
        if repr.next_header != protocol::ICMPV6 {
            return Ok(1);
        }
        let icmp = Icmpv6Packet::new_checked(ip.payload())?;
        NdiscRepr::parse(&icmp, &repr.src_addr, &repr.dst_addr)?;
        Ok(2)
    }

    #[test]
    fn captured_frames_decode_all_the_way_down() {
        let depths: Vec<usize> = FRAMES.iter().map(|f| decode_all(&hex(f)).unwrap()).collect();
        // Ethernet, IPv4, UDP, VXLAN, then Ethernet + IPv4 + ICMP / Ethernet + IPv6 + ICMPv6 /
        // Ethernet + ARP.
        assert_eq!(depths, vec![7, 7, 6]);
    }

    #[test]
    fn every_truncation_is_an_error() {
        for f in FRAMES {
            let bytes = hex(f);
            for len in 0..bytes.len() {
                assert!(decode_all(&bytes[..len]).is_err(), "len {len} of {f}");
            }
        }
    }

    #[test]
    fn error_display() {
        assert_eq!(Error::Truncated.to_string(), "truncated packet");
        let boxed: Box<dyn std::error::Error> = Box::new(Error::Malformed);
        assert_eq!(boxed.to_string(), "malformed packet");
    }

    proptest! {
        #![proptest_config(testutil::proptest_config())]
        #[test]
        fn mutated_captures_never_panic(which in 0..FRAMES.len(),
                                        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
                                        cut in any::<usize>()) {
            let mut bytes = hex(FRAMES[which]);
            for (at, value) in edits {
                let len = bytes.len();
                bytes[at % len] = value;
            }
            bytes.truncate(cut % (bytes.len() + 1));
            let _ = decode_all(&bytes);
        }
    }
}
