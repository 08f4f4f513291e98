//! `cargo bench --bench crawl`: the real `teams-connector` against `teams-connector
//! emulator` in another process, on every tenant shape of issue 11 (cases in
//! [`cases`]): Graph's documented limits on many one-page channels, on several and few
//! multi-page channels and on one long channel among short ones — each crawled first, then
//! incrementally (delta and the reply sweep), then backfilled — and emulators whose binding
//! limit is another (per team, per user, per tenant on delta and replies, 429s without
//! Retry-After); then memory: a slow ingest with a big directory, and giant pages.
//!
//! Each case starts an emulator on free ports, writes a `connector.toml` (the connector's
//! defaults, plus what the case says), and measures each step as a child process: wall
//! time, user+sys CPU, the process's own peak RSS ([`measure`]), with the emulator's
//! counters reset before the step and read after it. One table comes out: shape, requests,
//! minimum time ([`ceiling`]), achieved time, % of the ceiling, 429s, Retry-After
//! violations, peak RSS and µs of CPU per forwarded document.
//!
//! Environment: `BENCH_CASES=a,d` picks cases (default: all), `BENCH_SCALE=0.05` shrinks
//! them (a quick check), `BENCH_BIN` runs another binary, `BENCH_KEEP=1` keeps the temp dirs
//! (configs, logs), `BENCH_TIMEOUT_SECS` (default 3600) bounds each connector run,
//! `BENCH_PIN=0` lets the emulator and the connector share CPUs ([`measure::pin`]),
//! `BENCH_JITTER=20ms` delays each request on its way into the emulator by up to that much
//! (`--jitter`), and `TEAMS_CONNECTOR__*` variables reach the connector.

// A plain synchronous program: blocking sleeps and std process handling are what it needs.
#![allow(clippy::disallowed_methods)]

mod cases;
mod ceiling;
mod connector;
mod emu;
mod measure;
mod table;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cases::Case;
use crate::connector::Connector;
use crate::emu::Emu;
use crate::measure::Rss;
use crate::table::Row;

/// The pause between two steps of a case.
const BETWEEN_STEPS: Duration = Duration::from_secs(2);

struct Bench {
    bin: PathBuf,
    scale: f64,
    keep: bool,
    timeout: Duration,
}

impl Bench {
    fn from_env() -> Bench {
        let bin = std::env::var_os("BENCH_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_teams-connector")));
        let scale = std::env::var("BENCH_SCALE")
            .ok()
            .map(|s| match s.parse::<f64>() {
                Ok(x) if x > 0.0 && x.is_finite() => x,
                _ => panic!("BENCH_SCALE must be a positive number, not {s:?}"),
            });
        let timeout = std::env::var("BENCH_TIMEOUT_SECS").ok().map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("BENCH_TIMEOUT_SECS must be whole seconds, not {s:?}"))
        });
        Bench {
            bin,
            scale: scale.unwrap_or(1.0),
            keep: std::env::var("BENCH_KEEP").is_ok_and(|v| v == "1"),
            timeout: Duration::from_secs(timeout.unwrap_or(3600)),
        }
    }
}

fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// Runs every step of `case` against one emulator; a row per step.
fn run_case(b: &Bench, case: &Case) -> Vec<Row> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("bench-crawl-{}-", case.id))
        .tempdir()
        .expect("temp dir");
    let started = Instant::now();
    let emu = Emu::start(&b.bin, &case.emulator, &dir.path().join("emulator.log"));
    eprintln!(
        "{}: emulator up in {:.1} s; files in {}",
        case.shape,
        started.elapsed().as_secs_f64(),
        dir.path().display()
    );
    let conn = Connector::new(&b.bin, &emu, dir.path(), &case.config);
    let effective = conn.effective();
    let mut rows = Vec::new();
    for (i, step) in case.steps.iter().enumerate() {
        if i > 0 {
            // Steps are separate runs, as scheduled runs are hours apart: Graph's
            // per-channel budgets refill between them. Back to back, every channel's first
            // request of the next step would meet the 1/s the last step just used up.
            std::thread::sleep(BETWEEN_STEPS);
        }
        emu.reset();
        let m = conn.step(*step, dir.path(), b.timeout);
        let stats = emu.stats();
        let by_route = &stats["by_route"];
        let row = Row {
            shape: case.shape.clone(),
            run: step.name(),
            code: m.code,
            documents: num(&m.summary, "forwarded"),
            requests: num(&stats, "requests")
                - num(by_route, "token")
                - num(by_route, "devicecode"),
            minimum: case
                .ceiling
                .then(|| ceiling::minimum(&stats, effective, cases::LATENCY))
                .flatten(),
            achieved: m.wall,
            throttled: num(&stats, "limited") + num(&stats, "throttled"),
            violations: num(&stats, "violations"),
            violations_bare: num(&stats, "violations_without_retry_after"),
            rss: m.rss,
            cpu: m.cpu,
        };
        eprintln!("  {}", row.progress());
        rows.push(row);
        if m.code.is_none() {
            break;
        }
    }
    emu.stop();
    if b.keep {
        let _ = dir.keep();
    }
    rows
}

fn main() {
    let b = Bench::from_env();
    let all = cases::all(b.scale);
    let ids: Vec<&str> = all.iter().map(|c| c.id).collect();
    let wanted = std::env::var("BENCH_CASES").unwrap_or_else(|_| ids.join(","));
    let wanted: Vec<&str> = wanted
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(bad) = wanted.iter().find(|w| !ids.contains(w)) {
        panic!(
            "BENCH_CASES: unknown case {bad:?} (cases are {})",
            ids.join(", ")
        );
    }
    println!(
        "crawl benchmark: binary {}, scale {}, cases {}",
        b.bin.display(),
        b.scale,
        wanted.join(",")
    );
    let started = Instant::now();
    let mut rows = Vec::new();
    for case in all.iter().filter(|c| wanted.contains(&c.id)) {
        println!(
            "\n{}\n  teams-connector emulator --port 8700 {}",
            case.shape,
            case.emulator.join(" ")
        );
        for (section, line) in &case.config {
            println!("  connector.toml [{section}] {line}");
        }
        rows.extend(run_case(&b, case));
    }
    println!("\nAll runs ({:.0} s):\n", started.elapsed().as_secs_f64());
    table::print(&rows);
    if rows.iter().any(|r| matches!(r.rss, Rss::Polled(_))) {
        println!(
            "\n† peak RSS polled from /proc/<pid>/status VmHWM every {} ms: the run summary carries \
             no peak_rss_bytes yet; growth in the last interval before exit is missed.",
            measure::POLL.as_millis()
        );
    }
    println!("\nMarkdown:\n");
    table::print_markdown(&rows);
    std::io::stdout().flush().ok();
}
