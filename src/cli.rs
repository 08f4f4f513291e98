//! Command-line definitions (clap). Flags say *how* to run; `connector.toml` says *what*.
//!
//! Every flag value is parsed into its type here (`value_parser`), so a bad value is
//! clap's usage error (exit 64) naming the flag, and `commands` only sees typed values.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{parse_duration, PersonEntry};
use crate::sync::Shard;

/// The longest `--max-duration`: a run is scheduled at least yearly, and nothing longer
/// can overflow the deadline arithmetic.
const MAX_RUN_DURATION: Duration = Duration::from_secs(366 * 86_400);

#[derive(Debug, Parser)]
#[command(
    name = "teams-connector",
    version,
    about = "Forwards Microsoft Teams channel messages to an expertise-ingest endpoint.",
    long_about = "Signs in to Microsoft Graph as a delegated technical user, crawls the channel messages that are new since the last run (a delta cursor per channel) and forwards author, mentions, date and text to the ingest endpoint. Keeps no message data.\n\nExit codes: 0 ok, 3 partial, 64 usage, 69 unavailable, 70 internal, 74 state dir, 75 temporary (lock held, time budget), 77 sign-in needs a person, 78 bad config, 130/143 interrupted."
)]
pub struct Cli {
    /// Config file.
    #[arg(
        long,
        global = true,
        env = "TEAMS_CONNECTOR_CONFIG",
        default_value = "connector.toml"
    )]
    pub config: PathBuf,
    /// Log format; default: text on a terminal, json otherwise.
    #[arg(long, global = true, value_enum, env = "TEAMS_CONNECTOR_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors and the run summary (for cron).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The scheduled job: incremental crawl from the stored cursors.
    Run(RunArgs),
    /// One-off historical crawl of messages created in a date range, resumable.
    Backfill(BackfillArgs),
    /// Device-code sign-in of the technical user; stores the refresh token.
    Login,
    /// Delete the stored refresh token.
    Logout,
    /// Per-channel sync state, token and last run.
    Status {
        /// Machine-readable output (fields in README, "status --json").
        #[arg(long)]
        json: bool,
    },
    /// Forget cursors so the next run starts over.
    Reset(ResetArgs),
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Online checks: config, state dir, token, scopes, Graph, scope, opt-outs, ingest; says what to fix.
    Doctor,
    /// Erasure after an objection: delete every document one person wrote (resumable).
    Forget(ForgetArgs),
    /// Serve a generated tenant (Graph + identity) and an ingest sink in the foreground.
    Emulator(EmulatorArgs),
    /// The whole pipeline against an in-process emulator and sink: no tenant, no config.
    Demo,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config offline and print it with secrets redacted.
    Check,
}

#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    /// Write documents to stdout as NDJSON; POST nothing, move no cursor.
    #[arg(long)]
    pub dry_run: bool,
    /// Only this team (id or display name); repeatable; replaces [crawl] teams.
    #[arg(long = "team", value_name = "ID_OR_NAME")]
    pub teams: Vec<String>,
    /// Cover the teams of shard I of N (stable hash of the team id).
    #[arg(long, value_name = "I/N", env = "TEAMS_CONNECTOR_SHARD", value_parser = Shard::parse)]
    pub shard: Option<Shard>,
    /// Stop starting new pages after this long (e.g. 45m, at most 366d), keep progress, exit 75.
    #[arg(long, value_name = "DURATION", value_parser = max_duration)]
    pub max_duration: Option<Duration>,
    /// Also write a Prometheus textfile here at the end of the run (atomic rename).
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// First day (2024-01-31, midnight UTC) or instant (RFC 3339) to include.
    #[arg(long, value_parser = date)]
    pub since: DateTime<Utc>,
    /// First day or instant no longer included; default: now.
    #[arg(long, value_parser = date)]
    pub until: Option<DateTime<Utc>>,
    /// Forget stored backfill progress and start over.
    #[arg(long)]
    pub restart: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// The person: mail, UPN or Entra object id (the id works after they left).
    #[arg(long, value_name = "MAIL_OR_ID", value_parser = person)]
    pub person: PersonEntry,
    /// Only documents created from this day (2024-01-31, midnight UTC) or instant on.
    #[arg(long, value_parser = date)]
    pub since: Option<DateTime<Utc>>,
    /// Count what would be deleted; send nothing, store nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Abandon a stored, unfinished erasure of another person or range.
    #[arg(long)]
    pub restart: bool,
    /// Stop starting new pages after this long (e.g. 45m), keep progress, exit 75.
    #[arg(long, value_name = "DURATION", value_parser = max_duration)]
    pub max_duration: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Only this team id.
    #[arg(long)]
    pub team: Option<String>,
    /// Only this channel id.
    #[arg(long)]
    pub channel: Option<String>,
    /// Every channel.
    #[arg(long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Port for Graph and the identity platform (127.0.0.1).
    #[arg(long, default_value_t = 8700)]
    pub port: u16,
    /// Port for the ingest sink; default: port + 1.
    #[arg(long)]
    pub sink_port: Option<u16>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 3)]
    pub teams: usize,
    #[arg(long, default_value_t = 2)]
    pub channels: usize,
    /// Root messages per channel.
    #[arg(long, default_value_t = 20)]
    pub messages: usize,
    /// Most replies per root.
    #[arg(long, default_value_t = 3)]
    pub replies: usize,
    #[arg(long, default_value_t = 20)]
    pub users: usize,
    /// Bearer token the sink requires.
    #[arg(long, default_value = "emulator-ingest-token")]
    pub ingest_token: String,
    /// Root creation times spread over this many days before the start.
    #[arg(long, default_value_t = 20)]
    pub history_days: u32,
    /// Added to every Graph and token request, e.g. 50ms.
    #[arg(long, value_name = "DURATION", default_value = "0ms")]
    pub latency: String,
    /// Most of a random delay (uniform from 0) on each Graph request's way in, before the
    /// limits count it, e.g. 20ms: evenly spaced requests arrive unevenly, as over a network.
    #[arg(long, value_name = "DURATION", default_value = "0ms")]
    pub jitter: String,
    /// Requests/s per tenant on --tenant-routes (Graph: 20); over it: 429 + Retry-After.
    #[arg(long, value_name = "RPS")]
    pub tenant_rps: Option<f64>,
    /// Tenant bucket size; default: one second's worth.
    #[arg(long, value_name = "N")]
    pub tenant_burst: Option<f64>,
    /// The routes the tenant limit counts.
    #[arg(long, value_enum, value_name = "ROUTES", default_value_t = RouteSet::Messages)]
    pub tenant_routes: RouteSet,
    /// Requests/s per team, across its channels: every route under /teams/{id} (Graph: 4).
    #[arg(long, value_name = "RPS")]
    pub team_rps: Option<f64>,
    /// Team bucket size; default: one second's worth.
    #[arg(long, value_name = "N")]
    pub team_burst: Option<f64>,
    /// Requests/s per channel on the message routes (Graph: 1).
    #[arg(long, value_name = "RPS")]
    pub channel_rps: Option<f64>,
    /// Channel bucket size; default: one second's worth.
    #[arg(long, value_name = "N")]
    pub channel_burst: Option<f64>,
    /// Requests/s per user (of the access token) on --user-routes.
    #[arg(long, value_name = "RPS")]
    pub user_rps: Option<f64>,
    /// User bucket size; default: one second's worth.
    #[arg(long, value_name = "N")]
    pub user_burst: Option<f64>,
    /// The routes the user limit counts.
    #[arg(long, value_enum, value_name = "ROUTES", default_value_t = RouteSet::Messages)]
    pub user_routes: RouteSet,
    /// Share of the limits' 429s sent without Retry-After, 0 to 1 (Graph sends some bare).
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    pub omit_retry_after: f64,
    /// Roots in the first channel of the first team instead of --messages (one long channel).
    #[arg(long, value_name = "N")]
    pub long_channel: Option<usize>,
    /// Every root gets exactly --replies replies (--replies 1000: pages of tens of MB).
    #[arg(long)]
    pub exact_replies: bool,
    /// The sink answers every POST this much later, e.g. 250ms (a busy ingest).
    #[arg(long, value_name = "DURATION", default_value = "0ms")]
    pub sink_delay: String,
    /// Do not log a line per batch the sink accepts.
    #[arg(long)]
    pub quiet_batches: bool,
    /// Print the connection details (URLs, tenant, client id, tokens) as one JSON line on
    /// stdout instead of the instructions, for programs such as the benchmark.
    #[arg(long)]
    pub print_json: bool,
}

/// Which Graph routes an emulator limit counts (`--tenant-routes`, `--user-routes`).
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum RouteSet {
    /// Delta, the message list and replies (Graph's "GET channel message").
    Messages,
    /// Delta and replies only.
    DeltaReplies,
    /// Every Teams GET: joinedTeams, teams, a team, its channels, the message routes.
    Teams,
    /// Every Graph route, the directory and /me too.
    All,
}

/// `--max-duration`: a humantime duration, more than 0 and at most [`MAX_RUN_DURATION`].
fn max_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() || d > MAX_RUN_DURATION {
        return Err(format!("{s:?} is out of range; use 1ms to 366d, e.g. 45m"));
    }
    Ok(d)
}

/// `--person`: a mail, UPN or object id. The value is not repeated in the error: it names
/// a person.
fn person(s: &str) -> Result<PersonEntry, String> {
    PersonEntry::parse(s).ok_or_else(|| {
        "not a mail, UPN or object id (a GUID such as 48d31887-5fad-4d73-a9f5-3c356e68a038)"
            .to_string()
    })
}

/// `--since` / `--until`: `2024-01-31` (midnight UTC) or RFC 3339.
fn date(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("{s:?} is not a date; write 2024-01-31 or 2024-01-31T08:00:00Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_duration_is_bounded() {
        assert_eq!(max_duration("45m"), Ok(Duration::from_secs(2700)));
        assert!(max_duration("0s").is_err());
        assert!(max_duration("500000000000years").is_err());
        assert!(max_duration("367d").is_err());
    }

    #[test]
    fn dates_are_days_or_instants() {
        assert_eq!(
            date("2024-01-31").unwrap().to_rfc3339(),
            "2024-01-31T00:00:00+00:00"
        );
        assert_eq!(
            date("2024-01-31T08:00:00+02:00").unwrap().to_rfc3339(),
            "2024-01-31T06:00:00+00:00"
        );
        assert!(date("last tuesday").is_err());
    }
}
