//! Throttling (issue 4), emulator side: the tenant and channel token buckets answer 429 with
//! Graph's body and a decimal `Retry-After`, early retries count as violations per scope,
//! and `/_emulator/stats` hands the counters to a benchmark in another process. Raw HTTP
//! calls, so these pin the emulator's accounting independently of the connector's limiter.
//! [`command`]: the same limits, and the benchmark's other knobs, from the `emulator`
//! command's flags.

#![allow(clippy::disallowed_methods)] // a raw test client needs no product settings

mod command;

use std::time::Duration;

use graph_emulator::{max_in_window, Emulator, EmulatorOptions, Limits, TenantSpec};
use serde_json::Value;

use crate::util::local;

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 4,
        teams: 1,
        channels_per_team: 3,
        messages_per_channel: 3,
        max_replies: 1,
        users: 8,
        ..TenantSpec::default()
    }
}

struct Client {
    emu: Emulator,
    http: reqwest::Client,
    access: String,
    /// `/v1.0/teams/{team}/channels/{channel}` of every channel.
    channels: Vec<String>,
}

/// An answer: status, `Retry-After` and body.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Answer {
    fn wait(&self) -> Duration {
        let s = self.retry_after.as_deref().expect("a Retry-After");
        Duration::from_secs_f64(s.parse().expect("decimal seconds"))
    }
}

impl Client {
    async fn start(limits: Limits) -> Client {
        let emu = Emulator::start(spec(), EmulatorOptions::default(), local())
            .await
            .expect("emulator starts");
        emu.set_limits(limits);
        let http = reqwest::Client::new();
        let url = format!("{}/{}/oauth2/v2.0/token", emu.url(), emu.tenant_id());
        let form = [
            ("grant_type", "refresh_token".to_owned()),
            ("client_id", emu.client_id()),
            ("refresh_token", emu.initial_refresh_token()),
            (
                "scope",
                "offline_access https://graph.microsoft.com/.default".into(),
            ),
        ];
        let token: Value = http
            .post(url)
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut channels: Vec<String> = emu
            .truth()
            .into_iter()
            .map(|t| format!("/v1.0/teams/{}/channels/{}", t.team_id, t.channel_id))
            .collect();
        channels.dedup();
        assert!(channels.len() >= 2, "the tenant has several channels");
        Client {
            access: token["access_token"].as_str().expect("access token").into(),
            emu,
            http,
            channels,
        }
    }

    /// Lists the messages of channel `i`.
    async fn list(&self, i: usize) -> Answer {
        let url = format!("{}{}/messages?$top=1", self.emu.url(), self.channels[i]);
        self.get(&url).await
    }

    async fn get(&self, url: &str) -> Answer {
        let resp = self
            .http
            .get(url)
            .bearer_auth(&self.access)
            .send()
            .await
            .unwrap();
        Answer {
            status: resp.status().as_u16(),
            retry_after: resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
            body: resp.json().await.unwrap(),
        }
    }
}

fn tenant(rps: f64) -> Limits {
    Limits {
        tenant_rps: Some(rps),
        ..Limits::default()
    }
}

#[tokio::test]
async fn a_burst_over_the_tenant_limit_gets_429_with_retry_after() {
    let c = Client::start(tenant(2.0)).await;
    assert_eq!(c.list(0).await.status, 200);
    assert_eq!(c.list(1).await.status, 200);
    let third = c.list(2).await;
    assert_eq!(third.status, 429);
    assert_eq!(third.body["error"]["code"], "TooManyRequests");
    assert_eq!(third.body["error"]["innerError"]["status"], "429");
    let wait = third.wait();
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(500),
        "a token is back within half a second at 2/s: {wait:?}"
    );
    let raw = third.retry_after.unwrap();
    assert!(
        raw.contains('.'),
        "decimal seconds like Graph's 2.128: {raw}"
    );
    let stats = c.emu.stats();
    assert_eq!(stats.limited, 1);
    assert_eq!(stats.limited_by_scope["tenant"], 1);
    assert_eq!(stats.throttled, 0, "limiter 429s are not injections");
    assert_eq!(stats.message_requests, 3);
}

#[tokio::test]
async fn a_retry_before_retry_after_is_a_violation_one_after_is_not() {
    let c = Client::start(tenant(2.0)).await;
    for i in 0..2 {
        assert_eq!(c.list(i).await.status, 200);
    }
    assert_eq!(c.list(0).await.status, 429);
    assert_eq!(
        c.emu.stats().violations,
        0,
        "the first 429 violates nothing"
    );
    // Right after the 429 a request may already have been on the wire: no violation.
    assert_eq!(c.list(1).await.status, 429);
    assert_eq!(
        c.emu.stats().violations,
        0,
        "in flight when the 429 went out"
    );
    // Too early once the 429 was readable, and on another channel: the tenant scope
    // covers every channel.
    tokio::time::sleep(Duration::from_millis(80)).await;
    let early = c.list(1).await;
    assert_eq!(early.status, 429);
    let stats = c.emu.stats();
    assert_eq!(stats.violations, 1);
    assert_eq!(stats.violations_by_scope["tenant"], 1);
    tokio::time::sleep(early.wait()).await;
    assert_eq!(c.list(1).await.status, 200, "a token is back as advertised");
    assert_eq!(
        c.emu.stats().violations,
        1,
        "waiting as told is no violation"
    );
}

#[tokio::test]
async fn each_channel_has_its_own_bucket() {
    let c = Client::start(Limits {
        channel_rps: Some(1.0),
        ..Limits::default()
    })
    .await;
    assert_eq!(c.list(0).await.status, 200);
    let again = c.list(0).await;
    assert_eq!(again.status, 429);
    assert!(again.wait() > Duration::from_millis(500));
    assert_eq!(
        c.list(1).await.status,
        200,
        "another channel is not held back"
    );
    let delta = format!("{}{}/messages/delta", c.emu.url(), c.channels[1]);
    assert_eq!(
        c.get(&delta).await.status,
        429,
        "delta shares the channel bucket"
    );
    let stats = c.emu.stats();
    assert_eq!(stats.limited_by_scope["channel"], 2);
    assert_eq!(stats.violations, 0, "no scope was retried early");
    // Discovery routes are not message routes: never limited.
    let channels = format!(
        "{}{}",
        c.emu.url(),
        c.channels[0].rsplit_once("/channels").unwrap().0
    );
    assert_eq!(c.get(&channels).await.status, 200);
}

#[tokio::test]
async fn injected_throttling_is_counted_apart_from_the_limits() {
    let c = Client::start(Limits::default()).await;
    c.emu.throttle_next(1, 429, Some(0.2));
    assert_eq!(c.list(0).await.status, 429);
    assert_eq!(c.list(0).await.status, 200);
    let stats = c.emu.stats();
    assert_eq!(
        (stats.throttled, stats.limited, stats.violations),
        (1, 0, 0)
    );
}

#[tokio::test]
async fn the_stats_endpoint_returns_the_counters_without_a_token() {
    let c = Client::start(Limits::graph()).await;
    assert_eq!(c.list(0).await.status, 200);
    assert_eq!(c.list(0).await.status, 429);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(c.list(0).await.status, 429);
    let url = format!("{}/_emulator/stats?arrivals=1", c.emu.url());
    let resp = c.http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["message_requests"], 3);
    assert_eq!(v["limited"], 2);
    assert_eq!(v["limited_by_scope"]["channel"], 2);
    assert_eq!(v["violations"], 1);
    assert_eq!(v["violations_by_scope"]["channel"], 1);
    assert_eq!(v["by_route"]["messages"], 3);
    assert_eq!(v["arrivals_ms"].as_array().map(Vec::len), Some(3));
    assert!(v["elapsed_ms"].as_f64().unwrap() > 0.0);
    let again: Value = c
        .http
        .get(format!("{}/_emulator/stats", c.emu.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        again["requests"], v["requests"],
        "reading the stats is not counted"
    );
    assert!(again.get("arrivals_ms").is_none());
    let arrivals = c.emu.arrivals();
    assert_eq!(
        max_in_window(&arrivals, Duration::from_secs(1), Duration::ZERO),
        3
    );
}
