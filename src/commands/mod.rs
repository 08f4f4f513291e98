//! One function per command: turns parsed flags and the config into work, and the work's
//! outcome into an exit [`Code`]. `main` only prints what comes back.

mod admin;
mod doctor;
mod login;

use std::path::Path;
use std::time::Instant;

use crate::cli::{BackfillArgs, Cli, Command, ConfigCommand, RunArgs};
use crate::config::Config;
use crate::exit::{Code, Fatal, Result};
use crate::metrics;
use crate::shutdown::Shutdown;
use crate::state::Store;
use crate::sync::{self, graph_time, Range, RunOptions, Summary};

pub async fn dispatch(cli: Cli, shutdown: Shutdown) -> Result<Code> {
    match cli.command {
        Command::Run(args) => run(&cli.config, &args, shutdown).await,
        Command::Config {
            command: ConfigCommand::Check,
        } => admin::config_check(&cli.config),
        Command::Status { json } => admin::status(&Config::load(&cli.config)?, json),
        Command::Reset(args) => admin::reset(&Config::load(&cli.config)?, &args),
        Command::Logout => admin::logout(&Config::load(&cli.config)?),
        // Served by the binary (`src/demo.rs`): the library does not link the emulator.
        Command::Emulator(_) | Command::Demo => Err(Fatal::internal(
            "the demo and emulator commands are run by the binary",
        )),
        Command::Backfill(args) => backfill(&cli.config, &args, shutdown).await,
        Command::Login => login::login(&Config::load(&cli.config)?, shutdown).await,
        Command::Doctor => doctor::doctor(&cli.config, shutdown).await,
    }
}

pub fn run_options(args: &RunArgs) -> RunOptions {
    RunOptions {
        dry_run: args.dry_run,
        teams: args.teams.clone(),
        shard: args.shard,
        max_duration: args.max_duration,
        backfill: None,
        restart_backfill: false,
    }
}

async fn backfill(config_path: &Path, args: &BackfillArgs, shutdown: Shutdown) -> Result<Code> {
    let (since, until) = (args.since, args.until);
    if until.is_some_and(|u| u <= since) {
        return Err(Fatal::usage("--until must be later than --since"));
    }
    let mut opts = run_options(&args.run);
    opts.backfill = Some(Range { since, until });
    opts.restart_backfill = args.restart;
    execute(
        config_path,
        &opts,
        args.run.metrics_file.as_deref(),
        shutdown,
    )
    .await
}

async fn run(config_path: &Path, args: &RunArgs, shutdown: Shutdown) -> Result<Code> {
    let opts = run_options(args);
    execute(config_path, &opts, args.metrics_file.as_deref(), shutdown).await
}

/// `run` and `backfill`: the crawl, then (with `--metrics-file`) the textfile, whatever
/// the outcome.
async fn execute(
    config_path: &Path,
    opts: &RunOptions,
    metrics_file: Option<&Path>,
    shutdown: Shutdown,
) -> Result<Code> {
    let started = Instant::now();
    let started_at = graph_time(chrono::Utc::now());
    let config = Config::load(config_path);
    let outcome = match &config {
        Ok(config) => crawl(config, opts, shutdown).await,
        Err(f) => Err(f.clone()),
    };
    let state_dir = config.as_ref().ok().map(|c| c.state_dir.as_path());
    let summary = match &outcome {
        Ok((s, _)) => Some(s.clone()),
        Err(_) if metrics_file.is_some() => state_dir.and_then(|d| summary_since(d, &started_at)),
        Err(_) => None,
    };
    let finished = metrics::Finished {
        code: outcome.as_ref().map_or_else(|f| f.code, |(_, c)| *c),
        duration: started.elapsed(),
        summary: summary.as_ref(),
        dry_run: opts.dry_run,
        ended_at: chrono::Utc::now(),
    };
    if let (true, Some(dir)) = (finished.succeeded(), state_dir) {
        metrics::remember_success(dir, finished.ended_at);
    }
    if let Some(path) = metrics_file {
        metrics::record(path, state_dir, &finished);
    }
    outcome.map(|(_, code)| code)
}

async fn crawl(config: &Config, opts: &RunOptions, shutdown: Shutdown) -> Result<(Summary, Code)> {
    if !opts.dry_run {
        config.ingest_token()?;
    }
    sync::run(config, opts, shutdown).await
}

/// A run that ended with an error may still have saved its summary (an abort after the
/// crawl); it is this run's if it started after `started_at` (same clock, same format).
fn summary_since(state_dir: &Path, started_at: &str) -> Option<Summary> {
    let store = Store::open(state_dir).ok()?;
    let last: Summary = store.last_run().ok()??;
    (last.started_at.as_str() >= started_at).then_some(last)
}
