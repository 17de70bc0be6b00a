//! ESP header view (RFC 4303) and the ESP-in-UDP demultiplexing rules of RFC 3948.
//!
//! An ESP packet on the wire is
//!
//! ```text
//!  0                   1                   2                   3
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |               Security Parameters Index (SPI)                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      Sequence Number (low 32 bits)            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   payload: IV, ciphertext (inner packet, padding, pad length, |
//! |   next header), ICV                                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! This view only knows the cleartext header; everything behind it belongs to the SA that the
//! SPI names (see `crate::ipsec`). SPI 0 is reserved for local use and never appears on the
//! wire, which is exactly what lets RFC 3948 share UDP port 4500 between IKE and ESP: a UDP/4500
//! payload whose first four bytes are zero (the "non-ESP marker") is IKE, a single `0xFF` byte
//! is a NAT keepalive, and anything else is ESP.

use core::fmt;

/// The UDP port for ESP-in-UDP and IKE behind NAT (RFC 3948).
pub const ESP_IN_UDP_PORT: u16 = 4500;
/// Length of the cleartext ESP header: SPI + sequence number.
pub const HEADER_LEN: usize = 8;
/// Length of the non-ESP marker that precedes IKE messages on port 4500.
pub const NON_ESP_MARKER_LEN: usize = 4;
/// The one-byte NAT-keepalive payload (RFC 3948 section 2.3).
pub const NAT_KEEPALIVE: u8 = 0xff;

/// Why an ESP header or a UDP/4500 payload could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EspWireError {
    /// Shorter than the fixed header.
    Truncated,
    /// SPI 0 is reserved (RFC 4303 section 2.1) and never valid on the wire.
    ReservedSpi,
}

impl fmt::Display for EspWireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EspWireError::Truncated => f.write_str("ESP packet truncated"),
            EspWireError::ReservedSpi => f.write_str("ESP SPI 0 is reserved"),
        }
    }
}

impl std::error::Error for EspWireError {}

mod field {
    use core::ops::{Range, RangeFrom};
    pub const SPI: Range<usize> = 0..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const PAYLOAD: RangeFrom<usize> = 8..;
}

/// A read/write view of an ESP packet (header plus opaque payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EspPacket<T> {
    /// Wraps a buffer without checking its length (accessors may panic on short buffers).
    pub const fn new_unchecked(buffer: T) -> Self {
        EspPacket { buffer }
    }

    /// Wraps a buffer after checking that it holds at least the fixed header.
    pub fn new_checked(buffer: T) -> Result<Self, EspWireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the 8-byte header.
    pub fn check_len(&self) -> Result<(), EspWireError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(EspWireError::Truncated)
        } else {
            Ok(())
        }
    }

    /// Returns the wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The Security Parameters Index.
    pub fn spi(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SPI])
    }

    /// The low 32 bits of the sequence number as carried on the wire.
    pub fn sequence_number(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SEQ])
    }

    /// Everything after the header: IV, ciphertext and ICV.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EspPacket<T> {
    /// Sets the SPI.
    pub fn set_spi(&mut self, spi: u32) {
        self.buffer.as_mut()[field::SPI].copy_from_slice(&spi.to_be_bytes());
    }

    /// Sets the (low 32 bits of the) sequence number.
    pub fn set_sequence_number(&mut self, seq: u32) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&seq.to_be_bytes());
    }

    /// Mutable access to everything after the header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

#[inline]
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The parsed cleartext ESP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EspRepr {
    /// Security Parameters Index (never 0).
    pub spi: u32,
    /// Low 32 bits of the sequence number.
    pub sequence_number: u32,
}

impl EspRepr {
    /// Parses the header, rejecting the reserved SPI 0.
    pub fn parse<T: AsRef<[u8]>>(packet: &EspPacket<T>) -> Result<EspRepr, EspWireError> {
        packet.check_len()?;
        let spi = packet.spi();
        if spi == 0 {
            return Err(EspWireError::ReservedSpi);
        }
        Ok(EspRepr { spi, sequence_number: packet.sequence_number() })
    }

    /// Length of the emitted header.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first 8 bytes of `packet`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut EspPacket<T>) {
        packet.set_spi(self.spi);
        packet.set_sequence_number(self.sequence_number);
    }
}

/// What a UDP payload received on port 4500 carries (RFC 3948 section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Udp4500Payload {
    /// A one-byte NAT keepalive (`0xFF`): drop silently.
    NatKeepalive,
    /// An IKE message after the 4-byte non-ESP marker; it starts at [`NON_ESP_MARKER_LEN`].
    Ike,
    /// An ESP packet starting at byte 0.
    Esp,
}

/// Classifies a UDP/4500 payload as NAT keepalive, IKE or ESP.
///
/// ESP needs at least the 8-byte header; a shorter non-keepalive payload is `Truncated`.
// hot path
pub fn classify_udp_4500(payload: &[u8]) -> Result<Udp4500Payload, EspWireError> {
    match payload {
        [NAT_KEEPALIVE] => Ok(Udp4500Payload::NatKeepalive),
        [0, 0, 0, 0, ..] => Ok(Udp4500Payload::Ike),
        p if p.len() < HEADER_LEN => Err(EspWireError::Truncated),
        _ => Ok(Udp4500Payload::Esp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The header of draft-mcgrew-gcm-test-01 test case 2 (SPI 0x0000a5f8, seq 0x0a), followed
    // by the first bytes of its explicit IV.
    const CASE2_HEAD: [u8; 12] = [0x00, 0x00, 0xa5, 0xf8, 0x00, 0x00, 0x00, 0x0a, 0xfa, 0xce, 0xdb, 0xad];

    #[test]
    fn parse_reads_spi_and_sequence() {
        let p = EspPacket::new_checked(&CASE2_HEAD[..]).unwrap();
        let repr = EspRepr::parse(&p).unwrap();
        assert_eq!(repr, EspRepr { spi: 0xa5f8, sequence_number: 10 });
        assert_eq!(p.payload(), &[0xfa, 0xce, 0xdb, 0xad]);
    }

    #[test]
    fn emit_round_trips_byte_exact() {
        let repr = EspRepr { spi: 0xa5f8, sequence_number: 10 };
        let mut buf = CASE2_HEAD;
        buf[..8].fill(0xee);
        let mut p = EspPacket::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        assert_eq!(buf, CASE2_HEAD);
        assert_eq!(repr.buffer_len(), 8);
    }

    #[test]
    fn short_and_reserved_rejected() {
        assert_eq!(EspPacket::new_checked(&CASE2_HEAD[..7]).unwrap_err(), EspWireError::Truncated);
        let zero_spi = [0u8, 0, 0, 0, 0, 0, 0, 1];
        let p = EspPacket::new_checked(&zero_spi[..]).unwrap();
        assert_eq!(EspRepr::parse(&p).unwrap_err(), EspWireError::ReservedSpi);
    }

    #[test]
    fn udp_4500_classification() {
        assert_eq!(classify_udp_4500(&[0xff]), Ok(Udp4500Payload::NatKeepalive));
        // An IKE_SA_INIT behind the non-ESP marker (initiator SPI starts after the 4 zeros).
        assert_eq!(classify_udp_4500(&[0, 0, 0, 0, 0x8a, 0x1b]), Ok(Udp4500Payload::Ike));
        assert_eq!(classify_udp_4500(&[0, 0, 0, 0]), Ok(Udp4500Payload::Ike));
        assert_eq!(classify_udp_4500(&CASE2_HEAD), Ok(Udp4500Payload::Esp));
        assert_eq!(classify_udp_4500(&[]), Err(EspWireError::Truncated));
        assert_eq!(classify_udp_4500(&[0xfe]), Err(EspWireError::Truncated));
        assert_eq!(classify_udp_4500(&[0xff, 0xff]), Err(EspWireError::Truncated));
        assert_eq!(classify_udp_4500(&CASE2_HEAD[..7]), Err(EspWireError::Truncated));
    }
}
