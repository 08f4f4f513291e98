//! What the logs may hold (issue 12, items 2 and 17): no message text, mail or token at
//! any verbosity, dependencies quiet unless `RUST_LOG` names them, and no forged lines or
//! terminal escapes in text mode.

use graph_emulator::TenantSpec;

use crate::util::{bin, Harness, Run};

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 5,
        teams: 2,
        channels_per_team: 2,
        messages_per_channel: 6,
        max_replies: 2,
        users: 10,
        ..TenantSpec::default()
    }
}

fn assert_no_dependency_chatter(run: &Run) {
    assert!(
        !run.stderr.contains("Characters("),
        "html5ever's text tokens reached the log"
    );
    for line in run.stderr.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let target = v["target"].as_str().unwrap_or("");
        let level = v["level"].as_str().unwrap_or("");
        let ours = [
            "teams_connector",
            "graph_emulator",
            "run_summary",
            "progress",
        ]
        .iter()
        .any(|t| target.starts_with(t));
        assert!(
            ours || matches!(level, "WARN" | "ERROR"),
            "a dependency logged at {level}: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn very_verbose_runs_keep_message_text_out_of_the_logs() {
    let h = Harness::new(spec()).await;
    let vv = h.run(&["-vv", "run"]).await;
    assert_eq!(vv.code, 0, "{}", vv.stderr);
    assert_no_dependency_chatter(&vv);
    let mut h = h;
    h.env.insert("RUST_LOG".into(), "trace".into());
    let env_trace = h.run(&["run"]).await;
    assert_eq!(env_trace.code, 0, "{}", env_trace.stderr);
    assert_no_dependency_chatter(&env_trace);
    h.assert_private(&[&vv, &env_trace]);
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_log_naming_a_dependency_turns_it_on() {
    // What the README warns about: named explicitly, html5ever prints message text.
    let mut h = Harness::new(spec()).await;
    h.env.insert("RUST_LOG".into(), "html5ever=debug".into());
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("Characters("), "{}", run.stderr);
    // The program's own info events are still there.
    assert!(run.stderr.contains("run_summary"));
}

#[tokio::test(flavor = "multi_thread")]
async fn text_logs_escape_control_characters_in_values() {
    let h = Harness::new(spec()).await;
    h.write_config();
    let evil = "no-such-team\nERROR forged line\u{1b}[31m";
    let args: Vec<String> = [
        "--config",
        &h.config_path().display().to_string(),
        "--log-format",
        "text",
        "run",
        "--team",
        evil,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let run = bin(&args, &h.env).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no-such-team\\nERROR forged line\\u{1b}[31m"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.lines().any(|l| l.starts_with("ERROR forged")),
        "a value started a line of its own:\n{}",
        run.stderr
    );
    assert!(!run.stderr.contains("forged line\u{1b}"), "{}", run.stderr);
}
