//! The ingest sink.

use serde_json::{json, Value};

use super::*;

#[tokio::test]
async fn sink_validates_records_and_fails_on_request() {
    let sink = Sink::start(Some("secret".into()), local()).await.unwrap();
    let http = reqwest::Client::new();
    let good = json!({"documents": [
        {"id": "a", "op": "upsert", "author": "x@y.com", "mentions": [], "created_at": "2020-04-16T05:07:52.772Z", "content": "hi"},
        {"id": "b", "op": "delete"}
    ]});
    let post = |body: Value, token: &'static str| {
        http.post(sink.url())
            .bearer_auth(token)
            .header("Idempotency-Key", "k1")
            .json(&body)
            .send()
    };
    assert_eq!(post(good.clone(), "wrong").await.unwrap().status(), 401);
    let resp = post(good.clone(), "secret").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"accepted": 2}));
    let bad = json!({"documents": [{"id": "c", "op": "upsert", "author": "x@y.com", "created_at": "2020-04-16T05:07:52Z", "content": "hi"}]});
    let resp = post(bad, "secret").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.json::<Value>().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("documents[0].mentions"));
    sink.fail_next(2, 503);
    assert_eq!(post(good.clone(), "secret").await.unwrap().status(), 503);
    assert_eq!(post(good.clone(), "secret").await.unwrap().status(), 503);
    sink.fail_always(Some(500));
    assert_eq!(post(good.clone(), "secret").await.unwrap().status(), 500);
    sink.fail_always(None);
    assert_eq!(post(good.clone(), "secret").await.unwrap().status(), 200);
    let plain = http
        .post(sink.url())
        .bearer_auth("secret")
        .body(good.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 415);
    let statuses: Vec<u16> = sink.batches().iter().map(|b| b.status).collect();
    assert_eq!(statuses, vec![401, 200, 400, 503, 503, 500, 200, 415]);
    assert_eq!(sink.batches()[1].idempotency_key.as_deref(), Some("k1"));
    assert_eq!(sink.documents().len(), 4);
    assert_eq!(sink.requests(), 8);
    sink.shutdown();
}

#[tokio::test]
async fn a_slow_sink_answers_each_post_late_and_side_by_side() {
    let sink = Sink::start(None, local()).await.unwrap();
    let delay = std::time::Duration::from_millis(250);
    sink.set_delay(delay);
    sink.keep_documents(false);
    let http = reqwest::Client::new();
    let body = json!({"documents": [{"id": "b", "op": "delete"}]});
    let post = || http.post(sink.url()).json(&body).send();
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(post(), post());
    let took = started.elapsed();
    let statuses = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
    assert_eq!(statuses, [200, 200]);
    assert!(took >= delay, "answered after {took:?}");
    assert!(
        took < 2 * delay,
        "two POSTs waited one after the other: {took:?}"
    );
    assert_eq!(sink.batches().len(), 2);
    assert!(sink.documents().is_empty(), "documents are not kept");
    sink.shutdown();
}
