//! The emulated tenant: users, teams, channels and messages, generated deterministically from
//! a [`TenantSpec`]; the ground truth derived from them is in `expect`.
//!
//! Times are kept as epoch milliseconds (`i64`), the resolution Graph uses for message ids and
//! timestamps; a message id is its creation time in milliseconds, unique within the tenant.
//!
//! A message keeps only its times, flags and a seed: its content is rendered from the seed
//! each time it is served ([`Tenant::content`]), so a tenant of a million messages fits in a
//! few hundred megabytes. Content written by a mutation is stored as it is.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};

use crate::content::{marker_for, Content, Gen, Kind, Markers, Place};
use crate::directory::{self, People};
use crate::prng::Rng;
use crate::truth::Expected;
use crate::{Skew, TenantSpec};

#[rustfmt::skip]
const ORGS: &[&str] = &[
    "contoso", "fabrikam", "northwind", "tailspin", "adatum", "woodgrove", "litware",
    "proseware",
];
#[rustfmt::skip]
const TEAM_NAMES: &[&str] = &[
    "Marketing", "Engineering", "Sales EMEA", "Product Launch", "Finance", "Support",
    "Research", "Operations",
];
#[rustfmt::skip]
const CHANNEL_NAMES: &[&str] = &[
    "Planning", "Design Reviews", "Announcements", "Incidents", "Releases", "Random",
];
/// A message's content: rendered on demand from a seed, or stored once a mutation wrote it.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Seeded { seed: u64, kind: Kind },
    Stored(Box<Content>),
}

#[derive(Debug, Clone)]
pub(crate) struct Message {
    /// Creation time; the message id is its decimal spelling.
    pub created: i64,
    /// The root's id (its creation time), for a reply.
    pub reply_to: Option<i64>,
    pub modified: i64,
    pub edited: Option<i64>,
    pub deleted: Option<i64>,
    pub body: Body,
    /// Replies, oldest first (roots only).
    pub replies: Vec<Message>,
    /// Position in the channel's change order (roots only); see `graph` delta.
    pub seq: u64,
    /// Positions the root held before its later changes (roots only): a delta round keeps
    /// the set of roots it snapshotted, so a root that changes while a client pages through
    /// the round is still served at the place it had (and again in the next round).
    pub past_seqs: Vec<u64>,
    /// Newest change of the root or its replies (roots only), for `$filter=lastModifiedDateTime`.
    pub activity: i64,
    /// When the root last moved in the channel's change order (roots only): delta shows
    /// the thread as it is from then on.
    pub shown: i64,
    /// What few messages have: reactions, a hidden `lastModifiedDateTime`, an unmarked
    /// deletion. Boxed so a million plain messages do not pay for it.
    pub extra: Option<Box<Extra>>,
}

/// The rare parts of a message (see [`Message::extra`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Extra {
    /// (when, directory index of who) per reaction, oldest first.
    pub reactions: Vec<(i64, usize)>,
    /// Served with `lastModifiedDateTime: null`.
    pub hide_modified: bool,
    /// Deleted, but served with `deletedDateTime: null` (`from: null`, empty body).
    pub unmarked_delete: bool,
}

impl Message {
    pub(crate) fn id(&self) -> String {
        self.created.to_string()
    }

    pub(crate) fn reply_to_id(&self) -> Option<String> {
        self.reply_to.map(|r| r.to_string())
    }

    pub(crate) fn extra(&self) -> Option<&Extra> {
        self.extra.as_deref()
    }

    pub(crate) fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// Whether the content is one a connector must forward (deletion aside), without
    /// rendering it.
    pub(crate) fn forwardable_content(&self) -> bool {
        match &self.body {
            Body::Seeded { kind, .. } => matches!(kind, Kind::Forward | Kind::Deleted),
            Body::Stored(c) => matches!(c.expected, Expected::Forward { .. }),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Channel {
    pub id: String,
    pub name: String,
    pub description: String,
    pub private: bool,
    pub created: i64,
    /// Roots, oldest first by creation.
    pub roots: Vec<Message>,
    /// The channel's change counter: the highest `seq` handed out.
    pub seq: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Team {
    pub id: String,
    pub name: String,
    pub description: String,
    pub private: bool,
    /// Whether the technical user is a member (non-members are not listed and answer 403).
    pub member: bool,
    pub created: i64,
    pub channels: Vec<Channel>,
}

#[derive(Debug)]
pub(crate) struct Tenant {
    pub tenant_id: String,
    pub tenant_guid: String,
    pub sharepoint_host: String,
    pub client_id: String,
    pub people: People,
    pub technical: usize,
    pub teams: Vec<Team>,
    /// Markers of content written by mutations (generated content has [`marker_for`]'s).
    pub markers: BTreeSet<String>,
    /// Seed of the generated markers.
    pub seed: u64,
    /// When the tenant was generated: markers follow a message's age at that time, so equal
    /// specs give equal texts whenever they start.
    pub born: i64,
    /// The newest timestamp ever generated: mutations happen strictly after it.
    pub max_ts: i64,
    pub used_ids: HashSet<i64>,
    pub rng: Rng,
}

impl Tenant {
    pub(crate) fn generate(spec: &TenantSpec, skew: &Skew, now: i64) -> Tenant {
        let root = Rng::new(spec.seed);
        let mut r = root.fork("tenant");
        let org = *r.pick(ORGS);
        let tenant_id = format!("{org}.onmicrosoft.com");
        let mut t = Tenant {
            tenant_guid: r.guid(),
            client_id: r.guid(),
            sharepoint_host: format!("{org}.sharepoint.com"),
            people: directory::users(
                &mut root.fork("users"),
                spec.users,
                &format!("{org}.com"),
                &tenant_id,
            ),
            tenant_id,
            technical: 0,
            teams: Vec::new(),
            markers: BTreeSet::new(),
            seed: spec.seed,
            born: now,
            max_ts: now,
            used_ids: HashSet::new(),
            rng: root.fork("mutations"),
        };
        for ti in 0..spec.teams {
            let team = t.team(spec, skew, ti, now, &mut root.fork(&format!("team{ti}")));
            t.teams.push(team);
        }
        if spec.teams > 0 {
            t.teams.push(t.foreign_team(&mut root.fork("foreign"), now));
        }
        // Later ids are all after `max_ts` (see `mutate`): the set has done its job.
        t.used_ids = HashSet::new();
        t
    }

    fn team(&mut self, spec: &TenantSpec, skew: &Skew, ti: usize, now: i64, r: &mut Rng) -> Team {
        let span = (i64::from(spec.history_days) * 86_400_000).max(120_000);
        let mut team = Team {
            id: r.guid(),
            name: numbered(TEAM_NAMES, ti),
            description: format!("Team for {} work", numbered(TEAM_NAMES, ti)),
            private: ti % 3 == 1,
            member: true,
            created: now - span - 30 * 86_400_000,
            channels: Vec::new(),
        };
        for ci in 0..spec.channels_per_team {
            let private = ci > 0 && ((ti == 0 && ci == 1) || r.chance(25));
            let channel = Channel {
                id: format!("19:{}@thread.tacv2", r.hex(32)),
                name: if ci == 0 {
                    "General".to_owned()
                } else {
                    numbered(CHANNEL_NAMES, ci - 1)
                },
                description: String::new(),
                private,
                created: team.created + ci as i64 * 3_600_000,
                roots: Vec::new(),
                seq: 0,
            };
            team.channels.push(channel);
        }
        for ci in 0..team.channels.len() {
            let mut cr = r.fork(&format!("channel{ci}"));
            let roots = self.messages(spec, skew, (ti, ci), now, span, &mut cr);
            let ch = &mut team.channels[ci];
            ch.seq = roots.len() as u64;
            ch.roots = roots;
        }
        team
    }

    /// A private team the technical user does not belong to: never listed, channels answer 403.
    fn foreign_team(&self, r: &mut Rng, now: i64) -> Team {
        Team {
            id: r.guid(),
            name: "Executive Board".to_owned(),
            description: "Board members only".to_owned(),
            private: true,
            member: false,
            created: now - 400 * 86_400_000,
            channels: vec![Channel {
                id: format!("19:{}@thread.tacv2", r.hex(32)),
                name: "General".to_owned(),
                description: String::new(),
                private: false,
                created: now - 400 * 86_400_000,
                roots: Vec::new(),
                seq: 0,
            }],
        }
    }

    fn messages(
        &mut self,
        spec: &TenantSpec,
        skew: &Skew,
        (ti, ci): (usize, usize),
        now: i64,
        span: i64,
        r: &mut Rng,
    ) -> Vec<Message> {
        let count = skew.roots_of(spec, ti, ci);
        let mut roots = Vec::with_capacity(count);
        for _ in 0..count {
            let created = self.alloc_id(now - span + r.below((span - 60_000) as u64) as i64);
            let mut root = self.generated(r, created, None, now);
            let n = skew.replies_of(spec, r);
            let mut times: Vec<i64> = (0..n)
                .map(|_| {
                    created
                        + 1
                        + r.below((now - created - 2).clamp(1, 3 * 86_400_000) as u64) as i64
                })
                .collect();
            times.sort_unstable();
            for t in times {
                let at = self.alloc_id(t);
                let reply = self.generated(r, at, Some(root.created), now);
                root.activity = root.activity.max(reply.modified);
                root.replies.push(reply);
            }
            roots.push(root);
        }
        roots.sort_by_key(|m| m.created);
        for (i, m) in roots.iter_mut().enumerate() {
            m.seq = i as u64 + 1;
            // Generated history is all in the first delta round.
            m.shown = m.activity;
        }
        roots
    }

    /// A message's kind, seed and times; its content is rendered when served.
    fn generated(&mut self, r: &mut Rng, created: i64, reply_to: Option<i64>, now: i64) -> Message {
        let kind = Kind::draw(r, reply_to.is_none(), !self.people.guests.is_empty());
        let seed = r.next_u64();
        let mut m = new_message(created, reply_to, Body::Seeded { seed, kind });
        let later = |r: &mut Rng| {
            created + 1 + r.below((now - created - 1).clamp(1, 3_600_000) as u64) as i64
        };
        if kind == Kind::Deleted {
            let at = later(r);
            m.deleted = Some(at);
            m.modified = at;
        } else if kind == Kind::Forward && r.chance(5) {
            let at = later(r);
            m.edited = Some(at);
            m.modified = at;
        }
        m.activity = m.modified;
        m
    }

    /// The content of `m` (posted in `ch` of `team`), rendered from its seed unless stored.
    pub(crate) fn content<'m>(
        &self,
        team: &Team,
        ch: &Channel,
        m: &'m Message,
    ) -> Cow<'m, Content> {
        match &m.body {
            Body::Stored(c) => Cow::Borrowed(c),
            Body::Seeded { seed, kind } => {
                let mut rng = Rng::new(*seed);
                let mut g = Gen {
                    people: &self.people,
                    place: self.place(team, ch),
                    rng: &mut rng,
                    markers: Markers::Fixed(marker_for(self.seed, self.born - m.created)),
                };
                Cow::Owned(g.of_kind(*kind))
            }
        }
    }

    /// Every marker that is or was in a body (generated ones whether or not their content has
    /// one: a marker that appears nowhere costs a scan nothing).
    pub(crate) fn all_markers(&self) -> Vec<String> {
        let generated = self
            .teams
            .iter()
            .flat_map(|t| &t.channels)
            .flat_map(|c| &c.roots)
            .flat_map(|root| std::iter::once(root).chain(&root.replies))
            .filter(|m| matches!(m.body, Body::Seeded { .. }))
            .map(|m| marker_for(self.seed, self.born - m.created));
        generated.chain(self.markers.iter().cloned()).collect()
    }

    fn place<'a>(&'a self, team: &'a Team, ch: &'a Channel) -> Place<'a> {
        Place {
            team_id: &team.id,
            team_name: &team.name,
            channel_id: &ch.id,
            channel_name: &ch.name,
            tenant_guid: &self.tenant_guid,
            sharepoint_host: &self.sharepoint_host,
        }
    }

    pub(crate) fn gen<'a>(
        &'a mut self,
        team: &'a Team,
        ch: &'a Channel,
        rng: &'a mut Rng,
    ) -> Gen<'a> {
        Gen {
            people: &self.people,
            place: Place {
                team_id: &team.id,
                team_name: &team.name,
                channel_id: &ch.id,
                channel_name: &ch.name,
                tenant_guid: &self.tenant_guid,
                sharepoint_host: &self.sharepoint_host,
            },
            rng,
            markers: Markers::Fresh(&mut self.markers),
        }
    }

    /// Reserves a message id at or just after `t` (ids are creation milliseconds).
    pub(crate) fn alloc_id(&mut self, mut t: i64) -> i64 {
        while !self.used_ids.insert(t) {
            t += 1;
        }
        self.max_ts = self.max_ts.max(t);
        t
    }

    pub(crate) fn team_by_id(&self, id: &str) -> Option<&Team> {
        self.teams.iter().find(|t| t.id == id)
    }
}

pub(crate) fn new_message(created: i64, reply_to: Option<i64>, body: Body) -> Message {
    Message {
        reply_to,
        created,
        modified: created,
        edited: None,
        deleted: None,
        body,
        replies: Vec::new(),
        seq: 0,
        past_seqs: Vec::new(),
        activity: created,
        shown: created,
        extra: None,
    }
}

pub(crate) fn to_utc(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
pub(crate) fn numbered(names: &[&str], i: usize) -> String {
    match i / names.len() {
        0 => names[i].to_owned(),
        n => format!("{} {}", names[i % names.len()], n + 1),
    }
}
