//! The state dir: the only thing the connector keeps between runs.
//!
//! Per DESIGN.md it holds cursors and sync times per channel, backfill progress, the newest
//! refresh token and the last run summary (with its scope: ids, kinds, states), and an
//! unfinished `forget`'s progress ([`forget`]: a salted digest, never the person) — never
//! message text, mails or names, nor anything of the opt-out list. The
//! refresh token has its own file ([`token`], `state.dir/refresh-token`), written
//! atomically, because it is the one thing that cannot be rebuilt; everything else is a
//! sled database under `state.dir/db`, whose types stay inside this module. Every write
//! that a later run depends on (a cursor, a rotated refresh token) is on disk before the
//! call returns — except the crawl's cursors: [`Store::save_channel`] and
//! [`Store::save_backfill`] return a [`Written`], on disk once [`Store::durable`] says so
//! (a group commit, see [`commit`]); a channel waits for it before its next POST.
//!
//! One writer per state dir: [`Store::open`] takes an exclusive lock on `state.dir/lock`
//! (`File::try_lock`) and a second process gets exit 75 at once, naming the lock file. It
//! also clears what a failed sled snapshot leaves behind ([`recover`]) and moves a token
//! that older versions kept inside sled into its file.
//!
//! With `TEAMS_CONNECTOR_STATE_KEY` the refresh token is stored sealed ([`sealed`]); a
//! token that does not open is exit 77 with the reason, never a silent new sign-in.

pub(crate) mod commit;
mod forget;
mod lock;
mod recover;
mod refresh;
mod sealed;
mod token;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::exit::{Fatal, Result};

pub use commit::Written;
pub use forget::{ForgetJob, ForgetProgress};
pub use lock::Lock;
pub use refresh::{StoredToken, TokenInfo};
pub use sealed::StateKey;

use commit::Commits;
use token::{TokenFile, TokenRecord};

/// Where older versions kept the token inside sled; also the context the sealed token is
/// bound to.
const TOKEN_KEY: &str = "auth/refresh_token";
const LAST_RUN_KEY: &str = "run/last";
const CHANNEL_PREFIX: &str = "channel/";
const BACKFILL_PREFIX: &str = "backfill/";
const META_PREFIX: &str = "meta/";

/// Progress of one channel's backfill of a date range.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackfillProgress {
    /// The range (stored in Graph's time format): progress of another range does not apply.
    #[serde(with = "crate::graph::time::serde")]
    pub since: DateTime<Utc>,
    #[serde(default, with = "crate::graph::time::serde_opt")]
    pub until: Option<DateTime<Utc>>,
    /// The next message-list page to read; `None` once done.
    pub next: Option<String>,
    pub done: bool,
    pub updated_at: DateTime<Utc>,
}

/// A channel: its team's id and its own (unique only within the team). What the store
/// keeps per channel is keyed by both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelKey {
    pub team: String,
    pub channel: String,
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
    /// The `last_sync` the last reply sweep covered: the next sweep forwards replies changed
    /// since then (equal to `last_sync` when the sweep runs every round).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swept_through: Option<DateTime<Utc>>,
    /// When (our clock) the last reply sweep ran (`[crawl] reply_sweep_every`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swept_at: Option<DateTime<Utc>>,
    /// Graph requests of the last completed round: big channels start first next run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u32>,
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

pub struct Store {
    db: sled::Db,
    dir: PathBuf,
    token: TokenFile,
    commits: Commits,
    _lock: Lock,
}

impl Store {
    /// Creates the state dir (mode 0700) if needed, takes the lock, clears incomplete
    /// sled snapshots, opens the database and moves a token kept in sled into its file.
    pub fn open(dir: &Path) -> Result<Store> {
        create_private_dir(dir)?;
        let lock = Lock::acquire(&dir.join("lock"))?;
        let token = TokenFile::in_dir(dir);
        let db_path = dir.join("db");
        clear_incomplete_snapshots(&db_path)?;
        let db = sled::Config::new().path(&db_path).open().map_err(|e| {
            Fatal::state(format!(
                "cannot open the state store's cursors in {}: {e}; check the disk, then if it stays unreadable move {} away: the refresh token ({}) is kept, and the next run restarts the channels from `crawl.initial_lookback` (messages since then are sent again)",
                db_path.display(),
                db_path.display(),
                token.path().display()
            ))
        })?;
        let store = Store {
            commits: Commits::new(db.clone()),
            db,
            dir: dir.to_path_buf(),
            token,
            _lock: lock,
        };
        store.migrate_token()?;
        Ok(store)
    }

    /// Older versions kept the token record in sled: it moves to its file (unless the file
    /// is already newer), then leaves sled.
    fn migrate_token(&self) -> Result<()> {
        let Some(bytes) = self.db.get(TOKEN_KEY).map_err(|e| self.io_error(e))? else {
            return Ok(());
        };
        if self.token.read()?.is_none() {
            if let Ok(record) = serde_json::from_slice::<TokenRecord>(&bytes) {
                self.token.write(&record)?;
            }
        }
        self.db.remove(TOKEN_KEY).map_err(|e| self.io_error(e))?;
        self.flush()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn channel(&self, key: &ChannelKey) -> Result<Option<ChannelCursor>> {
        self.get(&key_of(CHANNEL_PREFIX, key))
    }

    /// Stores a channel's cursor; on disk once [`Store::durable`] says so.
    pub fn save_channel(&self, key: &ChannelKey, cursor: &ChannelCursor) -> Result<Written> {
        self.put(&key_of(CHANNEL_PREFIX, key), cursor)?;
        Ok(self.commits.saved())
    }

    /// Every stored channel cursor.
    pub fn channels(&self) -> Result<Vec<(ChannelKey, ChannelCursor)>> {
        self.scan(CHANNEL_PREFIX)
    }

    pub fn backfill(&self, key: &ChannelKey) -> Result<Option<BackfillProgress>> {
        self.get(&key_of(BACKFILL_PREFIX, key))
    }

    /// Stores a channel's backfill progress; on disk once [`Store::durable`] says so.
    pub fn save_backfill(&self, key: &ChannelKey, progress: &BackfillProgress) -> Result<Written> {
        self.put(&key_of(BACKFILL_PREFIX, key), progress)?;
        Ok(self.commits.saved())
    }

    /// Waits until a save is on disk (one flush covers every save made meanwhile).
    pub async fn durable(&self, written: Written) -> Result<()> {
        self.commits
            .durable(written)
            .await
            .map_err(|e| self.io_error_text(&e))
    }

    /// Every stored backfill progress.
    pub fn backfills(&self) -> Result<Vec<(ChannelKey, BackfillProgress)>> {
        self.scan(BACKFILL_PREFIX)
    }

    /// Every entry under `prefix` (`{prefix}{team}/{channel}`), decoded.
    fn scan<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<(ChannelKey, T)>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(prefix) {
            let (k, v) = item.map_err(|e| self.io_error(e))?;
            let key = String::from_utf8_lossy(&k).into_owned();
            // Team ids are GUIDs (no '/'): the first '/' after the prefix splits the key.
            if let Some((team, channel)) = key[prefix.len()..].split_once('/') {
                let id = ChannelKey {
                    team: team.to_string(),
                    channel: channel.to_string(),
                };
                out.push((id, decode(&v, &key)?));
            }
        }
        Ok(out)
    }

    /// Forgets the cursors of the matching channels; returns how many were removed.
    pub fn reset_channels(&self, team: Option<&str>, channel: Option<&str>) -> Result<usize> {
        let mut removed = 0;
        for (key, _) in self.channels()? {
            if team.is_some_and(|x| x != key.team) || channel.is_some_and(|x| x != key.channel) {
                continue;
            }
            self.db
                .remove(key_of(CHANNEL_PREFIX, &key))
                .map_err(|e| self.io_error(e))?;
            removed += 1;
        }
        self.flush()?;
        Ok(removed)
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
        self.io_error_text(&e.to_string())
    }

    fn io_error_text(&self, e: &str) -> Fatal {
        Fatal::state(format!(
            "the state store in {} failed: {e}; check that the disk is writable and not full",
            self.dir.display()
        ))
    }
}

/// [`recover`] before sled opens; what it removed is worth a warning, not an error.
fn clear_incomplete_snapshots(db: &Path) -> Result<()> {
    let removed = recover::remove_incomplete_snapshots(db).map_err(|e| {
        Fatal::state(format!(
            "cannot check the cursor store {} for incomplete snapshots: {e}; make the state dir readable and writable for this user",
            db.display()
        ))
    })?;
    for name in removed {
        tracing::warn!(file = %name, dir = %db.display(), "Removed an incomplete snapshot of the cursor store (left by a failed write, e.g. a full disk); the store recovers from its log.");
    }
    Ok(())
}

fn key_of(prefix: &str, key: &ChannelKey) -> String {
    format!("{prefix}{}/{}", key.team, key.channel)
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
