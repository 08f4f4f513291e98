//! The limits over real HTTP: 429s without `Retry-After` on the wire and their accounting,
//! the team limit, limits on the discovery routes, and starting the counters over.

use std::time::Duration;

use serde_json::Value;

use super::*;

fn spec() -> TenantSpec {
    TenantSpec {
        teams: 2,
        channels_per_team: 5,
        messages_per_channel: 2,
        max_replies: 0,
        users: 5,
        ..TenantSpec::default()
    }
}

/// Status, `Retry-After` and body of a GET.
async fn answer(http: &reqwest::Client, access: &str, url: &str) -> (u16, Option<String>) {
    let resp = http.get(url).bearer_auth(access).send().await.unwrap();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (resp.status().as_u16(), retry_after)
}

/// `/v1.0/teams/{team}/channels/{channel}/messages` of every channel, by team.
fn lists(emu: &Emulator) -> Vec<Vec<String>> {
    let mut by_team: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (team, channel) in channels_of(&emu.truth()) {
        let url = format!(
            "{}/v1.0/teams/{team}/channels/{channel}/messages",
            emu.url()
        );
        by_team.entry(team).or_default().push(url);
    }
    by_team.into_values().collect()
}

#[tokio::test]
async fn a_429_without_retry_after_still_fences_until_the_refill() {
    let (emu, http, access) = start(spec()).await;
    emu.set_limits(Limits {
        tenant_rps: Some(2.0),
        omit_retry_after: 1.0,
        ..Limits::default()
    });
    let urls: Vec<String> = lists(&emu).concat();
    assert_eq!(answer(&http, &access, &urls[0]).await, (200, None));
    assert_eq!(answer(&http, &access, &urls[1]).await, (200, None));
    assert_eq!(answer(&http, &access, &urls[2]).await, (429, None));
    // No Retry-After came, but the bucket refills only after 500 ms: sooner is a violation.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(answer(&http, &access, &urls[3]).await.0, 429);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(answer(&http, &access, &urls[4]).await.0, 200);
    let s = emu.stats();
    assert_eq!((s.limited, s.limited_without_retry_after), (2, 2));
    assert_eq!((s.violations, s.violations_without_retry_after), (1, 1));
    assert_eq!(s.limited_by_route["messages"], 2);
    assert_eq!(s.busiest_by_scope["tenant"], 3);
    assert_eq!(s.limits.omit_retry_after, 1.0);
}

#[tokio::test]
async fn a_team_limit_holds_across_its_channels_and_its_channel_list() {
    let (emu, http, access) = start(spec()).await;
    emu.set_limits(Limits {
        team_rps: Some(4.0),
        ..Limits::default()
    });
    let teams = lists(&emu);
    let (a, b) = (&teams[0], &teams[1]);
    for url in &a[..4] {
        assert_eq!(answer(&http, &access, url).await.0, 200);
    }
    let (status, retry_after) = answer(&http, &access, &a[4]).await;
    assert_eq!(status, 429);
    let wait: f64 = retry_after.expect("a Retry-After").parse().unwrap();
    assert!(wait > 0.0 && wait <= 0.25, "{wait}");
    let team_a = a[0].split("/channels/").next().unwrap();
    assert_eq!(
        answer(&http, &access, &format!("{team_a}/channels"))
            .await
            .0,
        429
    );
    assert_eq!(answer(&http, &access, &b[0]).await.0, 200, "another team");
    let s = emu.stats();
    assert_eq!(s.limited_by_scope["team"], 2);
    assert_eq!(s.limited_by_route["channels"], 1);
    assert_eq!(s.busiest_by_scope["team"], 4);
}

#[tokio::test]
async fn tenant_and_user_limits_reach_the_discovery_routes_when_asked() {
    let (emu, http, access) = start(spec()).await;
    let url = |p: &str| format!("{}/v1.0/{p}", emu.url());
    emu.set_limits(Limits {
        tenant_rps: Some(1.0),
        tenant_routes: Routes::Teams,
        ..Limits::default()
    });
    assert_eq!(answer(&http, &access, &url("me/joinedTeams")).await.0, 200);
    assert_eq!(answer(&http, &access, &url("me/joinedTeams")).await.0, 429);
    assert_eq!(
        answer(&http, &access, &url("users")).await.0,
        200,
        "not Teams"
    );
    emu.set_limits(Limits {
        user_rps: Some(1.0),
        user_routes: Routes::All,
        ..Limits::default()
    });
    assert_eq!(answer(&http, &access, &url("users")).await.0, 200);
    assert_eq!(answer(&http, &access, &url("me")).await.0, 429);
    assert_eq!(emu.stats().limited_by_scope["user"], 1);
}

#[tokio::test]
async fn the_counters_start_over_on_reset_and_the_buckets_do_not() {
    let (emu, http, access) = start(spec()).await;
    emu.set_limits(Limits {
        channel_rps: Some(1.0),
        ..Limits::default()
    });
    let url = &lists(&emu)[0][0];
    assert_eq!(answer(&http, &access, url).await.0, 200);
    let reset = http
        .post(format!("{}/_emulator/stats/reset", emu.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    let s = emu.stats();
    assert_eq!(
        (s.requests, s.message_requests),
        (0, 0),
        "the reset is not counted"
    );
    assert_eq!(s.busiest_by_scope["channel"], 0);
    assert_eq!(
        answer(&http, &access, url).await.0,
        429,
        "the bucket is still dry"
    );
    let stats: Value = http
        .get(format!("{}/_emulator/stats", emu.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["limited"], 1);
    assert_eq!(stats["limits"]["channel_rps"], 1.0);
    assert_eq!(stats["limits"]["tenant_routes"], "messages");
}

#[tokio::test]
async fn jitter_delays_each_request_on_its_way_in_before_it_is_counted() {
    let (emu, http, access) = start(spec()).await;
    let most = Duration::from_millis(200);
    emu.set_jitter(most);
    let urls: Vec<String> = lists(&emu).concat();
    let draws: Vec<Duration> = (0..8)
        .map(|n| crate::jitter_draw(spec().seed, n, most))
        .collect();
    assert!(draws.iter().all(|d| *d < most), "{draws:?}");
    let (lo, hi) = (draws.iter().min().unwrap(), draws.iter().max().unwrap());
    assert!(*hi - *lo > Duration::from_millis(60), "{draws:?}");
    let mut took = Vec::new();
    for url in &urls[..8] {
        let t = std::time::Instant::now();
        assert_eq!(answer(&http, &access, url).await.0, 200);
        took.push(t.elapsed());
    }
    for (t, d) in took.iter().zip(&draws) {
        assert!(
            *t >= *d && *t < *d + Duration::from_millis(150),
            "{took:?} {draws:?}"
        );
    }
    // Each request arrives (is stamped, counted, judged) after its delay: one sent right
    // after the answer to the one before arrives at least its own draw later.
    let arrivals = emu.arrivals();
    assert_eq!(arrivals.len(), 8);
    for (i, pair) in arrivals.windows(2).enumerate() {
        assert!(pair[1] - pair[0] >= draws[i + 1], "{arrivals:?} {draws:?}");
    }
    emu.set_jitter(Duration::ZERO);
    let t = std::time::Instant::now();
    assert_eq!(answer(&http, &access, &urls[8]).await.0, 200);
    assert!(t.elapsed() < Duration::from_millis(100));
}
