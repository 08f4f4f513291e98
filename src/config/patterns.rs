//! `[crawl] exclude_channels`: which channels are never requested. An entry is a channel
//! id (`19:…@thread.tacv2`) or a `"Team name/Channel name"` pattern where `*` matches any
//! run of characters, compared without regard to case (`"*/HR*"`, `"Legal/*"`). A pattern
//! is matched against the whole `team/channel` string, so a `/` inside a team name needs
//! no escaping; it is also tried on `team id/channel id`.

use crate::exit::{Fatal, Result};

/// One `exclude_channels` entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelPattern {
    /// As written in the config (`doctor` lists what each entry matched).
    pub raw: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A channel id, lower-cased.
    Id(String),
    /// A lower-cased glob over `team/channel`.
    Glob(Vec<char>),
}

/// What a pattern is matched against: one channel and its team.
pub struct ChannelName<'a> {
    pub team_id: &'a str,
    pub team_name: Option<&'a str>,
    pub channel_id: &'a str,
    pub channel_name: Option<&'a str>,
}

impl ChannelPattern {
    /// Parses entry number `n` (1-based, for the error) of `[crawl] exclude_channels`.
    pub fn parse(raw: &str, n: usize) -> Result<ChannelPattern> {
        let s = raw.trim();
        let kind = if s.contains('/') {
            Kind::Glob(s.to_lowercase().chars().collect())
        } else if looks_like_channel_id(s) {
            Kind::Id(s.to_lowercase())
        } else {
            return Err(Fatal::config(format!(
                "[crawl] exclude_channels entry {n} ({s:?}) is neither a channel id (19:…@thread.tacv2) nor \"Team/Channel\"; write \"*/{s}\" to exclude every channel of that name"
            )));
        };
        Ok(ChannelPattern {
            raw: s.to_string(),
            kind,
        })
    }

    /// Whether `c` is excluded by this entry.
    pub fn matches(&self, c: &ChannelName) -> bool {
        match &self.kind {
            Kind::Id(id) => c.channel_id.to_lowercase() == *id,
            Kind::Glob(glob) => {
                let by_ids = format!("{}/{}", c.team_id, c.channel_id);
                let names = c.team_name.zip(c.channel_name);
                glob_matches(glob, &by_ids.to_lowercase())
                    || names.is_some_and(|(t, ch)| {
                        glob_matches(glob, &format!("{t}/{ch}").to_lowercase())
                    })
            }
        }
    }

    /// Whether matching needs the team's display name (a glob whose team part is not `*`).
    pub fn needs_team_name(&self) -> bool {
        match &self.kind {
            Kind::Id(_) => false,
            Kind::Glob(g) => !g.starts_with(&['*', '/']),
        }
    }
}

fn looks_like_channel_id(s: &str) -> bool {
    s.starts_with("19:") && s.contains('@') && !s.contains(char::is_whitespace)
}

/// `*` matches any run of characters (`/` included); everything else matches itself.
/// Greedy with one backtrack point (the last `*`): at worst glob length × text length,
/// never exponential, whatever a channel is named.
fn glob_matches(glob: &[char], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let (mut g, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if g < glob.len() && glob[g] == '*' {
            star = Some((g, t));
            g += 1;
        } else if g < glob.len() && glob[g] == text[t] {
            g += 1;
            t += 1;
        } else if let Some((sg, st)) = star {
            g = sg + 1;
            t = st + 1;
            star = Some((sg, st + 1));
        } else {
            return false;
        }
    }
    glob[g..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name<'a>(team: &'a str, channel: &'a str) -> ChannelName<'a> {
        ChannelName {
            team_id: "0c8f2a4e-aaaa-bbbb-cccc-000000000001",
            team_name: Some(team),
            channel_id: "19:abc@thread.tacv2",
            channel_name: Some(channel),
        }
    }

    fn p(s: &str) -> ChannelPattern {
        ChannelPattern::parse(s, 1).unwrap()
    }

    #[test]
    fn patterns_match_team_and_channel_names_without_case() {
        assert!(p("*/HR*").matches(&name("People", "hr confidential")));
        assert!(!p("*/HR*").matches(&name("People", "Chris")));
        assert!(p("Legal/*").matches(&name("LEGAL", "General")));
        assert!(!p("Legal/*").matches(&name("Legal Ops", "General")));
        assert!(p("R/D Lab/Secret").matches(&name("R/D Lab", "Secret")));
        assert!(p("*/Ünïcode").matches(&name("x", "ÜNÏCODE")));
        assert!(p("0C8F2A4E-aaaa-bbbb-cccc-000000000001/*").matches(&name("x", "y")));
    }

    #[test]
    fn an_id_matches_only_that_channel() {
        assert!(p("19:ABC@thread.tacv2").matches(&name("a", "b")));
        assert!(!p("19:abd@thread.tacv2").matches(&name("a", "b")));
    }

    #[test]
    fn a_bare_name_is_refused_with_a_hint() {
        let e = ChannelPattern::parse("HR", 2).unwrap_err();
        assert_eq!(e.code, crate::exit::Code::Config);
        assert!(e.message.contains("\"*/HR\""), "{}", e.message);
    }

    #[test]
    fn globs_stay_linear() {
        let glob: Vec<char> = "*a*a*a*a*a*a*a*b".chars().collect();
        let text = "a".repeat(5000);
        assert!(!glob_matches(&glob, &text));
        assert!(glob_matches(&['*'], ""));
        assert!(!glob_matches(&['a'], ""));
    }

    #[test]
    fn only_a_named_team_part_needs_the_team_name() {
        assert!(!p("*/HR").needs_team_name());
        assert!(p("Legal/*").needs_team_name());
        assert!(!p("19:abc@thread.tacv2").needs_team_name());
    }
}
