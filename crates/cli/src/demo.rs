//! The other ends of the example flows, for `rivulet run --sandbox`: a small web-shop API of
//! customers (cursor-paginated, incremental) and a receiver that accepts whatever the HTTP
//! actions send. Served on 127.0.0.1 beside the HubSpot sandbox, so the examples run end to
//! end with no account and no network.

use axum::extract::{Path, Query, State};
use axum::routing::{any, get};
use axum::{Json, Router};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// What the demo server has received, by connection name.
#[derive(Clone, Default)]
pub struct Received(Arc<Mutex<HashMap<String, Vec<Value>>>>);

impl Received {
    /// Records received, by connection (sorted).
    pub fn counts(&self) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = self
            .0
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.len()))
            .collect();
        out.sort();
        out
    }
}

const FIRST: [&str; 8] = [
    "Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances",
];
const LAST: [&str; 8] = [
    "Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen",
];

fn customers() -> Vec<Value> {
    (0..24)
        .map(|i| {
            let (first, last) = (FIRST[i % 8], LAST[(i / 3) % 8]);
            json!({
                "id": 1000 + i,
                "name": format!("{first} {last}"),
                "email": format!("  {}.{}{}@Shop.Example ", first.to_lowercase(), last.to_lowercase(), i),
                "phone": if i % 3 == 0 { Value::Null } else { json!(format!("+44 20 7946 {:04}", i)) },
                "updated_at": format!("2026-11-{:02}T10:00:00Z", 1 + i),
            })
        })
        .collect()
}

async fn list_customers(Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let since = q.get("updated_since").cloned().unwrap_or_default();
    let start: usize = q.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let all: Vec<Value> = customers()
        .into_iter()
        .filter(|c| c["updated_at"].as_str().unwrap_or("") > since.as_str())
        .collect();
    let page: Vec<Value> = all.iter().skip(start).take(10).cloned().collect();
    let next = (start + 10 < all.len()).then(|| (start + 10).to_string());
    Json(json!({ "data": page, "next_cursor": next }))
}

async fn receive(
    State(received): State<Received>,
    Path((connection, _rest)): Path<(String, String)>,
    body: Json<Value>,
) -> Json<Value> {
    let items = match body.0 {
        Value::Array(items) => items,
        other => vec![other],
    };
    let n = items.len();
    received
        .0
        .lock()
        .entry(connection)
        .or_default()
        .extend(items);
    Json(json!({ "received": n }))
}

/// Starts the demo server on an ephemeral port.
pub async fn start() -> std::io::Result<(SocketAddr, Received)> {
    let received = Received::default();
    let app = Router::new()
        .route("/{connection}/customers", get(list_customers))
        .route("/{connection}/{*rest}", any(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, received))
}
