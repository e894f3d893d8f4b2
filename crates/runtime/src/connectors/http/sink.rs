//! Send mapped records to a JSON HTTP API: one request per record, or JSON arrays of up to
//! `batch_size` records.
//!
//! The path is a template (`/customers/{{record.id}}`) rendered against the source record; a
//! record whose path cannot be rendered fails alone (when batching, the path is rendered once,
//! with the batch's first record). Every request carries an `Idempotency-Key`
//! (`{flow}:{record key}:{record version}`, or for a batch `{flow}:batch:{hash of its keys}`)
//! so a receiver can drop what a restart sends twice.
//!
//! Outcomes: a 2xx is `Done` (with the response's `id`, if any). A receiver that is down or
//! overloaded — no answer (refused, reset, timed out), 408, 429 or 5xx after the connection's
//! retries — is `Transient`: nothing more of the page is sent and the page comes again later,
//! with the same idempotency keys. Any other status is `Failed` (kept for replay) with the
//! status and the start of the body.

use async_trait::async_trait;
use indexmap::IndexMap;
use reqwest::Method;
use rivulet_mapping::{Context, FieldSpec, Mapping, OutputMode};
use rivulet_spec::model::{HttpSink, HttpWriteMethod};
use serde_json::Value;

use super::client::{HttpClient, HttpError, JsonResponse};
use super::source::fnv1a;
use crate::connector::{Action, RetrySafety};
use crate::record::{ActionOutcome, Prepared};

/// Why an HTTP sink cannot be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpSinkError {
    /// The path template does not compile.
    #[error("path template `{template}`: {message}")]
    Template {
        /// The template.
        template: String,
        /// What is wrong.
        message: String,
    },
}

/// Sends records to an HTTP API.
#[derive(Debug, Clone)]
pub struct HttpWriter {
    client: HttpClient,
    method: Method,
    path: PathTemplate,
    batch_size: Option<usize>,
    flow: String,
    connection: String,
}

#[derive(Debug, Clone)]
enum PathTemplate {
    Fixed(String),
    Template(Mapping),
}

const PATH_FIELD: &str = "path";

impl HttpWriter {
    /// A writer for `config` through `client`, for the flow named `flow`.
    pub fn new(
        config: &HttpSink,
        client: HttpClient,
        flow: &str,
    ) -> Result<HttpWriter, HttpSinkError> {
        let path = if config.path.contains("{{") {
            let mut fields = IndexMap::new();
            fields.insert(PATH_FIELD.to_string(), FieldSpec::template(&config.path));
            let mapping = Mapping::compile(&fields).map_err(|errs| HttpSinkError::Template {
                template: config.path.clone(),
                message: errs
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            })?;
            PathTemplate::Template(mapping)
        } else {
            PathTemplate::Fixed(config.path.clone())
        };
        Ok(HttpWriter {
            client,
            method: match config.method {
                HttpWriteMethod::Post => Method::POST,
                HttpWriteMethod::Put => Method::PUT,
                HttpWriteMethod::Patch => Method::PATCH,
            },
            path,
            batch_size: config.batch_size.map(|n| n.max(1) as usize),
            flow: flow.to_string(),
            connection: config.connection.clone(),
        })
    }

    /// The client (for its counters).
    pub fn client(&self) -> &HttpClient {
        &self.client
    }

    /// Sends the batch; one outcome per record, in order. After the first transient failure
    /// (the receiver is down or overloaded) nothing more is sent: the rest of the batch gets
    /// the same outcome, and the whole page is tried again later.
    pub async fn send_all(&self, batch: &[Prepared<'_>], ctx: &Context) -> Vec<ActionOutcome> {
        let mut outcomes: Vec<ActionOutcome> = Vec::with_capacity(batch.len());
        let size = self.batch_size.unwrap_or(1);
        for chunk in batch.chunks(size) {
            if let Some(down) = outcomes
                .iter()
                .find(|o| matches!(o, ActionOutcome::Transient { .. }))
            {
                let down = down.clone();
                outcomes.extend(chunk.iter().map(|_| down.clone()));
                continue;
            }
            match self.batch_size {
                None => outcomes.push(self.write_one(&chunk[0], ctx).await),
                Some(_) => outcomes.extend(self.write_chunk(chunk, ctx).await),
            }
        }
        outcomes
    }

    fn render_path(&self, p: &Prepared<'_>, ctx: &Context) -> Result<String, String> {
        match &self.path {
            PathTemplate::Fixed(s) => Ok(s.clone()),
            PathTemplate::Template(m) => match m.apply(&p.record.data, ctx, OutputMode::Native) {
                Ok(mut out) => match out.swap_remove(PATH_FIELD) {
                    Some(Value::String(s)) => Ok(s),
                    Some(other) => Ok(other.to_string()),
                    None => Err("the path template rendered nothing".into()),
                },
                Err(errs) => Err(format!(
                    "path template: {}",
                    errs.iter()
                        .map(|e| e.message.clone())
                        .collect::<Vec<_>>()
                        .join("; ")
                )),
            },
        }
    }

    async fn write_one(&self, p: &Prepared<'_>, ctx: &Context) -> ActionOutcome {
        let path = match self.render_path(p, ctx) {
            Ok(path) => path,
            Err(message) => return ActionOutcome::failed(message),
        };
        let key = format!("{}:{}:{}", self.flow, p.record.key, p.record.version);
        match self.send(&path, &fields_json(p), key).await {
            Ok(resp) => ActionOutcome::Done {
                id: id_of(&resp.body),
            },
            Err(e) => outcome_of_error(e),
        }
    }

    /// One request with the sink's method and an `Idempotency-Key`.
    async fn send(&self, path: &str, body: &Value, key: String) -> Result<JsonResponse, HttpError> {
        self.client
            .send_json(
                self.method.clone(),
                path,
                &[],
                Some(body),
                &[("Idempotency-Key", key)],
            )
            .await
    }

    async fn write_chunk(&self, chunk: &[Prepared<'_>], ctx: &Context) -> Vec<ActionOutcome> {
        let Some(first) = chunk.first() else {
            return Vec::new();
        };
        let path = match self.render_path(first, ctx) {
            Ok(path) => path,
            Err(message) => {
                return chunk
                    .iter()
                    .map(|_| ActionOutcome::failed(message.clone()))
                    .collect();
            }
        };
        let mut keys = String::new();
        for p in chunk {
            keys.push_str(&p.record.key);
            keys.push('\u{1f}');
            keys.push_str(&p.record.version);
            keys.push('\u{1e}');
        }
        let key = format!("{}:batch:{:016x}", self.flow, fnv1a(keys.as_bytes()));
        let body = Value::Array(chunk.iter().map(fields_json).collect());
        match self.send(&path, &body, key).await {
            Ok(resp) => {
                let ids: Vec<Option<String>> = match &resp.body {
                    Value::Array(a) if a.len() == chunk.len() => a.iter().map(id_of).collect(),
                    _ => vec![None; chunk.len()],
                };
                ids.into_iter()
                    .map(|id| ActionOutcome::Done { id })
                    .collect()
            }
            Err(e) => {
                let outcome = outcome_of_error(e);
                chunk.iter().map(|_| outcome.clone()).collect()
            }
        }
    }
}

#[async_trait]
impl Action for HttpWriter {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn destination(&self) -> String {
        format!("the HTTP API of connection `{}`", self.connection)
    }

    fn output_mode(&self) -> OutputMode {
        OutputMode::Native
    }

    fn retry_safety(&self) -> RetrySafety {
        RetrySafety::AtLeastOnceWithKey
    }

    async fn write(
        &self,
        batch: &[Prepared<'_>],
        _known_ids: &[Option<String>],
        ctx: &Context,
    ) -> Vec<ActionOutcome> {
        self.send_all(batch, ctx).await
    }
}

fn id_of(body: &Value) -> Option<String> {
    match body.get("id") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// What an error means for the records sent: the receiver refused them (permanent: kept for
/// replay), or it could not take them now (transient: the page is tried again, with the same
/// idempotency keys).
fn outcome_of_error(e: HttpError) -> ActionOutcome {
    match e {
        e if e.is_transient() => ActionOutcome::transient(e.to_string()),
        // A success whose body is not JSON, or too large to read: written all the same.
        HttpError::NotJson { status, .. } | HttpError::TooLarge { status, .. }
            if (200..300).contains(&status) =>
        {
            ActionOutcome::Done { id: None }
        }
        other => ActionOutcome::failed(other.to_string()),
    }
}

/// The mapped fields of a record as a JSON object, in mapping order.
fn fields_json(p: &Prepared<'_>) -> Value {
    Value::Object(
        p.fields
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}
