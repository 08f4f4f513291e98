//! `cargo bench --bench crawl`: the real `teams-connector run` against `teams-connector
//! emulator` in another process (issue 4, throttling and scale). Each case starts an emulator
//! on free ports, writes a `connector.toml` pointing at it, runs the connector as a child
//! process measured with `wait4` (user+sys CPU, peak RSS) and a wall clock, then reads the
//! connector's `run_summary` log line and the emulator's `/_emulator/stats`.
//!
//! Cases (`BENCH_CASES=1,3` picks; `BENCH_SCALE=0.1` shrinks the message counts):
//! 1. throttled: 200 channels, 20 000 roots, emulator at Graph's 20/s per tenant and 1/s per
//!    channel with 50 ms latency; the connector configured to the same limits.
//! 2. unthrottled: the same tenant, no limits, 5 ms latency: throughput, CPU and requests per
//!    document.
//! 3. memory: 10 k, 200 k and 1 M roots over 1 000 channels: the connector's peak RSS.
//!
//! `BENCH_BIN` overrides the binary; `TEAMS_CONNECTOR__*` variables are passed through to
//! the connector (e.g. `TEAMS_CONNECTOR__LIMITS__CONCURRENCY=64`); `BENCH_KEEP=1` keeps the
//! temp dirs (configs, logs) and prints where they are.

// A plain synchronous program: blocking sleeps and std process handling are what it needs.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Graph's documented limits for channel messages (the ceiling of case 1).
const TENANT_RPS: f64 = 20.0;
const CHANNEL_RPS: f64 = 1.0;
/// Page size of a delta request.
const PAGE: u64 = 50;

#[derive(Debug, Clone, Copy)]
struct Shape {
    teams: u64,
    channels: u64,
    roots: u64,
    replies: u64,
    users: u64,
}

impl Shape {
    fn channels_total(&self) -> u64 {
        self.teams * self.channels
    }

    /// The fewest requests a first full crawl needs: a token, one users page, joinedTeams,
    /// associatedTeams, a channel list per team, and per channel ceil(roots/50) delta pages (the last one
    /// carries the deltaLink; an empty channel still needs one), plus the empty opening pages
    /// the emulator adds to some rounds.
    fn min_requests(&self, empty_openers: u64) -> u64 {
        let discovery = 1 + self.users.div_ceil(999).max(1) + 2 + self.teams;
        discovery + self.channels_total() * self.roots.div_ceil(PAGE).max(1) + empty_openers
    }
}

#[derive(Debug, Clone, Copy)]
struct EmuLimits {
    tenant_rps: f64,
    channel_rps: f64,
}

#[derive(Debug, Clone, Copy)]
struct ConnectorLimits {
    rps: f64,
    per_channel: f64,
    concurrency: u32,
}

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
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .unwrap_or(1.0);
        let timeout = std::env::var("BENCH_TIMEOUT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1800);
        Bench {
            bin,
            scale,
            keep: std::env::var("BENCH_KEEP").is_ok_and(|v| v == "1"),
            timeout: Duration::from_secs(timeout),
        }
    }

    fn scaled(&self, n: u64) -> u64 {
        ((n as f64 * self.scale).round() as u64).max(1)
    }
}

/// An emulator child process and the connection details it printed.
struct Emu {
    child: Child,
    info: Value,
    startup: Duration,
}

impl Emu {
    fn start(
        b: &Bench,
        shape: Shape,
        latency_ms: u64,
        limits: Option<EmuLimits>,
        log: &Path,
    ) -> Emu {
        let mut cmd = Command::new(&b.bin);
        cmd.args([
            "--log-format",
            "json",
            "emulator",
            "--port",
            "0",
            "--print-json",
        ])
        .arg("--quiet-batches")
        .args(["--teams", &shape.teams.to_string()])
        .args(["--channels", &shape.channels.to_string()])
        .args(["--messages", &shape.roots.to_string()])
        .args(["--replies", &shape.replies.to_string()])
        .args(["--users", &shape.users.to_string()])
        .args(["--latency", &format!("{latency_ms}ms")]);
        if let Some(l) = limits {
            cmd.args(["--tenant-rps", &l.tenant_rps.to_string()])
                .args(["--channel-rps", &l.channel_rps.to_string()]);
        }
        let started = Instant::now();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("emulator log"))
            .spawn()
            .expect("emulator starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("emulator prints its connection details");
        let info: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "emulator did not print JSON ({e}): {line:?}; see {}",
                log.display()
            )
        });
        Emu {
            child,
            info,
            startup: started.elapsed(),
        }
    }

    fn get(&self, key: &str) -> &str {
        self.info[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key}"))
    }

    fn stats(&self) -> Value {
        http_get(&format!("{}?arrivals=1", self.get("stats_url")))
    }

    fn stop(mut self) {
        // SIGTERM: the emulator shuts down cleanly and logs its totals.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET for the stats endpoint (no client library, no settings).
fn http_get(url: &str) -> Value {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut s = TcpStream::connect(host).expect("stats endpoint reachable");
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("sent");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read");
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("stats are JSON ({e}): {buf:.200}"))
}

/// What one connector run cost.
struct Measured {
    wall: Duration,
    cpu: Duration,
    max_rss_mb: f64,
    code: i32,
    summary: Value,
}

fn run_connector(b: &Bench, emu: &Emu, limits: ConnectorLimits, dir: &Path) -> Measured {
    let config = dir.join("connector.toml");
    let toml = format!(
        "[microsoft]\ntenant_id = {tenant:?}\nclient_id = {client:?}\ngraph_url = {graph:?}\nlogin_url = {login:?}\n\n\
         [crawl]\ninclude_private_teams = true\n\n\
         [limits]\nrequests_per_second = {rps}\nper_channel_requests_per_second = {pc}\nconcurrency = {conc}\nmax_retries = 20\n\n\
         [ingest]\nurl = {ingest:?}\nbatch_size = 100\n\n[state]\ndir = {state:?}\n",
        tenant = emu.get("tenant_id"),
        client = emu.get("client_id"),
        graph = emu.get("graph_url"),
        login = emu.get("login_url"),
        rps = limits.rps,
        pc = limits.per_channel,
        conc = limits.concurrency,
        ingest = emu.get("ingest_url"),
        state = dir.join("state").display().to_string(),
    );
    std::fs::write(&config, toml).expect("config written");
    let log = dir.join("connector.log");
    let mut cmd = Command::new(&b.bin);
    cmd.arg("--config")
        .arg(&config)
        .args(["--log-format", "json", "run"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TEAMS_CONNECTOR_REFRESH_TOKEN", emu.get("refresh_token"))
        .env("TEAMS_CONNECTOR_INGEST_TOKEN", emu.get("ingest_token"))
        .envs(std::env::vars().filter(|(k, _)| k.starts_with("TEAMS_CONNECTOR__")))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("connector log"));
    let started = Instant::now();
    let child = cmd.spawn().expect("connector starts");
    let pid = child.id() as libc::pid_t;
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        let timeout = b.timeout;
        std::thread::spawn(move || {
            let until = Instant::now() + timeout;
            while !done.load(Ordering::SeqCst) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(200));
            }
            if !done.load(Ordering::SeqCst) {
                eprintln!("connector still running after {timeout:?}: killing it");
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        })
    };
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for the child it reaps.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let _ = watchdog.join();
    assert_eq!(reaped, pid, "wait4 reaps the connector");
    drop(child);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -libc::WTERMSIG(status)
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let summary = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["target"] == "run_summary")
        .unwrap_or(Value::Null);
    if summary.is_null() {
        eprintln!(
            "no run_summary from the connector (exit {code}); log: {}",
            log.display()
        );
    }
    Measured {
        wall,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        max_rss_mb: ru.ru_maxrss as f64 / 1024.0, // kilobytes on Linux
        code,
        summary,
    }
}

fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// The most arrivals in any `window_ms`, among those at or after `from_ms`.
fn max_in_window(arrivals: &[f64], window_ms: f64, from_ms: f64) -> usize {
    let mut t: Vec<f64> = arrivals.iter().copied().filter(|a| *a >= from_ms).collect();
    t.sort_by(f64::total_cmp);
    let (mut lo, mut best) = (0, 0);
    for hi in 0..t.len() {
        while t[hi] - t[lo] >= window_ms {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

/// Rows of `metric | value | target`, printed aligned.
struct Table {
    title: String,
    rows: Vec<[String; 3]>,
}

impl Table {
    fn new(title: String) -> Table {
        Table {
            title,
            rows: Vec::new(),
        }
    }

    fn row(&mut self, metric: &str, value: String, target: &str) {
        self.rows
            .push([metric.to_owned(), value, target.to_owned()]);
    }

    fn print(&self) {
        // Long values (route maps) do not widen the value column.
        let w0 = self.rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
        let w1 = self
            .rows
            .iter()
            .map(|r| r[1].len())
            .filter(|n| *n <= 40)
            .max()
            .unwrap_or(0);
        println!("\n{}", self.title);
        for [m, v, t] in &self.rows {
            let target = if t.is_empty() {
                String::new()
            } else {
                format!("target {t}")
            };
            println!("  {m:<w0$}  {v:<w1$}  {target}");
        }
    }
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new(b: &Bench, name: &str) -> Case {
        let dir = tempfile::Builder::new()
            .prefix(&format!("bench-crawl-{name}-"))
            .tempdir()
            .expect("temp dir");
        if b.keep {
            eprintln!("{name}: files in {}", dir.path().display());
        }
        Case { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn finish(self, b: &Bench) {
        if b.keep {
            let _ = self.dir.keep();
        }
    }
}

fn throttled_shape(b: &Bench) -> Shape {
    // 10 teams x 20 channels, 20 000 roots at scale 1.
    Shape {
        teams: 10,
        channels: 20,
        roots: b.scaled(100),
        replies: 3,
        users: 200,
    }
}

fn case_throttled(b: &Bench) -> Table {
    let shape = throttled_shape(b);
    let case = Case::new(b, "throttled");
    let limits = EmuLimits {
        tenant_rps: TENANT_RPS,
        channel_rps: CHANNEL_RPS,
    };
    let emu = Emu::start(
        b,
        shape,
        50,
        Some(limits),
        &case.path().join("emulator.log"),
    );
    let conn = ConnectorLimits {
        rps: TENANT_RPS,
        per_channel: CHANNEL_RPS,
        concurrency: 32,
    };
    let m = run_connector(b, &emu, conn, case.path());
    let stats = emu.stats();
    emu.stop();
    let msg = num(&stats, "message_requests");
    let limited = num(&stats, "limited");
    let injected = num(&stats, "throttled");
    let accepted = msg.saturating_sub(limited + injected);
    let arrivals: Vec<f64> = stats["arrivals_ms"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let first = arrivals.iter().copied().fold(f64::INFINITY, f64::min);
    let last = arrivals.iter().copied().fold(0.0, f64::max);
    let span_s = ((last - first) / 1e3).max(1e-3);
    let achieved = accepted as f64 / span_s;
    let min_wall = accepted as f64 / TENANT_RPS;
    let mut t = Table::new(format!(
        "case 1 (throttled): {} teams x {} channels, {} roots, <= {} replies/root; emulator {TENANT_RPS}/s tenant, {CHANNEL_RPS}/s channel, 50 ms latency; connector rps {}, per channel {}, concurrency {}",
        shape.teams, shape.channels, shape.channels_total() * shape.roots, shape.replies, conn.rps, conn.per_channel, conn.concurrency
    ));
    t.row("exit code", m.code.to_string(), "0");
    t.row("forwarded", num(&m.summary, "forwarded").to_string(), "");
    t.row("message-route requests (emulator)", msg.to_string(), "");
    t.row(
        "  answered 429 by the limiter",
        format!(
            "{limited} ({:.2} %) {}",
            pct(limited, msg),
            stats["limited_by_scope"]
        ),
        "<= 1 %",
    );
    t.row(
        "  Retry-After violations",
        format!(
            "{} {}",
            num(&stats, "violations"),
            stats["violations_by_scope"]
        ),
        "0",
    );
    t.row(
        "achieved accepted rps (message routes)",
        format!(
            "{achieved:.2} = {:.1} % of {TENANT_RPS}",
            100.0 * achieved / TENANT_RPS
        ),
        ">= 95 %",
    );
    t.row(
        "max requests in a 1 s window after 2 s",
        max_in_window(&arrivals, 1000.0, first + 2000.0).to_string(),
        &format!("~{TENANT_RPS} (one bucket's worth)"),
    );
    t.row("wall time", format!("{:.1} s", m.wall.as_secs_f64()), "");
    t.row(
        "theoretical minimum (accepted / 20 rps)",
        format!(
            "{min_wall:.1} s = {:.1} % of wall",
            100.0 * min_wall / m.wall.as_secs_f64()
        ),
        "",
    );
    t.row(
        "connector: requests / throttled / retries / throttle_wait_ms",
        format!(
            "{} / {} / {} / {}",
            num(&m.summary, "requests"),
            num(&m.summary, "throttled"),
            num(&m.summary, "retries"),
            num(&m.summary, "throttle_wait_ms")
        ),
        "",
    );
    t.row(
        "emulator requests by route",
        stats["by_route"].to_string(),
        "",
    );
    case.finish(b);
    t
}

fn case_unthrottled(b: &Bench) -> Table {
    let shape = throttled_shape(b);
    let case = Case::new(b, "unthrottled");
    let emu = Emu::start(b, shape, 5, None, &case.path().join("emulator.log"));
    let conn = ConnectorLimits {
        rps: 100_000.0,
        per_channel: 10_000.0,
        concurrency: 32,
    };
    let m = run_connector(b, &emu, conn, case.path());
    let stats = emu.stats();
    emu.stop();
    let docs = num(&m.summary, "forwarded").max(1);
    let requests = num(&stats, "requests");
    let min = shape.min_requests(num(&stats, "delta_empty_openers"));
    let mut t = Table::new(format!(
        "case 2 (unthrottled): same tenant ({} roots), no limits, 5 ms latency; connector concurrency {}",
        shape.channels_total() * shape.roots, conn.concurrency
    ));
    t.row("exit code", m.code.to_string(), "0");
    t.row("forwarded documents", docs.to_string(), "");
    t.row("wall time", format!("{:.2} s", m.wall.as_secs_f64()), "");
    t.row(
        "documents / s",
        format!("{:.0}", docs as f64 / m.wall.as_secs_f64()),
        "",
    );
    t.row(
        "connector CPU (user+sys)",
        format!("{:.2} s", m.cpu.as_secs_f64()),
        "",
    );
    t.row(
        "CPU per document",
        format!("{:.1} us", m.cpu.as_secs_f64() * 1e6 / docs as f64),
        "<= 20 us",
    );
    t.row(
        "Graph requests (emulator) / minimum",
        format!("{requests} / {min} = {:.3}", requests as f64 / min as f64),
        "<= 1.05",
    );
    t.row(
        "requests per document / minimum",
        format!(
            "{:.4} / {:.4}",
            requests as f64 / docs as f64,
            min as f64 / docs as f64
        ),
        "",
    );
    t.row("peak RSS", format!("{:.1} MB", m.max_rss_mb), "");
    t.row(
        "emulator requests by route",
        stats["by_route"].to_string(),
        "",
    );
    case.finish(b);
    t
}

fn case_memory(b: &Bench) -> Table {
    let mut t = Table::new(
        "case 3 (memory): 20 teams x 50 channels, no replies, no limits, no latency; connector concurrency 32".to_owned(),
    );
    let mut peaks = Vec::new();
    for roots in [10, 200, 1000] {
        let shape = Shape {
            teams: 20,
            channels: 50,
            roots: b.scaled(roots),
            replies: 0,
            users: 200,
        };
        let case = Case::new(b, &format!("memory-{}", shape.roots));
        let emu = Emu::start(b, shape, 0, None, &case.path().join("emulator.log"));
        let conn = ConnectorLimits {
            rps: 100_000.0,
            per_channel: 10_000.0,
            concurrency: 32,
        };
        let m = run_connector(b, &emu, conn, case.path());
        let startup = emu.startup;
        emu.stop();
        peaks.push(m.max_rss_mb);
        t.row(
            &format!("{} messages", shape.channels_total() * shape.roots),
            format!("peak RSS {:.1} MB", m.max_rss_mb),
            "<= 50 MB",
        );
        t.row(
            "",
            format!(
                "exit {}, forwarded {}, wall {:.1} s, CPU {:.1} s, emulator start {:.1} s",
                m.code,
                num(&m.summary, "forwarded"),
                m.wall.as_secs_f64(),
                m.cpu.as_secs_f64(),
                startup.as_secs_f64()
            ),
            "",
        );
        case.finish(b);
    }
    let lo = peaks.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = peaks.iter().copied().fold(0.0, f64::max);
    t.row(
        "largest / smallest peak",
        format!("{:.2}", hi / lo),
        "flat (~1)",
    );
    t
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

fn main() {
    let b = Bench::from_env();
    let cases = std::env::var("BENCH_CASES").unwrap_or_else(|_| "1,2,3".into());
    println!(
        "crawl benchmark: binary {}, scale {}, cases {cases}",
        b.bin.display(),
        b.scale
    );
    for c in cases.split(',').map(str::trim) {
        let table = match c {
            "1" => case_throttled(&b),
            "2" => case_unthrottled(&b),
            "3" => case_memory(&b),
            "" => continue,
            other => panic!("BENCH_CASES: unknown case {other:?} (cases are 1, 2, 3)"),
        };
        table.print();
    }
    std::io::stdout().flush().ok();
}
