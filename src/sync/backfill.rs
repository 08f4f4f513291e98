//! `backfill --since D [--until D]`: one channel's history through the message list
//! (newest first, replies expanded), reaching past delta's 8-month horizon. Progress is
//! kept per channel under its own key, so the incremental cursors stay untouched; each
//! page's documents are delivered before its successor is saved, so a crash resends at
//! most one page.

use chrono::Utc;

use super::channel::{graph_time, Progress, Range, Stop};
use crate::graph::models::{ChatMessage, Page};
use crate::state::BackfillProgress;

impl<'a> Progress<'a> {
    pub(super) async fn backfill(&mut self, range: Range) -> Result<(), Stop> {
        let (team, channel) = (self.place.team.clone(), self.place.channel.clone());
        let since = graph_time(range.since);
        let until = range.until.map(graph_time);
        let stored = self
            .crawl
            .store
            .backfill(&team, &channel)
            .map_err(Stop::Fatal)?;
        let resume =
            stored.filter(|p| !self.crawl.restart_backfill && p.since == since && p.until == until);
        let mut next = match resume {
            Some(p) if p.done => return Ok(()),
            Some(p) => p.next,
            None => Some(self.crawl.graph.endpoints.messages(&team, &channel)),
        };
        while let Some(url) = next {
            self.check_budget(None).await?;
            let page: Page<ChatMessage> = self.get(&url).await?;
            let dir = self.directory().await?;
            let mut reached_since = false;
            for root in &page.value {
                let modified = root.modified();
                // Newest first: once a root was last touched before `since`, everything
                // after it was created before `since` too.
                if modified.is_some_and(|m| m < range.since) {
                    reached_since = true;
                    break;
                }
                self.message(root, &root.id, false, dir);
                if self.crawl.include_replies {
                    self.replies(root, false).await?;
                }
            }
            self.flush_batch().await?;
            next = if reached_since { None } else { page.next_link };
            if !self.crawl.output.is_dry_run() {
                let progress = BackfillProgress {
                    since: since.clone(),
                    until: until.clone(),
                    next: next.clone(),
                    done: next.is_none(),
                    updated_at: Utc::now(),
                };
                self.crawl
                    .store
                    .set_backfill(&team, &channel, &progress)
                    .map_err(Stop::Fatal)?;
            }
        }
        Ok(())
    }
}
