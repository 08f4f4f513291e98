//! `connector.toml` validation and `config check` (exit 78, one line naming the problem).

use std::collections::BTreeMap;

use crate::util::{bin, Run};

fn env_with_token() -> BTreeMap<String, String> {
    BTreeMap::from([(
        "TEAMS_CONNECTOR_INGEST_TOKEN".to_string(),
        "secret-ingest-value".to_string(),
    )])
}

async fn check(text: &str, env: &BTreeMap<String, String>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("connector.toml");
    std::fs::write(&path, text).unwrap();
    bin(
        &[
            "--config".into(),
            path.display().to_string(),
            "config".into(),
            "check".into(),
        ],
        env,
    )
    .await
}

fn assert_one_line_78(run: &Run, needle: &str) {
    assert_eq!(run.code, 78, "stderr: {}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {}", run.stderr);
    let error = crate::util::final_error(&run.stderr);
    assert!(error.contains(needle), "{error:?} should name {needle:?}");
}

fn example() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/connector.toml.example"
    ))
    .unwrap()
}

#[tokio::test]
async fn the_example_config_is_valid_and_secrets_are_redacted() {
    let run = check(&example(), &env_with_token()).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("TEAMS_CONNECTOR_INGEST_TOKEN: set"),
        "{}",
        run.stdout
    );
    assert!(run
        .stdout
        .contains("https://graph.microsoft.com/ChannelMessage.Read.All"));
    assert!(
        !run.stdout.contains("secret-ingest-value") && !run.stderr.contains("secret-ingest-value")
    );
}

#[tokio::test]
async fn the_example_documents_every_key_of_the_schema() {
    // Every key the schema knows appears in the example (commented or not).
    let schema = toml::to_string(&teams_connector::config::File::default()).unwrap();
    let text = example();
    for line in schema.lines().filter(|l| l.contains(" = ")) {
        let key = line.split(" = ").next().unwrap();
        assert!(
            text.contains(&format!("{key} =")),
            "connector.toml.example lacks {key}"
        );
    }
    for key in [
        "tenant_id",
        "client_id",
        "cloud",
        "graph_url",
        "login_url",
        "flow",
        "username",
        "scopes",
        "url",
        "ca_file",
    ] {
        assert!(
            text.contains(&format!("{key} =")),
            "connector.toml.example lacks {key}"
        );
    }
}

#[tokio::test]
async fn missing_file_is_78() {
    let run = bin(
        &[
            "--config".into(),
            "/nonexistent/connector.toml".into(),
            "config".into(),
            "check".into(),
        ],
        &env_with_token(),
    )
    .await;
    assert_one_line_78(&run, "/nonexistent/connector.toml");
}

#[tokio::test]
async fn malformed_toml_is_78() {
    assert_one_line_78(
        &check("[microsoft\ntenant_id = 1", &env_with_token()).await,
        "not valid TOML",
    );
}

#[tokio::test]
async fn unknown_key_is_78_and_named() {
    let text = example().replace("batch_size = 100", "batch_size = 100\nbatchsize = 5");
    assert_one_line_78(&check(&text, &env_with_token()).await, "batchsize");
}

#[tokio::test]
async fn bad_url_is_78() {
    let text = example().replace(
        "https://ingest.example.com/v1/documents",
        "ingest.example.com",
    );
    assert_one_line_78(&check(&text, &env_with_token()).await, "[ingest] url");
}

#[tokio::test]
async fn missing_ingest_token_is_78() {
    assert_one_line_78(
        &check(&example(), &BTreeMap::new()).await,
        "TEAMS_CONNECTOR_INGEST_TOKEN",
    );
}

#[tokio::test]
async fn bad_duration_and_cloud_are_78() {
    let text = example().replace(
        "initial_lookback = \"30d\"",
        "initial_lookback = \"a month\"",
    );
    assert_one_line_78(&check(&text, &env_with_token()).await, "initial_lookback");
    let text = example().replace("cloud = \"global\"", "cloud = \"mars\"");
    assert_one_line_78(&check(&text, &env_with_token()).await, "[microsoft] cloud");
    let text = example().replace("flow = \"refresh_token\"", "flow = \"magic\"");
    let run = check(&text, &env_with_token()).await;
    assert_one_line_78(&run, "[auth] flow");
    assert!(run.stderr.contains("client_credentials"), "{}", run.stderr);
}

#[tokio::test]
async fn durations_past_sane_bounds_are_78_not_a_panic() {
    for (key, default) in [
        ("initial_lookback", "30d"),
        ("reply_window", "14d"),
        ("request_timeout", "60s"),
        ("timeout", "30s"),
    ] {
        let text = example().replace(
            &format!("{key} = \"{default}\""),
            &format!("{key} = \"300000years\""),
        );
        let run = check(&text, &env_with_token()).await;
        assert_one_line_78(&run, key);
        assert!(run.stderr.contains("out of range"), "{}", run.stderr);
    }
    let text = example().replace("timeout = \"30s\"", "timeout = \"0s\"");
    assert_one_line_78(&check(&text, &env_with_token()).await, "[ingest] timeout");
    let text = example().replace("reply_window = \"14d\"", "reply_window = 14");
    assert_one_line_78(
        &check(&text, &env_with_token()).await,
        "[crawl] reply_window",
    );
}

#[tokio::test]
async fn max_response_size_is_a_bounded_byte_size() {
    let mut env = env_with_token();
    for (value, needle) in [
        ("lots", "not a byte size"),
        ("5", "out of range"),
        ("2GiB", "out of range"),
    ] {
        env.insert(
            "TEAMS_CONNECTOR__LIMITS__MAX_RESPONSE_SIZE".into(),
            value.into(),
        );
        let run = check(&example(), &env).await;
        assert_one_line_78(&run, "[limits] max_response_size");
        assert!(run.stderr.contains(needle), "{}", run.stderr);
    }
    env.insert(
        "TEAMS_CONNECTOR__LIMITS__MAX_RESPONSE_SIZE".into(),
        "512KiB".into(),
    );
    let run = check(&example(), &env).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("max_response_size = \"512KiB\""),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn plain_http_to_a_remote_host_needs_allow_insecure_http() {
    let text = example().replace(
        "https://ingest.example.com/v1/documents",
        "http://ingest.example.com/v1/documents",
    );
    let run = check(&text, &env_with_token()).await;
    assert_one_line_78(&run, "[ingest] url");
    assert!(run.stderr.contains("allow_insecure_http"), "{}", run.stderr);
    // The key of the [ingest] section, the last one before [state].
    let allowed = text.replace(
        "allow_insecure_http = false\n\n[state]",
        "allow_insecure_http = true\n\n[state]",
    );
    assert_eq!(check(&allowed, &env_with_token()).await.code, 0);

    let graph = example().replace(
        "# graph_url = \"https://graph.microsoft.com\"",
        "graph_url = \"http://graph.example.com\"",
    );
    assert_one_line_78(
        &check(&graph, &env_with_token()).await,
        "[microsoft] graph_url",
    );
    // Loopback stays allowed: the emulator and a local proxy.
    let local = example().replace(
        "https://ingest.example.com/v1/documents",
        "http://127.0.0.1:9/v1/documents",
    );
    assert_eq!(check(&local, &env_with_token()).await.code, 0);
}

#[tokio::test]
async fn credentials_in_urls_are_redacted_in_config_check() {
    let text = example().replace(
        "https://ingest.example.com/v1/documents",
        "https://svc:hunter2@ingest.example.com/v1/documents?api_key=k3y-value",
    );
    let run = check(&text, &env_with_token()).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    for secret in ["hunter2", "k3y-value", "svc:"] {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "{secret} printed:\n{}",
            run.stdout
        );
    }
    assert!(
        run.stdout.contains(
            "url = \"https://[redacted]@ingest.example.com/v1/documents?api_key=[redacted]\""
        ),
        "{}",
        run.stdout
    );
    // Also when the URL is refused.
    let refused = text.replace("https://svc", "http://svc");
    let run = check(&refused, &env_with_token()).await;
    assert_one_line_78(&run, "[ingest] url");
    assert!(!run.stderr.contains("hunter2") && !run.stderr.contains("k3y-value"));
}

#[tokio::test]
async fn ca_files_must_exist_and_hold_pem_certificates() {
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tls/test-ca.pem");
    let with = |section_line: &str, path: &str| {
        example().replace(
            &format!("# {section_line} = \"/etc/ssl/corp-ca.pem\""),
            &format!("{section_line} = {path:?}"),
        )
    };
    let ok = with("ca_file", ca);
    let run = check(&ok, &env_with_token()).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.matches("test-ca.pem").count(),
        2,
        "{}",
        run.stdout
    );

    let run = check(&with("ca_file", "/nonexistent/ca.pem"), &env_with_token()).await;
    assert_one_line_78(&run, "[microsoft] ca_file");
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(
        &junk,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let run = check(
        &with("ca_file", &junk.display().to_string()),
        &env_with_token(),
    )
    .await;
    assert_one_line_78(&run, "ca_file");
}

#[tokio::test]
async fn env_overrides_are_applied_before_validation() {
    let mut env = env_with_token();
    env.insert("TEAMS_CONNECTOR__LIMITS__CONCURRENCY".into(), "0".into());
    assert_one_line_78(&check(&example(), &env).await, "concurrency");
    env.insert("TEAMS_CONNECTOR__LIMITS__CONCURRENCY".into(), "4".into());
    let run = check(&example(), &env).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("concurrency = 4"));
}

#[tokio::test]
async fn secret_files_are_read_and_both_forms_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ingest-token");
    std::fs::write(&file, "from-a-file\n").unwrap();
    let env = BTreeMap::from([(
        "TEAMS_CONNECTOR_INGEST_TOKEN_FILE".to_string(),
        file.display().to_string(),
    )]);
    let run = check(&example(), &env).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut both = env.clone();
    both.insert("TEAMS_CONNECTOR_INGEST_TOKEN".into(), "x".into());
    assert_one_line_78(&check(&example(), &both).await, "keep one");
}
