use crate::*;
use serde_json::{Value, json};

#[tokio::test]
async fn batch_create_read_update_archive() {
    let e = default_env().await;
    let inputs: Vec<Value> = (0..3)
        .map(|i| json!({"properties": {"email": format!("b{i}@x.com"), "firstname": format!("B{i}")}}))
        .collect();
    let r = e
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": inputs}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["status"], "COMPLETE");
    assert!(r.body["startedAt"].is_string() && r.body["completedAt"].is_string());
    let ids: Vec<String> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);

    // read: one missing → 207 with OBJECT_NOT_FOUND and context.ids
    let r = e
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": [{"id": ids[0]}, {"id": "424242"}], "properties": ["firstname"]}),
        )
        .await;
    assert_eq!(r.status, 207, "{}", r.body);
    assert_eq!(r.body["results"][0]["properties"]["firstname"], "B0");
    assert_eq!(r.body["numErrors"], 1);
    assert_eq!(r.body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(r.body["errors"][0]["context"]["ids"], json!(["424242"]));
    // read by email
    let r = e
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"idProperty": "email", "inputs": [{"id": "b1@x.com"}], "properties": []}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["results"][0]["id"], ids[1].as_str());

    // update
    let r = e
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [{"id": ids[0], "properties": {"lastname": "L"}}, {"id": "b2@x.com", "idProperty": "email", "properties": {"lastname": "M"}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["results"][1]["properties"]["lastname"], "M");

    // archive
    let r = e
        .post(
            "/crm/v3/objects/contacts/batch/archive",
            json!({"inputs": [{"id": ids[0]}, {"id": ids[1]}]}),
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(e.sb.store().count("contacts").unwrap(), 1);
    e.sb.shutdown().await;
}

#[tokio::test]
async fn more_than_100_inputs_rejected() {
    let e = default_env().await;
    let inputs: Vec<Value> = (0..101)
        .map(|i| json!({"properties": {"name": format!("C{i}")}}))
        .collect();
    for op in ["create", "upsert", "update", "read", "archive"] {
        let r = e
            .post(
                &format!("/crm/v3/objects/companies/batch/{op}"),
                json!({"inputs": inputs}),
            )
            .await;
        assert_error(&r, 400, "VALIDATION_ERROR");
    }
    assert_eq!(e.sb.store().count("companies").unwrap(), 0);
    e.sb.shutdown().await;
}

#[tokio::test]
async fn multi_status_maps_errors_by_trace_id() {
    let e = default_env().await;
    e.post(
        "/crm/v3/objects/contacts",
        json!({"properties": {"email": "taken@x.com"}}),
    )
    .await;
    let r = e
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [
                {"objectWriteTraceId": "t1", "properties": {"email": "ok@x.com"}},
                {"objectWriteTraceId": "t2", "properties": {"email": "taken@x.com"}},
                {"objectWriteTraceId": "t3", "properties": {"bogus": "1"}},
                {"objectWriteTraceId": "t4", "properties": {"email": "ok@x.com"}},
            ]}),
        )
        .await;
    assert_eq!(r.status, 207, "{}", r.body);
    assert_eq!(r.body["numErrors"], 3);
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["objectWriteTraceId"], "t1");
    let errs = r.body["errors"].as_array().unwrap();
    let by_trace = |t: &str| {
        errs.iter()
            .find(|x| x["context"]["objectWriteTraceId"] == json!([t]))
            .unwrap_or_else(|| panic!("no error for {t}: {errs:?}"))
            .clone()
    };
    assert_eq!(by_trace("t2")["category"], "CONFLICT");
    assert_eq!(by_trace("t2")["status"], "error");
    assert_eq!(by_trace("t3")["category"], "VALIDATION_ERROR");
    assert_eq!(
        by_trace("t4")["category"],
        "VALIDATION_ERROR",
        "duplicate within batch"
    );
    assert_eq!(e.sb.store().count("contacts").unwrap(), 2);

    // without trace ids: the whole batch fails and nothing is written
    let r = e
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [
                {"properties": {"email": "fresh@x.com"}},
                {"properties": {"email": "taken@x.com"}},
            ]}),
        )
        .await;
    assert_error(&r, 409, "CONFLICT");
    assert_eq!(e.sb.store().count("contacts").unwrap(), 2);

    // batch update with a missing id and trace ids → 207
    let r = e
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [
                {"objectWriteTraceId": "u1", "id": "ok@x.com", "idProperty": "email", "properties": {"firstname": "Ok"}},
                {"objectWriteTraceId": "u2", "id": "999999", "properties": {"firstname": "No"}},
            ]}),
        )
        .await;
    assert_eq!(r.status, 207);
    assert_eq!(r.body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(
        r.body["errors"][0]["context"]["objectWriteTraceId"],
        json!(["u2"])
    );
    e.sb.shutdown().await;
}

#[tokio::test]
async fn upsert_by_email_and_unique_property() {
    let e = default_env().await;
    let r = e
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "old@x.com", "firstname": "Old"}}),
        )
        .await;
    let old_id = r.body["id"].as_str().unwrap().to_string();
    let r = e
        .post(
            "/crm/v3/objects/contacts/batch/upsert",
            json!({"inputs": [
                {"id": "OLD@x.com", "idProperty": "email", "properties": {"firstname": "Updated"}},
                {"id": "new@x.com", "idProperty": "email", "properties": {"firstname": "New"}},
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let res = r.body["results"].as_array().unwrap();
    assert_eq!(res[0]["new"], false);
    assert_eq!(res[0]["id"], old_id.as_str());
    assert_eq!(res[0]["properties"]["firstname"], "Updated");
    assert_eq!(res[1]["new"], true);
    assert_eq!(res[1]["properties"]["email"], "new@x.com");

    // by a unique custom property on companies
    let up = |name: &str| json!({"inputs": [{"id": "ERP-1", "idProperty": "external_id", "properties": {"name": name}}]});
    let r = e
        .post("/crm/v3/objects/companies/batch/upsert", up("First"))
        .await;
    assert_eq!(r.body["results"][0]["new"], true);
    let id = r.body["results"][0]["id"].clone();
    assert_eq!(r.body["results"][0]["properties"]["external_id"], "ERP-1");
    let r = e
        .post("/crm/v3/objects/companies/batch/upsert", up("Second"))
        .await;
    assert_eq!(r.body["results"][0]["new"], false);
    assert_eq!(r.body["results"][0]["id"], id);
    assert_eq!(r.body["results"][0]["properties"]["name"], "Second");
    assert_eq!(e.sb.store().count("companies").unwrap(), 1);

    // duplicate ids in one batch → 400
    let r = e
        .post(
            "/crm/v3/objects/contacts/batch/upsert",
            json!({"inputs": [
                {"id": "d@x.com", "idProperty": "email", "properties": {}},
                {"id": "D@x.com", "idProperty": "email", "properties": {}},
            ]}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    // non-unique idProperty → 400
    let r = e
        .post(
            "/crm/v3/objects/companies/batch/upsert",
            json!({"inputs": [{"id": "Acme", "idProperty": "name", "properties": {}}]}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    e.sb.shutdown().await;
}

#[tokio::test]
async fn unchanged_upsert_keeps_modified_time() {
    let e = default_env().await;
    let body = json!({"inputs": [{"id": "same@x.com", "idProperty": "email", "properties": {"firstname": "S"}}]});
    let r = e
        .post("/crm/v3/objects/contacts/batch/upsert", body.clone())
        .await;
    let first = r.body["results"][0]["updatedAt"].clone();
    e.sb.clock()
        .advance(std::time::Duration::from_millis(5))
        .unwrap();
    let r = e.post("/crm/v3/objects/contacts/batch/upsert", body).await;
    assert_eq!(r.body["results"][0]["updatedAt"], first);
    e.sb.shutdown().await;
}
