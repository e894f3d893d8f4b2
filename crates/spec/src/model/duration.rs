//! Durations written as humans write them: `15s`, `10m`, `1h 30m`.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;

/// A duration such as `15s`, `10m` or `1h 30m` (units: ms, s, m, h, d, w), at most
/// [`Duration::MAX`]. Each setting may bound it further (validation says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// The longest duration any setting takes: 366 days. Longer ones are refused when a file
    /// is read, so no later date arithmetic can overflow.
    pub const MAX: Duration = Duration::from_secs(366 * 86_400);

    /// `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Duration {
        Duration(std::time::Duration::from_millis(ms))
    }

    /// `secs` seconds.
    pub const fn from_secs(secs: u64) -> Duration {
        Duration(std::time::Duration::from_secs(secs))
    }

    /// The standard library duration.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }

    /// Parses `15s`, `10m`, `1h 30m`; the error says what was wrong.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err("a duration cannot be empty".into());
        }
        if trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "`{trimmed}` has no unit; write `{trimmed}s` for seconds or `{trimmed}m` for minutes"
            ));
        }
        let parsed = humantime::parse_duration(trimmed).map_err(|e| {
            format!("`{trimmed}` is not a duration ({e}); use forms like `15s`, `10m`, `1h 30m`")
        })?;
        if let Some(unit) = unsupported_unit(trimmed) {
            return Err(format!(
                "`{trimmed}`: `{unit}` is not a unit here; use ms, s, m, h, d or w (e.g. `15s`, `10m`, `1h 30m`)"
            ));
        }
        if parsed > Self::MAX.0 {
            return Err(format!(
                "`{trimmed}` is longer than the longest duration allowed (366d)"
            ));
        }
        Ok(Duration(parsed))
    }
}

/// The units the JSON Schema's pattern allows; humantime also reads months and years, whose
/// length is ambiguous and which no setting needs.
const UNITS: &[&str] = &[
    "ns", "us", "ms", "s", "sec", "secs", "second", "seconds", "m", "min", "mins", "minute",
    "minutes", "h", "hr", "hrs", "hour", "hours", "d", "day", "days", "w", "week", "weeks",
];

/// The first unit in `text` that is not one of [`UNITS`].
fn unsupported_unit(text: &str) -> Option<&str> {
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii_digit() || c.is_whitespace());
        if rest.is_empty() {
            return None;
        }
        let end = rest
            .find(|c: char| c.is_ascii_digit() || c.is_whitespace())
            .unwrap_or(rest.len());
        let unit = &rest[..end];
        if !UNITS.contains(&unit) {
            return Some(unit);
        }
        rest = &rest[end..];
    }
}

/// In the units a file may use (`300d`, `1h 30m`, `15s`), never months or years, whose length
/// is ambiguous and which [`Duration::parse`] refuses: what is printed reads back as the same
/// duration.
impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let nanos = u64::from(self.0.subsec_nanos());
        let parts = [
            (secs / 86_400, "d"),
            (secs / 3_600 % 24, "h"),
            (secs / 60 % 60, "m"),
            (secs % 60, "s"),
            (nanos / 1_000_000, "ms"),
            (nanos / 1_000 % 1_000, "us"),
            (nanos % 1_000, "ns"),
        ];
        let mut written = false;
        for (n, unit) in parts.into_iter().filter(|(n, _)| *n > 0) {
            if written {
                f.write_str(" ")?;
            }
            write!(f, "{n}{unit}")?;
            written = true;
        }
        if !written {
            f.write_str("0s")?;
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        Duration::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "duration",
            "description": "A duration such as `15s`, `10m` or `1h 30m` (units: ms, s, m, h, d).",
            "pattern": "^\\s*([0-9]+\\s*(ns|us|ms|s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days|w|week|weeks)\\s*)+$",
            "examples": ["15s", "10m", "1h"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_human_durations() {
        assert_eq!(Duration::parse("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(
            Duration::parse("1h 30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert!(Duration::parse("15").unwrap_err().contains("no unit"));
        assert!(Duration::parse("15x").is_err());
        assert!(Duration::parse("").is_err());
    }

    #[test]
    fn prints_in_units_it_reads_back() {
        for (text, shown) in [
            ("15s", "15s"),
            ("1h 30m", "1h 30m"),
            ("300d", "300d"),
            ("366d", "366d"),
            ("1w 2d", "9d"),
            ("1500ms", "1s 500ms"),
            ("0s", "0s"),
        ] {
            let d = Duration::parse(text).unwrap();
            assert_eq!(d.to_string(), shown);
            assert_eq!(Duration::parse(shown).unwrap(), d);
        }
    }

    #[test]
    fn refuses_years_months_and_overlong_durations() {
        assert!(Duration::parse("300000y").is_err());
        assert!(
            Duration::parse("3y")
                .unwrap_err()
                .contains("`y` is not a unit")
        );
        assert!(
            Duration::parse("2M")
                .unwrap_err()
                .contains("`M` is not a unit")
        );
        assert!(Duration::parse("99999999999d").is_err());
        assert!(Duration::parse("367d").unwrap_err().contains("longest"));
        assert_eq!(Duration::parse("366d").unwrap(), Duration::MAX);
        assert_eq!(
            Duration::parse("1w 2d").unwrap(),
            Duration::from_secs(9 * 86_400)
        );
    }
}
