//! The Internet checksum (RFC 1071) used by IPv4, UDP, TCP, ICMPv4 and ICMPv6: the one copy in
//! vxswitch (the TAP offload paths and the probes use it too).
//!
//! The checksum is the one's complement of the one's complement sum of the 16-bit big-endian
//! words. One's complement addition is associative and commutative, and 2^16 = 1 in that
//! arithmetic, so we add whole 32-bit words into a 64-bit accumulator and fold the carries once at
//! the end: that is the same sum with half the additions.
//!
//! Functions here return *folded but not complemented* partial sums (`data`, `combine`,
//! `pseudo_header_*`), so they can be combined; [`finish`] folds and complements for the header.
//! A buffer whose stored checksum is right sums to `0xffff` (see [`verify`]).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Folds a wide accumulator into a 16-bit one's complement sum (branch-free: enough rounds for
/// any `u64`).
#[inline]
fn fold(mut acc: u64) -> u16 {
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// The folded one's complement sum of `bytes` as big-endian 16-bit words (odd tail padded
/// with a zero byte). Not complemented: combine it, then call [`finish`].
///
/// The words are added in host order as 32-bit lanes into one 64-bit accumulator, 32 bytes per
/// block: with no carry chain the loop vectorises (SSE2 `paddq` on x86-64 at `-O`), which a
/// 16-bit or two-accumulator loop does not. The folded result is put into network order at the
/// end: RFC 1071 section 2(B) shows the sum is byte-order independent up to that final swap.
// hot path
#[inline]
pub fn data(bytes: &[u8]) -> u16 {
    let mut acc = 0u64;
    let mut blocks = bytes.chunks_exact(32);
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
    u16::from_be(fold(acc))
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
    fn data_agrees_with_a_word_by_word_reference_at_every_length() {
        // A second pattern and a non-zero running sum, so the 32-byte blocks, the 4-byte words
        // and the tail all meet carries.
        let bytes: Vec<u8> = (0..300u32).map(|i| (i * 37 + 11) as u8).collect();
        for len in 0..bytes.len() {
            let mut r = 0u32;
            for w in bytes[..len].chunks(2) {
                r += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
            }
            while r > 0xffff {
                r = (r & 0xffff) + (r >> 16);
            }
            assert_eq!(u32::from(data(&bytes[..len])), r, "length {len}");
            assert_eq!(combine(&[data(&bytes[..len]), 0xfffe, 0x2345]), fold(u64::from(r) + 0xfffe + 0x2345), "length {len} combined");
        }
    }

    #[test]
    fn fold_handles_any_width() {
        assert_eq!(fold(u64::MAX), 0xffff);
        assert_eq!(fold(0x1_0000), 1);
        assert_eq!(fold(0xffff_ffff_0000_0001), fold(0xffff + 0xffff + 0x0001));
    }

    #[test]
    fn ipv4_header_checksum_of_a_known_header() {
        // A textbook header: 4500 0073 0000 4000 4011 [b861] c0a8 0001 c0a8 00c7.
        let mut h = [0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7];
        assert_eq!(!data(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert!(verify(data(&h)));
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
