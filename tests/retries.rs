//! Graph retries (issue 4): Retry-After honoured, 5xx retried, exhausted retries fail the
//! channel and keep its cursor.

use teams_connector::emulator::{Fault, TenantSpec};

use crate::util::Harness;

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 31,
        teams: 2,
        channels_per_team: 2,
        messages_per_channel: 6,
        max_replies: 1,
        users: 10,
        ..TenantSpec::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_with_retry_after_is_retried_no_sooner() {
    let h = Harness::new(spec()).await;
    assert_eq!(h.run(&["run"]).await.code, 0);
    h.emu.throttle_next(1, 429, Some(1.5));
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.counter("throttled"), 1);
    assert!(run.counter("throttle_wait_ms") >= 1500, "{}", run.summary());
    assert!(run.counter("duration_ms") >= 1500);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_503_then_success_is_retried() {
    let h = Harness::new(spec()).await;
    h.emu.throttle_next(1, 503, None);
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.counter("retries") >= 1);
    let expected = h.expected(false);
    assert!(expected.keys().all(|id| h.received().contains_key(id)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_504_until_retries_run_out_fails_the_channel_and_keeps_its_cursor() {
    let h = Harness::new(spec()).await;
    assert_eq!(h.run(&["run"]).await.code, 0);
    let before = h.run(&["status", "--json"]).await.stdout;
    let channel = h
        .emu
        .truth()
        .into_iter()
        .find(|t| !t.team_private)
        .unwrap()
        .channel_id;
    // max_retries = 2 in the harness: three answers exhaust them.
    h.emu.inject("delta", &channel, Fault::GatewayTimeout, 3);
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("still failing after 3 attempts"),
        "{}",
        run.stderr
    );
    let after = h.run(&["status", "--json"]).await.stdout;
    let delta_of = |status: &str| {
        let v: serde_json::Value = serde_json::from_str(status).unwrap();
        v["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["channel"] == channel.as_str())
            .unwrap()["delta_link"]
            .clone()
    };
    assert_eq!(
        delta_of(&before),
        delta_of(&after),
        "the failed channel's cursor did not move"
    );
}
