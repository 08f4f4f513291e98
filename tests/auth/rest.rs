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

/// The token record as stored in `state.dir/refresh-token`.
fn token_record(h: &crate::util::Harness) -> serde_json::Value {
    let bytes = std::fs::read(h.state_dir().join("refresh-token")).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_state_key_is_stretched_with_a_random_salt_so_the_key_id_is_no_oracle() {
    let mut a = harness().await;
    let mut b = harness().await;
    for h in [&mut a, &mut b] {
        h.env
            .insert("TEAMS_CONNECTOR_STATE_KEY".into(), STATE_KEY.into());
        let run = h.run(&["run"]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let (ra, rb) = (token_record(&a), token_record(&b));
    let kdf = &ra["sealed"]["kdf"];
    assert_eq!(kdf["alg"], "argon2id", "{ra}");
    assert!(kdf["m_cost"].as_u64().unwrap() >= 19 * 1024, "{ra}");
    assert_ne!(kdf["salt"], rb["sealed"]["kdf"]["salt"]);
    // Same passphrase, different stores: nothing to precompute a guess table against.
    assert_ne!(ra["sealed"]["key_id"], rb["sealed"]["key_id"]);
}

/// Seals `token` the way version 1 did: ChaCha20-Poly1305 under SHA-256(label ‖ secret),
/// key id = the first 8 bytes of SHA-256 of that key, kept inside sled.
fn v1_record(token: &str, secret: &str) -> serde_json::Value {
    use base64::Engine;
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"teams-connector state key v1\0");
    h.update(secret.as_bytes());
    let key = h.finalize();
    let cipher = chacha20poly1305::ChaCha20Poly1305::new(&key);
    let nonce = [7u8; 12];
    let ct = cipher
        .encrypt(
            chacha20poly1305::Nonce::from_slice(&nonce),
            Payload {
                msg: token.as_bytes(),
                aad: b"auth/refresh_token",
            },
        )
        .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let id: String = Sha256::digest(key)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    serde_json::json!({
        "sealed": {"key_id": id, "nonce": b64.encode(nonce), "ciphertext": b64.encode(ct)},
        "seed": null,
        "rotated_at": "2024-01-01T00:00:00Z",
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_sealed_by_an_older_version_opens_and_is_resealed() {
    let mut h = harness().await;
    let seed = h.env.remove("TEAMS_CONNECTOR_REFRESH_TOKEN").unwrap();
    std::fs::create_dir_all(h.state_dir()).unwrap();
    {
        let db = sled::open(h.state_dir().join("db")).unwrap();
        let rec = v1_record(&seed, STATE_KEY);
        db.insert("auth/refresh_token", serde_json::to_vec(&rec).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    // A wrong key is still told apart from a damaged record, and says what to do.
    h.env
        .insert("TEAMS_CONNECTOR_STATE_KEY".into(), "some-other-key".into());
    let wrong = h.run(&["run"]).await;
    assert_eq!(wrong.code, 77, "{}", wrong.stderr);
    assert!(
        error_line(&wrong).contains("not the key"),
        "{}",
        wrong.stderr
    );

    h.env
        .insert("TEAMS_CONNECTOR_STATE_KEY".into(), STATE_KEY.into());
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(h.emu.stats().spent_refresh_token_reuse, 0);
    let rec = token_record(&h);
    assert_eq!(rec["sealed"]["kdf"]["alg"], "argon2id", "{rec}");
    assert!(rec.get("token").is_none(), "{rec}");
    assert_no_secrets(&h, &[&wrong, &run]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_token_warns_once_per_run_and_is_sealed_once_a_key_is_set() {
    let mut h = harness().await;
    let plain = h.run(&["run"]).await;
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    assert_eq!(
        plain.stderr.matches("stored unencrypted").count(),
        1,
        "{}",
        plain.stderr
    );
    assert!(token_record(&h)["token"].is_string());
    h.env
        .insert("TEAMS_CONNECTOR_STATE_KEY".into(), STATE_KEY.into());
    let sealed = h.run(&["run"]).await;
    assert_eq!(sealed.code, 0, "{}", sealed.stderr);
    assert!(
        !sealed.stderr.contains("stored unencrypted"),
        "{}",
        sealed.stderr
    );
    let rec = token_record(&h);
    assert!(
        rec.get("token").is_none() && rec["sealed"].is_object(),
        "{rec}"
    );
    assert_no_secrets(&h, &[&plain, &sealed]);
}
