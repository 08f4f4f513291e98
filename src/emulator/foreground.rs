//! `teams-connector emulator --port P`: serve a generated tenant and an ingest sink in the
//! foreground and tell the user how to point the connector at them.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};

use super::{Emulator, EmulatorOptions, Sink, TenantSpec};

/// Binds 127.0.0.1:`port` (Graph + identity) and 127.0.0.1:`sink_port` (ingest), prints a
/// ready `connector.toml` snippet and the environment to set, then serves until `shutdown`
/// resolves. Accepted batches are logged (counts only, never content).
pub async fn run_foreground(
    spec: TenantSpec,
    opts: EmulatorOptions,
    port: u16,
    sink_port: u16,
    ingest_token: String,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let emulator = Emulator::start(
        spec.clone(),
        opts,
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
    )
    .await?;
    let sink = Sink::start(
        Some(ingest_token.clone()),
        SocketAddr::from((Ipv4Addr::LOCALHOST, sink_port)),
    )
    .await?;
    sink.log_batches(true);
    println!("{}", instructions(&emulator, &sink, &spec, &ingest_token));
    tracing::info!(graph = %emulator.url(), ingest = %sink.url(), "emulator is serving; stop it with Ctrl-C");
    shutdown.await;
    let stats = emulator.stats();
    tracing::info!(
        requests = stats.requests,
        token_grants = stats.token_grants,
        batches = sink.batches().len(),
        "emulator stopped"
    );
    emulator.shutdown();
    sink.shutdown();
    Ok(())
}

fn instructions(emulator: &Emulator, sink: &Sink, spec: &TenantSpec, ingest_token: &str) -> String {
    let url = emulator.url();
    format!(
        "Graph emulator: {url} (tenant {tenant}, seed {seed}: {teams} teams x {channels} channels x {messages} roots)\n\
         Ingest sink:    {sink}\n\
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
