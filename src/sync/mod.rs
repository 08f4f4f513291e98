//! The crawl: discovery (users, teams, channels), then every channel's incremental crawl
//! with bounded concurrency, then the outcome decided once.
//!
//! [`run`] reads top to bottom as the pipeline of DESIGN.md: sign in → directory and teams
//! (concurrently) → channels → per-channel delta → documents → ingest → cursor. Per-channel
//! failures are recorded and the rest goes on; only sign-in failures, a dead ingest and
//! signals stop the whole run.

mod backfill;
mod channel;
pub mod discovery;
pub mod report;
mod sweep;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{watch, Semaphore};

pub use channel::{graph_time, ChannelRef, Range};
pub use discovery::{Shard, TeamFilter};
pub use report::{Ending, Failure, FailureKind, Summary};

use crate::auth::TokenSource;
use crate::config::Config;
use crate::exit::{Code, Fatal, Result};
use crate::graph::{Graph, GraphError};
use crate::http::{build_client, Counters};
use crate::ingest::{IngestClient, Output};
use crate::shutdown::{Shutdown, Signal};
use crate::state::Store;
use crate::transform::{Directory, TextOptions, Transformer};

/// How to run, from the command line (config says what, flags say how).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub dry_run: bool,
    /// `--team`: replaces `[crawl] teams` when given.
    pub teams: Vec<String>,
    pub shard: Option<Shard>,
    pub max_duration: Option<Duration>,
    /// `backfill`: crawl this date range through the message list instead of delta.
    pub backfill: Option<Range>,
    /// `backfill --restart`: ignore stored backfill progress.
    pub restart_backfill: bool,
}

/// What every channel task shares. Field by field:
pub struct Crawl {
    pub graph: Graph,
    /// Cursors and the refresh token; sled is internally synchronised.
    pub store: Arc<Store>,
    /// User id → mail; set once by the directory task, read-only after.
    directory: OnceLock<Directory>,
    directory_ready: watch::Receiver<bool>,
    pub transformer: Transformer,
    pub output: Output,
    pub include_replies: bool,
    pub reply_window: Duration,
    pub batch_size: usize,
    /// First round of a channel: messages modified after this.
    pub first_since: DateTime<Utc>,
    pub backfill: Option<Range>,
    pub restart_backfill: bool,
    deadline: Option<Instant>,
    shutdown: Shutdown,
    /// Counters the progress line reads (channels finished, documents acknowledged).
    pub progress: Arc<crate::progress::Progress>,
    /// Set when the ingest stayed unavailable: the other channels stop instead of each
    /// waiting out its own retries.
    ingest_down: AtomicBool,
    /// A failure that ends the whole run (sign-in, state store). A std `Mutex`: set once,
    /// never held across an await.
    abort: Mutex<Option<Fatal>>,
}

impl Crawl {
    fn out_of_time(&self) -> bool {
        self.shutdown.is_cancelled()
            || self.deadline.is_some_and(|d| Instant::now() >= d)
            || self.abort.lock().map(|a| a.is_some()).unwrap_or(true)
    }
    /// The users map, once loaded; `None` if loading failed (the run is then aborting).
    async fn directory(&self) -> Option<&Directory> {
        let mut ready = self.directory_ready.clone();
        let _ = ready.wait_for(|r| *r).await;
        self.directory.get()
    }
    fn shutdown_requested(&self) -> bool {
        self.shutdown.is_cancelled()
    }
    fn ingest_down(&self) -> bool {
        self.ingest_down.load(Ordering::Relaxed)
    }
    fn mark_ingest_down(&self) {
        self.ingest_down.store(true, Ordering::Relaxed);
    }
    fn abort(&self, f: Fatal) {
        if let Ok(mut a) = self.abort.lock() {
            a.get_or_insert(f);
        }
    }
}

/// The scheduled job. Returns the summary and the exit code it earned.
pub async fn run(
    config: &Config,
    opts: &RunOptions,
    shutdown: Shutdown,
) -> Result<(Summary, Code)> {
    let started = Instant::now();
    let mut summary = Summary {
        started_at: graph_time(Utc::now()),
        dry_run: opts.dry_run,
        ..Summary::default()
    };
    let store = Arc::new(Store::open(&config.state_dir)?);
    let counters = Arc::new(Counters::default());
    let progress = Arc::new(crate::progress::Progress::new(counters.clone()));
    let reporter = crate::progress::Reporter::start(progress.clone());
    let http = build_client(config.limits.request_timeout)?;
    let output = if opts.dry_run {
        Output::DryRun
    } else {
        Output::Post(IngestClient {
            http: http.clone(),
            url: config.ingest.url.clone(),
            timeout: config.ingest.timeout,
            token: config.ingest_token()?.clone(),
            max_retries: config.limits.max_retries,
            counters: counters.clone(),
            shutdown: shutdown.clone(),
        })
    };
    let tokens = Arc::new(TokenSource::new(
        config,
        http.clone(),
        store.clone(),
        counters.clone(),
        shutdown.clone(),
    )?);
    // Sign in before anything else: a rejected token is exit 77 with nothing half done.
    tokens.access_token().await?;
    let graph = Graph::for_config(
        config,
        http,
        tokens,
        counters.clone(),
        config.limits.max_retries,
        shutdown.clone(),
    );
    let filter = TeamFilter::new(config, &opts.teams, opts.shard);
    let (ready_tx, directory_ready) = watch::channel(false);
    let crawl = Arc::new(Crawl {
        graph,
        store: store.clone(),
        directory: OnceLock::new(),
        directory_ready,
        transformer: Transformer {
            tenant: config.tenant_id.clone(),
            text: TextOptions {
                keep_mention_names: config.crawl.keep_mention_names,
            },
            include_card_text: config.crawl.include_card_text,
        },
        output,
        include_replies: config.crawl.include_replies,
        reply_window: config.crawl.reply_window,
        batch_size: config.ingest.batch_size,
        first_since: crate::config::ago(config.crawl.initial_lookback),
        deadline: opts.max_duration.and_then(|d| started.checked_add(d)),
        backfill: opts.backfill,
        restart_backfill: opts.restart_backfill,
        shutdown: shutdown.clone(),
        ingest_down: AtomicBool::new(false),
        progress,
        abort: Mutex::new(None),
    });
    // The users list loads while teams and channels are discovered and the first pages are
    // fetched; channel tasks wait for it only before turning messages into documents.
    let directory = tokio::spawn(load_directory(crawl.clone(), ready_tx));
    let teams = discovery::teams(&crawl.graph, &filter)
        .await
        .map_err(|e| discovery_fatal(e, "the joined teams (Team.ReadBasic.All)", &shutdown))?;
    let (kept, channels) = discovery::channels(
        &crawl,
        teams,
        config.crawl.include_private_teams,
        config.limits.concurrency,
        &mut summary.failures,
    )
    .await
    .map_err(|e| discovery_fatal(e, "a team's channels (Channel.ReadBasic.All)", &shutdown))?;
    summary.teams = kept;
    crawl.progress.add_channels(channels.len() as u64);
    if kept == 0 {
        tracing::warn!("The technical user can reach no team to crawl; add it to the teams, or check [crawl] teams, exclude_teams and include_private_teams.");
    }
    crawl_channels(&crawl, channels, config.limits.concurrency, &mut summary).await;
    match directory.await {
        Ok(Ok(users)) => summary.users = users,
        Ok(Err(e)) => {
            return Err(discovery_fatal(
                e,
                "the users list (User.ReadBasic.All)",
                &shutdown,
            ))
        }
        Err(e) => return Err(Fatal::internal(format!("the users list task failed: {e}"))),
    }

    summary.requests = Counters::get(&counters.requests);
    summary.throttled = Counters::get(&counters.throttled);
    summary.retries = Counters::get(&counters.retries);
    summary.throttle_wait_ms = Counters::get(&counters.throttle_wait_ms);
    summary.graph_statuses = counters.statuses();
    summary.duration_ms = started.elapsed().as_millis() as u64;
    summary.request_rate = summary.requests as f64 / started.elapsed().as_secs_f64().max(0.001);
    summary.fill_skip_reasons();
    // No progress line after the summary.
    drop(reporter);
    let aborted = crawl.abort.lock().ok().and_then(|mut a| a.take());
    let code = decide(
        &summary,
        aborted.as_ref(),
        shutdown.signal(),
        crawl.deadline.is_some_and(|d| Instant::now() >= d),
    );
    summary.exit_code = code.as_i32();
    summary.log();
    store.set_last_run(&summary)?;
    if let Some(f) = aborted {
        return Err(f);
    }
    Ok((summary, code))
}

/// Loads the users map into the crawl and tells the channel tasks it is there. On failure
/// the crawl is stopped (tasks see `out_of_time`) and the error returned.
async fn load_directory(
    crawl: Arc<Crawl>,
    ready: watch::Sender<bool>,
) -> std::result::Result<u64, GraphError> {
    let loaded = discovery::directory(&crawl.graph).await;
    let result = match loaded {
        Ok(dir) => {
            let users = dir.len() as u64;
            let _ = crawl.directory.set(dir);
            Ok(users)
        }
        Err(e) => {
            crawl.abort(Fatal::unavailable("the users list could not be read"));
            Err(e)
        }
    };
    let _ = ready.send(true);
    result
}

/// Runs every channel, at most `concurrency` at once; a channel's pages stay sequential.
async fn crawl_channels(
    crawl: &Arc<Crawl>,
    channels: Vec<ChannelRef>,
    concurrency: usize,
    summary: &mut Summary,
) {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for place in channels {
        let crawl = crawl.clone();
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            if crawl.out_of_time() {
                return channel::ChannelRun {
                    counts: Default::default(),
                    ending: Ending::Stopped,
                    failure: None,
                };
            }
            channel::crawl(&crawl, &place).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        crawl.progress.channel_finished();
        match done {
            Ok(run) => {
                summary.add_channel(&run.counts, &run.ending);
                summary.failures.extend(run.failure);
            }
            Err(e) => crawl.abort(Fatal::internal(format!("a channel task failed: {e}"))),
        }
    }
}

/// The outcome, decided once from everything recorded (ripgrep's `messages.rs` idea).
fn decide(
    summary: &Summary,
    aborted: Option<&Fatal>,
    signal: Option<Signal>,
    budget_hit: bool,
) -> Code {
    if let Some(f) = aborted {
        return f.code;
    }
    match signal {
        Some(Signal::Interrupt) => return Code::Interrupted,
        Some(Signal::Terminate) => return Code::Terminated,
        None => {}
    }
    if budget_hit && summary.channels_stopped > 0 {
        return Code::Temporary;
    }
    let failed = summary.failures.len() as u64;
    if failed == 0 {
        return Code::Ok;
    }
    let nothing_done = summary.channels_done == 0;
    let unavailable = summary.failures.iter().any(|f| {
        matches!(
            f.kind,
            FailureKind::IngestUnavailable | FailureKind::GraphUnavailable
        )
    });
    if nothing_done && unavailable {
        Code::Unavailable
    } else {
        Code::Partial
    }
}

fn discovery_fatal(e: GraphError, what: &str, shutdown: &Shutdown) -> Fatal {
    match e {
        GraphError::Auth(f) => f,
        GraphError::Cancelled => match shutdown.signal() {
            Some(Signal::Interrupt) => Fatal::new(Code::Interrupted, "interrupted during discovery; nothing was sent"),
            _ => Fatal::new(Code::Terminated, "terminated during discovery; nothing was sent"),
        },
        GraphError::Status { status: 401 | 403, code, .. } => Fatal::auth(format!(
            "Graph refused to list {what} ({code}); grant that delegated permission to the app and consent, then run `teams-connector login`"
        )),
        other => Fatal::unavailable(format!("cannot list {what}: {other}")),
    }
}
