//! Operating it (issue 6): `doctor`, `--metrics-file`, `status --json`, `--quiet`, and
//! the deploy files (Kubernetes, systemd, cron, Dockerfile).

use std::path::Path;

use graph_emulator::TenantSpec;
use serde_json::Value;
use teams_connector::state::Store;

use crate::util::Harness;

mod deploy;

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 11,
        teams: 2,
        channels_per_team: 2,
        messages_per_channel: 6,
        max_replies: 2,
        users: 12,
        ..TenantSpec::default()
    }
}

/// The `ok`/`FAIL`/`skip` word of each check line, by check name.
fn doctor_lines(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let verdict = words.next()?;
            let name = words.next()?;
            matches!(verdict, "ok" | "FAIL" | "skip")
                .then(|| (name.to_string(), verdict.to_string()))
        })
        .collect()
}

fn verdict(stdout: &str, check: &str) -> String {
    doctor_lines(stdout)
        .into_iter()
        .find(|(n, _)| n == check)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {check} line in:\n{stdout}"))
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_passes_against_the_emulator_and_keeps_the_token_chain() {
    let h = Harness::new(spec()).await;
    let r = h.run(&["doctor"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let lines = doctor_lines(&r.stdout);
    let names: Vec<&str> = lines.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["config", "state", "token", "scopes", "graph", "teams", "messages", "ingest"]
    );
    assert!(lines.iter().all(|(_, v)| v == "ok"), "{}", r.stdout);
    assert!(r.stdout.contains("all 8 checks passed"), "{}", r.stdout);
    // The doctor spent the seed; the rotated token it saved lets the run sign in (the
    // emulator rejects a spent refresh token).
    let mut h = h;
    h.env.remove("TEAMS_CONNECTOR_REFRESH_TOKEN");
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(h.emu.stats().spent_refresh_token_reuse, 0);
    // The empty batch reached the sink and carried no document.
    assert!(h.sink.batches()[0].documents.is_empty());
    h.assert_private(&[&r, &run]);
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_a_wrong_ingest_token() {
    let mut h = Harness::new(spec()).await;
    h.env.insert(
        "TEAMS_CONNECTOR_INGEST_TOKEN".into(),
        "not-the-token".into(),
    );
    let r = h.run(&["doctor"]).await;
    assert_eq!(r.code, 77, "{}", r.stdout);
    assert_eq!(verdict(&r.stdout, "ingest"), "FAIL");
    assert_eq!(verdict(&r.stdout, "messages"), "ok");
    assert!(
        r.stdout.contains("fix: set TEAMS_CONNECTOR_INGEST_TOKEN"),
        "{}",
        r.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_with_graph_unreachable_fails_the_graph_line() {
    let mut h = Harness::new(spec()).await;
    h.set(
        "microsoft",
        &format!("graph_url = \"http://127.0.0.1:{}\"", closed_port()),
    );
    let r = h.run(&["doctor"]).await;
    assert_eq!(r.code, 69, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(verdict(&r.stdout, "token"), "ok");
    assert_eq!(verdict(&r.stdout, "graph"), "FAIL");
    assert_eq!(verdict(&r.stdout, "teams"), "skip");
    assert_eq!(verdict(&r.stdout, "ingest"), "ok");
    assert!(
        r.stdout.contains("fix: check [microsoft] graph_url"),
        "{}",
        r.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_a_missing_scope() {
    let h = Harness::new(spec()).await;
    h.emu.grant_only_scopes(Some(&[
        "https://graph.microsoft.com/User.ReadBasic.All",
        "https://graph.microsoft.com/Team.ReadBasic.All",
        "https://graph.microsoft.com/Channel.ReadBasic.All",
        "https://graph.microsoft.com/Mail.Read",
    ]));
    let r = h.run(&["doctor"]).await;
    assert_eq!(r.code, 77, "{}", r.stdout);
    assert_eq!(verdict(&r.stdout, "scopes"), "FAIL");
    assert!(
        r.stdout.contains("the token lacks ChannelMessage.Read.All"),
        "{}",
        r.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_says_which_scopes_are_more_than_needed() {
    let h = Harness::new(spec()).await;
    h.emu.grant_only_scopes(Some(&[
        "User.ReadBasic.All",
        "Team.ReadBasic.All",
        "Channel.ReadBasic.All",
        "ChannelMessage.Read.All",
        "Mail.Read",
        "openid",
    ]));
    let r = h.run(&["doctor"]).await;
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout.contains("more than needed: Mail.Read ("),
        "{}",
        r.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_reports_a_locked_state_dir_and_still_checks_the_ingest() {
    let h = Harness::new(spec()).await;
    let held = Store::open(&h.state_dir()).unwrap();
    let r = h.run(&["doctor"]).await;
    drop(held);
    assert_eq!(r.code, 75, "{}", r.stdout);
    assert_eq!(verdict(&r.stdout, "state"), "FAIL");
    assert_eq!(verdict(&r.stdout, "token"), "skip");
    assert_eq!(verdict(&r.stdout, "ingest"), "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_with_a_bad_config_is_78() {
    let h = Harness::new(spec()).await;
    h.write_config();
    std::fs::write(h.config_path(), "[microsoft]\nno_such_key = 1\n").unwrap();
    let args: Vec<String> = ["--config", &h.config_path().display().to_string(), "doctor"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let r = crate::util::bin(&args, &h.env).await;
    assert_eq!(r.code, 78, "{}", r.stdout);
    assert_eq!(verdict(&r.stdout, "config"), "FAIL");
    assert_eq!(verdict(&r.stdout, "ingest"), "skip");
}

/// The metrics file with every sample value replaced, but the exit code.
fn metric_shape(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with('#') || l.starts_with("teams_connector_last_run_exit_code ") {
                return l.to_string();
            }
            match l.rsplit_once(' ') {
                Some((series, _)) => format!("{series} <value>"),
                None => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

/// The sum over every series of a family (all label values).
fn family_sum(text: &str, family: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| series.split('{').next() == Some(family))
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum()
}

fn now() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_file_after_a_successful_run() {
    let h = Harness::new(spec()).await;
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("teams_connector.prom");
    let r = h
        .run(&["run", "--metrics-file", &path.display().to_string()])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        files_in(out.path()),
        ["teams_connector.prom"],
        "no temp file left"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    insta::assert_snapshot!("metrics_file", metric_shape(&text));
    let last_success = sample(&text, "teams_connector_last_success_timestamp_seconds");
    assert!((now() - last_success).abs() < 60.0, "{last_success}");
    let forwarded = r.counter("forwarded") as f64;
    assert_eq!(
        sample(
            &text,
            "teams_connector_documents_forwarded_total{op=\"upsert\"}"
        ),
        forwarded
    );
    assert_eq!(
        family_sum(&text, "teams_connector_graph_requests_total"),
        r.counter("requests") as f64
    );
    assert_eq!(
        sample(&text, "teams_connector_channels{state=\"done\"}"),
        r.counter("channels") as f64
    );

    // A second run adds to the counters instead of restarting them.
    let again = h
        .run(&["run", "--metrics-file", &path.display().to_string()])
        .await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        family_sum(&text, "teams_connector_graph_requests_total"),
        (r.counter("requests") + again.counter("requests")) as f64
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_keep_the_last_success_when_a_run_fails() {
    let mut h = Harness::new(spec()).await;
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("m.prom");
    let flag = path.display().to_string();
    let ok = h.run(&["run", "--metrics-file", &flag]).await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let first = std::fs::read_to_string(&path).unwrap();
    let success = sample(&first, "teams_connector_last_success_timestamp_seconds");
    let forwarded = "teams_connector_documents_forwarded_total{op=\"upsert\"}";

    // Sign-in refused (a new, unknown seed): exit 77 before anything is counted.
    h.env.insert(
        "TEAMS_CONNECTOR_REFRESH_TOKEN".into(),
        "1.AXoAnot-a-token-the-tenant-issued".into(),
    );
    let refused = h.run(&["run", "--metrics-file", &flag]).await;
    assert_eq!(refused.code, 77, "{}", refused.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(sample(&text, "teams_connector_last_run_exit_code"), 77.0);
    assert_eq!(
        sample(&text, "teams_connector_last_success_timestamp_seconds"),
        success
    );
    assert_eq!(sample(&text, forwarded), sample(&first, forwarded));
    assert!(!text.contains("teams_connector_channels"), "{text}");

    // A broken config: no state store to read, so the previous file is the source.
    std::fs::write(h.config_path(), "[nonsense]\n").unwrap();
    let args: Vec<String> = [
        "--config",
        &h.config_path().display().to_string(),
        "run",
        "--metrics-file",
        &flag,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let broken = crate::util::bin(&args, &h.env).await;
    assert_eq!(broken.code, 78, "{}", broken.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(sample(&text, "teams_connector_last_run_exit_code"), 78.0);
    assert_eq!(
        sample(&text, "teams_connector_last_success_timestamp_seconds"),
        success
    );
    assert_eq!(sample(&text, forwarded), sample(&first, forwarded));
}

/// Timestamps, ids, links and counts replaced: what stays is the set of fields.
fn redact(v: &mut Value, key: &str) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                redact(child, k);
            }
        }
        Value::Array(items) => {
            // One element shows the shape; how many depends on the tenant.
            items.truncate(1);
            for child in items.iter_mut() {
                redact(child, key);
            }
        }
        Value::String(_) if !matches!(key, "flow") => *v = Value::String(format!("<{key}>")),
        Value::Number(_) if !matches!(key, "schema" | "exit_code" | "last_run_exit_code") => {
            *v = Value::String("<n>".into())
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn status_json_has_the_documented_fields() {
    let h = Harness::new(spec()).await;
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let status = h.run(&["status", "--json"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    let mut v: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["refresh_token_stored"], true);
    assert_eq!(v["last_run_exit_code"], 0);
    assert!(v["last_success_at"].is_string());
    assert_eq!(
        v["channels"].as_array().unwrap().len() as u64,
        run.counter("channels")
    );
    assert!(v["channels"][0]["delta_link"].is_string());
    redact(&mut v, "");
    insta::assert_snapshot!("status_json", serde_json::to_string_pretty(&v).unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn status_json_lists_the_failures_of_the_last_run() {
    let h = Harness::new(spec()).await;
    h.sink.fail_always(Some(400));
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    let status = h.run(&["status", "--json"]).await;
    let v: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(
        v["last_run_exit_code"], 3,
        "{}\n{}",
        status.stdout, status.stderr
    );
    assert!(v["last_success_at"].is_null());
    let failures = v["failures"].as_array().unwrap();
    assert!(!failures.is_empty());
    assert_eq!(failures[0]["kind"], "ingest_rejected");
}

#[tokio::test(flavor = "multi_thread")]
async fn quiet_prints_only_errors_and_the_summary() {
    let h = Harness::new(spec()).await;
    // An unknown --team makes warnings; --quiet must keep them out.
    let loud = h.run(&["run", "--team", "no-such-team"]).await;
    assert!(loud.stderr.contains("\"WARN\""), "{}", loud.stderr);
    let quiet = h.run(&["-q", "run", "--team", "no-such-team"]).await;
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    let lines: Vec<Value> = quiet
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    assert_eq!(lines.len(), 1, "{}", quiet.stderr);
    assert_eq!(lines[0]["target"], "run_summary");
    assert!(quiet.stdout.is_empty());
    // Errors still show.
    let mut broken = Harness::new(spec()).await;
    broken.env.remove("TEAMS_CONNECTOR_INGEST_TOKEN");
    let failed = broken.run(&["-q", "run"]).await;
    assert_eq!(failed.code, 78);
    assert!(
        failed.stderr.contains("TEAMS_CONNECTOR_INGEST_TOKEN"),
        "{}",
        failed.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_progress_line_is_logged_while_a_run_is_in_flight() {
    let mut h = crate::util::Harness::new(graph_emulator::TenantSpec::default()).await;
    h.emu.set_latency(std::time::Duration::from_millis(30));
    h.env
        .insert("TEAMS_CONNECTOR_PROGRESS_INTERVAL".into(), "100ms".into());
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let progress: Vec<&serde_json::Value> =
        lines.iter().filter(|v| v["target"] == "progress").collect();
    assert!(!progress.is_empty(), "no progress line: {}", run.stderr);
    assert!(
        progress.iter().all(|p| p.get("channels_total").is_some()),
        "{progress:?}"
    );
    let summary_at = lines
        .iter()
        .position(|v| v["target"] == "run_summary")
        .unwrap();
    assert!(
        lines[summary_at + 1..]
            .iter()
            .all(|v| v["target"] != "progress"),
        "nothing after the summary"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs `script` (util-linux) for a pseudo-terminal: `cargo test -- --ignored` where it is installed (.ci/run does)"]
async fn on_a_terminal_progress_is_a_bar() {
    let h = crate::util::Harness::new(graph_emulator::TenantSpec::default()).await;
    h.emu.set_latency(std::time::Duration::from_millis(40));
    h.write_config();
    let command = format!(
        "{} --config {} run",
        env!("CARGO_BIN_EXE_teams-connector"),
        h.config_path().display()
    );
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qfec", &command, "/dev/null"])
        .env_clear()
        .envs(&h.env);
    cmd.env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TERM", "xterm");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(
        screen.contains("channels ") && screen.contains("documents"),
        "no bar drawn: {screen}"
    );
    assert!(
        screen.contains("Run finished."),
        "the summary still prints: {screen}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_warns_about_a_plain_token_and_shows_the_network_path() {
    let h = Harness::new(spec()).await;
    let r = h.run(&["doctor"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("warn  state") && l.contains("TEAMS_CONNECTOR_STATE_KEY")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("info  network   proxy: none"),
        "{}",
        r.stdout
    );

    // A key set, plain http allowed, a proxy with credentials, a CA file and a URL with a
    // credential in its query.
    let mut h = Harness::new(spec()).await;
    h.env
        .insert("TEAMS_CONNECTOR_STATE_KEY".into(), "k".repeat(32));
    h.env.insert(
        "HTTPS_PROXY".into(),
        "http://proxyuser:proxy-pass-7@proxy.invalid:3128".into(),
    );
    h.env
        .insert("NO_PROXY".into(), "127.0.0.1,localhost".into());
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tls/test-ca.pem");
    let url = format!("url = \"{}?api_key=ingest-key-9\"", h.sink.url());
    h.set("ingest", "allow_insecure_http = true")
        .set("ingest", &format!("ca_file = {ca:?}"))
        .set("ingest", &url);
    let r = h.run(&["doctor"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("warn  state"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("warn  config    [ingest] allow_insecure_http = true"),
        "{}",
        r.stdout
    );
    let network = r
        .stdout
        .lines()
        .find(|l| l.starts_with("info  network"))
        .unwrap();
    assert!(
        network.contains("HTTPS_PROXY=http://[redacted]@proxy.invalid:3128/")
            && network.contains("NO_PROXY=127.0.0.1,localhost")
            && network.contains("test-ca.pem (1 certificate(s))"),
        "{network}"
    );
    for secret in ["proxy-pass-7", "ingest-key-9"] {
        assert!(
            !r.stdout.contains(secret) && !r.stderr.contains(secret),
            "{secret} printed:\n{}",
            r.stdout
        );
    }
}
