//! `connector.toml` → a validated [`Config`], in one place.
//!
//! The file schema ([`File`]) denies unknown keys so a typo is an error, not a silently
//! ignored setting. `TEAMS_CONNECTOR__SECTION__KEY` variables override file keys before
//! validation; secrets come only from `TEAMS_CONNECTOR_<NAME>` or `<NAME>_FILE`
//! (DESIGN.md, "Configuration"). Every problem becomes a one-line [`Fatal`] with exit 78
//! that names the key and says what to write instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::exit::{Fatal, Result};
use crate::secret::Secret;

/// Prefix of the variables that override file keys: `TEAMS_CONNECTOR__LIMITS__CONCURRENCY`.
const OVERRIDE_PREFIX: &str = "TEAMS_CONNECTOR__";

/// The least-privilege delegated scopes the crawl needs (README, "Permissions").
pub const DEFAULT_SCOPES: &[&str] = &[
    "offline_access",
    "User.ReadBasic.All",
    "Team.ReadBasic.All",
    "Channel.ReadBasic.All",
    "ChannelMessage.Read.All",
];

#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct File {
    pub microsoft: MicrosoftFile,
    pub auth: AuthFile,
    pub crawl: CrawlFile,
    pub limits: LimitsFile,
    pub ingest: IngestFile,
    pub state: StateFile,
}

#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MicrosoftFile {
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub cloud: Option<String>,
    pub graph_url: Option<String>,
    pub login_url: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthFile {
    pub flow: Option<String>,
    pub username: Option<String>,
    pub scopes: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrawlFile {
    pub include_private_teams: bool,
    pub teams: Vec<String>,
    pub exclude_teams: Vec<String>,
    pub include_replies: bool,
    pub initial_lookback: String,
    pub reply_window: String,
    pub keep_mention_names: bool,
    pub include_card_text: bool,
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
            keep_mention_names: false,
            include_card_text: false,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsFile {
    pub requests_per_second: f64,
    pub per_channel_requests_per_second: f64,
    pub concurrency: usize,
    pub max_retries: u32,
    pub request_timeout: String,
}

impl Default for LimitsFile {
    fn default() -> Self {
        LimitsFile {
            requests_per_second: 15.0,
            per_channel_requests_per_second: 1.0,
            concurrency: 8,
            max_retries: 8,
            request_timeout: "60s".into(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestFile {
    pub url: Option<String>,
    pub batch_size: usize,
    pub timeout: String,
}

impl Default for IngestFile {
    fn default() -> Self {
        IngestFile {
            url: None,
            batch_size: 100,
            timeout: "30s".into(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
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

/// How the connector signs in (`[auth] flow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    RefreshToken,
    Password,
    ClientCredentials,
}

/// The sovereign cloud (`[microsoft] cloud`): picks the Graph and login hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Global,
    UsGov,
    UsGovDod,
    China,
}

impl Cloud {
    fn parse(s: &str) -> Option<Cloud> {
        match s {
            "global" => Some(Cloud::Global),
            "usgov" => Some(Cloud::UsGov),
            "usgov-dod" => Some(Cloud::UsGovDod),
            "china" => Some(Cloud::China),
            _ => None,
        }
    }
    /// Graph host; also the resource the scopes are named after.
    pub fn graph_url(self) -> &'static str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::UsGov => "https://graph.microsoft.us",
            Cloud::UsGovDod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }
    pub fn login_url(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGov | Cloud::UsGovDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }
}

/// Secrets, read from the environment or from the files the `_FILE` variables name.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    pub refresh_token: Option<Secret>,
    pub password: Option<Secret>,
    pub client_secret: Option<Secret>,
    pub ingest_token: Option<Secret>,
    pub state_key: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct Crawl {
    pub include_private_teams: bool,
    pub teams: Vec<String>,
    pub exclude_teams: Vec<String>,
    pub include_replies: bool,
    pub initial_lookback: Duration,
    pub reply_window: Duration,
    pub keep_mention_names: bool,
    pub include_card_text: bool,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub requests_per_second: f64,
    pub per_channel_requests_per_second: f64,
    pub concurrency: usize,
    pub max_retries: u32,
    pub request_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Ingest {
    pub url: Url,
    pub batch_size: usize,
    pub timeout: Duration,
}

/// The validated configuration every command works from.
#[derive(Debug, Clone)]
pub struct Config {
    pub tenant_id: String,
    pub client_id: String,
    pub cloud: Cloud,
    pub graph_url: Url,
    pub login_url: Url,
    pub flow: Flow,
    pub username: Option<String>,
    /// Fully qualified scopes as sent to the token endpoint.
    pub scopes: Vec<String>,
    pub crawl: Crawl,
    pub limits: Limits,
    pub ingest: Ingest,
    pub state_dir: PathBuf,
    pub secrets: Secrets,
    /// Where the file was read from, for messages.
    pub source: PathBuf,
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
        let file = parse_file(&text, path, env)?;
        let secrets = read_secrets(env)?;
        validate(file, secrets, path)
    }

    /// The ingest token, required whenever documents are POSTed.
    pub fn ingest_token(&self) -> Result<&Secret> {
        self.secrets.ingest_token.as_ref().ok_or_else(|| {
            Fatal::config(
                "no ingest token: set TEAMS_CONNECTOR_INGEST_TOKEN or TEAMS_CONNECTOR_INGEST_TOKEN_FILE (or use --dry-run)",
            )
        })
    }

    /// The effective configuration as TOML, secrets shown only as present or absent.
    pub fn redacted(&self) -> String {
        let present = |s: &Option<Secret>| if s.is_some() { "set" } else { "not set" };
        let list = |v: &[String]| format!("{v:?}");
        let dur = |d: Duration| humantime::format_duration(d).to_string();
        let mut out = String::new();
        out.push_str(&format!(
            "[microsoft]\ntenant_id = {:?}\nclient_id = {:?}\ngraph_url = {:?}\nlogin_url = {:?}\n\n",
            self.tenant_id,
            self.client_id,
            self.graph_url.as_str(),
            self.login_url.as_str()
        ));
        out.push_str(&format!(
            "[auth]\nflow = {:?}\nscopes = {}\n",
            flow_name(self.flow),
            list(&self.scopes)
        ));
        if let Some(u) = &self.username {
            out.push_str(&format!("username = {u:?}\n"));
        }
        let c = &self.crawl;
        out.push_str(&format!(
            "\n[crawl]\ninclude_private_teams = {}\nteams = {}\nexclude_teams = {}\ninclude_replies = {}\ninitial_lookback = {:?}\nreply_window = {:?}\nkeep_mention_names = {}\ninclude_card_text = {}\n",
            c.include_private_teams,
            list(&c.teams),
            list(&c.exclude_teams),
            c.include_replies,
            dur(c.initial_lookback),
            dur(c.reply_window),
            c.keep_mention_names,
            c.include_card_text
        ));
        let l = &self.limits;
        out.push_str(&format!(
            "\n[limits]\nrequests_per_second = {}\nper_channel_requests_per_second = {}\nconcurrency = {}\nmax_retries = {}\nrequest_timeout = {:?}\n",
            l.requests_per_second,
            l.per_channel_requests_per_second,
            l.concurrency,
            l.max_retries,
            dur(l.request_timeout)
        ));
        out.push_str(&format!(
            "\n[ingest]\nurl = {:?}\nbatch_size = {}\ntimeout = {:?}\n\n[state]\ndir = {:?}\n",
            self.ingest.url.as_str(),
            self.ingest.batch_size,
            dur(self.ingest.timeout),
            self.state_dir.display().to_string()
        ));
        let s = &self.secrets;
        out.push_str(&format!(
            "\n# secrets (from the environment)\n# TEAMS_CONNECTOR_REFRESH_TOKEN: {}\n# TEAMS_CONNECTOR_PASSWORD: {}\n# TEAMS_CONNECTOR_CLIENT_SECRET: {}\n# TEAMS_CONNECTOR_INGEST_TOKEN: {}\n# TEAMS_CONNECTOR_STATE_KEY: {}\n",
            present(&s.refresh_token),
            present(&s.password),
            present(&s.client_secret),
            present(&s.ingest_token),
            present(&s.state_key)
        ));
        out
    }
}

pub fn flow_name(flow: Flow) -> &'static str {
    match flow {
        Flow::RefreshToken => "refresh_token",
        Flow::Password => "password",
        Flow::ClientCredentials => "client_credentials",
    }
}

/// TOML text plus environment overrides → the file schema.
fn parse_file(text: &str, path: &Path, env: &BTreeMap<String, String>) -> Result<File> {
    let mut value: toml::Table = toml::from_str(text).map_err(|e| {
        Fatal::config(format!(
            "{} is not valid TOML: {}",
            path.display(),
            one_line(&e.to_string())
        ))
    })?;
    apply_overrides(&mut value, env)?;
    File::deserialize(toml::Value::Table(value)).map_err(|e| {
        Fatal::config(format!(
            "{}: {}; see connector.toml.example for every key",
            path.display(),
            one_line(&e.to_string())
        ))
    })
}

/// `TEAMS_CONNECTOR__SECTION__KEY=value` → `[section] key = value`. The value is read as a
/// TOML literal when it is one (`4`, `true`, `["a"]`), else as a string.
fn apply_overrides(table: &mut toml::Table, env: &BTreeMap<String, String>) -> Result<()> {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(OVERRIDE_PREFIX) else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            return Err(Fatal::config(format!(
                "environment variable {name} must have the form TEAMS_CONNECTOR__SECTION__KEY"
            )));
        };
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        let section = section.to_ascii_lowercase();
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section_table) = entry.as_table_mut() else {
            return Err(Fatal::config(format!("[{section}] must be a table")));
        };
        section_table.insert(key.to_ascii_lowercase(), value);
    }
    Ok(())
}

/// A secret from `TEAMS_CONNECTOR_<NAME>` or the file `TEAMS_CONNECTOR_<NAME>_FILE` names.
fn secret(env: &BTreeMap<String, String>, name: &str) -> Result<Option<Secret>> {
    let var = format!("TEAMS_CONNECTOR_{name}");
    let file_var = format!("{var}_FILE");
    match (env.get(&var), env.get(&file_var)) {
        (Some(_), Some(_)) => Err(Fatal::config(format!(
            "both {var} and {file_var} are set; keep one"
        ))),
        (Some(v), None) if v.trim().is_empty() => {
            Err(Fatal::config(format!("{var} is set but empty")))
        }
        (Some(v), None) => Ok(Some(Secret::new(v.trim()))),
        (None, Some(p)) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                Fatal::config(format!("{file_var} names {p}, which cannot be read: {e}"))
            })?;
            if text.trim().is_empty() {
                return Err(Fatal::config(format!(
                    "{file_var} names {p}, which is empty"
                )));
            }
            Ok(Some(Secret::new(text.trim())))
        }
        (None, None) => Ok(None),
    }
}

fn read_secrets(env: &BTreeMap<String, String>) -> Result<Secrets> {
    Ok(Secrets {
        refresh_token: secret(env, "REFRESH_TOKEN")?,
        password: secret(env, "PASSWORD")?,
        client_secret: secret(env, "CLIENT_SECRET")?,
        ingest_token: secret(env, "INGEST_TOKEN")?,
        state_key: secret(env, "STATE_KEY")?,
    })
}

fn validate(file: File, secrets: Secrets, path: &Path) -> Result<Config> {
    let m = file.microsoft;
    let tenant_id = required(
        m.tenant_id,
        "[microsoft] tenant_id",
        "contoso.onmicrosoft.com or the tenant's GUID",
    )?;
    let client_id = required(
        m.client_id,
        "[microsoft] client_id",
        "the application (client) id of the app registration",
    )?;
    let cloud_name = m.cloud.unwrap_or_else(|| "global".into());
    let cloud = Cloud::parse(&cloud_name).ok_or_else(|| {
        Fatal::config(format!(
            "[microsoft] cloud = {cloud_name:?} is unknown; use global, usgov, usgov-dod or china"
        ))
    })?;
    let graph_url = http_url(
        m.graph_url.as_deref().unwrap_or(cloud.graph_url()),
        "[microsoft] graph_url",
    )?;
    let login_url = http_url(
        m.login_url.as_deref().unwrap_or(cloud.login_url()),
        "[microsoft] login_url",
    )?;

    let flow = match file.auth.flow.as_deref().unwrap_or("refresh_token") {
        "refresh_token" => Flow::RefreshToken,
        "password" => Flow::Password,
        "client_credentials" => Flow::ClientCredentials,
        other => {
            return Err(Fatal::config(format!(
            "[auth] flow = {other:?} is unknown; use refresh_token, password or client_credentials"
        )))
        }
    };
    if flow == Flow::Password && file.auth.username.is_none() {
        return Err(Fatal::config(
            "[auth] flow = \"password\" needs [auth] username",
        ));
    }
    let scopes = qualify_scopes(file.auth.scopes, flow, cloud);

    let c = file.crawl;
    let crawl = Crawl {
        initial_lookback: duration(&c.initial_lookback, "[crawl] initial_lookback")?,
        reply_window: duration(&c.reply_window, "[crawl] reply_window")?,
        include_private_teams: c.include_private_teams,
        teams: c.teams,
        exclude_teams: c.exclude_teams,
        include_replies: c.include_replies,
        keep_mention_names: c.keep_mention_names,
        include_card_text: c.include_card_text,
    };
    let l = file.limits;
    positive(l.requests_per_second, "[limits] requests_per_second")?;
    positive(
        l.per_channel_requests_per_second,
        "[limits] per_channel_requests_per_second",
    )?;
    if l.concurrency == 0 || l.concurrency > 256 {
        return Err(Fatal::config(format!(
            "[limits] concurrency = {} is out of range; use 1 to 256 (8 is a good start)",
            l.concurrency
        )));
    }
    let limits = Limits {
        requests_per_second: l.requests_per_second,
        per_channel_requests_per_second: l.per_channel_requests_per_second,
        concurrency: l.concurrency,
        max_retries: l.max_retries,
        request_timeout: duration(&l.request_timeout, "[limits] request_timeout")?,
    };
    let i = file.ingest;
    let url = required(
        i.url,
        "[ingest] url",
        "the expertise-ingest endpoint, https://…/v1/documents",
    )?;
    if i.batch_size == 0 || i.batch_size > 1000 {
        return Err(Fatal::config(format!(
            "[ingest] batch_size = {} is out of range; use 1 to 1000",
            i.batch_size
        )));
    }
    let ingest = Ingest {
        url: http_url(&url, "[ingest] url")?,
        batch_size: i.batch_size,
        timeout: duration(&i.timeout, "[ingest] timeout")?,
    };
    if file.state.dir.as_os_str().is_empty() {
        return Err(Fatal::config(
            "[state] dir is empty; name a directory, e.g. /var/lib/teams-connector",
        ));
    }
    Ok(Config {
        tenant_id,
        client_id,
        cloud,
        graph_url,
        login_url,
        flow,
        username: file.auth.username,
        scopes,
        crawl,
        limits,
        ingest,
        state_dir: file.state.dir,
        secrets,
        source: path.to_path_buf(),
    })
}

/// Scopes as the token endpoint wants them: Graph permissions prefixed with the cloud's
/// Graph resource, OpenID scopes bare; app-only uses `{graph}/.default`.
fn qualify_scopes(scopes: Option<Vec<String>>, flow: Flow, cloud: Cloud) -> Vec<String> {
    let resource = cloud.graph_url();
    if flow == Flow::ClientCredentials {
        return vec![format!("{resource}/.default")];
    }
    let scopes = scopes.unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect());
    scopes
        .into_iter()
        .map(|s| match s.as_str() {
            "offline_access" | "openid" | "profile" | "email" => s,
            _ if s.starts_with("https://") => s,
            _ => format!("{resource}/{s}"),
        })
        .collect()
}

fn required(v: Option<String>, key: &str, hint: &str) -> Result<String> {
    match v {
        Some(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ => Err(Fatal::config(format!("{key} is missing; set it to {hint}"))),
    }
}

fn http_url(s: &str, key: &str) -> Result<Url> {
    let url = Url::parse(s).map_err(|e| {
        Fatal::config(format!(
            "{key} = {s:?} is not a URL ({e}); write e.g. https://host/path"
        ))
    })?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(Fatal::config(format!(
            "{key} = {s:?} must be an http:// or https:// URL"
        )));
    }
    if url.host_str().is_none() {
        return Err(Fatal::config(format!("{key} = {s:?} has no host")));
    }
    Ok(url)
}

/// Durations as `30d`, `45m`, `1h 30m` (humantime).
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration ({e}); write e.g. 30d, 12h or 45m"))
}

fn duration(s: &str, key: &str) -> Result<Duration> {
    parse_duration(s).map_err(|e| Fatal::config(format!("{key}: {e}")))
}

fn positive(v: f64, key: &str) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Fatal::config(format!(
            "{key} = {v} must be a positive number"
        )))
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
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
