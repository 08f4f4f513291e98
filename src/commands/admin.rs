//! The offline admin commands: `config check`, `reset`, `logout` (`status` has its own file).

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use crate::cli::ResetArgs;
use crate::config::Config;
use crate::exit::{Code, Fatal, Result};
use crate::state::Store;

pub fn config_check(path: &Path) -> Result<Code> {
    let config = Config::load(path)?;
    // The opt-out file as a run reads it: missing or malformed is exit 78 here too.
    let people = config.privacy.people()?;
    let mut problems = Vec::new();
    if config.secrets.ingest_token.is_none() {
        problems.push("no ingest token: set TEAMS_CONNECTOR_INGEST_TOKEN(_FILE) (only `run --dry-run` works without)");
    }
    print!("{}", config.redacted());
    if let Some(file) = &config.privacy.file {
        println!(
            "# [privacy] exclude_people_file {}: readable; {} entries in all (not shown)",
            file.display(),
            people.len()
        );
    }
    if let Some(p) = problems.first() {
        return Err(Fatal::config(format!("{}: {p}", path.display())));
    }
    eprintln!("{}: configuration is valid", path.display());
    Ok(Code::Ok)
}

pub fn reset(config: &Config, args: &ResetArgs) -> Result<Code> {
    if !args.all && args.team.is_none() && args.channel.is_none() {
        return Err(Fatal::usage("reset needs --team ID, --channel ID or --all"));
    }
    let store = Store::open(&config.state_dir)?;
    let scope = match (&args.team, &args.channel) {
        (None, None) => "every channel".to_string(),
        (t, c) => format!(
            "team {} channel {}",
            t.as_deref().unwrap_or("*"),
            c.as_deref().unwrap_or("*")
        ),
    };
    if !args.yes
        && !confirm(&format!(
            "Forget the cursors of {scope}? The next run re-sends their messages. [y/N] "
        ))?
    {
        eprintln!("nothing reset");
        return Ok(Code::Ok);
    }
    let n = store.reset_channels(args.team.as_deref(), args.channel.as_deref())?;
    eprintln!("forgot {n} channel cursor(s)");
    Ok(Code::Ok)
}

fn confirm(prompt: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(Fatal::usage(
            "reset asks for confirmation; pass --yes when not on a terminal",
        ));
    }
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Fatal::usage(format!("cannot read the answer: {e}")))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

pub fn logout(config: &Config) -> Result<Code> {
    let store = Store::open(&config.state_dir)?;
    if store.delete_refresh_token()? {
        eprintln!("deleted the stored refresh token; the next run needs `teams-connector login` or a new seed (TEAMS_CONNECTOR_REFRESH_TOKEN)");
    } else {
        eprintln!("no refresh token was stored");
    }
    eprintln!("the token itself stays valid until it expires: to revoke it, an Entra ID admin revokes the technical user's sessions (Users → the user → Revoke sessions); to withdraw the connector's consent: Entra ID → Enterprise applications → the app → Permissions");
    Ok(Code::Ok)
}
