//! What a run did, counted per channel and added up once: the run summary that ends every
//! run (log event, `status`, state store). Counts and ids only — never text or mails.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::transform::Skip;

/// How one channel's crawl ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Round complete, cursor saved (or, in a dry run, would have been).
    Done,
    /// Failed; the cursor stays where it was.
    Failed,
    /// Stopped by `--max-duration` or a signal before the round completed.
    Stopped,
}

/// Why a channel or team failed, for the operator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Graph refused the team or channel (403/404: membership removed, team deleted).
    GraphRefused,
    /// Graph unavailable after retries.
    GraphUnavailable,
    /// Graph sent something unusable.
    GraphInvalid,
    IngestRejected,
    IngestUnavailable,
    State,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    pub team: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    pub kind: FailureKind,
    pub reason: String,
}

/// Counters of one channel, added into the [`Summary`].
#[derive(Debug, Default, Clone)]
pub struct ChannelCounts {
    pub seen: u64,
    pub forwarded: u64,
    pub deletes: u64,
    pub unchanged: u64,
    /// Replies found by the reply sweep that delta did not show.
    pub late_replies: u64,
    pub sweep_pages: u64,
    /// Expired delta cursors restarted from the last sync time.
    pub cursor_resets: u64,
    pub skipped: BTreeMap<Skip, u64>,
}

impl ChannelCounts {
    pub fn skip(&mut self, why: Skip) {
        *self.skipped.entry(why).or_default() += 1;
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub started_at: String,
    pub duration_ms: u64,
    pub dry_run: bool,
    pub teams: u64,
    pub channels: u64,
    pub channels_done: u64,
    pub channels_failed: u64,
    pub channels_stopped: u64,
    pub messages_seen: u64,
    pub forwarded: u64,
    pub deletes: u64,
    pub unchanged: u64,
    pub late_replies: u64,
    pub sweep_pages: u64,
    pub cursor_resets: u64,
    pub skipped: BTreeMap<String, u64>,
    pub users: u64,
    pub requests: u64,
    pub throttled: u64,
    pub retries: u64,
    pub throttle_wait_ms: u64,
    /// Graph requests per second over the whole run.
    pub request_rate: f64,
    /// Answers of Graph and the token endpoint by HTTP status ("error": none).
    #[serde(default)]
    pub graph_statuses: BTreeMap<String, u64>,
    pub exit_code: i32,
    pub failures: Vec<Failure>,
}

impl Summary {
    pub fn add_channel(&mut self, counts: &ChannelCounts, ending: &Ending) {
        self.channels += 1;
        match ending {
            Ending::Done => self.channels_done += 1,
            Ending::Failed => self.channels_failed += 1,
            Ending::Stopped => self.channels_stopped += 1,
        }
        self.messages_seen += counts.seen;
        self.forwarded += counts.forwarded;
        self.deletes += counts.deletes;
        self.unchanged += counts.unchanged;
        self.late_replies += counts.late_replies;
        self.sweep_pages += counts.sweep_pages;
        self.cursor_resets += counts.cursor_resets;
        for (why, n) in &counts.skipped {
            *self.skipped.entry(why.name().to_string()).or_default() += n;
        }
    }

    /// Every skip reason, zeros included, so dashboards see a stable set of series.
    pub fn fill_skip_reasons(&mut self) {
        for why in Skip::ALL {
            self.skipped.entry(why.name().to_string()).or_default();
        }
    }

    /// The final event of every run (DESIGN.md): fields first, a sentence last.
    pub fn log(&self) {
        let skipped = serde_json::to_string(&self.skipped).unwrap_or_default();
        let statuses = serde_json::to_string(&self.graph_statuses).unwrap_or_default();
        tracing::info!(
            target: "run_summary",
            teams = self.teams,
            channels = self.channels,
            channels_failed = self.channels_failed,
            channels_stopped = self.channels_stopped,
            users = self.users,
            messages_seen = self.messages_seen,
            forwarded = self.forwarded,
            deletes = self.deletes,
            unchanged = self.unchanged,
            late_replies = self.late_replies,
            sweep_pages = self.sweep_pages,
            cursor_resets = self.cursor_resets,
            skipped = %skipped,
            requests = self.requests,
            throttled = self.throttled,
            retries = self.retries,
            throttle_wait_ms = self.throttle_wait_ms,
            request_rate = format!("{:.2}", self.request_rate),
            graph_statuses = %statuses,
            duration_ms = self.duration_ms,
            dry_run = self.dry_run,
            exit_code = self.exit_code,
            "Run finished."
        );
    }
}
