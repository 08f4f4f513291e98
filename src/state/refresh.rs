//! The refresh token through the [`Store`]: read (opened with the state key when sealed),
//! written after every rotation, deleted by `logout`. Records an older version wrote —
//! sealed with the unsalted v1 derivation, or plain while a key is now set — are re-sealed
//! as soon as they are read, so the weaker form does not stay on disk. While no key is
//! set, every process that stores a token warns once that it is kept in plain text.

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};

use super::sealed::{OpenError, Sealed, StateKey};
use super::token::TokenRecord;
use super::{Store, TOKEN_KEY};
use crate::exit::{Fatal, Result};
use crate::secret::Secret;

/// What the store knows about the refresh token, without the token itself.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub seed: Option<String>,
    pub rotated_at: DateTime<Utc>,
    pub encrypted: bool,
}

/// The stored refresh token, opened.
#[derive(Debug, Clone)]
pub struct StoredToken {
    pub token: Secret,
    pub seed: Option<String>,
    pub rotated_at: DateTime<Utc>,
}

/// The plain-text warning is given once per process, not once per rotation.
static WARNED_PLAIN: AtomicBool = AtomicBool::new(false);

impl Store {
    /// Whether a refresh token is stored, and its metadata; needs no key.
    pub fn token_info(&self) -> Result<Option<TokenInfo>> {
        let rec = self.token.read()?;
        Ok(rec.map(|r| TokenInfo {
            encrypted: r.sealed.is_some(),
            seed: r.seed,
            rotated_at: r.rotated_at,
        }))
    }

    /// The stored refresh token, opened with `key` when it is sealed. A sealed token without
    /// a key, or with another key, is exit 77 naming what to set.
    pub fn refresh_token(&self, key: Option<&StateKey>) -> Result<Option<StoredToken>> {
        let Some(rec) = self.token.read()? else {
            return Ok(None);
        };
        let token = match (&rec.sealed, &rec.token, key) {
            (Some(sealed), _, Some(key)) => key
                .open(sealed, TOKEN_KEY.as_bytes())
                .map_err(|e| cannot_open(e, sealed, key))?,
            (Some(_), _, None) => return Err(Fatal::auth(
                "the stored refresh token is encrypted but TEAMS_CONNECTOR_STATE_KEY(_FILE) is not set; set the key it was stored with, or run `teams-connector login` to replace it",
            )),
            (None, Some(plain), _) => Secret::new(plain.clone()),
            (None, None, _) => return Ok(None),
        };
        let weak = rec.sealed.as_ref().is_none_or(Sealed::is_legacy);
        if let (Some(key), true) = (key, weak) {
            self.reseal(&token, &rec, key)?;
        }
        Ok(Some(StoredToken {
            token,
            seed: rec.seed,
            rotated_at: rec.rotated_at,
        }))
    }

    /// Stores a rotated refresh token durably, sealed when `key` is given. Called before
    /// the access token that came with it is used, so a crash never leaves only a spent
    /// token on disk.
    pub fn set_refresh_token(
        &self,
        token: &Secret,
        seed: Option<&str>,
        key: Option<&StateKey>,
    ) -> Result<()> {
        let (plain, sealed) = match key {
            Some(k) => (None, Some(seal(k, token)?)),
            None => {
                self.warn_plain();
                (Some(token.expose().to_string()), None)
            }
        };
        self.token.write(&TokenRecord {
            token: plain,
            sealed,
            seed: seed.map(str::to_string),
            rotated_at: Utc::now(),
        })
    }

    pub fn delete_refresh_token(&self) -> Result<bool> {
        self.token.delete()
    }

    /// Where the refresh token is kept.
    pub fn token_path(&self) -> &std::path::Path {
        self.token.path()
    }

    /// The same token, chain and rotation time, sealed the current way.
    fn reseal(&self, token: &Secret, rec: &TokenRecord, key: &StateKey) -> Result<()> {
        self.token.write(&TokenRecord {
            token: None,
            sealed: Some(seal(key, token)?),
            seed: rec.seed.clone(),
            rotated_at: rec.rotated_at,
        })?;
        tracing::info!(path = %self.token.path().display(), "Sealed the stored refresh token with the state key (Argon2id-derived).");
        Ok(())
    }

    fn warn_plain(&self) {
        if !WARNED_PLAIN.swap(true, Ordering::Relaxed) {
            tracing::warn!(path = %self.token.path().display(), "The refresh token is stored unencrypted: anyone who can read the state dir can sign in as the technical user. Set TEAMS_CONNECTOR_STATE_KEY or TEAMS_CONNECTOR_STATE_KEY_FILE (e.g. `openssl rand -base64 32`) to encrypt it.");
        }
    }
}

fn seal(key: &StateKey, token: &Secret) -> Result<Sealed> {
    key.seal(token.expose(), TOKEN_KEY.as_bytes())
        .map_err(|why| Fatal::internal(format!("cannot seal the refresh token: {why}")))
}

fn cannot_open(e: OpenError, sealed: &Sealed, key: &StateKey) -> Fatal {
    match e {
        OpenError::WrongKey => Fatal::auth(format!(
            "TEAMS_CONNECTOR_STATE_KEY is not the key the stored refresh token was encrypted with (stored under key id {}, this key gives {}); set the original key, or run `teams-connector login` to store a new token under this one",
            sealed.key_id,
            key.id_under(sealed).unwrap_or_else(|| "another".into())
        )),
        OpenError::Damaged => Fatal::auth(
            "the stored refresh token does not decrypt with TEAMS_CONNECTOR_STATE_KEY: the record is damaged or was altered; run `teams-connector login` to store a new one",
        ),
    }
}
