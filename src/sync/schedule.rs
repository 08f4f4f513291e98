//! Which channel runs when: every channel's crawl as a task, at most `concurrency` at once;
//! a channel's pages stay sequential. Outcomes are added to the summary as they finish.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::channel::{self, ChannelRef, ChannelRun};
use super::crawl::Crawl;
use super::report::{Ending, Failure, FailureKind, Summary};

pub(super) async fn crawl_channels(
    crawl: &Arc<Crawl>,
    channels: Vec<ChannelRef>,
    concurrency: usize,
    summary: &mut Summary,
) {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut places = std::collections::HashMap::new();
    for place in channels {
        let crawl = crawl.clone();
        let permits = permits.clone();
        let key = place.clone();
        let handle = tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            if crawl.run.stopping() {
                return ChannelRun::stopped();
            }
            channel::crawl(&crawl, &place).await
        });
        places.insert(handle.id(), key);
    }
    while let Some(done) = tasks.join_next_with_id().await {
        crawl.services.progress.channel_finished();
        match done {
            Ok((_, run)) => {
                summary.add_channel(&run.counts, run.ending);
                summary.failures.extend(run.failure);
            }
            Err(e) => {
                let place = places.remove(&e.id());
                tracing::error!(team = ?place.as_ref().map(|p| &p.team), channel = ?place.as_ref().map(|p| &p.channel), "A channel's crawl failed unexpectedly; its cursor stays where it was.");
                summary.add_channel(&Default::default(), Ending::Failed);
                summary.failures.push(Failure {
                    team: place.as_ref().map(|p| p.team.clone()).unwrap_or_default(),
                    channel: place.map(|p| p.channel),
                    kind: FailureKind::Internal,
                    reason: "the channel's crawl panicked (a bug: report it with the log)".into(),
                });
            }
        }
    }
}
