//! The refresh token's own file, `state.dir/refresh-token`: the one thing in the state dir
//! that cannot be rebuilt, so it lives apart from the cursor store. Damage to the sled
//! database (a full disk, a bad block) then costs at most cursors, never the sign-in, and
//! a rotated token replaces the previous one on disk instead of lingering in sled's log.
//!
//! Every write is atomic and durable: a new file with a random name in the same directory
//! (`O_EXCL`, mode 0600), written, fsynced, renamed over the old one, then the directory
//! fsynced so the rename itself survives a crash. A reader sees the old token or the new
//! one, never a mix.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::sealed::Sealed;
use crate::exit::{Fatal, Result};

pub const FILE_NAME: &str = "refresh-token";

/// The stored refresh token (plain or sealed) and where its chain started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<Sealed>,
    /// Fingerprint of the seed (`TEAMS_CONNECTOR_REFRESH_TOKEN`) the chain grew from, so a
    /// new seed from the admin replaces the chain while the same old seed does not.
    pub seed: Option<String>,
    pub rotated_at: DateTime<Utc>,
}

pub struct TokenFile {
    path: PathBuf,
}

impl TokenFile {
    pub fn in_dir(dir: &Path) -> TokenFile {
        TokenFile {
            path: dir.join(FILE_NAME),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn read(&self) -> Result<Option<TokenRecord>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Fatal::state(format!(
                    "cannot read the refresh token file {}: {e}; check its owner and mode (0600, the job's user)",
                    self.path.display()
                )))
            }
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|_| {
            Fatal::auth(format!(
                "the refresh token file {} is damaged; run `teams-connector login` (or seed TEAMS_CONNECTOR_REFRESH_TOKEN with a new token) to replace it",
                self.path.display()
            ))
        })
    }

    /// Replaces the file atomically and durably (module doc).
    pub fn write(&self, record: &TokenRecord) -> Result<()> {
        let bytes = serde_json::to_vec(record)
            .map_err(|e| Fatal::internal(format!("cannot encode the token record: {e}")))?;
        let dir = self.dir();
        let failed = |e: std::io::Error| {
            Fatal::state(format!(
                "cannot save the refresh token in {}: {e}; check that the disk is writable and not full (the previous token file is unchanged)",
                dir.display()
            ))
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".refresh-token.")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(failed)?;
        tmp.write_all(&bytes).map_err(failed)?;
        tmp.as_file().sync_all().map_err(failed)?;
        tmp.persist(&self.path).map_err(|e| failed(e.error))?;
        sync_dir(dir).map_err(failed)
    }

    /// Deletes the file; whether there was one.
    pub fn delete(&self) -> Result<bool> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {
                sync_dir(self.dir()).map_err(|e| {
                    Fatal::state(format!("cannot sync {}: {e}", self.dir().display()))
                })?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Fatal::state(format!(
                "cannot delete the refresh token file {}: {e}",
                self.path.display()
            ))),
        }
    }

    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

/// fsync of a directory: makes a rename or unlink in it durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn record(token: &str) -> TokenRecord {
        TokenRecord {
            token: Some(token.into()),
            sealed: None,
            seed: None,
            rotated_at: Utc::now(),
        }
    }

    #[test]
    fn writes_replace_the_file_privately_and_leave_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = TokenFile::in_dir(dir.path());
        assert!(file.read().unwrap().is_none());
        file.write(&record("first")).unwrap();
        file.write(&record("second")).unwrap();
        assert_eq!(
            file.read().unwrap().unwrap().token.as_deref(),
            Some("second")
        );
        let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [FILE_NAME]);
        assert!(file.delete().unwrap());
        assert!(!file.delete().unwrap());
    }

    #[test]
    fn a_damaged_file_is_an_auth_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let file = TokenFile::in_dir(dir.path());
        std::fs::write(file.path(), b"{\"tok").unwrap();
        let e = file.read().unwrap_err();
        assert_eq!(e.code, crate::exit::Code::Auth);
        assert!(e.message.contains("teams-connector login"), "{}", e.message);
    }
}
