//! The generated directory: the technical user, members (some with multi-word names),
//! guests without mail, and room accounts, as `/users` lists them; people leave it or get
//! a new mail through `Change::Leave` / `Change::NewMail`.

use std::collections::HashSet;

use crate::prng::Rng;
use crate::tenant::numbered;

#[rustfmt::skip]
const FIRST: &[&str] = &[
    "Megan", "Alex", "Diego", "Isaiah", "Johanna", "Lidia", "Lynne", "Nestor", "Patti",
    "Pradeep", "Grady", "Henrietta", "Joni", "Irvin", "Adele", "Allan", "Christie", "Debra",
    "Enrico", "Lee",
];
#[rustfmt::skip]
const LAST: &[&str] = &[
    "Bowen", "Wilber", "Siciliani", "Langer", "Lauer", "Holloway", "Robbins", "Wilke",
    "Fernandez", "Gupta", "Archie", "Cantrell", "Sherman", "Sink", "Vance", "Deyoung", "Cline",
    "Berg", "Rossi", "Gu",
];
/// Names Teams splits over several `<at>` tags when mentioned.
#[rustfmt::skip]
const MULTIWORD: &[&str] = &[
    "Miguel de la Cruz", "Anna Maria Lopez", "Jan van der Berg", "Mary Ann Okafor",
    "Juan Carlos Ortega",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserKind {
    Technical,
    Member,
    Guest,
    Room,
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub id: String,
    pub display_name: String,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub mail: Option<String>,
    pub upn: String,
    pub kind: UserKind,
    /// Left the directory: `/users` lists them no more.
    pub left: bool,
    /// When they left or got a new mail (epoch ms).
    pub changed: Option<i64>,
    /// Mails they had before (privacy scans look for these too).
    pub former_mails: Vec<String>,
}

impl User {
    fn new(
        id: String,
        display_name: String,
        mail: Option<String>,
        upn: String,
        kind: UserKind,
    ) -> User {
        User {
            id,
            display_name,
            given_name: None,
            surname: None,
            mail,
            upn,
            kind,
            left: false,
            changed: None,
            former_mails: Vec::new(),
        }
    }
}

/// Who can appear in messages: indexes into `users`.
#[derive(Debug, Clone, Default)]
pub(crate) struct People {
    pub users: Vec<User>,
    pub members: Vec<usize>,
    pub guests: Vec<usize>,
    pub multiword: Vec<usize>,
}

/// The directory: the technical user first, then `n` people (every fifth a guest without
/// mail, some members with multi-word names), then one or two room accounts.
pub(crate) fn users(r: &mut Rng, n: usize, domain: &str, tenant_id: &str) -> People {
    let mut p = People::default();
    let mut taken = HashSet::new();
    p.users.push(User::new(
        r.guid(),
        "Knowledge Connector".to_owned(),
        Some(format!("svc-knowledge@{domain}")),
        format!("svc-knowledge@{domain}"),
        UserKind::Technical,
    ));
    for i in 0..n {
        let name = if i % 5 == 1 {
            numbered(MULTIWORD, i / 5)
        } else {
            format!("{} {}", r.pick(FIRST), r.pick(LAST))
        };
        let (given, surname) = name.split_once(' ').unwrap_or((&name, ""));
        let mut local = format!(
            "{}.{}",
            given.to_lowercase(),
            surname.replace(' ', "").to_lowercase()
        );
        while !taken.insert(local.clone()) {
            local.push_str(&r.below(10).to_string());
        }
        let guest = i % 5 == 3;
        let idx = p.users.len();
        let upn = if guest {
            format!("{local}_outlook.com#EXT#@{tenant_id}")
        } else {
            format!("{local}@{domain}")
        };
        let kind = if guest {
            UserKind::Guest
        } else {
            UserKind::Member
        };
        let mut user = User::new(
            r.guid(),
            name.clone(),
            (!guest).then(|| format!("{local}@{domain}")),
            upn,
            kind,
        );
        user.given_name = Some(given.to_owned());
        user.surname = Some(surname.to_owned());
        p.users.push(user);
        if guest {
            p.guests.push(idx);
        } else {
            p.members.push(idx);
            if name.split(' ').count() > 1 && i % 5 == 1 {
                p.multiword.push(idx);
            }
        }
    }
    for room in ["Adams", "Baker"].iter().take(if n < 5 { 1 } else { 2 }) {
        p.users.push(User::new(
            r.guid(),
            format!("Conf Room {room}"),
            Some(format!("{}@{domain}", room.to_lowercase())),
            format!("{}@{domain}", room.to_lowercase()),
            UserKind::Room,
        ));
    }
    if p.members.is_empty() {
        // Without people the technical user writes everything, so the mix still works.
        p.members.push(0);
    }
    p
}

impl People {
    /// The mail a connector reading the directory now finds for `id`: none for people who
    /// left or have no mail.
    pub(crate) fn mail_of(&self, id: &str) -> Option<&str> {
        self.users
            .iter()
            .find(|u| u.id == id && !u.left)
            .and_then(|u| u.mail.as_deref())
    }

    /// When the directory last changed for `id` (epoch ms).
    pub(crate) fn changed_of(&self, id: &str) -> Option<i64> {
        self.users
            .iter()
            .find(|u| u.id == id)
            .and_then(|u| u.changed)
    }

    /// Members still in the directory, who can write new messages.
    pub(crate) fn active_members(&self) -> Vec<usize> {
        let active: Vec<usize> = self
            .members
            .iter()
            .copied()
            .filter(|&i| !self.users[i].left)
            .collect();
        if active.is_empty() {
            vec![0]
        } else {
            active
        }
    }

    /// `id` leaves the directory at `at`; false for unknown ids and the technical user.
    pub(crate) fn leave(&mut self, id: &str, at: i64) -> bool {
        match self.users.iter_mut().find(|u| u.id == id) {
            Some(u) if u.kind != UserKind::Technical && !u.left => {
                u.left = true;
                u.changed = Some(at);
                true
            }
            _ => false,
        }
    }

    /// `id` gets a new, unused mail at `at`; false for unknown ids, people without a mail
    /// and the technical user.
    pub(crate) fn new_mail(&mut self, id: &str, at: i64) -> bool {
        let taken: HashSet<String> = self
            .users
            .iter()
            .flat_map(|u| u.mail.iter().chain(&u.former_mails).cloned())
            .collect();
        let Some(u) = self.users.iter_mut().find(|u| u.id == id) else {
            return false;
        };
        let Some(old) = u.mail.clone().filter(|_| u.kind != UserKind::Technical) else {
            return false;
        };
        let (local, domain) = old.split_once('@').unwrap_or((old.as_str(), "example.com"));
        let base = local.trim_end_matches(|c: char| c.is_ascii_digit());
        let mail = (2..)
            .map(|n| format!("{base}{n}@{domain}"))
            .find(|m| !taken.contains(m))
            .unwrap_or_default();
        u.former_mails.push(old);
        u.mail = Some(mail);
        u.changed = Some(at);
        true
    }
}
