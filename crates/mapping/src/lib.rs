//! Compiled field mappings: one source record (JSON) in, a target's typed fields out.
//!
//! A flow's `mapping:` block names each target field and how to fill it: a Handlebars template
//! (a plain string), or an object with one of `template`, `path` (JSONPath, RFC 9535) or
//! `value`, plus a `type` and checks ([`FieldSpec`]). [`Mapping::compile`] compiles everything
//! once at load time (a bad template or path is a [`CompileError`] naming the field, with a
//! byte offset inside the string where known); [`Mapping::apply`] maps one record and returns
//! either every target field or every [`FieldError`] of that record.
//!
//! ```
//! use indexmap::IndexMap;
//! use rivulet_mapping::{Context, FieldSpec, FieldType, Mapping, OutputMode};
//! use serde_json::json;
//!
//! let mut fields = IndexMap::new();
//! fields.insert("domain".to_owned(), FieldSpec::template("{{lowercase record.website}}"));
//! fields.insert("numberofemployees".to_owned(), FieldSpec::path("$.employees", FieldType::Number));
//! let mapping = Mapping::compile(&fields).unwrap();
//!
//! let ctx = Context::new("companies-from-erp", "run-1", chrono::Utc::now());
//! let out = mapping
//!     .apply(&json!({"website": "Example.COM", "employees": 12}), &ctx, OutputMode::Wire)
//!     .unwrap();
//! assert_eq!(out["domain"], json!("example.com"));
//! assert_eq!(out["numberofemployees"], json!("12"));
//!
//! let errs = mapping
//!     .apply(&json!({"website": "x", "employees": "abc"}), &ctx, OutputMode::Wire)
//!     .unwrap_err();
//! assert_eq!(
//!     errs[0].to_string(),
//!     r#"field numberofemployees: "abc" is not a number (from $.employees)"#
//! );
//! ```
//!
//! # Templates
//!
//! Handlebars in strict mode (a missing variable is an error naming the field and the path,
//! unless the field has a `default`; a `null` one renders as empty text, see below), without
//! HTML escaping, without partials. A template sees
//! `record` (the source record), `flow` (the flow name), `run.id`, `run.started_at` and `now`
//! (RFC 3339, UTC). The helpers are listed by [`helpers_doc`]. A template that is exactly one
//! `{{record.a.b}}` is looked up directly, without the template engine; it differs from a
//! rendered template only in keeping a list or object value whole (so a list can fill a
//! `multi_enumeration`, and is an error for other types instead of rendering as `[a, b]`).
//!
//! # Missing values and nulls
//!
//! A value is *missing* when a JSONPath matches nothing or a template variable does not exist;
//! it is *null* when the record holds `null` there (HubSpot returns `null` for a property
//! without a value). For `default` and `required`, null counts as missing:
//!
//! - `default` applies when the value is missing **or null**: a `path` whose one match is
//!   `null`; a template that is one `{{record.a.b}}` whose value is `null`; any other template
//!   that writes out a null variable (`{{record.a}} {{record.b}}`) or hands one to one of this
//!   crate's helpers (`{{lowercase record.a}}`, `{{jsonpath "$.a"}}`): the whole field takes
//!   the default, as it does for a missing variable.
//! - `required: true` fails the record on both, naming the null:
//!   `field email: is required but record.properties.email is null (from …)`, or for a path
//!   `is required but the value is null`.
//! - With neither, a null is the empty value, as it always was: a template renders it as empty
//!   text (`"{{record.a}} {{record.b}}"` with `b` null gives `"x "`), a path gives the empty
//!   value (`""` in Wire mode, which clears the HubSpot property). A missing template variable
//!   is still an error (strict mode) and a path that matches nothing still leaves the field
//!   out.
//! - What a template decides itself stays its business: the arguments of the `default` helper
//!   (which skips nulls), those of Handlebars' built-in helpers (`eq`, `lookup`, …) and
//!   everything inside a block (`{{#if record.a}}` is false for null; inside `{{#each}}` a null
//!   renders as empty text) never make the field's `default` apply.
//! - An empty string is a value, not a null: `default` does not apply to `""`, and `required`
//!   fails on it (`is empty but the field is required`).
//!
//! # Values
//!
//! A value is first read as text the way a template renders it (`null` is `""`), trimmed
//! (`trim`), translated (`map`), then checked by type. An empty value is kept: in Wire mode it
//! is `""`, which clears the HubSpot property. [`OutputMode::Wire`] writes HubSpot's formats:
//!
//! | type | accepts | writes |
//! |---|---|---|
//! | `string` | any single value | the text |
//! | `number` | a decimal (`-12.5`, `1e3`) | a decimal string without exponent (`"1000"`) |
//! | `integer` | a whole number (`3`, `3.0`) | `"3"` |
//! | `bool` | true/false, yes/no, 1/0, on/off, any case | `"true"` / `"false"` |
//! | `date` | `YYYY-MM-DD`, RFC 3339 or epoch ms at midnight UTC (any instant with `truncate: true`) | epoch ms of midnight UTC (`"1714521600000"`) |
//! | `datetime` | RFC 3339, `YYYY-MM-DD` (midnight UTC) or epoch ms | epoch ms (`"1714559400123"`) |
//! | `enumeration` | one value, in `options` (or the `map`'s values) | the value |
//! | `multi_enumeration` | a list or a `;`-separated string | the values joined with `;` |
//!
//! # Limits
//!
//! Bad input never panics, hangs or exhausts memory; the limits are constants in [`limits`]. A
//! template or path is measured by a linear scan before any parser sees it: at most
//! [`MAX_TEMPLATE_BYTES`](limits::MAX_TEMPLATE_BYTES) (16 KiB),
//! [`MAX_TEMPLATE_PLACEHOLDERS`](limits::MAX_TEMPLATE_PLACEHOLDERS) (256) `{{` and
//! [`MAX_TEMPLATE_DEPTH`](limits::MAX_TEMPLATE_DEPTH) (64) levels of blocks and
//! subexpressions; a JSONPath at most 4 KiB, 32 levels, one `..` and a union fan-out of 64.
//! Going over is a [`CompileError`] with the byte offset. Rendering is bounded too: a field's
//! value is at most [`MAX_FIELD_BYTES`](limits::MAX_FIELD_BYTES) (1 MiB) and a record's at most
//! 4 MiB; helpers check the size of what they would make before making it, and the work of one
//! field (bytes its helpers handle, `{{#each}}` iterations, Handlebars' time) is capped. Going
//! over fails that field of that record with a [`FieldError`] such as `field x: replace: the
//! result would exceed 1 MiB (the limit of a field's value)`.
//!
//! # Conditions and reads
//!
//! A [`Condition`] (a flow's or an action's `when:`) is a JSONPath predicate or a template that
//! renders `true` or `false`, compiled like a field and evaluated per record; see its docs for
//! the exact rules. [`Mapping::reads`] and [`Condition::reads`] list what a compiled mapping or
//! condition reads from the record ([`RecordRead`]: the field, the reference as written, its
//! members and their byte offsets), so that a validator can check them against the record's
//! known shape.
//!
//! Dates are written as epoch milliseconds because HubSpot documents that form for date
//! properties ("must be set to midnight UTC"); its acceptance of `YYYY-MM-DD` is not documented
//! by HubSpot itself. [`OutputMode::Native`] writes JSON types for file and HTTP sinks: numbers,
//! bools, dates as `YYYY-MM-DD`, datetimes as RFC 3339, multi-enumerations as lists.

mod condition;
mod convert;
mod error;
mod helpers;
mod interp;
pub mod limits;
mod mapping;
mod path;
mod reads;
mod scan;
mod spec;
mod template;

use chrono::{DateTime, Utc};

pub use condition::{CONDITION_FIELD, Condition};
pub use error::{CompileError, FieldError};
pub use helpers::{EXAMPLE_RECORD, HelperDoc, helpers_doc};
pub use mapping::Mapping;
pub use reads::{ReadSegment, RecordRead};
pub use spec::{FieldDetail, FieldSpec, FieldType};

/// What a template sees besides the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The flow name (`{{flow}}`).
    pub flow: String,
    /// The run id (`{{run.id}}`).
    pub run_id: String,
    /// When the run started (`{{run.started_at}}`, RFC 3339).
    pub run_started_at: DateTime<Utc>,
    /// The current time (`{{now}}`, RFC 3339); fixed per run or per batch by the caller.
    pub now: DateTime<Utc>,
}

impl Context {
    /// A context whose run started, and whose `now` is, `at`.
    pub fn new(flow: impl Into<String>, run_id: impl Into<String>, at: DateTime<Utc>) -> Context {
        Context {
            flow: flow.into(),
            run_id: run_id.into(),
            run_started_at: at,
            now: at,
        }
    }
}

/// How mapped values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputMode {
    /// HubSpot's wire format: every value a JSON string (see the crate docs).
    #[default]
    Wire,
    /// Native JSON types, for file and HTTP sinks: numbers as numbers, bools as bools, dates as
    /// `YYYY-MM-DD`, datetimes as RFC 3339, multi-enumerations as lists; an empty value is
    /// `""` (strings, enumerations), `[]` (multi-enumerations) or `null`.
    Native,
}
