//! Seeding: generated records, explicit records, JSON seed files and the demo data set.

use crate::SandboxError;
use crate::error::ApiError;
use crate::handle::{Store, parse_type};
use crate::model::{ObjectType, parse_ts};
use crate::props::coerce;
use crate::store::{Data, Record};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// Records one seeding call may generate at most (`count`).
pub const MAX_SEED_COUNT: usize = 1_000_000;

/// Seeded timestamps must lie within years 0000–9999 (epoch ms, either way).
const MAX_SEED_TS: i64 = 253_402_300_799_999;

pub(crate) fn ts_in_range(ms: i128) -> bool {
    (-i128::from(MAX_SEED_TS)..=i128::from(MAX_SEED_TS)).contains(&ms)
}

/// What to seed (`POST /_sandbox/seed` takes the same fields in camelCase or snake_case).
///
/// Generated records (`count`) get realistic-looking default properties; explicit `records`
/// are property maps, validated like API writes, and may carry `createdate` and the
/// last-modified property to fix their timestamps. Seeded records are searchable at once.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SeedSpec {
    /// `companies`, `contacts`, `deals`, `products` or `line_items`.
    #[serde(alias = "object_type", alias = "type")]
    pub object_type: String,
    /// Records to generate.
    pub count: usize,
    /// Explicit records (property maps, or `{"properties": {…}}`).
    pub records: Vec<Value>,
    /// Created time of the first record (epoch ms or ISO 8601); default now on the sandbox's
    /// clock.
    #[serde(alias = "created_at", deserialize_with = "de_ts")]
    pub created_at: Option<i64>,
    /// Modified time of the first record; default = its created time.
    #[serde(alias = "updated_at", deserialize_with = "de_ts")]
    pub updated_at: Option<i64>,
    /// Added to both timestamps for each following record (0 = all identical).
    #[serde(alias = "step_ms")]
    pub step_ms: i64,
    /// Properties set on every generated record.
    pub properties: Map<String, Value>,
}

fn de_ts<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => coerce(&v)
            .and_then(|s| parse_ts(&s))
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("timestamp must be epoch ms or ISO 8601")),
    }
}

impl SeedSpec {
    /// `count` generated records of a type, all stamped now (on the sandbox's clock).
    pub fn generated(object_type: &str, count: usize) -> Self {
        SeedSpec {
            object_type: object_type.into(),
            count,
            ..SeedSpec::default()
        }
    }

    /// Explicit records (property maps) of a type.
    pub fn records(object_type: &str, records: Vec<Value>) -> Self {
        SeedSpec {
            object_type: object_type.into(),
            records,
            ..SeedSpec::default()
        }
    }

    /// Sets the first record's created (and modified) time, epoch ms.
    pub fn at(mut self, ms: i64) -> Self {
        self.created_at = Some(ms);
        self
    }

    /// Sets the first record's modified time, epoch ms.
    pub fn modified_at(mut self, ms: i64) -> Self {
        self.updated_at = Some(ms);
        self
    }

    /// Spaces consecutive records' timestamps by `ms`.
    pub fn step(mut self, ms: i64) -> Self {
        self.step_ms = ms;
        self
    }

    /// Sets a property on every generated record.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }
}

const FIRST: &[&str] = &[
    "Ava", "Liam", "Maya", "Noah", "Zoe", "Ethan", "Lena", "Omar", "Iris", "Lucas", "Nora",
    "Felix", "Hana", "Mateo", "Clara", "Jonas", "Priya", "Diego", "Sofia", "Arjun",
];
const LAST: &[&str] = &[
    "Johnson", "Garcia", "Müller", "Nakamura", "Okafor", "Rossi", "Kowalski", "Silva", "Dubois",
    "Andersen", "Haddad", "Fischer", "Novak", "Patel", "Moreau", "Jensen", "Larsen", "Costa",
    "Weber", "Svensson",
];

fn ascii_lower(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'ü' => 'u',
            'ö' => 'o',
            'ä' => 'a',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

fn generated_props(ty: ObjectType, id: u64) -> Vec<(String, String)> {
    let i = id as usize;
    let p = |k: &str, v: String| (k.to_string(), v);
    match ty {
        ObjectType::Contacts => {
            let (f, l) = (FIRST[i % FIRST.len()], LAST[(i / FIRST.len()) % LAST.len()]);
            vec![
                p("firstname", f.into()),
                p("lastname", l.into()),
                p(
                    "email",
                    format!("{}.{}.{id}@example.com", ascii_lower(f), ascii_lower(l)),
                ),
            ]
        }
        ObjectType::Companies => vec![
            p("name", format!("Company {id}")),
            p("domain", format!("company{id}.example.com")),
        ],
        ObjectType::Deals => vec![
            p("dealname", format!("Deal {id}")),
            p("amount", format!("{}", 1000 + (i % 90) * 100)),
            p("dealstage", "appointmentscheduled".into()),
            p("pipeline", "default".into()),
        ],
        ObjectType::Products => vec![
            p("name", format!("Product {id}")),
            p("price", format!("{}.00", 10 + i % 90)),
            p("hs_sku", format!("SKU-{id}")),
        ],
        ObjectType::LineItems => vec![
            p("name", format!("Line item {id}")),
            p("quantity", "1".into()),
            p("price", "10.00".into()),
        ],
    }
}

impl Data {
    /// Inserts a record with fixed timestamps, searchable at once. No validation.
    pub(crate) fn insert_seeded(
        &mut self,
        ty: ObjectType,
        props: Vec<(String, String)>,
        created: i64,
        updated: i64,
    ) -> u64 {
        let id = self.alloc_id();
        let ts = self.ts_mut(ty);
        ts.records.insert(
            id,
            Record {
                props: props.into_iter().filter(|(_, v)| !v.is_empty()).collect(),
                created,
                updated,
                archived_at: None,
                searchable_at: None,
                assoc: BTreeMap::new(),
            },
        );
        ts.insert_indexes(id);
        id
    }
}

fn record_props(v: &Value) -> Result<&Map<String, Value>, ApiError> {
    let m = v
        .as_object()
        .ok_or_else(|| ApiError::validation("each seed record must be an object"))?;
    match m.get("properties") {
        Some(Value::Object(p)) => Ok(p),
        _ => Ok(m),
    }
}

impl Store {
    /// Seeds records; returns their ids in order.
    /// At most [`MAX_SEED_COUNT`] generated records per call; every timestamp (first, stepped,
    /// explicit) must lie within years 0000–9999. Out of bounds: a 400-style error and nothing
    /// seeded.
    pub fn seed(&self, spec: SeedSpec) -> Result<Vec<String>, SandboxError> {
        let ty = parse_type(&spec.object_type)?;
        if spec.count > MAX_SEED_COUNT {
            return Err(ApiError::validation(format!(
                "count must be at most {MAX_SEED_COUNT} per seeding call, not {}",
                spec.count
            ))
            .into());
        }
        let now = self.now_ms();
        let mut data = self.inner.data.write();
        let base_c = spec.created_at.unwrap_or(now);
        let base_u = spec.updated_at.unwrap_or(base_c);
        // timestamps move linearly: the first and the last record bound them all
        let last = i128::try_from(spec.count + spec.records.len()).unwrap_or(i128::MAX) - 1;
        for base in [base_c, base_u] {
            let end = i128::from(base) + last.max(0) * i128::from(spec.step_ms);
            if !ts_in_range(i128::from(base)) || !ts_in_range(end) {
                return Err(ApiError::validation(format!(
                    "seeded timestamps must lie within years 0000-9999: createdAt/updatedAt {base} with stepMs {} over {} records leaves that range",
                    spec.step_ms,
                    last + 1
                ))
                .into());
            }
        }
        let (common, _, _) = data.validate_props(ty, &spec.properties, false)?;
        if spec.count > 1
            && common
                .iter()
                .any(|(k, v)| !v.is_empty() && data.ts(ty).is_unique(k))
        {
            return Err(ApiError::validation(
                "properties shared by several generated records cannot include a unique property",
            )
            .into());
        }
        // validate explicit records first so a bad one seeds nothing
        let mut claimed = HashSet::new();
        let mut explicit = Vec::with_capacity(spec.records.len());
        for r in &spec.records {
            let (p, c, u) = data.validate_props(ty, record_props(r)?, true)?;
            if let Some(bad) = [c, u]
                .into_iter()
                .flatten()
                .find(|t| !ts_in_range(i128::from(*t)))
            {
                return Err(ApiError::validation(format!(
                    "seeded timestamps must lie within years 0000-9999, not {bad}"
                ))
                .into());
            }
            data.check_unique(ty, None, &p, &mut claimed)?;
            explicit.push((p, c, u));
        }
        let mut ids = Vec::with_capacity(spec.count + explicit.len());
        let mut i: i64 = 0;
        for _ in 0..spec.count {
            let id = data.next_id;
            let mut props = generated_props(ty, id);
            for (k, v) in &common {
                props.retain(|(pk, _)| pk != k);
                props.push((k.clone(), v.clone()));
            }
            let c = base_c + i * spec.step_ms;
            let u = base_u + i * spec.step_ms;
            ids.push(data.insert_seeded(ty, props, c, u).to_string());
            i += 1;
        }
        for (p, c, u) in explicit {
            let c2 = c.unwrap_or(base_c + i * spec.step_ms);
            let u2 = u.unwrap_or_else(|| (base_u + i * spec.step_ms).max(c2));
            ids.push(data.insert_seeded(ty, p, c2, u2).to_string());
            i += 1;
        }
        Ok(ids)
    }
}

/// Seeds from a JSON value shaped like a seed file:
/// `{"companies":[{…properties…}], "contacts":[{"properties":{…}}], "deals":[…]}`.
/// Returns the number of records created.
pub fn seed_from_json(store: &Store, v: &Value) -> Result<usize, SandboxError> {
    let obj = v.as_object().ok_or_else(|| {
        SandboxError::from(ApiError::validation(
            "seed file must be an object keyed by object type",
        ))
    })?;
    // products before line items, companies before contacts
    let mut keys: Vec<(&String, ObjectType)> = obj
        .keys()
        .map(|k| parse_type(k).map(|t| (k, t)))
        .collect::<Result<_, _>>()?;
    keys.sort_by_key(|(_, t)| match t {
        ObjectType::Products => 0,
        ObjectType::Companies => 1,
        ObjectType::Contacts => 2,
        ObjectType::Deals => 3,
        ObjectType::LineItems => 4,
    });
    let mut n = 0;
    for (k, ty) in keys {
        let records = obj[k].as_array().cloned().ok_or_else(|| {
            SandboxError::from(ApiError::validation(format!("{k} must be an array")))
        })?;
        n += store.seed(SeedSpec::records(ty.as_str(), records))?.len();
    }
    Ok(n)
}

/// Seeds from a JSON file (see [`seed_from_json`]). Returns the number of records created.
pub fn seed_from_file(store: &Store, path: impl AsRef<Path>) -> Result<usize, SandboxError> {
    let text = std::fs::read_to_string(path)?;
    let v: Value = serde_json::from_str(&text)?;
    seed_from_json(store, &v)
}

const PREFIX: &[&str] = &[
    "Northwind",
    "Bluebird",
    "Copperleaf",
    "Granite",
    "Harbor",
    "Juniper",
    "Lumen",
    "Maplewood",
    "Orchid",
    "Pinecrest",
];
const SUFFIX: &[(&str, &str)] = &[
    ("Traders", "WHOLESALE"),
    ("Logistics", "LOGISTICS_AND_SUPPLY_CHAIN"),
    ("Foods", "FOOD_PRODUCTION"),
    ("Analytics", "COMPUTER_SOFTWARE"),
    ("Outfitters", "RETAIL"),
];
const CITIES: &[(&str, &str)] = &[
    ("Berlin", "Germany"),
    ("Lyon", "France"),
    ("Austin", "United States"),
    ("Toronto", "Canada"),
    ("Osaka", "Japan"),
    ("Porto", "Portugal"),
    ("Gdańsk", "Poland"),
    ("Melbourne", "Australia"),
    ("Aarhus", "Denmark"),
    ("Bologna", "Italy"),
];
const TITLES: &[&str] = &[
    "Head of Operations",
    "Purchasing Manager",
    "CFO",
    "Account Executive",
    "IT Director",
    "Office Manager",
    "Sales Engineer",
    "Founder",
];

/// Adds the demo data set: 50 companies and 100 contacts (2 per company, associated),
/// with realistic names, emails at `.example` domains, categories and lifecycle stages,
/// created over the last 30 days. Deterministic. Returns the number of records created.
pub fn demo_seed(store: &Store) -> usize {
    let company_cats = ["small_business", "mid_market", "enterprise", "partner"];
    let contact_cats = ["retail", "wholesale", "partner", "vip"];
    let stages = [
        "lead",
        "marketingqualifiedlead",
        "salesqualifiedlead",
        "opportunity",
        "customer",
    ];
    let now = store.now_ms();
    let span = 30 * 86_400_000_i64;
    let mut data = store.inner.data.write();
    let mut companies = vec![];
    let mut domains = vec![];
    for i in 0..50usize {
        let (pre, (suf, industry)) = (PREFIX[i % 10], SUFFIX[i / 10]);
        let (city, country) = CITIES[(i * 7) % CITIES.len()];
        let domain = format!("{}{}.example", pre.to_lowercase(), suf.to_lowercase());
        let at = now - span + (i as i64) * (span / 150);
        let props: Vec<(String, String)> = [
            ("name", format!("{pre} {suf}")),
            ("domain", domain.clone()),
            ("industry", industry.to_string()),
            ("city", city.to_string()),
            ("country", country.to_string()),
            ("phone", format!("+1 555 01{:02}", i)),
            ("numberofemployees", format!("{}", 10 + (i * 37) % 900)),
            (
                "annualrevenue",
                format!("{}", 250_000 + (i * 123_457) % 9_000_000),
            ),
            ("company_category", company_cats[i % 4].to_string()),
            ("external_id", format!("ERP-C-{:04}", 1000 + i)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        companies.push(data.insert_seeded(ObjectType::Companies, props, at, at));
        domains.push(domain);
    }
    let mut used: HashMap<String, usize> = HashMap::new();
    for i in 0..100usize {
        let c = i % 50;
        let (f, l) = (
            FIRST[(i * 3) % FIRST.len()],
            LAST[(i * 7 + i / 20) % LAST.len()],
        );
        let mut email = format!("{}.{}@{}", ascii_lower(f), ascii_lower(l), domains[c]);
        let k = used.entry(email.clone()).or_default();
        *k += 1;
        if *k > 1 {
            email = format!("{}.{}{}@{}", ascii_lower(f), ascii_lower(l), k, domains[c]);
        }
        let at = now - span + ((50 + i) as i64) * (span / 150);
        let company_name = format!("{} {}", PREFIX[c % 10], SUFFIX[c / 10].0);
        let props: Vec<(String, String)> = [
            ("firstname", f.to_string()),
            ("lastname", l.to_string()),
            ("email", email),
            ("company", company_name),
            ("jobtitle", TITLES[i % TITLES.len()].to_string()),
            ("phone", format!("+1 555 02{:02}", i % 100)),
            ("lifecyclestage", stages[i % stages.len()].to_string()),
            ("contact_category", contact_cats[i % 4].to_string()),
            ("external_id", format!("ERP-P-{:04}", 1000 + i)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let id = data.insert_seeded(ObjectType::Contacts, props, at, at);
        data.associate(
            ObjectType::Contacts,
            id,
            ObjectType::Companies,
            companies[c],
        );
    }
    150
}
