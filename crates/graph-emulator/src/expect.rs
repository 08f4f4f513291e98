//! The ground truth of the tenant as it stands: every message of the teams the technical
//! user belongs to, with what a correct connector must do with it against today's
//! directory, when delta shows it, and when its people last changed (see [`TruthMessage`]).

use crate::body::mention_user_ids;
use crate::content::{Content, Sender};
use crate::tenant::{to_utc, Channel, Message, Team, Tenant};
use crate::truth::{Expected, SkipKind, TruthMessage};

impl Tenant {
    pub(crate) fn truth(&self) -> Vec<TruthMessage> {
        let mut out = Vec::new();
        for team in self.teams.iter().filter(|t| t.member) {
            for ch in &team.channels {
                for root in &ch.roots {
                    for m in std::iter::once(root).chain(&root.replies) {
                        out.push(self.truth_of(team, ch, root, m));
                    }
                }
            }
        }
        out
    }

    fn truth_of(&self, team: &Team, ch: &Channel, root: &Message, m: &Message) -> TruthMessage {
        let content = self.content(team, ch, m);
        let surfaced = (root.shown >= m.modified).then_some(root.shown);
        TruthMessage {
            team_id: team.id.clone(),
            channel_id: ch.id.clone(),
            thread_id: root.id(),
            message_id: m.id(),
            team_private: team.private,
            channel_private: ch.private,
            created: to_utc(m.created),
            last_modified: to_utc(m.modified),
            deleted: m.deleted.is_some(),
            expected: if m.deleted.is_some() {
                Expected::Skip(SkipKind::Deleted)
            } else {
                self.expected_now(&content)
            },
            surfaced: surfaced.map(to_utc),
            identities_changed: self.identities_changed(&content).map(to_utc),
        }
    }

    /// What the content asks of a connector with today's directory: the author's and the
    /// mentioned people's mails as `/users` lists them now.
    fn expected_now(&self, c: &Content) -> Expected {
        let (Expected::Forward { marker, .. }, Sender::User { id, .. }) = (&c.expected, &c.from)
        else {
            return c.expected.clone();
        };
        let Some(author) = self.people.mail_of(id) else {
            return Expected::Skip(SkipKind::NoMail);
        };
        let mut mentions: Vec<String> = mention_user_ids(&c.mentions)
            .filter_map(|u| self.people.mail_of(u))
            .map(str::to_owned)
            .collect();
        mentions.sort();
        mentions.dedup();
        Expected::Forward {
            author: author.to_owned(),
            mentions,
            marker: marker.clone(),
        }
    }

    fn identities_changed(&self, c: &Content) -> Option<i64> {
        let author = match &c.from {
            Sender::User { id, .. } => Some(id.as_str()),
            _ => None,
        };
        author
            .into_iter()
            .chain(mention_user_ids(&c.mentions))
            .filter_map(|id| self.people.changed_of(id))
            .max()
    }
}
