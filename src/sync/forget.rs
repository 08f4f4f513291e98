//! `forget --person`: the erasure job around the channel passes (`channel/forget.rs`).
//!
//! Before any channel is read, the person is resolved through the directory and the job
//! is matched against the one stored: the same person and range resume where a killed run
//! stopped; another unfinished job is not silently dropped (`--restart` abandons it). The
//! job is known by a digest salted per job ([`ForgetJob`]), so the store never names the
//! person, and once every channel is done it is removed altogether ([`finish`]).

use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::OsRng;
use chrono::Utc;

use super::channel::Range;
use super::crawl::Crawl;
use super::report::Summary;
use crate::exit::{Fatal, Result};
use crate::graph::time;
use crate::state::{ForgetJob, Store};
use crate::transform::People;

/// Resolves the person and sets the run's job (nothing is stored by a dry run).
pub(super) async fn prepare(
    crawl: &Crawl,
    range: Range,
    restart: bool,
    dry_run: bool,
) -> Result<()> {
    // The directory's own failure ends the run where the users list is awaited.
    let Some(dir) = crawl.run.directory().await else {
        return Ok(());
    };
    let target = &dir.target;
    if target.is_empty() {
        return Err(Fatal::usage(
            "--person matches no one in the directory; check the spelling, or give the person's object id (Entra ID → Users → the person → Object ID), which works even after they left",
        ));
    }
    if dry_run {
        return Ok(());
    }
    let store = &crawl.services.store;
    let digest = match store.forget_job()? {
        Some(job) if digest(&job.salt, target, range) == job.digest => {
            tracing::info!("Resuming the unfinished erasure of this person where it stopped.");
            job.digest
        }
        Some(_) if !restart => {
            return Err(Fatal::usage(
                "an unfinished `forget` of another person or another --since is stored; finish it first by running that command again, or pass --restart to abandon it (its documents then stay at the ingest)",
            ))
        }
        _ => start(store, target, range)?,
    };
    crawl.run.set_job(digest);
    Ok(())
}

fn start(store: &Store, target: &People, range: Range) -> Result<String> {
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let salt = crate::digest::hex(&salt);
    let job = ForgetJob {
        digest: digest(&salt, target, range),
        salt,
        started_at: Utc::now(),
    };
    store.start_forget_job(&job)?;
    Ok(job.digest)
}

/// SHA-256 over the salt, the person's object ids and the range.
fn digest(salt: &str, target: &People, range: Range) -> String {
    let since = time::format(range.since);
    let ids = target.sorted_ids().join(",");
    crate::digest::hex(&crate::digest::sha256([
        b"forget v1".as_slice(),
        salt.as_bytes(),
        ids.as_bytes(),
        since.as_bytes(),
    ]))
}

/// After the run: a job whose every channel is done is removed; anything less keeps its
/// progress for the rerun.
pub(super) fn finish(crawl: &Crawl, summary: &Summary) -> Result<()> {
    let complete = crawl.run.job().is_some()
        && summary.failures.is_empty()
        && summary.channels_stopped == 0
        && summary.channels_failed == 0
        && !crawl.run.stopping();
    if complete {
        crawl.services.store.clear_forget()?;
    }
    Ok(())
}
