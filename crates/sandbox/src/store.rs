//! The in-memory CRM: records, indexes, property definitions and write semantics.

use crate::error::ApiError;
use crate::model::{ObjectType, default_association_type, fmt_ms, parse_ts};
use crate::props::{InvalidValue, PropertyDef, coerce, default_properties, normalise};
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// One stored record.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub props: HashMap<String, String>,
    pub created: i64,
    pub updated: i64,
    pub archived_at: Option<i64>,
    /// `Some(t)`: invisible to search until `t`, epoch ms on the sandbox's clock (search index
    /// lag).
    pub searchable_at: Option<i64>,
    pub assoc: BTreeMap<ObjectType, BTreeSet<u64>>,
}

/// Records and indexes of one object type.
#[derive(Debug)]
pub(crate) struct TypeStore {
    pub ty: ObjectType,
    pub props: Vec<PropertyDef>,
    pub prop_idx: HashMap<String, usize>,
    pub records: HashMap<u64, Record>,
    pub live: BTreeSet<u64>,
    pub archived: BTreeSet<u64>,
    pub by_created: BTreeSet<(i64, u64)>,
    pub by_modified: BTreeSet<(i64, u64)>,
    /// property → normalised value → record id (live records only).
    pub unique: HashMap<String, HashMap<String, u64>>,
    /// The latest `searchable_at` handed out: after it, nothing is lagging.
    pub lag_until: Option<i64>,
    /// Ids merged away → the record they were merged into (which may itself be merged away
    /// later; [`TypeStore::survivor`] follows the chain).
    pub merged: HashMap<u64, u64>,
    /// Portal-side write rules (required properties) checked on API writes.
    pub rules: WriteRules,
}

/// Portal-side validation rules for API writes of one object type, as HubSpot enforces them
/// since its 2026-09 API version ("conditionally required properties", "required fields on the
/// create form"). Set with `PUT /_sandbox/validation/{objectType}` or
/// [`crate::Store::set_write_rules`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriteRules {
    /// Properties every create must set (non-empty).
    pub required_on_create: Vec<String>,
    /// Properties required once another property has a given value.
    #[serde(deserialize_with = "one_or_many")]
    pub required_when: Vec<RequiredWhen>,
}

/// "When `property` is `equals` (or, without `equals`, has any value), `then` must be set"
/// (checked on the record as the write would leave it, on creates and updates).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequiredWhen {
    /// The property whose value triggers the rule.
    pub property: String,
    /// The value (compared case-insensitively) that triggers it; `None`: any value does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    /// The properties that must then have a value.
    pub then: Vec<String>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<RequiredWhen>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(RequiredWhen),
        Many(Vec<RequiredWhen>),
    }
    use serde::Deserialize;
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(r) => vec![r],
        OneOrMany::Many(v) => v,
    })
}

impl TypeStore {
    fn new(ty: ObjectType) -> Self {
        let mut t = TypeStore {
            ty,
            props: vec![],
            prop_idx: HashMap::new(),
            records: HashMap::new(),
            live: BTreeSet::new(),
            archived: BTreeSet::new(),
            by_created: BTreeSet::new(),
            by_modified: BTreeSet::new(),
            unique: HashMap::new(),
            lag_until: None,
            merged: HashMap::new(),
            rules: WriteRules::default(),
        };
        for p in default_properties(ty) {
            t.add_property(p);
        }
        t
    }

    pub fn add_property(&mut self, p: PropertyDef) {
        if self.is_unique_def(&p) {
            self.unique.entry(p.name.clone()).or_default();
        }
        self.prop_idx.insert(p.name.clone(), self.props.len());
        self.props.push(p);
    }

    pub fn remove_property(&mut self, name: &str) {
        self.props.retain(|p| p.name != name);
        self.prop_idx = self
            .props
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i))
            .collect();
        self.unique.remove(name);
    }

    fn is_unique_def(&self, p: &PropertyDef) -> bool {
        p.has_unique_value || (self.ty == ObjectType::Contacts && p.name == "email")
    }

    pub fn prop(&self, name: &str) -> Option<&PropertyDef> {
        self.prop_idx.get(name).map(|i| &self.props[*i])
    }

    /// Whether `name` can serve as `idProperty`.
    pub fn is_unique(&self, name: &str) -> bool {
        self.unique.contains_key(name)
    }

    /// The normalised key of a unique value (emails compare case-insensitively).
    pub fn unique_key(&self, name: &str, value: &str) -> String {
        if name == "email" {
            value.trim().to_ascii_lowercase()
        } else {
            value.to_string()
        }
    }

    /// Whether `name` is one of the system timestamp/id properties computed from the record.
    pub fn system_value<'a>(&self, id: u64, rec: &'a Record, name: &str) -> Option<Cow<'a, str>> {
        match name {
            "hs_object_id" => Some(Cow::Owned(id.to_string())),
            "createdate" => Some(Cow::Owned(fmt_ms(rec.created))),
            "hs_lastmodifieddate" => Some(Cow::Owned(fmt_ms(rec.updated))),
            "lastmodifieddate" if self.ty == ObjectType::Contacts => {
                Some(Cow::Owned(fmt_ms(rec.updated)))
            }
            _ => rec.props.get(name).map(|s| Cow::Borrowed(s.as_str())),
        }
    }

    pub(crate) fn insert_indexes(&mut self, id: u64) {
        let rec = &self.records[&id];
        self.by_created.insert((rec.created, id));
        self.by_modified.insert((rec.updated, id));
        self.live.insert(id);
        let mut keys = vec![];
        for name in self.unique.keys() {
            if let Some(v) = rec.props.get(name)
                && !v.is_empty()
            {
                keys.push((name.clone(), self.unique_key(name, v)));
            }
        }
        for (name, key) in keys {
            self.unique.entry(name).or_default().insert(key, id);
        }
    }

    fn remove_indexes(&mut self, id: u64) {
        let Some(rec) = self.records.get(&id) else {
            return;
        };
        self.by_created.remove(&(rec.created, id));
        self.by_modified.remove(&(rec.updated, id));
        self.live.remove(&id);
        let mut keys = vec![];
        for name in self.unique.keys() {
            if let Some(v) = rec.props.get(name)
                && !v.is_empty()
            {
                keys.push((name.clone(), self.unique_key(name, v)));
            }
        }
        for (name, key) in keys {
            if let Some(m) = self.unique.get_mut(&name)
                && m.get(&key) == Some(&id)
            {
                m.remove(&key);
            }
        }
    }

    /// The live record an id now stands for: itself, or the record it was merged into.
    pub fn survivor(&self, id: u64) -> Option<u64> {
        let mut cur = id;
        // merges form chains (a into b, then b into c); bounded against a corrupt cycle
        for _ in 0..=self.merged.len() {
            if self.live.contains(&cur) {
                return Some(cur);
            }
            cur = *self.merged.get(&cur)?;
        }
        None
    }

    /// Whether `id` (a record id as text) names a record that was merged away.
    pub fn merged_away(&self, id: &str) -> bool {
        id.trim()
            .parse::<u64>()
            .is_ok_and(|n| self.merged.contains_key(&n))
    }

    /// Looks up a live record by unique property value.
    pub fn find_unique(&self, name: &str, value: &str) -> Option<u64> {
        self.unique
            .get(name)?
            .get(&self.unique_key(name, value))
            .copied()
    }
}

/// What a validated write will do.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// `None`: create; `Some(id)`: update.
    pub target: Option<u64>,
    pub props: Vec<(String, String)>,
    pub assoc: Vec<(ObjectType, u64)>,
}

/// Normalised `(name, value)` pairs plus seeded `(createdate, modified)` overrides.
pub(crate) type Validated = (Vec<(String, String)>, Option<i64>, Option<i64>);

/// Which properties a rendered record carries.
pub(crate) enum PropSel<'a> {
    /// The type's defaults plus system properties.
    Defaults,
    /// Every stored property plus system properties.
    All,
    /// Exactly these (unset ones as `null`; undefined ones skipped).
    Names(&'a [String]),
}

/// The whole CRM.
#[derive(Debug)]
pub(crate) struct Data {
    pub types: Vec<TypeStore>,
    pub next_id: u64,
}

/// First record id handed out.
const FIRST_ID: u64 = 1001;

impl Data {
    pub fn new() -> Self {
        Data {
            types: ObjectType::ALL.iter().map(|t| TypeStore::new(*t)).collect(),
            next_id: FIRST_ID,
        }
    }

    pub fn ts(&self, ty: ObjectType) -> &TypeStore {
        &self.types[ty as usize]
    }

    pub fn ts_mut(&mut self, ty: ObjectType) -> &mut TypeStore {
        &mut self.types[ty as usize]
    }

    pub fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Validates a property map. `system_ok` lets seeding set read-only timestamps (returned
    /// separately as `(created, updated)` overrides).
    pub fn validate_props(
        &self,
        ty: ObjectType,
        input: &Map<String, Value>,
        system_ok: bool,
    ) -> Result<Validated, ApiError> {
        let ts = self.ts(ty);
        let mut out = Vec::with_capacity(input.len());
        let mut bad: Vec<InvalidValue> = vec![];
        let (mut created, mut updated) = (None, None);
        for (name, v) in input {
            let Some(def) = ts.prop(name) else {
                bad.push(InvalidValue {
                    name: name.clone(),
                    code: "PROPERTY_DOESNT_EXIST",
                    message: format!("Property \"{name}\" does not exist"),
                });
                continue;
            };
            let Some(raw) = coerce(v) else {
                bad.push(InvalidValue {
                    name: name.clone(),
                    code: "INVALID_VALUE",
                    message: format!("Property \"{name}\" must be a string, number or boolean"),
                });
                continue;
            };
            if def.read_only() {
                if system_ok && (name == "createdate" || name == ty.modified_property()) {
                    let ms = parse_ts(&raw);
                    if name == "createdate" {
                        created = ms;
                    } else {
                        updated = ms;
                    }
                    continue;
                }
                bad.push(InvalidValue {
                    name: name.clone(),
                    code: "READ_ONLY_VALUE",
                    message: format!("{name} is a read only property; its value cannot be set."),
                });
                continue;
            }
            match normalise(def, &raw) {
                Ok(mut v) => {
                    if name == "email" && ty == ObjectType::Contacts {
                        v = v.trim().to_ascii_lowercase();
                    }
                    out.push((name.clone(), v))
                }
                Err(e) => bad.push(e),
            }
        }
        if !bad.is_empty() {
            return Err(invalid_values(&bad));
        }
        // line items must reference existing products
        if ty == ObjectType::LineItems
            && let Some((_, pid)) = out
                .iter()
                .find(|(n, v)| n == "hs_product_id" && !v.is_empty())
        {
            let ok = pid
                .parse::<u64>()
                .ok()
                .is_some_and(|id| self.ts(ObjectType::Products).live.contains(&id));
            if !ok {
                return Err(invalid_values(&[InvalidValue {
                    name: "hs_product_id".into(),
                    code: "INVALID_OBJECT_ID",
                    message: format!("Product with ID {pid} does not exist"),
                }]));
            }
        }
        Ok((out, created, updated))
    }

    /// Checks unique values against stored records and values already claimed in this batch.
    pub fn check_unique(
        &self,
        ty: ObjectType,
        target: Option<u64>,
        props: &[(String, String)],
        claimed: &mut HashSet<(String, String)>,
    ) -> Result<(), ApiError> {
        let ts = self.ts(ty);
        for (name, v) in props {
            if v.is_empty() || !ts.is_unique(name) {
                continue;
            }
            let key = ts.unique_key(name, v);
            if let Some(existing) = ts.unique[name].get(&key)
                && Some(*existing) != target
            {
                return Err(conflict(ty, name, v, *existing));
            }
            if !claimed.insert((name.clone(), key)) {
                return Err(ApiError::validation(format!(
                    "Duplicate value \"{v}\" for unique property {name} in batch input"
                ))
                .with_context("propertyName", vec![name.clone()]));
            }
        }
        Ok(())
    }

    /// Resolves v3/v4 `associations` inputs on create:
    /// `[{"to":{"id":"1"},"types":[{"associationCategory":"HUBSPOT_DEFINED","associationTypeId":20}]}]`.
    /// `types[].toObjectType` (non-standard) may name the target type instead of a type id.
    pub fn resolve_associations(
        &self,
        ty: ObjectType,
        assoc: Option<&Value>,
    ) -> Result<Vec<(ObjectType, u64)>, ApiError> {
        let Some(list) = assoc else {
            return Ok(vec![]);
        };
        let Some(list) = list.as_array() else {
            return Err(ApiError::validation("associations must be an array"));
        };
        let mut out = vec![];
        for a in list {
            let to_id = a
                .pointer("/to/id")
                .and_then(coerce)
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| ApiError::validation("association is missing to.id"))?;
            let types = a.get("types").and_then(Value::as_array);
            let mut to_ty = None;
            for t in types.into_iter().flatten() {
                if let Some(tid) = t.get("associationTypeId").and_then(Value::as_u64) {
                    match crate::model::ASSOCIATION_TYPES
                        .iter()
                        .find(|(id, _, _)| u64::from(*id) == tid)
                    {
                        Some((_, from, to)) if *from == ty => to_ty = Some(*to),
                        Some((_, from, to)) => {
                            return Err(ApiError::validation(format!(
                                "association type {tid} goes from {from} to {to}, not from {ty}"
                            )));
                        }
                        None => {
                            return Err(ApiError::validation(format!(
                                "unknown association type id {tid}"
                            )));
                        }
                    }
                } else if let Some(t) = t
                    .get("toObjectType")
                    .and_then(Value::as_str)
                    .and_then(ObjectType::parse)
                {
                    to_ty = Some(t);
                }
            }
            let to_ty = to_ty.ok_or_else(|| {
                ApiError::validation("association needs types[].associationTypeId")
            })?;
            if !self.ts(to_ty).live.contains(&to_id) {
                return Err(ApiError::validation(format!(
                    "Could not find {} with id {to_id} to associate",
                    to_ty.singular()
                ))
                .with_context("ids", vec![to_id.to_string()]));
            }
            out.push((to_ty, to_id));
        }
        Ok(out)
    }

    /// Applies a prepared write; returns the record id and whether anything changed.
    pub fn apply(
        &mut self,
        ty: ObjectType,
        p: Prepared,
        now: i64,
        visible_at: Option<i64>,
    ) -> (u64, bool) {
        let (id, changed) = match p.target {
            None => {
                let id = self.alloc_id();
                let props: HashMap<String, String> =
                    p.props.into_iter().filter(|(_, v)| !v.is_empty()).collect();
                let ts = self.ts_mut(ty);
                ts.records.insert(
                    id,
                    Record {
                        props,
                        created: now,
                        updated: now,
                        archived_at: None,
                        searchable_at: visible_at,
                        assoc: BTreeMap::new(),
                    },
                );
                if let Some(t) = visible_at {
                    ts.lag_until = Some(ts.lag_until.map_or(t, |u| u.max(t)));
                }
                ts.insert_indexes(id);
                (id, true)
            }
            Some(id) => {
                let ts = self.ts_mut(ty);
                let changed = {
                    let rec = &ts.records[&id];
                    p.props.iter().any(|(k, v)| {
                        rec.props.get(k).map(String::as_str).unwrap_or("") != v.as_str()
                    })
                };
                if changed {
                    ts.remove_indexes(id);
                    let rec = ts.records.get_mut(&id).expect("record exists");
                    for (k, v) in p.props {
                        if v.is_empty() {
                            rec.props.remove(&k);
                        } else {
                            rec.props.insert(k, v);
                        }
                    }
                    rec.updated = now.max(rec.updated);
                    if let Some(t) = visible_at {
                        rec.searchable_at = Some(t);
                        ts.lag_until = Some(ts.lag_until.map_or(t, |u| u.max(t)));
                    }
                    ts.insert_indexes(id);
                }
                (id, changed)
            }
        };
        for (to_ty, to_id) in p.assoc {
            self.associate(ty, id, to_ty, to_id);
        }
        (id, changed)
    }

    /// Associates two records (both directions).
    pub fn associate(&mut self, ty: ObjectType, id: u64, to_ty: ObjectType, to_id: u64) {
        if let Some(r) = self.ts_mut(ty).records.get_mut(&id) {
            r.assoc.entry(to_ty).or_default().insert(to_id);
        }
        if let Some(r) = self.ts_mut(to_ty).records.get_mut(&to_id) {
            r.assoc.entry(ty).or_default().insert(id);
        }
    }

    /// Archives a record (no-op if missing or already archived).
    pub fn archive(&mut self, ty: ObjectType, id: u64, now: i64) -> bool {
        let ts = self.ts_mut(ty);
        if !ts.live.contains(&id) {
            return false;
        }
        ts.remove_indexes(id);
        ts.archived.insert(id);
        if let Some(r) = ts.records.get_mut(&id) {
            r.archived_at = Some(now);
        }
        true
    }

    /// Resolves `id` (or a unique `idProperty` value) to a record id.
    pub fn resolve(
        &self,
        ty: ObjectType,
        id: &str,
        id_property: Option<&str>,
        archived: bool,
    ) -> Result<Option<u64>, ApiError> {
        let ts = self.ts(ty);
        match id_property {
            None | Some("") | Some("hs_object_id") => {
                let Ok(n) = id.trim().parse::<u64>() else {
                    return Ok(None);
                };
                let set = if archived { &ts.archived } else { &ts.live };
                Ok(set.contains(&n).then_some(n))
            }
            Some(p) => {
                if !ts.is_unique(p) {
                    return Err(ApiError::validation(format!(
                        "{p} is not a unique property of {ty}; idProperty must name a property with hasUniqueValue"
                    ))
                    .with_context("idProperty", vec![p.to_string()]));
                }
                if archived {
                    let key = ts.unique_key(p, id);
                    return Ok(ts.archived.iter().copied().find(|aid| {
                        ts.records[aid]
                            .props
                            .get(p)
                            .is_some_and(|v| ts.unique_key(p, v) == key)
                    }));
                }
                Ok(ts.find_unique(p, id))
            }
        }
    }

    /// Like [`Data::resolve`], but a plain record id that was merged away resolves to the record
    /// it was merged into, as HubSpot's single-record reads and writes do.
    /// Live records only.
    pub fn resolve_following(
        &self,
        ty: ObjectType,
        id: &str,
        id_property: Option<&str>,
    ) -> Result<Option<u64>, ApiError> {
        let by_id = matches!(id_property, None | Some("") | Some("hs_object_id"));
        match id.trim().parse::<u64>() {
            Ok(n) if by_id => Ok(self.ts(ty).survivor(n)),
            _ => self.resolve(ty, id, id_property, false),
        }
    }

    /// Merges live record `secondary` into live record `primary` as HubSpot does: the primary
    /// keeps its id and values, takes the secondary's values for properties it has no value
    /// for and all of its associations, and lists the secondary in `hs_merged_object_ids`; the
    /// secondary's id afterwards stands for the primary (see [`TypeStore::survivor`]).
    pub fn merge(
        &mut self,
        ty: ObjectType,
        primary: u64,
        secondary: u64,
        now: i64,
        visible_at: Option<i64>,
    ) -> Result<u64, ApiError> {
        if primary == secondary {
            return Err(ApiError::validation(format!(
                "Cannot merge a {} with itself (id {primary})",
                ty.singular()
            )));
        }
        let ts = self.ts_mut(ty);
        if !ts.live.contains(&primary) || !ts.live.contains(&secondary) {
            return Err(ApiError::not_found(format!(
                "Object not found. Both {} records of a merge must exist.",
                ty.singular()
            )));
        }
        ts.remove_indexes(secondary);
        let gone = ts.records.remove(&secondary).expect("live record exists");
        ts.remove_indexes(primary);
        let rec = ts.records.get_mut(&primary).expect("live record exists");
        let mut merged_ids: Vec<String> = rec
            .props
            .get("hs_merged_object_ids")
            .map(|v| v.split(';').map(str::to_string).collect())
            .unwrap_or_default();
        merged_ids.push(secondary.to_string());
        for (k, v) in gone.props {
            if k == "hs_merged_object_ids" {
                merged_ids.extend(v.split(';').map(str::to_string));
            } else {
                rec.props.entry(k).or_insert(v);
            }
        }
        rec.props
            .insert("hs_merged_object_ids".into(), merged_ids.join(";"));
        rec.updated = now.max(rec.updated);
        if let Some(t) = visible_at {
            rec.searchable_at = Some(t);
            ts.lag_until = Some(ts.lag_until.map_or(t, |u| u.max(t)));
        }
        ts.insert_indexes(primary);
        for target in ts.merged.values_mut() {
            if *target == secondary {
                *target = primary;
            }
        }
        ts.merged.insert(secondary, primary);
        for (to_ty, ids) in gone.assoc {
            for to_id in ids {
                if let Some(r) = self.ts_mut(to_ty).records.get_mut(&to_id)
                    && let Some(set) = r.assoc.get_mut(&ty)
                {
                    set.remove(&secondary);
                }
                if !(to_ty == ty && to_id == primary) {
                    self.associate(ty, primary, to_ty, to_id);
                }
            }
        }
        Ok(primary)
    }

    /// Checks the type's portal-side write rules against the record as this write would leave
    /// it (`target`: the record updated; `None`: a create).
    pub fn check_rules(
        &self,
        ty: ObjectType,
        target: Option<u64>,
        props: &[(String, String)],
    ) -> Result<(), ApiError> {
        let ts = self.ts(ty);
        let rules = &ts.rules;
        if rules.required_on_create.is_empty() && rules.required_when.is_empty() {
            return Ok(());
        }
        let existing = target.and_then(|id| ts.records.get(&id));
        let value = |name: &str| -> Option<&str> {
            match props.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => Some(v.as_str()),
                None => existing.and_then(|r| r.props.get(name)).map(String::as_str),
            }
            .filter(|v| !v.trim().is_empty())
        };
        let mut missing: Vec<(String, String)> = vec![];
        let mut add = |name: &str, why: String| {
            if !missing.iter().any(|(n, _)| n == name) {
                missing.push((name.to_string(), why));
            }
        };
        if target.is_none() {
            for p in &rules.required_on_create {
                if value(p).is_none() {
                    add(p, format!("{p} is required to create a {}", ty.singular()));
                }
            }
        }
        for r in &rules.required_when {
            let triggered = value(&r.property).is_some_and(|v| match &r.equals {
                Some(e) => v.eq_ignore_ascii_case(e),
                None => true,
            });
            if triggered {
                let when = match &r.equals {
                    Some(e) => format!("{} is {e}", r.property),
                    None => format!("{} has a value", r.property),
                };
                for p in &r.then {
                    if value(p).is_none() {
                        add(p, format!("{p} is required when {when}"));
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = missing.iter().map(|(n, _)| n.clone()).collect();
        let message = format!(
            "Some required properties for {} {} are missing: [{}] ({})",
            ty.singular().to_uppercase(),
            if target.is_none() {
                "creates"
            } else {
                "updates"
            },
            names.join(", "),
            missing
                .iter()
                .map(|(_, why)| why.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
        let errors = missing
            .iter()
            .map(|(name, why)| {
                json!({
                    "message": why,
                    "code": "REQUIRED_PROPERTY_MISSING",
                    "in": name,
                    "context": {"propertyName": [name]},
                })
            })
            .collect();
        Err(ApiError::validation(message)
            .with_context("propertyName", names)
            .with_errors(errors))
    }

    /// Renders a record as HubSpot's `SimplePublicObject`.
    pub fn render(
        &self,
        ty: ObjectType,
        id: u64,
        sel: &PropSel<'_>,
        assoc: &[ObjectType],
    ) -> Map<String, Value> {
        match serde_json::to_value(self.view(ty, id, sel, assoc)) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    /// A serialisable view of a record (no intermediate JSON tree).
    pub fn view<'a>(
        &'a self,
        ty: ObjectType,
        id: u64,
        sel: &'a PropSel<'a>,
        assoc: &'a [ObjectType],
    ) -> RecordView<'a> {
        RecordView {
            data: self,
            ty,
            id,
            sel,
            assoc,
            new: None,
            trace: None,
        }
    }

    /// v3 association results `[{"id":"…","type":"deal_to_line_item"}]` (live targets only).
    pub fn association_results(&self, ty: ObjectType, id: u64, to: ObjectType) -> Vec<Value> {
        let Some(rec) = self.ts(ty).records.get(&id) else {
            return vec![];
        };
        let label = format!("{}_to_{}", ty.singular(), to.singular());
        rec.assoc
            .get(&to)
            .into_iter()
            .flatten()
            .filter(|t| self.ts(to).live.contains(t))
            .map(|t| json!({"id": t.to_string(), "type": label}))
            .collect()
    }

    /// v4 association results `[{"toObjectId":1,"associationTypes":[…]}]`.
    pub fn association_results_v4(&self, ty: ObjectType, id: u64, to: ObjectType) -> Vec<Value> {
        let Some(rec) = self.ts(ty).records.get(&id) else {
            return vec![];
        };
        let type_id = default_association_type(ty, to);
        rec.assoc
            .get(&to)
            .into_iter()
            .flatten()
            .filter(|t| self.ts(to).live.contains(t))
            .map(|t| {
                json!({
                    "toObjectId": t,
                    "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": null}]
                })
            })
            .collect()
    }
}

/// HubSpot's "Property values were not valid" error.
pub(crate) fn invalid_values(bad: &[InvalidValue]) -> ApiError {
    let details: Vec<Value> = bad.iter().map(InvalidValue::detail).collect();
    let message = format!(
        "Property values were not valid: {}",
        serde_json::to_string(&details).unwrap_or_default()
    );
    let errors = bad
        .iter()
        .map(|b| {
            json!({
                "message": b.message,
                "code": b.code,
                "in": b.name,
                "context": {"propertyName": [b.name]},
            })
        })
        .collect();
    ApiError::validation(message)
        .with_context("propertyName", bad.iter().map(|b| b.name.clone()).collect())
        .with_errors(errors)
}

/// The 409 for a duplicate unique value.
pub(crate) fn conflict(ty: ObjectType, name: &str, value: &str, existing: u64) -> ApiError {
    if ty == ObjectType::Contacts && name == "email" {
        ApiError::conflict(format!("Contact already exists. Existing ID: {existing}"))
    } else {
        ApiError::new(
            StatusCode::CONFLICT,
            "CONFLICT",
            format!(
                "A {} with {name} \"{value}\" already exists. Existing ID: {existing}",
                ty.singular()
            ),
        )
        .with_context("propertyName", vec![name.to_string()])
    }
}

/// A record serialised straight from the store as HubSpot's `SimplePublicObject`
/// (plus `new` for upserts and `objectWriteTraceId` when given).
pub(crate) struct RecordView<'a> {
    pub data: &'a Data,
    pub ty: ObjectType,
    pub id: u64,
    pub sel: &'a PropSel<'a>,
    pub assoc: &'a [ObjectType],
    pub new: Option<bool>,
    pub trace: Option<&'a str>,
}

struct PropsView<'a>(&'a RecordView<'a>, &'a str, &'a str);

impl serde::Serialize for PropsView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let v = self.0;
        let ts = v.data.ts(v.ty);
        let rec = &ts.records[&v.id];
        let system: &[&str] = match v.ty {
            ObjectType::Contacts => &[
                "createdate",
                "hs_lastmodifieddate",
                "hs_object_id",
                "lastmodifieddate",
            ],
            _ => &["createdate", "hs_lastmodifieddate", "hs_object_id"],
        };
        let mut m = s.serialize_map(None)?;
        let (created, updated) = (self.1, self.2);
        let put = |m: &mut S::SerializeMap, name: &str| match name {
            "createdate" => m.serialize_entry(name, created),
            "hs_lastmodifieddate" => m.serialize_entry(name, updated),
            "lastmodifieddate" if v.ty == ObjectType::Contacts => m.serialize_entry(name, updated),
            _ => {
                let val = ts.system_value(v.id, rec, name);
                m.serialize_entry(name, &val.as_deref())
            }
        };
        match v.sel {
            PropSel::Defaults => {
                for n in v.ty.default_properties() {
                    put(&mut m, n)?;
                }
                for n in system {
                    put(&mut m, n)?;
                }
            }
            PropSel::All => {
                let mut names: Vec<&String> = rec.props.keys().collect();
                names.sort();
                for n in names {
                    put(&mut m, n)?;
                }
                for n in system {
                    put(&mut m, n)?;
                }
            }
            PropSel::Names(names) => {
                let always = ["createdate", v.ty.modified_property(), "hs_object_id"];
                for n in names.iter() {
                    if ts.prop(n).is_some() && !always.contains(&n.as_str()) {
                        put(&mut m, n)?;
                    }
                }
                // HubSpot always includes these three.
                for n in always {
                    put(&mut m, n)?;
                }
            }
        }
        m.end()
    }
}

impl serde::Serialize for RecordView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let rec = &self.data.ts(self.ty).records[&self.id];
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &self.id.to_string())?;
        let (created, updated) = (fmt_ms(rec.created), fmt_ms(rec.updated));
        m.serialize_entry("properties", &PropsView(self, &created, &updated))?;
        m.serialize_entry("createdAt", &created)?;
        m.serialize_entry("updatedAt", &updated)?;
        m.serialize_entry("archived", &rec.archived_at.is_some())?;
        if let Some(a) = rec.archived_at {
            m.serialize_entry("archivedAt", &fmt_ms(a))?;
        }
        if !self.assoc.is_empty() {
            let mut am = Map::new();
            for to in self.assoc {
                let results = self.data.association_results(self.ty, self.id, *to);
                if !results.is_empty() {
                    am.insert(to.as_str().into(), json!({ "results": results }));
                }
            }
            if !am.is_empty() {
                m.serialize_entry("associations", &am)?;
            }
        }
        if let Some(n) = self.new {
            m.serialize_entry("new", &n)?;
        }
        if let Some(t) = self.trace {
            m.serialize_entry("objectWriteTraceId", t)?;
        }
        m.end()
    }
}
