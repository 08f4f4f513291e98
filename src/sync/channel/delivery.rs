//! Delivery within a channel's crawl: batches of `batch_size` POSTed in order, the resume
//! point saved after each acknowledged batch (the page being processed and a digest of
//! its acknowledged documents), the acknowledged prefix skipped on resume, the final
//! cursor written only after everything before it was accepted, and the time budget.

use chrono::Utc;

use super::{Progress, Stop};
use crate::ingest::IngestError;
use crate::state::{ChannelCursor, PageAck};
use crate::transform::Op;

impl Progress<'_> {
    pub(in crate::sync) async fn flush_full_batches(&mut self) -> Result<(), Stop> {
        while self.batch.len() >= self.crawl.batch_size {
            self.send(self.crawl.batch_size).await?;
        }
        Ok(())
    }

    /// Sends everything pending, `batch_size` documents a POST.
    pub(in crate::sync) async fn flush_batch(&mut self) -> Result<(), Stop> {
        self.flush_full_batches().await?;
        self.send(self.batch.len()).await
    }

    /// Sends the oldest `n` pending documents; once acknowledged, the current page (and
    /// how much of it the ingest has) is the resume point.
    pub(in crate::sync) async fn send(&mut self, n: usize) -> Result<(), Stop> {
        if n == 0 {
            return Ok(());
        }
        if self.crawl.ingest_down() {
            return Err(Stop::Ingest(IngestError::Unavailable(
                "the ingest failed for another channel in this run".into(),
            )));
        }
        let sent = self.crawl.output.send(&self.batch[..n]).await;
        if let Err(IngestError::Unavailable(_)) = &sent {
            self.crawl.mark_ingest_down();
        }
        sent.map_err(Stop::Ingest)?;
        self.crawl.progress.add_forwarded(n as u64);
        self.batch.drain(..n);
        self.save_in_progress(self.page_url.clone())
    }

    /// A resumed run refetched the page it stopped in: drop the documents the ingest
    /// already acknowledged, if the page still begins with exactly those.
    pub(in crate::sync) fn skip_acked_prefix(&mut self) {
        let Some(ack) = self.resume_ack.take() else {
            return;
        };
        // The batch holds only this page's documents: it is the run's first page.
        if ack.count > self.batch.len() || page_digest(&self.page_docs[..ack.count]) != ack.digest {
            tracing::info!(team = %self.place.team, channel = %self.place.channel, "The resumed page changed; resending all of it.");
            return;
        }
        for doc in self.batch.drain(..ack.count) {
            match doc.op {
                Op::Upsert => self.counts.forwarded -= 1,
                Op::Delete => self.counts.deletes -= 1,
            }
        }
    }

    pub(in crate::sync) fn save_in_progress(&mut self, link: Option<String>) -> Result<(), Stop> {
        if self.crawl.output.is_dry_run() || link.is_none() || self.range.is_some() {
            return Ok(());
        }
        let resuming_here = link == self.page_url;
        let acked = if resuming_here {
            self.page_docs.len().saturating_sub(self.batch.len())
        } else {
            0
        };
        self.cursor.in_progress_acked = (acked > 0).then(|| PageAck {
            count: acked,
            digest: page_digest(&self.page_docs[..acked]),
        });
        self.cursor.in_progress = link;
        self.cursor.round_newest = self.newest;
        self.cursor.round_started = Some(self.started);
        // Flushed, so a kill resends at most a page (at-least-once either way).
        self.crawl
            .store
            .set_channel(&self.place.team, &self.place.channel, &self.cursor)
            .map_err(Stop::Fatal)
    }

    /// Sends what is left, then saves the cursor: only now is every document of the round
    /// acknowledged.
    pub(in crate::sync) async fn finish(&mut self, delta: String) -> Result<(), Stop> {
        self.flush_batch().await?;
        if self.crawl.output.is_dry_run() {
            return Ok(());
        }
        let cursor = ChannelCursor {
            delta_link: Some(delta),
            last_sync: self.sync_mark(),
            synced_at: Some(Utc::now()),
            in_progress: None,
            in_progress_acked: None,
            round_newest: None,
            round_started: None,
        };
        self.crawl
            .store
            .set_channel(&self.place.team, &self.place.channel, &cursor)
            .map_err(Stop::Fatal)
    }

    /// Before fetching the next page: past the time budget, deliver what is pending and
    /// save the resume point — `next_delta` when the next page is a delta page, so the
    /// next run starts exactly there, else the current delta page.
    pub(in crate::sync) async fn check_budget(
        &mut self,
        next_delta: Option<&str>,
    ) -> Result<(), Stop> {
        if !self.crawl.out_of_time() {
            return Ok(());
        }
        if !self.crawl.shutdown_requested() {
            self.flush_batch().await?;
        }
        if self.batch.is_empty() {
            let resume = next_delta
                .map(str::to_string)
                .or_else(|| self.page_url.clone());
            self.save_in_progress(resume)?;
        }
        Err(Stop::Budget)
    }
}

/// Digest of a page's acknowledged document ids (which are themselves hashes).
fn page_digest(ids: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.as_bytes());
        h.update([0u8]);
    }
    crate::digest::hex(&h.finalize()[..16])
}
