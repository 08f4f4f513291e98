//! Signing in (issue 3): the refresh-token chain across runs and crashes, device-code
//! login, the password and client-credentials flows, token-endpoint errors and outages,
//! 401 handling, and the refresh token at rest. Every run's output is checked for the
//! tokens, codes and secrets the emulator handed out.

mod chain;
mod errors;
mod flows;
mod login;
mod rest;

use graph_emulator::{EmulatorOptions, TenantSpec};

use crate::util::{Harness, Run};

pub const STATE_KEY: &str = "state-key-for-tests-5d1e";

pub fn spec() -> TenantSpec {
    TenantSpec {
        seed: 11,
        teams: 2,
        channels_per_team: 2,
        messages_per_channel: 8,
        max_replies: 2,
        users: 12,
        ..TenantSpec::default()
    }
}

pub async fn harness() -> Harness {
    Harness::new(spec()).await
}

pub async fn harness_with(opts: EmulatorOptions) -> Harness {
    Harness::with_options(spec(), opts).await
}

/// No token, device code, client secret, password or state key in any output; no mail or
/// name in stderr (stdout of `login` names the account on purpose).
pub fn assert_no_secrets(h: &Harness, runs: &[&Run]) {
    let needles = h.emu.sensitive_strings();
    let mut secret: Vec<String> = needles
        .iter()
        .filter(|n| !n.contains('@'))
        .cloned()
        .collect();
    secret.push(STATE_KEY.to_string());
    for (i, r) in runs.iter().enumerate() {
        for n in needles.iter().chain([STATE_KEY.to_string()].iter()) {
            assert!(
                !r.stderr.contains(n.as_str()),
                "stderr of run {i} contains the sensitive string {n:?}:\n{}",
                r.stderr
            );
        }
        for n in &secret {
            assert!(
                !r.stdout.contains(n.as_str()),
                "stdout of run {i} contains the secret {n:?}"
            );
        }
    }
}

/// The one error a failed command ends with.
pub fn error_line(r: &Run) -> String {
    crate::util::final_error(&r.stderr)
}

pub fn grants(h: &Harness, kind: &str) -> u64 {
    h.emu.stats().grants_by_type.get(kind).copied().unwrap_or(0)
}
