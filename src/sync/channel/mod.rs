//! One channel's crawl. [`crawl`] picks the pass — delta plus the reply sweep
//! ([`delta`], [`sweep`]) or a backfill through the message list ([`backfill`]) — and maps
//! how it ended to the channel's [`ChannelRun`]. What every pass shares lives here: the
//! per-channel state ([`ChannelCrawl`]) and the decision for one message; delivery and the
//! resume point are in [`outbox`].
//!
//! Keys (issue 10): a message id is unique only within its thread, a thread id only within
//! its channel, a channel id only within its team. Documents are keyed by tenant, team,
//! channel, thread and message ([`crate::transform::document_id`]); this channel's state is
//! stored under (team, channel); the replies the sweep must not repeat are keyed by
//! (thread, message) within this channel.

mod backfill;
mod delta;
mod forget;
mod outbox;
mod sweep;

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::crawl::{Crawl, Mode};
use super::report::{ChannelCounts, Ending, Failure, FailureKind};
use crate::graph::models::{ChatMessage, Page};
use crate::graph::{GraphError, RawPage};
use crate::http::Scope;
use crate::ingest::IngestError;
use crate::state::{ChannelCursor, ChannelKey};
use crate::transform::{Directory, Op, Outcome, Place};
use outbox::{Ledger, Outbox};

/// How one channel's crawl went.
pub struct ChannelRun {
    pub counts: ChannelCounts,
    pub ending: Ending,
    pub failure: Option<Failure>,
}

impl ChannelRun {
    /// A channel the run stopped before it started.
    pub fn stopped() -> Self {
        ChannelRun {
            counts: ChannelCounts::default(),
            ending: Ending::Stopped,
            failure: None,
        }
    }
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

/// Why a crawl stopped early.
enum Stop {
    Graph(GraphError),
    Ingest(IngestError),
    /// A signal, the deadline, or another channel's abort.
    Stopping,
    /// Ends the whole run (the state store failed, sign-in failed).
    Fatal(crate::exit::Fatal),
}

impl Stop {
    /// The run is stopping (signal, deadline, abort): not this channel's failure.
    fn is_stopping(&self) -> bool {
        matches!(
            self,
            Stop::Stopping
                | Stop::Graph(GraphError::Cancelled)
                | Stop::Ingest(IngestError::Cancelled)
        )
    }
}

/// Which pass reads a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Delta: changed roots and their replies.
    Delta,
    /// The reply sweep: replies of recent threads, whether or not delta showed them.
    Sweep,
    /// Backfill: the message list, filtered by creation date.
    Backfill,
    /// `forget`: the message list, read for one person's documents.
    Forget,
}

/// What an earlier round sent, and the newest change seen in this one (cursor-after-ack).
#[derive(Debug)]
struct Watermark {
    /// Messages modified before this were handled by an earlier round.
    since: Option<DateTime<Utc>>,
    /// Replies modified before this were covered by an earlier sweep (`since`, unless
    /// `[crawl] reply_sweep_every` skipped sweeps since).
    sweep_since: Option<DateTime<Utc>>,
    /// Newest `lastModifiedDateTime` handled so far: the next round's `since`.
    newest: Option<DateTime<Utc>>,
    /// The channel has completed a round before (deletes are then forwarded).
    incremental: bool,
    /// When this round began reading the channel (a resumed round: when the stopped run
    /// began it). The stored sync time never passes it: see [`Watermark::sync_mark`].
    started: DateTime<Utc>,
}

impl Watermark {
    /// The sync time to store: the newest `lastModifiedDateTime` handled, but never past the
    /// start of the round. A change that lands during the round, in a page or thread already
    /// read, is older than what the round reads later; a mark past it would make the next
    /// run take it for one already sent. Changes after the start are read again next run
    /// (at least once). Graph's times are whole milliseconds: the cap is the millisecond
    /// before the one the round began in. Graph's clock against ours: a skew as large as the
    /// time between two such changes could still hide one.
    fn sync_mark(&self) -> Option<DateTime<Utc>> {
        let cap = DateTime::from_timestamp_millis(self.started.timestamp_millis() - 1)
            .unwrap_or(self.started);
        self.newest.map(|n| n.min(cap))
    }
}

/// One channel's crawl state. Field by field:
struct ChannelCrawl<'a> {
    crawl: &'a Crawl,
    place: &'a ChannelKey,
    /// The users map, fetched from the run on the first message that needs it.
    directory: Option<&'a Directory>,
    /// The stored cursor, rewritten as batches are acknowledged.
    cursor: ChannelCursor,
    mark: Watermark,
    /// The page being processed: the resume point once its documents are acknowledged.
    ledger: Ledger,
    /// Documents waiting for the ingest.
    outbox: Outbox,
    /// Replies decided in this run, by (thread id, message id): the sweep skips them, so
    /// nothing is sent or counted twice. Kept only on incremental rounds (the only ones a
    /// sweep follows).
    handled_replies: HashSet<(String, String)>,
    /// Delta shows a thread the last sweep no longer reached: its replies are forwarded
    /// whatever their time (see [`ChannelCrawl::root`]).
    stale_thread: bool,
    /// Graph requests this channel made so far.
    requests: u64,
    /// The requests it took last run (0 when unknown): how long the limiter expects it.
    expected: u32,
    counts: ChannelCounts,
}

/// Crawls one channel and says how it ended; `expected`: the requests it took last run
/// (0 when unknown).
pub async fn crawl(crawl: &Crawl, place: &ChannelKey, expected: u32) -> ChannelRun {
    let mut channel = ChannelCrawl {
        crawl,
        place,
        directory: None,
        cursor: ChannelCursor::default(),
        mark: Watermark {
            since: None,
            sweep_since: None,
            newest: None,
            incremental: false,
            started: chrono::Utc::now(),
        },
        ledger: Ledger::default(),
        outbox: Outbox::new(crawl.plan.batch_size),
        handled_replies: HashSet::new(),
        stale_thread: false,
        requests: 0,
        expected,
        counts: ChannelCounts::default(),
    };
    let outcome = match crawl.plan.mode {
        Mode::Backfill { range, restart } => channel.backfill(range, restart).await,
        Mode::Forget { .. } => channel.forget().await,
        Mode::Incremental => channel.incremental().await,
    };
    let (ending, failure) = match outcome {
        Ok(()) => (Ending::Done, None),
        Err(stop) => {
            if stop.is_stopping() {
                channel.wind_down().await;
            }
            channel.conclude(stop)
        }
    };
    ChannelRun {
        counts: channel.counts,
        ending,
        failure,
    }
}

impl<'a> ChannelCrawl<'a> {
    /// GETs `url` on this channel's rate budget, undecoded ([`RawPage::decode`]).
    async fn get_raw(&mut self, url: &str) -> Result<RawPage, Stop> {
        self.requests += 1;
        let scope = self.scope();
        self.crawl
            .services
            .graph
            .get_raw(url, scope)
            .await
            .map_err(Stop::Graph)
    }

    /// The rate scope of this channel's requests.
    fn scope(&self) -> Scope<'a> {
        let made = u32::try_from(self.requests).unwrap_or(u32::MAX);
        Scope::Channel {
            team: &self.place.team,
            channel: &self.place.channel,
            left: self.expected.saturating_sub(made),
        }
    }

    /// A page of this channel (delta, list), undecoded, with its hold on memory: the caller
    /// decodes it ([`RawPage::decode`]) and keeps it until the page is processed.
    async fn get_page(&mut self, url: &str) -> Result<RawPage, Stop> {
        self.requests += 1;
        let scope = self.scope();
        self.crawl
            .services
            .graph
            .get_page(url, scope)
            .await
            .map_err(Stop::Graph)
    }

    /// The users map; the first call waits for it (it loads while the first pages are
    /// fetched). `Stopping` when loading failed: the run is aborting.
    async fn directory(&mut self) -> Result<&'a Directory, Stop> {
        if let Some(dir) = self.directory {
            return Ok(dir);
        }
        let crawl: &'a Crawl = self.crawl;
        let dir = crawl.run.directory().await.ok_or(Stop::Stopping)?;
        self.directory = Some(dir);
        Ok(dir)
    }

    /// A root and its replies, as delta or the backfill shows them.
    async fn root(&mut self, root: &ChatMessage<'_>, pass: Pass) -> Result<(), Stop> {
        let dir = self.directory().await?;
        self.message(root, &root.id, pass, dir);
        if !self.crawl.plan.include_replies {
            return Ok(());
        }
        // A reply that changed after its thread left the sweep window, without its root
        // coming back in delta, was never read; delta showing the root now is the only
        // chance (README, "Late replies"). Its time may be older than the last sync (another
        // change in the channel moved it on), so replies of a thread the last sweep no
        // longer reached are forwarded whatever their time (at least once).
        let window = chrono::Duration::from_std(self.crawl.plan.reply_window)
            .unwrap_or(chrono::Duration::MAX);
        let swept = self.cursor.swept_at.or(self.cursor.synced_at);
        self.stale_thread = pass == Pass::Delta
            && self.mark.incremental
            && swept.zip(root.created()).is_some_and(|(swept, created)| {
                swept
                    .checked_sub_signed(window)
                    .is_some_and(|reach| created < reach)
            });
        let replies = self.replies(root, pass).await;
        self.stale_thread = false;
        replies
    }

    /// The replies of `root`: inline ones, then `replies@odata.nextLink` pages. Graph has
    /// been seen to stop the inline replies at 1 000 without a nextLink: when
    /// `replies@odata.count` says there are more, the reply list is paged here.
    async fn replies(&mut self, root: &ChatMessage<'_>, pass: Pass) -> Result<(), Stop> {
        let dir = self.directory().await?;
        for reply in &root.replies {
            self.message(reply, &root.id, pass, dir);
        }
        let mut next = root.replies_next_link.clone();
        let missing = root.replies_count.is_some_and(|n| n > root.replies.len());
        let mut inline: Option<HashSet<&str>> = None;
        if next.is_none() && missing {
            let e = &self.crawl.services.graph.endpoints;
            next = Some(e.replies(&self.place.team, &self.place.channel, &root.id));
            inline = Some(root.replies.iter().map(|r| &*r.id).collect());
        }
        while let Some(url) = next {
            let raw = self.get_raw(&url).await?;
            let page: Page<ChatMessage> = raw.decode().map_err(Stop::Graph)?;
            for reply in &page.value {
                if !inline
                    .as_ref()
                    .is_some_and(|seen| seen.contains(&*reply.id))
                {
                    self.message(reply, &root.id, pass, dir);
                }
            }
            next = page.next_link;
        }
        Ok(())
    }

    /// Decides one message of `thread` and queues its document, if it gets one.
    fn message(&mut self, msg: &ChatMessage<'_>, thread: &str, pass: Pass, directory: &Directory) {
        if let (Pass::Forget, Mode::Forget { range, .. }) = (pass, self.crawl.plan.mode) {
            return self.forget_message(msg, thread, range, directory);
        }
        let reply_key = (msg.id != thread).then(|| (thread.to_owned(), msg.id.to_string()));
        let handled = |k: &(String, String)| self.handled_replies.contains(k);
        if pass == Pass::Sweep && reply_key.as_ref().is_some_and(handled) {
            return;
        }
        if let Mode::Backfill { range, .. } = self.crawl.plan.mode {
            if !msg.created().is_some_and(|c| range.contains(c)) {
                return;
            }
        }
        let modified = msg.modified();
        // Delta re-sends a root whose replies changed; what did not change since the last
        // round is not sent again. Delta only shows changed roots, so there a timestamp
        // equal to the last sync is resent (at least once). The sweep re-reads every recent
        // thread each run: there equal means "the newest one we sent", or it would be sent
        // again by every run.
        let since = match pass {
            Pass::Sweep => self.mark.sweep_since,
            _ => self.mark.since,
        };
        let stale = reply_key.is_some() && self.stale_thread;
        if let (Some(since), Some(m), false) = (since, modified, stale) {
            if m < since || (pass == Pass::Sweep && m == since) {
                if pass != Pass::Sweep {
                    self.counts.messages_seen += 1;
                    self.counts.unchanged += 1;
                }
                return;
            }
        }
        self.counts.messages_seen += 1;
        self.mark.newest = self.mark.newest.max(modified);
        if let Some(key) = reply_key.filter(|_| self.mark.incremental && pass != Pass::Backfill) {
            self.handled_replies.insert(key);
        }
        let place = Place {
            team: &self.place.team,
            channel: &self.place.channel,
            thread,
        };
        let decided =
            self.crawl
                .services
                .transformer
                .message(&place, msg, directory, self.mark.incremental);
        match decided {
            Outcome::Forward(doc) => {
                match doc.op {
                    Op::Upsert => self.counts.forwarded += 1,
                    Op::Delete => self.counts.deletes += 1,
                }
                if pass == Pass::Sweep {
                    self.counts.late_replies += 1;
                }
                self.ledger.ids.push(doc.id.clone());
                self.outbox.push(doc);
            }
            Outcome::Skip(why) => self.counts.skip(why),
        }
    }

    /// Maps an early stop to the channel's ending, recording aborts on the run.
    fn conclude(&self, stop: Stop) -> (Ending, Option<Failure>) {
        if stop.is_stopping() {
            return (Ending::Stopped, None);
        }
        let (kind, reason) = match stop {
            Stop::Stopping => return (Ending::Stopped, None),
            Stop::Graph(GraphError::Auth(f)) | Stop::Fatal(f) => {
                self.crawl.run.abort(f);
                return (Ending::Stopped, None);
            }
            Stop::Graph(e) => (graph_failure(&e), scrubbed(&e)),
            Stop::Ingest(e) => (ingest_failure(&e), scrubbed(&e)),
        };
        tracing::warn!(
            team = %self.place.team,
            channel = %self.place.channel,
            kind = ?kind,
            reason = %reason,
            "Channel failed; its cursor stays where it was and the next run retries it."
        );
        let failure = Failure {
            team: self.place.team.clone(),
            channel: Some(self.place.channel.clone()),
            kind,
            reason,
        };
        (Ending::Failed, Some(failure))
    }
}

/// A failure reason as it may be logged and stored: one line, no live secret.
fn scrubbed(e: &dyn std::fmt::Display) -> String {
    crate::redact::printable(&crate::redact::scrub(&e.to_string()), 500)
}

fn graph_failure(e: &GraphError) -> FailureKind {
    match e {
        GraphError::Status { .. } => FailureKind::GraphRefused,
        GraphError::Unavailable { .. } => FailureKind::GraphUnavailable,
        _ => FailureKind::GraphInvalid,
    }
}

fn ingest_failure(e: &IngestError) -> FailureKind {
    match e {
        IngestError::Rejected { .. } => FailureKind::IngestRejected,
        _ => FailureKind::IngestUnavailable,
    }
}
