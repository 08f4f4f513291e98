//! Issue 12's hostile servers: the real binary against a Graph, identity platform and
//! ingest that redirect, echo secrets, send bombs and endless bodies, loop, stall and
//! throttle forever — one test per network-facing hole, written against the contract
//! (DESIGN.md's exit codes and rules, the issue's "→" lines).
//!
//! [`Scene`] puts a [`server::Hostile`] in front of the emulator (Graph and identity) and
//! one in front of the sink (ingest), both proxying by default, plus a listener on
//! 127.0.0.2 that plays "another host"; a test adds the one rule it is about, e.g.
//!
//! ```text
//! let s = Scene::new().await;
//! let to = format!("{}{}", s.elsewhere.url(), s.token_path());
//! s.graph.answer(post("/oauth2/v2.0/token"), Answer::redirect(307, &to));
//! let run = s.run(&["run"]).await;
//! assert!(s.elsewhere.seen().is_empty());
//! ```
//!
//! Rules answer with any status, headers and body ([`answer::Payload`]: fixed, 1 GiB,
//! endless, stalled, gzip bomb — generated as read), with one computed from the request
//! (echoes, self-references), with the upstream's JSON edited, or late. Runs that may
//! balloon or hang go through [`child`], which watches memory and a deadline.

mod answer;
mod child;
mod server;

mod caps;
mod identity;
mod links;
mod privacy;
mod redirects;
mod time;

use graph_emulator::TenantSpec;
use serde_json::Value;

use crate::util::{Harness, Run, INGEST_TOKEN};
use child::{Limits, Watched};
use server::Hostile;

/// Small enough for a run in well under a second; two teams so a failure of one channel
/// leaves others to finish (exit 3, not 69).
pub fn spec() -> TenantSpec {
    TenantSpec {
        seed: 12,
        teams: 2,
        channels_per_team: 2,
        messages_per_channel: 6,
        max_replies: 2,
        users: 10,
        history_days: 10,
    }
}

pub struct Scene {
    pub h: Harness,
    /// In front of the emulator: `graph_url` and `login_url`.
    pub graph: Hostile,
    /// In front of the sink: `[ingest] url`.
    pub ingest: Hostile,
    /// Another host (127.0.0.2): nothing may reach it.
    pub elsewhere: Hostile,
}

impl Scene {
    pub async fn new() -> Scene {
        Self::with(spec()).await
    }

    pub async fn with(spec: TenantSpec) -> Scene {
        let mut h = Harness::new(spec).await;
        let graph = Hostile::proxy(&h.emu.url()).await;
        let sink = h.sink.url();
        let ingest = Hostile::proxy(sink.trim_end_matches("/v1/documents")).await;
        let elsewhere = Hostile::elsewhere().await;
        h.set("microsoft", &format!("graph_url = {:?}", graph.url()))
            .set("microsoft", &format!("login_url = {:?}", graph.url()))
            .set(
                "ingest",
                &format!("url = \"{}/v1/documents\"", ingest.url()),
            );
        Scene {
            h,
            graph,
            ingest,
            elsewhere,
        }
    }

    /// The token endpoint's path as the connector calls it.
    pub fn token_path(&self) -> String {
        format!("/{}/oauth2/v2.0/token", self.h.emu.tenant_id())
    }

    /// A run with JSON logs (`extra` flags go before the command, e.g. `-vv`).
    pub async fn run(&self, args: &[&str]) -> Run {
        self.h.run(args).await
    }

    /// A watched run: memory, deadline, and the chosen log format.
    pub async fn watch(&self, format: &str, args: &[&str], limits: Limits) -> Watched {
        child::watch(child::command(&self.h, format, args), limits).await
    }

    pub async fn status(&self) -> Value {
        let status = self.h.run(&["status", "--json"]).await;
        serde_json::from_str(&status.stdout)
            .unwrap_or_else(|e| panic!("status --json: {e}\n{}\n{}", status.stdout, status.stderr))
    }

    /// The stored cursors (`delta_link`) by channel id.
    pub async fn cursors(&self) -> Vec<(String, Option<String>)> {
        let v = self.status().await;
        v["channels"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| {
                        let id = c["channel"].as_str().unwrap_or_default().to_string();
                        (id, c["delta_link"].as_str().map(str::to_string))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The stored failure reasons of the last run (`status --json`).
    pub async fn failure_reasons(&self) -> Vec<String> {
        let v = self.status().await;
        v["failures"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|f| f["reason"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A channel of a public team (one the default config crawls): (team, channel).
    pub fn public_channel(&self) -> (String, String) {
        self.h.public_channel()
    }

    /// Every secret and every piece of tenant content a scan must not find: the emulator's
    /// markers, mails, UPNs and issued tokens, and the ingest token.
    pub fn needles(&self) -> Vec<String> {
        let mut n = self.h.emu.sensitive_strings();
        n.push(INGEST_TOKEN.to_string());
        n
    }

    /// Panics on the first needle found in any of the named texts. A token leaks even when
    /// it is cut short: of a long needle its first and last 16 characters count too (not
    /// the start of a JWT, which is the same public header for every token).
    pub fn assert_clean(&self, texts: &[(&str, &str)]) {
        let mut needles = self.needles();
        let fragments: Vec<String> = needles
            .iter()
            .filter(|n| n.len() >= 32 && n.is_ascii())
            .flat_map(|n| {
                let head = (!n.starts_with("eyJ")).then(|| n[..16].to_string());
                head.into_iter().chain([n[n.len() - 16..].to_string()])
            })
            .collect();
        needles.extend(fragments);
        for (name, text) in texts {
            for n in &needles {
                assert!(
                    !text.contains(n.as_str()),
                    "{name} contains the sensitive string {n:?}:\n{}",
                    child::tail(text, 3000)
                );
            }
        }
    }
}

/// The connector's own final error: the text line (`teams-connector: …`) or, with JSON
/// logs, the `error` field of the `error` event; `None` if it printed none.
pub fn error_line(stderr: &str) -> Option<String> {
    stderr.lines().find_map(|l| {
        if l.starts_with("teams-connector: ") {
            return Some(l.to_string());
        }
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        (v["target"] == "error").then(|| v["error"].as_str().unwrap_or_default().to_string())
    })
}

pub fn assert_no_panic(run: &Run) {
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert_ne!(run.code, 101, "{}", run.stderr);
}

/// The scene itself: with no rule, the fronts are transparent (links rewritten both ways)
/// and a run converges in the memory the cap tests compare against.
#[tokio::test(flavor = "multi_thread")]
async fn with_no_rule_the_hostile_fronts_are_transparent() {
    let s = Scene::new().await;
    let w = s.watch("json", &["run"], Limits::deadline(20)).await;
    assert_eq!(w.run.code, 0, "{}", w.describe());
    crate::util::assert_converged(&s.h, false);
    assert!(s.graph.count("/messages/delta") > 0 && s.ingest.count("/v1/documents") > 0);
    assert!(s.elsewhere.seen().is_empty());
    println!("a plain run: peak {} MiB in {:?}", w.peak_mib, w.elapsed);
    let again = s.run(&["run"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    s.h.assert_private(&[&w.run, &again]);
}
