//! Response bodies are read with a cap (issue 12 item 7; DESIGN.md: "Every response body
//! is read with a cap; memory is bounded by configuration, not by the tenant"). Each test
//! watches the child's peak memory and kills it past [`Limits::rss_mib`], so today's
//! unbounded reads fail fast instead of eating the CI box; the bodies are generated as they
//! are read and cost the test process nothing.

use std::time::Duration;

use super::answer::{page_opening, Answer, Payload};
use super::child::{Limits, Watched};
use super::server::{get, post, Route};
use super::{assert_no_panic, error_line, Scene};

/// A run with a 64 MB cap holds at most a few copies of it; past this its memory follows
/// the body.
const BOUNDED_MIB: u64 = 256;
/// With `max_response_size = "1MB"`, or an error body read to a few KB: a plain run of
/// the test tenant peaks at about 40 MiB.
const SMALL_CAP_MIB: u64 = 96;

const GIB: u64 = 1 << 30;

fn assert_bounded(w: &Watched, mib: u64) {
    assert_no_panic(&w.run);
    assert!(w.killed.is_none(), "{}", w.describe());
    assert!(
        w.peak_mib < mib,
        "peak {} MiB, bound {mib} MiB: {}",
        w.peak_mib,
        w.describe()
    );
}

/// One public channel's delta answers `answer`: (scene, channel id).
async fn channel_answers(answer: Answer, cap: Option<&str>) -> (Scene, String) {
    let mut s = Scene::new().await;
    if let Some(cap) = cap {
        s.h.set("limits", &format!("max_response_size = {cap:?}"));
    }
    let (_, channel) = s.public_channel();
    s.graph.answer(route_of(&channel), answer);
    (s, channel)
}

fn route_of(channel: &str) -> Route {
    get(&format!("{channel}/messages/delta"))
}

/// The channel failed with a stored reason naming the URL path and the cap, and kept no
/// cursor.
async fn assert_channel_failed_at_cap(s: &Scene, channel: &str, w: &Watched) {
    assert_eq!(w.run.code, 3, "{}", w.describe());
    let reasons = s.failure_reasons().await;
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("/messages/delta") && r.contains("max_response_size")),
        "a reason names the path and the cap: {reasons:?}"
    );
    let cursors = s.cursors().await;
    assert!(cursors.iter().all(|(c, l)| c != channel || l.is_none()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gzip_bomb_from_graph_fails_that_channel_at_the_configured_cap() {
    let bomb = Answer::json_body(
        200,
        Payload::GzipBomb {
            prefix: page_opening(),
        },
    );
    let (s, channel) = channel_answers(bomb, Some("1MB")).await;
    let w = s.watch("json", &["run"], Limits::default()).await;
    assert_bounded(&w, SMALL_CAP_MIB);
    assert_channel_failed_at_cap(&s, &channel, &w).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_cap_bounds_a_gzip_bomb() {
    let bomb = Answer::json_body(
        200,
        Payload::GzipBomb {
            prefix: page_opening(),
        },
    );
    let (s, channel) = channel_answers(bomb, None).await;
    let w = s.watch("json", &["run"], Limits::default()).await;
    assert_bounded(&w, BOUNDED_MIB);
    assert_channel_failed_at_cap(&s, &channel, &w).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_1_gib_graph_page_fails_that_channel_at_the_cap() {
    let huge = Answer::json_body(
        200,
        Payload::Huge {
            prefix: page_opening(),
            len: GIB,
        },
    );
    let (s, channel) = channel_answers(huge, None).await;
    let w = s.watch("json", &["run"], Limits::default()).await;
    assert_bounded(&w, BOUNDED_MIB);
    assert_channel_failed_at_cap(&s, &channel, &w).await;
}

/// An endless users list: the run cannot go on without it (69), and says why.
#[tokio::test(flavor = "multi_thread")]
async fn an_endless_users_list_stops_the_run_at_the_cap() {
    let s = Scene::new().await;
    let endless = Answer::json_body(
        200,
        Payload::Endless {
            prefix: page_opening(),
        },
    );
    s.graph.answer(get("/v1.0/users"), endless);
    let w = s.watch("json", &["run"], Limits::default()).await;
    assert_bounded(&w, BOUNDED_MIB);
    assert_eq!(w.run.code, 69, "{}", w.describe());
    let line = error_line(&w.run.stderr).unwrap_or_default();
    assert!(
        line.contains("/v1.0/users") && line.contains("max_response_size"),
        "the line names the path and the cap: {line}"
    );
    assert!(s.h.sink.documents().is_empty());
}

/// Error bodies are read to a few KB: a 500 MB ingest 400 costs nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_ingest_error_body_is_read_only_a_few_kb() {
    let s = Scene::new().await;
    let huge = Payload::Huge {
        prefix: "{\"detail\":\"".into(),
        len: 500 << 20,
    };
    s.ingest
        .answer(post("/v1/documents"), Answer::json_body(400, huge));
    let w = s.watch("json", &["run"], Limits::default()).await;
    assert_bounded(&w, SMALL_CAP_MIB);
    assert_eq!(w.run.code, 3, "{}", w.describe());
    let reasons = s.failure_reasons().await;
    assert!(reasons.iter().any(|r| r.contains("400")), "{reasons:?}");
    assert!(
        reasons.iter().all(|r| r.len() < 1024),
        "a reason is a line, not a body: {:?}",
        reasons.iter().map(String::len).collect::<Vec<_>>()
    );
}

/// Error bodies are read to a few KB: an endless token-endpoint error costs nothing.
#[tokio::test(flavor = "multi_thread")]
async fn an_endless_token_error_body_is_read_only_a_few_kb() {
    let s = Scene::new().await;
    let endless = Payload::Endless {
        prefix: "{\"error\":\"invalid_grant\",\"error_description\":\"".into(),
    };
    s.graph
        .answer(post("/oauth2/v2.0/token"), Answer::json_body(400, endless));
    let w = s.watch("json", &["run"], Limits::default()).await;
    assert_bounded(&w, SMALL_CAP_MIB);
    assert!([69, 77].contains(&w.run.code), "{}", w.describe());
    assert!(error_line(&w.run.stderr).is_some(), "{}", w.describe());
}

/// A body that stops mid-way is bounded by `[limits] request_timeout`.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_graph_body_times_out_and_fails_only_that_channel() {
    let mut s = Scene::new().await;
    s.h.set("limits", "request_timeout = \"1s\"")
        .set("limits", "max_retries = 1");
    let (_, channel) = s.public_channel();
    let stall = Answer::json_body(
        200,
        Payload::Stall {
            prefix: page_opening(),
        },
    );
    s.graph.answer(route_of(&channel), stall);
    let w = s.watch("json", &["run"], Limits::deadline(20)).await;
    assert_bounded(&w, SMALL_CAP_MIB);
    assert_eq!(w.run.code, 3, "{}", w.describe());
    assert!(w.elapsed < Duration::from_secs(10), "{}", w.describe());
    let reasons = s.failure_reasons().await;
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("timed out") || r.contains("timeout")),
        "{reasons:?}"
    );
}

/// The bomb really is one: a few KB on the wire expand a thousandfold, so a test that
/// survives it proves a cap, not a small body.
#[test]
fn the_gzip_bomb_expands_a_thousandfold() {
    use super::answer::{bomb_unit, deflate_unit};
    let mut wire = deflate_unit(&page_opening());
    let unit = bomb_unit();
    for _ in 0..8 {
        wire.extend_from_slice(&unit);
    }
    let mut d = flate2::Decompress::new(false);
    let mut out = vec![0u8; 1 << 20];
    let (mut expanded, mut at) = (0u64, 0usize);
    while at < wire.len() {
        let before = (d.total_in(), d.total_out());
        d.decompress(&wire[at..], &mut out, flate2::FlushDecompress::None)
            .expect("valid deflate");
        let (read, wrote) = (d.total_in() - before.0, d.total_out() - before.1);
        assert!(read + wrote > 0, "the stream is stuck at byte {at}");
        at += read as usize;
        expanded += wrote;
    }
    assert_eq!(expanded, 8 * (1 << 20) + page_opening().len() as u64);
    assert!(wire.len() < 16 * 1024, "{} bytes on the wire", wire.len());
}
