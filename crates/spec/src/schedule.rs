//! Schedules: cron expressions and intervals, parsed one way for validation and the runner.

use crate::model::{Duration, Schedule};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Without a schedule block a scheduled flow runs this often.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(15 * 60);

/// The shortest interval a trigger or schedule may have.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// When a flow runs.
#[derive(Debug, Clone)]
pub enum Timing {
    /// On each match of a cron expression (UTC).
    Cron(Box<Cron>),
    /// At a fixed interval.
    Every(Duration),
}

/// Parses a cron expression: 5 fields (`*/15 * * * *`), or 6 with seconds first.
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    let fields = expr.split_whitespace().count();
    if !expr.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
        return Err(format!(
            "a cron expression has 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first; `{expr}` has {fields}"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| format!("`{expr}` is not a valid cron expression: {e}"))
}

/// Whether a cron expression ever fires: `0 0 30 2 *` (February 30th) parses but never does.
pub fn fires(cron: &Cron) -> bool {
    use chrono::TimeZone;
    let from = chrono::Utc.with_ymd_and_hms(2001, 1, 1, 0, 0, 0).single();
    from.is_some_and(|from| cron.find_next_occurrence(&from, false).is_ok())
}

/// Why a schedule block is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error("{0}")]
    Cron(String),
    /// The interval is below [`MIN_INTERVAL`].
    #[error("`every: {0}` is too short; the shortest interval is 1s")]
    TooShort(Duration),
    /// Both or neither of `cron` and `every`.
    #[error("a schedule takes `cron` or `every`, not both")]
    Both,
    /// Neither `cron` nor `every`.
    #[error("a schedule needs `cron` or `every` (remove the block to run every 15 minutes)")]
    Neither,
}

/// The timing of a schedule block (or of its absence).
pub fn timing(schedule: Option<&Schedule>) -> Result<Timing, ScheduleError> {
    match schedule {
        None => Ok(Timing::Every(DEFAULT_EVERY)),
        Some(s) => match (&s.cron, s.every) {
            (Some(expr), None) => parse_cron(expr)
                .map(|c| Timing::Cron(Box::new(c)))
                .map_err(ScheduleError::Cron),
            (None, Some(every)) if every < MIN_INTERVAL => Err(ScheduleError::TooShort(every)),
            (None, Some(every)) => Ok(Timing::Every(every)),
            (Some(_), Some(_)) => Err(ScheduleError::Both),
            (None, None) => Err(ScheduleError::Neither),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_forms() {
        assert!(parse_cron("*/15 * * * *").is_ok());
        assert!(parse_cron("0 */5 * * * *").is_ok());
        assert!(parse_cron("@hourly").is_ok());
        assert!(parse_cron("* * *").unwrap_err().contains("has 3"));
        assert!(parse_cron("61 * * * *").is_err());
        assert!(parse_cron("0 0 * * * * 2030").is_err());
    }

    #[test]
    fn a_cron_that_never_fires_is_told_apart() {
        assert!(!fires(&parse_cron("0 0 30 2 *").unwrap()));
        assert!(fires(&parse_cron("0 0 29 2 *").unwrap()));
        assert!(fires(&parse_cron("*/15 * * * *").unwrap()));
    }
}
