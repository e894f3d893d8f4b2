//! The shared state handle ([`Store`]) with telemetry (request log and counters).

use crate::clock::Clock;
use crate::error::ApiError;
use crate::limits::{Faults, Runtime};
use crate::model::{ObjectType, fmt_ms};
use crate::props::PropertyDef;
use crate::store::{Data, Prepared, PropSel, WriteRules};
use crate::{SandboxConfig, SandboxError};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

/// One entry of the request log (`GET /_sandbox/requests`).
#[derive(Debug, Clone, Serialize)]
pub struct RequestLogEntry {
    /// HTTP method.
    pub method: String,
    /// Path without query.
    pub path: String,
    /// Query string, if any.
    pub query: Option<String>,
    /// Endpoint name (`search`, `batch_upsert`, …).
    pub endpoint: String,
    /// Response status; 0 = connection dropped without a response.
    pub status: u16,
    /// When the request arrived (ISO 8601).
    pub time: String,
    /// Time spent answering, in milliseconds.
    pub duration_ms: f64,
}

/// Counters (`GET /_sandbox/stats`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Requests seen (all paths).
    pub requests: u64,
    /// Requests per endpoint name (`search`, `batch_upsert`, `create`, `token`, …),
    /// counted when they reach the endpoint (after auth, limits and faults).
    pub endpoints: BTreeMap<String, u64>,
    /// Responses per status code.
    pub statuses: BTreeMap<String, u64>,
    /// 429 answers in total.
    pub rate_limited: u64,
    /// 429 answers per policy (`TEN_SECONDLY_ROLLING`, `SECONDLY`, `DAILY`).
    pub rate_limited_by_policy: BTreeMap<String, u64>,
    /// Injected 5xx answers.
    pub faults_injected: u64,
    /// Connections dropped without a response.
    pub connections_dropped: u64,
    /// 401 answers.
    pub unauthorized: u64,
    /// Successful OAuth token grants (refreshes).
    pub token_refreshes: u64,
    /// Live records per object type (filled when read).
    pub records: BTreeMap<String, usize>,
}

pub(crate) struct Telemetry {
    pub log: VecDeque<RequestLogEntry>,
    pub cap: usize,
    pub stats: Stats,
}

pub(crate) struct Inner {
    pub data: RwLock<Data>,
    pub rt: Mutex<Runtime>,
    pub tele: Mutex<Telemetry>,
    /// Authorization codes and the scopes of tokens granted fewer than all.
    pub oauth: Mutex<crate::oauth::OAuthState>,
    pub clock: Clock,
    pub config: SandboxConfig,
}

/// A cheap, cloneable handle on the sandbox's state: seed, touch and read records, read
/// counters and the request log, change faults, reset.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

pub(crate) fn parse_type(s: &str) -> Result<ObjectType, SandboxError> {
    ObjectType::parse(s).ok_or_else(|| SandboxError::UnknownObjectType(s.to_string()))
}

impl Store {
    /// A fresh, empty store with the given configuration (no server).
    pub fn new(config: SandboxConfig) -> Store {
        let clock = Clock::new(config.clock_offset_ms);
        Store {
            inner: Arc::new(Inner {
                data: RwLock::new(Data::new()),
                rt: Mutex::new(Runtime::new(&config, clock.now_ms())),
                tele: Mutex::new(Telemetry {
                    log: VecDeque::new(),
                    cap: config.request_log_capacity.max(1),
                    stats: Stats::default(),
                }),
                oauth: Mutex::new(crate::oauth::OAuthState::default()),
                clock,
                config,
            }),
        }
    }

    /// The configuration the sandbox started with.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// The sandbox's clock (shared with the server): every timestamp, search lag, token expiry
    /// and rate window follows it.
    pub fn clock(&self) -> Clock {
        self.inner.clock.clone()
    }

    /// Epoch ms now, on the sandbox's clock.
    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Now on the sandbox's clock, as HubSpot formats times.
    pub(crate) fn now_iso(&self) -> String {
        fmt_ms(self.now_ms())
    }

    /// When a write made now becomes visible to search, if there is a search lag.
    pub(crate) fn visible_at(&self, lag: std::time::Duration) -> Option<i64> {
        (!lag.is_zero()).then(|| {
            self.now_ms()
                .saturating_add(i64::try_from(lag.as_millis()).unwrap_or(i64::MAX))
        })
    }

    /// Current limit/fault knobs.
    pub fn faults(&self) -> Faults {
        self.inner.rt.lock().faults.clone()
    }

    /// Replaces the limit/fault knobs (rolling windows are kept).
    pub fn set_faults(&self, faults: Faults) {
        self.inner.rt.lock().faults = faults;
    }

    /// Changes some knobs in place.
    pub fn update_faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.inner.rt.lock().faults);
    }

    /// Counters, with live record counts.
    pub fn stats(&self) -> Stats {
        let mut s = self.inner.tele.lock().stats.clone();
        let data = self.inner.data.read();
        for ty in ObjectType::ALL {
            s.records.insert(ty.as_str().into(), data.ts(ty).live.len());
        }
        s
    }

    /// OAuth token refreshes granted so far.
    pub fn token_refreshes(&self) -> u64 {
        self.inner.tele.lock().stats.token_refreshes
    }

    /// Requests of one endpoint name so far (`search`, `batch_upsert`, …).
    pub fn endpoint_count(&self, endpoint: &str) -> u64 {
        self.inner
            .tele
            .lock()
            .stats
            .endpoints
            .get(endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// The request log, oldest first.
    pub fn requests(&self) -> Vec<RequestLogEntry> {
        self.inner.tele.lock().log.iter().cloned().collect()
    }

    /// Empties all records, restores default properties, clears counters, the request log,
    /// rate windows and issued tokens, and restores the start configuration's knobs and clock
    /// offset.
    pub fn reset(&self) {
        *self.inner.data.write() = Data::new();
        let _ = self
            .inner
            .clock
            .set_offset_ms(self.inner.config.clock_offset_ms);
        {
            let mut rt = self.inner.rt.lock();
            *rt = Runtime::new(&self.inner.config, self.now_ms());
        }
        *self.inner.oauth.lock() = crate::oauth::OAuthState::default();
        let mut t = self.inner.tele.lock();
        t.log.clear();
        t.stats = Stats::default();
    }

    /// Live records of a type.
    pub fn count(&self, object_type: &str) -> Result<usize, SandboxError> {
        let ty = parse_type(object_type)?;
        Ok(self.inner.data.read().ts(ty).live.len())
    }

    /// A record (with every set property) by id, as the API renders it; archived ones too. An
    /// id that was merged away gives the record it was merged into, as HubSpot's GET does.
    pub fn get(&self, object_type: &str, id: &str) -> Result<Option<Value>, SandboxError> {
        let ty = parse_type(object_type)?;
        let data = self.inner.data.read();
        let Ok(n) = id.parse::<u64>() else {
            return Ok(None);
        };
        let ts = data.ts(ty);
        let Some(n) = ts
            .records
            .contains_key(&n)
            .then_some(n)
            .or_else(|| ts.survivor(n))
        else {
            return Ok(None);
        };
        Ok(Some(Value::Object(data.render(
            ty,
            n,
            &PropSel::All,
            &ObjectType::ALL,
        ))))
    }

    /// A live record by a unique property (`email`, `external_id`, …).
    pub fn find(
        &self,
        object_type: &str,
        id_property: &str,
        value: &str,
    ) -> Result<Option<Value>, SandboxError> {
        let ty = parse_type(object_type)?;
        let data = self.inner.data.read();
        let Some(id) = data.resolve(ty, value, Some(id_property), false)? else {
            return Ok(None);
        };
        Ok(Some(Value::Object(data.render(
            ty,
            id,
            &PropSel::All,
            &ObjectType::ALL,
        ))))
    }

    /// Every live record of a type (all properties), in id order.
    pub fn records(&self, object_type: &str) -> Result<Vec<Value>, SandboxError> {
        let ty = parse_type(object_type)?;
        let data = self.inner.data.read();
        Ok(data
            .ts(ty)
            .live
            .iter()
            .map(|id| Value::Object(data.render(ty, *id, &PropSel::All, &ObjectType::ALL)))
            .collect())
    }

    /// Changes a record as a person in the HubSpot UI would: sets properties (validated; `""`
    /// clears) and bumps the modified time to now (or `at_ms`), even if nothing changed.
    /// Subject to the search lag. Returns the record.
    pub fn touch(
        &self,
        object_type: &str,
        id: &str,
        properties: &Map<String, Value>,
        at_ms: Option<i64>,
    ) -> Result<Value, SandboxError> {
        let ty = parse_type(object_type)?;
        let lag = self.inner.rt.lock().faults.search_lag;
        let mut data = self.inner.data.write();
        let rid = data
            .resolve(ty, id, None, false)?
            .ok_or_else(|| ApiError::not_found(format!("No {} with id {id}", ty.singular())))?;
        let (props, _, _) = data.validate_props(ty, properties, false)?;
        data.check_unique(ty, Some(rid), &props, &mut HashSet::new())?;
        let now = at_ms.unwrap_or_else(|| self.now_ms());
        let visible_at = self.visible_at(lag);
        data.apply(
            ty,
            Prepared {
                target: Some(rid),
                props,
                assoc: vec![],
            },
            now,
            visible_at,
        );
        // bump even when nothing changed
        let ts = data.ts_mut(ty);
        let rec = ts.records.get_mut(&rid).expect("record");
        if rec.updated != now {
            ts.by_modified.remove(&(rec.updated, rid));
            rec.updated = now;
            ts.by_modified.insert((now, rid));
        }
        if let Some(t) = visible_at {
            rec.searchable_at = Some(t);
            ts.lag_until = Some(ts.lag_until.map_or(t, |u| u.max(t)));
        }
        Ok(Value::Object(data.render(ty, rid, &PropSel::All, &[])))
    }

    /// Merges record `id_to_merge` into `primary_id` as `POST /crm/v3/objects/{type}/merge`
    /// does (a person merging duplicates in the UI): the primary survives with its id and
    /// values, gains the other's values for properties it lacks and all its associations; the
    /// merged id then stands for the primary in single reads and writes, is left out of batch
    /// updates and reads without an error, and never shows in search. Returns the survivor.
    pub fn merge(
        &self,
        object_type: &str,
        primary_id: &str,
        id_to_merge: &str,
    ) -> Result<Value, SandboxError> {
        let ty = parse_type(object_type)?;
        let lag = self.inner.rt.lock().faults.search_lag;
        let vis = self.visible_at(lag);
        let now = self.now_ms();
        let mut data = self.inner.data.write();
        let find = |data: &Data, id: &str| {
            data.resolve_following(ty, id, None)?
                .ok_or_else(|| ApiError::not_found(format!("No {} with id {id}", ty.singular())))
        };
        let a = find(&data, primary_id)?;
        let b = find(&data, id_to_merge)?;
        let id = data.merge(ty, a, b, now, vis)?;
        Ok(Value::Object(data.render(ty, id, &PropSel::All, &[])))
    }

    /// The id a merged-away record now stands for (following merges of merges); `None` for an
    /// id that was never merged away.
    pub fn merged_into(&self, object_type: &str, id: &str) -> Result<Option<String>, SandboxError> {
        let ty = parse_type(object_type)?;
        let data = self.inner.data.read();
        let ts = data.ts(ty);
        Ok(id
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| ts.merged.contains_key(n))
            .and_then(|n| ts.survivor(n))
            .map(|n| n.to_string()))
    }

    /// Sets the portal-side write rules of a type (replacing its previous ones; `default()`
    /// clears them). Their properties must exist. API creates and updates (single and batch)
    /// that break a rule are refused with HubSpot's 400 `VALIDATION_ERROR` naming the missing
    /// properties in `context.propertyName`.
    pub fn set_write_rules(
        &self,
        object_type: &str,
        rules: WriteRules,
    ) -> Result<(), SandboxError> {
        let ty = parse_type(object_type)?;
        let mut data = self.inner.data.write();
        let ts = data.ts(ty);
        let names = rules.required_on_create.iter().chain(
            rules
                .required_when
                .iter()
                .flat_map(|r| std::iter::once(&r.property).chain(r.then.iter())),
        );
        let unknown: Vec<String> = names.filter(|n| ts.prop(n).is_none()).cloned().collect();
        if !unknown.is_empty() {
            return Err(ApiError::validation(format!(
                "unknown {ty} properties in write rules: {}",
                unknown.join(", ")
            ))
            .with_context("propertyName", unknown)
            .into());
        }
        data.ts_mut(ty).rules = rules;
        Ok(())
    }

    /// The write rules of a type.
    pub fn write_rules(&self, object_type: &str) -> Result<WriteRules, SandboxError> {
        let ty = parse_type(object_type)?;
        Ok(self.inner.data.read().ts(ty).rules.clone())
    }

    /// Archives a record as a person in the UI would.
    pub fn archive(&self, object_type: &str, id: &str) -> Result<bool, SandboxError> {
        let ty = parse_type(object_type)?;
        let Ok(n) = id.parse::<u64>() else {
            return Ok(false);
        };
        let now = self.now_ms();
        Ok(self.inner.data.write().archive(ty, n, now))
    }

    /// Associates two records (both directions).
    pub fn associate(
        &self,
        from_type: &str,
        from_id: &str,
        to_type: &str,
        to_id: &str,
    ) -> Result<(), SandboxError> {
        let (ft, tt) = (parse_type(from_type)?, parse_type(to_type)?);
        let mut data = self.inner.data.write();
        let f = data.resolve(ft, from_id, None, false)?.ok_or_else(|| {
            ApiError::not_found(format!("No {} with id {from_id}", ft.singular()))
        })?;
        let t = data
            .resolve(tt, to_id, None, false)?
            .ok_or_else(|| ApiError::not_found(format!("No {} with id {to_id}", tt.singular())))?;
        data.associate(ft, f, tt, t);
        Ok(())
    }

    /// Defines a property (as `POST /crm/v3/properties/{objectType}` does).
    pub fn define_property(&self, object_type: &str, def: PropertyDef) -> Result<(), SandboxError> {
        let ty = parse_type(object_type)?;
        let mut data = self.inner.data.write();
        if data.ts(ty).prop(&def.name).is_some() {
            return Err(ApiError::conflict(format!(
                "A property named '{}' already exists.",
                def.name
            ))
            .into());
        }
        data.ts_mut(ty).add_property(def);
        Ok(())
    }

    /// Removes a property definition a portal defined (HubSpot's default properties cannot be
    /// archived); records keep their values, but writes to it are refused again. Returns
    /// whether there was one.
    pub fn remove_property(&self, object_type: &str, name: &str) -> Result<bool, SandboxError> {
        let ty = parse_type(object_type)?;
        let mut data = self.inner.data.write();
        let Some(def) = data.ts(ty).prop(name) else {
            return Ok(false);
        };
        if !def.modification_metadata.archivable {
            return Err(ApiError::validation(format!(
                "{name} is a HubSpot default property of {ty} and cannot be archived"
            ))
            .with_context("propertyName", vec![name.to_string()])
            .into());
        }
        data.ts_mut(ty).remove_property(name);
        Ok(true)
    }

    /// Restricts a static token to `scopes` (`None`: every scope again). Requests it makes that
    /// need another scope are refused with 403 `MISSING_SCOPES`, as HubSpot refuses them. At most
    /// [`crate::MAX_OAUTH_ENTRIES`] tokens can be restricted at once.
    pub fn restrict_token(
        &self,
        token: &str,
        scopes: Option<Vec<String>>,
    ) -> Result<(), SandboxError> {
        self.inner
            .oauth
            .lock()
            .restrict_static(token, scopes)
            .map_err(|m| ApiError::validation(m).into())
    }

    /// Property definitions of a type.
    pub fn properties(&self, object_type: &str) -> Result<Vec<PropertyDef>, SandboxError> {
        let ty = parse_type(object_type)?;
        Ok(self.inner.data.read().ts(ty).props.clone())
    }

    pub(crate) fn log(&self, entry: RequestLogEntry) {
        let mut t = self.inner.tele.lock();
        t.stats.requests += 1;
        *t.stats
            .statuses
            .entry(entry.status.to_string())
            .or_default() += 1;
        if t.log.len() >= t.cap {
            t.log.pop_front();
        }
        t.log.push_back(entry);
    }

    pub(crate) fn bump(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.inner.tele.lock().stats);
    }
}
