//! Template helpers: plain functions over JSON values, registered with Handlebars through one
//! adapter that enforces strict mode on their arguments.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use handlebars::{
    BlockContext, BlockParams, Context as HbContext, Handlebars, Helper, HelperDef, HelperResult,
    Output, RenderContext, RenderError, RenderErrorReason, Renderable, ScopedJson,
};
use serde_json::Value;

use crate::convert::{When, parse_number, parse_when, quote, quote_value, scalar_text};
use crate::limits::{
    LIST_ITEM_BYTES, MAX_FIELD_BYTES, MAX_FIELD_ITERATIONS, MAX_FIELD_WORK_BYTES, MAX_RENDER_TIME,
    bytes,
};
use crate::path::{CompiledPath, Found};

/// One template helper, for documentation (CLI `--help`, README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelperDoc {
    /// The helper's name as used in templates.
    pub name: &'static str,
    /// Its arguments, e.g. `date_format VALUE FORMAT [INPUT_FORMAT]`.
    pub usage: &'static str,
    /// What it does.
    pub description: &'static str,
    /// A template using it, rendered against [`EXAMPLE_RECORD`].
    pub example: &'static str,
    /// What `example` renders to.
    pub result: &'static str,
}

/// The source record that the [`helpers_doc`] examples are rendered against (JSON).
pub const EXAMPLE_RECORD: &str = r#"{
  "name": "Ada Lovelace",
  "website": "WWW.Example.COM",
  "code": "  SMB ",
  "segment": "SMB",
  "tags": ["vip", "new"],
  "tag_list": "vip,new",
  "phone": "+44 20 7946 0000",
  "created": "2024-05-01T10:30:00Z",
  "born": "10.12.1815",
  "price": 12.5,
  "nickname": null,
  "lines": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}]
}"#;

/// The helpers this crate adds to Handlebars, with an example each.
///
/// Handlebars' built-in helpers are also available: `if`, `unless`, `each`, `with`, `lookup`
/// (an array index or object key, *not* a table lookup: see `lookup_map`), `eq`, `ne`, `gt`,
/// `gte`, `lt`, `lte`, `and`, `or`, `not`, `len`, `raw`, `log`.
pub fn helpers_doc() -> &'static [HelperDoc] {
    &DOCS
}

static DOCS: [HelperDoc; 16] = [
    HelperDoc {
        name: "lowercase",
        usage: "lowercase VALUE",
        description: "The value in lower case.",
        example: "{{lowercase record.website}}",
        result: "www.example.com",
    },
    HelperDoc {
        name: "uppercase",
        usage: "uppercase VALUE",
        description: "The value in upper case.",
        example: "{{uppercase record.name}}",
        result: "ADA LOVELACE",
    },
    HelperDoc {
        name: "trim",
        usage: "trim VALUE",
        description: "The value without leading and trailing whitespace.",
        example: "[{{trim record.code}}]",
        result: "[SMB]",
    },
    HelperDoc {
        name: "default",
        usage: "default VALUE FALLBACK...",
        description: "The first argument that is present, not null and not empty. The only \
                      helper that accepts missing variables (strict mode otherwise fails).",
        example: "{{default record.nickname record.missing record.name}}",
        result: "Ada Lovelace",
    },
    HelperDoc {
        name: "concat",
        usage: "concat VALUE...",
        description: "The values as text, joined without a separator (useful inside \
                      subexpressions).",
        example: "{{lowercase (concat record.segment \"-\" record.name)}}",
        result: "smb-ada lovelace",
    },
    HelperDoc {
        name: "replace",
        usage: "replace VALUE FROM TO",
        description: "The value with every occurrence of FROM replaced by TO.",
        example: "{{replace record.phone \" \" \"\"}}",
        result: "+442079460000",
    },
    HelperDoc {
        name: "split",
        usage: "split VALUE SEPARATOR",
        description: "The value split at each SEPARATOR, as a list (empty text gives an empty \
                      list).",
        example: "{{join (split record.tag_list \",\") \";\"}}",
        result: "vip;new",
    },
    HelperDoc {
        name: "first",
        usage: "first LIST",
        description: "The first item of a list (a single value counts as a list of one). An \
                      empty list has no value: an error unless wrapped in `default`.",
        example: "{{first (split record.name \" \")}}",
        result: "Ada",
    },
    HelperDoc {
        name: "last",
        usage: "last LIST",
        description: "The last item of a list.",
        example: "{{last (split record.name \" \")}}",
        result: "Lovelace",
    },
    HelperDoc {
        name: "nth",
        usage: "nth LIST INDEX",
        description: "The item at INDEX, counting from 0; a negative INDEX counts from the end.",
        example: "{{nth record.tags 1}}",
        result: "new",
    },
    HelperDoc {
        name: "join",
        usage: "join LIST SEPARATOR",
        description: "The items of a list as text, joined with SEPARATOR.",
        example: "{{join record.tags \";\"}}",
        result: "vip;new",
    },
    HelperDoc {
        name: "date_format",
        usage: "date_format VALUE FORMAT [INPUT_FORMAT]",
        description: "A date or instant formatted with a strftime FORMAT, in UTC. VALUE is \
                      RFC 3339, YYYY-MM-DD or epoch milliseconds, or is read with INPUT_FORMAT: \
                      a strftime format, `epoch_ms` or `epoch_s`.",
        example: "{{date_format record.created \"%Y-%m-%d\"}}",
        result: "2024-05-01",
    },
    HelperDoc {
        name: "date_parse",
        usage: "date_parse VALUE [INPUT_FORMAT]",
        description: "A date or instant as RFC 3339 in UTC; VALUE is read as for date_format. \
                      A date without a time is midnight UTC.",
        example: "{{date_parse record.born \"%d.%m.%Y\"}}",
        result: "1815-12-10T00:00:00Z",
    },
    HelperDoc {
        name: "number_format",
        usage: "number_format VALUE DECIMALS",
        description: "A number rounded (half away from zero) to DECIMALS places (0 to 20), \
                      e.g. for a currency amount.",
        example: "{{number_format record.price 2}}",
        result: "12.50",
    },
    HelperDoc {
        name: "jsonpath",
        usage: "jsonpath [VALUE] PATH",
        description: "The result of a JSONPath (RFC 9535) on VALUE, or on the record when VALUE \
                      is left out: one match is a value, several a list, none is missing (an \
                      error unless wrapped in `default`).",
        example: "{{jsonpath \"$.lines[?@.qty > 1].sku\"}}",
        result: "A-1",
    },
    HelperDoc {
        name: "lookup_map",
        usage: "lookup_map VALUE [TABLE] [FALLBACK] KEY=VALUE...",
        description: "The value looked up in a table given as KEY=VALUE pairs (or as an object \
                      TABLE); FALLBACK when there is no entry, else an error. Named so because \
                      Handlebars' built-in `lookup` indexes arrays and objects.",
        example: "{{lookup_map record.segment SMB=\"small_business\" ENT=\"enterprise\"}}",
        result: "small_business",
    },
];

/// What a helper returns.
pub(crate) enum Out {
    Val(Value),
    /// No value, with the reason (an error unless `default` catches it).
    Missing(String),
}

/// A helper that produced no value at the top of a template (e.g. `jsonpath` without a
/// match): like a missing variable, the field's `default` applies.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct NoValue(pub String);

/// The work one field may still do while rendering one record ([`crate::limits`]): the bytes
/// its helpers read and write, the iterations of `{{#each}}`, and (when Handlebars renders) a
/// deadline.
pub(crate) struct Budget {
    work: Cell<usize>,
    iterations: Cell<u64>,
    deadline: Cell<Option<Instant>>,
}

impl Budget {
    pub(crate) fn new() -> Budget {
        Budget {
            work: Cell::new(MAX_FIELD_WORK_BYTES),
            iterations: Cell::new(MAX_FIELD_ITERATIONS),
            deadline: Cell::new(None),
        }
    }

    /// A full budget again, with a deadline.
    pub(crate) fn reset(&self, deadline: Option<Instant>) {
        self.work.set(MAX_FIELD_WORK_BYTES);
        self.iterations.set(MAX_FIELD_ITERATIONS);
        self.deadline.set(deadline);
    }

    /// Spends `n` bytes of work.
    #[inline]
    pub(crate) fn charge(&self, n: usize) -> Result<(), String> {
        let left = self.work.get();
        if n > left {
            self.work.set(0);
            return Err(format!(
                "the template does too much work: its helpers would handle more than {} for \
                 one record (the limit per field)",
                bytes(MAX_FIELD_WORK_BYTES)
            ));
        }
        self.work.set(left - n);
        Ok(())
    }

    /// Spends one iteration of a loop.
    pub(crate) fn iterate(&self) -> Result<(), String> {
        let left = self.iterations.get();
        if left == 0 {
            return Err(format!(
                "the template loops more than {MAX_FIELD_ITERATIONS} times for one record (the \
                 limit per field)"
            ));
        }
        self.iterations.set(left - 1);
        self.in_time()
    }

    /// Whether the deadline (when Handlebars renders) has not passed.
    pub(crate) fn in_time(&self) -> Result<(), String> {
        match self.deadline.get() {
            Some(d) if Instant::now() > d => Err(format!(
                "rendering took longer than {} s (the limit per field)",
                MAX_RENDER_TIME.as_secs()
            )),
            _ => Ok(()),
        }
    }
}

thread_local! {
    /// The budget of the field Handlebars is rendering on this thread (helpers called by
    /// Handlebars have no other way to it); reset before each render.
    pub(crate) static RENDER_BUDGET: Budget = Budget::new();
}

/// A helper's result would be larger than a field may be.
#[cold]
pub(crate) fn exceeds() -> String {
    format!(
        "the result would exceed {} (the limit of a field's value)",
        bytes(MAX_FIELD_BYTES)
    )
}

/// The size of `v` as counted against [`MAX_FIELD_BYTES`] (text bytes, plus
/// [`LIST_ITEM_BYTES`] per item of a list or object), if it is at most `limit`. A loop, not a
/// recursion: records may nest deeply.
pub(crate) fn size_within(v: &Value, limit: usize) -> Option<usize> {
    let scalar = |v: &Value| match v {
        Value::String(s) => s.len(),
        Value::Number(_) => 8,
        _ => 4,
    };
    if !matches!(v, Value::Array(_) | Value::Object(_)) {
        let n = scalar(v);
        return (n <= limit).then_some(n);
    }
    let mut total = 0usize;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(a) => {
                total = total.saturating_add(a.len().saturating_mul(LIST_ITEM_BYTES));
                stack.extend(a.iter());
            }
            Value::Object(m) => {
                for (k, item) in m {
                    total = total.saturating_add(k.len() + LIST_ITEM_BYTES);
                    stack.push(item);
                }
            }
            other => total = total.saturating_add(scalar(other)),
        }
        if total > limit {
            return None;
        }
    }
    Some(total)
}

/// The arguments of one helper call.
pub(crate) struct Call<'a> {
    args: Vec<Option<&'a Value>>,
    hash: Vec<(&'a str, &'a Value)>,
    record: Option<&'a Value>,
    paths: &'a PathCache,
    budget: &'a Budget,
}

impl<'a> Call<'a> {
    fn arg(&self, i: usize) -> Result<&'a Value, String> {
        self.args
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| format!("argument {} is missing", i + 1))
    }

    fn opt(&self, i: usize) -> Option<&'a Value> {
        self.args.get(i).copied().flatten()
    }

    /// Argument `i` as text (read, so charged).
    fn text(&self, i: usize) -> Result<Cow<'a, str>, String> {
        self.text_of(self.arg(i)?)
    }

    /// `v` as text, charged; a list or object too large for a field is refused before it is
    /// written out as JSON.
    fn text_of(&self, v: &'a Value) -> Result<Cow<'a, str>, String> {
        let t = match scalar_text(v) {
            Some(t) => t,
            None => {
                size_within(v, MAX_FIELD_BYTES).ok_or_else(exceeds)?;
                Cow::Owned(v.to_string())
            }
        };
        self.budget.charge(t.len())?;
        Ok(t)
    }

    fn str_arg(&self, i: usize, what: &str) -> Result<&'a str, String> {
        match self.arg(i)? {
            Value::String(s) => {
                self.budget.charge(s.len())?;
                Ok(s)
            }
            other => Err(format!("{what} must be text, got {}", quote_value(other))),
        }
    }

    /// Refuses a result of `n` bytes before it is made.
    fn room(&self, n: usize) -> Result<(), String> {
        if n > MAX_FIELD_BYTES {
            return Err(exceeds());
        }
        Ok(())
    }

    /// A copy of `v` as the result, when it is small enough.
    fn keep(&self, v: &Value) -> Result<Out, String> {
        let n = size_within(v, MAX_FIELD_BYTES).ok_or_else(exceeds)?;
        self.budget.charge(n)?;
        Ok(Out::Val(v.clone()))
    }

    /// Text made by a helper as the result.
    fn made(&self, s: String) -> Result<Out, String> {
        self.room(s.len())?;
        self.budget.charge(s.len())?;
        Ok(Out::Val(Value::String(s)))
    }
}

type HelperFn = fn(&Call<'_>) -> Result<Out, String>;

/// Compiled JSONPaths used by `jsonpath` calls, keyed by their text.
pub(crate) type PathCache = HashMap<String, CompiledPath>;

/// Arity and behaviour of a helper.
#[derive(Debug)]
pub(crate) struct Spec {
    pub name: &'static str,
    pub min: usize,
    pub max: usize,
    /// Accepts missing arguments (only `default`).
    pub tolerant: bool,
    pub hash: bool,
    f: HelperFn,
}

pub(crate) static SPECS: [Spec; 16] = [
    spec("lowercase", 1, 1, |c| {
        let t = c.text(0)?;
        c.room(t.len())?;
        c.made(t.to_lowercase())
    }),
    spec("uppercase", 1, 1, |c| {
        let t = c.text(0)?;
        c.room(t.len())?;
        c.made(t.to_uppercase())
    }),
    spec("trim", 1, 1, |c| {
        let t = c.text(0)?;
        let t = t.trim();
        c.room(t.len())?;
        c.made(t.to_owned())
    }),
    Spec {
        tolerant: true,
        ..spec("default", 2, usize::MAX, default)
    },
    spec("concat", 1, usize::MAX, |c| {
        let mut s = String::new();
        for i in 0..c.args.len() {
            let t = c.text(i)?;
            c.room(s.len() + t.len())?;
            s.push_str(&t);
        }
        c.made(s)
    }),
    spec("replace", 3, 3, |c| {
        let (s, from, to) = (c.text(0)?, c.text(1)?, c.text(2)?);
        if from.is_empty() {
            return Err("FROM must not be empty".into());
        }
        // The size of the result, before making it (counted only when it may grow too large).
        if to.len() > from.len() || s.len() > MAX_FIELD_BYTES {
            let n = s.matches(&*from).count();
            let len = n
                .checked_mul(to.len())
                .and_then(|grown| (s.len() - n * from.len()).checked_add(grown))
                .ok_or_else(exceeds)?;
            c.room(len)?;
        }
        c.made(s.replace(&*from, &to))
    }),
    spec("split", 2, 2, |c| {
        let (s, sep) = (c.text(0)?, c.text(1)?);
        let sep: &str = &sep;
        if sep.is_empty() {
            return Err("SEPARATOR must not be empty".into());
        }
        if s.is_empty() {
            return Ok(Out::Val(Value::Array(vec![])));
        }
        // Stops before the list grows past the limit.
        let mut items = Vec::new();
        let mut size = 0;
        for piece in s.split(sep) {
            size += piece.len() + LIST_ITEM_BYTES;
            c.room(size)?;
            items.push(Value::from(piece));
        }
        c.budget.charge(size)?;
        Ok(Out::Val(Value::Array(items)))
    }),
    spec("first", 1, 1, |c| nth(c, c.arg(0)?, 0)),
    spec("last", 1, 1, |c| nth(c, c.arg(0)?, -1)),
    spec("nth", 2, 2, |c| {
        let i = match c.arg(1)? {
            Value::Number(n) if n.as_i64().is_some() => n.as_i64().unwrap_or_default(),
            Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("INDEX {} is not an integer", quote(s)))?,
            other => {
                return Err(format!("INDEX {} is not an integer", quote_value(other)));
            }
        };
        nth(c, c.arg(0)?, i)
    }),
    spec("join", 2, 2, |c| {
        let sep = c.text(1)?;
        match c.arg(0)? {
            Value::Array(a) => {
                let mut s = String::new();
                for (k, item) in a.iter().enumerate() {
                    let t = c.text_of(item)?;
                    let sep = if k == 0 { "" } else { &*sep };
                    c.room(s.len() + sep.len() + t.len())?;
                    s.push_str(sep);
                    s.push_str(&t);
                }
                c.made(s)
            }
            _ => {
                let t = c.text(0)?;
                c.room(t.len())?;
                c.made(t.into_owned())
            }
        }
    }),
    spec("date_format", 2, 3, |c| {
        let at = read_instant(&c.text(0)?, c.opt(2))?;
        let fmt = c.str_arg(1, "FORMAT")?;
        format_instant(at, fmt).and_then(|s| c.made(s))
    }),
    spec("date_parse", 1, 2, |c| {
        let at = read_instant(&c.text(0)?, c.opt(1))?;
        Ok(Out::Val(
            at.to_rfc3339_opts(SecondsFormat::AutoSi, true).into(),
        ))
    }),
    spec("number_format", 2, 2, |c| {
        let decimals = decimals_arg(c.arg(1)?)?;
        let d = parse_number(&c.text(0)?)?;
        c.made(round_decimal(&d.canonical, decimals))
    }),
    spec("jsonpath", 1, 2, jsonpath),
    Spec {
        hash: true,
        ..spec("lookup_map", 1, 3, lookup_map)
    },
];

const fn spec(name: &'static str, min: usize, max: usize, f: HelperFn) -> Spec {
    Spec {
        name,
        min,
        max,
        tolerant: false,
        hash: false,
        f,
    }
}

/// Handlebars' built-in helpers (left registered).
pub(crate) const BUILTINS: [&str; 17] = [
    "if", "unless", "each", "with", "lookup", "raw", "log", "eq", "ne", "gt", "gte", "lt", "lte",
    "and", "or", "not", "len",
];

pub(crate) fn find_spec(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.name == name)
}

fn default(c: &Call<'_>) -> Result<Out, String> {
    let found = c.args.iter().flatten().find(|v| match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        _ => true,
    });
    match found {
        Some(v) => c.keep(v),
        None => Ok(Out::Missing(
            "default: every argument is missing, null or empty".into(),
        )),
    }
}

fn nth(c: &Call<'_>, list: &Value, i: i64) -> Result<Out, String> {
    let items: &[Value] = match list {
        Value::Array(a) => a,
        other => std::slice::from_ref(other),
    };
    let idx = if i < 0 {
        usize::try_from(i.unsigned_abs())
            .ok()
            .and_then(|b| items.len().checked_sub(b))
    } else {
        usize::try_from(i).ok()
    };
    match idx.and_then(|i| items.get(i)) {
        Some(v) => c.keep(v),
        None if items.is_empty() => Ok(Out::Missing("the list is empty".into())),
        None => Ok(Out::Missing(format!(
            "no item {i} in a list of {}",
            items.len()
        ))),
    }
}

pub(crate) fn decimals_arg(v: &Value) -> Result<usize, String> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|d| *d <= 20)
        .map(|d| d as usize)
        .ok_or_else(|| format!("DECIMALS must be a whole number from 0 to 20, got {v}"))
}

/// Rounds a canonical decimal string to `decimals` places, half away from zero.
pub(crate) fn round_decimal(canonical: &str, decimals: usize) -> String {
    let (neg, body) = match canonical.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, canonical),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    let keep = int.len() + decimals;
    let round_up = digits.get(keep).is_some_and(|d| *d >= b'5');
    digits.resize(keep, b'0');
    let mut int_len = int.len();
    if round_up {
        let mut i = keep;
        loop {
            if i == 0 {
                digits.insert(0, b'1');
                int_len += 1;
                break;
            }
            i -= 1;
            if digits[i] == b'9' {
                digits[i] = b'0';
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let all_zero = digits.iter().all(|d| *d == b'0');
    let mut out = String::with_capacity(digits.len() + 2);
    if neg && !all_zero {
        out.push('-');
    }
    out.push_str(std::str::from_utf8(&digits[..int_len]).unwrap_or("0"));
    if decimals > 0 {
        out.push('.');
        out.push_str(std::str::from_utf8(&digits[int_len..]).unwrap_or(""));
    }
    out
}

/// Checks a strftime format for output; `Err` names the problem.
pub(crate) fn check_strftime(fmt: &str) -> Result<(), String> {
    if StrftimeItems::new(fmt).any(|i| matches!(i, Item::Error)) {
        Err(format!("{} is not a valid strftime format", quote(fmt)))
    } else {
        Ok(())
    }
}

fn format_instant(at: DateTime<Utc>, fmt: &str) -> Result<String, String> {
    /// Stops writing once the text would be larger than a field may be.
    struct Capped {
        s: String,
        full: bool,
    }
    impl std::fmt::Write for Capped {
        fn write_str(&mut self, part: &str) -> std::fmt::Result {
            if self.s.len() + part.len() > MAX_FIELD_BYTES {
                self.full = true;
                return Err(std::fmt::Error);
            }
            self.s.push_str(part);
            Ok(())
        }
    }
    // Literal formats are checked at compile time; an invalid format fails here, not panics.
    let mut out = Capped {
        s: String::new(),
        full: false,
    };
    match write!(out, "{}", at.format(fmt)) {
        Ok(()) => Ok(out.s),
        Err(_) if out.full => Err(exceeds()),
        Err(_) => Err(format!("{} is not a valid strftime format", quote(fmt))),
    }
}

/// Reads a date or instant: a number is epoch milliseconds; text is RFC 3339, YYYY-MM-DD or
/// epoch milliseconds, or is read with `input` (`epoch_ms`, `epoch_s` or a strftime format).
pub(crate) fn read_instant(raw: &str, input: Option<&Value>) -> Result<DateTime<Utc>, String> {
    let input = match input {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            return Err(format!(
                "INPUT_FORMAT must be text, got {}",
                quote_value(other)
            ));
        }
    };
    let bad = || match input {
        Some(f) => format!(
            "{} does not match the input format {}",
            quote(raw),
            quote(f)
        ),
        None => format!(
            "{} is not a date (expected RFC 3339, YYYY-MM-DD or epoch milliseconds; give an \
             input format for others)",
            quote(raw)
        ),
    };
    let s = raw.trim();
    match input {
        None => match parse_when(s) {
            Some(When::Day(d)) => Ok(d.and_time(NaiveTime::MIN).and_utc()),
            Some(When::At(t)) => Ok(t),
            None => Err(bad()),
        },
        Some("epoch_ms") => s
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_millis)
            .ok_or_else(bad),
        Some("epoch_s") => s
            .parse::<i64>()
            .ok()
            .and_then(|secs| DateTime::from_timestamp(secs, 0))
            .ok_or_else(bad),
        Some(fmt) => {
            if let Ok(t) = DateTime::parse_from_str(s, fmt) {
                return Ok(t.with_timezone(&Utc));
            }
            if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
                return Ok(t.and_utc());
            }
            NaiveDate::parse_from_str(s, fmt)
                .map(|d| d.and_time(NaiveTime::MIN).and_utc())
                .map_err(|_| bad())
        }
    }
}

/// Checks an input format given as a literal (`epoch_ms`, `epoch_s` or strftime).
pub(crate) fn check_input_format(fmt: &str) -> Result<(), String> {
    if fmt == "epoch_ms" || fmt == "epoch_s" {
        Ok(())
    } else {
        check_strftime(fmt)
    }
}

fn jsonpath(c: &Call<'_>) -> Result<Out, String> {
    let (target, path) = if c.args.len() == 2 {
        (c.arg(0)?, c.str_arg(1, "PATH")?)
    } else {
        let record = c.record.ok_or("no record in the context")?;
        (record, c.str_arg(0, "PATH")?)
    };
    let compiled;
    let p = match c.paths.get(path) {
        Some(p) => p,
        None => {
            compiled = CompiledPath::compile(path)
                .map_err(|e| format!("{} is not a valid JSONPath: {}", quote(path), e.message))?;
            &compiled
        }
    };
    if !p.is_simple() {
        // A query may visit every value of its target.
        let n = size_within(target, MAX_FIELD_WORK_BYTES).unwrap_or(usize::MAX);
        c.budget.charge(n)?;
    }
    match p.find(target) {
        Found::Nothing => Ok(Out::Missing(format!(
            "jsonpath {} matched nothing",
            crate::limits::cut(path, 60)
        ))),
        Found::One(v) => c.keep(v),
        Found::Many(vs) => {
            let mut total = 0usize;
            for v in &vs {
                let left = MAX_FIELD_BYTES.saturating_sub(total + LIST_ITEM_BYTES);
                let n = size_within(v, left).ok_or_else(exceeds)?;
                total += n + LIST_ITEM_BYTES;
            }
            c.budget.charge(total)?;
            Ok(Out::Val(Value::Array(vs.into_iter().cloned().collect())))
        }
    }
}

fn lookup_map(c: &Call<'_>) -> Result<Out, String> {
    let key = c.text(0)?;
    let mut table: Option<&serde_json::Map<String, Value>> = None;
    let mut fallback: Option<&Value> = None;
    for i in 1..c.args.len() {
        match c.arg(i)? {
            Value::Object(m) if i == 1 && table.is_none() => table = Some(m),
            v if fallback.is_none() => fallback = Some(v),
            _ => return Err("takes VALUE [TABLE] [FALLBACK] KEY=VALUE...".into()),
        }
    }
    let hit = table
        .and_then(|t| t.get(&*key))
        .or_else(|| c.hash.iter().find(|(k, _)| *k == key).map(|(_, v)| *v));
    if let Some(v) = hit.or(fallback) {
        return c.keep(v);
    }
    if table.is_none() && c.hash.is_empty() {
        return Err("no table: give KEY=VALUE pairs or an object".into());
    }
    const SHOW: usize = 10;
    let all = c.hash.len() + table.map_or(0, serde_json::Map::len);
    let mut keys: Vec<&str> = c.hash.iter().map(|(k, _)| *k).take(SHOW).collect();
    if let Some(t) = table {
        keys.extend(t.keys().map(String::as_str).take(SHOW - keys.len()));
    }
    let mut shown = keys
        .iter()
        .map(|k| crate::limits::cut(k, 60))
        .collect::<Vec<_>>()
        .join(", ");
    if all > keys.len() {
        shown.push_str(&format!(", … ({all} in all)"));
    }
    Ok(Out::Missing(format!(
        "lookup_map: no entry for {} (keys: {shown})",
        quote(&key)
    )))
}

/// Calls a helper; an error message starts with the helper's name.
pub(crate) fn call_spec<'a>(
    spec: &'static Spec,
    args: Vec<Option<&'a Value>>,
    hash: Vec<(&'a str, &'a Value)>,
    record: Option<&'a Value>,
    paths: &'a PathCache,
    budget: &'a Budget,
) -> Result<Out, String> {
    let call = Call {
        args,
        hash,
        record,
        paths,
        budget,
    };
    (spec.f)(&call).map_err(|m| format!("{}: {m}", spec.name))
}

/// A [`Spec`] registered with Handlebars.
struct Adapter {
    spec: &'static Spec,
    paths: Arc<PathCache>,
}

impl Adapter {
    fn run(&self, h: &Helper<'_>, ctx: &HbContext) -> Result<Out, RenderError> {
        let name = self.spec.name;
        let mut args = Vec::with_capacity(h.params().len());
        for (i, p) in h.params().iter().enumerate() {
            if p.is_value_missing() {
                if !self.spec.tolerant {
                    return Err(match p.relative_path() {
                        Some(path) => RenderError::strict_error(Some(path)),
                        None => RenderErrorReason::Other(format!(
                            "{name}: argument {} has no value",
                            i + 1
                        ))
                        .into(),
                    });
                }
                args.push(None);
            } else {
                args.push(Some(p.value()));
            }
        }
        let mut hash = Vec::with_capacity(h.hash().len());
        for (k, p) in h.hash() {
            if p.is_value_missing() {
                return Err(RenderError::strict_error(p.relative_path()));
            }
            hash.push((*k, p.value()));
        }
        let record = ctx.data().get("record");
        RENDER_BUDGET
            .with(|budget| {
                budget.in_time()?;
                call_spec(self.spec, args, hash, record, &self.paths, budget)
            })
            .map_err(|m| RenderErrorReason::Other(m).into())
    }
}

impl HelperDef for Adapter {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc HbContext,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        match self.run(h, ctx)? {
            Out::Val(v) => Ok(ScopedJson::Derived(v)),
            Out::Missing(_) => Ok(ScopedJson::Missing),
        }
    }

    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc HbContext,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        match self.run(h, ctx)? {
            Out::Val(v) => {
                out.write(&text_for_output(&v))?;
                Ok(())
            }
            Out::Missing(why) => Err(RenderErrorReason::NestedError(Box::new(NoValue(why))).into()),
        }
    }
}

/// How a helper's result is written into a template: like Handlebars renders values.
fn text_for_output(v: &Value) -> String {
    use handlebars::JsonRender;
    v.render()
}

/// Handlebars' `{{#each}}` (handlebars-rust 6.4, MIT; the same behaviour: `@index`, `@key`,
/// `@first`, `@last`, block parameters, `{{else}}`), with each iteration spent from the field's
/// [`Budget`]: loops nested around large lists stop at [`MAX_FIELD_ITERATIONS`].
struct Each;

impl HelperDef for Each {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc HbContext,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let value = h
            .param(0)
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("each", 0))?;
        let Some(t) = h.template() else {
            return Ok(());
        };
        let spend = || {
            RENDER_BUDGET
                .with(Budget::iterate)
                .map_err(|m| RenderError::from(RenderErrorReason::Other(m)))
        };
        let base_path = value.context_path();
        let new_block = || {
            let mut block = BlockContext::new();
            match base_path {
                Some(p) => block.base_path_mut().clone_from(p),
                None => block.set_base_value(value.value().clone()),
            }
            block
        };
        // The value of one iteration: its path under the list's, or (for a computed list) the
        // item itself.
        let point = |block: &mut BlockContext<'rc>, key: String, first: bool, v: &Value| {
            if let Some(p) = base_path {
                if first {
                    let mut path = Vec::with_capacity(p.len() + 1);
                    path.extend_from_slice(p);
                    path.push(key);
                    *block.base_path_mut() = path;
                } else if let Some(last) = block.base_path_mut().last_mut() {
                    *last = key;
                }
            } else {
                block.set_base_value(v.clone());
            }
        };
        let params = |block: &mut BlockContext<'rc>, k: &Value, v: &Value| -> HelperResult {
            if let Some(name) = h.block_param() {
                let mut params = BlockParams::new();
                if base_path.is_some() {
                    params.add_path(name, Vec::new())?;
                } else {
                    params.add_value(name, v.clone())?;
                }
                block.set_block_params(params);
            } else if let Some((name, key)) = h.block_param_pair() {
                let mut params = BlockParams::new();
                if base_path.is_some() {
                    params.add_path(name, Vec::new())?;
                } else {
                    params.add_value(name, v.clone())?;
                }
                params.add_value(key, k.clone())?;
                block.set_block_params(params);
            }
            Ok(())
        };
        match value.value() {
            Value::Array(list) if !list.is_empty() || h.inverse().is_none() => {
                rc.push_block(new_block());
                let len = list.len();
                for (i, v) in list.iter().enumerate() {
                    spend()?;
                    if let Some(block) = rc.block_mut() {
                        let index = Value::from(i);
                        block.set_local_var("first", Value::Bool(i == 0));
                        block.set_local_var("last", Value::Bool(i + 1 == len));
                        block.set_local_var("index", index.clone());
                        point(block, i.to_string(), i == 0, v);
                        params(block, &index, v)?;
                    }
                    t.render(r, ctx, rc, out)?;
                }
                rc.pop_block();
                Ok(())
            }
            Value::Object(obj) if !obj.is_empty() || h.inverse().is_none() => {
                rc.push_block(new_block());
                let len = obj.len();
                for (i, (k, v)) in obj.iter().enumerate() {
                    spend()?;
                    if let Some(block) = rc.block_mut() {
                        let key = Value::String(k.clone());
                        block.set_local_var("first", Value::Bool(i == 0));
                        block.set_local_var("last", Value::Bool(i + 1 == len));
                        block.set_local_var("key", key.clone());
                        block.set_local_var("index", Value::from(i));
                        point(block, k.clone(), i == 0, v);
                        params(block, &key, v)?;
                    }
                    t.render(r, ctx, rc, out)?;
                }
                rc.pop_block();
                Ok(())
            }
            _ => match h.inverse() {
                Some(inverse) => inverse.render(r, ctx, rc, out),
                None if r.strict_mode() => Err(RenderError::strict_error(value.relative_path())),
                None => Ok(()),
            },
        }
    }
}

/// A Handlebars registry: strict, no HTML escaping, our helpers, no partials from disk.
pub(crate) fn registry(paths: Arc<PathCache>) -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_helper("each", Box::new(Each));
    for spec in &SPECS {
        hb.register_helper(
            spec.name,
            Box::new(Adapter {
                spec,
                paths: paths.clone(),
            }),
        );
    }
    hb
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, record: Value) -> Result<String, String> {
        let hb = registry(Arc::new(PathCache::new()));
        hb.render_template(t, &json!({ "record": record }))
            .map_err(|e| e.reason().to_string())
    }

    #[test]
    fn docs_and_specs_agree() {
        assert_eq!(DOCS.len(), SPECS.len());
        for (d, s) in DOCS.iter().zip(SPECS.iter()) {
            assert_eq!(d.name, s.name);
            assert!(d.example.contains(d.name), "{}", d.name);
            assert!(d.usage.starts_with(d.name));
        }
    }

    #[test]
    fn every_documented_example_renders_its_result() {
        let record: Value = serde_json::from_str(EXAMPLE_RECORD).unwrap();
        for d in helpers_doc() {
            assert_eq!(
                render(d.example, record.clone()).as_deref(),
                Ok(d.result),
                "{}",
                d.name
            );
        }
    }

    #[test]
    fn case_and_trim() {
        assert_eq!(
            render("{{lowercase record.a}}", json!({"a": "ÄB"})).unwrap(),
            "äb"
        );
        assert_eq!(
            render("{{uppercase record.a}}", json!({"a": "straße"})).unwrap(),
            "STRASSE"
        );
        assert_eq!(
            render("{{uppercase record.a}}", json!({"a": 12})).unwrap(),
            "12"
        );
        assert_eq!(
            render("<{{trim record.a}}>", json!({"a": "\t x \n"})).unwrap(),
            "<x>"
        );
    }

    #[test]
    fn default_helper() {
        let r = json!({"a": null, "b": "", "c": "C", "n": 0});
        assert_eq!(
            render("{{default record.a record.b record.c}}", r.clone()).unwrap(),
            "C"
        );
        assert_eq!(
            render("{{default record.zz \"x\"}}", r.clone()).unwrap(),
            "x"
        );
        assert_eq!(
            render("{{default record.n \"x\"}}", r.clone()).unwrap(),
            "0"
        );
        let e = render("{{default record.a record.b}}", r).unwrap_err();
        assert!(e.contains("every argument is missing"), "{e}");
    }

    #[test]
    fn concat_replace() {
        let r = json!({"a": "x", "n": 1.5, "t": true});
        assert_eq!(
            render("{{concat record.a \"-\" record.n record.t}}", r.clone()).unwrap(),
            "x-1.5true"
        );
        assert_eq!(
            render("{{replace \"a.b.c\" \".\" \"/\"}}", r.clone()).unwrap(),
            "a/b/c"
        );
        assert!(
            render("{{replace \"abc\" \"\" \"x\"}}", r)
                .unwrap_err()
                .contains("FROM must not be empty")
        );
    }

    #[test]
    fn split_and_pick() {
        let r = json!({"name": "Ada King Lovelace", "empty": "", "list": [1, 2, 3]});
        assert_eq!(
            render("{{first (split record.name \" \")}}", r.clone()).unwrap(),
            "Ada"
        );
        assert_eq!(
            render("{{last (split record.name \" \")}}", r.clone()).unwrap(),
            "Lovelace"
        );
        assert_eq!(
            render("{{nth (split record.name \" \") 1}}", r.clone()).unwrap(),
            "King"
        );
        assert_eq!(render("{{nth record.list -1}}", r.clone()).unwrap(), "3");
        assert_eq!(render("{{nth record.list \"0\"}}", r.clone()).unwrap(), "1");
        assert_eq!(render("{{first \"solo\"}}", r.clone()).unwrap(), "solo");
        assert_eq!(
            render("{{len (split record.empty \",\")}}", r.clone()).unwrap(),
            "0"
        );
        let e = render("{{first (split record.empty \",\")}}", r.clone()).unwrap_err();
        assert!(e.contains("the list is empty"), "{e}");
        let e = render("{{nth record.list 7}}", r.clone()).unwrap_err();
        assert!(e.contains("no item 7 in a list of 3"), "{e}");
        assert_eq!(
            render("{{default (nth record.list 7) \"none\"}}", r.clone()).unwrap(),
            "none"
        );
        assert!(
            render("{{nth record.list \"x\"}}", r.clone())
                .unwrap_err()
                .contains("not an integer")
        );
        assert!(
            render("{{split record.name \"\"}}", r)
                .unwrap_err()
                .contains("SEPARATOR")
        );
    }

    #[test]
    fn join_helper() {
        let r = json!({"l": ["a", 1, true, null], "s": "x"});
        assert_eq!(
            render("{{join record.l \"|\"}}", r.clone()).unwrap(),
            "a|1|true|"
        );
        assert_eq!(render("{{join record.s \"|\"}}", r).unwrap(), "x");
    }

    #[test]
    fn date_helpers() {
        let r = json!({
            "iso": "2024-05-01T10:30:00+02:00", "day": "2024-05-01", "ms": 1714559400000i64,
            "ms_text": "1714559400000", "s": 1714559400, "de": "01.05.2024 08:30", "bad": "soon"
        });
        let f = |t: &str| render(t, r.clone());
        assert_eq!(
            f("{{date_format record.iso \"%Y-%m-%d %H:%M\"}}").unwrap(),
            "2024-05-01 08:30"
        );
        assert_eq!(
            f("{{date_format record.day \"%d/%m/%Y\"}}").unwrap(),
            "01/05/2024"
        );
        assert_eq!(f("{{date_format record.ms \"%H:%M\"}}").unwrap(), "10:30");
        assert_eq!(
            f("{{date_format record.ms_text \"%H:%M\"}}").unwrap(),
            "10:30"
        );
        assert_eq!(
            f("{{date_format record.s \"%H:%M\" \"epoch_s\"}}").unwrap(),
            "10:30"
        );
        assert_eq!(
            f("{{date_format record.ms \"%s\" \"epoch_ms\"}}").unwrap(),
            "1714559400"
        );
        assert_eq!(
            f("{{date_parse record.de \"%d.%m.%Y %H:%M\"}}").unwrap(),
            "2024-05-01T08:30:00Z"
        );
        assert_eq!(
            f("{{date_parse record.iso}}").unwrap(),
            "2024-05-01T08:30:00Z"
        );
        assert_eq!(
            f("{{date_parse \"2024-05-01 10:00 +0200\" \"%Y-%m-%d %H:%M %z\"}}").unwrap(),
            "2024-05-01T08:00:00Z"
        );
        assert!(
            f("{{date_parse record.bad}}")
                .unwrap_err()
                .contains("\"soon\" is not a date")
        );
        assert!(
            f("{{date_parse record.de \"%Y\"}}")
                .unwrap_err()
                .contains("does not match the input format")
        );
        assert!(
            f("{{date_format record.day \"%Q\"}}")
                .unwrap_err()
                .contains("not a valid strftime format")
        );
    }

    #[test]
    fn number_format_helper() {
        let f = |v: Value, d: &str| {
            render(
                &format!("{{{{number_format record.v {d}}}}}"),
                json!({ "v": v }),
            )
        };
        assert_eq!(f(json!(12.5), "2").unwrap(), "12.50");
        assert_eq!(f(json!("1.005"), "2").unwrap(), "1.01");
        assert_eq!(f(json!("-2.5"), "0").unwrap(), "-3");
        assert_eq!(f(json!(9.999), "2").unwrap(), "10.00");
        assert_eq!(f(json!("-0.001"), "2").unwrap(), "0.00");
        assert_eq!(f(json!(7), "0").unwrap(), "7");
        assert!(
            f(json!("abc"), "2")
                .unwrap_err()
                .contains("\"abc\" is not a number")
        );
        assert!(f(json!(1), "21").unwrap_err().contains("DECIMALS"));
    }

    #[test]
    fn round_decimal_cases() {
        assert_eq!(round_decimal("0.5", 0), "1");
        assert_eq!(round_decimal("99.95", 1), "100.0");
        assert_eq!(round_decimal("0", 3), "0.000");
        assert_eq!(round_decimal("-1.234", 2), "-1.23");
    }

    #[test]
    fn jsonpath_helper() {
        let r = json!({"lines": [{"sku": "A"}, {"sku": "B"}], "obj": {"k": 1}});
        assert_eq!(
            render("{{jsonpath \"$.lines[0].sku\"}}", r.clone()).unwrap(),
            "A"
        );
        assert_eq!(
            render("{{join (jsonpath \"$.lines[*].sku\") \",\"}}", r.clone()).unwrap(),
            "A,B"
        );
        assert_eq!(
            render("{{jsonpath record.obj \"$.k\"}}", r.clone()).unwrap(),
            "1"
        );
        let e = render("{{jsonpath \"$.nope\"}}", r.clone()).unwrap_err();
        assert!(e.contains("jsonpath $.nope matched nothing"), "{e}");
        assert_eq!(
            render("{{default (jsonpath \"$.nope\") \"-\"}}", r.clone()).unwrap(),
            "-"
        );
        assert!(
            render("{{jsonpath \"$[\"}}", r)
                .unwrap_err()
                .contains("not a valid JSONPath")
        );
    }

    #[test]
    fn lookup_map_helper() {
        let r = json!({"c": "ENT", "x": "XX", "n": 1, "table": {"ENT": "enterprise"}});
        let f = |t: &str| render(t, r.clone());
        assert_eq!(
            f("{{lookup_map record.c SMB=\"small\" ENT=\"enterprise\"}}").unwrap(),
            "enterprise"
        );
        assert_eq!(
            f("{{lookup_map record.x \"other\" SMB=\"small\"}}").unwrap(),
            "other"
        );
        assert_eq!(
            f("{{lookup_map record.c record.table}}").unwrap(),
            "enterprise"
        );
        assert_eq!(
            f("{{lookup_map record.x record.table \"?\"}}").unwrap(),
            "?"
        );
        assert_eq!(
            f("{{lookup_map record.n a=\"b\" 1=\"one\"}}").unwrap(),
            "one"
        );
        let e = f("{{lookup_map record.x SMB=\"small\"}}").unwrap_err();
        assert!(e.contains("no entry for \"XX\" (keys: SMB)"), "{e}");
        assert!(
            f("{{lookup_map record.x}}")
                .unwrap_err()
                .contains("no table")
        );
        // The built-in `lookup` still works.
        assert_eq!(f("{{lookup record.table \"ENT\"}}").unwrap(), "enterprise");
    }

    #[test]
    fn strict_arguments() {
        let e = render("{{lowercase record.missing}}", json!({})).unwrap_err();
        assert!(e.contains("record.missing"), "{e}");
        let e = render("{{lowercase (jsonpath \"$.x\")}}", json!({})).unwrap_err();
        assert!(e.contains("lowercase: argument 1 has no value"), "{e}");
        let e = render("{{lookup_map record.c A=record.zz}}", json!({"c": "A"})).unwrap_err();
        assert!(e.contains("record.zz"), "{e}");
    }

    #[test]
    fn each_behaves_like_the_builtin() {
        let ours = registry(Arc::new(PathCache::new()));
        let mut builtin = Handlebars::new();
        builtin.set_strict_mode(true);
        builtin.register_escape_fn(handlebars::no_escape);
        let data = json!({ "record": {
            "l": ["a", {"k": "v"}, 3], "o": {"x": 1, "y": [2]}, "e": [], "eo": {}, "s": "t",
            "n": [[1, 2], [3]]
        }});
        for t in [
            "{{#each record.l}}{{@index}}{{@first}}{{@last}}:{{this}}|{{/each}}",
            "{{#each record.o}}{{@key}}={{this}}{{@index}}{{@last}};{{/each}}",
            "{{#each record.l as |v i|}}{{i}}{{v}}{{/each}}",
            "{{#each record.o as |v k|}}{{k}}{{v}}{{/each}}",
            "{{#each record.e}}x{{else}}empty{{/each}}{{#each record.eo}}x{{else}}none{{/each}}",
            "{{#each record.e}}x{{/each}}",
            "{{#each record.n}}{{#each this}}{{../../record.s}}{{this}}{{@index}}{{/each}}/{{/each}}",
            "{{#each (split \"a b\" \" \")}}[{{this}}]{{/each}}",
            "{{#each record.l}}{{#if @first}}first {{/if}}{{k}}{{/each}}",
            "{{#each record.s}}x{{else}}not a list{{/each}}",
            "{{#each record.missing}}x{{/each}}",
            "{{#each record.s}}x{{/each}}",
        ] {
            let a = ours
                .render_template(t, &data)
                .map_err(|e| e.reason().to_string());
            // The built-in has no `split`; give it the list.
            let t2 = t.replace("(split \"a b\" \" \")", "record.ab");
            let mut d2 = data.clone();
            d2["record"]["ab"] = json!(["a", "b"]);
            let b = builtin
                .render_template(&t2, &d2)
                .map_err(|e| e.reason().to_string());
            assert_eq!(a, b, "{t}");
        }
    }

    #[test]
    fn no_escaping() {
        assert_eq!(
            render(
                "{{record.a}} {{lowercase record.a}}",
                json!({"a": "A&B<>\""})
            )
            .unwrap(),
            "A&B<>\" a&b<>\""
        );
    }
}
