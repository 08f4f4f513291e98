//! Switches for what Graph does that a careful client must survive, each off by default so
//! the plain emulator stays the easy case: rounds that page through a channel as it changes,
//! short pages, inline replies cut without a link, the empty channel whose delta cannot be
//! followed. Set with `Emulator::set_quirks`; read by the message routes under the state lock.

use crate::prng::mix_str;

/// Graph behaviours beyond the documented happy path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quirks {
    /// A delta round pages through the channel as it is at each request instead of a
    /// snapshot: a root that changes after it was returned comes back on a later page of
    /// the same round (Graph does this when a reply lands while a client pages).
    pub live_delta_rounds: bool,
    /// Delta, list and reply pages carry far fewer items than `$top` (one to five, varying)
    /// and still a nextLink while more remain: a small channel takes several pages.
    pub short_pages: bool,
    /// `$expand=replies` stops at the inline limit (Graph: 1 000) without
    /// `replies@odata.nextLink`; only `replies@odata.count` tells that more exist.
    pub inline_replies_without_next_link: bool,
    /// A channel without any message answers its first delta request with an empty page
    /// and a nextLink, and that nextLink with 400 "Parameter 'DeltaToken' not supported"
    /// (`error-400-delta-token-not-supported.json`).
    pub empty_channel_delta_fails: bool,
}

impl Quirks {
    /// How many items a page of `top` carries; `salt` varies it from page to page.
    pub(crate) fn page_size(&self, top: usize, salt: &str) -> usize {
        const SHORT: u64 = 5;
        if self.short_pages && top > 1 {
            1 + (mix_str(salt) % SHORT.min(top as u64 - 1)) as usize
        } else {
            top
        }
    }
}
