//! What a test steers beyond the tenant's shape: changes with or without bringing their
//! root back in delta, changes that land while a client pages (scheduled for the Nth
//! request of a route), faults on a chosen request, how expired tokens are answered, the
//! Graph quirks, and a view of the directory.

use chrono::{DateTime, Utc};

use crate::faults::{Pending, Scheduled};
use crate::links::Expiry;
use crate::quirks::Quirks;
use crate::tenant::to_utc;
use crate::truth::{Change, DirectoryUser, MutationReport};
use crate::{Emulator, Fault};

/// The steering state, in the world behind the state lock.
#[derive(Debug, Default)]
pub(crate) struct Control {
    pub quirks: Quirks,
    /// Changes waiting for their request (see [`Emulator::apply_during`]).
    pub scheduled: Vec<Scheduled>,
    /// What the scheduled changes did, in the order they fell due.
    pub applied: Vec<MutationReport>,
}

impl Emulator {
    /// Applies `change` with `reply_bumps_root` deciding whether a reply's change brings
    /// its root back in delta (instead of `EmulatorOptions::reply_bumps_root`).
    pub fn apply_bumping(&self, change: Change, reply_bumps_root: bool) -> MutationReport {
        let now = Utc::now().timestamp_millis();
        self.shared
            .lock()
            .tenant
            .apply(&change, reply_bumps_root, now)
    }

    /// Applies `change` when the request after `skip` further requests of `route` (a
    /// name of `EmulatorStats::by_route`, "" for any Graph request) whose path contains
    /// `scope` (a team or channel id, "" for any) arrives, before it is answered: a reply
    /// that lands while a client pages through a channel.
    pub fn apply_during(
        &self,
        route: &str,
        scope: &str,
        skip: usize,
        change: Change,
        reply_bumps_root: bool,
    ) {
        self.shared.lock().control.scheduled.push(Scheduled {
            route: route.to_owned(),
            scope: scope.to_owned(),
            skip,
            change,
            bump: reply_bumps_root,
        });
    }

    /// What the changes of [`Emulator::apply_during`] did since the last call.
    pub fn applied_during(&self) -> Vec<MutationReport> {
        std::mem::take(&mut self.shared.lock().control.applied)
    }

    /// Answers the request after `skip` further requests of `route` whose path contains
    /// `scope`, and the `times - 1` matching requests after it, with `fault`.
    pub fn inject_after(&self, route: &str, scope: &str, skip: usize, fault: Fault, times: usize) {
        self.shared.lock().faults.push(Pending {
            route: route.to_owned(),
            scope: scope.to_owned(),
            skip,
            fault,
            remaining: times,
        });
    }

    /// Drops every fault, throttle and scheduled change not yet used; returns how many
    /// scheduled changes never happened.
    pub fn clear_injected(&self) -> usize {
        let mut w = self.shared.lock();
        w.faults.clear();
        w.throttle = None;
        std::mem::take(&mut w.control.scheduled).len()
    }

    /// Like [`Emulator::expire_delta_tokens`], with Graph's other answers for a dropped
    /// sync state.
    pub fn expire_delta_tokens_as(&self, how: Expiry) {
        self.shared.links.expire_as(how);
    }

    /// From now on Graph behaves as `quirks` says.
    pub fn set_quirks(&self, quirks: Quirks) {
        self.shared.lock().control.quirks = quirks;
    }

    /// The directory: who is listed, with what mail, and who writes messages.
    pub fn users(&self) -> Vec<DirectoryUser> {
        let w = self.shared.lock();
        let people = &w.tenant.people;
        people
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| DirectoryUser {
                id: u.id.clone(),
                mail: u.mail.clone(),
                member: people.members.contains(&i) && i != w.tenant.technical,
                present: !u.left,
            })
            .collect()
    }

    /// The newest timestamp the tenant has handed out. Changes get strictly increasing
    /// milliseconds, so a burst of them runs ahead of the wall clock for a moment.
    pub fn newest_timestamp(&self) -> DateTime<Utc> {
        to_utc(self.shared.lock().tenant.max_ts)
    }
}
