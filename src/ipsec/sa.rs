//! One ESP security association per direction: AEAD seal/open in place (RFC 4303, RFC 4106,
//! RFC 7634).
//!
//! Packet layout produced by [`OutboundSa::seal`] and consumed by [`InboundSa::open`]:
//!
//! ```text
//! | SPI 4 | seq 4 | IV 8 | inner packet | pad 0..3 | pad len 1 | next hdr 1 | ICV 16 |
//! |<---- ESP_HEADROOM -->|<------------- encrypted ---------------------->|
//! ```
//!
//! * nonce = 4-byte salt (the tail of the key material) || 8-byte explicit IV;
//! * IV = the full 64-bit sequence number, which is unique per key because the sender never
//!   reuses or wraps it, so the nonce is unique without any random source;
//! * AAD = SPI || seq (8 bytes), or SPI || seq-hi || seq-lo (12 bytes) with ESN;
//! * padding makes (inner + 2) a multiple of 4 with the bytes 1, 2, 3 (RFC 4303 2.4).
//!
//! Both directions work on caller-owned buffers: sealing writes the header in the headroom in
//! front of the plaintext and the trailer + ICV into the tailroom behind it, and opening
//! decrypts in place and returns where the inner packet lies. No allocation, no copy of the
//! inner packet.

use core::ops::Range;

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};

use super::error::{DropCounters, EspError};
use crate::replay::ReplayWindow;

/// Cleartext ESP header: SPI + low sequence number.
pub const ESP_HEADER_LEN: usize = 8;
/// Explicit IV carried by every packet (RFC 4106 / RFC 7634).
pub const ESP_IV_LEN: usize = 8;
/// Space the caller leaves in front of the plaintext: header + IV.
pub const ESP_HEADROOM: usize = ESP_HEADER_LEN + ESP_IV_LEN;
/// Integrity check value (AEAD tag) length.
pub const ESP_ICV_LEN: usize = 16;
/// Most padding `seal` adds.
pub const ESP_MAX_PAD: usize = 3;
/// Space the caller leaves behind the plaintext: padding + pad length + next header + ICV.
pub const ESP_TAILROOM: usize = ESP_MAX_PAD + 2 + ESP_ICV_LEN;
/// Smallest valid ESP packet: header, IV, pad length + next header, ICV.
pub const ESP_MIN_LEN: usize = ESP_HEADROOM + 2 + ESP_ICV_LEN;
/// Salt length taken from the end of the key material.
pub const SALT_LEN: usize = 4;

/// Next header value for an inner IPv4 packet.
pub const NEXT_HEADER_IPV4: u8 = 4;
/// Next header value for an inner IPv6 packet.
pub const NEXT_HEADER_IPV6: u8 = 41;
/// Next header value for an inner Ethernet frame (RFC 8986 / IANA "Ethernet").
pub const NEXT_HEADER_ETHERNET: u8 = 143;

/// Sequence numbers an outbound SA uses before [`OutboundSa::needs_rekey`] turns true.
///
/// 2^28 MTU-sized packets keep AES-GCM well inside the usual per-key data limits (TLS 1.3
/// allows 2^24.5 records of 16 KiB, about 2^28 packets of 1.4 KB); the session also rekeys
/// on a timer, whichever comes first.
pub const DEFAULT_PACKET_BUDGET: u64 = 1 << 28;

/// Sequence numbers reserved at a time for an SA whose counter must survive restarts (manual
/// keys): the driver persists the end of a block before any number of it is used.
pub const RESERVATION_BLOCK: u64 = 1 << 20;

/// An AEAD suite for ESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// AES-128-GCM with a 16-byte ICV (RFC 4106): 16-byte key + 4-byte salt.
    Aes128Gcm,
    /// AES-256-GCM with a 16-byte ICV (RFC 4106): 32-byte key + 4-byte salt.
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RFC 7634): 32-byte key + 4-byte salt.
    ChaCha20Poly1305,
}

impl Suite {
    /// Cipher key length in bytes (without the salt).
    pub const fn key_len(self) -> usize {
        match self {
            Suite::Aes128Gcm => 16,
            Suite::Aes256Gcm | Suite::ChaCha20Poly1305 => 32,
        }
    }

    /// Key material length: key || 4-byte salt.
    pub const fn key_material_len(self) -> usize {
        self.key_len() + SALT_LEN
    }

    /// The Linux xfrm algorithm name (`ip xfrm state ... aead NAME 0xKEY 128`).
    pub const fn xfrm_name(self) -> &'static str {
        match self {
            Suite::Aes128Gcm | Suite::Aes256Gcm => "rfc4106(gcm(aes))",
            Suite::ChaCha20Poly1305 => "rfc7539esp(chacha20,poly1305)",
        }
    }

    /// A one-byte identifier bound into key derivation.
    pub const fn id(self) -> u8 {
        match self {
            Suite::Aes128Gcm => 1,
            Suite::Aes256Gcm => 2,
            Suite::ChaCha20Poly1305 => 3,
        }
    }

    fn algorithm(self) -> &'static aead::Algorithm {
        match self {
            Suite::Aes128Gcm => &aead::AES_128_GCM,
            Suite::Aes256Gcm => &aead::AES_256_GCM,
            Suite::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }
}

/// Length of the ESP packet that sealing `inner_len` bytes produces.
pub const fn sealed_len(inner_len: usize) -> usize {
    ESP_HEADROOM + inner_len + pad_len(inner_len) + 2 + ESP_ICV_LEN
}

/// Padding so that `inner_len + pad + 2` is a multiple of 4.
pub(crate) const fn pad_len(inner_len: usize) -> usize {
    (4 - (inner_len + 2) % 4) % 4
}

#[inline]
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The keyed AEAD plus salt shared by both directions.
pub(crate) struct Cipher {
    pub(crate) key: LessSafeKey,
    salt: [u8; SALT_LEN],
}

impl Cipher {
    pub(crate) fn new(suite: Suite, key_material: &[u8]) -> Result<Self, EspError> {
        if key_material.len() != suite.key_material_len() {
            return Err(EspError::BadKeyLength);
        }
        let (key, salt) = key_material.split_at(suite.key_len());
        let unbound = UnboundKey::new(suite.algorithm(), key).map_err(|_| EspError::BadKeyLength)?;
        let mut s = [0u8; SALT_LEN];
        s.copy_from_slice(salt);
        Ok(Cipher { key: LessSafeKey::new(unbound), salt: s })
    }

    #[inline]
    fn nonce(&self, iv: &[u8]) -> Nonce {
        let mut n = [0u8; 12];
        n[..SALT_LEN].copy_from_slice(&self.salt);
        n[SALT_LEN..].copy_from_slice(iv);
        Nonce::assume_unique_for_key(n)
    }

    /// Seals the plaintext at `buf[ESP_HEADROOM..][..inner_len]` with an explicit `seq` and
    /// `iv` and returns the ESP length. Callers guarantee (seq, iv) never repeats for the key.
    // hot path
    #[allow(clippy::too_many_arguments)] // every argument is one field of the packet
    pub(crate) fn seal(
        &self,
        buf: &mut [u8],
        inner_len: usize,
        next_header: u8,
        spi: u32,
        esn: bool,
        seq: u64,
        iv: [u8; ESP_IV_LEN],
    ) -> Result<usize, EspError> {
        let pad = pad_len(inner_len);
        let ct_end = ESP_HEADROOM + inner_len + pad + 2;
        let total = ct_end + ESP_ICV_LEN;
        if buf.len() < total {
            return Err(EspError::BufferTooSmall);
        }
        buf[0..4].copy_from_slice(&spi.to_be_bytes());
        buf[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        buf[8..ESP_HEADROOM].copy_from_slice(&iv);
        let trailer = &mut buf[ESP_HEADROOM + inner_len..ct_end];
        for (i, b) in trailer[..pad].iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        trailer[pad] = pad as u8;
        trailer[pad + 1] = next_header;
        let (aad, aad_len) = aad(spi, seq, esn);
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(&iv), Aad::from(&aad[..aad_len]), &mut buf[ESP_HEADROOM..ct_end])
            .map_err(|_| EspError::BufferTooSmall)?;
        buf[ct_end..total].copy_from_slice(tag.as_ref());
        Ok(total)
    }
}

/// AAD per RFC 4106 section 5: SPI || seq-lo, or SPI || seq-hi || seq-lo with ESN.
#[inline]
fn aad(spi: u32, seq: u64, esn: bool) -> ([u8; 12], usize) {
    let mut a = [0u8; 12];
    a[0..4].copy_from_slice(&spi.to_be_bytes());
    if esn {
        a[4..12].copy_from_slice(&seq.to_be_bytes());
        (a, 12)
    } else {
        a[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        (a, 8)
    }
}

/// The sending half of an SA: owns the key and the sequence counter.
pub struct OutboundSa {
    spi: u32,
    suite: Suite,
    esn: bool,
    cipher: Cipher,
    /// Packets sealed; the next sequence number is `sent + 1`.
    sent: u64,
    /// The last sequence number the owner allowed (persisted for manual keys); never above
    /// `hard_limit`, and `seal` never passes it.
    reserved: u64,
    soft_limit: u64,
    hard_limit: u64,
    bytes: u64,
    /// A digest of the key material: tells SAs apart in persisted state and in tests.
    key_id: u64,
    /// Sequence numbers per reservation.
    block: u64,
}

impl core::fmt::Debug for OutboundSa {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OutboundSa")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("suite", &self.suite)
            .field("esn", &self.esn)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl OutboundSa {
    /// A new outbound SA; `key_material` is key || 4-byte salt for `suite`.
    ///
    /// Without ESN the last usable sequence number is 2^32 - 1, with ESN 2^64 - 1. The
    /// default packet budget is [`DEFAULT_PACKET_BUDGET`].
    pub fn new(spi: u32, suite: Suite, key_material: &[u8], esn: bool) -> Result<Self, EspError> {
        let hard_limit = if esn { u64::MAX } else { u64::from(u32::MAX) };
        Ok(OutboundSa {
            spi,
            suite,
            esn,
            cipher: Cipher::new(suite, key_material)?,
            sent: 0,
            reserved: hard_limit,
            soft_limit: DEFAULT_PACKET_BUDGET.min(hard_limit),
            hard_limit,
            bytes: 0,
            key_id: key_id(key_material),
            block: RESERVATION_BLOCK,
        })
    }

    /// Reserves `n` sequence numbers at a time instead of [`RESERVATION_BLOCK`] (tests, tuning).
    pub fn with_reservation_block(mut self, n: u64) -> Self {
        self.block = n.max(2);
        self
    }

    /// Continues after `last_used` (every number up to it may have been sent before, under this
    /// key) and seals nothing until [`confirm_reservation`](Self::confirm_reservation) allows it.
    pub fn resume_after(mut self, last_used: u64) -> Self {
        self.sent = last_used.min(self.hard_limit);
        self.reserved = self.sent;
        self
    }

    /// The end of the next block to reserve, when fewer than half a block of confirmed numbers
    /// is left (`None` when enough is reserved or the sequence space is used up).
    pub fn reservation_wanted(&self) -> Option<u64> {
        (self.reserved < self.hard_limit && self.reserved - self.sent <= self.block / 2)
            .then(|| self.reserved.saturating_add(self.block).min(self.hard_limit))
    }

    /// The owner persisted `upto`: sequence numbers up to it may be used.
    pub fn confirm_reservation(&mut self, upto: u64) {
        self.reserved = self.reserved.max(upto.min(self.hard_limit));
    }

    /// The last sequence number `seal` may use without a further reservation.
    pub fn reserved(&self) -> u64 {
        self.reserved
    }

    /// The last sequence number this SA can ever use (2^32 - 1 without ESN).
    pub fn last_sequence(&self) -> u64 {
        self.hard_limit
    }

    /// A 64-bit digest of the key material (not secret-revealing; tells keys apart).
    pub fn key_id(&self) -> u64 {
        self.key_id
    }

    /// Sets how many packets may be sealed before [`needs_rekey`](Self::needs_rekey) is true.
    pub fn with_packet_budget(mut self, packets: u64) -> Self {
        self.soft_limit = packets.min(self.hard_limit);
        self
    }

    /// Caps the last usable sequence number below the suite limit (tests, short-lived SAs).
    pub fn with_sequence_limit(mut self, last_seq: u64) -> Self {
        self.hard_limit = self.hard_limit.min(last_seq);
        self.reserved = self.reserved.min(self.hard_limit);
        self.sent = self.sent.min(self.hard_limit);
        self.soft_limit = self.soft_limit.min(self.hard_limit);
        self
    }

    /// The SPI written into every packet.
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// The AEAD suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Whether extended sequence numbers are in use.
    pub fn esn(&self) -> bool {
        self.esn
    }

    /// Packets sealed so far.
    pub fn packets(&self) -> u64 {
        self.sent
    }

    /// Inner bytes sealed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Sequence numbers left before sealing is refused.
    pub fn remaining(&self) -> u64 {
        self.hard_limit - self.sent
    }

    /// True once the packet budget is used up: replace this SA soon.
    pub fn needs_rekey(&self) -> bool {
        self.sent >= self.soft_limit
    }

    /// Encrypts in place.
    ///
    /// The plaintext (`inner_len` bytes) sits at `buf[ESP_HEADROOM..]`; `buf` must reach at
    /// least [`sealed_len`]`(inner_len)` bytes (any buffer with [`ESP_TAILROOM`] spare does).
    /// On success `buf[..returned]` is the ESP packet, ready to follow a UDP/4500 header.
    /// `next_header` is [`NEXT_HEADER_IPV4`], [`NEXT_HEADER_IPV6`] or [`NEXT_HEADER_ETHERNET`].
    ///
    /// Fails with [`EspError::SequenceExhausted`] after the last sequence number (never wraps),
    /// with [`EspError::NotReserved`] past the confirmed reservation, and with
    /// [`EspError::BufferTooSmall`]; none of them consumes a sequence number.
    // hot path
    pub fn seal(&mut self, buf: &mut [u8], inner_len: usize, next_header: u8) -> Result<usize, EspError> {
        // `reserved <= hard_limit`, so one comparison guards both limits.
        if self.sent >= self.reserved {
            return Err(if self.sent >= self.hard_limit { EspError::SequenceExhausted } else { EspError::NotReserved });
        }
        let seq = self.sent + 1;
        if inner_len > buf.len() || buf.len() < sealed_len(inner_len) {
            return Err(EspError::BufferTooSmall);
        }
        // Consume the number before encrypting: a sequence number is never used twice.
        self.sent = seq;
        self.bytes += inner_len as u64;
        self.cipher.seal(buf, inner_len, next_header, self.spi, self.esn, seq, seq.to_be_bytes())
    }

    /// Test hook: pretend `packets` were already sealed.
    #[cfg(test)]
    pub(crate) fn skip_to(&mut self, packets: u64) {
        self.sent = packets;
    }
}

/// A 64-bit digest of key material: SHA-256 over a label and the key, first 8 bytes.
pub(crate) fn key_id(key_material: &[u8]) -> u64 {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(b"vxswitch esp key id");
    ctx.update(key_material);
    let d = ctx.finish();
    u64::from_be_bytes(d.as_ref()[..8].try_into().expect("SHA-256 is 32 bytes"))
}

/// Where the decrypted inner packet lies after [`InboundSa::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Next header: 4 (IPv4), 41 (IPv6), 143 (Ethernet), or whatever the peer sent.
    pub next_header: u8,
    /// Byte range of the inner packet within the buffer passed to `open`.
    pub inner: Range<usize>,
    /// The full (ESN-inferred) sequence number.
    pub sequence: u64,
    /// Accepted behind a higher sequence number already seen: reordered on the way, inside the
    /// replay window. Reordering that grows toward the window's size ends in `left_of_window`
    /// drops, so this is counted where an operator can see it coming.
    pub late: bool,
}

/// The receiving half of an SA: key, replay window and drop counters.
pub struct InboundSa {
    spi: u32,
    suite: Suite,
    esn: bool,
    cipher: Cipher,
    window: ReplayWindow,
    drops: DropCounters,
    packets: u64,
    bytes: u64,
}

impl core::fmt::Debug for InboundSa {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InboundSa")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("suite", &self.suite)
            .field("esn", &self.esn)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl InboundSa {
    /// A new inbound SA with an anti-replay window of `window` packets (see [`ReplayWindow::new`]).
    pub fn new(spi: u32, suite: Suite, key_material: &[u8], esn: bool, window: u32) -> Result<Self, EspError> {
        Ok(InboundSa {
            spi,
            suite,
            esn,
            cipher: Cipher::new(suite, key_material)?,
            window: ReplayWindow::new(window),
            drops: DropCounters::default(),
            packets: 0,
            bytes: 0,
        })
    }

    /// The SPI this SA accepts.
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// The AEAD suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Whether extended sequence numbers are in use.
    pub fn esn(&self) -> bool {
        self.esn
    }

    /// The anti-replay window.
    pub fn window(&self) -> &ReplayWindow {
        &self.window
    }

    /// Drops counted by this SA.
    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// Packets accepted.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Inner bytes accepted.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Verifies and decrypts an ESP packet in place.
    ///
    /// `packet` starts at the SPI (the UDP/4500 payload) and ends with the ICV. Order: length,
    /// SPI, replay check (before any crypto), ICV + decryption, window update, trailer check.
    /// On success the inner packet is `packet[opened.inner]`. On failure the drop is counted
    /// here and the buffer content is unspecified.
    // hot path
    pub fn open(&mut self, packet: &mut [u8]) -> Result<Opened, EspError> {
        let result = self.open_inner(packet);
        match &result {
            Ok(o) => {
                self.packets += 1;
                self.bytes += o.inner.len() as u64;
            }
            Err(e) => self.drops.record(*e),
        }
        result
    }

    // hot path
    fn open_inner(&mut self, packet: &mut [u8]) -> Result<Opened, EspError> {
        if packet.len() < ESP_MIN_LEN {
            return Err(EspError::Truncated);
        }
        if be32(&packet[0..4]) != self.spi {
            return Err(EspError::UnknownSpi);
        }
        let seq = self.window.infer(be32(&packet[4..8]), self.esn).ok_or(EspError::LeftOfWindow)?;
        self.window.check(seq)?;
        let (head, body) = packet.split_at_mut(ESP_HEADROOM);
        let ct_len = body.len() - ESP_ICV_LEN;
        let (ct, tag) = body.split_at_mut(ct_len);
        let (aad, aad_len) = aad(self.spi, seq, self.esn);
        let nonce = self.cipher.nonce(&head[ESP_HEADER_LEN..ESP_HEADROOM]);
        self.cipher.key.open_in_place_separate_tag(nonce, Aad::from(&aad[..aad_len]), tag, ct).map_err(|_| EspError::IcvFailure)?;
        // Authenticated: the sender really used this number, whatever the trailer says.
        let late = seq < self.window.top();
        self.window.update(seq);
        let pad = usize::from(ct[ct_len - 2]);
        let next_header = ct[ct_len - 1];
        let inner_len = ct_len.checked_sub(pad + 2).ok_or(EspError::BadPadding)?;
        let pad_ok = ct[inner_len..inner_len + pad].iter().enumerate().all(|(i, b)| usize::from(*b) == i + 1);
        if !pad_ok {
            return Err(EspError::BadPadding);
        }
        Ok(Opened { next_header, inner: ESP_HEADROOM..ESP_HEADROOM + inner_len, sequence: seq, late })
    }

    /// Refuses every sequence number up to `seq` (a resumed SA never accepts a replay).
    pub fn with_seen_through(mut self, seq: u64) -> Self {
        self.window.seen_through(seq);
        self
    }

    #[cfg(test)]
    pub(crate) fn window_mut(&mut self) -> &mut ReplayWindow {
        &mut self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipsec::error::DropReason;

    const SUITES: [Suite; 3] = [Suite::Aes128Gcm, Suite::Aes256Gcm, Suite::ChaCha20Poly1305];

    fn pair(suite: Suite, esn: bool) -> (OutboundSa, InboundSa) {
        let km: Vec<u8> = (0..suite.key_material_len() as u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
        let out = OutboundSa::new(0x1000_0001, suite, &km, esn).unwrap();
        let inb = InboundSa::new(0x1000_0001, suite, &km, esn, 1024).unwrap();
        (out, inb)
    }

    fn seal_frame(out: &mut OutboundSa, inner: &[u8], nh: u8) -> Vec<u8> {
        let mut buf = vec![0u8; ESP_HEADROOM + inner.len() + ESP_TAILROOM];
        buf[ESP_HEADROOM..ESP_HEADROOM + inner.len()].copy_from_slice(inner);
        let len = out.seal(&mut buf, inner.len(), nh).unwrap();
        assert_eq!(len, sealed_len(inner.len()));
        buf.truncate(len);
        buf
    }

    #[test]
    fn round_trip_all_suites_sizes_and_esn() {
        for suite in SUITES {
            for esn in [false, true] {
                let (mut out, mut inb) = pair(suite, esn);
                for (i, size) in [0usize, 1, 2, 3, 4, 5, 6, 7, 64, 1400, 8192].into_iter().enumerate() {
                    let inner: Vec<u8> = (0..size).map(|b| (b * 7 + size) as u8).collect();
                    let nh = [NEXT_HEADER_IPV4, NEXT_HEADER_IPV6, NEXT_HEADER_ETHERNET][i % 3];
                    let mut pkt = seal_frame(&mut out, &inner, nh);
                    assert_eq!(pkt.len() % 4, 0, "ESP payload is 4-byte aligned");
                    if size >= 16 {
                        assert_ne!(&pkt[ESP_HEADROOM..ESP_HEADROOM + 16], &inner[..16], "encrypted on the wire");
                    }
                    let o = inb.open(&mut pkt).unwrap();
                    assert_eq!((o.next_header, o.sequence), (nh, i as u64 + 1), "{suite:?} esn={esn} size={size}");
                    assert_eq!(&pkt[o.inner], &inner[..]);
                }
                assert_eq!(out.packets(), 11);
                assert_eq!(inb.packets(), 11);
                assert_eq!(inb.drops().total(), 0);
            }
        }
    }

    #[test]
    fn iv_is_the_sequence_number_and_header_is_clear() {
        let (mut out, _) = pair(Suite::Aes128Gcm, true);
        let _ = seal_frame(&mut out, b"first", 4);
        let pkt = seal_frame(&mut out, b"second", 4);
        assert_eq!(&pkt[0..4], &0x1000_0001u32.to_be_bytes());
        assert_eq!(&pkt[4..8], &2u32.to_be_bytes());
        assert_eq!(&pkt[8..16], &2u64.to_be_bytes());
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        for suite in SUITES {
            let (mut out, mut inb) = pair(suite, false);
            let inner: Vec<u8> = (0..45u8).collect();
            let pkt = seal_frame(&mut out, &inner, NEXT_HEADER_ETHERNET);
            for bit in 0..pkt.len() * 8 {
                let mut bad = pkt.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                let err = inb.open(&mut bad).unwrap_err();
                let expect = match bit / 8 {
                    0..=3 => EspError::UnknownSpi,
                    4..=7 if err == EspError::LeftOfWindow => EspError::LeftOfWindow,
                    _ => EspError::IcvFailure,
                };
                assert_eq!(err, expect, "{suite:?} bit {bit}");
            }
            // The untouched packet still opens: no rejected flip moved the window.
            let mut good = pkt.clone();
            let o = inb.open(&mut good).unwrap();
            assert_eq!(&good[o.inner], &inner[..]);
            assert_eq!(
                inb.drops().get(DropReason::IcvFailure)
                    + inb.drops().get(DropReason::UnknownSpi)
                    + inb.drops().get(DropReason::LeftOfWindow),
                (pkt.len() * 8) as u64
            );
        }
    }

    #[test]
    fn replay_is_caught_before_decryption() {
        let (mut out, mut inb) = pair(Suite::Aes256Gcm, false);
        let pkt = seal_frame(&mut out, b"hello", 4);
        inb.open(&mut pkt.clone()).unwrap();
        assert_eq!(inb.open(&mut pkt.clone()), Err(EspError::Replay));
        // A replay with a mangled body is still reported as a replay: no AES work was done.
        let mut mangled = pkt.clone();
        mangled[20] ^= 0xff;
        assert_eq!(inb.open(&mut mangled), Err(EspError::Replay));
        assert_eq!(inb.drops().get(DropReason::Replay), 2);
    }

    #[test]
    fn packets_opened_behind_a_later_number_are_marked_late() {
        let (mut out, mut inb) = pair(Suite::Aes256Gcm, false);
        let pkts: Vec<Vec<u8>> = (0..4).map(|i| seal_frame(&mut out, &[i; 20], 4)).collect();
        let late = |inb: &mut InboundSa, i: usize| inb.open(&mut pkts[i].clone()).unwrap().late;
        assert!(!late(&mut inb, 0), "in order");
        assert!(!late(&mut inb, 2), "a gap ahead is not lateness");
        assert!(late(&mut inb, 1), "1 after 3: reordered on the way, still accepted");
        assert!(!late(&mut inb, 3));
        assert_eq!(inb.drops().total(), 0);
    }

    #[test]
    fn forged_packet_does_not_move_the_window() {
        let (mut out, mut inb) = pair(Suite::Aes128Gcm, false);
        let first = seal_frame(&mut out, b"one", 4);
        // A forgery claiming sequence 5000 with a garbage ICV.
        let mut forged = first.clone();
        forged[4..8].copy_from_slice(&5000u32.to_be_bytes());
        assert_eq!(inb.open(&mut forged), Err(EspError::IcvFailure));
        assert_eq!(inb.window().top(), 0);
        inb.open(&mut first.clone()).unwrap();
        assert_eq!(inb.window().top(), 1);
    }

    /// Encrypts an arbitrary ESP plaintext (trailer included) to test trailer checks.
    fn seal_raw_plaintext(sa_km: &[u8], plaintext: &[u8], seq: u32) -> Vec<u8> {
        let cipher = Cipher::new(Suite::Aes128Gcm, sa_km).unwrap();
        let mut pkt = vec![0u8; ESP_HEADROOM + plaintext.len() + ESP_ICV_LEN];
        pkt[0..4].copy_from_slice(&0x1000_0001u32.to_be_bytes());
        pkt[4..8].copy_from_slice(&seq.to_be_bytes());
        pkt[8..16].copy_from_slice(&u64::from(seq).to_be_bytes());
        let n = ESP_HEADROOM + plaintext.len();
        pkt[ESP_HEADROOM..n].copy_from_slice(plaintext);
        let (aad, aad_len) = aad(0x1000_0001, u64::from(seq), false);
        let tag = cipher
            .key
            .seal_in_place_separate_tag(cipher.nonce(&u64::from(seq).to_be_bytes()), Aad::from(&aad[..aad_len]), &mut pkt[ESP_HEADROOM..n])
            .unwrap();
        pkt[n..].copy_from_slice(tag.as_ref());
        pkt
    }

    #[test]
    fn bad_padding_is_rejected_after_authentication() {
        let km: Vec<u8> = (0..20u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
        let mut inb = InboundSa::new(0x1000_0001, Suite::Aes128Gcm, &km, false, 64).unwrap();
        // Pad length larger than the payload.
        let mut p = seal_raw_plaintext(&km, &[0xaa, 0xbb, 9, 4], 1);
        assert_eq!(inb.open(&mut p), Err(EspError::BadPadding));
        // Pad bytes not 1, 2.
        let mut p = seal_raw_plaintext(&km, &[0xaa, 0xbb, 1, 3, 2, 4], 2);
        assert_eq!(inb.open(&mut p), Err(EspError::BadPadding));
        // A correct trailer with a long (but monotonic) pad is accepted.
        let mut p = seal_raw_plaintext(&km, &[0xaa, 1, 2, 3, 4, 5, 5, 4], 3);
        let o = inb.open(&mut p).unwrap();
        assert_eq!(&p[o.inner], &[0xaa]);
        assert_eq!(inb.drops().get(DropReason::BadPadding), 2);
        // Authenticated packets move the window even with a bad trailer: no second try.
        let mut p = seal_raw_plaintext(&km, &[0xaa, 0xbb, 9, 4], 1);
        assert_eq!(inb.open(&mut p), Err(EspError::Replay));
    }

    #[test]
    fn truncated_and_unknown_spi_are_counted() {
        let (mut out, mut inb) = pair(Suite::Aes128Gcm, false);
        let pkt = seal_frame(&mut out, b"", 4);
        assert_eq!(pkt.len(), ESP_MIN_LEN + 2);
        assert_eq!(inb.open(&mut pkt.clone()[..ESP_MIN_LEN - 1]), Err(EspError::Truncated));
        let mut other = pkt.clone();
        other[0..4].copy_from_slice(&0x2000_0000u32.to_be_bytes());
        assert_eq!(inb.open(&mut other), Err(EspError::UnknownSpi));
        assert_eq!(inb.drops().get(DropReason::Truncated), 1);
        assert_eq!(inb.drops().get(DropReason::UnknownSpi), 1);
    }

    #[test]
    fn sequence_numbers_never_wrap() {
        let (out, _) = pair(Suite::Aes128Gcm, false);
        assert_eq!(out.remaining(), u64::from(u32::MAX));
        let (out, _) = pair(Suite::Aes128Gcm, true);
        assert_eq!(out.remaining(), u64::MAX);
        let (out, _) = pair(Suite::Aes128Gcm, false);
        let mut out = out.with_sequence_limit(3).with_packet_budget(2);
        assert!(!out.needs_rekey());
        seal_frame(&mut out, b"a", 4);
        seal_frame(&mut out, b"b", 4);
        assert!(out.needs_rekey());
        seal_frame(&mut out, b"c", 4);
        assert_eq!(out.remaining(), 0);
        let mut buf = [0u8; 64];
        assert_eq!(out.seal(&mut buf, 1, 4), Err(EspError::SequenceExhausted));
        assert_eq!(out.packets(), 3);
    }

    #[test]
    fn resumed_sa_waits_for_its_reservation_and_never_passes_it() {
        let (out, mut inb) = pair(Suite::Aes128Gcm, false);
        let mut out = out.resume_after(1000);
        let mut buf = [0u8; 64];
        assert_eq!(out.seal(&mut buf, 4, 4), Err(EspError::NotReserved), "nothing reserved yet");
        assert_eq!(out.reservation_wanted(), Some(1000 + RESERVATION_BLOCK));
        out.confirm_reservation(1002);
        let first = seal_frame(&mut out, b"a", 4);
        assert_eq!(&first[4..8], &1001u32.to_be_bytes(), "continues after the last number used");
        seal_frame(&mut out, b"b", 4);
        assert_eq!(out.seal(&mut buf, 4, 4), Err(EspError::NotReserved));
        assert_eq!(out.packets(), 1002);
        // A stale confirmation never moves the mark back; the peer accepts the jump at once.
        out.confirm_reservation(5);
        assert_eq!(out.reserved(), 1002);
        assert_eq!(inb.open(&mut first.clone()).unwrap().sequence, 1001);
        // Near the end of the sequence space the reservation stops at the last number.
        let (out, _) = pair(Suite::Aes128Gcm, false);
        let mut out = out.resume_after(u64::from(u32::MAX) - 3);
        assert_eq!(out.reservation_wanted(), Some(u64::from(u32::MAX)));
        out.confirm_reservation(u64::MAX);
        assert_eq!(out.reservation_wanted(), None);
        for _ in 0..3 {
            seal_frame(&mut out, b"x", 4);
        }
        assert_eq!(out.seal(&mut buf, 4, 4), Err(EspError::SequenceExhausted));
    }

    #[test]
    fn resumed_inbound_refuses_everything_it_may_have_seen() {
        let (mut out, inb) = pair(Suite::Aes128Gcm, false);
        let mut inb = inb.with_seen_through(2);
        let p1 = seal_frame(&mut out, b"1", 4);
        let p2 = seal_frame(&mut out, b"2", 4);
        let p3 = seal_frame(&mut out, b"3", 4);
        assert_eq!(inb.open(&mut p1.clone()), Err(EspError::Replay));
        assert_eq!(inb.open(&mut p2.clone()), Err(EspError::Replay));
        assert_eq!(inb.open(&mut p3.clone()).unwrap().sequence, 3);
    }

    #[test]
    fn key_ids_tell_keys_apart() {
        let (a, _) = pair(Suite::Aes128Gcm, false);
        let b = OutboundSa::new(1, Suite::Aes128Gcm, &[9u8; 20], false).unwrap();
        assert_ne!(a.key_id(), b.key_id());
        assert_eq!(b.key_id(), OutboundSa::new(2, Suite::Aes128Gcm, &[9u8; 20], true).unwrap().key_id());
    }

    #[test]
    fn small_buffer_does_not_consume_a_sequence_number() {
        let (mut out, _) = pair(Suite::Aes128Gcm, false);
        let mut buf = [0u8; 40];
        // 5 inner bytes need 16 + 5 + 3 + 16 = 40; 6 need 16 + 6 + 2 + 16 = 40 too; 7 need 44.
        assert_eq!(out.seal(&mut buf, 7, 4), Err(EspError::BufferTooSmall));
        assert_eq!(out.packets(), 0);
        assert_eq!(out.seal(&mut buf, 6, 4), Ok(40));
        assert_eq!(out.packets(), 1);
    }

    #[test]
    fn wrong_key_length_is_refused() {
        assert_eq!(OutboundSa::new(1, Suite::Aes128Gcm, &[0u8; 16], false).unwrap_err(), EspError::BadKeyLength);
        assert_eq!(InboundSa::new(1, Suite::Aes256Gcm, &[0u8; 20], false, 64).unwrap_err(), EspError::BadKeyLength);
        assert!(OutboundSa::new(1, Suite::ChaCha20Poly1305, &[0u8; 36], false).is_ok());
    }

    #[test]
    fn esn_round_trip_across_the_2_32_boundary_out_of_order() {
        for suite in SUITES {
            let (out, mut inb) = pair(suite, true);
            let mut out = out;
            out.skip_to((1 << 32) - 5);
            let pkts: Vec<Vec<u8>> = (0..8u8).map(|i| seal_frame(&mut out, &[i; 30], 4)).collect();
            // Sequence numbers 2^32-4 ..= 2^32+3; only the low half is on the wire.
            assert_eq!(&pkts[3][4..8], &[0xff; 4]);
            assert_eq!(&pkts[4][4..8], &[0, 0, 0, 0]);
            inb.window_mut().set_top((1 << 32) - 10);
            for i in [0usize, 4, 2, 1, 5, 3, 7, 6] {
                let mut p = pkts[i].clone();
                let o = inb.open(&mut p).unwrap();
                assert_eq!(o.sequence, (1 << 32) - 4 + i as u64, "{suite:?} packet {i}");
                assert_eq!(&p[o.inner], &[i as u8; 30]);
            }
            for p in &pkts {
                assert_eq!(inb.open(&mut p.clone()), Err(EspError::Replay));
            }
        }
    }

    #[test]
    fn non_esn_sa_stops_at_2_32_minus_1() {
        let (mut out, mut inb) = pair(Suite::Aes128Gcm, false);
        out.skip_to(u64::from(u32::MAX) - 1);
        let last = seal_frame(&mut out, b"last", 4);
        assert_eq!(&last[4..8], &[0xff; 4]);
        let mut buf = [0u8; 64];
        assert_eq!(out.seal(&mut buf, 4, 4), Err(EspError::SequenceExhausted));
        inb.window_mut().set_top(u64::from(u32::MAX) - 5);
        assert_eq!(inb.open(&mut last.clone()).unwrap().sequence, u64::from(u32::MAX));
    }

    #[test]
    fn absurd_inner_len_is_refused_not_panicking() {
        let (mut out, _) = pair(Suite::Aes128Gcm, false);
        let mut buf = [0u8; 64];
        assert_eq!(out.seal(&mut buf, usize::MAX, 4), Err(EspError::BufferTooSmall));
        assert_eq!(out.packets(), 0);
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic `open` and never verify.
        #[test]
        fn open_never_panics_on_garbage(mut data in proptest::collection::vec(proptest::num::u8::ANY, 0..200), spi_match in proptest::bool::ANY) {
            let (_, mut inb) = pair(Suite::Aes256Gcm, true);
            if spi_match && data.len() >= 4 {
                data[0..4].copy_from_slice(&0x1000_0001u32.to_be_bytes());
            }
            proptest::prop_assert!(inb.open(&mut data).is_err());
        }
    }
}
