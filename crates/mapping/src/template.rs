//! Template compilation: parse, check against the allowed variables and helpers, and detect
//! templates that are a single `{{record.a.b}}` (looked up directly, without Handlebars).

use handlebars::template::{HelperTemplate, Parameter, TemplateElement};
use handlebars::{Path, PathSeg, Template};
use serde_json::Value;

use crate::convert::closest;
use crate::error::CompileError;
use crate::helpers::{
    BUILTINS, PathCache, SPECS, check_input_format, check_strftime, decimals_arg, find_spec,
};
use crate::limits::MAX_ERRORS_PER_FIELD;
use crate::path::CompiledPath;
use crate::reads::{self, RecordRead, ValueRead};
use crate::scan;

/// The top-level variables a template sees.
pub(crate) const ROOTS: [&str; 4] = ["record", "flow", "run", "now"];

/// A compiled template.
#[derive(Debug, Clone)]
pub(crate) enum CompiledTemplate {
    /// The template is exactly `{{record.a.b}}`: a direct lookup of `a`, `b` in the record.
    Record { segs: Vec<String>, raw: String },
    /// Rendered by Handlebars.
    Handlebars(Box<Template>),
}

/// Why a record lookup found nothing (mirrors Handlebars' strict mode).
#[derive(Debug, PartialEq)]
pub(crate) enum LookupError {
    /// A missing variable: Handlebars' strict-mode error.
    Missing,
    /// A non-numeric key used on an array.
    BadIndex(String),
}

impl CompiledTemplate {
    /// Looks up a `Record` template's value the way Handlebars would resolve the path.
    pub(crate) fn lookup<'a>(segs: &[String], record: &'a Value) -> Result<&'a Value, LookupError> {
        let mut cur = record;
        for s in segs {
            let next = match cur {
                Value::Object(m) => m.get(s),
                Value::Array(a) => match s.parse::<usize>() {
                    Ok(i) => a.get(i),
                    Err(_) => return Err(LookupError::BadIndex(s.clone())),
                },
                _ => None,
            };
            cur = next.ok_or(LookupError::Missing)?;
        }
        Ok(cur)
    }
}

/// Compiles and checks one template; pure. Literal JSONPaths given to `jsonpath` are compiled
/// into `paths`.
///
/// The template's size and nesting are checked first, by a linear scan of the text
/// ([`scan::template_tokens`]): Handlebars' parser and everything after it recurse once per level of
/// nesting, and Handlebars' compile time grows with placeholders × length.
pub(crate) fn compile(
    field: &str,
    src: &str,
    paths: &mut PathCache,
) -> Result<Compiled, Vec<CompileError>> {
    let tokens = scan::template_tokens(src).map_err(|e| {
        vec![
            CompileError::new(field, "template", e.message)
                .at(Some(e.offset))
                .hint(e.hint),
        ]
    })?;
    let tpl = Template::compile(src).map_err(|e| {
        let offset = e
            .pos()
            .and_then(|(line, col)| line_col_to_offset(src, line, col));
        vec![CompileError::new(field, "template", e.reason().to_string()).at(offset)]
    })?;
    let mut walk = Walk {
        field,
        src,
        paths,
        errors: Vec::new(),
        more: 0,
    };
    walk.template(&tpl, true);
    if walk.more > 0 {
        walk.errors.push(CompileError::new(
            field,
            "template",
            format!("{} more problem(s) in this template", walk.more),
        ));
    }
    if !walk.errors.is_empty() {
        return Err(walk.errors);
    }
    let (reads, values) = reads::template_reads(field, src, &tokens, &tpl);
    let template = match single_record_path(&tpl) {
        Some(segs) => CompiledTemplate::Record {
            segs,
            raw: raw_single_path(&tpl),
        },
        None => CompiledTemplate::Handlebars(Box::new(tpl)),
    };
    Ok(Compiled {
        template,
        reads,
        values,
    })
}

/// A compiled template with what it reads from the record.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub template: CompiledTemplate,
    /// Its record reads, in the order of the text.
    pub reads: Vec<RecordRead>,
    /// The reads whose `null` counts as absent (see [`ValueRead`]).
    pub values: Vec<ValueRead>,
}

/// 1-based line and column (in characters) to a byte offset.
fn line_col_to_offset(src: &str, line: usize, col: usize) -> Option<usize> {
    let mut start = 0;
    for _ in 1..line {
        start += src[start..].find('\n')? + 1;
    }
    let rest = &src[start..];
    let within = rest
        .char_indices()
        .nth(col.saturating_sub(1))
        .map(|(i, _)| i)
        .unwrap_or(rest.len());
    Some(start + within)
}

fn single_record_path(tpl: &Template) -> Option<Vec<String>> {
    let [el] = tpl.elements.as_slice() else {
        return None;
    };
    let ht = match el {
        TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht) => ht,
        _ => return None,
    };
    if !ht.params.is_empty() || !ht.hash.is_empty() || ht.block || ht.template.is_some() {
        return None;
    }
    let Parameter::Path(Path::Relative((segs, _))) = &ht.name else {
        return None;
    };
    let names: Option<Vec<String>> = segs
        .iter()
        .map(|s| match s {
            PathSeg::Named(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    let names = names?;
    match names.split_first() {
        Some((root, rest)) if root == "record" && !rest.is_empty() => Some(rest.to_vec()),
        _ => None,
    }
}

fn raw_single_path(tpl: &Template) -> String {
    match tpl.elements.first() {
        Some(TemplateElement::Expression(ht)) | Some(TemplateElement::HtmlExpression(ht)) => {
            match &ht.name {
                Parameter::Path(p) => path_raw(p).to_owned(),
                _ => String::new(),
            }
        }
        _ => String::new(),
    }
}

fn path_raw(p: &Path) -> &str {
    match p {
        Path::Relative((_, raw)) => raw,
        Path::Local((_, _, raw)) => raw,
    }
}

struct Walk<'a> {
    field: &'a str,
    src: &'a str,
    paths: &'a mut PathCache,
    errors: Vec<CompileError>,
    /// Problems found beyond [`MAX_ERRORS_PER_FIELD`].
    more: usize,
}

impl Walk<'_> {
    /// Whether another error may still be reported (else it is counted).
    fn room(&mut self) -> bool {
        if self.errors.len() >= MAX_ERRORS_PER_FIELD {
            self.more += 1;
            return false;
        }
        true
    }

    fn err(&mut self, needle: &str, message: String, hint: Option<String>) {
        if !self.room() {
            return;
        }
        let offset = if needle.is_empty() {
            None
        } else {
            self.src.find(needle)
        };
        self.errors.push(
            CompileError::new(self.field, "template", message)
                .at(offset)
                .hint(hint),
        );
    }

    /// `top`: the context is still the root (`record`, `flow`, ... are visible by name).
    fn template(&mut self, t: &Template, top: bool) {
        for el in &t.elements {
            match el {
                TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
                TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht) => {
                    self.helper_template(ht, top);
                }
                TemplateElement::HelperBlock(ht) => {
                    self.helper_template(ht, top);
                    let name = match &ht.name {
                        Parameter::Name(n) => n.as_str(),
                        Parameter::Path(p) => path_raw(p),
                        _ => "",
                    };
                    let keeps_scope = matches!(name, "if" | "unless") && ht.block_param.is_none();
                    for inner in [&ht.template, &ht.inverse].into_iter().flatten() {
                        self.template(inner, top && keeps_scope);
                    }
                }
                TemplateElement::DecoratorExpression(_)
                | TemplateElement::DecoratorBlock(_)
                | TemplateElement::PartialExpression(_)
                | TemplateElement::PartialBlock(_) => {
                    let needle = ["{{>", "{{#>", "{{*", "{{#*"]
                        .into_iter()
                        .find(|n| self.src.contains(n))
                        .unwrap_or("");
                    self.err(
                        needle,
                        "partials and decorators are not supported in mappings".into(),
                        None,
                    );
                }
                _ => {}
            }
        }
    }

    fn helper_template(&mut self, ht: &HelperTemplate, top: bool) {
        let is_call = !ht.params.is_empty() || !ht.hash.is_empty() || ht.block;
        if !is_call {
            // `{{path}}`: a value (or a helper without arguments).
            match &ht.name {
                Parameter::Path(p) => self.path(p, top),
                Parameter::Subexpression(s) => self.subexpression(s.as_element(), top),
                _ => {}
            }
            return;
        }
        let name = match &ht.name {
            Parameter::Name(n) => n.clone(),
            Parameter::Path(p) => path_raw(p).to_owned(),
            _ => String::new(),
        };
        self.call(&name, &ht.params, ht.hash.iter(), top);
    }

    fn subexpression(&mut self, el: &TemplateElement, top: bool) {
        if let TemplateElement::Expression(ht) = el {
            self.helper_template(ht, top);
        }
    }

    fn call<'p>(
        &mut self,
        name: &str,
        params: &[Parameter],
        hash: impl Iterator<Item = (&'p String, &'p Parameter)>,
        top: bool,
    ) {
        let hash: Vec<_> = hash.collect();
        for p in params.iter().chain(hash.iter().map(|(_, p)| *p)) {
            self.param(p, top);
        }
        if BUILTINS.contains(&name) {
            return;
        }
        let Some(spec) = find_spec(name) else {
            if !self.room() {
                return;
            }
            let all = SPECS.iter().map(|s| s.name).chain(BUILTINS);
            let hint = closest(name, all).map(|c| format!("did you mean \"{c}\"?"));
            let hint = hint.or_else(|| Some("see the list of helpers in the docs".into()));
            self.err(name, format!("unknown helper \"{name}\""), hint);
            return;
        };
        let n = params.len();
        if n < spec.min || n > spec.max {
            let want = match (spec.min, spec.max) {
                (a, b) if a == b => format!("{a}"),
                (a, usize::MAX) => format!("at least {a}"),
                (a, b) => format!("{a} to {b}"),
            };
            let usage = crate::helpers_doc()
                .iter()
                .find(|d| d.name == name)
                .map(|d| format!("usage: {}", d.usage));
            self.err(
                name,
                format!("helper \"{name}\" takes {want} argument(s), got {n}"),
                usage,
            );
            return;
        }
        if !spec.hash && !hash.is_empty() {
            self.err(
                name,
                format!("helper \"{name}\" takes no KEY=VALUE arguments"),
                None,
            );
        }
        self.literal_checks(name, params);
    }

    fn literal_checks(&mut self, name: &str, params: &[Parameter]) {
        let lit_str = |i: usize| match params.get(i) {
            Some(Parameter::Literal(Value::String(s))) => Some(s.as_str()),
            _ => None,
        };
        let lit = |i: usize| match params.get(i) {
            Some(Parameter::Literal(v)) => Some(v),
            _ => None,
        };
        let mut problems: Vec<(String, String)> = Vec::new();
        match name {
            "date_format" => {
                if let Some(f) = lit_str(1) {
                    if let Err(e) = check_strftime(f) {
                        problems.push((f.to_owned(), format!("date_format: {e}")));
                    }
                }
                if let Some(f) = lit_str(2) {
                    if let Err(e) = check_input_format(f) {
                        problems.push((f.to_owned(), format!("date_format: {e}")));
                    }
                }
            }
            "date_parse" => {
                if let Some(f) = lit_str(1) {
                    if let Err(e) = check_input_format(f) {
                        problems.push((f.to_owned(), format!("date_parse: {e}")));
                    }
                }
            }
            "number_format" => {
                if let Some(v) = lit(1) {
                    if let Err(e) = decimals_arg(v) {
                        problems.push((v.to_string(), format!("number_format: {e}")));
                    }
                }
            }
            "nth" => {
                if let Some(v) = lit(1) {
                    let ok = v.as_i64().is_some()
                        || v.as_str().is_some_and(|s| s.trim().parse::<i64>().is_ok());
                    if !ok {
                        problems.push((v.to_string(), format!("nth: INDEX {v} is not an integer")));
                    }
                }
            }
            "jsonpath" => {
                if let Some(p) = lit_str(params.len().saturating_sub(1)) {
                    match CompiledPath::compile(p) {
                        Ok(c) => {
                            self.paths.insert(p.to_owned(), c);
                        }
                        Err(e) => {
                            if !self.room() {
                                return;
                            }
                            let base = self.src.find(p);
                            self.errors.push(
                                CompileError::new(
                                    self.field,
                                    "template",
                                    format!("jsonpath: {} ({p})", e.message),
                                )
                                .at(base.map(|b| b + e.offset.unwrap_or(0)))
                                .hint(e.hint),
                            );
                        }
                    }
                }
            }
            _ => {}
        }
        for (needle, message) in problems {
            self.err(&needle, message, None);
        }
    }

    fn param(&mut self, p: &Parameter, top: bool) {
        match p {
            Parameter::Path(path) => self.path(path, top),
            Parameter::Subexpression(s) => self.subexpression(s.as_element(), top),
            _ => {}
        }
    }

    fn path(&mut self, p: &Path, top: bool) {
        if !top {
            return;
        }
        let Path::Relative((segs, raw)) = p else {
            return;
        };
        let Some(first) = segs.iter().find_map(|s| match s {
            PathSeg::Named(n) => Some(n.as_str()),
            _ => None,
        }) else {
            return;
        };
        if ROOTS.contains(&first) || raw.starts_with("..") {
            return;
        }
        if !self.room() {
            return;
        }
        let hint = match closest(first, ROOTS.into_iter()) {
            Some(root) => format!("did you mean \"{}\"?", raw.replacen(first, root, 1)),
            None => format!("did you mean \"record.{raw}\"?"),
        };
        self.err(
            raw,
            format!(
                "unknown variable \"{raw}\": a template sees record, flow, run (id, started_at) \
                 and now"
            ),
            Some(hint),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(src: &str) -> CompiledTemplate {
        compile("f", src, &mut PathCache::new())
            .unwrap_or_else(|e| panic!("{src}: {e:?}"))
            .template
    }

    fn err(src: &str) -> CompileError {
        let mut errs = compile("f", src, &mut PathCache::new()).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        errs.remove(0)
    }

    #[test]
    fn detects_single_record_paths() {
        for (src, want) in [
            ("{{record.a}}", vec!["a"]),
            ("{{record.a.b}}", vec!["a", "b"]),
            ("{{ record.a.b }}", vec!["a", "b"]),
            ("{{record.[weird key].x}}", vec!["weird key", "x"]),
            ("{{record/a/b}}", vec!["a", "b"]),
            ("{{record.items.0}}", vec!["items", "0"]),
            ("{{{record.a}}}", vec!["a"]),
        ] {
            match ok(src) {
                CompiledTemplate::Record { segs, .. } => assert_eq!(segs, want, "{src}"),
                other => panic!("{src}: {other:?}"),
            }
        }
        for src in [
            "{{record}}",
            " {{record.a}}",
            "{{record.a}} ",
            "{{lowercase record.a}}",
            "{{@root.record.a}}",
            "{{flow}}",
            "{{#if record.a}}x{{/if}}",
        ] {
            assert!(matches!(ok(src), CompiledTemplate::Handlebars(_)), "{src}");
        }
    }

    #[test]
    fn syntax_error_has_offset() {
        let e = err("Hello {{record.a");
        assert_eq!(e.part, "template");
        assert!(e.offset.is_some_and(|o| o >= 6), "{e:?}");
        let e = err("ab\ncd {{#if record.a}}x{{/each}}");
        assert!(e.message.contains("each"), "{e:?}");
        assert!(e.offset.is_some_and(|o| o > 3), "{e:?}");
    }

    #[test]
    fn line_col_conversion() {
        assert_eq!(line_col_to_offset("abc", 1, 1), Some(0));
        assert_eq!(line_col_to_offset("ab\ncd", 2, 2), Some(4));
        assert_eq!(line_col_to_offset("é{{", 1, 2), Some(2));
    }

    #[test]
    fn unknown_variable_with_hint() {
        let e = err("Hi {{email}}");
        assert!(e.message.contains("unknown variable \"email\""), "{e}");
        assert_eq!(e.hint.as_deref(), Some("did you mean \"record.email\"?"));
        assert_eq!(e.offset, Some(5));
        let e = err("{{lowercase recrod.email}}");
        assert_eq!(e.hint.as_deref(), Some("did you mean \"record.email\"?"));
        // Known roots, block scopes and locals are fine.
        ok("{{flow}} {{run.id}} {{run.started_at}} {{now}} {{this.record.a}}");
        ok("{{#each record.items}}{{sku}}{{@index}}{{/each}}");
        ok("{{#with record.address}}{{city}}{{/with}}");
        ok("{{#each record.items as |item|}}{{item.sku}}{{/each}}");
        let e = err("{{#if record.a}}{{email}}{{/if}}");
        assert!(e.message.contains("email"));
    }

    #[test]
    fn unknown_helper_with_hint() {
        let e = err("{{lowercse record.a}}");
        assert_eq!(e.message, "unknown helper \"lowercse\"");
        assert_eq!(e.hint.as_deref(), Some("did you mean \"lowercase\"?"));
        assert_eq!(e.offset, Some(2));
        let e = err("{{first (splt record.a \" \")}}");
        assert_eq!(e.hint.as_deref(), Some("did you mean \"split\"?"));
    }

    #[test]
    fn arity_and_literal_checks() {
        let e = err("{{date_format record.a}}");
        assert!(e.message.contains("takes 2 to 3 argument(s), got 1"), "{e}");
        assert!(e.hint.unwrap().contains("date_format VALUE FORMAT"));
        let e = err("{{date_format record.a \"%Q\"}}");
        assert!(e.message.contains("not a valid strftime format"), "{e}");
        assert_eq!(e.offset, Some(24));
        err("{{date_parse record.a \"%d.%m.%\"}}");
        err("{{number_format record.a 99}}");
        err("{{nth record.a \"x\"}}");
        err("{{lowercase record.a x=1}}");
        err("{{default record.a}}");
        let e = err("{{jsonpath \"$.a[\"}}");
        assert!(e.message.starts_with("jsonpath:"), "{e}");
        assert_eq!(e.offset, Some(16));
    }

    #[test]
    fn partials_are_rejected() {
        let e = err("{{> header}}");
        assert!(e.message.contains("partials"));
        assert_eq!(e.offset, Some(0));
    }

    #[test]
    fn literal_jsonpaths_are_cached() {
        let mut cache = PathCache::new();
        compile(
            "f",
            "{{jsonpath \"$.a\"}} {{jsonpath record.b \"$.c\"}}",
            &mut cache,
        )
        .unwrap();
        assert!(cache.contains_key("$.a") && cache.contains_key("$.c"));
    }
}
