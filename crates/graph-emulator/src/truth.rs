//! The ground truth the emulator publishes about its tenant, and the mutation vocabulary.
//!
//! Tests compare what reached the sink with these values: every generated message is listed
//! with what a correct connector must do with it (forward with a given author, mentions and
//! marker, or skip for a given reason), judged against the directory as it is now, and with
//! when delta shows it and when its people last changed, so a model can tell what a
//! connector could have seen.

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
    /// What reading the message now must give (the directory as it is now: an author who
    /// left is `Skip(NoMail)`, one with a new mail is forwarded under it).
    pub expected: Expected,
    /// When delta showed, or shows in its next round, this message's thread with this
    /// version of the message: the root's latest change in delta at or after the message's
    /// last change. `None` for a reply changed since without its root coming back in delta:
    /// only the reply sweep (threads created within `reply_window`) can find that version.
    pub surfaced: Option<DateTime<Utc>>,
    /// When the directory last changed for the author or a mentioned person (left, or a
    /// new mail); `None` if never. A change after `last_modified` changes no message: what
    /// a connector forwarded before stays as it was unless the message is read again.
    pub identities_changed: Option<DateTime<Utc>>,
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
/// Whether a reply's change brings its root back in delta follows
/// `EmulatorOptions::reply_bumps_root`, or the flag given to `Emulator::apply_bumping`.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new reply in each of these threads (keys of their roots), all created at once.
    /// One per thread: a second key of the same thread is ignored.
    Reply(Vec<MessageKey>),
    /// New text for each of these messages, all edited at once.
    Edit(Vec<MessageKey>),
    /// These messages deleted at once.
    Delete(Vec<MessageKey>),
    /// A new root in each of these channels, all created at once: the same message id in
    /// several channels and teams. One per channel: a second key of a channel is ignored.
    Root(Vec<ChannelKey>),
    /// Only `lastModifiedDateTime` moves; nothing anyone wrote changes.
    Touch(Vec<MessageKey>),
    /// A member reacts: `reactions` and `lastModifiedDateTime` change, not what the
    /// author wrote.
    React(Vec<MessageKey>),
    /// Deleted the way Graph sometimes shows it: `deletedDateTime: null`, `from: null` and
    /// an empty body (`lastModifiedDateTime` moves).
    DeleteUnmarked(Vec<MessageKey>),
    /// From now on served with `lastModifiedDateTime: null`, which no client can see as a
    /// change; an edit still sets `lastEditedDateTime`, and a deleted message (before or
    /// after) is served with its timestamp.
    HideModified(Vec<MessageKey>),
    /// These users (ids) leave the directory: `/users` lists them no more, their messages
    /// keep `from.user.id`. The technical user never leaves.
    Leave(Vec<String>),
    /// These users (ids) get a new mail.
    NewMail(Vec<String>),
    /// A new standard channel without messages in each team; the id is drawn when `None`,
    /// and `Some` may repeat a channel id another team uses.
    AddChannel(Vec<NewChannel>),
}

/// A channel to add (see [`Change::AddChannel`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChannel {
    pub team_id: String,
    pub channel_id: Option<String>,
}

/// Identifies a channel; a channel id is only unique within its team.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelKey {
    pub team_id: String,
    pub channel_id: String,
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
    /// Touched, reacted to or served without `lastModifiedDateTime`: nothing written changed.
    pub touched: Vec<MessageKey>,
    /// Users who left or got a new mail.
    pub users: Vec<String>,
    /// Channels added.
    pub channels: Vec<ChannelKey>,
}

/// A directory entry as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub id: String,
    pub mail: Option<String>,
    /// A person who writes messages (not the technical user, a guest or a room).
    pub member: bool,
    /// Still listed by `/users`.
    pub present: bool,
}
