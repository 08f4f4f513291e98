//! chatMessage → ingest document: the skip rules, identities through the directory, and
//! Teams HTML → text ([`text`]).
//!
//! A message becomes an `upsert` (author mail, mentioned mails, created date, text), a
//! `delete` (deleted in an incremental round), or a counted [`Skip`]. Ids follow DESIGN.md:
//! a hash of tenant, team, channel, thread and message — Graph ids are unique only within
//! a channel or thread.

mod cards;
mod document;
pub mod text;

use std::collections::HashMap;

pub use document::{document_id, Document, Op};
pub use text::TextOptions;

use crate::graph::models::ChatMessage;

/// Why a message was not forwarded; each reason has its own counter.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    SystemEvent,
    Bot,
    Deleted,
    NoMail,
    Empty,
}

impl Skip {
    pub const ALL: [Skip; 5] = [
        Skip::SystemEvent,
        Skip::Bot,
        Skip::Deleted,
        Skip::NoMail,
        Skip::Empty,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Skip::SystemEvent => "system_event",
            Skip::Bot => "bot",
            Skip::Deleted => "deleted",
            Skip::NoMail => "no_mail",
            Skip::Empty => "empty",
        }
    }
}

pub enum Outcome {
    Forward(Document),
    Skip(Skip),
}

/// User id → mail, held in memory only for the length of a run. Users without a mail
/// (guests, rooms) are absent: their messages are skipped, never guessed.
#[derive(Debug, Default)]
pub struct Directory {
    mails: HashMap<String, String>,
}

impl Directory {
    pub fn insert(&mut self, id: &str, mail: &str) {
        self.mails.insert(id.to_ascii_lowercase(), mail.to_string());
    }
    pub fn mail(&self, id: &str) -> Option<&str> {
        // Graph writes ids in lower case: look up as given, lower-case only on a miss.
        self.mails
            .get(id)
            .or_else(|| self.mails.get(&id.to_ascii_lowercase()))
            .map(String::as_str)
    }
    pub fn len(&self) -> usize {
        self.mails.len()
    }
    pub fn is_empty(&self) -> bool {
        self.mails.is_empty()
    }
}

/// Where a message lives: the parts of its id.
pub struct Place<'a> {
    pub team: &'a str,
    pub channel: &'a str,
    /// The root post's id (the message's own id for a root).
    pub thread: &'a str,
}

pub struct Transformer {
    pub tenant: String,
    pub text: TextOptions,
    pub include_card_text: bool,
}

impl Transformer {
    /// Decides what `msg` becomes. `emit_deletes` is false on a channel's first round,
    /// where a deleted message was never sent and there is nothing to delete.
    pub fn message(
        &self,
        place: &Place,
        msg: &ChatMessage,
        directory: &Directory,
        emit_deletes: bool,
    ) -> Outcome {
        let id = document_id(
            &self.tenant,
            place.team,
            place.channel,
            place.thread,
            &msg.id,
        );
        if is_deleted(msg) {
            return if emit_deletes {
                Outcome::Forward(Document::delete(id))
            } else {
                Outcome::Skip(Skip::Deleted)
            };
        }
        if msg.message_type.as_deref() != Some("message") {
            return Outcome::Skip(Skip::SystemEvent);
        }
        let Some(from) = &msg.from else {
            return Outcome::Skip(Skip::SystemEvent);
        };
        if from.application.is_some() {
            return Outcome::Skip(Skip::Bot);
        }
        let Some(author) = from
            .user
            .as_ref()
            .and_then(|u| u.id.as_deref())
            .and_then(|id| directory.mail(id))
        else {
            return Outcome::Skip(if from.user.is_none() && from.device.is_none() {
                Skip::Bot
            } else {
                Skip::NoMail
            });
        };
        let content = self.content(msg);
        if content.is_empty() {
            return Outcome::Skip(Skip::Empty);
        }
        let mut mentions: Vec<String> = msg
            .mentions
            .iter()
            .filter_map(|m| m.mentioned.as_ref()?.user.as_ref()?.id.as_deref())
            .filter_map(|id| directory.mail(id))
            .map(str::to_string)
            .collect();
        mentions.sort_unstable();
        mentions.dedup();
        Outcome::Forward(Document::upsert(
            id,
            author.to_string(),
            mentions,
            msg.created_date_time.clone().unwrap_or_default(),
            content,
        ))
    }

    fn content(&self, msg: &ChatMessage) -> String {
        let body = msg.body.as_ref();
        let raw = body.and_then(|b| b.content.as_deref()).unwrap_or("");
        let mut text = match body.and_then(|b| b.content_type.as_deref()) {
            Some(t) if t.eq_ignore_ascii_case("text") => text::plain_to_text(raw),
            _ => text::html_to_text(raw, &self.text),
        };
        if self.include_card_text {
            cards::append_card_text(&mut text, &msg.attachments);
        }
        text
    }
}

/// Deleted per DESIGN.md: `deletedDateTime` set, or no author and no body.
fn is_deleted(msg: &ChatMessage) -> bool {
    if msg.deleted_date_time.is_some() {
        return true;
    }
    let empty_body = msg
        .body
        .as_ref()
        .and_then(|b| b.content.as_deref())
        .is_none_or(|c| c.trim().is_empty());
    msg.from.is_none() && empty_body
}
