//! `doctor`'s view of the scope: what a run would cover (teams and channels by kind, with
//! what becomes of each), what every `[crawl] exclude_channels` entry matched, and how the
//! opt-out list resolves through the directory — counts only for people: the entries and
//! whom they match are never printed.

use super::Report;
use crate::config::{Config, PersonEntry};
use crate::graph::Graph;
use crate::sync::discovery::{self, Found};

/// Channel names printed per `exclude_channels` entry before "and N more".
const SHOWN: usize = 20;

/// `info scope` lines: the counts, then each exclusion entry with its matches.
pub(super) fn notes(report: &mut Report, config: &Config, found: &Found) {
    let coverage = found.scope.coverage();
    report.note(
        "info",
        "scope",
        &format!("teams: {}", line(&coverage.teams)),
    );
    report.note(
        "info",
        "scope",
        &format!("channels: {}", line(&coverage.channels)),
    );
    for pattern in &config.crawl.exclude_channels {
        let names: Vec<&str> = found
            .excluded
            .iter()
            .filter(|e| e.pattern == pattern.raw)
            .map(|e| e.name.as_str())
            .collect();
        let text = match names.len() {
            0 => format!(
                "exclude_channels {:?} matches no accessible channel",
                pattern.raw
            ),
            n if n <= SHOWN => format!(
                "exclude_channels {:?} matches {}",
                pattern.raw,
                names.join(", ")
            ),
            n => format!(
                "exclude_channels {:?} matches {} and {} more",
                pattern.raw,
                names[..SHOWN].join(", "),
                n - SHOWN
            ),
        };
        report.note("info", "scope", &text);
    }
    if coverage.channels_in("other_tenant") > 0 {
        report.note("info", "scope", "shared channels hosted in another tenant are skipped; set [crawl] include_cross_tenant_channels = true to crawl them (their people have no mail here)");
    }
}

/// `a joined (3 crawled, 1 excluded), …`: the kinds with anything in them.
fn line(
    table: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
) -> String {
    let parts: Vec<String> = table
        .iter()
        .filter_map(|(kind, states)| {
            let total: u64 = states.values().sum();
            let detail: Vec<String> = states
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(s, n)| format!("{n} {}", s.replace('_', " ")))
                .collect();
            (total > 0).then(|| format!("{total} {kind} ({})", detail.join(", ")))
        })
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// `info privacy`: how the opt-out list resolves (the list itself was read by the
/// `config` check). A `warn` when entries match no one.
pub(super) async fn privacy(report: &mut Report, graph: &Graph, people: &[PersonEntry]) {
    if people.is_empty() {
        report.note(
            "info",
            "privacy",
            "no opt-outs configured ([privacy] exclude_people, exclude_people_file)",
        );
        return;
    }
    match discovery::directory(graph, people, &[]).await {
        Ok(loaded) => {
            let found = loaded.directory.excluded.len();
            report.note(
                "info",
                "privacy",
                &format!(
                    "{} opt-out entries resolve to {found} people through the directory",
                    people.len()
                ),
            );
            if loaded.unmatched > 0 {
                report.note("warn", "privacy", &format!("{} opt-out entries match no one in the directory: a typo, a departed person, or a mail that changed (write the object id, or grant User.Read.All so former mails are read)", loaded.unmatched));
            }
        }
        Err(e) => report.note(
            "warn",
            "privacy",
            &format!("the users list could not be read to resolve the opt-outs: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::scope::Coverage;

    #[test]
    fn a_scope_line_names_the_kinds_that_have_anything() {
        let mut c = Coverage::default();
        c.teams.insert(
            "joined".into(),
            [("crawled".into(), 2), ("excluded".into(), 1)].into(),
        );
        c.teams
            .insert("associated".into(), [("crawled".into(), 0)].into());
        assert_eq!(line(&c.teams), "3 joined (2 crawled, 1 excluded)");
        assert_eq!(line(&Coverage::default().channels), "none");
    }
}
