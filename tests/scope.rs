//! Scope you can see and steer (issue 14): channels excluded by id or by "Team/Channel"
//! pattern get no request at all and show as excluded; shared channels reached only
//! through `associatedTeams` are crawled, those hosted in another tenant reported and
//! skipped unless configured; coverage counts in the run summary, `status` and `doctor`.

use std::collections::BTreeSet;

use graph_emulator::{ChannelInfo, TenantSpec};
use serde_json::Value;

use crate::util::{divergence, Harness};

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 14,
        teams: 4,
        channels_per_team: 3,
        messages_per_channel: 8,
        max_replies: 2,
        users: 15,
        ..TenantSpec::default()
    }
}

/// The divergences outside `skip` (channels deliberately left out).
fn divergence_outside(h: &Harness, skip: &BTreeSet<String>) -> Vec<String> {
    divergence(h, false)
        .into_iter()
        .filter(|p| !skip.iter().any(|c| p.contains(c.as_str())))
        .collect()
}

fn public_channels(h: &Harness) -> Vec<ChannelInfo> {
    h.emu
        .channels()
        .into_iter()
        .filter(|c| !c.team_private)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn excluded_channels_get_no_request_and_status_shows_them_as_excluded() {
    let mut h = Harness::new(spec()).await;
    let channels = public_channels(&h);
    // One channel by "Team/Channel" pattern (case changed), one by id.
    let by_name = channels
        .iter()
        .find(|c| c.channel_name == "General")
        .unwrap();
    let by_id = channels
        .iter()
        .find(|c| c.team_id != by_name.team_id && c.channel_name != "General")
        .unwrap();
    let pattern = format!("{}/GEN*", by_name.team_name.to_uppercase());
    h.set(
        "crawl",
        &format!("exclude_channels = [{pattern:?}, {:?}]", by_id.channel_id),
    );
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let excluded: BTreeSet<String> = [&by_name.channel_id, &by_id.channel_id]
        .into_iter()
        .cloned()
        .collect();
    for c in &excluded {
        assert_eq!(h.emu.channel_requests(c), 0, "{c} was requested");
    }
    let held = h.received();
    let leaked = h
        .emu
        .truth()
        .into_iter()
        .filter(|t| excluded.contains(&t.channel_id))
        .filter(|t| held.contains_key(&h.doc_id(t)))
        .count();
    assert_eq!(leaked, 0);
    assert!(divergence_outside(&h, &excluded).is_empty());
    let coverage = &run.summary()["coverage"];
    let coverage: Value = serde_json::from_str(coverage.as_str().unwrap()).unwrap();
    let excluded_count: u64 = ["standard", "private", "shared"]
        .iter()
        .map(|k| coverage["channels"][k]["excluded"].as_u64().unwrap())
        .sum();
    assert_eq!(excluded_count, 2, "{coverage}");

    let status = h.run(&["status", "--json"]).await;
    let v: Value = serde_json::from_str(&status.stdout).unwrap();
    let states: Vec<(String, String)> = v["scope"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["channel"].is_string())
        .map(|e| {
            (
                e["channel"].as_str().unwrap().to_string(),
                e["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for c in &excluded {
        assert!(
            states.contains(&(c.clone(), "excluded".into())),
            "{states:?}"
        );
    }
    let text = h.run(&["status"]).await;
    assert!(
        text.stdout.contains(&format!(
            "channel {} / {} (joined): excluded by the configuration",
            by_id.team_id, by_id.channel_id
        )),
        "{}",
        text.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_channel_excluded_after_it_was_crawled_keeps_its_cursor_and_gets_no_request() {
    let mut h = Harness::new(spec()).await;
    let first = h.run(&["run"]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let c = public_channels(&h).remove(0);
    let before = h.emu.channel_requests(&c.channel_id);
    assert!(before > 0);
    h.set(
        "crawl",
        &format!("exclude_channels = [{:?}]", format!("*/{}", c.channel_name)),
    );
    let second = h.run(&["run"]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(h.emu.channel_requests(&c.channel_id), before);
    let status = h.run(&["status", "--json"]).await;
    let v: Value = serde_json::from_str(&status.stdout).unwrap();
    let entry = v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["channel"] == c.channel_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["excluded"], true, "{entry}");
    assert!(entry["delta_link"].is_string(), "the cursor is kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_channels_of_associated_teams_are_crawled_and_other_tenants_reported() {
    let mut h = Harness::new(spec()).await;
    let channels = public_channels(&h);
    let teams: Vec<String> = channels
        .iter()
        .map(|c| c.team_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let of = |team: &str| -> Vec<&ChannelInfo> {
        channels.iter().filter(|c| c.team_id == team).collect()
    };
    let (home, foreign) = (of(&teams[0]), of(&teams[1]));
    let (shared_home, shared_foreign) = (home[1], foreign[0]);
    h.emu.share_channel(&shared_home.channel_id);
    h.emu.share_channel(&shared_foreign.channel_id);
    h.emu.associate_team(&teams[0], None);
    h.emu
        .associate_team(&teams[1], Some("0b5e8f7c-1111-4222-8333-444455556666"));
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The home tenant's shared channel is crawled like any other; the host's other
    // channels are neither requested nor expected.
    assert!(h.emu.channel_requests(&shared_home.channel_id) > 0);
    for c in home
        .iter()
        .filter(|c| c.channel_id != shared_home.channel_id)
    {
        assert_eq!(h.emu.channel_requests(&c.channel_id), 0);
    }
    // The other tenant's shared channel is listed and skipped: no message request.
    let foreign_ids: BTreeSet<String> = foreign.iter().map(|c| c.channel_id.clone()).collect();
    for c in &foreign_ids {
        assert_eq!(h.emu.channel_requests(c), 0, "{c}");
    }
    assert!(divergence_outside(&h, &foreign_ids).is_empty());
    let coverage: Value =
        serde_json::from_str(run.summary()["coverage"].as_str().unwrap()).unwrap();
    assert_eq!(coverage["teams"]["associated"]["crawled"], 1, "{coverage}");
    assert_eq!(coverage["teams"]["associated"]["other_tenant"], 1);
    assert_eq!(coverage["channels"]["shared"]["crawled"], 1);
    assert_eq!(coverage["channels"]["shared"]["other_tenant"], 1);

    // Configured: the other tenant's shared channel is crawled too.
    h.set("crawl", "include_cross_tenant_channels = true");
    let again = h.run(&["run"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(h.emu.channel_requests(&shared_foreign.channel_id) > 0);
    assert!(
        divergence(&h, false).is_empty(),
        "{:?}",
        divergence(&h, false)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_lists_what_each_pattern_matched() {
    let mut h = Harness::new(spec()).await;
    let c = public_channels(&h).remove(0);
    h.set(
        "crawl",
        &format!(
            "exclude_channels = [{:?}, \"*/No Such Channel\"]",
            format!("{}/*", c.team_name.to_lowercase())
        ),
    );
    let r = h.run(&["doctor"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains(&format!("{}/*", c.team_name.to_lowercase())))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(
        line.contains(&format!("{} / {}", c.team_name, c.channel_name)),
        "{line}"
    );
    assert!(r
        .stdout
        .contains("\"*/No Such Channel\" matches no accessible channel"));
    assert!(
        r.stdout.contains("info  scope     channels:"),
        "{}",
        r.stdout
    );
    // doctor's one message request went to a channel a run would crawl.
    assert_eq!(h.emu.channel_requests(&c.channel_id), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bare_channel_name_is_a_config_error_with_a_hint() {
    let mut h = Harness::new(spec()).await;
    h.set("crawl", "exclude_channels = [\"HR\"]");
    let r = h.run(&["config", "check"]).await;
    assert_eq!(r.code, 78, "{}", r.stderr);
    let e = crate::util::final_error(&r.stderr);
    assert!(e.contains("write \"*/HR\""), "{e}");
    assert_eq!(h.emu.stats().requests, 0);
}
