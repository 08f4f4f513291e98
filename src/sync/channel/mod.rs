//! One channel's incremental crawl: follow delta from where the last run stopped, turn
//! each root post and its replies into documents, send them in batches, and save the new
//! `@odata.deltaLink` only after the ingest accepted every batch before it
//! (cursor-after-ack). Pages stream through: one page and one batch are held at a time.
//!
//! Where a round starts, in order: the saved mid-round link (a killed run resumes near
//! where it stopped), the last deltaLink, or — first run — `crawl.initial_lookback` back.
//! A saved link that Graph refuses (expired skiptoken, 410, `syncStateNotFound`, …) falls
//! back one step; an expired deltaLink restarts from the last sync time with a date
//! filter, never from scratch and never silently. After the delta round, incremental
//! rounds sweep recent threads for late replies ([`super::sweep`]).

mod delivery;
use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::report::{ChannelCounts, Ending, Failure, FailureKind};
use super::Crawl;
use crate::graph::models::{ChatMessage, Page};
use crate::graph::GraphError;
use crate::http::Scope;
use crate::ingest::IngestError;
use crate::state::{ChannelCursor, PageAck};
use crate::transform::{Directory, Document, Op, Outcome, Place};

/// Overlap when restarting from a sync time, for clock skew between Graph's replicas.
const RESYNC_OVERLAP: chrono::Duration = chrono::Duration::minutes(5);

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
pub(super) enum Stop {
    Graph(GraphError),
    Ingest(IngestError),
    Budget,
    Fatal(crate::exit::Fatal),
}

/// Where the URL of the next request came from: stored links may have expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Fresh,
    InProgress,
    Delta,
}

pub(super) struct Progress<'a> {
    pub crawl: &'a Crawl,
    /// The users map, once loaded (see [`Progress::ensure_directory`]).
    directory: Option<&'a Directory>,
    pub place: &'a ChannelRef,
    cursor: ChannelCursor,
    /// Newest `lastModifiedDateTime` handled so far.
    newest: Option<DateTime<Utc>>,
    /// When this round began reading the channel (a resumed round: in the stopped run).
    /// The stored sync time never passes it: see [`Progress::sync_mark`].
    started: DateTime<Utc>,
    /// Messages modified before this were sent by an earlier run.
    pub since: Option<DateTime<Utc>>,
    incremental: bool,
    /// The URL of the page being processed: the resume point once its batch is acked.
    page_url: Option<String>,
    /// Ids of the documents made from the current page, in order.
    page_docs: Vec<String>,
    /// On a resumed run: the prefix of the first page the ingest already has.
    resume_ack: Option<PageAck>,
    /// Replies decided in this run, by (thread id, message id): a message id is unique only
    /// within its thread. The sweep skips these, so nothing is sent or counted twice. Kept
    /// only on incremental rounds (the only ones a sweep follows).
    handled_replies: HashSet<(String, String)>,
    /// Delta shows a thread the previous round's sweep no longer reached: its replies are
    /// forwarded whatever their time (see [`Progress::root`]).
    stale_thread: bool,
    batch: Vec<Document>,
    pub counts: ChannelCounts,
    /// Backfill: only messages created in this range, and no incremental cursor is touched.
    pub(super) range: Option<Range>,
}

/// A backfill's date range, `[since, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub since: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
}

impl Range {
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        t >= self.since && self.until.is_none_or(|u| t < u)
    }
}

pub async fn crawl(crawl: &Crawl, place: &ChannelRef) -> ChannelRun {
    let mut progress = Progress {
        crawl,
        directory: None,
        place,
        cursor: ChannelCursor::default(),
        newest: None,
        started: Utc::now(),
        since: None,
        incremental: false,
        page_url: None,
        page_docs: Vec::new(),
        resume_ack: None,
        handled_replies: HashSet::new(),
        stale_thread: false,
        batch: Vec::with_capacity(crawl.batch_size),
        counts: ChannelCounts::default(),
        range: crawl.backfill,
    };
    let outcome = match crawl.backfill {
        Some(range) => progress.backfill(range).await,
        None => progress.run().await,
    };
    let (ending, failure) = match outcome {
        Ok(()) => (Ending::Done, None),
        Err(stop) => progress.conclude(stop).await,
    };
    ChannelRun {
        counts: progress.counts,
        ending,
        failure,
    }
}

impl<'a> Progress<'a> {
    async fn run(&mut self) -> Result<(), Stop> {
        let stored = self
            .crawl
            .store
            .channel(&self.place.team, &self.place.channel)
            .map_err(Stop::Fatal)?;
        self.cursor = stored.unwrap_or_default();
        self.incremental = self.cursor.delta_link.is_some();
        self.since = self.cursor.last_sync;
        self.newest = max_time(self.cursor.last_sync, self.cursor.round_newest);
        // A resumed round began in the stopped run: its sync time stops at that start (a
        // cursor saved before `round_started` existed: at what the stopped run had seen).
        let began = self.cursor.round_started.or(self.cursor.round_newest);
        self.started = began.map_or(self.started, |b| b.min(self.started));
        self.resume_ack = self.cursor.in_progress_acked.take();
        let Some(delta) = self.delta_round().await? else {
            return Ok(());
        };
        if self.incremental && self.crawl.include_replies {
            self.sweep().await?;
        }
        self.finish(delta).await
    }

    fn first_link(&self) -> (String, Origin) {
        if let Some(link) = &self.cursor.in_progress {
            return (link.clone(), Origin::InProgress);
        }
        if let Some(link) = &self.cursor.delta_link {
            return (link.clone(), Origin::Delta);
        }
        (self.filtered_link(self.crawl.first_since), Origin::Fresh)
    }

    fn filtered_link(&self, since: DateTime<Utc>) -> String {
        let e = &self.crawl.graph.endpoints;
        e.delta(
            &self.place.team,
            &self.place.channel,
            &graph_time(since),
            self.crawl.include_replies,
        )
    }

    /// Follows delta to the end of the round; returns the round's deltaLink, or `None`
    /// for an empty channel whose round cannot be followed (the cursor stays as it was).
    async fn delta_round(&mut self) -> Result<Option<String>, Stop> {
        let (mut url, mut origin) = self.first_link();
        // Pages of this round so far, and whether all of them were empty.
        let (mut pages, mut empty) = (0usize, true);
        loop {
            self.check_budget(Some(&url)).await?;
            let page: Page<ChatMessage> = match self.get(&url).await {
                Ok(page) => page,
                Err(Stop::Graph(e)) if origin != Origin::Fresh && is_expired_cursor(&e) => {
                    (url, origin) = self.fall_back(origin, &e);
                    continue;
                }
                // Graph opens an empty channel's round with an empty page whose nextLink it
                // then refuses (400 "Parameter 'DeltaToken' not supported"): nothing to
                // deliver and no deltaLink to keep, so the stored cursor stays as it was.
                Err(Stop::Graph(e)) if pages > 0 && empty && is_expired_cursor(&e) => {
                    tracing::info!(team = %self.place.team, channel = %self.place.channel, error = %e, "Graph refused the next page of a delta round that returned nothing so far (an empty channel); nothing to deliver, the cursor stays.");
                    return Ok(None);
                }
                Err(stop) => return Err(stop),
            };
            pages += 1;
            empty &= page.value.is_empty();
            let resumed = origin == Origin::InProgress;
            origin = Origin::Fresh;
            self.page_url = Some(url.clone());
            self.page_docs.clear();
            for root in &page.value {
                self.root(root).await?;
            }
            if resumed {
                self.skip_acked_prefix();
            }
            self.flush_full_batches().await?;
            match (page.next_link, page.delta_link) {
                (Some(next), _) => url = next,
                // Checked before it is stored: a cursor pointing elsewhere would send our
                // token there next run and fail the channel forever.
                (None, Some(delta)) if !self.crawl.graph.endpoints.owns(&delta) => {
                    return Err(Stop::Graph(GraphError::Refused(
                        "refusing to follow a link to another host than [microsoft] graph_url (an @odata.deltaLink)".into(),
                    )))
                }
                (None, Some(delta)) => return Ok(Some(delta)),
                (None, None) => {
                    return Err(Stop::Graph(GraphError::Invalid(
                        "a delta page had neither @odata.nextLink nor @odata.deltaLink".into(),
                    )))
                }
            }
        }
    }

    /// A stored link was refused: the mid-round link falls back to the last deltaLink, an
    /// expired deltaLink to a date filter from the last sync time.
    fn fall_back(&mut self, origin: Origin, e: &GraphError) -> (String, Origin) {
        if origin == Origin::InProgress {
            tracing::warn!(team = %self.place.team, channel = %self.place.channel, error = %e, "Saved mid-round link refused; resuming from the last completed round.");
            self.cursor.in_progress = None;
            self.resume_ack = None;
            if let Some(delta) = &self.cursor.delta_link {
                return (delta.clone(), Origin::Delta);
            }
            return (self.filtered_link(self.crawl.first_since), Origin::Fresh);
        }
        self.counts.cursor_resets += 1;
        let since = self
            .cursor
            .last_sync
            .map(|t| t - RESYNC_OVERLAP)
            .unwrap_or(self.crawl.first_since);
        tracing::warn!(
            team = %self.place.team,
            channel = %self.place.channel,
            error = %e,
            since = %graph_time(since),
            "Delta cursor expired; resyncing the channel from its last sync time."
        );
        (self.filtered_link(since), Origin::Fresh)
    }

    pub(super) async fn get<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, Stop> {
        self.crawl
            .graph
            .get(url, Scope::Channel(&self.place.channel))
            .await
            .map_err(Stop::Graph)
    }

    /// The users map; the first call waits for it (it loads while the first pages are
    /// fetched). `Budget` when loading failed: the run is aborting.
    pub(super) async fn directory(&mut self) -> Result<&'a Directory, Stop> {
        if let Some(dir) = self.directory {
            return Ok(dir);
        }
        let crawl: &'a Crawl = self.crawl;
        let dir = crawl.directory().await.ok_or(Stop::Budget)?;
        self.directory = Some(dir);
        Ok(dir)
    }

    async fn root(&mut self, root: &ChatMessage) -> Result<(), Stop> {
        let dir = self.directory().await?;
        self.message(root, &root.id, false, dir);
        if !self.crawl.include_replies {
            return Ok(());
        }
        // A reply that changed after its thread left the sweep window, without its root
        // coming back in delta, was never read; delta showing the root now is the only
        // chance (README, "Late replies"). Its time may be older than the last sync (another
        // change in the channel moved it on), so replies of a thread the previous round's
        // sweep no longer reached are forwarded whatever their time (at least once).
        let window = chrono::Duration::from_std(self.crawl.reply_window)
            .unwrap_or(chrono::Duration::days(14));
        self.stale_thread = self.incremental
            && self
                .cursor
                .synced_at
                .zip(root.created())
                .is_some_and(|(synced, created)| created < synced - window);
        let replies = self.replies(root, false).await;
        self.stale_thread = false;
        replies
    }

    /// The replies of `root`: inline ones, then `replies@odata.nextLink` pages.
    pub(super) async fn replies(&mut self, root: &ChatMessage, sweep: bool) -> Result<(), Stop> {
        let dir = self.directory().await?;
        for reply in &root.replies {
            self.message(reply, &root.id, sweep, dir);
        }
        let mut next = root.replies_next_link.clone();
        // Graph cuts inline replies at 1 000 without a nextLink at times: when the count
        // says more exist, page `/replies` from the start and skip the inline ones.
        let cut = next.is_none() && root.replies_count.is_some_and(|n| n > root.replies.len());
        let inline: HashSet<&str> = if cut {
            next = Some(self.crawl.graph.endpoints.replies(
                &self.place.team,
                &self.place.channel,
                &root.id,
            ));
            root.replies.iter().map(|r| r.id.as_str()).collect()
        } else {
            HashSet::new()
        };
        while let Some(url) = next {
            let page: Page<ChatMessage> = self.get(&url).await?;
            for reply in page
                .value
                .iter()
                .filter(|r| !inline.contains(r.id.as_str()))
            {
                self.message(reply, &root.id, sweep, dir);
            }
            next = page.next_link;
        }
        Ok(())
    }

    /// Decides one message. In the sweep, only replies not seen yet this run count.
    pub(super) fn message(
        &mut self,
        msg: &ChatMessage,
        thread: &str,
        sweep: bool,
        directory: &Directory,
    ) {
        let is_reply = msg.id != thread;
        let reply_key = is_reply.then(|| (thread.to_owned(), msg.id.clone()));
        if sweep
            && reply_key
                .as_ref()
                .is_some_and(|k| self.handled_replies.contains(k))
        {
            return;
        }
        if let Some(range) = self.range {
            let created = msg.created();
            if !created.is_some_and(|c| range.contains(c)) {
                return;
            }
        }
        let modified = msg.modified();
        // Delta re-sends a root whose replies changed; what did not change since the last
        // round is not sent again. Delta only shows changed roots, so there a timestamp
        // equal to the last sync is resent (at least once). The sweep re-reads every recent
        // thread each run: there equal means "the newest one we sent", or it would be sent
        // again by every run.
        let stale = is_reply && !sweep && self.stale_thread;
        if let (Some(since), Some(m), false) = (self.since, modified, stale) {
            if m < since || (sweep && m == since) {
                if !sweep {
                    self.counts.seen += 1;
                    self.counts.unchanged += 1;
                }
                return;
            }
        }
        self.counts.seen += 1;
        self.newest = max_time(self.newest, modified);
        if let Some(key) = reply_key.filter(|_| self.incremental && self.range.is_none()) {
            self.handled_replies.insert(key);
        }
        let place = Place {
            team: &self.place.team,
            channel: &self.place.channel,
            thread,
        };
        match self
            .crawl
            .transformer
            .message(&place, msg, directory, self.incremental)
        {
            Outcome::Forward(doc) => {
                match doc.op {
                    Op::Upsert => self.counts.forwarded += 1,
                    Op::Delete => self.counts.deletes += 1,
                }
                if sweep {
                    self.counts.late_replies += 1;
                }
                self.page_docs.push(doc.id.clone());
                self.batch.push(doc);
            }
            Outcome::Skip(why) => self.counts.skip(why),
        }
    }

    /// The sync time to store: the newest `lastModifiedDateTime` handled, but never past the
    /// start of the round. A change that lands during the round, in a page or thread already
    /// read, is older than what the round reads later; a mark past it would make the next
    /// run take it for one already sent. Changes after the start are read again next run
    /// (at least once). Graph's times are whole milliseconds: the cap is the millisecond
    /// before the one the round began in, or a change later in that millisecond would look
    /// older. Graph's clock against ours: a skew as large as the time between two such
    /// changes could still hide one.
    pub(super) fn sync_mark(&self) -> Option<DateTime<Utc>> {
        let cap = DateTime::from_timestamp_millis(self.started.timestamp_millis() - 1)
            .unwrap_or(self.started);
        self.newest.map(|n| n.min(cap))
    }

    /// Maps an early stop to the channel's ending, recording aborts on the crawl.
    async fn conclude(&self, stop: Stop) -> (Ending, Option<Failure>) {
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

/// Graph's ways of saying a stored delta or skip token is no longer valid.
fn is_expired_cursor(e: &GraphError) -> bool {
    let GraphError::Status {
        status,
        code,
        message,
    } = e
    else {
        return false;
    };
    let code = code.to_ascii_lowercase();
    let message = message.to_ascii_lowercase();
    *status == 410
        || ["syncstatenotfound", "resyncrequired", "syncstateinvalid"].contains(&code.as_str())
        || (*status == 400 && (message.contains("deltatoken") || message.contains("skiptoken")))
}

fn max_time(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Graph's timestamp form: `2021-01-22T21:39:42.080Z`.
pub fn graph_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, code: &str, message: &str) -> GraphError {
        GraphError::Status {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    #[test]
    fn recognises_every_expired_cursor_answer() {
        assert!(is_expired_cursor(&status(410, "Gone", "")));
        assert!(is_expired_cursor(&status(400, "syncStateNotFound", "")));
        assert!(is_expired_cursor(&status(400, "resyncRequired", "")));
        assert!(is_expired_cursor(&status(
            400,
            "BadRequest",
            "Parameter 'DeltaToken' not supported for this request."
        )));
        assert!(!is_expired_cursor(&status(
            400,
            "BadRequest",
            "Invalid filter clause"
        )));
        assert!(!is_expired_cursor(&status(403, "Forbidden", "")));
        assert!(!is_expired_cursor(&GraphError::Unavailable("x".into())));
    }
}
