//! teams-connector: forwards Microsoft Teams channel messages to an expertise-ingest
//! endpoint, keeping nothing but cursors.
//!
//! The pipeline, module by module (DESIGN.md, "Pipeline"):
//!
//! ```text
//! auth       sign in as the technical user; rotated refresh token → state
//! sync       discovery (users → mail, teams, channels), then per channel:
//! graph        delta pages (typed models, retries, limits)
//! transform    chatMessage → document (skip rules, identities, HTML → text)
//! ingest       batches POSTed with an idempotency key
//! state        cursor saved only after the ingest accepted everything before it
//! ```
//!
//! Around it: `config` (file + env → validated config), `cli` and `commands` (one
//! function per command), `exit` (the exit-code table), `http` (the one client, retry
//! decisions, rate limits), `shutdown` (signals, cancel-aware sleep), `telemetry` (logs),
//! `secret` (values that never print), `metrics` (the `--metrics-file` textfile),
//! `progress` (periodic progress lines during a crawl). The Graph emulator and ingest sink
//! that `demo`, `emulator` and the tests use are the `graph-emulator` crate.

mod auth;
pub mod cli;
pub mod commands;
pub mod config;
mod digest;
pub mod exit;
mod graph;
mod http;
mod ingest;
mod metrics;
mod progress;
mod redact;
mod secret;
pub mod shutdown;
pub mod state;
pub mod sync;
pub mod telemetry;
pub mod transform;
