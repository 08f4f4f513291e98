//! The model's one property: after a clean run, the ingest holds exactly what the tenant
//! holds. It reads only the emulator's ground truth and the sink's records.
//!
//! What the contract decides, and so what is expected:
//! - A change must have arrived once a run that could see it ended with exit 0: a run that
//!   started after the change, and after a run that ended with exit 0 (a run after a
//!   failed or killed one may be finishing an old delta round, which shows the change only
//!   in the round after). Delta sees a change once the thread's root changed in delta at or
//!   after it (`TruthMessage::surfaced`); the reply sweep sees a reply's change when its
//!   thread was created within `reply_window` of that run. A reply to an older thread whose
//!   root did not come back in delta is out of reach (README, "Late replies"): until delta
//!   shows the root again, the ingest may still hold what it held before.
//! - Until then the ingest holds what it held at the previous check, the state the tenant
//!   was in when one of the round's runs started (a run reads a message once; a change that
//!   lands after that waits for the next run), or already the new state.
//! - The directory changes no message. A person who left, or got a new mail, after a
//!   message was forwarded leaves that document as it was: nothing reads the message again
//!   unless it changes, and a message whose author is no longer in the directory is skipped,
//!   never retracted (erasure is `forget --person`). So where the author or a mentioned
//!   person changed after the message's last change, or the author left, the ingest may hold
//!   what it held before; once the message is read again it must be the new state.
//! - Deleted: absent or a `delete`. Skipped for any other reason: never sent.
//! - Every document id names a message of the tenant (tenant, team, channel, thread,
//!   message: README "What is forwarded"), computed here from that contract.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use graph_emulator::{Expected, ReceivedBatch, SkipKind, TruthMessage};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::runner::RunRecord;

/// The document id of the ingest contract, independently of the connector's code.
pub fn doc_id(tenant: &str, t: &TruthMessage) -> String {
    let mut h = Sha256::new();
    h.update(tenant.to_ascii_lowercase().as_bytes());
    for part in [&t.team_id, &t.channel_id, &t.thread_id, &t.message_id] {
        h.update([0u8]);
        h.update(part.as_bytes());
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The latest document the ingest accepted per id.
pub fn held(batches: &[ReceivedBatch]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for b in batches.iter().filter(|b| (200..300).contains(&b.status)) {
        for d in &b.documents {
            out.insert(d["id"].as_str().unwrap_or_default().to_owned(), d.clone());
        }
    }
    out
}

/// Resent-but-unchanged documents in `batches[from..]`, with `batches[..from]` already held.
/// A batch whose idempotency key was accepted before is the same POST retried: an ingest
/// that honours the key drops it, so it is counted apart (`retried`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Resent {
    pub documents: usize,
    pub duplicates: usize,
    pub retried: usize,
}

pub fn resent(batches: &[ReceivedBatch], from: usize) -> Resent {
    let mut latest: HashMap<&str, &Value> = HashMap::new();
    let mut keys = std::collections::HashSet::new();
    let mut out = Resent::default();
    for (i, b) in batches
        .iter()
        .enumerate()
        .filter(|(_, b)| (200..300).contains(&b.status))
    {
        let retry = b
            .idempotency_key
            .as_ref()
            .is_some_and(|k| !keys.insert(k.clone()));
        for d in &b.documents {
            let id = d["id"].as_str().unwrap_or_default();
            if i >= from {
                if retry {
                    out.retried += 1;
                } else {
                    out.documents += 1;
                    out.duplicates += usize::from(latest.get(id) == Some(&d));
                }
            }
            latest.insert(id, d);
        }
    }
    out
}

/// Everything the check needs besides the ingest's state.
pub struct Judge<'a> {
    pub tenant: &'a str,
    pub truth: &'a [TruthMessage],
    pub runs: &'a [RunRecord],
    pub reply_window: Duration,
    /// What the ingest held at the previous check.
    pub before: &'a BTreeMap<String, Value>,
    /// The ground truth when each of this round's runs started.
    pub earlier: &'a [Vec<TruthMessage>],
}

impl Judge<'_> {
    /// Every divergence, one line each; out-of-reach messages are counted in the second value.
    pub fn divergences(&self, now: &BTreeMap<String, Value>) -> (Vec<String>, usize) {
        let created: HashMap<(&str, &str, &str), DateTime<Utc>> = self
            .truth
            .iter()
            .filter(|t| t.thread_id == t.message_id)
            .map(|t| {
                (
                    (
                        t.team_id.as_str(),
                        t.channel_id.as_str(),
                        t.thread_id.as_str(),
                    ),
                    t.created,
                )
            })
            .collect();
        let earlier: Vec<HashMap<String, &TruthMessage>> = self
            .earlier
            .iter()
            .map(|truth| truth.iter().map(|t| (doc_id(self.tenant, t), t)).collect())
            .collect();
        let mut problems = Vec::new();
        let mut ids = std::collections::HashSet::new();
        let mut pending = 0;
        for t in self.truth {
            let id = doc_id(self.tenant, t);
            ids.insert(id.clone());
            let doc = now.get(&id);
            let thread = created[&(
                t.team_id.as_str(),
                t.channel_id.as_str(),
                t.thread_id.as_str(),
            )];
            let due = self.due(t, thread);
            let Err(why) = strict(t, doc) else {
                continue;
            };
            if due && !self.directory_leeway(t) {
                problems.push(format!("{} (due): {why} [document {id}]", at(t)));
                continue;
            }
            let unchanged = doc == self.before.get(&id);
            let as_it_was = earlier
                .iter()
                .filter_map(|m| m.get(&id))
                .any(|e| strict(e, doc).is_ok());
            if unchanged || as_it_was {
                pending += usize::from(!due);
            } else {
                problems.push(format!(
                    "{} (not yet due): {why}, and not what it was [document {id}]",
                    at(t)
                ));
            }
        }
        for (id, d) in now {
            if !ids.contains(id) {
                problems.push(format!(
                    "document {id} ({}) names no message of the tenant [document {id}]",
                    d["op"]
                ));
            }
        }
        (problems, pending)
    }

    /// Whether a run that must have delivered this message's current state ended with exit 0.
    fn due(&self, t: &TruthMessage, thread_created: DateTime<Utc>) -> bool {
        let by_delta = t.surfaced.and_then(|b| self.first_clean_run_after(b));
        // The sweep follows incremental rounds only: a channel's first round has none (a root
        // that moved out of that round while it paged is read by the next one).
        let by_sweep = (t.thread_id != t.message_id)
            .then(|| self.first_clean_run_after(t.last_modified))
            .flatten()
            .filter(|r| self.runs.iter().any(|p| p.end <= r.start && p.clean()))
            .filter(|r| {
                let window = chrono::Duration::from_std(self.reply_window).unwrap();
                // Swept for sure: created within the window for the whole run (1 s slack).
                thread_created >= r.end - window + chrono::Duration::seconds(1)
            });
        by_delta.is_some() || by_sweep.is_some()
    }

    /// The first run that started after `t`, ended with 0, and followed a run that ended
    /// with 0 (or none): it began fresh delta rounds after `t`.
    fn first_clean_run_after(&self, t: DateTime<Utc>) -> Option<&RunRecord> {
        self.runs.iter().enumerate().find_map(|(i, r)| {
            let fresh = i == 0 || self.runs[i - 1].clean();
            (r.start > t && r.clean() && fresh).then_some(r)
        })
    }

    /// The directory changed what this message should say without the message changing,
    /// or its author left: what was forwarded before may stay.
    fn directory_leeway(&self, t: &TruthMessage) -> bool {
        let changed_after = t.identities_changed.is_some_and(|c| c > t.last_modified);
        let author_left =
            t.identities_changed.is_some() && t.expected == Expected::Skip(SkipKind::NoMail);
        changed_after || author_left
    }
}

fn at(t: &TruthMessage) -> String {
    format!(
        "{}/{}/{}/{}",
        t.team_id, t.channel_id, t.thread_id, t.message_id
    )
}

/// The held document against what reading the message now must give.
fn strict(t: &TruthMessage, doc: Option<&Value>) -> Result<(), String> {
    match (&t.expected, doc) {
        (Expected::Forward { .. }, None) => Err("missing".into()),
        (
            Expected::Forward {
                author,
                mentions,
                marker,
            },
            Some(d),
        ) => {
            let mentioned: Vec<&str> = d["mentions"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let content = d["content"].as_str().unwrap_or("");
            let created = d["created_at"]
                .as_str()
                .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
                .map(|c| c.with_timezone(&Utc));
            if d["op"] != "upsert" {
                Err(format!("latest is {} instead of an upsert", d["op"]))
            } else if d["author"].as_str() != Some(author) {
                Err(format!("author {} instead of {author}", d["author"]))
            } else if mentioned != mentions.iter().map(String::as_str).collect::<Vec<_>>() {
                Err(format!("mentions {mentioned:?} instead of {mentions:?}"))
            } else if marker
                .as_ref()
                .is_some_and(|m| !content.contains(m.as_str()))
            {
                Err("stale text: the latest edit is not there".into())
            } else if created != Some(t.created) {
                Err(format!(
                    "created_at {} instead of {}",
                    d["created_at"], t.created
                ))
            } else {
                Ok(())
            }
        }
        (Expected::Skip(SkipKind::Deleted), Some(d)) if d["op"] != "delete" => {
            Err("deleted in the tenant, still held".into())
        }
        (Expected::Skip(SkipKind::Deleted), _) | (Expected::Skip(_), None) => Ok(()),
        (Expected::Skip(why), Some(d)) => Err(format!(
            "must be skipped ({why:?}) but the ingest holds {}",
            d["op"]
        )),
    }
}

/// What each run sent for the documents named in `problems` (`[document ID]`): one line
/// per document, `run N: op…` over every run so far.
pub fn histories(problems: &[String], runs: &[RunRecord], batches: &[ReceivedBatch]) -> String {
    let ids: Vec<&str> = problems
        .iter()
        .filter_map(|p| {
            p.rsplit_once("[document ")
                .map(|(_, id)| id.trim_end_matches(']'))
        })
        .take(5)
        .collect();
    let mut out = String::new();
    for id in ids {
        let mut line = format!("history of {id}:");
        for (n, r) in runs.iter().enumerate() {
            let ops: Vec<String> = batches[r.batches.clone()]
                .iter()
                .flat_map(|b| b.documents.iter().map(move |d| (b.status, d)))
                .filter(|(_, d)| d["id"] == id)
                .map(|(status, d)| format!("{}({status})", d["op"].as_str().unwrap_or("?")))
                .collect();
            if !ops.is_empty() {
                line.push_str(&format!(" run {n} (exit {}): {};", r.code, ops.join(" ")));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}
