//! Bad answers from Graph and bad state (issue 5): each is a clear error or a counted
//! skip, never a panic, never a lost cursor.

use graph_emulator::{Fault, TenantSpec};

use crate::util::{Harness, Run};

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 21,
        teams: 2,
        channels_per_team: 2,
        messages_per_channel: 8,
        max_replies: 2,
        users: 12,
        ..TenantSpec::default()
    }
}

/// A channel of a public team: one the default config crawls.
fn public_channel(h: &Harness) -> String {
    h.public_channel().1
}

fn assert_no_panic(run: &Run) {
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert_ne!(run.code, 101, "{}", run.stderr);
}

/// One channel gets `fault` on its first delta request: that channel fails with a line
/// containing `says`, the rest is delivered, and the next run completes the failed one.
async fn one_channel_fault(fault: Fault, says: &str) {
    let h = Harness::new(spec()).await;
    let channel = public_channel(&h);
    h.emu.inject("delta", &channel, fault, 1);
    let run = h.run(&["run"]).await;
    assert_no_panic(&run);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(run.counter("channels_failed"), 1);
    assert!(
        run.stderr.contains(says),
        "stderr lacks {says:?}: {}",
        run.stderr
    );
    let next = h.run(&["run"]).await;
    assert_eq!(next.code, 0, "{}", next.stderr);
    let expected = h.expected(false);
    let received = h.received();
    assert!(
        expected.keys().all(|id| received.contains_key(id)),
        "the failed channel was delivered by the next run"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_html_error_page_fails_only_that_channel() {
    one_channel_fault(Fault::HtmlErrorPage, "not the expected JSON").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_json_fails_only_that_channel() {
    one_channel_fault(Fault::TruncatedJson, "not the expected JSON").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_without_value_fails_only_that_channel() {
    one_channel_fault(Fault::MissingValue, "missing field `value`").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_to_another_host_is_refused() {
    one_channel_fault(
        Fault::ForeignLink,
        "refusing to follow a link to another host",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_channel_graph_refuses_is_counted_and_the_rest_goes_on() {
    one_channel_fault(Fault::Forbidden, "Graph answered 403").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_team_whose_channels_are_gone_is_counted_and_the_rest_goes_on() {
    let h = Harness::new(spec()).await;
    let (team, _) = h.public_channel();
    h.emu.inject("channels", &team, Fault::NotFound, 1);
    let run = h.run(&["run"]).await;
    assert_no_panic(&run);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("ItemNotFound"),
        "the Graph error code is logged: {}",
        run.stderr
    );
    assert!(run.counter("forwarded") > 0 || h.expected(false).values().all(|t| t.team_id == team));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_that_reaches_no_team_warns() {
    let h = Harness::new(spec()).await;
    let run = h.run(&["run", "--team", "No Such Team"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("No Such Team"),
        "the unknown name is reported: {}",
        run.stderr
    );
    assert!(run.stderr.contains("reach no team"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_store_is_a_clear_error_not_a_panic() {
    let h = Harness::new(spec()).await;
    assert_eq!(h.run(&["run"]).await.code, 0);
    for (path, bytes) in crate::util::files_under(&h.state_dir().join("db")) {
        let garbage: Vec<u8> = bytes.iter().map(|b| b ^ 0x5a).collect();
        std::fs::write(path, garbage).unwrap();
    }
    let run = h.run(&["run"]).await;
    assert_no_panic(&run);
    assert_eq!(run.code, 74, "{}", run.stderr);
    assert!(run.stderr.contains("state store"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_users_list_graph_refuses_stops_the_run_before_any_cursor_moves() {
    let h = Harness::new(spec()).await;
    h.emu.inject("users", "", Fault::Forbidden, 1);
    let run = h.run(&["run"]).await;
    assert_no_panic(&run);
    assert_eq!(run.code, 77, "{}", run.stderr);
    assert!(run.stderr.contains("User.ReadBasic.All"), "{}", run.stderr);
    assert!(
        h.sink.documents().is_empty(),
        "nothing is sent without the users map"
    );
    let status = h.run(&["status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["channels"].as_array().map(Vec::len), Some(0));
}

/// The joined teams Graph refuses end the run at once with their own error: the associated
/// teams, asked at the same time and failing for now (504), are not retried through their
/// whole retry policy first.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_teams_list_ends_the_run_without_waiting_for_the_other() {
    let mut h = Harness::new(spec()).await;
    h.set("limits", "max_retries = 5");
    h.emu.inject("joinedTeams", "", Fault::Forbidden, 1);
    h.emu
        .inject("associatedTeams", "", Fault::GatewayTimeout, 100);
    let run = h.run(&["run"]).await;
    assert_no_panic(&run);
    assert_eq!(run.code, 77, "{}", run.stderr);
    assert!(run.stderr.contains("Team.ReadBasic.All"), "{}", run.stderr);
    let stats = h.emu.stats();
    let asked = stats.by_route.get("associatedTeams").copied().unwrap_or(0);
    // Sent with the joined list, and at most once more if its 504 came back first.
    assert!(asked <= 2, "the associated teams asked {asked} times");
}
