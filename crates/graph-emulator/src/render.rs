//! Rendering of tenant objects as Graph JSON (chatMessage, team, channel, user) and the
//! Graph timestamp format.
//!
//! Field names, nesting and nulls follow `fixtures/graph/channel-messages-delta-page*.json`
//! and `channel-messages-list-*.json`. Delta items carry `@odata.type` and
//! `from.conversation: null` like the delta samples; list items carry `eventDetail` like the
//! list samples.

use serde_json::{json, Value};

use crate::content::Sender;
use crate::directory::{User, UserKind};
use crate::tenant::{Channel, Extra, Message, Team, Tenant};

/// `2021-01-22T21:39:42.08Z`: milliseconds with trailing zeros dropped, like Graph.
pub(crate) fn graph_time(ms: i64) -> String {
    let t = crate::tenant::to_utc(ms);
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let frac = ms.rem_euclid(1000);
    if frac == 0 {
        format!("{base}Z")
    } else {
        let digits = format!("{frac:03}");
        format!("{base}.{}Z", digits.trim_end_matches('0'))
    }
}

fn opt_time(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |t| Value::String(graph_time(t)))
}

/// Percent-encodes a channel id the way Teams web URLs and `@odata.context` do.
pub(crate) fn encode_component(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Which endpoint family a message is rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Delta,
    List,
}

pub(crate) fn message(
    t: &Tenant,
    team: &Team,
    ch: &Channel,
    root_id: &str,
    m: &Message,
    flavor: Flavor,
) -> Value {
    let deleted = m.deleted.is_some();
    let extra = m.extra().cloned().unwrap_or_default();
    let content = t.content(team, ch, m);
    let c = &*content;
    let from = match (&c.from, deleted) {
        (_, true) | (Sender::Nobody, _) => Value::Null,
        (Sender::User { id, name }, _) => json!({
            "application": null, "device": null,
            "user": {"id": id, "displayName": name, "userIdentityType": "aadUser"}
        }),
        (Sender::App { id, name }, _) => json!({
            "application": {"id": id, "displayName": name, "applicationIdentityType": "bot"},
            "device": null, "user": null
        }),
    };
    let from = match (from, flavor) {
        (Value::Object(mut o), Flavor::Delta) => {
            o.insert("conversation".into(), Value::Null);
            Value::Object(o)
        }
        (f, _) => f,
    };
    let body = if deleted {
        json!({"contentType": "html", "content": ""})
    } else {
        json!({"contentType": c.body_type, "content": c.body})
    };
    let web_url = format!(
        "https://teams.microsoft.com/l/message/{}/{}?groupId={}&tenantId={}&createdTime={}&parentMessageId={}",
        encode_component(&ch.id),
        m.created,
        team.id,
        t.tenant_guid,
        m.created,
        root_id
    );
    let mut v = json!({
        "id": m.id(),
        "replyToId": m.reply_to_id(),
        "etag": m.modified.to_string(),
        "messageType": if c.system { "systemEventMessage" } else { "message" },
        "createdDateTime": graph_time(m.created),
        // A deleted message always shows when (see `Change::HideModified`).
        "lastModifiedDateTime": opt_time((!extra.hide_modified || deleted).then_some(m.modified)),
        "lastEditedDateTime": opt_time(m.edited),
        "deletedDateTime": opt_time(m.deleted.filter(|_| !extra.unmarked_delete)),
        "subject": null,
        "summary": null,
        "chatId": null,
        "importance": "normal",
        "locale": "en-us",
        "webUrl": web_url,
        "policyViolation": null,
        "from": from,
        "body": body,
        "channelIdentity": {"teamId": team.id, "channelId": ch.id},
        "attachments": if deleted { vec![] } else { c.attachments.clone() },
        "mentions": if deleted { vec![] } else { c.mentions.clone() },
        "reactions": reactions(t, &extra),
    });
    let o = v.as_object_mut().expect("message is an object");
    match flavor {
        Flavor::Delta => {
            o.insert("@odata.type".into(), json!("#microsoft.graph.chatMessage"));
            if c.event_detail.is_some() {
                o.insert(
                    "eventDetail".into(),
                    c.event_detail.clone().unwrap_or_default(),
                );
            }
        }
        Flavor::List => {
            o.insert(
                "eventDetail".into(),
                c.event_detail.clone().unwrap_or(Value::Null),
            );
        }
    }
    v
}

/// `reactions[]` like chatMessageReaction: type, time and who.
fn reactions(t: &Tenant, extra: &Extra) -> Vec<Value> {
    extra
        .reactions
        .iter()
        .map(|(at, who)| {
            let u = &t.people.users[*who];
            json!({
                "reactionType": "like",
                "displayName": null,
                "reactionContentUrl": null,
                "createdDateTime": graph_time(*at),
                "user": {"application": null, "device": null,
                         "user": {"id": u.id, "displayName": null, "userIdentityType": "aadUser"}}
            })
        })
        .collect()
}

pub(crate) fn user(u: &User) -> Value {
    json!({
        "businessPhones": [],
        "displayName": u.display_name,
        "givenName": u.given_name,
        "jobTitle": null,
        "mail": u.mail,
        "mobilePhone": null,
        "officeLocation": null,
        "preferredLanguage": if u.kind == UserKind::Room { Value::Null } else { json!("en-US") },
        "surname": u.surname,
        "userPrincipalName": u.upn,
        "id": u.id,
    })
}

/// A team as `/me/joinedTeams` lists it: `visibility` is null there, as in the real answer.
pub(crate) fn joined_team(t: &Tenant, team: &Team) -> Value {
    let mut v = team_entity(t, team);
    v["visibility"] = Value::Null;
    v["createdDateTime"] = Value::Null;
    v["webUrl"] = Value::Null;
    v
}

pub(crate) fn team_entity(t: &Tenant, team: &Team) -> Value {
    json!({
        "id": team.id,
        "createdDateTime": graph_time(team.created),
        "displayName": team.name,
        "description": team.description,
        "internalId": format!("19:{}@thread.tacv2", &team.id.replace('-', "")),
        "classification": null,
        "specialization": null,
        "visibility": if team.private { "private" } else { "public" },
        "webUrl": format!("https://teams.microsoft.com/l/team/{}/conversations?groupId={}&tenantId={}",
            encode_component(&team.channels.first().map(|c| c.id.clone()).unwrap_or_default()), team.id, t.tenant_guid),
        "isArchived": false,
        "tenantId": t.tenant_guid,
        "isMembershipLimitedToOwners": false,
        "memberSettings": null,
        "guestSettings": null,
        "messagingSettings": null,
        "funSettings": null,
        "discoverySettings": null,
        "tagSettings": null,
        "summary": null,
    })
}

pub(crate) fn channel(ch: &Channel) -> Value {
    json!({
        "id": ch.id,
        "createdDateTime": graph_time(ch.created),
        "displayName": ch.name,
        "description": if ch.description.is_empty() { Value::Null } else { json!(ch.description) },
        "membershipType": if ch.private { "private" } else { "standard" },
    })
}

#[cfg(test)]
mod tests {
    use super::graph_time;

    #[test]
    fn graph_time_trims_like_graph() {
        // 2021-01-22T21:39:42.080Z
        assert_eq!(graph_time(1_611_351_582_080), "2021-01-22T21:39:42.08Z");
        assert_eq!(graph_time(1_611_351_582_000), "2021-01-22T21:39:42Z");
        assert_eq!(graph_time(1_611_351_582_123), "2021-01-22T21:39:42.123Z");
    }
}
