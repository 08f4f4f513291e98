//! Every key names what makes it unique (issue 10). A Teams message id is its creation time
//! in milliseconds and is unique only within its thread; a channel id only within its
//! team. Each test here builds the collision a narrower key would fall for, through the
//! binary (run, kill and resume, backfill), and checks that the ingest holds exactly what
//! the tenant holds — nothing missing, and no document naming a message that does not exist.
//!
//! | key | unique by | collision tested |
//! |---|---|---|
//! | replies the sweep already handled (`sync/channel`, per channel crawl) | thread, message | same reply id in two threads |
//! | document id (`transform/document.rs`, also the page acks' digest input) | tenant, team, channel, thread, message | same message id in two threads, channels, teams |
//! | page ack: resume page and digest (`sync/channel/delivery.rs`), in the channel cursor | team, channel (+ document ids) | same message ids in every channel, killed and resumed |
//! | cursor `channel/{team}/{channel}` (`state`) | team, channel | same channel id under two teams, incremental and resumed |
//! | backfill progress `backfill/{team}/{channel}` (`state`) | team, channel | same channel id under two teams, interrupted and resumed |

use std::process::Stdio;
use std::time::{Duration, Instant};

use graph_emulator::{Change, ChannelKey, EmulatorOptions, MessageKey, NewChannel, TenantSpec};

use crate::util::{assert_converged, assert_exact, Harness};

fn tenant() -> TenantSpec {
    TenantSpec {
        seed: 23,
        teams: 2,
        channels_per_team: 2,
        messages_per_channel: 10,
        max_replies: 2,
        users: 15,
        history_days: 10,
    }
}

/// Two threads of one crawled channel whose roots are forwarded (thread keys).
fn two_threads(h: &Harness) -> Vec<MessageKey> {
    let expected = h.expected(false);
    let mut roots: Vec<MessageKey> = expected
        .values()
        .filter(|t| t.thread_id == t.message_id)
        .map(|t| MessageKey {
            team_id: t.team_id.clone(),
            channel_id: t.channel_id.clone(),
            thread_id: t.thread_id.clone(),
            message_id: t.message_id.clone(),
        })
        .collect();
    roots.sort();
    let first = roots[0].clone();
    let pair: Vec<MessageKey> = roots
        .into_iter()
        .filter(|k| k.team_id == first.team_id && k.channel_id == first.channel_id)
        .take(2)
        .collect();
    assert_eq!(pair.len(), 2, "the channel has two forwarded roots");
    pair
}

async fn same_id_in_two_threads(edit_one_root: bool) {
    let opts = EmulatorOptions {
        reply_bumps_root: false,
        ..EmulatorOptions::default()
    };
    let mut h = Harness::with_options(tenant(), opts).await;
    h.set("crawl", "reply_window = \"30d\"");
    assert_eq!(h.run(&["run"]).await.code, 0);
    let threads = two_threads(&h);

    // Two replies in the same millisecond: the same message id in two threads.
    let added = h.emu.apply(Change::Reply(threads.clone())).added;
    assert_eq!(added.len(), 2);
    assert_eq!(added[0].message_id, added[1].message_id);
    if edit_one_root {
        // Delta shows the first thread again (its reply inline); the second is found by
        // the reply sweep only.
        h.emu.apply(Change::Edit(vec![threads[0].clone()]));
    }
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_converged(&h, false);

    // Both edited in the same millisecond, then both deleted.
    h.emu.apply(Change::Edit(added.clone()));
    if edit_one_root {
        h.emu.apply(Change::Edit(vec![threads[0].clone()]));
    }
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_converged(&h, false);

    h.emu.apply(Change::Delete(added.clone()));
    if edit_one_root {
        h.emu.apply(Change::Edit(vec![threads[0].clone()]));
    }
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_converged(&h, false);
    for key in &added {
        let id = teams_connector::transform::document_id(
            &h.emu.tenant_id(),
            &key.team_id,
            &key.channel_id,
            &key.thread_id,
            &key.message_id,
        );
        assert_eq!(h.received()[&id]["op"], "delete", "{key:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_10_same_reply_id_in_two_threads_found_by_the_sweep() {
    same_id_in_two_threads(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_10_same_reply_id_in_two_threads_found_by_delta_and_the_sweep() {
    same_id_in_two_threads(true).await;
}

/// Every channel of the tenant (both teams: the second is private and crawled here).
fn channels(h: &Harness) -> Vec<ChannelKey> {
    let mut out: Vec<ChannelKey> = h
        .emu
        .truth()
        .into_iter()
        .map(|t| ChannelKey {
            team_id: t.team_id,
            channel_id: t.channel_id,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

async fn clean_run(h: &Harness) {
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_10_same_message_id_in_two_channels_and_two_teams() {
    let mut h = Harness::new(tenant()).await;
    h.set("crawl", "include_private_teams = true");
    clean_run(&h).await;
    let all = channels(&h);
    let teams: std::collections::BTreeSet<&String> = all.iter().map(|c| &c.team_id).collect();
    assert!(all.len() >= 4 && teams.len() == 2);

    // One root per channel, all in the same millisecond: one message id, four channels.
    let roots = h.emu.apply(Change::Root(all.clone())).added;
    assert!(roots.iter().all(|k| k.message_id == roots[0].message_id));
    clean_run(&h).await;
    assert_exact(&h, true);
    let ids: std::collections::BTreeSet<String> = roots.iter().map(|k| doc_id(&h, k)).collect();
    assert_eq!(ids.len(), roots.len(), "one document per channel");

    // A reply in each, again in one millisecond; then all edited, then all deleted.
    let replies = h.emu.apply(Change::Reply(roots.clone())).added;
    assert!(replies
        .iter()
        .all(|k| k.message_id == replies[0].message_id));
    clean_run(&h).await;
    assert_exact(&h, true);
    h.emu.apply(Change::Edit(
        roots.iter().chain(&replies).cloned().collect(),
    ));
    clean_run(&h).await;
    assert_exact(&h, true);
    h.emu.apply(Change::Delete(replies.clone()));
    clean_run(&h).await;
    assert_exact(&h, true);
    for k in &replies {
        assert_eq!(h.received()[&doc_id(&h, k)]["op"], "delete", "{k:?}");
    }
}

fn doc_id(h: &Harness, k: &MessageKey) -> String {
    teams_connector::transform::document_id(
        &h.emu.tenant_id(),
        &k.team_id,
        &k.channel_id,
        &k.thread_id,
        &k.message_id,
    )
}

/// `kill -9` the command once the sink has had `posts` more POSTs.
async fn kill_after_posts(h: &Harness, args: &[&str], posts: u64) {
    let mut child = h
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let before = h.sink.requests();
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.sink.requests() < before + posts && Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let _ = child.kill();
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
}

/// Many roots with the same ids in every channel: each page of one channel looks like the
/// page of another but for the channel.
async fn same_ids_everywhere(h: &Harness, all: &[ChannelKey], rounds: usize) {
    for _ in 0..rounds {
        h.emu.apply(Change::Root(all.to_vec()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_10_same_message_ids_in_every_channel_survive_kills_and_resumes() {
    let mut h = Harness::new(tenant()).await;
    h.set("crawl", "include_private_teams = true");
    h.set("ingest", "batch_size = 3");
    clean_run(&h).await;
    let all = channels(&h);
    same_ids_everywhere(&h, &all, 40).await;
    h.emu.set_latency(Duration::from_millis(5));
    for posts in [3, 7] {
        kill_after_posts(&h, &["run"], posts).await;
    }
    assert!(
        status(&h).await["channels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["in_progress"].is_string()),
        "a run was killed mid-channel"
    );
    h.emu.set_latency(Duration::ZERO);
    clean_run(&h).await;
    assert_exact(&h, true);
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_10_a_resumed_page_is_matched_by_its_documents_not_their_number() {
    let mut h = Harness::new(tenant()).await;
    h.set("crawl", "include_private_teams = true");
    h.set("ingest", "batch_size = 3");
    clean_run(&h).await;
    let all = channels(&h);
    // Forty roots in every channel, one channel after another in each `added` chunk.
    let mut added = Vec::new();
    for _ in 0..40 {
        added.extend(h.emu.apply(Change::Root(all.clone())).added);
    }
    h.emu.set_latency(Duration::from_millis(5));
    kill_after_posts(&h, &["run"], 3).await;
    // Every other new root changes before the resume: the page the killed run stopped in
    // comes back in another order, so its acknowledged prefix is other documents now.
    let moved: Vec<MessageKey> = added
        .chunks(all.len())
        .step_by(2)
        .flatten()
        .cloned()
        .collect();
    h.emu.apply_bumping(Change::Touch(moved), true);
    h.emu.set_latency(Duration::ZERO);
    clean_run(&h).await;
    assert_exact(&h, true);
}

/// A channel in the second team with the id of one in the first.
fn twin_channel(h: &Harness) -> (ChannelKey, ChannelKey) {
    let all = channels(h);
    let a = all[0].clone();
    let team_b = all
        .iter()
        .find(|c| c.team_id != a.team_id)
        .unwrap()
        .team_id
        .clone();
    let added = h.emu.apply(Change::AddChannel(vec![NewChannel {
        team_id: team_b,
        channel_id: Some(a.channel_id.clone()),
    }]));
    assert_eq!(added.channels.len(), 1);
    (a, added.channels[0].clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_10_one_channel_id_under_two_teams_keeps_two_cursors() {
    let mut h = Harness::new(tenant()).await;
    h.set("crawl", "include_private_teams = true");
    h.set("ingest", "batch_size = 3");
    clean_run(&h).await;
    let (a, b) = twin_channel(&h);
    let twins = vec![a.clone(), b.clone()];
    let roots = h.emu.apply(Change::Root(twins.clone())).added;
    assert_eq!(roots[0].message_id, roots[1].message_id);
    clean_run(&h).await;
    assert_exact(&h, true);
    let status = h.run(&["status", "--json"]).await;
    let view: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let cursors = view["channels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["channel"] == a.channel_id.as_str())
        .count();
    assert_eq!(cursors, 2, "one cursor per team: {}", status.stdout);

    // Changes in both, delivered from each one's own cursor.
    h.emu.apply(Change::Reply(roots.clone()));
    h.emu.apply(Change::Edit(roots.clone()));
    clean_run(&h).await;
    assert_exact(&h, true);

    // Killed mid-channel and resumed: each resumes its own page.
    same_ids_everywhere(&h, &twins, 30).await;
    h.emu.set_latency(Duration::from_millis(5));
    kill_after_posts(&h, &["run"], 4).await;
    h.emu.set_latency(Duration::ZERO);
    clean_run(&h).await;
    assert_exact(&h, true);
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_10_one_channel_id_under_two_teams_backfills_both() {
    let mut h = Harness::new(tenant()).await;
    h.set("crawl", "include_private_teams = true");
    h.set("ingest", "batch_size = 3");
    let (a, b) = twin_channel(&h);
    same_ids_everywhere(&h, &[a, b], 200).await;
    let since = (chrono::Utc::now() - chrono::Duration::days(30))
        .format("%Y-%m-%d")
        .to_string();
    // Killed mid-way, killed again after resuming, then resumed until done. A page's
    // documents go out before its successor is saved: 17 POSTs are a page of the twins,
    // 60 are past the first page of each.
    h.emu.set_latency(Duration::from_millis(10));
    kill_after_posts(&h, &["backfill", "--since", &since], 60).await;
    let view = status(&h).await;
    assert!(
        view["backfills"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["done"] == false),
        "a backfill was killed mid-way: {view}"
    );
    kill_after_posts(&h, &["backfill", "--since", &since], 30).await;
    h.emu.set_latency(Duration::ZERO);
    let run = h.run(&["backfill", "--since", &since]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_exact(&h, true);
    let view = status(&h).await;
    let done: Vec<&serde_json::Value> = view["backfills"].as_array().unwrap().iter().collect();
    assert!(
        done.len() >= 5 && done.iter().all(|b| b["done"] == true),
        "{view}"
    );
}

async fn status(h: &Harness) -> serde_json::Value {
    let run = h.run(&["status", "--json"]).await;
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}
