//! The tenant shapes of issue 11, as `teams-connector emulator` flags (so each one can be
//! served from the command line) plus what the connector is told beyond its defaults.
//!
//! Sizes are the at `BENCH_SCALE=1` and shrink with it (never below one team,
//! channel or page); the directory of the memory case stays at 200 000 users and a giant
//! page at 50 roots × 1 000 replies whatever the scale: they are the point of those cases.

use std::time::Duration;

use crate::connector::Step;

/// Graph-like latency of every answer.
pub const LATENCY: Duration = Duration::from_millis(50);
/// How far back the backfill steps reach, of each shape's 28 days of history: enough for
/// several pages a channel in c and d, little enough to keep the long channel's to minutes.
const BACKFILL_DAYS: u32 = 3;
/// Roots per delta or list page.
const PAGE: u64 = 50;

pub struct Case {
    pub id: &'static str,
    pub shape: String,
    pub emulator: Vec<String>,
    /// `(section, "key = value")` lines added to the connector's defaults.
    pub config: Vec<(&'static str, String)>,
    pub steps: Vec<Step>,
    /// Whether a limit makes "% of the ceiling" meaningful (the memory cases have none).
    pub ceiling: bool,
}

/// The tenant: `teams` × `channels` channels of `roots` roots with up to `replies` replies,
/// 28 days of history (inside the first run's 30-day lookback), 200 users, 50 ms latency
/// (and `BENCH_JITTER`, when set, as the emulator's `--jitter`).
fn tenant(teams: u64, channels: u64, roots: u64, replies: u64) -> Vec<String> {
    people(teams, channels, roots, replies, 200)
}

/// [`tenant`] with a directory of `users`.
fn people(teams: u64, channels: u64, roots: u64, replies: u64, users: u64) -> Vec<String> {
    let flags = [
        ("--teams", teams.to_string()),
        ("--channels", channels.to_string()),
        ("--messages", roots.to_string()),
        ("--replies", replies.to_string()),
        ("--users", users.to_string()),
        ("--history-days", "28".to_owned()),
        ("--latency", format!("{}ms", LATENCY.as_millis())),
    ];
    let mut flags: Vec<String> = flags
        .into_iter()
        .flat_map(|(f, v)| [f.to_owned(), v])
        .collect();
    // Requests evenly spaced by the connector arrive unevenly, as over a real network.
    if let Ok(most) = std::env::var("BENCH_JITTER") {
        flags.extend(["--jitter".to_owned(), most]);
    }
    flags
}

fn with(mut flags: Vec<String>, more: &[&str]) -> Vec<String> {
    flags.extend(more.iter().map(|s| (*s).to_owned()));
    flags
}

/// Graph's documented limits for channel messages.
const GRAPH: &[&str] = &["--tenant-rps", "20", "--channel-rps", "1"];
const RUN_SWEEP_BACKFILL: [Step; 3] = [
    Step::First,
    Step::Incremental,
    Step::Backfill(BACKFILL_DAYS),
];

/// "1 channel", "4 channels".
fn channels(n: u64) -> String {
    match n {
        1 => "1 channel".to_owned(),
        n => format!("{n} channels"),
    }
}

/// "1 page", "8 pages": the pages a channel of `roots` roots takes.
fn pages(roots: u64) -> String {
    match roots.div_ceil(PAGE).max(1) {
        1 => "1 page".to_owned(),
        n => format!("{n} pages"),
    }
}

/// Every case at `scale`, in the order they run.
pub fn all(scale: f64) -> Vec<Case> {
    let sc = |n: u64| ((n as f64 * scale).round() as u64).max(1);
    let case = |id, shape: String, emulator, steps: &[Step]| Case {
        id,
        shape,
        emulator,
        config: Vec::new(),
        steps: steps.to_vec(),
        ceiling: true,
    };
    let (a_teams, b_teams, c_roots, d_teams, d_long) =
        (sc(100), sc(10), sc(4000), sc(10), sc(100_000));
    let (f_roots, g_roots, h2_roots) = (sc(1000), sc(600), sc(1000));
    let g_tenant = || tenant(2, 6, g_roots, 1);
    vec![
        case(
            "a",
            format!("a: {} channels × 1 page", a_teams * 50),
            with(tenant(a_teams, 50, 10, 2), GRAPH),
            &RUN_SWEEP_BACKFILL,
        ),
        case(
            "b",
            format!("b: {} channels × 8 pages", b_teams * 20),
            with(tenant(b_teams, 20, 400, 2), GRAPH),
            &RUN_SWEEP_BACKFILL,
        ),
        case(
            "c",
            format!("c: 20 channels × {}", pages(c_roots)),
            with(tenant(2, 10, c_roots, 2), GRAPH),
            &RUN_SWEEP_BACKFILL,
        ),
        case(
            "d",
            format!("d: 1 × {} + {} × 1 page", pages(d_long), d_teams * 50 - 1),
            with(
                tenant(d_teams, 50, 10, 1),
                &[GRAPH, &["--long-channel", &d_long.to_string()]].concat(),
            ),
            &RUN_SWEEP_BACKFILL,
        ),
        case(
            "f",
            format!("f: 4/s per team, 3 × 12 channels × {}", pages(f_roots)),
            with(tenant(3, 12, f_roots, 1), &["--team-rps", "4"]),
            &[Step::First],
        ),
        case(
            "g",
            format!(
                "g: 1/s per user (every route), 12 channels × {}",
                pages(g_roots)
            ),
            with(g_tenant(), &["--user-rps", "1", "--user-routes", "all"]),
            &[Step::First],
        ),
        case(
            "h",
            format!(
                "h: 1/s per tenant (delta + replies), 12 channels × {}",
                pages(g_roots)
            ),
            with(
                g_tenant(),
                &["--tenant-rps", "1", "--tenant-routes", "delta-replies"],
            ),
            &[Step::First],
        ),
        case(
            "h2",
            format!(
                "h2: 5/s per tenant, 429s without Retry-After, 30 channels × {}",
                pages(h2_roots)
            ),
            with(
                tenant(3, 10, h2_roots, 1),
                &["--tenant-rps", "5", "--omit-retry-after", "1"],
            ),
            &[Step::First],
        ),
        Case {
            config: vec![
                ("limits", "concurrency = 32".to_owned()),
                // Rates out of the way: fetching outruns the slow ingest, which must push back.
                ("limits", "requests_per_second = 1000".to_owned()),
                ("limits", "per_channel_requests_per_second = 100".to_owned()),
            ],
            ceiling: false,
            ..case(
                "ingest",
                format!(
                    "ingest: 250 ms POSTs, concurrency 32, 200 000 users, {} channels × 8 pages",
                    b_teams * 20
                ),
                with(
                    people(b_teams, 20, 400, 3, 200_000),
                    &["--sink-delay", "250ms"],
                ),
                &[Step::First],
            )
        },
        Case {
            config: vec![
                // Nothing paced: what a document costs the process, not what waiting does.
                ("limits", "requests_per_second = 1000".to_owned()),
                ("limits", "per_channel_requests_per_second = 100".to_owned()),
            ],
            ceiling: false,
            ..case(
                "cpu",
                format!(
                    "cpu: b's tenant unthrottled, {} channels × 8 pages",
                    b_teams * 20
                ),
                tenant(b_teams, 20, 400, 2),
                &[Step::First],
            )
        },
        Case {
            ceiling: false,
            ..case(
                "giant",
                format!(
                    "giant: {} × 1 page of 50 roots × 1 000 replies",
                    channels(sc(4))
                ),
                with(tenant(1, sc(4), 50, 1000), &["--exact-replies"]),
                &[Step::First],
            )
        },
    ]
}
