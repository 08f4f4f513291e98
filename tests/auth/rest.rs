//! The refresh token at rest: private files, sealing with `TEAMS_CONNECTOR_STATE_KEY`,
//! `status` and `logout`.

use std::os::unix::fs::PermissionsExt;

use super::{assert_no_secrets, error_line, harness, STATE_KEY};
use crate::util::{contains, files_under};

#[tokio::test(flavor = "multi_thread")]
async fn state_files_are_0600_in_a_0700_dir() {
    let h = harness().await;
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&h.state_dir()), 0o700);
    let files = files_under(&h.state_dir());
    assert!(files.len() > 1);
    for (name, _) in files {
        let m = mode(std::path::Path::new(&name));
        assert_eq!(m & 0o077, 0, "{name} has mode {m:o}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_key_seals_the_refresh_token_and_a_wrong_or_missing_key_is_exit_77() {
    let mut h = harness().await;
    h.env
        .insert("TEAMS_CONNECTOR_STATE_KEY".into(), STATE_KEY.into());
    let first = h.run(&["run"]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let second = h.run(&["run"]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    let refresh_tokens: Vec<String> = h
        .emu
        .sensitive_strings()
        .into_iter()
        .filter(|s| s.starts_with("1.AXoA"))
        .collect();
    for (name, bytes) in files_under(&h.state_dir()) {
        for t in &refresh_tokens {
            assert!(
                !contains(&bytes, t.as_bytes()),
                "{name} holds a refresh token in the clear"
            );
        }
    }
    let status = h.run(&["status"]).await;
    assert!(
        status
            .stdout
            .contains("refresh token: stored (encrypted: yes)"),
        "{}",
        status.stdout
    );
    let json = h.run(&["status", "--json"]).await;
    assert!(
        json.stdout.contains("\"refresh_token_encrypted\": true"),
        "{}",
        json.stdout
    );

    let grants = h.emu.stats().token_grants;
    h.env
        .insert("TEAMS_CONNECTOR_STATE_KEY".into(), "some-other-key".into());
    let wrong = h.run(&["run"]).await;
    assert_eq!(wrong.code, 77, "{}", wrong.stderr);
    assert!(
        error_line(&wrong).contains("not the key"),
        "{}",
        wrong.stderr
    );
    h.env.remove("TEAMS_CONNECTOR_STATE_KEY");
    let missing = h.run(&["run"]).await;
    assert_eq!(missing.code, 77, "{}", missing.stderr);
    assert!(
        error_line(&missing).contains("encrypted"),
        "{}",
        missing.stderr
    );
    // Neither fell back to the seed or a new sign-in.
    assert_eq!(h.emu.stats().token_grants, grants);
    assert_eq!(h.emu.stats().spent_refresh_token_reuse, 0);

    h.env
        .insert("TEAMS_CONNECTOR_STATE_KEY".into(), STATE_KEY.into());
    let back = h.run(&["run"]).await;
    assert_eq!(back.code, 0, "{}", back.stderr);
    assert_no_secrets(
        &h,
        &[&first, &second, &status, &json, &wrong, &missing, &back],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_deletes_the_token_and_says_where_to_revoke_consent() {
    let h = harness().await;
    assert_eq!(h.run(&["run"]).await.code, 0);
    let logout = h.run(&["logout"]).await;
    assert_eq!(logout.code, 0, "{}", logout.stderr);
    assert!(logout.stderr.contains("deleted the stored refresh token"));
    assert!(
        logout.stderr.contains("Enterprise applications"),
        "{}",
        logout.stderr
    );
    assert!(
        logout.stderr.contains("Revoke sessions"),
        "{}",
        logout.stderr
    );
    let status = h.run(&["status"]).await;
    assert!(status.stdout.contains("none stored"), "{}", status.stdout);
    assert_no_secrets(&h, &[&logout, &status]);
}
