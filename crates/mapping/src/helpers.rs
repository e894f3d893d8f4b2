//! Template helpers: plain functions over JSON values, registered with Handlebars through one
//! adapter that enforces strict mode on their arguments.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use handlebars::{
    Context as HbContext, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext,
    RenderError, RenderErrorReason, ScopedJson,
};
use serde_json::Value;

use crate::convert::{When, parse_number, parse_when, quote, scalar_text};
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

/// The arguments of one helper call.
pub(crate) struct Call<'a> {
    args: Vec<Option<&'a Value>>,
    hash: Vec<(&'a str, &'a Value)>,
    record: Option<&'a Value>,
    paths: &'a PathCache,
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

    fn text(&self, i: usize) -> Result<Cow<'a, str>, String> {
        self.arg(i).map(text_cow)
    }

    fn str_arg(&self, i: usize, what: &str) -> Result<&'a str, String> {
        match self.arg(i)? {
            Value::String(s) => Ok(s),
            other => Err(format!("{what} must be text, got {other}")),
        }
    }
}

/// A value as text: scalars as a template renders them, lists and objects as JSON.
pub(crate) fn text(v: &Value) -> String {
    text_cow(v).into_owned()
}

fn text_cow(v: &Value) -> Cow<'_, str> {
    scalar_text(v).unwrap_or_else(|| Cow::Owned(v.to_string()))
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
        Ok(Out::Val(c.text(0)?.to_lowercase().into()))
    }),
    spec("uppercase", 1, 1, |c| {
        Ok(Out::Val(c.text(0)?.to_uppercase().into()))
    }),
    spec("trim", 1, 1, |c| Ok(Out::Val(c.text(0)?.trim().into()))),
    Spec {
        tolerant: true,
        ..spec("default", 2, usize::MAX, default)
    },
    spec("concat", 1, usize::MAX, |c| {
        let mut s = String::new();
        for i in 0..c.args.len() {
            s.push_str(&c.text(i)?);
        }
        Ok(Out::Val(s.into()))
    }),
    spec("replace", 3, 3, |c| {
        let (s, from, to) = (c.text(0)?, c.text(1)?, c.text(2)?);
        if from.is_empty() {
            return Err("FROM must not be empty".into());
        }
        Ok(Out::Val(s.replace(&*from, &to).into()))
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
        Ok(Out::Val(s.split(sep).map(Value::from).collect()))
    }),
    spec("first", 1, 1, |c| nth(c.arg(0)?, 0)),
    spec("last", 1, 1, |c| nth(c.arg(0)?, -1)),
    spec("nth", 2, 2, |c| {
        let i = match c.arg(1)? {
            Value::Number(n) if n.as_i64().is_some() => n.as_i64().unwrap_or_default(),
            Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("INDEX {} is not an integer", quote(s)))?,
            other => return Err(format!("INDEX {other} is not an integer")),
        };
        nth(c.arg(0)?, i)
    }),
    spec("join", 2, 2, |c| {
        let sep = c.text(1)?;
        let s = match c.arg(0)? {
            Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(&sep),
            other => text(other),
        };
        Ok(Out::Val(s.into()))
    }),
    spec("date_format", 2, 3, |c| {
        let at = read_instant(c.arg(0)?, c.opt(2))?;
        let fmt = c.str_arg(1, "FORMAT")?;
        format_instant(at, fmt).map(|s| Out::Val(s.into()))
    }),
    spec("date_parse", 1, 2, |c| {
        let at = read_instant(c.arg(0)?, c.opt(1))?;
        Ok(Out::Val(
            at.to_rfc3339_opts(SecondsFormat::AutoSi, true).into(),
        ))
    }),
    spec("number_format", 2, 2, |c| {
        let decimals = decimals_arg(c.arg(1)?)?;
        let v = c.arg(0)?;
        let d = parse_number(&text(v))?;
        Ok(Out::Val(round_decimal(&d.canonical, decimals).into()))
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
    Ok(match found {
        Some(v) => Out::Val((*v).clone()),
        None => Out::Missing("default: every argument is missing, null or empty".into()),
    })
}

fn nth(list: &Value, i: i64) -> Result<Out, String> {
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
    Ok(match idx.and_then(|i| items.get(i)) {
        Some(v) => Out::Val(v.clone()),
        None if items.is_empty() => Out::Missing("the list is empty".into()),
        None => Out::Missing(format!("no item {i} in a list of {}", items.len())),
    })
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
    // Literal formats are checked at compile time; an invalid format fails here, not panics.
    let mut s = String::new();
    write!(s, "{}", at.format(fmt))
        .map_err(|_| format!("{} is not a valid strftime format", quote(fmt)))?;
    Ok(s)
}

/// Reads a date or instant: a number is epoch milliseconds; text is RFC 3339, YYYY-MM-DD or
/// epoch milliseconds, or is read with `input` (`epoch_ms`, `epoch_s` or a strftime format).
pub(crate) fn read_instant(v: &Value, input: Option<&Value>) -> Result<DateTime<Utc>, String> {
    let raw = text(v);
    let input = match input {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => return Err(format!("INPUT_FORMAT must be text, got {other}")),
    };
    let bad = || match input {
        Some(f) => format!(
            "{} does not match the input format {}",
            quote(&raw),
            quote(f)
        ),
        None => format!(
            "{} is not a date (expected RFC 3339, YYYY-MM-DD or epoch milliseconds; give an \
             input format for others)",
            quote(&raw)
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
    Ok(match p.find(target) {
        Found::Nothing => Out::Missing(format!("jsonpath {path} matched nothing")),
        Found::One(v) => Out::Val(v.clone()),
        Found::Many(vs) => Out::Val(Value::Array(vs.into_iter().cloned().collect())),
    })
}

fn lookup_map(c: &Call<'_>) -> Result<Out, String> {
    let key = text(c.arg(0)?);
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
        .and_then(|t| t.get(&key))
        .or_else(|| c.hash.iter().find(|(k, _)| *k == key).map(|(_, v)| *v));
    if let Some(v) = hit.or(fallback) {
        return Ok(Out::Val(v.clone()));
    }
    if table.is_none() && c.hash.is_empty() {
        return Err("no table: give KEY=VALUE pairs or an object".into());
    }
    let mut keys: Vec<&str> = c.hash.iter().map(|(k, _)| *k).collect();
    if let Some(t) = table {
        keys.extend(t.keys().map(String::as_str));
    }
    Ok(Out::Missing(format!(
        "lookup_map: no entry for {} (keys: {})",
        quote(&key),
        keys.join(", ")
    )))
}

/// Calls a helper; an error message starts with the helper's name.
pub(crate) fn call_spec<'a>(
    spec: &'static Spec,
    args: Vec<Option<&'a Value>>,
    hash: Vec<(&'a str, &'a Value)>,
    record: Option<&'a Value>,
    paths: &'a PathCache,
) -> Result<Out, String> {
    let call = Call {
        args,
        hash,
        record,
        paths,
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
        call_spec(self.spec, args, hash, ctx.data().get("record"), &self.paths)
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

/// A Handlebars registry: strict, no HTML escaping, our helpers, no partials from disk.
pub(crate) fn registry(paths: Arc<PathCache>) -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
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
