//! `[privacy]`: the people who must never be mined (a GDPR Art. 21 objection, a works
//! council agreement). Entries are mails, UPNs or Entra object ids, inline
//! (`exclude_people`) or one per line in `exclude_people_file`, which HR maintains apart
//! from the config and which is read again by every run ([`Privacy::people`]).
//!
//! A missing or unreadable file is exit 78, never "exclude nobody". No error, log line or
//! printed config ever shows an entry: they name people who asked not to be processed, so
//! only counts and line numbers leave this module.

use std::path::{Path, PathBuf};

use crate::exit::{Fatal, Result};

/// One opt-out entry, normalised for matching: object ids and addresses in lower case.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum PersonEntry {
    /// An Entra object id (a GUID).
    Id(String),
    /// A mail or UPN (anything with an `@`; a guest's UPN contains `#EXT#`).
    Address(String),
}

// Entries are personal data: a stray `{:?}` must not print one.
impl std::fmt::Debug for PersonEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PersonEntry::Id(_) => "Id([redacted])",
            PersonEntry::Address(_) => "Address([redacted])",
        })
    }
}

impl PersonEntry {
    /// Parses one entry; `None` when it is neither an object id nor an address.
    pub fn parse(s: &str) -> Option<PersonEntry> {
        let s = s.trim();
        if is_guid(s) {
            return Some(PersonEntry::Id(s.to_ascii_lowercase()));
        }
        let (local, domain) = s.split_once('@')?;
        let plausible = !local.is_empty()
            && !domain.is_empty()
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        plausible.then(|| PersonEntry::Address(s.to_lowercase()))
    }
}

/// `8-4-4-4-12` hexadecimal digits.
pub fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `[privacy]`, validated: the inline entries parsed, the file named (read per run).
#[derive(Clone, Default)]
pub struct Privacy {
    inline: Vec<PersonEntry>,
    pub file: Option<PathBuf>,
}

impl std::fmt::Debug for Privacy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Privacy")
            .field("exclude_people", &self.inline.len())
            .field("exclude_people_file", &self.file)
            .finish()
    }
}

impl Privacy {
    /// Checks the inline list; the file is read by [`Privacy::people`].
    pub fn new(inline: &[String], file: Option<PathBuf>) -> Result<Privacy> {
        let inline = inline
            .iter()
            .enumerate()
            .map(|(i, e)| {
                PersonEntry::parse(e).ok_or_else(|| {
                    Fatal::config(format!(
                        "[privacy] exclude_people entry {} is neither a mail, a UPN nor an object id (a GUID); fix or remove it",
                        i + 1
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(Fatal::config(
                "[privacy] exclude_people_file is empty; name the opt-out file or remove the key",
            ));
        }
        Ok(Privacy { inline, file })
    }

    /// Whether any opt-out is configured (the file may still hold no entry).
    pub fn configured(&self) -> bool {
        !self.inline.is_empty() || self.file.is_some()
    }

    /// How many inline entries there are (`config check` shows the count, never them).
    pub fn inline_count(&self) -> usize {
        self.inline.len()
    }

    /// Every entry: the inline ones and the file's, read now. Exit 78 when the file is
    /// missing, unreadable or holds a line that is not an entry.
    pub fn people(&self) -> Result<Vec<PersonEntry>> {
        let mut out = self.inline.clone();
        if let Some(path) = &self.file {
            out.extend(read_file(path)?);
        }
        out.sort_by(|a, b| key(a).cmp(key(b)));
        out.dedup();
        Ok(out)
    }
}

fn key(e: &PersonEntry) -> &str {
    match e {
        PersonEntry::Id(s) | PersonEntry::Address(s) => s,
    }
}

/// The opt-out file: one entry per line; blank lines and `#` comments (a whole line, or
/// after a space: a guest's UPN has `#EXT#` inside) are ignored.
fn read_file(path: &Path) -> Result<Vec<PersonEntry>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Fatal::config(format!(
            "[privacy] exclude_people_file {} cannot be read ({e}); the run does not start without its opt-out list: restore the file (an empty file excludes nobody)",
            path.display()
        ))
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let entry = strip_comment(line).trim();
        if entry.is_empty() {
            continue;
        }
        out.push(PersonEntry::parse(entry).ok_or_else(|| {
            Fatal::config(format!(
                "[privacy] exclude_people_file {} line {} is neither a mail, a UPN nor an object id (a GUID); one entry per line, # starts a comment",
                path.display(),
                n + 1
            ))
        })?);
    }
    Ok(out)
}

fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    match line.find(" #").or_else(|| line.find("\t#")) {
        Some(i) => &line[..i],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_ids_or_addresses_in_lower_case() {
        assert_eq!(
            PersonEntry::parse(" 6E7B768E-07E2-4810-8459-485F84F8F204 "),
            Some(PersonEntry::Id(
                "6e7b768e-07e2-4810-8459-485f84f8f204".into()
            ))
        );
        assert_eq!(
            PersonEntry::parse("Megan.Bowen@Contoso.com"),
            Some(PersonEntry::Address("megan.bowen@contoso.com".into()))
        );
        assert!(matches!(
            PersonEntry::parse("jo_outlook.com#EXT#@contoso.onmicrosoft.com"),
            Some(PersonEntry::Address(_))
        ));
        for bad in ["Megan Bowen", "", "@contoso.com", "megan@", "a b@c.d"] {
            assert_eq!(PersonEntry::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_file_has_comments_and_a_missing_file_is_78() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opt-out.txt");
        std::fs::write(
            &path,
            "# objections, maintained by HR\n\nmegan@contoso.com   # ticket 12\njo_outlook.com#EXT#@contoso.onmicrosoft.com\n",
        )
        .unwrap();
        let p = Privacy::new(&["alex@contoso.com".into()], Some(path.clone())).unwrap();
        let people = p.people().unwrap();
        assert_eq!(people.len(), 3);
        assert!(people.contains(&PersonEntry::Address(
            "jo_outlook.com#ext#@contoso.onmicrosoft.com".into()
        )));
        std::fs::write(&path, "megan@contoso.com\nnot an entry\n").unwrap();
        let e = p.people().unwrap_err();
        assert_eq!(e.code, crate::exit::Code::Config);
        assert!(e.message.contains("line 2") && !e.message.contains("not an entry"));
        std::fs::remove_file(&path).unwrap();
        let e = p.people().unwrap_err();
        assert_eq!(e.code, crate::exit::Code::Config);
        assert!(!e.message.contains("megan"), "{}", e.message);
    }

    #[test]
    fn debug_output_names_nobody() {
        let p = Privacy::new(&["megan@contoso.com".into()], None).unwrap();
        assert!(!format!("{p:?}").contains("megan"));
        assert!(!format!("{:?}", p.people().unwrap()).contains("megan"));
    }
}
