//! `run --metrics-file PATH`: a Prometheus textfile (node_exporter's textfile collector,
//! or anything that scrapes a file) written at the end of every run, also a failed one.
//!
//! The `_total` series are counters in the Prometheus sense: they add up over runs instead
//! of restarting at every run, so `rate()` and `increase()` work. Their running totals and
//! the time of the last success live in the state store (`meta/metrics`); when the store
//! cannot be opened (bad config, another run holds the lock) the previous file is the
//! source, so a failed run never resets them. Per-run figures are in the `run_summary` log
//! event and in `status`.
//!
//! The file is written to a new temporary file in the same directory (random name,
//! `O_EXCL`) and renamed over the old one, so a scraper never reads half a file and a
//! planted symlink is never followed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::exit::Code;
use crate::state::Store;
use crate::sync::Summary;
use crate::transform::Skip;

/// Key of the running totals in the state store.
const TOTALS: &str = "metrics";
/// Key of the end time of the last successful run (also shown by `status`).
pub const LAST_SUCCESS: &str = "last_success";

/// Running totals over all runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub upserts: u64,
    pub deletes: u64,
    pub skipped: BTreeMap<String, u64>,
    pub requests: u64,
    /// `requests` by HTTP status; empty in totals from before the label existed.
    #[serde(default)]
    pub requests_by_status: BTreeMap<String, u64>,
    pub throttled: u64,
}

impl Totals {
    fn add(&mut self, s: &Summary) {
        self.upserts += s.counts.forwarded;
        self.deletes += s.counts.deletes;
        for (why, n) in &s.counts.skipped {
            *self.skipped.entry(why.name().to_string()).or_default() += n;
        }
        self.requests += s.requests;
        for (status, n) in &s.graph_statuses {
            *self.requests_by_status.entry(status.clone()).or_default() += n;
        }
        self.throttled += s.throttled;
    }
}

/// What a file this module wrote says about earlier runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Previous {
    pub last_success: Option<DateTime<Utc>>,
    pub totals: Totals,
}

/// How the run ended, as far as it is known.
pub struct Finished<'a> {
    pub code: Code,
    pub duration: Duration,
    /// `None` when the run failed before it counted anything.
    pub summary: Option<&'a Summary>,
    pub dry_run: bool,
    pub ended_at: DateTime<Utc>,
}

impl Finished<'_> {
    /// Exit 0 of a run that sent something for real.
    pub fn succeeded(&self) -> bool {
        self.code == Code::Ok && !self.dry_run
    }
}

/// Remembers the end of a successful run in the state store, for `status` and the metrics.
pub fn remember_success(store: &Store, at: DateTime<Utc>) {
    if let Err(e) = store.set_meta(LAST_SUCCESS, &at) {
        tracing::warn!(error = %e.message, "Cannot record the time of this successful run in the state store.");
    }
}

/// Updates the totals (state store, else the previous file) and writes the textfile. A
/// failure is logged, not fatal: the run's own exit code stays what it earned, and the
/// stale file makes `last_success` age, which is what alerts watch.
pub fn record(path: &Path, store: Option<&Store>, run: &Finished) {
    if let Err(e) = try_record(path, store, run) {
        tracing::warn!(path = %path.display(), error = %e, "Cannot write the metrics file; check --metrics-file and that its directory is writable.");
    }
}

fn try_record(path: &Path, store: Option<&Store>, run: &Finished) -> std::io::Result<()> {
    let previous = std::fs::read_to_string(path)
        .map(|t| parse(&t))
        .unwrap_or_default();
    // A store held by another process (or unusable) leaves the previous file as the source.
    let mut totals: Totals = meta(store, TOTALS).unwrap_or(previous.totals);
    let last_success = if run.succeeded() {
        Some(run.ended_at)
    } else {
        meta(store, LAST_SUCCESS).or(previous.last_success)
    };
    if let Some(s) = run.summary.filter(|_| !run.dry_run) {
        totals.add(s);
    }
    if let Some(store) = store {
        if let Err(e) = store.set_meta(TOTALS, &totals) {
            tracing::warn!(error = %e.message, "Cannot save the metrics totals in the state store; the file keeps them.");
        }
    }
    write_atomic(path, &render(last_success, &totals, run))
}

fn meta<T: serde::de::DeserializeOwned>(store: Option<&Store>, key: &str) -> Option<T> {
    store.and_then(|s| s.meta(key).ok().flatten())
}

/// The textfile: HELP and TYPE for every series, every skip reason and channel state
/// present (zeros included) so the set of series is stable.
pub fn render(last_success: Option<DateTime<Utc>>, totals: &Totals, run: &Finished) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let one = |v: f64| [(String::new(), v)];
    family(
        "teams_connector_last_success_timestamp_seconds",
        "gauge",
        "Unix time at which the last successful run (exit 0, not a dry run) ended; 0 if none yet.",
        &one(last_success.map_or(0.0, unix)),
    );
    family(
        "teams_connector_last_run_timestamp_seconds",
        "gauge",
        "Unix time at which the last run ended.",
        &one(unix(run.ended_at)),
    );
    family(
        "teams_connector_last_run_exit_code",
        "gauge",
        "Exit code of the last run (README, \"Exit codes\").",
        &one(f64::from(run.code.as_i32())),
    );
    family(
        "teams_connector_run_duration_seconds",
        "gauge",
        "How long the last run took.",
        &one(run.duration.as_secs_f64()),
    );
    family(
        "teams_connector_documents_forwarded_total",
        "counter",
        "Documents the ingest accepted, over all runs, by operation.",
        &[
            (label("op", "upsert"), totals.upserts as f64),
            (label("op", "delete"), totals.deletes as f64),
        ],
    );
    let skipped: Vec<(String, f64)> = skip_reasons(&totals.skipped)
        .into_iter()
        .map(|(why, n)| (label("reason", &why), n as f64))
        .collect();
    family(
        "teams_connector_messages_skipped_total",
        "counter",
        "Messages not forwarded, over all runs, by reason.",
        &skipped,
    );
    family(
        "teams_connector_graph_requests_total",
        "counter",
        "HTTP requests to Microsoft Graph and its token endpoint, retries included, over all runs.",
        &requests_by_status(totals),
    );
    family(
        "teams_connector_graph_throttled_total",
        "counter",
        "Graph answers 429 (throttled), over all runs.",
        &one(totals.throttled as f64),
    );
    if let Some(s) = run.summary {
        family(
            "teams_connector_channels",
            "gauge",
            "Channels of the last run by how their crawl ended.",
            &[
                (label("state", "done"), s.channels_done as f64),
                (label("state", "failed"), s.channels_failed as f64),
                (label("state", "stopped"), s.channels_stopped as f64),
            ],
        );
    }
    out
}

/// `{status="200"}` series; the unlabelled total while no status was counted yet.
fn requests_by_status(totals: &Totals) -> Vec<(String, f64)> {
    if totals.requests_by_status.is_empty() {
        return vec![(String::new(), totals.requests as f64)];
    }
    totals
        .requests_by_status
        .iter()
        .map(|(status, n)| (label("status", status), *n as f64))
        .collect()
}

fn unix(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

fn label(name: &str, value: &str) -> String {
    format!("{{{name}=\"{value}\"}}")
}

fn skip_reasons(seen: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mut all = seen.clone();
    for why in Skip::ALL {
        all.entry(why.name().to_string()).or_default();
    }
    all
}

/// Reads the totals back from a file this module wrote; unknown lines are ignored.
pub fn parse(text: &str) -> Previous {
    let mut p = Previous::default();
    let t = &mut p.totals;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let label_value = labels
            .split_once("=\"")
            .map(|(_, v)| v.trim_end_matches("\"}"));
        let count = value.max(0.0) as u64;
        match (name, label_value) {
            ("teams_connector_last_success_timestamp_seconds", _) if value > 0.0 => {
                p.last_success = DateTime::from_timestamp_millis((value * 1000.0).round() as i64)
            }
            ("teams_connector_documents_forwarded_total", Some("upsert")) => t.upserts = count,
            ("teams_connector_documents_forwarded_total", Some("delete")) => t.deletes = count,
            ("teams_connector_messages_skipped_total", Some(why)) => {
                t.skipped.insert(why.to_string(), count);
            }
            ("teams_connector_graph_requests_total", Some(status)) => {
                t.requests += count;
                t.requests_by_status.insert(status.to_string(), count);
            }
            ("teams_connector_graph_requests_total", None) => t.requests = count,
            ("teams_connector_graph_throttled_total", _) => t.throttled = count,
            _ => {}
        }
    }
    p
}

/// A new temp file in the same directory (so the rename cannot cross filesystems), flushed,
/// then renamed over `path`. The temp file gets a random name and is created with
/// `O_EXCL` (tempfile), so a file or symlink planted under a guessable name is never
/// opened. Mode 0644 despite the process umask: scrapers run as another user, and the
/// file holds counts only.
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "metrics".into());
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    // fchmod on the open file: nothing else can be reached through the name meanwhile.
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    // On failure the temp file is dropped, which removes it.
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(summary: Option<&Summary>) -> Finished<'_> {
        Finished {
            code: Code::Partial,
            duration: Duration::from_millis(1500),
            summary,
            dry_run: false,
            ended_at: DateTime::from_timestamp_millis(1_700_000_000_500).unwrap(),
        }
    }

    #[test]
    fn parse_reads_back_what_render_wrote() {
        let mut summary = Summary::new(false);
        summary.counts.forwarded = 7;
        summary.counts.deletes = 2;
        summary.requests = 40;
        summary.throttled = 3;
        summary.counts.skipped.insert(Skip::Bot, 4);
        let mut totals = Totals::default();
        totals.add(&summary);
        let last = DateTime::from_timestamp_millis(1_690_000_000_250);
        let text = render(last, &totals, &finished(Some(&summary)));
        let mut want = totals.clone();
        for why in Skip::ALL {
            want.skipped.entry(why.name().to_string()).or_default();
        }
        let got = parse(&text);
        assert_eq!(got.totals, want);
        assert_eq!(got.last_success, last);
    }

    #[test]
    fn a_planted_symlink_is_never_followed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        // The name the file used to get: `.{name}.{pid}.tmp`.
        let planted = dir
            .path()
            .join(format!(".m.prom.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let path = dir.path().join("m.prom");
        write_atomic(&path, "teams_connector_x 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let mode = std::fs::metadata(&victim).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "teams_connector_x 1\n"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp") && !n.contains(&std::process::id().to_string()))
            .collect();
        assert!(left.is_empty(), "temp files left: {left:?}");
    }

    #[test]
    fn a_run_that_counted_nothing_has_no_channel_series() {
        let text = render(None, &Totals::default(), &finished(None));
        assert!(!text.contains("teams_connector_channels"));
        assert!(text.contains("teams_connector_last_success_timestamp_seconds 0\n"));
        assert!(text.contains("teams_connector_last_run_exit_code 3\n"));
    }
}
