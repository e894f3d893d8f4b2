//! Object types and timestamp helpers.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The CRM object types the sandbox serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectType {
    /// `companies` (`0-2`).
    Companies,
    /// `contacts` (`0-1`).
    Contacts,
    /// `deals` (`0-3`).
    Deals,
    /// `products` (`0-7`).
    Products,
    /// `line_items` (`0-8`).
    LineItems,
}

impl ObjectType {
    /// Every object type.
    pub const ALL: [ObjectType; 5] = [
        ObjectType::Companies,
        ObjectType::Contacts,
        ObjectType::Deals,
        ObjectType::Products,
        ObjectType::LineItems,
    ];

    /// Parses a path segment: plural (`contacts`), singular (`contact`) or type id (`0-1`).
    pub fn parse(s: &str) -> Option<ObjectType> {
        Some(match s.to_ascii_lowercase().as_str() {
            "companies" | "company" | "0-2" => ObjectType::Companies,
            "contacts" | "contact" | "0-1" => ObjectType::Contacts,
            "deals" | "deal" | "0-3" => ObjectType::Deals,
            "products" | "product" | "0-7" => ObjectType::Products,
            "line_items" | "line_item" | "lineitems" | "lineitem" | "0-8" => ObjectType::LineItems,
            _ => return None,
        })
    }

    /// The plural path name (`companies`, `line_items`).
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Companies => "companies",
            ObjectType::Contacts => "contacts",
            ObjectType::Deals => "deals",
            ObjectType::Products => "products",
            ObjectType::LineItems => "line_items",
        }
    }

    /// HubSpot's object type id (`0-1` contacts, `0-2` companies, `0-3` deals, `0-7` products,
    /// `0-8` line items).
    pub fn type_id(self) -> &'static str {
        match self {
            ObjectType::Contacts => "0-1",
            ObjectType::Companies => "0-2",
            ObjectType::Deals => "0-3",
            ObjectType::Products => "0-7",
            ObjectType::LineItems => "0-8",
        }
    }

    /// The singular name used in association type labels (`contact`, `line_item`).
    pub fn singular(self) -> &'static str {
        match self {
            ObjectType::Companies => "company",
            ObjectType::Contacts => "contact",
            ObjectType::Deals => "deal",
            ObjectType::Products => "product",
            ObjectType::LineItems => "line_item",
        }
    }

    /// The last-modified property searched and filtered on: `lastmodifieddate` for contacts,
    /// `hs_lastmodifieddate` for everything else.
    pub fn modified_property(self) -> &'static str {
        match self {
            ObjectType::Contacts => "lastmodifieddate",
            _ => "hs_lastmodifieddate",
        }
    }

    /// Properties returned when a request names none.
    pub fn default_properties(self) -> &'static [&'static str] {
        match self {
            ObjectType::Companies => &["name", "domain"],
            ObjectType::Contacts => &["firstname", "lastname", "email"],
            ObjectType::Deals => &["dealname", "amount", "dealstage", "pipeline", "closedate"],
            ObjectType::Products => &["name", "price", "hs_sku"],
            ObjectType::LineItems => &["name", "quantity", "price", "amount", "hs_product_id"],
        }
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// HubSpot-defined association type ids: `(id, from, to)`.
pub const ASSOCIATION_TYPES: &[(u32, ObjectType, ObjectType)] = &[
    (1, ObjectType::Contacts, ObjectType::Companies),
    (279, ObjectType::Contacts, ObjectType::Companies),
    (2, ObjectType::Companies, ObjectType::Contacts),
    (280, ObjectType::Companies, ObjectType::Contacts),
    (3, ObjectType::Deals, ObjectType::Contacts),
    (4, ObjectType::Contacts, ObjectType::Deals),
    (5, ObjectType::Deals, ObjectType::Companies),
    (341, ObjectType::Deals, ObjectType::Companies),
    (6, ObjectType::Companies, ObjectType::Deals),
    (342, ObjectType::Companies, ObjectType::Deals),
    (19, ObjectType::Deals, ObjectType::LineItems),
    (20, ObjectType::LineItems, ObjectType::Deals),
];

/// The default HubSpot-defined association type id from one type to another, if any.
pub fn default_association_type(from: ObjectType, to: ObjectType) -> Option<u32> {
    ASSOCIATION_TYPES
        .iter()
        .rev()
        .find(|(_, f, t)| *f == from && *t == to)
        .map(|(id, _, _)| *id)
}

/// Formats epoch milliseconds as HubSpot does: `2024-01-17T19:55:04.281Z`.
pub fn fmt_ms(ms: i64) -> String {
    use chrono::Datelike;
    let Some(dt) = DateTime::from_timestamp_millis(ms) else {
        return ms.to_string();
    };
    let year = dt.year();
    if !(0..=9999).contains(&year) {
        return dt.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    }
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (0..width).rev() {
            b[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, dt.month());
    put(8, 2, dt.day());
    put(11, 2, dt.hour());
    put(14, 2, dt.minute());
    put(17, 2, dt.second());
    put(20, 3, ms.rem_euclid(1000) as u32);
    String::from_utf8_lossy(&b).into_owned()
}

/// Parses a timestamp: epoch milliseconds (`"1700000000000"`), RFC 3339 / ISO 8601
/// (`2024-01-17T19:55:04.281Z`, with or without zone — UTC assumed) or a date (`2024-01-17`).
pub fn parse_ts(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    if let Ok(f) = s.parse::<f64>()
        && f.is_finite()
    {
        return Some(f as i64);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(ndt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(ndt.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis());
    }
    None
}

/// The time of day of `ms` as `H:M:S.mmm` if it is not midnight UTC.
pub fn not_midnight(ms: i64) -> Option<String> {
    let dt = Utc.timestamp_millis_opt(ms).single()?;
    if ms.rem_euclid(86_400_000) == 0 {
        None
    } else {
        Some(format!(
            "{}:{}:{}.{}",
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.timestamp_subsec_millis()
        ))
    }
}

/// Formats epoch milliseconds as a date (`2024-01-17`).
pub fn fmt_date(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(dt) => dt.format("%Y-%m-%d").to_string(),
        None => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let ms = 1_705_521_304_281;
        assert_eq!(fmt_ms(ms), "2024-01-17T19:55:04.281Z");
        assert_eq!(parse_ts("2024-01-17T19:55:04.281Z"), Some(ms));
        assert_eq!(parse_ts("1705521304281"), Some(ms));
        assert_eq!(parse_ts("2024-01-17"), Some(1_705_449_600_000));
        assert!(not_midnight(1_705_449_600_000).is_none());
        assert!(not_midnight(ms).is_some());
        assert_eq!(parse_ts("nope"), None);
    }

    #[test]
    fn object_types_parse() {
        assert_eq!(ObjectType::parse("0-1"), Some(ObjectType::Contacts));
        assert_eq!(ObjectType::parse("line_items"), Some(ObjectType::LineItems));
        assert_eq!(ObjectType::parse("tickets"), None);
    }
}
