//! Signing in to the Microsoft identity platform as the technical user.
//!
//! [`TokenSource`] hands out access tokens: cached in memory, refreshed ahead of expiry
//! once for all concurrent callers (a tokio `Mutex` held across the refresh is the single
//! flight), and every rotated refresh token is written to the state store and flushed
//! before the access token that came with it is used. Token-endpoint errors become exit 77
//! (a person must act) or 69 (the endpoint is down), with the AADSTS code in the message.
//!
//! Flows (`[auth] flow`): the refresh-token chain (seeded, or stored by `login`, the
//! device-code sign-in in [`device`]), the password grant (ROPC) and client credentials
//! (app-only). A configured client secret is sent with every grant.

mod claims;
mod device;
mod endpoint;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use crate::config::{Config, Flow};
use crate::exit::{Fatal, Result};
use crate::http::Counters;
use crate::secret::Secret;
use crate::shutdown::Shutdown;
use crate::state::{StateKey, Store};

pub use device::login;
pub use endpoint::{Grant, TokenResponse};

/// Refresh this long before the access token expires.
const REFRESH_AHEAD: Duration = Duration::from_secs(120);

struct Cached {
    token: Secret,
    refresh_at: Instant,
}

pub struct TokenSource {
    endpoint: endpoint::Endpoint,
    flow: Flow,
    username: Option<String>,
    password: Option<Secret>,
    seed: Option<Secret>,
    store: Arc<Store>,
    /// Seals the stored refresh token (`TEAMS_CONNECTOR_STATE_KEY`).
    key: Option<StateKey>,
    cache: Mutex<Option<Cached>>,
    /// The `scope` field of the last token response (for `doctor`).
    granted: std::sync::Mutex<Option<String>>,
}

impl TokenSource {
    pub fn new(
        config: &Config,
        http: reqwest::Client,
        store: Arc<Store>,
        counters: Arc<Counters>,
        shutdown: Shutdown,
    ) -> Result<TokenSource> {
        if config.flow == Flow::Password && config.secrets.password.is_none() {
            return Err(Fatal::config(
                "[auth] flow = \"password\" needs TEAMS_CONNECTOR_PASSWORD or TEAMS_CONNECTOR_PASSWORD_FILE",
            ));
        }
        if config.flow == Flow::ClientCredentials && config.secrets.client_secret.is_none() {
            return Err(Fatal::config(
                "[auth] flow = \"client_credentials\" needs TEAMS_CONNECTOR_CLIENT_SECRET or TEAMS_CONNECTOR_CLIENT_SECRET_FILE",
            ));
        }
        match config.flow {
            Flow::Password => tracing::warn!(
                flow = "password",
                "The password flow (ROPC) fails for accounts with MFA and for federated accounts; prefer [auth] flow = \"refresh_token\" with `teams-connector login`."
            ),
            Flow::ClientCredentials => tracing::info!(
                flow = "client_credentials",
                "Signing in app-only: teams are listed tenant-wide, and reading channel messages needs Microsoft's Protected API approval for the app."
            ),
            Flow::RefreshToken => {}
        }
        Ok(TokenSource {
            endpoint: endpoint(config, http, counters, shutdown, config.scopes.join(" "))?,
            flow: config.flow,
            username: config.username.clone(),
            password: config.secrets.password.clone(),
            seed: config.secrets.refresh_token.clone(),
            store,
            key: state_key(config),
            cache: Mutex::new(None),
            granted: std::sync::Mutex::new(None),
        })
    }

    /// A valid access token, refreshed when it is about to expire.
    pub async fn access_token(&self) -> Result<Secret> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let response = self.acquire().await?;
        self.remember_scope(&response);
        let lifetime = response.lifetime();
        let Some(access) = response.access_token else {
            return Err(Fatal::unavailable(
                "the token endpoint answered without an access token; check [microsoft] login_url and cloud",
            ));
        };
        let token = Secret::new(access);
        *cache = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(REFRESH_AHEAD.min(lifetime / 2)),
        });
        Ok(token)
    }

    /// Forgets `stale` after Graph answered 401 to it, so the next call refreshes. A token
    /// another task already replaced is left alone (one refresh per 401 wave).
    pub async fn invalidate(&self, stale: &Secret) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|c| &c.token == stale) {
            *cache = None;
        }
    }

    async fn acquire(&self) -> Result<TokenResponse> {
        match self.flow {
            Flow::RefreshToken => self.refresh().await,
            // Every access token comes from the password itself: nothing to keep at rest.
            Flow::Password => {
                let grant = Grant::Password {
                    username: self.username.clone().unwrap_or_default(),
                    password: self.password.clone().unwrap_or_else(|| Secret::new("")),
                };
                self.endpoint.request(&grant).await
            }
            Flow::ClientCredentials => self.endpoint.request(&Grant::ClientCredentials).await,
        }
    }

    /// The refresh-token grant: the stored chain, unless the admin seeded a new token.
    async fn refresh(&self) -> Result<TokenResponse> {
        let seed_fp = self.seed.as_ref().map(fingerprint);
        // The stored chain is newer than the seed it grew from, so it wins over that seed;
        // a different seed is the admin's new start and replaces the chain (unopened).
        let chain = match (self.store.token_info()?, &seed_fp) {
            (Some(_), None) => true,
            (Some(info), Some(fp)) => info.seed.as_ref() == Some(fp),
            (None, _) => false,
        };
        let stored = if chain {
            self.store
                .refresh_token(self.key.as_ref())?
                .map(|s| s.token)
        } else {
            None
        };
        let Some(token) = stored.or_else(|| self.seed.clone()) else {
            return Err(Fatal::auth(
                "no refresh token: run `teams-connector login`, or seed one with TEAMS_CONNECTOR_REFRESH_TOKEN(_FILE)",
            ));
        };
        let response = self.endpoint.request(&Grant::RefreshToken(token)).await?;
        if let Some(rt) = &response.refresh_token {
            self.store.set_refresh_token(
                &Secret::new(rt.clone()),
                seed_fp.as_deref(),
                self.key.as_ref(),
            )?;
        }
        Ok(response)
    }
}

/// The token endpoint as `config` describes it, asking for `scope`.
fn endpoint(
    config: &Config,
    http: reqwest::Client,
    counters: Arc<Counters>,
    shutdown: Shutdown,
    scope: String,
) -> Result<endpoint::Endpoint> {
    Ok(endpoint::Endpoint {
        http,
        url: token_url(&config.login_url, &config.tenant_id)?,
        client_id: config.client_id.clone(),
        client_secret: config.secrets.client_secret.clone(),
        scope,
        max_retries: config.limits.max_retries,
        counters,
        shutdown,
    })
}

/// The key that seals the stored refresh token, when `TEAMS_CONNECTOR_STATE_KEY` is set.
pub fn state_key(config: &Config) -> Option<StateKey> {
    config.secrets.state_key.as_ref().map(StateKey::derive)
}

/// What the identity platform says the access token carries; `doctor` compares it with what
/// the crawl needs.
impl TokenSource {
    /// The space-separated `scope` of the last token response, if it had one.
    pub fn granted_scopes(&self) -> Option<String> {
        self.granted.lock().ok().and_then(|g| g.clone())
    }

    fn remember_scope(&self, response: &TokenResponse) {
        if let Ok(mut g) = self.granted.lock() {
            g.clone_from(&response.scope);
        }
    }
}

/// `{login}/{tenant}/oauth2/v2.0/token`.
pub fn token_url(login: &Url, tenant: &str) -> Result<Url> {
    let base = login.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/{tenant}/oauth2/v2.0/token")).map_err(|e| {
        Fatal::config(format!(
            "[microsoft] tenant_id {tenant:?} does not form a token URL: {e}"
        ))
    })
}

/// A short, one-way fingerprint of a seed token: lets the store tell "same seed as the
/// chain started from" without keeping the seed.
pub fn fingerprint(s: &Secret) -> String {
    crate::digest::hex(&crate::digest::sha256([s.expose().as_bytes()])[..8])
}
