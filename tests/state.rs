//! The state dir under local faults (issue 12, item 4): an incomplete sled snapshot left by
//! a full disk, a lost cursor store, and a token kept in sled by an older version. The
//! refresh token must survive all of them.

use std::os::unix::fs::PermissionsExt;

use graph_emulator::TenantSpec;

use crate::util::{contains, files_under, Harness};

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 17,
        teams: 2,
        channels_per_team: 2,
        messages_per_channel: 5,
        max_replies: 2,
        users: 10,
        ..TenantSpec::default()
    }
}

/// A harness after one successful run, with the seed removed so that every later sign-in
/// needs the stored token.
async fn after_first_run() -> Harness {
    let mut h = Harness::new(spec()).await;
    let first = h.run(&["run"]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    h.env.remove("TEAMS_CONNECTOR_REFRESH_TOKEN");
    h
}

fn refresh_tokens(h: &Harness) -> Vec<String> {
    h.emu
        .sensitive_strings()
        .into_iter()
        .filter(|s| s.starts_with("1.AXoA"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incomplete_snapshot_left_by_a_full_disk_is_cleared_by_itself() {
    let h = after_first_run().await;
    let db = h.state_dir().join("db");
    // What sled leaves when the disk fills while it writes a snapshot: an empty
    // `.generating` file, newer than any other, and here also an empty finished one.
    std::fs::write(db.join("snap.FFFFFFFFFFFFFFF0.generating"), b"").unwrap();
    std::fs::write(db.join("snap.FFFFFFFFFFFFFFFF"), b"").unwrap();
    let status = h.run(&["status"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(
        status.stderr.contains("incomplete snapshot"),
        "{}",
        status.stderr
    );
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(h.emu.stats().spent_refresh_token_reuse, 0);
    assert!(!db.join("snap.FFFFFFFFFFFFFFF0.generating").exists());
    // The cursors survived: the second run found nothing new to send.
    assert_eq!(run.counter("forwarded"), 0, "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_has_its_own_private_file_and_survives_a_lost_cursor_store() {
    let h = after_first_run().await;
    let file = h.state_dir().join("refresh-token");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let tokens = refresh_tokens(&h);
    for (name, bytes) in files_under(&h.state_dir().join("db")) {
        for t in &tokens {
            assert!(
                !contains(&bytes, t.as_bytes()),
                "{name} holds a refresh token"
            );
        }
    }
    // The cursor store is gone (damaged and moved away by an admin): the token is not.
    std::fs::remove_dir_all(h.state_dir().join("db")).unwrap();
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(h.emu.stats().spent_refresh_token_reuse, 0);
    let status = h.run(&["status"]).await;
    assert!(
        status.stdout.contains("refresh token: stored"),
        "{}",
        status.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_an_older_version_kept_in_sled_moves_to_its_file() {
    let mut h = Harness::new(spec()).await;
    let seed = h.env.remove("TEAMS_CONNECTOR_REFRESH_TOKEN").unwrap();
    std::fs::create_dir_all(h.state_dir()).unwrap();
    {
        let db = sled::open(h.state_dir().join("db")).unwrap();
        let record = serde_json::json!({
            "token": seed,
            "seed": null,
            "rotated_at": "2024-01-01T00:00:00Z",
        });
        db.insert("auth/refresh_token", serde_json::to_vec(&record).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    let status = h.run(&["status"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(
        status.stdout.contains("refresh token: stored"),
        "{}",
        status.stdout
    );
    assert!(h.state_dir().join("refresh-token").exists());
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let db = sled::open(h.state_dir().join("db")).unwrap();
    assert!(db.get("auth/refresh_token").unwrap().is_none());
    drop(db);
    // logout removes the file.
    let logout = h.run(&["logout"]).await;
    assert_eq!(logout.code, 0, "{}", logout.stderr);
    assert!(!h.state_dir().join("refresh-token").exists());
}

/// The whole episode on a real full disk: a 2 MiB tmpfs mounted in a user namespace
/// (`unshare -rm`, no root needed), the state dir on it, the disk filled up, then freed.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs unprivileged user namespaces (`unshare -rm`) to mount a tiny tmpfs: `cargo test -- --ignored` where they are allowed (.ci/run does); the simulated leftover test covers the same recovery everywhere"]
async fn a_full_disk_does_not_break_the_state_dir_for_good() {
    let mut h = Harness::new(spec()).await;
    let mount = h.dir.path().join("tiny");
    std::fs::create_dir_all(&mount).unwrap();
    let state = mount.join("state");
    h.set("state", &format!("dir = {:?}", state.display().to_string()));
    h.write_config();
    let script = r#"
        set -u
        mount -t tmpfs -o size=2m tmpfs "$MOUNT" || exit 90
        step() { "$BIN" --config "$CONFIG" --log-format json "$@" >/dev/null 2>>"$LOG"; echo $?; }
        echo "first $(step run)"
        unset TEAMS_CONNECTOR_REFRESH_TOKEN
        dd if=/dev/zero of="$MOUNT/fill" bs=4k >/dev/null 2>&1
        echo "full $(step status)"
        rm "$MOUNT/fill"
        echo "freed $(step status)"
        echo "run $(step run)"
    "#;
    let log = h.dir.path().join("log");
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["-rm", "sh", "-c", script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&h.env)
        .env("MOUNT", &mount)
        .env("BIN", env!("CARGO_BIN_EXE_teams-connector"))
        .env("CONFIG", h.config_path())
        .env("LOG", &log);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("unshare runs"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    let code = |step: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{step} ")))
            .unwrap_or_else(|| {
                panic!(
                    "no {step} step: {stdout}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
            .to_string()
    };
    assert_eq!(code("first"), "0", "{logs}");
    assert!(
        matches!(code("full").as_str(), "0" | "74"),
        "{stdout}\n{logs}"
    );
    assert_eq!(code("freed"), "0", "{stdout}\n{logs}");
    assert_eq!(code("run"), "0", "{stdout}\n{logs}");
    assert_eq!(h.emu.stats().spent_refresh_token_reuse, 0);
}
