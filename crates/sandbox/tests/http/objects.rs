use crate::*;
use serde_json::json;

#[tokio::test]
async fn create_get_update_archive_contact() {
    let e = default_env().await;
    let r = e
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "Jane@Example.com", "firstname": "Jane", "phone": 5551234}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let p = &r.body["properties"];
    assert_eq!(p["email"], "jane@example.com");
    assert_eq!(p["phone"], "5551234", "numbers coerced to strings");
    assert_eq!(p["hs_object_id"], id.as_str());
    assert!(p["createdate"].as_str().unwrap().ends_with('Z'));
    assert_eq!(p["lastmodifieddate"], p["createdate"]);
    assert_eq!(r.body["createdAt"], p["createdate"]);
    assert_eq!(r.body["archived"], false);

    // get by id: default properties
    let r = e.get(&format!("/crm/v3/objects/contacts/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["properties"]["firstname"], "Jane");
    assert!(r.body["properties"].get("phone").is_none());
    // by idProperty=email with explicit properties (unset → null)
    let r = e
        .get("/crm/v3/objects/contacts/JANE@example.com?idProperty=email&properties=phone,lastname")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(r.body["properties"]["phone"], "5551234");
    assert!(r.body["properties"]["lastname"].is_null());

    // update: empty string clears; modified time moves
    e.sb.clock()
        .advance(std::time::Duration::from_millis(5))
        .unwrap();
    let r = e
        .patch(
            &format!("/crm/v3/objects/contacts/{id}"),
            json!({"properties": {"phone": "", "lastname": "Doe"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["properties"].get("phone").is_none() || r.body["properties"]["phone"].is_null());
    assert_eq!(r.body["properties"]["lastname"], "Doe");
    assert_ne!(r.body["updatedAt"], r.body["createdAt"]);
    // update by idProperty
    let r = e
        .patch(
            "/crm/v3/objects/contacts/jane@example.com?idProperty=email",
            json!({"properties": {"jobtitle": "CTO"}}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["properties"]["jobtitle"], "CTO");

    // archive → 404 on get; archived=true finds it
    let r = e.delete(&format!("/crm/v3/objects/contacts/{id}")).await;
    assert_eq!(r.status, 204);
    let r = e.get(&format!("/crm/v3/objects/contacts/{id}")).await;
    assert_error(&r, 404, "OBJECT_NOT_FOUND");
    let r = e
        .get(&format!("/crm/v3/objects/contacts/{id}?archived=true"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["archived"], true);
    assert!(r.body["archivedAt"].is_string());
    // email is free again
    let r = e
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "jane@example.com"}}),
        )
        .await;
    assert_eq!(r.status, 201);
    e.sb.shutdown().await;
}

#[tokio::test]
async fn duplicate_email_is_409() {
    let e = default_env().await;
    let r = e
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "a@x.com"}}),
        )
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let r = e
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "A@x.com"}}),
        )
        .await;
    assert_error(&r, 409, "CONFLICT");
    assert_eq!(
        r.body["message"],
        format!("Contact already exists. Existing ID: {id}")
    );
    e.sb.shutdown().await;
}

#[tokio::test]
async fn validation_errors() {
    let e = default_env().await;
    // unknown property
    let r = e
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "A", "nope": "x"}}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .starts_with("Property values were not valid")
    );
    assert_eq!(r.body["context"]["propertyName"], json!(["nope"]));
    assert_eq!(r.body["errors"][0]["code"], "PROPERTY_DOESNT_EXIST");
    // read-only
    for p in ["hs_object_id", "createdate", "hs_lastmodifieddate"] {
        let r = e
            .post("/crm/v3/objects/companies", json!({"properties": {p: "1"}}))
            .await;
        assert_error(&r, 400, "VALIDATION_ERROR");
        assert_eq!(r.body["errors"][0]["code"], "READ_ONLY_VALUE");
    }
    let r = e
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"lastmodifieddate": "1"}}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    // enumeration
    let r = e
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"company_category": "huge"}}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert_eq!(r.body["errors"][0]["code"], "INVALID_OPTION");
    let r = e
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"company_category": "enterprise", "numberofemployees": 12}}),
        )
        .await;
    assert_eq!(r.status, 201);
    // numbers must parse
    let r = e
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"numberofemployees": "twelve"}}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    // date must be midnight UTC
    let r = e
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"date_of_birth": "1572480000001"}}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert!(r.body["message"].as_str().unwrap().contains("not midnight"));
    let r = e
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"date_of_birth": "1572480000000"}}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["properties"]["date_of_birth"], "2019-10-31");
    // objects as values rejected, bad JSON rejected
    let r = e
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"firstname": {"a": 1}}}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    let r =
        e.c.post(format!("{}/crm/v3/objects/contacts", e.url))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    // unknown object type
    let r = e.get("/crm/v3/objects/widgets").await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    e.sb.shutdown().await;
}

#[tokio::test]
async fn list_paging_and_properties() {
    let e = default_env().await;
    let store = e.sb.store();
    store
        .seed(rivulet_sandbox::SeedSpec::generated("companies", 25))
        .unwrap();
    let mut seen = vec![];
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/crm/v3/objects/companies?limit=10&after={a}&properties=name,city"),
            None => "/crm/v3/objects/companies?limit=10&properties=name,city".to_string(),
        };
        let r = e.get(&path).await;
        assert_eq!(r.status, 200);
        for rec in r.body["results"].as_array().unwrap() {
            assert!(rec["properties"]["name"].is_string());
            assert!(rec["properties"]["city"].is_null());
            seen.push(rec["id"].as_str().unwrap().to_string());
        }
        match r.body["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    let mut d = seen.clone();
    d.dedup();
    assert_eq!(d.len(), 25);
    e.sb.shutdown().await;
}

#[tokio::test]
async fn unique_custom_property_and_property_api() {
    let e = default_env().await;
    let r = e.get("/crm/v3/properties/companies").await;
    assert_eq!(r.status, 200);
    let props = r.body["results"].as_array().unwrap();
    let cat = props
        .iter()
        .find(|p| p["name"] == "company_category")
        .unwrap();
    assert_eq!(cat["type"], "enumeration");
    assert_eq!(cat["fieldType"], "select");
    assert!(cat["options"][0]["value"].is_string() && cat["options"][0]["label"].is_string());
    let ext = props.iter().find(|p| p["name"] == "external_id").unwrap();
    assert_eq!(ext["hasUniqueValue"], true);

    // create a custom unique property
    let r = e
        .post(
            "/crm/v3/properties/companies",
            json!({"name": "erp_number", "label": "ERP number", "type": "string", "fieldType": "text", "groupName": "companyinformation", "hasUniqueValue": true}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = e
        .post(
            "/crm/v3/properties/companies",
            json!({"name": "erp_number", "label": "x", "type": "string", "fieldType": "text"}),
        )
        .await;
    assert_eq!(r.status, 409);
    let r = e.get("/crm/v3/properties/companies/erp_number").await;
    assert_eq!(r.body["hasUniqueValue"], true);

    let r = e
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "A", "erp_number": "E1"}}),
        )
        .await;
    assert_eq!(r.status, 201);
    let id = r.body["id"].as_str().unwrap().to_string();
    let r = e
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "B", "erp_number": "E1"}}),
        )
        .await;
    assert_error(&r, 409, "CONFLICT");
    assert!(r.body["message"].as_str().unwrap().contains(&id));
    let r = e
        .get("/crm/v3/objects/companies/E1?idProperty=erp_number")
        .await;
    assert_eq!(r.body["id"], id.as_str());
    // non-unique idProperty is rejected
    let r = e.get("/crm/v3/objects/companies/A?idProperty=name").await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    e.sb.shutdown().await;
}

#[tokio::test]
async fn deal_with_line_items_and_products() {
    let e = default_env().await;
    let r = e
        .post(
            "/crm/v3/objects/products",
            json!({"properties": {"name": "Widget", "price": "9.50", "hs_sku": "W-1"}}),
        )
        .await;
    assert_eq!(r.status, 201);
    let product = r.body["id"].as_str().unwrap().to_string();
    let r = e
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "Acme"}}),
        )
        .await;
    let company = r.body["id"].as_str().unwrap().to_string();
    // a line item referencing a missing product fails
    let r = e
        .post(
            "/crm/v3/objects/line_items",
            json!({"properties": {"hs_product_id": "999999", "quantity": "1"}}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    let r = e
        .post(
            "/crm/v3/objects/line_items",
            json!({"properties": {"hs_product_id": product, "quantity": "3", "price": "9.50"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let li = r.body["id"].as_str().unwrap().to_string();
    let r = e
        .post(
            "/crm/v3/objects/deals",
            json!({
                "properties": {"dealname": "Big deal", "amount": "28.5", "dealstage": "closedwon", "pipeline": "default"},
                "associations": [
                    {"to": {"id": li}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 19}]},
                    {"to": {"id": company}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]}
                ]
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let deal = r.body["id"].as_str().unwrap().to_string();
    let r = e
        .get(&format!(
            "/crm/v3/objects/deals/{deal}/associations/line_items"
        ))
        .await;
    assert_eq!(
        r.body["results"],
        json!([{"id": li, "type": "deal_to_line_item"}])
    );
    let r = e
        .get(&format!(
            "/crm/v3/objects/line_items/{li}?associations=deals&properties=hs_product_id"
        ))
        .await;
    assert_eq!(
        r.body["associations"]["deals"]["results"][0]["id"],
        deal.as_str()
    );
    assert_eq!(r.body["properties"]["hs_product_id"], product.as_str());
    let r = e
        .get(&format!(
            "/crm/v4/objects/companies/{company}/associations/deals"
        ))
        .await;
    assert_eq!(
        r.body["results"][0]["toObjectId"],
        deal.parse::<u64>().unwrap()
    );
    // wrong direction type id
    let r = e
        .post(
            "/crm/v3/objects/deals",
            json!({"properties": {"dealname": "x"}, "associations": [{"to": {"id": li}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 20}]}]}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    // v4 default association
    let r = e
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "c@acme.example"}}),
        )
        .await;
    let contact = r.body["id"].as_str().unwrap().to_string();
    let r = e
        .put(
            &format!("/crm/v4/objects/contacts/{contact}/associations/default/companies/{company}"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = e
        .get(&format!(
            "/crm/v3/objects/companies/{company}/associations/contacts"
        ))
        .await;
    assert_eq!(r.body["results"][0]["id"], contact.as_str());
    e.sb.shutdown().await;
}
