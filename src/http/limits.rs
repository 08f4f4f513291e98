//! Rate limits enforced before sending (Graph throttling guidance): one bucket for the
//! tenant and one per channel, with `governor`.
//!
//! Graph counts channel-message requests per app per tenant and per channel; staying
//! under both before sending is far cheaper than meeting 429s.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct Limiter {
    tenant: DefaultDirectRateLimiter,
    channel: DefaultKeyedRateLimiter<String>,
}

fn quota(per_second: f64) -> Quota {
    let period = Duration::from_secs_f64(1.0 / per_second.max(0.001));
    // A burst of one second's worth keeps us inside Graph's short-window enforcement.
    let burst = NonZeroU32::new(per_second.floor().max(1.0) as u32).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl Limiter {
    pub fn new(tenant_rps: f64, channel_rps: f64) -> Self {
        Limiter {
            tenant: RateLimiter::direct(quota(tenant_rps)),
            channel: RateLimiter::keyed(quota(channel_rps)),
        }
    }

    /// Waits until both the tenant and (when given) the channel bucket allow a request.
    pub async fn acquire(&self, channel: Option<&str>) {
        if let Some(key) = channel {
            self.channel.until_key_ready(&key.to_string()).await;
        }
        self.tenant.until_ready().await;
    }
}
