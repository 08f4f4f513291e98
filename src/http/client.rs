//! The one place a `reqwest::Client` is built (clippy's `disallowed-methods` keeps it so),
//! once per run: Graph, the token endpoint and the ingest share its connection pool.
//! rustls, gzip, HTTP/2 by ALPN, and a timeout on every request (the ingest sets its own
//! per POST) so a hung connection cannot stall a run.
//!
//! TLS trusts Mozilla's roots, the system's store and the `ca_file` of the section the
//! client is for (a TLS-inspecting proxy); `HTTPS_PROXY`/`NO_PROXY` are honoured.
//!
//! No redirect is ever followed (DESIGN.md, issue 12): every request we send carries a
//! credential, and a redirected POST either loses its body (301/302) or carries tokens and
//! documents to whatever host the `Location` names (307/308). A 3xx is an answer each
//! endpoint reports as an error naming the status and the `Location` host. With no
//! redirects there is no `Referer` either.

use std::time::Duration;

use crate::config::CaFile;
use crate::exit::{Fatal, Result};

pub const USER_AGENT: &str = concat!(
    "teams-connector/",
    env!("CARGO_PKG_VERSION"),
    " (batch expertise connector; ISV)"
);

/// A client with `timeout` per request that also trusts `ca` (a section's `ca_file`).
#[allow(clippy::disallowed_methods)]
pub fn build_client(timeout: Duration, ca: Option<&CaFile>) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().use_rustls_tls();
    for c in ca.iter().flat_map(|ca| &ca.certificates) {
        builder = builder.add_root_certificate(c.clone());
    }
    builder
        .user_agent(USER_AGENT)
        .gzip(true)
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(15).min(timeout))
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .build()
        .map_err(|e| Fatal::internal(format!("cannot build the HTTP client: {e}")))
}
