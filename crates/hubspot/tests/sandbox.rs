//! The client against the HubSpot sandbox over real HTTP: every operation, per-record outcomes,
//! rate limits, faults, timeouts and OAuth.

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use rivulet_hubspot::{
    Auth, Client, ClientConfig, Error, Filter, FilterGroup, ListRequest, ObjectType, Operator,
    RetryPolicy, SearchRequest, SecretString, Sort, Throttle, TransportKind, WriteInput,
    WriteOutcome, values,
};
use rivulet_sandbox::{OAuthConfig, PropertyDef, RateLimit, Sandbox, SandboxConfig, SeedSpec};
use serde_json::json;

fn fast(sandbox: &Sandbox) -> ClientConfig {
    let mut c = ClientConfig::with_token("test-token").base_url(sandbox.url());
    c.throttle = Throttle {
        limit: 10_000,
        per: Duration::from_secs(1),
    };
    c.search_per_second = 1000;
    c.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_rate_limited_attempts: 20,
        ..RetryPolicy::default()
    };
    c.timeout = Duration::from_secs(5);
    c
}

async fn sandbox(config: SandboxConfig) -> Sandbox {
    Sandbox::start(config).await.expect("sandbox starts")
}

fn contact(i: usize) -> WriteInput {
    WriteInput::new([
        ("email", format!("user{i}@example.com")),
        ("firstname", format!("User{i}")),
    ])
}

fn ids(out: &[WriteOutcome]) -> Vec<String> {
    out.iter()
        .map(|o| {
            o.id()
                .unwrap_or_else(|| panic!("not a success: {o:?}"))
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn single_record_operations_for_any_object_type() {
    let sb = sandbox(SandboxConfig::default()).await;
    let client = Client::new(fast(&sb)).unwrap();

    // contacts: create, get by id and by email, update by email, archive
    let c = client
        .create(
            &ObjectType::Contacts,
            &WriteInput::new([("email", "Ann@Example.com"), ("firstname", "Ann")]),
        )
        .await
        .unwrap();
    let got = client
        .get(&ObjectType::Contacts, &c.id, None, &["firstname".into()])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.property("firstname"), Some("Ann"));
    let by_email = client
        .get(&ObjectType::Contacts, "ann@example.com", Some("email"), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_email.id, c.id);
    let updated = client
        .update(
            &ObjectType::Contacts,
            "ann@example.com",
            Some("email"),
            &WriteInput::new([("lastname", "Lee")]),
        )
        .await
        .unwrap();
    assert_eq!(updated.id, c.id);
    assert_eq!(
        sb.store().get("contacts", &c.id).unwrap().unwrap()["properties"]["lastname"],
        "Lee"
    );
    client.archive(&ObjectType::Contacts, &c.id).await.unwrap();
    assert!(
        client
            .get(&ObjectType::Contacts, &c.id, None, &[])
            .await
            .unwrap()
            .is_none()
    );

    // companies and deals go through the same code
    let deals: ObjectType = "deal".parse().unwrap();
    let d = client
        .create(
            &deals,
            &WriteInput::new([("dealname", "Big one"), ("amount", "1000")]),
        )
        .await
        .unwrap();
    let d2 = client
        .update(&deals, &d.id, None, &WriteInput::new([("amount", "2000")]))
        .await
        .unwrap();
    assert_eq!(d2.id, d.id);
    let co = client
        .create(
            &ObjectType::Companies,
            &WriteInput::new([("name", "Acme"), ("domain", "acme.io")]),
        )
        .await
        .unwrap();
    assert!(
        client
            .get(&ObjectType::Companies, &co.id, None, &[])
            .await
            .unwrap()
            .is_some()
    );

    // a refused write is a typed error an operator can act on
    let err = client
        .create(
            &ObjectType::Contacts,
            &WriteInput::new([("no_such_property", "x")]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    let shown = err.to_string();
    assert!(
        shown.contains("400") && shown.contains("no_such_property"),
        "{shown}"
    );
    assert!(shown.contains("correlationId"), "{shown}");
}

#[tokio::test]
async fn list_pages_through_everything() {
    let sb = sandbox(SandboxConfig::default()).await;
    sb.store()
        .seed(SeedSpec::generated("companies", 25))
        .unwrap();
    let client = Client::new(fast(&sb)).unwrap();
    let mut req = ListRequest {
        limit: Some(10),
        properties: vec!["name".into()],
        ..Default::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = client.list(&ObjectType::Companies, &req).await.unwrap();
        seen.extend(page.results.into_iter().map(|o| o.id));
        match page.after {
            Some(after) => req.after = Some(after),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    seen.dedup();
    assert_eq!(seen.len(), 25);
}

#[tokio::test]
async fn batch_create_read_update_chunked_to_100() {
    let sb = sandbox(SandboxConfig::default()).await;
    let client = Client::new(fast(&sb)).unwrap();
    let out = client
        .batch_create(&ObjectType::Contacts, (0..250).map(contact).collect())
        .await;
    assert!(
        out.iter()
            .all(|o| matches!(o, WriteOutcome::Created { .. })),
        "{out:?}"
    );
    let created = ids(&out);
    assert_eq!(sb.store().endpoint_count("batch_create"), 3);
    // outcomes are in input order
    let rec = sb.store().get("contacts", &created[137]).unwrap().unwrap();
    assert_eq!(rec["properties"]["email"], "user137@example.com");

    let read = client
        .batch_read(&ObjectType::Contacts, &created, None, &["email".into()])
        .await
        .unwrap();
    assert_eq!(read.len(), 250);
    let by_email = client
        .batch_read(
            &ObjectType::Contacts,
            &["user3@example.com".into(), "nobody@example.com".into()],
            Some("email"),
            &["email".into()],
        )
        .await
        .unwrap();
    assert_eq!(by_email.len(), 1);
    assert_eq!(by_email[0].id, created[3]);

    let updates = created
        .iter()
        .take(120)
        .map(|id| (id.clone(), WriteInput::new([("lastname", "Batch")])))
        .collect();
    let out = client
        .batch_update(&ObjectType::Contacts, None, updates)
        .await;
    assert_eq!(out.len(), 120);
    assert!(
        out.iter()
            .all(|o| matches!(o, WriteOutcome::Updated { .. }))
    );
    assert_eq!(ids(&out), created[..120].to_vec());

    // by idProperty, with a duplicate (sent in a second round, so it wins) and an empty key
    let out = client
        .batch_update(
            &ObjectType::Contacts,
            Some("email"),
            vec![
                (
                    "user1@example.com".into(),
                    WriteInput::new([("lastname", "First")]),
                ),
                (
                    "USER1@example.com".into(),
                    WriteInput::new([("lastname", "Second")]),
                ),
                ("".into(), WriteInput::new([("lastname", "x")])),
                (
                    "ghost@example.com".into(),
                    WriteInput::new([("lastname", "x")]),
                ),
            ],
        )
        .await;
    assert_eq!(out[0].id(), Some(created[1].as_str()));
    assert_eq!(out[1].id(), Some(created[1].as_str()));
    assert!(matches!(&out[2], WriteOutcome::Failed(e) if e.category == "VALIDATION_ERROR"));
    assert!(
        matches!(&out[3], WriteOutcome::Failed(e) if e.status == Some(404)),
        "{out:?}"
    );
    let rec = sb.store().get("contacts", &created[1]).unwrap().unwrap();
    assert_eq!(rec["properties"]["lastname"], "Second");
}

#[tokio::test]
async fn multi_status_errors_map_to_their_inputs() {
    let sb = sandbox(SandboxConfig::default()).await;
    let client = Client::new(fast(&sb)).unwrap();
    let mut inputs: Vec<WriteInput> = (0..10).map(contact).collect();
    inputs[3]
        .properties
        .insert("no_such_property".into(), "x".into());
    inputs[7]
        .properties
        .insert("date_of_birth".into(), "1572523200000".into()); // noon: refused
    let out = client.batch_create(&ObjectType::Contacts, inputs).await;
    for (i, o) in out.iter().enumerate() {
        match i {
            3 | 7 => {
                let WriteOutcome::Failed(e) = o else {
                    panic!("{i}: {o:?}")
                };
                assert_eq!(e.status, Some(400), "{e}");
                let expect = if i == 3 {
                    "no_such_property"
                } else {
                    "midnight"
                };
                assert!(e.to_string().contains(expect), "{e}");
            }
            _ => assert!(matches!(o, WriteOutcome::Created { .. }), "{i}: {o:?}"),
        }
    }
    assert_eq!(
        sb.store().endpoint_count("batch_create"),
        1,
        "one call, 207 mapped"
    );
    assert_eq!(sb.store().count("contacts").unwrap(), 8);
}

#[tokio::test]
async fn a_batch_refused_whole_is_bisected() {
    let sb = sandbox(SandboxConfig::default()).await;
    let mut config = fast(&sb);
    config.multi_status = false; // no trace ids: the sandbox refuses the whole batch
    let client = Client::new(config).unwrap();
    let mut inputs: Vec<WriteInput> = (0..16).map(contact).collect();
    inputs[11]
        .properties
        .insert("no_such_property".into(), "x".into());
    let out = client.batch_create(&ObjectType::Contacts, inputs).await;
    for (i, o) in out.iter().enumerate() {
        if i == 11 {
            assert!(
                matches!(o, WriteOutcome::Failed(e) if e.to_string().contains("no_such_property")),
                "{o:?}"
            );
        } else {
            assert!(matches!(o, WriteOutcome::Created { .. }), "{i}: {o:?}");
        }
    }
    assert_eq!(sb.store().count("contacts").unwrap(), 15);
    // 1 + 2 per level for log2(16) = 4 levels
    let calls = sb.store().endpoint_count("batch_create");
    assert!(calls <= 9, "{calls} calls");
}

#[tokio::test]
async fn upsert_contacts_by_email() {
    let sb = sandbox(SandboxConfig::default()).await;
    let client = Client::new(fast(&sb)).unwrap();
    let first = client
        .batch_upsert(
            &ObjectType::Contacts,
            "email",
            (0..5)
                .map(|i| (format!("user{i}@example.com"), contact(i)))
                .collect(),
        )
        .await;
    assert!(
        first
            .iter()
            .all(|o| matches!(o, WriteOutcome::Created { .. })),
        "{first:?}"
    );
    let second = client
        .batch_upsert(
            &ObjectType::Contacts,
            "email",
            (3..8)
                .map(|i| (format!("user{i}@example.com"), contact(i)))
                .collect(),
        )
        .await;
    assert_eq!(second[0].id(), first[3].id());
    assert!(matches!(second[0], WriteOutcome::Updated { .. }));
    assert!(matches!(second[1], WriteOutcome::Updated { .. }));
    assert!(matches!(second[2], WriteOutcome::Created { .. }));
    assert_eq!(sb.store().count("contacts").unwrap(), 8);
}

#[tokio::test]
async fn upsert_companies_by_id_or_unique_property() {
    let sb = sandbox(SandboxConfig::default()).await;
    let client = Client::new(fast(&sb)).unwrap();
    let existing = sb
        .store()
        .seed(SeedSpec::generated("companies", 2))
        .unwrap();
    let out = client
        .upsert_by_id(
            &ObjectType::Companies,
            vec![
                (
                    Some(existing[0].clone()),
                    WriteInput::new([("name", "Renamed")]),
                ),
                (None, WriteInput::new([("name", "Brand new")])),
                (Some("999999".into()), WriteInput::new([("name", "Ghost")])),
                (Some(" ".into()), WriteInput::new([("name", "Blank id")])),
                (
                    Some("not-an-id".into()),
                    WriteInput::new([("name", "Bad id")]),
                ),
            ],
            false,
        )
        .await;
    assert_eq!(
        out[0],
        WriteOutcome::Updated {
            id: existing[0].clone()
        }
    );
    assert!(matches!(out[1], WriteOutcome::Created { .. }));
    assert!(
        matches!(&out[2], WriteOutcome::Failed(e) if e.category == "OBJECT_NOT_FOUND" && e.status == Some(404))
    );
    assert!(matches!(out[3], WriteOutcome::Created { .. }));
    assert!(matches!(&out[4], WriteOutcome::Failed(e) if e.category == "OBJECT_NOT_FOUND"));
    let out = client
        .upsert_by_id(
            &ObjectType::Companies,
            vec![(Some("999999".into()), WriteInput::new([("name", "Ghost")]))],
            true,
        )
        .await;
    assert!(matches!(out[0], WriteOutcome::Created { .. }), "{out:?}");

    // by a unique custom property
    let def: PropertyDef = serde_json::from_value(json!({
        "name": "external_id", "label": "External ID", "type": "string", "fieldType": "text",
        "hasUniqueValue": true
    }))
    .unwrap();
    // The sandbox may already define it; either way it is unique.
    let _ = sb.store().define_property("companies", def);
    let upsert = |name: &str| {
        vec![(
            "ERP-1".to_string(),
            WriteInput::new([("name", name.to_string())]),
        )]
    };
    let a = client
        .batch_upsert(&ObjectType::Companies, "external_id", upsert("One"))
        .await;
    let b = client
        .batch_upsert(&ObjectType::Companies, "external_id", upsert("Uno"))
        .await;
    assert!(matches!(a[0], WriteOutcome::Created { .. }), "{a:?}");
    assert_eq!(
        b[0],
        WriteOutcome::Updated {
            id: a[0].id().unwrap().to_string()
        }
    );
}

#[tokio::test]
async fn search_with_filters_sorts_and_paging() {
    let sb = sandbox(SandboxConfig::default()).await;
    let t0 = 1_700_000_000_000i64;
    sb.store()
        .seed(
            SeedSpec::generated("contacts", 450)
                .at(t0)
                .step(1000)
                .with("lifecyclestage", "lead"),
        )
        .unwrap();
    let client = Client::new(fast(&sb)).unwrap();
    let since = chrono::DateTime::from_timestamp_millis(t0 + 50_000).unwrap();
    let mut req = SearchRequest {
        filter_groups: vec![FilterGroup {
            filters: vec![
                Filter::new("lastmodifieddate", Operator::Gte, values::datetime(since)),
                Filter::any_of("lifecyclestage", Operator::In, vec!["lead".into()]),
            ],
        }],
        sorts: vec![Sort::desc("lastmodifieddate")],
        properties: vec!["email".into(), "lastmodifieddate".into()],
        limit: 500, // lowered to 200
        ..Default::default()
    };
    let mut pages = 0;
    let mut got = Vec::new();
    loop {
        let page = client.search(&ObjectType::Contacts, &req).await.unwrap();
        assert_eq!(page.total, 400);
        assert!(page.results.len() <= 200);
        pages += 1;
        got.extend(page.results);
        match page.after {
            Some(a) => req.after = Some(a),
            None => break,
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(got.len(), 400);
    let first = got[0].updated_at.unwrap();
    let last = got[399].updated_at.unwrap();
    assert!(first > last, "sorted descending as an object sort");
}

#[tokio::test]
async fn dates_are_sent_at_midnight_utc() {
    let sb = sandbox(SandboxConfig::default()).await;
    let client = Client::new(fast(&sb)).unwrap();
    let dob = values::date(NaiveDate::from_ymd_opt(1990, 5, 17).unwrap());
    let c = client
        .create(
            &ObjectType::Contacts,
            &WriteInput::new([
                ("email", "d@example.com".to_string()),
                ("date_of_birth", dob),
            ]),
        )
        .await
        .unwrap();
    let rec = sb.store().get("contacts", &c.id).unwrap().unwrap();
    assert_eq!(rec["properties"]["date_of_birth"], "1990-05-17");
}

#[tokio::test]
async fn matching_throttle_gets_no_429s() {
    let sb = sandbox(SandboxConfig {
        rate_limit: Some(RateLimit::new(10, Duration::from_secs(1))),
        ..SandboxConfig::default()
    })
    .await;
    let mut config = fast(&sb);
    config.throttle = Throttle {
        limit: 10,
        per: Duration::from_secs(1),
    };
    let client = Client::new(config).unwrap();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            c.get(&ObjectType::Contacts, "1", None, &[]).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(client.stats().rate_limited, 0);
    assert_eq!(sb.store().stats().rate_limited, 0);
}

#[tokio::test]
async fn rate_limit_headers_reveal_a_shared_budget() {
    // Two processes share one app's budget, each configured as if it had it all.
    let sb = sandbox(SandboxConfig {
        rate_limit: Some(RateLimit::new(10, Duration::from_secs(1))),
        latency: Duration::from_millis(20),
        ..SandboxConfig::default()
    })
    .await;
    let mut config = fast(&sb);
    config.throttle = Throttle {
        limit: 10,
        per: Duration::from_secs(1),
    };
    config.concurrent_connections = 2;
    let clients = [
        Client::new(config.clone()).unwrap(),
        Client::new(config).unwrap(),
    ];
    let mut tasks = Vec::new();
    for client in &clients {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                c.get(&ObjectType::Contacts, "1", None, &[]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let limited: u64 = clients.iter().map(|c| c.stats().rate_limited).sum();
    eprintln!("429s with a shared budget: {limited} of 40 requests");
    // Blind, each would send its 10 per second and half of all requests would be refused.
    assert!(limited <= 8, "{limited} 429s");
}

#[tokio::test]
async fn a_429_storm_is_ridden_out() {
    for retry_after in [false, true] {
        let sb = sandbox(SandboxConfig {
            rate_limit: Some(RateLimit::new(10, Duration::from_secs(1))),
            retry_after,
            ..SandboxConfig::default()
        })
        .await;
        // The connection believes it may send far more than the server allows.
        let mut config = fast(&sb);
        config.throttle = Throttle {
            limit: 1000,
            per: Duration::from_secs(1),
        };
        // More in flight at once than the server allows: the first wave meets 429s before any
        // rate-limit header could slow the client down.
        config.concurrent_connections = 30;
        config.concurrent_batches = 30;
        let client = Client::new(config).unwrap();
        let out = client
            .batch_create(&ObjectType::Contacts, (0..2500).map(contact).collect())
            .await;
        assert!(
            out.iter().all(WriteOutcome::is_success),
            "retry_after={retry_after}"
        );
        assert_eq!(sb.store().count("contacts").unwrap(), 2500);
        let stats = client.stats();
        eprintln!("retry_after={retry_after}: {stats:?}");
        assert!(stats.rate_limited > 0, "{stats:?}");
        // Each 429 pauses the whole connection and the headers lower its limit, so the storm
        // is the first wave only.
        assert!(stats.rate_limited <= 25, "{stats:?}");
    }
}

#[tokio::test]
async fn search_has_its_own_budget() {
    let sb = sandbox(SandboxConfig {
        search_per_second: Some(5),
        rate_limit: Some(RateLimit::new(100, Duration::from_secs(10))),
        ..SandboxConfig::default()
    })
    .await;
    let mut config = fast(&sb);
    config.search_per_second = 5;
    let client = Client::new(config).unwrap();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            c.search(
                &ObjectType::Contacts,
                &SearchRequest {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(sb.store().stats().rate_limited, 0);
}

#[tokio::test]
async fn server_errors_and_dropped_connections_are_retried() {
    let sb = sandbox(SandboxConfig {
        fault_rate: 0.3,
        drop_rate: 0.1,
        fault_seed: Some(7),
        ..SandboxConfig::default()
    })
    .await;
    let mut config = fast(&sb);
    config.retry.max_attempts = 8;
    let client = Client::new(config).unwrap();
    let out = client
        .batch_upsert(
            &ObjectType::Contacts,
            "email",
            (0..500)
                .map(|i| (format!("user{i}@example.com"), contact(i)))
                .collect(),
        )
        .await;
    assert!(out.iter().all(WriteOutcome::is_success), "{out:?}");
    for i in 0..20 {
        client
            .get(&ObjectType::Contacts, &i.to_string(), None, &[])
            .await
            .unwrap();
    }
    let stats = client.stats();
    assert!(stats.server_errors > 0 && stats.retries > 0, "{stats:?}");
    assert_eq!(sb.store().count("contacts").unwrap(), 500);

    // Creates are not blindly re-sent: a failed or lost create is looked up by email first,
    // so every contact exists exactly once.
    let out = client
        .batch_create(&ObjectType::Contacts, (500..800).map(contact).collect())
        .await;
    assert!(out.iter().all(WriteOutcome::is_success), "{out:?}");
    assert_eq!(sb.store().count("contacts").unwrap(), 800);
}

#[tokio::test]
async fn timeouts_are_retried_then_reported() {
    let sb = sandbox(SandboxConfig {
        latency: Duration::from_millis(300),
        ..SandboxConfig::default()
    })
    .await;
    let mut config = fast(&sb);
    config.timeout = Duration::from_millis(100);
    config.retry.max_attempts = 3;
    let client = Client::new(config).unwrap();
    let err = client
        .get(&ObjectType::Contacts, "1", None, &[])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                kind: TransportKind::Timeout,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(client.stats().timeouts, 3);
    // A batch whose answers never arrive fails every record with the transport error.
    let out = client
        .batch_update(&ObjectType::Contacts, None, vec![("1".into(), contact(1))])
        .await;
    assert!(
        matches!(&out[0], WriteOutcome::Failed(e) if e.category == "TRANSPORT"),
        "{out:?}"
    );
}

fn oauth_sandbox_config(lifetime: Duration) -> SandboxConfig {
    SandboxConfig {
        tokens: vec!["static-only".into()],
        oauth: OAuthConfig {
            access_token_lifetime: lifetime,
            ..OAuthConfig::default()
        },
        ..SandboxConfig::default()
    }
}

fn oauth_client(sb: &Sandbox) -> Client {
    let oauth = OAuthConfig::default();
    let mut config = fast(sb);
    config.auth = Auth::OAuth {
        client_id: oauth.client_id,
        client_secret: SecretString::from(oauth.client_secret),
        refresh_token: SecretString::from(oauth.refresh_token),
        token_url: format!("{}/oauth/v1/token", sb.url()),
    };
    config.concurrent_connections = 50;
    Client::new(config).unwrap()
}

#[tokio::test]
async fn oauth_refresh_is_shared_by_50_concurrent_requests() {
    let sb = sandbox(oauth_sandbox_config(Duration::from_secs(1800))).await;
    let client = oauth_client(&sb);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            c.get(&ObjectType::Contacts, "1", None, &[]).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(sb.store().token_refreshes(), 1);
    assert_eq!(client.stats().token_refreshes, 1);
    assert_eq!(sb.store().stats().unauthorized, 0);
}

#[tokio::test]
async fn oauth_token_is_refreshed_before_it_expires() {
    let sb = sandbox(oauth_sandbox_config(Duration::from_secs(2))).await;
    let client = oauth_client(&sb);
    client
        .get(&ObjectType::Contacts, "1", None, &[])
        .await
        .unwrap();
    // 1.7 s later for both sides, without waiting: the client's clock is tokio's (frozen,
    // moved, then running again, 1.7 s ahead; no I/O happens while it is frozen), the
    // sandbox's its own. Past the client's refresh point (a fifth before expiry, 1.6 s), short
    // of the token's expiry (2 s).
    tokio::time::pause();
    tokio::time::advance(Duration::from_millis(1700)).await;
    tokio::time::resume();
    sb.clock().advance(Duration::from_millis(1700)).unwrap();
    client
        .get(&ObjectType::Contacts, "1", None, &[])
        .await
        .unwrap();
    assert_eq!(sb.store().token_refreshes(), 2);
    assert_eq!(
        sb.store().stats().unauthorized,
        0,
        "refreshed before, not after, expiry"
    );
}

#[tokio::test]
async fn daily_limit_stops_writes_with_a_typed_error() {
    let sb = sandbox(SandboxConfig {
        daily_limit: Some(3),
        ..SandboxConfig::default()
    })
    .await;
    let client = Client::new(fast(&sb)).unwrap();
    for i in 0..3 {
        client
            .create(&ObjectType::Contacts, &contact(i))
            .await
            .unwrap();
    }
    let err = client
        .create(&ObjectType::Contacts, &contact(3))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DailyLimit { .. }), "{err}");
    assert!(err.to_string().contains("daily"), "{err}");
    let seen = sb.store().stats().requests;
    let out = client
        .batch_create(&ObjectType::Contacts, vec![contact(4)])
        .await;
    assert!(
        matches!(&out[0], WriteOutcome::Failed(e) if e.category == "DAILY_LIMIT"),
        "{out:?}"
    );
    assert_eq!(
        sb.store().stats().requests,
        seen,
        "no request sent while paused"
    );
}

async fn companies(client: &Client, names: &[&str]) -> Vec<String> {
    let out = client
        .batch_create(
            &ObjectType::Companies,
            names
                .iter()
                .map(|n| WriteInput::new([("name", *n)]))
                .collect(),
        )
        .await;
    ids(&out)
}

#[tokio::test]
async fn a_batch_update_of_a_merged_record_follows_the_merge() {
    let sb = sandbox(SandboxConfig::default()).await;
    let client = Client::new(fast(&sb)).unwrap();
    let ids = companies(&client, &["Primary", "Duplicate", "Control", "Gone"]).await;
    let (primary, dup, control, gone) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    sb.store().merge("companies", primary, dup).unwrap();
    // a record merged away whose survivor was then deleted: the single PATCH answers 404
    let doomed = companies(&client, &["Doomed"]).await.remove(0);
    sb.store().merge("companies", &doomed, gone).unwrap();
    sb.store().archive("companies", &doomed).unwrap();

    let software = || WriteInput::new([("industry", "COMPUTER_SOFTWARE")]);
    let out = client
        .batch_update(
            &ObjectType::Companies,
            None,
            vec![
                (dup.clone(), software()),
                (control.clone(), software()),
                (gone.clone(), software()),
                ("777777".into(), software()),
            ],
        )
        .await;
    assert_eq!(
        out[0],
        WriteOutcome::Updated {
            id: primary.clone()
        },
        "{out:?}"
    );
    assert_eq!(
        out[1],
        WriteOutcome::Updated {
            id: control.clone()
        }
    );
    assert!(
        matches!(&out[2], WriteOutcome::Failed(e) if e.status == Some(404)),
        "the single call's answer: {:?}",
        out[2]
    );
    assert!(matches!(&out[3], WriteOutcome::Failed(e) if e.status == Some(404)));
    let survivor = sb.store().get("companies", primary).unwrap().unwrap();
    assert_eq!(survivor["properties"]["industry"], "COMPUTER_SOFTWARE");
    assert_eq!(
        sb.store().endpoint_count("update"),
        2,
        "one PATCH per unanswered input"
    );

    // upsert by id: a merged-away id updates the survivor, never creates a duplicate
    let before = sb.store().count("companies").unwrap();
    let out = client
        .upsert_by_id(
            &ObjectType::Companies,
            vec![(Some(dup.clone()), WriteInput::new([("city", "Lyon")]))],
            true,
        )
        .await;
    assert_eq!(
        out[0],
        WriteOutcome::Updated {
            id: primary.clone()
        }
    );
    assert_eq!(sb.store().count("companies").unwrap(), before);
    let survivor = sb.store().get("companies", primary).unwrap().unwrap();
    assert_eq!(survivor["properties"]["city"], "Lyon");
}

#[tokio::test]
async fn find_by_unique_reads_100_values_a_call() {
    let sb = sandbox(SandboxConfig::default()).await;
    let client = Client::new(fast(&sb)).unwrap();
    let created = client
        .batch_create(&ObjectType::Contacts, (0..230).map(contact).collect())
        .await;
    let created = ids(&created);
    let mut asked: Vec<String> = (0..230).map(|i| format!("user{i}@example.com")).collect();
    asked[5] = "USER5@Example.com".into(); // e-mails compare case-insensitively
    asked.extend((0..20).map(|i| format!("nobody{i}@example.com")));
    asked.push(String::new());
    let before = sb.store().endpoint_count("batch_read");
    let found = client
        .find_by_unique(&ObjectType::Contacts, "email", &asked)
        .await
        .unwrap();
    assert_eq!(
        sb.store().endpoint_count("batch_read") - before,
        3,
        "250 values, 3 calls"
    );
    assert_eq!(found.len(), 230, "values not found are absent");
    assert_eq!(found["USER5@Example.com"], created[5]);
    assert_eq!(found["user229@example.com"], created[229]);
    assert!(!found.contains_key("nobody0@example.com"));

    // any unique custom property
    let co = ids(&client
        .batch_create(
            &ObjectType::Companies,
            vec![WriteInput::new([("name", "A"), ("external_id", "ERP-1")])],
        )
        .await);
    let found = client
        .find_by_unique(
            &ObjectType::Companies,
            "external_id",
            &["ERP-1".into(), "ERP-2".into()],
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found["ERP-1"], co[0]);
    // a property that is not unique is HubSpot's 400, not an empty answer
    let err = client
        .find_by_unique(&ObjectType::Companies, "name", &["A".into()])
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
}

#[tokio::test]
async fn find_by_property_searches_in_chunks_and_pages() {
    const T0: i64 = 1_700_000_000_000;
    let sb = sandbox(SandboxConfig::default()).await;
    let store = sb.store();
    let client = Client::new(fast(&sb)).unwrap();
    // 150 domains once, one domain on 450 companies, one older duplicate of d7
    let mut records: Vec<serde_json::Value> = (0..150)
        .map(|i| json!({"name": format!("C{i}"), "domain": format!("d{i}.example")}))
        .collect();
    records.extend((0..450).map(|i| json!({"name": format!("Big {i}"), "domain": "big.example"})));
    let seeded = store
        .seed(
            SeedSpec::records("companies", records)
                .at(T0 + 1_000_000)
                .step(1),
        )
        .unwrap();
    let old = store
        .seed(
            SeedSpec::records(
                "companies",
                vec![json!({"name": "Old", "domain": "D7.example"})],
            )
            .at(T0),
        )
        .unwrap();

    let mut asked: Vec<String> = (0..150).map(|i| format!("d{i}.example")).collect();
    asked[3] = "D3.Example".into();
    asked.push("big.example".into());
    asked.extend((0..10).map(|i| format!("missing{i}.example")));
    let before = store.endpoint_count("search");
    let found = client
        .find_by_property(&ObjectType::Companies, "domain", &asked, None)
        .await
        .unwrap();
    // 161 values: IN filters of 100 and 61; the big domain takes 3 pages of 200
    assert_eq!(store.endpoint_count("search") - before, 1 + 3);
    assert_eq!(found.len(), 151, "missing values are absent");
    assert_eq!(found["D3.Example"], vec![seeded[3].clone()]);
    assert_eq!(
        found["d7.example"],
        vec![seeded[7].clone(), old[0].clone()],
        "every id per value, ascending"
    );
    assert_eq!(found["big.example"].len(), 450);
    assert_eq!(&found["big.example"][..], &seeded[150..]);

    // only records created since a time
    let found = client
        .find_by_property(
            &ObjectType::Companies,
            "domain",
            &["d7.example".into()],
            Some(T0 + 1),
        )
        .await
        .unwrap();
    assert_eq!(found["d7.example"], vec![seeded[7].clone()]);

    // search lags writes: a fresh record shows once the lag has passed
    store.update_faults(|f| f.search_lag = Duration::from_secs(5));
    let fresh = client
        .create(
            &ObjectType::Companies,
            &WriteInput::new([("domain", "fresh.example")]),
        )
        .await
        .unwrap();
    let ask = vec!["fresh.example".to_string()];
    let found = client
        .find_by_property(&ObjectType::Companies, "domain", &ask, None)
        .await
        .unwrap();
    assert!(found.is_empty(), "not indexed yet");
    sb.clock().advance(Duration::from_secs(6)).unwrap();
    let found = client
        .find_by_property(&ObjectType::Companies, "domain", &ask, None)
        .await
        .unwrap();
    assert_eq!(found["fresh.example"], vec![fresh.id]);
}

#[tokio::test]
async fn search_pages_carry_total_and_end_at_the_cap() {
    let sb = sandbox(SandboxConfig {
        search_cap: rivulet_sandbox::SearchCap::EndPaging,
        ..SandboxConfig::default()
    })
    .await;
    sb.store()
        .seed(SeedSpec::generated("contacts", 10_300).at(1_700_000_000_000))
        .unwrap();
    let client = Client::new(fast(&sb)).unwrap();
    let mut request = SearchRequest {
        limit: 200,
        ..SearchRequest::default()
    };
    let mut seen = 0;
    loop {
        let page = client
            .search(&ObjectType::Contacts, &request)
            .await
            .unwrap();
        assert_eq!(page.total, 10_300);
        seen += page.results.len();
        match page.after {
            Some(a) => request.after = Some(a),
            None => break,
        }
    }
    assert_eq!(seen, 10_000, "paging ends at the cap, without an error");
}

/// A portal rule: customers must have a phone and a job title.
fn customers_need_phone_and_title() -> rivulet_sandbox::WriteRules {
    rivulet_sandbox::WriteRules {
        required_when: vec![rivulet_sandbox::RequiredWhen {
            property: "lifecyclestage".into(),
            equals: Some("customer".into()),
            then: vec!["phone".into(), "jobtitle".into()],
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn portal_write_rules_fail_the_record_permanently_with_the_property_names() {
    let sb = sandbox(SandboxConfig::default()).await;
    sb.store()
        .set_write_rules("contacts", customers_need_phone_and_title())
        .unwrap();
    let inputs = || {
        let mut v: Vec<WriteInput> = (0..6).map(contact).collect();
        v[2].properties
            .insert("lifecyclestage".into(), "customer".into());
        v[4].properties
            .insert("lifecyclestage".into(), "customer".into());
        v[4].properties.insert("phone".into(), "+1 555 0100".into());
        v
    };
    let check = |out: &[WriteOutcome], missing: &[&str]| {
        for (i, o) in out.iter().enumerate() {
            if i == 2 || i == 4 {
                let WriteOutcome::Failed(e) = o else {
                    panic!("{i}: {o:?}")
                };
                assert_eq!(e.status, Some(400), "{e}");
                assert_eq!(e.category, "VALIDATION_ERROR");
                let want: Vec<&str> = if i == 2 {
                    missing.to_vec()
                } else {
                    vec!["jobtitle"]
                };
                assert_eq!(e.property_names(), want, "{e}");
                let shown = e.to_string();
                assert!(
                    shown.contains("Some required properties"),
                    "HubSpot's message: {shown}"
                );
                assert!(
                    shown.contains(&format!("properties: {}", want.join(", "))),
                    "{shown}"
                );
                assert!(!shown.contains("objectWriteTraceId"), "{shown}");
            } else {
                assert!(matches!(o, WriteOutcome::Created { .. }), "{i}: {o:?}");
            }
        }
    };
    // multi-status: per-input errors in a 207
    let client = Client::new(fast(&sb)).unwrap();
    let out = client.batch_create(&ObjectType::Contacts, inputs()).await;
    check(&out, &["phone", "jobtitle"]);
    assert_eq!(sb.store().endpoint_count("batch_create"), 1);

    // without trace ids the whole batch is refused and bisected down to the bad inputs
    sb.store().reset();
    sb.store()
        .set_write_rules("contacts", customers_need_phone_and_title())
        .unwrap();
    let mut config = fast(&sb);
    config.multi_status = false;
    let client = Client::new(config).unwrap();
    let out = client.batch_create(&ObjectType::Contacts, inputs()).await;
    check(&out, &["phone", "jobtitle"]);
    assert_eq!(sb.store().count("contacts").unwrap(), 4);

    // updates are checked on the record as they would leave it
    let out = client
        .batch_upsert(
            &ObjectType::Contacts,
            "email",
            vec![(
                "user0@example.com".into(),
                WriteInput::new([("lifecyclestage", "customer"), ("phone", "+1 555 0101")]),
            )],
        )
        .await;
    let WriteOutcome::Failed(e) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(e.property_names(), vec!["jobtitle"], "{e}");
}
