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
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
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
