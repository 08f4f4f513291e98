//! `forget`'s resumable progress. Nothing here names the person: the job is known by a
//! salted digest of the person's object ids and the range (the salt drawn per job), and
//! each channel keeps only the next message-list page to read. A rerun of the same
//! command recomputes the digest and resumes; once every channel is done the whole job is
//! removed, so a finished erasure leaves no trace of whom it was for.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{decode, Store};
use crate::exit::Result;

const JOB_KEY: &str = "forget/job";
const CHANNEL_PREFIX: &str = "forget/channel/";

/// The unfinished erasure, if one is stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ForgetJob {
    /// Random, hex; drawn when the job starts.
    pub salt: String,
    /// SHA-256 over salt, person and range (hex): tells this job from another.
    pub digest: String,
    pub started_at: DateTime<Utc>,
}

/// One channel's part of the job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ForgetProgress {
    /// The job's digest: progress of another job does not apply.
    pub job: String,
    /// The next message-list page; `None` once done.
    pub next: Option<String>,
    pub done: bool,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    pub fn forget_job(&self) -> Result<Option<ForgetJob>> {
        self.get(JOB_KEY)
    }

    /// Starts a job: forgets any other job's progress, stores this one (flushed).
    pub fn start_forget_job(&self, job: &ForgetJob) -> Result<()> {
        self.clear_forget()?;
        self.put(JOB_KEY, job)?;
        self.flush()
    }

    pub fn forget_progress(&self, team: &str, channel: &str) -> Result<Option<ForgetProgress>> {
        self.get(&format!("{CHANNEL_PREFIX}{team}/{channel}"))
    }

    /// Stores and flushes a channel's progress.
    pub fn set_forget_progress(&self, team: &str, channel: &str, p: &ForgetProgress) -> Result<()> {
        self.put(&format!("{CHANNEL_PREFIX}{team}/{channel}"), p)?;
        self.flush()
    }

    /// How many channels of the stored job are done, and how many have progress.
    pub fn forget_channels(&self) -> Result<(usize, usize)> {
        let (mut done, mut all) = (0, 0);
        for item in self.db.scan_prefix(CHANNEL_PREFIX) {
            let (k, v) = item.map_err(|e| self.io_error(e))?;
            let p: ForgetProgress = decode(&v, &String::from_utf8_lossy(&k))?;
            all += 1;
            done += usize::from(p.done);
        }
        Ok((done, all))
    }

    /// Removes the job and all its progress (flushed).
    pub fn clear_forget(&self) -> Result<()> {
        let keys: Vec<sled::IVec> = self
            .db
            .scan_prefix("forget/")
            .keys()
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| self.io_error(e))?;
        for k in keys {
            self.db.remove(k).map_err(|e| self.io_error(e))?;
        }
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_starts_clean_and_clears_without_a_trace() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let job = ForgetJob {
            salt: "00".into(),
            digest: "d1".into(),
            started_at: Utc::now(),
        };
        store.start_forget_job(&job).unwrap();
        let p = ForgetProgress {
            job: "d1".into(),
            next: Some("https://graph.microsoft.com/v1.0/x".into()),
            done: false,
            updated_at: Utc::now(),
        };
        store.set_forget_progress("t", "c", &p).unwrap();
        assert_eq!(store.forget_progress("t", "c").unwrap(), Some(p));
        assert_eq!(store.forget_channels().unwrap(), (0, 1));
        store
            .start_forget_job(&ForgetJob {
                digest: "d2".into(),
                ..job
            })
            .unwrap();
        assert_eq!(store.forget_progress("t", "c").unwrap(), None);
        store.clear_forget().unwrap();
        assert_eq!(store.forget_job().unwrap(), None);
    }
}
