//! Opaque continuation tokens (`$skiptoken`, `$deltatoken`) and the state they carry.
//!
//! Real Graph tokens are opaque and carry the query options, so a client must follow
//! `@odata.nextLink`/`@odata.deltaLink` verbatim. These tokens imitate that: a small text record
//! plus a keyed checksum, hex-encoded. A token edited by hand, cut short or minted by another
//! tenant fails the checksum and is answered with the 400 Graph gives for a bad delta token;
//! one from before [`Tokens::expire`] is recognised as expired and answered the way the
//! expiry asked for ([`Expiry`]).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use sha2::{Digest, Sha256};

/// Position inside one delta round of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeltaCursor {
    pub channel: String,
    /// The round returns roots with `lower < seq <= upper`.
    pub lower: u64,
    pub upper: u64,
    /// Roots up to this `seq` were already returned in this round.
    pub after: u64,
    pub top: usize,
    pub expand: bool,
    /// `$filter=lastModifiedDateTime gt …` of the initial request (epoch ms).
    pub since: Option<i64>,
    /// Whether this is the round's first page (the one that may come back empty).
    pub first: bool,
}

/// What a continuation token points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Link {
    /// `$skiptoken` of a delta round.
    Delta(DeltaCursor),
    /// `$deltatoken`: the next round starts after `upper`.
    Round {
        channel: String,
        upper: u64,
        top: usize,
        expand: bool,
    },
    /// `$skiptoken` of a message list: roots created before `before` (newest first).
    List {
        channel: String,
        before: i64,
        top: usize,
        expand: bool,
    },
    /// `$skiptoken` of a reply list (also used for `replies@odata.nextLink`).
    Replies {
        channel: String,
        root: String,
        before: i64,
        top: usize,
    },
    /// `$skiptoken` of the user list.
    Users { offset: usize },
    /// `$skiptoken` of the tenant-wide team list.
    Teams { offset: usize },
    /// The nextLink of an empty channel's first delta page: following it fails.
    Dead { channel: String },
}

/// How Graph answers a delta or skip token whose sync state it dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expiry {
    /// 400 BadRequest "Parameter 'DeltaToken' not supported for this request."
    #[default]
    DeltaTokenNotSupported,
    /// 400 `syncStateNotFound`: "The sync state generation is not found…"
    SyncStateNotFound,
    /// 410 Gone `resyncRequired`.
    ResyncRequired,
}

impl Expiry {
    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(c: u8) -> Expiry {
        match c {
            1 => Expiry::SyncStateNotFound,
            2 => Expiry::ResyncRequired,
            _ => Expiry::DeltaTokenNotSupported,
        }
    }
}

/// Mints and checks tokens for one tenant.
#[derive(Debug)]
pub(crate) struct Tokens {
    key: String,
    /// Bumped to invalidate every token issued before (`Emulator::expire_delta_tokens`).
    epoch: AtomicU64,
    /// How tokens of an earlier epoch are answered ([`Expiry`] as a number).
    expiry: AtomicU8,
}

impl Tokens {
    pub(crate) fn new(seed: u64) -> Tokens {
        Tokens {
            key: format!("emulator-link-key-{seed}"),
            epoch: AtomicU64::new(0),
            expiry: AtomicU8::new(0),
        }
    }

    pub(crate) fn encode(&self, link: &Link) -> String {
        let payload = match link {
            Link::Delta(c) => format!(
                "D|{}|{}|{}|{}|{}|{}|{}|{}",
                c.channel,
                c.lower,
                c.upper,
                c.after,
                c.top,
                u8::from(c.expand),
                c.since.map_or("-".to_owned(), |s| s.to_string()),
                u8::from(c.first)
            ),
            Link::Round {
                channel,
                upper,
                top,
                expand,
            } => format!("R|{channel}|{upper}|{top}|{}", u8::from(*expand)),
            Link::List {
                channel,
                before,
                top,
                expand,
            } => format!("L|{channel}|{before}|{top}|{}", u8::from(*expand)),
            Link::Replies {
                channel,
                root,
                before,
                top,
            } => format!("P|{channel}|{root}|{before}|{top}"),
            Link::Users { offset } => format!("U|{offset}"),
            Link::Teams { offset } => format!("T|{offset}"),
            Link::Dead { channel } => format!("X|{channel}"),
        };
        let mut out = hex(payload.as_bytes());
        out.push_str(&self.check(&payload));
        out
    }

    pub(crate) fn decode(&self, token: &str) -> Option<Link> {
        if token.len() < 12 || !token.is_ascii() {
            return None;
        }
        let (body, check) = token.split_at(token.len() - 12);
        let payload = String::from_utf8(unhex(body)?).ok()?;
        if self.check(&payload) != check {
            return None;
        }
        parse(&payload)
    }

    pub(crate) fn expire(&self) {
        self.expire_as(Expiry::DeltaTokenNotSupported);
    }

    /// Invalidates every token issued so far; following one is answered as `how` says.
    pub(crate) fn expire_as(&self, how: Expiry) {
        self.expiry.store(how.code(), Ordering::Relaxed);
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// How to answer `token` if it was valid before an expiry (and is not now).
    pub(crate) fn expired(&self, token: &str) -> Option<Expiry> {
        if token.len() < 12 || !token.is_ascii() {
            return None;
        }
        let (body, check) = token.split_at(token.len() - 12);
        let payload = String::from_utf8(unhex(body)?).ok()?;
        let now = self.epoch.load(Ordering::Relaxed);
        (0..now)
            .any(|e| self.check_at(e, &payload) == check)
            .then(|| Expiry::from_code(self.expiry.load(Ordering::Relaxed)))
    }

    fn check(&self, payload: &str) -> String {
        self.check_at(self.epoch.load(Ordering::Relaxed), payload)
    }

    fn check_at(&self, epoch: u64, payload: &str) -> String {
        let epoch = format!("|{epoch}|");
        let digest = Sha256::new()
            .chain_update(&self.key)
            .chain_update(epoch)
            .chain_update(payload)
            .finalize();
        hex(&digest[..6])
    }
}

fn parse(payload: &str) -> Option<Link> {
    let f: Vec<&str> = payload.split('|').collect();
    let flag = |s: &str| s == "1";
    Some(match (f[0], f.len()) {
        ("D", 9) => Link::Delta(DeltaCursor {
            channel: f[1].to_owned(),
            lower: f[2].parse().ok()?,
            upper: f[3].parse().ok()?,
            after: f[4].parse().ok()?,
            top: f[5].parse().ok()?,
            expand: flag(f[6]),
            since: if f[7] == "-" {
                None
            } else {
                Some(f[7].parse().ok()?)
            },
            first: flag(f[8]),
        }),
        ("R", 5) => Link::Round {
            channel: f[1].to_owned(),
            upper: f[2].parse().ok()?,
            top: f[3].parse().ok()?,
            expand: flag(f[4]),
        },
        ("L", 5) => Link::List {
            channel: f[1].to_owned(),
            before: f[2].parse().ok()?,
            top: f[3].parse().ok()?,
            expand: flag(f[4]),
        },
        ("P", 5) => Link::Replies {
            channel: f[1].to_owned(),
            root: f[2].to_owned(),
            before: f[3].parse().ok()?,
            top: f[4].parse().ok()?,
        },
        ("U", 2) => Link::Users {
            offset: f[1].parse().ok()?,
        },
        ("T", 2) => Link::Teams {
            offset: f[1].parse().ok()?,
        },
        ("X", 2) => Link::Dead {
            channel: f[1].to_owned(),
        },
        _ => return None,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let t = Tokens::new(1);
        let link = Link::Delta(DeltaCursor {
            channel: "19:abc@thread.tacv2".into(),
            lower: 3,
            upper: 9,
            after: 5,
            top: 20,
            expand: true,
            since: Some(1_600_000_000_000),
            first: false,
        });
        let tok = t.encode(&link);
        assert_eq!(t.decode(&tok), Some(link));
        let mut bad = tok.clone();
        bad.replace_range(0..1, "7");
        assert_eq!(t.decode(&bad), None);
        assert_eq!(Tokens::new(2).decode(&tok), None);
        assert_eq!(t.decode("garbage"), None);
    }

    #[test]
    fn expired_tokens_are_told_from_bad_ones() {
        let t = Tokens::new(1);
        let tok = t.encode(&Link::Users { offset: 3 });
        assert_eq!(t.expired(&tok), None);
        t.expire_as(Expiry::ResyncRequired);
        assert_eq!(t.decode(&tok), None);
        assert_eq!(t.expired(&tok), Some(Expiry::ResyncRequired));
        assert_eq!(t.expired(&t.encode(&Link::Users { offset: 3 })), None);
        assert_eq!(t.expired("00112233445566778899aabb"), None);
    }
}
