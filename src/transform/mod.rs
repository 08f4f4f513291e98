//! chatMessage → ingest document: skip rules, identities, Teams HTML → text.
pub mod text;
