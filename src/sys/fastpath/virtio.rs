//! The virtio-net header that a TAP opened with `IFF_VNET_HDR` puts in front of every frame, and
//! the Internet checksum arithmetic the offload paths need (RFC 1071).
//!
//! With `TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)` the kernel hands a TAP reader TCP
//! super-frames of up to 64 KB (one header, many MSS-sized payloads) and frames whose transport
//! checksum is still "partial" (only the pseudo-header sum is in the field); a writer may hand the
//! kernel such frames back. The header says which (`struct virtio_net_hdr`, 10 bytes, fields in the
//! host's byte order for a legacy header on a little-endian machine, which is what TUN/TAP uses):
//!
//! ```text
//! flags(1) gso_type(1) hdr_len(2) gso_size(2) csum_start(2) csum_offset(2)
//! ```
//!
//! On a TAP, `csum_start` and `hdr_len` count from the first byte of the *Ethernet* header (TUN
//! counts from the IP header). `hdr_len` is only a hint from the kernel and is never trusted here:
//! the offload code recomputes it from `csum_start` and the TCP data offset.

/// Length of the legacy `struct virtio_net_hdr` (the TAP default `TUNSETVNETHDRSZ`).
pub const VNET_HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at `csum_start + csum_offset` is partial.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was verified.
pub const F_DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
pub const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_ECN` (flag bit on `gso_type`).
pub const GSO_ECN: u8 = 0x80;
/// Offset of the TCP checksum field inside the TCP header (`csum_offset` for TCP).
pub const TCP_CSUM_OFFSET: u16 = 16;

/// A parsed `struct virtio_net_hdr`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VirtioNetHdr {
    /// `F_NEEDS_CSUM` / `F_DATA_VALID`.
    pub flags: u8,
    /// `GSO_*`.
    pub gso_type: u8,
    /// Length of all headers (a hint on read).
    pub hdr_len: u16,
    /// Payload bytes per segment (the MSS for TCP).
    pub gso_size: u16,
    /// Where checksumming starts, from the first byte of the frame.
    pub csum_start: u16,
    /// Where the checksum goes, from `csum_start`.
    pub csum_offset: u16,
}

impl VirtioNetHdr {
    /// Parse the header from its 10 bytes.
    pub fn parse(b: &[u8; VNET_HDR_LEN]) -> Self {
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        VirtioNetHdr { flags: b[0], gso_type: b[1], hdr_len: u16_at(2), gso_size: u16_at(4), csum_start: u16_at(6), csum_offset: u16_at(8) }
    }

    /// The header's 10 bytes.
    pub fn emit(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }
}

/// One's-complement sum of `data` (big-endian 16-bit words, an odd last byte padded with zero),
/// added to `initial`, not yet folded. // hot path
///
/// The words are added in host order as 32-bit lanes into a 64-bit accumulator (no carry chain,
/// so the loop vectorizes) and the folded result is put into network order at the end: the
/// one's-complement sum is independent of byte order up to a final swap (RFC 1071, 2.(B)).
#[inline]
pub fn sum(data: &[u8], initial: u64) -> u64 {
    let mut acc = 0u64;
    let mut blocks = data.chunks_exact(32);
    for b in &mut blocks {
        for w in b.chunks_exact(4) {
            acc += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
        }
    }
    let mut words = blocks.remainder().chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    }
    let mut tail = [0u8; 4];
    let rest = words.remainder();
    tail[..rest.len()].copy_from_slice(rest);
    acc += u64::from(u32::from_ne_bytes(tail));
    initial + u64::from(u16::from_be(fold(acc)))
}

/// Fold a sum from [`sum`] to 16 bits (not complemented).
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// Unfolded sum of the TCP/UDP pseudo-header: source and destination addresses (4 or 16 bytes
/// each), protocol and transport length.
#[inline]
pub fn pseudo_header_sum(src: &[u8], dst: &[u8], proto: u8, len: u32) -> u64 {
    let acc = sum(src, 0);
    let acc = sum(dst, acc);
    acc + u64::from(proto) + u64::from(len >> 16) + u64::from(len & 0xffff)
}

/// The IPv4 header checksum of `header` (checksum field included as it is: zero it first to
/// compute, or keep it to verify: a valid header then gives 0).
#[inline]
pub fn ipv4_header_checksum(header: &[u8]) -> u16 {
    !fold(sum(header, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_in_host_order() {
        let h = VirtioNetHdr { flags: F_NEEDS_CSUM, gso_type: GSO_TCPV4, hdr_len: 66, gso_size: 1398, csum_start: 34, csum_offset: 16 };
        let b = h.emit();
        assert_eq!(b[0], 1);
        assert_eq!(b[1], 1);
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 1398);
        assert_eq!(VirtioNetHdr::parse(&b), h);
    }

    #[test]
    fn sum_matches_rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2 (folded).
        assert_eq!(fold(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0)), 0xddf2);
    }

    #[test]
    fn sum_agrees_with_a_word_by_word_reference_at_every_length() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 37 + 11) as u8).collect();
        for len in 0..data.len() {
            let mut r = 0u32;
            for w in data[..len].chunks(2) {
                r += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
            }
            while r > 0xffff {
                r = (r & 0xffff) + (r >> 16);
            }
            assert_eq!(u32::from(fold(sum(&data[..len], 0))), r, "length {len}");
            assert_eq!(fold(sum(&data[..len], 0x1_2345_fffe)), fold(u64::from(r) + 0x1_2345_fffe), "length {len} with an initial sum");
        }
    }

    #[test]
    fn ipv4_header_checksum_of_a_known_header() {
        // A textbook header: 4500 0073 0000 4000 4011 [b861] c0a8 0001 c0a8 00c7.
        let mut h = [0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7];
        assert_eq!(ipv4_header_checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(ipv4_header_checksum(&h), 0);
    }
}
