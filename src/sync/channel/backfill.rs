//! `backfill --since D [--until D]`: one channel's history through the message list
//! (newest first, replies expanded), reaching past delta's 8-month horizon. Progress is
//! kept per channel under its own key, so the incremental cursors stay untouched; each
//! page's documents are delivered before its successor is saved, so a crash resends at
//! most one page.

use chrono::Utc;

use super::{ChannelCrawl, Pass, Range, Stop};
use crate::graph::models::{ChatMessage, Page};
use crate::graph::Links;
use crate::state::BackfillProgress;

impl ChannelCrawl<'_> {
    pub(super) async fn backfill(&mut self, range: Range, restart: bool) -> Result<(), Stop> {
        let (team, channel) = (self.place.team.clone(), self.place.channel.clone());
        let store = &self.crawl.services.store;
        let stored = store.backfill(self.place).map_err(Stop::Fatal)?;
        let resume =
            stored.filter(|p| !restart && p.since == range.since && p.until == range.until);
        let endpoints = &self.crawl.services.graph.endpoints;
        let mut next = match resume {
            Some(p) if p.done => return Ok(()),
            Some(p) => p.next,
            None => Some(endpoints.messages(&team, &channel)),
        };
        let mut links = next.as_deref().map(Links::starting_at);
        while let Some(url) = next {
            self.check_stop()?;
            // `raw` (the page's body and its place in memory) is kept until the page is
            // processed: the messages borrow from it.
            let raw = self.get_page(&url).await?;
            let page: Page<ChatMessage> = raw.decode().map_err(Stop::Graph)?;
            let mut reached_since = false;
            for root in page.value {
                // Newest first: once a root was last touched before `since`, everything
                // after it was created before `since` too.
                if root.modified().is_some_and(|m| m < range.since) {
                    reached_since = true;
                    break;
                }
                self.root(&root, Pass::Backfill).await?;
                self.flush_if_heavy().await?;
            }
            let next_link = page.next_link.filter(|_| !reached_since);
            let _place = raw.into_place();
            self.flush().await?;
            next = match next_link {
                Some(link) => Some(
                    links
                        .get_or_insert_with(|| Links::starting_at(&url))
                        .next(endpoints, link, "@odata.nextLink")
                        .map_err(Stop::Graph)?,
                ),
                None => None,
            };
            if !self.crawl.services.output.is_dry_run() {
                let progress = BackfillProgress {
                    since: range.since,
                    until: range.until,
                    next: next.clone(),
                    done: next.is_none(),
                    updated_at: Utc::now(),
                };
                let written = store
                    .save_backfill(self.place, &progress)
                    .map_err(Stop::Fatal)?;
                self.outbox.saved(written);
            }
        }
        Ok(())
    }
}
