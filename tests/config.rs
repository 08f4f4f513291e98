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
    assert_one_line_78(&check(&text, &env_with_token()).await, "cloud");
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
