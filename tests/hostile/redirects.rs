//! Redirects (issue 12 items 1, 3, 6). DESIGN.md: "No redirect is followed on a request
//! that carries a credential or a body; no cross-host redirect at all." The token POST
//! carries the refresh token and client secret, the ingest POST the documents and the
//! ingest token, a Graph GET the bearer token: none of them may follow a 3xx.

use super::answer::Answer;
use super::server::{any, get, post};
use super::{assert_no_panic, error_line, Scene};

const STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

/// Issue 12 item 1: a 3xx from the identity platform is an error naming the status and
/// the `Location` host; the form reaches no other host.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_endpoint_redirect_to_another_host_is_an_error_and_sends_nothing_there() {
    for status in STATUSES {
        let mut s = Scene::new().await;
        let secret = s.h.emu.client_secret();
        s.h.env
            .insert("TEAMS_CONNECTOR_CLIENT_SECRET".into(), secret);
        let location = format!("{}{}", s.elsewhere.url(), s.token_path());
        s.graph.answer(
            post("/oauth2/v2.0/token"),
            Answer::redirect(status, &location),
        );
        let run = s.run(&["run"]).await;
        assert_no_panic(&run);
        let leaked: Vec<String> = s
            .elsewhere
            .seen()
            .iter()
            .map(|r| format!("{} {} {}", r.method, r.uri, r.body_text()))
            .collect();
        assert!(
            leaked.is_empty(),
            "{status}: the other host received {leaked:?}"
        );
        assert!(
            [69, 77].contains(&run.code),
            "{status}: exit {}: {}",
            run.code,
            run.stderr
        );
        let line = error_line(&run.stderr)
            .unwrap_or_else(|| panic!("{status}: no error line: {}", run.stderr));
        assert!(
            line.contains(&status.to_string()) && line.contains("127.0.0.2"),
            "{status}: the line names the status and the Location host: {line}"
        );
        s.assert_clean(&[("stderr", &run.stderr)]);
    }
}

/// Issue 12 item 1, same host: the token request carries credentials, so even a redirect
/// to another path of the identity platform is not followed.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_endpoint_redirect_on_the_same_host_is_not_followed() {
    for status in [302, 307] {
        let s = Scene::new().await;
        let location = format!("{}/moved/oauth2/v2.0/token", s.graph.url());
        s.graph.answer(
            post(&s.token_path()).at_end(),
            Answer::redirect(status, &location),
        );
        let run = s.run(&["run"]).await;
        assert_no_panic(&run);
        assert_eq!(
            s.graph.count("/moved/"),
            0,
            "{status}: the redirect was followed"
        );
        assert!([69, 77].contains(&run.code), "{status}: {}", run.stderr);
        let line = error_line(&run.stderr).unwrap_or_default();
        assert!(line.contains(&status.to_string()), "{status}: {line}");
    }
}

/// Channels with something to forward: their cursor may move only after a delivery.
fn channels_with_documents(s: &Scene) -> Vec<String> {
    let mut ids: Vec<String> =
        s.h.expected(false)
            .values()
            .map(|t| t.channel_id.clone())
            .collect();
    ids.dedup();
    ids
}

/// No cursor of a channel with documents moved: nothing was delivered.
async fn assert_no_cursor_moved(s: &Scene, what: &str) {
    let with_docs = channels_with_documents(s);
    for (channel, link) in s.cursors().await {
        assert!(
            link.is_none() || !with_docs.contains(&channel),
            "{what}: channel {channel} has a stored cursor though no batch was delivered"
        );
    }
}

/// Issue 12 item 3: a same-host 301/302 turns the POST into a body-less GET; a 2xx to that
/// GET must not count as delivery.
#[tokio::test(flavor = "multi_thread")]
async fn an_ingest_redirect_on_the_same_host_is_a_delivery_failure() {
    for status in [301, 302, 303] {
        let s = Scene::new().await;
        let location = format!("{}/v1/accepted", s.ingest.url());
        s.ingest
            .answer(post("/v1/documents"), Answer::redirect(status, &location));
        s.ingest.answer(any("/v1/accepted"), Answer::status(200));
        let run = s.run(&["run"]).await;
        assert_no_panic(&run);
        assert_eq!(
            s.ingest.count("/v1/accepted"),
            0,
            "{status}: the redirect was followed"
        );
        assert!(
            [3, 69].contains(&run.code),
            "{status}: exit {}: {}",
            run.code,
            run.stderr
        );
        assert!(s.h.sink.documents().is_empty());
        assert_no_cursor_moved(&s, &status.to_string()).await;
        let reasons = s.failure_reasons().await;
        assert!(
            reasons
                .iter()
                .any(|r| r.contains(&status.to_string()) && r.contains(&s.ingest.host())),
            "{status}: a stored reason names the status and the Location: {reasons:?}"
        );
    }
}

/// Issue 12 item 3: a 307/308 to another host would re-POST the batch (text and mails)
/// there.
#[tokio::test(flavor = "multi_thread")]
async fn an_ingest_redirect_to_another_host_sends_nothing_there() {
    for status in [307, 308] {
        let s = Scene::new().await;
        let location = format!("{}/v1/documents", s.elsewhere.url());
        s.ingest
            .answer(post("/v1/documents"), Answer::redirect(status, &location));
        s.elsewhere
            .answer(any("/v1/documents"), Answer::status(200));
        let run = s.run(&["run"]).await;
        assert_no_panic(&run);
        let leaked = s.elsewhere.seen();
        assert!(
            leaked.is_empty(),
            "{status}: {} requests reached the other host, the first with {} bytes",
            leaked.len(),
            leaked[0].body.len()
        );
        assert!(
            [3, 69].contains(&run.code),
            "{status}: exit {}: {}",
            run.code,
            run.stderr
        );
        assert_no_cursor_moved(&s, &status.to_string()).await;
        let reasons = s.failure_reasons().await;
        assert!(
            reasons
                .iter()
                .any(|r| r.contains(&status.to_string()) && r.contains("127.0.0.2")),
            "{status}: a stored reason names the status and the Location host: {reasons:?}"
        );
    }
}

/// Issue 12 item 6: a Graph 302 to another host is not followed (the continuation-link
/// pinning would be bypassed, the foreign messages forwarded), and no `Referer` leaks the
/// delta URL.
#[tokio::test(flavor = "multi_thread")]
async fn a_graph_redirect_to_another_host_fails_the_channel_and_sends_nothing_there() {
    let s = Scene::new().await;
    let (_, channel) = s.public_channel();
    let location = format!("{}/v1.0/stolen/messages/delta", s.elsewhere.url());
    s.graph.answer(
        get(&format!("{channel}/messages/delta")),
        Answer::redirect(302, &location),
    );
    let run = s.run(&["run"]).await;
    assert_no_panic(&run);
    let leaked: Vec<String> = s
        .elsewhere
        .seen()
        .iter()
        .map(|r| format!("{} {} referer={:?}", r.method, r.uri, r.header("referer")))
        .collect();
    assert!(leaked.is_empty(), "the other host received {leaked:?}");
    assert_eq!(run.code, 3, "{}", run.stderr);
    let cursors = s.cursors().await;
    assert!(
        cursors
            .iter()
            .all(|(c, link)| c != &channel || link.is_none()),
        "the redirected channel has no cursor"
    );
    let reasons = s.failure_reasons().await;
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("302") && r.contains("127.0.0.2")),
        "a stored reason names the status and the Location host: {reasons:?}"
    );
}

/// Issue 12 item 6, same host: a Graph GET carries the bearer token, so it follows no
/// redirect at all, and nothing sends a `Referer`.
#[tokio::test(flavor = "multi_thread")]
async fn a_graph_redirect_on_the_same_host_is_not_followed_and_no_referer_is_sent() {
    let s = Scene::new().await;
    let (_, channel) = s.public_channel();
    let location = format!("{}/v1.0/moved/messages/delta", s.graph.url());
    s.graph.answer(
        get(&format!("{channel}/messages/delta")),
        Answer::redirect(302, &location),
    );
    let run = s.run(&["run"]).await;
    assert_no_panic(&run);
    assert_eq!(
        s.graph.count("/v1.0/moved/"),
        0,
        "the redirect was followed"
    );
    let referers: Vec<String> = s
        .graph
        .seen()
        .iter()
        .chain(s.ingest.seen().iter())
        .filter_map(|r| r.header("referer"))
        .collect();
    assert!(referers.is_empty(), "Referer sent: {referers:?}");
    assert_eq!(run.code, 3, "{}", run.stderr);
}
