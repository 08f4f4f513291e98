//! The ingest side: where documents go. [`Output::Post`] POSTs batches to
//! `[ingest] url` ([`client`]); [`Output::DryRun`] writes them to stdout as NDJSON.

mod client;

pub use client::{IngestClient, IngestError};

use std::io::Write;

use crate::transform::Document;

pub enum Output {
    Post(IngestClient),
    DryRun,
}

impl Output {
    /// Delivers one batch. For a dry run, "delivered" means written to stdout.
    pub async fn send(&self, docs: &[Document]) -> Result<(), IngestError> {
        match self {
            Output::Post(client) => client.post(docs).await,
            Output::DryRun => {
                let mut buf = Vec::with_capacity(docs.len() * 256);
                for d in docs {
                    serde_json::to_writer(&mut buf, d)
                        .map_err(|e| IngestError::Output(e.to_string()))?;
                    buf.push(b'\n');
                }
                // One locked write per batch keeps lines of concurrent channels whole.
                let mut out = std::io::stdout().lock();
                out.write_all(&buf)
                    .and_then(|_| out.flush())
                    .map_err(|e| IngestError::Output(e.to_string()))
            }
        }
    }

    pub fn is_dry_run(&self) -> bool {
        matches!(self, Output::DryRun)
    }
}
