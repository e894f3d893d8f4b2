//! Field specs as written in a flow file (the `mapping:` block).

use std::fmt;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// How one target field gets its value.
///
/// A plain string is a Handlebars template (`"{{record.company_name}}"`); an object gives exactly
/// one of `template`, `path` or `value`, plus the field's type and checks.
// Parsed once per flow; not boxed so that the engine can build and match specs plainly.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum FieldSpec {
    /// A Handlebars template rendered against `record`, `flow`, `run` and `now`, e.g.
    /// `"{{record.properties.firstname}} {{record.properties.lastname}}"`. The field is a string.
    Template(String),
    /// A field with a source (`template`, `path` or `value`), a type and checks.
    Detailed(FieldDetail),
}

impl FieldSpec {
    /// A plain template spec.
    pub fn template(t: impl Into<String>) -> FieldSpec {
        FieldSpec::Template(t.into())
    }

    /// A JSONPath spec of the given type.
    pub fn path(p: impl Into<String>, ty: FieldType) -> FieldSpec {
        FieldSpec::Detailed(FieldDetail {
            path: Some(p.into()),
            r#type: ty,
            ..FieldDetail::default()
        })
    }
}

impl<'de> Deserialize<'de> for FieldSpec {
    // Hand-written rather than `#[serde(untagged)]` so that a mistake inside the object form
    // reports the real cause (e.g. "unknown field `tempalte`") instead of "did not match any
    // variant".
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FieldSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a template string or a field object (template | path | value, type, ...)",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldSpec, E> {
                Ok(FieldSpec::Template(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<FieldSpec, E> {
                Ok(FieldSpec::Template(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FieldSpec, A::Error> {
                FieldDetail::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(FieldSpec::Detailed)
            }
        }
        d.deserialize_any(V)
    }
}

/// The object form of a field spec: one source (`template`, `path` or `value`), a type, checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldDetail {
    /// A Handlebars template, e.g. `"{{lowercase record.website}}"`. Strict: a variable that is
    /// missing from the record is an error unless `default` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// A JSONPath (RFC 9535) into the source record, e.g. `$.properties.email`. No match means
    /// the value is missing (see `default` and `required`); several matches form a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A constant value, e.g. `"ERP"` or `42`.
    #[serde(
        default,
        deserialize_with = "deserialize_some",
        skip_serializing_if = "Option::is_none"
    )]
    pub value: Option<serde_json::Value>,
    /// The target type; values are checked and converted to HubSpot's format. Default `string`.
    #[serde(default, rename = "type")]
    pub r#type: FieldType,
    /// The value used when the source is missing or `null` (no JSONPath match or a `null` one,
    /// a missing or `null` template variable). Checked and converted like any other value.
    #[serde(
        default,
        deserialize_with = "deserialize_some",
        skip_serializing_if = "Option::is_none"
    )]
    pub default: Option<serde_json::Value>,
    /// A record fails when this field is missing, `null` or empty (after `default`). Default
    /// `false`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    /// A lookup table applied to the value (each value of a list) before type checks, e.g. ERP
    /// codes to dropdown values: `{ SMB: small_business, ENT: enterprise }`. Values not in the
    /// table pass through unchanged; for enumerations they must then be allowed values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<IndexMap<String, String>>,
    /// The allowed values of an `enumeration` or `multi_enumeration` (the options' internal
    /// values). Without it, an enumeration that has a `map` allows the map's values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
    /// Trim leading and trailing whitespace from the value (each value of a list).
    #[serde(default, skip_serializing_if = "is_false")]
    pub trim: bool,
    /// For `date` fields: accept an instant that is not midnight UTC and keep its UTC date.
    /// Without it such a value is an error (HubSpot rejects non-midnight dates).
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncate: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn deserialize_some<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// The type of a target field, which decides how values are checked and written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Text, written as is.
    #[default]
    String,
    /// A decimal number, written as a decimal string (`"12.5"`).
    Number,
    /// A whole number (`"3"`; `"3.5"` is an error).
    Integer,
    /// `true`/`false`; accepts yes/no, 1/0, true/false, on/off in any case.
    Bool,
    /// A calendar date at midnight UTC. Accepts `YYYY-MM-DD`, RFC 3339 or epoch milliseconds;
    /// written as the epoch milliseconds of midnight UTC (`"1714521600000"`).
    Date,
    /// An instant. Accepts RFC 3339, `YYYY-MM-DD` or epoch milliseconds; written as epoch
    /// milliseconds.
    Datetime,
    /// One dropdown value, checked against `options` (or the `map`'s values).
    Enumeration,
    /// Several dropdown values (a list, or a `;`-separated string), each checked like an
    /// enumeration and written joined with `;`.
    MultiEnumeration,
}

impl FieldType {
    /// The name used in flow files (`multi_enumeration`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Number => "number",
            FieldType::Integer => "integer",
            FieldType::Bool => "bool",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Enumeration => "enumeration",
            FieldType::MultiEnumeration => "multi_enumeration",
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_is_template() {
        let s: FieldSpec = serde_json::from_str(r#""{{record.a}}""#).unwrap();
        assert_eq!(s, FieldSpec::Template("{{record.a}}".into()));
    }

    #[test]
    fn object_form_with_defaults() {
        let s: FieldSpec =
            serde_json::from_str(r#"{"path":"$.a","type":"multi_enumeration","value":null}"#)
                .unwrap();
        let FieldSpec::Detailed(d) = s else { panic!() };
        assert_eq!(d.path.as_deref(), Some("$.a"));
        assert_eq!(d.r#type, FieldType::MultiEnumeration);
        assert_eq!(d.value, Some(serde_json::Value::Null));
        assert!(!d.required && !d.trim && !d.truncate);
    }

    #[test]
    fn unknown_field_is_named() {
        let e = serde_json::from_str::<FieldSpec>(r#"{"tempalte":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `tempalte`"), "{e}");
    }

    #[test]
    fn bad_type_is_named() {
        let e = serde_json::from_str::<FieldSpec>(r#"{"path":"$.a","type":"float"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant `float`"), "{e}");
    }

    #[test]
    fn schema_has_descriptions() {
        let schema = schemars::schema_for!(FieldSpec);
        let text = serde_json::to_string(&schema).unwrap();
        assert!(text.contains("multi_enumeration"));
        assert!(text.contains("A JSONPath (RFC 9535)"));
    }
}
