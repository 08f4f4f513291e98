//! The one-writer-per-state-dir lock (DESIGN.md, "State, privacy, operations").
//!
//! An OS advisory lock on `state.dir/lock` via `File::try_lock`: released by the kernel
//! when the process dies, so a killed run never leaves a stale lock behind. The holder's
//! pid is written into the file so the refusal can name it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::exit::{Code, Fatal, Result};

pub struct Lock {
    _file: File,
}

impl Lock {
    pub fn acquire(path: &Path) -> Result<Lock> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| {
                Fatal::state(format!(
                    "cannot open the lock file {}: {e}; make the state dir writable for this user",
                    path.display()
                ))
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {holder})")
                };
                return Err(Fatal::new(
                    Code::Temporary,
                    format!(
                        "another teams-connector{who} holds the lock {}; wait for it to finish, or give this one its own [state] dir",
                        path.display()
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(Fatal::state(format!("cannot lock {}: {e}", path.display())))
            }
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        let _ = file.flush();
        Ok(Lock { _file: file })
    }
}
