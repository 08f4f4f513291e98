//! Delta rounds, lists, replies and the generated message mix.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::*;

#[tokio::test]
async fn delta_returns_every_root_and_then_the_changes() {
    let (emu, http, access) = start(TenantSpec::default()).await;
    let truth = emu.truth();
    let mut links = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut empty_pages = 0;
    for (team, channel) in channels_of(&truth) {
        let url = format!(
            "{}/v1.0/teams/{team}/channels/{channel}/messages/delta?$top=7&$expand=replies",
            emu.url()
        );
        let (items, link, empty) = delta_round(&http, &access, &url).await;
        empty_pages += empty;
        let mut last_seen = "";
        for root in &items {
            assert!(root["replyToId"].is_null());
            assert!(
                root["createdDateTime"].as_str().unwrap() >= last_seen,
                "oldest first"
            );
            last_seen = root["createdDateTime"].as_str().unwrap();
            seen.insert(root["id"].as_str().unwrap().to_owned());
            for r in root["replies"].as_array().unwrap() {
                seen.insert(r["id"].as_str().unwrap().to_owned());
            }
            assert_eq!(
                root["replies@odata.count"].as_u64().unwrap() as usize,
                root["replies"].as_array().unwrap().len()
            );
        }
        links.insert((team, channel), link);
    }
    let all: BTreeSet<String> = truth.iter().map(|t| t.message_id.clone()).collect();
    assert_eq!(seen, all);
    // An incremental round without changes returns nothing.
    for link in links.values() {
        assert!(delta_round(&http, &access, link).await.0.is_empty());
    }
    let report = emu.mutate(Mutation {
        add_roots: 2,
        add_replies: 2,
        edit: 2,
        delete: 2,
    });
    assert_eq!(
        (
            report.added.len(),
            report.edited.len(),
            report.deleted.len()
        ),
        (4, 2, 2)
    );
    let mut changed = BTreeMap::new();
    for link in links.values() {
        for root in delta_round(&http, &access, link).await.0 {
            changed.insert(root["id"].as_str().unwrap().to_owned(), root);
        }
    }
    for k in report
        .added
        .iter()
        .chain(&report.edited)
        .chain(&report.deleted)
    {
        assert!(
            changed.contains_key(&k.thread_id),
            "{k:?} not in the incremental round"
        );
    }
    for k in &report.deleted {
        let root = &changed[&k.thread_id];
        let m = if k.thread_id == k.message_id {
            root.clone()
        } else {
            root["replies"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == k.message_id.as_str())
                .unwrap()
                .clone()
        };
        assert!(m["deletedDateTime"].is_string() && m["from"].is_null());
        assert_eq!(m["body"], json!({"contentType": "html", "content": ""}));
    }
    let newest_before = truth.iter().map(|t| t.last_modified).max().unwrap();
    let after = emu.truth();
    assert!(after.iter().filter(|t| t.deleted).count() >= 2);
    for k in report.edited.iter().chain(&report.added) {
        let t = after.iter().find(|t| t.message_id == k.message_id).unwrap();
        assert!(t.last_modified > newest_before);
        assert!(matches!(
            &t.expected,
            Expected::Forward {
                marker: Some(_),
                ..
            }
        ));
    }
    let _ = empty_pages;
}

#[tokio::test]
async fn some_rounds_open_with_an_empty_page() {
    let (emu, http, access) = start(TenantSpec {
        teams: 4,
        channels_per_team: 4,
        messages_per_channel: 2,
        max_replies: 0,
        ..TenantSpec::default()
    })
    .await;
    let mut empty = 0;
    for (team, channel) in channels_of(&emu.truth()) {
        let url = format!(
            "{}/v1.0/teams/{team}/channels/{channel}/messages/delta",
            emu.url()
        );
        let (items, _, e) = delta_round(&http, &access, &url).await;
        assert_eq!(items.len(), 2);
        empty += e;
    }
    assert!(empty > 0, "16 channels and no empty first page");
}

#[tokio::test]
async fn delta_rejects_bad_tokens_and_big_pages() {
    let (emu, http, access) = start(TenantSpec::default()).await;
    let t = &emu.truth()[0];
    let base = format!(
        "{}/v1.0/teams/{}/channels/{}/messages/delta",
        emu.url(),
        t.team_id,
        t.channel_id
    );
    let (status, body) = get(
        &http,
        &access,
        &format!("{base}?$deltatoken=abcdef0123456789"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("BadRequest"))
    );
    assert_eq!(get(&http, &access, &format!("{base}?$top=51")).await.0, 400);
}

#[tokio::test]
async fn list_is_newest_first_and_replies_page() {
    let (emu, http, access) = start(TenantSpec {
        max_replies: 6,
        ..TenantSpec::default()
    })
    .await;
    emu.set_inline_replies_limit(2);
    let truth = emu.truth();
    let t = &truth[0];
    let mut url = format!(
        "{}/v1.0/teams/{}/channels/{}/messages?$top=3&$expand=replies",
        emu.url(),
        t.team_id,
        t.channel_id
    );
    let mut created = Vec::new();
    let mut replies_checked = false;
    loop {
        let (status, page) = get(&http, &access, &url).await;
        assert_eq!(status, 200, "{page}");
        for root in page["value"].as_array().unwrap() {
            created.push(root["createdDateTime"].as_str().unwrap().to_owned());
            if let Some(next) = root["replies@odata.nextLink"].as_str() {
                let (_, rest) = get(&http, &access, next).await;
                let total = root["replies@odata.count"].as_u64().unwrap() as usize;
                assert_eq!(2 + rest["value"].as_array().unwrap().len(), total);
                replies_checked = true;
            }
        }
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    let roots = truth
        .iter()
        .filter(|m| m.channel_id == t.channel_id && m.thread_id == m.message_id)
        .count();
    assert_eq!(created.len(), roots);
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert!(replies_checked);
}

#[tokio::test]
async fn the_mix_covers_every_case_and_mentions_match_the_body() {
    let (emu, http, access) = start(TenantSpec {
        messages_per_channel: 40,
        ..TenantSpec::default()
    })
    .await;
    let truth = emu.truth();
    let kinds: BTreeSet<String> = truth
        .iter()
        .map(|t| match &t.expected {
            Expected::Forward {
                marker: Some(_),
                mentions,
                ..
            } if mentions.is_empty() => "forward".to_owned(),
            Expected::Forward {
                marker: Some(_), ..
            } => "forward-mentions".to_owned(),
            Expected::Forward { marker: None, .. } => "fixture".to_owned(),
            Expected::Skip(k) => format!("{k:?}"),
        })
        .collect();
    for k in [
        "forward",
        "forward-mentions",
        "fixture",
        "SystemEvent",
        "Bot",
        "Deleted",
        "NoMail",
        "Empty",
    ] {
        assert!(kinds.contains(k), "no {k} in {kinds:?}");
    }
    assert!(truth.iter().any(|t| t.team_private) && truth.iter().any(|t| t.channel_private));
    let sensitive = emu.sensitive_strings();
    let mut split_names = 0;
    for (team, channel) in channels_of(&truth) {
        let url = format!(
            "{}/v1.0/teams/{team}/channels/{channel}/messages/delta?$top=50&$expand=replies",
            emu.url()
        );
        for root in delta_round(&http, &access, &url).await.0 {
            for m in std::iter::once(&root).chain(root["replies"].as_array().unwrap()) {
                let body = m["body"]["content"].as_str().unwrap();
                let tags = parts::at_texts(body);
                let mentions = m["mentions"].as_array().unwrap();
                assert_eq!(tags.len(), mentions.len(), "{m}");
                let users: BTreeSet<&str> = mentions
                    .iter()
                    .filter_map(|x| x["mentioned"]["user"]["id"].as_str())
                    .collect();
                split_names += usize::from(users.len() == 1 && mentions.len() > 1);
                let t = truth
                    .iter()
                    .find(|t| t.message_id == m["id"].as_str().unwrap())
                    .unwrap();
                if let Expected::Forward {
                    marker: Some(mk),
                    author,
                    ..
                } = &t.expected
                {
                    assert!(body.contains(mk.as_str()));
                    assert!(sensitive.contains(mk) && sensitive.contains(author));
                }
            }
        }
    }
    assert!(split_names > 0);
}

#[tokio::test]
async fn same_seed_same_tenant() {
    let a = Emulator::start(TenantSpec::default(), EmulatorOptions::default(), local())
        .await
        .unwrap();
    let b = Emulator::start(TenantSpec::default(), EmulatorOptions::default(), local())
        .await
        .unwrap();
    let shape = |e: &Emulator| {
        e.truth()
            .into_iter()
            .map(|t| (t.team_id, t.channel_id, t.expected))
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(&a), shape(&b));
    assert_eq!(
        (a.tenant_id(), a.client_id(), a.initial_refresh_token()),
        (b.tenant_id(), b.client_id(), b.initial_refresh_token())
    );
    let c = Emulator::start(
        TenantSpec {
            seed: 2,
            ..TenantSpec::default()
        },
        EmulatorOptions::default(),
        local(),
    )
    .await
    .unwrap();
    assert_ne!(shape(&a), shape(&c));
}
