//! Typed conversion of one field's value into HubSpot's wire format or native JSON.
//!
//! Every input is first turned into text the way a template would render it (a JSON number as
//! its JSON text, `null` as `""`), so a value read by a path and the same value rendered by a
//! template convert identically.

use std::borrow::Cow;
use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, Utc};
use indexmap::IndexMap;
use serde_json::Value;

use crate::OutputMode;
use crate::limits::{MAX_FIELD_BYTES, MAX_HINT_CHARS};
use crate::spec::FieldType;

/// The checks and conversion of one field, fixed at compile time.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub ty: FieldType,
    pub map: Option<IndexMap<String, String>>,
    /// Allowed enumeration values (from `options`, else the map's values).
    pub allowed: Option<Allowed>,
    pub trim: bool,
    pub truncate: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Allowed {
    pub set: HashSet<String>,
    pub ordered: Vec<String>,
}

impl Allowed {
    pub(crate) fn new(values: impl IntoIterator<Item = String>) -> Allowed {
        let mut ordered = Vec::new();
        let mut set = HashSet::new();
        for v in values {
            if set.insert(v.clone()) {
                ordered.push(v);
            }
        }
        Allowed { set, ordered }
    }
}

/// A checked value of a field's type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Typed {
    /// An empty value: HubSpot clears the property.
    Clear,
    /// `string` and `enumeration`.
    Str(String),
    /// A canonical decimal string (no exponent, no leading `+` or zeros).
    Num(String),
    Int(i64),
    Bool(bool),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    Multi(Vec<String>),
}

impl Typed {
    /// About how many bytes the value takes (its text), for [`crate::limits::MAX_RECORD_BYTES`].
    pub(crate) fn size(&self) -> usize {
        match self {
            Typed::Str(s) | Typed::Num(s) => s.len(),
            Typed::Multi(v) => v.iter().map(|s| s.len() + 1).sum(),
            _ => 8,
        }
    }

    /// The value as written to the target.
    ///
    /// Wire: every value is a JSON string in HubSpot's format. Native: numbers as numbers,
    /// bools as bools, dates as `YYYY-MM-DD`, datetimes as RFC 3339, multi-enumerations as
    /// lists; an empty value is `""` for strings and enumerations, `[]` for multi-enumerations
    /// and `null` otherwise.
    pub(crate) fn output(self, ty: FieldType, mode: OutputMode) -> Value {
        match mode {
            OutputMode::Wire => Value::String(match self {
                Typed::Clear => String::new(),
                Typed::Str(s) | Typed::Num(s) => s,
                Typed::Int(i) => i.to_string(),
                Typed::Bool(b) => b.to_string(),
                Typed::Date(d) => midnight_ms(d).to_string(),
                Typed::DateTime(t) => t.timestamp_millis().to_string(),
                Typed::Multi(v) => v.join(";"),
            }),
            OutputMode::Native => match self {
                Typed::Clear => match ty {
                    FieldType::String | FieldType::Enumeration => Value::String(String::new()),
                    FieldType::MultiEnumeration => Value::Array(Vec::new()),
                    _ => Value::Null,
                },
                Typed::Str(s) => Value::String(s),
                Typed::Num(s) => native_number(&s),
                Typed::Int(i) => Value::from(i),
                Typed::Bool(b) => Value::Bool(b),
                Typed::Date(d) => Value::String(d.format("%Y-%m-%d").to_string()),
                Typed::DateTime(t) => Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
                Typed::Multi(v) => Value::Array(v.into_iter().map(Value::String).collect()),
            },
        }
    }
}

fn midnight_ms(d: NaiveDate) -> i64 {
    d.and_time(NaiveTime::MIN).and_utc().timestamp_millis()
}

fn native_number(s: &str) -> Value {
    if !s.contains('.') {
        if let Ok(i) = s.parse::<i64>() {
            return Value::from(i);
        }
    }
    // Canonical decimals are finite, so `from_f64` succeeds.
    s.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(s.to_owned()))
}

/// A value quoted for an error message (JSON syntax, cut after 60 characters).
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() > MAX {
        let cut: String = s.chars().take(MAX).collect();
        let q = serde_json::to_string(&cut).unwrap_or_default();
        format!("{}…\"", &q[..q.len() - 1])
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

/// A value for an error message: its JSON, cut after 60 characters (without writing out more
/// than that of a large value).
pub(crate) fn quote_value(v: &Value) -> String {
    const MAX: usize = 60;
    /// Keeps the first bytes written and then refuses more.
    struct Head(Vec<u8>);
    impl std::io::Write for Head {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let room = (4 * MAX + 4).saturating_sub(self.0.len());
            if room == 0 {
                return Err(std::io::Error::other("enough"));
            }
            let n = b.len().min(room);
            self.0.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut head = Head(Vec::new());
    let complete = serde_json::to_writer(&mut head, v).is_ok();
    let text = String::from_utf8_lossy(&head.0);
    if !complete || text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        text.into_owned()
    }
}

/// A JSON scalar as a template renders it; `None` for lists and objects.
pub(crate) fn scalar_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Null => Some(Cow::Borrowed("")),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// Where a value came from: one match or several (a JSONPath with several matches).
pub(crate) enum Input<'a> {
    One(&'a Value),
    Many(&'a [&'a Value]),
}

impl Rules {
    /// Checks and converts one value.
    pub(crate) fn convert(&self, input: Input<'_>) -> Result<Typed, String> {
        if self.ty == FieldType::MultiEnumeration {
            return self.convert_multi(input);
        }
        let v = match input {
            Input::One(v) => v,
            Input::Many(vs) => {
                return Err(format!(
                    "the path matched {} values; a {} field takes one",
                    vs.len(),
                    self.ty
                ));
            }
        };
        if let (Value::Number(n), FieldType::Number | FieldType::Integer) = (v, self.ty) {
            if self.map.is_none() {
                return self.convert_number(n);
            }
        }
        let text = match scalar_text(v) {
            Some(t) => t,
            None => {
                let what = if v.is_array() { "a list" } else { "an object" };
                return Err(format!(
                    "{} is {what}; a {} field takes one value",
                    quote_value(v),
                    self.ty
                ));
            }
        };
        self.convert_text(&text)
    }

    /// A JSON number without a text round trip; the same result as converting its JSON text.
    fn convert_number(&self, n: &serde_json::Number) -> Result<Typed, String> {
        if let Some(i) = n.as_i64() {
            return Ok(match self.ty {
                FieldType::Integer => Typed::Int(i),
                _ => Typed::Num(i.to_string()),
            });
        }
        let f = n.as_f64().unwrap_or(f64::NAN);
        if n.is_u64() || !f.is_finite() {
            return self.convert_text(&n.to_string());
        }
        let canonical = if f == 0.0 {
            "0".to_owned()
        } else {
            f.to_string()
        };
        match self.ty {
            FieldType::Integer if f.fract() != 0.0 => {
                Err(format!("{} is not an integer", quote(&n.to_string())))
            }
            // Integral and within i64: exact.
            FieldType::Integer if f.abs() < 9.2e18 => Ok(Typed::Int(f as i64)),
            FieldType::Integer => self.convert_text(&n.to_string()),
            _ => Ok(Typed::Num(canonical)),
        }
    }

    #[inline]
    fn prepare<'s>(&'s self, text: &'s str) -> &'s str {
        let text = if self.trim { text.trim() } else { text };
        match &self.map {
            Some(m) => m.get(text).map(String::as_str).unwrap_or(text),
            None => text,
        }
    }

    /// Checks and converts one value given as text (a rendered template).
    pub(crate) fn convert_text(&self, text: &str) -> Result<Typed, String> {
        if text.len() > MAX_FIELD_BYTES {
            return Err(value_exceeds());
        }
        self.convert_checked(text)
    }

    /// [`Rules::convert_text`] for text within the size limit.
    #[inline]
    fn convert_checked(&self, text: &str) -> Result<Typed, String> {
        if self.ty == FieldType::MultiEnumeration {
            return self.multi_from_items(text.split(';').map(Cow::Borrowed));
        }
        let s = self.prepare(text);
        if s.is_empty() {
            return Ok(Typed::Clear);
        }
        match self.ty {
            FieldType::String => Ok(Typed::Str(s.to_owned())),
            FieldType::Number => parse_number(s).map(|d| Typed::Num(d.canonical)),
            FieldType::Integer => parse_integer(s).map(Typed::Int),
            FieldType::Bool => parse_bool(s).map(Typed::Bool),
            FieldType::Date => parse_date(s, self.truncate).map(Typed::Date),
            FieldType::Datetime => parse_datetime(s).map(Typed::DateTime),
            FieldType::Enumeration => {
                self.check_allowed(s)?;
                Ok(Typed::Str(s.to_owned()))
            }
            FieldType::MultiEnumeration => unreachable!("handled above"),
        }
    }

    fn convert_multi(&self, input: Input<'_>) -> Result<Typed, String> {
        fn item(v: &Value) -> Result<Cow<'_, str>, String> {
            scalar_text(v)
                .ok_or_else(|| format!("{} is not a single value in a list", quote_value(v)))
        }
        match input {
            Input::Many(vs) => {
                let items: Result<Vec<_>, _> = vs.iter().map(|v| item(v)).collect();
                self.multi_from_items(items?.into_iter())
            }
            Input::One(Value::Array(a)) => {
                let items: Result<Vec<_>, _> = a.iter().map(item).collect();
                self.multi_from_items(items?.into_iter())
            }
            Input::One(v) => {
                let text = item(v)?;
                self.multi_from_items(text.split(';').map(Cow::Borrowed))
            }
        }
    }

    fn multi_from_items<'s>(
        &self,
        items: impl Iterator<Item = Cow<'s, str>>,
    ) -> Result<Typed, String> {
        let mut out = Vec::new();
        let mut size = 0usize;
        for raw in items {
            let s = self.prepare(&raw);
            if s.is_empty() {
                continue;
            }
            size += s.len() + 1;
            if size > MAX_FIELD_BYTES + 1 {
                return Err(value_exceeds());
            }
            if s.contains(';') {
                return Err(format!(
                    "{} contains \";\", which separates multi_enumeration values",
                    quote(s)
                ));
            }
            self.check_allowed(s)?;
            out.push(s.to_owned());
        }
        Ok(if out.is_empty() {
            Typed::Clear
        } else {
            Typed::Multi(out)
        })
    }

    fn check_allowed(&self, s: &str) -> Result<(), String> {
        let Some(allowed) = &self.allowed else {
            return Ok(());
        };
        if allowed.set.contains(s) {
            return Ok(());
        }
        const SHOW: usize = 10;
        let mut list = allowed
            .ordered
            .iter()
            .take(SHOW)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if allowed.ordered.len() > SHOW {
            list.push_str(&format!(", … ({} in all)", allowed.ordered.len()));
        }
        let mut msg = format!("{} is not an allowed value (allowed: {list})", quote(s));
        if let Some(best) = closest(s, allowed.ordered.iter().map(String::as_str)) {
            msg.push_str(&format!("; did you mean {}?", quote(best)));
        }
        Err(msg)
    }
}

/// A field's value would be larger than [`MAX_FIELD_BYTES`].
#[cold]
fn value_exceeds() -> String {
    format!(
        "the value would exceed {} (the limit per field)",
        crate::limits::bytes(MAX_FIELD_BYTES)
    )
}

/// The closest candidate by Jaro-Winkler similarity, if it is close enough. Words longer than
/// [`MAX_HINT_CHARS`] are not compared (the similarity takes quadratic time).
pub(crate) fn closest<'c>(s: &str, candidates: impl Iterator<Item = &'c str>) -> Option<&'c str> {
    if s.len() > 4 * MAX_HINT_CHARS || s.chars().count() > MAX_HINT_CHARS {
        return None;
    }
    candidates
        .filter(|c| c.len() <= 4 * MAX_HINT_CHARS)
        .map(|c| {
            (
                strsim::jaro_winkler(&s.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// A parsed decimal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decimal {
    /// No exponent, no `+`, no leading zeros, no trailing `.`; `-0` is `0`.
    pub canonical: String,
    pub has_fraction: bool,
}

/// Parses a decimal number: optional sign, digits, optional `.digits`, optional exponent.
/// Rejects `NaN`, infinities, thousands separators and anything else.
pub(crate) fn parse_number(raw: &str) -> Result<Decimal, String> {
    let s = raw.trim();
    let not_a_number = || {
        let mut m = format!("{} is not a number", quote(raw));
        if s.contains(',') {
            m.push_str(" (use digits and \".\" as the decimal point, no thousands separators)");
        }
        m
    };
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    let digits = |t: &str| t.bytes().all(|c| c.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return Err(not_a_number());
    }
    if let Some(e) = exponent {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        if e.is_empty() || !digits(e) {
            return Err(not_a_number());
        }
        let f: f64 = s.parse().map_err(|_| not_a_number())?;
        if !f.is_finite() {
            return Err(format!("{} is out of range", quote(raw)));
        }
        let f = if f == 0.0 { 0.0 } else { f };
        return Ok(Decimal {
            canonical: f.to_string(),
            has_fraction: f.fract() != 0.0,
        });
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let has_fraction = !frac.is_empty();
    let zero = int.is_empty() && !has_fraction;
    let mut canonical = String::with_capacity(s.len() + 1);
    if neg && !zero {
        canonical.push('-');
    }
    canonical.push_str(if int.is_empty() { "0" } else { int });
    if has_fraction {
        canonical.push('.');
        canonical.push_str(frac);
    }
    if !canonical.parse::<f64>().is_ok_and(f64::is_finite) {
        return Err(format!("{} is out of range", quote(raw)));
    }
    Ok(Decimal {
        canonical,
        has_fraction,
    })
}

/// Parses a whole number (`3`, `3.0`, `3e2`); `3.5` is an error.
pub(crate) fn parse_integer(raw: &str) -> Result<i64, String> {
    let d = parse_number(raw).map_err(|_| format!("{} is not an integer", quote(raw)))?;
    if d.has_fraction {
        return Err(format!("{} is not an integer", quote(raw)));
    }
    d.canonical
        .parse::<i64>()
        .map_err(|_| format!("{} is out of range for an integer", quote(raw)))
}

/// Parses yes/no, 1/0, true/false, on/off in any case.
pub(crate) fn parse_bool(raw: &str) -> Result<bool, String> {
    let s = raw.trim();
    const TRUE: [&str; 4] = ["true", "yes", "1", "on"];
    const FALSE: [&str; 4] = ["false", "no", "0", "off"];
    if TRUE.iter().any(|t| s.eq_ignore_ascii_case(t)) {
        Ok(true)
    } else if FALSE.iter().any(|t| s.eq_ignore_ascii_case(t)) {
        Ok(false)
    } else {
        Err(format!(
            "{} is not a bool (use true/false, yes/no, 1/0 or on/off)",
            quote(raw)
        ))
    }
}

/// A parsed date or instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum When {
    Day(NaiveDate),
    At(DateTime<Utc>),
}

/// Parses `YYYY-MM-DD`, RFC 3339 or epoch milliseconds (an integer).
pub(crate) fn parse_when(raw: &str) -> Option<When> {
    let s = raw.trim();
    let b = s.as_bytes();
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        let num = |r: std::ops::Range<usize>| {
            b[r].iter().try_fold(0u32, |acc, c| {
                c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
            })
        };
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        return NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d).map(When::Day);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(When::At(t.with_timezone(&Utc)));
    }
    let looks_numeric = !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'));
    if looks_numeric {
        let ms = parse_integer(s).ok()?;
        return DateTime::from_timestamp_millis(ms).map(When::At);
    }
    None
}

/// Parses a date that must be at midnight UTC (or any instant when `truncate`).
pub(crate) fn parse_date(raw: &str, truncate: bool) -> Result<NaiveDate, String> {
    match parse_when(raw) {
        Some(When::Day(d)) => Ok(d),
        Some(When::At(t)) => {
            if t.time() == NaiveTime::MIN || truncate {
                Ok(t.date_naive())
            } else {
                Err(format!(
                    "{} is {}, not midnight UTC (HubSpot dates must be midnight UTC; set \
                     truncate: true to keep the UTC date {})",
                    quote(raw),
                    t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                    t.date_naive()
                ))
            }
        }
        None => Err(format!(
            "{} is not a date (expected YYYY-MM-DD, RFC 3339 or epoch milliseconds)",
            quote(raw)
        )),
    }
}

/// Parses an instant; a plain date is midnight UTC.
pub(crate) fn parse_datetime(raw: &str) -> Result<DateTime<Utc>, String> {
    match parse_when(raw) {
        Some(When::Day(d)) => Ok(d.and_time(NaiveTime::MIN).and_utc()),
        Some(When::At(t)) => Ok(t),
        None => Err(format!(
            "{} is not a datetime (expected RFC 3339, YYYY-MM-DD or epoch milliseconds)",
            quote(raw)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(ty: FieldType) -> Rules {
        Rules {
            ty,
            map: None,
            allowed: None,
            trim: false,
            truncate: false,
        }
    }

    fn wire(r: &Rules, v: Value) -> Result<Value, String> {
        r.convert(Input::One(&v))
            .map(|t| t.output(r.ty, OutputMode::Wire))
    }

    fn native(r: &Rules, v: Value) -> Result<Value, String> {
        r.convert(Input::One(&v))
            .map(|t| t.output(r.ty, OutputMode::Native))
    }

    #[test]
    fn strings() {
        let r = rules(FieldType::String);
        assert_eq!(wire(&r, json!("a&b")).unwrap(), json!("a&b"));
        assert_eq!(wire(&r, json!(12.5)).unwrap(), json!("12.5"));
        assert_eq!(wire(&r, json!(true)).unwrap(), json!("true"));
        assert_eq!(wire(&r, json!(null)).unwrap(), json!(""));
        assert_eq!(wire(&r, json!(" x ")).unwrap(), json!(" x "));
        let e = wire(&r, json!(["a"])).unwrap_err();
        assert_eq!(e, r#"["a"] is a list; a string field takes one value"#);
        let e = wire(&r, json!({"a": 1})).unwrap_err();
        assert_eq!(e, r#"{"a":1} is an object; a string field takes one value"#);
        let (a, b) = (json!("a"), json!("b"));
        let e = r.convert(Input::Many(&[&a, &b])).unwrap_err();
        assert_eq!(e, "the path matched 2 values; a string field takes one");
    }

    #[test]
    fn trim_and_map() {
        let mut r = rules(FieldType::String);
        r.trim = true;
        r.map = Some([("Y".to_owned(), "yes".to_owned())].into_iter().collect());
        assert_eq!(wire(&r, json!("  Y ")).unwrap(), json!("yes"));
        assert_eq!(wire(&r, json!("  N ")).unwrap(), json!("N"));
        assert_eq!(wire(&r, json!("   ")).unwrap(), json!(""));
    }

    #[test]
    fn numbers() {
        let r = rules(FieldType::Number);
        for (i, o) in [
            (json!(12), "12"),
            (json!(-1.5), "-1.5"),
            (json!("007"), "7"),
            (json!("+3.50"), "3.5"),
            (json!(".5"), "0.5"),
            (json!("5."), "5"),
            (json!("-0"), "0"),
            (json!("1e3"), "1000"),
            (json!("1.5E-2"), "0.015"),
            (json!(" 42 "), "42"),
            (json!(1e21), "1000000000000000000000"),
            (
                json!("12345678901234567890.123"),
                "12345678901234567890.123",
            ),
        ] {
            assert_eq!(wire(&r, i.clone()).unwrap(), json!(o), "{i}");
        }
        assert_eq!(wire(&r, json!("")).unwrap(), json!(""));
        for bad in [
            "abc", "1,000", "NaN", "inf", "1e", "-", ".", "1.2.3", "0x10", "1e999",
        ] {
            assert!(wire(&r, json!(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            wire(&r, json!("abc")).unwrap_err(),
            r#""abc" is not a number"#
        );
        assert!(wire(&r, json!("1,000")).unwrap_err().contains("thousands"));
        assert_eq!(native(&r, json!("12")).unwrap(), json!(12));
        assert_eq!(native(&r, json!("12.5")).unwrap(), json!(12.5));
        assert_eq!(native(&r, json!("")).unwrap(), json!(null));
    }

    #[test]
    fn integers() {
        let r = rules(FieldType::Integer);
        assert_eq!(wire(&r, json!("3")).unwrap(), json!("3"));
        assert_eq!(wire(&r, json!(3.0)).unwrap(), json!("3"));
        assert_eq!(wire(&r, json!("2e2")).unwrap(), json!("200"));
        assert_eq!(
            wire(&r, json!("3.5")).unwrap_err(),
            r#""3.5" is not an integer"#
        );
        assert_eq!(
            wire(&r, json!("x")).unwrap_err(),
            r#""x" is not an integer"#
        );
        assert!(
            wire(&r, json!("99999999999999999999"))
                .unwrap_err()
                .contains("out of range")
        );
        assert_eq!(native(&r, json!("3")).unwrap(), json!(3));
    }

    #[test]
    fn bools() {
        let r = rules(FieldType::Bool);
        for t in ["true", "YES", "1", "On", " yes "] {
            assert_eq!(wire(&r, json!(t)).unwrap(), json!("true"), "{t}");
        }
        for f in ["false", "No", "0", "OFF"] {
            assert_eq!(wire(&r, json!(f)).unwrap(), json!("false"), "{f}");
        }
        assert_eq!(wire(&r, json!(true)).unwrap(), json!("true"));
        assert_eq!(wire(&r, json!(0)).unwrap(), json!("false"));
        assert_eq!(native(&r, json!("yes")).unwrap(), json!(true));
        assert!(
            wire(&r, json!("maybe"))
                .unwrap_err()
                .starts_with(r#""maybe" is not a bool"#)
        );
    }

    #[test]
    fn dates() {
        let mut r = rules(FieldType::Date);
        assert_eq!(
            wire(&r, json!("2024-05-01")).unwrap(),
            json!("1714521600000")
        );
        assert_eq!(
            wire(&r, json!("2024-05-01T00:00:00Z")).unwrap(),
            json!("1714521600000")
        );
        assert_eq!(
            wire(&r, json!(1714521600000i64)).unwrap(),
            json!("1714521600000")
        );
        assert_eq!(
            native(&r, json!(1714521600000i64)).unwrap(),
            json!("2024-05-01")
        );
        let e = wire(&r, json!("2024-05-01T10:30:00Z")).unwrap_err();
        assert!(
            e.contains("not midnight UTC") && e.contains("truncate"),
            "{e}"
        );
        // Midnight in +02:00 is 22:00 UTC the day before.
        let e = wire(&r, json!("2024-05-01T00:00:00+02:00")).unwrap_err();
        assert!(e.contains("2024-04-30T22:00:00Z"), "{e}");
        assert!(
            wire(&r, json!("01.05.2024"))
                .unwrap_err()
                .contains("is not a date")
        );
        assert!(wire(&r, json!("2024-02-30")).is_err());
        r.truncate = true;
        assert_eq!(
            native(&r, json!("2024-05-01T10:30:00Z")).unwrap(),
            json!("2024-05-01")
        );
        assert_eq!(
            native(&r, json!("2024-05-01T00:00:00+02:00")).unwrap(),
            json!("2024-04-30")
        );
    }

    #[test]
    fn datetimes() {
        let r = rules(FieldType::Datetime);
        assert_eq!(
            wire(&r, json!("2024-05-01T10:30:00.123Z")).unwrap(),
            json!("1714559400123")
        );
        assert_eq!(
            wire(&r, json!("2024-05-01T12:30:00+02:00")).unwrap(),
            json!("1714559400000")
        );
        assert_eq!(
            wire(&r, json!("2024-05-01")).unwrap(),
            json!("1714521600000")
        );
        assert_eq!(
            wire(&r, json!("1714559400123")).unwrap(),
            json!("1714559400123")
        );
        assert_eq!(
            native(&r, json!(1714559400123i64)).unwrap(),
            json!("2024-05-01T10:30:00.123Z")
        );
        assert!(
            wire(&r, json!("yesterday"))
                .unwrap_err()
                .contains("not a datetime")
        );
    }

    #[test]
    fn enumerations() {
        let mut r = rules(FieldType::Enumeration);
        assert_eq!(wire(&r, json!("anything")).unwrap(), json!("anything"));
        r.map = Some(
            [("SMB", "small_business"), ("ENT", "enterprise")]
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect(),
        );
        r.allowed = Some(Allowed::new(["small_business".into(), "enterprise".into()]));
        assert_eq!(wire(&r, json!("SMB")).unwrap(), json!("small_business"));
        assert_eq!(wire(&r, json!("enterprise")).unwrap(), json!("enterprise"));
        let e = wire(&r, json!("enterprize")).unwrap_err();
        assert_eq!(
            e,
            r#""enterprize" is not an allowed value (allowed: small_business, enterprise); did you mean "enterprise"?"#
        );
        assert_eq!(wire(&r, json!("")).unwrap(), json!(""));
    }

    #[test]
    fn multi_enumerations() {
        let mut r = rules(FieldType::MultiEnumeration);
        r.allowed = Some(Allowed::new(["a".into(), "b".into(), "c".into()]));
        assert_eq!(wire(&r, json!(["a", "b"])).unwrap(), json!("a;b"));
        assert_eq!(wire(&r, json!("a;c")).unwrap(), json!("a;c"));
        assert_eq!(wire(&r, json!("a;;c;")).unwrap(), json!("a;c"));
        assert_eq!(native(&r, json!("a;c")).unwrap(), json!(["a", "c"]));
        assert_eq!(wire(&r, json!([])).unwrap(), json!(""));
        assert_eq!(native(&r, json!("")).unwrap(), json!([]));
        let (a, b) = (json!("a"), json!("b"));
        let t = r.convert(Input::Many(&[&a, &b])).unwrap();
        assert_eq!(t.output(r.ty, OutputMode::Wire), json!("a;b"));
        assert!(
            wire(&r, json!(["a", "x"]))
                .unwrap_err()
                .contains(r#""x" is not an allowed"#)
        );
        assert!(
            wire(&r, json!([["a"]]))
                .unwrap_err()
                .contains("not a single value")
        );
        r.allowed = None;
        r.trim = true;
        assert_eq!(
            wire(&r, json!(["a; b"])).unwrap_err(),
            r#""a; b" contains ";", which separates multi_enumeration values"#
        );
        assert_eq!(wire(&r, json!("x; y ")).unwrap(), json!("x;y"));
    }

    #[test]
    fn quoting_cuts_long_values() {
        let long = "x".repeat(100);
        let q = quote(&long);
        assert!(q.ends_with("…\"") && q.len() < 70, "{q}");
    }
}
