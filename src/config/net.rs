//! The network side of the config: which URLs are acceptable (https, or plain http to
//! loopback unless `allow_insecure_http` is set) and the extra CA certificates an admin
//! adds for a TLS-inspecting proxy (`ca_file`). Checked once here, so the HTTP client
//! builder only adds what it is given.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use url::Url;

use crate::exit::{Fatal, Result};
use crate::secret::redact_url;

/// Extra trusted CA certificates read from a PEM file (`[microsoft] ca_file`,
/// `[ingest] ca_file`), already parsed and accepted by the TLS stack.
#[derive(Debug, Clone)]
pub struct CaFile {
    pub path: PathBuf,
    pub certificates: Vec<reqwest::Certificate>,
}

impl CaFile {
    /// Reads and checks `path`: it must exist and hold PEM certificates the TLS stack
    /// accepts as trust anchors. `key` names the setting in the one-line error.
    pub fn load(path: &Path, key: &str) -> Result<CaFile> {
        let bad = |why: String| {
            Fatal::config(format!(
                "{key} = {:?} {why}; name a PEM file of CA certificates (-----BEGIN CERTIFICATE-----)",
                path.display().to_string()
            ))
        };
        let pem = std::fs::read(path).map_err(|e| bad(format!("cannot be read ({e})")))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|_| bad("is not valid PEM".into()))?;
        if certificates.is_empty() {
            return Err(bad("holds no certificate".into()));
        }
        // The TLS stack parses each certificate when a client is built: do it now, so a
        // damaged file is a config error and not a failure of the first request. The probe
        // never sends anything, so it need not be the one client of `http::build_client`.
        #[allow(clippy::disallowed_methods)]
        let mut probe = reqwest::Client::builder().use_rustls_tls();
        for c in &certificates {
            probe = probe.add_root_certificate(c.clone());
        }
        probe
            .build()
            .map_err(|_| bad("holds a certificate the TLS stack cannot use".into()))?;
        Ok(CaFile {
            path: path.to_path_buf(),
            certificates,
        })
    }
}

/// An http(s) URL with a host. Plain `http://` is accepted for loopback hosts, and for
/// others only when `allow_insecure` (the section's `allow_insecure_http`) is set: tokens
/// would cross the network in clear.
pub fn http_url(s: &str, key: &str, allow_insecure: bool, section: &str) -> Result<Url> {
    let url = Url::parse(s).map_err(|e| {
        Fatal::config(format!(
            "{key} = {:?} is not a URL ({e}); write e.g. https://host/path",
            redact_str(s)
        ))
    })?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(Fatal::config(format!(
            "{key} = \"{}:…\" must be an http:// or https:// URL",
            url.scheme()
        )));
    }
    let shown = redact_url(&url);
    if url.host_str().is_none() {
        return Err(Fatal::config(format!("{key} = {shown:?} has no host")));
    }
    if url.scheme() == "http" && !is_loopback(&url) && !allow_insecure {
        return Err(Fatal::config(format!(
            "{key} = {shown:?} is plain http to a host that is not loopback: tokens would cross the network in clear; use https://, or set [{section}] allow_insecure_http = true if the path is protected otherwise"
        )));
    }
    Ok(url)
}

/// `127.0.0.0/8`, `::1` and `localhost`: traffic that never leaves the machine.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        None => false,
    }
}

/// A string that did not parse as a URL, with anything that looks like credentials cut:
/// the part before an `@` and everything after a `?`.
fn redact_str(s: &str) -> String {
    let s = s.split(['?', '#']).next().unwrap_or("");
    match s.rsplit_once('@') {
        Some((before, host)) => {
            let scheme = before.split_once("://").map_or("", |(sch, _)| sch);
            if scheme.is_empty() {
                format!("[redacted]@{host}")
            } else {
                format!("{scheme}://[redacted]@{host}")
            }
        }
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback_unless_allowed() {
        for ok in [
            "http://127.0.0.1:8700",
            "http://127.3.4.5/x",
            "http://[::1]:80",
            "http://localhost:1",
            "http://graph.localhost/",
            "https://graph.example.com",
        ] {
            assert!(http_url(ok, "k", false, "s").is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1",
            "http://graph.example.com",
            "http://[::2]",
        ] {
            let e = http_url(bad, "[s] k", false, "s").unwrap_err();
            assert!(e.message.contains("allow_insecure_http"), "{}", e.message);
            assert!(http_url(bad, "k", true, "s").is_ok(), "{bad}");
        }
    }

    #[test]
    fn unparsable_urls_are_shown_without_credentials() {
        let e = http_url("user:pa ss@host?api_key=k", "[ingest] url", false, "ingest").unwrap_err();
        assert!(
            !e.message.contains("pa ss") && !e.message.contains("api_key=k"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_ca_file_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let missing = CaFile::load(&dir.path().join("none.pem"), "[ingest] ca_file").unwrap_err();
        assert!(
            missing.message.contains("cannot be read"),
            "{}",
            missing.message
        );
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let e = CaFile::load(&junk, "[ingest] ca_file").unwrap_err();
        assert!(e.message.contains("[ingest] ca_file"), "{}", e.message);
    }
}
