//! Test harness: a Graph emulator and an ingest sink on 127.0.0.1, a temp state dir and
//! config, and the real `teams-connector` binary run against them. [`model`] is the
//! randomized multi-round check against the emulator's ground truth (also run by
//! `examples/soak.rs`, which includes this module by path).

#![allow(dead_code)]

pub mod model;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;

use graph_emulator::{Emulator, EmulatorOptions, Expected, Sink, TenantSpec, TruthMessage};
use serde_json::Value;
use teams_connector::transform::document_id;

pub const INGEST_TOKEN: &str = "test-ingest-token-7f3a";
/// How the emulator's refresh tokens begin (like Entra ID's).
const REFRESH_TOKEN_PREFIX: &str = "1.AXoA";

pub fn local() -> SocketAddr {
    ([127, 0, 0, 1], 0).into()
}

pub struct Harness {
    pub emu: Emulator,
    pub sink: Sink,
    pub dir: tempfile::TempDir,
    /// Extra `[section] key = value` lines, by section.
    pub extra: BTreeMap<String, Vec<String>>,
    pub env: BTreeMap<String, String>,
}

/// What one run of the binary did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The `run_summary` event from the JSON logs.
    pub fn summary(&self) -> Value {
        self.stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["target"] == "run_summary")
            .unwrap_or_else(|| panic!("no run_summary in stderr:\n{}", self.stderr))
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.summary()[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {name}"))
    }
}

impl Harness {
    pub async fn new(spec: TenantSpec) -> Harness {
        Self::with_options(spec, EmulatorOptions::default()).await
    }

    pub async fn with_options(spec: TenantSpec, opts: EmulatorOptions) -> Harness {
        let emu = Emulator::start(spec, opts, local())
            .await
            .expect("emulator starts");
        let sink = Sink::start(Some(INGEST_TOKEN.into()), local())
            .await
            .expect("sink starts");
        let mut env = BTreeMap::new();
        env.insert(
            "TEAMS_CONNECTOR_REFRESH_TOKEN".into(),
            emu.initial_refresh_token(),
        );
        env.insert("TEAMS_CONNECTOR_INGEST_TOKEN".into(), INGEST_TOKEN.into());
        Harness {
            emu,
            sink,
            dir: tempfile::tempdir().expect("temp dir"),
            extra: BTreeMap::new(),
            env,
        }
    }

    /// `(team, channel)` of a channel of a public team: one the default config crawls.
    pub fn public_channel(&self) -> (String, String) {
        let t = self
            .emu
            .truth()
            .into_iter()
            .find(|t| !t.team_private)
            .expect("a public team");
        (t.team_id, t.channel_id)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("connector.toml")
    }

    /// Adds `key = value` (TOML) to `[section]` of the generated config.
    pub fn set(&mut self, section: &str, line: &str) -> &mut Self {
        self.extra
            .entry(section.into())
            .or_default()
            .push(line.into());
        self
    }

    pub fn config_text(&self) -> String {
        let mut sections: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        sections.insert(
            "microsoft",
            vec![
                format!("tenant_id = {:?}", self.emu.tenant_id()),
                format!("client_id = {:?}", self.emu.client_id()),
                format!("graph_url = {:?}", self.emu.url()),
                format!("login_url = {:?}", self.emu.url()),
            ],
        );
        sections.insert(
            "limits",
            vec![
                "requests_per_second = 500".into(),
                "per_channel_requests_per_second = 100".into(),
                "max_retries = 2".into(),
            ],
        );
        sections.insert(
            "ingest",
            vec![
                format!("url = {:?}", self.sink.url()),
                "batch_size = 10".into(),
            ],
        );
        sections.insert(
            "state",
            vec![format!(
                "dir = {:?}",
                self.state_dir().display().to_string()
            )],
        );
        sections.insert("crawl", vec![]);
        for (section, lines) in &self.extra {
            let entry = sections.entry(section.as_str()).or_default();
            for line in lines {
                let key = line.split('=').next().unwrap_or("").trim().to_string();
                entry.retain(|l| l.split('=').next().unwrap_or("").trim() != key);
                entry.push(line.clone());
            }
        }
        sections
            .iter()
            .map(|(s, lines)| format!("[{s}]\n{}\n", lines.join("\n")))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn write_config(&self) {
        std::fs::write(self.config_path(), self.config_text()).expect("config written");
    }

    /// Runs the binary with the generated config and JSON logs.
    pub async fn run(&self, args: &[&str]) -> Run {
        self.write_config();
        let mut full = vec![
            "--config".to_string(),
            self.config_path().display().to_string(),
            "--log-format".into(),
            "json".into(),
        ];
        full.extend(args.iter().map(|s| s.to_string()));
        bin(&full, &self.env).await
    }

    /// The binary with the generated config, JSON logs and the harness environment, not yet
    /// started (for tests that must signal or kill it).
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        self.write_config();
        let mut cmd = std::process::Command::new(connector_bin());
        cmd.arg("--config")
            .arg(self.config_path())
            .args(["--log-format", "json"])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.env);
        cmd
    }

    /// Ground truth of what a first full run must forward: eligible messages of the
    /// teams this config covers.
    pub fn expected(&self, include_private_teams: bool) -> BTreeMap<String, TruthMessage> {
        self.emu
            .truth()
            .into_iter()
            .filter(|t| include_private_teams || !t.team_private)
            .filter(|t| matches!(t.expected, Expected::Forward { .. }))
            .map(|t| (self.doc_id(&t), t))
            .collect()
    }

    pub fn doc_id(&self, t: &TruthMessage) -> String {
        document_id(
            &self.emu.tenant_id(),
            &t.team_id,
            &t.channel_id,
            &t.thread_id,
            &t.message_id,
        )
    }

    /// Every document the sink accepted, by id (last one wins).
    pub fn received(&self) -> BTreeMap<String, Value> {
        self.sink
            .documents()
            .into_iter()
            .map(|d| (d["id"].as_str().expect("id").to_string(), d))
            .collect()
    }

    /// Asserts that no generated text, mail or token is anywhere in the state dir or in
    /// the logs of the given runs. The state store is where the refresh token belongs
    /// (DESIGN.md), so refresh tokens are looked for in the logs only.
    pub fn assert_private(&self, runs: &[&Run]) {
        let needles = self.emu.sensitive_strings();
        assert!(
            needles.iter().any(|n| n.contains('@')),
            "the scan knows the mails"
        );
        let is_refresh_token = |n: &str| n.starts_with(REFRESH_TOKEN_PREFIX);
        for (name, bytes) in files_under(&self.state_dir()) {
            for n in needles.iter().filter(|n| !is_refresh_token(n)) {
                assert!(
                    !contains(&bytes, n.as_bytes()),
                    "{name} contains the sensitive string {n:?}"
                );
            }
        }
        for (i, r) in runs.iter().enumerate() {
            for n in &needles {
                assert!(
                    !r.stderr.contains(n.as_str()),
                    "stderr of run {i} contains the sensitive string {n:?}"
                );
            }
        }
    }
}

impl Harness {
    /// Asserts that no trace of `people` (object id, mail, UPN, display name) is in the
    /// state dir or in the output of `runs`: opt-outs and erasures are counted, never
    /// named (issue 14). Extends [`Harness::assert_private`], which knows mails and UPNs
    /// but not ids and names.
    pub fn assert_private_people(&self, runs: &[&Run], people: &[graph_emulator::Person]) {
        let mut needles: Vec<String> = Vec::new();
        for p in people {
            needles.extend([p.id.clone(), p.upn.clone(), p.display_name.clone()]);
            needles.extend(p.mail.clone());
        }
        for (name, bytes) in files_under(&self.state_dir()) {
            for n in &needles {
                assert!(
                    !contains(&bytes, n.as_bytes()),
                    "{name} contains {n:?}, which names a person"
                );
            }
        }
        for (i, r) in runs.iter().enumerate() {
            for n in &needles {
                assert!(
                    !r.stderr.contains(n.as_str()) && !r.stdout.contains(n.as_str()),
                    "the output of run {i} contains {n:?}, which names a person"
                );
            }
        }
    }
}

/// The connector executable: `TEAMS_CONNECTOR_BIN` when set (the soak example sets it),
/// else the one Cargo built for this test binary.
pub fn connector_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("TEAMS_CONNECTOR_BIN") {
        return path.into();
    }
    match option_env!("CARGO_BIN_EXE_teams-connector") {
        Some(path) => path.into(),
        None => panic!("set TEAMS_CONNECTOR_BIN to the teams-connector binary"),
    }
}

pub async fn bin(args: &[String], env: &BTreeMap<String, String>) -> Run {
    let mut cmd = std::process::Command::new(connector_bin());
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd.envs(env);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("binary runs"))
        .await
        .expect("join");
    Run::from(out)
}

pub fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push((p.display().to_string(), bytes));
            }
        }
    }
    out
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// What the ingest holds: the latest document the sink accepted for each id.
pub fn latest(h: &Harness) -> BTreeMap<String, Value> {
    h.received()
}

/// Checks the one property that matters: the ingest holds exactly what the tenant holds.
/// Every message a connector must forward is there, latest version (author, mentions,
/// marker, creation date); every deleted one is absent or deleted; every other skipped one
/// never arrived. Returns the problems, one line each, so callers can print their context.
pub fn divergence(h: &Harness, include_private_teams: bool) -> Vec<String> {
    let held = latest(h);
    let mut problems = Vec::new();
    for t in h.emu.truth() {
        if t.team_private && !include_private_teams {
            continue;
        }
        let id = h.doc_id(&t);
        let doc = held.get(&id);
        let at = format!(
            "{}/{}/{}/{}",
            t.team_id, t.channel_id, t.thread_id, t.message_id
        );
        match (&t.expected, doc) {
            (Expected::Forward { .. }, None) => problems.push(format!("missing {at}")),
            (
                Expected::Forward {
                    author,
                    mentions,
                    marker,
                },
                Some(d),
            ) => {
                let mentioned: Vec<&str> = d["mentions"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let content = d["content"].as_str().unwrap_or("");
                if d["op"] != "upsert" {
                    problems.push(format!("{at}: latest is {} instead of an upsert", d["op"]));
                } else if d["author"].as_str() != Some(author) {
                    problems.push(format!("{at}: wrong author"));
                } else if mentioned != mentions.iter().map(String::as_str).collect::<Vec<_>>() {
                    problems.push(format!("{at}: wrong mentions"));
                } else if marker
                    .as_ref()
                    .is_some_and(|m| !content.contains(m.as_str()))
                {
                    problems.push(format!("{at}: stale text"));
                }
            }
            (Expected::Skip(graph_emulator::SkipKind::Deleted), Some(d)) if d["op"] != "delete" => {
                problems.push(format!("{at}: deleted in the tenant, still held"))
            }
            (Expected::Skip(graph_emulator::SkipKind::Deleted), _) | (Expected::Skip(_), None) => {}
            (Expected::Skip(why), Some(_)) => {
                problems.push(format!("{at}: must be skipped ({why:?}) but was sent"))
            }
        }
    }
    problems
}

/// Panics with every divergence between the ingest and the tenant.
pub fn assert_converged(h: &Harness, include_private_teams: bool) {
    let problems = divergence(h, include_private_teams);
    assert!(
        problems.is_empty(),
        "{} divergences between the ingest and the tenant:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The error a failed command ended with: the `error` field of the JSON `error` event (JSON
/// logs), or the text of the one `teams-connector: …` line (text logs). Panics unless there
/// is exactly one.
pub fn final_error(stderr: &str) -> String {
    let mut found: Vec<String> = Vec::new();
    for line in stderr.lines() {
        if let Some(text) = line.strip_prefix("teams-connector: ") {
            found.push(text.to_string());
        } else if let Ok(v) = serde_json::from_str::<Value>(line) {
            if v["target"] == "error" {
                found.push(v["error"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    assert_eq!(found.len(), 1, "one final error expected:\n{stderr}");
    found.remove(0)
}

/// Documents the ingest holds whose id names no message of the tenant: what a key that
/// mixes up teams, channels or threads produces.
pub fn phantoms(h: &Harness) -> Vec<String> {
    let known: std::collections::HashSet<String> =
        h.emu.truth().iter().map(|t| h.doc_id(t)).collect();
    latest(h)
        .into_iter()
        .filter(|(id, _)| !known.contains(id))
        .map(|(id, d)| format!("{id} ({})", d["op"]))
        .collect()
}

/// [`assert_converged`], and no document names a message the tenant does not have.
pub fn assert_exact(h: &Harness, include_private_teams: bool) {
    assert_converged(h, include_private_teams);
    let extra = phantoms(h);
    assert!(
        extra.is_empty(),
        "{} documents name no message of the tenant:\n{}",
        extra.len(),
        extra.join("\n")
    );
}
