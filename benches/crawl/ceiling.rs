//! The fastest a run could have been at the binding rate: every limit in force — the
//! emulator's (from `/_emulator/stats`: the limits and the requests its busiest tenant,
//! team, channel and user instance admitted) and the connector's own configured rates —
//! takes a scope's `n` requests at `n / rate`; the binding one, plus one answer's latency,
//! is the minimum. The connector's own rates count because the target is a share
//! of min(configured rate, Graph's ceiling), and the share is of the *rate*, as in the
//! issue's own figures (1 607 requests at 20/s: "minimum 80 s"): a bucket's burst is not
//! taken off `n` (it would make a 15-second run look 6 % slower than the rate it kept).
//!
//! The requests counted are the ones the emulator answered, so a client that asks more than
//! it needs is judged against its own extra work: the table's request column shows it.

use std::time::Duration;

use serde_json::Value;

use crate::connector::Effective;

/// A minimum time and the limit that sets it (`tenant 20/s`).
pub struct Minimum {
    pub time: Duration,
    pub bound_by: String,
}

/// One scope's floor: `n` requests at `rate` per second.
fn floor(n: u64, rate: f64) -> f64 {
    n as f64 / rate
}

fn rps(rate: f64) -> String {
    if rate.fract() == 0.0 {
        format!("{rate:.0}/s")
    } else {
        format!("{rate}/s")
    }
}

fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// Message-route requests the emulator did not answer 429.
pub fn message_requests_admitted(stats: &Value) -> u64 {
    let limited: u64 = ["delta", "messages", "replies"]
        .iter()
        .map(|r| num(&stats["limited_by_route"], r))
        .sum();
    num(stats, "message_requests").saturating_sub(limited + num(stats, "throttled"))
}

/// The minimum for a run the emulator answered with `stats`, at `latency` per answer.
pub fn minimum(stats: &Value, conn: Effective, latency: Duration) -> Option<Minimum> {
    let limits = &stats["limits"];
    let busiest = &stats["busiest_by_scope"];
    let mut floors: Vec<(f64, String)> = Vec::new();
    for scope in ["tenant", "team", "channel", "user"] {
        let Some(rate) = limits[format!("{scope}_rps")].as_f64().filter(|r| *r > 0.0) else {
            continue;
        };
        let routes = limits[format!("{scope}_routes")]
            .as_str()
            .map(|r| format!(", {r}"));
        floors.push((
            floor(num(busiest, scope), rate),
            format!("{scope} {}{}", rps(rate), routes.unwrap_or_default()),
        ));
    }
    // The connector's own rates.
    if let Some(rate) = conn.requests_per_second.filter(|r| *r > 0.0) {
        let n = message_requests_admitted(stats);
        floors.push((floor(n, rate), format!("configured {}", rps(rate))));
    }
    if let Some(rate) = conn.per_channel_requests_per_second.filter(|r| *r > 0.0) {
        // Counted only while the emulator limits something (its busiest channel).
        let n = num(busiest, "channel");
        floors.push((
            floor(n, rate),
            format!("configured {} per channel", rps(rate)),
        ));
    }
    let (secs, bound_by) = floors.into_iter().max_by(|a, b| a.0.total_cmp(&b.0))?;
    Some(Minimum {
        time: Duration::from_secs_f64(secs) + latency,
        bound_by,
    })
}
