//! What comes from the environment: `TEAMS_CONNECTOR__SECTION__KEY` overrides of file keys
//! (applied before validation) and the secrets, which never live in the file
//! (`TEAMS_CONNECTOR_<NAME>` or the file `TEAMS_CONNECTOR_<NAME>_FILE` names).

use std::collections::BTreeMap;
use std::path::Path;

use super::file::File;
use crate::exit::{Fatal, Result};
use crate::secret::Secret;

/// Prefix of the variables that override file keys: `TEAMS_CONNECTOR__LIMITS__CONCURRENCY`.
const OVERRIDE_PREFIX: &str = "TEAMS_CONNECTOR__";

/// Secrets, read from the environment or from the files the `_FILE` variables name.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    pub refresh_token: Option<Secret>,
    pub password: Option<Secret>,
    pub client_secret: Option<Secret>,
    pub ingest_token: Option<Secret>,
    pub state_key: Option<Secret>,
}

impl Secrets {
    pub fn read(env: &BTreeMap<String, String>) -> Result<Secrets> {
        Ok(Secrets {
            refresh_token: secret(env, "REFRESH_TOKEN")?,
            password: secret(env, "PASSWORD")?,
            client_secret: secret(env, "CLIENT_SECRET")?,
            ingest_token: secret(env, "INGEST_TOKEN")?,
            state_key: secret(env, "STATE_KEY")?,
        })
    }

    /// `(variable, set?)` for each secret, in the order the README lists them.
    pub fn presence(&self) -> [(&'static str, bool); 5] {
        [
            (
                "TEAMS_CONNECTOR_REFRESH_TOKEN",
                self.refresh_token.is_some(),
            ),
            ("TEAMS_CONNECTOR_PASSWORD", self.password.is_some()),
            (
                "TEAMS_CONNECTOR_CLIENT_SECRET",
                self.client_secret.is_some(),
            ),
            ("TEAMS_CONNECTOR_INGEST_TOKEN", self.ingest_token.is_some()),
            ("TEAMS_CONNECTOR_STATE_KEY", self.state_key.is_some()),
        ]
    }
}

/// TOML text plus environment overrides → the file schema. Type errors name the key as
/// `[section] key` (serde_path_to_error), so every message says where to look.
pub fn parse_file(text: &str, path: &Path, env: &BTreeMap<String, String>) -> Result<File> {
    let mut value: toml::Table = toml::from_str(text).map_err(|e| {
        Fatal::config(format!(
            "{} is not valid TOML: {}",
            path.display(),
            one_line(&e.to_string())
        ))
    })?;
    apply_overrides(&mut value, env)?;
    serde_path_to_error::deserialize(toml::Value::Table(value)).map_err(|e| {
        Fatal::config(format!(
            "{}: {}{}; see connector.toml.example for every key",
            path.display(),
            key_name(e.path()),
            one_line(e.inner().message())
        ))
    })
}

/// `microsoft.cloud` → `[microsoft] cloud: `; nothing at the top level.
fn key_name(path: &serde_path_to_error::Path) -> String {
    let parts: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    match parts.as_slice() {
        [] => String::new(),
        [section] if section == "?" => String::new(),
        [section] => format!("[{section}]: "),
        [section, rest @ ..] => format!("[{section}] {}: ", rest.join(".")),
    }
}

/// `TEAMS_CONNECTOR__SECTION__KEY=value` → `[section] key = value`. The value is read as a
/// TOML literal when it is one (`4`, `true`, `["a"]`), else as a string.
fn apply_overrides(table: &mut toml::Table, env: &BTreeMap<String, String>) -> Result<()> {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(OVERRIDE_PREFIX) else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            return Err(Fatal::config(format!(
                "environment variable {name} must have the form TEAMS_CONNECTOR__SECTION__KEY"
            )));
        };
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        let section = section.to_ascii_lowercase();
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section_table) = entry.as_table_mut() else {
            return Err(Fatal::config(format!("[{section}] must be a table")));
        };
        section_table.insert(key.to_ascii_lowercase(), value);
    }
    Ok(())
}

/// A secret from `TEAMS_CONNECTOR_<NAME>` or the file `TEAMS_CONNECTOR_<NAME>_FILE` names.
fn secret(env: &BTreeMap<String, String>, name: &str) -> Result<Option<Secret>> {
    let var = format!("TEAMS_CONNECTOR_{name}");
    let file_var = format!("{var}_FILE");
    match (env.get(&var), env.get(&file_var)) {
        (Some(_), Some(_)) => Err(Fatal::config(format!(
            "both {var} and {file_var} are set; keep one"
        ))),
        (Some(v), None) if v.trim().is_empty() => {
            Err(Fatal::config(format!("{var} is set but empty")))
        }
        (Some(v), None) => Ok(Some(Secret::new(v.trim()))),
        (None, Some(p)) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                Fatal::config(format!("{file_var} names {p}, which cannot be read: {e}"))
            })?;
            if text.trim().is_empty() {
                return Err(Fatal::config(format!(
                    "{file_var} names {p}, which is empty"
                )));
            }
            Ok(Some(Secret::new(text.trim())))
        }
        (None, None) => Ok(None),
    }
}

pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
