use crate::*;
use serde_json::json;

#[tokio::test]
async fn seed_touch_log_stats_reset() {
    let e = default_env().await;
    let r = e.get("/_sandbox/health").await;
    assert_eq!(r.body["status"], "ok");
    let r = e
        .post(
            "/_sandbox/seed",
            json!({"objectType": "contacts", "count": 5, "createdAt": "2024-01-01T00:00:00Z", "stepMs": 0,
                   "properties": {"contact_category": "vip"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["created"], 5);
    let ids: Vec<String> = r.body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let rec = e.sb.store().get("contacts", &ids[0]).unwrap().unwrap();
    assert_eq!(
        rec["properties"]["lastmodifieddate"],
        "2024-01-01T00:00:00.000Z"
    );
    assert_eq!(rec["properties"]["contact_category"], "vip");
    // file-shaped seed
    let r = e
        .post(
            "/_sandbox/seed",
            json!({"companies": [{"name": "Seeded Co", "domain": "seeded.example"}],
                   "contacts": [{"properties": {"email": "s@seeded.example", "lastmodifieddate": "2024-02-01T00:00:00Z"}}]}),
        )
        .await;
    assert_eq!(r.body["created"], 2);
    let c =
        e.sb.store()
            .find("contacts", "email", "s@seeded.example")
            .unwrap()
            .unwrap();
    assert_eq!(c["updatedAt"], "2024-02-01T00:00:00.000Z");

    // touch bumps the modified time and sets properties
    let r = e
        .post(
            &format!("/_sandbox/objects/contacts/{}/touch", ids[0]),
            json!({"properties": {"firstname": "Touched"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["properties"]["firstname"], "Touched");
    assert_ne!(
        r.body["properties"]["lastmodifieddate"],
        "2024-01-01T00:00:00.000Z"
    );
    let q = json!({"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GT", "value": "2024-06-01T00:00:00Z"}]}]});
    let r = e.post("/crm/v3/objects/contacts/search", q).await;
    assert_eq!(r.body["total"], 1);
    let r = e
        .post("/_sandbox/objects/contacts/1/touch", json!({}))
        .await;
    assert_error(&r, 404, "OBJECT_NOT_FOUND");

    // request log and stats
    e.post(
        "/crm/v3/objects/contacts/batch/upsert",
        json!({"inputs": [{"id": "u@x.com", "idProperty": "email", "properties": {}}]}),
    )
    .await;
    let r = e.get("/_sandbox/requests?limit=2").await;
    let log = r.body["results"].as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1]["path"], "/crm/v3/objects/contacts/batch/upsert");
    assert_eq!(log[1]["method"], "POST");
    assert_eq!(log[1]["status"], 200);
    assert!(log[1]["time"].is_string());
    let r = e.get("/_sandbox/stats").await;
    assert_eq!(r.body["endpoints"]["search"], 1);
    assert_eq!(r.body["endpoints"]["batch_upsert"], 1);
    assert_eq!(r.body["records"]["contacts"], 7);
    assert_eq!(r.body["rate_limited"], 0);
    assert_eq!(e.sb.store().endpoint_count("batch_upsert"), 1);

    // reset
    let r = e.post("/_sandbox/reset", json!({})).await;
    assert_eq!(r.status, 200);
    assert_eq!(e.sb.store().count("contacts").unwrap(), 0);
    let r = e.get("/_sandbox/stats").await;
    assert!(r.body["endpoints"].get("search").is_none());
    e.sb.shutdown().await;
}

#[tokio::test]
async fn demo_and_seed_file() {
    let e = default_env().await;
    let n = rivulet_sandbox::demo_seed(&e.sb.store());
    assert_eq!(n, 150);
    let r = e.get("/crm/v3/objects/companies?limit=100").await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 50);
    let r = e
        .get("/crm/v3/objects/contacts?limit=100&associations=companies")
        .await;
    let contacts = r.body["results"].as_array().unwrap();
    assert_eq!(contacts.len(), 100);
    assert!(contacts[0]["associations"]["companies"]["results"][0]["id"].is_string());
    let emails: std::collections::HashSet<_> = contacts
        .iter()
        .map(|c| c["properties"]["email"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(emails.len(), 100);

    let dir = std::env::temp_dir().join(format!("rivulet-sandbox-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("seed.json");
    std::fs::write(
        &path,
        r#"{"products":[{"name":"P","price":"1"}],"contacts":[{"email":"file@x.example","firstname":"F"}]}"#,
    )
    .unwrap();
    let n = rivulet_sandbox::seed_from_file(&e.sb.store(), &path).unwrap();
    assert_eq!(n, 2);
    std::fs::write(&path, r#"{"contacts":[{"nope":"x"}]}"#).unwrap();
    assert!(rivulet_sandbox::seed_from_file(&e.sb.store(), &path).is_err());
    std::fs::remove_dir_all(&dir).ok();
    e.sb.shutdown().await;
}

#[tokio::test]
async fn config_seed_file_and_fixed_port_start() {
    let dir = std::env::temp_dir().join(format!("rivulet-sandbox-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("seed.json");
    std::fs::write(&path, r#"{"companies":[{"name":"From file"}]}"#).unwrap();
    let mut cfg = rivulet_sandbox::SandboxConfig::default();
    cfg.seed_file = Some(path);
    cfg.demo_data = true;
    let e = start(cfg).await;
    assert_eq!(e.sb.store().count("companies").unwrap(), 51);
    assert!(e.sb.url().starts_with("http://127.0.0.1:"));
    assert_eq!(e.sb.addr().ip().to_string(), "127.0.0.1");
    std::fs::remove_dir_all(&dir).ok();
    e.sb.shutdown().await;
}
