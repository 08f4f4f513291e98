//! The token endpoint (`/oauth2/v2.0/token`): grants as values, the response and error
//! shapes of the identity platform, and the mapping of its errors to what an admin must do.

use std::sync::Arc;

use serde::Deserialize;
use url::Url;

use crate::exit::{Fatal, Result};
use crate::http::{backoff, Counters};
use crate::secret::Secret;
use crate::shutdown::Shutdown;

pub enum Grant {
    RefreshToken(Secret),
    Password { username: String, password: Secret },
    ClientCredentials,
}

#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<u64>,
    pub scope: Option<String>,
    pub id_token: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u64>,
}

pub struct Endpoint {
    pub http: reqwest::Client,
    pub url: Url,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub scope: String,
    pub max_retries: u32,
    pub counters: Arc<Counters>,
    pub shutdown: Shutdown,
}

impl Endpoint {
    /// Sends `grant`, retrying `temporarily_unavailable`, 5xx and network errors.
    pub async fn request(&self, grant: &Grant) -> Result<TokenResponse> {
        let mut attempt = 0;
        loop {
            let failure = match self.send(grant).await {
                Ok(r) => return Ok(r),
                Err(Attempt::Final(f)) => return Err(f),
                Err(Attempt::Transient(why)) => why,
            };
            if attempt >= self.max_retries {
                return Err(Fatal::unavailable(format!(
                    "the token endpoint {} is unavailable after {} attempts: {failure}",
                    self.url,
                    attempt + 1
                )));
            }
            Counters::add(&self.counters.retries, 1);
            tracing::warn!(attempt, reason = %failure, "Token endpoint failed; retrying.");
            if self.shutdown.sleep(backoff(attempt)).await.is_err() {
                return Err(Fatal::unavailable(
                    "interrupted while waiting for the token endpoint",
                ));
            }
            attempt += 1;
        }
    }

    async fn send(&self, grant: &Grant) -> std::result::Result<TokenResponse, Attempt> {
        let mut form: Vec<(&str, &str)> =
            vec![("client_id", &self.client_id), ("scope", &self.scope)];
        match grant {
            Grant::RefreshToken(rt) => {
                form.push(("grant_type", "refresh_token"));
                form.push(("refresh_token", rt.expose()));
            }
            Grant::Password { username, password } => {
                form.push(("grant_type", "password"));
                form.push(("username", username));
                form.push(("password", password.expose()));
            }
            Grant::ClientCredentials => form.push(("grant_type", "client_credentials")),
        }
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret.expose()));
        }
        Counters::add(&self.counters.requests, 1);
        let response = self
            .http
            .post(self.url.clone())
            .form(&form)
            .send()
            .await
            .map_err(|e| Attempt::Transient(describe_transport(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| Attempt::Transient(describe_transport(&e)))?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                Attempt::Final(Fatal::unavailable(format!(
                    "the token endpoint answered {status} with a body that is not a token response ({e})"
                )))
            });
        }
        let err: ErrorBody = serde_json::from_slice(&body).unwrap_or_default();
        if status.is_server_error() || err.error == "temporarily_unavailable" {
            return Err(Attempt::Transient(format!("HTTP {status} {}", err.error)));
        }
        Err(Attempt::Final(explain(status.as_u16(), &err)))
    }
}

enum Attempt {
    Transient(String),
    Final(Fatal),
}

fn describe_transport(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        "request failed".into()
    }
}

/// One line naming the AADSTS code and the admin's next step.
fn explain(status: u16, err: &ErrorBody) -> Fatal {
    let code = aadsts(err);
    let summary = first_sentence(&err.error_description);
    let what = if code.is_empty() {
        format!("{} ({summary})", err.error)
    } else {
        format!("{} {code} ({summary})", err.error)
    };
    let todo = match err.error.as_str() {
        "invalid_grant" => "the refresh token is expired, revoked or already used; run `teams-connector login` to sign the technical user in again",
        "interaction_required" => "the sign-in needs a person (MFA or a policy); run `teams-connector login`",
        "consent_required" => "grant admin consent for the connector's scopes in Entra ID (Enterprise applications → Permissions), then run `teams-connector login`",
        "invalid_client" | "unauthorized_client" => "check [microsoft] client_id, and renew TEAMS_CONNECTOR_CLIENT_SECRET if it expired",
        "invalid_scope" => "check [auth] scopes and grant them to the app registration",
        _ => "check the app registration and the technical user in Entra ID",
    };
    Fatal::auth(format!("sign-in refused (HTTP {status}): {what}; {todo}"))
}

fn aadsts(err: &ErrorBody) -> String {
    if let Some(pos) = err.error_description.find("AADSTS") {
        let digits: String = err.error_description[pos + 6..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        if !digits.is_empty() {
            return format!("AADSTS{digits}");
        }
    }
    err.error_codes
        .first()
        .map(|c| format!("AADSTS{c}"))
        .unwrap_or_default()
}

/// The description up to its first line break or "Trace ID", trimmed of the code prefix.
fn first_sentence(desc: &str) -> String {
    let line = desc.lines().next().unwrap_or("");
    let line = line.split("Trace ID").next().unwrap_or(line).trim();
    let line = match line.split_once(": ") {
        Some((head, rest)) if head.starts_with("AADSTS") => rest,
        _ => line,
    };
    let line: String = line.chars().take(200).collect();
    line.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_an_expired_refresh_token_with_its_code() {
        let body: ErrorBody = serde_json::from_str(include_str!(
            "../../fixtures/graph/token-error-invalid-grant-700082.json"
        ))
        .unwrap();
        let f = explain(400, &body);
        assert_eq!(f.code, crate::exit::Code::Auth);
        assert!(
            f.message.contains("invalid_grant AADSTS700082"),
            "{}",
            f.message
        );
        assert!(f.message.contains("teams-connector login"), "{}", f.message);
        assert!(!f.message.contains('\n'));
    }
}
