//! Mutations of the tenant between crawls: new roots and replies, edits and deletions.
//!
//! Choices come from the tenant's own mutation stream (deterministic for a given sequence of
//! calls); timestamps come from the wall clock but are always strictly after every timestamp
//! generated or served so far, so a connector's "since" logic can never miss them.

use std::collections::HashSet;

use crate::content::{Content, Sender};
use crate::tenant::{new_message, Body, Channel, Team, Tenant};
use crate::truth::{Change, MessageKey, Mutation, MutationReport};

/// Where a message lives: team, channel, root index, reply index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Loc {
    pub team: usize,
    pub channel: usize,
    pub root: usize,
    pub reply: Option<usize>,
}

impl Tenant {
    pub(crate) fn mutate(
        &mut self,
        m: &Mutation,
        reply_bumps_root: bool,
        now: i64,
    ) -> MutationReport {
        let mut report = MutationReport::default();
        let channels: Vec<(usize, usize)> = self
            .teams
            .iter()
            .enumerate()
            .filter(|(_, t)| t.member)
            .flat_map(|(ti, t)| (0..t.channels.len()).map(move |ci| (ti, ci)))
            .collect();
        if channels.is_empty() {
            return report;
        }
        let offset = self.rng.index(channels.len());
        // What this mutation adds is not edited or deleted by it too.
        let mut used = HashSet::new();
        for k in 0..m.add_roots {
            let (ti, ci) = channels[(offset + k) % channels.len()];
            let root = self.teams[ti].channels[ci].roots.len();
            report.added.push(self.add_root(ti, ci, now));
            used.insert(Loc {
                team: ti,
                channel: ci,
                root,
                reply: None,
            });
        }
        for _ in 0..m.add_replies {
            let Some(loc) = self.pick(&mut used, true) else {
                break;
            };
            let reply = self.teams[loc.team].channels[loc.channel].roots[loc.root]
                .replies
                .len();
            report
                .added
                .push(self.add_reply(loc, reply_bumps_root, now));
            used.insert(Loc {
                reply: Some(reply),
                ..loc
            });
        }
        for _ in 0..m.edit {
            let Some(loc) = self.pick(&mut used, false) else {
                break;
            };
            report.edited.push(self.edit(loc, reply_bumps_root, now));
        }
        for _ in 0..m.delete {
            let Some(loc) = self.pick(&mut used, false) else {
                break;
            };
            report.deleted.push(self.delete(loc, reply_bumps_root, now));
        }
        report
    }

    pub(crate) fn apply(&mut self, c: &Change, bump: bool, now: i64) -> MutationReport {
        let mut report = MutationReport::default();
        // One timestamp for the whole change; ids stay unique within each thread.
        let at = self.next_ts(now);
        let keys = match c {
            Change::Reply(keys) | Change::Edit(keys) | Change::Delete(keys) => keys,
            other => return self.apply_more(other, bump, at),
        };
        let mut threads = HashSet::new();
        let locs: Vec<Loc> = keys
            .iter()
            .filter_map(|k| self.locate(k))
            // Two replies in one thread in the same millisecond would share an id.
            .filter(|l| {
                !matches!(c, Change::Reply(_)) || threads.insert((l.team, l.channel, l.root))
            })
            .collect();
        for loc in locs {
            match c {
                Change::Reply(_) => report.added.push(self.add_reply_at(loc, bump, at)),
                Change::Edit(_) => report.edited.push(self.edit_at(loc, bump, at)),
                _ => report.deleted.push(self.delete_at(loc, bump, at)),
            }
        }
        report
    }

    /// Where the message `key` names lives, if it exists.
    pub(crate) fn locate(&self, key: &MessageKey) -> Option<Loc> {
        let team = self.teams.iter().position(|t| t.id == key.team_id)?;
        let channel = self.teams[team]
            .channels
            .iter()
            .position(|c| c.id == key.channel_id)?;
        let roots = &self.teams[team].channels[channel].roots;
        let root = roots.iter().position(|r| r.id() == key.thread_id)?;
        let reply = if key.message_id == key.thread_id {
            None
        } else {
            Some(
                roots[root]
                    .replies
                    .iter()
                    .position(|r| r.id() == key.message_id)?,
            )
        };
        Some(Loc {
            team,
            channel,
            root,
            reply,
        })
    }

    fn add_root(&mut self, ti: usize, ci: usize, now: i64) -> MessageKey {
        let at = self.next_ts(now);
        self.add_root_at(ti, ci, at)
    }

    pub(crate) fn add_root_at(&mut self, ti: usize, ci: usize, at: i64) -> MessageKey {
        let content = self.fresh_content(ti, ci, None);
        let ch = &mut self.teams[ti].channels[ci];
        let mut root = new_message(at, None, Body::Stored(Box::new(content)));
        ch.seq += 1;
        root.seq = ch.seq;
        ch.roots.push(root);
        self.key(Loc {
            team: ti,
            channel: ci,
            root: self.teams[ti].channels[ci].roots.len() - 1,
            reply: None,
        })
    }

    fn add_reply(&mut self, loc: Loc, bump: bool, now: i64) -> MessageKey {
        let at = self.next_ts(now);
        self.add_reply_at(loc, bump, at)
    }

    fn add_reply_at(&mut self, loc: Loc, bump: bool, at: i64) -> MessageKey {
        let content = self.fresh_content(loc.team, loc.channel, None);
        let root = &mut self.teams[loc.team].channels[loc.channel].roots[loc.root];
        root.replies.push(new_message(
            at,
            Some(root.created),
            Body::Stored(Box::new(content)),
        ));
        let reply = Loc {
            reply: Some(root.replies.len() - 1),
            ..loc
        };
        // The reply's location, so `reply_bumps_root = false` leaves the root's seq alone.
        self.touch(reply, at, bump);
        self.key(reply)
    }

    fn edit(&mut self, loc: Loc, bump: bool, now: i64) -> MessageKey {
        let at = self.next_ts(now);
        self.edit_at(loc, bump, at)
    }

    fn edit_at(&mut self, loc: Loc, bump: bool, at: i64) -> MessageKey {
        let team = &self.teams[loc.team];
        let current = self.content(team, &team.channels[loc.channel], self.message(loc));
        let author = match &current.from {
            Sender::User { id, .. } => self.people.users.iter().position(|u| &u.id == id),
            _ => None,
        };
        let content = self.fresh_content(loc.team, loc.channel, author);
        let msg = self.message_mut(loc);
        msg.body = Body::Stored(Box::new(content));
        msg.modified = at;
        msg.edited = Some(at);
        self.touch(loc, at, bump);
        self.key(loc)
    }

    fn delete(&mut self, loc: Loc, bump: bool, now: i64) -> MessageKey {
        let at = self.next_ts(now);
        self.delete_at(loc, bump, at)
    }

    pub(crate) fn delete_at(&mut self, loc: Loc, bump: bool, at: i64) -> MessageKey {
        let msg = self.message_mut(loc);
        msg.deleted = Some(at);
        msg.modified = at;
        // A deletion is served with a timestamp again (see `Change::HideModified`).
        if let Some(extra) = msg.extra.as_mut() {
            extra.hide_modified = false;
        }
        self.touch(loc, at, bump);
        self.key(loc)
    }

    /// Records a change in the channel's change order (replies only when they bump their root).
    pub(crate) fn touch(&mut self, loc: Loc, at: i64, reply_bumps_root: bool) {
        let ch = &mut self.teams[loc.team].channels[loc.channel];
        let root = &mut ch.roots[loc.root];
        root.activity = root.activity.max(at);
        if loc.reply.is_none() || reply_bumps_root {
            ch.seq += 1;
            root.past_seqs.push(root.seq);
            root.seq = ch.seq;
            root.shown = at;
        }
    }

    /// A forwardable generated body with a new marker (never a fixture body), by `author`
    /// or by a member still in the directory.
    pub(crate) fn fresh_content(&mut self, ti: usize, ci: usize, author: Option<usize>) -> Content {
        let (team, ch) = stubs(&self.teams[ti], &self.teams[ti].channels[ci]);
        let mut rng = self.rng.clone();
        let author = author.unwrap_or_else(|| *rng.pick(&self.people.active_members()));
        let content = {
            let mut g = self.gen(&team, &ch, &mut rng);
            g.forward_by(author, false)
        };
        self.rng = rng;
        content
    }

    /// A random message currently expected to be forwarded, not yet used in this mutation.
    fn pick(&mut self, used: &mut HashSet<Loc>, roots_only: bool) -> Option<Loc> {
        let candidates: Vec<Loc> = self
            .forwardable(roots_only)
            .into_iter()
            .filter(|l| !used.contains(l))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let loc = candidates[self.rng.index(candidates.len())];
        used.insert(loc);
        Some(loc)
    }

    fn forwardable(&self, roots_only: bool) -> Vec<Loc> {
        let mut out = Vec::new();
        for (ti, team) in self.teams.iter().enumerate().filter(|(_, t)| t.member) {
            for (ci, ch) in team.channels.iter().enumerate() {
                for (ri, root) in ch.roots.iter().enumerate() {
                    let loc = Loc {
                        team: ti,
                        channel: ci,
                        root: ri,
                        reply: None,
                    };
                    if is_forward(root) {
                        out.push(loc);
                    }
                    if roots_only {
                        continue;
                    }
                    let replies = root
                        .replies
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| is_forward(r));
                    out.extend(replies.map(|(i, _)| Loc {
                        reply: Some(i),
                        ..loc
                    }));
                }
            }
        }
        out
    }

    pub(crate) fn message(&self, loc: Loc) -> &crate::tenant::Message {
        let root = &self.teams[loc.team].channels[loc.channel].roots[loc.root];
        loc.reply.map_or(root, |i| &root.replies[i])
    }

    pub(crate) fn message_mut(&mut self, loc: Loc) -> &mut crate::tenant::Message {
        let root = &mut self.teams[loc.team].channels[loc.channel].roots[loc.root];
        match loc.reply {
            Some(i) => &mut root.replies[i],
            None => root,
        }
    }

    pub(crate) fn key(&self, loc: Loc) -> MessageKey {
        let team = &self.teams[loc.team];
        let ch = &team.channels[loc.channel];
        let root = &ch.roots[loc.root];
        MessageKey {
            team_id: team.id.clone(),
            channel_id: ch.id.clone(),
            thread_id: root.id(),
            message_id: self.message(loc).id(),
        }
    }

    /// A new unique millisecond strictly after everything so far.
    pub(crate) fn next_ts(&mut self, now: i64) -> i64 {
        self.alloc_id(now.max(self.max_ts + 1))
    }
}

fn is_forward(m: &crate::tenant::Message) -> bool {
    m.deleted.is_none() && m.forwardable_content()
}

/// Copies of a team and channel without their messages, so content can be generated while
/// the tenant is borrowed mutably.
pub(crate) fn stubs(team: &Team, ch: &Channel) -> (Team, Channel) {
    (team.clone_header(), ch.clone_header())
}

impl Team {
    fn clone_header(&self) -> Team {
        Team {
            id: self.id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            private: self.private,
            member: self.member,
            created: self.created,
            channels: Vec::new(),
        }
    }
}

impl Channel {
    fn clone_header(&self) -> Channel {
        Channel {
            id: self.id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            private: self.private,
            created: self.created,
            roots: Vec::new(),
            seq: self.seq,
        }
    }
}
