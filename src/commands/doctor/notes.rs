//! `doctor`'s `info` and `warn` lines: facts an admin needs to read the other checks (the
//! proxy and CA files in use) and settings that work but weaken the defaults (no state
//! key, plain http allowed). They never change the exit code.

use crate::config::{Config, Flow};
use crate::secret::redact_url;

/// The proxy variables reqwest reads, upper case first (as it does).
const PROXY_VARS: &[(&str, &str)] = &[
    ("HTTPS_PROXY", "https_proxy"),
    ("HTTP_PROXY", "http_proxy"),
    ("ALL_PROXY", "all_proxy"),
    ("NO_PROXY", "no_proxy"),
];

/// What the network path is made of: the proxies from the environment (credentials
/// redacted) and the extra CA files.
pub fn network(config: &Config, env: impl Fn(&str) -> Option<String>) -> String {
    let proxies: Vec<String> = PROXY_VARS
        .iter()
        .filter_map(|(upper, lower)| {
            let (name, value) = env(upper)
                .map(|v| (*upper, v))
                .or_else(|| env(lower).map(|v| (*lower, v)))?;
            let shown = match url::Url::parse(&value) {
                Ok(u) if !name.eq_ignore_ascii_case("NO_PROXY") => redact_url(&u),
                _ => value,
            };
            Some(format!("{name}={shown}"))
        })
        .collect();
    let proxy = if proxies.is_empty() {
        "proxy: none (HTTPS_PROXY, ALL_PROXY not set)".to_string()
    } else {
        format!("proxy: {}", proxies.join(", "))
    };
    let ca = |name: &str, f: Option<&crate::config::CaFile>| match f {
        Some(f) => format!(
            "[{name}] ca_file {} ({} certificate(s))",
            f.path.display(),
            f.certificates.len()
        ),
        None => format!("[{name}] no ca_file"),
    };
    format!(
        "{proxy}; {}; {}",
        ca("microsoft", config.microsoft_ca_file.as_ref()),
        ca("ingest", config.ingest.ca_file.as_ref())
    )
}

/// Warnings about the config: each `(check name, text)`.
pub fn warnings(config: &Config) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for section in config.insecure_http_sections() {
        out.push((
            "config",
            format!("[{section}] allow_insecure_http = true: plain http to a host that is not loopback is accepted, so tokens may cross the network in clear; remove it once the endpoint speaks https"),
        ));
    }
    if config.flow == Flow::RefreshToken && config.secrets.state_key.is_none() {
        out.push((
            "state",
            "the refresh token is stored unencrypted: set TEAMS_CONNECTOR_STATE_KEY or TEAMS_CONNECTOR_STATE_KEY_FILE (e.g. `openssl rand -base64 32`)".to_string(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(extra: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            format!("[microsoft]\ntenant_id = \"t\"\nclient_id = \"c\"\n[ingest]\nurl = \"http://ingest.example.com/x\"\nallow_insecure_http = true\n{extra}"),
        )
        .unwrap();
        Config::load_with_env(&path, &BTreeMap::new()).unwrap()
    }

    #[test]
    fn proxies_are_shown_without_credentials() {
        let c = config("");
        let env = |k: &str| match k {
            "https_proxy" => Some("http://user:secret@proxy.corp:3128".to_string()),
            "NO_PROXY" => Some(".corp,localhost".to_string()),
            _ => None,
        };
        let line = network(&c, env);
        assert!(
            line.contains("https_proxy=http://[redacted]@proxy.corp:3128/"),
            "{line}"
        );
        assert!(line.contains("NO_PROXY=.corp,localhost"), "{line}");
        assert!(!line.contains("secret"), "{line}");
        assert!(line.contains("[ingest] no ca_file"), "{line}");
    }

    #[test]
    fn insecure_http_and_a_missing_state_key_are_warned_about() {
        let w = warnings(&config(""));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].1.contains("[ingest] allow_insecure_http"));
        assert!(w[1].1.contains("TEAMS_CONNECTOR_STATE_KEY"));
    }
}
