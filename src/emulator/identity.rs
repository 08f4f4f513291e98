//! The identity platform's token endpoint (`POST /{tenant}/oauth2/v2.0/token`) and the store
//! of issued tokens that Graph requests are checked against.
//!
//! Refresh tokens rotate on every use, like Entra ID: each grant returns a new one, and with
//! `strict_rotation` the spent one is rejected afterwards. Grants are dispatched on
//! `grant_type` so further flows can be added as match arms.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::prng::Rng;
use super::Shared;

/// Every token handed out, and whether each refresh token was spent.
#[derive(Debug)]
pub(crate) struct TokenStore {
    access: HashMap<String, Instant>,
    refresh: HashMap<String, bool>,
    rng: Rng,
    /// Every token string ever issued (for privacy scans), oldest first.
    pub issued: Vec<String>,
    pub seed_refresh: String,
}

/// Verdict on a bearer token presented to Graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Valid,
    Expired,
    Unknown,
    Missing,
}

impl TokenStore {
    pub(crate) fn new(rng: Rng) -> TokenStore {
        let mut s = TokenStore {
            access: HashMap::new(),
            refresh: HashMap::new(),
            rng,
            issued: Vec::new(),
            seed_refresh: String::new(),
        };
        s.seed_refresh = s.mint_refresh();
        s
    }

    pub(crate) fn check(&self, token: Option<&str>) -> Access {
        match token {
            None | Some("") => Access::Missing,
            Some(t) => match self.access.get(t) {
                Some(exp) if *exp > Instant::now() => Access::Valid,
                Some(_) => Access::Expired,
                None => Access::Unknown,
            },
        }
    }

    fn mint_access(&mut self, lifetime: Duration) -> String {
        let t = format!(
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiIsImtpZCI6ImVtdWxhdG9yIn0.eyJ{}.{}",
            self.rng.alnum(48),
            self.rng.alnum(43)
        );
        self.access.insert(t.clone(), Instant::now() + lifetime);
        self.issued.push(t.clone());
        t
    }

    fn mint_refresh(&mut self) -> String {
        let t = format!("1.AXoA{}", self.rng.alnum(120));
        self.refresh.insert(t.clone(), false);
        self.issued.push(t.clone());
        t
    }

    fn mint_id_token(&mut self) -> String {
        let t = format!(
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJhdWQiOi{}.",
            self.rng.alnum(64)
        );
        self.issued.push(t.clone());
        t
    }
}

/// `POST /{tenant}/oauth2/v2.0/token`, form-encoded.
pub(crate) async fn token(
    State(app): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mut w = app.world.lock().unwrap_or_else(|e| e.into_inner());
    if tenant != w.tenant.tenant_id && tenant != w.tenant.tenant_guid {
        let desc = format!("AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.");
        return aad_error(&mut w.auth.rng, "invalid_request", 90002, &desc);
    }
    let Some(client_id) = form.get("client_id") else {
        let desc =
            "AADSTS900144: The request body must contain the following parameter: 'client_id'.";
        return aad_error(&mut w.auth.rng, "invalid_request", 900144, desc);
    };
    if *client_id != w.tenant.client_id {
        let desc = format!("AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.");
        return aad_error(&mut w.auth.rng, "invalid_client", 700016, &desc);
    }
    match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {
            let strict = app.opts.strict_rotation;
            let lifetime = app.opts.access_token_lifetime;
            refresh_grant(&mut w, &form, strict, lifetime)
        }
        // device_code, password and client_credentials grants slot in here.
        Some(other) => {
            let desc =
                format!("AADSTS70003: The app requested an unsupported grant type '{other}'.");
            aad_error(&mut w.auth.rng, "unsupported_grant_type", 70003, &desc)
        }
        None => {
            let desc = "AADSTS900144: The request body must contain the following parameter: 'grant_type'.";
            aad_error(&mut w.auth.rng, "invalid_request", 900144, desc)
        }
    }
}

fn refresh_grant(
    w: &mut super::World,
    form: &HashMap<String, String>,
    strict: bool,
    lifetime: Duration,
) -> Response {
    let presented = form.get("refresh_token").map(String::as_str).unwrap_or("");
    match w.auth.refresh.get(presented).copied() {
        None => {
            let desc = "AADSTS70008: The provided authorization code or refresh token is not valid or has expired. Send a new interactive authorization request for this user and resource.";
            return aad_error(&mut w.auth.rng, "invalid_grant", 70008, desc);
        }
        Some(true) if strict => {
            w.stats.spent_refresh_token_reuse += 1;
            let desc = "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity or has already been redeemed. Send a new interactive authorization request for this user and resource.";
            return aad_error(&mut w.auth.rng, "invalid_grant", 70008, desc);
        }
        Some(_) => {}
    }
    w.auth.refresh.insert(presented.to_owned(), true);
    w.stats.token_grants += 1;
    let scope = form
        .get("scope")
        .map(|s| s.split(' ').filter(|p| !matches!(*p, "offline_access" | "openid" | "profile" | "")).collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "https://graph.microsoft.com/User.Read.All https://graph.microsoft.com/ChannelMessage.Read.All".to_owned());
    let scope = w.granted_scopes.clone().unwrap_or(scope);
    let access = w.auth.mint_access(lifetime);
    let refresh = w.auth.mint_refresh();
    let id_token = w.auth.mint_id_token();
    let secs = lifetime.as_secs();
    Json(json!({
        "token_type": "Bearer",
        "scope": scope,
        "expires_in": secs,
        "ext_expires_in": secs,
        "access_token": access,
        "refresh_token": refresh,
        "id_token": id_token,
    }))
    .into_response()
}

/// An error body shaped like `token-error-*.json` (always HTTP 400, as Entra ID answers).
fn aad_error(rng: &mut Rng, error: &str, code: u32, description: &str) -> Response {
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    let trace = rng.guid();
    let correlation = rng.guid();
    let body = json!({
        "error": error,
        "error_description": format!("{description}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {now}"),
        "error_codes": [code],
        "timestamp": now,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}
