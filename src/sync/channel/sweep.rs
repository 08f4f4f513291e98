//! The reply sweep: a new reply does not reliably bump its root in delta (DESIGN.md), so
//! every incremental round re-reads the threads created within `crawl.reply_window` —
//! the message list with replies expanded, newest first — and forwards replies changed
//! since the channel's last sync. Replies to threads older than the window are out of
//! reach unless delta shows their root again.

use chrono::Utc;

use super::{ChannelCrawl, Pass, Stop};
use crate::graph::models::{ChatMessage, Page};
use crate::graph::Links;

impl ChannelCrawl<'_> {
    pub(super) async fn sweep(&mut self) -> Result<(), Stop> {
        if self.mark.sweep_since.is_none() {
            return Ok(());
        }
        let window = chrono::Duration::from_std(self.crawl.plan.reply_window)
            .unwrap_or(chrono::Duration::MAX);
        let window_start = Utc::now()
            .checked_sub_signed(window)
            .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
        let endpoints = &self.crawl.services.graph.endpoints;
        let first = endpoints.messages(&self.place.team, &self.place.channel);
        let mut links = Links::starting_at(&first);
        let mut next = Some(first);
        while let Some(url) = next {
            self.check_stop()?;
            // `raw` (the page's body and its place in memory) is kept until the page is
            // processed: the messages borrow from it.
            let raw = self.get_page(&url).await?;
            let page: Page<ChatMessage> = raw.decode().map_err(Stop::Graph)?;
            self.counts.sweep_pages += 1;
            let mut past_window = false;
            for root in page.value {
                // Newest first (by creation or by modification): once a root was last
                // touched before the window, every later one was created before it too.
                if root.modified().is_some_and(|m| m < window_start) {
                    past_window = true;
                    break;
                }
                if root.created().is_some_and(|c| c >= window_start) {
                    self.replies(&root, Pass::Sweep).await?;
                    self.flush_if_heavy().await?;
                }
            }
            let next_link = page.next_link.filter(|_| !past_window);
            let _place = raw.into_place();
            self.flush_full_batches().await?;
            if past_window {
                return Ok(());
            }
            next = match next_link {
                Some(link) => Some(
                    links
                        .next(endpoints, link, "@odata.nextLink")
                        .map_err(Stop::Graph)?,
                ),
                None => None,
            };
        }
        Ok(())
    }
}
