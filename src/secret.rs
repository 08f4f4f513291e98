//! Secret strings (tokens, passwords, client secrets) that never print themselves, and
//! [`redact_url`] for URLs that may carry credentials.
//!
//! `Debug` and `Display` show `[redacted]`; the value is reachable only through
//! [`Secret::expose`], so a secret cannot slip into a log line, an error or a panic
//! message by accident.

use std::fmt;

use url::Url;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret; it is also remembered, so error text that echoes it gets it scrubbed
    /// ([`crate::redact::scrub`]).
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        crate::redact::register(&value);
        Secret(value)
    }
    /// The secret value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

const REDACTED: &str = "[redacted]";

/// OData query options that say what was asked for, never who asked: kept as they are.
const PLAIN_QUERY_KEYS: &[&str] = &["$top", "$select", "$expand", "$filter", "$orderby"];

/// `url` fit to print or store: a user name and password become `[redacted]`, as does the
/// value of every query parameter but the OData options above (`?api_key=[redacted]`);
/// the fragment goes. For config check, doctor and failure reasons.
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    if !u.username().is_empty() || u.password().is_some() {
        // Only URLs that cannot have credentials refuse these; then there were none.
        let _ = u.set_username(REDACTED);
        let _ = u.set_password(None);
    }
    u.set_fragment(None);
    if let Some(query) = u.query().map(str::to_string) {
        let kept: Vec<String> = query
            .split('&')
            .map(|pair| {
                let key = pair.split('=').next().unwrap_or("");
                let plain = url::form_urlencoded::parse(key.as_bytes())
                    .next()
                    .is_some_and(|(k, _)| PLAIN_QUERY_KEYS.contains(&k.as_ref()));
                if plain || !pair.contains('=') && key.is_empty() {
                    pair.to_string()
                } else {
                    format!("{key}={REDACTED}")
                }
            })
            .collect();
        u.set_query(Some(&kept.join("&")));
    }
    // The brackets are percent-encoded in the userinfo; shown plainly.
    u.to_string().replace("%5Bredacted%5D", REDACTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_formats_its_value() {
        let s = Secret::new("hunter2-token");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "hunter2-token");
    }

    #[test]
    fn redact_url_drops_credentials_and_query_values() {
        let u =
            Url::parse("https://user:pa55@ingest.example.com:8443/v1/docs?api_key=k3y&x=1#frag")
                .unwrap();
        let r = redact_url(&u);
        assert_eq!(
            r,
            "https://[redacted]@ingest.example.com:8443/v1/docs?api_key=[redacted]&x=[redacted]"
        );
        let plain =
            Url::parse("https://graph.microsoft.com/v1.0/teams/t/channels?$top=50&$skiptoken=abc")
                .unwrap();
        assert_eq!(
            redact_url(&plain),
            "https://graph.microsoft.com/v1.0/teams/t/channels?$top=50&$skiptoken=[redacted]"
        );
        let bare = Url::parse("https://graph.microsoft.com/").unwrap();
        assert_eq!(redact_url(&bare), "https://graph.microsoft.com/");
    }
}
