//! `connector.toml` → a validated [`Config`], in one place.
//!
//! The file is deserialized straight into its typed schema ([`File`]: serde enums for the
//! flow and cloud, durations and byte sizes), after `TEAMS_CONNECTOR__SECTION__KEY`
//! variables override its keys; secrets come only from the environment ([`env`]). Then
//! [`validate`] checks ranges, URLs and CA files. Every problem is a one-line [`Fatal`]
//! with exit 78 that names the key and says what to write instead (DESIGN.md,
//! "Configuration").

mod env;
mod file;
mod net;
mod patterns;
mod privacy;
mod types;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::exit::{Fatal, Result};
use crate::secret::{redact_url, Secret};

pub use env::Secrets;
pub use file::{
    AuthFile, CrawlFile, File, IngestFile, LimitsFile, MicrosoftFile, PrivacyFile, StateFile,
};
pub use net::{is_loopback, CaFile};
pub use patterns::{ChannelName, ChannelPattern};
pub use privacy::{is_guid, PersonEntry, Privacy};
pub use types::{ago, parse_duration, ByteSize, Cloud, Flow, HumanDuration};

/// The least-privilege delegated scopes the crawl needs (README, "Permissions").
pub const DEFAULT_SCOPES: &[&str] = &[
    "offline_access",
    "User.ReadBasic.All",
    "Team.ReadBasic.All",
    "Channel.ReadBasic.All",
    "ChannelMessage.Read.All",
];

#[derive(Debug, Clone)]
pub struct Crawl {
    pub include_private_teams: bool,
    pub teams: Vec<String>,
    pub exclude_teams: Vec<String>,
    pub include_replies: bool,
    pub initial_lookback: Duration,
    pub reply_window: Duration,
    /// The reply sweep runs at most this often per channel (0: every run).
    pub reply_sweep_every: Duration,
    pub keep_mention_names: bool,
    pub include_card_text: bool,
    /// `exclude_channels`, parsed: these channels get no request.
    pub exclude_channels: Vec<ChannelPattern>,
    pub include_cross_tenant_channels: bool,
}

impl Crawl {
    /// The first `exclude_channels` entry that matches `c`, if any.
    pub fn excluded_by(&self, c: &ChannelName) -> Option<&ChannelPattern> {
        self.exclude_channels.iter().find(|p| p.matches(c))
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub requests_per_second: f64,
    pub per_channel_requests_per_second: f64,
    pub concurrency: usize,
    pub max_retries: u32,
    pub request_timeout: Duration,
    /// Largest response body read, in bytes after decompression (`max_response_size`).
    pub max_response_size: u64,
}

#[derive(Debug, Clone)]
pub struct Ingest {
    pub url: Url,
    pub batch_size: usize,
    pub timeout: Duration,
    /// Extra CA certificates to trust for the ingest (`[ingest] ca_file`).
    pub ca_file: Option<CaFile>,
}

/// The validated configuration every command works from.
#[derive(Debug, Clone)]
pub struct Config {
    pub tenant_id: String,
    pub client_id: String,
    pub graph_url: Url,
    pub login_url: Url,
    /// Extra CA certificates to trust for Graph and the identity platform
    /// (`[microsoft] ca_file`).
    pub microsoft_ca_file: Option<CaFile>,
    pub flow: Flow,
    pub username: Option<String>,
    /// Fully qualified scopes as sent to the token endpoint.
    pub scopes: Vec<String>,
    pub crawl: Crawl,
    pub limits: Limits,
    pub ingest: Ingest,
    pub state_dir: PathBuf,
    pub secrets: Secrets,
    /// `[privacy]`: the opt-out list, read again by every run.
    pub privacy: Privacy,
    /// The file as validated, with the effective URLs and scopes filled in.
    effective: File,
}

impl Config {
    /// Reads, overrides from the environment and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        Self::load_with_env(path, &env)
    }

    /// [`Config::load`] with an explicit environment, so tests need not mutate the process's.
    pub fn load_with_env(path: &Path, env: &BTreeMap<String, String>) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Fatal::config(format!(
                "cannot read config file {}: {e}; pass --config PATH or set TEAMS_CONNECTOR_CONFIG (connector.toml.example shows every key)",
                path.display()
            ))
        })?;
        let file = env::parse_file(&text, path, env)?;
        let secrets = Secrets::read(env)?;
        validate::validate(file, secrets)
    }

    /// The ingest token, required whenever documents are POSTed.
    pub fn ingest_token(&self) -> Result<&Secret> {
        self.secrets.ingest_token.as_ref().ok_or_else(|| {
            Fatal::config(
                "no ingest token: set TEAMS_CONNECTOR_INGEST_TOKEN or TEAMS_CONNECTOR_INGEST_TOKEN_FILE (or use --dry-run)",
            )
        })
    }

    /// The sections whose `allow_insecure_http` is set (`doctor` warns about them).
    pub fn insecure_http_sections(&self) -> Vec<&'static str> {
        let e = &self.effective;
        [
            ("microsoft", e.microsoft.allow_insecure_http),
            ("ingest", e.ingest.allow_insecure_http),
        ]
        .into_iter()
        .filter_map(|(section, set)| set.then_some(section))
        .collect()
    }

    /// The effective configuration as TOML: the file schema with defaults, the cloud's
    /// hosts and the qualified scopes filled in, credentials in URLs redacted, and the
    /// secrets shown only as set or not set.
    pub fn redacted(&self) -> String {
        let mut view = self.effective.clone();
        let m = &mut view.microsoft;
        m.graph_url = Some(redact_url(&self.graph_url));
        m.login_url = Some(redact_url(&self.login_url));
        view.ingest.url = Some(redact_url(&self.ingest.url));
        // The opt-out entries name people: only their number is shown.
        view.privacy.exclude_people = Vec::new();
        let mut out = toml::to_string(&view)
            .unwrap_or_else(|e| format!("# the effective config cannot be shown: {e}\n"));
        out.push_str(&format!(
            "# [privacy] exclude_people: {} entries (not shown)\n",
            self.privacy.inline_count()
        ));
        out.push_str("\n# secrets (from the environment)\n");
        for (var, set) in self.secrets.presence() {
            let shown = if set { "set" } else { "not set" };
            out.push_str(&format!("# {var}: {shown}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(extra: &str) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("connector.toml");
        let text = format!(
            "[microsoft]\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"c1\"\n{extra}\n[ingest]\nurl = \"https://ingest.example.com/v1/documents\"\n"
        );
        std::fs::write(&path, text).unwrap();
        Config::load_with_env(&path, &BTreeMap::new())
    }

    #[test]
    fn each_cloud_picks_its_hosts_and_scope_resource() {
        let cases = [
            (
                "global",
                "https://graph.microsoft.com/",
                "https://login.microsoftonline.com/",
            ),
            (
                "usgov",
                "https://graph.microsoft.us/",
                "https://login.microsoftonline.us/",
            ),
            (
                "usgov-dod",
                "https://dod-graph.microsoft.us/",
                "https://login.microsoftonline.us/",
            ),
            (
                "china",
                "https://microsoftgraph.chinacloudapi.cn/",
                "https://login.chinacloudapi.cn/",
            ),
        ];
        for (cloud, graph, login) in cases {
            let c = load(&format!("cloud = {cloud:?}")).unwrap();
            assert_eq!(c.graph_url.as_str(), graph, "{cloud}");
            assert_eq!(c.login_url.as_str(), login, "{cloud}");
            assert_eq!(c.scopes[0], "offline_access");
            assert_eq!(
                c.scopes[1],
                format!("{}User.ReadBasic.All", graph),
                "{cloud}"
            );
        }
    }

    #[test]
    fn url_overrides_win_but_scopes_keep_the_cloud_resource() {
        let c = load(
            "cloud = \"usgov\"\ngraph_url = \"http://127.0.0.1:8700\"\nlogin_url = \"http://127.0.0.1:8701\"",
        )
        .unwrap();
        assert_eq!(c.graph_url.as_str(), "http://127.0.0.1:8700/");
        assert_eq!(c.login_url.as_str(), "http://127.0.0.1:8701/");
        assert!(c.scopes[1].starts_with("https://graph.microsoft.us/"));
    }

    #[test]
    fn app_only_asks_for_the_default_scope_of_the_cloud() {
        let c = load("cloud = \"china\"\n[auth]\nflow = \"client_credentials\"").unwrap();
        assert_eq!(
            c.scopes,
            vec!["https://microsoftgraph.chinacloudapi.cn/.default"]
        );
        let c = load("[auth]\nscopes = [\"offline_access\", \"openid\", \"Team.ReadBasic.All\", \"https://graph.microsoft.com/Sites.Read.All\"]").unwrap();
        assert_eq!(
            c.scopes,
            vec![
                "offline_access",
                "openid",
                "https://graph.microsoft.com/Team.ReadBasic.All",
                "https://graph.microsoft.com/Sites.Read.All"
            ]
        );
    }

    #[test]
    fn the_password_flow_needs_a_username() {
        let e = load("[auth]\nflow = \"password\"").unwrap_err();
        assert_eq!(e.code, crate::exit::Code::Config);
        assert!(e.message.contains("[auth] username"), "{}", e.message);
    }
}
