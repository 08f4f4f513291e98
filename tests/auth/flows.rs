//! The password (ROPC) and client-credentials (app-only) flows, and confidential clients.

use graph_emulator::EmulatorOptions;

use super::{assert_no_secrets, error_line, grants, harness, harness_with};
use crate::util::Harness;

async fn password_harness() -> Harness {
    let mut h = harness().await;
    h.env.remove("TEAMS_CONNECTOR_REFRESH_TOKEN");
    let upn = h.emu.technical_user_upn();
    h.set("auth", "flow = \"password\"")
        .set("auth", &format!("username = {upn:?}"));
    h.env.insert(
        "TEAMS_CONNECTOR_PASSWORD".into(),
        h.emu.technical_user_password(),
    );
    h
}

#[tokio::test(flavor = "multi_thread")]
async fn the_password_flow_signs_in_warns_about_mfa_and_stores_no_token() {
    let mut h = password_harness().await;
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("MFA") && run.stderr.contains("federated"));
    assert!(grants(&h, "password") >= 1);
    assert_eq!(grants(&h, "refresh_token"), 0);
    let status = h.run(&["status"]).await;
    assert!(
        status.stdout.contains("auth flow: password"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("none stored"), "{}", status.stdout);

    h.env
        .insert("TEAMS_CONNECTOR_PASSWORD".into(), "wrong-password".into());
    let wrong = h.run(&["run"]).await;
    assert_eq!(wrong.code, 77, "{}", wrong.stderr);
    let line = error_line(&wrong);
    assert!(
        line.contains("AADSTS50126") && line.contains("TEAMS_CONNECTOR_PASSWORD"),
        "{line}"
    );
    assert!(!wrong.stderr.contains("wrong-password"));
    assert_no_secrets(&h, &[&run, &status, &wrong]);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_credentials_list_teams_tenant_wide_with_paging() {
    let mut h = harness().await;
    h.env.remove("TEAMS_CONNECTOR_REFRESH_TOKEN");
    h.set("auth", "flow = \"client_credentials\"");
    h.env.insert(
        "TEAMS_CONNECTOR_CLIENT_SECRET".into(),
        h.emu.client_secret(),
    );
    h.emu.set_teams_page_size(1);
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("Protected API"), "{}", run.stderr);
    let stats = h.emu.stats();
    assert!(
        stats.by_route.get("teams").copied().unwrap_or(0) >= 2,
        "{stats:?}"
    );
    assert_eq!(stats.by_route.get("joinedTeams"), None, "{stats:?}");
    assert_eq!(grants(&h, "client_credentials"), 1);
    assert!(run.counter("forwarded") > 0);

    h.env.insert(
        "TEAMS_CONNECTOR_CLIENT_SECRET".into(),
        "not-the-secret".into(),
    );
    let wrong = h.run(&["run"]).await;
    assert_eq!(wrong.code, 77, "{}", wrong.stderr);
    assert!(error_line(&wrong).contains("AADSTS7000215"));
    assert!(!wrong.stderr.contains("not-the-secret"));

    h.env.remove("TEAMS_CONNECTOR_CLIENT_SECRET");
    let missing = h.run(&["run"]).await;
    assert_eq!(missing.code, 78, "{}", missing.stderr);
    assert!(error_line(&missing).contains("TEAMS_CONNECTOR_CLIENT_SECRET"));
    assert_no_secrets(&h, &[&run, &wrong, &missing]);
}

#[tokio::test(flavor = "multi_thread")]
async fn confidential_clients_send_the_secret_with_the_refresh_grant() {
    let opts = EmulatorOptions {
        client_secret_required: true,
        ..EmulatorOptions::default()
    };
    let mut h = harness_with(opts).await;
    let public = h.run(&["run"]).await;
    assert_eq!(public.code, 77, "{}", public.stderr);
    let line = error_line(&public);
    assert!(
        line.contains("AADSTS7000218") && line.contains("TEAMS_CONNECTOR_CLIENT_SECRET"),
        "{line}"
    );
    h.env.insert(
        "TEAMS_CONNECTOR_CLIENT_SECRET".into(),
        h.emu.client_secret(),
    );
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(grants(&h, "refresh_token"), 1);
    assert_no_secrets(&h, &[&public, &run]);
}
