//! The people a run must leave out (`[privacy]`) or erase (`forget --person`), resolved
//! through the directory while the users list is read: an entry naming one of a person's
//! mail, UPN, former addresses or object id matches that person, and from then on the
//! person is known by object id only — the id Graph puts in `from` and `mentions`, which
//! survives a change of mail.
//!
//! Guests: a guest's UPN is `local_domain#EXT#@tenant`; an entry with the guest's own
//! address (`local@domain`) matches it even where the directory has no mail for the guest.
//! Renamed mails: an entry naming the former mail matches while Graph still lists it among
//! the person's `proxyAddresses` (readable with `User.Read.All`; with the default
//! `User.ReadBasic.All` Graph leaves them out, and `doctor` counts the entries that match
//! no one). An object id matches even when the directory does not list the person.
//!
//! Held in memory for one run; never logged, never stored (counts only).

use std::collections::{HashMap, HashSet};

use crate::config::PersonEntry;

/// A resolved set of people: object ids (lower case) and display names.
#[derive(Default)]
pub struct People {
    ids: HashSet<String>,
    names: Vec<String>,
}

impl std::fmt::Debug for People {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "People({} ids)", self.ids.len())
    }
}

impl People {
    /// Whether `id` (from `from.user.id` or a mention) is one of these people.
    pub fn contains(&self, id: &str) -> bool {
        !self.ids.is_empty()
            && (self.ids.contains(id) || self.ids.contains(&id.to_ascii_lowercase()))
    }

    /// Display names, for removing them from text.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether every one of `other`'s ids is here too.
    pub fn covers(&self, other: &People) -> bool {
        other.ids.iter().all(|id| self.ids.contains(id))
    }

    /// Adds `other`'s people (`forget`: the person is left out of what it re-sends).
    pub fn absorb(&mut self, other: &People) {
        self.ids.extend(other.ids.iter().cloned());
        for n in &other.names {
            if !self.names.contains(n) {
                self.names.push(n.clone());
            }
        }
    }

    /// The sorted object ids, for a digest that names nobody (`forget`'s job key).
    pub fn sorted_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.ids.iter().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }
}

/// One directory user, as far as matching needs it.
pub struct UserRecord<'a> {
    pub id: &'a str,
    pub mail: Option<&'a str>,
    pub upn: Option<&'a str>,
    pub display_name: Option<&'a str>,
    pub proxy_addresses: &'a [String],
}

/// Matches the users of the directory against entries as the pages come in.
pub struct Resolver {
    /// Entry text → its index in `matched`.
    index: HashMap<String, usize>,
    matched: Vec<bool>,
    people: People,
}

impl Resolver {
    pub fn new(entries: &[PersonEntry]) -> Resolver {
        let mut r = Resolver {
            index: HashMap::with_capacity(entries.len()),
            matched: vec![false; entries.len()],
            people: People::default(),
        };
        for (i, e) in entries.iter().enumerate() {
            let key = match e {
                // An object id needs no directory: Graph's messages carry it.
                PersonEntry::Id(id) => {
                    r.people.ids.insert(id.clone());
                    id
                }
                PersonEntry::Address(a) => a,
            };
            r.index.insert(key.clone(), i);
        }
        r
    }

    /// Looks at one directory user; the person is added when any of their keys is listed.
    pub fn user(&mut self, u: &UserRecord) {
        if self.index.is_empty() {
            return;
        }
        let mut hit = false;
        for key in keys(u) {
            if let Some(&i) = self.index.get(&key) {
                self.matched[i] = true;
                hit = true;
            }
        }
        if hit {
            self.people.ids.insert(u.id.to_ascii_lowercase());
            if let Some(name) = u
                .display_name
                .map(str::trim)
                .filter(|n| n.chars().count() > 1)
            {
                if !self.people.names.iter().any(|n| n == name) {
                    self.people.names.push(name.to_string());
                }
            }
        }
    }

    /// The people found, and how many entries matched no directory user (object ids
    /// included: they still match messages, but no one in the directory has them).
    pub fn finish(self) -> (People, usize) {
        let unmatched = self.matched.iter().filter(|m| !**m).count();
        (self.people, unmatched)
    }
}

/// Every lower-cased key of a user an entry may name.
fn keys(u: &UserRecord) -> Vec<String> {
    let mut out = vec![u.id.to_ascii_lowercase()];
    out.extend(u.mail.map(str::to_lowercase));
    if let Some(upn) = u.upn.map(str::to_lowercase) {
        out.extend(guest_address(&upn));
        out.push(upn);
    }
    for p in u.proxy_addresses {
        // `SMTP:` is the primary address, `smtp:` the others (former mails among them).
        if let Some((kind, addr)) = p.split_once(':') {
            if kind.eq_ignore_ascii_case("smtp") {
                out.push(addr.to_lowercase());
            }
        }
    }
    out
}

/// `jo_outlook.com#ext#@contoso.onmicrosoft.com` → `jo@outlook.com`: the address a guest
/// was invited with (the last `_` before `#ext#` stands for the `@`).
fn guest_address(upn: &str) -> Option<String> {
    let (invited, _) = upn.split_once("#ext#@")?;
    let (local, domain) = invited.rsplit_once('_')?;
    (!local.is_empty() && !domain.is_empty()).then(|| format!("{local}@{domain}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user<'a>(
        id: &'a str,
        mail: Option<&'a str>,
        upn: &'a str,
        proxies: &'a [String],
    ) -> UserRecord<'a> {
        UserRecord {
            id,
            mail,
            upn: Some(upn),
            display_name: Some("Megan Bowen"),
            proxy_addresses: proxies,
        }
    }

    fn entries(list: &[&str]) -> Vec<PersonEntry> {
        list.iter()
            .map(|e| PersonEntry::parse(e).unwrap())
            .collect()
    }

    #[test]
    fn mail_upn_and_id_of_one_person_all_match_that_person() {
        for entry in [
            "Megan@Contoso.com",
            "mbowen@contoso.onmicrosoft.com",
            "48D31887-5FAD-4D73-A9F5-3C356E68A038",
        ] {
            let mut r = Resolver::new(&entries(&[entry]));
            r.user(&user(
                "48d31887-5fad-4d73-a9f5-3c356e68a038",
                Some("megan@contoso.com"),
                "mbowen@contoso.onmicrosoft.com",
                &[],
            ));
            r.user(&user(
                "11111111-5fad-4d73-a9f5-3c356e68a038",
                Some("alex@contoso.com"),
                "alex@contoso.com",
                &[],
            ));
            let (people, unmatched) = r.finish();
            assert_eq!(unmatched, 0, "{entry}");
            assert_eq!(people.len(), 1, "{entry}");
            assert!(people.contains("48D31887-5FAD-4D73-A9F5-3C356E68A038"));
            assert_eq!(people.names(), ["Megan Bowen"]);
        }
    }

    #[test]
    fn guests_match_by_the_address_they_were_invited_with() {
        let mut r = Resolver::new(&entries(&["jo.doe@outlook.com"]));
        r.user(&user(
            "22222222-5fad-4d73-a9f5-3c356e68a038",
            None,
            "jo.doe_outlook.com#EXT#@contoso.onmicrosoft.com",
            &[],
        ));
        let (people, unmatched) = r.finish();
        assert_eq!((people.len(), unmatched), (1, 0));
    }

    #[test]
    fn a_former_mail_matches_through_proxy_addresses() {
        let proxies = vec![
            "SMTP:megan.smith@contoso.com".to_string(),
            "smtp:megan@contoso.com".to_string(),
        ];
        let mut r = Resolver::new(&entries(&["megan@contoso.com"]));
        r.user(&user(
            "33333333-5fad-4d73-a9f5-3c356e68a038",
            Some("megan.smith@contoso.com"),
            "megan.smith@contoso.com",
            &proxies,
        ));
        assert_eq!(r.finish().0.len(), 1);
    }

    #[test]
    fn unmatched_entries_are_counted_and_ids_still_apply() {
        let id = "44444444-5fad-4d73-a9f5-3c356e68a038";
        let mut r = Resolver::new(&entries(&["gone@contoso.com", id]));
        r.user(&user(
            "55555555-5fad-4d73-a9f5-3c356e68a038",
            Some("alex@contoso.com"),
            "alex@contoso.com",
            &[],
        ));
        let (people, unmatched) = r.finish();
        assert_eq!(unmatched, 2);
        assert!(people.contains(id));
        assert!(!format!("{people:?}").contains("4444"));
    }
}
