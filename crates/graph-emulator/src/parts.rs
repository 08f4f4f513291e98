//! JSON building blocks of a chatMessage that the body generator needs: mention entries,
//! attachment entries, system-event details, and the bodies copied from
//! `fixtures/graph/message-bodies.json`.
//!
//! Shapes follow the Graph samples in `fixtures/graph/` (see `channel-message-mention-*.json`,
//! `channel-message-with-file-attachment.json`, `channel-messages-list-page-with-system-event.json`).

use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::directory::User;

/// What an `<at>` tag of a fixture body points at; person slots are filled with generated users.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FixtureMention {
    Person(usize),
    Team,
    Channel,
    Tag,
}

use FixtureMention::{Channel, Person, Tag, Team};

/// Fixture bodies that carry text of their own, with what their `<at id>` tags mention.
/// Left out on purpose: 1 and 9 (images only), 2 (system event), 6 (card only), 14 (`@Everyone`
/// in a chat, not a channel construct) and 15 (forwarded-message placeholder).
const USABLE_FIXTURES: &[(usize, &[FixtureMention])] = &[
    (0, &[Person(0)]),
    (3, &[]),
    (4, &[Person(0), Person(1)]),
    (5, &[]),
    (7, &[Team]),
    (8, &[Channel]),
    (10, &[Tag]),
    (11, &[]),
    (12, &[]),
    (13, &[]),
    (16, &[]),
    (17, &[]),
    (18, &[]),
    (19, &[]),
    (20, &[]),
    (21, &[]),
    (22, &[]),
    (23, &[]),
    // One person's name split over four tags: every tag points to the same user.
    (24, &[Person(0), Person(0), Person(0), Person(0)]),
    (25, &[]),
    (26, &[]),
];

fn fixture_bodies() -> &'static [String] {
    static BODIES: OnceLock<Vec<String>> = OnceLock::new();
    BODIES.get_or_init(|| {
        let raw: Value =
            serde_json::from_str(include_str!("../../../fixtures/graph/message-bodies.json"))
                .expect("fixtures/graph/message-bodies.json is valid JSON");
        raw.as_array()
            .expect("message-bodies.json is an array")
            .iter()
            .map(|e| e["html"].as_str().unwrap_or_default().to_owned())
            .collect()
    })
}

pub(crate) fn usable_fixture_count() -> usize {
    USABLE_FIXTURES.len()
}

/// The `n`-th usable fixture body and its mention plan.
pub(crate) fn fixture(n: usize) -> (&'static str, &'static [FixtureMention]) {
    let (index, plan) = USABLE_FIXTURES[n % USABLE_FIXTURES.len()];
    (fixture_bodies()[index].as_str(), plan)
}

/// The inner texts of the `<at id="…">…</at>` tags of a body, in document order.
pub(crate) fn at_texts(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<at id=") {
        rest = &rest[start..];
        let Some(open_end) = rest.find('>') else {
            break;
        };
        let Some(close) = rest.find("</at>") else {
            break;
        };
        out.push(rest[open_end + 1..close].to_owned());
        rest = &rest[close + 5..];
    }
    out
}

pub(crate) fn user_mention(id: usize, text: &str, user: &User) -> Value {
    json!({
        "id": id,
        "mentionText": text,
        "mentioned": {
            "application": null, "device": null, "conversation": null, "tag": null,
            "user": {"id": user.id, "displayName": user.display_name, "userIdentityType": "aadUser"}
        }
    })
}

/// `kind` is `channel` or `team` (`conversationIdentityType`).
pub(crate) fn conversation_mention(
    id: usize,
    text: &str,
    conv_id: &str,
    name: &str,
    kind: &str,
) -> Value {
    json!({
        "id": id,
        "mentionText": text,
        "mentioned": {
            "application": null, "device": null, "user": null, "tag": null,
            "conversation": {"id": conv_id, "displayName": name, "conversationIdentityType": kind}
        }
    })
}

pub(crate) fn tag_mention(id: usize, text: &str, tag_id: &str) -> Value {
    json!({
        "id": id,
        "mentionText": text,
        "mentioned": {
            "application": null, "device": null, "user": null, "conversation": null,
            "tag": {"id": tag_id, "displayName": text}
        }
    })
}

/// attachments[] entries matching the `<attachment id="…">` placeholders of a body.
pub(crate) fn attachments_for(html: &str, sharepoint_host: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<attachment id=\"") {
        rest = &rest[start + 16..];
        let Some(end) = rest.find('"') else { break };
        let id = &rest[..end];
        out.push(if id.starts_with("tab::") {
            json!({"id": id, "contentType": "tabReference", "contentUrl": null, "content": null,
                   "name": "Planner", "thumbnailUrl": null})
        } else {
            json!({"id": id, "contentType": "reference",
                   "contentUrl": format!("https://{sharepoint_host}/sites/team/Shared%20Documents/General/notes.docx"),
                   "content": null, "name": "notes.docx", "thumbnailUrl": null})
        });
    }
    out
}

fn identity(user: &User) -> Value {
    json!({"application": null, "device": null,
           "user": {"id": user.id, "displayName": null, "userIdentityType": "aadUser"}})
}

/// An `eventDetail` like the sample's; `pick` selects one of three common event kinds.
pub(crate) fn event_detail(
    pick: u64,
    team_id: &str,
    channel_id: &str,
    initiator: &User,
    member: &User,
    tenant_guid: &str,
) -> Value {
    match pick % 3 {
        0 => json!({
            "@odata.type": "#microsoft.graph.teamDescriptionUpdatedEventMessageDetail",
            "teamId": team_id,
            "teamDescription": "Team for project coordination",
            "initiator": identity(initiator),
        }),
        1 => json!({
            "@odata.type": "#microsoft.graph.membersAddedEventMessageDetail",
            "visibleHistoryStartDateTime": "0001-01-01T00:00:00Z",
            "members": [{"id": member.id, "displayName": null, "userIdentityType": "aadUser", "tenantId": tenant_guid}],
            "initiator": identity(initiator),
        }),
        _ => json!({
            "@odata.type": "#microsoft.graph.channelAddedEventMessageDetail",
            "channelId": channel_id,
            "channelDisplayName": "Planning",
            "initiator": identity(initiator),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_mention_plans_match_their_at_tags() {
        for n in 0..usable_fixture_count() {
            let (html, plan) = fixture(n);
            assert_eq!(at_texts(html).len(), plan.len(), "fixture #{n}: {html}");
            assert!(!html.contains("systemEventMessage"));
        }
    }

    #[test]
    fn attachment_placeholders_get_entries() {
        let (html, _) = fixture(3);
        assert_eq!(attachments_for(html, "x.sharepoint.com").len(), 1);
    }
}
