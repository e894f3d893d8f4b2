//! Category properties: the dropdowns a connection names (`company_category_property`,
//! `contact_category_property`) that must exist in HubSpot before anything is written. Their
//! definitions are read once per run (at start-up, or by the first write that needs them) and
//! shared by every flow on the connection; a mapped category value is then turned into the
//! option's internal value, or fails its record naming the allowed ones.

use rivulet_hubspot::{Client, ObjectType, PropertyDefinition};
use rivulet_spec::model::HubSpotConnection;
use std::sync::Arc;
use tokio::sync::Mutex;

/// Why a category property cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CategoryError {
    /// HubSpot has no such property.
    #[error(
        "the {object} category property `{property}` does not exist in HubSpot: create it as a dropdown (select) property of {object_plural} in HubSpot's settings, or correct `{key}` in the connection"
    )]
    Missing {
        /// `company` or `contact`.
        object: &'static str,
        /// `companies` or `contacts`.
        object_plural: &'static str,
        /// The property's name.
        property: String,
        /// The connection's key naming it.
        key: &'static str,
    },
    /// The property exists but is no dropdown.
    #[error(
        "the {object} category property `{property}` is a `{kind}` property, not a dropdown (enumeration): point `{key}` at a dropdown property, or change the property's field type in HubSpot"
    )]
    NotEnumeration {
        /// `company` or `contact`.
        object: &'static str,
        /// The property's name.
        property: String,
        /// Its type.
        kind: String,
        /// The connection's key naming it.
        key: &'static str,
    },
    /// HubSpot could not be asked (down, rate limited, unauthorised).
    #[error("reading the {object} category property `{property}` failed: {message}")]
    Unreadable {
        /// `company` or `contact`.
        object: &'static str,
        /// The property's name.
        property: String,
        /// The client's error.
        message: String,
        /// Whether asking again later may work (HubSpot down or overloaded).
        transient: bool,
    },
}

impl CategoryError {
    /// Whether asking HubSpot again later may end it (not a missing or wrong property, not a
    /// refused token).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CategoryError::Unreadable {
                transient: true,
                ..
            }
        )
    }
}

/// One configured category property.
#[derive(Debug, Clone)]
struct Wanted {
    object: ObjectType,
    singular: &'static str,
    plural: &'static str,
    key: &'static str,
    property: String,
}

/// A category property as read from HubSpot.
#[derive(Debug, Clone)]
pub struct Category {
    /// `companies` or `contacts`.
    pub object: ObjectType,
    /// The property's definition (name, type, options).
    pub definition: Arc<PropertyDefinition>,
}

/// The category properties of one connection, read at most once per run.
#[derive(Debug, Default)]
pub struct Categories {
    wanted: Vec<Wanted>,
    loaded: Mutex<Option<Arc<Vec<Category>>>>,
}

impl Categories {
    /// The category properties `hs` names (none: every call answers at once).
    pub fn new(hs: &HubSpotConnection) -> Self {
        let mut wanted = Vec::new();
        if let Some(p) = &hs.company_category_property {
            wanted.push(Wanted {
                object: ObjectType::Companies,
                singular: "company",
                plural: "companies",
                key: "company_category_property",
                property: p.clone(),
            });
        }
        if let Some(p) = &hs.contact_category_property {
            wanted.push(Wanted {
                object: ObjectType::Contacts,
                singular: "contact",
                plural: "contacts",
                key: "contact_category_property",
                property: p.clone(),
            });
        }
        Categories {
            wanted,
            loaded: Mutex::new(None),
        }
    }

    /// Whether the connection names any category property.
    pub fn is_empty(&self) -> bool {
        self.wanted.is_empty()
    }

    /// The name of the category property of `object`, if the connection names one.
    pub fn property_of(&self, object: &ObjectType) -> Option<&str> {
        self.wanted
            .iter()
            .find(|w| &w.object == object)
            .map(|w| w.property.as_str())
    }

    /// Reads each category property from HubSpot (once; later calls answer from memory) and
    /// checks that it exists and is a dropdown. A failure is not remembered, so a later call
    /// asks again.
    pub async fn load(&self, client: &Client) -> Result<Arc<Vec<Category>>, CategoryError> {
        let mut loaded = self.loaded.lock().await;
        if let Some(done) = &*loaded {
            return Ok(Arc::clone(done));
        }
        let mut out = Vec::with_capacity(self.wanted.len());
        for w in &self.wanted {
            out.push(read(client, w).await?);
        }
        let done = Arc::new(out);
        *loaded = Some(Arc::clone(&done));
        Ok(done)
    }

    /// The category of `object` (its definition, read once), or `None` when the connection
    /// names none for it.
    pub async fn of(
        &self,
        client: &Client,
        object: &ObjectType,
    ) -> Result<Option<Category>, CategoryError> {
        if self.property_of(object).is_none() {
            return Ok(None);
        }
        let all = self.load(client).await?;
        Ok(all.iter().find(|c| &c.object == object).cloned())
    }

    /// Each configured property's state, every one asked even when another fails (for
    /// `rivulet check`): `(object, property, definition or why not)`.
    pub async fn report(
        &self,
        client: &Client,
    ) -> Vec<(
        &'static str,
        String,
        Result<Arc<PropertyDefinition>, CategoryError>,
    )> {
        let mut out = Vec::with_capacity(self.wanted.len());
        for w in &self.wanted {
            let state = read(client, w).await.map(|c| c.definition);
            out.push((w.singular, w.property.clone(), state));
        }
        out
    }
}

async fn read(client: &Client, w: &Wanted) -> Result<Category, CategoryError> {
    match client.property(&w.object, &w.property).await {
        Ok(Some(def)) if def.is_enumeration() => Ok(Category {
            object: w.object.clone(),
            definition: Arc::new(def),
        }),
        Ok(Some(def)) => Err(CategoryError::NotEnumeration {
            object: w.singular,
            property: w.property.clone(),
            kind: def.kind,
            key: w.key,
        }),
        Ok(None) => Err(CategoryError::Missing {
            object: w.singular,
            object_plural: w.plural,
            property: w.property.clone(),
            key: w.key,
        }),
        Err(e) => {
            let transient = e.is_transient();
            Err(CategoryError::Unreadable {
                object: w.singular,
                property: w.property.clone(),
                message: e.to_string(),
                transient,
            })
        }
    }
}
