//! Hostile answers that carry secrets and content back at us (issue 12 items 5, 17, 18):
//! an ingest 422 that echoes the rejected documents, Graph fields of the wrong type that
//! serde quotes, an identity platform that echoes the posted form, and Graph ids that carry
//! line breaks and terminal escapes. Every stored failure reason (`status --json`), the
//! state dir and the logs at `-vv` are scanned for tokens, mails and message text.

use serde_json::{json, Value};

use super::answer::Answer;
use super::server::{get, post};
use super::{assert_no_panic, error_line, Scene};
use crate::util::Run;

/// The state dir, the stored reasons and the given runs' logs hold nothing sensitive.
async fn assert_private(s: &Scene, runs: &[&Run]) {
    let status = s.run(&["status", "--json"]).await;
    let reasons = s.failure_reasons().await.join("\n");
    let mut texts = vec![
        ("status --json", status.stdout.as_str()),
        ("failure reasons", reasons.as_str()),
    ];
    for r in runs {
        texts.push(("stderr", r.stderr.as_str()));
        texts.push(("stdout", r.stdout.as_str()));
    }
    s.assert_clean(&texts);
    s.h.assert_private(runs);
}

/// FastAPI's 422: one entry per invalid document, each echoing it whole as `input`.
fn fastapi_422(batch: &[u8]) -> Answer {
    let docs: Value = serde_json::from_slice(batch).unwrap_or(Value::Null);
    let detail: Vec<Value> = docs["documents"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, d)| {
            json!({
                "type": "value_error",
                "loc": ["body", "documents", i],
                "msg": "Value error, author is not a known expert",
                "input": d,
            })
        })
        .collect();
    Answer::json(422, &json!({ "detail": detail }))
}

/// Issue 12 item 5: a 422 that echoes the documents (text and mails).
#[tokio::test(flavor = "multi_thread")]
async fn an_ingest_422_echoing_the_documents_stays_out_of_logs_and_reasons() {
    let s = Scene::new().await;
    s.ingest
        .answer_with(post("/v1/documents"), |seen| fastapi_422(&seen.body));
    let run = s.run(&["-vv", "run"]).await;
    assert_no_panic(&run);
    assert_eq!(run.code, 3, "{}", run.stderr);
    let reasons = s.failure_reasons().await;
    assert!(
        reasons.iter().any(|r| r.contains("422")),
        "the status is kept: {reasons:?}"
    );
    assert_private(&s, &[&run]).await;
}

/// Issue 12 item 5: Graph sends `body` as a string and `mentions` as a mail; serde's error
/// quotes the value.
#[tokio::test(flavor = "multi_thread")]
async fn graph_fields_of_the_wrong_type_stay_out_of_logs_and_reasons() {
    let s = Scene::new().await;
    let (_, channel) = s.public_channel();
    let mail = s.h.emu.technical_user_mail();
    s.graph
        .edit(get(&format!("{channel}/messages/delta")), move |page| {
            for m in page["value"].as_array_mut().into_iter().flatten() {
                let text = m["body"]["content"].clone();
                m["body"] = text;
                m["mentions"] = json!(mail);
            }
        });
    let run = s.run(&["-vv", "run"]).await;
    assert_no_panic(&run);
    assert_eq!(run.code, 3, "{}", run.stderr);
    let reasons = s.failure_reasons().await;
    assert!(!reasons.is_empty());
    assert_private(&s, &[&run]).await;
}

/// Issue 12 item 18: the identity platform echoes the posted form (refresh token, client
/// secret) in its error description.
#[tokio::test(flavor = "multi_thread")]
async fn an_identity_platform_echoing_the_form_gets_no_secret_printed() {
    let mut s = Scene::new().await;
    let secret = s.h.emu.client_secret();
    s.h.env
        .insert("TEAMS_CONNECTOR_CLIENT_SECRET".into(), secret);
    s.graph.answer_with(post("/oauth2/v2.0/token"), |seen| {
        let desc = format!(
            "AADSTS90014: The request body is malformed: {} Trace ID: 6e94ade5",
            seen.body_text()
        );
        Answer::json(
            400,
            &json!({"error": "invalid_request", "error_description": desc, "error_codes": [90014]}),
        )
    });
    let run = s.run(&["-vv", "run"]).await;
    assert_no_panic(&run);
    assert_eq!(run.code, 77, "{}", run.stderr);
    let line = error_line(&run.stderr).unwrap_or_default();
    assert!(line.contains("AADSTS90014"), "the code is kept: {line}");
    assert_private(&s, &[&run]).await;
}

/// What a hostile Graph puts in a team or channel id: a line break that starts a forged
/// log line, a screen clear and a terminal-title escape.
const FORGED: &str =
    "19:evil\n2099-01-01T00:00:00.000000Z ERROR forged: all channels deleted\u{1b}[2J\u{1b}]0;pwned\u{7}@thread.tacv2";

/// Issue 12 item 17: Graph-supplied ids and names cannot forge lines or send escapes in
/// text-mode logs.
#[tokio::test(flavor = "multi_thread")]
async fn graph_ids_with_control_characters_cannot_forge_log_lines() {
    let s = Scene::new().await;
    s.graph.edit(get("/v1.0/me/joinedTeams"), |page| {
        if let Some(first) = page["value"].get_mut(0) {
            first["id"] = json!(FORGED);
            first["displayName"] = json!(FORGED);
        }
    });
    s.graph.edit(get("/channels").at_end(), |page| {
        for c in page["value"].as_array_mut().into_iter().flatten() {
            c["id"] = json!(FORGED);
            c["displayName"] = json!(FORGED);
        }
    });
    let w = s
        .watch("text", &["-vv", "run"], super::child::Limits::deadline(20))
        .await;
    assert_no_panic(&w.run);
    let stderr = &w.run.stderr;
    assert!(
        stderr.contains("forged"),
        "the hostile id was logged at all: {}",
        w.describe()
    );
    let forged: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("2099-01-01"))
        .collect();
    assert!(forged.is_empty(), "forged log lines: {forged:?}");
    for escape in ["\u{1b}[2J", "\u{1b}]0;"] {
        assert!(!stderr.contains(escape), "a raw {escape:?} reached the log");
    }
}
