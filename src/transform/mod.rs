//! chatMessage → ingest document: the skip rules, identities through the directory, and
//! Teams HTML → text ([`text`]).
//!
//! A message becomes an `upsert` (author mail, mentioned mails, created date, text), a
//! `delete` (deleted in an incremental round), or a counted [`Skip`]. Ids follow DESIGN.md:
//! a hash of tenant, team, channel, thread and message — Graph ids are unique only within
//! a channel or thread.

mod cards;
mod directory;
mod document;
mod names;
mod people;
pub mod text;

pub use directory::Directory;
pub use document::{document_id, Document, Op};
pub use people::{People, Resolver, UserRecord};
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
    /// The author is in `[privacy] exclude_people(_file)`.
    OptedOut,
}

impl Skip {
    pub const ALL: [Skip; 6] = [
        Skip::SystemEvent,
        Skip::Bot,
        Skip::Deleted,
        Skip::NoMail,
        Skip::Empty,
        Skip::OptedOut,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Skip::SystemEvent => "system_event",
            Skip::Bot => "bot",
            Skip::Deleted => "deleted",
            Skip::NoMail => "no_mail",
            Skip::Empty => "empty",
            Skip::OptedOut => "opted_out",
        }
    }
}

pub enum Outcome {
    Forward(Document),
    Skip(Skip),
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
        let author_id = from.user.as_ref().and_then(|u| u.id.as_deref());
        if author_id.is_some_and(|id| directory.excluded.contains(id)) {
            return Outcome::Skip(Skip::OptedOut);
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
        let content = self.content(msg, &directory.excluded);
        if content.is_empty() {
            return Outcome::Skip(Skip::Empty);
        }
        let mut mentions: Vec<String> = msg
            .mentions
            .iter()
            .filter_map(|m| m.user_id())
            .filter(|id| !directory.excluded.contains(id))
            .filter_map(|id| directory.mail(id))
            .map(str::to_string)
            .collect();
        mentions.sort_unstable();
        mentions.dedup();
        Outcome::Forward(Document::upsert(
            id,
            author.to_string(),
            mentions,
            msg.created_date_time
                .as_deref()
                .unwrap_or_default()
                .to_owned(),
            content,
        ))
    }

    /// The text, without the mentions and names of `excluded` people.
    fn content(&self, msg: &ChatMessage, excluded: &People) -> String {
        let body = msg.body.as_ref();
        let raw = body.and_then(|b| b.content.as_deref()).unwrap_or("");
        let mut text = match body.and_then(|b| b.content_type.as_deref()) {
            Some(t) if t.eq_ignore_ascii_case("text") => text::plain_to_text(raw),
            _ => match hidden_mentions(msg, excluded) {
                hidden if hidden.is_empty() => text::html_to_text(raw, &self.text),
                hidden => text::html_to_text_hiding(raw, &self.text, &hidden),
            },
        };
        if self.include_card_text {
            cards::append_card_text(&mut text, &msg.attachments);
        }
        match names::remove_names(&text, excluded.names()) {
            Some(cut) => cut,
            None => text,
        }
    }

    /// Whether `msg`'s text is not empty with no one left out: a document that now holds
    /// nothing once a person is removed held their name before.
    pub fn had_text(&self, msg: &ChatMessage) -> bool {
        !self.content(msg, &People::default()).is_empty()
    }

    /// For `forget`: the id of the document `msg` became if `target` wrote it — a message
    /// of theirs that is not deleted, not a system event and not empty — whatever the
    /// opt-outs and the author's mail say now (a renamed or departed person's documents
    /// were sent under the mail they had then).
    pub fn authored_by(&self, place: &Place, msg: &ChatMessage, target: &People) -> Option<String> {
        let author = msg.from.as_ref()?.user.as_ref()?.id.as_deref()?;
        if !target.contains(author)
            || is_deleted(msg)
            || msg.message_type.as_deref() != Some("message")
            || self.content(msg, &People::default()).is_empty()
        {
            return None;
        }
        Some(document_id(
            &self.tenant,
            place.team,
            place.channel,
            place.thread,
            &msg.id,
        ))
    }
}

/// The `<at id>`s of `msg` that stand for excluded people: dropped from the text even
/// when mention names are kept, whatever text they show.
fn hidden_mentions(msg: &ChatMessage, excluded: &People) -> Vec<String> {
    if excluded.is_empty() {
        return Vec::new();
    }
    msg.mentions
        .iter()
        .filter(|m| m.user_id().is_some_and(|id| excluded.contains(id)))
        .filter_map(|m| m.tag_id())
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PersonEntry;

    const OUT: &str = "48d31887-5fad-4d73-a9f5-3c356e68a038";
    const KEPT: &str = "11111111-5fad-4d73-a9f5-3c356e68a038";

    fn directory() -> Directory {
        let mut dir = Directory::default();
        dir.insert(OUT, "megan@contoso.com");
        dir.insert(KEPT, "alex@contoso.com");
        let mut r = Resolver::new(&[PersonEntry::parse("megan@contoso.com").unwrap()]);
        for (id, mail, name) in [
            (OUT, "megan@contoso.com", "Megan Bowen"),
            (KEPT, "alex@contoso.com", "Alex Wilber"),
        ] {
            r.user(&UserRecord {
                id,
                mail: Some(mail),
                upn: Some(mail),
                display_name: Some(name),
                proxy_addresses: &[],
            });
        }
        dir.excluded = r.finish().0;
        dir
    }

    fn message(author: &str) -> ChatMessage<'static> {
        let json = serde_json::json!({
            "id": "1", "messageType": "message", "createdDateTime": "2024-01-01T00:00:00Z",
            "from": {"user": {"id": author}},
            "body": {"contentType": "html", "content": "<p><at id=\"0\">Meg</at> and <at id=\"1\">Alex Wilber</at>, Megan Bowen wrote the budget.</p>"},
            "mentions": [
                {"id": 0, "mentioned": {"user": {"id": OUT}}},
                {"id": 1, "mentioned": {"user": {"id": KEPT}}}
            ]
        });
        // The message borrows from its text, as from a page's body.
        serde_json::from_str(Box::leak(json.to_string().into_boxed_str())).unwrap()
    }

    #[test]
    fn an_opted_out_person_is_no_author_no_mention_and_no_name() {
        let t = Transformer {
            tenant: "t".into(),
            text: TextOptions {
                keep_mention_names: true,
            },
            include_card_text: false,
        };
        let place = Place {
            team: "t",
            channel: "c",
            thread: "1",
        };
        let dir = directory();
        assert!(matches!(
            t.message(&place, &message(OUT), &dir, true),
            Outcome::Skip(Skip::OptedOut)
        ));
        let Outcome::Forward(doc) = t.message(&place, &message(KEPT), &dir, true) else {
            panic!("forwarded");
        };
        let v = serde_json::to_value(&doc).unwrap();
        assert_eq!(v["mentions"], serde_json::json!(["alex@contoso.com"]));
        // The shortened mention and the typed name both go; the other name stays.
        assert_eq!(v["content"], "and Alex Wilber, wrote the budget.");
    }
}
