//! User id → mail for the length of a run, compact: a tenant of 200 000 users is the
//! largest thing a run holds. Graph's user ids are GUIDs, kept as 128-bit numbers (not
//! 36-character strings); the mails sit end to end in one string. About 60 bytes a user,
//! where a map of two `String`s took about 150.

use std::collections::HashMap;

use super::People;

/// Where a mail sits in [`Directory::mails`].
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

/// User id → mail, held in memory only for the length of a run. Users without a mail
/// (guests, rooms) are absent: their messages are skipped, never guessed. With them, the
/// people this run must leave out and, for `forget`, the person to erase.
#[derive(Debug, Default)]
pub struct Directory {
    /// GUID ids, case-insensitively.
    guids: HashMap<u128, Span>,
    /// Any other id (Graph's are GUIDs; a test tenant's may not be), lower-cased.
    others: HashMap<Box<str>, Span>,
    /// Every mail, end to end.
    mails: String,
    /// Mails past the 4 GiB `Span` reaches (never in practice; kept correct all the same).
    overflow: HashMap<Box<str>, Box<str>>,
    /// `[privacy]` opt-outs: no document, no mention, no name in the text.
    pub excluded: People,
    /// `forget --person`: whose documents are deleted.
    pub target: People,
}

impl Directory {
    pub fn insert(&mut self, id: &str, mail: &str) {
        let span = u32::try_from(self.mails.len())
            .ok()
            .zip(u32::try_from(mail.len()).ok())
            .filter(|(start, len)| start.checked_add(*len).is_some());
        let Some((start, len)) = span else {
            self.overflow
                .insert(id.to_ascii_lowercase().into(), mail.into());
            return;
        };
        self.mails.push_str(mail);
        let span = Span { start, len };
        match guid(id) {
            Some(g) => self.guids.insert(g, span),
            None => self.others.insert(id.to_ascii_lowercase().into(), span),
        };
    }

    pub fn mail(&self, id: &str) -> Option<&str> {
        let span = match guid(id) {
            Some(g) => self.guids.get(&g),
            // Graph writes ids in lower case: look up as given, lower-case only on a miss.
            None => self
                .others
                .get(id)
                .or_else(|| self.others.get(id.to_ascii_lowercase().as_str())),
        };
        match span {
            Some(s) => self
                .mails
                .get(s.start as usize..(s.start as usize + s.len as usize)),
            None if self.overflow.is_empty() => None,
            None => self
                .overflow
                .get(id.to_ascii_lowercase().as_str())
                .map(|m| &**m),
        }
    }

    pub fn len(&self) -> usize {
        self.guids.len() + self.others.len() + self.overflow.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `id` as a number if it is a GUID (`8-4-4-4-12` hex digits, either case).
fn guid(id: &str) -> Option<u128> {
    let b = id.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let mut n: u128 = 0;
    for (i, &c) in b.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let digit = (c as char).to_digit(16)?;
        n = (n << 4) | u128::from(digit);
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_match_in_either_case_and_other_ids_too() {
        let mut d = Directory::default();
        d.insert("6E5B6A8C-1d2f-4b8e-9a3c-0f1e2d3c4b5a", "megan@contoso.com");
        d.insert("U-17", "alex@contoso.com");
        d.insert("6e5b6a8c-1d2f-4b8e-9a3c-0f1e2d3c4b5b", "adele@contoso.com");
        assert_eq!(
            d.mail("6e5b6a8c-1d2f-4b8e-9a3c-0f1e2d3c4b5a"),
            Some("megan@contoso.com")
        );
        assert_eq!(
            d.mail("6E5B6A8C-1D2F-4B8E-9A3C-0F1E2D3C4B5B"),
            Some("adele@contoso.com")
        );
        assert_eq!(d.mail("u-17"), Some("alex@contoso.com"));
        assert_eq!(d.mail("U-17"), Some("alex@contoso.com"));
        assert_eq!(d.mail("6e5b6a8c-1d2f-4b8e-9a3c-0f1e2d3c4b5c"), None);
        // Not a GUID although 36 long: looked up as text.
        assert_eq!(d.mail("6e5b6a8c_1d2f-4b8e-9a3c-0f1e2d3c4b5a"), None);
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn a_later_entry_for_the_same_user_wins() {
        let mut d = Directory::default();
        d.insert("6e5b6a8c-1d2f-4b8e-9a3c-0f1e2d3c4b5a", "old@contoso.com");
        d.insert("6e5b6a8c-1d2f-4b8e-9a3c-0f1e2d3c4b5a", "new@contoso.com");
        assert_eq!(
            d.mail("6e5b6a8c-1d2f-4b8e-9a3c-0f1e2d3c4b5a"),
            Some("new@contoso.com")
        );
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn guid_parsing_is_strict() {
        assert_eq!(guid("00000000-0000-0000-0000-000000000001"), Some(1));
        assert_eq!(guid("g0000000-0000-0000-0000-000000000001"), None);
        assert_eq!(guid("000000000-000-0000-0000-000000000001"), None);
        assert_eq!(guid("00000000-0000-0000-0000-00000000001"), None);
        assert_eq!(guid("+0000000-0000-0000-0000-000000000001"), None);
    }
}
