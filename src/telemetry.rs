//! Logging: tracing to stderr, text on a terminal and JSON otherwise (DESIGN.md);
//! `RUST_LOG` overrides `-v`/`-q`. Stdout is kept for data (dry-run NDJSON, `status`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Starts logging; returns whether logs are JSON (the final error is then a JSON event).
pub fn init(format: Option<LogFormat>, verbose: u8, quiet: bool) -> bool {
    let level = match (quiet, verbose) {
        // `--quiet` is for cron, which mails whatever is printed: errors and the summary.
        (true, _) => "error,run_summary=info",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let default = format!("{level},sled=warn,hyper=warn,reqwest=warn,h2=warn,axum=warn");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
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
        builder.with_target(false).try_init()
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
        eprintln!("teams-connector: {chain}");
    }
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
