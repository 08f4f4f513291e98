//! The ground truth the emulator publishes about its tenant, and the mutation vocabulary.
//!
//! Tests compare what reached the sink with these values: every generated message is listed
//! with what a correct connector must do with it (forward with a given author, mentions and
//! marker, or skip for a given reason).

use chrono::{DateTime, Utc};

/// One message (root or reply) as it currently stands in the emulated tenant.
#[derive(Debug, Clone)]
pub struct TruthMessage {
    pub team_id: String,
    pub channel_id: String,
    /// Root message id (equal to `message_id` for a root).
    pub thread_id: String,
    pub message_id: String,
    pub team_private: bool,
    pub channel_private: bool,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub deleted: bool,
    pub expected: Expected,
}

/// What a correct connector does with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    Forward {
        /// The author's mail.
        author: String,
        /// Mails of the mentioned people, deduped and sorted (guests without mail left out).
        mentions: Vec<String>,
        /// The unique text marker in the body; `None` for bodies copied from the fixtures.
        marker: Option<String>,
    },
    Skip(SkipKind),
}

/// Why a message must not be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipKind {
    /// `messageType` is `systemEventMessage`.
    SystemEvent,
    /// Sent by an application (`from.application` set, `from.user` null).
    Bot,
    /// `deletedDateTime` set.
    Deleted,
    /// The author has no mail (guest).
    NoMail,
    /// Nothing left after stripping markup, emoji and attachment placeholders.
    Empty,
}

/// Changes to apply to the tenant; counts, all zero by default.
#[derive(Debug, Clone, Default)]
pub struct Mutation {
    pub add_roots: usize,
    pub add_replies: usize,
    pub edit: usize,
    pub delete: usize,
}

/// A targeted change, for situations a test must build exactly. Every message one change
/// touches gets the same timestamp: several messages in the same millisecond, which Graph
/// produces (a message id is its creation time in milliseconds, unique only in its thread).
#[derive(Debug, Clone)]
pub enum Change {
    /// A new reply in each of these threads (keys of their roots), all created at once.
    Reply(Vec<MessageKey>),
    /// New text for each of these messages, all edited at once.
    Edit(Vec<MessageKey>),
    /// These messages deleted at once.
    Delete(Vec<MessageKey>),
}

/// Identifies a message; ids are only unique within a channel, so the key carries all levels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageKey {
    pub team_id: String,
    pub channel_id: String,
    pub thread_id: String,
    pub message_id: String,
}

/// What a [`Mutation`] actually changed (fewer than asked when not enough messages qualify).
#[derive(Debug, Clone, Default)]
pub struct MutationReport {
    pub added: Vec<MessageKey>,
    pub edited: Vec<MessageKey>,
    pub deleted: Vec<MessageKey>,
}
