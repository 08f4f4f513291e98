//! Continuation links that loop or lead away (issue 12 item 16): a channel whose
//! `@odata.nextLink` repeats fails instead of paging forever, and a link to another host
//! never becomes a stored resume point that fails every later run until `reset`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::answer::Answer;
use super::child::Limits;
use super::server::{get, post};
use super::{assert_no_panic, Scene};

/// Fails within a few requests, not after the deadline.
async fn assert_loop_fails_the_channel(s: &Scene, channel: &str) {
    let w = s.watch("json", &["run"], Limits::deadline(10)).await;
    assert_no_panic(&w.run);
    let requests = s.graph.count(&format!("{channel}/messages/delta"));
    assert!(w.killed.is_none(), "{requests} requests: {}", w.describe());
    assert_eq!(w.run.code, 3, "{}", w.describe());
    assert!(
        requests <= 5,
        "{requests} delta requests before the loop was noticed"
    );
    let cursors = s.cursors().await;
    assert!(cursors.iter().all(|(c, l)| c != channel || l.is_none()));
    assert!(!s.failure_reasons().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_self_referencing_next_link_fails_the_channel() {
    let s = Scene::new().await;
    let (_, channel) = s.public_channel();
    let base = s.graph.url();
    s.graph
        .answer_with(get(&format!("{channel}/messages/delta")), move |seen| {
            Answer::json(
                200,
                &json!({"value": [], "@odata.nextLink": format!("{base}{}", seen.uri)}),
            )
        });
    assert_loop_fails_the_channel(&s, &channel).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn next_links_that_cycle_fail_the_channel() {
    let s = Scene::new().await;
    let (_, channel) = s.public_channel();
    let base = s.graph.url();
    s.graph
        .answer_with(get(&format!("{channel}/messages/delta")), move |seen| {
            let next = match seen.uri.strip_suffix("&hop=1") {
                Some(back) => back.to_string(),
                None => format!("{}&hop=1", seen.uri),
            };
            Answer::json(
                200,
                &json!({"value": [], "@odata.nextLink": format!("{base}{next}")}),
            )
        });
    assert_loop_fails_the_channel(&s, &channel).await;
}

/// The budget runs out right after a page whose nextLink leads to another host: that link
/// must not be stored as the resume point, and the next run completes the channel.
#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_next_link_is_never_saved_as_the_resume_point() {
    let mut s = Scene::new().await;
    let (team, channel) = s.public_channel();
    // One document per POST, the first POST slow, and the team's other channels refused
    // once (so they post nothing): the budget runs out while this channel's first page is
    // delivered, just before its foreign link would be followed.
    s.h.set("ingest", "batch_size = 1");
    let others: std::collections::BTreeSet<String> =
        s.h.emu
            .truth()
            .into_iter()
            .filter(|t| t.team_id == team && t.channel_id != channel)
            .map(|t| t.channel_id)
            .collect();
    for other in others {
        let forbidden = json!({"error": {"code": "Forbidden", "message": "no"}});
        s.graph.answer(
            get(&format!("{other}/messages/delta")).once(),
            Answer::json(403, &forbidden),
        );
    }
    s.ingest.pass(
        post("/v1/documents")
            .once()
            .after(Duration::from_millis(1500)),
    );
    let foreign = s.elsewhere.url();
    let rewritten = Arc::new(AtomicBool::new(false));
    s.graph
        .edit(get(&format!("{channel}/messages/delta")), move |page| {
            let has_messages = page["value"].as_array().is_some_and(|v| !v.is_empty());
            if has_messages && !rewritten.swap(true, Ordering::SeqCst) {
                let map = page.as_object_mut().expect("a page");
                map.remove("@odata.deltaLink");
                map.insert(
                    "@odata.nextLink".into(),
                    json!(format!(
                        "{foreign}/v1.0/teams/x/channels/y/messages/delta?$skiptoken=z"
                    )),
                );
            }
        });
    let first = s
        .watch(
            "json",
            &["run", "--team", &team, "--max-duration", "1s"],
            Limits::deadline(10),
        )
        .await;
    assert_no_panic(&first.run);
    assert!([3, 75].contains(&first.run.code), "{}", first.describe());
    let status = s.status().await;
    for c in status["channels"].as_array().into_iter().flatten() {
        for key in ["delta_link", "in_progress"] {
            let link = c[key].as_str().unwrap_or_default();
            assert!(
                !link.contains("127.0.0.2"),
                "{key} of {} points at another host: {link}",
                c["channel"]
            );
        }
    }
    let second = s.run(&["run", "--team", &team]).await;
    assert_eq!(
        second.code, 0,
        "the next run completes the channel: {}",
        second.stderr
    );
    let received = s.h.received();
    let missing =
        s.h.expected(false)
            .into_iter()
            .filter(|(id, t)| t.channel_id == channel && !received.contains_key(id))
            .count();
    assert_eq!(missing, 0, "every document of the channel arrived");
    assert!(s.elsewhere.seen().is_empty());
}
