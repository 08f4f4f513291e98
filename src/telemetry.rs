//! Logging: tracing to stderr, text on a terminal and JSON otherwise (DESIGN.md).
//! Stdout is kept for data (dry-run NDJSON, `status`).
//!
//! Levels. `-v`/`-vv`/`-q` set the level of this program's own targets only; every
//! dependency stays at `warn`, because some log what they process: html5ever logs each text
//! token of a message body at debug, i.e. the message text. `RUST_LOG` adds to that: a bare
//! level (`RUST_LOG=debug`) is this program's level too, and a dependency logs below `warn`
//! only when `RUST_LOG` names it (`RUST_LOG=html5ever=trace`, README, "Privacy").
//!
//! Text mode escapes control characters inside field values and messages, so an id or name
//! from Graph cannot start a forged line or carry terminal escapes; JSON is escaped already.

use std::fmt;
use std::io::IsTerminal;

use tracing::field::Field;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{self, Writer};
use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// This program's targets: the crate's modules, the emulator crate (`demo`, `emulator`)
/// and the named events.
const OWN_TARGETS: &[&str] = &[
    "teams_connector",
    "graph_emulator",
    "run_summary",
    "progress",
];

/// Starts logging; returns whether logs are JSON (the final error is then a JSON event).
pub fn init(format: Option<LogFormat>, verbose: u8, quiet: bool) -> bool {
    let rust_log = std::env::var("RUST_LOG").unwrap_or_default();
    let directives = filter_directives(verbose, quiet, &rust_log);
    let filter = EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| EnvFilter::new(filter_directives(verbose, quiet, "")));
    let json = match format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Text) => false,
        None => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogWriter);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder
            .with_target(false)
            .fmt_fields(format::debug_fn(write_escaped_field).delimited(" "))
            .try_init()
    };
    json
}

/// The error that ends the command, printed once with its causes: a JSON `error` event
/// with the exit code when logs are JSON (a log pipeline parses it), else one line.
pub fn final_error(json: bool, fatal: &crate::exit::Fatal) {
    let chain = fatal.chain();
    if json {
        tracing::error!(target: "error", exit_code = fatal.code.as_i32(), error = %chain, "The command failed.");
    } else {
        eprintln!(
            "teams-connector: {}",
            crate::redact::printable(&chain, 4000)
        );
    }
}

/// The `EnvFilter` directives for the flags and `RUST_LOG`: dependencies at `warn` (`error`
/// with `-q`), this program's targets at the flags' level, then `RUST_LOG` with each bare
/// level turned into this program's targets at that level.
pub fn filter_directives(verbose: u8, quiet: bool, rust_log: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    if quiet {
        // `--quiet` is for cron, which mails whatever is printed: errors and the summary.
        out.push("error".into());
        out.push("run_summary=info".into());
    } else {
        let level = match verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        };
        out.push("warn".into());
        out.extend(OWN_TARGETS.iter().map(|t| format!("{t}={level}")));
    }
    for directive in rust_log.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if is_bare_level(directive) {
            out.extend(OWN_TARGETS.iter().map(|t| format!("{t}={directive}")));
        } else {
            out.push(directive.to_string());
        }
    }
    out.join(",")
}

fn is_bare_level(directive: &str) -> bool {
    matches!(
        directive.to_ascii_lowercase().as_str(),
        "trace" | "debug" | "info" | "warn" | "error" | "off"
    )
}

/// One field in text mode: the message as it is, others as `name=value`, control
/// characters escaped in both.
fn write_escaped_field(w: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
    let text = escape_controls(&format!("{value:?}"));
    if field.name() == "message" {
        w.write_str(&text)
    } else {
        write!(w, "{}={text}", field.name())
    }
}

/// Control characters as `\n`, `\t`, `\u{1b}`…, and the bidirectional overrides that
/// reorder what a terminal shows, so a logged value stays on its line and looks as it is.
pub fn escape_controls(s: &str) -> String {
    if !s.chars().any(needs_escape) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// stderr, by way of [`crate::progress::write_stderr`] so log lines step around the bar.
struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        crate::progress::write_stderr(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_raise_only_this_programs_targets() {
        let vv = filter_directives(2, false, "");
        assert!(vv.starts_with("warn,"), "{vv}");
        assert!(vv.contains("teams_connector=trace"), "{vv}");
        assert!(!vv.contains("html5ever"), "{vv}");
        let q = filter_directives(0, true, "");
        assert_eq!(q, "error,run_summary=info");
    }

    #[test]
    fn rust_log_bare_levels_stay_ours_and_named_targets_pass() {
        let d = filter_directives(0, false, "debug,html5ever=trace");
        assert!(d.contains("teams_connector=debug"), "{d}");
        assert!(d.ends_with("html5ever=trace"), "{d}");
        assert!(
            !d.contains(",debug"),
            "no bare level reaches the dependencies: {d}"
        );
        assert!(EnvFilter::try_new(&d).is_ok());
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_controls("plain name"), "plain name");
        assert_eq!(
            escape_controls("a\nERROR forged\u{1b}[31m\u{202e}x"),
            "a\\nERROR forged\\u{1b}[31m\\u{202e}x"
        );
    }
}
