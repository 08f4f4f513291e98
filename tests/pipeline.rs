//! The crawl end to end: ground truth in, documents out, cursors after acks (issue 2).

use std::collections::BTreeSet;

use graph_emulator::{Expected, Mutation, TenantSpec};
use serde_json::Value;

use crate::util::Harness;

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 7,
        teams: 3,
        channels_per_team: 2,
        messages_per_channel: 15,
        max_replies: 3,
        users: 20,
        ..TenantSpec::default()
    }
}

/// Every expected document arrived with the right author, mentions, date and text.
fn assert_matches_truth(h: &Harness, include_private: bool) {
    let expected = h.expected(include_private);
    let received = h.received();
    let want: BTreeSet<&String> = expected.keys().collect();
    let got: BTreeSet<&String> = received.keys().collect();
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, unexpected {extra:?}"
    );
    for (id, truth) in &expected {
        let doc = &received[id];
        let Expected::Forward {
            author,
            mentions,
            marker,
        } = &truth.expected
        else {
            unreachable!()
        };
        assert_eq!(doc["op"], "upsert", "{id}");
        assert_eq!(doc["author"].as_str(), Some(author.as_str()), "{id}");
        let got_mentions: Vec<&str> = doc["mentions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap())
            .collect();
        assert_eq!(
            got_mentions,
            mentions.iter().map(String::as_str).collect::<Vec<_>>(),
            "{id}"
        );
        let created =
            chrono::DateTime::parse_from_rfc3339(doc["created_at"].as_str().unwrap()).unwrap();
        assert_eq!(created, truth.created, "{id}");
        let content = doc["content"].as_str().unwrap();
        assert!(!content.trim().is_empty(), "{id}");
        if let Some(m) = marker {
            assert!(content.contains(m.as_str()), "{id}: {content:?} lacks {m}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn first_run_forwards_exactly_the_eligible_messages() {
    let h = Harness::new(spec()).await;
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_matches_truth(&h, false);
    let s = run.summary();
    assert_eq!(
        s["forwarded"].as_u64(),
        Some(h.expected(false).len() as u64)
    );
    assert!(s["skipped"].as_str().unwrap().contains("system_event"));
    // Every batch carries an idempotency key and at most batch_size documents.
    for b in h.sink.batches() {
        assert!(b.idempotency_key.as_deref().is_some_and(|k| k.len() == 32));
        assert!(b.documents.len() <= 10);
    }
    h.assert_private(&[&run]);
}

#[tokio::test(flavor = "multi_thread")]
async fn private_teams_are_crawled_only_when_configured() {
    let mut h = Harness::new(spec()).await;
    h.set("crawl", "include_private_teams = true");
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        h.expected(true).len() > h.expected(false).len(),
        "the generated tenant has private teams"
    );
    assert_matches_truth(&h, true);
}

#[tokio::test(flavor = "multi_thread")]
async fn later_runs_forward_only_changes_with_stable_ids_and_deletes() {
    let h = Harness::new(spec()).await;
    assert_eq!(h.run(&["run"]).await.code, 0);
    let first = h.sink.documents().len();

    let second = h.run(&["run"]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(
        h.sink.documents().len(),
        first,
        "an unchanged tenant forwards nothing"
    );

    let report = h.emu.mutate(Mutation {
        add_roots: 4,
        add_replies: 3,
        edit: 3,
        delete: 2,
    });
    let third = h.run(&["run"]).await;
    assert_eq!(third.code, 0, "{}", third.stderr);
    let new_docs: Vec<Value> = h.sink.documents()[first..].to_vec();
    let visible = |k: &graph_emulator::MessageKey| {
        h.emu
            .truth()
            .iter()
            .any(|t| t.team_id == k.team_id && !t.team_private)
    };
    let id_of = |k: &graph_emulator::MessageKey| {
        teams_connector::transform::document_id(
            &h.emu.tenant_id(),
            &k.team_id,
            &k.channel_id,
            &k.thread_id,
            &k.message_id,
        )
    };
    let upserts: BTreeSet<String> = new_docs
        .iter()
        .filter(|d| d["op"] == "upsert")
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    let deletes: BTreeSet<String> = new_docs
        .iter()
        .filter(|d| d["op"] == "delete")
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    let want_upserts: BTreeSet<String> = report
        .added
        .iter()
        .chain(&report.edited)
        .filter(|k| visible(k))
        .map(id_of)
        .collect();
    let want_deletes: BTreeSet<String> = report
        .deleted
        .iter()
        .filter(|k| visible(k))
        .map(id_of)
        .collect();
    assert_eq!(
        upserts, want_upserts,
        "only new and edited messages are sent again"
    );
    assert_eq!(
        deletes, want_deletes,
        "each deleted message becomes a delete"
    );
    // Edited messages keep their id and carry the new text.
    let received = h.received();
    for t in h.expected(false).values() {
        if let Expected::Forward {
            marker: Some(m), ..
        } = &t.expected
        {
            let doc = &received[&h.doc_id(t)];
            assert!(doc["content"].as_str().unwrap().contains(m.as_str()));
        }
    }
    h.assert_private(&[&second, &third]);
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_unavailable_keeps_cursors_and_the_next_run_delivers() {
    let h = Harness::new(spec()).await;
    h.sink.fail_always(Some(503));
    let failed = h.run(&["run"]).await;
    assert_eq!(failed.code, 69, "{}", failed.stderr);
    assert!(h.sink.documents().is_empty());
    h.sink.fail_always(None);
    let ok = h.run(&["run"]).await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_matches_truth(&h, false);
}

/// Issue 11: what waits for a slow ingest is bounded by `concurrency`, not by the channels
/// in flight (5 here): at `concurrency = 1`, two pages' worth at most — one page being
/// fetched, one processed or waiting for its POST.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_ingest_holds_two_pages_a_request_in_flight_whatever_the_channels() {
    let mut h = Harness::new(TenantSpec {
        teams: 2,
        channels_per_team: 6,
        messages_per_channel: 4,
        ..spec()
    })
    .await;
    h.set("limits", "concurrency = 1");
    h.set("limits", "requests_per_second = 100");
    h.set("limits", "per_channel_requests_per_second = 100");
    h.sink.set_delay(std::time::Duration::from_millis(300));
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        h.sink.most_open() <= 2,
        "{} POSTs waited for the ingest at once",
        h.sink.most_open()
    );
    assert_matches_truth(&h, false);
}

/// Issue 11: channels start as soon as their team's list is in: a team whose channel list
/// Graph answers late (503, `Retry-After` 2 s) holds back no other team's channels.
#[tokio::test(flavor = "multi_thread")]
async fn channels_start_while_other_teams_are_still_looked_up() {
    let h = Harness::new(spec()).await;
    let (late, _) = h.public_channel();
    let busy = graph_emulator::Fault::Throttled {
        status: 503,
        retry_after_ms: Some(2000),
    };
    h.emu.inject("channels", &late, busy, 1);
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let routes = h.emu.routes();
    let last_list = routes.iter().rposition(|r| *r == "channels").unwrap();
    let first_page = routes.iter().position(|r| *r == "delta").unwrap();
    assert!(
        first_page < last_list,
        "the crawl waited for every team's channel list: {routes:?}"
    );
    assert_matches_truth(&h, false);
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_rejecting_a_batch_leaves_that_channel_for_the_next_run() {
    let h = Harness::new(spec()).await;
    h.sink.fail_next(1, 400);
    let partial = h.run(&["run"]).await;
    assert_eq!(partial.code, 3, "{}", partial.stderr);
    assert_eq!(partial.counter("channels_failed"), 1);
    let ok = h.run(&["run"]).await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_matches_truth(&h, false);
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_prints_documents_and_moves_nothing() {
    let h = Harness::new(spec()).await;
    let dry = h.run(&["run", "--dry-run"]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(h.sink.requests(), 0);
    let ids: BTreeSet<String> = dry
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("NDJSON line")["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let expected: BTreeSet<String> = h.expected(false).into_keys().collect();
    assert_eq!(ids, expected);
    // No cursor moved: a real run afterwards still forwards everything.
    let real = h.run(&["run"]).await;
    assert_eq!(real.code, 0, "{}", real.stderr);
    assert_matches_truth(&h, false);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_refresh_token_is_kept_and_a_rejected_one_is_exit_77() {
    let mut h = Harness::new(spec()).await;
    assert_eq!(h.run(&["run"]).await.code, 0);
    // The seed is spent; the second run must use the rotated token from the state store.
    let second = h.run(&["run"]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(h.emu.stats().spent_refresh_token_reuse, 0);

    h.env.insert(
        "TEAMS_CONNECTOR_REFRESH_TOKEN".into(),
        "not-a-token-the-emulator-issued".into(),
    );
    std::fs::remove_dir_all(h.state_dir()).unwrap();
    let rejected = h.run(&["run"]).await;
    assert_eq!(rejected.code, 77, "{}", rejected.stderr);
    assert!(
        rejected.stderr.contains("teams-connector login"),
        "{}",
        rejected.stderr
    );
    assert!(!rejected.stderr.contains("not-a-token-the-emulator-issued"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_instance_exits_75_naming_the_lock() {
    let h = Harness::new(spec()).await;
    let held = teams_connector::state::Store::open(&h.state_dir()).unwrap();
    let started = std::time::Instant::now();
    let second = h.run(&["run"]).await;
    assert_eq!(second.code, 75, "{}", second.stderr);
    assert!(second.stderr.contains("lock"), "{}", second.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    drop(held);
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_runs_with_no_config_and_prints_documents() {
    let run = crate::util::bin(&["demo".to_string()], &Default::default()).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("Run summary"), "{}", run.stdout);
    assert!(
        run.stdout.matches("\"op\": \"upsert\"").count() >= 3,
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn three_shards_together_forward_every_document_exactly_once() {
    let spec = TenantSpec {
        teams: 6,
        channels_per_team: 1,
        messages_per_channel: 6,
        ..spec()
    };
    let mut h = Harness::new(spec).await;
    h.set("crawl", "include_private_teams = true");
    let base = h.state_dir();
    let mut per_shard = Vec::new();
    for i in 0..3 {
        h.set(
            "state",
            &format!(
                "dir = {:?}",
                base.join(format!("shard-{i}")).display().to_string()
            ),
        );
        // Each shard has its own state dir, so its own refresh-token chain.
        if i > 0 {
            let seed = h.emu.issue_refresh_token();
            h.env.insert("TEAMS_CONNECTOR_REFRESH_TOKEN".into(), seed);
        }
        let before = h.sink.documents().len();
        let run = h.run(&["run", "--shard", &format!("{i}/3")]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        per_shard.push(h.sink.documents().len() - before);
    }
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for d in h.sink.documents() {
        *counts
            .entry(d["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let expected = h.expected(true);
    assert_eq!(
        counts.len(),
        expected.len(),
        "every document, shards {per_shard:?}"
    );
    assert!(counts.values().all(|&n| n == 1), "exactly once");
    assert!(expected.keys().all(|id| counts.contains_key(id)));
    assert!(
        per_shard.iter().filter(|&&n| n > 0).count() >= 2,
        "the work is split: {per_shard:?}"
    );
}
