//! Who signed in: the id token's claims, read without verifying its signature (it came
//! straight from the token endpoint over TLS, and is only used to tell the admin whose
//! account the stored refresh token belongs to), or `GET /me` when there is no id token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Claims {
    /// The sign-in name (UPN) of the account.
    #[serde(default)]
    pub preferred_username: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// The account's object id and its tenant.
    #[serde(default)]
    pub oid: Option<String>,
    #[serde(default)]
    pub tid: Option<String>,
}

impl Claims {
    /// The middle segment of a JWT, base64url-decoded; `None` when it is not one.
    pub fn from_id_token(jwt: &str) -> Option<Claims> {
        let payload = jwt.split('.').nth(1)?;
        let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// `Megan Bowen <megan@contoso.com>`, or what there is of it.
    pub fn display(&self) -> String {
        match (&self.name, &self.preferred_username) {
            (Some(n), Some(u)) => format!("{n} <{u}>"),
            (None, Some(u)) => u.clone(),
            (Some(n), None) => n.clone(),
            (None, None) => self
                .oid
                .as_ref()
                .map(|o| format!("object id {o}"))
                .unwrap_or_else(|| "an unnamed account".into()),
        }
    }
}

/// The fields of `GET /me` that name the account.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Me {
    display_name: Option<String>,
    user_principal_name: Option<String>,
    id: Option<String>,
}

impl From<Me> for Claims {
    fn from(me: Me) -> Claims {
        Claims {
            preferred_username: me.user_principal_name,
            name: me.display_name,
            oid: me.id,
            tid: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_names_from_an_id_token() {
        let payload = URL_SAFE_NO_PAD
            .encode(r#"{"aud":"x","preferred_username":"svc@contoso.com","name":"Knowledge Bot","oid":"o1"}"#);
        let jwt = format!("eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.{payload}.");
        let c = Claims::from_id_token(&jwt).unwrap();
        assert_eq!(c.display(), "Knowledge Bot <svc@contoso.com>");
        assert_eq!(c.oid.as_deref(), Some("o1"));
        assert!(Claims::from_id_token("not-a-jwt").is_none());
        // The docs' truncated sample is not decodable: the caller falls back to /me.
        assert!(Claims::from_id_token(
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJhdWQiOiIyZDRkMTFhMi1mODE0LTQ2YTctOD..."
        )
        .is_none());
    }
}
