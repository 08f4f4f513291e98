//! One function per command: turns parsed flags and the config into work, and the work's
//! outcome into an exit [`Code`]. `main` only prints what comes back.

mod admin;
mod demo;
mod login;

use std::path::Path;

use crate::cli::{Cli, Command, ConfigCommand, RunArgs};
use crate::config::{parse_duration, Config};
use crate::exit::{Code, Fatal, Result};
use crate::shutdown::Shutdown;
use crate::sync::{self, RunOptions, Shard};

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
        Command::Backfill(_) => Err(not_in_this_version("backfill", "history older than `crawl.initial_lookback` is out of reach; raise initial_lookback (delta reaches back 8 months) before the first run")),
        Command::Login => login::login(&Config::load(&cli.config)?, shutdown).await,
        Command::Doctor => Err(not_in_this_version("doctor", "use `config check` and a `run --dry-run`")),
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
    })
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
