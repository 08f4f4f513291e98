//! The state store: the only thing the connector keeps between runs.
//!
//! A sled database under `state.dir/db` holding, per DESIGN.md, cursors and sync times per
//! channel, the newest refresh token and the last run summary — never message text, mails
//! or names. sled types stay inside this module. Every write that a later run depends on
//! (a cursor, a rotated refresh token) is flushed before the call returns, so "written"
//! means "on disk".
//!
//! One writer per state dir: [`Store::open`] takes an exclusive lock on `state.dir/lock`
//! (`File::try_lock`) and a second process gets exit 75 at once, naming the lock file.
//!
//! With `TEAMS_CONNECTOR_STATE_KEY` the refresh token is stored sealed ([`sealed`]); a
//! token that does not open is exit 77 with the reason, never a silent new sign-in.

mod lock;
mod sealed;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::exit::{Fatal, Result};
use crate::secret::Secret;

pub use lock::Lock;
pub use sealed::StateKey;

use sealed::{OpenError, Sealed};

const TOKEN_KEY: &str = "auth/refresh_token";
const LAST_RUN_KEY: &str = "run/last";
const CHANNEL_PREFIX: &str = "channel/";
const BACKFILL_PREFIX: &str = "backfill/";
const META_PREFIX: &str = "meta/";

/// Progress of one channel's backfill of a date range.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackfillProgress {
    /// The range, RFC 3339: progress of another range does not apply.
    pub since: String,
    pub until: Option<String>,
    /// The next message-list page to read; `None` once done.
    pub next: Option<String>,
    pub done: bool,
    pub updated_at: DateTime<Utc>,
}

/// Progress of one channel's incremental crawl.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ChannelCursor {
    /// The whole `@odata.deltaLink` URL of the last completed round.
    pub delta_link: Option<String>,
    /// Newest `lastModifiedDateTime` (Graph's clock) among the messages handled up to
    /// `delta_link`. Messages not modified since are not sent again; an expired cursor
    /// restarts from here.
    pub last_sync: Option<DateTime<Utc>>,
    /// When (our clock) the channel last completed a round.
    pub synced_at: Option<DateTime<Utc>>,
    /// Mid-round resume point: the `@odata.nextLink` of the page being processed when the
    /// ingest last acknowledged a batch. Everything before that page is delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<String>,
    /// How many documents of the `in_progress` page were already acknowledged, and a
    /// digest of their ids: a resumed run skips them only if the page still starts with
    /// exactly those documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress_acked: Option<PageAck>,
    /// Newest `lastModifiedDateTime` seen in the unfinished round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_newest: Option<DateTime<Utc>>,
    /// When the unfinished round began reading the channel (our clock): the sync time it
    /// stores never passes it, so a change in a part already read waits for the next round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_started: Option<DateTime<Utc>>,
}

/// The acknowledged prefix of a page: its length and a digest of its document ids.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PageAck {
    pub count: usize,
    pub digest: String,
}

/// The stored refresh token (plain or sealed) and where its chain started.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<Sealed>,
    /// Fingerprint of the seed (`TEAMS_CONNECTOR_REFRESH_TOKEN`) the chain grew from, so a
    /// new seed from the admin replaces the chain while the same old seed does not.
    seed: Option<String>,
    rotated_at: DateTime<Utc>,
}

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

pub struct Store {
    db: sled::Db,
    dir: PathBuf,
    _lock: Lock,
}

impl Store {
    /// Creates the state dir (mode 0700) if needed, takes the lock and opens the database.
    pub fn open(dir: &Path) -> Result<Store> {
        create_private_dir(dir)?;
        let lock = Lock::acquire(&dir.join("lock"))?;
        let db_path = dir.join("db");
        let db = sled::Config::new().path(&db_path).open().map_err(|e| {
            Fatal::state(format!(
                "cannot open the state store {}: {e}; if it is corrupt, move it away (the next run then starts from `crawl.initial_lookback` and needs the refresh token seeded again)",
                db_path.display()
            ))
        })?;
        Ok(Store {
            db,
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn channel(&self, team: &str, channel: &str) -> Result<Option<ChannelCursor>> {
        self.get(&channel_key(team, channel))
    }

    /// Stores and flushes a channel's cursor.
    pub fn set_channel(&self, team: &str, channel: &str, cursor: &ChannelCursor) -> Result<()> {
        self.put(&channel_key(team, channel), cursor)?;
        self.flush()
    }

    /// Every stored channel cursor as (team id, channel id, cursor).
    pub fn channels(&self) -> Result<Vec<(String, String, ChannelCursor)>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(CHANNEL_PREFIX) {
            let (k, v) = item.map_err(|e| self.io_error(e))?;
            let key = String::from_utf8_lossy(&k);
            let rest = &key[CHANNEL_PREFIX.len()..];
            let Some((team, channel)) = rest.split_once('/') else {
                continue;
            };
            let cursor = decode(&v, &key)?;
            out.push((team.to_string(), channel.to_string(), cursor));
        }
        Ok(out)
    }

    pub fn backfill(&self, team: &str, channel: &str) -> Result<Option<BackfillProgress>> {
        self.get(&format!("{BACKFILL_PREFIX}{team}/{channel}"))
    }

    /// Stores and flushes a channel's backfill progress.
    pub fn set_backfill(
        &self,
        team: &str,
        channel: &str,
        progress: &BackfillProgress,
    ) -> Result<()> {
        self.put(&format!("{BACKFILL_PREFIX}{team}/{channel}"), progress)?;
        self.flush()
    }

    /// Every stored backfill progress as (team id, channel id, progress).
    pub fn backfills(&self) -> Result<Vec<(String, String, BackfillProgress)>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(BACKFILL_PREFIX) {
            let (k, v) = item.map_err(|e| self.io_error(e))?;
            let key = String::from_utf8_lossy(&k).into_owned();
            if let Some((team, channel)) = key[BACKFILL_PREFIX.len()..].split_once('/') {
                out.push((team.to_string(), channel.to_string(), decode(&v, &key)?));
            }
        }
        Ok(out)
    }

    /// Forgets the cursors of the matching channels; returns how many were removed.
    pub fn reset_channels(&self, team: Option<&str>, channel: Option<&str>) -> Result<usize> {
        let mut removed = 0;
        for (t, c, _) in self.channels()? {
            if team.is_some_and(|x| x != t) || channel.is_some_and(|x| x != c) {
                continue;
            }
            self.db
                .remove(channel_key(&t, &c))
                .map_err(|e| self.io_error(e))?;
            removed += 1;
        }
        self.flush()?;
        Ok(removed)
    }

    /// Whether a refresh token is stored, and its metadata; needs no key.
    pub fn token_info(&self) -> Result<Option<TokenInfo>> {
        let rec: Option<TokenRecord> = self.get(TOKEN_KEY)?;
        Ok(rec.map(|r| TokenInfo {
            encrypted: r.sealed.is_some(),
            seed: r.seed,
            rotated_at: r.rotated_at,
        }))
    }

    /// The stored refresh token, opened with `key` when it is sealed. A sealed token without
    /// a key, or with another key, is exit 77 naming what to set.
    pub fn refresh_token(&self, key: Option<&StateKey>) -> Result<Option<StoredToken>> {
        let Some(rec) = self.get::<TokenRecord>(TOKEN_KEY)? else {
            return Ok(None);
        };
        let token = match (&rec.sealed, &rec.token, key) {
            (Some(sealed), _, Some(key)) => key
                .open(sealed, TOKEN_KEY.as_bytes())
                .map_err(|e| cannot_open(e, &sealed.key_id, key))?,
            (Some(_), _, None) => return Err(Fatal::auth(
                "the stored refresh token is encrypted but TEAMS_CONNECTOR_STATE_KEY(_FILE) is not set; set the key it was stored with, or run `teams-connector login` to replace it",
            )),
            (None, Some(plain), _) => Secret::new(plain.clone()),
            (None, None, _) => return Ok(None),
        };
        Ok(Some(StoredToken {
            token,
            seed: rec.seed,
            rotated_at: rec.rotated_at,
        }))
    }

    /// Stores and flushes a rotated refresh token, sealed when `key` is given. Called before
    /// the access token that came with it is used, so a crash never leaves only a spent
    /// token on disk.
    pub fn set_refresh_token(
        &self,
        token: &Secret,
        seed: Option<&str>,
        key: Option<&StateKey>,
    ) -> Result<()> {
        let (plain, sealed) = match key {
            Some(k) => (None, Some(k.seal(token.expose(), TOKEN_KEY.as_bytes()))),
            None => (Some(token.expose().to_string()), None),
        };
        let rec = TokenRecord {
            token: plain,
            sealed,
            seed: seed.map(str::to_string),
            rotated_at: Utc::now(),
        };
        self.put(TOKEN_KEY, &rec)?;
        self.flush()
    }

    pub fn delete_refresh_token(&self) -> Result<bool> {
        let had = self
            .db
            .remove(TOKEN_KEY)
            .map_err(|e| self.io_error(e))?
            .is_some();
        self.flush()?;
        Ok(had)
    }

    pub fn set_last_run<T: Serialize>(&self, summary: &T) -> Result<()> {
        self.put(LAST_RUN_KEY, summary)?;
        self.flush()
    }

    pub fn last_run<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.get(LAST_RUN_KEY)
    }

    /// Stores and flushes a small piece of run bookkeeping under `meta/{name}` (counts and
    /// times only: the privacy rule of the module doc applies).
    pub fn set_meta<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        self.put(&format!("{META_PREFIX}{name}"), value)?;
        self.flush()
    }

    pub fn meta<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        self.get(&format!("{META_PREFIX}{name}"))
    }

    pub fn flush(&self) -> Result<()> {
        self.db.flush().map_err(|e| self.io_error(e))?;
        Ok(())
    }

    fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.db.get(key).map_err(|e| self.io_error(e))? {
            Some(v) => decode(&v, key).map(Some),
            None => Ok(None),
        }
    }

    fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| Fatal::internal(format!("cannot encode state entry {key}: {e}")))?;
        self.db.insert(key, bytes).map_err(|e| self.io_error(e))?;
        Ok(())
    }

    fn io_error(&self, e: sled::Error) -> Fatal {
        Fatal::state(format!(
            "the state store in {} failed: {e}; check that the disk is writable and not full",
            self.dir.display()
        ))
    }
}

fn cannot_open(e: OpenError, stored_id: &str, key: &StateKey) -> Fatal {
    match e {
        OpenError::WrongKey => Fatal::auth(format!(
            "TEAMS_CONNECTOR_STATE_KEY is not the key the stored refresh token was encrypted with (stored under key id {stored_id}, this key is {}); set the original key, or run `teams-connector login` to store a new token under this one",
            key.id()
        )),
        OpenError::Damaged => Fatal::auth(
            "the stored refresh token does not decrypt with TEAMS_CONNECTOR_STATE_KEY: the record is damaged or was altered; run `teams-connector login` to store a new one",
        ),
    }
}

fn channel_key(team: &str, channel: &str) -> String {
    format!("{CHANNEL_PREFIX}{team}/{channel}")
}

fn decode<T: DeserializeOwned>(bytes: &[u8], key: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        Fatal::state(format!(
            "state entry {key} is unreadable ({e}); `teams-connector reset --all --yes` forgets the cursors"
        ))
    })
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                Fatal::state(format!(
                    "cannot create the state dir {}: {e}; create it writable for this user or change [state] dir",
                    dir.display()
                ))
            })?;
    }
    let meta = std::fs::metadata(dir)
        .map_err(|e| Fatal::state(format!("cannot read the state dir {}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(Fatal::state(format!(
            "[state] dir {} is not a directory",
            dir.display()
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        // Best effort: the dir may belong to someone else (then opening the lock fails).
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}
