//! Departures from a [`TenantSpec`]'s uniform shape, for the tenant shapes a benchmark
//! needs and a uniform spec cannot give: one long channel among short ones, and roots that
//! all carry the same (large) number of replies — 50 roots × 1 000 replies inline make a
//! delta page of tens of megabytes.

use crate::prng::Rng;
use crate::TenantSpec;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skew {
    /// Roots of the first channel ("General") of the first team, instead of
    /// `messages_per_channel`.
    pub long_channel: Option<usize>,
    /// Every root gets exactly `max_replies` replies (instead of `0..=max_replies`).
    pub exact_replies: bool,
}

impl Skew {
    /// How many roots channel `ci` of team `ti` has.
    pub(crate) fn roots_of(&self, spec: &TenantSpec, ti: usize, ci: usize) -> usize {
        match self.long_channel {
            Some(n) if ti == 0 && ci == 0 => n,
            _ => spec.messages_per_channel,
        }
    }

    /// How many replies the next root gets.
    pub(crate) fn replies_of(&self, spec: &TenantSpec, r: &mut Rng) -> usize {
        if self.exact_replies {
            spec.max_replies
        } else {
            r.index(spec.max_replies + 1)
        }
    }
}
