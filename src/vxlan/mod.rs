//! VXLAN encapsulation and decapsulation over caller-owned buffers (RFC 7348).
//!
//! The outer IPv4 and UDP headers belong to the kernel (we send through a UDP socket), so
//! encapsulation only writes the 8-byte VXLAN header into the headroom in front of the inner
//! frame: the inner frame itself is never copied.
//!
//! Reserved bits: RFC 7348 says reserved fields "MUST be set to zero on transmission and ignored
//! on receipt"; Linux drops such frames. vxswitch follows the RFC (a peer that sets GBP/GPE bits
//! still works) and counts every such frame, so an operator sees it happen.
//!
//! Source port: like Linux, the outer UDP source port is chosen from a hash of the inner flow, so
//! ECMP underlays spread flows while one flow stays on one path. [`flow_hash`] computes it; the
//! UDP driver maps the hash onto its pool of source sockets.

use core::ops::Range;

use crate::wire::ethernet::{EtherType, EthernetFrame};
use crate::wire::ipv4::{self, protocol, Ipv4Packet};
use crate::wire::udp::UdpPacket;
use crate::wire::vxlan::{Vni, VxlanPacket, VxlanRepr, HEADER_LEN};
use crate::wire::Error;

/// Bytes of headroom the encapsulation needs in front of the inner frame.
pub const ENCAP_HEADROOM: usize = HEADER_LEN;

/// Outer overhead over IPv4: inner Ethernet 14 + VXLAN 8 + UDP 8 + IPv4 20.
pub const IPV4_OVERHEAD: usize = 50;

/// Write the VXLAN header in front of `buf[frame]` and return the range of the UDP payload.
/// `frame.start` must be at least [`ENCAP_HEADROOM`].
// hot path
#[inline]
pub fn encap(buf: &mut [u8], frame: Range<usize>, vni: Vni) -> Range<usize> {
    debug_assert!(frame.start >= ENCAP_HEADROOM);
    let start = frame.start - ENCAP_HEADROOM;
    let mut packet = VxlanPacket::new_unchecked(&mut buf[start..frame.start]);
    VxlanRepr { vni }.emit(&mut packet);
    start..frame.end
}

/// A decapsulated VXLAN datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decapped {
    /// The network identifier.
    pub vni: Vni,
    /// Where the inner Ethernet frame lies in the buffer.
    pub inner: Range<usize>,
    /// Whether any reserved bit was set (accepted, but counted).
    pub reserved_bits: bool,
}

/// Parse the VXLAN header of `buf[payload]`.
// hot path
#[inline]
pub fn decap(buf: &[u8], payload: Range<usize>) -> Result<Decapped, Error> {
    let packet = VxlanPacket::new_checked(&buf[payload.clone()])?;
    Ok(Decapped { vni: packet.vni(), inner: payload.start + HEADER_LEN..payload.end, reserved_bits: packet.reserved_bits_set() })
}

/// Hash of the inner flow (MACs, and for IPv4 the addresses, protocol and ports) of a frame
/// whose Ethernet header is whole (a checked view, or one of a frame checked earlier).
///
/// Fragments hash without ports so all fragments of a datagram take one path. Below Ethernet
/// only the fields are read (no version or length validation): any frame hashes, and a
/// malformed one just lands on some path.
// hot path
#[inline]
pub fn flow_hash<T: AsRef<[u8]>>(eth: &EthernetFrame<T>) -> u32 {
    let mut h = Fnv::new();
    h.write(eth.dst_addr().as_bytes());
    h.write(eth.src_addr().as_bytes());
    let payload = eth.payload();
    if eth.ethertype() != EtherType::IPV4 || payload.len() < ipv4::HEADER_LEN {
        return h.finish();
    }
    let ip = Ipv4Packet::new_unchecked(payload);
    let proto = ip.protocol();
    h.write(&ip.src_addr().octets());
    h.write(&ip.dst_addr().octets());
    h.write(&[proto]);
    let ihl = ip.header_len();
    let has_ports = proto == protocol::TCP || proto == protocol::UDP;
    if has_ports && !ip.is_fragment() && ihl >= ipv4::HEADER_LEN && payload.len() >= ihl + 4 {
        // TCP and UDP keep their ports in the same first four bytes.
        let ports = UdpPacket::new_unchecked(&payload[ihl..]);
        h.write(&ports.src_port().to_be_bytes());
        h.write(&ports.dst_port().to_be_bytes());
    }
    h.finish()
}

/// Outer UDP source port for a flow hash, in the Linux default ephemeral range 32768..=60999.
#[inline]
pub fn source_port(hash: u32) -> u16 {
    const LOW: u32 = 32768;
    const SPAN: u32 = 61000 - 32768;
    (LOW + ((u64::from(hash) * u64::from(SPAN)) >> 32) as u32) as u16
}

/// FNV-1a, 32 bit: small, no allocation, stable across runs (so tests can assert on it).
struct Fnv(u32);

impl Fnv {
    fn new() -> Self {
        Fnv(0x811c_9dc5)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u32::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }
    fn finish(&self) -> u32 {
        // Final avalanche so that low bits are usable directly.
        let mut x = self.0;
        x ^= x >> 16;
        x = x.wrapping_mul(0x7feb_352d);
        x ^= x >> 15;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_udp(src_port: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8];
        f[12] = 0x08;
        f[14] = 0x45;
        f[23] = 17;
        f[26..30].copy_from_slice(&[192, 0, 2, 1]);
        f[30..34].copy_from_slice(&[192, 0, 2, 2]);
        f[34..36].copy_from_slice(&src_port.to_be_bytes());
        f
    }

    #[test]
    fn encap_then_decap_round_trips_without_moving_the_frame() {
        let mut buf = vec![0u8; 64];
        buf[8..22].copy_from_slice(&[0xffu8; 14]);
        let vni = Vni::new(1042).unwrap();
        let payload = encap(&mut buf, 8..22, vni);
        assert_eq!(payload, 0..22);
        assert_eq!(&buf[0..8], &[0x08, 0, 0, 0, 0x00, 0x04, 0x12, 0x00]);
        let d = decap(&buf, payload).unwrap();
        assert_eq!(d, Decapped { vni, inner: 8..22, reserved_bits: false });
    }

    /// The flow hash of a frame, through a checked view as the switch hands it.
    fn hash(frame: &[u8]) -> u32 {
        flow_hash(&EthernetFrame::new_checked(frame).unwrap())
    }

    #[test]
    fn flow_hash_separates_flows_and_ignores_nothing_relevant() {
        let a = hash(&frame_udp(1000));
        let b = hash(&frame_udp(1001));
        assert_ne!(a, b);
        assert_eq!(a, hash(&frame_udp(1000)));
        let ports: std::collections::HashSet<u16> = (0..64).map(|p| source_port(hash(&frame_udp(p)))).collect();
        assert!(ports.len() > 50, "source ports spread: {}", ports.len());
        assert!(ports.iter().all(|p| (32768..61000).contains(p)));
    }

    #[test]
    fn flow_hash_is_stable() {
        // The hash feeds the outer source port: a change would move every flow to another path
        // on an ECMP underlay. These are the values of the byte-offset version it replaced.
        assert_eq!(hash(&frame_udp(1000)), reference_hash(&frame_udp(1000)));
        let mut tagged = frame_udp(53);
        tagged.splice(12..12, [0x81, 0x00, 0x00, 0x2a]);
        assert_eq!(hash(&tagged), reference_hash(&tagged));
        let mut fragment = frame_udp(53);
        fragment[20] = 0x20; // MF
        assert_eq!(hash(&fragment), reference_hash(&fragment));
        for len in 18..=tagged.len() {
            assert_eq!(hash(&tagged[..len]), reference_hash(&tagged[..len]), "length {len}");
        }
        for len in 14..=fragment.len() {
            assert_eq!(hash(&frame_udp(9)[..len]), reference_hash(&frame_udp(9)[..len]), "length {len}");
        }
    }

    /// The hash as it was written with byte offsets, kept to pin `flow_hash` to it.
    fn reference_hash(frame: &[u8]) -> u32 {
        let mut h = Fnv::new();
        if frame.len() < 14 {
            h.write(frame);
            return h.finish();
        }
        h.write(&frame[..12]);
        let (ethertype, l3) = match u16::from_be_bytes([frame[12], frame[13]]) {
            0x8100 if frame.len() >= 18 => (u16::from_be_bytes([frame[16], frame[17]]), 18),
            t => (t, 14),
        };
        if ethertype == 0x0800 && frame.len() >= l3 + 20 {
            let ip = &frame[l3..];
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            h.write(&ip[12..20]);
            h.write(&[ip[9]]);
            let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
            if !fragment && (ip[9] == 6 || ip[9] == 17) && ip.len() >= ihl + 4 && ihl >= 20 {
                h.write(&ip[ihl..ihl + 4]);
            }
        }
        h.finish()
    }

    #[test]
    fn flow_hash_never_panics_on_short_frames() {
        for len in 14..60 {
            let _ = hash(&frame_udp(7)[..len.min(42)]);
        }
    }
}
