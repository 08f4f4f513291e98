//! The limiter's decisions, on arrival times handed in (no clock).

use super::*;

fn limiter(l: Limits) -> Limiter {
    let mut lim = Limiter::default();
    lim.set(l);
    lim
}

fn on(channel: &str) -> Target<'_> {
    Target {
        route: "delta",
        team: Some("t1"),
        channel: Some(channel),
        user: "u",
    }
}

fn route(route: &str) -> Target<'_> {
    Target {
        route,
        team: None,
        channel: None,
        user: "u",
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn burst_is_one_second_worth_then_rate() {
    let mut lim = limiter(Limits {
        tenant_rps: Some(5.0),
        ..Limits::default()
    });
    let t0 = Instant::now();
    let names: Vec<String> = (0..5).map(|i| format!("c{i}")).collect();
    for c in &names {
        assert_eq!(lim.admit(t0, &on(c)).rejected, None);
    }
    let r = lim
        .admit(t0, &on("c9"))
        .rejected
        .expect("sixth is throttled");
    assert_eq!(
        (r.wait, r.scopes, r.retry_after),
        (ms(200), vec![ScopeKind::Tenant], true)
    );
    let early = lim.admit(t0 + ms(100), &on("c9"));
    assert_eq!(early.violated, vec![ScopeKind::Tenant]);
    assert!(!early.violated_unsaid);
    let on_time = lim.admit(t0 + ms(200), &on("c9"));
    assert!(on_time.violated.is_empty());
    assert_eq!(on_time.rejected, None);
}

#[test]
fn channels_have_their_own_buckets() {
    let mut lim = limiter(Limits {
        channel_rps: Some(1.0),
        ..Limits::default()
    });
    let t0 = Instant::now();
    assert_eq!(lim.admit(t0, &on("a")).rejected, None);
    assert!(lim.admit(t0, &on("a")).rejected.is_some());
    assert_eq!(lim.admit(t0, &on("b")).rejected, None);
    // A rejected request takes no token: the wait stays one second from the first.
    let r = lim.admit(t0, &on("a")).rejected.expect("still dry");
    assert_eq!(r.wait, Duration::from_secs(1));
}

#[test]
fn a_team_limit_spans_its_channels_and_not_other_teams() {
    let mut lim = limiter(Limits {
        team_rps: Some(4.0),
        ..Limits::default()
    });
    let t0 = Instant::now();
    let chans: Vec<String> = (0..4).map(|i| format!("c{i}")).collect();
    for c in &chans {
        assert_eq!(lim.admit(t0, &on(c)).rejected, None);
    }
    let r = lim
        .admit(t0, &on("c4"))
        .rejected
        .expect("fifth on the team");
    assert_eq!((r.wait, r.scopes), (ms(250), vec![ScopeKind::Team]));
    // The team's channel list counts too; another team does not.
    let list = Target {
        route: "channels",
        team: Some("t1"),
        channel: None,
        user: "u",
    };
    assert!(lim.admit(t0, &list).rejected.is_some());
    let other = Target {
        team: Some("t2"),
        ..on("d0")
    };
    assert_eq!(lim.admit(t0, &other).rejected, None);
    assert_eq!(lim.busiest()["team"], 4);
    assert_eq!(lim.busiest()["channel"], 1, "each channel admitted once");
}

#[test]
fn the_tenant_and_user_limits_count_the_routes_they_are_given() {
    let mut lim = limiter(Limits {
        tenant_rps: Some(1.0),
        tenant_routes: Routes::DeltaReplies,
        user_rps: Some(1.0),
        user_routes: Routes::All,
        ..Limits::default()
    });
    let t0 = Instant::now();
    // The directory counts for the user only; the list for neither tenant route set.
    assert_eq!(lim.admit(t0, &route("users")).rejected, None);
    let r = lim
        .admit(t0 + ms(10), &route("messages"))
        .rejected
        .expect("user dry");
    assert_eq!(r.scopes, vec![ScopeKind::User]);
    let later = t0 + Duration::from_secs(1);
    assert_eq!(lim.admit(later, &route("delta")).rejected, None);
    let r = lim.admit(later + Duration::from_secs(1), &route("replies"));
    assert_eq!(
        r.rejected, None,
        "the user bucket refilled, and so did the tenant's"
    );
    let r = lim
        .admit(later + ms(1500), &route("delta"))
        .rejected
        .expect("both dry");
    assert_eq!(r.scopes, vec![ScopeKind::Tenant, ScopeKind::User]);
    assert_eq!(lim.busiest()["tenant"], 2);
    assert_eq!(lim.busiest()["user"], 3);
}

#[test]
fn retry_after_is_left_out_of_the_share_asked_and_early_requests_still_count() {
    let mut lim = limiter(Limits {
        channel_rps: Some(1.0),
        omit_retry_after: 0.5,
        ..Limits::default()
    });
    let t0 = Instant::now();
    lim.admit(t0, &on("a"));
    let said: Vec<bool> = (0..4)
        .map(|i| {
            let r = lim.admit(t0 + ms(i), &on("a")).rejected.expect("dry");
            r.retry_after
        })
        .collect();
    assert_eq!(said, [true, false, true, false]);
    // The last 429 said nothing: a request before the refill is still counted, and
    // marked as one that no Retry-After warned about.
    let early = lim.admit(t0 + ms(500), &on("a"));
    assert_eq!(early.violated, vec![ScopeKind::Channel]);
    assert!(early.violated_unsaid);
    assert!(lim.admit(t0 + ms(1000), &on("a")).violated.is_empty());
}

#[test]
fn the_share_without_retry_after_is_spread_evenly() {
    let count = |share: f64| (1..=100).filter(|n| unsaid(*n, share)).count();
    assert_eq!(count(0.0), 0);
    assert_eq!(count(1.0), 100);
    assert_eq!(count(0.25), 25);
    assert!(!unsaid(1, 0.25) && unsaid(4, 0.25));
}

#[test]
fn a_request_already_in_flight_is_no_violation() {
    let mut lim = limiter(Limits {
        tenant_rps: Some(1.0),
        ..Limits::default()
    });
    lim.in_flight = IN_FLIGHT;
    let t0 = Instant::now();
    lim.admit(t0, &on("a"));
    assert!(lim.admit(t0, &on("b")).rejected.is_some());
    // Each 429 starts the grace again: 10 ms after the second one is still in flight.
    assert!(lim.admit(t0 + ms(10), &on("c")).violated.is_empty());
    assert_eq!(
        lim.admit(t0 + IN_FLIGHT + ms(15), &on("c")).violated,
        vec![ScopeKind::Tenant]
    );
}

#[test]
fn resetting_counts_keeps_the_buckets() {
    let mut lim = limiter(Limits {
        tenant_rps: Some(1.0),
        ..Limits::default()
    });
    let t0 = Instant::now();
    lim.admit(t0, &on("a"));
    lim.reset_counts();
    assert_eq!(lim.busiest()["tenant"], 0);
    assert!(lim.admit(t0, &on("a")).rejected.is_some(), "still dry");
}

#[test]
fn waits_are_whole_milliseconds_rounded_up() {
    assert_eq!(ceil_ms(Duration::from_micros(1)), ms(1));
    assert_eq!(ceil_ms(Duration::ZERO), Duration::ZERO);
}
