use crate::*;
use rivulet_sandbox::SeedSpec;
use serde_json::{Value, json};

const T0: i64 = 1_700_000_000_000;

async fn seeded() -> Env {
    let e = default_env().await;
    let s = e.sb.store();
    let recs: Vec<Value> = [
        ("Acme Corp", "acme.example", "120", "enterprise", "Berlin"),
        ("Bolt Logistics", "bolt.example", "15", "small_business", "Lyon"),
        ("Cedar Foods", "cedar.example", "60", "mid_market", ""),
        ("Delta Analytics", "delta.example", "900", "enterprise", "Berlin"),
        ("Echo Retail", "echo.example", "5", "partner", "Osaka"),
    ]
    .iter()
    .map(|(n, d, emp, cat, city)| {
        json!({"name": n, "domain": d, "numberofemployees": emp, "company_category": cat, "city": city})
    })
    .collect();
    s.seed(SeedSpec::records("companies", recs).at(T0).step(1000))
        .unwrap();
    e
}

async fn names(e: &Env, body: Value) -> (Vec<String>, Value) {
    let r = e.post("/crm/v3/objects/companies/search", body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let n = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["properties"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    (n, r.body)
}

fn f(prop: &str, op: &str, value: Value) -> Value {
    json!({"filterGroups": [{"filters": [{"propertyName": prop, "operator": op, "value": value}]}],
           "sorts": [{"propertyName": "name", "direction": "ASCENDING"}]})
}

#[tokio::test]
async fn every_operator() {
    let e = seeded().await;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            f("city", "EQ", json!("berlin")),
            vec!["Acme Corp", "Delta Analytics"],
        ),
        (
            f("city", "NEQ", json!("Berlin")),
            vec!["Bolt Logistics", "Cedar Foods", "Echo Retail"],
        ),
        (
            f("numberofemployees", "LT", json!(60)),
            vec!["Bolt Logistics", "Echo Retail"],
        ),
        (
            f("numberofemployees", "LTE", json!("60")),
            vec!["Bolt Logistics", "Cedar Foods", "Echo Retail"],
        ),
        (
            f("numberofemployees", "GT", json!("120")),
            vec!["Delta Analytics"],
        ),
        (
            f("numberofemployees", "GTE", json!("120")),
            vec!["Acme Corp", "Delta Analytics"],
        ),
        (
            json!({"filterGroups": [{"filters": [{"propertyName": "numberofemployees", "operator": "BETWEEN", "value": "10", "highValue": "120"}]}]}),
            vec!["Acme Corp", "Bolt Logistics", "Cedar Foods"],
        ),
        (
            json!({"filterGroups": [{"filters": [{"propertyName": "company_category", "operator": "IN", "values": ["enterprise", "partner"]}]}]}),
            vec!["Acme Corp", "Delta Analytics", "Echo Retail"],
        ),
        (
            json!({"filterGroups": [{"filters": [{"propertyName": "company_category", "operator": "NOT_IN", "values": ["enterprise", "partner"]}]}]}),
            vec!["Bolt Logistics", "Cedar Foods"],
        ),
        (
            json!({"filterGroups": [{"filters": [{"propertyName": "city", "operator": "HAS_PROPERTY"}]}]}),
            vec![
                "Acme Corp",
                "Bolt Logistics",
                "Delta Analytics",
                "Echo Retail",
            ],
        ),
        (
            json!({"filterGroups": [{"filters": [{"propertyName": "city", "operator": "NOT_HAS_PROPERTY"}]}]}),
            vec!["Cedar Foods"],
        ),
        (
            f("name", "CONTAINS_TOKEN", json!("logistics")),
            vec!["Bolt Logistics"],
        ),
        (
            f("domain", "CONTAINS_TOKEN", json!("*.example")),
            vec![
                "Acme Corp",
                "Bolt Logistics",
                "Cedar Foods",
                "Delta Analytics",
                "Echo Retail",
            ],
        ),
        (
            f("name", "NOT_CONTAINS_TOKEN", json!("corp")),
            vec![
                "Bolt Logistics",
                "Cedar Foods",
                "Delta Analytics",
                "Echo Retail",
            ],
        ),
        // timestamps: epoch ms strings and ISO 8601
        (
            f("createdate", "GTE", json!((T0 + 3000).to_string())),
            vec!["Delta Analytics", "Echo Retail"],
        ),
        (
            f(
                "hs_lastmodifieddate",
                "LT",
                json!("2023-11-14T22:13:21.500Z"),
            ),
            vec!["Acme Corp", "Bolt Logistics"],
        ),
        (
            f("hs_object_id", "GT", json!("0")),
            vec![
                "Acme Corp",
                "Bolt Logistics",
                "Cedar Foods",
                "Delta Analytics",
                "Echo Retail",
            ],
        ),
        // OR of groups, AND within a group
        (
            json!({"filterGroups": [
                {"filters": [{"propertyName": "city", "operator": "EQ", "value": "Berlin"}, {"propertyName": "numberofemployees", "operator": "GT", "value": "500"}]},
                {"filters": [{"propertyName": "city", "operator": "EQ", "value": "Osaka"}]}
            ], "sorts": [{"propertyName": "name", "direction": "ASCENDING"}]}),
            vec!["Delta Analytics", "Echo Retail"],
        ),
    ];
    for (body, want) in cases {
        let (got, raw) = names(&e, body.clone()).await;
        let mut got_sorted = got.clone();
        got_sorted.sort();
        assert_eq!(got_sorted, want, "query {body}");
        assert_eq!(raw["total"], want.len(), "query {body}");
    }
    e.sb.shutdown().await;
}

#[tokio::test]
async fn sorting_paging_total() {
    let e = seeded().await;
    let (n, _) = names(
        &e,
        json!({"sorts": [{"propertyName": "numberofemployees", "direction": "DESCENDING"}]}),
    )
    .await;
    assert_eq!(
        n,
        [
            "Delta Analytics",
            "Acme Corp",
            "Cedar Foods",
            "Bolt Logistics",
            "Echo Retail"
        ]
    );
    // index-ordered window with paging
    let body = |after: Option<&str>| {
        let mut b = json!({
            "filterGroups": [{"filters": [
                {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": T0.to_string()},
                {"propertyName": "hs_lastmodifieddate", "operator": "LT", "value": (T0 + 10_000).to_string()}
            ]}],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}],
            "properties": ["name", "city"],
            "limit": 2
        });
        if let Some(a) = after {
            b["after"] = json!(a);
        }
        b
    };
    let mut all = vec![];
    let mut after: Option<String> = None;
    loop {
        let (n, raw) = names(&e, body(after.as_deref())).await;
        assert_eq!(raw["total"], 5);
        assert!(raw["results"][0]["properties"].get("city").is_some());
        all.extend(n);
        match raw["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_string()),
            None => break,
        }
    }
    assert_eq!(
        all,
        [
            "Echo Retail",
            "Delta Analytics",
            "Cedar Foods",
            "Bolt Logistics",
            "Acme Corp"
        ]
    );
    // stringified sorts are silently ignored (default order: by id)
    let (n, _) = names(&e, json!({"sorts": ["-name"]})).await;
    assert_eq!(n[0], "Acme Corp");
    // limit over 200
    let r = e
        .post("/crm/v3/objects/companies/search", json!({"limit": 201}))
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    // unknown operator
    let r = e
        .post(
            "/crm/v3/objects/companies/search",
            f("name", "LIKE", json!("x")),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    e.sb.shutdown().await;
}

#[tokio::test]
async fn contacts_use_lastmodifieddate() {
    let e = default_env().await;
    e.sb.store()
        .seed(SeedSpec::generated("contacts", 3).at(T0))
        .unwrap();
    let q = |p: &str| json!({"filterGroups": [{"filters": [{"propertyName": p, "operator": "GTE", "value": T0.to_string()}]}]});
    let r = e
        .post("/crm/v3/objects/contacts/search", q("lastmodifieddate"))
        .await;
    assert_eq!(r.body["total"], 3);
    let first = &r.body["results"][0]["properties"];
    for p in [
        "email",
        "firstname",
        "lastname",
        "lastmodifieddate",
        "createdate",
        "hs_object_id",
    ] {
        assert!(first[p].is_string(), "default property {p}");
    }
    // HubSpot pitfall: hs_lastmodifieddate filters silently match nothing on contacts
    let r = e
        .post("/crm/v3/objects/contacts/search", q("hs_lastmodifieddate"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["total"], 0);
    // full-text query
    let r = e
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"query": "example.com"}),
        )
        .await;
    assert_eq!(r.body["total"], 3);
    e.sb.shutdown().await;
}

#[tokio::test]
async fn ten_thousand_cap_and_identical_timestamps() {
    let e = default_env().await;
    e.sb.store()
        .seed(SeedSpec::generated("companies", 10_050).at(T0))
        .unwrap();
    let body = |after: usize| {
        json!({
            "filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "EQ", "value": T0.to_string()}]}],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "limit": 200, "after": after.to_string()
        })
    };
    let r = e.post("/crm/v3/objects/companies/search", body(9800)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["total"], 10_050);
    assert_eq!(r.body["results"].as_array().unwrap().len(), 200);
    assert_eq!(r.body["paging"]["next"]["after"], "10000");
    let r = e
        .post("/crm/v3/objects/companies/search", body(10_000))
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    // the id-anchor workaround: restart the window with hs_object_id GT last id
    let ids = e.sb.store().count("companies").unwrap();
    assert_eq!(ids, 10_050);
    let r = e
        .post(
            "/crm/v3/objects/companies/search",
            json!({
                "filterGroups": [{"filters": [
                    {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": T0.to_string()},
                    {"propertyName": "hs_object_id", "operator": "GT", "value": "10000"}
                ]}],
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                "limit": 10
            }),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["results"][0]["id"], "10001");
    e.sb.shutdown().await;
}

#[tokio::test]
async fn search_lag_hides_fresh_writes() {
    let mut cfg = rivulet_sandbox::SandboxConfig::default();
    cfg.search_lag = std::time::Duration::from_secs(60);
    let e = start(cfg).await;
    let r = e
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "lag@x.com"}}),
        )
        .await;
    assert_eq!(r.status, 201);
    let q = json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "lag@x.com"}]}]});
    let r = e.post("/crm/v3/objects/contacts/search", q.clone()).await;
    assert_eq!(r.body["total"], 0, "invisible right after the write");
    // but readable by id at once
    let r = e
        .get("/crm/v3/objects/contacts/lag@x.com?idProperty=email")
        .await;
    assert_eq!(r.status, 200);
    // the lag runs on the sandbox's clock: just short of it still hidden, then visible
    let clock = e.sb.clock();
    clock
        .advance(std::time::Duration::from_millis(59_000))
        .unwrap();
    let r = e.post("/crm/v3/objects/contacts/search", q.clone()).await;
    assert_eq!(r.body["total"], 0, "still within the lag");
    clock
        .advance(std::time::Duration::from_millis(1_000))
        .unwrap();
    let r = e.post("/crm/v3/objects/contacts/search", q).await;
    assert_eq!(r.body["total"], 1);
    e.sb.shutdown().await;
}
