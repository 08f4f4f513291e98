//! `forget --person`: one channel read again through the message list (newest first,
//! replies expanded), like a backfill, deciding each message for the
//! erasure: a document the person wrote gets a `delete`; a document that mentions them is
//! sent again without them (an `upsert` with the same id), or deleted if their name was
//! all it held. Each page is delivered before the next page's link is stored under the
//! job's digest, so a killed run resumes at most a page back. Nothing is sent, and
//! nothing stored, by a dry run: it only counts.
//!
//! Unlike a backfill, the whole list is read even with `--since`: a reply written after
//! that date can sit under a thread started long before it, and an erasure must not miss
//! it. `--since` limits what is deleted, not what is read.

use chrono::Utc;

use super::{ChannelCrawl, Pass, Range, Stop};
use crate::graph::models::{ChatMessage, Page};
use crate::graph::Links;
use crate::state::ForgetProgress;
use crate::transform::{Directory, Document, Op, Outcome, People, Place, Skip};

impl ChannelCrawl<'_> {
    pub(super) async fn forget(&mut self) -> Result<(), Stop> {
        let (team, channel) = (self.place.team.clone(), self.place.channel.clone());
        // The job is set once the person is resolved; a dry run has none (no progress).
        self.directory().await?;
        let job = self.crawl.run.job().map(str::to_owned);
        let store = &self.crawl.services.store;
        let stored = match &job {
            Some(_) => store
                .forget_progress(&team, &channel)
                .map_err(Stop::Fatal)?,
            None => None,
        };
        let endpoints = &self.crawl.services.graph.endpoints;
        let mut next = match stored.filter(|p| Some(&p.job) == job.as_ref()) {
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
            for root in &page.value {
                self.root(root, Pass::Forget).await?;
            }
            self.flush().await?;
            next = match page.next_link {
                Some(link) => Some(
                    links
                        .get_or_insert_with(|| Links::starting_at(&url))
                        .next(endpoints, link, "@odata.nextLink")
                        .map_err(Stop::Graph)?,
                ),
                None => None,
            };
            if let Some(job) = &job {
                let progress = ForgetProgress {
                    job: job.clone(),
                    next: next.clone(),
                    done: next.is_none(),
                    updated_at: Utc::now(),
                };
                store
                    .set_forget_progress(&team, &channel, &progress)
                    .map_err(Stop::Fatal)?;
            }
        }
        Ok(())
    }

    /// The erasure's decision for one message of `thread`.
    pub(super) fn forget_message(
        &mut self,
        msg: &ChatMessage,
        thread: &str,
        range: Range,
        directory: &Directory,
    ) {
        if !msg.created().is_some_and(|c| range.contains(c)) {
            return;
        }
        self.counts.messages_seen += 1;
        let place = Place {
            team: &self.place.team,
            channel: &self.place.channel,
            thread,
        };
        let transformer = &self.crawl.services.transformer;
        let target = &directory.target;
        if let Some(id) = transformer.authored_by(&place, msg, target) {
            return self.erase(Document::delete(id));
        }
        if !mentions(msg, target) {
            return;
        }
        // The directory's exclusions include the person for this run (see `discovery`).
        match transformer.message(&place, msg, directory, true) {
            Outcome::Forward(doc) if doc.op == Op::Upsert => self.erase(doc),
            Outcome::Skip(Skip::Empty) if transformer.had_text(msg) => {
                let id = crate::transform::document_id(
                    &transformer.tenant,
                    place.team,
                    place.channel,
                    thread,
                    &msg.id,
                );
                self.erase(Document::delete(id));
            }
            _ => {}
        }
    }

    /// Counts `doc` and, unless this is a dry run, queues it.
    fn erase(&mut self, doc: Document) {
        match doc.op {
            Op::Upsert => self.counts.forwarded += 1,
            Op::Delete => self.counts.deletes += 1,
        }
        if !self.crawl.services.output.is_dry_run() {
            self.outbox.push(doc);
        }
    }
}

fn mentions(msg: &ChatMessage, target: &People) -> bool {
    msg.mentions
        .iter()
        .any(|m| m.user_id().is_some_and(|id| target.contains(id)))
}
