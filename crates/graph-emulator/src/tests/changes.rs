//! Targeted changes: several messages in one millisecond, changes nobody wrote, deletions
//! Graph does not mark, the directory changing under the messages, new channels, changes
//! that land during a request — each seen through Graph and through the ground truth.

use serde_json::Value;

use super::*;

fn key(t: &TruthMessage) -> MessageKey {
    MessageKey {
        team_id: t.team_id.clone(),
        channel_id: t.channel_id.clone(),
        thread_id: t.thread_id.clone(),
        message_id: t.message_id.clone(),
    }
}

fn truth_of(emu: &Emulator, k: &MessageKey) -> TruthMessage {
    emu.truth()
        .into_iter()
        .find(|t| &key(t) == k)
        .expect("the message is in the truth")
}

/// A root a connector must forward, with at least `replies` replies.
fn forwarded_root(emu: &Emulator, replies: usize) -> TruthMessage {
    let truth = emu.truth();
    truth
        .iter()
        .filter(|t| t.thread_id == t.message_id)
        .filter(|t| {
            matches!(
                t.expected,
                Expected::Forward {
                    marker: Some(_),
                    ..
                }
            )
        })
        .find(|root| {
            truth
                .iter()
                .filter(|r| r.thread_id == root.thread_id && r.message_id != r.thread_id)
                .filter(|r| r.channel_id == root.channel_id)
                .count()
                >= replies
        })
        .cloned()
        .expect("the tenant has such a root")
}

async fn message_json(
    emu: &Emulator,
    http: &reqwest::Client,
    access: &str,
    k: &MessageKey,
) -> Value {
    let base = format!(
        "{}/v1.0/teams/{}/channels/{}/messages/{}",
        emu.url(),
        k.team_id,
        k.channel_id,
        k.thread_id
    );
    let url = if k.message_id == k.thread_id {
        base
    } else {
        format!("{base}/replies/{}", k.message_id)
    };
    let (status, v) = get(http, access, &url).await;
    assert_eq!(status, 200, "{v}");
    v
}

/// `lastModifiedDateTime`, parsed (Graph trims trailing zeros: strings do not sort).
fn time(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v["lastModifiedDateTime"].as_str().unwrap()).unwrap()
}

fn delta_url(emu: &Emulator, team: &str, channel: &str) -> String {
    format!(
        "{}/v1.0/teams/{team}/channels/{channel}/messages/delta?$expand=replies",
        emu.url()
    )
}

#[tokio::test]
async fn roots_in_several_channels_and_teams_share_one_id() {
    let (emu, http, access) = start(TenantSpec::default()).await;
    let channels: Vec<ChannelKey> = channels_of(&emu.truth())
        .into_iter()
        .map(|(team_id, channel_id)| ChannelKey {
            team_id,
            channel_id,
        })
        .collect();
    let teams: BTreeSet<&String> = channels.iter().map(|c| &c.team_id).collect();
    assert!(channels.len() >= 3 && teams.len() >= 2);
    let added = emu.apply(Change::Root(channels.clone())).added;
    assert_eq!(added.len(), channels.len());
    assert!(added.iter().all(|k| k.message_id == added[0].message_id));
    for k in &added {
        let t = truth_of(&emu, k);
        assert!(matches!(t.expected, Expected::Forward { .. }));
        let (items, _, _) =
            delta_round(&http, &access, &delta_url(&emu, &k.team_id, &k.channel_id)).await;
        assert!(items.iter().any(|m| m["id"] == k.message_id.as_str()));
    }
}

#[tokio::test]
async fn a_reply_brings_its_root_back_in_delta_only_when_asked() {
    let (emu, http, access) = start(TenantSpec::default()).await;
    let root = forwarded_root(&emu, 0);
    let url = delta_url(&emu, &root.team_id, &root.channel_id);
    let (_, link, _) = delta_round(&http, &access, &url).await;

    let quiet = emu
        .apply_bumping(Change::Reply(vec![key(&root)]), false)
        .added;
    let t = truth_of(&emu, &quiet[0]);
    assert_eq!(t.surfaced, None, "only the sweep can find it");
    let (items, link, _) = delta_round(&http, &access, &link).await;
    assert!(items.is_empty(), "the root did not come back: {items:?}");

    let loud = emu
        .apply_bumping(Change::Reply(vec![key(&root)]), true)
        .added;
    let (items, _, _) = delta_round(&http, &access, &link).await;
    assert_eq!(items.len(), 1);
    let inline: Vec<&str> = items[0]["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(
        inline.contains(&quiet[0].message_id.as_str())
            && inline.contains(&loud[0].message_id.as_str())
    );
    // The root's return shows the earlier reply too.
    assert!(truth_of(&emu, &quiet[0]).surfaced.is_some());
}

#[tokio::test]
async fn touches_and_reactions_change_nothing_anyone_wrote() {
    let (emu, http, access) = start(TenantSpec::default()).await;
    let root = key(&forwarded_root(&emu, 0));
    let before = message_json(&emu, &http, &access, &root).await;
    let expected = truth_of(&emu, &root).expected;

    emu.apply(Change::Touch(vec![root.clone()]));
    let touched = message_json(&emu, &http, &access, &root).await;
    assert!(time(&touched) > time(&before));
    for field in [
        "body",
        "lastEditedDateTime",
        "from",
        "mentions",
        "reactions",
    ] {
        assert_eq!(touched[field], before[field], "{field}");
    }

    emu.apply(Change::React(vec![root.clone()]));
    let reacted = message_json(&emu, &http, &access, &root).await;
    assert!(time(&reacted) > time(&touched));
    assert_eq!(reacted["body"], before["body"]);
    let reaction = &reacted["reactions"][0];
    assert_eq!(reaction["reactionType"], "like");
    assert!(reaction["user"]["user"]["id"].is_string());
    let t = truth_of(&emu, &root);
    assert_eq!(t.expected, expected);
    assert!(t.last_modified > truth_of(&emu, &root).created);
}

#[tokio::test]
async fn people_leave_the_directory_or_get_a_new_mail() {
    let (emu, http, access) = start(TenantSpec::default()).await;
    let root = key(&forwarded_root(&emu, 0));
    let msg = message_json(&emu, &http, &access, &root).await;
    let author = msg["from"]["user"]["id"].as_str().unwrap().to_owned();
    let users_url = format!("{}/v1.0/users?$top=999", emu.url());
    let listed = |v: &Value| -> Vec<String> {
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .collect()
    };

    let old_mail = emu
        .users()
        .into_iter()
        .find(|u| u.id == author)
        .unwrap()
        .mail
        .unwrap();
    assert_eq!(
        emu.apply(Change::NewMail(vec![author.clone()])).users,
        vec![author.clone()]
    );
    let now = emu.users().into_iter().find(|u| u.id == author).unwrap();
    let new_mail = now.mail.clone().unwrap();
    assert_ne!(new_mail, old_mail);
    let t = truth_of(&emu, &root);
    assert!(matches!(&t.expected, Expected::Forward { author, .. } if *author == new_mail));
    assert!(t.identities_changed.unwrap() > t.last_modified);
    assert!(
        emu.sensitive_strings().contains(&old_mail),
        "former mails are still sensitive"
    );

    emu.apply(Change::Leave(vec![author.clone()]));
    assert!(!listed(&get(&http, &access, &users_url).await.1).contains(&author));
    assert!(
        !emu.users()
            .into_iter()
            .find(|u| u.id == author)
            .unwrap()
            .present
    );
    assert_eq!(
        truth_of(&emu, &root).expected,
        Expected::Skip(SkipKind::NoMail)
    );
    // The message still names its author; only the directory forgot them.
    let msg = message_json(&emu, &http, &access, &root).await;
    assert_eq!(msg["from"]["user"]["id"], author.as_str());
    // New messages come from people still there.
    let added = emu.apply(Change::Reply(vec![root.clone()])).added;
    let reply = message_json(&emu, &http, &access, &added[0]).await;
    assert_ne!(reply["from"]["user"]["id"], author.as_str());
    // The technical user cannot leave.
    let technical = emu.users()[0].id.clone();
    assert!(emu.apply(Change::Leave(vec![technical])).users.is_empty());
}

#[tokio::test]
async fn a_deleted_root_keeps_its_replies() {
    let (emu, http, access) = start(TenantSpec::default()).await;
    let root = forwarded_root(&emu, 0);
    let reply = emu.apply(Change::Reply(vec![key(&root)])).added.remove(0);
    let url = delta_url(&emu, &root.team_id, &root.channel_id);
    let (_, link, _) = delta_round(&http, &access, &url).await;
    emu.apply(Change::Delete(vec![key(&root)]));
    let (items, _, _) = delta_round(&http, &access, &link).await;
    assert_eq!(items.len(), 1);
    assert!(items[0]["deletedDateTime"].is_string());
    assert!(items[0]["replies"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"] == reply.message_id.as_str()));
    assert!(matches!(
        truth_of(&emu, &reply).expected,
        Expected::Forward { .. }
    ));
    assert_eq!(
        truth_of(&emu, &key(&root)).expected,
        Expected::Skip(SkipKind::Deleted)
    );
}

#[tokio::test]
async fn unmarked_deletions_and_hidden_timestamps() {
    let (emu, http, access) = start(TenantSpec::default()).await;
    let truth = emu.truth();
    let mut roots = truth
        .iter()
        .filter(|t| t.thread_id == t.message_id && matches!(t.expected, Expected::Forward { .. }))
        .map(key);
    let (gone, hidden) = (roots.next().unwrap(), roots.next().unwrap());

    emu.apply(Change::DeleteUnmarked(vec![gone.clone()]));
    let v = message_json(&emu, &http, &access, &gone).await;
    assert!(v["deletedDateTime"].is_null() && v["from"].is_null(), "{v}");
    assert_eq!(v["body"]["content"], "");
    assert!(v["lastModifiedDateTime"].is_string());
    assert_eq!(
        truth_of(&emu, &gone).expected,
        Expected::Skip(SkipKind::Deleted)
    );

    // Hidden after an unmarked deletion: the deletion still shows when it happened.
    emu.apply(Change::HideModified(vec![gone.clone()]));
    let v = message_json(&emu, &http, &access, &gone).await;
    assert!(v["lastModifiedDateTime"].is_string(), "{v}");

    emu.apply(Change::HideModified(vec![hidden.clone()]));
    let v = message_json(&emu, &http, &access, &hidden).await;
    assert!(v["lastModifiedDateTime"].is_null() && v["lastEditedDateTime"].is_null());
    emu.apply(Change::Edit(vec![hidden.clone()]));
    let v = message_json(&emu, &http, &access, &hidden).await;
    assert!(
        v["lastModifiedDateTime"].is_null(),
        "an edit keeps it hidden"
    );
    assert!(v["lastEditedDateTime"].is_string());
    let t = truth_of(&emu, &hidden);
    assert_eq!(
        t.last_modified.to_rfc3339(),
        chrono::DateTime::parse_from_rfc3339(v["lastEditedDateTime"].as_str().unwrap())
            .unwrap()
            .to_rfc3339()
    );
    emu.apply(Change::Delete(vec![hidden.clone()]));
    let v = message_json(&emu, &http, &access, &hidden).await;
    assert!(
        v["lastModifiedDateTime"].is_string(),
        "a deletion brings it back"
    );
}

#[tokio::test]
async fn a_channel_id_repeated_under_another_team_is_its_own_channel() {
    let (emu, http, access) = start(TenantSpec::default()).await;
    let truth = emu.truth();
    let channels: Vec<(String, String)> = channels_of(&truth).into_iter().collect();
    let (team_a, channel) = channels[0].clone();
    let team_b = channels
        .iter()
        .map(|c| &c.0)
        .find(|t| **t != team_a)
        .unwrap()
        .clone();
    let report = emu.apply(Change::AddChannel(vec![NewChannel {
        team_id: team_b.clone(),
        channel_id: Some(channel.clone()),
    }]));
    assert_eq!(report.channels.len(), 1);
    // Adding it twice to the same team does nothing.
    let again = NewChannel {
        team_id: team_b.clone(),
        channel_id: Some(channel.clone()),
    };
    assert!(emu
        .apply(Change::AddChannel(vec![again]))
        .channels
        .is_empty());
    let (_, list) = get(
        &http,
        &access,
        &format!("{}/v1.0/teams/{team_b}/channels", emu.url()),
    )
    .await;
    assert!(list["value"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == channel.as_str()));

    let both = vec![
        ChannelKey {
            team_id: team_a.clone(),
            channel_id: channel.clone(),
        },
        ChannelKey {
            team_id: team_b.clone(),
            channel_id: channel.clone(),
        },
    ];
    let added = emu.apply(Change::Root(both)).added;
    assert_eq!(added.len(), 2);
    assert_eq!(added[0].message_id, added[1].message_id);
    let (items, _, _) = delta_round(&http, &access, &delta_url(&emu, &team_b, &channel)).await;
    assert_eq!(items.len(), 1, "the new channel holds only its own root");
    let after = emu.truth();
    let in_b = after
        .iter()
        .filter(|t| t.team_id == team_b && t.channel_id == channel)
        .count();
    assert_eq!(in_b, 1);
}

#[tokio::test]
async fn a_change_can_land_during_a_request() {
    let (emu, http, access) = start(TenantSpec::default()).await;
    let root = forwarded_root(&emu, 0);
    let url = delta_url(&emu, &root.team_id, &root.channel_id);
    let (_, link, _) = delta_round(&http, &access, &url).await;
    // Due with the second delta request from now, before it is answered.
    emu.apply_during("delta", "", 1, Change::Edit(vec![key(&root)]), true);
    let (status, first) = get(&http, &access, &link).await;
    assert_eq!(status, 200);
    assert!(first["value"].as_array().unwrap().is_empty());
    assert!(emu.applied_during().is_empty());
    let (items, _, _) = delta_round(&http, &access, &link).await;
    let applied = emu.applied_during();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].edited, vec![key(&root)]);
    assert!(items.iter().any(|m| m["id"] == root.message_id.as_str()));
    // A change scoped to another channel waits for that channel's requests.
    emu.apply_during(
        "delta",
        "19:elsewhere",
        0,
        Change::Edit(vec![key(&root)]),
        true,
    );
    assert_eq!(get(&http, &access, &link).await.0, 200);
    assert!(emu.applied_during().is_empty());
    assert_eq!(emu.clear_injected(), 1);
    // One not yet due is dropped by `clear_injected`.
    emu.apply_during(
        "replies",
        &root.channel_id,
        5,
        Change::Edit(vec![key(&root)]),
        true,
    );
    assert_eq!(emu.clear_injected(), 1);
}
