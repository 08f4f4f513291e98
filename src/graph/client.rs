//! [`Graph::get`]: one GET with everything Graph asks of a client — the bearer token
//! (refreshed once on 401), `Prefer: include-unknown-enum-members`, the rate limits before
//! sending, `Retry-After` on 429/503, full-jitter backoff otherwise — and errors turned
//! into [`GraphError`] values the crawl can branch on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::models::ErrorEnvelope;
use super::Endpoints;
use crate::auth::TokenSource;
use crate::exit::Fatal;
use crate::http::{backoff, classify, Counters, Decision, Limiter, Scope};
use crate::shutdown::Shutdown;

#[derive(Debug, Clone)]
pub enum GraphError {
    /// A final HTTP error with Graph's error code (`innerError.code` when more specific).
    Status {
        status: u16,
        code: String,
        message: String,
    },
    /// Retries ran out or the network failed throughout.
    Unavailable(String),
    /// Signing in failed; the whole run stops.
    Auth(Fatal),
    /// The body is not what Graph sends (HTML error page, truncated JSON, missing `value`).
    Invalid(String),
    /// A continuation link that points at another host.
    Refused(String),
    Cancelled,
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GraphError::Status {
                status,
                code,
                message,
            } => {
                write!(f, "Graph answered {status} {code}")?;
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            GraphError::Unavailable(m) | GraphError::Invalid(m) | GraphError::Refused(m) => {
                f.write_str(m)
            }
            GraphError::Auth(fatal) => f.write_str(&fatal.message),
            GraphError::Cancelled => f.write_str("interrupted"),
        }
    }
}

pub struct Graph {
    pub endpoints: Endpoints,
    http: reqwest::Client,
    tokens: Arc<TokenSource>,
    limiter: Limiter,
    counters: Arc<Counters>,
    max_retries: u32,
    shutdown: Shutdown,
}

impl Graph {
    /// The client for `config`'s Graph host and `[limits]`.
    pub fn for_config(
        config: &crate::config::Config,
        http: reqwest::Client,
        tokens: Arc<TokenSource>,
        counters: Arc<Counters>,
        max_retries: u32,
        shutdown: Shutdown,
    ) -> Self {
        let limits = &config.limits;
        Graph {
            endpoints: Endpoints::new(&config.graph_url),
            http,
            tokens,
            limiter: Limiter::new(
                limits.requests_per_second,
                limits.per_channel_requests_per_second,
            ),
            counters,
            max_retries,
            shutdown,
        }
    }

    /// GETs `url` and decodes the JSON body, drawing on the rate budget of `scope`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        url: &str,
        scope: Scope<'_>,
    ) -> Result<T, GraphError> {
        if !self.endpoints.owns(url) {
            return Err(GraphError::Refused(format!(
                "refusing to follow a link to another host than [microsoft] graph_url: {}",
                host_of(url)
            )));
        }
        let mut attempt = 0u32;
        let mut refreshed = false;
        loop {
            if self.shutdown.is_cancelled() {
                return Err(GraphError::Cancelled);
            }
            let token = self.tokens.access_token().await.map_err(GraphError::Auth)?;
            tokio::select! {
                _ = self.limiter.acquire(scope) => {}
                _ = self.shutdown.cancelled() => return Err(GraphError::Cancelled),
            }
            Counters::add(&self.counters.requests, 1);
            let request = self
                .http
                .get(url)
                .bearer_auth(token.expose())
                .header("Prefer", "include-unknown-enum-members")
                .header(reqwest::header::ACCEPT, "application/json")
                .send();
            // A GET is safe to abandon: on a signal it does not hold up the exit.
            let sent = tokio::select! {
                sent = request => sent,
                _ = self.shutdown.cancelled() => return Err(GraphError::Cancelled),
            };
            self.counters
                .answered(sent.as_ref().ok().map(|r| r.status().as_u16()));
            let (wait, why) = match sent {
                Err(e) => (None, transport(&e)),
                Ok(resp) => {
                    let status = resp.status();
                    if status.as_u16() == 401 && !refreshed {
                        refreshed = true;
                        self.tokens.invalidate(&token).await;
                        continue;
                    }
                    match classify(status, resp.headers()) {
                        Decision::Done => {
                            self.limiter.succeeded(scope);
                            return self.finish(resp).await;
                        }
                        Decision::Retry { after, throttled } => {
                            let after = after.or_else(|| throttled.then(|| backoff(attempt)));
                            if throttled {
                                Counters::add(&self.counters.throttled, 1);
                                // The whole scope waits, not just this request.
                                self.limiter.throttled(scope, after.unwrap_or_default());
                            }
                            (after, format!("HTTP {}", status.as_u16()))
                        }
                    }
                }
            };
            if attempt >= self.max_retries {
                return Err(GraphError::Unavailable(format!(
                    "Graph still failing after {} attempts ({why}); raise [limits] max_retries or try later",
                    attempt + 1
                )));
            }
            let delay = wait.unwrap_or_else(|| backoff(attempt));
            tracing::debug!(attempt, reason = %why, delay_ms = delay.as_millis() as u64, "Graph request failed; retrying.");
            Counters::add(&self.counters.retries, 1);
            self.wait(delay).await?;
            attempt += 1;
        }
    }

    async fn wait(&self, delay: Duration) -> Result<(), GraphError> {
        let started = Instant::now();
        let r = self.shutdown.sleep(delay).await;
        Counters::add(
            &self.counters.throttle_wait_ms,
            started.elapsed().as_millis() as u64,
        );
        r.map_err(|_| GraphError::Cancelled)
    }

    async fn finish<T: DeserializeOwned>(&self, resp: reqwest::Response) -> Result<T, GraphError> {
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| {
            GraphError::Unavailable(format!(
                "reading a Graph response failed: {}",
                transport(&e)
            ))
        })?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                GraphError::Invalid(format!(
                    "Graph answered {status} with a body that is not the expected JSON ({e}, {} bytes)",
                    body.len()
                ))
            });
        }
        let envelope: ErrorEnvelope = serde_json::from_slice(&body).unwrap_or_default();
        let detail = envelope.error.unwrap_or_default();
        let code = detail
            .inner_error
            .and_then(|i| i.code)
            .filter(|c| !c.is_empty())
            .unwrap_or(detail.code);
        if status.as_u16() == 401 {
            return Err(GraphError::Auth(Fatal::auth(format!(
                "Graph rejected a freshly issued access token (401 {code}); check that the technical user is enabled and the app has the scopes, then run `teams-connector login`"
            ))));
        }
        Err(GraphError::Status {
            status: status.as_u16(),
            code,
            message: detail.message.chars().take(200).collect(),
        })
    }
}

fn transport(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else if e.is_body() || e.is_decode() {
        "connection dropped mid-body".into()
    } else {
        "request failed".into()
    }
}

fn host_of(link: &str) -> String {
    url::Url::parse(link)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "an unparsable URL".into())
}
