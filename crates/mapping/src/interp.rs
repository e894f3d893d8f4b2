//! A direct evaluator for the common subset of templates: text, `{{root.a.b}}` values and calls
//! of this crate's helpers with path, literal and subexpression arguments. It borrows the
//! record instead of building a Handlebars context, and gives the same results and errors as
//! Handlebars (tested side by side). Anything else (blocks, built-in helpers, `@root`, `../`,
//! `this`) is rendered by Handlebars.

use handlebars::template::{HelperTemplate, Parameter, TemplateElement};
use handlebars::{JsonRender, Path, PathSeg, Template};
use serde_json::Value;

use crate::helpers::{Budget, Out, PathCache, Spec, call_spec, find_spec, size_within};
use crate::limits::MAX_FIELD_BYTES;
use crate::template::{CompiledTemplate, LookupError};

/// A template in the evaluator's form.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    nodes: Vec<Node>,
    /// Whether it reads `flow`, `run` or `now`.
    pub uses_env: bool,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Expr(Expr),
}

#[derive(Debug, Clone)]
enum Expr {
    Path {
        root: Root,
        segs: Vec<String>,
        raw: String,
    },
    Lit(Value),
    Call {
        spec: &'static Spec,
        params: Vec<Expr>,
        hash: Vec<(String, Expr)>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Root {
    Record,
    Flow,
    Run,
    Now,
}

/// The values a template sees besides the record.
pub(crate) struct Env {
    pub flow: Value,
    pub run: Value,
    pub now: Value,
}

/// Why rendering failed.
pub(crate) enum Fail {
    /// No value (a missing variable, or a helper without a result): the default applies.
    Absent(String),
    /// An error.
    Error(String),
}

impl Program {
    /// The evaluator's form of `tpl`, or `None` when Handlebars must render it.
    pub(crate) fn compile(tpl: &Template) -> Option<Program> {
        let mut nodes = Vec::with_capacity(tpl.elements.len());
        for el in &tpl.elements {
            match el {
                TemplateElement::RawString(s) => nodes.push(Node::Text(s.clone())),
                TemplateElement::Comment(_) => {}
                TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht) => {
                    nodes.push(Node::Expr(expr(ht)?));
                }
                _ => return None,
            }
        }
        let uses_env = nodes
            .iter()
            .any(|n| matches!(n, Node::Expr(e) if e.uses_env()));
        Some(Program { nodes, uses_env })
    }

    /// Renders against `record` (and `env`, required when `uses_env`), within `budget` and
    /// [`MAX_FIELD_BYTES`].
    pub(crate) fn render(
        &self,
        record: &Value,
        env: Option<&Env>,
        paths: &PathCache,
        budget: &Budget,
    ) -> Result<String, Fail> {
        let mut out = String::new();
        let scope = Scope {
            record,
            env,
            paths,
            budget,
        };
        for n in &self.nodes {
            match n {
                Node::Text(s) => push(&mut out, s)?,
                Node::Expr(e) => match scope.eval(e)? {
                    Val::Missing(Some(raw)) => {
                        return Err(Fail::Absent(format!("missing variable {raw}")));
                    }
                    Val::Missing(None) => return Err(Fail::Absent("missing variable".into())),
                    Val::NoValue(why) => return Err(Fail::Absent(why)),
                    Val::Ref(v) => push_rendered(&mut out, v)?,
                    Val::Owned(v) => push_rendered(&mut out, &v)?,
                },
            }
        }
        Ok(out)
    }
}

/// A rendered field would be larger than [`MAX_FIELD_BYTES`].
pub(crate) fn output_exceeds() -> String {
    format!(
        "the output would exceed {} (the limit per field)",
        crate::limits::bytes(MAX_FIELD_BYTES)
    )
}

fn push(out: &mut String, s: &str) -> Result<(), Fail> {
    if out.len() + s.len() > MAX_FIELD_BYTES {
        return Err(Fail::Error(output_exceeds()));
    }
    out.push_str(s);
    Ok(())
}

fn push_rendered(out: &mut String, v: &Value) -> Result<(), Fail> {
    match v {
        Value::String(s) => push(out, s),
        other => {
            // Lists and objects render short (`[a, b]`, `[object]`), but not their size.
            size_within(other, MAX_FIELD_BYTES - out.len())
                .ok_or_else(|| Fail::Error(output_exceeds()))?;
            push(out, &other.render())
        }
    }
}

impl Expr {
    fn uses_env(&self) -> bool {
        match self {
            Expr::Path { root, .. } => *root != Root::Record,
            Expr::Lit(_) => false,
            Expr::Call { params, hash, .. } => {
                params.iter().any(Expr::uses_env) || hash.iter().any(|(_, e)| e.uses_env())
            }
        }
    }
}

fn expr(ht: &HelperTemplate) -> Option<Expr> {
    if ht.block || ht.template.is_some() || ht.inverse.is_some() || ht.block_param.is_some() {
        return None;
    }
    if ht.params.is_empty() && ht.hash.is_empty() {
        return match &ht.name {
            Parameter::Path(p) => path(p),
            _ => None,
        };
    }
    let Parameter::Name(name) = &ht.name else {
        return None;
    };
    let spec = find_spec(name)?;
    let params = ht.params.iter().map(param).collect::<Option<Vec<_>>>()?;
    let mut hash = ht
        .hash
        .iter()
        .map(|(k, v)| Some((k.clone(), param(v)?)))
        .collect::<Option<Vec<_>>>()?;
    // Handlebars hands helpers their hash in key order.
    hash.sort_by(|a, b| a.0.cmp(&b.0));
    Some(Expr::Call { spec, params, hash })
}

fn param(p: &Parameter) -> Option<Expr> {
    match p {
        Parameter::Path(p) => path(p),
        Parameter::Literal(v) => Some(Expr::Lit(v.clone())),
        Parameter::Subexpression(s) => match s.as_element() {
            TemplateElement::Expression(ht) => expr(ht),
            _ => None,
        },
        _ => None,
    }
}

fn path(p: &Path) -> Option<Expr> {
    let Path::Relative((segs, raw)) = p else {
        return None;
    };
    // `this` is dropped from `segs` by the parser; its scope rules are Handlebars' business.
    if raw.starts_with("this") || raw.starts_with("./") || raw.starts_with('@') {
        return None;
    }
    let names = segs
        .iter()
        .map(|s| match s {
            PathSeg::Named(n) => Some(n.clone()),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    let (first, rest) = names.split_first()?;
    let root = match first.as_str() {
        "record" => Root::Record,
        "flow" => Root::Flow,
        "run" => Root::Run,
        "now" => Root::Now,
        _ => return None,
    };
    Some(Expr::Path {
        root,
        segs: rest.to_vec(),
        raw: raw.clone(),
    })
}

struct Scope<'a> {
    record: &'a Value,
    env: Option<&'a Env>,
    paths: &'a PathCache,
    budget: &'a Budget,
}

enum Val<'a> {
    /// A missing variable, with its path.
    Missing(Option<&'a str>),
    /// A helper without a result, with the reason.
    NoValue(String),
    Ref(&'a Value),
    Owned(Value),
}

impl Val<'_> {
    fn as_value(&self) -> Option<&Value> {
        match self {
            Val::Missing(_) | Val::NoValue(_) => None,
            Val::Ref(v) => Some(v),
            Val::Owned(v) => Some(v),
        }
    }
}

impl<'a> Scope<'a> {
    fn eval(&self, e: &'a Expr) -> Result<Val<'a>, Fail> {
        match e {
            Expr::Path { root, segs, raw } => {
                let base = match root {
                    Root::Record => self.record,
                    other => {
                        let env = self
                            .env
                            .ok_or_else(|| Fail::Error("internal: no run context".into()))?;
                        match other {
                            Root::Flow => &env.flow,
                            Root::Run => &env.run,
                            _ => &env.now,
                        }
                    }
                };
                match CompiledTemplate::lookup(segs, base) {
                    Ok(v) => Ok(Val::Ref(v)),
                    Err(LookupError::Missing) => Ok(Val::Missing(Some(raw))),
                    Err(LookupError::BadIndex(s)) => {
                        Err(Fail::Error(crate::mapping::bad_index(&s)))
                    }
                }
            }
            Expr::Lit(v) => Ok(Val::Ref(v)),
            Expr::Call { spec, params, hash } => {
                let mut vals = Vec::with_capacity(params.len());
                for (i, p) in params.iter().enumerate() {
                    let v = self.eval(p)?;
                    let missing = match &v {
                        Val::Missing(path) => Some(*path),
                        Val::NoValue(_) => Some(None),
                        _ => None,
                    };
                    if let Some(path) = missing {
                        if !spec.tolerant {
                            return Err(match path {
                                Some(raw) => Fail::Absent(format!("missing variable {raw}")),
                                None => Fail::Error(format!(
                                    "{}: argument {} has no value",
                                    spec.name,
                                    i + 1
                                )),
                            });
                        }
                    }
                    vals.push(v);
                }
                let mut hvals = Vec::with_capacity(hash.len());
                for (k, p) in hash {
                    match self.eval(p)? {
                        Val::Missing(Some(raw)) => {
                            return Err(Fail::Absent(format!("missing variable {raw}")));
                        }
                        Val::Missing(None) | Val::NoValue(_) => {
                            return Err(Fail::Absent("missing variable".into()));
                        }
                        v => hvals.push((k.as_str(), v)),
                    }
                }
                let args: Vec<Option<&Value>> = vals.iter().map(Val::as_value).collect();
                let hash: Vec<(&str, &Value)> = hvals
                    .iter()
                    .filter_map(|(k, v)| v.as_value().map(|v| (*k, v)))
                    .collect();
                match call_spec(spec, args, hash, Some(self.record), self.paths, self.budget) {
                    Ok(Out::Val(v)) => Ok(Val::Owned(v)),
                    Ok(Out::Missing(why)) => Ok(Val::NoValue(why)),
                    Err(m) => Err(Fail::Error(m)),
                }
            }
        }
    }
}
