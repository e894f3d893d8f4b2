//! Both path families on one store, batch associations, property definitions through the
//! control API, and the scopes a token is held to.
use crate::*;
use rivulet_sandbox::{RateLimit, SandboxConfig};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn the_date_versioned_paths_serve_the_same_store() {
    let e = default_env().await;
    let r = e
        .post(
            "/crm/objects/2026-03/contacts",
            json!({"properties": {"email": "a@example.com", "firstname": "Ann"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let r = e.get(&format!("/crm/v3/objects/contacts/{id}")).await;
    assert_eq!(r.body["properties"]["firstname"], "Ann");
    let r = e
        .patch(
            "/crm/objects/2026-03/contacts/a@example.com?idProperty=email",
            json!({"properties": {"lastname": "Lee"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = e
        .post(
            "/crm/objects/2026-03/contacts/batch/upsert",
            json!({"inputs": [{"id": "b@example.com", "idProperty": "email", "properties": {"firstname": "Bo"}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["results"][0]["new"], true);
    let r = e
        .post(
            "/crm/objects/2026-03/contacts/search",
            json!({"filterGroups": [{"filters": [{"propertyName": "lastname", "operator": "EQ", "value": "Lee"}]}]}),
        )
        .await;
    assert_eq!(r.body["total"], 1, "{}", r.body);
    let r = e.get("/crm/objects/2026-03/contacts?limit=10").await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 2);
    let r = e
        .get("/crm/properties/2026-03/companies/company_category")
        .await;
    assert_eq!(r.body["type"], "enumeration");
    assert_eq!(r.body["options"].as_array().unwrap().len(), 4);
    let r = e.get("/crm/properties/2026-03/companies").await;
    assert!(r.body["results"].as_array().unwrap().len() > 5);
    // endpoint names and limits treat both families alike
    let stats = e.sb.store().stats();
    assert_eq!(stats.endpoints["create"], 1);
    assert_eq!(stats.endpoints["batch_upsert"], 1);
    assert_eq!(stats.endpoints["search"], 1);
    assert_eq!(stats.endpoints["properties"], 2);
    e.sb.shutdown().await;
}

#[tokio::test]
async fn batch_associations_on_both_families() {
    let e = default_env().await;
    let deal = e
        .post(
            "/crm/v3/objects/deals",
            json!({"properties": {"dealname": "D"}}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut items = Vec::new();
    for i in 0..3 {
        let r = e
            .post(
                "/crm/objects/2026-03/line_items",
                json!({"properties": {"name": format!("L{i}"), "quantity": "1"}}),
            )
            .await;
        items.push(r.body["id"].as_str().unwrap().to_string());
    }
    // default associations, one naming a deal that does not exist: 207, that one an error
    let r = e
        .post(
            "/crm/v4/associations/line_items/deals/batch/associate/default",
            json!({"inputs": [
                {"from": {"id": items[0]}, "to": {"id": deal}},
                {"from": {"id": items[1]}, "to": {"id": "424242"}}
            ]}),
        )
        .await;
    assert_eq!(r.status, 207, "{}", r.body);
    assert_eq!(r.body["results"][0]["from"]["id"], items[0].as_str());
    assert_eq!(
        r.body["results"][0]["associationSpec"]["associationTypeId"],
        20
    );
    assert_eq!(r.body["numErrors"], 1);
    assert_eq!(
        r.body["errors"][0]["context"]["toObjectId"],
        json!(["424242"])
    );
    // labelled, on the date-versioned family
    let r = e
        .post(
            "/crm/associations/2026-03/line_items/deals/batch/create",
            json!({"inputs": [{"from": {"id": items[2]}, "to": {"id": deal},
                               "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 20}]}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.body["results"][0]["toObjectId"],
        deal.parse::<u64>().unwrap()
    );
    assert_eq!(r.body["results"][0]["fromObjectTypeId"], "0-8");
    // a type that does not go that way refuses the batch whole, changing nothing
    let r = e
        .post(
            "/crm/associations/2026-03/line_items/deals/batch/create",
            json!({"inputs": [
                {"from": {"id": items[1]}, "to": {"id": deal}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 20}]},
                {"from": {"id": items[1]}, "to": {"id": deal}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 19}]}
            ]}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    // listings, and a batch read, on both families
    for path in [
        format!("/crm/v4/objects/deals/{deal}/associations/line_items"),
        format!("/crm/objects/2026-03/deals/{deal}/associations/line_items"),
    ] {
        let r = e.get(&path).await;
        let mut ids: Vec<String> = r.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["toObjectId"].to_string())
            .collect();
        ids.sort();
        assert_eq!(ids, vec![items[0].clone(), items[2].clone()], "{path}");
    }
    let r = e
        .post(
            "/crm/associations/2026-03/deals/line_items/batch/read",
            json!({"inputs": [{"id": deal}, {"id": "5"}]}),
        )
        .await;
    assert_eq!(r.status, 207, "{}", r.body);
    assert_eq!(r.body["results"][0]["to"].as_array().unwrap().len(), 2);
    // no default association between products and deals
    let r = e
        .post(
            "/crm/v4/associations/products/deals/batch/associate/default",
            json!({"inputs": []}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    // a labelled single PUT
    let r = e
        .put(
            &format!(
                "/crm/objects/2026-03/line_items/{}/associations/deals/{deal}",
                items[1]
            ),
            json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 20}]),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = e
        .post(
            "/crm/v4/associations/line_items/deals/batch/create",
            json!({"inputs": (0..1001).map(|_| json!({})).collect::<Vec<Value>>()}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    e.sb.shutdown().await;
}

#[tokio::test]
async fn properties_defined_and_archived_through_the_control_api() {
    let e = default_env().await;
    let r = e
        .post(
            "/_sandbox/properties/companies",
            json!({"name": "segment", "label": "Segment", "type": "enumeration", "fieldType": "select",
                   "options": [{"label": "Small", "value": "small"}, {"label": "Large", "value": "large"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = e.get("/crm/v3/properties/companies/segment").await;
    assert_eq!(r.body["options"][1]["value"], "large");
    // HubSpot wants the internal value, not the label
    let r = e
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "X", "segment": "Large"}}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("[small, large]")
    );
    let r = e
        .post(
            "/_sandbox/properties/companies",
            json!({"name": "segment", "type": "string", "fieldType": "text"}),
        )
        .await;
    assert_error(&r, 409, "CONFLICT");
    let r = e
        .post(
            "/_sandbox/properties/companies",
            json!({"name": "Bad Name", "type": "string", "fieldType": "text"}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    // archived: gone from the definitions; a default property cannot be
    let r = e.delete("/_sandbox/properties/companies/segment").await;
    assert_eq!(r.status, 204);
    let r = e.get("/crm/properties/2026-03/companies/segment").await;
    assert_error(&r, 404, "OBJECT_NOT_FOUND");
    let r = e.delete("/_sandbox/properties/companies/segment").await;
    assert_error(&r, 404, "OBJECT_NOT_FOUND");
    let r = e.delete("/_sandbox/properties/companies/name").await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    // the demo's category properties can be archived like any the portal made
    let r = e
        .delete("/_sandbox/properties/contacts/contact_category")
        .await;
    assert_eq!(r.status, 204);
    e.sb.shutdown().await;
}

#[tokio::test]
async fn a_restricted_token_gets_hubspots_403() {
    let e = start(SandboxConfig {
        rate_limit: Some(RateLimit::new(50, Duration::from_secs(10))),
        ..SandboxConfig::default()
    })
    .await;
    let r = e
        .put(
            "/_sandbox/scopes",
            json!({"token": TOKEN, "scopes": ["crm.objects.contacts.read"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = e.get("/crm/objects/2026-03/contacts").await;
    assert_eq!(r.status, 200);
    let r = e
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "x@example.com"}}),
        )
        .await;
    assert_error(&r, 403, "MISSING_SCOPES");
    assert_eq!(
        r.body["errors"][0]["context"]["requiredGranularScopes"],
        json!(["crm.objects.contacts.write"])
    );
    let r = e.get("/crm/properties/2026-03/contacts/email").await;
    assert_error(&r, 403, "MISSING_SCOPES");
    let r = e
        .post(
            "/oauth/v2/private-apps/get/access-token-info",
            json!({"tokenKey": TOKEN}),
        )
        .await;
    assert_eq!(r.body["scopes"], json!(["crm.objects.contacts.read"]));
    assert_eq!(r.body["hubId"], rivulet_sandbox::HUB_ID);
    let r = e
        .put(
            "/_sandbox/scopes",
            json!({"token": TOKEN, "scopes": ["crm.nope"]}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    let r = e
        .put("/_sandbox/scopes", json!({"token": TOKEN, "scopes": null}))
        .await;
    assert_eq!(r.status, 200);
    let r = e
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "x@example.com"}}),
        )
        .await;
    assert_eq!(r.status, 201);
    // refused requests spend no rate budget
    assert_eq!(r.headers["x-hubspot-ratelimit-remaining"], "48");
    e.sb.shutdown().await;
}
