//! Portal-side write validation (HubSpot 2026-09) and enumeration properties.

use crate::*;
use serde_json::{Value, json};

#[tokio::test]
async fn conditionally_required_properties_refuse_writes() {
    let e = default_env().await;
    let r = e
        .put(
            "/_sandbox/validation/contacts",
            json!({"required_when": {"property": "lifecyclestage", "equals": "customer", "then": ["phone"]},
                   "required_on_create": ["lastname"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["required_when"][0]["then"], json!(["phone"]));
    let r = e.get("/_sandbox/validation").await;
    assert_eq!(
        r.body["contacts"]["required_on_create"],
        json!(["lastname"])
    );

    // required on create
    let r = e
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "a@x.io"}}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert_eq!(r.body["context"]["propertyName"], json!(["lastname"]));
    assert!(
        r.body["message"].as_str().unwrap().contains("lastname"),
        "{}",
        r.body
    );
    // conditionally required
    let r = e
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "a@x.io", "lastname": "A", "lifecyclestage": "customer"}}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert_eq!(r.body["context"]["propertyName"], json!(["phone"]));
    assert_eq!(
        r.body["errors"][0]["context"]["propertyName"],
        json!(["phone"])
    );
    let r = e
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "a@x.io", "lastname": "A", "lifecyclestage": "lead"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    // an update that makes the rule apply, on the record as it would be left
    let r = e
        .patch(
            &format!("/crm/v3/objects/contacts/{id}"),
            json!({"properties": {"lifecyclestage": "customer"}}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    let r = e
        .patch(
            &format!("/crm/v3/objects/contacts/{id}"),
            json!({"properties": {"lifecyclestage": "customer", "phone": "+1 555 0100"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = e
        .patch(
            &format!("/crm/v3/objects/contacts/{id}"),
            json!({"properties": {"phone": ""}}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");

    // batch with trace ids: a per-input error in a 207
    let r = e
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [
                {"objectWriteTraceId": "ok", "properties": {"email": "b@x.io", "lastname": "B"}},
                {"objectWriteTraceId": "bad", "properties": {"email": "c@x.io", "lastname": "C", "lifecyclestage": "customer"}}
            ]}),
        )
        .await;
    assert_eq!(r.status, 207, "{}", r.body);
    assert_eq!(r.body["errors"][0]["category"], "VALIDATION_ERROR");
    assert_eq!(
        r.body["errors"][0]["context"]["objectWriteTraceId"],
        json!(["bad"])
    );
    assert_eq!(
        r.body["errors"][0]["context"]["propertyName"],
        json!(["phone"])
    );
    // upsert creates obey the create rules too
    let r = e
        .post(
            "/crm/v3/objects/contacts/batch/upsert",
            json!({"inputs": [{"id": "d@x.io", "idProperty": "email", "properties": {"firstname": "D"}}]}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");

    // rules must name existing properties; DELETE and reset clear them
    let r = e
        .put(
            "/_sandbox/validation/contacts",
            json!({"required_on_create": ["nope"]}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    let r = e
        .put(
            "/_sandbox/validation/contacts",
            json!({"required_when": [{"property": "x"}]}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert_eq!(e.delete("/_sandbox/validation/contacts").await.status, 204);
    let r = e
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "e@x.io"}}),
        )
        .await;
    assert_eq!(r.status, 201);
    e.sb.store()
        .set_write_rules(
            "companies",
            rivulet_sandbox::WriteRules {
                required_on_create: vec!["domain".into()],
                ..Default::default()
            },
        )
        .unwrap();
    e.post("/_sandbox/reset", json!({})).await;
    assert_eq!(
        e.sb.store().write_rules("companies").unwrap(),
        rivulet_sandbox::WriteRules::default()
    );
    e.sb.shutdown().await;
}

#[tokio::test]
async fn company_industry_is_an_enumeration_of_hubspot_values() {
    let e = default_env().await;
    let r = e.get("/crm/v3/properties/companies/industry").await;
    assert_eq!(r.body["type"], "enumeration");
    let options: Vec<&str> = r.body["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap())
        .collect();
    assert!(options.len() >= 20, "{options:?}");
    for v in ["ACCOUNTING", "AIRLINES_AVIATION", "COMPUTER_SOFTWARE"] {
        assert!(options.contains(&v), "{v}");
    }
    let r = e
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "A", "industry": "Software"}}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    let msg = r.body["message"].as_str().unwrap();
    assert!(
        msg.contains("Software was not one of the allowed options: [ACCOUNTING, AIRLINES_AVIATION"),
        "{msg}"
    );
    assert!(
        msg.contains("COMPUTER_SOFTWARE"),
        "every option listed: {msg}"
    );
    assert_eq!(r.body["errors"][0]["code"], "INVALID_OPTION");
    assert_eq!(r.body["context"]["propertyName"], json!(["industry"]));
    let r = e
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "A", "industry": "COMPUTER_SOFTWARE"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);

    // the demo data uses HubSpot's values only
    e.post("/_sandbox/demo", json!({})).await;
    let industries: Vec<Value> =
        e.sb.store()
            .records("companies")
            .unwrap()
            .into_iter()
            .filter_map(|c| c["properties"].get("industry").cloned())
            .collect();
    assert_eq!(industries.len(), 51);
    for i in industries {
        assert!(options.contains(&i.as_str().unwrap()), "{i}");
    }
    e.sb.shutdown().await;
}
