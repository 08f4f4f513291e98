//! Delivery within a channel's crawl: documents POSTed in order, `batch_size` at a time;
//! after each acknowledged batch the resume point is saved (the page being processed and a
//! digest of its acknowledged documents) and is on disk before the next batch goes, so a
//! kill resends at most the batch it interrupted; the acknowledged prefix is skipped on
//! resume; the final cursor is written only after everything before it was accepted.
//!
//! Invariant the resume point relies on: batches go out only right after a page added its
//! documents, or when the round ends or winds down. So after a successful send, what is
//! left in the outbox always belongs to the page being processed.

use chrono::Utc;

use super::{ChannelCrawl, Stop};
use crate::ingest::IngestError;
use crate::shutdown::Signal;
use crate::state::{ChannelCursor, PageAck, Written};
use crate::transform::{Document, Op};

/// Documents waiting for the ingest, oldest first.
pub(super) struct Outbox {
    docs: Vec<Document>,
    batch_size: usize,
    /// The last save of this channel's progress, until it is known to be on disk.
    unsynced: Option<Written>,
}

impl Outbox {
    pub fn new(batch_size: usize) -> Self {
        Outbox {
            docs: Vec::with_capacity(batch_size),
            batch_size: batch_size.max(1),
            unsynced: None,
        }
    }

    pub fn push(&mut self, doc: Document) {
        self.docs.push(doc);
    }

    /// A save the next POST waits for (see [`crate::state::commit`]).
    pub fn saved(&mut self, written: Written) {
        self.unsynced = Some(written);
    }
}

/// The page being processed (or about to be fetched) and its documents: where a killed run
/// resumes once they are acknowledged.
#[derive(Default)]
pub(super) struct Ledger {
    /// The page's URL; `None` before the first page.
    pub url: Option<String>,
    /// Ids of the documents made from this page, in order.
    pub ids: Vec<String>,
    /// On a resumed run: the prefix of the first page the ingest already has.
    pub resume_ack: Option<PageAck>,
}

impl Ledger {
    /// From now on the resume point is `url`, which has produced no documents yet.
    pub fn begin(&mut self, url: &str) {
        self.url = Some(url.to_owned());
        self.ids.clear();
    }
}

/// Documents of one page, in batches, past which they are sent before the page is done.
const HEAVY_BATCHES: usize = 4;

impl ChannelCrawl<'_> {
    pub(super) async fn flush_full_batches(&mut self) -> Result<(), Stop> {
        // On the page a killed run resumes in, hold back until the acknowledged prefix is
        // known to be unchanged and dropped.
        if let Some(ack) = &self.ledger.resume_ack {
            if self.ledger.ids.len() < ack.count {
                return Ok(());
            }
            self.skip_acked_prefix();
        }
        while self.outbox.docs.len() >= self.outbox.batch_size {
            self.send(self.outbox.batch_size).await?;
        }
        Ok(())
    }

    /// Within a page: sends full batches only once documents pile up past
    /// [`HEAVY_BATCHES`] batches (a page of thousand-reply threads). An ordinary page is
    /// turned into documents whole, its body dropped ([`RawPage::into_place`]), and only
    /// then sent: its messages borrow from the body, which would otherwise wait for the
    /// ingest with them.
    ///
    /// [`RawPage::into_place`]: crate::graph::RawPage::into_place
    pub(super) async fn flush_if_heavy(&mut self) -> Result<(), Stop> {
        if self.outbox.docs.len() >= self.outbox.batch_size.saturating_mul(HEAVY_BATCHES) {
            self.flush_full_batches().await?;
        }
        Ok(())
    }

    /// Sends everything pending, `batch_size` documents a POST.
    pub(super) async fn flush(&mut self) -> Result<(), Stop> {
        self.flush_full_batches().await?;
        self.send(self.outbox.docs.len()).await
    }

    /// Sends the oldest `n` pending documents; once they are acknowledged, the current page
    /// (and how much of it the ingest has) is the resume point.
    async fn send(&mut self, n: usize) -> Result<(), Stop> {
        if n == 0 {
            return Ok(());
        }
        let run = &self.crawl.run;
        if run.ingest_down() {
            return Err(Stop::Ingest(IngestError::DownElsewhere));
        }
        if let Some(written) = self.outbox.unsynced.take() {
            let store = &self.crawl.services.store;
            store.durable(written).await.map_err(Stop::Fatal)?;
        }
        let sent = self
            .crawl
            .services
            .output
            .send(&self.outbox.docs[..n])
            .await;
        if let Err(IngestError::Unavailable { .. } | IngestError::Redirected { .. }) = &sent {
            run.mark_ingest_down();
        }
        sent.map_err(Stop::Ingest)?;
        self.crawl.services.progress.add_forwarded(n as u64);
        self.outbox.docs.drain(..n);
        self.save_resume_point()
    }

    /// A resumed run refetched the page it stopped in: drop the documents the ingest
    /// already acknowledged, if the page still begins with exactly those.
    pub(super) fn skip_acked_prefix(&mut self) {
        let Some(ack) = self.ledger.resume_ack.take() else {
            return;
        };
        let docs = &self.outbox.docs;
        // The outbox holds only this page's documents: it is the run's first page.
        if ack.count > docs.len() || page_digest(&self.ledger.ids[..ack.count]) != ack.digest {
            tracing::info!(team = %self.place.team, channel = %self.place.channel, "The resumed page changed; resending all of it.");
            return;
        }
        for doc in self.outbox.docs.drain(..ack.count) {
            match doc.op {
                Op::Upsert => self.counts.forwarded -= 1,
                Op::Delete => self.counts.deletes -= 1,
            }
        }
    }

    /// Saves (and flushes) where a killed run resumes: the ledger's page and the digest of
    /// its acknowledged documents. Only links to the Graph host are saved, so a tampered
    /// answer cannot leave a cursor that fails every later run.
    fn save_resume_point(&mut self) -> Result<(), Stop> {
        let incremental = matches!(self.crawl.plan.mode, super::Mode::Incremental);
        let Some(url) = self.ledger.url.clone().filter(|_| incremental) else {
            return Ok(());
        };
        if self.crawl.services.output.is_dry_run()
            || !self.crawl.services.graph.endpoints.owns(&url)
        {
            return Ok(());
        }
        let acked = self.ledger.ids.len().saturating_sub(self.outbox.docs.len());
        self.cursor.in_progress_acked = (acked > 0).then(|| PageAck {
            count: acked,
            digest: page_digest(&self.ledger.ids[..acked]),
        });
        self.cursor.in_progress = Some(url);
        self.cursor.round_newest = self.mark.newest;
        self.cursor.round_started = Some(self.mark.started);
        // On disk before the next batch goes (`send`), so a kill resends at most the batch
        // it interrupted (at-least-once either way).
        let store = &self.crawl.services.store;
        let written = store
            .save_channel(self.place, &self.cursor)
            .map_err(Stop::Fatal)?;
        self.outbox.saved(written);
        Ok(())
    }

    /// Sends what is left, then saves the cursor: only now is every document of the round
    /// acknowledged. `delta` is the round's deltaLink (`None`: Graph gave none, as for an
    /// empty channel; the next round starts from the date filter again).
    pub(super) async fn finish(&mut self, delta: Option<String>, swept: bool) -> Result<(), Stop> {
        if !self.outbox.docs.is_empty() {
            // What is left of the last page waits for the ingest in a page's place, so
            // the documents waiting for it stay bounded by `concurrency`.
            let graph = &self.crawl.services.graph;
            // Ahead of every page still to be fetched: this one frees memory.
            let _place = graph.page_place(u32::MAX).await.map_err(Stop::Graph)?;
            self.flush().await?;
        }
        if self.crawl.services.output.is_dry_run() {
            return Ok(());
        }
        let now = Utc::now();
        let (swept_through, swept_at) = if swept {
            (self.mark.sync_mark(), Some(now))
        } else {
            (self.mark.sweep_since, self.cursor.swept_at)
        };
        let cursor = ChannelCursor {
            delta_link: delta,
            last_sync: self.mark.sync_mark(),
            synced_at: Some(now),
            in_progress: None,
            in_progress_acked: None,
            round_newest: None,
            round_started: None,
            swept_through,
            swept_at,
            requests: Some(u32::try_from(self.requests).unwrap_or(u32::MAX)),
        };
        // On disk with the next flush; a kill before that resends the last batch only.
        let store = &self.crawl.services.store;
        let written = store
            .save_channel(self.place, &cursor)
            .map_err(Stop::Fatal)?;
        self.outbox.saved(written);
        Ok(())
    }

    /// Stops before the next page when the run is stopping.
    pub(super) fn check_stop(&self) -> Result<(), Stop> {
        if self.crawl.run.stopping() {
            return Err(Stop::Stopping);
        }
        Ok(())
    }

    /// The time budget ran out: deliver what is pending (each POST gets the shutdown
    /// grace) and save the resume point, so the next run starts exactly here. A signal
    /// abandons pending documents instead (they are resent): the exit must be prompt.
    pub(super) async fn wind_down(&mut self) {
        if self.crawl.run.shutdown.signal() != Some(Signal::Deadline)
            || self.crawl.run.ingest_down()
        {
            return;
        }
        if self.flush().await.is_ok() {
            let _ = self.save_resume_point();
        }
    }
}

/// Digest of a page's acknowledged document ids (which are themselves hashes).
fn page_digest(ids: &[String]) -> String {
    crate::digest::short(ids.iter().map(String::as_bytes))
}
