//! The refresh token at rest, encrypted with `TEAMS_CONNECTOR_STATE_KEY` (issue 3).
//!
//! ChaCha20-Poly1305 (an AEAD: a wrong key or an altered record fails to open instead of
//! yielding garbage) with a key derived from the admin's secret by SHA-256 under a
//! domain-separating label, and a fresh random 96-bit nonce on every write. The record
//! also keeps a short id of the derived key, so a wrong key is told apart from a damaged
//! record and the message can say which it is.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::secret::Secret;

const LABEL: &[u8] = b"teams-connector state key v1\0";

/// A sealed value as stored: base64 nonce and ciphertext, and the key id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: String,
    pub ciphertext: String,
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Sealed with another key.
    WrongKey,
    /// Right key id, but the record does not authenticate (damaged or altered).
    Damaged,
}

/// The derived encryption key.
pub struct StateKey {
    key: Key,
}

impl StateKey {
    pub fn derive(secret: &Secret) -> StateKey {
        let mut h = Sha256::new();
        h.update(LABEL);
        h.update(secret.expose().as_bytes());
        StateKey {
            key: Key::clone_from_slice(&h.finalize()),
        }
    }

    /// First 8 bytes of SHA-256 over the derived key: names the key, reveals nothing usable.
    pub fn id(&self) -> String {
        let d = Sha256::digest(self.key.as_slice());
        crate::digest::hex(&d[..8])
    }

    /// Encrypts `plain`, binding it to `context` (the store key it is written under).
    pub fn seal(&self, plain: &str, context: &[u8]) -> Sealed {
        let cipher = ChaCha20Poly1305::new(&self.key);
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plain.as_bytes(),
            aad: context,
        };
        // Encryption with a valid key and nonce cannot fail for inputs this small.
        let ciphertext = cipher.encrypt(&nonce, payload).unwrap_or_default();
        Sealed {
            key_id: self.id(),
            nonce: STANDARD.encode(nonce),
            ciphertext: STANDARD.encode(ciphertext),
        }
    }

    pub fn open(&self, sealed: &Sealed, context: &[u8]) -> Result<Secret, OpenError> {
        if sealed.key_id != self.id() {
            return Err(OpenError::WrongKey);
        }
        let nonce = STANDARD
            .decode(&sealed.nonce)
            .ok()
            .filter(|n| n.len() == 12)
            .ok_or(OpenError::Damaged)?;
        let ciphertext = STANDARD
            .decode(&sealed.ciphertext)
            .map_err(|_| OpenError::Damaged)?;
        let cipher = ChaCha20Poly1305::new(&self.key);
        let payload = Payload {
            msg: &ciphertext,
            aad: context,
        };
        let plain = cipher
            .decrypt(Nonce::from_slice(&nonce), payload)
            .map_err(|_| OpenError::Damaged)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| OpenError::Damaged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_with_a_fresh_nonce_and_opens_only_with_the_same_key() {
        let key = StateKey::derive(&Secret::new("correct horse"));
        let a = key.seal("1.AXoA-refresh", b"ctx");
        let b = key.seal("1.AXoA-refresh", b"ctx");
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
        assert!(!a.ciphertext.contains("AXoA"));
        assert_eq!(key.open(&a, b"ctx").unwrap().expose(), "1.AXoA-refresh");

        let other = StateKey::derive(&Secret::new("battery staple"));
        assert_eq!(other.open(&a, b"ctx").unwrap_err(), OpenError::WrongKey);
        assert_eq!(key.open(&a, b"other").unwrap_err(), OpenError::Damaged);
        let mut tampered = a.clone();
        tampered.ciphertext = STANDARD.encode(b"garbage-garbage-garbage");
        assert_eq!(key.open(&tampered, b"ctx").unwrap_err(), OpenError::Damaged);
    }
}
