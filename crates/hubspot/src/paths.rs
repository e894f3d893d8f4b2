//! Every API path the client calls, built from the connection's [`ApiVersion`], so no call
//! spells a version itself.
//!
//! | call | `v3` | `2026-03` |
//! |---|---|---|
//! | objects (list, create, get, update, archive) | `/crm/v3/objects/{type}[/{id}]` | `/crm/objects/2026-03/{type}[/{id}]` |
//! | batch | `/crm/v3/objects/{type}/batch/{op}` | `/crm/objects/2026-03/{type}/batch/{op}` |
//! | search, merge | `/crm/v3/objects/{type}/{search,merge}` | `/crm/objects/2026-03/{type}/{search,merge}` |
//! | properties | `/crm/v3/properties/{type}[/{name}]` | `/crm/properties/2026-03/{type}[/{name}]` |
//! | associations, batch | `/crm/v4/associations/{from}/{to}/batch/{op}` | `/crm/associations/2026-03/{from}/{to}/batch/{op}` |
//! | associations of a record | `/crm/v4/objects/{type}/{id}/associations/{to}` | `/crm/objects/2026-03/{type}/{id}/associations/{to}` |
//!
//! Sources: the facts file's `/crm/objects/2026-03/{objectType}` and
//! `…/batch/upsert`; HubSpot's 2026-03 reference pages for `…/batch/create`,
//! `/crm/properties/2026-03/{objectType}` (and `/{propertyName}`),
//! `/crm/associations/2026-03/{from}/{to}/batch/{create,read,associate/default}` and
//! `PUT /crm/objects/2026-03/{from}/{id}/associations/default/{to}/{toId}`. The reference shows
//! no page for reading one record's associations in 2026-03: that path follows the pattern of its
//! `PUT` sibling (the v4 listing moved under the objects prefix), and is the one inference here.
//! Search and merge keep their v3 suffixes under the new prefix, as HubSpot's 2026-03 pages for
//! custom objects show.

use crate::config::ApiVersion;
use crate::objects::{ObjectType, encode_segment};

/// The paths of one API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paths {
    version: ApiVersion,
}

impl Paths {
    /// The paths of `version`.
    pub fn new(version: ApiVersion) -> Self {
        Paths { version }
    }

    /// `…/objects/{type}`: list and create.
    pub fn objects(&self, object: &ObjectType) -> String {
        match self.version {
            ApiVersion::V3 => format!("/crm/v3/objects/{}", object.path_segment()),
            ApiVersion::V2026_03 => format!("/crm/objects/2026-03/{}", object.path_segment()),
        }
    }

    /// `…/objects/{type}/{id}`: get, update, archive (the id is percent-encoded).
    pub fn object(&self, object: &ObjectType, id: &str) -> String {
        format!("{}/{}", self.objects(object), encode_segment(id))
    }

    /// `…/objects/{type}/batch/{op}` for `create`, `read`, `update`, `upsert`, `archive`.
    pub fn batch(&self, object: &ObjectType, op: &str) -> String {
        format!("{}/batch/{op}", self.objects(object))
    }

    /// `…/objects/{type}/search`.
    pub fn search(&self, object: &ObjectType) -> String {
        format!("{}/search", self.objects(object))
    }

    /// `…/objects/{type}/merge`.
    pub fn merge(&self, object: &ObjectType) -> String {
        format!("{}/merge", self.objects(object))
    }

    /// `…/properties/{type}`: every property definition of a type.
    pub fn properties(&self, object: &ObjectType) -> String {
        match self.version {
            ApiVersion::V3 => format!("/crm/v3/properties/{}", object.path_segment()),
            ApiVersion::V2026_03 => format!("/crm/properties/2026-03/{}", object.path_segment()),
        }
    }

    /// `…/properties/{type}/{name}`: one property definition.
    pub fn property(&self, object: &ObjectType, name: &str) -> String {
        format!("{}/{}", self.properties(object), encode_segment(name))
    }

    /// The batch association endpoints between two types; `op` is `create` (labelled),
    /// `associate/default`, `read` or `archive`.
    pub fn associations_batch(&self, from: &ObjectType, to: &ObjectType, op: &str) -> String {
        let (f, t) = (from.path_segment(), to.path_segment());
        match self.version {
            ApiVersion::V3 => format!("/crm/v4/associations/{f}/{t}/batch/{op}"),
            ApiVersion::V2026_03 => format!("/crm/associations/2026-03/{f}/{t}/batch/{op}"),
        }
    }

    /// The records of type `to` associated with one record.
    pub fn associations_of(&self, from: &ObjectType, id: &str, to: &ObjectType) -> String {
        let id = encode_segment(id);
        let (f, t) = (from.path_segment(), to.path_segment());
        match self.version {
            ApiVersion::V3 => format!("/crm/v4/objects/{f}/{id}/associations/{t}"),
            ApiVersion::V2026_03 => format!("/crm/objects/2026-03/{f}/{id}/associations/{t}"),
        }
    }
}

/// Metadata of an OAuth access token (scopes, account); the token is a path segment, so the
/// caller registers it as a secret before the path reaches any log.
pub(crate) fn access_token_info(token: &str) -> String {
    format!("/oauth/v1/access-tokens/{}", encode_segment(token))
}

/// Metadata of a private app's (or service key's) token, which travels in the body.
pub(crate) const PRIVATE_APP_TOKEN_INFO: &str = "/oauth/v2/private-apps/get/access-token-info";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_families() {
        let deals: ObjectType = "deal".parse().unwrap();
        let items: ObjectType = "line_item".parse().unwrap();
        let v3 = Paths::new(ApiVersion::V3);
        let dated = Paths::new(ApiVersion::V2026_03);
        assert_eq!(v3.objects(&deals), "/crm/v3/objects/deals");
        assert_eq!(dated.objects(&deals), "/crm/objects/2026-03/deals");
        assert_eq!(
            dated.batch(&ObjectType::Contacts, "upsert"),
            "/crm/objects/2026-03/contacts/batch/upsert"
        );
        assert_eq!(
            v3.object(&ObjectType::Contacts, "a@b.c"),
            "/crm/v3/objects/contacts/a%40b.c"
        );
        assert_eq!(
            dated.property(&ObjectType::Companies, "industry"),
            "/crm/properties/2026-03/companies/industry"
        );
        assert_eq!(
            v3.associations_batch(&items, &deals, "create"),
            "/crm/v4/associations/line_items/deals/batch/create"
        );
        assert_eq!(
            dated.associations_batch(&items, &deals, "associate/default"),
            "/crm/associations/2026-03/line_items/deals/batch/associate/default"
        );
        assert_eq!(
            v3.associations_of(&deals, "7", &items),
            "/crm/v4/objects/deals/7/associations/line_items"
        );
        assert_eq!(
            dated.associations_of(&deals, "7", &items),
            "/crm/objects/2026-03/deals/7/associations/line_items"
        );
        assert_eq!(dated.search(&deals), "/crm/objects/2026-03/deals/search");
        assert_eq!(v3.merge(&deals), "/crm/v3/objects/deals/merge");
    }
}
