//! The crawl: discovery (users, teams, channels), then every channel's crawl, then the
//! outcome decided once.
//!
//! [`run`] reads top to bottom as the pipeline of DESIGN.md: sign in → directory and teams
//! (concurrently) → channels → per-channel delta → documents → ingest → cursor. A team's
//! channels start as soon as its channel list is in, while other teams are looked up.
//! Per-channel failures are recorded and the rest goes on; only sign-in failures, a dead
//! state store and signals stop the whole run. Every path, aborts included, ends in one [`RunReport`]
//! (ripgrep's `messages.rs` idea): nothing is read back from disk to learn what happened.

mod channel;
mod crawl;
pub(crate) mod discovery;
mod forget;
pub(crate) mod report;
mod schedule;
pub(crate) mod scope;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::state::ChannelKey;
pub use channel::Range;
pub use crawl::Mode;
pub use discovery::{Shard, TeamFilter};
pub use report::{ChannelCounts, Ending, Failure, FailureKind, Summary};

use crate::auth::TokenSource;
use crate::config::{Config, PersonEntry};
use crate::exit::{Code, Fatal, Result};
use crate::graph::{Graph, GraphError};
use crate::http::{build_client, Counters};
use crate::ingest::{IngestClient, Output};
use crate::progress::{Progress, Reporter};
use crate::shutdown::{Shutdown, Signal};
use crate::state::Store;
use crate::transform::{TextOptions, Transformer};
use crawl::{Crawl, Plan, RunState, Services};

/// How to run, from the command line (config says what, flags say how).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub dry_run: bool,
    /// `--team`: replaces `[crawl] teams` when given.
    pub teams: Vec<String>,
    pub shard: Option<Shard>,
    pub max_duration: Option<Duration>,
    pub mode: Mode,
    /// `forget --person`: whose documents are deleted.
    pub person: Option<PersonEntry>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            dry_run: false,
            teams: Vec::new(),
            shard: None,
            max_duration: None,
            mode: Mode::Incremental,
            person: None,
        }
    }
}

/// What a run came to, on every path: the summary (as far as the run got), the exit code
/// it earned, and the error that ended it early, if one did.
pub struct RunReport {
    pub summary: Summary,
    pub code: Code,
    pub fatal: Option<Fatal>,
}

/// The scheduled job (and `backfill`): crawls, logs the `run_summary` event, stores it.
pub async fn run(
    config: &Config,
    opts: &RunOptions,
    store: Arc<Store>,
    shutdown: Shutdown,
) -> RunReport {
    let started = Instant::now();
    if let Some(budget) = opts.max_duration {
        shutdown.stop_at(tokio::time::Instant::now() + budget);
    }
    let mut summary = Summary::new(opts.dry_run);
    let counters = Arc::new(Counters::default());
    let progress = Arc::new(Progress::new(counters.clone()));
    let reporter = Reporter::start(progress.clone());
    let outcome = crawl(
        config,
        opts,
        &store,
        &shutdown,
        &counters,
        progress,
        &mut summary,
    )
    .await;
    // No progress line after the summary.
    drop(reporter);
    summary.requests = Counters::get(&counters.requests);
    summary.throttled = Counters::get(&counters.throttled);
    summary.retries = Counters::get(&counters.retries);
    summary.throttle_wait_ms = Counters::get(&counters.throttle_wait_ms);
    summary.graph_statuses = counters.statuses();
    summary.duration_ms = started.elapsed().as_millis() as u64;
    summary.request_rate = summary.requests as f64 / started.elapsed().as_secs_f64().max(0.001);
    summary.peak_rss_bytes = report::peak_rss_bytes();
    let mut fatal = outcome.err();
    let mut code = decide(&summary, fatal.as_ref(), shutdown.signal());
    summary.exit_code = code.as_i32();
    summary.log();
    if let Err(f) = store.set_last_run(&summary) {
        code = code.max(f.code);
        fatal.get_or_insert(f);
    }
    RunReport {
        summary,
        code,
        fatal,
    }
}

/// Sign-in, discovery and the channel crawls; `Err` for what ends the run early.
async fn crawl(
    config: &Config,
    opts: &RunOptions,
    store: &Arc<Store>,
    shutdown: &Shutdown,
    counters: &Arc<Counters>,
    progress: Arc<Progress>,
    summary: &mut Summary,
) -> Result<()> {
    let http = build_client(
        config.limits.request_timeout,
        config.microsoft_ca_file.as_ref(),
    )?;
    let output = output(config, opts, counters, shutdown)?;
    // Read again every run, before anything is requested: a missing list is exit 78.
    let excluded = config.privacy.people()?;
    let tokens = Arc::new(TokenSource::new(
        config,
        http.clone(),
        store.clone(),
        counters.clone(),
        shutdown.clone(),
    )?);
    // Sign in before anything else: a rejected token is exit 77 with nothing half done.
    tokens.access_token().await?;
    let graph = Graph::for_config(config, http, tokens, counters.clone(), shutdown.clone());
    let (run, directory_ready) = RunState::new(shutdown.clone());
    let crawl = Arc::new(Crawl {
        services: Services {
            graph: Arc::new(graph),
            store: store.clone(),
            transformer: transformer(config),
            output,
            progress,
        },
        plan: plan(config, opts),
        run,
    });
    // The users list loads while teams and channels are discovered and the first pages are
    // fetched; channel tasks wait for it only before turning messages into documents.
    let people = (excluded, opts.person.iter().cloned().collect());
    let directory = tokio::spawn(load_directory(crawl.clone(), directory_ready, people));
    if let Mode::Forget { range, restart } = opts.mode {
        forget::prepare(&crawl, range, restart, opts.dry_run).await?;
    }
    let filter = TeamFilter::new(config, &opts.teams, opts.shard);
    let graph = &crawl.services.graph;
    let teams = discovery::teams(graph, &filter)
        .await
        .map_err(|e| discovery_fatal(e, "the joined teams (Team.ReadBasic.All)", shutdown))?;
    let hints: std::collections::HashMap<ChannelKey, u32> = store
        .channels()?
        .into_iter()
        .filter_map(|(key, cursor)| Some((key, cursor.requests?)))
        .collect();
    // Channels start as their team's lookup comes back, while other teams are looked up.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let discover = async {
        let found = discovery::channels(
            graph,
            teams,
            &config.crawl,
            config.limits.concurrency,
            Some(&tx),
        )
        .await;
        match found {
            Ok(mut found) => {
                // Shared channels, settled under one team each, come last.
                for c in std::mem::take(&mut found.channels) {
                    drop(tx.send(c));
                }
                drop(tx);
                Some(found)
            }
            Err(e) => {
                drop(tx);
                let what = "a team's channels (Channel.ReadBasic.All)";
                crawl.run.abort(discovery_fatal(e, what, shutdown));
                None
            }
        }
    };
    let in_flight = schedule::channels_in_flight(&config.limits);
    let crawl_all = schedule::crawl_channels(&crawl, rx, &hints, in_flight, summary);
    let (found, ()) = tokio::join!(discover, crawl_all);
    let Some(mut found) = found else {
        return Err(crawl
            .run
            .take_abort()
            .unwrap_or_else(|| Fatal::internal("discovery failed without a reason")));
    };
    summary.teams = found.teams;
    summary.failures.extend(std::mem::take(&mut found.failures));
    if found.teams == 0 {
        tracing::warn!("The technical user can reach no team to crawl; add it to the teams, or check [crawl] teams, exclude_teams and include_private_teams.");
    }
    scope::record(store, &mut found.scope, summary)?;
    if let Mode::Forget { .. } = opts.mode {
        forget::finish(&crawl, summary)?;
    }
    match directory.await {
        Ok(Ok(users)) => summary.users = users,
        Ok(Err(e)) => {
            return Err(discovery_fatal(
                e,
                "the users list (User.ReadBasic.All)",
                shutdown,
            ))
        }
        Err(e) => return Err(Fatal::internal(format!("the users list task failed: {e}"))),
    }
    crawl.run.take_abort().map_or(Ok(()), Err)
}

fn output(
    config: &Config,
    opts: &RunOptions,
    counters: &Arc<Counters>,
    shutdown: &Shutdown,
) -> Result<Output> {
    if opts.dry_run {
        return Ok(Output::DryRun);
    }
    Ok(Output::Post(IngestClient {
        // The ingest's own client: it trusts the ingest's CA, not Graph's.
        http: build_client(config.ingest.timeout, config.ingest.ca_file.as_ref())?,
        url: config.ingest.url.clone(),
        timeout: config.ingest.timeout,
        token: config.ingest_token()?.clone(),
        max_retries: config.limits.max_retries,
        counters: counters.clone(),
        shutdown: shutdown.clone(),
    }))
}

fn transformer(config: &Config) -> Transformer {
    Transformer {
        tenant: config.tenant_id.clone(),
        text: TextOptions {
            keep_mention_names: config.crawl.keep_mention_names,
        },
        include_card_text: config.crawl.include_card_text,
    }
}

fn plan(config: &Config, opts: &RunOptions) -> Plan {
    Plan {
        include_replies: config.crawl.include_replies,
        reply_window: config.crawl.reply_window,
        reply_sweep_every: config.crawl.reply_sweep_every,
        batch_size: config.ingest.batch_size,
        first_since: crate::config::ago(config.crawl.initial_lookback),
        mode: opts.mode,
    }
}

/// Loads the users map into the crawl and tells the channel tasks it is there. On failure
/// the crawl is stopped (tasks see `stopping`) and the error returned.
async fn load_directory(
    crawl: Arc<Crawl>,
    ready: tokio::sync::watch::Sender<bool>,
    (excluded, target): (Vec<PersonEntry>, Vec<PersonEntry>),
) -> std::result::Result<u64, GraphError> {
    let graph = &crawl.services.graph;
    let result = match discovery::directory(graph, &excluded, &target).await {
        Ok(loaded) => {
            let users = loaded.directory.len() as u64;
            crawl.run.set_directory(loaded.directory);
            Ok(users)
        }
        Err(e) => {
            crawl
                .run
                .abort(Fatal::unavailable("the users list could not be read"));
            Err(e)
        }
    };
    let _ = ready.send(true);
    result
}

/// The outcome, decided once from everything recorded (ripgrep's `messages.rs` idea).
fn decide(summary: &Summary, fatal: Option<&Fatal>, signal: Option<Signal>) -> Code {
    if let Some(f) = fatal {
        return f.code;
    }
    match signal {
        Some(s @ (Signal::Interrupt | Signal::Terminate)) => return s.into(),
        Some(Signal::Deadline) if summary.channels_stopped > 0 => return Code::Temporary,
        _ => {}
    }
    if summary.failures.is_empty() {
        return Code::Ok;
    }
    if summary
        .failures
        .iter()
        .any(|f| f.kind == FailureKind::Internal)
    {
        return Code::Internal;
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
        GraphError::Cancelled => {
            let signal = shutdown.signal().unwrap_or(Signal::Terminate);
            let why = match signal {
                Signal::Deadline => "the time budget (--max-duration) ran out",
                Signal::Interrupt => "interrupted",
                Signal::Terminate => "terminated",
            };
            Fatal::new(
                signal.into(),
                format!("{why} during discovery; channels already begun saved their progress"),
            )
        }
        GraphError::Status { status: 401 | 403, code, .. } => Fatal::auth(format!(
            "Graph refused to list {what} ({code}); grant that delegated permission to the app and consent, then run `teams-connector login`"
        )),
        other => Fatal::unavailable(format!("cannot list {what}")).caused_by(other),
    }
}
