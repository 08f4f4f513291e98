//! `doctor`: online checks of everything a scheduled run depends on, one line each, with
//! what to fix for every failure (README, "doctor").
//!
//! The checks go in the order a run needs them: config (with the opt-out file) → state
//! dir → token → scopes → `/me` → teams and their channels → one channel's messages, and
//! the ingest (independent of the rest). `info scope` lines show what a run covers and
//! what each `exclude_channels` entry matched ([`scope`]); `info privacy` how the opt-outs
//! resolve (counts only). A
//! check whose prerequisite failed is printed as `skip`. Signing in uses the normal
//! [`TokenSource`] on the state store, so a refresh token rotated by the check is saved
//! exactly as in a run. The exit code is the most severe failure: 78 config, 74 state dir
//! (75 while another run holds the lock), 77 sign-in or permissions, 69 unreachable.
//! `info` and `warn` lines ([`notes`]) say what the network path is made of and which
//! settings weaken the defaults; they do not change the exit code.

mod graph;
mod notes;
mod scope;
mod scopes;

use std::path::Path;
use std::sync::Arc;

use crate::auth::TokenSource;
use crate::config::{Config, PersonEntry};
use crate::exit::{Code, Fatal, Result};
use crate::graph::Graph;
use crate::http::{build_client, Counters};
use crate::ingest::{IngestClient, IngestError};
use crate::secret::redact_url;
use crate::shutdown::Shutdown;
use crate::state::Store;

use graph::{check_me, check_messages, check_teams};
use scopes::check_scopes;

/// Retries per request: enough to ride out one blip, few enough to answer quickly.
const DOCTOR_RETRIES: u32 = 2;

/// A failed check: exit code, what went wrong, what to do.
struct Failed {
    code: Code,
    why: String,
    fix: String,
}

impl Failed {
    fn new(code: Code, why: impl Into<String>, fix: impl Into<String>) -> Failed {
        Failed {
            code,
            why: why.into(),
            fix: fix.into(),
        }
    }
}

type Check<T> = std::result::Result<T, Failed>;

/// Prints each line as its check finishes and keeps the worst code.
#[derive(Default)]
struct Report {
    worst: Option<Code>,
    failed: usize,
    passed: usize,
}

impl Report {
    fn line<T>(&mut self, name: &str, result: Check<(T, String)>) -> Option<T> {
        match result {
            Ok((value, detail)) => {
                self.passed += 1;
                println!("ok    {name:<9} {detail}");
                Some(value)
            }
            Err(f) => {
                self.failed += 1;
                println!("FAIL  {name:<9} {}", f.why);
                println!("      {:<9} fix: {}", "", f.fix);
                if self.worst.is_none_or(|w| severity(f.code) > severity(w)) {
                    self.worst = Some(f.code);
                }
                None
            }
        }
    }

    fn skip(&mut self, name: &str, because: &str) {
        println!("skip  {name:<9} {because}");
    }

    /// An `info` or `warn` line: read with the checks, never counted.
    fn note(&mut self, verdict: &str, name: &str, text: &str) {
        println!("{verdict:<5} {name:<9} {text}");
    }

    fn finish(self) -> Code {
        match self.worst {
            None => {
                println!("all {} checks passed", self.passed);
                Code::Ok
            }
            Some(code) => {
                println!(
                    "{} of {} checks failed (exit {})",
                    self.failed,
                    self.failed + self.passed,
                    code.as_i32()
                );
                code
            }
        }
    }
}

/// Which failure decides the exit code: the one that blocks the most.
fn severity(code: Code) -> u8 {
    match code {
        Code::Config => 6,
        Code::StateDir => 5,
        Code::Temporary => 4,
        Code::Auth => 3,
        Code::Unavailable => 2,
        _ => 1,
    }
}

pub async fn doctor(config_path: &Path, shutdown: Shutdown) -> Result<Code> {
    let mut report = Report::default();
    let Some((config, people)) = report.line("config", check_config(config_path)) else {
        for name in [
            "state", "token", "scopes", "graph", "teams", "messages", "ingest",
        ] {
            report.skip(name, "needs a valid config");
        }
        return Ok(report.finish());
    };
    let warnings = notes::warnings(&config);
    report.note(
        "info",
        "network",
        &notes::network(&config, |k| std::env::var(k).ok()),
    );
    warn_about(&mut report, &warnings, "config");
    let counters = Arc::new(Counters::default());
    let http = build_client(
        config.limits.request_timeout,
        config.microsoft_ca_file.as_ref(),
    )?;
    let state = report.line("state", check_state(&config));
    warn_about(&mut report, &warnings, "state");
    let graph = match state {
        None => {
            for name in ["token", "scopes", "graph", "teams", "messages"] {
                report.skip(
                    name,
                    "needs the state store (the refresh token lives there)",
                );
            }
            None
        }
        Some(store) => {
            let tokens = TokenSource::new(
                &config,
                http.clone(),
                Arc::new(store),
                counters.clone(),
                shutdown.clone(),
            );
            report.line("token", check_token(tokens).await)
        }
    };
    if let Some(tokens) = graph {
        report.line("scopes", check_scopes(tokens.granted_scopes().as_deref()));
        let graph = Graph::for_config(&config, http, tokens, counters.clone(), shutdown.clone())
            .with_max_retries(config.limits.max_retries.min(DOCTOR_RETRIES));
        graph_checks(&mut report, &config, &Arc::new(graph), &people).await;
    }
    report.line("ingest", check_ingest(&config, counters, shutdown).await);
    Ok(report.finish())
}

fn warn_about(report: &mut Report, warnings: &[(&str, String)], check: &str) {
    for (_, text) in warnings.iter().filter(|(name, _)| *name == check) {
        report.note("warn", check, text);
    }
}

/// `/me`, then the teams and their channels, then one channel's messages; each needs the
/// one before. The scope and the opt-outs are shown on the way.
async fn graph_checks(
    report: &mut Report,
    config: &Config,
    graph: &Arc<Graph>,
    people: &[PersonEntry],
) {
    if report
        .line("graph", check_me(config, graph).await)
        .is_none()
    {
        report.skip("teams", "needs Graph");
        report.skip("messages", "needs Graph");
        return;
    }
    match report.line("teams", check_teams(config, graph).await) {
        Some(found) => {
            scope::notes(report, config, &found);
            report.line("messages", check_messages(graph, &found.channels).await);
        }
        None => report.skip("messages", "needs a team to read"),
    }
    scope::privacy(report, graph, people).await;
}

/// The config, and the opt-out list it names (read as a run reads it).
fn check_config(path: &Path) -> Check<((Config, Vec<PersonEntry>), String)> {
    match Config::load(path).and_then(|c| c.privacy.people().map(|p| (c, p))) {
        Ok((c, people)) => {
            let detail = format!(
                "{} is valid; {} opt-out entries",
                path.display(),
                people.len()
            );
            Ok(((c, people), detail))
        }
        Err(f) => Err(Failed::new(
            f.code,
            f.chain(),
            "run `teams-connector config check` and fix what it names",
        )),
    }
}

fn check_state(config: &Config) -> Check<(Store, String)> {
    let dir = &config.state_dir;
    let store = Store::open(dir).map_err(|f| {
        let fix = if f.code == Code::Temporary {
            "wait for the running job to finish, then run `doctor` again"
        } else {
            "make [state] dir exist and be writable by the user the job runs as"
        };
        Failed::new(f.code, f.chain(), fix)
    })?;
    let probe = dir.join(".doctor-probe");
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            Failed::new(
                Code::StateDir,
                format!("cannot write in {}: {e}", dir.display()),
                "make [state] dir writable by the user the job runs as (and the disk not full)",
            )
        })?;
    let detail = format!("{} is writable and not locked by a run", dir.display());
    Ok((store, detail))
}

async fn check_token(tokens: Result<TokenSource>) -> Check<(Arc<TokenSource>, String)> {
    let signed_in = match tokens {
        Ok(t) => t.access_token().await.map(|_| t),
        Err(f) => Err(f),
    };
    match signed_in {
        Ok(t) => Ok((
            Arc::new(t),
            "signed in; a rotated refresh token was saved".into(),
        )),
        Err(f) => {
            let fix = match f.code {
                Code::Auth => "sign the technical user in again (`teams-connector login`, or seed TEAMS_CONNECTOR_REFRESH_TOKEN) or grant consent, as the line says",
                Code::Config => "set the secret the line names",
                _ => "check that [microsoft] login_url (or cloud) is reachable from this host: DNS, proxy, firewall",
            };
            Err(Failed::new(f.code, f.chain(), fix))
        }
    }
}

/// POSTs an empty batch: reachable, and the token accepted, without sending a document.
async fn check_ingest(
    config: &Config,
    counters: Arc<Counters>,
    shutdown: Shutdown,
) -> Check<((), String)> {
    let token = config.ingest_token().map_err(|f| {
        Failed::new(
            f.code,
            f.chain(),
            "set TEAMS_CONNECTOR_INGEST_TOKEN or TEAMS_CONNECTOR_INGEST_TOKEN_FILE",
        )
    })?;
    let client = IngestClient {
        http: build_client(config.ingest.timeout, config.ingest.ca_file.as_ref())
            .map_err(internal)?,
        url: config.ingest.url.clone(),
        timeout: config.ingest.timeout,
        token: token.clone(),
        max_retries: config.limits.max_retries.min(DOCTOR_RETRIES),
        counters,
        shutdown,
    };
    match client.post(&[]).await {
        Ok(()) => Ok((
            (),
            format!(
                "{} accepts the token (empty batch)",
                redact_url(&config.ingest.url)
            ),
        )),
        Err(IngestError::Rejected {
            status: status @ (401 | 403),
            ..
        }) => Err(Failed::new(
            Code::Auth,
            format!(
                "{} refused the token (HTTP {status})",
                redact_url(&config.ingest.url)
            ),
            "set TEAMS_CONNECTOR_INGEST_TOKEN(_FILE) to a token the ingest accepts",
        )),
        Err(e @ IngestError::Rejected { .. }) => Err(Failed::new(
            Code::Config,
            e.to_string(),
            "check [ingest] url: it must be the documents endpoint of the ingest API",
        )),
        Err(e @ IngestError::Redirected { .. }) => Err(Failed::new(
            Code::Config,
            e.to_string(),
            "set [ingest] url to the address the redirect names, if it is the right service",
        )),
        Err(e) => Err(Failed::new(
            Code::Unavailable,
            e.to_string(),
            "check [ingest] url and that the ingest service is up and reachable from this host",
        )),
    }
}

fn internal(f: Fatal) -> Failed {
    Failed::new(f.code, f.chain(), "report this with the output above")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_failure_decides_the_exit_code() {
        let mut r = Report::default();
        r.line::<()>("a", Err(Failed::new(Code::Unavailable, "x", "y")));
        r.line::<()>("b", Err(Failed::new(Code::Auth, "x", "y")));
        r.line::<()>("c", Err(Failed::new(Code::Unavailable, "x", "y")));
        assert_eq!(r.finish(), Code::Auth);
    }
}
