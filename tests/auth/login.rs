//! `teams-connector login`: the device-code flow end to end against the emulator.

use std::time::{Duration, Instant};

use graph_emulator::{DeviceLogin, DeviceOutcome};

use super::{assert_no_secrets, error_line, grants, harness};
use crate::util::Harness;

async fn login_harness(script: DeviceLogin) -> Harness {
    let mut h = harness().await;
    h.env.remove("TEAMS_CONNECTOR_REFRESH_TOKEN");
    h.emu.set_device_login(script);
    h
}

#[tokio::test(flavor = "multi_thread")]
async fn login_signs_in_with_a_device_code_and_the_next_run_uses_the_token() {
    let h = login_harness(DeviceLogin::default()).await;
    let before = h.run(&["run"]).await;
    assert_eq!(before.code, 77, "{}", before.stderr);
    assert!(error_line(&before).contains("teams-connector login"));

    let login = h.run(&["login"]).await;
    assert_eq!(login.code, 0, "{}", login.stderr);
    assert!(
        login.stderr.contains("https://microsoft.com/devicelogin"),
        "{}",
        login.stderr
    );
    assert!(login.stderr.contains("enter the code"), "{}", login.stderr);
    let upn = h.emu.technical_user_upn();
    assert!(
        login.stdout.contains("Signed in as") && login.stdout.contains(&upn),
        "{}",
        login.stdout
    );
    let stats = h.emu.stats();
    assert_eq!(stats.device_polls, 3, "two pending polls, then the tokens");
    assert_eq!(stats.device_polls_too_fast, 0);

    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(grants(&h, "device_code"), 1);
    assert_eq!(grants(&h, "refresh_token"), 1);
    assert_eq!(h.emu.stats().spent_refresh_token_reuse, 0);
    assert_no_secrets(&h, &[&before, &login, &run]);
}

#[tokio::test(flavor = "multi_thread")]
async fn login_slows_down_when_the_server_asks() {
    let h = login_harness(DeviceLogin {
        pending_polls: 1,
        slow_down_polls: 1,
        ..DeviceLogin::default()
    })
    .await;
    let started = Instant::now();
    let login = h.run(&["login"]).await;
    assert_eq!(login.code, 0, "{}", login.stderr);
    // 1 s, then 1 + 5 s after the slow_down.
    assert!(started.elapsed() >= Duration::from_secs(7));
    let stats = h.emu.stats();
    assert_eq!(stats.device_polls, 2);
    assert_eq!(
        stats.device_polls_too_fast, 0,
        "the raised interval was kept"
    );
    assert_no_secrets(&h, &[&login]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_or_declined_device_code_is_exit_77_and_stores_nothing() {
    let h = login_harness(DeviceLogin {
        pending_polls: 1,
        outcome: DeviceOutcome::Expire,
        ..DeviceLogin::default()
    })
    .await;
    let expired = h.run(&["login"]).await;
    assert_eq!(expired.code, 77, "{}", expired.stderr);
    let line = error_line(&expired);
    assert!(
        line.contains("expired")
            && line.contains("AADSTS70020")
            && line.contains("teams-connector login"),
        "{line}"
    );

    h.emu.set_device_login(DeviceLogin {
        pending_polls: 0,
        outcome: DeviceOutcome::Decline,
        ..DeviceLogin::default()
    });
    let declined = h.run(&["login"]).await;
    assert_eq!(declined.code, 77, "{}", declined.stderr);
    let line = error_line(&declined);
    assert!(
        line.contains("declined") && line.contains("AADSTS70000"),
        "{line}"
    );

    let status = h.run(&["status"]).await;
    assert!(
        status.stdout.contains("refresh token: none stored"),
        "{}",
        status.stdout
    );
    assert_eq!(h.emu.stats().token_grants, 0);
    assert_no_secrets(&h, &[&expired, &declined, &status]);
}

#[tokio::test(flavor = "multi_thread")]
async fn login_wins_over_the_seed_it_replaced() {
    // The first run spends the seed; the admin then logs in while it is still set.
    let h = harness().await;
    h.emu.set_device_login(DeviceLogin {
        pending_polls: 0,
        ..DeviceLogin::default()
    });
    let first = h.run(&["run"]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let login = h.run(&["login"]).await;
    assert_eq!(login.code, 0, "{}", login.stderr);
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(grants(&h, "refresh_token"), 2);
    // The spent seed was not presented again: the token from `login` was used.
    assert_eq!(h.emu.stats().spent_refresh_token_reuse, 0);
    assert_no_secrets(&h, &[&first, &login, &run]);
}

#[tokio::test(flavor = "multi_thread")]
async fn login_refuses_flows_that_do_not_store_a_token() {
    let mut h = harness().await;
    h.set("auth", "flow = \"client_credentials\"");
    let r = h.run(&["login"]).await;
    assert_eq!(r.code, 78, "{}", r.stderr);
    assert!(error_line(&r).contains("flow = \"refresh_token\""));
}
