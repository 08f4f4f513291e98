//! `forget --person MAIL_OR_ID [--since DATE] [--dry-run]`: erasure after an objection.
//! The channels are read again with the backfill machinery (`sync`, `Mode::Forget`:
//! resumable, rate-limited, with progress) and every document the person wrote gets a
//! `delete`; documents that mention them are sent again without them. Prints the counts
//! on stdout; names nobody, stores nobody (README, "Privacy controls").

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::cli::ForgetArgs;
use crate::config::Config;
use crate::exit::{Code, Result};
use crate::shutdown::Shutdown;
use crate::state::Store;
use crate::sync::{self, Mode, Range, RunOptions, RunReport};

pub async fn forget(config_path: &Path, args: &ForgetArgs, shutdown: Shutdown) -> Result<Code> {
    let config = Config::load(config_path)?;
    if !args.dry_run {
        config.ingest_token()?;
    }
    let store = Arc::new(Store::open(&config.state_dir)?);
    let opts = RunOptions {
        dry_run: args.dry_run,
        max_duration: args.max_duration,
        mode: Mode::Forget {
            range: Range {
                // Without --since: everything (Teams is younger than the epoch).
                since: args.since.unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
                until: None,
            },
            restart: args.restart,
        },
        person: Some(args.person.clone()),
        ..RunOptions::default()
    };
    let report = sync::run(&config, &opts, store, shutdown).await;
    print_outcome(&report, args.dry_run);
    match report {
        RunReport { fatal: Some(f), .. } => Err(f),
        RunReport { code, .. } => Ok(code),
    }
}

/// One line on stdout: what was sent (or would be), and whether the erasure is complete.
fn print_outcome(report: &RunReport, dry_run: bool) {
    if report.fatal.is_some() && report.summary.channels == 0 {
        return;
    }
    let c = &report.summary.counts;
    let (deletes, resent) = (c.deletes, c.forwarded);
    let channels = report.summary.channels;
    if dry_run {
        println!("dry run: {deletes} document(s) of this person would be deleted and {resent} document(s) mentioning them sent again without them, in {channels} channel(s); nothing was sent");
        return;
    }
    let done = if report.code == Code::Ok {
        "the erasure is complete"
    } else {
        "the erasure is NOT complete: run the same command again to resume"
    };
    println!("sent {deletes} delete(s) for this person's documents and {resent} document(s) mentioning them again without them, in {channels} channel(s); {done}");
}
