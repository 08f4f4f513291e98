//! One channel's incremental crawl: follow delta from the stored `@odata.deltaLink` (or,
//! the first time, `crawl.initial_lookback` back), turn each root post and its replies
//! into documents, send them in batches, and save the new deltaLink only after the ingest
//! accepted every batch before it (cursor-after-ack). Pages stream through: at most one
//! page and one batch are held in memory.

use chrono::{DateTime, Utc};

use super::report::{ChannelCounts, Ending, Failure, FailureKind};
use super::Crawl;
use crate::graph::models::{ChatMessage, Page};
use crate::graph::GraphError;
use crate::ingest::IngestError;
use crate::state::ChannelCursor;
use crate::transform::{Document, Outcome, Place};

/// A channel to crawl.
#[derive(Debug, Clone)]
pub struct ChannelRef {
    pub team: String,
    pub channel: String,
}

pub struct ChannelRun {
    pub counts: ChannelCounts,
    pub ending: Ending,
    pub failure: Option<Failure>,
}

/// Why a crawl stopped early.
enum Stop {
    Graph(GraphError),
    Ingest(IngestError),
    Budget,
    Fatal(crate::exit::Fatal),
}

struct Progress<'a> {
    crawl: &'a Crawl,
    place: &'a ChannelRef,
    /// Newest `lastModifiedDateTime` handled so far.
    newest: Option<DateTime<Utc>>,
    /// Messages modified before this were sent by an earlier run.
    since: Option<DateTime<Utc>>,
    incremental: bool,
    batch: Vec<Document>,
    counts: ChannelCounts,
}

pub async fn crawl(crawl: &Crawl, place: &ChannelRef) -> ChannelRun {
    let mut progress = Progress {
        crawl,
        place,
        newest: None,
        since: None,
        incremental: false,
        batch: Vec::with_capacity(crawl.batch_size),
        counts: ChannelCounts::default(),
    };
    let result = progress.run().await;
    let (ending, failure) = match result {
        Ok(()) => (Ending::Done, None),
        Err(stop) => progress.conclude(stop),
    };
    ChannelRun {
        counts: progress.counts,
        ending,
        failure,
    }
}

impl Progress<'_> {
    async fn run(&mut self) -> Result<(), Stop> {
        let cursor = self
            .crawl
            .store
            .channel(&self.place.team, &self.place.channel)
            .map_err(Stop::Fatal)?;
        let cursor = cursor.unwrap_or_default();
        self.incremental = cursor.delta_link.is_some();
        self.since = cursor.last_sync;
        self.newest = cursor.last_sync;
        let mut url = match &cursor.delta_link {
            Some(link) => link.clone(),
            None => self.crawl.graph.endpoints.delta(
                &self.place.team,
                &self.place.channel,
                &graph_time(self.crawl.first_since),
                self.crawl.include_replies,
            ),
        };
        loop {
            self.check_budget()?;
            let page: Page<ChatMessage> = self.get(&url).await?;
            for root in &page.value {
                self.root(root).await?;
            }
            while self.batch.len() >= self.crawl.batch_size {
                let rest = self.batch.split_off(self.crawl.batch_size);
                self.flush_batch().await?;
                self.batch = rest;
            }
            match (page.next_link, page.delta_link) {
                (Some(next), _) => url = next,
                (None, Some(delta)) => return self.finish(delta).await,
                (None, None) => {
                    return Err(Stop::Graph(GraphError::Invalid(
                        "a delta page had neither @odata.nextLink nor @odata.deltaLink".into(),
                    )))
                }
            }
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, Stop> {
        self.crawl
            .graph
            .get(url, Some(&self.place.channel))
            .await
            .map_err(Stop::Graph)
    }

    async fn root(&mut self, root: &ChatMessage) -> Result<(), Stop> {
        self.message(root, &root.id);
        if !self.crawl.include_replies {
            return Ok(());
        }
        for reply in &root.replies {
            self.message(reply, &root.id);
        }
        let mut next = root.replies_next_link.clone();
        while let Some(url) = next {
            self.check_budget()?;
            let page: Page<ChatMessage> = self.get(&url).await?;
            for reply in &page.value {
                self.message(reply, &root.id);
            }
            next = page.next_link;
        }
        Ok(())
    }

    fn message(&mut self, msg: &ChatMessage, thread: &str) {
        self.counts.seen += 1;
        let modified = msg
            .last_modified_date_time
            .as_deref()
            .or(msg.created_date_time.as_deref())
            .and_then(parse_time);
        if let Some(m) = modified {
            self.newest = Some(self.newest.map_or(m, |n| n.max(m)));
        }
        // Delta re-sends a root whose replies changed; what did not change since the last
        // round is not sent again. Equal timestamps are resent: at least once, never lost.
        if let (Some(since), Some(m)) = (self.since, modified) {
            if m < since {
                self.counts.unchanged += 1;
                return;
            }
        }
        let place = Place {
            team: &self.place.team,
            channel: &self.place.channel,
            thread,
        };
        match self
            .crawl
            .transformer
            .message(&place, msg, &self.crawl.directory, self.incremental)
        {
            Outcome::Forward(doc) => {
                match doc.op {
                    crate::transform::Op::Upsert => self.counts.forwarded += 1,
                    crate::transform::Op::Delete => self.counts.deletes += 1,
                }
                self.batch.push(doc);
            }
            Outcome::Skip(why) => self.counts.skip(why),
        }
    }

    async fn flush_batch(&mut self) -> Result<(), Stop> {
        if self.batch.is_empty() {
            return Ok(());
        }
        if self.crawl.ingest_down() {
            return Err(Stop::Ingest(IngestError::Unavailable(
                "the ingest failed for another channel in this run".into(),
            )));
        }
        let sent = self.crawl.output.send(&self.batch).await;
        if let Err(IngestError::Unavailable(_)) = &sent {
            self.crawl.mark_ingest_down();
        }
        sent.map_err(Stop::Ingest)?;
        self.batch.clear();
        Ok(())
    }

    /// Sends what is left, then saves the cursor: only now is every document of the round
    /// acknowledged.
    async fn finish(&mut self, delta: String) -> Result<(), Stop> {
        self.flush_batch().await?;
        if self.crawl.output.is_dry_run() {
            return Ok(());
        }
        let cursor = ChannelCursor {
            delta_link: Some(delta),
            last_sync: self.newest,
            synced_at: Some(Utc::now()),
        };
        self.crawl
            .store
            .set_channel(&self.place.team, &self.place.channel, &cursor)
            .map_err(Stop::Fatal)
    }

    fn check_budget(&self) -> Result<(), Stop> {
        if self.crawl.out_of_time() {
            Err(Stop::Budget)
        } else {
            Ok(())
        }
    }

    /// Maps an early stop to the channel's ending, recording aborts on the crawl.
    fn conclude(&self, stop: Stop) -> (Ending, Option<Failure>) {
        let fail = |kind: FailureKind, reason: String| {
            tracing::warn!(
                team = %self.place.team,
                channel = %self.place.channel,
                kind = ?kind,
                reason = %reason,
                "Channel failed; its cursor stays where it was and the next run retries it."
            );
            (
                Ending::Failed,
                Some(Failure {
                    team: self.place.team.clone(),
                    channel: Some(self.place.channel.clone()),
                    kind,
                    reason,
                }),
            )
        };
        match stop {
            Stop::Budget | Stop::Graph(GraphError::Cancelled) => (Ending::Stopped, None),
            Stop::Graph(GraphError::Auth(f)) | Stop::Fatal(f) => {
                self.crawl.abort(f);
                (Ending::Stopped, None)
            }
            Stop::Graph(e @ GraphError::Status { .. }) => {
                fail(FailureKind::GraphRefused, e.to_string())
            }
            Stop::Graph(e @ GraphError::Unavailable(_)) => {
                fail(FailureKind::GraphUnavailable, e.to_string())
            }
            Stop::Graph(e) => fail(FailureKind::GraphInvalid, e.to_string()),
            Stop::Ingest(e @ IngestError::Rejected { .. }) => {
                fail(FailureKind::IngestRejected, e.to_string())
            }
            Stop::Ingest(e @ IngestError::Unavailable(_)) => {
                fail(FailureKind::IngestUnavailable, e.to_string())
            }
        }
    }
}

pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Graph's timestamp form: `2021-01-22T21:39:42.080Z`.
pub fn graph_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
