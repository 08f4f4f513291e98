//! The file schema of `connector.toml`, typed: what serde reads, what `config check`
//! prints back (with the effective values filled in and credentials redacted) and what
//! `connector.toml.example` documents key by key (a test compares them).
//!
//! Every struct denies unknown keys, so a typo is an error instead of a silently ignored
//! setting; defaults are the ones the example shows.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::types::{ByteSize, Cloud, Flow, HumanDuration};

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct File {
    pub microsoft: MicrosoftFile,
    pub auth: AuthFile,
    pub crawl: CrawlFile,
    pub limits: LimitsFile,
    pub ingest: IngestFile,
    pub state: StateFile,
    pub privacy: PrivacyFile,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MicrosoftFile {
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub cloud: Cloud,
    pub graph_url: Option<String>,
    pub login_url: Option<String>,
    /// Extra PEM CA certificates trusted for Graph and the identity platform.
    pub ca_file: Option<PathBuf>,
    /// Plain `http://` to a non-loopback `graph_url` / `login_url`.
    pub allow_insecure_http: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthFile {
    pub flow: Flow,
    pub username: Option<String>,
    pub scopes: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrawlFile {
    pub include_private_teams: bool,
    pub teams: Vec<String>,
    pub exclude_teams: Vec<String>,
    pub include_replies: bool,
    pub initial_lookback: HumanDuration,
    pub reply_window: HumanDuration,
    pub reply_sweep_every: HumanDuration,
    pub keep_mention_names: bool,
    pub include_card_text: bool,
    /// Channel ids or `"Team/Channel"` patterns with `*`: never requested.
    pub exclude_channels: Vec<String>,
    /// Crawl shared channels whose host team is in another tenant (the directory cannot
    /// map their people, so they are reported and skipped by default).
    pub include_cross_tenant_channels: bool,
}

impl Default for CrawlFile {
    fn default() -> Self {
        CrawlFile {
            include_private_teams: false,
            teams: Vec::new(),
            exclude_teams: Vec::new(),
            include_replies: true,
            initial_lookback: "30d".into(),
            reply_window: "14d".into(),
            reply_sweep_every: "0s".into(),
            keep_mention_names: false,
            include_card_text: false,
            exclude_channels: Vec::new(),
            include_cross_tenant_channels: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsFile {
    pub requests_per_second: f64,
    pub per_channel_requests_per_second: f64,
    pub concurrency: usize,
    pub max_retries: u32,
    pub request_timeout: HumanDuration,
    /// Largest response body read, after decompression.
    pub max_response_size: ByteSize,
}

impl Default for LimitsFile {
    fn default() -> Self {
        LimitsFile {
            requests_per_second: 15.0,
            per_channel_requests_per_second: 1.0,
            concurrency: 8,
            max_retries: 8,
            request_timeout: "60s".into(),
            max_response_size: ByteSize(128_000_000),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestFile {
    pub url: Option<String>,
    pub batch_size: usize,
    pub timeout: HumanDuration,
    /// Extra PEM CA certificates trusted for the ingest.
    pub ca_file: Option<PathBuf>,
    /// Plain `http://` to a non-loopback ingest `url`.
    pub allow_insecure_http: bool,
}

impl Default for IngestFile {
    fn default() -> Self {
        IngestFile {
            url: None,
            batch_size: 100,
            timeout: "30s".into(),
            ca_file: None,
            allow_insecure_http: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateFile {
    pub dir: PathBuf,
}

impl Default for StateFile {
    fn default() -> Self {
        StateFile {
            dir: PathBuf::from("/var/lib/teams-connector"),
        }
    }
}

/// `[privacy]`: people who must never be mined. The entries are personal data: `config
/// check` shows how many there are, never which.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyFile {
    /// Mails, UPNs or object ids.
    pub exclude_people: Vec<String>,
    /// One entry per line, `#` comments; read again by every run.
    pub exclude_people_file: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_literals_parse() {
        // `HumanDuration::from(&str)` falls back to zero; the defaults must not.
        let f = File::default();
        let day = std::time::Duration::from_secs(86_400);
        assert_eq!(f.crawl.initial_lookback.0, 30 * day);
        assert_eq!(f.crawl.reply_window.0, 14 * day);
        assert_eq!(f.limits.request_timeout.0.as_secs(), 60);
        assert_eq!(f.ingest.timeout.0.as_secs(), 30);
    }
}
