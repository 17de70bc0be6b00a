//! Epoch announcements between statically configured peers.
//!
//! Automatic SAs are derived from both hosts' long-term keys *and* both hosts' per-start
//! epochs, so that a restart never reuses a (key, nonce) pair. With gossip, epochs travel in
//! the member records. With static peers (public keys in the configuration) each host tells
//! its peers its epoch with a *hello* on the ESP-in-UDP port, in the slot RFC 3948 leaves for
//! non-ESP traffic (a four-byte zero marker, where IKE would be):
//!
//! ```text
//! 0x00000000 | "VXSH" | version 1 | 3 reserved | sender public key (32) | sender epoch (8)
//!            | epoch of the receiver the sender knows, or 0 (8) | HMAC-SHA256 tag (32)
//! ```
//!
//! The tag key is derived from the *static* X25519 secret of the pair (see
//! [`super::HostKey::hello_key`]), so only the two hosts can make a hello for each other. A
//! receiver accepts an epoch it has not accepted before from that peer during this run; a
//! replayed hello carrying an older epoch of the peer is refused, so keys that were already used
//! can never come back. The echo field lets a host that has just restarted learn that its peer
//! needs its new epoch: a hello whose echo is not our current epoch is answered at once.

use aws_lc_rs::{constant_time, hmac};

/// Magic after the non-ESP marker.
pub const MAGIC: [u8; 4] = *b"VXSH";
/// Protocol version.
pub const VERSION: u8 = 1;
/// Length of a hello datagram (UDP payload).
pub const HELLO_LEN: usize = 4 + 4 + 4 + 32 + 8 + 8 + 32;
const TAG_AT: usize = HELLO_LEN - 32;

/// The content of a hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// The sender's long-term public key.
    pub public_key: [u8; 32],
    /// The sender's epoch.
    pub epoch: u64,
    /// The receiver's epoch as the sender knows it (0 when unknown).
    pub echo: u64,
}

/// Why a hello was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloError {
    /// Not a hello (wrong length, marker, magic or version).
    NotHello,
    /// The tag does not verify under the pair's key.
    BadTag,
}

/// Whether a UDP/4500 payload is a hello (marker and magic; not yet authenticated).
pub fn is_hello(payload: &[u8]) -> bool {
    payload.len() == HELLO_LEN && payload[..4] == [0; 4] && payload[4..8] == MAGIC
}

/// Build an authenticated hello.
pub fn encode(key: &[u8; 32], hello: &Hello) -> Vec<u8> {
    let mut out = Vec::with_capacity(HELLO_LEN);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, 0, 0, 0]);
    out.extend_from_slice(&hello.public_key);
    out.extend_from_slice(&hello.epoch.to_be_bytes());
    out.extend_from_slice(&hello.echo.to_be_bytes());
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), &out);
    out.extend_from_slice(tag.as_ref());
    out
}

/// Verify and parse a hello.
pub fn decode(key: &[u8; 32], payload: &[u8]) -> Result<Hello, HelloError> {
    if !is_hello(payload) || payload[8] != VERSION {
        return Err(HelloError::NotHello);
    }
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), &payload[..TAG_AT]);
    constant_time::verify_slices_are_equal(tag.as_ref(), &payload[TAG_AT..]).map_err(|_| HelloError::BadTag)?;
    let u64_at = |at: usize| u64::from_be_bytes(payload[at..at + 8].try_into().expect("length checked"));
    Ok(Hello { public_key: payload[12..44].try_into().expect("length checked"), epoch: u64_at(44), echo: u64_at(52) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipsec::HostKey;

    #[test]
    fn both_sides_derive_the_same_key_and_verify() {
        let (a, b) = (HostKey::generate().unwrap(), HostKey::generate().unwrap());
        let ka = a.hello_key(&b.public_key()).unwrap();
        let kb = b.hello_key(&a.public_key()).unwrap();
        assert_eq!(ka, kb);
        let hello = Hello { public_key: a.public_key(), epoch: 42, echo: 7 };
        let bytes = encode(&ka, &hello);
        assert_eq!(bytes.len(), HELLO_LEN);
        assert!(is_hello(&bytes));
        assert_eq!(decode(&kb, &bytes), Ok(hello));
    }

    #[test]
    fn every_bit_flip_and_a_third_party_key_are_refused() {
        let (a, b, c) = (HostKey::generate().unwrap(), HostKey::generate().unwrap(), HostKey::generate().unwrap());
        let key = a.hello_key(&b.public_key()).unwrap();
        let bytes = encode(&key, &Hello { public_key: a.public_key(), epoch: 1, echo: 0 });
        for bit in 0..bytes.len() * 8 {
            let mut m = bytes.clone();
            m[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&key, &m).is_err(), "bit {bit}");
        }
        let other = c.hello_key(&b.public_key()).unwrap();
        assert_eq!(decode(&other, &bytes), Err(HelloError::BadTag));
        assert_eq!(decode(&key, &bytes[..HELLO_LEN - 1]), Err(HelloError::NotHello));
    }
}
