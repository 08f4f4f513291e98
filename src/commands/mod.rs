//! One function per command: turns parsed flags and the config into work, and the work's
//! outcome into an exit [`Code`]. `main` only prints what comes back.

mod admin;
mod doctor;
mod forget;
mod login;
mod status;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::cli::{BackfillArgs, Cli, Command, ConfigCommand, RunArgs};
use crate::config::Config;
use crate::exit::{Code, Fatal, Result};
use crate::metrics;
use crate::shutdown::Shutdown;
use crate::state::Store;
use crate::sync::{self, Mode, Range, RunOptions, RunReport};

pub async fn dispatch(cli: Cli, shutdown: Shutdown) -> Result<Code> {
    match cli.command {
        Command::Run(args) => run(&cli.config, &args, shutdown).await,
        Command::Config {
            command: ConfigCommand::Check,
        } => admin::config_check(&cli.config),
        Command::Status { json } => status::status(&Config::load(&cli.config)?, json),
        Command::Reset(args) => admin::reset(&Config::load(&cli.config)?, &args),
        Command::Logout => admin::logout(&Config::load(&cli.config)?),
        // Served by the binary (`src/demo.rs`): the library does not link the emulator.
        Command::Emulator(_) | Command::Demo => Err(Fatal::internal(
            "the demo and emulator commands are run by the binary",
        )),
        Command::Backfill(args) => backfill(&cli.config, &args, shutdown).await,
        Command::Login => login::login(&Config::load(&cli.config)?, shutdown).await,
        Command::Doctor => doctor::doctor(&cli.config, shutdown).await,
        Command::Forget(args) => forget::forget(&cli.config, &args, shutdown).await,
    }
}

pub fn run_options(args: &RunArgs) -> RunOptions {
    RunOptions {
        dry_run: args.dry_run,
        teams: args.teams.clone(),
        shard: args.shard,
        max_duration: args.max_duration,
        mode: Mode::Incremental,
        person: None,
    }
}

async fn backfill(config_path: &Path, args: &BackfillArgs, shutdown: Shutdown) -> Result<Code> {
    let (since, until) = (args.since, args.until);
    if until.is_some_and(|u| u <= since) {
        return Err(Fatal::usage("--until must be later than --since"));
    }
    let mut opts = run_options(&args.run);
    opts.mode = Mode::Backfill {
        range: Range { since, until },
        restart: args.restart,
    };
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

/// `run` and `backfill`: the crawl with the store opened once, then (with
/// `--metrics-file`) the textfile, whatever the outcome.
async fn execute(
    config_path: &Path,
    opts: &RunOptions,
    metrics_file: Option<&Path>,
    shutdown: Shutdown,
) -> Result<Code> {
    let started = Instant::now();
    let prepared = prepare(config_path, opts);
    let (report, store) = match prepared {
        Ok((config, store)) => {
            let report = sync::run(&config, opts, store.clone(), shutdown).await;
            (Ok(report), Some(store))
        }
        Err(f) => (Err(f), None),
    };
    let finished = metrics::Finished {
        code: report.as_ref().map_or_else(|f| f.code, |r| r.code),
        duration: started.elapsed(),
        // A run that ended before it crawled anything has nothing to count.
        summary: report
            .as_ref()
            .ok()
            .filter(|r| r.fatal.is_none() || r.summary.channels > 0)
            .map(|r| &r.summary),
        dry_run: opts.dry_run,
        ended_at: chrono::Utc::now(),
    };
    if let (true, Some(store)) = (finished.succeeded(), &store) {
        metrics::remember_success(store, finished.ended_at);
    }
    if let Some(path) = metrics_file {
        metrics::record(path, store.as_deref(), &finished);
    }
    match report? {
        RunReport { fatal: Some(f), .. } => Err(f),
        RunReport { code, .. } => Ok(code),
    }
}

/// The config and the state store, opened once for the whole command.
fn prepare(config_path: &Path, opts: &RunOptions) -> Result<(Config, Arc<Store>)> {
    let config = Config::load(config_path)?;
    if !opts.dry_run {
        config.ingest_token()?;
    }
    let store = Arc::new(Store::open(&config.state_dir)?);
    Ok((config, store))
}
