//! Message content generation: the mix of forwardable bodies (generated text with a unique
//! marker, mentions of every kind, quoted replies, plain text, fixture bodies) and of messages
//! a connector must skip (system events, bots, guests, empty bodies, deletions).
//!
//! Every decision draws from the caller's [`Rng`], so the same seed gives the same tenant.
//! The kind of a generated message is drawn when the tenant is built ([`Kind::draw`]); its
//! content is rendered only when served, from a per-message seed ([`Gen::of_kind`]), so a
//! tenant of a million messages keeps a few words per message instead of their bodies.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::body::{mention_user_ids, BodyBuilder};
use crate::directory::People;
use crate::parts::{self, FixtureMention};
use crate::prng::Rng;
use crate::truth::{Expected, SkipKind};

#[rustfmt::skip]
const WORDS: &[&str] = &[
    "budget", "release", "review", "customer", "roadmap", "deadline", "meeting", "draft",
    "invoice", "contract", "design", "prototype", "feedback", "migration", "database", "server",
    "deploy", "schedule", "quarter", "forecast", "report", "slides", "workshop", "onboarding",
    "security", "audit", "vendor", "pricing", "proposal", "support", "ticket", "escalation",
    "sprint", "backlog", "estimate", "milestone", "training", "policy", "analysis", "dashboard",
    "the", "a", "we", "should", "could", "please", "check", "update", "share", "before",
    "after", "friday", "monday", "next", "week", "today", "final", "version", "for", "with",
];

const BOT_NAMES: &[&str] = &["Workflows", "Build Bot", "Polly", "Jira Cloud"];

/// Who a message is from.
#[derive(Debug, Clone)]
pub(crate) enum Sender {
    User { id: String, name: String },
    App { id: String, name: String },
    Nobody,
}

/// The mutable part of a chatMessage: everything an edit can change.
#[derive(Debug, Clone)]
pub(crate) struct Content {
    pub system: bool,
    pub from: Sender,
    pub body_type: &'static str,
    pub body: String,
    pub mentions: Vec<Value>,
    pub attachments: Vec<Value>,
    pub event_detail: Option<Value>,
    pub expected: Expected,
}

/// Where the message is posted (for conversation mentions and event details).
pub(crate) struct Place<'a> {
    pub team_id: &'a str,
    pub team_name: &'a str,
    pub channel_id: &'a str,
    pub channel_name: &'a str,
    pub tenant_guid: &'a str,
    pub sharepoint_host: &'a str,
}

/// Where a generated message's text marker comes from.
pub(crate) enum Markers<'a> {
    /// Drawn at random, kept unique against the set (mutations).
    Fresh(&'a mut BTreeSet<String>),
    /// Fixed by the message's identity (content rendered on demand, see [`marker_for`]).
    Fixed(String),
}

/// One generation call's context.
pub(crate) struct Gen<'a> {
    pub people: &'a People,
    pub place: Place<'a>,
    pub rng: &'a mut Rng,
    pub markers: Markers<'a>,
}

/// What a generated message is, decided when the tenant is built; the content follows from
/// it and the message's seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    System,
    Bot,
    /// Forwardable content that starts out deleted.
    Deleted,
    Guest,
    Empty,
    Forward,
}

impl Kind {
    /// The mix. System events only occur as roots, like in Teams.
    pub(crate) fn draw(rng: &mut Rng, root: bool, has_guests: bool) -> Kind {
        match rng.below(100) {
            0..=3 if root => Kind::System,
            4..=7 => Kind::Bot,
            8..=11 => Kind::Deleted,
            12..=16 if has_guests => Kind::Guest,
            17..=21 => Kind::Empty,
            _ => Kind::Forward,
        }
    }
}

/// The unique marker of the generated message that was `age` milliseconds old when the
/// tenant was generated (ids are unique creation milliseconds, so ages are unique too): an
/// affine bijection modulo 36^10, spelled in base 36. Mutations draw `mx` markers instead,
/// so the two never meet.
pub(crate) fn marker_for(seed: u64, age: i64) -> String {
    const N: u128 = 3_656_158_440_062_976; // 36^10
    const A: u128 = 25_214_903_917; // coprime to 2 and 3
    let x = (age.unsigned_abs() as u128 % N * A + u128::from(seed) * 7_919) % N;
    let mut digits = [0u8; 10];
    let mut v = x;
    for d in digits.iter_mut().rev() {
        *d = b"abcdefghijklmnopqrstuvwxyz0123456789"[(v % 36) as usize];
        v /= 36;
    }
    format!("mk{}", String::from_utf8_lossy(&digits))
}

impl Gen<'_> {
    /// The content of a message of `kind` (a deleted one keeps the content it had).
    pub(crate) fn of_kind(&mut self, kind: Kind) -> Content {
        match kind {
            Kind::System => self.system_event(),
            Kind::Bot => self.bot(),
            Kind::Deleted | Kind::Forward => self.forward(true),
            Kind::Guest => match self.pick(&{ self.people }.guests) {
                Some(guest) => {
                    let mut c = self.forward_by(guest, false);
                    c.expected = Expected::Skip(SkipKind::NoMail);
                    c
                }
                None => self.forward(true),
            },
            Kind::Empty => self.empty(),
        }
    }

    /// A message a connector must forward, by a random member.
    pub(crate) fn forward(&mut self, allow_fixture: bool) -> Content {
        let author = self.member();
        self.forward_by(author, allow_fixture)
    }

    /// A forwardable body written by `author` (the expectation assumes the author has a mail).
    pub(crate) fn forward_by(&mut self, author: usize, allow_fixture: bool) -> Content {
        if allow_fixture && self.rng.chance(10) {
            return self.fixture_body(author);
        }
        let people = self.people;
        let marker = self.marker();
        let mut b = BodyBuilder::default();
        match self.rng.below(100) {
            0..=9 => b.text = true,
            10..=21 => {
                let u = self.member();
                b.mention_user(self.people, u, None);
            }
            22..=31 => match self.pick(&people.multiword) {
                Some(u) => b.mention_split(self.people, u),
                None => b.mention_user(self.people, self.member(), None),
            },
            32..=38 => {
                if let Some(g) = self.pick(&people.guests) {
                    b.mention_user(self.people, g, None);
                }
                if self.rng.chance(50) {
                    b.mention_user(self.people, self.member(), None);
                }
            }
            39..=47 => self.mention_conversation(&mut b),
            48..=55 => b.quote = Some(self.quote()),
            56..=63 => {
                // The same person twice, in two paragraphs: the truth lists them once.
                let u = self.member();
                b.mention_user(self.people, u, None);
                let lead = std::mem::take(&mut b.lead);
                b.second_line = Some(format!("{lead}{}", self.sentence(None)));
                b.mention_user(self.people, u, None);
            }
            _ => {}
        }
        let sentence = self.sentence(Some(&marker));
        let (body_type, body) = b.render(&sentence, self.rng.chance(50));
        self.content(author, body_type, body, b.mentions, Some(marker))
    }

    fn content(
        &mut self,
        author: usize,
        body_type: &'static str,
        body: String,
        mentions: Vec<Value>,
        marker: Option<String>,
    ) -> Content {
        let user = &self.people.users[author];
        let mut mails: Vec<String> = mention_user_ids(&mentions)
            .filter_map(|id| self.people.users.iter().find(|u| u.id == id))
            .filter_map(|u| u.mail.clone())
            .collect();
        mails.sort();
        mails.dedup();
        Content {
            system: false,
            from: Sender::User {
                id: user.id.clone(),
                name: user.display_name.clone(),
            },
            body_type,
            attachments: parts::attachments_for(&body, self.place.sharepoint_host),
            body,
            mentions,
            event_detail: None,
            expected: Expected::Forward {
                author: user.mail.clone().unwrap_or_default(),
                mentions: mails,
                marker,
            },
        }
    }

    fn fixture_body(&mut self, author: usize) -> Content {
        let (html, plan) = parts::fixture(self.rng.index(parts::usable_fixture_count()));
        let texts = parts::at_texts(html);
        let first = self.member();
        let second = self.other_member(first);
        let mentions = plan
            .iter()
            .zip(&texts)
            .enumerate()
            .map(|(id, (kind, text))| match kind {
                FixtureMention::Person(0) => {
                    parts::user_mention(id, text, &self.people.users[first])
                }
                FixtureMention::Person(_) => {
                    parts::user_mention(id, text, &self.people.users[second])
                }
                FixtureMention::Team => parts::conversation_mention(
                    id,
                    text,
                    self.place.team_id,
                    self.place.team_name,
                    "team",
                ),
                FixtureMention::Channel => parts::conversation_mention(
                    id,
                    text,
                    self.place.channel_id,
                    self.place.channel_name,
                    "channel",
                ),
                FixtureMention::Tag => parts::tag_mention(id, text, &self.rng.hex(32)),
            })
            .collect();
        self.content(author, "html", html.to_owned(), mentions, None)
    }

    fn mention_conversation(&mut self, b: &mut BodyBuilder) {
        let id = b.mentions.len();
        let p = &self.place;
        let (text, mention) = match self.rng.below(3) {
            0 => (
                p.channel_name.to_owned(),
                parts::conversation_mention(
                    id,
                    p.channel_name,
                    p.channel_id,
                    p.channel_name,
                    "channel",
                ),
            ),
            1 => (
                p.team_name.to_owned(),
                parts::conversation_mention(id, p.team_name, p.team_id, p.team_name, "team"),
            ),
            _ => (
                "Reviewers".to_owned(),
                parts::tag_mention(id, "Reviewers", &self.rng.hex(32)),
            ),
        };
        b.lead
            .push_str(&format!("<at id=\"{id}\">{text}</at>&nbsp;"));
        b.mentions.push(mention);
    }

    fn quote(&mut self) -> String {
        let quoted = &self.people.users[self.member()];
        let item = 1_600_000_000_000 + self.rng.below(100_000_000_000);
        format!(
            "<blockquote itemscope=\"\" itemtype=\"http://schema.skype.com/Reply\" itemid=\"{item}\">\n\
             <strong itemprop=\"mri\" itemid=\"8:orgid:{}\">{}</strong><span itemprop=\"time\" itemid=\"{item}\"></span>\n\
             <p itemprop=\"preview\">{}</p>\n</blockquote>\n",
            quoted.id,
            quoted.display_name,
            self.sentence(None)
        )
    }

    fn system_event(&mut self) -> Content {
        let initiator = &self.people.users[self.member()];
        let member = &self.people.users[self.member()];
        let p = &self.place;
        Content {
            system: true,
            from: Sender::Nobody,
            body_type: "html",
            body: "<systemEventMessage/>".to_owned(),
            mentions: vec![],
            attachments: vec![],
            event_detail: Some(parts::event_detail(
                self.rng.next_u64(),
                p.team_id,
                p.channel_id,
                initiator,
                member,
                p.tenant_guid,
            )),
            expected: Expected::Skip(SkipKind::SystemEvent),
        }
    }

    fn bot(&mut self) -> Content {
        // Bots get a marker too, so privacy scans also catch text that was read but not sent.
        let marker = self.marker();
        let name = *self.rng.pick(BOT_NAMES);
        Content {
            system: false,
            from: Sender::App {
                id: self.rng.guid(),
                name: name.to_owned(),
            },
            body_type: "html",
            body: format!("<p>{}</p>", self.sentence(Some(&marker))),
            mentions: vec![],
            attachments: vec![],
            event_detail: None,
            expected: Expected::Skip(SkipKind::Bot),
        }
    }

    fn empty(&mut self) -> Content {
        let body = match self.rng.below(3) {
            0 => "<p>&nbsp;</p>".to_owned(),
            1 => format!("<attachment id=\"{}\"></attachment>", self.rng.hex(32)),
            _ => {
                "<p><emoji id=\"1f44d_thumbsup\" alt=\"\u{1f44d}\" title=\"Thumbs up\"></emoji></p>"
                    .to_owned()
            }
        };
        let author = self.member();
        let mut c = self.content(author, "html", body, vec![], None);
        c.expected = Expected::Skip(SkipKind::Empty);
        c
    }

    fn marker(&mut self) -> String {
        match &mut self.markers {
            Markers::Fixed(m) => m.clone(),
            Markers::Fresh(set) => loop {
                let m = format!("mx{}", self.rng.alnum(10));
                if set.insert(m.clone()) {
                    return m;
                }
            },
        }
    }

    fn sentence(&mut self, marker: Option<&str>) -> String {
        let n = 5 + self.rng.index(9);
        let mut words: Vec<&str> = (0..n).map(|_| *self.rng.pick(WORDS)).collect();
        if let Some(m) = marker {
            // Never first: the sentence's first letter is capitalised.
            let at = 1 + self.rng.index(n);
            words.insert(at, m);
        }
        let mut s = words.join(" ");
        if let Some(first) = s.get(0..1) {
            s.replace_range(0..1, &first.to_uppercase());
        }
        s.push('.');
        s
    }

    fn member(&mut self) -> usize {
        *self.rng.pick(&self.people.members)
    }

    fn other_member(&mut self, not: usize) -> usize {
        let others: Vec<usize> = self
            .people
            .members
            .iter()
            .copied()
            .filter(|&m| m != not)
            .collect();
        self.pick(&others).unwrap_or(not)
    }

    fn pick(&mut self, from: &[usize]) -> Option<usize> {
        (!from.is_empty()).then(|| *self.rng.pick(from))
    }
}
