//! A compiled mapping: every field's source, checks and conversion, ready to apply to records.

use std::sync::Arc;

use handlebars::{
    Context as HbContext, Handlebars, RenderContext, RenderError, RenderErrorReason, Renderable,
    StringOutput, Template,
};
use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::convert::{Allowed, Input, Rules, Typed};
use crate::error::{CompileError, FieldError};
use crate::helpers::{NoValue, PathCache, registry};
use crate::path::{CompiledPath, Found};
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
    registry: Handlebars<'static>,
    has_templates: bool,
}

struct Field {
    source: Source,
    rules: Rules,
    default: Option<Typed>,
    required: bool,
    /// The path or template text, for error messages.
    origin: Option<String>,
}

enum Source {
    Const(Typed),
    Path(CompiledPath),
    Record { segs: Vec<String>, raw: String },
    Template(Box<Template>),
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
        let has_templates = compiled
            .values()
            .any(|f| matches!(f.source, Source::Template(_)));
        Ok(Mapping {
            inner: Arc::new(Inner {
                fields: compiled,
                registry: registry(Arc::new(paths)),
                has_templates,
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
        let mut out = IndexMap::with_capacity(inner.fields.len());
        let mut errors = Vec::new();
        let hb_ctx = if inner.has_templates {
            Some(template_context(record, ctx))
        } else {
            None
        };
        for (name, f) in &inner.fields {
            match f.eval(record, hb_ctx.as_ref(), &inner.registry) {
                Ok(Some(t)) => {
                    out.insert(name.clone(), t.output(f.rules.ty, mode));
                }
                Ok(None) => {}
                Err(message) => errors.push(FieldError {
                    field: name.clone(),
                    message,
                    source: f.origin.clone(),
                }),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }
}

/// The data a template sees: `record`, `flow`, `run` (`id`, `started_at`) and `now`.
fn template_context(record: &Value, ctx: &Context) -> HbContext {
    let mut run = Map::with_capacity(2);
    run.insert("id".into(), Value::String(ctx.run_id.clone()));
    run.insert(
        "started_at".into(),
        Value::String(rfc3339(ctx.run_started_at)),
    );
    let mut root = Map::with_capacity(4);
    root.insert("record".into(), record.clone());
    root.insert("flow".into(), Value::String(ctx.flow.clone()));
    root.insert("run".into(), Value::Object(run));
    root.insert("now".into(), Value::String(rfc3339(ctx.now)));
    HbContext::from(Value::Object(root))
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

impl Field {
    fn eval(
        &self,
        record: &Value,
        hb_ctx: Option<&HbContext>,
        registry: &Handlebars<'static>,
    ) -> Result<Option<Typed>, String> {
        let value = match &self.source {
            Source::Const(t) => return Ok(Some(t.clone())),
            Source::Path(p) => match p.find(record) {
                Found::Nothing => return self.absent(Absent::NoMatch),
                Found::One(v) => self.rules.convert(Input::One(v)),
                Found::Many(vs) => self.rules.convert(Input::Many(&vs)),
            },
            Source::Record { segs, raw } => match CompiledTemplate::lookup(segs, record) {
                Ok(v) => self.rules.convert(Input::One(v)),
                Err(LookupError::Missing) => {
                    return self.absent(Absent::Missing(format!("missing variable {raw}")));
                }
                Err(LookupError::BadIndex(s)) => Err(bad_index(&s)),
            },
            Source::Template(t) => {
                let Some(ctx) = hb_ctx else {
                    return Err("internal: no template context".into());
                };
                match render(t, registry, ctx) {
                    Ok(text) => self.rules.convert_text(&text),
                    Err(e) => match render_error(e) {
                        Ok(absent) => return self.absent(absent),
                        Err(msg) => Err(msg),
                    },
                }
            }
        }?;
        if self.required && value == Typed::Clear {
            return Err("is empty but the field is required".into());
        }
        Ok(Some(value))
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

fn bad_index(s: &str) -> String {
    format!("cannot look up \"{s}\" in a list (use a number)")
}

fn render(
    t: &Template,
    registry: &Handlebars<'static>,
    ctx: &HbContext,
) -> Result<String, RenderError> {
    let mut rc = RenderContext::new(None);
    let mut out = StringOutput::new();
    t.render(registry, ctx, &mut rc, &mut out)?;
    out.into_string().map_err(RenderError::from)
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
        for (k, v) in map {
            if !opts.contains(v) {
                errors.push(CompileError::new(
                    name,
                    "map",
                    format!("maps \"{k}\" to \"{v}\", which is not one of the options"),
                ));
            }
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
        origin = Some(p.clone());
        match CompiledPath::compile(p) {
            Ok(c) => Some(Source::Path(c)),
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
        origin = Some(t.clone());
        match template::compile(name, t, paths) {
            Ok(CompiledTemplate::Record { segs, raw }) => Some(Source::Record { segs, raw }),
            Ok(CompiledTemplate::Handlebars(tpl)) => Some(Source::Template(tpl)),
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
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
impl Mapping {
    /// Whether `field` is looked up directly (a path, or a template that is one record path).
    pub(crate) fn is_fast(&self, field: &str) -> bool {
        matches!(
            self.inner.fields.get(field).map(|f| &f.source),
            Some(Source::Record { .. } | Source::Path(_) | Source::Const(_))
        )
    }
}
