//! The reply sweep: a new reply does not reliably bump its root in delta (DESIGN.md), so
//! every incremental round re-reads the threads created within `crawl.reply_window` —
//! the message list with replies expanded, newest first — and forwards replies changed
//! since the channel's last sync. Replies to threads older than the window are out of
//! reach unless delta shows their root again.

use super::channel::{Progress, Stop};
use crate::graph::models::{ChatMessage, Page};

impl Progress<'_> {
    pub(super) async fn sweep(&mut self) -> Result<(), Stop> {
        if self.since.is_none() {
            return Ok(());
        }
        let window_start = crate::config::ago(self.crawl.reply_window);
        let mut next = Some(
            self.crawl
                .graph
                .endpoints
                .messages(&self.place.team, &self.place.channel),
        );
        while let Some(url) = next {
            self.check_budget(None).await?;
            let page: Page<ChatMessage> = self.get(&url).await?;
            self.counts.sweep_pages += 1;
            for root in &page.value {
                let modified = root.modified();
                // Newest first (by creation or by modification): once a root was last
                // touched before the window, every later one was created before it too.
                if modified.is_some_and(|m| m < window_start) {
                    return self.flush_full_batches().await;
                }
                let created = root.created();
                if created.is_some_and(|c| c >= window_start) {
                    self.replies(root, true).await?;
                }
            }
            self.flush_full_batches().await?;
            next = page.next_link;
        }
        Ok(())
    }
}
