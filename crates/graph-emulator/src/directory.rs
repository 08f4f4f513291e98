//! The generated directory: the technical user, members (some with multi-word names),
//! guests without mail, and room accounts, as `/users` lists them.

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
    p.users.push(User {
        id: r.guid(),
        display_name: "Knowledge Connector".to_owned(),
        given_name: None,
        surname: None,
        mail: Some(format!("svc-knowledge@{domain}")),
        upn: format!("svc-knowledge@{domain}"),
        kind: UserKind::Technical,
    });
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
        p.users.push(User {
            id: r.guid(),
            given_name: Some(given.to_owned()),
            surname: Some(surname.to_owned()),
            mail: (!guest).then(|| format!("{local}@{domain}")),
            upn: if guest {
                format!("{local}_outlook.com#EXT#@{tenant_id}")
            } else {
                format!("{local}@{domain}")
            },
            kind: if guest {
                UserKind::Guest
            } else {
                UserKind::Member
            },
            display_name: name.clone(),
        });
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
        p.users.push(User {
            id: r.guid(),
            display_name: format!("Conf Room {room}"),
            given_name: None,
            surname: None,
            mail: Some(format!("{}@{domain}", room.to_lowercase())),
            upn: format!("{}@{domain}", room.to_lowercase()),
            kind: UserKind::Room,
        });
    }
    if p.members.is_empty() {
        // Without people the technical user writes everything, so the mix still works.
        p.members.push(0);
    }
    p
}
