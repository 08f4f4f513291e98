//! `status [--json]`: what the state store says, offline — the token, the last run and its
//! failures, every channel with a cursor, backfill progress, the scope of the last run
//! (teams and channels by kind, with those excluded by the configuration, unreachable or
//! in another tenant named by id) and whether an erasure (`forget`) is unfinished.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::exit::{Code, Fatal, Result};
use crate::graph::time::format as graph_time;
use crate::metrics::LAST_SUCCESS;
use crate::state::{ChannelKey, Store};
use crate::sync::scope::{Coverage, Entry, Scope, State, SCOPE_KEY};
use crate::sync::{Failure, Summary};

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
    /// The last run's teams and channels by kind and state (counts).
    coverage: Coverage,
    /// The last run's teams and channels, each with its kind and state (ids only).
    scope: Vec<Entry>,
    /// An unfinished `forget` (who it is for is not stored); null: none.
    forget: Option<ForgetView>,
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
    /// Left out by `[crawl] exclude_channels` (or another filter) in the last run: the
    /// cursor stays, the channel is not crawled.
    excluded: bool,
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

#[derive(Serialize)]
struct ForgetView {
    started_at: String,
    /// Channels finished, and channels with stored progress.
    channels_done: usize,
    channels: usize,
}

pub fn status(config: &Config, json: bool) -> Result<Code> {
    let store = Store::open(&config.state_dir)?;
    let view = view(config, &store)?;
    if json {
        let text =
            serde_json::to_string_pretty(&view).map_err(|e| Fatal::internal(e.to_string()))?;
        println!("{text}");
    } else {
        print_text(&view);
    }
    Ok(Code::Ok)
}

fn view(config: &Config, store: &Store) -> Result<StatusView> {
    let token = store.token_info()?;
    let last_run: Option<Summary> = store.last_run()?;
    let failures = last_run
        .as_ref()
        .map(|r| r.failures.clone())
        .unwrap_or_default();
    let scope: Scope = store.meta(SCOPE_KEY)?.unwrap_or_default();
    let failed = |team: &str, channel: &str| {
        failures
            .iter()
            .any(|f| f.team == team && f.channel.as_deref().is_none_or(|c| c == channel))
    };
    let excluded = |team: &str, channel: &str| {
        scope.entries.iter().any(|e| {
            e.team == team
                && e.state == State::Excluded
                && e.channel.as_deref().is_none_or(|c| c == channel)
        })
    };
    let time = |t: Option<DateTime<Utc>>| t.map(graph_time);
    let forget = match store.forget_job()? {
        Some(job) => {
            let (channels_done, channels) = store.forget_channels()?;
            Some(ForgetView {
                started_at: graph_time(job.started_at),
                channels_done,
                channels,
            })
        }
        None => None,
    };
    Ok(StatusView {
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
            .map(|(ChannelKey { team, channel }, cursor)| ChannelView {
                failed_in_last_run: failed(&team, &channel),
                excluded: excluded(&team, &channel),
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
            .map(|(ChannelKey { team, channel }, p)| BackfillView {
                team,
                channel,
                since: graph_time(p.since),
                until: p.until.map(graph_time),
                done: p.done,
                next: p.next,
                updated_at: graph_time(p.updated_at),
            })
            .collect(),
        last_run_exit_code: last_run.as_ref().map(|r| r.exit_code),
        last_run,
        failures,
        coverage: scope.coverage(),
        scope: scope.entries,
        forget,
    })
}

fn print_text(view: &StatusView) {
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
    if let Some(f) = &view.forget {
        println!(
            "forget: an erasure started {} is unfinished ({} of {} channel(s) done); run the same `forget` command again to finish it",
            f.started_at, f.channels_done, f.channels
        );
    }
    print_scope(view);
    print_channels(view);
    match &view.last_run {
        Some(r) => println!(
            "last run: {} exit {} — {} channels ({} failed), {} forwarded, {} deletes, {} requests, {} ms",
            graph_time(r.started_at), r.exit_code, r.channels, r.channels_failed, r.counts.forwarded, r.counts.deletes, r.requests, r.duration_ms
        ),
        None => println!("last run: none"),
    }
}

/// The coverage counts, then each team or channel the last run did not crawl.
fn print_scope(view: &StatusView) {
    if view.scope.is_empty() {
        return;
    }
    let counts =
        |table: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>| {
            table
                .iter()
                .map(|(kind, states)| {
                    let s: Vec<String> = states
                        .iter()
                        .filter(|(_, n)| **n > 0)
                        .map(|(s, n)| format!("{n} {}", s.replace('_', " ")))
                        .collect();
                    format!(
                        "{kind}: {}",
                        if s.is_empty() {
                            "none".into()
                        } else {
                            s.join(", ")
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
    println!("scope of the last run:");
    println!("  teams — {}", counts(&view.coverage.teams));
    println!("  channels — {}", counts(&view.coverage.channels));
    for e in view.scope.iter().filter(|e| e.state != State::Crawled) {
        let what = match (&e.channel, e.kind) {
            (Some(c), Some(k)) => {
                format!("{} channel {} / {c} ({})", k.name(), e.team, e.via.name())
            }
            _ => format!("team {} ({})", e.team, e.via.name()),
        };
        let state = match e.state {
            State::Excluded => "excluded by the configuration",
            State::Unreachable => "unreachable (Graph answered 403/404)",
            State::OtherTenant => "hosted in another tenant, skipped",
            State::Crawled => "crawled",
        };
        println!("  {what}: {state}");
    }
}

fn print_channels(view: &StatusView) {
    println!("channels with a cursor: {}", view.channels.len());
    for c in &view.channels {
        if c.excluded {
            println!(
                "  {} / {}: excluded by the configuration (cursor kept, not crawled)",
                c.team, c.channel
            );
            continue;
        }
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
}
