//! `backfill` (issue 6): history past delta's reach, resumable, cursors untouched.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use graph_emulator::TenantSpec;

use crate::util::Harness;

#[allow(clippy::needless_update)] // TenantSpec may grow fields
fn old_tenant() -> TenantSpec {
    TenantSpec {
        seed: 41,
        teams: 2,
        channels_per_team: 2,
        messages_per_channel: 120,
        max_replies: 2,
        users: 15,
        history_days: 400,
        ..TenantSpec::default()
    }
}

fn since_days_ago(days: i64) -> String {
    (Utc::now() - chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_reaches_past_the_delta_window_and_leaves_cursors_alone() {
    let h = Harness::new(old_tenant()).await;
    let horizon = Utc::now() - chrono::Duration::days(240);
    assert!(
        h.expected(false).values().any(|t| t.created < horizon),
        "the tenant has history older than 8 months"
    );
    let run = h.run(&["backfill", "--since", &since_days_ago(401)]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let received = h.received();
    for (id, t) in h.expected(false) {
        assert!(
            received.contains_key(&id),
            "message created {} not backfilled",
            t.created
        );
    }
    assert!(
        h.sink.batches().iter().all(|b| b.documents.len() <= 10),
        "batch_size holds"
    );
    let status: serde_json::Value =
        serde_json::from_str(&h.run(&["status", "--json"]).await.stdout).unwrap();
    assert_eq!(
        status["channels"].as_array().map(Vec::len),
        Some(0),
        "no incremental cursor was written"
    );
    // Done channels are not crawled again for the same range.
    let before = h.sink.documents().len();
    assert_eq!(
        h.run(&["backfill", "--since", &since_days_ago(401)])
            .await
            .code,
        0
    );
    assert_eq!(h.sink.documents().len(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_honours_the_range() {
    let h = Harness::new(old_tenant()).await;
    let since = Utc::now() - chrono::Duration::days(100);
    let until = Utc::now() - chrono::Duration::days(50);
    let run = h
        .run(&[
            "backfill",
            "--since",
            &since.to_rfc3339(),
            "--until",
            &until.to_rfc3339(),
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let received = h.received();
    // Documented reach (README, "Backfill"): a reply created in the range is included when
    // its thread's root was still touched in the range, i.e. the list reached it.
    let truth = h.emu.truth();
    let root_reached = |thread: &str| {
        truth
            .iter()
            .any(|r| r.message_id == thread && r.thread_id == thread && r.last_modified >= since)
    };
    let expected: Vec<String> = h
        .expected(false)
        .into_iter()
        .filter(|(_, t)| t.created >= since && t.created < until && root_reached(&t.thread_id))
        .map(|(id, _)| id)
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(
        received.len(),
        expected.len(),
        "only messages created in the range"
    );
    assert!(expected.iter().all(|id| received.contains_key(id)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_backfill_resumes_without_resending_what_was_acknowledged() {
    let h = Harness::new(old_tenant()).await;
    h.emu.set_latency(Duration::from_millis(25));
    let since = since_days_ago(401);
    let mut child = h
        .command(&["backfill", "--since", &since])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.sink.requests() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = child.kill();
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    let delivered = h.sink.documents().len();
    assert!(
        delivered > 0 && delivered < h.expected(false).len(),
        "killed mid-way: {delivered}"
    );
    h.emu.set_latency(Duration::ZERO);
    let rerun = h.run(&["backfill", "--since", &since]).await;
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for d in h.sink.documents() {
        *seen
            .entry(d["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert!(
        h.expected(false).keys().all(|id| seen.contains_key(id)),
        "nothing lost"
    );
    let dup: usize = seen.values().map(|n| n - 1).sum();
    // At most the page in flight of each of the 2 channels: 50 roots and their replies.
    assert!(dup <= 2 * 150, "{dup} documents resent");
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_rejects_bad_dates_with_64() {
    let h = Harness::new(old_tenant()).await;
    assert_eq!(
        h.run(&["backfill", "--since", "last tuesday"]).await.code,
        64
    );
    assert_eq!(
        h.run(&["backfill", "--since", "2024-02-01", "--until", "2024-01-01"])
            .await
            .code,
        64
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_backfill_progress() {
    let h = Harness::new(old_tenant()).await;
    let since = since_days_ago(401);
    assert_eq!(h.run(&["backfill", "--since", &since]).await.code, 0);
    let status: serde_json::Value =
        serde_json::from_str(&h.run(&["status", "--json"]).await.stdout).unwrap();
    let backfills = status["backfills"].as_array().expect("backfills");
    assert_eq!(backfills.len(), 2, "one per crawled channel: {status}");
    assert!(backfills
        .iter()
        .all(|b| b["done"] == true && b["next"].is_null()));
    let text = h.run(&["status"]).await.stdout;
    assert!(text.contains("backfill: 2 of 2 channel(s) done"), "{text}");
}
