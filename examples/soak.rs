//! The model of `tests/model.rs` for many seeds and rounds (issue 10): after every round
//! that ends with exit 0, the ingest holds exactly what the tenant holds.
//!
//! ```sh
//! cargo run --release --example soak -- --seeds 200 --rounds 20
//! cargo run --release --example soak -- --seed 1234 --rounds 20     # replay one seed
//! ```
//!
//! Flags: `--seeds N` (default 20), `--first-seed S` (default 1), `--seed S` (one seed),
//! `--rounds R` (default 10), `--jobs J` seeds at once (default 2), `--no-faults`,
//! `--fast` (no ingest answers later than `[ingest] timeout`: they cost over a second each).
//! It builds and runs the `teams-connector` binary of the same profile
//! (`TEAMS_CONNECTOR_BIN` overrides it). Prints a line per failure with its replay
//! command, then one summary line; exits 1 when a seed failed.

#[path = "../tests/util/mod.rs"]
mod util;

use std::path::PathBuf;
use std::time::Instant;

use util::model::{run_seed, ModelConfig, SeedOutcome};

struct Args {
    first: u64,
    seeds: u64,
    rounds: usize,
    jobs: usize,
    faults: bool,
    slow_ingest: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        first: 1,
        seeds: 20,
        rounds: 10,
        jobs: 2,
        faults: true,
        slow_ingest: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(format!("{name} needs a number"))
        };
        match flag.as_str() {
            "--seeds" => a.seeds = value("--seeds")?,
            "--first-seed" => a.first = value("--first-seed")?,
            "--seed" => {
                a.first = value("--seed")?;
                a.seeds = 1;
            }
            "--rounds" => a.rounds = value("--rounds")? as usize,
            "--jobs" => a.jobs = value("--jobs")?.max(1) as usize,
            "--no-faults" => a.faults = false,
            "--fast" => a.slow_ingest = false,
            other => {
                return Err(format!(
                    "unknown flag {other}; see the module doc of examples/soak.rs"
                ))
            }
        }
    }
    Ok(a)
}

/// The connector binary next to this example, built first so it matches the sources.
fn connector_bin() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("TEAMS_CONNECTOR_BIN") {
        return Ok(bin.into());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile_dir = exe
        .parent()
        .and_then(|examples| examples.parent())
        .ok_or("cannot locate the target directory")?;
    if let Some(cargo) = std::env::var_os("CARGO") {
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "--quiet", "--bin", "teams-connector"]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        let status = build.status().map_err(|e| format!("cargo build: {e}"))?;
        if !status.success() {
            return Err("building teams-connector failed".into());
        }
    }
    let bin = profile_dir.join("teams-connector");
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "{} not found; run `cargo build --release` first or set TEAMS_CONNECTOR_BIN",
            bin.display()
        ))
    }
}

fn main() -> std::process::ExitCode {
    let (args, bin) = match parse().and_then(|a| Ok((a, connector_bin()?))) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("soak: {e}");
            return std::process::ExitCode::from(64);
        }
    };
    // Before any thread exists: the harness reads it to find the binary.
    std::env::set_var("TEAMS_CONNECTOR_BIN", &bin);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let outcomes = runtime.block_on(soak(&args));
    let failures: Vec<&SeedOutcome> = outcomes.iter().filter(|o| o.failure.is_some()).collect();
    let rounds: usize = outcomes.iter().map(|o| o.rounds).sum();
    let documents: usize = outcomes.iter().map(|o| o.documents).sum();
    let duplicates: usize = outcomes.iter().map(|o| o.duplicates).sum();
    println!(
        "soak: seeds {}, rounds {rounds}, runs {}, documents {documents}, duplicates resent {duplicates} ({:.2} % of documents, {:.2} per round), retried POSTs' documents {}, out of reach at the end {}, failures {}, {:.0} s",
        outcomes.len(),
        outcomes.iter().map(|o| o.runs).sum::<usize>(),
        100.0 * duplicates as f64 / documents.max(1) as f64,
        duplicates as f64 / rounds.max(1) as f64,
        outcomes.iter().map(|o| o.retried).sum::<usize>(),
        outcomes.iter().map(|o| o.out_of_reach).sum::<usize>(),
        failures.len(),
        started.elapsed().as_secs_f64(),
    );
    if failures.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

async fn soak(args: &Args) -> Vec<SeedOutcome> {
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(args.jobs));
    let mut tasks = tokio::task::JoinSet::new();
    for seed in args.first..args.first + args.seeds {
        let cfg = ModelConfig {
            seed,
            rounds: args.rounds,
            faults: args.faults,
            slow_ingest: args.slow_ingest,
        };
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            run_seed(&cfg).await
        });
    }
    let mut out = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let o = done.expect("a seed's task panicked");
        if let Some(f) = &o.failure {
            eprintln!("{f}\n");
            println!(
                "FAILED seed {}: replay with `cargo run --release --example soak -- --seed {} --rounds {}`",
                o.seed, o.seed, args.rounds
            );
        }
        out.push(o);
    }
    out.sort_by_key(|o| o.seed);
    out
}
