//! Progress of a running crawl: shared atomic counters the crawl bumps, and a reporter task
//! that shows them — an `indicatif` bar on a terminal (channels done / total, documents,
//! request rate, time waited on throttling), a log line every 30 s otherwise (DESIGN.md:
//! "periodic progress lines"). `--quiet` shows neither.
//!
//! Log lines share stderr with the bar: the log writer ([`write_stderr`]) suspends the bar
//! while it writes, so lines never tear through it. The counters are relaxed atomics: each
//! is read on its own, nothing synchronises through them.
//! `TEAMS_CONNECTOR_PROGRESS_INTERVAL` (a duration like `200ms`; undocumented, for tests)
//! changes the interval of the log line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::Counters;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const INTERVAL_ENV: &str = "TEAMS_CONNECTOR_PROGRESS_INTERVAL";

/// What the crawl has done so far. Field by field, who bumps it:
#[derive(Debug)]
pub struct Progress {
    /// Channels this run will crawl: added once discovery listed a team's channels.
    pub channels_total: AtomicU64,
    /// Channels whose crawl ended (done, failed or stopped).
    pub channels_finished: AtomicU64,
    /// Documents (upserts and deletes) the ingest accepted, or a dry run printed.
    pub documents_forwarded: AtomicU64,
    /// The run's request counters (already counted by the HTTP layer).
    counters: Arc<Counters>,
    started: Instant,
}

/// One reading of [`Progress`], as logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub channels_total: u64,
    pub channels_finished: u64,
    pub documents_forwarded: u64,
    pub requests: u64,
    pub elapsed_s: u64,
}

impl Progress {
    pub fn new(counters: Arc<Counters>) -> Progress {
        Progress {
            channels_total: AtomicU64::new(0),
            channels_finished: AtomicU64::new(0),
            documents_forwarded: AtomicU64::new(0),
            counters,
            started: Instant::now(),
        }
    }

    pub fn add_channels(&self, n: u64) {
        self.channels_total.fetch_add(n, Ordering::Relaxed);
    }

    pub fn channel_finished(&self) {
        self.channels_finished.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add_forwarded(&self, n: u64) {
        self.documents_forwarded.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            channels_total: self.channels_total.load(Ordering::Relaxed),
            channels_finished: self.channels_finished.load(Ordering::Relaxed),
            documents_forwarded: self.documents_forwarded.load(Ordering::Relaxed),
            requests: Counters::get(&self.counters.requests),
            elapsed_s: self.started.elapsed().as_secs(),
        }
    }
}

impl Snapshot {
    fn log(&self) {
        tracing::info!(
            target: "progress",
            channels_finished = self.channels_finished,
            channels_total = self.channels_total,
            documents_forwarded = self.documents_forwarded,
            requests = self.requests,
            elapsed_s = self.elapsed_s,
            "Crawl in progress."
        );
    }
}

/// The bar while one is shown; the log writer suspends it. A std `Mutex`: held only to
/// clone the handle or swap it, never across an await.
static BAR: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

/// Writes a log line to stderr, with the progress bar (if any) out of the way.
pub fn write_stderr(buf: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let bar = BAR.lock().ok().and_then(|b| b.clone());
    match bar {
        Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf)),
        None => std::io::stderr().write_all(buf),
    }
}

/// The reporter task; it stops when this is dropped (the end of the run), so no line can
/// follow the run summary.
pub struct Reporter {
    task: tokio::task::JoinHandle<()>,
    bar: Option<indicatif::ProgressBar>,
}

impl Reporter {
    /// A bar when stderr is a terminal, else a progress line every interval (30 s, or
    /// `TEAMS_CONNECTOR_PROGRESS_INTERVAL`); nothing when progress is filtered out
    /// (`--quiet`).
    pub fn start(progress: Arc<Progress>) -> Reporter {
        use std::io::IsTerminal;
        if tracing::enabled!(target: "progress", tracing::Level::INFO)
            && std::io::stderr().is_terminal()
        {
            return Self::bar(progress);
        }
        Self::start_with(progress, interval_from_env(), |s| s.log())
    }

    fn bar(progress: Arc<Progress>) -> Reporter {
        let bar = indicatif::ProgressBar::new(0);
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} channels {pos}/{len} {wide_bar} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        if let Ok(mut b) = BAR.lock() {
            *b = Some(bar.clone());
        }
        let shown = bar.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(200));
            loop {
                ticks.tick().await;
                let s = progress.snapshot();
                let waited = Counters::get(&progress.counters.throttle_wait_ms) / 1000;
                let rate = s.requests as f64 / progress.started.elapsed().as_secs_f64().max(0.001);
                shown.set_length(s.channels_total);
                shown.set_position(s.channels_finished);
                shown.set_message(format!(
                    "{} documents · {rate:.1} req/s · {waited} s throttled",
                    s.documents_forwarded
                ));
            }
        });
        Reporter {
            task,
            bar: Some(bar),
        }
    }

    /// The reporter with its interval and output given, for tests.
    pub fn start_with(
        progress: Arc<Progress>,
        every: Duration,
        mut emit: impl FnMut(&Snapshot) + Send + 'static,
    ) -> Reporter {
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                emit(&progress.snapshot());
            }
        });
        Reporter { task, bar: None }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            if let Ok(mut b) = BAR.lock() {
                *b = None;
            }
        }
    }
}

fn interval_from_env() -> Duration {
    std::env::var(INTERVAL_ENV)
        .ok()
        .and_then(|v| humantime::parse_duration(v.trim()).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_INTERVAL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn reports_periodically_and_stops_when_dropped() {
        let progress = Arc::new(Progress::new(Arc::new(Counters::default())));
        progress.add_channels(4);
        progress.channel_finished();
        progress.add_forwarded(12);
        Counters::add(&progress.counters.requests, 30);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let reporter =
            Reporter::start_with(progress.clone(), Duration::from_millis(20), move |s| {
                sink.lock().unwrap().push(*s)
            });
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.lock().unwrap().len() < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(reporter);
        let first = seen.lock().unwrap()[0];
        assert_eq!(
            (
                first.channels_total,
                first.channels_finished,
                first.documents_forwarded,
                first.requests
            ),
            (4, 1, 12, 30)
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
        let after_drop = seen.lock().unwrap().len();
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(seen.lock().unwrap().len(), after_drop, "no line after drop");
    }
}
