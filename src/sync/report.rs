//! What a run did, counted per channel and added up once: the run summary that ends every
//! run (log event, `status`, state store). Counts and ids only — never text or mails.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::transform::Skip;

/// How one channel's crawl ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Round complete, cursor saved (or, in a dry run, would have been).
    Done,
    /// Failed; the cursor stays where it was.
    Failed,
    /// Stopped by `--max-duration`, a signal or an abort before the round completed.
    Stopped,
}

/// Why a channel or team failed, for the operator.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Graph refused the team or channel (403/404: membership removed, team deleted).
    GraphRefused,
    /// Graph unavailable after retries.
    GraphUnavailable,
    /// Graph sent something unusable (a body that does not decode, a redirect, a body
    /// past the size cap, a link to another host).
    GraphInvalid,
    IngestRejected,
    IngestUnavailable,
    State,
    /// The crawl of a team or channel panicked: a bug, reported with the log.
    Internal,
}

/// A team or channel that failed. `reason` holds status, error code and a fixed description
/// only (issue 12 item 5): no body, no value Graph or the ingest sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    pub team: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    pub kind: FailureKind,
    pub reason: String,
}

/// What the crawl of channels counted; one per channel, added into the [`Summary`].
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelCounts {
    /// Messages looked at (roots and replies), skipped or not.
    pub messages_seen: u64,
    pub forwarded: u64,
    pub deletes: u64,
    /// Messages not sent again: unchanged since the last sync.
    pub unchanged: u64,
    /// Replies found by the reply sweep that delta did not show.
    pub late_replies: u64,
    /// Message-list pages the reply sweep read.
    pub sweep_pages: u64,
    /// Graph requests of delta rounds (their reply pages included).
    pub delta_requests: u64,
    /// Graph requests of the reply sweep (its reply pages included): one list request per
    /// channel and run on a quiet tenant; `[crawl] reply_sweep_every` spaces them out.
    pub sweep_requests: u64,
    /// Expired delta cursors restarted from the last sync time.
    pub cursor_resets: u64,
    pub skipped: BTreeMap<Skip, u64>,
}

impl ChannelCounts {
    pub fn skip(&mut self, why: Skip) {
        *self.skipped.entry(why).or_default() += 1;
    }

    pub fn add(&mut self, other: &ChannelCounts) {
        self.messages_seen += other.messages_seen;
        self.forwarded += other.forwarded;
        self.deletes += other.deletes;
        self.unchanged += other.unchanged;
        self.late_replies += other.late_replies;
        self.sweep_pages += other.sweep_pages;
        self.delta_requests += other.delta_requests;
        self.sweep_requests += other.sweep_requests;
        self.cursor_resets += other.cursor_resets;
        for (why, n) in &other.skipped {
            *self.skipped.entry(*why).or_default() += n;
        }
    }
}

/// The run summary: the `run_summary` event, `status`'s `last_run`, the metrics' source.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    #[serde(with = "crate::graph::time::serde")]
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub dry_run: bool,
    pub teams: u64,
    pub channels: u64,
    pub channels_done: u64,
    pub channels_failed: u64,
    pub channels_stopped: u64,
    #[serde(flatten)]
    pub counts: ChannelCounts,
    pub users: u64,
    pub requests: u64,
    pub throttled: u64,
    pub retries: u64,
    pub throttle_wait_ms: u64,
    /// Graph requests per second over the whole run.
    pub request_rate: f64,
    /// The process's peak resident memory (`VmHWM`), in bytes; 0 where unknown.
    #[serde(default)]
    pub peak_rss_bytes: u64,
    /// Answers of Graph and the token endpoint by HTTP status ("error": none).
    #[serde(default)]
    pub graph_statuses: BTreeMap<String, u64>,
    pub exit_code: i32,
    pub failures: Vec<Failure>,
    /// Teams and channels by kind and what became of them (crawled, excluded, …).
    #[serde(default)]
    pub coverage: super::scope::Coverage,
}

/// The process's peak resident set (`VmHWM` of `/proc/self/status`), in bytes.
pub fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

impl Summary {
    pub fn new(dry_run: bool) -> Self {
        let mut counts = ChannelCounts::default();
        // Every skip reason, zeros included, so dashboards see a stable set of series.
        for why in Skip::ALL {
            counts.skipped.insert(why, 0);
        }
        Summary {
            started_at: Utc::now(),
            duration_ms: 0,
            dry_run,
            teams: 0,
            channels: 0,
            channels_done: 0,
            channels_failed: 0,
            channels_stopped: 0,
            counts,
            users: 0,
            requests: 0,
            throttled: 0,
            retries: 0,
            throttle_wait_ms: 0,
            request_rate: 0.0,
            peak_rss_bytes: 0,
            graph_statuses: BTreeMap::new(),
            exit_code: 0,
            failures: Vec::new(),
            coverage: Default::default(),
        }
    }

    pub fn add_channel(&mut self, counts: &ChannelCounts, ending: Ending) {
        self.channels += 1;
        match ending {
            Ending::Done => self.channels_done += 1,
            Ending::Failed => self.channels_failed += 1,
            Ending::Stopped => self.channels_stopped += 1,
        }
        self.counts.add(counts);
    }

    /// The final event of every run (DESIGN.md): fields first, a sentence last.
    pub fn log(&self) {
        let skipped: BTreeMap<&str, u64> = self
            .counts
            .skipped
            .iter()
            .map(|(why, n)| (why.name(), *n))
            .collect();
        let skipped = serde_json::to_string(&skipped).unwrap_or_default();
        let statuses = serde_json::to_string(&self.graph_statuses).unwrap_or_default();
        let coverage = serde_json::to_string(&self.coverage).unwrap_or_default();
        let c = &self.counts;
        tracing::info!(
            target: "run_summary",
            teams = self.teams,
            channels = self.channels,
            channels_failed = self.channels_failed,
            channels_stopped = self.channels_stopped,
            users = self.users,
            messages_seen = c.messages_seen,
            forwarded = c.forwarded,
            deletes = c.deletes,
            unchanged = c.unchanged,
            late_replies = c.late_replies,
            sweep_pages = c.sweep_pages,
            delta_requests = c.delta_requests,
            sweep_requests = c.sweep_requests,
            cursor_resets = c.cursor_resets,
            skipped = %skipped,
            requests = self.requests,
            throttled = self.throttled,
            retries = self.retries,
            throttle_wait_ms = self.throttle_wait_ms,
            request_rate = format!("{:.2}", self.request_rate),
            peak_rss_bytes = self.peak_rss_bytes,
            graph_statuses = %statuses,
            coverage = %coverage,
            duration_ms = self.duration_ms,
            dry_run = self.dry_run,
            exit_code = self.exit_code,
            "Run finished."
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_flat_json_with_every_skip_reason_by_name() {
        let mut s = Summary::new(false);
        let mut c = ChannelCounts {
            forwarded: 3,
            ..Default::default()
        };
        c.skip(Skip::Bot);
        s.add_channel(&c, Ending::Done);
        s.add_channel(&c, Ending::Failed);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["forwarded"], 6);
        assert_eq!(v["skipped"]["bot"], 2);
        assert_eq!(v["skipped"]["no_mail"], 0);
        assert_eq!(v["channels_failed"], 1);
        assert!(v["started_at"].as_str().unwrap().ends_with('Z'));
        let back: Summary = serde_json::from_value(v).unwrap();
        assert_eq!(back.counts.forwarded, 6);
    }
}
