//! A compiled mapping: every field's source, checks and conversion, ready to apply to records.

use std::sync::Arc;

use std::time::Instant;

use handlebars::{
    Context as HbContext, Handlebars, Output, RenderContext, RenderError, RenderErrorReason,
    Renderable, Template,
};
use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::convert::{Allowed, Input, Rules, Typed, quote};
use crate::error::{CompileError, FieldError};
use crate::helpers::{Budget, NoValue, PathCache, RENDER_BUDGET, registry};
use crate::interp::{Env, Fail, Program, output_exceeds};
use crate::limits::{
    MAX_ERRORS_PER_FIELD, MAX_FIELD_BYTES, MAX_MESSAGE_BYTES, MAX_RECORD_BYTES, MAX_RENDER_TIME,
    MAX_SOURCE_BYTES, bytes, cut,
};
use crate::path::{CompiledPath, Found};
use crate::reads::{RecordRead, ValueRead, path_read};
use crate::spec::{FieldDetail, FieldSpec, FieldType};
use crate::template::{self, CompiledTemplate, LookupError};
use crate::{Context, OutputMode};

/// A compiled mapping from one source record to a target's fields.
///
/// Compiled once at load time ([`Mapping::compile`]); `Send + Sync` and cheap to clone (the
/// compiled form is shared behind an `Arc`).
#[derive(Clone)]
pub struct Mapping {
    inner: Arc<Inner>,
}

struct Inner {
    fields: IndexMap<String, Field>,
    /// Every field name, in order, with a null value: cloned for each record's output and
    /// filled by position, so that the names are not hashed again for every record.
    empty: IndexMap<String, Value>,
    registry: Handlebars<'static>,
    paths: Arc<PathCache>,
    /// Some template reads `flow`, `run` or `now` through the evaluator.
    needs_env: bool,
    /// Render every template with Handlebars (tests compare both ways).
    force_handlebars: bool,
}

struct Field {
    source: Source,
    rules: Rules,
    default: Option<Typed>,
    required: bool,
    /// The path or template text, for error messages.
    origin: Option<String>,
    /// What it reads from the record.
    reads: Vec<RecordRead>,
    /// For a template field with a `default` or `required`: the reads whose `null` counts as
    /// absent (empty otherwise: without either, a null renders as empty text).
    nulls: Vec<ValueRead>,
}

enum Source {
    Const(Typed),
    Path(CompiledPath),
    Record {
        segs: Vec<String>,
        raw: String,
    },
    Template {
        tpl: Box<Template>,
        /// The direct evaluator's form, when the template is in its subset.
        program: Option<Program>,
    },
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field("fields", &self.inner.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a field has no value from its source.
enum Absent {
    /// A JSONPath matched nothing.
    NoMatch,
    /// A template variable is missing (or a helper produced no value), with the reason.
    Missing(String),
}

impl Mapping {
    /// Compiles field specs; pure (no I/O). Reports every problem of every field at once.
    pub fn compile(fields: &IndexMap<String, FieldSpec>) -> Result<Mapping, Vec<CompileError>> {
        let mut errors = Vec::new();
        let mut compiled = IndexMap::with_capacity(fields.len());
        let mut paths = PathCache::new();
        for (name, spec) in fields {
            let detail;
            let d = match spec {
                FieldSpec::Template(t) => {
                    detail = FieldDetail {
                        template: Some(t.clone()),
                        ..FieldDetail::default()
                    };
                    &detail
                }
                FieldSpec::Detailed(d) => d,
            };
            match compile_field(name, d, &mut paths) {
                Ok(f) => {
                    compiled.insert(name.clone(), f);
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let needs_env = compiled
            .values()
            .any(|f| matches!(&f.source, Source::Template { program: Some(p), .. } if p.uses_env));
        let paths = Arc::new(paths);
        Ok(Mapping {
            inner: Arc::new(Inner {
                empty: compiled.keys().map(|k| (k.clone(), Value::Null)).collect(),
                fields: compiled,
                registry: registry(paths.clone()),
                paths,
                needs_env,
                force_handlebars: false,
            }),
        })
    }

    /// The target field names, in order.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.inner.fields.keys().map(String::as_str)
    }

    /// Whether the mapping sets `field`.
    pub fn is_mapped(&self, field: &str) -> bool {
        self.inner.fields.contains_key(field)
    }

    /// The type of a mapped field.
    pub fn field_type(&self, field: &str) -> Option<FieldType> {
        self.inner.fields.get(field).map(|f| f.rules.ty)
    }

    /// What the mapping reads from the source record: every field's reads, fields in order,
    /// each field's in the order of its text (see [`RecordRead`] for what counts). A validator
    /// checks them against the record's known shape and points at each one with
    /// [`RecordRead::offset`] or a segment's offset.
    pub fn reads(&self) -> Vec<RecordRead> {
        self.inner
            .fields
            .values()
            .flat_map(|f| f.reads.iter().cloned())
            .collect()
    }

    /// Maps one record. Returns the target fields in mapping order, or every field error of
    /// this record. A field whose source is missing (no JSONPath match) and that has no
    /// `default` and is not `required` is left out; an empty value is kept (`""` in Wire mode:
    /// HubSpot clears the property).
    ///
    /// In [`OutputMode::Wire`] every value is a JSON string in HubSpot's format.
    pub fn apply(
        &self,
        record: &Value,
        ctx: &Context,
        mode: OutputMode,
    ) -> Result<IndexMap<String, Value>, Vec<FieldError>> {
        let inner = &*self.inner;
        let mut out = inner.empty.clone();
        // Positions of fields left out (no value and no default), removed at the end.
        let mut left_out: Vec<usize> = Vec::new();
        let mut errors = Vec::new();
        let env = inner.needs_env.then(|| Env {
            flow: Value::String(ctx.flow.clone()),
            run: run_value(ctx),
            now: Value::String(rfc3339(ctx.now)),
        });
        let mut eval = Eval {
            record,
            ctx,
            env: env.as_ref(),
            hb_ctx: None,
            inner,
        };
        // Bytes of the values mapped so far (MAX_RECORD_BYTES).
        let mut total = 0usize;
        for (i, f) in inner.fields.values().enumerate() {
            match f.eval(&mut eval) {
                Ok(Some(t)) => {
                    let n = t.size();
                    if total + n > MAX_RECORD_BYTES {
                        errors.push(field_error(&inner.fields, i, record_exceeds()));
                    } else if let Some((_, slot)) = out.get_index_mut(i) {
                        total += n;
                        *slot = t.output(f.rules.ty, mode);
                    }
                }
                Ok(None) => left_out.push(i),
                Err(message) => errors.push(field_error(&inner.fields, i, message)),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        if !left_out.is_empty() {
            let mut i = 0;
            out.retain(|_, _| {
                let keep = !left_out.contains(&i);
                i += 1;
                keep
            });
        }
        Ok(out)
    }
}

/// The error of field number `i`.
#[cold]
fn field_error(fields: &IndexMap<String, Field>, i: usize, message: String) -> FieldError {
    let (field, source) = fields.get_index(i).map_or((String::new(), None), |(n, f)| {
        (n.clone(), f.origin.clone())
    });
    FieldError {
        field,
        message: cut(&message, MAX_MESSAGE_BYTES).into_owned(),
        source,
    }
}

#[cold]
fn record_exceeds() -> String {
    format!(
        "the record's mapped values would exceed {} (the limit per record)",
        bytes(MAX_RECORD_BYTES)
    )
}

/// What evaluating one record's fields needs; the Handlebars context is built on first use.
struct Eval<'a> {
    record: &'a Value,
    ctx: &'a Context,
    env: Option<&'a Env>,
    hb_ctx: Option<HbContext>,
    inner: &'a Inner,
}

fn run_value(ctx: &Context) -> Value {
    let mut run = Map::with_capacity(2);
    run.insert("id".into(), Value::String(ctx.run_id.clone()));
    run.insert(
        "started_at".into(),
        Value::String(rfc3339(ctx.run_started_at)),
    );
    Value::Object(run)
}

/// The data a template sees: `record`, `flow`, `run` (`id`, `started_at`) and `now`.
fn template_context(record: &Value, ctx: &Context) -> HbContext {
    let mut root = Map::with_capacity(4);
    root.insert("record".into(), record.clone());
    root.insert("flow".into(), Value::String(ctx.flow.clone()));
    root.insert("run".into(), run_value(ctx));
    root.insert("now".into(), Value::String(rfc3339(ctx.now)));
    HbContext::from(Value::Object(root))
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

impl Field {
    fn eval(&self, ev: &mut Eval<'_>) -> Result<Option<Typed>, String> {
        let record = ev.record;
        if !self.nulls.is_empty() {
            if let Some(raw) = first_null(&self.nulls, record, &ev.inner.paths) {
                return self.null(Some(raw));
            }
        }
        let value = match &self.source {
            Source::Const(t) => return Ok(Some(t.clone())),
            Source::Path(p) => match p.find(record) {
                Found::Nothing => return self.absent(Absent::NoMatch),
                Found::One(Value::Null) if self.default.is_some() || self.required => {
                    return self.null(None);
                }
                Found::One(v) => self.rules.convert(Input::One(v)),
                Found::Many(vs) => self.rules.convert(Input::Many(&vs)),
            },
            Source::Record { segs, raw } => match CompiledTemplate::lookup(segs, record) {
                Ok(Value::Null) if self.default.is_some() || self.required => {
                    return self.null(Some(raw));
                }
                Ok(v) => self.rules.convert(Input::One(v)),
                Err(LookupError::Missing) => {
                    return self.absent(Absent::Missing(format!("missing variable {raw}")));
                }
                Err(LookupError::BadIndex(s)) => Err(bad_index(&s)),
            },
            Source::Template {
                program: Some(p), ..
            } if !ev.inner.force_handlebars => {
                match p.render(record, ev.env, &ev.inner.paths, &Budget::new()) {
                    Ok(text) => self.rules.convert_text(&text),
                    Err(Fail::Absent(why)) => return self.absent(Absent::Missing(why)),
                    Err(Fail::Error(msg)) => Err(msg),
                }
            }
            Source::Template { tpl, .. } => {
                let hb_ctx = ev
                    .hb_ctx
                    .get_or_insert_with(|| template_context(ev.record, ev.ctx));
                match render(tpl, &ev.inner.registry, hb_ctx) {
                    Ok(text) => self.rules.convert_text(&text),
                    Err(Ok(absent)) => return self.absent(absent),
                    Err(Err(msg)) => Err(msg),
                }
            }
        }?;
        if self.required && value == Typed::Clear {
            return Err("is empty but the field is required".into());
        }
        Ok(Some(value))
    }

    /// The value is `null` (`what`: the template variable that is, if not the whole value):
    /// the default, or (`required`) an error. Called only for fields with either.
    #[cold]
    fn null(&self, what: Option<&str>) -> Result<Option<Typed>, String> {
        if let Some(d) = &self.default {
            return Ok(Some(d.clone()));
        }
        Err(match what {
            Some(raw) => format!("is required but {raw} is null"),
            None => "is required but the value is null".into(),
        })
    }

    fn absent(&self, why: Absent) -> Result<Option<Typed>, String> {
        if let Some(d) = &self.default {
            return Ok(Some(d.clone()));
        }
        match why {
            Absent::Missing(msg) => Err(msg),
            Absent::NoMatch if self.required => {
                Err("is required but the path matched nothing".into())
            }
            Absent::NoMatch => Ok(None),
        }
    }
}

/// The first of `reads` whose value in `record` is `null`, by its text.
fn first_null<'r>(reads: &'r [ValueRead], record: &Value, paths: &PathCache) -> Option<&'r str> {
    reads.iter().find_map(|r| match r {
        ValueRead::Record { segs, raw } => {
            matches!(CompiledTemplate::lookup(segs, record), Ok(Value::Null))
                .then_some(raw.as_str())
        }
        ValueRead::Path { path } => paths
            .get(path)
            .is_some_and(|p| matches!(p.find(record), Found::One(Value::Null)))
            .then_some(path.as_str()),
    })
}

pub(crate) fn bad_index(s: &str) -> String {
    format!("cannot look up \"{s}\" in a list (use a number)")
}

/// Handlebars' output for one field: refuses to grow past [`MAX_FIELD_BYTES`].
struct Capped {
    text: String,
    full: bool,
}

impl Output for Capped {
    fn write(&mut self, seg: &str) -> std::io::Result<()> {
        if self.text.len() + seg.len() > MAX_FIELD_BYTES {
            self.full = true;
            return Err(std::io::Error::other(output_exceeds()));
        }
        self.text.push_str(seg);
        Ok(())
    }
}

/// Renders with Handlebars within the field's budget (the thread's [`RENDER_BUDGET`], reset
/// here) and output limit; an error is a missing value (the field's default applies) or a
/// message.
fn render(
    t: &Template,
    registry: &Handlebars<'static>,
    ctx: &HbContext,
) -> Result<String, Result<Absent, String>> {
    RENDER_BUDGET.with(|b| b.reset(Some(Instant::now() + MAX_RENDER_TIME)));
    let mut rc = RenderContext::new(None);
    let mut out = Capped {
        text: String::new(),
        full: false,
    };
    let result = t.render(registry, ctx, &mut rc, &mut out);
    RENDER_BUDGET.with(|b| b.reset(None));
    match result {
        Ok(()) => Ok(out.text),
        Err(_) if out.full => Err(Err(output_exceeds())),
        Err(e) => Err(render_error(e)),
    }
}

/// A render error as a missing value (the field's default applies) or a message.
fn render_error(e: RenderError) -> Result<Absent, String> {
    match e.reason() {
        RenderErrorReason::MissingVariable(path) => Ok(Absent::Missing(match path {
            Some(p) => format!("missing variable {p}"),
            None => "missing variable".into(),
        })),
        RenderErrorReason::NestedError(inner) => match inner.downcast_ref::<NoValue>() {
            Some(NoValue(why)) => Ok(Absent::Missing(why.clone())),
            None => Err(inner.to_string()),
        },
        // A built-in helper (`eq`, `lookup`, ...) given a variable that is missing.
        RenderErrorReason::ParamNotFoundForIndex(name, i) => Ok(Absent::Missing(format!(
            "{name}: argument {} is missing",
            i + 1
        ))),
        RenderErrorReason::InvalidJsonIndex(s) => Err(bad_index(s)),
        RenderErrorReason::Other(m) => Err(m.clone()),
        other => Err(other.to_string()),
    }
}

fn compile_field(
    name: &str,
    d: &FieldDetail,
    paths: &mut PathCache,
) -> Result<Field, Vec<CompileError>> {
    let mut errors = Vec::new();
    let ty = d.r#type;
    let given: Vec<&str> = [
        d.template.as_ref().map(|_| "template"),
        d.path.as_ref().map(|_| "path"),
        d.value.as_ref().map(|_| "value"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() != 1 {
        let msg = if given.is_empty() {
            "no source: give one of template, path or value".to_owned()
        } else {
            format!(
                "give only one of template, path or value, not {}",
                given.join(" and ")
            )
        };
        return Err(vec![CompileError::new(name, "spec", msg)]);
    }
    let is_enum = matches!(ty, FieldType::Enumeration | FieldType::MultiEnumeration);
    if d.options.is_some() && !is_enum {
        errors.push(
            CompileError::new(
                name,
                "options",
                format!("options apply to enumerations, not to a {ty} field"),
            )
            .hint(Some("set type: enumeration or multi_enumeration".into())),
        );
    }
    if let Some(opts) = &d.options {
        if opts.is_empty() {
            errors.push(CompileError::new(name, "options", "options is empty"));
        }
    }
    if d.truncate && ty != FieldType::Date {
        errors.push(CompileError::new(
            name,
            "truncate",
            format!("truncate applies to date fields, not to a {ty} field"),
        ));
    }
    if let (Some(map), Some(opts)) = (&d.map, &d.options) {
        let opts: std::collections::HashSet<&str> = opts.iter().map(String::as_str).collect();
        let unknown: Vec<_> = map
            .iter()
            .filter(|(_, v)| !opts.contains(v.as_str()))
            .collect();
        for (k, v) in unknown.iter().take(MAX_ERRORS_PER_FIELD) {
            errors.push(CompileError::new(
                name,
                "map",
                format!(
                    "maps {} to {}, which is not one of the options",
                    quote(k),
                    quote(v)
                ),
            ));
        }
        if unknown.len() > MAX_ERRORS_PER_FIELD {
            errors.push(CompileError::new(
                name,
                "map",
                format!(
                    "{} more value(s) of the map are not options",
                    unknown.len() - MAX_ERRORS_PER_FIELD
                ),
            ));
        }
    }
    let allowed = if is_enum {
        match (&d.options, &d.map) {
            (Some(o), _) => Some(Allowed::new(o.iter().cloned())),
            (None, Some(m)) => Some(Allowed::new(m.values().cloned())),
            (None, None) => None,
        }
    } else {
        None
    };
    let rules = Rules {
        ty,
        map: d.map.clone(),
        allowed,
        trim: d.trim,
        truncate: d.truncate,
    };
    let default = match &d.default {
        Some(v) => match rules.convert(Input::One(v)) {
            Ok(t) => Some(t),
            Err(e) => {
                errors.push(CompileError::new(name, "default", e));
                None
            }
        },
        None => None,
    };
    let mut origin = None;
    let mut reads = Vec::new();
    let mut nulls = Vec::new();
    let source = if let Some(v) = &d.value {
        match rules.convert(Input::One(v)) {
            Ok(t) => {
                if d.required && t == Typed::Clear {
                    errors.push(CompileError::new(
                        name,
                        "value",
                        "is empty but the field is required",
                    ));
                }
                Some(Source::Const(t))
            }
            Err(e) => {
                errors.push(CompileError::new(name, "value", e));
                None
            }
        }
    } else if let Some(p) = &d.path {
        origin = Some(cut(p, MAX_SOURCE_BYTES).into_owned());
        match CompiledPath::compile(p) {
            Ok(c) => {
                reads.extend(path_read(name, "path", p, 0));
                Some(Source::Path(c))
            }
            Err(e) => {
                errors.push(
                    CompileError::new(name, "path", e.message)
                        .at(e.offset)
                        .hint(e.hint),
                );
                None
            }
        }
    } else if let Some(t) = &d.template {
        origin = Some(cut(t, MAX_SOURCE_BYTES).into_owned());
        match template::compile(name, t, paths) {
            Ok(compiled) => {
                reads = compiled.reads;
                match compiled.template {
                    CompiledTemplate::Record { segs, raw } => Some(Source::Record { segs, raw }),
                    CompiledTemplate::Handlebars(tpl) => {
                        if d.default.is_some() || d.required {
                            nulls = compiled.values;
                        }
                        let program = Program::compile(&tpl);
                        Some(Source::Template { tpl, program })
                    }
                }
            }
            Err(mut e) => {
                errors.append(&mut e);
                None
            }
        }
    } else {
        None
    };
    match source {
        Some(source) if errors.is_empty() => Ok(Field {
            source,
            rules,
            default,
            required: d.required,
            origin,
            reads,
            nulls,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
impl Mapping {
    /// This mapping with every template rendered by Handlebars.
    pub(crate) fn forcing_handlebars(fields: &IndexMap<String, FieldSpec>) -> Mapping {
        let m = Mapping::compile(fields).unwrap();
        let inner = Arc::try_unwrap(m.inner).ok().unwrap();
        Mapping {
            inner: Arc::new(Inner {
                force_handlebars: true,
                ..inner
            }),
        }
    }

    /// Whether `field` is a template evaluated without Handlebars.
    pub(crate) fn is_evaluated(&self, field: &str) -> bool {
        matches!(
            self.inner.fields.get(field).map(|f| &f.source),
            Some(Source::Template {
                program: Some(_),
                ..
            })
        )
    }

    /// Whether `field` is looked up directly (a path, or a template that is one record path).
    pub(crate) fn is_fast(&self, field: &str) -> bool {
        matches!(
            self.inner.fields.get(field).map(|f| &f.source),
            Some(Source::Record { .. } | Source::Path(_) | Source::Const(_))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn ctx() -> Context {
        Context {
            flow: "companies-from-erp".into(),
            run_id: "run-7".into(),
            run_started_at: chrono::Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap(),
            now: chrono::Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 5).unwrap(),
        }
    }

    fn fields(spec: Value) -> IndexMap<String, FieldSpec> {
        serde_json::from_value(spec).unwrap()
    }

    fn mapping(spec: Value) -> Mapping {
        Mapping::compile(&fields(spec)).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn compile_err(spec: Value) -> Vec<CompileError> {
        Mapping::compile(&fields(spec)).unwrap_err()
    }

    fn wire(m: &Mapping, record: Value) -> Result<IndexMap<String, Value>, Vec<String>> {
        m.apply(&record, &ctx(), OutputMode::Wire)
            .map_err(|es| es.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn mapping_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Mapping>();
    }

    #[test]
    fn design_example() {
        let m = mapping(json!({
            "name": "{{record.company_name}}",
            "domain": "{{lowercase record.website}}",
            "numberofemployees": { "path": "$.employees", "type": "number" },
            "company_category": {
                "path": "$.segment", "type": "enumeration",
                "map": { "SMB": "small_business", "ENT": "enterprise" }
            }
        }));
        assert_eq!(
            m.fields().collect::<Vec<_>>(),
            ["name", "domain", "numberofemployees", "company_category"]
        );
        assert!(m.is_mapped("domain") && !m.is_mapped("phone"));
        assert_eq!(m.field_type("numberofemployees"), Some(FieldType::Number));
        let out = wire(&m, json!({
            "company_name": "A&B Ltd", "website": "WWW.AB.COM", "employees": 12, "segment": "SMB"
        }))
        .unwrap();
        assert_eq!(
            Value::Object(out.into_iter().collect()),
            json!({
                "name": "A&B Ltd", "domain": "www.ab.com", "numberofemployees": "12",
                "company_category": "small_business"
            })
        );
        let errs = wire(
            &m,
            json!({
                "company_name": "X", "website": "x", "employees": "abc", "segment": "MID"
            }),
        )
        .unwrap_err();
        assert_eq!(
            errs,
            [
                "field numberofemployees: \"abc\" is not a number (from $.employees)",
                "field company_category: \"MID\" is not an allowed value (allowed: small_business, enterprise) (from $.segment)",
            ]
        );
    }

    #[test]
    fn strict_mode_missing_variable() {
        let m = mapping(json!({ "full": "{{record.first}} {{record.last}}" }));
        let errs = wire(&m, json!({ "first": "Ada" })).unwrap_err();
        assert_eq!(
            errs,
            ["field full: missing variable record.last (from {{record.first}} {{record.last}})"]
        );
        // Even when not required: a template's missing variable is an error.
        let m = mapping(json!({ "x": { "template": "{{lowercase record.zz}}" } }));
        assert_eq!(
            wire(&m, json!({})).unwrap_err(),
            ["field x: missing variable record.zz (from {{lowercase record.zz}})"]
        );
    }

    #[test]
    fn default_applies_to_missing_variables() {
        let m = mapping(json!({
            "a": { "template": "{{record.first}} {{record.last}}", "default": "unknown" },
            "b": { "template": "{{record.x.y}}", "default": 5, "type": "integer" },
            "c": { "template": "{{jsonpath \"$.nope\"}}", "default": "none" },
            "d": { "template": "{{record.empty}}", "default": "not used" },
        }));
        let out = wire(&m, json!({ "first": "Ada", "empty": "" })).unwrap();
        assert_eq!(out["a"], json!("unknown"));
        assert_eq!(out["b"], json!("5"));
        assert_eq!(out["c"], json!("none"));
        // An empty value is a value (it clears the property): the default does not apply.
        assert_eq!(out["d"], json!(""));
    }

    #[test]
    fn escaping_is_off() {
        let m = mapping(
            json!({ "a": "{{record.v}}", "b": "x {{record.v}}", "c": "{{uppercase record.v}}" }),
        );
        let out = wire(&m, json!({ "v": "a&b <i>\"q\"</i>" })).unwrap();
        assert_eq!(out["a"], json!("a&b <i>\"q\"</i>"));
        assert_eq!(out["b"], json!("x a&b <i>\"q\"</i>"));
        assert_eq!(out["c"], json!("A&B <I>\"Q\"</I>"));
    }

    #[test]
    fn context_variables() {
        let m = mapping(json!({
            "f": "{{flow}}/{{run.id}}/{{run.started_at}}/{{now}}",
            "d": { "template": "{{date_format now \"%Y-%m-%d\"}}", "type": "date" },
        }));
        let out = wire(&m, json!({})).unwrap();
        assert_eq!(
            out["f"],
            json!("companies-from-erp/run-7/2024-05-01T10:00:00Z/2024-05-01T10:00:05Z")
        );
        assert_eq!(out["d"], json!("1714521600000"));
    }

    #[test]
    fn fast_path_detection_and_equivalence() {
        let m = mapping(json!({
            "fast": "{{record.a.b}}",
            "slow": "{{record.a.b}}{{!-- forces the template engine --}}",
            "bracket": "{{record.[odd key]}}",
            "path": { "path": "$.a.b" },
        }));
        assert!(m.is_fast("fast") && m.is_fast("bracket") && m.is_fast("path"));
        assert!(!m.is_fast("slow"));
        for v in [
            json!("x&y"),
            json!(12.50),
            json!(-3),
            json!(true),
            json!(null),
            json!(""),
            json!(1e21),
        ] {
            let out = wire(&m, json!({ "a": { "b": v }, "odd key": v })).unwrap();
            assert_eq!(out["fast"], out["slow"], "{v}");
            assert_eq!(out["fast"], out["bracket"], "{v}");
            assert_eq!(out["fast"], out["path"], "{v}");
        }
        // Missing: the same strict error, naming the path.
        let fast = wire(&m, json!({ "odd key": 1, "a": {} })).unwrap_err();
        assert_eq!(
            fast[0],
            "field fast: missing variable record.a.b (from {{record.a.b}})"
        );
        assert!(
            fast[1].starts_with("field slow: missing variable record.a.b"),
            "{fast:?}"
        );
        // A string key on a list: the same error both ways.
        let e = wire(&m, json!({ "odd key": 1, "a": [1] })).unwrap_err();
        assert_eq!(
            e[0],
            "field fast: cannot look up \"b\" in a list (use a number) (from {{record.a.b}})"
        );
        assert!(
            e[1].starts_with("field slow: cannot look up \"b\" in a list"),
            "{e:?}"
        );
    }

    #[test]
    fn fast_path_keeps_lists_for_multi_enumeration() {
        let m = mapping(
            json!({ "tags": { "template": "{{record.tags}}", "type": "multi_enumeration" } }),
        );
        assert!(m.is_fast("tags"));
        assert_eq!(
            wire(&m, json!({ "tags": ["a", "b"] })).unwrap()["tags"],
            json!("a;b")
        );
        assert_eq!(
            wire(&m, json!({ "tags": "a;b" })).unwrap()["tags"],
            json!("a;b")
        );
    }

    #[test]
    fn paths_missing_required_default() {
        let m = mapping(json!({
            "opt": { "path": "$.nope" },
            "req": { "path": "$.nope", "required": true },
            "def": { "path": "$.nope", "default": "D" },
        }));
        assert_eq!(
            wire(&m, json!({})).unwrap_err(),
            ["field req: is required but the path matched nothing (from $.nope)"]
        );
        let m = mapping(json!({
            "opt": { "path": "$.nope" },
            "def": { "path": "$.nope", "default": "D" },
            "req_empty": { "path": "$.e", "required": true },
        }));
        assert_eq!(
            wire(&m, json!({ "e": " " }))
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            [
                ("def".to_owned(), json!("D")),
                ("req_empty".to_owned(), json!(" "))
            ]
        );
        assert_eq!(
            wire(&m, json!({ "e": "" })).unwrap_err(),
            ["field req_empty: is empty but the field is required (from $.e)"]
        );
    }

    #[test]
    fn nulls_count_as_absent_for_default_and_required() {
        let m = mapping(json!({
            "path_def": { "path": "$.v", "default": "D" },
            "fast_def": { "template": "{{record.v}}", "default": "D" },
            "tpl_def": { "template": "{{lowercase record.v}}", "default": "D" },
            "mixed_def": { "template": "{{record.a}} {{record.v}}", "default": "D" },
            "jp_def": { "template": "{{jsonpath \"$.v\"}}", "default": "D" },
            "num_def": { "path": "$.v", "type": "number", "default": 0 },
            "plain_path": { "path": "$.v" },
            "plain_fast": "{{record.v}}",
            "plain_tpl": "{{record.a}} [{{lowercase record.v}}]",
        }));
        let out = wire(&m, json!({ "a": "A", "v": null })).unwrap();
        let got: Vec<(&str, &str)> = out
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("path_def", "D"),
                ("fast_def", "D"),
                ("tpl_def", "D"),
                ("mixed_def", "D"),
                ("jp_def", "D"),
                ("num_def", "0"),
                // Without default or required, null is empty text, as before.
                ("plain_path", ""),
                ("plain_fast", ""),
                ("plain_tpl", "A []"),
            ]
        );
        // The same as a missing value, for fields with a default.
        let missing = wire(&m, json!({ "a": "A" }));
        assert!(
            missing.is_err(),
            "plain templates still fail on a missing variable"
        );
        let native = m
            .apply(&json!({ "a": "A", "v": null }), &ctx(), OutputMode::Native)
            .unwrap();
        assert_eq!(native["plain_path"], json!(""));

        let m = mapping(json!({
            "path_req": { "path": "$.v", "required": true },
            "fast_req": { "template": "{{record.v}}", "required": true },
            "tpl_req": { "template": "{{record.a}} {{lowercase record.v}}", "required": true },
            "jp_req": { "template": "{{jsonpath \"$.v\"}}", "required": true },
            "both": { "path": "$.v", "required": true, "default": "D" },
        }));
        assert_eq!(
            wire(&m, json!({ "a": "A", "v": null })).unwrap_err(),
            [
                "field path_req: is required but the value is null (from $.v)",
                "field fast_req: is required but record.v is null (from {{record.v}})",
                "field tpl_req: is required but record.v is null (from {{record.a}} {{lowercase record.v}})",
                "field jp_req: is required but $.v is null (from {{jsonpath \"$.v\"}})",
            ]
        );
        assert_eq!(
            wire(&m, json!({})).unwrap_err(),
            [
                "field path_req: is required but the path matched nothing (from $.v)",
                "field fast_req: missing variable record.v (from {{record.v}})",
                "field tpl_req: missing variable record.a (from {{record.a}} {{lowercase record.v}})",
                "field jp_req: jsonpath $.v matched nothing (from {{jsonpath \"$.v\"}})",
            ]
        );
        let out = wire(&m, json!({ "a": "A", "v": "X" })).unwrap();
        assert_eq!(out["tpl_req"], json!("A x"));
        assert_eq!(out["both"], json!("X"));
    }

    #[test]
    fn nulls_handled_by_the_template_itself_stay_its_business() {
        let m = mapping(json!({
            // `default` (the helper) takes nulls itself.
            "helper": { "template": "{{default record.nick record.name}}", "default": "D" },
            "nested": { "template": "{{uppercase (default record.nick record.name)}}", "required": true },
            // Inside blocks Handlebars decides: a null is false for `if`, empty text when written.
            "block": { "template": "{{#if record.nick}}{{record.nick}}{{else}}-{{/if}}", "default": "D" },
            "inner": { "template": "{{#each record.list}}[{{this}}]{{/each}}", "default": "D" },
            // Built-in helpers' arguments are not values written out.
            "builtin": { "template": "{{eq record.nick null}}", "default": "D" },
        }));
        let out = wire(
            &m,
            json!({ "nick": null, "name": "Ada", "list": [null, 1] }),
        )
        .unwrap();
        assert_eq!(
            Value::Object(out.into_iter().collect()),
            json!({
                "helper": "Ada", "nested": "ADA", "block": "-", "inner": "[][1]",
                "builtin": "true"
            })
        );
    }

    #[test]
    fn nulls_agree_both_ways() {
        let spec = fields(json!({
            "a": { "template": "{{record.a}}-{{uppercase record.b}}", "default": "D" },
            "b": { "template": "{{concat record.a record.b}}", "required": true },
            "c": { "template": "{{record.a}}{{!-- slow --}}", "default": "D" },
        }));
        let direct = Mapping::compile(&spec).unwrap();
        let hb = Mapping::forcing_handlebars(&spec);
        for r in [
            json!({ "a": null, "b": "x" }),
            json!({ "a": "y", "b": null }),
            json!({ "a": "y", "b": "x" }),
            json!({ "a": "y" }),
        ] {
            assert_eq!(wire(&direct, r.clone()), wire(&hb, r.clone()), "{r}");
        }
    }

    #[test]
    fn several_matches() {
        let m = mapping(json!({
            "skus": { "path": "$.lines[*].sku", "type": "multi_enumeration" },
            "sku": { "path": "$.lines[*].sku" },
        }));
        let out = wire(&m, json!({ "lines": [{ "sku": "A" }] })).unwrap();
        assert_eq!((&out["skus"], &out["sku"]), (&json!("A"), &json!("A")));
        let errs = wire(&m, json!({ "lines": [{ "sku": "A" }, { "sku": "B" }] })).unwrap_err();
        assert_eq!(
            errs,
            [
                "field sku: the path matched 2 values; a string field takes one (from $.lines[*].sku)"
            ]
        );
    }

    #[test]
    fn constants_and_native_mode() {
        let m = mapping(json!({
            "src": { "value": "ERP" },
            "n": { "value": "12.50", "type": "number" },
            "i": { "path": "$.i", "type": "integer" },
            "b": { "path": "$.b", "type": "bool" },
            "d": { "path": "$.d", "type": "date" },
            "t": { "path": "$.t", "type": "datetime" },
            "m": { "path": "$.m", "type": "multi_enumeration" },
            "e": { "path": "$.e", "type": "number" },
        }));
        let rec = json!({ "i": "7", "b": "yes", "d": "2024-05-01", "t": 1714559400123i64, "m": "x;y", "e": "" });
        let out = m.apply(&rec, &ctx(), OutputMode::Native).unwrap();
        assert_eq!(
            Value::Object(out.into_iter().collect()),
            json!({
                "src": "ERP", "n": 12.5, "i": 7, "b": true, "d": "2024-05-01",
                "t": "2024-05-01T10:30:00.123Z", "m": ["x", "y"], "e": null
            })
        );
        let out = wire(&m, rec).unwrap();
        assert_eq!(
            Value::Object(out.into_iter().collect()),
            json!({
                "src": "ERP", "n": "12.5", "i": "7", "b": "true", "d": "1714521600000",
                "t": "1714559400123", "m": "x;y", "e": ""
            })
        );
    }

    #[test]
    fn compile_errors() {
        let errs = compile_err(json!({
            "none": { "type": "number" },
            "two": { "path": "$.a", "value": 1 },
            "opts": { "path": "$.a", "options": ["x"] },
            "trunc": { "path": "$.a", "type": "datetime", "truncate": true },
            "mapopt": { "path": "$.a", "type": "enumeration", "map": { "A": "a" }, "options": ["b"] },
            "val": { "value": "abc", "type": "integer" },
            "def": { "path": "$.a", "type": "bool", "default": "maybe" },
            "path": { "path": "$.a[" },
            "tpl": "{{lowercase record.a}",
            "var": "{{email}}",
            "empty_opts": { "path": "$.a", "type": "enumeration", "options": [] },
            "req_const": { "value": "", "required": true },
        }));
        let got: Vec<(String, &str)> = errs.iter().map(|e| (e.field.clone(), e.part)).collect();
        let want = [
            ("none", "spec"),
            ("two", "spec"),
            ("opts", "options"),
            ("trunc", "truncate"),
            ("mapopt", "map"),
            ("val", "value"),
            ("def", "default"),
            ("path", "path"),
            ("tpl", "template"),
            ("var", "template"),
            ("empty_opts", "options"),
            ("req_const", "value"),
        ];
        assert_eq!(got, want.map(|(f, p)| (f.to_owned(), p)));
        let msg: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(
            msg[0],
            "field none: invalid spec: no source: give one of template, path or value"
        );
        assert_eq!(
            msg[1],
            "field two: invalid spec: give only one of template, path or value, not path and value"
        );
        assert_eq!(
            msg[4],
            "field mapopt: invalid map: maps \"A\" to \"a\", which is not one of the options"
        );
        assert_eq!(
            msg[5],
            "field val: invalid value: \"abc\" is not an integer"
        );
        assert_eq!(errs[7].offset, Some(4));
        assert!(errs[8].offset.is_some());
        assert_eq!(
            errs[9].hint.as_deref(),
            Some("did you mean \"record.email\"?")
        );
    }

    #[test]
    fn all_field_errors_of_a_record_are_reported() {
        let m = mapping(json!({
            "a": { "path": "$.a", "type": "integer" },
            "b": { "path": "$.b", "type": "bool" },
            "c": { "path": "$.c", "type": "date" },
            "ok": "{{record.ok}}",
        }));
        let errs = wire(
            &m,
            json!({ "a": 1.5, "b": "maybe", "c": "2024-05-01T10:00:00Z", "ok": 1 }),
        )
        .unwrap_err();
        assert_eq!(errs.len(), 3);
        assert!(errs[0].starts_with("field a: \"1.5\" is not an integer"));
        assert!(errs[1].starts_with("field b: \"maybe\" is not a bool"));
        assert!(errs[2].starts_with(
            "field c: \"2024-05-01T10:00:00Z\" is 2024-05-01T10:00:00Z, not midnight UTC"
        ));
    }

    #[test]
    fn helper_errors_name_the_helper() {
        let m = mapping(json!({ "a": "{{number_format record.p 2}}" }));
        assert_eq!(
            wire(&m, json!({ "p": "x" })).unwrap_err(),
            ["field a: number_format: \"x\" is not a number (from {{number_format record.p 2}})"]
        );
    }

    /// Runs every template both through the direct evaluator and through Handlebars.
    fn both_ways(templates: &[&str], records: &[Value]) {
        for t in templates {
            let mut spec = IndexMap::new();
            spec.insert("f".to_owned(), FieldSpec::template(*t));
            let direct = Mapping::compile(&spec).unwrap();
            let hb = Mapping::forcing_handlebars(&spec);
            for r in records {
                let a = wire(&direct, r.clone());
                let b = wire(&hb, r.clone());
                assert_eq!(a, b, "template {t:?} on {r}");
            }
        }
    }

    #[test]
    fn evaluator_matches_handlebars() {
        let templates = [
            "{{uppercase record.name}} ({{record.address.country}})",
            "{{lowercase (replace record.name \" \" \"-\")}}",
            "{{first (split record.contact \" \")}}",
            "{{last (split record.contact \" \")}} / {{nth (split record.contact \" \") -2}}",
            "{{date_format record.at \"%Y-%m-%d\"}}",
            "{{number_format record.n 2}}",
            "{{default record.nick record.name \"x\"}}",
            "{{default (jsonpath \"$.nope\") \"fallback\"}}",
            "{{jsonpath \"$.list[*]\"}}",
            "{{join (jsonpath \"$.list[*]\") \";\"}}",
            "{{lookup_map record.code A=\"alpha\" B=\"beta\"}}",
            "{{lookup_map record.code \"other\" A=\"alpha\"}}",
            "{{concat record.n \"/\" record.flag \"/\" record.none}}",
            "{{record.list}} {{record.address}} {{record.n}} {{record.flag}} {{record.none}}",
            "{{flow}} {{run.id}} {{run.started_at}} {{now}}",
            "{{date_format now \"%H:%M:%S\"}}",
            "a&b {{{record.name}}} {{~record.name~}} {{!-- c --}}",
            "{{lowercase record.missing}}",
            "{{lowercase (jsonpath \"$.nope\")}}",
            "{{jsonpath \"$.nope\"}}",
            "{{record.list.x}}",
            "{{record.list.1}}",
            "{{lookup_map record.code X=record.missing}}",
            "{{number_format record.name 2}}",
            "{{uppercase (default record.missing record.nick)}}",
        ];
        let records = [
            json!({
                "name": "Acme Tools", "address": { "country": "DE" }, "contact": "Ada King Lovelace",
                "at": "2024-05-01T10:30:00Z", "n": 12.345, "nick": null, "code": "A",
                "list": ["x", "y"], "flag": true, "none": null
            }),
            json!({
                "name": "", "address": {}, "contact": "", "at": 0, "n": "-0.005", "nick": "N",
                "code": "Z", "list": [], "flag": false, "none": null
            }),
            json!({}),
        ];
        both_ways(&templates, &records);
        let m = Mapping::compile(
            &templates
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("f{i}"), FieldSpec::template(*t)))
                .collect(),
        )
        .unwrap();
        for (i, t) in templates.iter().enumerate() {
            let f = format!("f{i}");
            assert!(m.is_evaluated(&f) || m.is_fast(&f), "{t}");
        }
    }

    #[test]
    fn handlebars_renders_the_rest() {
        let templates = [
            "{{#if record.a}}yes {{record.a}}{{else}}no{{/if}}",
            "{{#each record.list}}{{this}},{{/each}}",
            "{{lookup record.list 1}}",
            "{{#with record.address}}{{country}}{{/with}}",
            "{{@root.record.a}}",
            "{{eq record.a \"x\"}}",
        ];
        let spec: IndexMap<String, FieldSpec> = templates
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("f{i}"), FieldSpec::template(*t)))
            .collect();
        let m = Mapping::compile(&spec).unwrap();
        for i in 0..templates.len() {
            assert!(!m.is_evaluated(&format!("f{i}")) && !m.is_fast(&format!("f{i}")));
        }
        let out = wire(
            &m,
            json!({ "a": "x", "list": [1, 2], "address": { "country": "DE" } }),
        )
        .unwrap();
        let vals: Vec<&Value> = out.values().collect();
        assert_eq!(
            vals,
            [
                &json!("yes x"),
                &json!("1,2,"),
                &json!("2"),
                &json!("DE"),
                &json!("x"),
                &json!("true")
            ]
        );
    }

    #[test]
    fn documented_examples_both_ways() {
        let record: Value = serde_json::from_str(crate::EXAMPLE_RECORD).unwrap();
        let templates: Vec<&str> = crate::helpers_doc().iter().map(|d| d.example).collect();
        both_ways(&templates, std::slice::from_ref(&record));
        let spec: IndexMap<String, FieldSpec> = crate::helpers_doc()
            .iter()
            .map(|d| (d.name.to_owned(), FieldSpec::template(d.example)))
            .collect();
        let out = wire(&Mapping::compile(&spec).unwrap(), record).unwrap();
        for d in crate::helpers_doc() {
            assert_eq!(out[d.name], json!(d.result), "{}", d.name);
        }
    }
}
