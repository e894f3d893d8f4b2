//! Property definitions (`/crm/v3/properties/{objectType}`) and value validation.

use crate::model::{ObjectType, fmt_date, fmt_ms, not_midnight, parse_ts};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One option of an enumeration property.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PropertyOption {
    /// Internal value (what the API sends and stores).
    pub value: String,
    /// Display label.
    pub label: String,
    /// Display order.
    #[serde(default)]
    pub display_order: i32,
    /// Hidden in forms.
    #[serde(default)]
    pub hidden: bool,
}

/// A property definition, serialised as HubSpot's `Property`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyDef {
    /// Internal name.
    pub name: String,
    /// Display label.
    pub label: String,
    /// `bool`, `date`, `datetime`, `enumeration`, `number`, `phone_number` or `string`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `text`, `textarea`, `select`, `radio`, `checkbox`, `booleancheckbox`, `number`, `date`, …
    pub field_type: String,
    /// Property group.
    #[serde(default)]
    pub group_name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Enumeration options.
    #[serde(default)]
    pub options: Vec<PropertyOption>,
    /// Whether values must be unique across records of the type (usable as `idProperty`).
    #[serde(default)]
    pub has_unique_value: bool,
    /// Hidden.
    #[serde(default)]
    pub hidden: bool,
    /// Whether the property was created through the API (not a HubSpot default).
    #[serde(default)]
    pub hubspot_defined: bool,
    /// `{"readOnlyValue": …, "readOnlyDefinition": …, "archivable": …}`.
    #[serde(default)]
    pub modification_metadata: ModificationMetadata,
}

/// Whether a property's value or definition can be changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModificationMetadata {
    /// Values cannot be written through the API.
    #[serde(default)]
    pub read_only_value: bool,
    /// The definition cannot be changed.
    #[serde(default)]
    pub read_only_definition: bool,
    /// The property can be archived.
    #[serde(default)]
    pub archivable: bool,
}

impl PropertyDef {
    /// Whether values of this property are read-only.
    pub fn read_only(&self) -> bool {
        self.modification_metadata.read_only_value
    }

    fn builtin(name: &str, label: &str, kind: &str, field_type: &str) -> PropertyDef {
        PropertyDef {
            name: name.into(),
            label: label.into(),
            kind: kind.into(),
            field_type: field_type.into(),
            group_name: "information".into(),
            description: String::new(),
            options: vec![],
            has_unique_value: false,
            hidden: false,
            hubspot_defined: true,
            modification_metadata: ModificationMetadata {
                read_only_value: false,
                read_only_definition: true,
                archivable: false,
            },
        }
    }
}

fn s(name: &str, label: &str) -> PropertyDef {
    PropertyDef::builtin(name, label, "string", "text")
}
fn n(name: &str, label: &str) -> PropertyDef {
    PropertyDef::builtin(name, label, "number", "number")
}
fn phone(name: &str, label: &str) -> PropertyDef {
    PropertyDef::builtin(name, label, "string", "phonenumber")
}
fn dt(name: &str, label: &str) -> PropertyDef {
    PropertyDef::builtin(name, label, "datetime", "date")
}
fn date(name: &str, label: &str) -> PropertyDef {
    PropertyDef::builtin(name, label, "date", "date")
}
fn ro(mut p: PropertyDef) -> PropertyDef {
    p.modification_metadata.read_only_value = true;
    p
}
fn unique(mut p: PropertyDef) -> PropertyDef {
    p.has_unique_value = true;
    p.hubspot_defined = false;
    p.modification_metadata.read_only_definition = false;
    p
}
fn custom(mut p: PropertyDef) -> PropertyDef {
    p.hubspot_defined = false;
    p.modification_metadata.read_only_definition = false;
    p.modification_metadata.archivable = true;
    p
}
fn enumeration(name: &str, label: &str, options: &[(&str, &str)]) -> PropertyDef {
    let mut p = PropertyDef::builtin(name, label, "enumeration", "select");
    p.options = options
        .iter()
        .enumerate()
        .map(|(i, (v, l))| PropertyOption {
            value: (*v).into(),
            label: (*l).into(),
            display_order: i as i32,
            hidden: false,
        })
        .collect();
    p
}

const LIFECYCLE: &[(&str, &str)] = &[
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
];

/// A representative part of HubSpot's company `industry` options (its internal values, as seen
/// in HubSpot's own "was not one of the allowed options" messages; HubSpot has ~150).
const INDUSTRIES: &[(&str, &str)] = &[
    ("ACCOUNTING", "Accounting"),
    ("AIRLINES_AVIATION", "Airlines/Aviation"),
    ("APPAREL_FASHION", "Apparel & Fashion"),
    ("ARCHITECTURE_PLANNING", "Architecture & Planning"),
    ("AUTOMOTIVE", "Automotive"),
    ("BANKING", "Banking"),
    ("BIOTECHNOLOGY", "Biotechnology"),
    ("BUILDING_MATERIALS", "Building Materials"),
    ("CHEMICALS", "Chemicals"),
    ("COMPUTER_HARDWARE", "Computer Hardware"),
    ("COMPUTER_NETWORK_SECURITY", "Computer & Network Security"),
    ("COMPUTER_SOFTWARE", "Computer Software"),
    ("CONSTRUCTION", "Construction"),
    ("CONSUMER_ELECTRONICS", "Consumer Electronics"),
    ("CONSUMER_GOODS", "Consumer Goods"),
    ("EDUCATION_MANAGEMENT", "Education Management"),
    ("ENTERTAINMENT", "Entertainment"),
    ("FINANCIAL_SERVICES", "Financial Services"),
    ("FOOD_BEVERAGES", "Food & Beverages"),
    ("FOOD_PRODUCTION", "Food Production"),
    ("HOSPITAL_HEALTH_CARE", "Hospital & Health Care"),
    ("HOSPITALITY", "Hospitality"),
    (
        "INFORMATION_TECHNOLOGY_AND_SERVICES",
        "Information Technology and Services",
    ),
    ("INSURANCE", "Insurance"),
    ("INTERNET", "Internet"),
    ("LEGAL_SERVICES", "Legal Services"),
    ("LOGISTICS_AND_SUPPLY_CHAIN", "Logistics and Supply Chain"),
    ("MACHINERY", "Machinery"),
    ("MANAGEMENT_CONSULTING", "Management Consulting"),
    ("MARKETING_AND_ADVERTISING", "Marketing and Advertising"),
    ("MEDICAL_DEVICES", "Medical Devices"),
    (
        "NON_PROFIT_ORGANIZATION_MANAGEMENT",
        "Non-Profit Organization Management",
    ),
    ("PHARMACEUTICALS", "Pharmaceuticals"),
    ("REAL_ESTATE", "Real Estate"),
    ("RETAIL", "Retail"),
    ("TELECOMMUNICATIONS", "Telecommunications"),
    (
        "TRANSPORTATION_TRUCKING_RAILROAD",
        "Transportation/Trucking/Railroad",
    ),
    ("UTILITIES", "Utilities"),
    ("WHOLESALE", "Wholesale"),
    ("MOBILE_GAMES", "Mobile Games"),
];

/// The default property definitions of an object type.
pub fn default_properties(ty: ObjectType) -> Vec<PropertyDef> {
    let mut v = vec![
        ro(n("hs_object_id", "Record ID")),
        ro(dt("createdate", "Create Date")),
        ro(dt("hs_lastmodifieddate", "Last Modified Date")),
        ro(s("hs_merged_object_ids", "Merged record IDs")),
    ];
    match ty {
        ObjectType::Companies => v.extend([
            s("name", "Company name"),
            s("domain", "Company Domain Name"),
            s("hs_additional_domains", "Additional Domains"),
            enumeration("industry", "Industry", INDUSTRIES),
            s("city", "City"),
            s("state", "State/Region"),
            s("country", "Country/Region"),
            phone("phone", "Phone Number"),
            s("website", "Website URL"),
            n("numberofemployees", "Number of Employees"),
            n("annualrevenue", "Annual Revenue"),
            PropertyDef::builtin("description", "Description", "string", "textarea"),
            enumeration("lifecyclestage", "Lifecycle Stage", LIFECYCLE),
            custom(enumeration(
                "company_category",
                "Company category",
                &[
                    ("small_business", "Small business"),
                    ("mid_market", "Mid-market"),
                    ("enterprise", "Enterprise"),
                    ("partner", "Partner"),
                ],
            )),
            unique(s("external_id", "External ID")),
        ]),
        ObjectType::Contacts => v.extend([
            ro(dt("lastmodifieddate", "Last Modified Date")),
            s("email", "Email"),
            s("firstname", "First Name"),
            s("lastname", "Last Name"),
            s("company", "Company Name"),
            phone("phone", "Phone Number"),
            phone("mobilephone", "Mobile Phone Number"),
            s("jobtitle", "Job Title"),
            s("city", "City"),
            s("country", "Country/Region"),
            s("website", "Website URL"),
            date("date_of_birth", "Date of birth"),
            enumeration("lifecyclestage", "Lifecycle Stage", LIFECYCLE),
            custom(enumeration(
                "contact_category",
                "Contact category",
                &[
                    ("retail", "Retail"),
                    ("wholesale", "Wholesale"),
                    ("partner", "Partner"),
                    ("vip", "VIP"),
                ],
            )),
            unique(s("external_id", "External ID")),
        ]),
        ObjectType::Deals => v.extend([
            s("dealname", "Deal Name"),
            n("amount", "Amount"),
            enumeration(
                "dealstage",
                "Deal Stage",
                &[
                    ("appointmentscheduled", "Appointment Scheduled"),
                    ("qualifiedtobuy", "Qualified To Buy"),
                    ("presentationscheduled", "Presentation Scheduled"),
                    ("decisionmakerboughtin", "Decision Maker Bought-In"),
                    ("contractsent", "Contract Sent"),
                    ("closedwon", "Closed Won"),
                    ("closedlost", "Closed Lost"),
                ],
            ),
            s("pipeline", "Pipeline"),
            dt("closedate", "Close Date"),
            s("deal_currency_code", "Currency"),
            PropertyDef::builtin("description", "Deal Description", "string", "textarea"),
            unique(s("external_id", "External ID")),
        ]),
        ObjectType::Products => v.extend([
            s("name", "Name"),
            n("price", "Unit price"),
            s("hs_sku", "SKU"),
            PropertyDef::builtin("description", "Description", "string", "textarea"),
            unique(s("external_id", "External ID")),
        ]),
        ObjectType::LineItems => v.extend([
            s("name", "Name"),
            n("quantity", "Quantity"),
            n("price", "Unit price"),
            n("amount", "Net price"),
            n("hs_product_id", "Product ID"),
            s("hs_sku", "SKU"),
            n("discount", "Unit discount"),
            unique(s("external_id", "External ID")),
        ]),
    }
    v
}

/// Parses a `PropertyCreate` body (`name`, `label`, `type`, `fieldType`, `groupName`,
/// `options`, `hasUniqueValue`, `description`).
pub fn property_from_create(body: &Value) -> Result<PropertyDef, String> {
    let obj = body.as_object().ok_or("body must be a JSON object")?;
    let get = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
    let name = get("name").ok_or("name is required")?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!(
            "Property name '{name}' must be lowercase letters, digits and underscores"
        ));
    }
    let kind = get("type").ok_or("type is required")?;
    if !matches!(
        kind.as_str(),
        "bool" | "date" | "datetime" | "enumeration" | "number" | "phone_number" | "string"
    ) {
        return Err(format!("Invalid property type: {kind}"));
    }
    let field_type = get("fieldType").ok_or("fieldType is required")?;
    let options: Vec<PropertyOption> = match obj.get("options") {
        Some(o) => serde_json::from_value(o.clone()).map_err(|e| format!("options: {e}"))?,
        None => vec![],
    };
    if kind == "enumeration" && options.is_empty() && field_type != "booleancheckbox" {
        return Err("enumeration properties need options".into());
    }
    Ok(PropertyDef {
        label: get("label").unwrap_or_else(|| name.clone()),
        name,
        kind,
        field_type,
        group_name: get("groupName").unwrap_or_else(|| "information".into()),
        description: get("description").unwrap_or_default(),
        options,
        has_unique_value: obj
            .get("hasUniqueValue")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        hidden: obj.get("hidden").and_then(Value::as_bool).unwrap_or(false),
        hubspot_defined: false,
        modification_metadata: ModificationMetadata {
            read_only_value: false,
            read_only_definition: false,
            archivable: true,
        },
    })
}

/// One invalid property value, reported as HubSpot does inside "Property values were not valid".
#[derive(Debug, Clone)]
pub struct InvalidValue {
    /// Property name.
    pub name: String,
    /// Error code (`PROPERTY_DOESNT_EXIST`, `READ_ONLY_VALUE`, `INVALID_OPTION`, …).
    pub code: &'static str,
    /// Human message.
    pub message: String,
}

impl InvalidValue {
    /// The detail object HubSpot embeds in the message and in `errors[]`.
    pub fn detail(&self) -> Value {
        json!({
            "isValid": false,
            "message": self.message,
            "error": self.code,
            "name": self.name,
            "localizedErrorMessage": self.message,
        })
    }
}

/// Coerces a JSON value to a HubSpot property string. Strings pass through; numbers and
/// booleans become their JSON text (`17` → `"17"`, `true` → `"true"`); `null` clears (`""`).
/// Objects and arrays are rejected.
pub fn coerce(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Validates and normalises one value for a defined property. `""` (clear) is always valid.
pub fn normalise(def: &PropertyDef, raw: &str) -> Result<String, InvalidValue> {
    let bad = |code: &'static str, message: String| InvalidValue {
        name: def.name.clone(),
        code,
        message,
    };
    if raw.is_empty() {
        return Ok(String::new());
    }
    match def.kind.as_str() {
        "number" => {
            let t = raw.trim();
            match t.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(t.to_string()),
                _ => Err(bad(
                    "INVALID_DECIMAL",
                    format!("{raw} was not a valid number."),
                )),
            }
        }
        "bool" => match raw.to_ascii_lowercase().as_str() {
            "true" | "false" => Ok(raw.to_ascii_lowercase()),
            _ => Err(bad(
                "INVALID_BOOLEAN",
                format!("{raw} was not a valid boolean. Use \"true\" or \"false\"."),
            )),
        },
        "enumeration" => {
            let allowed: Vec<&str> = def.options.iter().map(|o| o.value.as_str()).collect();
            let parts: Vec<&str> = if def.field_type == "checkbox" {
                raw.split(';').collect()
            } else {
                vec![raw]
            };
            for p in &parts {
                if !allowed.contains(p) {
                    return Err(bad(
                        "INVALID_OPTION",
                        format!(
                            "{p} was not one of the allowed options: [{}]",
                            allowed.join(", ")
                        ),
                    ));
                }
            }
            Ok(raw.to_string())
        }
        "date" => {
            let ms = parse_ts(raw)
                .ok_or_else(|| bad("INVALID_DATE", format!("{raw} was not a valid date.")))?;
            if let Some(tod) = not_midnight(ms) {
                return Err(bad(
                    "INVALID_DATE",
                    format!("{raw} is at {tod} UTC, not midnight!"),
                ));
            }
            Ok(fmt_date(ms))
        }
        "datetime" => {
            let ms = parse_ts(raw).ok_or_else(|| {
                bad(
                    "INVALID_DATETIME",
                    format!("{raw} was not a valid datetime."),
                )
            })?;
            Ok(fmt_ms(ms))
        }
        _ => Ok(raw.to_string()),
    }
}
