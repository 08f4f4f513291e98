//! The incremental round: follow delta from where the last run stopped, then sweep recent
//! threads for late replies, then save the new `@odata.deltaLink` — only after the ingest
//! accepted every batch before it (cursor-after-ack). Pages stream through: one page and
//! one batch are held at a time.
//!
//! Where a round starts, in order: the saved mid-round link (a killed run resumes near
//! where it stopped), the last deltaLink, or — first run — `crawl.initial_lookback` back.
//! A saved link that Graph refuses (expired skiptoken, 410, `syncStateNotFound`, …) falls
//! back one step; an expired deltaLink restarts from the last sync time with a date
//! filter, never from scratch and never silently.

use chrono::{DateTime, Utc};

use super::{ChannelCrawl, Pass, Stop};
use crate::graph::models::{ChatMessage, Page};
use crate::graph::{time, GraphError, Links};

/// Overlap when restarting from a sync time, for clock skew between Graph's replicas.
const RESYNC_OVERLAP: chrono::Duration = chrono::Duration::minutes(5);

/// Where the URL of the next request came from: stored links may have expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A date-filtered first request built here.
    Fresh,
    /// The saved mid-round link.
    InProgress,
    /// The last round's deltaLink.
    Delta,
    /// A nextLink Graph just gave.
    Next,
}

impl ChannelCrawl<'_> {
    pub(super) async fn incremental(&mut self) -> Result<(), Stop> {
        let stored = self
            .crawl
            .services
            .store
            .channel(self.place)
            .map_err(Stop::Fatal)?;
        self.cursor = stored.unwrap_or_default();
        self.mark.incremental = self.cursor.synced_at.is_some() || self.cursor.delta_link.is_some();
        self.mark.since = self.cursor.last_sync;
        self.mark.sweep_since = self.cursor.swept_through.or(self.cursor.last_sync);
        self.mark.newest = self.cursor.last_sync.max(self.cursor.round_newest);
        // A resumed round began in the stopped run: its sync time stops at that start (a
        // cursor saved before `round_started` existed: at what the stopped run had seen).
        let began = self.cursor.round_started.or(self.cursor.round_newest);
        self.mark.started = began.map_or(self.mark.started, |b| b.min(self.mark.started));
        self.ledger.resume_ack = self.cursor.in_progress_acked.take();
        let delta = self.delta_round().await?;
        self.counts.delta_requests = self.requests;
        let sweep = self.sweep_due();
        if sweep {
            self.sweep().await?;
            self.counts.sweep_requests = self.requests - self.counts.delta_requests;
        }
        self.finish(delta, sweep).await
    }

    /// Whether this round sweeps recent threads: incremental rounds with replies, at most
    /// every `[crawl] reply_sweep_every`.
    fn sweep_due(&self) -> bool {
        let plan = &self.crawl.plan;
        let every =
            chrono::Duration::from_std(plan.reply_sweep_every).unwrap_or(chrono::Duration::MAX);
        self.mark.incremental
            && plan.include_replies
            && (plan.reply_sweep_every.is_zero()
                || self
                    .cursor
                    .swept_at
                    .is_none_or(|t| Utc::now().signed_duration_since(t) >= every))
    }

    fn first_link(&self) -> (String, Origin) {
        if let Some(link) = &self.cursor.in_progress {
            return (link.clone(), Origin::InProgress);
        }
        if let Some(link) = &self.cursor.delta_link {
            return (link.clone(), Origin::Delta);
        }
        // A channel that never gave a deltaLink (an empty one) starts where it was seen.
        let since = self.cursor.last_sync.unwrap_or(self.crawl.plan.first_since);
        (self.filtered_link(since), Origin::Fresh)
    }

    fn filtered_link(&self, since: DateTime<Utc>) -> String {
        self.crawl.services.graph.endpoints.delta(
            &self.place.team,
            &self.place.channel,
            &time::format(since),
            self.crawl.plan.include_replies,
        )
    }

    /// Follows delta to the end of the round; returns the round's deltaLink.
    async fn delta_round(&mut self) -> Result<Option<String>, Stop> {
        let (mut url, mut origin) = self.first_link();
        let mut links = Links::starting_at(&url);
        let mut messages = 0usize;
        let mut fresh_round = origin == Origin::Fresh;
        loop {
            self.check_stop()?;
            self.ledger.begin(&url);
            // `raw` (the page's body and its place in memory) is kept until the page is
            // processed: the messages borrow from it.
            let raw = match self.get_page(&url).await {
                Ok(fetched) => fetched,
                Err(Stop::Graph(e)) if is_expired_cursor(&e) => match origin {
                    Origin::InProgress | Origin::Delta => {
                        (url, origin) = self.fall_back(origin, &e);
                        fresh_round = origin == Origin::Fresh;
                        continue;
                    }
                    // An empty channel: Graph opens its round with an empty page whose
                    // nextLink it then refuses. There is nothing to read; no deltaLink.
                    Origin::Next if messages == 0 && fresh_round => {
                        tracing::debug!(team = %self.place.team, channel = %self.place.channel, "Graph refused the nextLink of an empty round; the channel is empty.");
                        return Ok(None);
                    }
                    _ => return Err(Stop::Graph(e)),
                },
                Err(stop) => return Err(stop),
            };
            let page: Page<ChatMessage> = raw.decode().map_err(Stop::Graph)?;
            let Page {
                value,
                next_link,
                delta_link,
            } = page;
            messages += value.len();
            // Root by root, each dropped once decided; the body goes before the documents
            // wait for the ingest, unless a page of thousand-reply threads sends as it goes.
            for root in value {
                self.root(&root, Pass::Delta).await?;
                self.flush_if_heavy().await?;
            }
            let _place = raw.into_place();
            if origin == Origin::InProgress {
                self.skip_acked_prefix();
            }
            self.flush_full_batches().await?;
            match (next_link, delta_link) {
                (Some(next), _) => {
                    let endpoints = &self.crawl.services.graph.endpoints;
                    url = links
                        .next(endpoints, next, "@odata.nextLink")
                        .map_err(Stop::Graph)?;
                    origin = Origin::Next;
                }
                (None, Some(delta)) => {
                    let endpoints = &self.crawl.services.graph.endpoints;
                    return Links::checked(endpoints, delta, "@odata.deltaLink")
                        .map(Some)
                        .map_err(Stop::Graph);
                }
                (None, None) => {
                    return Err(Stop::Graph(GraphError::Invalid {
                        status: 200,
                        path: crate::http::path_of(&url),
                        detail: "a delta page with neither @odata.nextLink nor @odata.deltaLink"
                            .into(),
                        bytes: 0,
                    }))
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
            self.ledger.resume_ack = None;
            if let Some(delta) = &self.cursor.delta_link {
                return (delta.clone(), Origin::Delta);
            }
            let since = self.cursor.last_sync.unwrap_or(self.crawl.plan.first_since);
            return (self.filtered_link(since), Origin::Fresh);
        }
        self.counts.cursor_resets += 1;
        let since = self
            .cursor
            .last_sync
            .and_then(|t| t.checked_sub_signed(RESYNC_OVERLAP))
            .unwrap_or(self.crawl.plan.first_since);
        tracing::warn!(
            team = %self.place.team,
            channel = %self.place.channel,
            error = %e,
            since = %time::format(since),
            "Delta cursor expired; resyncing the channel from its last sync time."
        );
        (self.filtered_link(since), Origin::Fresh)
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
        assert!(!is_expired_cursor(&GraphError::Cancelled));
    }
}
