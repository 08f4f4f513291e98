//! The `scopes` check: does the token carry what the crawl needs (`DEFAULT_SCOPES`, or a
//! broader permission that covers it), and which granted scopes go beyond that.

use super::{Check, Failed};
use crate::config::DEFAULT_SCOPES;
use crate::exit::Code;

/// Broader delegated permissions that also allow what a needed scope allows (Graph
/// permissions reference, per API: list users, joinedTeams, list channels, channel delta).
fn broader(needed: &str) -> &'static [&'static str] {
    match needed {
        "User.ReadBasic.All" => &[
            "User.Read.All",
            "User.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ],
        "Team.ReadBasic.All" => &[
            "TeamSettings.Read.All",
            "TeamSettings.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ],
        "Channel.ReadBasic.All" => &[
            "ChannelSettings.Read.All",
            "ChannelSettings.ReadWrite.All",
            "Group.Read.All",
            "Group.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ],
        "ChannelMessage.Read.All" => &["Group.Read.All", "Group.ReadWrite.All"],
        _ => &[],
    }
}

/// Scopes every sign-in carries that grant no data access.
const SIGN_IN_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// Compares the token response's `scope` with what the crawl needs (`DEFAULT_SCOPES`) and
/// names the granted ones it does not need (least privilege).
pub(super) fn check_scopes(granted: Option<&str>) -> Check<((), String)> {
    let Some(granted) = granted else {
        return Ok((
            (),
            "the token response named no scopes; the Graph checks below show what works".into(),
        ));
    };
    // Entra ID writes Graph scopes short (`User.Read`) or long (`https://graph.microsoft.com/User.Read`).
    let granted: Vec<&str> = granted
        .split_whitespace()
        .map(|s| s.rsplit('/').next().unwrap_or(s))
        .collect();
    let has = |s: &str| granted.iter().any(|g| g.eq_ignore_ascii_case(s));
    let needed: Vec<&str> = DEFAULT_SCOPES
        .iter()
        .copied()
        .filter(|s| *s != "offline_access")
        .collect();
    let missing: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|n| !has(n) && !broader(n).iter().any(|b| has(b)))
        .collect();
    if !missing.is_empty() {
        return Err(Failed::new(
            Code::Auth,
            format!("the token lacks {}", missing.join(", ")),
            format!(
                "add the delegated permission(s) {} to the app registration, grant admin consent (Entra ID → App registrations → API permissions), then sign in again",
                missing.join(", ")
            ),
        ));
    }
    let more: Vec<&str> = granted
        .iter()
        .copied()
        .filter(|g| {
            !needed.iter().any(|n| n.eq_ignore_ascii_case(g))
                && !SIGN_IN_SCOPES.iter().any(|s| s.eq_ignore_ascii_case(g))
        })
        .collect();
    let mut detail = format!(
        "the token carries what the crawl needs ({})",
        needed.join(", ")
    );
    if !more.is_empty() {
        detail.push_str(&format!(
            "; more than needed: {} (least privilege: remove them from the app registration)",
            more.join(", ")
        ));
    }
    Ok(((), detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broader_scopes_cover_the_needed_ones_and_are_named() {
        let granted = "https://graph.microsoft.com/User.Read.All Team.ReadBasic.All \
                       Group.Read.All openid offline_access";
        let (_, detail) = check_scopes(Some(granted)).unwrap_or_else(|f| panic!("{}", f.why));
        assert!(
            detail.ends_with("more than needed: User.Read.All, Group.Read.All (least privilege: remove them from the app registration)"),
            "{detail}"
        );
    }

    #[test]
    fn a_missing_scope_is_an_auth_failure_that_names_it() {
        let f = check_scopes(Some("user.readbasic.all Team.ReadBasic.All")).unwrap_err();
        assert_eq!(f.code, Code::Auth);
        assert_eq!(
            f.why,
            "the token lacks Channel.ReadBasic.All, ChannelMessage.Read.All"
        );
        assert!(f.fix.contains("admin consent"), "{}", f.fix);
    }
}
