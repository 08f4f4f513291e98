//! POST a batch to the ingest (DESIGN.md, "Ingest contract"): bearer token, JSON body,
//! `Idempotency-Key` = hash of the body, so a retried or resent batch is recognisable.
//! 2xx accepts; 429/5xx/timeouts are retried with backoff (`Retry-After` wins); any other
//! status is permanent.

use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};
use url::Url;

use crate::http::{backoff, classify, Counters, Decision};
use crate::secret::Secret;
use crate::shutdown::Shutdown;
use crate::transform::Document;

/// How long an in-flight POST may run on after SIGTERM/SIGINT.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Clone)]
pub enum IngestError {
    /// A permanent refusal (4xx other than 429): the batch will not be accepted as is.
    Rejected { status: u16, detail: String },
    /// Retries ran out, or the ingest cannot be reached.
    Unavailable(String),
}

impl std::fmt::Display for IngestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IngestError::Rejected { status, detail } => write!(
                f,
                "the ingest rejected a batch with HTTP {status}: {detail}"
            ),
            IngestError::Unavailable(m) => f.write_str(m),
        }
    }
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
        let body =
            serde_json::to_vec(&Batch { documents: docs }).map_err(|e| IngestError::Rejected {
                status: 0,
                detail: format!("cannot encode the batch: {e}"),
            })?;
        let key = idempotency_key(&body);
        let mut attempt = 0u32;
        loop {
            let (wait, why) = match self.send_once(&body, &key).await {
                Ok(()) => return Ok(()),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Retry(wait, why)) => (wait, why),
            };
            if attempt >= self.max_retries {
                return Err(IngestError::Unavailable(format!(
                    "the ingest {} is unavailable after {} attempts ({why})",
                    self.url,
                    attempt + 1
                )));
            }
            tracing::warn!(attempt, reason = %why, "Ingest POST failed; retrying.");
            if self
                .shutdown
                .sleep(wait.unwrap_or_else(|| backoff(attempt)))
                .await
                .is_err()
            {
                return Err(IngestError::Unavailable(
                    "interrupted while waiting to retry the ingest".into(),
                ));
            }
            attempt += 1;
        }
    }

    async fn send_once(&self, body: &[u8], key: &str) -> Result<(), Failure> {
        // An in-flight POST may finish after a signal, but only for a grace period: the
        // exit must come within seconds (an abandoned batch is resent next run).
        let grace = async {
            self.shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            r = self.send_inner(body, key) => r,
            _ = grace => Err(Failure::Final(IngestError::Unavailable("abandoned an in-flight POST on shutdown".into()))),
        }
    }

    async fn send_inner(&self, body: &[u8], key: &str) -> Result<(), Failure> {
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
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Err(Failure::Retry(None, "timed out".into())),
            Err(_) => return Err(Failure::Retry(None, "connection failed".into())),
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        if let Decision::Retry { after, .. } = classify(status, resp.headers()) {
            return Err(Failure::Retry(after, format!("HTTP {}", status.as_u16())));
        }
        let text = resp.text().await.unwrap_or_default();
        let detail: String = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(200)
            .collect();
        let hint = if status.as_u16() == 401 || status.as_u16() == 403 {
            "; check TEAMS_CONNECTOR_INGEST_TOKEN"
        } else {
            ""
        };
        Err(Failure::Final(IngestError::Rejected {
            status: status.as_u16(),
            detail: format!("{detail}{hint}"),
        }))
    }
}

enum Failure {
    Retry(Option<std::time::Duration>, String),
    Final(IngestError),
}

fn idempotency_key(body: &[u8]) -> String {
    crate::digest::hex(&Sha256::digest(body)[..16])
}
