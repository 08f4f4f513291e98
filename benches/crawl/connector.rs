//! The connector under test: its `connector.toml` for one emulator, the configuration it
//! actually runs with (`config check`, so defaults and `TEAMS_CONNECTOR__*` overrides are
//! what the ceiling is computed from), and one measured command.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::emu::Emu;
use crate::measure::{self, Measured};

/// How a case runs the connector against one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `run` on an empty state dir.
    First,
    /// `run` again right after: delta rounds with nothing new, and the reply sweep.
    Incremental,
    /// `backfill --since` this many days back.
    Backfill(u32),
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::First => "first run",
            Step::Incremental => "incremental",
            Step::Backfill(_) => "backfill",
        }
    }
}

/// The limits the connector runs with, as `config check` prints them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Effective {
    pub requests_per_second: Option<f64>,
    pub per_channel_requests_per_second: Option<f64>,
}

pub struct Connector {
    pub bin: PathBuf,
    pub config: PathBuf,
    env: Vec<(String, String)>,
}

impl Connector {
    /// Writes `connector.toml` in `dir` for `emu`: the connector's defaults plus `extra`
    /// (`(section, "key = value")`).
    pub fn new(bin: &Path, emu: &Emu, dir: &Path, extra: &[(&str, String)]) -> Connector {
        let mut sections: Vec<(&str, Vec<String>)> = vec![
            (
                "microsoft",
                vec![
                    format!("tenant_id = {:?}", emu.get("tenant_id")),
                    format!("client_id = {:?}", emu.get("client_id")),
                    format!("graph_url = {:?}", emu.get("graph_url")),
                    format!("login_url = {:?}", emu.get("login_url")),
                ],
            ),
            // Every generated team is crawled, private ones too: the shapes count them.
            ("crawl", vec!["include_private_teams = true".to_owned()]),
            ("limits", vec![]),
            ("ingest", vec![format!("url = {:?}", emu.get("ingest_url"))]),
            (
                "state",
                vec![format!(
                    "dir = {:?}",
                    dir.join("state").display().to_string()
                )],
            ),
        ];
        for (section, line) in extra {
            let at = sections
                .iter()
                .position(|(s, _)| s == section)
                .expect("a known section");
            sections[at].1.push(line.clone());
        }
        let toml: String = sections
            .iter()
            .map(|(s, lines)| format!("[{s}]\n{}\n", lines.join("\n")))
            .collect::<Vec<_>>()
            .join("\n");
        let config = dir.join("connector.toml");
        std::fs::write(&config, toml).expect("config written");
        let mut env = vec![
            ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
            (
                "TEAMS_CONNECTOR_REFRESH_TOKEN".to_owned(),
                emu.get("refresh_token").to_owned(),
            ),
            (
                "TEAMS_CONNECTOR_INGEST_TOKEN".to_owned(),
                emu.get("ingest_token").to_owned(),
            ),
        ];
        env.extend(std::env::vars().filter(|(k, _)| k.starts_with("TEAMS_CONNECTOR__")));
        Connector {
            bin: bin.to_owned(),
            config,
            env,
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--config")
            .arg(&self.config)
            .args(["--log-format", "json"])
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// The limits after defaults and overrides, from `config check`'s TOML.
    pub fn effective(&self) -> Effective {
        let out = self
            .command()
            .args(["config", "check"])
            .output()
            .expect("config check runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let parsed: toml::Table = toml::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "config check printed no TOML ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let limit = |key: &str| {
            let v = parsed.get("limits")?.get(key)?;
            v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
        };
        Effective {
            requests_per_second: limit("requests_per_second"),
            per_channel_requests_per_second: limit("per_channel_requests_per_second"),
        }
    }

    /// Runs one step, its log in `dir`.
    pub fn step(&self, step: Step, dir: &Path, timeout: Duration) -> Measured {
        let mut cmd = self.command();
        match step {
            Step::First | Step::Incremental => {
                cmd.arg("run");
            }
            Step::Backfill(days) => {
                let since = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
                cmd.args(["backfill", "--since"])
                    .arg(since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            }
        }
        let log = dir.join(format!("connector-{}.log", step.name().replace(' ', "-")));
        measure::run(cmd, &log, timeout)
    }
}
