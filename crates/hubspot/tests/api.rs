//! The client's newer surface against the sandbox over real HTTP, on both API versions: the
//! path families, property definitions, deals with line items and products, associations,
//! portal write rules, the OAuth authorization-code flow, token descriptions and rate-limit
//! headroom.

use std::time::Duration;

use rivulet_hubspot::{
    ApiVersion, AssociationInput, AssociationOutcome, AssociationType, Auth, Client, ClientConfig,
    Error, ListRequest, OAuthApp, ObjectType, ProductInput, ProductOutcome, RetryPolicy,
    SearchRequest, SecretString, Throttle, WriteInput, WriteOutcome, associations::types, commerce,
    exchange_code,
};
use rivulet_sandbox::{OAuthConfig, RateLimit, Sandbox, SandboxConfig, SeedSpec};
use serde_json::json;

const VERSIONS: [ApiVersion; 2] = [ApiVersion::V3, ApiVersion::V2026_03];

fn config(sb: &Sandbox, version: ApiVersion) -> ClientConfig {
    let mut c = ClientConfig::with_token("test-token")
        .base_url(sb.url())
        .api_version(version);
    c.throttle = Throttle {
        limit: 10_000,
        per: Duration::from_secs(1),
    };
    c.search_per_second = 1000;
    c.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        max_rate_limited_attempts: 5,
        ..RetryPolicy::default()
    };
    c.timeout = Duration::from_secs(5);
    c
}

async fn sandbox(config: SandboxConfig) -> Sandbox {
    Sandbox::start(config).await.expect("sandbox starts")
}

/// The paths the sandbox saw, in order.
fn paths(sb: &Sandbox) -> Vec<String> {
    sb.store().requests().into_iter().map(|r| r.path).collect()
}

fn created(out: &WriteOutcome) -> String {
    out.id()
        .unwrap_or_else(|| panic!("not a success: {out:?}"))
        .to_string()
}

#[tokio::test]
async fn every_call_uses_its_versions_paths_on_one_store() {
    let sb = sandbox(SandboxConfig::default()).await;
    let mut made = Vec::new();
    for version in VERSIONS {
        let client = Client::new(config(&sb, version)).unwrap();
        let prefix = match version {
            ApiVersion::V3 => "/crm/v3/objects/contacts",
            ApiVersion::V2026_03 => "/crm/objects/2026-03/contacts",
        };
        let before = paths(&sb).len();
        let email = format!("{}@example.com", version.as_str());
        let one = client
            .create(
                &ObjectType::Contacts,
                &WriteInput::new([("email", email.as_str())]),
            )
            .await
            .unwrap();
        let got = client
            .get(&ObjectType::Contacts, &email, Some("email"), &[])
            .await
            .unwrap()
            .expect("found by email");
        assert_eq!(got.id, one.id);
        let up = client
            .batch_upsert(
                &ObjectType::Contacts,
                "email",
                vec![(
                    email.clone(),
                    WriteInput::new([("firstname", version.as_str())]),
                )],
            )
            .await;
        assert_eq!(up[0], WriteOutcome::Updated { id: one.id.clone() });
        let read = client
            .batch_read(
                &ObjectType::Contacts,
                std::slice::from_ref(&one.id),
                None,
                &[],
            )
            .await
            .unwrap();
        assert_eq!(read.len(), 1);
        client
            .search(
                &ObjectType::Contacts,
                &SearchRequest {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        client
            .list(&ObjectType::Contacts, &ListRequest::default())
            .await
            .unwrap();
        let def = client
            .property(&ObjectType::Contacts, "lifecyclestage")
            .await
            .unwrap()
            .expect("a default property");
        assert!(def.is_enumeration());
        let seen: Vec<String> = paths(&sb).split_off(before);
        let properties = match version {
            ApiVersion::V3 => "/crm/v3/properties/contacts/lifecyclestage",
            ApiVersion::V2026_03 => "/crm/properties/2026-03/contacts/lifecyclestage",
        };
        assert_eq!(
            seen,
            vec![
                prefix.to_string(),
                format!("{prefix}/{}", email.replace('@', "%40")),
                format!("{prefix}/batch/upsert"),
                format!("{prefix}/batch/read"),
                format!("{prefix}/search"),
                prefix.to_string(),
                properties.to_string(),
            ]
        );
        made.push(one.id);
    }
    // one store: each version reads what the other wrote
    let v3 = Client::new(config(&sb, ApiVersion::V3)).unwrap();
    let dated = Client::new(config(&sb, ApiVersion::V2026_03)).unwrap();
    assert!(
        v3.get(&ObjectType::Contacts, &made[1], None, &[])
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        dated
            .get(&ObjectType::Contacts, &made[0], None, &[])
            .await
            .unwrap()
            .is_some()
    );
    // merge and archive on the date-versioned paths
    let survivor = dated
        .merge(&ObjectType::Contacts, &made[0], &made[1])
        .await
        .unwrap();
    assert_eq!(survivor.id, made[0]);
    dated
        .archive(&ObjectType::Contacts, &made[0])
        .await
        .unwrap();
    dated
        .archive(&ObjectType::Contacts, &made[0])
        .await
        .unwrap();
    assert!(
        dated
            .get(&ObjectType::Contacts, &made[0], None, &[])
            .await
            .unwrap()
            .is_none()
    );
    let tail = paths(&sb);
    assert!(tail.contains(&"/crm/objects/2026-03/contacts/merge".to_string()));
    sb.shutdown().await;
}

#[tokio::test]
async fn property_definitions_and_their_options() {
    let sb = sandbox(SandboxConfig::default()).await;
    for version in VERSIONS {
        let client = Client::new(config(&sb, version)).unwrap();
        let cat = client
            .property(&ObjectType::Companies, "company_category")
            .await
            .unwrap()
            .expect("the sandbox defines company_category");
        assert!(cat.is_enumeration());
        assert_eq!(cat.option_value("Mid-market"), Some("mid_market"));
        assert!(cat.allowed().contains("enterprise (Enterprise)"));
        assert!(
            client
                .property(&ObjectType::Companies, "no_such_property")
                .await
                .unwrap()
                .is_none()
        );
        let name = client
            .property(&ObjectType::Companies, "name")
            .await
            .unwrap()
            .unwrap();
        assert!(!name.is_enumeration());
    }
    // a portal admin defines a dropdown through the control API
    let r = reqwest::Client::new()
        .post(format!("{}/_sandbox/properties/contacts", sb.url()))
        .json(&json!({
            "name": "tier", "label": "Tier", "type": "enumeration", "fieldType": "select",
            "options": [{"label": "Gold", "value": "gold"}, {"label": "Silver", "value": "silver"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let client = Client::new(config(&sb, ApiVersion::V2026_03)).unwrap();
    let tier = client
        .property(&ObjectType::Contacts, "tier")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tier.to_internal("Gold").unwrap(), "gold");
    let all = client.properties(&ObjectType::Contacts).await.unwrap();
    assert!(all.iter().any(|p| p.name == "tier"));
    sb.shutdown().await;
}

#[tokio::test]
async fn deals_with_line_items_on_products_found_or_created_by_sku() {
    for version in VERSIONS {
        let sb = sandbox(SandboxConfig::default()).await;
        let existing = sb
            .store()
            .seed(SeedSpec::records(
                "products",
                vec![json!({"name": "Existing", "hs_sku": "SKU-OLD", "price": "5"})],
            ))
            .unwrap()[0]
            .to_string();
        let client = Client::new(config(&sb, version)).unwrap();
        let products = client
            .ensure_products(vec![
                ProductInput::new("SKU-OLD", [("name", "ignored")]),
                ProductInput::new("SKU-A", [("name", "Widget"), ("price", "9.50")]),
                ProductInput::new("SKU-B", [("name", "Gadget"), ("price", "3")]),
                ProductInput::new("SKU-A", [("name", "Widget again")]),
                ProductInput::new(" ", [("name", "No SKU")]),
            ])
            .await;
        assert_eq!(
            products[0],
            ProductOutcome::Found {
                id: existing.clone()
            }
        );
        let (ProductOutcome::Created { id: a }, ProductOutcome::Created { id: b }) =
            (&products[1], &products[2])
        else {
            panic!("{products:?}")
        };
        assert_eq!(products[3].id(), Some(a.as_str()), "one product per SKU");
        assert!(matches!(&products[4], ProductOutcome::Failed(e) if e.message.contains("no SKU")));
        assert_eq!(sb.store().count("products").unwrap(), 3);
        // asked again at once (search still lagging or not): no second product
        let again = client
            .ensure_products(vec![ProductInput::new("SKU-B", [("name", "Gadget")])])
            .await;
        assert_eq!(again[0], ProductOutcome::Found { id: b.clone() });
        assert_eq!(sb.store().count("products").unwrap(), 3);

        let deals = client
            .batch_create(
                &ObjectType::deals(),
                vec![WriteInput::new([
                    ("dealname", "Order 7"),
                    ("dealstage", "closedwon"),
                ])],
            )
            .await;
        let deal = created(&deals[0]);
        let items = client
            .batch_create(
                &ObjectType::line_items(),
                vec![
                    commerce::line_item(a, "2", Some(&deal)),
                    commerce::line_item(&existing, "1", Some(&deal)),
                    commerce::line_item(b, "4", None),
                ],
            )
            .await;
        let item_ids: Vec<String> = items.iter().map(created).collect();
        // the third line item is associated afterwards; one input names no deal that exists
        let assoc = client
            .associate(
                &ObjectType::line_items(),
                &ObjectType::deals(),
                vec![
                    AssociationInput::default_type(&item_ids[2], &deal),
                    AssociationInput::of_types(
                        &item_ids[2],
                        "999999",
                        vec![AssociationType::hubspot(types::LINE_ITEM_TO_DEAL)],
                    ),
                    AssociationInput::of_types(
                        &item_ids[0],
                        &deal,
                        vec![AssociationType::hubspot(types::LINE_ITEM_TO_DEAL)],
                    ),
                ],
            )
            .await;
        assert!(assoc[0].is_done() && assoc[2].is_done(), "{assoc:?}");
        let AssociationOutcome::Failed(e) = &assoc[1] else {
            panic!("{assoc:?}")
        };
        assert!(e.message.contains("999999"), "{e}");
        let listed = client
            .associations(&ObjectType::deals(), &deal, &ObjectType::line_items())
            .await
            .unwrap();
        let mut on_deal: Vec<String> = listed.iter().map(|r| r.to_id.clone()).collect();
        on_deal.sort();
        let mut want = item_ids.clone();
        want.sort();
        assert_eq!(on_deal, want);
        assert_eq!(listed[0].types[0].0.type_id, types::DEAL_TO_LINE_ITEM);
        let stored = sb.store().get("line_items", &item_ids[0]).unwrap().unwrap();
        assert_eq!(stored["properties"]["hs_product_id"], json!(a));
        // the association endpoints of the connection's version were used
        let family = match version {
            ApiVersion::V3 => "/crm/v4/associations/line_items/deals/batch/",
            ApiVersion::V2026_03 => "/crm/associations/2026-03/line_items/deals/batch/",
        };
        let seen = paths(&sb);
        assert!(
            seen.contains(&format!("{family}associate/default")),
            "{seen:?}"
        );
        assert!(seen.contains(&format!("{family}create")), "{seen:?}");
        sb.shutdown().await;
    }
}

#[tokio::test]
async fn a_portal_rule_fails_its_record_with_hubspots_message_and_properties() {
    let sb = sandbox(SandboxConfig::default()).await;
    let r = reqwest::Client::new()
        .put(format!("{}/_sandbox/validation/companies", sb.url()))
        .json(&json!({"required_when": {"property": "company_category", "then": ["industry"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let client = Client::new(config(&sb, ApiVersion::V2026_03)).unwrap();
    let out = client
        .batch_create(
            &ObjectType::Companies,
            vec![
                WriteInput::new([("name", "Plain")]),
                WriteInput::new([("name", "Categorised"), ("company_category", "partner")]),
                WriteInput::new([
                    ("name", "Complete"),
                    ("company_category", "partner"),
                    ("industry", "RETAIL"),
                ]),
            ],
        )
        .await;
    assert!(out[0].is_success() && out[2].is_success(), "{out:?}");
    let WriteOutcome::Failed(e) = &out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(e.status, Some(400));
    assert_eq!(e.category, "VALIDATION_ERROR");
    assert_eq!(e.property_names(), vec!["industry"]);
    assert!(
        e.message
            .contains("industry is required when company_category has a value"),
        "{e}"
    );
    assert_eq!(sb.store().count("companies").unwrap(), 2);
    sb.shutdown().await;
}

fn oauth_config() -> SandboxConfig {
    SandboxConfig {
        oauth: OAuthConfig {
            client_id: "app-1".into(),
            client_secret: "app-secret-SENTINEL".into(),
            ..OAuthConfig::default()
        },
        ..SandboxConfig::default()
    }
}

/// Opens the sandbox's authorization page as a browser would and returns the code and state
/// it redirects with.
async fn authorize(sb: &Sandbox, scopes: &[&str], redirect: &str) -> (String, String) {
    let url = rivulet_hubspot::authorize_url(
        Some(&format!("{}/oauth/authorize", sb.url())),
        "app-1",
        redirect,
        &scopes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "xyz 1",
    )
    .unwrap();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = browser.get(url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let to = reqwest::Url::parse(&location).unwrap();
    assert!(location.starts_with(redirect), "{location}");
    let q: std::collections::HashMap<String, String> = to.query_pairs().into_owned().collect();
    (q["code"].clone(), q["state"].clone())
}

#[tokio::test]
async fn the_authorization_code_flow_end_to_end() {
    let sb = sandbox(oauth_config()).await;
    let redirect = "http://127.0.0.1:9/callback";
    let scopes = ["oauth", "crm.objects.contacts.read"];
    let (code, state) = authorize(&sb, &scopes, redirect).await;
    assert_eq!(state, "xyz 1");
    let mut app = OAuthApp::new("app-1", SecretString::from("app-secret-SENTINEL"));
    app.token_url = format!("{}/oauth/v1/token", sb.url());
    // the wrong redirect URI spends the code: it is refused, and so is every later try
    let wrong = exchange_code(
        &app,
        &SecretString::from(code.clone()),
        "http://127.0.0.1:9/other",
    )
    .await
    .unwrap_err();
    assert!(matches!(wrong, Error::Auth(_)), "{wrong}");
    let again = exchange_code(&app, &SecretString::from(code.clone()), redirect)
        .await
        .unwrap_err();
    let shown = again.to_string();
    assert!(shown.contains("authorize again"), "{shown}");
    assert!(
        !shown.contains(&code) && !shown.contains("SENTINEL"),
        "{shown}"
    );

    let (code, _) = authorize(&sb, &scopes, redirect).await;
    let grant = exchange_code(&app, &SecretString::from(code), redirect)
        .await
        .unwrap();
    assert_eq!(grant.scopes, scopes);
    assert_eq!(grant.expires_in, Duration::from_secs(1800));
    assert!(format!("{grant:?}").contains("REDACTED"));

    // a connection made from the grant: its token says what it may do, and it may do no more
    let mut c = config(&sb, ApiVersion::V2026_03);
    c.auth = Auth::OAuth {
        client_id: "app-1".into(),
        client_secret: SecretString::from("app-secret-SENTINEL"),
        refresh_token: grant.refresh_token.clone(),
        token_url: app.token_url.clone(),
    };
    let client = Client::new(c).unwrap();
    let info = client.token_info().await.unwrap();
    assert_eq!(info.scopes, scopes);
    assert_eq!(info.hub_id, Some(rivulet_sandbox::HUB_ID));
    assert!(info.expires_in.is_some());
    assert_eq!(
        info.missing_scopes(&["crm.objects.contacts.read", "crm.objects.companies.read"]),
        vec!["crm.objects.companies.read"]
    );
    client
        .list(&ObjectType::Contacts, &ListRequest::default())
        .await
        .unwrap();
    let denied = client
        .list(&ObjectType::Companies, &ListRequest::default())
        .await
        .unwrap_err();
    assert_eq!(denied.status(), Some(403));
    assert_eq!(denied.category(), "MISSING_SCOPES");
    let logged = paths(&sb);
    assert!(
        logged
            .iter()
            .any(|p| p == "/oauth/v1/access-tokens/[REDACTED]"),
        "{logged:?}"
    );
    assert!(logged.iter().all(|p| !p.contains("sbx-")), "{logged:?}");
    sb.shutdown().await;
}

#[tokio::test]
async fn a_private_app_token_describes_its_scopes() {
    let sb = sandbox(SandboxConfig::default()).await;
    let client = Client::new(config(&sb, ApiVersion::V3)).unwrap();
    let info = client.token_info().await.unwrap();
    assert!(info.scopes.iter().any(|s| s == "crm.objects.deals.write"));
    sb.store()
        .restrict_token(
            "test-token",
            Some(vec![
                "crm.objects.companies.read".into(),
                "crm.objects.companies.write".into(),
            ]),
        )
        .unwrap();
    let info = client.token_info().await.unwrap();
    assert_eq!(
        info.missing_scopes(&["crm.objects.companies.read", "crm.objects.contacts.read"]),
        vec!["crm.objects.contacts.read"]
    );
    let denied = client
        .get(&ObjectType::Contacts, "1", None, &[])
        .await
        .unwrap_err();
    assert_eq!(denied.category(), "MISSING_SCOPES", "{denied}");
    sb.shutdown().await;
}

#[tokio::test]
async fn rate_limit_headroom_is_what_the_last_answer_said() {
    let sb = sandbox(SandboxConfig {
        rate_limit: Some(RateLimit::new(100, Duration::from_secs(10))),
        daily_limit: Some(1000),
        ..SandboxConfig::default()
    })
    .await;
    let client = Client::new(config(&sb, ApiVersion::V2026_03)).unwrap();
    client
        .search(
            &ObjectType::Contacts,
            &SearchRequest {
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        client.rate_limit_headroom(),
        None,
        "search answers carry none"
    );
    for _ in 0..3 {
        client
            .list(&ObjectType::Contacts, &ListRequest::default())
            .await
            .unwrap();
    }
    let h = client.rate_limit_headroom().expect("headers seen");
    assert_eq!(h.max, Some(100));
    assert_eq!(h.remaining, Some(97));
    assert_eq!(h.interval, Some(Duration::from_secs(10)));
    assert_eq!(h.daily, Some(1000));
    assert_eq!(h.daily_remaining, Some(996));
    sb.shutdown().await;
}
