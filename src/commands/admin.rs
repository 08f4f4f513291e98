//! The offline admin commands: `config check`, `status`, `reset`, `logout`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use serde::Serialize;

use crate::cli::ResetArgs;
use crate::config::{flow_name, Config};
use crate::exit::{Code, Fatal, Result};
use crate::state::{ChannelCursor, Store};
use crate::sync::Summary;

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

#[derive(Serialize)]
struct StatusView {
    state_dir: String,
    flow: &'static str,
    refresh_token_stored: bool,
    refresh_token_rotated_at: Option<String>,
    /// Sealed with `TEAMS_CONNECTOR_STATE_KEY`.
    refresh_token_encrypted: bool,
    channels: Vec<ChannelView>,
    last_run: Option<Summary>,
}

#[derive(Serialize)]
struct ChannelView {
    team: String,
    channel: String,
    #[serde(flatten)]
    cursor: ChannelCursor,
}

pub fn status(config: &Config, json: bool) -> Result<Code> {
    let store = Store::open(&config.state_dir)?;
    let token = store.token_info()?;
    let view = StatusView {
        state_dir: config.state_dir.display().to_string(),
        flow: flow_name(config.flow),
        refresh_token_stored: token.is_some(),
        refresh_token_encrypted: token.as_ref().is_some_and(|t| t.encrypted),
        refresh_token_rotated_at: token.map(|t| t.rotated_at.to_rfc3339()),
        channels: store
            .channels()?
            .into_iter()
            .map(|(team, channel, cursor)| ChannelView {
                team,
                channel,
                cursor,
            })
            .collect(),
        last_run: store.last_run()?,
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
    println!("channels with a cursor: {}", view.channels.len());
    for c in &view.channels {
        let last = c
            .cursor
            .synced_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "never".into());
        println!("  {} / {}: last sync {last}", c.team, c.channel);
    }
    match &view.last_run {
        Some(r) => println!(
            "last run: {} exit {} — {} channels ({} failed), {} forwarded, {} deletes, {} requests, {} ms",
            r.started_at, r.exit_code, r.channels, r.channels_failed, r.forwarded, r.deletes, r.requests, r.duration_ms
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
