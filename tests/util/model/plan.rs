//! What happens to the tenant in one round: a random mix of the changes Graph can produce
//! and of faults, drawn from the seed and from the ground truth as it stands (which messages
//! exist, which can still be edited, who is in the directory).

use std::collections::BTreeSet;
use std::fmt::Write;
use std::time::Duration;

use super::rng::Rng;
use chrono::{DateTime, Utc};
use graph_emulator::{
    Change, ChannelKey, DirectoryUser, Expected, Expiry, Fault, MessageKey, NewChannel, SinkFault,
    TruthMessage,
};

/// One thing the round does, in order: changes, then faults armed for the run.
#[derive(Debug, Clone)]
pub enum Step {
    /// A change before the run; `bump`: a reply's change brings its root back in delta.
    Apply { change: Change, bump: bool },
    /// A change that lands when the run makes its (`skip` + 1)-th request of `route` whose
    /// path contains `scope` ("" for any).
    During {
        route: &'static str,
        scope: String,
        skip: usize,
        change: Change,
        bump: bool,
    },
    /// Every delta and skip token handed out so far expires.
    Expire(Expiry),
    /// The (`skip` + 1)-th request of `route` fails.
    GraphFault {
        route: &'static str,
        skip: usize,
        fault: Fault,
    },
    /// The (`skip` + 1)-th ingest POST fails or answers late.
    IngestFault { skip: usize, fault: SinkFault },
    /// `kill -9` once the run made this many message-route requests.
    Kill { after: u64 },
    /// SIGTERM once the run made this many message-route requests.
    Term { after: u64 },
}

impl Step {
    /// A fault: the run may end otherwise than 0, and what it leaves behind may be resent.
    pub fn is_fault(&self) -> bool {
        !matches!(self, Step::Apply { .. } | Step::During { .. })
    }
}

/// What the plan draws from.
pub struct World<'a> {
    pub truth: &'a [TruthMessage],
    pub users: &'a [DirectoryUser],
    /// Every channel, the empty ones too.
    pub channels: &'a BTreeSet<ChannelKey>,
    /// Messages served without `lastModifiedDateTime`: a touch or a reaction there would
    /// change nothing a client can see.
    pub hidden: &'a BTreeSet<MessageKey>,
    pub reply_window: Duration,
    /// Pages are short: the sweep reads a channel in several list requests.
    pub short_pages: bool,
}

/// How much a round may do.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub faults: bool,
    /// `Slow` ingest answers cost more than a second each; off in the quick test.
    pub slow_ingest: bool,
    pub ingest_timeout: Duration,
}

pub fn key(t: &TruthMessage) -> MessageKey {
    MessageKey {
        team_id: t.team_id.clone(),
        channel_id: t.channel_id.clone(),
        thread_id: t.thread_id.clone(),
        message_id: t.message_id.clone(),
    }
}

/// A round's steps; none for a quiet round.
pub fn draw(rng: &mut Rng, w: &World, mix: Mix) -> Vec<Step> {
    let mut steps = Vec::new();
    let now = Utc::now();
    let roots: Vec<&TruthMessage> = w
        .truth
        .iter()
        .filter(|t| t.thread_id == t.message_id)
        .collect();
    let live: Vec<MessageKey> = roots
        .iter()
        .filter(|t| !t.deleted)
        .map(|t| key(t))
        .collect();
    let old_cut =
        now - chrono::Duration::from_std(w.reply_window).unwrap() - chrono::Duration::days(1);
    let old: Vec<MessageKey> = roots
        .iter()
        .filter(|t| !t.deleted && t.created < old_cut)
        .map(|t| key(t))
        .collect();
    let forwardable: Vec<MessageKey> = w
        .truth
        .iter()
        .filter(|t| matches!(t.expected, Expected::Forward { .. }))
        .map(key)
        .collect();
    // Served without lastModifiedDateTime (before or from this round on): a touch or a
    // reaction there changes nothing a client can see, so none is drawn.
    let hide = if rng.chance(15) {
        rng.some(&forwardable, 2)
    } else {
        Vec::new()
    };
    let visible: Vec<MessageKey> = forwardable
        .iter()
        .filter(|k| !w.hidden.contains(k) && !hide.contains(k))
        .cloned()
        .collect();
    let channels: Vec<ChannelKey> = w.channels.iter().cloned().collect();
    let members: Vec<String> = w
        .users
        .iter()
        .filter(|u| u.member && u.present)
        .map(|u| u.id.clone())
        .collect();
    let bump = |rng: &mut Rng| rng.chance(50);

    if rng.chance(40) {
        let change = Change::Root(rng.some(&channels, 3));
        steps.push(Step::Apply { change, bump: true });
    }
    if rng.chance(50) {
        let change = Change::Reply(rng.some(&live, 3));
        steps.push(Step::Apply {
            change,
            bump: bump(rng),
        });
    }
    if rng.chance(20) && !old.is_empty() {
        // A reply to a thread older than reply_window that does not bring its root back.
        let change = Change::Reply(rng.sample(&old, 1));
        steps.push(Step::Apply {
            change,
            bump: false,
        });
    }
    if rng.chance(40) {
        let change = Change::Edit(rng.some(&forwardable, 3));
        steps.push(Step::Apply {
            change,
            bump: bump(rng),
        });
    }
    if rng.chance(25) {
        let change = Change::Touch(rng.some(&visible, 2));
        steps.push(Step::Apply {
            change,
            bump: bump(rng),
        });
    }
    if rng.chance(25) {
        let change = Change::React(rng.some(&visible, 2));
        steps.push(Step::Apply {
            change,
            bump: bump(rng),
        });
    }
    if rng.chance(30) {
        let change = Change::Delete(rng.some(&forwardable, 2));
        steps.push(Step::Apply {
            change,
            bump: bump(rng),
        });
    }
    if rng.chance(15) {
        let change = Change::DeleteUnmarked(rng.sample(&forwardable, 1));
        steps.push(Step::Apply {
            change,
            bump: bump(rng),
        });
    }
    if !hide.is_empty() {
        let change = Change::HideModified(hide);
        steps.push(Step::Apply { change, bump: true });
    }
    if rng.chance(10) && members.len() > 3 {
        steps.push(Step::Apply {
            change: Change::Leave(rng.sample(&members, 1)),
            bump: true,
        });
    }
    if rng.chance(10) {
        steps.push(Step::Apply {
            change: Change::NewMail(rng.sample(&members, 1)),
            bump: true,
        });
    }
    if rng.chance(10) {
        steps.push(Step::Apply {
            change: add_channel(rng, &channels),
            bump: true,
        });
    }
    // Changes while the run pages through the tenant.
    if rng.chance(20) {
        let route = ["delta", "messages", "replies"][rng.below(3) as usize];
        let change = match rng.below(3) {
            0 => Change::Reply(rng.some(&live, 2)),
            1 => Change::Edit(rng.sample(&forwardable, 1)),
            _ => Change::Root(rng.sample(&channels, 1)),
        };
        let skip = rng.below(6) as usize;
        let scope = String::new();
        steps.push(Step::During {
            route,
            scope,
            skip,
            change,
            bump: bump(rng),
        });
    }
    // A busy channel: replies in two threads of one channel land at the same request of
    // its sweep, a newer thread (read first) and an older one: with short pages, often
    // between the two.
    let recent: Vec<&TruthMessage> = roots
        .iter()
        .copied()
        .filter(|t| {
            !t.deleted
                && t.created > old_cut + chrono::Duration::days(1) + chrono::Duration::hours(1)
        })
        .collect();
    if rng.chance(20) && !recent.is_empty() {
        let first = rng.sample(&recent, 1).remove(0);
        let same: Vec<&TruthMessage> = recent
            .iter()
            .copied()
            .filter(|t| t.channel_id == first.channel_id && t.team_id == first.team_id)
            .collect();
        let (newer, older) = match rng.sample(&same, 2).as_slice() {
            [a, b] if a.created >= b.created => (key(a), key(b)),
            [a, b] => (key(b), key(a)),
            _ => (key(first), key(first)),
        };
        let skip = if w.short_pages { rng.range(1, 3) } else { 0 } as usize;
        let bump = rng.chance(30);
        for thread in [newer, older] {
            let scope = thread.channel_id.clone();
            let change = Change::Reply(vec![thread]);
            steps.push(Step::During {
                route: "messages",
                scope,
                skip,
                change,
                bump,
            });
        }
    }
    if mix.faults {
        faults(rng, mix, &mut steps);
    }
    steps
}

fn add_channel(rng: &mut Rng, channels: &[ChannelKey]) -> Change {
    let teams: BTreeSet<&String> = channels.iter().map(|c| &c.team_id).collect();
    let teams: Vec<&String> = teams.into_iter().collect();
    let team = (*rng.sample(&teams, 1)[0]).clone();
    // Sometimes with the id of a channel of another team.
    let borrowed = channels
        .iter()
        .find(|c| c.team_id != team)
        .filter(|_| rng.chance(40));
    Change::AddChannel(vec![NewChannel {
        team_id: team,
        channel_id: borrowed.map(|c| c.channel_id.clone()),
    }])
}

fn faults(rng: &mut Rng, mix: Mix, steps: &mut Vec<Step>) {
    if rng.chance(15) {
        let how = [
            Expiry::DeltaTokenNotSupported,
            Expiry::SyncStateNotFound,
            Expiry::ResyncRequired,
        ];
        steps.push(Step::Expire(how[rng.below(3) as usize]));
    }
    if rng.chance(30) {
        let route = ["delta", "messages", "replies", "users", "channels"][rng.below(5) as usize];
        let fault = match rng.below(5) {
            0 => Fault::Throttled {
                status: 429,
                retry_after_ms: Some(50),
            },
            1 => Fault::Throttled {
                status: 503,
                retry_after_ms: None,
            },
            2 => Fault::Throttled {
                status: 504,
                retry_after_ms: Some(20),
            },
            3 => Fault::GatewayTimeout,
            _ => Fault::TruncatedJson,
        };
        steps.push(Step::GraphFault {
            route,
            skip: rng.below(8) as usize,
            fault,
        });
    }
    if rng.chance(20) {
        let fault = match rng.below(3) {
            0 => SinkFault::Status(503),
            1 => SinkFault::Status(400),
            _ if mix.slow_ingest => {
                SinkFault::Slow(mix.ingest_timeout + Duration::from_millis(300))
            }
            _ => SinkFault::Status(503),
        };
        steps.push(Step::IngestFault {
            skip: rng.below(6) as usize,
            fault,
        });
    }
    match rng.below(100) {
        0..=14 => steps.push(Step::Kill {
            after: rng.range(1, 16),
        }),
        15..=24 => steps.push(Step::Term {
            after: rng.range(1, 16),
        }),
        _ => {}
    }
}

/// Short names for the ids in a report: T0/C1 for teams and channels.
pub fn describe(steps: &[Step], channels: &BTreeSet<ChannelKey>) -> String {
    let teams: Vec<&String> = channels
        .iter()
        .map(|c| &c.team_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut text: String = steps.iter().map(|s| format!("  {s:?}\n")).collect();
    text = text
        .replace("MessageKey { team_id: ", "(")
        .replace(", channel_id: ", " ")
        .replace(", thread_id: ", " ")
        .replace(", message_id: ", " ")
        .replace("ChannelKey { team_id: ", "(")
        .replace(" }", ")");
    for (i, c) in channels.iter().enumerate() {
        text = text.replace(&c.channel_id, &format!("C{i}"));
    }
    for (i, t) in teams.iter().enumerate() {
        text = text.replace(t.as_str(), &format!("T{i}"));
    }
    let mut legend = String::new();
    for (i, t) in teams.iter().enumerate() {
        let _ = write!(legend, "T{i}={t} ");
    }
    for (i, c) in channels.iter().enumerate() {
        let _ = write!(legend, "C{i}={} ", c.channel_id);
    }
    format!("\n{text}ids: {legend}")
}

/// The time a change made now can be told apart from the run that follows: the emulator
/// hands out strictly increasing milliseconds, so a burst runs ahead of the clock.
pub async fn settle(newest: DateTime<Utc>) {
    while Utc::now() <= newest {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
