//! POST a batch to the ingest (DESIGN.md, "Ingest contract"): bearer token, JSON body,
//! `Idempotency-Key` = hash of the body, so a retried or resent batch is recognisable.
//! 2xx accepts; 429, 5xx and transport errors are retried by the shared policy
//! (`Retry-After` wins); a 3xx is a delivery failure naming the `Location` host (never
//! followed: a redirected POST loses its body or carries the documents elsewhere); any
//! other status is permanent.
//!
//! A refusal is reported by status and, when the body names one, a short error code — never
//! the body itself: an ingest that echoes the rejected documents (a FastAPI 422 does) would
//! put message text and mails into logs and the state store.

use std::sync::Arc;

use serde::Serialize;
use url::Url;

use crate::http::{
    location_host, read_error_body, status_retry, Action, Counters, Policy, Reason, Retry, Stopped,
    TransportError,
};
use crate::secret::Secret;
use crate::shutdown::{Cancelled, Shutdown};
use crate::transform::Document;

/// How long an in-flight POST may run on after SIGTERM/SIGINT or the time budget.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    /// A permanent refusal (4xx other than 429): the batch will not be accepted as is.
    #[error("the ingest rejected a batch with HTTP {status}{}{hint}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Rejected {
        status: u16,
        /// A short error code from the body, when it has one.
        code: Option<String>,
        hint: &'static str,
    },
    /// A 3xx: the documents were not delivered and were not sent elsewhere.
    #[error("the ingest answered {status} redirecting to {host}; redirects are not followed: set [ingest] url to the final address")]
    Redirected { status: u16, host: String },
    /// Retries ran out, or the ingest cannot be reached.
    #[error("the ingest is unavailable after {attempts} attempts ({last})")]
    Unavailable { attempts: u32, last: Reason },
    /// Another channel found the ingest unavailable: this one stops instead of waiting out
    /// its own retries.
    #[error("the ingest failed for another channel in this run")]
    DownElsewhere,
    /// Dry run: stdout is gone.
    #[error("cannot write to stdout ({0})")]
    Output(String),
    /// A signal or the time budget stopped the delivery; nothing is known to be lost.
    #[error("interrupted")]
    Cancelled,
}

#[derive(Serialize)]
struct Batch<'a> {
    documents: &'a [Document],
}

pub struct IngestClient {
    /// The process's one client (shared pool); `timeout` is set per POST.
    pub http: reqwest::Client,
    pub url: Url,
    pub timeout: std::time::Duration,
    pub token: Secret,
    pub max_retries: u32,
    pub counters: Arc<Counters>,
    pub shutdown: Shutdown,
}

impl IngestClient {
    pub async fn post(&self, docs: &[Document]) -> Result<(), IngestError> {
        let body = match serde_json::to_vec(&Batch { documents: docs }) {
            Ok(b) => b,
            Err(e) => return Err(IngestError::Output(e.to_string())),
        };
        let key = idempotency_key(&body);
        let policy = Policy {
            max_retries: self.max_retries,
            shutdown: &self.shutdown,
            counters: &self.counters,
            endpoint: "ingest",
        };
        policy
            .run(|| self.attempt(&body, &key))
            .await
            .map_err(|stopped| match stopped {
                Stopped::Failed(e) => e,
                Stopped::Exhausted { attempts, last } => {
                    tracing::warn!(attempts, reason = %last, "Ingest POST failed; giving up.");
                    IngestError::Unavailable { attempts, last }
                }
                Stopped::Cancelled => IngestError::Cancelled,
            })
    }

    /// One POST. In flight it may finish after a signal, but only for a grace period: the
    /// exit must come within seconds (an abandoned batch is resent next run).
    async fn attempt(&self, body: &[u8], key: &str) -> Result<Action<(), IngestError>, Cancelled> {
        let grace = async {
            self.shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            r = self.send(body, key) => Ok(r),
            _ = grace => Err(Cancelled),
        }
    }

    async fn send(&self, body: &[u8], key: &str) -> Action<(), IngestError> {
        let sent = self
            .http
            .post(self.url.clone())
            .timeout(self.timeout)
            .bearer_auth(self.token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", key)
            .body(body.to_vec())
            .send()
            .await;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                let reason = Reason::Transport(TransportError::new(&e));
                tracing::warn!(reason = %reason, "Ingest POST failed.");
                return Action::Retry(Retry::failure(reason, None));
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Action::Done(());
        }
        if let Some(retry) = status_retry(status, resp.headers()) {
            tracing::warn!(status = status.as_u16(), "Ingest POST failed.");
            return Action::Retry(retry);
        }
        if status.is_redirection() {
            return Action::Fail(IngestError::Redirected {
                status: status.as_u16(),
                host: location_host(resp.headers(), self.url.as_str()),
            });
        }
        let body = read_error_body(&mut resp).await;
        let hint = if matches!(status.as_u16(), 401 | 403) {
            "; check TEAMS_CONNECTOR_INGEST_TOKEN"
        } else {
            ""
        };
        Action::Fail(IngestError::Rejected {
            status: status.as_u16(),
            code: error_code(&body),
            hint,
        })
    }
}

/// A short error code from a JSON error body (`{"error": "invalid_batch"}`, `{"code": …}`),
/// if it looks like one: a word, not a sentence and not an echo of what we sent.
fn error_code(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let candidates = [&v["code"], &v["error"]["code"], &v["error"]];
    let code = candidates.into_iter().find_map(|c| {
        let s = c.as_str()?;
        let word = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        word.then(|| s.to_string())
    });
    code
}

fn idempotency_key(body: &[u8]) -> String {
    crate::digest::short([body])
}

#[cfg(test)]
mod tests {
    use super::error_code;

    #[test]
    fn only_word_like_codes_are_taken_from_an_error_body() {
        assert_eq!(
            error_code(br#"{"error":"invalid_batch"}"#).as_deref(),
            Some("invalid_batch")
        );
        assert_eq!(
            error_code(br#"{"error":{"code":"Schema.Mismatch","message":"x"}}"#).as_deref(),
            Some("Schema.Mismatch")
        );
        // FastAPI's 422 echoes the input: nothing of it is taken.
        let echo = br#"{"detail":[{"loc":["body","documents",0],"msg":"bad","input":{"author":"alex@contoso.com","content":"secret"}}]}"#;
        assert_eq!(error_code(echo), None);
        assert_eq!(
            error_code(br#"{"error":"alex@contoso.com wrote secret"}"#),
            None
        );
        assert_eq!(error_code(b"<html>oops</html>"), None);
    }
}
