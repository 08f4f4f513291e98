//! What the technical user reaches beyond its own teams, and the people-side changes the
//! privacy tests need: shared channels (`membershipType: shared`), teams it is associated
//! with only through their shared channels (`/me/teamwork/associatedTeams`, possibly in
//! another tenant), a person whose mail changes (the former one kept as a `smtp:` proxy
//! address, readable when full profiles are granted), and messages posted as a chosen
//! person mentioning chosen people.
//!
//! All of it is opt-in through [`Emulator`] methods: a tenant nobody reshapes behaves as
//! before. The state is a side table in the world ([`Reach`]), consulted by the discovery
//! routes and by [`guard`] in front of the channel routes, so the message routes need no
//! change.

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::content::{Content, Sender};
use crate::parts;
use crate::tenant::{new_message, Body, Tenant};
use crate::truth::{Expected, MessageKey};
use crate::{Emulator, Shared};

/// The side table. Field by field:
#[derive(Debug, Default)]
pub(crate) struct Reach {
    /// Channel ids whose `membershipType` is `shared`.
    pub shared: HashSet<String>,
    /// Teams the technical user reaches only through their shared channels: team id →
    /// the host's tenant GUID.
    pub associated: HashMap<String, String>,
    /// Former mails by user id, listed as `smtp:` proxy addresses.
    pub former_mails: HashMap<String, Vec<String>>,
    /// `proxyAddresses` are served (as with `User.Read.All`); null otherwise, as Graph
    /// answers under `User.ReadBasic.All`.
    pub full_profiles: bool,
    /// Requests per channel id, for "excluded channels get no request".
    pub by_channel: BTreeMap<String, u64>,
}

impl Reach {
    /// Whether the technical user may read `channel` of `team` as far as sharing goes: a
    /// channel of an associated team only when it is shared.
    pub(crate) fn allows(&self, team: &str, channel: &str) -> bool {
        !self.associated.contains_key(team) || self.shared.contains(channel)
    }

    pub(crate) fn is_associated(&self, team: &str) -> bool {
        self.associated.contains_key(team)
    }

    /// A user's `proxyAddresses`: the primary mail, then the former ones.
    pub(crate) fn proxy_addresses(&self, id: &str, mail: Option<&str>) -> Value {
        if !self.full_profiles {
            return Value::Null;
        }
        let mut out: Vec<String> = mail.map(|m| format!("SMTP:{m}")).into_iter().collect();
        if let Some(former) = self.former_mails.get(id) {
            out.extend(former.iter().map(|m| format!("smtp:{m}")));
        }
        json!(out)
    }

    /// Counts a request whose path names a channel.
    pub(crate) fn count(&mut self, path: &str) {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if let ["v1.0", "teams", _, "channels", channel, ..] = segs.as_slice() {
            *self.by_channel.entry(decode(channel)).or_default() += 1;
        }
    }
}

/// In front of the channel routes: a channel of an associated team answers 403 unless it
/// is shared (the technical user is a member of the shared channels only).
pub(crate) async fn guard(
    State(app): State<std::sync::Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let segs: Vec<String> = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .map(decode)
        .collect();
    if let [v, teams, team, channels, channel, ..] = segs.as_slice() {
        if v == "v1.0" && teams == "teams" && channels == "channels" {
            let allowed = app.lock().reach.allows(team, channel);
            if !allowed {
                // What Teams answers a non-member (error-403-unknown-error-channel-messages.json).
                return crate::graph::graph_error(StatusCode::FORBIDDEN, "UnknownError", "");
            }
        }
    }
    next.run(req).await
}

fn decode(seg: &str) -> String {
    url::form_urlencoded::parse(format!("s={seg}").as_bytes())
        .map(|(_, v)| v.into_owned())
        .next()
        .unwrap_or_default()
}

/// One person of the directory, as tests need to name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: String,
    pub display_name: String,
    pub mail: Option<String>,
    pub upn: String,
    /// A guest: no mail, a `#EXT#` UPN.
    pub guest: bool,
}

/// A channel of a team the technical user belongs to, with the names patterns match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    pub team_id: String,
    pub team_name: String,
    pub team_private: bool,
    pub channel_id: String,
    pub channel_name: String,
    pub channel_private: bool,
}

/// `GET /me/teamwork/associatedTeams`: the joined teams and the associated ones, as
/// `associatedTeamInfo` (id, displayName, tenantId).
pub(crate) async fn associated_teams(State(app): State<std::sync::Arc<Shared>>) -> Response {
    let w = app.lock();
    let value: Vec<Value> = w
        .tenant
        .teams
        .iter()
        .filter(|t| t.member)
        .map(|t| {
            let tenant = w
                .reach
                .associated
                .get(&t.id)
                .cloned()
                .unwrap_or_else(|| w.tenant.tenant_guid.clone());
            json!({"@odata.type": "#microsoft.graph.associatedTeamInfo", "id": t.id, "displayName": t.name, "tenantId": tenant})
        })
        .collect();
    let context = format!(
        "{}/v1.0/$metadata#users('{}')/teamwork/associatedTeams",
        app.base, w.tenant.people.users[w.tenant.technical].id
    );
    Json(json!({"@odata.context": context, "value": value})).into_response()
}

impl Emulator {
    /// Makes a channel shared (`membershipType: shared`).
    pub fn share_channel(&self, channel_id: &str) {
        self.shared
            .lock()
            .reach
            .shared
            .insert(channel_id.to_string());
    }

    /// The technical user stops being a member of `team_id` but stays a member of its
    /// shared channels: the team leaves `joinedTeams`, appears in `associatedTeams` (with
    /// `tenant_guid`, or the tenant's own when `None`), lists only its shared channels,
    /// and its other channels answer 403. Ground truth drops those other channels.
    pub fn associate_team(&self, team_id: &str, tenant_guid: Option<&str>) {
        let mut w = self.shared.lock();
        let tenant = tenant_guid
            .map(str::to_string)
            .unwrap_or_else(|| w.tenant.tenant_guid.clone());
        w.reach.associated.insert(team_id.to_string(), tenant);
    }

    /// Gives a person a new mail; the former one stays among their proxy addresses.
    pub fn change_mail(&self, user_id: &str, new_mail: &str) {
        let mut w = self.shared.lock();
        let Some(u) = w.tenant.people.users.iter_mut().find(|u| u.id == user_id) else {
            return;
        };
        let former = u.mail.replace(new_mail.to_string());
        if let Some(former) = former {
            w.reach
                .former_mails
                .entry(user_id.to_string())
                .or_default()
                .push(former);
        }
    }

    /// Serves `proxyAddresses` from now on (as when `User.Read.All` is granted).
    pub fn grant_full_profiles(&self, on: bool) {
        self.shared.lock().reach.full_profiles = on;
    }

    /// Everyone in the directory (the technical user and rooms included).
    pub fn people(&self) -> Vec<Person> {
        let w = self.shared.lock();
        w.tenant
            .people
            .users
            .iter()
            .map(|u| Person {
                id: u.id.clone(),
                display_name: u.display_name.clone(),
                mail: u.mail.clone(),
                upn: u.upn.clone(),
                guest: u.kind == crate::directory::UserKind::Guest,
            })
            .collect()
    }

    /// Every channel of the teams the technical user belongs to (associated ones too).
    pub fn channels(&self) -> Vec<ChannelInfo> {
        let w = self.shared.lock();
        w.tenant
            .teams
            .iter()
            .filter(|t| t.member)
            .flat_map(|t| {
                t.channels.iter().map(move |c| ChannelInfo {
                    team_id: t.id.clone(),
                    team_name: t.name.clone(),
                    team_private: t.private,
                    channel_id: c.id.clone(),
                    channel_name: c.name.clone(),
                    channel_private: c.private,
                })
            })
            .collect()
    }

    /// Requests so far whose path names `channel_id` (messages, delta, replies).
    pub fn channel_requests(&self, channel_id: &str) -> u64 {
        let w = self.shared.lock();
        w.reach.by_channel.get(channel_id).copied().unwrap_or(0)
    }

    /// A new root in `channel_id` of `team_id`, written by `author_id` and mentioning
    /// `mentioned` (user ids) by display name, with a fresh marker. Its truth expects the
    /// author's mail and the mentioned people's mails (those who have one).
    pub fn post_as(
        &self,
        team_id: &str,
        channel_id: &str,
        author_id: &str,
        mentioned: &[&str],
    ) -> Option<MessageKey> {
        let now = chrono::Utc::now().timestamp_millis();
        let mut w = self.shared.lock();
        w.tenant
            .post(team_id, channel_id, author_id, mentioned, now)
    }
}

impl Tenant {
    fn post(
        &mut self,
        team_id: &str,
        channel_id: &str,
        author_id: &str,
        mentioned: &[&str],
        now: i64,
    ) -> Option<MessageKey> {
        let content = self.posted_content(author_id, mentioned)?;
        let at = self.alloc_id(now.max(self.max_ts + 1));
        let team = self.teams.iter_mut().find(|t| t.id == team_id)?;
        let ch = team.channels.iter_mut().find(|c| c.id == channel_id)?;
        let mut root = new_message(at, None, Body::Stored(Box::new(content)));
        ch.seq += 1;
        root.seq = ch.seq;
        let id = root.id();
        ch.roots.push(root);
        Some(MessageKey {
            team_id: team_id.to_string(),
            channel_id: channel_id.to_string(),
            thread_id: id.clone(),
            message_id: id,
        })
    }

    fn posted_content(&mut self, author_id: &str, mentioned: &[&str]) -> Option<Content> {
        let users = &self.people.users;
        let author = users.iter().find(|u| u.id == author_id)?;
        let mut lead = String::new();
        let mut mentions = Vec::new();
        let mut mails = Vec::new();
        for (i, id) in mentioned.iter().enumerate() {
            let u = users.iter().find(|u| u.id == *id)?;
            lead.push_str(&format!("<at id=\"{i}\">{}</at>, ", u.display_name));
            mentions.push(parts::user_mention(i, &u.display_name, u));
            mails.extend(u.mail.clone());
        }
        mails.sort();
        mails.dedup();
        let marker = loop {
            let m = format!("mp{}", self.rng.alnum(10));
            if self.markers.insert(m.clone()) {
                break m;
            }
        };
        Some(Content {
            system: false,
            from: Sender::User {
                id: author.id.clone(),
                name: author.display_name.clone(),
            },
            body_type: "html",
            body: format!("<p>{lead}please review the {marker} draft before friday.</p>"),
            mentions,
            attachments: Vec::new(),
            event_detail: None,
            expected: Expected::Forward {
                author: author.mail.clone().unwrap_or_default(),
                mentions: mails,
                marker: Some(marker),
            },
        })
    }
}
