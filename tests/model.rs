//! Nothing lost, checked against a model (issue 10): a handful of seeds, a few rounds each,
//! of random changes and faults; after every round that ends with exit 0 the ingest holds
//! exactly what the tenant holds, and a round without changes sends nothing
//! (`tests/util/model`). `examples/soak.rs` runs the same model for hundreds of seeds.
//! Below the model, the cases it found, pinned: each failed before its fix in `src/`.

use std::collections::BTreeMap;

use graph_emulator::{
    Change, EmulatorOptions, MessageKey, NewChannel, Quirks, TenantSpec, TruthMessage,
};

use crate::util::model::{run_seed, ModelConfig, SeedOutcome};
use crate::util::{assert_converged, Harness};

async fn seeds(seeds: &[u64], rounds: usize, slow_ingest: bool) {
    let mut outcomes: Vec<SeedOutcome> = Vec::new();
    for &seed in seeds {
        let cfg = ModelConfig {
            seed,
            rounds,
            faults: true,
            slow_ingest,
        };
        let out = run_seed(&cfg).await;
        if let Some(failure) = &out.failure {
            panic!("{failure}");
        }
        outcomes.push(out);
    }
    for o in &outcomes {
        println!(
            "seed {}: {} rounds, {} runs, {} documents, {} duplicates, {} retried, {} out of reach",
            o.seed, o.rounds, o.runs, o.documents, o.duplicates, o.retried, o.out_of_reach
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ingest_holds_what_the_tenant_holds_after_every_round_a() {
    seeds(&[1, 2, 3, 4], 6, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ingest_holds_what_the_tenant_holds_after_every_round_b() {
    seeds(&[5, 6, 7, 8], 6, false).await;
}

/// With ingest answers later than `[ingest] timeout` among the faults.
#[tokio::test(flavor = "multi_thread")]
async fn the_ingest_holds_what_the_tenant_holds_after_every_round_c() {
    seeds(&[9, 10, 11, 12], 6, true).await;
}

/// `MODEL_SEED=… MODEL_ROUNDS=… [MODEL_FAULTS=false] cargo test --test tests model::replay
/// -- --ignored --nocapture` replays one seed a failure reported.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "replays the seed in MODEL_SEED; run by hand"]
async fn replay() {
    let var = |name: &str| std::env::var(name).ok();
    let cfg = ModelConfig {
        seed: var("MODEL_SEED")
            .and_then(|s| s.parse().ok())
            .expect("MODEL_SEED"),
        rounds: var("MODEL_ROUNDS")
            .and_then(|s| s.parse().ok())
            .unwrap_or(10),
        faults: var("MODEL_FAULTS").is_none_or(|f| f != "false"),
        slow_ingest: var("MODEL_SLOW_INGEST").is_some_and(|f| f == "true"),
    };
    let out = run_seed(&cfg).await;
    println!("{out:?}");
    assert!(out.failure.is_none(), "{}", out.failure.unwrap_or_default());
}

// Cases the model found, pinned.

/// A channel without messages: Graph opens its delta round with an empty page and a
/// nextLink that answers 400 "Parameter 'DeltaToken' not supported"
/// (`error-400-delta-token-not-supported.json`). It must not fail the run, every run.
#[tokio::test(flavor = "multi_thread")]
async fn issue_10_an_empty_channel_whose_delta_cannot_be_followed_is_not_a_failure() {
    let h = Harness::new(TenantSpec::default()).await;
    h.emu.set_quirks(Quirks {
        empty_channel_delta_fails: true,
        ..Quirks::default()
    });
    let team = h.emu.truth()[0].team_id.clone();
    let added = h.emu.apply(Change::AddChannel(vec![NewChannel {
        team_id: team,
        channel_id: None,
    }]));
    for _ in 0..2 {
        let run = h.run(&["run"]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    assert_converged(&h, false);
    // Its first message arrives once it has one.
    h.emu.apply(Change::Root(added.channels.clone()));
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_converged(&h, false);
}

/// Graph stops inline replies at 1 000 without `replies@odata.nextLink` at times; only
/// `replies@odata.count` says more exist (here the cut is at 2). Every reply must arrive,
/// through delta and through the reply sweep (an old reply edited without its root
/// coming back in delta is beyond the inline cut).
#[tokio::test(flavor = "multi_thread")]
async fn issue_10_replies_past_an_inline_cut_without_a_next_link_arrive() {
    let spec = TenantSpec {
        max_replies: 6,
        ..TenantSpec::default()
    };
    let mut h = Harness::new(spec).await;
    h.set("crawl", "reply_window = \"30d\"");
    h.emu.set_quirks(Quirks {
        inline_replies_without_next_link: true,
        ..Quirks::default()
    });
    h.emu.set_inline_replies_limit(2);
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_converged(&h, false);

    // The oldest reply of each thread with more than two, edited quietly.
    let truth = h.expected(false);
    let mut oldest: BTreeMap<(String, String), MessageKey> = BTreeMap::new();
    for t in truth.values().filter(|t| t.message_id != t.thread_id) {
        let thread = (t.channel_id.clone(), t.thread_id.clone());
        let replies = truth
            .values()
            .filter(|r| {
                (r.channel_id.clone(), r.thread_id.clone()) == thread && r.message_id != r.thread_id
            })
            .count();
        let entry = oldest.entry(thread).or_insert_with(|| key(t));
        if replies > 2 && t.message_id < entry.message_id {
            *entry = key(t);
        }
    }
    let quiet: Vec<MessageKey> = oldest.into_values().collect();
    assert!(!quiet.is_empty());
    h.emu.apply_bumping(Change::Edit(quiet), false);
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_converged(&h, false);
}

/// Graph serves some messages with `lastModifiedDateTime: null`. An edit still shows in
/// `lastEditedDateTime`: it must be forwarded, not taken for a message older than the last
/// sync because only `createdDateTime` was looked at.
#[tokio::test(flavor = "multi_thread")]
async fn issue_10_an_edit_of_a_message_without_last_modified_is_forwarded() {
    let h = Harness::new(TenantSpec::default()).await;
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let truth = h.expected(false);
    let root = truth
        .values()
        .find(|t| t.thread_id == t.message_id)
        .map(key)
        .unwrap();
    let reply = truth
        .values()
        .find(|t| t.thread_id != t.message_id)
        .map(key)
        .unwrap();
    h.emu
        .apply(Change::HideModified(vec![root.clone(), reply.clone()]));
    h.emu.apply(Change::Edit(vec![root, reply]));
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_converged(&h, false);
}

/// README, "Late replies": a reply to a thread older than `reply_window` is out of reach
/// until delta shows the root again. When it does, the reply must arrive — even after
/// another change in the channel moved the last sync time past the reply.
#[tokio::test(flavor = "multi_thread")]
async fn issue_10_a_late_reply_to_an_old_thread_arrives_when_delta_shows_the_root_again() {
    let mut h = Harness::new(TenantSpec {
        teams: 1,
        channels_per_team: 1,
        ..TenantSpec::default()
    })
    .await;
    h.set("crawl", "reply_window = \"1d\"");
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let truth = h.expected(false);
    let old = truth
        .values()
        .filter(|t| t.thread_id == t.message_id)
        .find(|t| t.created < chrono::Utc::now() - chrono::Duration::days(3))
        .map(key)
        .expect("an old thread");
    let channel = graph_emulator::ChannelKey {
        team_id: old.team_id.clone(),
        channel_id: old.channel_id.clone(),
    };
    // A reply that does not bring its root back, then a newer change in the channel.
    let late = h
        .emu
        .apply_bumping(Change::Reply(vec![old.clone()]), false)
        .added;
    h.emu.apply(Change::Root(vec![channel]));
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        !h.received()
            .contains_key(&h.doc_id(&truth_of(&h, &late[0]))),
        "out of reach so far"
    );
    // The root changes: delta shows the thread again, with the late reply.
    h.emu.apply(Change::Edit(vec![old]));
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_converged(&h, false);
}

/// Two replies land while a run sweeps a channel: the first in a thread the sweep already
/// read, the second in one it reads next. The run forwards the second; the first must
/// arrive in the next run, though it is older than what the run forwarded last.
#[tokio::test(flavor = "multi_thread")]
async fn issue_10_a_reply_that_lands_behind_the_sweep_arrives_in_the_next_run() {
    let opts = EmulatorOptions {
        reply_bumps_root: false,
        ..EmulatorOptions::default()
    };
    let spec = TenantSpec {
        teams: 1,
        channels_per_team: 1,
        messages_per_channel: 60,
        history_days: 2,
        ..TenantSpec::default()
    };
    let mut h = Harness::with_options(spec, opts).await;
    h.set("crawl", "reply_window = \"30d\"");
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The sweep reads the list newest first, 50 roots a page: the newest root is on its
    // first page, the oldest on the second.
    let mut roots: Vec<TruthMessage> = h
        .emu
        .truth()
        .into_iter()
        .filter(|t| t.thread_id == t.message_id && !t.deleted)
        .collect();
    roots.sort_by_key(|t| t.created);
    let (oldest, newest) = (key(&roots[0]), key(roots.last().unwrap()));
    // Both fall due with the sweep's second page, before it is answered.
    h.emu
        .apply_during("messages", "", 1, Change::Reply(vec![newest]), false);
    h.emu
        .apply_during("messages", "", 1, Change::Reply(vec![oldest]), false);
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        h.emu.applied_during().len(),
        2,
        "both landed during the sweep"
    );
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_converged(&h, false);
}

fn key(t: &TruthMessage) -> MessageKey {
    MessageKey {
        team_id: t.team_id.clone(),
        channel_id: t.channel_id.clone(),
        thread_id: t.thread_id.clone(),
        message_id: t.message_id.clone(),
    }
}

fn truth_of(h: &Harness, k: &MessageKey) -> TruthMessage {
    h.emu.truth().into_iter().find(|t| &key(t) == k).unwrap()
}
