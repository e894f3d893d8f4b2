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

fn system_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn epoch_ms(v: &serde_json::Value) -> i64 {
    rivulet_sandbox::parse_ts(v.as_str().expect("a timestamp")).expect("ISO 8601")
}

#[tokio::test]
async fn clock_offsets_stamps_and_moves_through_the_control_api() {
    use rivulet_sandbox::{MAX_CLOCK_OFFSET_MS, SandboxConfig, SeedSpec};
    let mut cfg = SandboxConfig::default();
    cfg.clock_offset_ms = -10_000;
    let e = start(cfg).await;
    let clock = e.sb.clock();
    assert_eq!(clock.offset_ms(), -10_000);
    let r = e.get("/_sandbox/clock").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["offset_ms"], -10_000);
    let now = r.body["now_ms"].as_i64().unwrap();
    let sys = system_ms();
    assert!(
        (sys - 11_000..=sys - 9_000).contains(&now),
        "{now} vs {sys}"
    );
    assert_eq!(epoch_ms(&r.body["now"]), now);

    // Records are stamped on the sandbox's clock: 10 s behind the system's.
    let r = e
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "clock@x.example"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let created = epoch_ms(&r.body["properties"]["createdate"]);
    assert!(created <= system_ms() - 9_000, "created {created}");
    let seeded =
        e.sb.store()
            .seed(SeedSpec::generated("contacts", 1))
            .unwrap();
    let rec = e.sb.store().get("contacts", &seeded[0]).unwrap().unwrap();
    assert!(epoch_ms(&rec["createdAt"]) <= system_ms() - 9_000);
    // explicit times are kept as given
    let at = 1_700_000_000_000;
    let fixed =
        e.sb.store()
            .seed(SeedSpec::generated("contacts", 2).at(at).step(1000))
            .unwrap();
    let rec = e.sb.store().get("contacts", &fixed[1]).unwrap().unwrap();
    assert_eq!(epoch_ms(&rec["createdAt"]), at + 1000);
    let log = e.get("/_sandbox/requests?limit=1").await;
    assert!(epoch_ms(&log.body["results"][0]["time"]) <= system_ms() - 9_000);

    // advance moves now (and touch stamps) forward
    let r = e
        .post("/_sandbox/clock", json!({"advance_ms": 4_000}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["offset_ms"], -6_000);
    assert_eq!(clock.offset_ms(), -6_000, "the handle sees the same clock");
    let r = e
        .post(&format!("/_sandbox/objects/contacts/{id}/touch"), json!({}))
        .await;
    let touched = epoch_ms(&r.body["properties"]["lastmodifieddate"]);
    assert!(touched >= created + 4_000, "{touched} vs {created}");
    let r = e
        .post("/_sandbox/clock", json!({"advance_ms": -1_000}))
        .await;
    assert_eq!(r.body["offset_ms"], -7_000);
    let r = e.post("/_sandbox/clock", json!({"offset_ms": 0})).await;
    assert_eq!(r.body["offset_ms"], 0);
    clock
        .advance(std::time::Duration::from_millis(1_500))
        .unwrap();
    assert_eq!(e.get("/_sandbox/clock").await.body["offset_ms"], 1_500);
    clock.set_offset_ms(-2_000).unwrap();
    assert_eq!(e.get("/_sandbox/clock").await.body["offset_ms"], -2_000);

    // hostile input: refused with a 400, the clock unchanged
    for body in [
        json!({"offset_ms": MAX_CLOCK_OFFSET_MS + 1}),
        json!({"offset_ms": -MAX_CLOCK_OFFSET_MS - 1}),
        json!({"advance_ms": i64::MAX}),
        json!({"advance_ms": i64::MIN}),
        json!({"advance_ms": u64::MAX}),
        json!({"advance_ms": 1e300}),
        json!({"advance_ms": 1.5}),
        json!({"offset_ms": "soon"}),
        json!({"advance_ms": 1, "offset_ms": 1}),
        json!({"rewind_ms": 1}),
        json!([1]),
    ] {
        let r = e.post("/_sandbox/clock", body.clone()).await;
        assert_error(&r, 400, "VALIDATION_ERROR");
        assert_eq!(clock.offset_ms(), -2_000, "{body} changed the clock");
    }
    // steps that would carry the offset past the bound are refused too
    let r = e
        .post("/_sandbox/clock", json!({"offset_ms": MAX_CLOCK_OFFSET_MS}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = e.post("/_sandbox/clock", json!({"advance_ms": 1})).await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert!(clock.advance(std::time::Duration::MAX).is_err());
    assert!(clock.set_offset_ms(i64::MIN).is_err());
    assert_eq!(clock.offset_ms(), MAX_CLOCK_OFFSET_MS);

    // reset restores the start offset
    let r = e.post("/_sandbox/reset", json!({})).await;
    assert_eq!(r.status, 200);
    assert_eq!(clock.offset_ms(), -10_000);
    e.sb.shutdown().await;

    // a start offset beyond the bound is refused
    let mut cfg = SandboxConfig::default();
    cfg.clock_offset_ms = i64::MIN;
    assert!(rivulet_sandbox::Sandbox::start(cfg).await.is_err());
}
