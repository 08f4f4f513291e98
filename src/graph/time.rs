//! Graph's timestamps: RFC 3339 in UTC with milliseconds (`2021-01-22T21:39:42.080Z`). The
//! connector writes every time it shows or stores in the same form (README, `status --json`).

use chrono::{DateTime, Utc};

/// Graph's RFC 3339 timestamps, in UTC.
pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Graph's timestamp form: `2021-01-22T21:39:42.080Z`.
pub fn format(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `#[serde(with = "crate::graph::time::serde")]` for a `DateTime<Utc>` field.
pub mod serde {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let raw = String::deserialize(d)?;
        super::parse(&raw).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 time"))
    }
}

/// `#[serde(default, with = "crate::graph::time::serde_opt")]` for an `Option<DateTime<Utc>>`.
pub mod serde_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(raw) => super::parse(&raw)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("not an RFC 3339 time")),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_with_milliseconds_and_parses_back() {
        let t = super::parse("2021-01-22T21:39:42.08Z").unwrap();
        assert_eq!(super::format(t), "2021-01-22T21:39:42.080Z");
        assert_eq!(super::parse("2021-01-22T22:39:42.080+01:00"), Some(t));
        assert_eq!(super::parse("yesterday"), None);
    }
}
