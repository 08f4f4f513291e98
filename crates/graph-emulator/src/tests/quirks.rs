//! Graph's quirks (`Quirks`), expiry answers, faults on a chosen request and the sink's
//! chosen failures.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;

fn first_channel(emu: &Emulator) -> (String, String) {
    channels_of(&emu.truth()).into_iter().next().unwrap()
}

fn one_channel(messages: usize) -> TenantSpec {
    TenantSpec {
        teams: 1,
        channels_per_team: 1,
        messages_per_channel: messages,
        ..TenantSpec::default()
    }
}

#[tokio::test]
async fn a_live_round_returns_a_root_again_when_a_reply_lands_mid_paging() {
    let (emu, http, access) = start(one_channel(12)).await;
    emu.set_quirks(Quirks {
        live_delta_rounds: true,
        ..Quirks::default()
    });
    let (team, channel) = first_channel(&emu);
    let mut url = format!(
        "{}/v1.0/teams/{team}/channels/{channel}/messages/delta?$top=4&$expand=replies",
        emu.url()
    );
    let mut seen: Vec<String> = Vec::new();
    let mut replied = false;
    loop {
        let (status, page) = get(&http, &access, &url).await;
        assert_eq!(status, 200, "{page}");
        let items = page["value"].as_array().unwrap();
        seen.extend(items.iter().map(|m| m["id"].as_str().unwrap().to_owned()));
        if !replied && !items.is_empty() {
            // A reply lands in the first root returned while the client pages on.
            let key = MessageKey {
                team_id: team.clone(),
                channel_id: channel.clone(),
                thread_id: seen[0].clone(),
                message_id: seen[0].clone(),
            };
            assert_eq!(
                emu.apply_bumping(Change::Reply(vec![key]), true)
                    .added
                    .len(),
                1
            );
            replied = true;
        }
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    let first = &seen[0];
    assert_eq!(seen.iter().filter(|id| *id == first).count(), 2, "{seen:?}");
    assert_eq!(seen.len(), 13);
}

#[tokio::test]
async fn short_pages_still_carry_a_next_link() {
    let (emu, http, access) = start(one_channel(30)).await;
    emu.set_quirks(Quirks {
        short_pages: true,
        ..Quirks::default()
    });
    let (team, channel) = first_channel(&emu);
    for route in ["messages/delta", "messages"] {
        let mut url = format!(
            "{}/v1.0/teams/{team}/channels/{channel}/{route}?$top=10",
            emu.url()
        );
        let (mut total, mut short_with_next) = (0, 0);
        loop {
            let (status, page) = get(&http, &access, &url).await;
            assert_eq!(status, 200, "{page}");
            let n = page["value"].as_array().unwrap().len();
            assert!(n <= 10);
            total += n;
            match page["@odata.nextLink"].as_str() {
                Some(next) => {
                    short_with_next += usize::from(n < 10);
                    url = next.to_owned();
                }
                None => break,
            }
        }
        assert_eq!(total, 30, "{route}");
        assert!(short_with_next > 0, "{route}");
    }
}

/// A root with `n` replies in the first channel.
fn root_with_replies(emu: &Emulator, n: usize) -> MessageKey {
    let (team, channel) = first_channel(emu);
    let root = emu
        .truth()
        .into_iter()
        .find(|t| t.channel_id == channel && t.thread_id == t.message_id)
        .unwrap();
    let key = MessageKey {
        team_id: team,
        channel_id: channel,
        thread_id: root.thread_id.clone(),
        message_id: root.message_id,
    };
    let have = emu
        .truth()
        .iter()
        .filter(|t| t.thread_id == key.thread_id && t.channel_id == key.channel_id)
        .count()
        - 1;
    for _ in have..n {
        emu.apply(Change::Reply(vec![key.clone()]));
    }
    key
}

#[tokio::test]
async fn inline_replies_stop_at_1000_without_a_next_link() {
    let (emu, http, access) = start(one_channel(2)).await;
    emu.set_quirks(Quirks {
        inline_replies_without_next_link: true,
        ..Quirks::default()
    });
    let root = root_with_replies(&emu, 1003);
    let url = format!(
        "{}/v1.0/teams/{}/channels/{}/messages/{}?$expand=replies",
        emu.url(),
        root.team_id,
        root.channel_id,
        root.thread_id
    );
    let (status, v) = get(&http, &access, &url).await;
    assert_eq!(status, 200);
    assert_eq!(v["replies@odata.count"], 1003);
    assert_eq!(v["replies"].as_array().unwrap().len(), 1000);
    assert!(v.get("replies@odata.nextLink").is_none());
    // `/replies` pages through all of them.
    let mut next = Some(format!(
        "{}/v1.0/teams/{}/channels/{}/messages/{}/replies?$top=50",
        emu.url(),
        root.team_id,
        root.channel_id,
        root.thread_id
    ));
    let mut total = 0;
    while let Some(u) = next {
        let (_, page) = get(&http, &access, &u).await;
        total += page["value"].as_array().unwrap().len();
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
    }
    assert_eq!(total, 1003);
    // Without the quirk the cut carries its link.
    emu.set_quirks(Quirks::default());
    let (_, v) = get(&http, &access, &url).await;
    assert!(v["replies@odata.nextLink"].is_string());
}

#[tokio::test]
async fn an_empty_channel_opens_delta_with_a_link_that_fails() {
    let (emu, http, access) = start(TenantSpec::default()).await;
    let (team, _) = first_channel(&emu);
    let added = emu.apply(Change::AddChannel(vec![NewChannel {
        team_id: team.clone(),
        channel_id: None,
    }]));
    let channel = added.channels[0].channel_id.clone();
    let url = format!(
        "{}/v1.0/teams/{team}/channels/{channel}/messages/delta",
        emu.url()
    );
    // Plain emulator: an empty round with a deltaLink.
    let (items, _, _) = delta_round(&http, &access, &url).await;
    assert!(items.is_empty());
    emu.set_quirks(Quirks {
        empty_channel_delta_fails: true,
        ..Quirks::default()
    });
    let (status, page) = get(&http, &access, &url).await;
    assert_eq!(status, 200);
    assert_eq!(page["value"], json!([]));
    let next = page["@odata.nextLink"].as_str().unwrap().to_owned();
    let (status, err) = get(&http, &access, &next).await;
    assert_eq!(status, 400);
    assert_eq!(
        err["error"]["message"],
        "Parameter 'DeltaToken' not supported for this request."
    );
    // Once it has a message, it opens normally.
    emu.apply(Change::Root(vec![ChannelKey {
        team_id: team,
        channel_id: channel,
    }]));
    assert_eq!(delta_round(&http, &access, &url).await.0.len(), 1);
}

#[tokio::test]
async fn expired_tokens_are_answered_as_asked() {
    let (emu, http, access) = start(TenantSpec::default()).await;
    let (team, channel) = first_channel(&emu);
    let url = format!(
        "{}/v1.0/teams/{team}/channels/{channel}/messages/delta",
        emu.url()
    );
    for (how, status, code) in [
        (Expiry::SyncStateNotFound, 400, "syncStateNotFound"),
        (Expiry::ResyncRequired, 410, "resyncRequired"),
        (Expiry::DeltaTokenNotSupported, 400, "BadRequest"),
    ] {
        let (_, link, _) = delta_round(&http, &access, &url).await;
        emu.expire_delta_tokens_as(how);
        let (got, body) = get(&http, &access, &link).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{how:?}"
        );
    }
    // A token never issued stays a bad token.
    let (got, body) = get(
        &http,
        &access,
        &format!("{url}?$deltatoken=0011223344556677889900aa"),
    )
    .await;
    assert_eq!(
        (got, body["error"]["code"].as_str()),
        (400, Some("BadRequest"))
    );
}

#[tokio::test]
async fn a_fault_lands_on_the_chosen_request() {
    let (emu, http, access) = start(TenantSpec::default()).await;
    let me = format!("{}/v1.0/me", emu.url());
    emu.inject_after(
        "me",
        "",
        2,
        Fault::Throttled {
            status: 503,
            retry_after_ms: Some(250),
        },
        1,
    );
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let resp = http.get(&me).bearer_auth(&access).send().await.unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status() == 503 {
            assert_eq!(resp.headers()["retry-after"], "0.250");
        }
    }
    assert_eq!(statuses, vec![200, 200, 503, 200]);
    assert_eq!(emu.stats().throttled, 1);
    emu.inject_after("me", "", 3, Fault::TruncatedJson, 1);
    assert_eq!(emu.clear_injected(), 0);
    assert_eq!(get(&http, &access, &me).await.0, 200);
}

#[tokio::test]
async fn the_sink_fails_the_chosen_batch() {
    let sink = Sink::start(None, local()).await.unwrap();
    let http = reqwest::Client::new();
    let body = json!({"documents": [{"id": "a", "op": "delete"}]});
    let post = || http.post(sink.url()).json(&body).send();
    sink.fail_at(1, SinkFault::Status(400));
    sink.fail_at(2, SinkFault::Slow(Duration::from_millis(300)));
    assert_eq!(post().await.unwrap().status(), 200);
    assert_eq!(post().await.unwrap().status(), 400);
    let started = Instant::now();
    let slow: Value = post().await.unwrap().json().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(slow["accepted"], 1, "a slow batch is taken all the same");
    let statuses: Vec<u16> = sink.batches().iter().map(|b| b.status).collect();
    assert_eq!(statuses, vec![200, 400, 200]);
    sink.fail_at(0, SinkFault::Status(503));
    sink.clear_faults();
    assert_eq!(post().await.unwrap().status(), 200);
}

/// A snapshot round (the default) serves every root it began with, also one that changes
/// while the client pages: at the place it had, and again in the next round.
#[tokio::test]
async fn a_snapshot_round_keeps_a_root_that_changes_mid_paging() {
    let (emu, http, access) = start(one_channel(12)).await;
    let (team, channel) = first_channel(&emu);
    let roots: Vec<String> = emu
        .truth()
        .iter()
        .filter(|t| t.thread_id == t.message_id)
        .map(|t| t.message_id.clone())
        .collect();
    let mut url = format!(
        "{}/v1.0/teams/{team}/channels/{channel}/messages/delta?$top=4&$expand=replies",
        emu.url()
    );
    let mut seen: Vec<String> = Vec::new();
    let mut changed: Option<String> = None;
    let delta_link = loop {
        let (status, page) = get(&http, &access, &url).await;
        assert_eq!(status, 200, "{page}");
        let items = page["value"].as_array().unwrap();
        seen.extend(items.iter().map(|m| m["id"].as_str().unwrap().to_owned()));
        if changed.is_none() && !items.is_empty() {
            // The newest root, not served yet, gets a reply while the client pages.
            let last = roots.last().unwrap().clone();
            assert!(!seen.contains(&last));
            let key = MessageKey {
                team_id: team.clone(),
                channel_id: channel.clone(),
                thread_id: last.clone(),
                message_id: last.clone(),
            };
            emu.apply_bumping(Change::Reply(vec![key]), true);
            changed = Some(last);
        }
        match (
            page["@odata.nextLink"].as_str(),
            page["@odata.deltaLink"].as_str(),
        ) {
            (Some(next), _) => url = next.to_owned(),
            (None, Some(delta)) => break delta.to_owned(),
            _ => panic!("{page}"),
        }
    };
    let changed = changed.unwrap();
    assert!(
        seen.contains(&changed),
        "served in the round it was snapshotted in"
    );
    let (_, next) = get(&http, &access, &delta_link).await;
    let again: Vec<&str> = next["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        again.contains(&changed.as_str()),
        "and again in the next round"
    );
}
