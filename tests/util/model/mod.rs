//! Nothing lost, checked against a model (issue 10): from a seed, a tenant, Graph quirks
//! and a connector config are drawn; then N rounds, each a random mix of changes and
//! faults ([`plan`]) followed by a run of the real binary (and, when that run did not end
//! with 0, a run without faults that must). After every round the ingest's state (the
//! latest document per id) is compared with the emulator's ground truth ([`judge`]), and a
//! round without changes after a settled round must send nothing. A failure reports the
//! seed, the round and its steps, so the case can be replayed and pinned.

pub mod judge;
pub mod plan;
pub mod rng;
pub mod runner;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use graph_emulator::{Change, ChannelKey, MessageKey, Quirks, TenantSpec};
use serde_json::Value;

use super::Harness;
use judge::{held, resent, Judge};
use plan::{Mix, Step};
use rng::Rng;
use runner::RunRecord;

/// One seed's run of the model.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub seed: u64,
    pub rounds: usize,
    /// Faults between rounds (expiry, Graph and ingest failures, kill -9, SIGTERM).
    pub faults: bool,
    /// Ingest answers later than `[ingest] timeout` (each costs over a second).
    pub slow_ingest: bool,
}

/// What one seed did.
#[derive(Debug, Clone, Default)]
pub struct SeedOutcome {
    pub seed: u64,
    pub rounds: usize,
    pub runs: usize,
    /// Documents the ingest accepted (retried POSTs apart).
    pub documents: usize,
    /// Of those, resent while the ingest already held exactly them.
    pub duplicates: usize,
    /// Documents in POSTs retried with an idempotency key the ingest had accepted.
    pub retried: usize,
    /// Messages out of reach at the end (documented limits), for the report.
    pub out_of_reach: usize,
    /// The first failure, with everything needed to replay it.
    pub failure: Option<String>,
}

const REPLY_WINDOW: Duration = Duration::from_secs(3 * 86_400);
const INGEST_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs one seed: the rounds, then a settling run and a quiet run that must send nothing.
pub async fn run_seed(cfg: &ModelConfig) -> SeedOutcome {
    let mut m = Model::start(cfg).await;
    for round in 1..=cfg.rounds {
        let quiet = round > 1 && m.rng.chance(15);
        if let Err(report) = m.round(round, quiet).await {
            m.outcome.failure = Some(report);
            return m.outcome;
        }
    }
    for (round, quiet) in [(cfg.rounds + 1, false), (cfg.rounds + 2, true)] {
        m.settled_only = true;
        if let Err(report) = m.round(round, quiet).await {
            m.outcome.failure = Some(report);
            return m.outcome;
        }
    }
    m.outcome
}

struct Model {
    cfg: ModelConfig,
    h: Harness,
    rng: Rng,
    quirks: Quirks,
    runs: Vec<RunRecord>,
    /// Every channel, the empty ones too.
    channels: BTreeSet<ChannelKey>,
    hidden: BTreeSet<MessageKey>,
    /// What the ingest held at the last check.
    before: BTreeMap<String, Value>,
    /// The last round changed nothing behind the connector's back: one clean run, no
    /// faults, no change during it.
    settled: bool,
    /// Rounds without changes or faults (the closing ones).
    settled_only: bool,
    outcome: SeedOutcome,
}

impl Model {
    async fn start(cfg: &ModelConfig) -> Model {
        let mut rng = Rng::new(cfg.seed);
        let spec = TenantSpec {
            seed: cfg.seed,
            teams: 2,
            channels_per_team: 2,
            messages_per_channel: rng.range(5, 12) as usize,
            max_replies: 4,
            users: 12,
            history_days: 8,
        };
        let mut h = Harness::new(spec).await;
        let quirks = Quirks {
            live_delta_rounds: rng.chance(50),
            short_pages: rng.chance(50),
            inline_replies_without_next_link: rng.chance(50),
            empty_channel_delta_fails: rng.chance(70),
        };
        h.emu.set_quirks(quirks.clone());
        h.emu.set_inline_replies_limit(rng.range(2, 5) as usize);
        h.set("crawl", "include_private_teams = true");
        h.set(
            "crawl",
            &format!("reply_window = \"{}s\"", REPLY_WINDOW.as_secs()),
        );
        h.set("ingest", &format!("batch_size = {}", rng.range(2, 8)));
        h.set(
            "ingest",
            &format!("timeout = \"{}ms\"", INGEST_TIMEOUT.as_millis()),
        );
        let channels = h
            .emu
            .truth()
            .iter()
            .map(|t| ChannelKey {
                team_id: t.team_id.clone(),
                channel_id: t.channel_id.clone(),
            })
            .collect();
        Model {
            cfg: cfg.clone(),
            h,
            rng,
            quirks,
            runs: Vec::new(),
            channels,
            hidden: BTreeSet::new(),
            before: BTreeMap::new(),
            settled: false,
            settled_only: false,
            outcome: SeedOutcome {
                seed: cfg.seed,
                ..SeedOutcome::default()
            },
        }
    }

    async fn round(&mut self, round: usize, quiet: bool) -> Result<(), String> {
        let steps = if quiet || self.settled_only {
            Vec::new()
        } else {
            self.draw()
        };
        let signal = self.arm(&steps);
        plan::settle(self.h.emu.newest_timestamp()).await;
        let batches_before = self.h.sink.batches().len();
        let first_run = self.runs.len();
        let mut earlier = vec![self.h.emu.truth()];
        let first = runner::run(&self.h, signal).await;
        let faulty = steps.iter().any(Step::is_fault);
        let plausible: &[i32] = if faulty { &[0, 3, 69, 143, -9] } else { &[0] };
        let first_code = first.code;
        self.runs.push(first);
        self.h.emu.clear_injected();
        self.h.sink.clear_faults();
        if !plausible.contains(&first_code) {
            return Err(self.report(
                round,
                &steps,
                first_run,
                &[format!("run exited {first_code}")],
            ));
        }
        if first_code != 0 {
            earlier.push(self.h.emu.truth());
            let again = runner::run(&self.h, None).await;
            let code = again.code;
            self.runs.push(again);
            if code != 0 {
                return Err(self.report(
                    round,
                    &steps,
                    first_run,
                    &[format!("the run after the faults exited {code}")],
                ));
            }
        }
        let changed_during = !self.h.emu.applied_during().is_empty();
        if std::env::var_os("MODEL_TRACE").is_some() {
            let runs: Vec<(i32, usize)> = self.runs[first_run..]
                .iter()
                .map(|r| (r.code, r.documents))
                .collect();
            let steps = plan::describe(&steps, &self.channels);
            eprintln!(
                "seed {} round {round}: runs (exit, documents) {runs:?}{steps}",
                self.cfg.seed
            );
        }
        self.check(round, &steps, first_run, &earlier)?;
        let sent = self.runs[first_run..]
            .iter()
            .map(|r| r.documents)
            .sum::<usize>();
        if quiet && self.settled && sent > 0 {
            let why =
                format!("a round without changes after a settled round sent {sent} documents");
            return Err(self.report(round, &steps, first_run, &[why]));
        }
        self.settled = !faulty && first_code == 0 && !changed_during;
        let r = resent(&self.h.sink.batches(), batches_before);
        self.outcome.rounds = round;
        self.outcome.runs = self.runs.len();
        self.outcome.documents += r.documents;
        self.outcome.duplicates += r.duplicates;
        self.outcome.retried += r.retried;
        Ok(())
    }

    fn draw(&mut self) -> Vec<Step> {
        let truth = self.h.emu.truth();
        let users = self.h.emu.users();
        let world = plan::World {
            truth: &truth,
            users: &users,
            channels: &self.channels,
            hidden: &self.hidden,
            reply_window: REPLY_WINDOW,
            short_pages: self.quirks.short_pages,
        };
        let mix = Mix {
            faults: self.cfg.faults,
            slow_ingest: self.cfg.slow_ingest,
            ingest_timeout: INGEST_TIMEOUT,
        };
        plan::draw(&mut self.rng, &world, mix)
    }

    /// Applies the round's changes and arms its faults; returns the signal for the run.
    fn arm(&mut self, steps: &[Step]) -> Option<(i32, u64)> {
        let mut signal = None;
        for step in steps {
            match step {
                Step::Apply { change, bump } => {
                    if let Change::HideModified(keys) = change {
                        self.hidden.extend(keys.iter().cloned());
                    }
                    let report = self.h.emu.apply_bumping(change.clone(), *bump);
                    self.channels.extend(report.channels);
                }
                Step::During {
                    route,
                    scope,
                    skip,
                    change,
                    bump,
                } => self
                    .h
                    .emu
                    .apply_during(route, scope, *skip, change.clone(), *bump),
                Step::Expire(how) => self.h.emu.expire_delta_tokens_as(*how),
                Step::GraphFault { route, skip, fault } => {
                    self.h.emu.inject_after(route, "", *skip, *fault, 1)
                }
                Step::IngestFault { skip, fault } => self.h.sink.fail_at(*skip, *fault),
                Step::Kill { after } => signal = Some((libc::SIGKILL, *after)),
                Step::Term { after } => signal = Some((libc::SIGTERM, *after)),
            }
        }
        signal
    }

    fn check(
        &mut self,
        round: usize,
        steps: &[Step],
        first_run: usize,
        earlier: &[Vec<graph_emulator::TruthMessage>],
    ) -> Result<(), String> {
        let truth = self.h.emu.truth();
        let now = held(&self.h.sink.batches());
        let tenant = self.h.emu.tenant_id();
        let judge = Judge {
            tenant: &tenant,
            truth: &truth,
            runs: &self.runs,
            reply_window: REPLY_WINDOW,
            before: &self.before,
            earlier,
        };
        let (problems, pending) = judge.divergences(&now);
        if !problems.is_empty() {
            return Err(self.report(round, steps, first_run, &problems));
        }
        self.outcome.out_of_reach = pending;
        self.before = now;
        Ok(())
    }

    fn report(
        &self,
        round: usize,
        steps: &[Step],
        first_run: usize,
        problems: &[String],
    ) -> String {
        let runs: Vec<String> = self.runs[first_run..]
            .iter()
            .map(|r| {
                format!(
                    "exit {} (signalled: {}), {} documents",
                    r.code, r.signalled, r.documents
                )
            })
            .collect();
        let histories = judge::histories(problems, &self.runs, &self.h.sink.batches());
        let last = self
            .runs
            .last()
            .map(|r| tail(&r.stderr, 12))
            .unwrap_or_default();
        let shown = problems.len().min(25);
        format!(
            "model seed {seed}, round {round} of {rounds}: {n} problems\n{problems}\n{histories}\
             quirks: {quirks:?}\nruns this round: {runs:?}\nsteps: {steps}\n\
             last run's log (tail):\n{last}\n\
             replay: MODEL_SEED={seed} MODEL_ROUNDS={rounds} MODEL_FAULTS={faults} \
             cargo test --test tests model::replay -- --ignored --nocapture",
            seed = self.cfg.seed,
            rounds = self.cfg.rounds,
            n = problems.len(),
            problems = problems[..shown].join("\n"),
            quirks = self.quirks,
            steps = plan::describe(steps, &self.channels),
            faults = self.cfg.faults,
        )
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
