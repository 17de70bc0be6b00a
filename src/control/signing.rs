//! Per-host record signing keys (Ed25519).
//!
//! Why: the cluster key only tells members from strangers. Every member holds it, so on its own
//! it lets any member rewrite any other host's record: point its underlay or ESP public key at
//! itself (a man in the middle of ESP), announce its subnets, or lock its name out with a huge
//! epoch. So each host also signs its own record with a key only it holds, and the others bind
//! that key to the host's name and underlay the first time they see it (trust on first use, see
//! [`super::trust`]). A member can then still lie about itself, within the claim checks of
//! [`super::policy`], but no longer about anyone else.
//!
//! The key is 32 random bytes (an Ed25519 seed) stored as 64 hex digits in a secret file (see
//! [`crate::keyfile`]), created with mode 0600 on first start.

use std::path::Path;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

use crate::keyfile::{self, KeyFileError};

/// Bytes of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// This host's record signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public: [u8; 32],
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", hex::encode(self.public))
    }
}

impl SigningKey {
    /// The key derived from a 32-byte seed (the file content; simulations derive it from a number).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        // Any 32 bytes are a valid Ed25519 seed, so this cannot fail.
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).unwrap_or_else(|_| unreachable!("32-byte seed"));
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key().as_ref());
        SigningKey { pair, public }
    }

    /// A key for simulations and tests, derived from `n`.
    pub fn for_tests(n: u64) -> Self {
        let mut seed = [0x5e; 32];
        seed[..8].copy_from_slice(&n.to_be_bytes());
        Self::from_seed(&seed)
    }

    /// The public key, as announced in the record.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut sig = [0u8; SIGNATURE_LEN];
        sig.copy_from_slice(self.pair.sign(message).as_ref());
        sig
    }

    /// Loads the key from `path`, creating it (mode 0600, and its directory) when missing.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyFileError> {
        match Self::load(path) {
            Err(e) if e.is_not_found() => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|source| KeyFileError::Io { path: dir.to_owned(), source })?;
                }
                let mut seed = [0u8; 32];
                aws_lc_rs::rand::fill(&mut seed)
                    .map_err(|_| KeyFileError::Io { path: path.to_owned(), source: std::io::Error::other("no system randomness") })?;
                match keyfile::create(path, format!("{}\n", hex::encode(seed)).as_bytes()) {
                    Ok(()) => Ok(Self::from_seed(&seed)),
                    // Created by someone else meanwhile: use theirs.
                    Err(e) if e.is_already_exists() => Self::load(path),
                    Err(e) => Err(e),
                }
            }
            other => other,
        }
    }

    /// Loads the key from `path` (owner-only permissions).
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let mut text = keyfile::read(path)?;
        let mut seed = [0u8; 32];
        let decoded = std::str::from_utf8(&text).ok().map(|t| hex::decode_to_slice(t.trim(), &mut seed));
        text.fill(0);
        if !matches!(decoded, Some(Ok(()))) {
            return Err(keyfile::malformed(path, "a 32-byte hex Ed25519 seed"));
        }
        let key = Self::from_seed(&seed);
        seed.fill(0);
        Ok(key)
    }
}

/// Whether `signature` over `message` verifies under the Ed25519 `public` key.
pub fn verify(public: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public).verify(message, signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn sign_verify_and_tamper() {
        let k = SigningKey::for_tests(1);
        let sig = k.sign(b"record");
        assert!(verify(&k.public(), b"record", &sig));
        assert!(!verify(&k.public(), b"recorD", &sig));
        assert!(!verify(&SigningKey::for_tests(2).public(), b"record", &sig));
        assert!(!verify(&k.public(), b"record", &sig[..63]));
    }

    #[test]
    fn created_once_with_mode_0600_then_loaded() {
        let dir = std::env::temp_dir().join(format!("vxs-sign-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("state/gossip-sign.key");
        let first = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(first.public(), again.public());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(SigningKey::load(&path), Err(KeyFileError::TooOpen { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
