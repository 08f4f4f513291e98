//! `teams-connector login`: the device-code sign-in of the technical user
//! (entra `v2-oauth2-device-code.md`, RFC 8628).
//!
//! Asks `/devicecode` for a code, tells the person on stderr where to enter it, polls the
//! token endpoint at the interval the server gives (5 s more after each `slow_down`) until
//! the sign-in is done, declined or expired, stores the refresh token (flushed, sealed when
//! a state key is set) and returns who signed in. Plain lines only: no browser is opened
//! and no terminal is needed, so it works over SSH and in `kubectl exec`.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::claims::{Claims, Me};
use super::endpoint::{DeviceAuthorization, Endpoint, Grant, Refusal, TokenResponse};
use super::{fingerprint, state_key};
use crate::config::Config;
use crate::exit::{Code, Fatal, Result};
use crate::http::{build_client, Counters};
use crate::secret::Secret;
use crate::shutdown::{Shutdown, Signal};
use crate::state::Store;

/// RFC 8628 §3.5: without an interval from the server, poll every 5 seconds.
const DEFAULT_INTERVAL: u64 = 5;
/// How often a line tells the person we are still waiting.
const NOTE_EVERY: Duration = Duration::from_secs(60);

/// The outcome of a successful `login`.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub account: Claims,
}

/// Runs the device-code sign-in and stores the refresh token in `store`.
pub async fn login(config: &Config, store: &Store, shutdown: Shutdown) -> Result<SignedIn> {
    let http = build_client(
        config.limits.request_timeout,
        config.microsoft_ca_file.as_ref(),
    )?;
    let counters = Arc::new(Counters::default());
    let endpoint = super::endpoint(
        config,
        http.clone(),
        counters,
        shutdown.clone(),
        login_scope(&config.scopes),
    )?;
    let auth = endpoint.device_authorization(&endpoint.scope).await?;
    let minutes = auth.expires_in().as_secs().div_ceil(60);
    eprintln!(
        "To sign in the technical user, open {} in a browser on any device and enter the code {}",
        auth.verification_uri, auth.user_code
    );
    eprintln!("The code expires in {minutes} minute(s). Waiting for the sign-in…");
    let tokens = poll(&endpoint, &auth, &shutdown).await?;
    let Some(refresh) = tokens.refresh_token.as_deref() else {
        return Err(Fatal::auth(
            "the sign-in returned no refresh token; keep offline_access in [auth] scopes and run `teams-connector login` again",
        ));
    };
    let seed = config.secrets.refresh_token.as_ref().map(fingerprint);
    store.set_refresh_token(
        &Secret::new(refresh),
        seed.as_deref(),
        state_key(config).as_ref(),
    )?;
    let account = who(config, &http, &tokens).await;
    Ok(SignedIn { account })
}

/// The configured scopes plus what the sign-in itself needs: `offline_access` for the
/// refresh token, `openid profile` for an id token naming the account.
fn login_scope(scopes: &[String]) -> String {
    let mut all: Vec<String> = scopes.to_vec();
    for s in ["offline_access", "openid", "profile"] {
        if !all.iter().any(|x| x == s) {
            all.push(s.to_string());
        }
    }
    all.join(" ")
}

async fn poll(
    endpoint: &Endpoint,
    auth: &DeviceAuthorization,
    shutdown: &Shutdown,
) -> Result<TokenResponse> {
    let grant = Grant::DeviceCode(auth.device_code());
    let mut interval = auth
        .interval()
        .unwrap_or(Duration::from_secs(DEFAULT_INTERVAL));
    let deadline = Instant::now() + auth.expires_in();
    let mut noted = Instant::now();
    loop {
        if shutdown.sleep(interval).await.is_err() {
            return Err(interrupted(shutdown));
        }
        let refusal = match endpoint.exchange(&grant).await? {
            Ok(tokens) => return Ok(tokens),
            Err(r) => r,
        };
        match refusal.error() {
            "authorization_pending" => {}
            "slow_down" => {
                interval += Duration::from_secs(5);
                tracing::debug!(
                    interval_s = interval.as_secs(),
                    "The identity platform asked to poll more slowly."
                );
            }
            _ => return Err(ended(&refusal, auth, &grant)),
        }
        let now = Instant::now();
        if now >= deadline + interval {
            return Err(Fatal::auth(format!(
                "nobody signed in with code {} within {} minute(s); run `teams-connector login` again",
                auth.user_code,
                auth.expires_in().as_secs().div_ceil(60)
            )));
        }
        if now.duration_since(noted) >= NOTE_EVERY {
            noted = now;
            let left = deadline
                .saturating_duration_since(now)
                .as_secs()
                .div_ceil(60);
            eprintln!("Still waiting for the sign-in ({left} minute(s) left)…");
        }
    }
}

/// A refusal that ends the polling, as the line for the person at the terminal.
fn ended(r: &Refusal, auth: &DeviceAuthorization, grant: &Grant) -> Fatal {
    match r.error() {
        "expired_token" | "code_expired" => Fatal::auth(format!(
            "the sign-in code expired before the sign-in was completed ({}); run `teams-connector login` again and enter the new code within {} minute(s)",
            r.what(),
            auth.expires_in().as_secs().div_ceil(60)
        )),
        "authorization_declined" | "access_denied" => Fatal::auth(format!(
            "the sign-in was declined at {} ({}); run `teams-connector login` again and accept, signed in as the technical user",
            auth.verification_uri,
            r.what()
        )),
        "bad_verification_code" => Fatal::auth(format!(
            "the identity platform does not know the device code ({}); run `teams-connector login` again",
            r.what()
        )),
        _ => r.explain(grant),
    }
}

fn interrupted(shutdown: &Shutdown) -> Fatal {
    let code = match shutdown.signal() {
        Some(Signal::Terminate) => Code::Terminated,
        _ => Code::Interrupted,
    };
    Fatal::new(
        code,
        "login interrupted before the sign-in finished; nothing was stored",
    )
}

/// The account from the id token, else from `GET /me`; unnamed if both fail (the token is
/// stored either way).
async fn who(config: &Config, http: &reqwest::Client, tokens: &TokenResponse) -> Claims {
    if let Some(c) = tokens.id_token.as_deref().and_then(Claims::from_id_token) {
        return c;
    }
    let base = config.graph_url.as_str().trim_end_matches('/');
    let url = format!("{base}/v1.0/me?$select=id,displayName,userPrincipalName");
    let me = async {
        let resp = http
            .get(url)
            .bearer_auth(tokens.access_token.as_deref().unwrap_or_default())
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?;
        resp.json::<Me>().await.ok()
    };
    me.await.map(Claims::from).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_asks_for_a_refresh_token_and_an_id_token() {
        let scopes = vec![
            "offline_access".to_string(),
            "https://graph.microsoft.com/ChannelMessage.Read.All".to_string(),
        ];
        assert_eq!(
            login_scope(&scopes),
            "offline_access https://graph.microsoft.com/ChannelMessage.Read.All openid profile"
        );
    }
}
