//! The refresh token at rest, encrypted with `TEAMS_CONNECTOR_STATE_KEY` (issue 3, 12).
//!
//! ChaCha20-Poly1305 (an AEAD: a wrong key or an altered record fails to open instead of
//! yielding garbage), a fresh random 96-bit nonce on every write, and a key derived from
//! the admin's secret with Argon2id (19 MiB, 2 passes: OWASP's minimum) under a random
//! 16-byte salt kept in the record. The slow, salted derivation is what keeps a copy of
//! the state dir from being a cheap offline test of passphrase guesses: every guess costs
//! one Argon2id run, and no table of guesses serves two stores. The record also keeps a
//! short id of the derived key, so a wrong key is told apart from a damaged record; it is
//! no cheaper a test than the decryption itself, since both need the derivation.
//!
//! Records written before (v1: one unsalted SHA-256 of the secret, no `kdf`) still open;
//! the store re-seals them as v2 at once.

use std::sync::Mutex;

use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// v1's derivation label (SHA-256 of label and secret).
const LEGACY_LABEL: &[u8] = b"teams-connector state key v1\0";
const ID_LABEL: &[u8] = b"teams-connector state key id v2\0";
const SALT_LEN: usize = 16;
/// Argon2id cost: memory in KiB, passes, lanes.
const M_COST: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
/// Floors a stored record's parameters must meet: a planted record cannot make the
/// connector derive cheaply (and so leak a cheap key id).
const MIN_M_COST: u32 = 8 * 1024;
const MAX_M_COST: u32 = 1024 * 1024;

/// How the key of a record was derived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kdf {
    /// Always `argon2id`.
    pub alg: String,
    pub salt: String,
    pub m_cost: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

/// A sealed value as stored: how the key was derived (absent: v1), the key id, base64
/// nonce and ciphertext.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sealed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdf: Option<Kdf>,
    pub key_id: String,
    pub nonce: String,
    pub ciphertext: String,
}

impl Sealed {
    /// Sealed by an older version, with an unsalted fast derivation: re-seal it.
    pub fn is_legacy(&self) -> bool {
        self.kdf.is_none()
    }
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Sealed with another key.
    WrongKey,
    /// Right key id, but the record does not authenticate (damaged or altered), or its
    /// derivation parameters are not ones this version accepts.
    Damaged,
}

/// The admin's secret and the keys derived from it in this process (one Argon2id run per
/// salt, not per token rotation).
pub struct StateKey {
    secret: Secret,
    derived: Mutex<Option<(Kdf, Key)>>,
}

impl StateKey {
    /// Keeps the secret; derivation happens when a record is sealed or opened.
    pub fn derive(secret: &Secret) -> StateKey {
        StateKey {
            secret: secret.clone(),
            derived: Mutex::new(None),
        }
    }

    /// Encrypts `plain`, binding it to `context` (what the record is). Reuses the salt of
    /// the record last opened or sealed in this process, else draws a new one.
    pub fn seal(&self, plain: &str, context: &[u8]) -> Result<Sealed, String> {
        let (kdf, key) = match self.cached() {
            Some(pair) => pair,
            None => {
                let mut salt = [0u8; SALT_LEN];
                OsRng.fill_bytes(&mut salt);
                let kdf = Kdf {
                    alg: "argon2id".into(),
                    salt: STANDARD.encode(salt),
                    m_cost: M_COST,
                    t_cost: T_COST,
                    p_cost: P_COST,
                };
                let key = self
                    .argon2(&kdf)
                    .map_err(|_| "the state key derivation failed".to_string())?;
                self.remember(&kdf, &key);
                (kdf, key)
            }
        };
        let cipher = ChaCha20Poly1305::new(&key);
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plain.as_bytes(),
            aad: context,
        };
        let ciphertext = cipher
            .encrypt(&nonce, payload)
            .map_err(|_| "encrypting the refresh token failed".to_string())?;
        Ok(Sealed {
            key_id: key_id(&key),
            kdf: Some(kdf),
            nonce: STANDARD.encode(nonce),
            ciphertext: STANDARD.encode(ciphertext),
        })
    }

    pub fn open(&self, sealed: &Sealed, context: &[u8]) -> Result<Secret, OpenError> {
        let key = self.key_for(sealed)?;
        if sealed.key_id != self.id_for(sealed, &key) {
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
        let cipher = ChaCha20Poly1305::new(&key);
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

    /// The id this secret gives under the derivation `sealed` names, for messages.
    pub fn id_under(&self, sealed: &Sealed) -> Option<String> {
        let key = self.key_for(sealed).ok()?;
        Some(self.id_for(sealed, &key))
    }

    fn key_for(&self, sealed: &Sealed) -> Result<Key, OpenError> {
        let Some(kdf) = &sealed.kdf else {
            return Ok(self.legacy());
        };
        if let Some((cached, key)) = self.cached() {
            if &cached == kdf {
                return Ok(key);
            }
        }
        let key = self.argon2(kdf)?;
        self.remember(kdf, &key);
        Ok(key)
    }

    fn id_for(&self, sealed: &Sealed, key: &Key) -> String {
        if sealed.is_legacy() {
            let d = Sha256::digest(key.as_slice());
            crate::digest::hex(&d[..8])
        } else {
            key_id(key)
        }
    }

    fn argon2(&self, kdf: &Kdf) -> Result<Key, OpenError> {
        let salt = STANDARD.decode(&kdf.salt).map_err(|_| OpenError::Damaged)?;
        let sane = kdf.alg == "argon2id"
            && salt.len() >= SALT_LEN
            && (MIN_M_COST..=MAX_M_COST).contains(&kdf.m_cost)
            && (1..=10).contains(&kdf.t_cost)
            && (1..=8).contains(&kdf.p_cost);
        if !sane {
            return Err(OpenError::Damaged);
        }
        let params = Params::new(kdf.m_cost, kdf.t_cost, kdf.p_cost, Some(32))
            .map_err(|_| OpenError::Damaged)?;
        let mut out = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(self.secret.expose().as_bytes(), &salt, &mut out)
            .map_err(|_| OpenError::Damaged)?;
        Ok(*Key::from_slice(&out))
    }

    /// v1: SHA-256 over a label and the secret.
    fn legacy(&self) -> Key {
        let mut h = Sha256::new();
        h.update(LEGACY_LABEL);
        h.update(self.secret.expose().as_bytes());
        Key::clone_from_slice(&h.finalize())
    }

    fn cached(&self) -> Option<(Kdf, Key)> {
        self.derived.lock().ok().and_then(|d| d.clone())
    }

    fn remember(&self, kdf: &Kdf, key: &Key) {
        if let Ok(mut d) = self.derived.lock() {
            *d = Some((kdf.clone(), *key));
        }
    }
}

/// First 8 bytes of a labelled SHA-256 over the derived key.
fn key_id(key: &Key) -> String {
    let mut h = Sha256::new();
    h.update(ID_LABEL);
    h.update(key.as_slice());
    crate::digest::hex(&h.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_with_a_fresh_nonce_and_opens_only_with_the_same_key() {
        let key = StateKey::derive(&Secret::new("correct horse"));
        let a = key.seal("1.AXoA-refresh", b"ctx").unwrap();
        let b = key.seal("1.AXoA-refresh", b"ctx").unwrap();
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

    #[test]
    fn the_same_secret_gives_another_key_id_under_another_salt() {
        let secret = Secret::new("correct horse");
        let a = StateKey::derive(&secret).seal("t", b"ctx").unwrap();
        let b = StateKey::derive(&secret).seal("t", b"ctx").unwrap();
        let (ka, kb) = (a.kdf.clone().unwrap(), b.kdf.clone().unwrap());
        assert_ne!(ka.salt, kb.salt);
        assert_ne!(a.key_id, b.key_id, "the id is no precomputable oracle");
        assert_eq!(
            (ka.alg.as_str(), ka.m_cost, ka.t_cost),
            ("argon2id", M_COST, T_COST)
        );
    }

    #[test]
    fn a_record_with_cheap_parameters_is_refused() {
        let key = StateKey::derive(&Secret::new("correct horse"));
        let mut cheap = key.seal("t", b"ctx").unwrap();
        cheap.kdf.as_mut().unwrap().m_cost = 8;
        assert_eq!(key.open(&cheap, b"ctx").unwrap_err(), OpenError::Damaged);
    }

    #[test]
    fn v1_records_still_open() {
        let secret = Secret::new("correct horse");
        let state = StateKey::derive(&secret);
        let legacy = state.legacy();
        let cipher = ChaCha20Poly1305::new(&legacy);
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: b"old-token",
                    aad: b"ctx",
                },
            )
            .unwrap();
        let v1 = Sealed {
            kdf: None,
            key_id: crate::digest::hex(&Sha256::digest(legacy.as_slice())[..8]),
            nonce: STANDARD.encode(nonce),
            ciphertext: STANDARD.encode(ct),
        };
        assert!(v1.is_legacy());
        assert_eq!(state.open(&v1, b"ctx").unwrap().expose(), "old-token");
        let other = StateKey::derive(&Secret::new("battery staple"));
        assert_eq!(other.open(&v1, b"ctx").unwrap_err(), OpenError::WrongKey);
    }
}
