//! `demo` (the whole pipeline against an in-process emulator and sink, no config, no
//! network) and `emulator` (the same servers in the foreground for an admin's own tries).
//!
//! These two commands belong to the binary, not the library: they are the only users of the
//! `graph-emulator` crate (and through it of axum) outside the tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use graph_emulator::{
    self as emulator, Emulator, EmulatorOptions, Foreground, Limits, Routes, Sink, Skew, TenantSpec,
};
use teams_connector::cli::{EmulatorArgs, RouteSet};
use teams_connector::config::{parse_duration, Config};
use teams_connector::exit::{Code, Fatal, Result};
use teams_connector::shutdown::Shutdown;
use teams_connector::state::Store;
use teams_connector::sync::{self, RunOptions};

const DEMO_INGEST_TOKEN: &str = "demo-ingest-token";

pub async fn emulator(args: EmulatorArgs, shutdown: Shutdown) -> Result<Code> {
    let spec = TenantSpec {
        seed: args.seed,
        teams: args.teams,
        channels_per_team: args.channels,
        messages_per_channel: args.messages,
        max_replies: args.replies,
        users: args.users,
        history_days: args.history_days,
    };
    let latency =
        parse_duration(&args.latency).map_err(|e| Fatal::usage(format!("--latency {e}")))?;
    let jitter = parse_duration(&args.jitter).map_err(|e| Fatal::usage(format!("--jitter {e}")))?;
    let sink_delay =
        parse_duration(&args.sink_delay).map_err(|e| Fatal::usage(format!("--sink-delay {e}")))?;
    let limits = limits(&args)?;
    let opts = EmulatorOptions {
        skew: Skew {
            long_channel: args.long_channel,
            exact_replies: args.exact_replies,
        },
        ..EmulatorOptions::default()
    };
    // Port 0 picks a free port; the sink then gets its own free port too.
    let sink_port = args.sink_port.unwrap_or(match args.port {
        0 => 0,
        p => p.saturating_add(1),
    });
    let port = args.port;
    let foreground = Foreground {
        spec,
        opts,
        port,
        sink_port,
        ingest_token: args.ingest_token,
        latency,
        jitter,
        limits,
        sink_delay,
        quiet_batches: args.quiet_batches,
        print_json: args.print_json,
    };
    let stop = shutdown.clone();
    emulator::run_foreground(foreground, async move { stop.cancelled().await })
    .await
    .map_err(|e| Fatal::unavailable(format!("cannot serve on 127.0.0.1:{port} / {sink_port}: {e}; pick free ports with --port and --sink-port")))?;
    Ok(Code::Ok)
}

/// The emulator's limits from its flags.
fn limits(args: &EmulatorArgs) -> Result<Limits> {
    let share = args.omit_retry_after;
    if !(0.0..=1.0).contains(&share) {
        return Err(Fatal::usage(format!(
            "--omit-retry-after must be a share from 0 to 1, not {share}"
        )));
    }
    Ok(Limits {
        tenant_rps: positive("--tenant-rps", args.tenant_rps)?,
        tenant_burst: positive("--tenant-burst", args.tenant_burst)?,
        tenant_routes: routes(args.tenant_routes),
        team_rps: positive("--team-rps", args.team_rps)?,
        team_burst: positive("--team-burst", args.team_burst)?,
        channel_rps: positive("--channel-rps", args.channel_rps)?,
        channel_burst: positive("--channel-burst", args.channel_burst)?,
        user_rps: positive("--user-rps", args.user_rps)?,
        user_burst: positive("--user-burst", args.user_burst)?,
        user_routes: routes(args.user_routes),
        omit_retry_after: share,
    })
}

fn routes(set: RouteSet) -> Routes {
    match set {
        RouteSet::Messages => Routes::Messages,
        RouteSet::DeltaReplies => Routes::DeltaReplies,
        RouteSet::Teams => Routes::Teams,
        RouteSet::All => Routes::All,
    }
}

/// A rate or burst flag must be a positive number.
fn positive(flag: &str, v: Option<f64>) -> Result<Option<f64>> {
    match v {
        Some(x) if !(x.is_finite() && x > 0.0) => Err(Fatal::usage(format!(
            "{flag} must be a positive number of requests, not {x}"
        ))),
        v => Ok(v),
    }
}

pub async fn demo(shutdown: Shutdown) -> Result<Code> {
    let local: SocketAddr = ([127, 0, 0, 1], 0).into();
    let start_err = |e: std::io::Error| {
        Fatal::internal(format!("cannot start the demo servers on 127.0.0.1: {e}"))
    };
    let emu = Emulator::start(TenantSpec::default(), EmulatorOptions::default(), local)
        .await
        .map_err(start_err)?;
    let sink = Sink::start(Some(DEMO_INGEST_TOKEN.into()), local)
        .await
        .map_err(start_err)?;
    let dir = std::env::temp_dir().join(format!("teams-connector-demo-{}", std::process::id()));
    let result = demo_run(&emu, &sink, &dir, shutdown).await;
    let _ = std::fs::remove_dir_all(&dir);
    emu.shutdown();
    sink.shutdown();
    result
}

async fn demo_run(
    emu: &Emulator,
    sink: &Sink,
    dir: &std::path::Path,
    shutdown: Shutdown,
) -> Result<Code> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Fatal::state(format!("cannot create {}: {e}", dir.display())))?;
    let config_path = dir.join("connector.toml");
    let toml = format!(
        "[microsoft]\ntenant_id = \"{tenant}\"\nclient_id = \"{client}\"\ngraph_url = \"{url}\"\nlogin_url = \"{url}\"\n\n[crawl]\ninclude_private_teams = true\n\n[limits]\nrequests_per_second = 200\nper_channel_requests_per_second = 50\n\n[ingest]\nurl = \"{ingest}\"\n\n[state]\ndir = \"{state}\"\n",
        tenant = emu.tenant_id(),
        client = emu.client_id(),
        url = emu.url(),
        ingest = sink.url(),
        state = dir.join("state").display(),
    );
    std::fs::write(&config_path, toml)
        .map_err(|e| Fatal::state(format!("cannot write {}: {e}", config_path.display())))?;
    let env = BTreeMap::from([
        (
            "TEAMS_CONNECTOR_REFRESH_TOKEN".to_string(),
            emu.initial_refresh_token(),
        ),
        (
            "TEAMS_CONNECTOR_INGEST_TOKEN".to_string(),
            DEMO_INGEST_TOKEN.to_string(),
        ),
    ]);
    let config = Config::load_with_env(&config_path, &env)?;
    let store = std::sync::Arc::new(Store::open(&config.state_dir)?);
    let report = sync::run(&config, &RunOptions::default(), store, shutdown).await;
    if let Some(f) = report.fatal {
        return Err(f);
    }
    let (summary, code) = (report.summary, report.code);
    let pretty = |v: &dyn erased::Pretty| v.pretty();
    println!("Run summary:\n{}", pretty(&summary));
    let docs = sink.documents();
    println!(
        "\n{} documents reached the sink; the first three:",
        docs.len()
    );
    for d in docs.iter().take(3) {
        println!("{}", pretty(d));
    }
    Ok(code)
}

mod erased {
    /// Pretty JSON for anything serialisable, without a generic parameter in the caller.
    pub trait Pretty {
        fn pretty(&self) -> String;
    }
    impl<T: serde::Serialize> Pretty for T {
        fn pretty(&self) -> String {
            serde_json::to_string_pretty(self).unwrap_or_default()
        }
    }
}
