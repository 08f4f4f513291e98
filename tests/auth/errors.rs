//! Token-endpoint refusals are exit 77 with one line naming the AADSTS code and the next
//! step; outages and timeouts are retried, then exit 69.

use std::time::Duration;

use graph_emulator::TokenFailure;

use super::{assert_no_secrets, error_line, grants, harness};

#[tokio::test(flavor = "multi_thread")]
async fn each_refusal_is_exit_77_naming_the_code_and_what_to_do() {
    let h = harness().await;
    let cases = [
        ("invalid_grant", 700082, "The refresh token has expired due to inactivity.", "90 days"),
        ("invalid_grant", 50173, "The provided grant has expired due to it being revoked.", "revoked"),
        ("invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity.", "login"),
        ("interaction_required", 50076, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication.", "login"),
        ("consent_required", 65001, "The user or administrator has not consented to use the application.", "admin consent"),
        ("invalid_client", 7000215, "Invalid client secret provided.", "Certificates & secrets"),
    ];
    let mut runs = Vec::new();
    for (error, code, description, hint) in cases {
        h.emu
            .fail_token_requests(1, TokenFailure::refuse(error, code, description));
        let r = h.run(&["run"]).await;
        assert_eq!(r.code, 77, "{error} {code}: {}", r.stderr);
        let line = error_line(&r);
        assert!(
            line.contains(&format!("{error} AADSTS{code}")) && line.contains(hint),
            "{line}"
        );
        assert!(!line.contains("Trace ID"), "{line}");
        runs.push(r);
    }
    // Nothing was retried and nothing redeemed: the next run still signs in with the seed.
    assert_eq!(h.emu.stats().token_grants, 0);
    let ok = h.run(&["run"]).await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_no_secrets(&h, &runs.iter().chain([&ok]).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spent_refresh_token_is_exit_77() {
    let h = harness().await;
    assert_eq!(h.run(&["run"]).await.code, 0);
    // A fresh state dir with the old, now spent, seed.
    std::fs::remove_dir_all(h.state_dir()).unwrap();
    let r = h.run(&["run"]).await;
    assert_eq!(r.code, 77, "{}", r.stderr);
    let line = error_line(&r);
    assert!(line.contains("invalid_grant AADSTS70008"), "{line}");
    assert!(line.contains("teams-connector login"), "{line}");
    assert_no_secrets(&h, &[&r]);
}

#[tokio::test(flavor = "multi_thread")]
async fn outages_of_the_token_endpoint_are_retried_then_exit_69() {
    let mut h = harness().await;
    // One failure per run, then a token (the harness allows 2 retries).
    h.emu.fail_token_requests(1, TokenFailure::Status(503));
    let r1 = h.run(&["run"]).await;
    h.emu
        .fail_token_requests(1, TokenFailure::TemporarilyUnavailable);
    assert_eq!(r1.code, 0, "{}", r1.stderr);
    let r2 = h.run(&["run"]).await;
    assert_eq!(r2.code, 0, "{}", r2.stderr);
    assert_eq!(h.emu.stats().token_failures, 2);
    assert_eq!(grants(&h, "refresh_token"), 2);

    h.emu.fail_token_requests(10, TokenFailure::Status(503));
    let down = h.run(&["run"]).await;
    assert_eq!(down.code, 69, "{}", down.stderr);
    let line = error_line(&down);
    assert!(line.contains("unavailable after 3 attempts"), "{line}");

    h.set("limits", "request_timeout = \"500ms\"");
    h.emu
        .fail_token_requests(10, TokenFailure::Delay(Duration::from_secs(2)));
    let slow = h.run(&["run"]).await;
    assert_eq!(slow.code, 69, "{}", slow.stderr);
    assert!(error_line(&slow).contains("timed out"), "{}", slow.stderr);
    // The chain survived: nothing was redeemed while the endpoint was down.
    h.emu.fail_token_requests(0, TokenFailure::Status(503));
    let back = h.run(&["run"]).await;
    assert_eq!(back.code, 0, "{}", back.stderr);
    assert_eq!(h.emu.stats().spent_refresh_token_reuse, 0);
    assert_no_secrets(&h, &[&r1, &r2, &down, &slow, &back]);
}
