//! Property values as HubSpot wants them: strings, dates at midnight UTC in epoch milliseconds,
//! datetimes in epoch milliseconds.

use chrono::{DateTime, NaiveDate, Utc};

/// A `date` property value: midnight UTC of `date`, in epoch milliseconds (HubSpot refuses any
/// other time of day).
pub fn date(date: NaiveDate) -> String {
    date.and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp_millis()
        .to_string()
}

/// A `datetime` property value or a date filter value: epoch milliseconds.
pub fn datetime(at: DateTime<Utc>) -> String {
    at.timestamp_millis().to_string()
}

/// A `bool` property value.
pub fn boolean(b: bool) -> String {
    if b { "true" } else { "false" }.to_string()
}

/// A multi-select (`checkbox`) value: options joined by `;`.
pub fn multi<I: IntoIterator<Item = S>, S: AsRef<str>>(options: I) -> String {
    options
        .into_iter()
        .map(|s| s.as_ref().to_string())
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn dates_are_midnight_utc_millis() {
        assert_eq!(
            date(NaiveDate::from_ymd_opt(2019, 10, 31).unwrap()),
            "1572480000000"
        );
        let at = Utc.with_ymd_and_hms(2019, 10, 31, 12, 0, 0).unwrap();
        assert_eq!(datetime(at), "1572523200000");
        assert_eq!(boolean(false), "false");
        assert_eq!(multi(["chocolate", "strawberry"]), "chocolate;strawberry");
    }
}
