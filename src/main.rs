//! The `teams-connector` binary: parse flags, start telemetry, run the command, map the
//! outcome to an exit code (DESIGN.md). Errors print as one line on stderr.

mod demo;

use std::process::ExitCode;

use clap::Parser;
use teams_connector::cli::{Cli, Command};
use teams_connector::exit::Code;
use teams_connector::shutdown::Shutdown;
use teams_connector::{commands, telemetry};

fn main() -> ExitCode {
    // Everything the connector creates (state store, lock) is private to its user.
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe {
        libc::umask(0o077);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                Code::Usage
            } else {
                Code::Ok
            };
            let _ = e.print();
            return ExitCode::from(code.as_i32() as u8);
        }
    };
    let json_logs = telemetry::init(cli.log_format, cli.verbose, cli.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("teams-connector: cannot start the async runtime: {e}");
            return ExitCode::from(Code::Internal.as_i32() as u8);
        }
    };
    let code = runtime.block_on(async {
        let shutdown = Shutdown::new();
        shutdown.listen_for_signals();
        let outcome = match cli.command {
            Command::Demo => demo::demo(shutdown).await,
            Command::Emulator(args) => demo::emulator(args, shutdown).await,
            _ => commands::dispatch(cli, shutdown).await,
        };
        match outcome {
            Ok(code) => code,
            Err(fatal) => {
                telemetry::final_error(json_logs, &fatal);
                fatal.code
            }
        }
    });
    // Bounded: a stuck connection must not keep a finished run alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    ExitCode::from(code.as_i32() as u8)
}
