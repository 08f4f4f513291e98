//! Token responses the identity platform really sends, or a hostile one could (issue 12
//! item 19): `expires_in` of 0, as a numeric string, or unparsable. A sane minimum
//! lifetime, numeric strings accepted, and a rotated refresh token is never dropped because
//! a later field of the same response failed to parse.

use serde_json::{json, Value};

use super::server::post;
use super::{assert_no_panic, Scene};

async fn with_expires_in(v: Value, times: Option<usize>) -> Scene {
    let s = Scene::new().await;
    let route = post("/oauth2/v2.0/token");
    let route = match times {
        Some(n) => route.times(n),
        None => route,
    };
    s.graph.edit(route, move |token| {
        if token.get("access_token").is_some() {
            token["expires_in"] = v.clone();
        }
    });
    s
}

/// Graph requests and token requests of the last run.
fn requests(s: &Scene) -> (usize, usize) {
    let tokens = s.graph.count("/oauth2/v2.0/token");
    (s.graph.count("/v1.0/"), tokens)
}

#[tokio::test(flavor = "multi_thread")]
async fn expires_in_zero_does_not_refresh_before_every_request() {
    let s = with_expires_in(json!(0), None).await;
    let run = s.run(&["run"]).await;
    assert_no_panic(&run);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (graph, tokens) = requests(&s);
    assert!(graph >= 5, "{graph} Graph requests");
    assert!(
        tokens <= 2,
        "{tokens} token requests for {graph} Graph requests"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expires_in_as_a_numeric_string_is_accepted() {
    let s = with_expires_in(json!("3599"), None).await;
    let run = s.run(&["run"]).await;
    assert_no_panic(&run);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (_, tokens) = requests(&s);
    assert_eq!(tokens, 1, "the string is a lifetime of an hour");
    crate::util::assert_converged(&s.h, false);
}

/// The identity platform rotated the refresh token (the old one is spent) and something
/// else in the response was unusable: the new refresh token must still be stored, or the
/// next run presents a spent token and needs a person.
#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_refresh_token_survives_an_unparsable_expires_in() {
    let s = with_expires_in(json!({"seconds": "soon"}), Some(1)).await;
    let first = s.run(&["run"]).await;
    assert_no_panic(&first);
    let second = s.run(&["run"]).await;
    assert_eq!(
        second.code, 0,
        "first exit {}; {}",
        first.code, second.stderr
    );
    assert_eq!(s.h.emu.stats().spent_refresh_token_reuse, 0);
}
