//! The Internet checksum (RFC 1071) used by IPv4, UDP, ICMPv4 and ICMPv6.
//!
//! The checksum is the one's complement of the one's complement sum of the 16-bit big-endian
//! words. One's complement addition is associative and commutative, and 2^16 = 1 in that
//! arithmetic, so we add whole 32-bit words into a 64-bit accumulator and fold the carries once at
//! the end: that is the same sum with a quarter of the additions.
//!
//! Functions here return *folded but not complemented* partial sums (`data`, `combine`,
//! `pseudo_header_*`), so they can be combined; [`finish`] folds and complements for the header.
//! A buffer whose stored checksum is right sums to `0xffff` (see [`verify`]).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Folds a wide accumulator into a 16-bit one's complement sum.
#[inline]
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The folded one's complement sum of `bytes` as big-endian 16-bit words (odd tail padded
/// with a zero byte). Not complemented: combine it, then call [`finish`].
///
/// Words are read in native byte order, 16 bytes per step into two 64-bit accumulators
/// (no carries to track below 2^32 words), and the folded result is byte-swapped on
/// little-endian machines: RFC 1071 section 2(B) shows the sum is byte-order independent.
// hot path
pub fn data(bytes: &[u8]) -> u16 {
    #[inline(always)]
    fn word(b: &[u8], at: usize) -> u64 {
        u64::from(u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]))
    }
    let (mut a, mut b) = (0u64, 0u64);
    let mut blocks = bytes.chunks_exact(16);
    for blk in &mut blocks {
        a += word(blk, 0) + word(blk, 4);
        b += word(blk, 8) + word(blk, 12);
    }
    let mut words = blocks.remainder().chunks_exact(4);
    for w in &mut words {
        a += word(w, 0);
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    b += word(&tail, 0);
    let native = fold(a + b);
    if cfg!(target_endian = "little") {
        native.swap_bytes()
    } else {
        native
    }
}

/// The folded one's complement sum of several partial sums.
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// The partial sum of the IPv4 pseudo-header (RFC 768 / RFC 793): addresses, protocol, length
/// of the upper-layer header plus payload.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u32) -> u16 {
    let mut acc = u64::from(u32::from(src)) + u64::from(u32::from(dst));
    acc += u64::from(protocol) + u64::from(len);
    fold(acc)
}

/// The partial sum of the IPv6 pseudo-header (RFC 8200 section 8.1).
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, len: u32) -> u16 {
    combine(&[data(&src.octets()), data(&dst.octets()), fold(u64::from(len) + u64::from(next_header))])
}

/// Folds `sum` and complements it: the value to store in a checksum field.
pub fn finish(sum: u32) -> u16 {
    !fold(u64::from(sum))
}

/// True when a partial sum over data that includes its stored checksum shows it is correct.
pub fn verify(sum: u16) -> bool {
    sum == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to 0xddf2.
        assert_eq!(data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0xddf2);
        assert_eq!(finish(0xddf2), !0xddf2);
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        assert_eq!(data(&[0x12]), 0x1200);
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(data(&[]), 0);
    }

    #[test]
    fn word_width_does_not_change_the_sum() {
        // Compare against a plain 16-bit reference on many lengths and patterns.
        for len in 0..300usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(97).wrapping_add(200)).collect();
            let mut acc: u32 = 0;
            for pair in bytes.chunks(2) {
                let hi = u32::from(pair[0]) << 8;
                let lo = pair.get(1).map_or(0, |&b| u32::from(b));
                acc += hi | lo;
            }
            while acc > 0xffff {
                acc = (acc & 0xffff) + (acc >> 16);
            }
            assert_eq!(u32::from(data(&bytes)), acc, "len {len}");
        }
    }

    #[test]
    fn combine_and_pseudo_header() {
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
        let src = Ipv4Addr::new(192, 0, 2, 1);
        let dst = Ipv4Addr::new(192, 0, 2, 2);
        let expected = data(&[192, 0, 2, 1, 192, 0, 2, 2, 0, 17, 0, 16]);
        assert_eq!(pseudo_header_v4(src, dst, 17, 16), expected);
    }
}
