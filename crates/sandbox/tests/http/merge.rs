//! Merges as HubSpot does them, and how a merged-away id behaves afterwards.

use crate::*;
use serde_json::json;

async fn company(e: &Env, props: serde_json::Value) -> String {
    let r = e
        .post("/crm/v3/objects/companies", json!({ "properties": props }))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn merged_ids_follow_on_single_calls_and_vanish_from_batches_and_search() {
    let e = default_env().await;
    let a = company(&e, json!({"name": "Acme", "domain": "acme.example"})).await;
    let b = company(&e, json!({"name": "Acme Inc", "city": "Lyon"})).await;
    let c = company(&e, json!({"name": "Other"})).await;
    let r = e
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "p@acme.example"}}),
        )
        .await;
    let person = r.body["id"].as_str().unwrap().to_string();
    e.sb.store()
        .associate("contacts", &person, "companies", &b)
        .unwrap();

    let r = e
        .post(
            "/crm/v3/objects/companies/merge",
            json!({"primaryObjectId": a, "objectIdToMerge": b}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], a.as_str());
    assert_eq!(
        r.body["properties"]["name"], "Acme",
        "the primary's values win"
    );
    assert_eq!(
        r.body["properties"]["city"], "Lyon",
        "gaps filled from the merged record"
    );
    assert_eq!(r.body["properties"]["hs_merged_object_ids"], b.as_str());
    assert_eq!(
        e.sb.store().merged_into("companies", &b).unwrap(),
        Some(a.clone())
    );
    assert_eq!(e.sb.store().count("companies").unwrap(), 2);

    // single GET of the old id answers the survivor
    let r = e.get(&format!("/crm/v3/objects/companies/{b}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["id"], a.as_str());
    // the association moved to the survivor
    let r = e
        .get(&format!(
            "/crm/v3/objects/contacts/{person}/associations/companies"
        ))
        .await;
    assert_eq!(r.body["results"][0]["id"], a.as_str());

    // batch update: 200 COMPLETE, the merged-away input simply missing (no error)
    let r = e
        .post(
            "/crm/v3/objects/companies/batch/update",
            json!({"inputs": [
                {"id": b, "objectWriteTraceId": "t-old", "properties": {"industry": "COMPUTER_SOFTWARE"}},
                {"id": c, "objectWriteTraceId": "t-c", "properties": {"industry": "RETAIL"}}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "COMPLETE");
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{}", r.body);
    assert_eq!(results[0]["objectWriteTraceId"], "t-c");
    assert!(r.body.get("errors").is_none() && r.body.get("numErrors").is_none());
    let survivor = e.sb.store().get("companies", &a).unwrap().unwrap();
    assert!(
        survivor["properties"].get("industry").is_none(),
        "nothing written"
    );

    // single PATCH of the old id: 200 with the survivor, the update applied to it
    let r = e
        .patch(
            &format!("/crm/v3/objects/companies/{b}"),
            json!({"properties": {"industry": "COMPUTER_SOFTWARE"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], a.as_str());
    let survivor = e.sb.store().get("companies", &a).unwrap().unwrap();
    assert_eq!(survivor["properties"]["industry"], "COMPUTER_SOFTWARE");

    // batch read leaves it out without an error; search never shows it
    let r = e
        .post(
            "/crm/v3/objects/companies/batch/read",
            json!({"inputs": [{"id": b}, {"id": c}], "properties": ["name"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["results"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["results"][0]["id"], c.as_str());
    let r = e
        .post(
            "/crm/v3/objects/companies/search",
            json!({"filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": b}]}]}),
        )
        .await;
    assert_eq!(r.body["total"], 0);
    let r = e.post("/crm/v3/objects/companies/search", json!({})).await;
    assert_eq!(r.body["total"], 2);

    // merges chain: merging the survivor into c makes b stand for c
    let merged = e.sb.store().merge("companies", &c, &a).unwrap();
    assert_eq!(merged["id"], c.as_str());
    assert_eq!(
        merged["properties"]["hs_merged_object_ids"],
        format!("{a};{b}").as_str()
    );
    assert_eq!(
        e.get(&format!("/crm/v3/objects/companies/{b}")).await.body["id"],
        c.as_str()
    );
    assert_eq!(
        e.sb.store().merged_into("companies", &b).unwrap(),
        Some(c.clone())
    );

    // refused merges
    let r = e
        .post(
            "/crm/v3/objects/companies/merge",
            json!({"primaryObjectId": c, "objectIdToMerge": b}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    let r = e
        .post(
            "/crm/v3/objects/companies/merge",
            json!({"primaryObjectId": c, "objectIdToMerge": "999999"}),
        )
        .await;
    assert_error(&r, 404, "OBJECT_NOT_FOUND");
    let r = e
        .post(
            "/crm/v3/objects/companies/merge",
            json!({"primaryObjectId": c}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    e.sb.shutdown().await;
}
