//! `teams-connector emulator --port P`: serve a generated tenant and an ingest sink in the
//! foreground and tell the user how to point the connector at them.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::{Emulator, EmulatorOptions, Limits, Sink, TenantSpec};

/// How `teams-connector emulator` serves: the tenant, ports (0 = any free one), and the knobs
/// a benchmark turns.
#[derive(Debug, Clone)]
pub struct Foreground {
    pub spec: TenantSpec,
    pub opts: EmulatorOptions,
    pub port: u16,
    pub sink_port: u16,
    pub ingest_token: String,
    /// Added to every Graph and token request.
    pub latency: Duration,
    /// Most of the random delay of a Graph request on its way in, before the limits judge
    /// it ([`Emulator::set_jitter`](crate::Emulator::set_jitter)).
    pub jitter: Duration,
    pub limits: Limits,
    /// How long the sink holds back every answer (a busy ingest).
    pub sink_delay: Duration,
    /// No log line per accepted batch.
    pub quiet_batches: bool,
    /// Print the connection details as one JSON line instead of the human instructions.
    pub print_json: bool,
}

/// Binds 127.0.0.1:`port` (Graph + identity) and 127.0.0.1:`sink_port` (ingest), prints a
/// ready `connector.toml` snippet and the environment to set (or, with `print_json`, one JSON
/// line with the same details), then serves until `shutdown` resolves. Accepted batches are
/// logged (counts only, never content) unless `quiet_batches`.
pub async fn run_foreground(
    f: Foreground,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let emulator = Emulator::start(
        f.spec.clone(),
        f.opts.clone(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, f.port)),
    )
    .await?;
    emulator.set_latency(f.latency);
    emulator.set_jitter(f.jitter);
    emulator.set_limits(f.limits.clone());
    let sink = Sink::start(
        Some(f.ingest_token.clone()),
        SocketAddr::from((Ipv4Addr::LOCALHOST, f.sink_port)),
    )
    .await?;
    sink.log_batches(!f.quiet_batches);
    sink.set_delay(f.sink_delay);
    // Nobody reads the documents of a foreground sink; a long run must not pile them up.
    sink.keep_documents(false);
    if f.print_json {
        println!("{}", connection_json(&emulator, &sink, &f.ingest_token));
    } else {
        println!(
            "{}",
            instructions(&emulator, &sink, &f.spec, &f.ingest_token)
        );
    }
    tracing::info!(graph = %emulator.url(), ingest = %sink.url(), "emulator is serving; stop it with Ctrl-C");
    shutdown.await;
    let stats = emulator.stats();
    tracing::info!(
        requests = stats.requests,
        token_grants = stats.token_grants,
        limited = stats.limited,
        limited_without_retry_after = stats.limited_without_retry_after,
        violations = stats.violations,
        batches = sink.batches().len(),
        "emulator stopped"
    );
    emulator.shutdown();
    sink.shutdown();
    Ok(())
}

/// The connection details for programs (`--print-json`), on one line.
fn connection_json(emulator: &Emulator, sink: &Sink, ingest_token: &str) -> String {
    let url = emulator.url();
    serde_json::json!({
        "graph_url": url,
        "login_url": url,
        "stats_url": format!("{url}/_emulator/stats"),
        "ingest_url": sink.url(),
        "tenant_id": emulator.tenant_id(),
        "client_id": emulator.client_id(),
        "refresh_token": emulator.initial_refresh_token(),
        "ingest_token": ingest_token,
    })
    .to_string()
}

fn instructions(emulator: &Emulator, sink: &Sink, spec: &TenantSpec, ingest_token: &str) -> String {
    let url = emulator.url();
    format!(
        "Graph emulator: {url} (tenant {tenant}, seed {seed}: {teams} teams x {channels} channels x {messages} roots)\n\
         Ingest sink:    {sink}\n\
         Counters:       {url}/_emulator/stats\n\
         \n\
         # connector.toml\n\
         [microsoft]\n\
         tenant_id = \"{tenant}\"\n\
         client_id = \"{client}\"\n\
         graph_url = \"{url}\"\n\
         login_url = \"{url}\"\n\
         \n\
         [crawl]\n\
         include_private_teams = true\n\
         \n\
         [ingest]\n\
         url = \"{sink}\"\n\
         \n\
         # environment (or skip the refresh token and run `teams-connector login`:\n\
         # the emulator approves a device code after two polls)\n\
         export TEAMS_CONNECTOR_REFRESH_TOKEN='{refresh}'\n\
         export TEAMS_CONNECTOR_INGEST_TOKEN='{ingest_token}'\n",
        tenant = emulator.tenant_id(),
        seed = spec.seed,
        teams = spec.teams,
        channels = spec.channels_per_team,
        messages = spec.messages_per_channel,
        client = emulator.client_id(),
        sink = sink.url(),
        refresh = emulator.initial_refresh_token(),
    )
}
