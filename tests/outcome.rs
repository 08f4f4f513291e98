//! One outcome, one retry policy, errors with causes (issue 13): every endpoint retries
//! what DESIGN says it retries, a signal is an interruption and not a failure, and the final
//! error is one event a log pipeline can parse.

use std::time::{Duration, Instant};

use graph_emulator::TenantSpec;
use serde_json::Value;

use crate::util::{final_error, Harness};

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 41,
        teams: 1,
        channels_per_team: 2,
        messages_per_channel: 5,
        max_replies: 1,
        users: 8,
        ..TenantSpec::default()
    }
}

/// DESIGN: "429/5xx/timeouts are retried". The ingest once treated 501, 505 and 507 as
/// permanent and failed the run.
#[tokio::test(flavor = "multi_thread")]
async fn issue_13_every_ingest_5xx_is_retried() {
    for status in [501, 505, 507] {
        let h = Harness::new(spec()).await;
        h.sink.fail_next(1, status);
        let run = h.run(&["run"]).await;
        assert_eq!(run.code, 0, "HTTP {status}: {}", run.stderr);
        assert!(run.counter("retries") >= 1, "HTTP {status} was retried");
        let received = h.received();
        assert!(
            h.expected(false).keys().all(|id| received.contains_key(id)),
            "HTTP {status}: everything arrived"
        );
    }
}

/// A SIGTERM while the ingest retry waits is an interruption: exit 143, and the channel
/// is not recorded as failed with "ingest unavailable".
#[tokio::test(flavor = "multi_thread")]
async fn issue_13_sigterm_during_an_ingest_retry_wait_is_not_a_channel_failure() {
    let mut h = Harness::new(spec()).await;
    h.set("limits", "max_retries = 20");
    h.sink.fail_always(Some(503));
    let mut child = h.command(&["run"]).spawn().expect("starts");
    // The first POSTs fail and their retries wait with backoff.
    let started = Instant::now();
    while h.sink.requests() < 2 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(h.sink.requests() >= 2, "the ingest was tried");
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let code = tokio::task::spawn_blocking(move || child.wait().unwrap().code())
        .await
        .unwrap();
    assert_eq!(code, Some(143));
    assert!(started.elapsed() < Duration::from_secs(15), "prompt exit");
    h.sink.fail_always(None);
    let status = h.run(&["status", "--json"]).await;
    let v: Value = serde_json::from_str(&status.stdout).expect("status JSON");
    assert_eq!(v["last_run_exit_code"], 143, "{v}");
    assert_eq!(
        v["failures"].as_array().map(Vec::len),
        Some(0),
        "no channel failed: {}",
        v["failures"]
    );
}

/// With JSON logs every stderr line is JSON, the final error included: an `error` event
/// with its exit code.
#[tokio::test(flavor = "multi_thread")]
async fn issue_13_in_json_mode_the_final_error_is_a_json_event() {
    let mut h = Harness::new(spec()).await;
    h.env.insert(
        "TEAMS_CONNECTOR_REFRESH_TOKEN".into(),
        "1.AXoAnot-a-token-the-tenant-issued".into(),
    );
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 77, "{}", run.stderr);
    for line in run.stderr.lines() {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
    let last: Value = serde_json::from_str(run.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(last["target"], "error");
    assert_eq!(last["exit_code"], 77);
    assert!(final_error(&run.stderr).contains("teams-connector login"));
}

/// A transport failure names its cause (connection refused), not only "request failed".
#[tokio::test(flavor = "multi_thread")]
async fn issue_13_an_unreachable_ingest_names_the_cause() {
    let mut h = Harness::new(spec()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    h.set(
        "ingest",
        &format!("url = \"http://127.0.0.1:{port}/v1/documents\""),
    );
    h.set("limits", "max_retries = 0");
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 69, "{}", run.stderr);
    let status = h.run(&["status", "--json"]).await;
    let v: Value = serde_json::from_str(&status.stdout).unwrap();
    let reason = v["failures"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        reason.contains("connection failed") && reason.contains("refused"),
        "{reason}"
    );
}
