//! The typed values of `connector.toml`: the sign-in flow, the sovereign cloud, durations
//! and byte sizes. Each deserializes straight from the file with an error that says what to
//! write instead, and serializes back the way an admin would write it (`config check`).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How the connector signs in (`[auth] flow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    #[default]
    RefreshToken,
    Password,
    ClientCredentials,
}

impl Flow {
    /// The name as written in the config (`refresh_token`, …).
    pub fn name(self) -> &'static str {
        match self {
            Flow::RefreshToken => "refresh_token",
            Flow::Password => "password",
            Flow::ClientCredentials => "client_credentials",
        }
    }
}

/// The sovereign cloud (`[microsoft] cloud`): picks the Graph and login hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Cloud {
    #[default]
    #[serde(rename = "global")]
    Global,
    #[serde(rename = "usgov")]
    UsGov,
    #[serde(rename = "usgov-dod")]
    UsGovDod,
    #[serde(rename = "china")]
    China,
}

impl Cloud {
    /// Graph host; also the resource the scopes are named after.
    pub fn graph_url(self) -> &'static str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::UsGov => "https://graph.microsoft.us",
            Cloud::UsGovDod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }
    pub fn login_url(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGov | Cloud::UsGovDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }
}

/// `now - d`, saturating at the earliest representable time instead of panicking: the
/// start of a lookback or reply window.
pub fn ago(d: Duration) -> DateTime<Utc> {
    let delta = TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
    Utc::now()
        .checked_sub_signed(delta)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Durations as `30d`, `45m`, `1h 30m` (humantime).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration ({e}); write e.g. 30d, 12h or 45m"))
}

/// A duration written the humantime way in the file (`"30d"`); each key checks its own
/// range when the config is validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d).map_err(|_| {
            serde::de::Error::custom("not a duration; write e.g. \"30d\", \"12h\" or \"45m\"")
        })?;
        parse_duration(&s)
            .map(HumanDuration)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl From<&str> for HumanDuration {
    /// For defaults written as literals; an unparsable literal is a bug caught by the tests.
    fn from(s: &str) -> Self {
        HumanDuration(parse_duration(s).unwrap_or_default())
    }
}

/// A number of bytes, written `"64MB"`, `"512KiB"` or as a plain integer. KB/MB/GB are
/// powers of 1000, KiB/MiB/GiB powers of 1024 (as `ls` and the kernel would say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

/// Largest first, so printing picks the unit with the smallest number.
const UNITS: &[(&str, u64)] = &[
    ("GiB", 1 << 30),
    ("GB", 1_000_000_000),
    ("MiB", 1 << 20),
    ("MB", 1_000_000),
    ("KiB", 1 << 10),
    ("KB", 1_000),
    ("B", 1),
];

impl ByteSize {
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let bad = || format!("{s:?} is not a byte size; write e.g. 64MB, 512KiB or 1GB");
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let number: u64 = number.parse().map_err(|_| bad())?;
        let unit = unit.trim();
        let factor = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(unit))
                .map(|(_, f)| *f)
                .ok_or_else(bad)?
        };
        number.checked_mul(factor).map(ByteSize).ok_or_else(bad)
    }
}

impl fmt::Display for ByteSize {
    /// The largest unit that divides the size exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, factor) = UNITS
            .iter()
            .find(|(_, factor)| self.0 != 0 && self.0.is_multiple_of(*factor))
            .copied()
            .unwrap_or(("B", 1));
        write!(f, "{}{name}", self.0 / factor)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d) {
            Ok(Raw::Bytes(n)) => Ok(ByteSize(n)),
            Ok(Raw::Text(s)) => ByteSize::parse(&s).map_err(serde::de::Error::custom),
            Err(_) => Err(serde::de::Error::custom(
                "not a byte size; write e.g. \"64MB\", \"512KiB\" or \"1GB\"",
            )),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse_in_both_unit_families_and_print_back() {
        assert_eq!(ByteSize::parse("64MB"), Ok(ByteSize(64_000_000)));
        assert_eq!(ByteSize::parse("512 KiB"), Ok(ByteSize(512 * 1024)));
        assert_eq!(ByteSize::parse("1gib"), Ok(ByteSize(1 << 30)));
        assert_eq!(ByteSize::parse("4096"), Ok(ByteSize(4096)));
        assert!(ByteSize::parse("lots").is_err());
        assert!(ByteSize::parse("64 parsecs").is_err());
        assert!(ByteSize::parse("99999999999999999999GB").is_err());
        assert!(ByteSize::parse("18446744074GB").is_err(), "overflow");
        assert_eq!(ByteSize(64_000_000).to_string(), "64MB");
        assert_eq!(ByteSize(3 << 20).to_string(), "3MiB");
        assert_eq!(ByteSize(1001).to_string(), "1001B");
    }

    #[test]
    fn ago_saturates_instead_of_panicking() {
        assert_eq!(ago(Duration::from_secs(u64::MAX)), DateTime::<Utc>::MIN_UTC);
        let day = ago(Duration::from_secs(86_400));
        assert!((Utc::now() - day - TimeDelta::days(1)).num_seconds().abs() < 5);
    }

    #[test]
    fn flow_and_cloud_names_round_trip() {
        for flow in [Flow::RefreshToken, Flow::Password, Flow::ClientCredentials] {
            let v: Flow = serde_json::from_value(serde_json::json!(flow.name())).unwrap();
            assert_eq!(v, flow);
        }
        let c: Cloud = serde_json::from_value(serde_json::json!("usgov-dod")).unwrap();
        assert_eq!(c, Cloud::UsGovDod);
    }
}
