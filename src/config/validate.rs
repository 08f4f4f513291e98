//! The file schema → a validated [`Config`]: required keys present, numbers and durations
//! in range, URLs acceptable, CA files readable. Every problem is one [`Fatal`] line with
//! exit 78 that names the key and says what to write instead.

use std::time::Duration;

use super::env::Secrets;
use super::file::File;
use super::net::{http_url, CaFile};
use super::patterns::ChannelPattern;
use super::privacy::Privacy;
use super::types::{ByteSize, Cloud, Flow, HumanDuration};
use super::{Config, Crawl, Ingest, Limits, DEFAULT_SCOPES};
use crate::exit::{Fatal, Result};

const DAY: u64 = 86_400;
/// Longest lookback or reply window: Teams is younger than this, and nothing past it can
/// overflow the time arithmetic of a run.
const MAX_WINDOW: Duration = Duration::from_secs(3650 * DAY);
/// Longest request or POST timeout.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Response cap bounds: a Graph page needs far more than the floor; the ceiling keeps
/// memory bounded by configuration.
const MIN_RESPONSE: ByteSize = ByteSize(1_000);
const MAX_RESPONSE: ByteSize = ByteSize(1 << 30);

pub fn validate(file: File, secrets: Secrets) -> Result<Config> {
    let mut effective = file.clone();
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
    let cloud = m.cloud;
    let insecure = m.allow_insecure_http;
    let graph_url = http_url(
        m.graph_url.as_deref().unwrap_or(cloud.graph_url()),
        "[microsoft] graph_url",
        insecure,
        "microsoft",
    )?;
    let login_url = http_url(
        m.login_url.as_deref().unwrap_or(cloud.login_url()),
        "[microsoft] login_url",
        insecure,
        "microsoft",
    )?;
    let microsoft_ca_file = m
        .ca_file
        .as_deref()
        .map(|p| CaFile::load(p, "[microsoft] ca_file"))
        .transpose()?;

    let flow = file.auth.flow;
    if flow == Flow::Password && file.auth.username.is_none() {
        return Err(Fatal::config(
            "[auth] flow = \"password\" needs [auth] username",
        ));
    }
    let scopes = qualify_scopes(file.auth.scopes, flow, cloud);

    let c = file.crawl;
    let crawl = Crawl {
        initial_lookback: window(c.initial_lookback, "[crawl] initial_lookback")?,
        reply_window: window(c.reply_window, "[crawl] reply_window")?,
        reply_sweep_every: window(c.reply_sweep_every, "[crawl] reply_sweep_every")?,
        include_private_teams: c.include_private_teams,
        teams: c.teams,
        exclude_teams: c.exclude_teams,
        include_replies: c.include_replies,
        keep_mention_names: c.keep_mention_names,
        include_card_text: c.include_card_text,
        exclude_channels: c
            .exclude_channels
            .iter()
            .enumerate()
            .map(|(i, p)| ChannelPattern::parse(p, i + 1))
            .collect::<Result<_>>()?,
        include_cross_tenant_channels: c.include_cross_tenant_channels,
    };
    let privacy = Privacy::new(
        &file.privacy.exclude_people,
        file.privacy.exclude_people_file.clone(),
    )?;
    let limits = limits(file.limits)?;
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
        url: http_url(&url, "[ingest] url", i.allow_insecure_http, "ingest")?,
        batch_size: i.batch_size,
        timeout: timeout(i.timeout, "[ingest] timeout")?,
        ca_file: i
            .ca_file
            .as_deref()
            .map(|p| CaFile::load(p, "[ingest] ca_file"))
            .transpose()?,
    };
    if file.state.dir.as_os_str().is_empty() {
        return Err(Fatal::config(
            "[state] dir is empty; name a directory, e.g. /var/lib/teams-connector",
        ));
    }
    effective.microsoft.graph_url = Some(graph_url.to_string());
    effective.microsoft.login_url = Some(login_url.to_string());
    effective.auth.scopes = Some(scopes.clone());
    Ok(Config {
        tenant_id,
        client_id,
        graph_url,
        login_url,
        microsoft_ca_file,
        flow,
        username: file.auth.username,
        scopes,
        crawl,
        limits,
        ingest,
        state_dir: file.state.dir,
        secrets,
        privacy,
        effective,
    })
}

fn limits(l: super::file::LimitsFile) -> Result<Limits> {
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
    let size = l.max_response_size;
    if size < MIN_RESPONSE || size > MAX_RESPONSE {
        return Err(Fatal::config(format!(
            "[limits] max_response_size = \"{size}\" is out of range; use {MIN_RESPONSE} to {MAX_RESPONSE} (128MB is the default)"
        )));
    }
    Ok(Limits {
        requests_per_second: l.requests_per_second,
        per_channel_requests_per_second: l.per_channel_requests_per_second,
        concurrency: l.concurrency,
        max_retries: l.max_retries,
        request_timeout: timeout(l.request_timeout, "[limits] request_timeout")?,
        max_response_size: size.0,
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

/// A lookback or window: 0 up to ten years.
fn window(d: HumanDuration, key: &str) -> Result<Duration> {
    in_range(d, key, Duration::ZERO, MAX_WINDOW, "3650d")
}

/// A timeout: more than 0, at most an hour.
fn timeout(d: HumanDuration, key: &str) -> Result<Duration> {
    in_range(d, key, Duration::from_millis(1), MAX_TIMEOUT, "1h")
}

fn in_range(
    d: HumanDuration,
    key: &str,
    min: Duration,
    max: Duration,
    max_name: &str,
) -> Result<Duration> {
    if d.0 < min || d.0 > max {
        let shown = humantime::format_duration(d.0);
        let floor = if min.is_zero() { "0s" } else { "1ms" };
        return Err(Fatal::config(format!(
            "{key} = \"{shown}\" is out of range; use {floor} to {max_name}"
        )));
    }
    Ok(d.0)
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
