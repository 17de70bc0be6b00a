//! Keys: the host's long-term X25519 key, per-peer SA derivation, and manual keys.
//!
//! **Host key.** Each host has one static X25519 key pair, generated on first start and kept
//! in a file readable by its owner only (mode 0600, one line of hex). The public half is
//! announced through the control plane (`ControlUpdate::EspKey`) together with a random
//! per-start *epoch*. A key file that group or others may read is refused: whoever reads it
//! can decrypt every tunnel of the host.
//!
//! **Derivation.** Two hosts A and B compute the same X25519 shared secret. HKDF-SHA256
//! extracts a pseudo-random key from it once per session, then expands one SA per direction
//! and generation:
//!
//! ```text
//! info = label || suite || esn || sender_pub || receiver_pub
//!              || sender_epoch || receiver_epoch || generation || vni   (fixed-width fields)
//! SPI  = HKDF-Expand(prk, "vxswitch esp spi" info, 4)
//! key  = HKDF-Expand(prk, "vxswitch esp key" info, key_len + 4)     (key || salt)
//! ```
//!
//! Because the sender comes first, A's outbound SA equals B's inbound SA for the same
//! generation and the two directions never share a key; both sides compute them alone, with
//! no handshake. Both epochs are inputs, so after either host restarts (sequence numbers start
//! at 1 again) every key is new and no (key, nonce) pair repeats. The generation counts
//! rekeys of one direction within one pair of epochs; the sender advances it and the receiver
//! follows (see `session`). The VNI of the encrypted network is an input too, so two encrypted
//! networks between the same two hosts get distinct keys and SPIs (the receiver tells the
//! networks apart by SPI, ESP carrying no VNI). The SPI has its own expansion so a receiver can scan upcoming
//! generations for an SPI cheaply without deriving keys.
//!
//! **Manual keys** take the values `ip xfrm state add ... spi 0x.. aead 'rfc4106(gcm(aes))'
//! 0x<key||salt> 128` takes, so a tunnel can be set up (or compared with the kernel) without
//! the control plane.
//!
//! File I/O here is limited to the key file, named by the caller.

use std::fmt;
use std::path::Path;

use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::hkdf::{KeyType, Prk, Salt, HKDF_SHA256};

use super::error::EspError;
use super::sa::{InboundSa, OutboundSa, Suite};
use crate::keyfile::{self, KeyFileError};

struct HelloKeyLen;

impl KeyType for HelloKeyLen {
    fn len(&self) -> usize {
        32
    }
}

/// Length of an X25519 public or private key.
pub const KEY_LEN: usize = 32;
const HKDF_SALT: &[u8] = b"vxswitch esp v1";
const LABEL_SPI: &[u8; 16] = b"vxswitch esp spi";
const LABEL_KEY: &[u8; 16] = b"vxswitch esp key";
const MAX_KEY_MATERIAL: usize = 36;
/// suite, esn, two public keys, two epochs, generation, VNI.
const INFO_LEN: usize = 2 + 2 * KEY_LEN + 3 * 8 + 4;

/// Errors loading, creating or using the host key.
#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    /// The key file could not be read or created (see [`crate::keyfile`]).
    #[error(transparent)]
    File(#[from] KeyFileError),
    /// The crypto library refused the key or failed to generate one.
    #[error("X25519 key operation failed")]
    Crypto,
}

/// A host's long-term X25519 key pair.
pub struct HostKey {
    private: PrivateKey,
    public: [u8; KEY_LEN],
}

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostKey").field("public", &hex::encode(self.public)).finish_non_exhaustive()
    }
}

impl HostKey {
    /// Generates a fresh key pair.
    pub fn generate() -> Result<Self, HostKeyError> {
        let private = PrivateKey::generate(&X25519).map_err(|_| HostKeyError::Crypto)?;
        Self::from_private(private)
    }

    /// Builds the key pair from 32 raw private-key bytes.
    pub fn from_private_bytes(bytes: &[u8; KEY_LEN]) -> Result<Self, HostKeyError> {
        let private = PrivateKey::from_private_key(&X25519, bytes).map_err(|_| HostKeyError::Crypto)?;
        Self::from_private(private)
    }

    fn from_private(private: PrivateKey) -> Result<Self, HostKeyError> {
        let public = private.compute_public_key().map_err(|_| HostKeyError::Crypto)?;
        let public: [u8; KEY_LEN] = public.as_ref().try_into().map_err(|_| HostKeyError::Crypto)?;
        Ok(HostKey { private, public })
    }

    /// The public key to announce to peers.
    pub fn public_key(&self) -> [u8; KEY_LEN] {
        self.public
    }

    /// The epoch-independent key that authenticates epoch announcements ([`super::hello`])
    /// between this host and `peer_public`: HKDF-SHA256 of the static X25519 secret, bound to
    /// both public keys (in sorted order, so both sides derive the same key).
    pub fn hello_key(&self, peer_public: &[u8; KEY_LEN]) -> Result<[u8; 32], HostKeyError> {
        let peer = UnparsedPublicKey::new(&X25519, *peer_public);
        let (lo, hi) = if self.public <= *peer_public { (self.public, *peer_public) } else { (*peer_public, self.public) };
        agreement::agree(&self.private, peer, HostKeyError::Crypto, |secret| {
            if secret.iter().all(|b| *b == 0) {
                return Err(HostKeyError::Crypto);
            }
            let prk = Salt::new(HKDF_SHA256, b"vxswitch hello v1").extract(secret);
            let info = [&lo[..], &hi[..]];
            let okm = prk.expand(&info, HelloKeyLen).map_err(|_| HostKeyError::Crypto)?;
            let mut out = [0u8; 32];
            okm.fill(&mut out).map_err(|_| HostKeyError::Crypto)?;
            Ok(out)
        })
    }

    /// Loads the key from `path`, or generates one and stores it there (mode 0600) on first
    /// start.
    pub fn load_or_create(path: &Path) -> Result<Self, HostKeyError> {
        match Self::load(path) {
            Err(HostKeyError::File(e)) if e.is_not_found() => {
                let key = Self::generate()?;
                match key.store(path) {
                    Ok(()) => Ok(key),
                    // Someone else created it meanwhile: use theirs.
                    Err(HostKeyError::File(e)) if e.is_already_exists() => Self::load(path),
                    Err(e) => Err(e),
                }
            }
            other => other,
        }
    }

    /// Loads the key from `path` (owner-only permissions, see [`crate::keyfile`]).
    pub fn load(path: &Path) -> Result<Self, HostKeyError> {
        let mut text = keyfile::read(path)?;
        let malformed = || HostKeyError::File(keyfile::malformed(path, "a 32-byte hex X25519 private key"));
        let mut bytes = [0u8; KEY_LEN];
        let decoded = std::str::from_utf8(&text).ok().map(|t| hex::decode_to_slice(t.trim(), &mut bytes));
        text.fill(0);
        if !matches!(decoded, Some(Ok(()))) {
            return Err(malformed());
        }
        let key = Self::from_private_bytes(&bytes).map_err(|_| malformed());
        bytes.fill(0);
        key
    }

    /// Writes the private key to a new file at `path` with mode 0600 (fails if it exists).
    pub fn store(&self, path: &Path) -> Result<(), HostKeyError> {
        let seed: aws_lc_rs::encoding::Curve25519SeedBin<'_> = self.private.as_be_bytes().map_err(|_| HostKeyError::Crypto)?;
        let mut line = hex::encode(seed.as_ref());
        line.push('\n');
        let result = keyfile::create(path, line.as_bytes());
        // Overwrite the hex copy in its own allocation before it is freed (best effort).
        line.clear();
        line.extend(std::iter::repeat_n('0', KEY_LEN * 2));
        Ok(result?)
    }
}

/// The epoch of a daemon start: wall-clock milliseconds in the high 44 bits and 20 random low
/// bits. Unique per start like [`random_epoch`], and, unlike it, *larger after every restart*
/// (on a sane clock), which is what lets the cluster tell a restarted host's record from a stale
/// one: gossip keeps the record with the larger (epoch, version).
pub fn start_epoch(unix_millis: u64) -> u64 {
    let low = random_epoch() & 0xf_ffff;
    ((unix_millis & 0xfff_ffff_ffff) << 20) | low | 1
}

/// A fresh random per-start epoch (never 0).
pub fn random_epoch() -> u64 {
    let mut b = [0u8; 8];
    loop {
        if aws_lc_rs::rand::fill(&mut b).is_ok() {
            let e = u64::from_be_bytes(b);
            if e != 0 {
                return e;
            }
        }
    }
}

/// HKDF output length for [`Prk::expand`].
struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// Which way an SA carries traffic, from the local host's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Local host to peer.
    Outbound,
    /// Peer to local host.
    Inbound,
}

/// Everything two hosts share for deriving their SAs: the HKDF key from the X25519 secret
/// and both identities and epochs.
pub struct SessionKeys {
    prk: Prk,
    suite: Suite,
    esn: bool,
    local_public: [u8; KEY_LEN],
    peer_public: [u8; KEY_LEN],
    local_epoch: u64,
    peer_epoch: u64,
    vni: u32,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys")
            .field("suite", &self.suite)
            .field("peer_public", &hex::encode(self.peer_public))
            .field("local_epoch", &self.local_epoch)
            .field("peer_epoch", &self.peer_epoch)
            .field("vni", &self.vni)
            .finish_non_exhaustive()
    }
}

impl SessionKeys {
    /// Agrees on a secret with the peer's public key and prepares derivation.
    ///
    /// Fails with [`HostKeyError::Crypto`] for an invalid peer key (e.g. a low-order point
    /// that would give an all-zero secret).
    pub fn new(
        host: &HostKey,
        local_epoch: u64,
        peer_public: [u8; KEY_LEN],
        peer_epoch: u64,
        suite: Suite,
        esn: bool,
    ) -> Result<Self, HostKeyError> {
        let peer = UnparsedPublicKey::new(&X25519, peer_public);
        let prk = agreement::agree(&host.private, peer, HostKeyError::Crypto, |secret| {
            if secret.iter().all(|b| *b == 0) {
                return Err(HostKeyError::Crypto);
            }
            Ok(Salt::new(HKDF_SHA256, HKDF_SALT).extract(secret))
        })?;
        Ok(SessionKeys { prk, suite, esn, local_public: host.public, peer_public, local_epoch, peer_epoch, vni: 0 })
    }

    /// The same keys bound to the encrypted network `vni` (an HKDF input; 0 until set).
    pub fn for_network(mut self, vni: u32) -> Self {
        self.vni = vni;
        self
    }

    /// The VNI of the network these keys belong to.
    pub fn vni(&self) -> u32 {
        self.vni
    }

    /// The AEAD suite of every derived SA.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Whether derived SAs use extended sequence numbers.
    pub fn esn(&self) -> bool {
        self.esn
    }

    /// The peer's epoch these keys are bound to.
    pub fn peer_epoch(&self) -> u64 {
        self.peer_epoch
    }

    /// The local epoch these keys are bound to.
    pub fn local_epoch(&self) -> u64 {
        self.local_epoch
    }

    /// The fixed-width context of one direction and generation.
    fn info(&self, dir: Direction, generation: u64) -> [u8; INFO_LEN] {
        let (sender, receiver, s_epoch, r_epoch) = match dir {
            Direction::Outbound => (&self.local_public, &self.peer_public, self.local_epoch, self.peer_epoch),
            Direction::Inbound => (&self.peer_public, &self.local_public, self.peer_epoch, self.local_epoch),
        };
        let mut info = [0u8; INFO_LEN];
        info[0] = self.suite.id();
        info[1] = u8::from(self.esn);
        info[2..34].copy_from_slice(sender);
        info[34..66].copy_from_slice(receiver);
        info[66..74].copy_from_slice(&s_epoch.to_be_bytes());
        info[74..82].copy_from_slice(&r_epoch.to_be_bytes());
        info[82..90].copy_from_slice(&generation.to_be_bytes());
        info[90..94].copy_from_slice(&self.vni.to_be_bytes());
        info
    }

    /// The SPI of one direction and generation (never 0 nor in the IANA-reserved 1..=255).
    pub fn spi(&self, dir: Direction, generation: u64) -> u32 {
        let info = self.info(dir, generation);
        let mut b = [0u8; 4];
        let parts: [&[u8]; 2] = [LABEL_SPI, &info];
        // Expanding 4 bytes from SHA-256 cannot fail (the length is far below 255 * 32).
        if let Ok(okm) = self.prk.expand(&parts, Len(4)) {
            let _ = okm.fill(&mut b);
        }
        let spi = u32::from_be_bytes(b);
        if spi < 256 {
            spi ^ 0x8000_0000
        } else {
            spi
        }
    }

    fn key_material(&self, dir: Direction, generation: u64, out: &mut [u8; MAX_KEY_MATERIAL]) -> usize {
        let len = self.suite.key_material_len();
        let info = self.info(dir, generation);
        let parts: [&[u8]; 2] = [LABEL_KEY, &info];
        if let Ok(okm) = self.prk.expand(&parts, Len(len)) {
            let _ = okm.fill(&mut out[..len]);
        }
        len
    }

    /// The outbound SA (local to peer) of `generation`.
    pub fn outbound(&self, generation: u64) -> Result<OutboundSa, EspError> {
        let mut km = [0u8; MAX_KEY_MATERIAL];
        let len = self.key_material(Direction::Outbound, generation, &mut km);
        let sa = OutboundSa::new(self.spi(Direction::Outbound, generation), self.suite, &km[..len], self.esn);
        km.fill(0);
        sa
    }

    /// The inbound SA (peer to local) of `generation` with a replay window of `window`.
    pub fn inbound(&self, generation: u64, window: u32) -> Result<InboundSa, EspError> {
        let mut km = [0u8; MAX_KEY_MATERIAL];
        let len = self.key_material(Direction::Inbound, generation, &mut km);
        let sa = InboundSa::new(self.spi(Direction::Inbound, generation), self.suite, &km[..len], self.esn, window);
        km.fill(0);
        sa
    }
}

/// Why manual key parameters were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManualKeyError {
    /// The SPI is not a number in 1..=2^32-1 (hex with 0x, or decimal).
    #[error("bad SPI {0:?}: expected a non-zero 32-bit number such as 0x1000")]
    BadSpi(String),
    /// The algorithm name is not one we implement.
    #[error("unsupported AEAD {0:?}: use 'rfc4106(gcm(aes))' or 'rfc7539esp(chacha20,poly1305)'")]
    UnknownAlgorithm(String),
    /// The key is not hex.
    #[error("key is not hex")]
    BadHex,
    /// The key has a length the algorithm does not take.
    #[error("key material of {0} bytes does not fit the algorithm (20 or 36 for AES-GCM, 36 for ChaCha20-Poly1305)")]
    BadKeyLength(usize),
    /// Only 128-bit ICVs are supported.
    #[error("ICV length {0} bits unsupported: use 128")]
    UnsupportedIcv(u32),
}

/// One manually keyed SA, as `ip xfrm state` describes it.
#[derive(Clone, PartialEq, Eq)]
pub struct ManualSa {
    /// The SPI.
    pub spi: u32,
    /// The AEAD suite (deduced from the algorithm name and key length).
    pub suite: Suite,
    key_material: [u8; MAX_KEY_MATERIAL],
}

impl fmt::Debug for ManualSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualSa").field("spi", &format_args!("{:#010x}", self.spi)).field("suite", &self.suite).finish_non_exhaustive()
    }
}

impl ManualSa {
    /// Parses `spi`, the AEAD name, the `0x`-prefixed key || salt and the ICV bits, as in
    /// `ip xfrm state add ... spi 0x1000 ... aead 'rfc4106(gcm(aes))' 0x<40 hex digits> 128`.
    pub fn parse(spi: &str, aead: &str, key_hex: &str, icv_bits: u32) -> Result<Self, ManualKeyError> {
        let spi_val = match spi.strip_prefix("0x").or_else(|| spi.strip_prefix("0X")) {
            Some(h) => u32::from_str_radix(h, 16),
            None => spi.parse::<u32>(),
        }
        .ok()
        .filter(|s| *s != 0)
        .ok_or_else(|| ManualKeyError::BadSpi(spi.to_owned()))?;
        if icv_bits != 128 {
            return Err(ManualKeyError::UnsupportedIcv(icv_bits));
        }
        let digits = key_hex.strip_prefix("0x").or_else(|| key_hex.strip_prefix("0X")).unwrap_or(key_hex);
        if digits.len() % 2 != 0 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ManualKeyError::BadHex);
        }
        let len = digits.len() / 2;
        let suite = match (aead, len) {
            ("rfc4106(gcm(aes))", 20) => Suite::Aes128Gcm,
            ("rfc4106(gcm(aes))", 36) => Suite::Aes256Gcm,
            ("rfc7539esp(chacha20,poly1305)", 36) => Suite::ChaCha20Poly1305,
            ("rfc4106(gcm(aes))" | "rfc7539esp(chacha20,poly1305)", n) => return Err(ManualKeyError::BadKeyLength(n)),
            (other, _) => return Err(ManualKeyError::UnknownAlgorithm(other.to_owned())),
        };
        let mut key_material = [0u8; MAX_KEY_MATERIAL];
        hex::decode_to_slice(digits, &mut key_material[..len]).map_err(|_| ManualKeyError::BadHex)?;
        Ok(ManualSa { spi: spi_val, suite, key_material })
    }

    fn material(&self) -> &[u8] {
        &self.key_material[..self.suite.key_material_len()]
    }

    /// The outbound SA for these parameters.
    pub fn outbound(&self, esn: bool) -> Result<OutboundSa, EspError> {
        OutboundSa::new(self.spi, self.suite, self.material(), esn)
    }

    /// The inbound SA for these parameters with a replay window of `window`.
    pub fn inbound(&self, esn: bool, window: u32) -> Result<InboundSa, EspError> {
        InboundSa::new(self.spi, self.suite, self.material(), esn, window)
    }

    /// The `ip xfrm state` arguments describing this SA (contains the secret key).
    pub fn xfrm_args(&self) -> String {
        format!("spi {:#010x} aead '{}' 0x{} 128", self.spi, self.suite.xfrm_name(), hex::encode(self.material()))
    }
}

impl Drop for ManualSa {
    fn drop(&mut self) {
        self.key_material.fill(0);
    }
}

#[cfg(test)]
mod epoch_tests {
    use super::*;

    #[test]
    fn start_epochs_grow_with_time_and_differ_within_a_millisecond() {
        let a = start_epoch(1_700_000_000_000);
        let b = start_epoch(1_700_000_000_001);
        assert!(b > a, "a later start has a larger epoch");
        let same: std::collections::HashSet<u64> = (0..64).map(|_| start_epoch(1_700_000_000_000)).collect();
        assert!(same.len() > 60, "random low bits keep starts in the same millisecond apart");
        assert!(same.iter().all(|e| *e != 0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use crate::test_support::TempDir;

    fn host(seed: u8) -> HostKey {
        HostKey::from_private_bytes(&[seed; KEY_LEN]).unwrap()
    }

    #[test]
    fn key_file_is_created_0600_and_reloaded() {
        let dir = TempDir::new("keys-create");
        let path = dir.0.join("host.key");
        let a = HostKey::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = HostKey::load_or_create(&path).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        let c = HostKey::load(&path).unwrap();
        assert_eq!(a.public_key(), c.public_key());
        // A second store never overwrites the existing key.
        assert!(matches!(HostKey::generate().unwrap().store(&path), Err(HostKeyError::File(KeyFileError::Io { .. }))));
        assert_eq!(HostKey::load(&path).unwrap().public_key(), a.public_key());
    }

    #[test]
    fn world_or_group_readable_key_file_is_refused() {
        let dir = TempDir::new("keys-perm");
        let path = dir.0.join("host.key");
        HostKey::generate().unwrap().store(&path).unwrap();
        for mode in [0o644, 0o604, 0o640] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = HostKey::load_or_create(&path).unwrap_err();
            assert!(matches!(err, HostKeyError::File(KeyFileError::TooOpen { mode: m, .. }) if m == mode), "{err}");
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert!(HostKey::load(&path).is_ok());
    }

    #[test]
    fn malformed_key_file_is_refused() {
        let dir = TempDir::new("keys-malformed");
        let path = dir.0.join("host.key");
        fs::write(&path, "not a key\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(HostKey::load(&path), Err(HostKeyError::File(KeyFileError::Malformed { .. }))));
    }

    #[test]
    fn x25519_matches_rfc7748_section_6_1() {
        // RFC 7748 6.1: Alice's and Bob's private keys, their public keys and shared secret.
        let alice: [u8; 32] = hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a").unwrap().try_into().unwrap();
        let bob: [u8; 32] = hex::decode("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb").unwrap().try_into().unwrap();
        let a = HostKey::from_private_bytes(&alice).unwrap();
        let b = HostKey::from_private_bytes(&bob).unwrap();
        assert_eq!(hex::encode(a.public_key()), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        assert_eq!(hex::encode(b.public_key()), "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
        let shared = agreement::agree(&a.private, UnparsedPublicKey::new(&X25519, b.public_key()), (), |s| Ok(hex::encode(s))).unwrap();
        assert_eq!(shared, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    }

    #[test]
    fn derivation_is_symmetric_per_direction() {
        let (a, b) = (host(1), host(2));
        for suite in [Suite::Aes128Gcm, Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
            let ka = SessionKeys::new(&a, 111, b.public_key(), 222, suite, false).unwrap();
            let kb = SessionKeys::new(&b, 222, a.public_key(), 111, suite, false).unwrap();
            for generation in [0, 1, 7] {
                // A's outbound is B's inbound and vice versa; the two directions differ.
                let a_out = ka.spi(Direction::Outbound, generation);
                assert_eq!(a_out, kb.spi(Direction::Inbound, generation));
                assert_eq!(ka.spi(Direction::Inbound, generation), kb.spi(Direction::Outbound, generation));
                assert_ne!(a_out, ka.spi(Direction::Inbound, generation));
                let mut out = ka.outbound(generation).unwrap();
                let mut inb = kb.inbound(generation, 64).unwrap();
                assert_eq!(out.spi(), inb.spi());
                let mut buf = [0u8; 64];
                buf[16..21].copy_from_slice(b"hello");
                let n = out.seal(&mut buf, 5, 4).unwrap();
                let o = inb.open(&mut buf[..n]).unwrap();
                assert_eq!(&buf[o.inner], b"hello");
                // The reverse direction's key does not open it.
                let mut again = [0u8; 64];
                let mut out2 = ka.outbound(generation).unwrap();
                again[16..21].copy_from_slice(b"hello");
                let n = out2.seal(&mut again, 5, 4).unwrap();
                let mut wrong = ka.inbound(generation, 64).unwrap();
                assert_eq!(wrong.open(&mut again[..n]).unwrap_err(), EspError::UnknownSpi);
            }
        }
    }

    #[test]
    fn epochs_generations_and_peers_give_different_sas() {
        let (a, b, c) = (host(1), host(2), host(3));
        let base = SessionKeys::new(&a, 1, b.public_key(), 2, Suite::Aes256Gcm, false).unwrap();
        let restarted = SessionKeys::new(&a, 3, b.public_key(), 2, Suite::Aes256Gcm, false).unwrap();
        let peer_restarted = SessionKeys::new(&a, 1, b.public_key(), 4, Suite::Aes256Gcm, false).unwrap();
        let other_peer = SessionKeys::new(&a, 1, c.public_key(), 2, Suite::Aes256Gcm, false).unwrap();
        let other_suite = SessionKeys::new(&a, 1, b.public_key(), 2, Suite::ChaCha20Poly1305, false).unwrap();
        let esn = SessionKeys::new(&a, 1, b.public_key(), 2, Suite::Aes256Gcm, true).unwrap();
        let km = |k: &SessionKeys, g| {
            let mut m = [0u8; MAX_KEY_MATERIAL];
            k.key_material(Direction::Outbound, g, &mut m);
            (k.spi(Direction::Outbound, g), m)
        };
        let reference = km(&base, 0);
        for (name, other) in [
            ("local restart", km(&restarted, 0)),
            ("peer restart", km(&peer_restarted, 0)),
            ("other peer", km(&other_peer, 0)),
            ("other suite", km(&other_suite, 0)),
            ("esn", km(&esn, 0)),
            ("next generation", km(&base, 1)),
        ] {
            assert_ne!(reference.0, other.0, "{name}: SPI");
            assert_ne!(reference.1, other.1, "{name}: key");
        }
        assert_eq!(km(&base, 0), reference, "derivation is deterministic");
    }

    #[test]
    fn low_order_peer_key_is_refused() {
        let a = host(1);
        assert!(SessionKeys::new(&a, 1, [0u8; 32], 2, Suite::Aes128Gcm, false).is_err());
    }

    #[test]
    fn random_epochs_differ() {
        assert_ne!(random_epoch(), random_epoch());
    }

    #[test]
    fn manual_keys_as_ip_xfrm_takes_them() {
        // ip xfrm state add ... spi 0x00001000 ... aead 'rfc4106(gcm(aes))' 0x<key><salt> 128
        let key = "0x0123456789abcdef0123456789abcdefcafebabe";
        let m = ManualSa::parse("0x1000", "rfc4106(gcm(aes))", key, 128).unwrap();
        assert_eq!((m.spi, m.suite), (0x1000, Suite::Aes128Gcm));
        assert_eq!(m.xfrm_args(), format!("spi 0x00001000 aead 'rfc4106(gcm(aes))' {key} 128"));
        let long = format!("0x{}", "ab".repeat(36));
        assert_eq!(ManualSa::parse("4096", "rfc4106(gcm(aes))", &long, 128).unwrap().suite, Suite::Aes256Gcm);
        let cc = ManualSa::parse("0x2000", "rfc7539esp(chacha20,poly1305)", &long, 128).unwrap();
        assert_eq!(cc.suite, Suite::ChaCha20Poly1305);
        // Both ends built from the same parameters interoperate.
        let mut out = m.outbound(false).unwrap();
        let mut inb = m.inbound(false, 128).unwrap();
        let mut buf = [0u8; 64];
        let n = out.seal(&mut buf, 3, 4).unwrap();
        assert_eq!(inb.open(&mut buf[..n]).unwrap().inner.len(), 3);

        assert!(matches!(ManualSa::parse("0", "rfc4106(gcm(aes))", key, 128), Err(ManualKeyError::BadSpi(_))));
        assert!(matches!(ManualSa::parse("0xzz", "rfc4106(gcm(aes))", key, 128), Err(ManualKeyError::BadSpi(_))));
        assert!(matches!(ManualSa::parse("1", "rfc4106(gcm(aes))", key, 96), Err(ManualKeyError::UnsupportedIcv(96))));
        assert!(matches!(ManualSa::parse("1", "cbc(aes)", key, 128), Err(ManualKeyError::UnknownAlgorithm(_))));
        assert!(matches!(ManualSa::parse("1", "rfc4106(gcm(aes))", "0x0123", 128), Err(ManualKeyError::BadKeyLength(2))));
        assert!(matches!(ManualSa::parse("1", "rfc4106(gcm(aes))", "0xg1", 128), Err(ManualKeyError::BadHex)));
        let short_cc = "0x0123456789abcdef0123456789abcdefcafebabe";
        assert!(matches!(ManualSa::parse("1", "rfc7539esp(chacha20,poly1305)", short_cc, 128), Err(ManualKeyError::BadKeyLength(20))));
    }
}
