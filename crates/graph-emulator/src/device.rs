//! The device-code flow of the identity platform (entra `v2-oauth2-device-code.md`):
//! `POST /{tenant}/oauth2/v2.0/devicecode` hands out a device code and a user code, and the
//! token endpoint answers polls with `authorization_pending`, `slow_down`,
//! `authorization_declined`, `expired_token` or, once "the user signed in", tokens.
//!
//! There is no browser here: a [`DeviceLogin`] script says how many polls stay pending and
//! how the sign-in ends. A poll sooner than the interval asked for (plus 5 s per
//! `slow_down` already sent) is counted and answered `slow_down`, as RFC 8628 §3.5 asks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::identity::{aad_error, check_client, user_tokens};
use crate::{Shared, World};

/// `grant_type` of the polling request.
pub(crate) const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Early polls closer together than the interval by less than this are not "too fast":
/// timers and the request itself jitter.
const TOLERANCE: Duration = Duration::from_millis(150);

/// How the emulated person at the browser behaves.
#[derive(Debug, Clone)]
pub struct DeviceLogin {
    /// Polls that do not yet get the outcome (the first `slow_down_polls` of them answer
    /// `slow_down`, the rest `authorization_pending`).
    pub pending_polls: u32,
    pub slow_down_polls: u32,
    pub outcome: DeviceOutcome,
    /// Seconds between polls the `/devicecode` response asks for.
    pub interval: u64,
    /// Seconds the codes live.
    pub expires_in: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceOutcome {
    /// The technical user signs in: tokens.
    Approve,
    /// The person declines at the sign-in page: `authorization_declined`.
    Decline,
    /// Nobody enters the code in time: `expired_token`.
    Expire,
}

impl Default for DeviceLogin {
    fn default() -> Self {
        DeviceLogin {
            pending_polls: 2,
            slow_down_polls: 0,
            outcome: DeviceOutcome::Approve,
            interval: 1,
            expires_in: 900,
        }
    }
}

/// One pending sign-in.
#[derive(Debug)]
pub(crate) struct Session {
    script: DeviceLogin,
    scope: String,
    expires: Instant,
    polls: u32,
    last_poll: Option<Instant>,
    /// The interval now required: the offered one plus 5 s per `slow_down` sent.
    interval: Duration,
}

/// `POST /{tenant}/oauth2/v2.0/devicecode`, form-encoded `client_id` and `scope`.
pub(crate) async fn devicecode(
    State(app): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mut w = app.lock();
    if let Some(refused) = check_client(&mut w, &tenant, &form) {
        return refused;
    }
    let Some(scope) = form.get("scope").filter(|s| !s.trim().is_empty()).cloned() else {
        let desc = "AADSTS900144: The request body must contain the following parameter: 'scope'.";
        return aad_error(&mut w.auth.rng, "invalid_request", 900144, desc);
    };
    let script = w.device_login.clone();
    let device_code = w.auth.mint_opaque("DAQABAAEAAAD--DLA3VO7Qrdd", 160);
    let user_code = w.auth.rng.alnum(9).to_ascii_uppercase();
    let uri = "https://microsoft.com/devicelogin";
    let body = json!({
        "user_code": user_code,
        "device_code": device_code,
        "verification_uri": uri,
        "expires_in": script.expires_in,
        "interval": script.interval,
        "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate."),
    });
    let session = Session {
        scope,
        expires: Instant::now() + Duration::from_secs(script.expires_in),
        polls: 0,
        last_poll: None,
        interval: Duration::from_secs(script.interval),
        script,
    };
    w.auth.devices.insert(device_code, session);
    Json(body).into_response()
}

/// A poll of the token endpoint with `grant_type=…:device_code`.
pub(crate) fn poll(w: &mut World, form: &HashMap<String, String>, lifetime: Duration) -> Response {
    let code = form.get("device_code").cloned().unwrap_or_default();
    w.stats.device_polls += 1;
    let now = Instant::now();
    let Some(s) = w.auth.devices.get_mut(&code) else {
        let desc =
            "AADSTS70018: Invalid verification code. The device code presented was not recognized.";
        return aad_error(&mut w.auth.rng, "bad_verification_code", 70018, desc);
    };
    let too_fast = s
        .last_poll
        .is_some_and(|last| now.duration_since(last) + TOLERANCE < s.interval);
    s.last_poll = Some(now);
    if too_fast {
        w.stats.device_polls_too_fast += 1;
        return slow_down(w, &code);
    }
    if now >= s.expires {
        return expired(w, &code);
    }
    s.polls += 1;
    if s.polls <= s.script.slow_down_polls.min(s.script.pending_polls) {
        return slow_down(w, &code);
    }
    if s.polls <= s.script.pending_polls {
        let desc =
            "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue polling.";
        return aad_error(&mut w.auth.rng, "authorization_pending", 70016, desc);
    }
    match s.script.outcome {
        DeviceOutcome::Approve => {
            let mut form = form.clone();
            form.insert("scope".into(), s.scope.clone());
            w.auth.devices.remove(&code);
            user_tokens(w, &form, "device_code", lifetime)
        }
        DeviceOutcome::Decline => {
            w.auth.devices.remove(&code);
            let desc =
                "AADSTS70000: The user declined the authorization request at the sign-in page.";
            aad_error(&mut w.auth.rng, "authorization_declined", 70000, desc)
        }
        DeviceOutcome::Expire => expired(w, &code),
    }
}

fn slow_down(w: &mut World, code: &str) -> Response {
    if let Some(s) = w.auth.devices.get_mut(code) {
        s.interval += Duration::from_secs(5);
    }
    let desc = "AADSTS70016: OAuth 2.0 device flow error. Polling too frequently: wait 5 seconds longer between requests.";
    aad_error(&mut w.auth.rng, "slow_down", 70016, desc)
}

fn expired(w: &mut World, code: &str) -> Response {
    w.auth.devices.remove(code);
    let desc = "AADSTS70020: The provided value for the input parameter 'device_code' is not valid. This device code has expired.";
    aad_error(&mut w.auth.rng, "expired_token", 70020, desc)
}
