//! The offline admin commands: `config check`, `status`, `reset`, `logout`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cli::ResetArgs;
use crate::config::Config;
use crate::exit::{Code, Fatal, Result};
use crate::graph::time::format as graph_time;
use crate::metrics::LAST_SUCCESS;
use crate::state::Store;
use crate::sync::{Failure, Summary};

pub fn config_check(path: &Path) -> Result<Code> {
    let config = Config::load(path)?;
    let mut problems = Vec::new();
    if config.secrets.ingest_token.is_none() {
        problems.push("no ingest token: set TEAMS_CONNECTOR_INGEST_TOKEN(_FILE) (only `run --dry-run` works without)");
    }
    print!("{}", config.redacted());
    if let Some(p) = problems.first() {
        return Err(Fatal::config(format!("{}: {p}", path.display())));
    }
    eprintln!("{}: configuration is valid", path.display());
    Ok(Code::Ok)
}

/// `status --json`: documented in README ("status --json"); fields are only ever added.
#[derive(Serialize)]
struct StatusView {
    /// Bumped if a field changes meaning or goes away.
    schema: u32,
    state_dir: String,
    flow: &'static str,
    refresh_token_stored: bool,
    refresh_token_rotated_at: Option<String>,
    /// Sealed with `TEAMS_CONNECTOR_STATE_KEY`.
    refresh_token_encrypted: bool,
    /// End of the last run that exited 0 (dry runs do not count).
    last_success_at: Option<String>,
    channels: Vec<ChannelView>,
    /// Per channel with stored `backfill` progress.
    backfills: Vec<BackfillView>,
    last_run: Option<Summary>,
    last_run_exit_code: Option<i32>,
    /// The teams and channels that failed in the last run (also in `last_run`).
    failures: Vec<Failure>,
}

#[derive(Serialize)]
struct ChannelView {
    team: String,
    channel: String,
    /// When (our clock) the channel last completed a round.
    synced_at: Option<String>,
    /// Newest `lastModifiedDateTime` handled: an expired cursor restarts from here.
    last_sync: Option<String>,
    /// The stored `@odata.deltaLink` the next run follows; null: the next run starts from
    /// `last_sync` or `crawl.initial_lookback`.
    delta_link: Option<String>,
    /// Pending work: the `@odata.nextLink` of an unfinished round, where the next run
    /// resumes; null when no round is unfinished.
    in_progress: Option<String>,
    failed_in_last_run: bool,
}

#[derive(Serialize)]
struct BackfillView {
    team: String,
    channel: String,
    /// The range, RFC 3339; `until` null: up to when the backfill ran.
    since: String,
    until: Option<String>,
    done: bool,
    /// The next message-list page a rerun reads; null once done.
    next: Option<String>,
    updated_at: String,
}

pub fn status(config: &Config, json: bool) -> Result<Code> {
    let store = Store::open(&config.state_dir)?;
    let token = store.token_info()?;
    let last_run: Option<Summary> = store.last_run()?;
    let failures = last_run
        .as_ref()
        .map(|r| r.failures.clone())
        .unwrap_or_default();
    let failed = |team: &str, channel: &str| {
        failures
            .iter()
            .any(|f| f.team == team && f.channel.as_deref().is_none_or(|c| c == channel))
    };
    let time = |t: Option<DateTime<Utc>>| t.map(graph_time);
    let view = StatusView {
        schema: 1,
        state_dir: config.state_dir.display().to_string(),
        flow: config.flow.name(),
        refresh_token_stored: token.is_some(),
        refresh_token_encrypted: token.as_ref().is_some_and(|t| t.encrypted),
        refresh_token_rotated_at: token.map(|t| graph_time(t.rotated_at)),
        last_success_at: time(store.meta(LAST_SUCCESS)?),
        channels: store
            .channels()?
            .into_iter()
            .map(|(team, channel, cursor)| ChannelView {
                failed_in_last_run: failed(&team, &channel),
                team,
                channel,
                synced_at: time(cursor.synced_at),
                last_sync: time(cursor.last_sync),
                delta_link: cursor.delta_link,
                in_progress: cursor.in_progress,
            })
            .collect(),
        backfills: store
            .backfills()?
            .into_iter()
            .map(|(team, channel, p)| BackfillView {
                team,
                channel,
                since: p.since,
                until: p.until,
                done: p.done,
                next: p.next,
                updated_at: graph_time(p.updated_at),
            })
            .collect(),
        last_run_exit_code: last_run.as_ref().map(|r| r.exit_code),
        last_run,
        failures,
    };
    if json {
        let text =
            serde_json::to_string_pretty(&view).map_err(|e| Fatal::internal(e.to_string()))?;
        println!("{text}");
        return Ok(Code::Ok);
    }
    println!("state dir: {}", view.state_dir);
    println!("auth flow: {}", view.flow);
    match &view.refresh_token_rotated_at {
        Some(at) => println!(
            "refresh token: stored (encrypted: {}), last rotated {at}",
            if view.refresh_token_encrypted { "yes" } else { "no" }
        ),
        None => println!(
            "refresh token: none stored (run `teams-connector login`, or seed TEAMS_CONNECTOR_REFRESH_TOKEN)"
        ),
    }
    match &view.last_success_at {
        Some(at) => println!("last successful run: {at}"),
        None => println!("last successful run: none recorded"),
    }
    if !view.backfills.is_empty() {
        let done = view.backfills.iter().filter(|b| b.done).count();
        println!(
            "backfill: {done} of {} channel(s) done",
            view.backfills.len()
        );
    }
    println!("channels with a cursor: {}", view.channels.len());
    for c in &view.channels {
        let last = c.synced_at.clone().unwrap_or_else(|| "never".into());
        let failed = if c.failed_in_last_run {
            " (failed in the last run)"
        } else {
            ""
        };
        let pending = if c.in_progress.is_some() {
            ", a round in progress"
        } else {
            ""
        };
        println!(
            "  {} / {}: last sync {last}{pending}{failed}",
            c.team, c.channel
        );
    }
    match &view.last_run {
        Some(r) => println!(
            "last run: {} exit {} — {} channels ({} failed), {} forwarded, {} deletes, {} requests, {} ms",
            graph_time(r.started_at), r.exit_code, r.channels, r.channels_failed, r.counts.forwarded, r.counts.deletes, r.requests, r.duration_ms
        ),
        None => println!("last run: none"),
    }
    Ok(Code::Ok)
}

pub fn reset(config: &Config, args: &ResetArgs) -> Result<Code> {
    if !args.all && args.team.is_none() && args.channel.is_none() {
        return Err(Fatal::usage("reset needs --team ID, --channel ID or --all"));
    }
    let store = Store::open(&config.state_dir)?;
    let scope = match (&args.team, &args.channel) {
        (None, None) => "every channel".to_string(),
        (t, c) => format!(
            "team {} channel {}",
            t.as_deref().unwrap_or("*"),
            c.as_deref().unwrap_or("*")
        ),
    };
    if !args.yes
        && !confirm(&format!(
            "Forget the cursors of {scope}? The next run re-sends their messages. [y/N] "
        ))?
    {
        eprintln!("nothing reset");
        return Ok(Code::Ok);
    }
    let n = store.reset_channels(args.team.as_deref(), args.channel.as_deref())?;
    eprintln!("forgot {n} channel cursor(s)");
    Ok(Code::Ok)
}

fn confirm(prompt: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(Fatal::usage(
            "reset asks for confirmation; pass --yes when not on a terminal",
        ));
    }
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Fatal::usage(format!("cannot read the answer: {e}")))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

pub fn logout(config: &Config) -> Result<Code> {
    let store = Store::open(&config.state_dir)?;
    if store.delete_refresh_token()? {
        eprintln!("deleted the stored refresh token; the next run needs `teams-connector login` or a new seed (TEAMS_CONNECTOR_REFRESH_TOKEN)");
    } else {
        eprintln!("no refresh token was stored");
    }
    eprintln!("the token itself stays valid until it expires: to revoke it, an Entra ID admin revokes the technical user's sessions (Users → the user → Revoke sessions); to withdraw the connector's consent: Entra ID → Enterprise applications → the app → Permissions");
    Ok(Code::Ok)
}
