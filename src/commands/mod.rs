//! One function per command: turns parsed flags and the config into work, and the work's
//! outcome into an exit [`Code`]. `main` only prints what comes back.

mod admin;
mod demo;
mod login;

use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};

use crate::cli::{BackfillArgs, Cli, Command, ConfigCommand, RunArgs};
use crate::config::{parse_duration, Config};
use crate::exit::{Code, Fatal, Result};
use crate::shutdown::Shutdown;
use crate::sync::{self, Range, RunOptions, Shard};

pub async fn dispatch(cli: Cli, shutdown: Shutdown) -> Result<Code> {
    match cli.command {
        Command::Run(args) => run(&cli.config, &args, shutdown).await,
        Command::Config {
            command: ConfigCommand::Check,
        } => admin::config_check(&cli.config),
        Command::Status { json } => admin::status(&Config::load(&cli.config)?, json),
        Command::Reset(args) => admin::reset(&Config::load(&cli.config)?, &args),
        Command::Logout => admin::logout(&Config::load(&cli.config)?),
        Command::Emulator(args) => demo::emulator(args, shutdown).await,
        Command::Demo => demo::demo(shutdown).await,
        Command::Backfill(args) => backfill(&cli.config, &args, shutdown).await,
        Command::Login => login::login(&Config::load(&cli.config)?, shutdown).await,
        Command::Doctor => Err(not_in_this_version(
            "doctor",
            "use `config check` and a `run --dry-run`",
        )),
    }
}

fn not_in_this_version(command: &str, instead: &str) -> Fatal {
    Fatal::usage(format!(
        "`{command}` is not available in this version of teams-connector; {instead} (README, \"Not yet available\")"
    ))
}

pub fn run_options(args: &RunArgs) -> Result<RunOptions> {
    if args.metrics_file.is_some() {
        return Err(not_in_this_version(
            "--metrics-file",
            "read the run_summary log event",
        ));
    }
    Ok(RunOptions {
        dry_run: args.dry_run,
        teams: args.teams.clone(),
        shard: args
            .shard
            .as_deref()
            .map(Shard::parse)
            .transpose()
            .map_err(Fatal::usage)?,
        max_duration: args
            .max_duration
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|e| Fatal::usage(format!("--max-duration {e}")))?,
        backfill: None,
        restart_backfill: false,
    })
}

/// `2024-01-31` (midnight UTC) or RFC 3339.
fn parse_date(flag: &str, s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            Fatal::usage(format!(
                "{flag} {s:?} is not a date; write 2024-01-31 or 2024-01-31T08:00:00Z"
            ))
        })
}

async fn backfill(config_path: &Path, args: &BackfillArgs, shutdown: Shutdown) -> Result<Code> {
    let since = parse_date("--since", &args.since)?;
    let until = args
        .until
        .as_deref()
        .map(|u| parse_date("--until", u))
        .transpose()?;
    if until.is_some_and(|u| u <= since) {
        return Err(Fatal::usage("--until must be later than --since"));
    }
    let mut opts = run_options(&args.run)?;
    opts.backfill = Some(Range { since, until });
    opts.restart_backfill = args.restart;
    let config = Config::load(config_path)?;
    if !opts.dry_run {
        config.ingest_token()?;
    }
    let (_, code) = sync::run(&config, &opts, shutdown).await?;
    Ok(code)
}

async fn run(config_path: &Path, args: &RunArgs, shutdown: Shutdown) -> Result<Code> {
    let opts = run_options(args)?;
    let config = Config::load(config_path)?;
    if !opts.dry_run {
        config.ingest_token()?;
    }
    let (_, code) = sync::run(&config, &opts, shutdown).await?;
    Ok(code)
}
