//! Sealed gossip transport: every gossip datagram is authenticated and encrypted.
//!
//! Layout of one datagram (all integers big-endian):
//!
//! ```text
//!  0      2     3     4                12          16                         len-16   len
//!  +------+-----+-----+-----------------+-----------+-------------------------+--------+
//!  | "VG" | ver | 0   | sender epoch u64| counter u32| AES-256-GCM ciphertext  |  tag   |
//!  +------+-----+-----+-----------------+-----------+-------------------------+--------+
//! ```
//!
//! * Key: the 32-byte cluster key, shared by every host of the cluster ([`ClusterKey::load`]).
//! * Nonce: `sender epoch || counter` (96 bits). The epoch is a random 64-bit value drawn when the
//!   sender starts (and again if its 32-bit counter would wrap), so a nonce is never reused under
//!   the shared key: two senders collide only if they draw the same 64-bit epoch.
//! * Associated data: the cluster name followed by the 16 header bytes, so a datagram sealed for
//!   another cluster (same key, different name) or with an edited header fails to open.
//! * Replay protection: per sender epoch, a sliding bitmap window of counters (IPsec style,
//!   RFC 4303 §3.4.3). A counter left of the window, or one already seen, is dropped. The window
//!   is keyed by the authenticated sender epoch, not by the UDP source address: a source address
//!   can be spoofed, so windows per address would let one captured datagram be replayed once
//!   from every address an attacker cares to forge (a 33-byte record request answered with a
//!   whole record is an amplifier). Epochs are random 64-bit values, so senders do not share a
//!   window; the windows of the [`MAX_SENDERS`] most recently heard epochs are kept, an earlier
//!   run's included, so replays of its datagrams are rejected too.
//! * The window is checked before decryption (cheap reject) and only updated after the tag
//!   verified, so forged datagrams cannot move it.
//!
//! A datagram that fails any step is dropped and counted by [`DropReason`]; a host without the
//! key learns nothing from the cluster and can inject nothing into it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use crate::keyfile::{self, KeyFileError};
use crate::replay::ReplayWindow;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

use crate::counters::reasons;

/// Bytes before the ciphertext.
pub const HEADER_LEN: usize = 16;
/// Bytes of the authentication tag.
pub const TAG_LEN: usize = 16;
/// Total bytes a sealed datagram adds to its plaintext.
pub const SEAL_OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// At most this many sender epochs are tracked; the least recently heard is evicted beyond it.
pub const MAX_SENDERS: usize = 4096;

const MAGIC: [u8; 2] = *b"VG";
const VERSION: u8 = 1;

reasons! {
    /// Why a received gossip datagram was dropped.
    pub enum DropReason;
    /// One counter per [`DropReason`].
    pub struct DropCounts;
    /// Shorter than header plus tag.
    Truncated => "truncated",
    /// Larger than the configured MTU budget.
    Oversize => "oversize",
    /// Wrong magic or version.
    BadHeader => "bad_header",
    /// The AEAD tag did not verify: wrong key, wrong cluster name, or tampering.
    AuthFailed => "auth_failed",
    /// The counter was already seen or is left of the replay window.
    Replay => "replay",
    /// Authenticated, but the content could not be decoded or was rejected by the membership
    /// layer.
    Malformed => "malformed",
}

/// The 32-byte symmetric key shared by every host of one cluster.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey([u8; 32]);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

impl ClusterKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ClusterKey(bytes)
    }

    /// Parses file content: 64 hex digits (surrounding whitespace ignored) or exactly 32 raw bytes.
    pub fn parse(content: &[u8]) -> Option<Self> {
        let trimmed = std::str::from_utf8(content).ok().map(str::trim);
        if let Some(text) = trimmed {
            if text.len() == 64 {
                let mut key = [0u8; 32];
                if hex::decode_to_slice(text, &mut key).is_ok() {
                    return Some(ClusterKey(key));
                }
            }
        }
        <[u8; 32]>::try_from(content).ok().map(ClusterKey)
    }

    /// Reads the key from `path` (owner-only permissions, see [`crate::keyfile`]).
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let content = keyfile::read(path)?;
        Self::parse(&content).ok_or_else(|| keyfile::malformed(path, "32 raw bytes or 64 hex digits"))
    }

    /// Creates a new random key file at `path` (mode 0600, 64 hex digits); never overwrites.
    pub fn create(path: &Path) -> Result<Self, KeyFileError> {
        let key: [u8; 32] = rand::random();
        keyfile::create(path, format!("{}\n", hex::encode(key)).as_bytes())?;
        Ok(ClusterKey(key))
    }
}

/// Seals outgoing datagrams: one per host, owns the sender epoch and counter.
pub struct Sealer {
    key: LessSafeKey,
    cluster: Vec<u8>,
    epoch: u64,
    counter: u32,
}

impl Sealer {
    /// A sealer for `cluster` starting at a random `epoch` (the caller draws it).
    pub fn new(key: &ClusterKey, cluster: &str, epoch: u64) -> Self {
        Sealer { key: aead_key(key), cluster: cluster.as_bytes().to_vec(), epoch, counter: 0 }
    }

    /// The current sender epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether the counter is exhausted: the caller must call [`Sealer::rekey_epoch`] first.
    pub fn needs_new_epoch(&self) -> bool {
        self.counter == u32::MAX
    }

    /// Starts a new epoch (fresh random value from the caller) with the counter at zero.
    pub fn rekey_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.counter = 0;
    }

    /// Seals `plaintext` into a new datagram.
    pub fn seal(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let counter = self.counter;
        self.counter = self.counter.saturating_add(1);
        let mut out = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(0);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&counter.to_be_bytes());
        let mut aad = self.cluster.clone();
        aad.extend_from_slice(&out[..HEADER_LEN]);
        let nonce = nonce(self.epoch, counter);
        let mut body = plaintext.to_vec();
        // Sealing with a valid key and a short buffer cannot fail.
        if self.key.seal_in_place_append_tag(nonce, Aad::from(&aad[..]), &mut body).is_err() {
            body.clear();
        }
        out.extend_from_slice(&body);
        out
    }
}

/// Opens incoming datagrams and keeps the per-sender replay windows.
pub struct Opener {
    key: LessSafeKey,
    cluster: Vec<u8>,
    window_bits: u32,
    max_len: usize,
    senders: HashMap<u64, SenderWindow>,
    tick: u64,
    drops: DropCounts,
}

struct SenderWindow {
    last_tick: u64,
    window: ReplayWindow,
}

impl Opener {
    /// An opener for `cluster`, with a replay window of `window_bits` counters and dropping
    /// datagrams longer than `max_len`.
    pub fn new(key: &ClusterKey, cluster: &str, window_bits: u32, max_len: usize) -> Self {
        Opener {
            key: aead_key(key),
            cluster: cluster.as_bytes().to_vec(),
            window_bits: window_bits.clamp(64, crate::replay::MAX_WINDOW),
            max_len,
            senders: HashMap::new(),
            tick: 0,
            drops: DropCounts::default(),
        }
    }

    /// How many datagrams were dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.get(reason)
    }

    /// Datagrams dropped, by reason.
    pub fn drops(&self) -> &DropCounts {
        &self.drops
    }

    /// Counts a drop decided by a layer above (e.g. [`DropReason::Malformed`]).
    pub fn count_drop(&mut self, reason: DropReason) {
        self.drops.add(reason);
    }

    /// Verifies and decrypts one datagram from `from`; on failure the drop is counted. The
    /// address is not part of the replay state (see the module doc).
    pub fn open(&mut self, from: SocketAddr, datagram: &[u8]) -> Result<Vec<u8>, DropReason> {
        let result = self.open_inner(from, datagram);
        if let Err(reason) = result {
            self.count_drop(reason);
        }
        result
    }

    fn open_inner(&mut self, _from: SocketAddr, datagram: &[u8]) -> Result<Vec<u8>, DropReason> {
        if datagram.len() > self.max_len {
            return Err(DropReason::Oversize);
        }
        if datagram.len() < SEAL_OVERHEAD {
            return Err(DropReason::Truncated);
        }
        let (header, body) = datagram.split_at(HEADER_LEN);
        if header[..2] != MAGIC || header[2] != VERSION || header[3] != 0 {
            return Err(DropReason::BadHeader);
        }
        let epoch = u64::from_be_bytes(header[4..12].try_into().map_err(|_| DropReason::BadHeader)?);
        let counter = u32::from_be_bytes(header[12..16].try_into().map_err(|_| DropReason::BadHeader)?);
        let seq = u64::from(counter) + 1;
        if let Some(window) = self.senders.get(&epoch).map(|s| &s.window) {
            if window.check(seq).is_err() {
                return Err(DropReason::Replay);
            }
        }
        let mut aad = self.cluster.clone();
        aad.extend_from_slice(header);
        let mut buf = body.to_vec();
        let plain_len =
            self.key.open_in_place(nonce(epoch, counter), Aad::from(&aad[..]), &mut buf).map_err(|_| DropReason::AuthFailed)?.len();
        buf.truncate(plain_len);
        self.window_mut(epoch).update(seq);
        Ok(buf)
    }

    fn window_mut(&mut self, epoch: u64) -> &mut ReplayWindow {
        self.tick += 1;
        if !self.senders.contains_key(&epoch) && self.senders.len() >= MAX_SENDERS {
            let oldest = self.senders.iter().min_by_key(|(_, s)| s.last_tick).map(|(e, _)| *e);
            if let Some(e) = oldest {
                self.senders.remove(&e);
            }
        }
        let (bits, tick) = (self.window_bits, self.tick);
        let sender = self.senders.entry(epoch).or_insert_with(|| SenderWindow { last_tick: tick, window: ReplayWindow::new(bits) });
        sender.last_tick = tick;
        &mut sender.window
    }
}

fn aead_key(key: &ClusterKey) -> LessSafeKey {
    // AES-256 accepts any 32-byte key, so this cannot fail.
    let unbound = UnboundKey::new(&AES_256_GCM, &key.0).unwrap_or_else(|_| unreachable!());
    LessSafeKey::new(unbound)
}

fn nonce(epoch: u64, counter: u32) -> Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&epoch.to_be_bytes());
    n[8..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    fn pair() -> (Sealer, Opener) {
        let key = ClusterKey::from_bytes([7; 32]);
        (Sealer::new(&key, "c1", 0xabcd), Opener::new(&key, "c1", 128, 1400))
    }

    #[test]
    fn round_trip_and_replay_rejected() {
        let (mut s, mut o) = pair();
        let d = s.seal(b"hello");
        assert_eq!(d.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(o.open(addr(1), &d).as_deref(), Ok(&b"hello"[..]));
        assert_eq!(o.open(addr(1), &d), Err(DropReason::Replay));
        assert_eq!(o.dropped(DropReason::Replay), 1);
    }

    #[test]
    fn wrong_key_or_cluster_or_tamper_fails_auth() {
        let (mut s, _) = pair();
        let d = s.seal(b"secret");
        let mut other_key = Opener::new(&ClusterKey::from_bytes([8; 32]), "c1", 128, 1400);
        assert_eq!(other_key.open(addr(1), &d), Err(DropReason::AuthFailed));
        let mut other_cluster = Opener::new(&ClusterKey::from_bytes([7; 32]), "c2", 128, 1400);
        assert_eq!(other_cluster.open(addr(1), &d), Err(DropReason::AuthFailed));
        let (_, mut o) = pair();
        for i in [5, 13, HEADER_LEN + 1, d.len() - 1] {
            let mut t = d.clone();
            t[i] ^= 1;
            assert_eq!(o.open(addr(1), &t), Err(DropReason::AuthFailed), "byte {i}");
        }
        // The untouched datagram still opens: forged copies did not move the window.
        assert!(o.open(addr(1), &d).is_ok());
        assert_eq!(o.dropped(DropReason::AuthFailed), 4);
    }

    #[test]
    fn header_checks() {
        let (mut s, mut o) = pair();
        assert_eq!(o.open(addr(1), &[0; 10]), Err(DropReason::Truncated));
        let mut d = s.seal(b"x");
        d[0] = b'X';
        assert_eq!(o.open(addr(1), &d), Err(DropReason::BadHeader));
        assert_eq!(o.open(addr(1), &vec![0; 1401]), Err(DropReason::Oversize));
    }

    #[test]
    fn out_of_order_within_window_accepted_old_rejected() {
        let (mut s, mut o) = pair();
        let ds: Vec<_> = (0..300).map(|_| s.seal(b"m")).collect();
        assert!(o.open(addr(1), &ds[200]).is_ok());
        assert!(o.open(addr(1), &ds[150]).is_ok()); // age 50 < 128
        assert_eq!(o.open(addr(1), &ds[150]), Err(DropReason::Replay));
        assert_eq!(o.open(addr(1), &ds[10]), Err(DropReason::Replay)); // left of the window
        assert!(o.open(addr(1), &ds[299]).is_ok());
        assert!(o.open(addr(1), &ds[250]).is_ok());
        assert_eq!(o.open(addr(1), &ds[200]), Err(DropReason::Replay));
    }

    #[test]
    fn old_epoch_duplicates_rejected_after_restart() {
        let key = ClusterKey::from_bytes([7; 32]);
        let mut o = Opener::new(&key, "c1", 128, 1400);
        let mut first = Sealer::new(&key, "c1", 1);
        let old = first.seal(b"old");
        assert!(o.open(addr(1), &old).is_ok());
        let mut restarted = Sealer::new(&key, "c1", 2);
        assert!(o.open(addr(1), &restarted.seal(b"new")).is_ok());
        assert_eq!(o.open(addr(1), &old), Err(DropReason::Replay));
    }

    #[test]
    fn a_replay_from_another_source_address_is_still_a_replay() {
        let (mut s, mut o) = pair();
        let d = s.seal(b"pull");
        assert!(o.open(addr(1), &d).is_ok());
        for port in 2..50 {
            assert_eq!(o.open(addr(port), &d), Err(DropReason::Replay), "spoofed source :{port}");
        }
        assert_eq!(o.dropped(DropReason::Replay), 48);
    }

    #[test]
    fn counter_zero_is_accepted_once_and_the_window_slides() {
        let key = ClusterKey::from_bytes([9; 32]);
        let mut s = Sealer::new(&key, "c1", 5);
        let mut o = Opener::new(&key, "c1", 64, 1400);
        let sealed: Vec<Vec<u8>> = (0..200).map(|_| s.seal(b"x")).collect();
        // Counter 0 is a valid first datagram (the shared window sees it as sequence number 1).
        assert!(o.open(addr(1), &sealed[0]).is_ok());
        assert_eq!(o.open(addr(1), &sealed[0]), Err(DropReason::Replay));
        assert!(o.open(addr(1), &sealed[199]).is_ok());
        // 64 counters are remembered: 136..=199; 135 and older are left of the window.
        assert_eq!(o.open(addr(1), &sealed[135]), Err(DropReason::Replay));
        assert!(o.open(addr(1), &sealed[136]).is_ok());
        assert!(o.open(addr(1), &sealed[198]).is_ok());
        assert_eq!(o.open(addr(1), &sealed[198]), Err(DropReason::Replay));
    }

    #[test]
    fn key_file_formats_and_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("vxs-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let hex_path = dir.join("hex");
        std::fs::write(&hex_path, format!("{}\n", "ab".repeat(32))).unwrap();
        std::fs::set_permissions(&hex_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(ClusterKey::load(&hex_path).unwrap(), ClusterKey::from_bytes([0xab; 32]));
        let raw_path = dir.join("raw");
        std::fs::write(&raw_path, [3u8; 32]).unwrap();
        std::fs::set_permissions(&raw_path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(ClusterKey::load(&raw_path).unwrap(), ClusterKey::from_bytes([3; 32]));
        std::fs::set_permissions(&raw_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(ClusterKey::load(&raw_path), Err(KeyFileError::TooOpen { .. })));
        let bad = dir.join("bad");
        std::fs::write(&bad, b"short").unwrap();
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(ClusterKey::load(&bad), Err(KeyFileError::Malformed { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
