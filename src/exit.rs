//! The exit-code table of DESIGN.md and the one error type that carries a code.
//!
//! Every failure that ends a command becomes a [`Fatal`]: a one-line message for the
//! operator, the [`Code`] cron, systemd and Kubernetes act on, and the error that caused
//! it (a transport failure with its DNS/TLS/proxy causes, a store error). `main` prints
//! the message with its causes once (ripgrep's `{:#}`) and exits with the code; nothing
//! else in the program calls `process::exit` (but a second signal: see `shutdown`).

use std::fmt;
use std::sync::Arc;

use crate::shutdown::Signal;

/// Exit codes of the external contract (DESIGN.md, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Code {
    Ok = 0,
    /// Some channels failed, the rest were saved.
    Partial = 3,
    /// Bad flags or arguments.
    Usage = 64,
    /// Graph or the ingest unavailable after retries.
    Unavailable = 69,
    /// A bug or an unexpected state.
    Internal = 70,
    /// The state dir cannot be created, opened or written.
    StateDir = 74,
    /// Try again later: the lock is held or the time budget ran out.
    Temporary = 75,
    /// Authentication needs a person: `login`, consent, a new secret.
    Auth = 77,
    /// The configuration is invalid.
    Config = 78,
    /// Interrupted by SIGINT after saving progress.
    Interrupted = 130,
    /// Terminated by SIGTERM after saving progress.
    Terminated = 143,
}

impl Code {
    pub fn as_i32(self) -> i32 {
        self as i32
    }
}

impl From<Signal> for Code {
    fn from(s: Signal) -> Code {
        match s {
            Signal::Interrupt => Code::Interrupted,
            Signal::Terminate => Code::Terminated,
            Signal::Deadline => Code::Temporary,
        }
    }
}

/// An error that ends the command with a specific exit code.
#[derive(Debug, Clone)]
pub struct Fatal {
    pub code: Code,
    pub message: String,
    /// What caused it; printed after the message. Never carries secrets or message data.
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Fatal {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Fatal {
            code,
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `source`.
    pub fn caused_by(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The message and every cause, on one line (`message: cause: cause`), with every
    /// live secret scrubbed.
    pub fn chain(&self) -> String {
        let mut out = self.message.clone();
        let mut next = std::error::Error::source(self);
        while let Some(e) = next {
            out.push_str(": ");
            out.push_str(&e.to_string());
            next = e.source();
        }
        crate::redact::scrub(&out).into_owned()
    }
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(Code::Config, message)
    }
    pub fn state(message: impl Into<String>) -> Self {
        Self::new(Code::StateDir, message)
    }
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(Code::Auth, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(Code::Unavailable, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Code::Internal, message)
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Code::Usage, message)
    }
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fatal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

pub type Result<T, E = Fatal> = std::result::Result<T, E>;
