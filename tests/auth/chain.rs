//! The refresh-token chain: refreshed ahead of expiry within a run, rotated into the
//! state store before use, picked up by the next process, surviving `kill -9`.

use std::time::{Duration, Instant};

use graph_emulator::EmulatorOptions;

use super::{assert_no_secrets, grants, harness, harness_with};

#[tokio::test(flavor = "multi_thread")]
async fn a_run_longer_than_the_access_token_lifetime_refreshes_ahead_of_expiry() {
    let opts = EmulatorOptions {
        access_token_lifetime: Duration::from_secs(2),
        latency: Duration::from_millis(400),
        ..EmulatorOptions::default()
    };
    let mut h = harness_with(opts).await;
    h.set("limits", "concurrency = 1");
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let stats = h.emu.stats();
    assert!(
        run.counter("duration_ms") > 2000,
        "the run must span the token lifetime: {}",
        run.counter("duration_ms")
    );
    // Refreshed ahead of expiry: more than one grant, and Graph never saw a stale token.
    assert!(stats.token_grants >= 2, "{stats:?}");
    assert_eq!(stats.unauthorized, 0, "{stats:?}");
    assert_eq!(stats.spent_refresh_token_reuse, 0);
    assert_no_secrets(&h, &[&run]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_process_uses_the_rotated_token_from_the_state_store() {
    let mut h = harness().await;
    let first = h.run(&["run"]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    // Same seed still in the environment: the stored chain is newer and wins.
    let second = h.run(&["run"]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    // No seed at all: the stored chain alone.
    h.env.remove("TEAMS_CONNECTOR_REFRESH_TOKEN");
    let third = h.run(&["run"]).await;
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(grants(&h, "refresh_token"), 3);
    assert_eq!(h.emu.stats().spent_refresh_token_reuse, 0);
    let status = h.run(&["status"]).await;
    assert!(
        status
            .stdout
            .contains("refresh token: stored (encrypted: no)"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("auth flow: refresh_token"),
        "{}",
        status.stdout
    );
    assert_no_secrets(&h, &[&first, &second, &third, &status]);
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_right_after_a_refresh_the_next_run_still_signs_in() {
    let opts = EmulatorOptions {
        latency: Duration::from_millis(300),
        ..EmulatorOptions::default()
    };
    let h = harness_with(opts).await;
    let mut child = h
        .command(&["run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("binary starts");
    // The first Graph request carries the new access token: the rotated refresh token was
    // stored before it, so this is the earliest moment the chain may be relied on.
    let started = Instant::now();
    loop {
        let stats = h.emu.stats();
        if stats.token_grants >= 1 && stats.requests > stats.by_route["token"] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no Graph request"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let next = h.run(&["run"]).await;
    assert_eq!(next.code, 0, "{}", next.stderr);
    assert_eq!(h.emu.stats().spent_refresh_token_reuse, 0);
    assert_eq!(grants(&h, "refresh_token"), 2);
    assert_no_secrets(&h, &[&next]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_401_refreshes_once_and_a_second_401_is_exit_77() {
    let h = harness().await;
    // Sessions revoked after the second Graph request: one 401, one refresh, done.
    h.emu.revoke_access_tokens_after(2);
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let stats = h.emu.stats();
    assert!(stats.unauthorized >= 1, "{stats:?}");
    assert_eq!(
        grants(&h, "refresh_token"),
        2,
        "one refresh for the whole 401 wave"
    );

    h.emu.reject_all_access_tokens(true);
    let before = h.emu.stats();
    let rejected = h.run(&["run"]).await;
    assert_eq!(rejected.code, 77, "{}", rejected.stderr);
    let line = super::error_line(&rejected);
    assert!(line.contains("401") && line.contains("login"), "{line}");
    // Each request refreshes once after its first 401 and gives up on the second; the
    // directory, the joined and the associated teams lists run concurrently, so that is
    // one to three refreshes, and the first to give up ends the run: the others may not
    // get to their second try, or (on a loaded machine) to their first.
    let after = h.emu.stats();
    let count = |stats: &graph_emulator::EmulatorStats, route: &str| {
        stats.by_route.get(route).copied().unwrap_or(0)
    };
    let delta = |route: &str| count(&after, route) - count(&before, route);
    let tries = [
        delta("users"),
        delta("joinedTeams"),
        delta("associatedTeams"),
    ];
    assert_eq!(tries.iter().max(), Some(&2), "{tries:?} {after:?}");
    let refreshes = after.token_grants - before.token_grants - 1;
    assert!((1..=3).contains(&refreshes), "{after:?}");
    assert_no_secrets(&h, &[&run, &rejected]);
}
