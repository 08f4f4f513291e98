//! The limiter on a paused clock: spacing, fences, permits and what it learns from 429s.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;

fn channel<'a>(team: &'a str, channel: &'a str) -> Scope<'a> {
    Scope::Channel { team, channel }
}

/// Departure times of `n` requests, one per channel of `team`, all asked for at once.
async fn departures(l: &Arc<Limiter>, team: &'static str, n: usize) -> Vec<Duration> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let l = l.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("c{i}");
            let _slot = l.acquire(channel(team, &name)).await;
            Instant::now() - start
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out.sort();
    out
}

#[tokio::test(start_paused = true)]
async fn tenant_slots_are_spaced_under_the_configured_rate() {
    let l = Arc::new(Limiter::new(10.0, 1.0, 100));
    let d = departures(&l, "t", 30).await;
    let span = d[29] - d[0];
    // 29 intervals at 98 % of 10/s.
    let want = Duration::from_secs_f64(29.0 / 9.8);
    assert!(
        span >= want && span < want + Duration::from_millis(5),
        "{span:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_channel_is_spaced_from_its_last_departure() {
    let l = Limiter::new(100.0, 1.0, 10);
    let start = Instant::now();
    drop(l.acquire(channel("t", "a")).await);
    drop(l.acquire(channel("t", "a")).await);
    let gap = Instant::now() - start;
    assert!(gap >= Duration::from_secs_f64(1.0 / 0.97), "{gap:?}");
}

#[tokio::test(start_paused = true)]
async fn a_channel_waiting_for_its_slot_holds_no_request_permit() {
    let l = Arc::new(Limiter::new(100.0, 1.0, 1));
    drop(l.acquire(channel("t", "a")).await);
    let waiting = {
        let l = l.clone();
        tokio::spawn(async move {
            let _slot = l.acquire(channel("t", "a")).await;
        })
    };
    tokio::time::advance(Duration::from_millis(10)).await;
    // The only permit is free while channel a waits for its second.
    let start = Instant::now();
    let _b = l.acquire(channel("t", "b")).await;
    assert!(Instant::now() - start < Duration::from_millis(50));
    drop(_b);
    waiting.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_429_fences_the_whole_tenant_for_its_retry_after() {
    let l = Limiter::new(10.0, 1.0, 10);
    drop(l.acquire(channel("t1", "a")).await);
    let wait = l.throttled(channel("t1", "a"), Some(Duration::from_secs(3)));
    assert_eq!(wait, Duration::from_secs(3));
    let start = Instant::now();
    drop(l.acquire(channel("t2", "other")).await);
    assert!(Instant::now() - start >= Duration::from_millis(2999));
}

#[tokio::test(start_paused = true)]
async fn a_429_without_retry_after_waits_at_least_a_second() {
    let l = Limiter::new(10.0, 1.0, 10);
    let wait = l.throttled(channel("t", "a"), None);
    assert!(wait >= Duration::from_secs(1), "{wait:?}");
}

/// Graph accepted `per_second` of `team` for a few seconds.
async fn accepted(l: &Limiter, teams: &[&str], per_second: u32, secs: u32) {
    traffic(l, teams, &[], per_second, secs).await;
}

/// Every `1/per_second` for `secs`: one accepted request of each of `ok`, one 429 (with a
/// short `Retry-After`) of each of `throttled`.
async fn traffic(l: &Limiter, ok: &[&str], throttled: &[&str], per_second: u32, secs: u32) {
    for _ in 0..per_second * secs {
        tokio::time::advance(Duration::from_secs_f64(1.0 / f64::from(per_second))).await;
        for t in ok {
            l.succeeded(channel(t, "x"));
        }
        for t in throttled {
            l.throttled(channel(t, "y"), Some(Duration::from_millis(10)));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn throttling_from_several_teams_cut_the_tenant_to_what_graph_accepted() {
    let l = Limiter::new(20.0, 1.0, 10);
    accepted(&l, &["t1", "t2"], 2, 6).await;
    // Half of what both teams send is refused for a few seconds.
    traffic(&l, &["t1", "t2"], &["t1", "t2"], 2, 3).await;
    // Four a second accepted in all (two per team): the tenant paces just under that.
    let rate = l.message_rate();
    assert!(rate < 4.0 && rate > 3.5, "{rate}");
    assert!(
        l.state().team_pacers.is_empty(),
        "the guess at a team was dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn a_429_of_one_team_while_another_is_busy_paces_only_that_team() {
    let l = Limiter::new(20.0, 1.0, 10);
    accepted(&l, &["t1", "t2"], 4, 6).await;
    traffic(&l, &["t1", "t2"], &["t1"], 4, 3).await;
    let state = l.state();
    assert_eq!(
        state.messages.rate,
        20.0 * TENANT_MARGIN,
        "the tenant keeps its pace"
    );
    let team = state.team_pacers.get("t1").expect("t1 paced on its own");
    assert!(team.rate < 4.0 && team.rate > 3.5, "{}", team.rate);
}

#[tokio::test(start_paused = true)]
async fn a_team_pacer_spaces_that_teams_channels() {
    let l = Arc::new(Limiter::new(20.0, 1.0, 10));
    accepted(&l, &["t1", "t2"], 4, 6).await;
    traffic(&l, &["t1", "t2"], &["t1"], 4, 3).await;
    tokio::time::advance(Duration::from_millis(10)).await;
    let d = departures(&l, "t1", 5).await;
    let gaps: Vec<Duration> = d.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(250)),
        "{gaps:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn even_a_channel_sent_faster_than_graph_allows_fences_the_tenant() {
    let l = Limiter::new(100.0, 10.0, 10);
    drop(l.acquire(channel("t", "hot")).await);
    drop(l.acquire(channel("t", "hot")).await);
    l.throttled(channel("t", "hot"), Some(Duration::from_secs(5)));
    let start = Instant::now();
    drop(l.acquire(channel("t", "other")).await);
    assert!(Instant::now() - start >= Duration::from_millis(4999));
}

#[tokio::test(start_paused = true)]
async fn a_lone_429_fences_but_cuts_no_rate() {
    let l = Limiter::new(20.0, 1.0, 10);
    accepted(&l, &["t1", "t2"], 2, 6).await;
    l.throttled(channel("t1", "a"), Some(Duration::from_millis(100)));
    assert_eq!(l.message_rate(), 20.0 * TENANT_MARGIN);
    assert!(l.state().team_pacers.is_empty());
    // Another one within seconds is no longer jitter.
    tokio::time::advance(Duration::from_secs(2)).await;
    l.throttled(channel("t2", "b"), Some(Duration::from_millis(100)));
    assert!(l.message_rate() < 5.0, "{}", l.message_rate());
}
