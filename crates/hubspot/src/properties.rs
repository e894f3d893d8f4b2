//! Property definitions (`…/properties/{type}/{name}`): a property's type and, for dropdowns
//! (enumerations), its options, so a value can be checked and turned into the option's internal
//! value before a write rather than refused by HubSpot after it.

use serde::{Deserialize, Serialize};

use crate::Client;
use crate::client::Call;
use crate::error::Error;
use crate::objects::ObjectType;

/// A property as HubSpot defines it (the fields a client acts on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyDefinition {
    /// Internal name, used in every API call.
    pub name: String,
    /// Display label.
    #[serde(default)]
    pub label: String,
    /// `type`: `bool`, `date`, `datetime`, `enumeration`, `number`, `phone_number`, `string`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `fieldType`: `select`, `radio`, `checkbox` (several options, `;`-joined), `text`, …
    #[serde(default)]
    pub field_type: String,
    /// The options of an enumeration, in display order.
    #[serde(default)]
    pub options: Vec<PropertyOption>,
    /// Whether values are unique across records of the type (usable as `idProperty`).
    #[serde(default)]
    pub has_unique_value: bool,
    /// Hidden in HubSpot's UI.
    #[serde(default)]
    pub hidden: bool,
}

/// One option of an enumeration property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyOption {
    /// What people see.
    #[serde(default)]
    pub label: String,
    /// The internal value: what the API sends and stores.
    pub value: String,
    /// Hidden options stay valid values; HubSpot only hides them in forms.
    #[serde(default)]
    pub hidden: bool,
}

/// A value that is none of an enumeration's options.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not an option of {property}; allowed: {allowed}")]
pub struct NotAnOption {
    /// The property.
    pub property: String,
    /// The value given (for a multi-select: the part that matched nothing).
    pub value: String,
    /// Every option as `value (label)`, in display order.
    pub allowed: String,
}

impl PropertyDefinition {
    /// Whether the property is a dropdown, radio or checkbox list of options.
    pub fn is_enumeration(&self) -> bool {
        self.kind == "enumeration"
    }

    /// Whether a value holds several options joined by `;` (checkboxes).
    pub fn is_multi_select(&self) -> bool {
        self.is_enumeration() && self.field_type == "checkbox"
    }

    /// The internal value of the option `given` names, by its internal value or its label:
    /// exactly first, then ignoring case and surrounding spaces. `None` when it names none.
    pub fn option_value(&self, given: &str) -> Option<&str> {
        let given = given.trim();
        let found = self
            .options
            .iter()
            .find(|o| o.value == given)
            .or_else(|| self.options.iter().find(|o| o.label.trim() == given))
            .or_else(|| {
                self.options
                    .iter()
                    .find(|o| o.value.eq_ignore_ascii_case(given))
            })
            .or_else(|| {
                let lower = given.to_lowercase();
                self.options
                    .iter()
                    .find(|o| o.label.trim().to_lowercase() == lower)
            });
        found.map(|o| o.value.as_str())
    }

    /// `given` as HubSpot stores it: each option named by value or label becomes its internal
    /// value (for checkboxes, every `;`-separated part). An empty value (clearing the property)
    /// stays empty.
    pub fn to_internal(&self, given: &str) -> Result<String, NotAnOption> {
        if given.trim().is_empty() {
            return Ok(String::new());
        }
        let parts: Vec<&str> = if self.is_multi_select() {
            given
                .split(';')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect()
        } else {
            vec![given]
        };
        let mut out = Vec::with_capacity(parts.len());
        for part in parts {
            match self.option_value(part) {
                Some(v) => out.push(v.to_string()),
                None => {
                    return Err(NotAnOption {
                        property: self.name.clone(),
                        value: part.trim().to_string(),
                        allowed: self.allowed(),
                    });
                }
            }
        }
        Ok(out.join(";"))
    }

    /// Every option as `value (label)` (just `value` when they are equal), in display order.
    pub fn allowed(&self) -> String {
        self.options
            .iter()
            .map(|o| {
                if o.label.is_empty() || o.label == o.value {
                    o.value.clone()
                } else {
                    format!("{} ({})", o.value, o.label)
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Deserialize)]
struct PropertyList {
    #[serde(default)]
    results: Vec<PropertyDefinition>,
}

impl Client {
    /// One property's definition; `None` when the type has no property of that name.
    pub async fn property(
        &self,
        object: &ObjectType,
        name: &str,
    ) -> Result<Option<PropertyDefinition>, Error> {
        let call = Call::get(self.paths().property(object, name), Vec::new());
        match self.send_json(&call).await {
            Ok(p) => Ok(Some(p)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every property definition of a type.
    pub async fn properties(&self, object: &ObjectType) -> Result<Vec<PropertyDefinition>, Error> {
        let call = Call::get(self.paths().properties(object), Vec::new());
        let list: PropertyList = self.send_json(&call).await?;
        Ok(list.results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn category(field_type: &str) -> PropertyDefinition {
        serde_json::from_value(serde_json::json!({
            "name": "company_category", "label": "Company category", "type": "enumeration",
            "fieldType": field_type, "groupName": "companyinformation",
            "options": [
                {"label": "Small business", "value": "small_business", "displayOrder": 0, "hidden": false},
                {"label": "Enterprise", "value": "enterprise", "displayOrder": 1, "hidden": false},
                {"label": "Partner", "value": "Partner", "displayOrder": 2, "hidden": true}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn options_by_value_or_label() {
        let p = category("select");
        assert!(p.is_enumeration());
        assert_eq!(p.option_value("enterprise"), Some("enterprise"));
        assert_eq!(p.option_value(" Small business "), Some("small_business"));
        assert_eq!(p.option_value("SMALL BUSINESS"), Some("small_business"));
        assert_eq!(p.option_value("ENTERPRISE"), Some("enterprise"));
        assert_eq!(p.option_value("partner"), Some("Partner"));
        assert_eq!(p.option_value("mid"), None);
        assert_eq!(p.to_internal("Enterprise").unwrap(), "enterprise");
        assert_eq!(p.to_internal("").unwrap(), "");
        let e = p.to_internal("Mid-market").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`Mid-market` is not an option of company_category; allowed: small_business (Small business), enterprise (Enterprise), Partner"
        );
        // one select value is one option, even with a `;` in it
        assert!(p.to_internal("enterprise;partner").is_err());
    }

    #[test]
    fn checkboxes_map_each_part() {
        let p = category("checkbox");
        assert_eq!(
            p.to_internal("Enterprise; partner").unwrap(),
            "enterprise;Partner"
        );
        assert_eq!(p.to_internal("enterprise;nope").unwrap_err().value, "nope");
    }
}
