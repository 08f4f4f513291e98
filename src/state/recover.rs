//! Leftovers of a failed sled snapshot, cleared before the database opens.
//!
//! sled writes a snapshot to `snap.{lsn}.generating`, fsyncs it and renames it to
//! `snap.{lsn}`; on open it reads the newest `snap.*` file, `.generating` ones included.
//! When a write fails half way (a full disk leaves a 0-byte `.generating` file), every
//! later open fails with "Read corrupted data" although nothing is lost: the snapshot is
//! only an index of the log, which sled rebuilds from the log itself. So a `.generating`
//! file (never a finished snapshot, by construction) and a snapshot too short to hold
//! even its own length and checksum are removed, and sled recovers as after a crash.

use std::path::Path;

/// sled's trailer: an 8-byte length and a 4-byte CRC; a snapshot is longer than that.
const SNAPSHOT_TRAILER: u64 = 12;

/// Removes the incomplete snapshots in the sled directory `db`; returns their names.
pub fn remove_incomplete_snapshots(db: &Path) -> std::io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(db) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("snap.") || name.ends_with(".in___motion") {
            continue;
        }
        let incomplete =
            name.ends_with(".generating") || entry.metadata()?.len() <= SNAPSHOT_TRAILER;
        if incomplete {
            std::fs::remove_file(entry.path())?;
            removed.push(name);
        }
    }
    if !removed.is_empty() {
        std::fs::File::open(db)?.sync_all()?;
    }
    Ok(removed)
}
