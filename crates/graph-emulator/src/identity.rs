//! The identity platform's token endpoint (`POST /{tenant}/oauth2/v2.0/token`) and the store
//! of issued tokens that Graph requests are checked against.
//!
//! Refresh tokens rotate on every use, like Entra ID: each grant returns a new one, and with
//! `strict_rotation` the spent one is rejected afterwards. Grants are dispatched on
//! `grant_type`: refresh token, password (ROPC), client credentials (app-only) and the
//! device-code poll ([`crate::device`]). Error bodies and AADSTS codes follow
//! `token-error-*.json`; failures can be injected ([`TokenFailure`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::prng::Rng;
use crate::Shared;

/// A failure the token endpoint answers instead of a token (see `Emulator::fail_token_requests`).
#[derive(Debug, Clone)]
pub enum TokenFailure {
    /// This HTTP status (500, 502, 503, 504) with a short error body.
    Status(u16),
    /// HTTP 400 `temporarily_unavailable` (AADSTS90033), which clients retry.
    TemporarilyUnavailable,
    /// Nothing for this long, then a 504: longer than the client's timeout is a timeout.
    Delay(Duration),
    /// A final error: `error`, the AADSTS code and the description after `AADSTSnnn: `.
    Refuse {
        error: String,
        code: u32,
        description: String,
    },
}

impl TokenFailure {
    pub fn refuse(error: &str, code: u32, description: &str) -> TokenFailure {
        TokenFailure::Refuse {
            error: error.into(),
            code,
            description: description.into(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct AccessGrant {
    expires: Instant,
    app_only: bool,
}

/// Every token handed out, and whether each refresh token was spent.
#[derive(Debug)]
pub(crate) struct TokenStore {
    access: HashMap<String, AccessGrant>,
    refresh: HashMap<String, bool>,
    pub(crate) rng: Rng,
    /// Every token, code and secret ever issued (for privacy scans), oldest first.
    pub issued: Vec<String>,
    pub seed_refresh: String,
    pub client_secret: String,
    pub password: String,
    /// Graph answers 401 to every token while set.
    pub reject_all: bool,
    /// Pending device-code sign-ins by device code.
    pub(crate) devices: HashMap<String, crate::device::Session>,
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
            client_secret: String::new(),
            password: String::new(),
            reject_all: false,
            devices: HashMap::new(),
        };
        s.seed_refresh = s.mint_refresh();
        s.client_secret = format!("Emu8Q~{}", s.rng.alnum(34));
        s.password = format!("pw-{}", s.rng.alnum(16));
        s.issued.push(s.client_secret.clone());
        s.issued.push(s.password.clone());
        s
    }

    pub(crate) fn check(&self, token: Option<&str>) -> Access {
        match token {
            None | Some("") => Access::Missing,
            Some(_) if self.reject_all => Access::Unknown,
            Some(t) => match self.access.get(t) {
                Some(g) if g.expires > Instant::now() => Access::Valid,
                Some(_) => Access::Expired,
                None => Access::Unknown,
            },
        }
    }

    /// Whether `token` came from the client-credentials grant (no user behind it).
    pub(crate) fn is_app_only(&self, token: Option<&str>) -> bool {
        token
            .and_then(|t| self.access.get(t))
            .is_some_and(|g| g.app_only)
    }

    /// Forgets every access token issued so far: Graph answers 401 to them.
    pub(crate) fn revoke_access(&mut self) {
        self.access.clear();
    }

    fn mint_access(&mut self, lifetime: Duration, app_only: bool) -> String {
        let t = format!(
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiIsImtpZCI6ImVtdWxhdG9yIn0.eyJ{}.{}",
            self.rng.alnum(48),
            self.rng.alnum(43)
        );
        let expires = Instant::now() + lifetime;
        self.access
            .insert(t.clone(), AccessGrant { expires, app_only });
        self.issued.push(t.clone());
        t
    }

    pub(crate) fn mint_opaque(&mut self, prefix: &str, len: usize) -> String {
        let t = format!("{prefix}{}", self.rng.alnum(len));
        self.issued.push(t.clone());
        t
    }

    pub(crate) fn mint_refresh(&mut self) -> String {
        let t = format!("1.AXoA{}", self.rng.alnum(120));
        self.refresh.insert(t.clone(), false);
        self.issued.push(t.clone());
        t
    }

    /// An unsigned JWT (`alg: none`, like the docs' sample) whose claims name the user.
    fn mint_id_token(&mut self, claims: serde_json::Value) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let mut claims = claims;
        claims["uti"] = json!(self.rng.alnum(22));
        let t = format!(
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.{}.",
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        self.issued.push(t.clone());
        t
    }
}

/// The id token claims of the technical user (`preferred_username`, `name`, `oid`, `tid`).
fn user_claims(w: &crate::World) -> serde_json::Value {
    let t = &w.tenant;
    let u = &t.people.users[t.technical];
    json!({
        "aud": t.client_id,
        "iss": format!("https://login.microsoftonline.com/{}/v2.0", t.tenant_guid),
        "tid": t.tenant_guid,
        "oid": u.id,
        "preferred_username": u.upn,
        "name": u.display_name,
        "ver": "2.0",
    })
}

/// `POST /{tenant}/oauth2/v2.0/token`, form-encoded.
pub(crate) async fn token(
    State(app): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    if let Some(failure) = take_failure(&app) {
        return failed(failure).await;
    }
    let mut w = app.lock();
    if let Some(refused) = check_client(&mut w, &tenant, &form) {
        return refused;
    }
    let grant_type = form.get("grant_type").map(String::as_str);
    let secret_sent = form.contains_key("client_secret");
    if app.opts.client_secret_required && !secret_sent && grant_type != Some("client_credentials") {
        let desc = "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.";
        return aad_error(&mut w.auth.rng, "invalid_client", 7000218, desc);
    }
    let lifetime = app.opts.access_token_lifetime;
    match grant_type {
        Some("refresh_token") => {
            let strict = app.opts.strict_rotation;
            refresh_grant(&mut w, &form, strict, lifetime)
        }
        Some("password") => password_grant(&mut w, &form, lifetime),
        Some("client_credentials") => client_credentials_grant(&mut w, &form, lifetime),
        Some(crate::device::GRANT_TYPE) => crate::device::poll(&mut w, &form, lifetime),
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

/// Tenant, `client_id` and (when sent) `client_secret` checks shared by the identity endpoints.
pub(crate) fn check_client(
    w: &mut crate::World,
    tenant: &str,
    form: &HashMap<String, String>,
) -> Option<Response> {
    if tenant != w.tenant.tenant_id && tenant != w.tenant.tenant_guid {
        let desc = format!("AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.");
        return Some(aad_error(&mut w.auth.rng, "invalid_request", 90002, &desc));
    }
    let Some(client_id) = form.get("client_id") else {
        let desc =
            "AADSTS900144: The request body must contain the following parameter: 'client_id'.";
        return Some(aad_error(&mut w.auth.rng, "invalid_request", 900144, desc));
    };
    if *client_id != w.tenant.client_id {
        let desc = format!("AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.");
        return Some(aad_error(&mut w.auth.rng, "invalid_client", 700016, &desc));
    }
    match form.get("client_secret") {
        Some(s) if *s != w.auth.client_secret => {
            let desc = format!("AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'.");
            Some(aad_error(&mut w.auth.rng, "invalid_client", 7000215, &desc))
        }
        _ => None,
    }
}

/// Consumes one injected failure, if any is pending.
fn take_failure(app: &Shared) -> Option<TokenFailure> {
    let mut w = app.lock();
    let (left, failure) = w.token_failures.as_mut().filter(|(n, _)| *n > 0)?;
    *left -= 1;
    let failure = failure.clone();
    w.stats.token_failures += 1;
    Some(failure)
}

async fn failed(failure: TokenFailure) -> Response {
    let mut rng = Rng::new(0x7a11);
    match failure {
        TokenFailure::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            (status, "Service Unavailable").into_response()
        }
        TokenFailure::TemporarilyUnavailable => aad_error(
            &mut rng,
            "temporarily_unavailable",
            90033,
            "AADSTS90033: A transient error has occurred. Please try again.",
        ),
        TokenFailure::Delay(d) => {
            tokio::time::sleep(d).await;
            (StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout").into_response()
        }
        TokenFailure::Refuse {
            error,
            code,
            description,
        } => aad_error(
            &mut rng,
            &error,
            code,
            &format!("AADSTS{code}: {description}"),
        ),
    }
}

/// The token response of a delegated grant: access, rotated refresh and id token.
pub(crate) fn user_tokens(
    w: &mut crate::World,
    form: &HashMap<String, String>,
    grant_type: &str,
    lifetime: Duration,
) -> Response {
    count_grant(w, grant_type);
    let scope = form
        .get("scope")
        .map(|s| s.split(' ').filter(|p| !matches!(*p, "offline_access" | "openid" | "profile" | "")).collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "https://graph.microsoft.com/User.Read.All https://graph.microsoft.com/ChannelMessage.Read.All".to_owned());
    let scope = w.granted_scopes.clone().unwrap_or(scope);
    let access = w.auth.mint_access(lifetime, false);
    let refresh = w.auth.mint_refresh();
    let claims = user_claims(w);
    let id_token = w.auth.mint_id_token(claims);
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

fn count_grant(w: &mut crate::World, grant_type: &str) {
    w.stats.token_grants += 1;
    *w.stats
        .grants_by_type
        .entry(grant_type.to_owned())
        .or_default() += 1;
}

/// ROPC: the technical user's UPN and password; no MFA in the emulated tenant.
fn password_grant(
    w: &mut crate::World,
    form: &HashMap<String, String>,
    lifetime: Duration,
) -> Response {
    let upn = w.tenant.people.users[w.tenant.technical].upn.clone();
    let user_ok = form
        .get("username")
        .is_some_and(|u| u.eq_ignore_ascii_case(&upn));
    if !user_ok || form.get("password") != Some(&w.auth.password) {
        let desc = "AADSTS50126: Error validating credentials due to invalid username or password.";
        return aad_error(&mut w.auth.rng, "invalid_grant", 50126, desc);
    }
    user_tokens(w, form, "password", lifetime)
}

/// App-only: needs the client secret and `{resource}/.default`; no refresh or id token
/// (`token-response-client-credentials.json`).
fn client_credentials_grant(
    w: &mut crate::World,
    form: &HashMap<String, String>,
    lifetime: Duration,
) -> Response {
    if !form.contains_key("client_secret") {
        let desc = "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.";
        return aad_error(&mut w.auth.rng, "invalid_client", 7000218, desc);
    }
    let scope = form.get("scope").map(String::as_str).unwrap_or("");
    if !scope.ends_with("/.default") || scope.contains(' ') {
        let desc = format!("AADSTS1002012: The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).");
        return aad_error(&mut w.auth.rng, "invalid_scope", 1002012, &desc);
    }
    count_grant(w, "client_credentials");
    let access = w.auth.mint_access(lifetime, true);
    Json(json!({
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "ext_expires_in": lifetime.as_secs(),
        "access_token": access,
    }))
    .into_response()
}

fn refresh_grant(
    w: &mut crate::World,
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
    user_tokens(w, form, "refresh_token", lifetime)
}

/// An error body shaped like `token-error-*.json` (always HTTP 400, as Entra ID answers).
pub(crate) fn aad_error(rng: &mut Rng, error: &str, code: u32, description: &str) -> Response {
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
