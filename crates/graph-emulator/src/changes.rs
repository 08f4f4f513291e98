//! The targeted changes beyond replies, edits and deletions (see [`Change`]): roots in
//! several channels in the same millisecond, changes nobody wrote (a touched timestamp, a
//! reaction, a hidden `lastModifiedDateTime`), deletions Graph does not mark, people leaving
//! the directory or getting a new mail, and new channels.

use std::collections::HashSet;

use crate::tenant::{numbered, Channel, Tenant};
use crate::truth::{Change, ChannelKey, MutationReport, NewChannel};

impl Tenant {
    /// Applies a change other than `Reply`/`Edit`/`Delete`, all of it at `at`.
    pub(crate) fn apply_more(&mut self, c: &Change, bump: bool, at: i64) -> MutationReport {
        let mut report = MutationReport::default();
        match c {
            Change::Root(channels) => {
                let mut seen = HashSet::new();
                for key in channels {
                    match self.locate_channel(key) {
                        Some((ti, ci)) if seen.insert((ti, ci)) => {
                            report.added.push(self.add_root_at(ti, ci, at));
                        }
                        _ => {}
                    }
                }
            }
            Change::Touch(keys)
            | Change::React(keys)
            | Change::DeleteUnmarked(keys)
            | Change::HideModified(keys) => {
                for loc in keys
                    .iter()
                    .filter_map(|k| self.locate(k))
                    .collect::<Vec<_>>()
                {
                    let key = self.key(loc);
                    match c {
                        Change::DeleteUnmarked(_) => {
                            self.delete_at(loc, bump, at);
                            self.message_mut(loc).extra_mut().unmarked_delete = true;
                            report.deleted.push(key);
                        }
                        Change::HideModified(_) => {
                            self.message_mut(loc).extra_mut().hide_modified = true;
                            report.touched.push(key);
                        }
                        _ => {
                            if matches!(c, Change::React(_)) {
                                let who = *self.rng.pick(&self.people.active_members());
                                self.message_mut(loc).extra_mut().reactions.push((at, who));
                            }
                            self.message_mut(loc).modified = at;
                            self.touch(loc, at, bump);
                            report.touched.push(key);
                        }
                    }
                }
            }
            Change::Leave(ids) | Change::NewMail(ids) => {
                for id in ids {
                    let changed = match c {
                        Change::Leave(_) => self.people.leave(id, at),
                        _ => self.people.new_mail(id, at),
                    };
                    if changed {
                        report.users.push(id.clone());
                    }
                }
            }
            Change::AddChannel(new) => {
                for n in new {
                    report.channels.extend(self.add_channel(n, at));
                }
            }
            Change::Reply(_) | Change::Edit(_) | Change::Delete(_) => {}
        }
        report
    }

    fn locate_channel(&self, key: &ChannelKey) -> Option<(usize, usize)> {
        let ti = self
            .teams
            .iter()
            .position(|t| t.id == key.team_id && t.member)?;
        let ci = self.teams[ti]
            .channels
            .iter()
            .position(|c| c.id == key.channel_id)?;
        Some((ti, ci))
    }

    /// A new empty standard channel; `None` when the team is unknown or already has the id.
    fn add_channel(&mut self, n: &NewChannel, at: i64) -> Option<ChannelKey> {
        let id = match &n.channel_id {
            Some(id) => id.clone(),
            None => format!("19:{}@thread.tacv2", self.rng.hex(32)),
        };
        let team = self
            .teams
            .iter_mut()
            .find(|t| t.id == n.team_id && t.member)?;
        if team.channels.iter().any(|c| c.id == id) {
            return None;
        }
        let name = numbered(&["Side Project"], team.channels.len());
        team.channels.push(Channel {
            id: id.clone(),
            name,
            description: String::new(),
            private: false,
            created: at,
            roots: Vec::new(),
            seq: 0,
        });
        Some(ChannelKey {
            team_id: n.team_id.clone(),
            channel_id: id,
        })
    }
}
