//! `teams-connector login`: the device-code sign-in (see [`crate::auth::login`]). Progress
//! and the code go to stderr, the account that signed in to stdout.

use crate::auth;
use crate::config::{Config, Flow};
use crate::exit::{Code, Fatal, Result};
use crate::shutdown::Shutdown;
use crate::state::Store;

pub async fn login(config: &Config, shutdown: Shutdown) -> Result<Code> {
    if config.flow != Flow::RefreshToken {
        return Err(Fatal::config(format!(
            "[auth] flow = {:?} does not use a stored refresh token; set flow = \"refresh_token\" to sign in with `teams-connector login`",
            config.flow.name()
        )));
    }
    // Holding the lock keeps a scheduled run from refreshing the old chain meanwhile.
    let store = Store::open(&config.state_dir)?;
    let signed_in = auth::login(config, &store, shutdown).await?;
    println!("Signed in as {}.", signed_in.account.display());
    eprintln!(
        "The refresh token is stored in {}{}; scheduled runs use it from now on.",
        store.token_path().display(),
        if config.secrets.state_key.is_some() {
            ", encrypted with TEAMS_CONNECTOR_STATE_KEY"
        } else {
            " unencrypted (set TEAMS_CONNECTOR_STATE_KEY to encrypt it)"
        }
    );
    Ok(Code::Ok)
}
