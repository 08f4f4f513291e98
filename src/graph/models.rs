//! The Graph resources the crawl reads, with only the fields it uses.
//!
//! Everything optional is `Option` or defaulted: real bodies leave fields out
//! (`joined-teams-v1.0-2021.json` has only `id`) or null them (`from` on system events,
//! `body.content` on deleted messages). Unknown fields are ignored; unknown enum values
//! stay strings, so `unknownFutureValue` is skipped, not a parse error.

use std::borrow::Cow;

use serde::Deserialize;

/// One page of a collection: `value` plus the continuation links.
#[derive(Debug, Deserialize)]
pub struct Page<T> {
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    pub delta_link: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub mail: Option<String>,
    pub user_principal_name: Option<String>,
    /// Selected only while opt-outs are configured (their names leave the text).
    pub display_name: Option<String>,
    /// `SMTP:primary`, `smtp:former`: read only with `User.Read.All` (null otherwise).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub proxy_addresses: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    pub id: String,
    pub display_name: Option<String>,
    pub visibility: Option<String>,
    /// The host's tenant (`joinedTeams`, `associatedTeams`): another one for a shared
    /// channel shared across organisations.
    pub tenant_id: Option<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    pub id: String,
    pub display_name: Option<String>,
    pub membership_type: Option<String>,
}

/// A string of a page: borrowed from the body where JSON needed no unescaping. (An
/// `Option<Cow<str>>` field would always copy: serde borrows only a `Cow` it is handed
/// directly.)
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// A message of a page. Its strings borrow from the page's body where JSON needed no
/// unescaping (most ids, dates and types, and bodies without quotes), so a page costs few
/// allocations beyond the body it came in.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub reply_to_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub message_type: Option<Text<'a>>,
    #[serde(borrow)]
    pub created_date_time: Option<Text<'a>>,
    #[serde(borrow)]
    pub last_modified_date_time: Option<Text<'a>>,
    #[serde(borrow)]
    pub last_edited_date_time: Option<Text<'a>>,
    #[serde(borrow)]
    pub deleted_date_time: Option<Text<'a>>,
    #[serde(borrow)]
    pub from: Option<From<'a>>,
    #[serde(borrow)]
    pub body: Option<Body<'a>>,
    #[serde(default, borrow)]
    pub mentions: Vec<Mention<'a>>,
    #[serde(default, borrow)]
    pub attachments: Vec<Attachment<'a>>,
    #[serde(default, borrow)]
    pub replies: Vec<ChatMessage<'a>>,
    #[serde(rename = "replies@odata.nextLink")]
    pub replies_next_link: Option<String>,
    /// How many replies the root has; more than came inline without a nextLink means
    /// Graph cut them off (it does at 1 000).
    #[serde(rename = "replies@odata.count")]
    pub replies_count: Option<usize>,
}

impl ChatMessage<'_> {
    /// `lastModifiedDateTime`; when Graph left it out (it serves some messages with
    /// `null`), the latest of `createdDateTime`, `lastEditedDateTime` and `deletedDateTime`,
    /// so an edit or a deletion still counts as a change.
    pub fn modified(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        if let Some(t) = self
            .last_modified_date_time
            .as_deref()
            .and_then(super::time::parse)
        {
            return Some(t);
        }
        [
            &self.created_date_time,
            &self.last_edited_date_time,
            &self.deleted_date_time,
        ]
        .into_iter()
        .filter_map(|t| t.as_deref().and_then(super::time::parse))
        .max()
    }

    pub fn created(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.created_date_time
            .as_deref()
            .and_then(super::time::parse)
    }
}

#[derive(Debug, Deserialize)]
pub struct From<'a> {
    #[serde(borrow)]
    pub user: Option<Identity<'a>>,
    #[serde(borrow)]
    pub application: Option<Identity<'a>>,
    #[serde(borrow)]
    pub device: Option<Identity<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity<'a> {
    #[serde(borrow)]
    pub id: Option<Text<'a>>,
    #[serde(borrow)]
    pub user_identity_type: Option<Text<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Body<'a> {
    #[serde(borrow)]
    pub content_type: Option<Text<'a>>,
    #[serde(borrow)]
    pub content: Option<Text<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct Mention<'a> {
    /// What `<at id="…">` in the body refers to (a number in Graph's answers).
    pub id: Option<serde_json::Value>,
    #[serde(borrow)]
    pub mentioned: Option<Mentioned<'a>>,
}

impl Mention<'_> {
    /// The `<at id>` this mention is written as, as text.
    pub fn tag_id(&self) -> Option<String> {
        match self.id.as_ref()? {
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::String(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// The mentioned person's object id (not a channel, team, tag or app).
    pub fn user_id(&self) -> Option<&str> {
        self.mentioned.as_ref()?.user.as_ref()?.id.as_deref()
    }
}

#[derive(Debug, Deserialize)]
pub struct Mentioned<'a> {
    #[serde(borrow)]
    pub user: Option<Identity<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment<'a> {
    #[serde(borrow)]
    pub content_type: Option<Text<'a>>,
    #[serde(borrow)]
    pub content: Option<Text<'a>>,
    #[serde(borrow)]
    pub name: Option<Text<'a>>,
}

/// Graph's error envelope: `{"error": {"code", "message", "innerError": {"code"}}}`.
#[derive(Debug, Deserialize, Default)]
pub struct ErrorEnvelope {
    pub error: Option<ErrorDetail>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    pub inner_error: Option<InnerError>,
}

#[derive(Debug, Deserialize, Default)]
pub struct InnerError {
    pub code: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/fixtures/graph/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn parses_every_real_message_page() {
        for name in [
            "channel-messages-delta-page1-nextlink.json",
            "channel-messages-delta-page2-nextlink.json",
            "channel-messages-delta-page3-final-deltalink.json",
            "channel-messages-delta-incremental-deltalink.json",
            "channel-messages-list-page-nextlink.json",
            "channel-messages-list-page-with-system-event.json",
            "channel-messages-list-expand-replies.json",
            "channel-messages-list-beta-with-deleted-message.json",
            "channel-message-replies-list.json",
        ] {
            let text = fixture(name);
            let page: Page<ChatMessage> =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!page.value.is_empty(), "{name}");
        }
        let text = fixture("channel-messages-delta-page3-final-deltalink.json");
        let last: Page<ChatMessage> = serde_json::from_str(&text).unwrap();
        assert!(last.delta_link.unwrap().contains("$deltatoken="));
    }

    /// A message's strings borrow from the page's body (no copy, no allocation) wherever
    /// JSON needed no unescaping, optional ones and nested ones too; an escaped string is
    /// its own, unescaped.
    #[test]
    fn message_strings_borrow_from_the_page_unless_escaped() {
        let text = r#"{"value": [{"id": "1", "replyToId": "0", "messageType": "message",
            "createdDateTime": "2024-01-01T00:00:00Z", "from": {"user": {"id": "u1"}},
            "body": {"contentType": "html", "content": "<p>hi <at id=\"0\">Meg</at></p>"},
            "attachments": [{"name": "plan.docx"}],
            "replies": [{"id": "2", "body": {"content": "<p>plain</p>"}}]}]}"#;
        let page: Page<ChatMessage> = serde_json::from_str(text).unwrap();
        let msg = &page.value[0];
        let borrowed = |t: &Option<Text>| matches!(t, Some(Text(Cow::Borrowed(_))));
        assert!(matches!(msg.id, Cow::Borrowed("1")));
        assert!(borrowed(&msg.reply_to_id));
        assert!(borrowed(&msg.created_date_time));
        let author = msg.from.as_ref().and_then(|f| f.user.as_ref()).unwrap();
        assert!(borrowed(&author.id));
        assert!(borrowed(&msg.attachments[0].name));
        let reply = msg.replies[0].body.as_ref().unwrap();
        assert!(borrowed(&reply.content));
        let content = msg.body.as_ref().unwrap().content.as_ref().unwrap();
        assert!(matches!(content.0, Cow::Owned(_)));
        assert_eq!(&**content, r#"<p>hi <at id="0">Meg</at></p>"#);
    }

    #[test]
    fn parses_directory_and_team_pages() {
        let users: Page<User> = serde_json::from_str(&fixture("users-list-page.json")).unwrap();
        assert!(users.value.iter().any(|u| u.mail.is_none()));
        let teams: Page<Team> =
            serde_json::from_str(&fixture("joined-teams-v1.0-2021.json")).unwrap();
        assert!(teams.value.iter().all(|t| t.display_name.is_none()));
        let channels: Page<Channel> =
            serde_json::from_str(&fixture("channels-list-filter-shared-beta.json")).unwrap();
        assert_eq!(channels.value[0].membership_type.as_deref(), Some("shared"));
    }

    #[test]
    fn parses_the_teams_style_nested_error() {
        let e: ErrorEnvelope =
            serde_json::from_str(&fixture("error-404-team-not-found.json")).unwrap();
        let detail = e.error.unwrap();
        assert_eq!(
            detail.inner_error.and_then(|i| i.code).as_deref(),
            Some("ItemNotFound")
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::transform::{Directory, Place, TextOptions, Transformer};
    use proptest::prelude::*;

    fn message_json() -> impl Strategy<Value = String> {
        let text = ".{0,40}";
        (
            text,
            prop::option::of(text),
            prop::option::of(prop::sample::select(vec!["message", "systemEventMessage", "unknownFutureValue", ""])),
            prop::option::of(text),
            prop::option::of(text),
            prop::bool::ANY,
            prop::option::of(prop::sample::select(vec!["html", "text", "HTML", "weird"])),
        )
            .prop_map(|(id, content, kind, created, deleted, app, ctype)| {
                serde_json::json!({
                    "id": id,
                    "messageType": kind,
                    "createdDateTime": created,
                    "lastModifiedDateTime": created,
                    "deletedDateTime": deleted,
                    "from": if app { serde_json::json!({"application": {"id": "a"}}) } else { serde_json::json!({"user": {"id": "u1"}}) },
                    "body": {"contentType": ctype, "content": content},
                    "mentions": [{"mentioned": {"user": {"id": "u1"}}}, {"mentioned": {"conversation": {}}}],
                    "replies": [{"id": "r", "body": null, "from": null}],
                })
                .to_string()
            })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_page_parser(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = serde_json::from_slice::<Page<ChatMessage>>(&bytes);
            let _ = serde_json::from_slice::<ErrorEnvelope>(&bytes);
        }

        #[test]
        fn arbitrary_messages_never_panic_the_transform(json in message_json()) {
            let Ok(msg) = serde_json::from_str::<ChatMessage>(&json) else { return Ok(()) };
            let mut dir = Directory::default();
            dir.insert("u1", "a@b.example");
            let t = Transformer { tenant: "t".into(), text: TextOptions::default(), include_card_text: true };
            let place = Place { team: "t", channel: "c", thread: &msg.id };
            let _ = t.message(&place, &msg, &dir, true);
            for r in &msg.replies {
                let _ = t.message(&place, r, &dir, false);
            }
        }
    }
}
