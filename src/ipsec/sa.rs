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
use super::replay::ReplayWindow;

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
const fn pad_len(inner_len: usize) -> usize {
    (4 - (inner_len + 2) % 4) % 4
}

#[inline]
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The keyed AEAD plus salt shared by both directions.
struct Cipher {
    key: LessSafeKey,
    salt: [u8; SALT_LEN],
}

impl Cipher {
    fn new(suite: Suite, key_material: &[u8]) -> Result<Self, EspError> {
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
    fn seal(
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
    soft_limit: u64,
    hard_limit: u64,
    bytes: u64,
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
            soft_limit: DEFAULT_PACKET_BUDGET.min(hard_limit),
            hard_limit,
            bytes: 0,
        })
    }

    /// Sets how many packets may be sealed before [`needs_rekey`](Self::needs_rekey) is true.
    pub fn with_packet_budget(mut self, packets: u64) -> Self {
        self.soft_limit = packets.min(self.hard_limit);
        self
    }

    /// Caps the last usable sequence number below the suite limit (tests, short-lived SAs).
    pub fn with_sequence_limit(mut self, last_seq: u64) -> Self {
        self.hard_limit = self.hard_limit.min(last_seq);
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
    /// Fails with [`EspError::SequenceExhausted`] after the last sequence number (never wraps)
    /// and [`EspError::BufferTooSmall`] without consuming a sequence number.
    // hot path
    pub fn seal(&mut self, buf: &mut [u8], inner_len: usize, next_header: u8) -> Result<usize, EspError> {
        if self.sent >= self.hard_limit {
            return Err(EspError::SequenceExhausted);
        }
        let seq = self.sent + 1;
        if buf.len() < sealed_len(inner_len) {
            return Err(EspError::BufferTooSmall);
        }
        // Consume the number before encrypting: a sequence number is never used twice.
        self.sent = seq;
        self.bytes += inner_len as u64;
        self.cipher.seal(buf, inner_len, next_header, self.spi, self.esn, seq, seq.to_be_bytes())
    }
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
        self.cipher
            .key
            .open_in_place_separate_tag(nonce, Aad::from(&aad[..aad_len]), tag, ct)
            .map_err(|_| EspError::IcvFailure)?;
        // Authenticated: the sender really used this number, whatever the trailer says.
        self.window.update(seq);
        let pad = usize::from(ct[ct_len - 2]);
        let next_header = ct[ct_len - 1];
        let inner_len = ct_len.checked_sub(pad + 2).ok_or(EspError::BadPadding)?;
        let pad_ok = ct[inner_len..inner_len + pad].iter().enumerate().all(|(i, b)| usize::from(*b) == i + 1);
        if !pad_ok {
            return Err(EspError::BadPadding);
        }
        Ok(Opened { next_header, inner: ESP_HEADROOM..ESP_HEADROOM + inner_len, sequence: seq })
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

    fn unhex(s: &str) -> Vec<u8> {
        let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        hex::decode(clean).unwrap()
    }

    /// One ESP test vector: the ESP payload plaintext includes the trailer (padding, pad
    /// length, next header) exactly as the vector lists it; `packet` is the whole ESP packet.
    struct Kat {
        suite: Suite,
        key_material: &'static str,
        spi: u32,
        esn: bool,
        seq: u64,
        iv: &'static str,
        plaintext: &'static str,
        packet: &'static str,
    }

    fn run_kat(k: &Kat) {
        let km = unhex(k.key_material);
        let plaintext = unhex(k.plaintext);
        let expected = unhex(k.packet);
        let iv: [u8; 8] = unhex(k.iv).try_into().unwrap();
        let n = plaintext.len();
        let (pad, nh) = (usize::from(plaintext[n - 2]), plaintext[n - 1]);
        let inner_len = n - 2 - pad;
        assert_eq!(pad_len(inner_len), pad, "our padding rule must match the vector");
        assert_eq!(sealed_len(inner_len), expected.len());

        // Seal byte-exact with the vector's explicit IV.
        let mut buf = vec![0u8; expected.len()];
        buf[ESP_HEADROOM..ESP_HEADROOM + inner_len].copy_from_slice(&plaintext[..inner_len]);
        let cipher = Cipher::new(k.suite, &km).unwrap();
        let len = cipher.seal(&mut buf, inner_len, nh, k.spi, k.esn, k.seq, iv).unwrap();
        assert_eq!(len, expected.len());
        assert_eq!(hex::encode(&buf), hex::encode(&expected));

        // Open the published packet.
        let mut sa = InboundSa::new(k.spi, k.suite, &km, k.esn, 64).unwrap();
        sa.window_mut().set_top(k.seq - 1);
        let mut pkt = expected.clone();
        let opened = sa.open(&mut pkt).unwrap();
        assert_eq!(opened.next_header, nh);
        assert_eq!(opened.sequence, k.seq);
        assert_eq!(&pkt[opened.inner.clone()], &plaintext[..inner_len]);
    }

    // The vectors below are the AES-GCM ESP test cases of draft-mcgrew-gcm-test-01 section 4
    // (also in Linux crypto/testmgr.h, "aes_gcm_rfc4106" vectors), named by their SPI/sequence.
    // Each gives key || salt, SPI, (ESN) sequence number, the explicit IV, the ESP plaintext
    // with its trailer, and the complete ESP packet. The 192-bit-key case and the SPI 0 case
    // are left out (we support neither).

    /// draft-mcgrew-gcm-test-01 section 4, test case 1: AES-128, ESN, SPI 0x4321,
    /// seq 0x87654321_00000000 (the low half on the wire is 0: the ESN high half matters).
    #[test]
    fn kat_mcgrew_case1_aes128_esn() {
        run_kat(&Kat {
            suite: Suite::Aes128Gcm,
            key_material: "4c80cdefbb5d10da906ac73c3613a634 2e443b68",
            spi: 0x0000_4321,
            esn: true,
            seq: 0x8765_4321_0000_0000,
            iv: "4956ed7e3b244cfe",
            plaintext: "45000048699a000080114db7c0a80102 c0a801010a9bf15638d3010000010000
                        00000000045f736970045f7564700373 69700963796265726369747902646b00
                        0021000101020201",
            packet: "00004321000000004956ed7e3b244cfe fecf537e729d5b07dc30df528dd22b76
                     8d1b98736696a6fd348509fa13ceac34 cfa2436f14a3f3cf65925bf1f4a13c5d
                     15b21e1884f5ff6247aeabb786b93bce 61bc17d768fd9732459018148f6cbe72
                     2fd04796562dfdb4",
        });
    }

    /// draft-mcgrew-gcm-test-01 section 4, test case 2: AES-128, SPI 0xa5f8, seq 10.
    #[test]
    fn kat_mcgrew_case2_aes128() {
        run_kat(&Kat {
            suite: Suite::Aes128Gcm,
            key_material: "feffe9928665731c6d6a8f9467308308 cafebabe",
            spi: 0x0000_a5f8,
            esn: false,
            seq: 0x0a,
            iv: "facedbaddecaf888",
            plaintext: "4500003e698f000080114dccc0a80102 c0a801010a980035002a2343b2d00100
                        00010000000000000373697009637962 65726369747902646b00000100010001",
            packet: "0000a5f80000000afacedbaddecaf888 deb22cd9b07c72c16e3a65beeb8df304
                     a5a5897d33ae530f1ba76d5d114d2a5c 3de81827c10e9a4f51330d0eec416642
                     cfbb85a5b47e48a4ec3b9ba95d918bd1 83b70d3aa8bc6ee4c309e9d85a41ad4a",
        });
    }

    /// draft-mcgrew-gcm-test-01 section 4, test case 3: AES-256, SPI 0x4a2cbfe3, seq 2.
    #[test]
    fn kat_mcgrew_case3_aes256() {
        run_kat(&Kat {
            suite: Suite::Aes256Gcm,
            key_material: "abbccddef00112233445566778899aab abbccddef00112233445566778899aab 11223344",
            spi: 0x4a2c_bfe3,
            esn: false,
            seq: 2,
            iv: "0102030405060708",
            plaintext: "4500003069a6400080062690c0a80102 9389155e0a9e008b2dc57ee000000000
                        7002400020bf0000020405b401010402 01020201",
            packet: "4a2cbfe3000000020102030405060708 ff425c9b724599df7a3bcd510194e00d
                     6a78107f1b0b1cbf06efae9d65a5d763 748a637985771d347f0545659f14e99d
                     ef842d8eb335f4eecfdbf831824b4c49 15956c96",
        });
    }

    /// draft-mcgrew-gcm-test-01 section 4, test case 5: AES-128, ESN, SPI 0x42f67e3f,
    /// seq 0x10101010_10101010 (an ICMP echo).
    #[test]
    fn kat_mcgrew_case5_aes128_esn() {
        run_kat(&Kat {
            suite: Suite::Aes128Gcm,
            key_material: "3de09874b388e6491988d0c3607eae1f 57690e43",
            spi: 0x42f6_7e3f,
            esn: true,
            seq: 0x1010_1010_1010_1010,
            iv: "4e280000a2fca1a3",
            plaintext: "4500003c99c300008001cb7c40679318 010101010800085c0200430061626364
                        65666768696a6b6c6d6e6f7071727374 75767761626364656667686901020201",
            packet: "42f67e3f101010104e280000a2fca1a3 fba2caa4853cf9f0f22cb10d86dd83b0
                     fec75691cf1a04b00d1138ec9c357917 65acbd8701ad79845bf9fe3fba487bc9
                     1755e6662b4c8d0d1f5e22739530320a e0d731cc978ecafaeae88f00e80d6e48",
        });
    }

    /// draft-mcgrew-gcm-test-01 section 4, test case 9: AES-256, ESN, SPI 0x17405e67,
    /// seq 0x156f3126_dd0db99b (a TCP segment, no padding).
    #[test]
    fn kat_mcgrew_case9_aes256_esn() {
        run_kat(&Kat {
            suite: Suite::Aes256Gcm,
            key_material: "abbccddef00112233445566778899aab abbccddef00112233445566778899aab 73616c74",
            spi: 0x1740_5e67,
            esn: true,
            seq: 0x156f_3126_dd0d_b99b,
            iv: "616e640169766563",
            plaintext: "45080028732c00004006e9f90a010612 0a01038f06b88023dd6bafbecb712602
                        50101f646d540001",
            packet: "17405e67dd0db99b616e640169766563 f2d69ecdbd5a0d5b8d5ef38bad4da58d
                     1f278fde98ef67549d524a3018d9a57f f4d3a31ce673119e451626c2415771e3
                     b7eebca614c89b35",
        });
    }

    /// draft-mcgrew-gcm-test-01 section 4, test case 12: AES-128, SPI 0x335467ae,
    /// seq 0xffffffff (the last non-ESN number) with an empty payload (trailer only).
    #[test]
    fn kat_mcgrew_case12_aes128_empty_payload() {
        run_kat(&Kat {
            suite: Suite::Aes128Gcm,
            key_material: "7d773d00c144c525ac619d18c84a3f47 d9664267",
            spi: 0x3354_67ae,
            esn: false,
            seq: 0xffff_ffff,
            iv: "43457e9182443bc6",
            plaintext: "01020201",
            packet: "335467aeffffffff43457e9182443bc6 437f866bcb3f699fe9b0822bac961c45
                     04bef270",
        });
    }

    /// draft-mcgrew-gcm-test-01 section 4, test case 14: AES-256, ESN, SPI 0x796b6963,
    /// seq 2^64 - 1 (the very last ESN number).
    #[test]
    fn kat_mcgrew_case14_aes256_esn_last() {
        run_kat(&Kat {
            suite: Suite::Aes256Gcm,
            key_material: "6c6567616c697a656d6172696a75616e 61616e64646f69746265666f72656961 7475726e",
            spi: 0x796b_6963,
            esn: true,
            seq: u64::MAX,
            iv: "333021696765746d",
            plaintext: "45000030da3a00008001df3bc0a80005 c0a800010800c6cd0200070061626364
                        65666768696a6b6c6d6e6f7071727374 01020201",
            packet: "796b6963ffffffff333021696765746d f97ab2aa356d8edce17644ac8c78e25d
                     d24dedbb29ebf1b64a274b39b49c3a86 4cd3d78ca4ae68a32b42458fb57dbe82
                     1dcc63b9d0937ba2945f669368661a32 9fb4c053",
        });
    }

    /// RFC 7634 Appendix A: ChaCha20-Poly1305 ESP, SPI 0x01020304, seq 5, tunnel mode
    /// (next header 4), IV 0x1011121314151617.
    #[test]
    fn kat_rfc7634_appendix_a_chacha() {
        let ct_tag = "24039428b97f417e3c13753a4f05087b 67c352e6a7fab1b982d466ef407ae5c6
                      14ee8099d52844eb61aa95dfab4c02f7 2aa71e7c4c4f64c9befe2facc638e8f3
                      cbec163fac469b502773f6fb94e664da 9165b82829f641e0
                      76aaa8266b7fb0f7b11b369907e1ad43";
        let packet = format!("0102030400000005 1011121314151617 {ct_tag}");
        let packet: &'static str = Box::leak(packet.into_boxed_str());
        run_kat(&Kat {
            suite: Suite::ChaCha20Poly1305,
            key_material: "808182838485868788898a8b8c8d8e8f 909192939495969798999a9b9c9d9e9f a0a1a2a3",
            spi: 0x0102_0304,
            esn: false,
            seq: 5,
            iv: "1011121314151617",
            plaintext: "45000054a6f200004001e778c6336405 c000020508005b7a3a080000553bec10
                        0007362708090a0b0c0d0e0f10111213 1415161718191a1b1c1d1e1f20212223
                        2425262728292a2b2c2d2e2f30313233 3435363701020204",
            packet,
        });
    }

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
            assert_eq!(inb.drops().get(DropReason::IcvFailure) + inb.drops().get(DropReason::UnknownSpi) + inb.drops().get(DropReason::LeftOfWindow), (pkt.len() * 8) as u64);
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
}
