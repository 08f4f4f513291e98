//! The Graph emulator and the ingest sink: in-process HTTP servers on 127.0.0.1 that stand in
//! for Microsoft Graph, the identity platform and the expertise-ingest endpoint. Used by the
//! integration tests, by `teams-connector demo` and by `teams-connector emulator --port P`.
//!
//! Map of the module:
//! - [`tenant`]/[`directory`]/[`content`]/[`body`]/[`parts`]: the deterministic tenant (users, teams,
//!   channels, messages); [`expect`]: its ground truth; [`skew`]: shapes a uniform spec
//!   cannot give; [`mutate`]/[`changes`]: changes between crawls; [`reach`]: shared channels,
//!   associated teams (`/me/teamwork/associatedTeams`), mail changes, messages posted as a
//!   chosen person.
//! - [`control`]: what tests steer (changes during a crawl, faults on a chosen request,
//!   expiry answers, [`quirks`] of Graph).
//! - [`identity`]: the token endpoint and the issued-token store; [`device`]: the device-code
//!   flow (`/devicecode` and its polling grant).
//! - [`graph`]/[`delta`]/[`messages`]/[`render`]/[`links`]: Graph routes, JSON shapes, opaque tokens.
//! - [`server`]: serving, shutdown, the route table, request counting and `/_emulator/stats`;
//!   [`limits`]: Graph's rate limits (tenant, team, channel, user) and the Retry-After
//!   accounting;
//!   [`sink`]: the ingest sink; [`foreground`]: the CLI's `emulator` command.
//!
//! All state sits behind one `std::sync::Mutex`: handlers hold it only while computing a
//! response (never across an await), and the tenant is small, so contention does not matter.

mod body;
mod changes;
mod content;
mod control;
mod delta;
mod device;
mod directory;
mod expect;
mod faults;
mod foreground;
mod graph;
mod identity;
mod limits;
mod links;
mod messages;
mod mutate;
mod parts;
mod prng;
mod quirks;
mod reach;
mod render;
mod server;
mod sink;
mod skew;
mod tenant;
#[cfg(test)]
#[allow(clippy::disallowed_methods)] // test clients need no product settings
mod tests;
mod truth;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use device::{DeviceLogin, DeviceOutcome};
pub use faults::Fault;
pub use foreground::{run_foreground, Foreground};
pub use identity::TokenFailure;
pub use limits::{max_in_window, Limits, Routes};
pub use links::Expiry;
pub use quirks::Quirks;
pub use reach::{ChannelInfo, Person};
pub use sink::{ReceivedBatch, Sink, SinkFault};
pub use skew::Skew;
pub use truth::{
    Change, ChannelKey, DirectoryUser, Expected, MessageKey, Mutation, MutationReport, NewChannel,
    SkipKind, TruthMessage,
};

/// Shape of the generated tenant. Equal specs give equal tenants (ids, texts, times relative
/// to the start).
#[derive(Debug, Clone)]
pub struct TenantSpec {
    pub seed: u64,
    /// Teams the technical user is a member of (every third one, from the second, is private).
    pub teams: usize,
    /// Channels per team; the first is "General". With more than one channel overall at least
    /// one is private.
    pub channels_per_team: usize,
    /// Root messages per channel.
    pub messages_per_channel: usize,
    /// Replies per root vary over `0..=max_replies`.
    pub max_replies: usize,
    /// People in the directory (every fifth a guest with `mail: null`), plus the technical user
    /// and one or two room accounts.
    pub users: usize,
    /// Root creation times spread over this many days before the start.
    pub history_days: u32,
}

impl Default for TenantSpec {
    fn default() -> Self {
        TenantSpec {
            seed: 1,
            teams: 3,
            channels_per_team: 2,
            messages_per_channel: 20,
            max_replies: 3,
            users: 20,
            history_days: 20,
        }
    }
}

/// The way-in delay of the `n`-th request under [`Emulator::set_jitter`]`(most)`: uniform
/// in `[0, most)`, the same for the same tenant seed.
pub fn jitter_draw(seed: u64, n: u64, most: Duration) -> Duration {
    let mut rng = prng::Rng::new(seed ^ n.wrapping_mul(0xA076_1D64_78BD_642F)).fork("jitter");
    let micros = most.as_micros().min(u64::MAX as u128) as u64;
    Duration::from_micros(rng.below(micros))
}

/// Behaviour switches of the emulated services.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    pub access_token_lifetime: Duration,
    /// A spent refresh token is rejected (`invalid_grant`) and counted.
    pub strict_rotation: bool,
    /// Adding, editing or deleting a reply makes its root show up again in delta.
    pub reply_bumps_root: bool,
    /// A confidential client: every grant must carry the app's `client_secret`
    /// ([`Emulator::client_secret`]), as when "Allow public client flows" is off.
    pub client_secret_required: bool,
    /// Added to every Graph request (not the identity endpoints), so a run spans time.
    pub latency: Duration,
    /// How the generated tenant departs from its spec's uniform shape.
    pub skew: Skew,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            access_token_lifetime: Duration::from_secs(3600),
            strict_rotation: true,
            reply_bumps_root: true,
            client_secret_required: false,
            latency: Duration::ZERO,
            skew: Skew::default(),
        }
    }
}

/// Request counters.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EmulatorStats {
    /// All HTTP requests.
    pub requests: u64,
    /// Per route: "token", "devicecode", "users", "joinedTeams", "associatedTeams", "teams", "team", "channels",
    /// "delta", "messages", "replies", "me".
    pub by_route: BTreeMap<String, u64>,
    /// Successful grants of any kind.
    pub token_grants: u64,
    /// Successful grants by `grant_type` ("refresh_token", "password", "client_credentials",
    /// "device_code").
    pub grants_by_type: BTreeMap<String, u64>,
    pub spent_refresh_token_reuse: u64,
    /// Token requests answered with an injected failure (see [`Emulator::fail_token_requests`]).
    pub token_failures: u64,
    /// Device-code polls, and those that came sooner than the interval asked for.
    pub device_polls: u64,
    pub device_polls_too_fast: u64,
    /// 401s answered.
    pub unauthorized: u64,
    /// Graph requests answered with an injected 429/5xx (see [`Emulator::throttle_next`]).
    pub throttled: u64,
    /// Requests of the message routes (delta, messages, replies), whatever the answer.
    pub message_requests: u64,
    /// Graph requests answered 429 by the limits of [`Emulator::set_limits`].
    pub limited: u64,
    /// The same 429s by the scope that ran dry ("tenant", "team", "channel", "user"; a
    /// request can count under more than one) and by route.
    pub limited_by_scope: BTreeMap<String, u64>,
    pub limited_by_route: BTreeMap<String, u64>,
    /// Those of the 429s sent without `Retry-After` (see [`Limits::omit_retry_after`]).
    pub limited_without_retry_after: u64,
    /// Requests that arrived before the wait decided for their scope had ended (each
    /// counted once however many scopes it violated): the advertised `Retry-After`, or the
    /// bucket's refill after a 429 that carried none.
    pub violations: u64,
    pub violations_by_scope: BTreeMap<String, u64>,
    /// Those of the violations that no `Retry-After` had warned about.
    pub violations_without_retry_after: u64,
    /// Requests admitted by the busiest instance of each scope ("tenant", "team",
    /// "channel", "user"), limited or not: divided by the scope's rate, a benchmark's
    /// minimum time. Counted while any limit is set.
    pub busiest_by_scope: BTreeMap<String, u64>,
    /// The limits in force.
    pub limits: Limits,
    /// Delta rounds that opened with an empty page and a nextLink: requests no client can
    /// save, for a benchmark's minimum.
    pub delta_empty_openers: u64,
}

impl EmulatorStats {
    fn record(&mut self, route: &str, v: &limits::Verdict) {
        let bump =
            |m: &mut BTreeMap<String, u64>, k: &str| *m.entry(k.to_owned()).or_default() += 1;
        if !v.violated.is_empty() {
            self.violations += 1;
            self.violations_without_retry_after += u64::from(v.violated_unsaid);
        }
        for kind in &v.violated {
            bump(&mut self.violations_by_scope, kind.name());
        }
        if let Some(r) = &v.rejected {
            self.limited += 1;
            self.limited_without_retry_after += u64::from(!r.retry_after);
            bump(&mut self.limited_by_route, route);
            for kind in &r.scopes {
                bump(&mut self.limited_by_scope, kind.name());
            }
        }
    }
}

/// Everything that changes while serving.
#[derive(Debug)]
pub(crate) struct World {
    pub tenant: tenant::Tenant,
    pub auth: identity::TokenStore,
    pub stats: EmulatorStats,
    pub throttle: Option<graph::Throttle>,
    /// Injected bad answers (see [`Emulator::inject`]).
    pub faults: Vec<faults::Pending>,
    /// Injected token-endpoint failures still to answer.
    pub token_failures: Option<(usize, TokenFailure)>,
    /// How the next device-code sign-ins go.
    pub device_login: DeviceLogin,
    /// Authenticated Graph requests left before every access token issued so far is revoked.
    pub revoke_after: Option<u64>,
    /// Set by [`Emulator::grant_only_scopes`]: the token response's `scope`, whatever was asked.
    pub granted_scopes: Option<String>,
    pub limiter: limits::Limiter,
    /// Arrival of every message-route request, as an offset from the start.
    pub arrivals: Vec<Duration>,
    /// The route of every Graph request, in arrival order.
    pub routes: Vec<&'static str>,
    /// Shared channels, associated teams, former mails (see [`reach`]).
    pub reach: reach::Reach,
    /// Quirks, scheduled changes (see [`control`]).
    pub control: control::Control,
}

impl World {
    /// Consumes one injected failure, if any is pending.
    fn take_throttle(&mut self) -> Option<graph::Throttle> {
        let t = self.throttle.as_mut().filter(|t| t.remaining > 0)?;
        t.remaining -= 1;
        let out = t.clone();
        self.stats.throttled += 1;
        Some(out)
    }
}

/// State shared by the handlers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub world: Mutex<World>,
    /// `http://127.0.0.1:PORT`, the host of every link handed out.
    pub base: String,
    pub opts: EmulatorOptions,
    pub links: links::Tokens,
    /// How many replies `$expand=replies` puts inline before `replies@odata.nextLink` (Graph: 1000).
    inline_replies: AtomicUsize,
    /// Added to every Graph and token request, in microseconds (tests of slow tenants).
    latency_us: std::sync::atomic::AtomicU64,
    /// Most of the random delay a Graph request takes on its way in, in microseconds.
    jitter_us: std::sync::atomic::AtomicU64,
    /// Requests delayed so far: the draw of the n-th is [`jitter_draw`]`(seed, n, most)`.
    jitter_seq: std::sync::atomic::AtomicU64,
    /// The tenant's seed, for the jitter draws.
    seed: u64,
    /// Page size of `GET /teams` when the request gives no `$top`.
    teams_page: AtomicUsize,
    /// When the server started: arrivals are recorded as offsets from it.
    pub started: std::time::Instant,
    /// See [`EmulatorStats::delta_empty_openers`] (counted where only `&Shared` is at hand).
    pub delta_empty_openers: std::sync::atomic::AtomicU64,
}

impl Shared {
    pub(crate) fn stats(&self) -> EmulatorStats {
        let w = self.lock();
        let mut s = w.stats.clone();
        s.busiest_by_scope = w.limiter.busiest();
        s.limits = w.limiter.limits().clone();
        s.delta_empty_openers = self.delta_empty_openers.load(Ordering::Relaxed);
        s
    }

    /// Starts every counter over (stats, arrivals, the limiter's admitted counts); the
    /// buckets and the waits already decided stay, so a next run is judged by them.
    pub(crate) fn reset_stats(&self) {
        let mut w = self.lock();
        w.stats = EmulatorStats::default();
        w.arrivals.clear();
        w.routes.clear();
        w.limiter.reset_counts();
        self.delta_empty_openers.store(0, Ordering::Relaxed);
    }
}

impl Shared {
    /// The state lock; a handler that panicked cannot leave the tenant half-changed in a way
    /// that matters to tests, so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_us.load(Ordering::Relaxed))
    }

    /// The way-in delay of the next Graph request: zero unless [`Emulator::set_jitter`].
    pub(crate) fn next_jitter(&self) -> Duration {
        let most = self.jitter_us.load(Ordering::Relaxed);
        if most == 0 {
            return Duration::ZERO;
        }
        let n = self.jitter_seq.fetch_add(1, Ordering::Relaxed);
        jitter_draw(self.seed, n, Duration::from_micros(most))
    }

    pub(crate) fn inline_replies(&self) -> usize {
        self.inline_replies.load(Ordering::Relaxed).max(1)
    }

    pub(crate) fn teams_page(&self) -> usize {
        self.teams_page.load(Ordering::Relaxed).max(1)
    }
}

/// A running Graph + identity emulator. Clones share the same server; it stops on
/// [`Emulator::shutdown`] or when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
    guard: Arc<server::ServerGuard>,
}

impl Emulator {
    pub async fn start(
        spec: TenantSpec,
        opts: EmulatorOptions,
        addr: SocketAddr,
    ) -> std::io::Result<Emulator> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let now = chrono::Utc::now().timestamp_millis();
        let tenant = tenant::Tenant::generate(&spec, &opts.skew, now);
        let auth = identity::TokenStore::new(prng::Rng::new(spec.seed).fork("tokens"));
        let shared = Arc::new(Shared {
            world: Mutex::new(World {
                tenant,
                auth,
                stats: EmulatorStats::default(),
                throttle: None,
                faults: Vec::new(),
                token_failures: None,
                device_login: DeviceLogin::default(),
                revoke_after: None,
                granted_scopes: None,
                limiter: limits::Limiter::default(),
                arrivals: Vec::new(),
                routes: Vec::new(),
                reach: reach::Reach::default(),
                control: control::Control::default(),
            }),
            base: format!("http://{local}"),
            latency_us: std::sync::atomic::AtomicU64::new(opts.latency.as_micros() as u64),
            jitter_us: std::sync::atomic::AtomicU64::new(0),
            jitter_seq: std::sync::atomic::AtomicU64::new(0),
            seed: spec.seed,
            opts,
            links: links::Tokens::new(spec.seed),
            inline_replies: AtomicUsize::new(1000),
            teams_page: AtomicUsize::new(100),
            started: std::time::Instant::now(),
            delta_empty_openers: std::sync::atomic::AtomicU64::new(0),
        });
        let guard = server::serve(listener, server::router(shared.clone()));
        Ok(Emulator {
            shared,
            guard: Arc::new(guard),
        })
    }

    /// `http://127.0.0.1:PORT`: Graph under `/v1.0/…`, the identity platform under `/{tenant}/oauth2/v2.0/token`.
    pub fn url(&self) -> String {
        self.shared.base.clone()
    }

    pub fn tenant_id(&self) -> String {
        self.shared.lock().tenant.tenant_id.clone()
    }

    /// The tenant's directory GUID (`tenantId` in team bodies; also accepted in the token path).
    pub fn tenant_guid(&self) -> String {
        self.shared.lock().tenant.tenant_guid.clone()
    }

    pub fn client_id(&self) -> String {
        self.shared.lock().tenant.client_id.clone()
    }

    pub fn initial_refresh_token(&self) -> String {
        self.shared.lock().auth.seed_refresh.clone()
    }

    /// A further valid refresh token, as another sign-in of the technical user would give
    /// (one per shard: each shard keeps its own chain).
    pub fn issue_refresh_token(&self) -> String {
        self.shared.lock().auth.mint_refresh()
    }

    /// The app registration's client secret (sent by confidential clients and app-only sign-in).
    pub fn client_secret(&self) -> String {
        self.shared.lock().auth.client_secret.clone()
    }

    /// The technical user's password, for the password (ROPC) grant.
    pub fn technical_user_password(&self) -> String {
        self.shared.lock().auth.password.clone()
    }

    /// The technical user's UPN (the `username` of the password grant).
    pub fn technical_user_upn(&self) -> String {
        let w = self.shared.lock();
        w.tenant.people.users[w.tenant.technical].upn.clone()
    }

    /// The technical user's mail (the account the connector signs in as).
    pub fn technical_user_mail(&self) -> String {
        let w = self.shared.lock();
        w.tenant.people.users[w.tenant.technical]
            .mail
            .clone()
            .unwrap_or_default()
    }

    /// Every message the technical user can read, with what a connector must do with it
    /// (channels of associated teams only when shared).
    pub fn truth(&self) -> Vec<TruthMessage> {
        let w = self.shared.lock();
        let mut all = w.tenant.truth();
        all.retain(|t| w.reach.allows(&t.team_id, &t.channel_id));
        all
    }

    pub fn mutate(&self, m: Mutation) -> MutationReport {
        let now = chrono::Utc::now().timestamp_millis();
        self.shared
            .lock()
            .tenant
            .mutate(&m, self.shared.opts.reply_bumps_root, now)
    }

    /// Applies a targeted [`Change`]; keys that name no message are left out of the report.
    pub fn apply(&self, change: Change) -> MutationReport {
        let now = chrono::Utc::now().timestamp_millis();
        self.shared
            .lock()
            .tenant
            .apply(&change, self.shared.opts.reply_bumps_root, now)
    }

    pub fn stats(&self) -> EmulatorStats {
        self.shared.stats()
    }

    /// Starts the counters over (also `POST /_emulator/stats/reset`), e.g. between two runs
    /// a benchmark measures apart; the limits' buckets keep their state.
    pub fn reset_stats(&self) {
        self.shared.reset_stats();
    }

    /// Every text marker, mail and UPN of the tenant and every token issued so far.
    pub fn sensitive_strings(&self) -> Vec<String> {
        let w = self.shared.lock();
        let people = w
            .tenant
            .people
            .users
            .iter()
            .flat_map(|u| {
                u.mail
                    .iter()
                    .chain(&u.former_mails)
                    .cloned()
                    .chain([u.upn.clone()])
            })
            .chain(w.reach.former_mails.values().flatten().cloned());
        let mut out: Vec<String> = w
            .tenant
            .all_markers()
            .into_iter()
            .chain(people)
            .chain(w.auth.issued.iter().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// How many replies `$expand=replies` returns inline before adding `replies@odata.nextLink`
    /// (Graph uses 1000; tests can lower it to exercise reply paging cheaply).
    /// Answers the next `times` requests of `route` (a name of `EmulatorStats::by_route`)
    /// whose path contains `scope` (a team or channel id; "" for any) with `fault`.
    pub fn inject(&self, route: &str, scope: &str, fault: Fault, times: usize) {
        self.inject_after(route, scope, 0, fault, times);
    }

    /// Answers every request this much later (a slow or far-away tenant).
    pub fn set_latency(&self, d: Duration) {
        self.shared
            .latency_us
            .store(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Delays every Graph request by a random share of `most` on its way in, before it is
    /// counted or judged by the limits: a network whose delays vary, so requests the client
    /// spaced evenly arrive unevenly. Zero (the default) turns it off. The n-th delayed
    /// request waits [`jitter_draw`]`(seed, n, most)`.
    pub fn set_jitter(&self, most: Duration) {
        self.shared
            .jitter_us
            .store(most.as_micros() as u64, Ordering::Relaxed);
    }

    /// Enforces rate limits from now on, with full buckets; `Limits::default()` lifts them.
    /// Over a limit the answer is 429 with `throttled-429-response.json` and `Retry-After`
    /// (decimal seconds) = when the scope that ran dry has a token again, or no
    /// `Retry-After` for the share [`Limits::omit_retry_after`] asks.
    pub fn set_limits(&self, limits: Limits) {
        self.shared.lock().limiter.set(limits);
    }

    /// Arrival of every message-route request so far, as an offset from the start, in
    /// arrival order (see [`max_in_window`]).
    pub fn arrivals(&self) -> Vec<Duration> {
        self.shared.lock().arrivals.clone()
    }

    /// The route (a name of `EmulatorStats::by_route`) of every Graph request so far, in
    /// the order they arrived.
    pub fn routes(&self) -> Vec<&'static str> {
        self.shared.lock().routes.clone()
    }

    pub fn set_inline_replies_limit(&self, n: usize) {
        self.shared
            .inline_replies
            .store(n.max(1), Ordering::Relaxed);
    }

    /// Answers the next `n` authenticated Graph requests with `status` (429, 503, 504…) and
    /// the throttling body of `throttled-429-response.json`; `retry_after` (seconds, may be
    /// fractional like Graph's `2.128`) becomes the `Retry-After` header.
    pub fn throttle_next(&self, n: usize, status: u16, retry_after: Option<f64>) {
        self.shared.lock().throttle = Some(graph::Throttle {
            remaining: n,
            status,
            retry_after: retry_after.map(|s| s.to_string()),
        });
    }

    /// Invalidates every `$deltatoken`/`$skiptoken` handed out so far, as when Graph drops
    /// its sync state: following an old link answers 400 "Parameter 'DeltaToken' not
    /// supported" (`error-400-delta-token-not-supported.json`).
    pub fn expire_delta_tokens(&self) {
        self.shared.links.expire();
    }

    /// Answers the next `n` token requests (any grant) with `failure` instead of a token.
    pub fn fail_token_requests(&self, n: usize, failure: TokenFailure) {
        self.shared.lock().token_failures = Some((n, failure));
    }

    /// How the next device-code sign-ins behave (pending polls, `slow_down`, the outcome).
    pub fn set_device_login(&self, login: DeviceLogin) {
        self.shared.lock().device_login = login;
    }

    /// After `n` more authenticated Graph requests, every access token issued so far stops
    /// working (401), as when an admin revokes the user's sessions; new grants work.
    pub fn revoke_access_tokens_after(&self, n: u64) {
        self.shared.lock().revoke_after = Some(n);
    }

    /// While set, Graph answers 401 to every access token, even a fresh one.
    pub fn reject_all_access_tokens(&self, reject: bool) {
        self.shared.lock().auth.reject_all = reject;
    }

    /// Page size of `GET /v1.0/teams` without `$top` (default 100), to exercise paging.
    pub fn set_teams_page_size(&self, n: usize) {
        self.shared.teams_page.store(n.max(1), Ordering::Relaxed);
    }

    /// From now on token responses say they carry exactly `scopes` (as when an admin
    /// consented to fewer permissions than the app asks for); `None` echoes the request again.
    pub fn grant_only_scopes(&self, scopes: Option<&[&str]>) {
        self.shared.lock().granted_scopes = scopes.map(|s| s.join(" "));
    }

    pub fn shutdown(&self) {
        self.guard.stop();
    }
}
