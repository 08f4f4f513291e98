//! The token endpoint (`/oauth2/v2.0/token`): grants as values, the response and error
//! shapes of the identity platform, and the mapping of its errors to what an admin must do.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use url::Url;

use crate::exit::{Fatal, Result};
use crate::http::{backoff, retry_after, Counters};
use crate::secret::Secret;
use crate::shutdown::Shutdown;

pub enum Grant {
    RefreshToken(Secret),
    Password {
        username: String,
        password: Secret,
    },
    ClientCredentials,
    /// A poll of the device-code flow with the `device_code` from `/devicecode`.
    DeviceCode(Secret),
}

/// `grant_type` of the device-code poll (RFC 8628).
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<u64>,
    pub scope: Option<String>,
    pub id_token: Option<String>,
}

/// The `/devicecode` answer (entra `v2-oauth2-device-code.md`, "Device authorization response").
#[derive(Deserialize)]
pub struct DeviceAuthorization {
    device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub expires_in: u64,
    pub interval: Option<u64>,
}

impl DeviceAuthorization {
    pub fn device_code(&self) -> Secret {
        Secret::new(self.device_code.clone())
    }
}

#[derive(Deserialize, Default, Debug)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u64>,
}

/// A final "no" from the identity platform: its OAuth error and AADSTS code.
#[derive(Debug)]
pub struct Refusal {
    status: u16,
    body: ErrorBody,
}

impl Refusal {
    /// The OAuth `error` (`invalid_grant`, `authorization_pending`, …).
    pub fn error(&self) -> &str {
        &self.body.error
    }

    /// `AADSTS70008` and the like, or "" when the body names none.
    pub fn code(&self) -> String {
        aadsts(&self.body)
    }

    /// `error AADSTSnnn (first sentence of the description)`.
    pub fn what(&self) -> String {
        let code = self.code();
        let summary = first_sentence(&self.body.error_description);
        match (code.is_empty(), summary.is_empty()) {
            (true, true) => self.body.error.clone(),
            (true, false) => format!("{} ({summary})", self.body.error),
            (false, true) => format!("{} {code}", self.body.error),
            (false, false) => format!("{} {code} ({summary})", self.body.error),
        }
    }

    /// The one line for the admin: what was refused and what to do, exit 77.
    pub fn explain(&self, grant: &Grant) -> Fatal {
        if self.body.error.is_empty() {
            return Fatal::auth(format!(
                "the token endpoint answered HTTP {} without an OAuth error; check [microsoft] login_url, cloud and tenant_id",
                self.status
            ));
        }
        let todo = advice(&self.body.error, &self.code(), grant);
        Fatal::auth(format!(
            "sign-in refused (HTTP {}): {}; {todo}",
            self.status,
            self.what()
        ))
    }
}

pub struct Endpoint {
    pub http: reqwest::Client,
    /// `{login}/{tenant}/oauth2/v2.0/token`.
    pub url: Url,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub scope: String,
    pub max_retries: u32,
    pub counters: Arc<Counters>,
    pub shutdown: Shutdown,
}

impl Endpoint {
    /// Sends `grant`; a refusal becomes the exit-77 line for the admin.
    pub async fn request(&self, grant: &Grant) -> Result<TokenResponse> {
        self.exchange(grant)
            .await?
            .map_err(|refusal| refusal.explain(grant))
    }

    /// Sends `grant`, retrying `temporarily_unavailable`, 429, 5xx and network errors; a
    /// final refusal comes back as a value so the device-code poll can branch on it.
    pub async fn exchange(
        &self,
        grant: &Grant,
    ) -> Result<std::result::Result<TokenResponse, Refusal>> {
        let mut form: Vec<(&str, &str)> = vec![("client_id", &self.client_id)];
        match grant {
            Grant::RefreshToken(rt) => {
                form.push(("grant_type", "refresh_token"));
                form.push(("refresh_token", rt.expose()));
                form.push(("scope", &self.scope));
            }
            Grant::Password { username, password } => {
                form.push(("grant_type", "password"));
                form.push(("username", username));
                form.push(("password", password.expose()));
                form.push(("scope", &self.scope));
            }
            Grant::ClientCredentials => {
                form.push(("grant_type", "client_credentials"));
                form.push(("scope", &self.scope));
            }
            Grant::DeviceCode(code) => {
                form.push(("grant_type", DEVICE_CODE_GRANT));
                form.push(("device_code", code.expose()));
            }
        }
        // Confidential clients authenticate on every grant, delegated ones included.
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret.expose()));
        }
        self.post(&self.url, &form).await
    }

    /// `POST …/devicecode`: the codes a person enters at the verification URL.
    pub async fn device_authorization(&self, scope: &str) -> Result<DeviceAuthorization> {
        let url = device_code_url(&self.url);
        let form = [("client_id", self.client_id.as_str()), ("scope", scope)];
        self.post(&url, &form)
            .await?
            .map_err(|refusal| refusal.explain(&Grant::DeviceCode(Secret::new(""))))
    }

    async fn post<T: DeserializeOwned>(
        &self,
        url: &Url,
        form: &[(&str, &str)],
    ) -> Result<std::result::Result<T, Refusal>> {
        let mut attempt = 0;
        loop {
            let (failure, wait) = match self.send(url, form).await {
                Ok(r) => return Ok(Ok(r)),
                Err(Attempt::Refused(r)) => return Ok(Err(r)),
                Err(Attempt::Final(f)) => return Err(f),
                Err(Attempt::Transient(why, wait)) => (why, wait),
            };
            if attempt >= self.max_retries {
                return Err(Fatal::unavailable(format!(
                    "the token endpoint {url} is unavailable after {} attempts ({failure}); check the network path to [microsoft] login_url, then run again",
                    attempt + 1
                )));
            }
            Counters::add(&self.counters.retries, 1);
            tracing::warn!(attempt, reason = %failure, "Token endpoint failed; retrying.");
            let delay = wait.unwrap_or_else(|| backoff(attempt));
            if self.shutdown.sleep(delay).await.is_err() {
                return Err(Fatal::unavailable(
                    "interrupted while waiting for the token endpoint",
                ));
            }
            attempt += 1;
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        url: &Url,
        form: &[(&str, &str)],
    ) -> std::result::Result<T, Attempt> {
        Counters::add(&self.counters.requests, 1);
        let response = self.http.post(url.clone()).form(form).send().await;
        self.counters
            .answered(response.as_ref().ok().map(|r| r.status().as_u16()));
        let response = response.map_err(|e| Attempt::Transient(describe_transport(&e), None))?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| Attempt::Transient(describe_transport(&e), None))?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                Attempt::Final(Fatal::unavailable(format!(
                    "the token endpoint answered {status} with a body that is not the expected JSON ({e})"
                )))
            });
        }
        let err: ErrorBody = serde_json::from_slice(&body).unwrap_or_default();
        if status.is_server_error()
            || status.as_u16() == 429
            || err.error == "temporarily_unavailable"
        {
            let why = format!("HTTP {} {}", status.as_u16(), err.error);
            return Err(Attempt::Transient(why.trim().to_string(), wait));
        }
        Err(Attempt::Refused(Refusal {
            status: status.as_u16(),
            body: err,
        }))
    }
}

enum Attempt {
    Transient(String, Option<Duration>),
    Refused(Refusal),
    Final(Fatal),
}

/// `…/oauth2/v2.0/token` → `…/oauth2/v2.0/devicecode`.
fn device_code_url(token: &Url) -> Url {
    let mut url = token.clone();
    let path = token.path().trim_end_matches("token").to_string() + "devicecode";
    url.set_path(&path);
    url
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

/// What the admin does about a refusal: by AADSTS code where one is telling, else by the
/// OAuth error and the grant that was refused (reference-error-codes.md).
fn advice(error: &str, code: &str, grant: &Grant) -> &'static str {
    let password = matches!(grant, Grant::Password { .. });
    match code {
        "AADSTS700082" => return "the refresh token expired after 90 days without use; run `teams-connector login` to sign the technical user in again (schedule runs at least weekly to keep it alive)",
        "AADSTS50173" | "AADSTS50133" => return "the refresh token was revoked (password change or revoked sessions); run `teams-connector login` to sign the technical user in again",
        "AADSTS70008" => return "the refresh token expired or was already redeemed; run `teams-connector login` to sign the technical user in again",
        "AADSTS50126" => return "the username or password is wrong; check [auth] username and TEAMS_CONNECTOR_PASSWORD",
        "AADSTS50055" => return "the technical user's password expired; set a new one in Entra ID and in TEAMS_CONNECTOR_PASSWORD",
        "AADSTS50057" | "AADSTS50053" => return "the technical user is disabled or locked out; an Entra ID admin must unlock it",
        "AADSTS50076" | "AADSTS50079" | "AADSTS50158" if password => return "the account needs MFA, which the password flow cannot do; use flow = \"refresh_token\" with `teams-connector login`",
        "AADSTS53003" => return "a Conditional Access policy blocks this sign-in; ask an Entra ID admin to allow the technical user from this host",
        "AADSTS65001" => return "grant admin consent for the connector's scopes in Entra ID (Enterprise applications → the app → Permissions), then run `teams-connector login`",
        "AADSTS7000215" => return "TEAMS_CONNECTOR_CLIENT_SECRET is not a secret of this app (use the secret's value, not its id); create one under App registrations → the app → Certificates & secrets",
        "AADSTS7000222" => return "the client secret expired; create a new one under App registrations → the app → Certificates & secrets and set TEAMS_CONNECTOR_CLIENT_SECRET",
        "AADSTS7000218" => return "the app is a confidential client: set TEAMS_CONNECTOR_CLIENT_SECRET(_FILE), or turn on \"Allow public client flows\" under App registrations → the app → Authentication",
        "AADSTS700016" => return "no app with [microsoft] client_id exists in this tenant; check client_id and tenant_id",
        "AADSTS90002" => return "the tenant does not exist in this cloud; check [microsoft] tenant_id and cloud",
        _ => {}
    }
    match error {
        "invalid_grant" if password => "check [auth] username and TEAMS_CONNECTOR_PASSWORD (federated accounts cannot use the password flow)",
        "invalid_grant" => "the refresh token is expired, revoked or already used; run `teams-connector login` to sign the technical user in again",
        "interaction_required" if password => "the sign-in needs a person (MFA or a policy), which the password flow cannot do; use flow = \"refresh_token\" with `teams-connector login`",
        "interaction_required" => "the sign-in needs a person (MFA or a policy); run `teams-connector login`",
        "consent_required" => "grant admin consent for the connector's scopes in Entra ID (Enterprise applications → the app → Permissions), then run `teams-connector login`",
        "invalid_client" | "unauthorized_client" => "check [microsoft] client_id, and renew TEAMS_CONNECTOR_CLIENT_SECRET if it expired",
        "invalid_scope" => "check [auth] scopes and grant them to the app registration",
        "unsupported_grant_type" => "the app registration does not allow this flow; check [auth] flow and the app's Authentication settings",
        _ => "check the app registration and the technical user in Entra ID",
    }
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

    fn refusal(error: &str, code: u64, desc: &str) -> Refusal {
        Refusal {
            status: 400,
            body: ErrorBody {
                error: error.into(),
                error_description: format!(
                    "AADSTS{code}: {desc}\r\nTrace ID: 6e94ade5\r\nCorrelation ID: 0e87b495"
                ),
                error_codes: vec![code],
            },
        }
    }

    fn refresh() -> Grant {
        Grant::RefreshToken(Secret::new("rt"))
    }

    #[test]
    fn explains_an_expired_refresh_token_with_its_code() {
        let body: ErrorBody = serde_json::from_str(include_str!(
            "../../fixtures/graph/token-error-invalid-grant-700082.json"
        ))
        .unwrap();
        let f = Refusal { status: 400, body }.explain(&refresh());
        assert_eq!(f.code, crate::exit::Code::Auth);
        assert!(
            f.message.contains("invalid_grant AADSTS700082"),
            "{}",
            f.message
        );
        assert!(f.message.contains("teams-connector login"), "{}", f.message);
        assert!(!f.message.contains('\n') && !f.message.contains("Trace ID"));
    }

    #[test]
    fn every_refusal_names_its_code_and_the_next_step() {
        let password = Grant::Password {
            username: "svc@contoso.com".into(),
            password: Secret::new("pw"),
        };
        let cases: &[(&str, u64, &Grant, &str)] = &[
            ("invalid_grant", 50173, &refresh(), "revoked"),
            ("invalid_grant", 70008, &refresh(), "already redeemed"),
            (
                "invalid_grant",
                50126,
                &password,
                "TEAMS_CONNECTOR_PASSWORD",
            ),
            ("interaction_required", 50076, &password, "MFA"),
            (
                "interaction_required",
                50076,
                &refresh(),
                "teams-connector login",
            ),
            ("consent_required", 65001, &refresh(), "admin consent"),
            (
                "invalid_client",
                7000215,
                &Grant::ClientCredentials,
                "Certificates & secrets",
            ),
            (
                "invalid_client",
                7000218,
                &refresh(),
                "Allow public client flows",
            ),
            ("invalid_scope", 70011, &refresh(), "[auth] scopes"),
        ];
        for (error, code, grant, hint) in cases {
            let f = refusal(error, *code, "Something went wrong. More text.").explain(grant);
            assert_eq!(f.code, crate::exit::Code::Auth, "{error}");
            assert!(
                f.message.contains(&format!("{error} AADSTS{code}")),
                "{}",
                f.message
            );
            assert!(f.message.contains(hint), "{hint}: {}", f.message);
            assert!(!f.message.contains('\n'), "{}", f.message);
        }
    }

    #[test]
    fn device_code_url_sits_beside_the_token_url() {
        let token =
            Url::parse("https://login.microsoftonline.us/contoso/oauth2/v2.0/token").unwrap();
        assert_eq!(
            device_code_url(&token).as_str(),
            "https://login.microsoftonline.us/contoso/oauth2/v2.0/devicecode"
        );
    }
}
