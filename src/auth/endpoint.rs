//! The token endpoint (`/oauth2/v2.0/token`): grants as values, the response and error
//! shapes of the identity platform, and the mapping of its errors to what an admin must do.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::exit::{Fatal, Result};
use crate::http::{
    location_host, read_capped, read_error_body, retry_after, status_retry, Action, BodyError,
    Counters, Policy, Reason, Retry, Stopped, TransportError,
};
use crate::secret::Secret;
use crate::shutdown::{Cancelled, Shutdown};

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

/// A token response. Only the access token is required; every other field is read
/// leniently (issue 12 item 19: `expires_in` has come as a string), so a rotated refresh
/// token is never dropped because a field beside it had an odd shape.
#[derive(Deserialize)]
pub struct TokenResponse {
    #[serde(default, deserialize_with = "lenient_string")]
    pub access_token: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub refresh_token: Option<String>,
    #[serde(default, deserialize_with = "lenient_seconds")]
    pub expires_in: Option<u64>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub scope: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub id_token: Option<String>,
}

impl TokenResponse {
    /// How long the access token lives, within sane bounds: `0` would refresh before every
    /// request, `u64::MAX` overflow the clock. (Entra ID issues 60–90 minutes.)
    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(self.expires_in.unwrap_or(3599).clamp(2, 24 * 3600))
    }
}

/// The `/devicecode` answer (entra `v2-oauth2-device-code.md`, "Device authorization response").
#[derive(Deserialize)]
pub struct DeviceAuthorization {
    device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    #[serde(default, deserialize_with = "lenient_seconds")]
    expires_in: Option<u64>,
    #[serde(default, deserialize_with = "lenient_seconds")]
    interval: Option<u64>,
}

impl DeviceAuthorization {
    pub fn device_code(&self) -> Secret {
        Secret::new(self.device_code.clone())
    }

    /// How long the code stays valid (the identity platform says 15 minutes), at most an hour.
    pub fn expires_in(&self) -> Duration {
        Duration::from_secs(self.expires_in.unwrap_or(900).clamp(60, 3600))
    }

    /// How often to poll, between 1 s and a minute.
    pub fn interval(&self) -> Option<Duration> {
        self.interval.map(|s| Duration::from_secs(s.clamp(1, 60)))
    }
}

/// A string field; any other JSON value reads as absent.
fn lenient_string<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    })
}

/// Seconds as a number or a numeric string; anything else reads as absent.
fn lenient_seconds<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => {
            n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64))
        }
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok().map(|f| f.max(0.0) as u64),
        _ => None,
    })
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

    /// POSTs `form` under the shared retry policy: 429, 5xx, `temporarily_unavailable`
    /// and transport errors are retried; a refusal comes back as a value. Every wait,
    /// the request itself included, ends on a signal.
    async fn post<T: DeserializeOwned>(
        &self,
        url: &Url,
        form: &[(&str, &str)],
    ) -> Result<std::result::Result<T, Refusal>> {
        let policy = Policy {
            max_retries: self.max_retries,
            shutdown: &self.shutdown,
            counters: &self.counters,
            endpoint: "token endpoint",
        };
        match policy.run(|| self.attempt(url, form)).await {
            Ok(body) => Ok(Ok(body)),
            Err(Stopped::Failed(Attempt::Refused(r))) => Ok(Err(r)),
            Err(Stopped::Failed(Attempt::Final(f))) => Err(f),
            Err(Stopped::Exhausted { attempts, last }) => Err(Fatal::unavailable(format!(
                "the token endpoint {} is unavailable after {attempts} attempts ({last}); check the network path to [microsoft] login_url, then run again",
                crate::secret::redact_url(url)
            ))),
            Err(Stopped::Cancelled) => Err(self.interrupted()),
        }
    }

    fn interrupted(&self) -> Fatal {
        let code = self
            .shutdown
            .signal()
            .map_or(crate::exit::Code::Terminated, Into::into);
        Fatal::new(code, "interrupted while signing in; nothing was changed")
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        url: &Url,
        form: &[(&str, &str)],
    ) -> std::result::Result<Action<T, Attempt>, Cancelled> {
        Counters::add(&self.counters.requests, 1);
        let sent = self
            .shutdown
            .run(self.http.post(url.clone()).form(form).send())
            .await?;
        self.counters
            .answered(sent.as_ref().ok().map(|r| r.status().as_u16()));
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                let reason = Reason::Transport(TransportError::new(&e));
                return Ok(Action::Retry(Retry::failure(reason, None)));
            }
        };
        let status = resp.status();
        if status.is_redirection() {
            return Ok(Action::Fail(Attempt::Final(Fatal::auth(format!(
                "the token endpoint answered {} redirecting to {}; redirects are not followed (they would carry the credentials along): check [microsoft] login_url and cloud",
                status.as_u16(),
                location_host(resp.headers(), url.as_str())
            )))));
        }
        if status.is_success() {
            let body = match self
                .shutdown
                .run(read_capped(&mut resp, TOKEN_BODY_CAP, None))
                .await?
            {
                Ok(b) => b.bytes,
                Err(BodyError::Transport(e)) => {
                    return Ok(Action::Retry(Retry::failure(Reason::Transport(e), None)))
                }
                Err(BodyError::TooLarge) => {
                    return Ok(Action::Fail(Attempt::Final(Fatal::unavailable(
                        "the token endpoint answered with a body far larger than a token response; check [microsoft] login_url",
                    ))))
                }
            };
            return Ok(match serde_json::from_slice(&body) {
                Ok(t) => Action::Done(t),
                Err(e) => Action::Fail(Attempt::Final(Fatal::unavailable(format!(
                    "the token endpoint answered {status} with a body that is not the expected JSON ({})",
                    crate::graph::describe_json_error(&e)
                )))),
            });
        }
        let retry = status_retry(status, resp.headers());
        let body = self.shutdown.run(read_error_body(&mut resp)).await?;
        let err: ErrorBody = serde_json::from_slice(&body).unwrap_or_default();
        if let Some(retry) = retry {
            return Ok(Action::Retry(retry));
        }
        if err.error == "temporarily_unavailable" {
            let after = retry_after(resp.headers());
            return Ok(Action::Retry(Retry::failure(
                Reason::Said("temporarily_unavailable"),
                after,
            )));
        }
        Ok(Action::Fail(Attempt::Refused(Refusal {
            status: status.as_u16(),
            body: err,
        })))
    }
}

/// A token response is a few KB; this leaves room for long JWTs and nothing else.
const TOKEN_BODY_CAP: u64 = 1024 * 1024;

enum Attempt {
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
