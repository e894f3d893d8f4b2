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

/// Pages a query to its end (or its first error); returns ids handed out and the totals seen.
async fn page_all(e: &Env, mut body: Value) -> (usize, Vec<u64>, Option<Resp>) {
    let (mut n, mut totals) = (0, vec![]);
    loop {
        let r = e
            .post("/crm/v3/objects/companies/search", body.clone())
            .await;
        if r.status != 200 {
            return (n, totals, Some(r));
        }
        n += r.body["results"].as_array().unwrap().len();
        totals.push(r.body["total"].as_u64().unwrap());
        match r.body["paging"]["next"]["after"].as_str() {
            Some(a) => body["after"] = json!(a),
            None => return (n, totals, None),
        }
    }
}

#[tokio::test]
async fn search_cap_errors_or_ends_paging_as_configured() {
    let mut cfg = rivulet_sandbox::SandboxConfig::default();
    assert_eq!(cfg.search_cap, rivulet_sandbox::SearchCap::Error400);
    cfg.search_cap = rivulet_sandbox::SearchCap::EndPaging;
    let e = start(cfg).await;
    e.sb.store()
        .seed(SeedSpec::generated("companies", 10_150).at(T0).step(1))
        .unwrap();
    let q = json!({
        "filterGroups": [{"filters": [{"propertyName": "createdate", "operator": "GTE", "value": T0.to_string()}]}],
        "sorts": [{"propertyName": "createdate", "direction": "ASCENDING"}],
        "limit": 200
    });
    // end_paging: exactly 10,000 handed out, then no cursor and no error; total stays exact
    let (n, totals, err) = page_all(&e, q.clone()).await;
    assert!(err.is_none(), "{:?}", err.map(|r| r.body));
    assert_eq!(n, 10_000);
    assert!(totals.iter().all(|t| *t == 10_150), "{totals:?}");
    // a page straddling the cap stops at it; one past it is empty, without an error
    let mut straddle = q.clone();
    straddle["after"] = json!("9950");
    let r = e.post("/crm/v3/objects/companies/search", straddle).await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 50);
    assert!(r.body.get("paging").is_none());
    let mut past = q.clone();
    past["after"] = json!("10000");
    let r = e
        .post("/crm/v3/objects/companies/search", past.clone())
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["results"], json!([]));
    assert_eq!(r.body["total"], 10_150);

    // the control API switches it back to the 400
    let r = e.get("/_sandbox/faults").await;
    assert_eq!(r.body["search_cap"], "end_paging");
    let r = e
        .put("/_sandbox/faults", json!({"search_cap": "error_400"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["search_cap"], "error_400");
    let (n, totals, err) = page_all(&e, q.clone()).await;
    assert_eq!(n, 10_000);
    assert_eq!(totals.len(), 50);
    assert_error(&err.expect("the 400 past the cap"), 400, "VALIDATION_ERROR");
    let r = e
        .put("/_sandbox/faults", json!({"search_cap": "sometimes"}))
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    e.sb.shutdown().await;
}

#[tokio::test]
async fn every_search_answer_carries_the_exact_total() {
    let mut cfg = rivulet_sandbox::SandboxConfig::default();
    cfg.search_lag = std::time::Duration::from_secs(60);
    let e = start(cfg).await;
    let store = e.sb.store();
    store
        .seed(SeedSpec::generated("companies", 280).at(T0).step(1000))
        .unwrap();
    let lyon: Vec<Value> = (0..20)
        .map(|i| json!({"name": format!("Lyon {i:02}"), "city": "Lyon"}))
        .collect();
    store
        .seed(
            SeedSpec::records("companies", lyon)
                .at(T0 + 280_000)
                .step(1000),
        )
        .unwrap();
    // some archived, some lagging behind the search index
    for id in 1001..1011u64 {
        store.archive("companies", &id.to_string()).unwrap();
    }
    for i in 0..5 {
        let r = e
            .post(
                "/crm/v3/objects/companies",
                json!({"properties": {"name": format!("Fresh {i}"), "city": "Lyon"}}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let all: Vec<Value> = store.records("companies").unwrap();
    let ms = |v: &Value, k: &str| {
        rivulet_sandbox::parse_ts(v["properties"][k].as_str().unwrap()).unwrap()
    };
    let now = e.sb.clock().now_ms();
    let searchable = |r: &&Value| ms(r, "createdate") < now - 1_000;
    let f = |p: &str, op: &str, v: Value| json!({"propertyName": p, "operator": op, "value": v});
    let lo = T0 + 50_000;
    let hi = T0 + 250_000;
    let cases: Vec<(Value, usize)> = vec![
        // key-only window on the created index
        (
            json!({"filterGroups": [{"filters": [f("createdate", "GTE", json!(lo)), f("createdate", "LT", json!(hi))]}],
                   "sorts": [{"propertyName": "createdate", "direction": "ASCENDING"}]}),
            all.iter()
                .filter(searchable)
                .filter(|r| (lo..hi).contains(&ms(r, "createdate")))
                .count(),
        ),
        // window plus an id anchor, descending
        (
            json!({"filterGroups": [{"filters": [f("createdate", "GTE", json!(lo)), f("hs_object_id", "GT", json!("1100"))]}],
                   "sorts": [{"propertyName": "createdate", "direction": "DESCENDING"}]}),
            all.iter()
                .filter(searchable)
                .filter(|r| {
                    ms(r, "createdate") >= lo
                        && r["id"].as_str().unwrap().parse::<u64>().unwrap() > 1100
                })
                .count(),
        ),
        // modified window with a residual text filter
        (
            json!({"filterGroups": [{"filters": [f("hs_lastmodifieddate", "GTE", json!(T0)), f("city", "EQ", json!("lyon"))]}]}),
            20,
        ),
        // scan, two groups
        (
            json!({"filterGroups": [
                {"filters": [f("city", "EQ", json!("Lyon"))]},
                {"filters": [f("hs_object_id", "LTE", json!("1020"))]}
            ], "sorts": [{"propertyName": "name", "direction": "ASCENDING"}]}),
            20 + 10,
        ),
        // everything searchable: archived and lagging records excluded
        (json!({}), 290),
    ];
    for (mut q, expected) in cases {
        for limit in [1, 7, 200] {
            q["limit"] = json!(limit);
            let r = e.post("/crm/v3/objects/companies/search", q.clone()).await;
            assert_eq!(r.status, 200, "{}", r.body);
            assert_eq!(r.body["total"], expected, "{q}");
            assert_eq!(
                r.body["results"].as_array().unwrap().len(),
                expected.min(limit),
                "{q}"
            );
        }
    }
    e.sb.shutdown().await;
}
