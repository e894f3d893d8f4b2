//! One suite of state store behaviour, written once against `Arc<dyn StateStore>` and run for
//! every backend: SQLite in a temporary folder, and PostgreSQL in a fresh schema per test.
//!
//! The PostgreSQL half needs a server: `RIVULET_TEST_DATABASE_URL` (for example
//! `postgres://root@127.0.0.1:5432/test`). Unset, each PostgreSQL test says it was skipped and
//! passes; set but unreachable, each one fails. Every test makes its own schema
//! (`rivulet_test_…`), points its stores at it through the URL's `options=-c search_path=…`,
//! and drops it at the end, whatever the outcome.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use rivulet_http::{Clock, ManualClock, SharedClock};
use rivulet_runtime::state::{
    self, Commit, Counts, Cursor, FailedRecord, FailureFilter, FailureStatus, Fence, Holder,
    LedgerEntry, LedgerState, PostgresStore, RunStatus, StateError, StateStore, UndoMark, Written,
};
use serde_json::json;

const DATABASE_URL: &str = "RIVULET_TEST_DATABASE_URL";
const TTL: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Where one test's state lives, and a way around the store to it (for planting tables).
struct Place {
    backend: Backend,
    /// What `--state` would say.
    location: String,
    _dir: Option<tempfile::TempDir>,
}

impl Place {
    async fn try_open_with(&self, clock: SharedClock) -> Result<Arc<dyn StateStore>, StateError> {
        state::open(&self.location, clock).await
    }

    async fn open_with(&self, clock: SharedClock) -> Arc<dyn StateStore> {
        self.try_open_with(clock)
            .await
            .unwrap_or_else(|e| panic!("opening the {:?} state: {e}", self.backend))
    }

    async fn open(&self) -> Arc<dyn StateStore> {
        self.open_with(rivulet_http::clock::system()).await
    }

    async fn try_open(&self) -> Result<Arc<dyn StateStore>, StateError> {
        self.try_open_with(rivulet_http::clock::system()).await
    }

    /// Runs `sql` on the backend directly, beside any store.
    async fn sql(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => rusqlite::Connection::open(&self.location)
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
            Backend::Postgres => pg_connect(&self.location)
                .await
                .batch_execute(sql)
                .await
                .unwrap(),
        }
    }

    /// The rows of `schema_version`.
    async fn versions(&self) -> Vec<i64> {
        const SQL: &str = "SELECT version FROM schema_version";
        match self.backend {
            Backend::Sqlite => {
                let c = rusqlite::Connection::open(&self.location).unwrap();
                let mut stmt = c.prepare(SQL).unwrap();
                stmt.query_map([], |r| r.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap()
            }
            Backend::Postgres => pg_connect(&self.location)
                .await
                .query(SQL, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect(),
        }
    }
}

fn database_url() -> Option<String> {
    std::env::var(DATABASE_URL).ok().filter(|u| !u.is_empty())
}

/// `url` without a password, for messages.
fn shown(url: &str) -> String {
    match (url.split_once("://"), url.find('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let (userinfo, host) = rest.split_once('@').unwrap();
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}")
        }
        _ => url.to_string(),
    }
}

/// Says once per test binary, past the test harness's capture (so a plain `cargo test`
/// shows it), that the PostgreSQL half did not run.
fn say_skipped_once() {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "state_conformance: PostgreSQL half SKIPPED: {DATABASE_URL} is not set (e.g. postgres://root@127.0.0.1:5432/test); only SQLite was tested"
        );
    });
}

async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            let cause = std::error::Error::source(&e)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            panic!(
                "{DATABASE_URL} is set, but PostgreSQL at {} cannot be reached: {e}{cause}",
                shown(url)
            )
        });
    tokio::spawn(connection);
    client
}

/// Runs `case` against `backend` in a place of its own.
async fn run<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Place) -> Fut,
    Fut: Future<Output = ()>,
{
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let location = dir.path().join("state.db").display().to_string();
            case(Place {
                backend,
                location,
                _dir: Some(dir),
            })
            .await;
        }
        Backend::Postgres => {
            let Some(url) = database_url() else {
                say_skipped_once();
                return;
            };
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let schema = format!(
                "rivulet_test_{}_{}_{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed),
                Utc::now().timestamp_micros()
            );
            let admin = pg_connect(&url).await;
            admin
                .batch_execute(&format!("CREATE SCHEMA {schema}"))
                .await
                .unwrap();
            let separator = if url.contains('?') { '&' } else { '?' };
            let place = Place {
                backend,
                location: format!("{url}{separator}options=-c%20search_path%3D{schema}"),
                _dir: None,
            };
            let outcome = AssertUnwindSafe(case(place)).catch_unwind().await;
            admin
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await
                .unwrap();
            if let Err(panic) = outcome {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

macro_rules! conformance {
    (both: [$($case:ident),+ $(,)?], postgres_only: [$($pg_case:ident),* $(,)?] $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::run(super::Backend::Sqlite, super::$case).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::run(super::Backend::Postgres, super::$case).await
                }
            )+
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $pg_case() {
                    super::run(super::Backend::Postgres, super::$pg_case).await
                }
            )*
        }
    };
}

conformance!(
    both: [
        a_commit_is_all_or_nothing_and_survives_reopening,
        ledger_and_undo_marks,
        lookups_take_a_whole_page_at_once,
        one_holder_per_lease_with_growing_fencing_tokens,
        a_crashed_holder_on_this_host_is_taken_over_at_once,
        stale_runs_are_interrupted_and_later_successes_resolve_failures,
        failures_are_found_by_flow_status_run_and_id,
        secrets_are_scrubbed_before_they_are_stored,
        cursors_are_listed_and_deleted,
        runs_are_listed_newest_first_with_their_counts,
        two_stores_racing_for_a_lease_let_exactly_one_win,
        foreign_or_newer_state_is_refused,
    ],
    // Several runners opening one new database at once is a shared database's case: a SQLite
    // file has one runner (its lease), and its first open is not made for racing openers.
    postgres_only: [
        migrations_run_concurrently_end_at_one_version,
        tls_modes_do_what_libpq_promises,
        the_skew_between_this_clock_and_the_databases_is_measured,
    ],
);

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn manual(start: &str) -> Arc<ManualClock> {
    Arc::new(ManualClock::new(at(start)))
}

fn holder(id: &str, pid: u32, host: &str) -> Holder {
    Holder {
        id: id.into(),
        pid,
        host: host.into(),
        since: at("2026-01-01T00:00:00Z"),
    }
}

fn failed(key: &str, error: &str) -> FailedRecord {
    FailedRecord {
        key: key.into(),
        version: "1".into(),
        origin: format!("contact {key}"),
        action: Some(0),
        error: error.into(),
        record: Some(json!({"id": key})),
        sent: None,
    }
}

fn cursor(ts: i64) -> Cursor {
    Cursor {
        identity: "contact/new_record".into(),
        state: json!({"ts": ts}),
    }
}

fn pairs(keys: &[&str], version: &str) -> Vec<(String, String)> {
    keys.iter()
        .map(|k| (k.to_string(), version.to_string()))
        .collect()
}

fn written(hashes: &[(&str, &str)], target_id: Option<&str>) -> Written {
    Written {
        hashes: hashes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        target_id: target_id.map(str::to_string),
    }
}

fn strings(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

async fn a_commit_is_all_or_nothing_and_survives_reopening(place: Place) {
    let clock = manual("2026-01-01T00:00:00Z");
    let mark = UndoMark {
        action: 1,
        kind: "file".into(),
        mark: json!({"path": "out.jsonl", "len": 42}),
    };
    {
        let store = place.open_with(clock.clone()).await;
        let run = store
            .start_run("f", at("2026-01-01T00:00:00Z"))
            .await
            .unwrap();
        store
            .commit(
                "f",
                &Commit {
                    run_id: run,
                    delivered: vec![("1".into(), "100".into(), 100)],
                    failed: vec![FailedRecord {
                        sent: Some(json!({"email": "a@example.com", "zeta": 1, "alpha": 2})),
                        ..failed("2", "bad")
                    }],
                    cursor: Some(cursor(100)),
                    counts: Counts {
                        read: 2,
                        succeeded: 1,
                        failed: 1,
                        skipped: 0,
                        api_calls: 3,
                        filtered: 4,
                        unchanged: 5,
                    },
                    written: vec![
                        (
                            0,
                            "email:a@example.com".into(),
                            written(&[("city", "h1")], None),
                        ),
                        // A repeat in one page: the last wins.
                        (
                            0,
                            "email:a@example.com".into(),
                            written(&[("city", "h2")], Some("77")),
                        ),
                    ],
                    ..Commit::default()
                },
            )
            .await
            .unwrap();
        store.mark_undo("f", &mark).await.unwrap();
        store
            .ledger_pending("f", 0, &strings(&["5"]))
            .await
            .unwrap();

        // A page whose lease passed to another runner records none of its parts.
        let a = store
            .acquire_lease("state", &holder("a", 1, "elsewhere-a"), TTL)
            .await
            .unwrap()
            .unwrap();
        clock.advance(TTL + Duration::from_secs(1));
        let b = store
            .acquire_lease("state", &holder("b", 2, "elsewhere-b"), TTL)
            .await
            .unwrap()
            .unwrap();
        let everything = Commit {
            run_id: run,
            fence: Some(Fence {
                name: "state".into(),
                token: a.token,
            }),
            succeeded_keys: strings(&["2"]),
            delivered: vec![("3".into(), "1".into(), 300)],
            failed: vec![failed("4", "late")],
            ledger_done: vec![(0, "5".into(), Some("905".into()))],
            ledger_clear: vec![],
            clear_undo_marks: true,
            cursor: Some(cursor(200)),
            counts: Counts {
                read: 5,
                succeeded: 5,
                failed: 1,
                skipped: 1,
                api_calls: 9,
                filtered: 1,
                unchanged: 1,
            },
            written: vec![(
                0,
                "email:b@example.com".into(),
                written(&[("city", "x")], None),
            )],
        };
        let e = store.commit("f", &everything).await.unwrap_err();
        assert!(
            matches!(
                e,
                StateError::Fenced {
                    held: 1,
                    current: 2,
                    ..
                }
            ),
            "{e}"
        );
        assert!(b.token > a.token);
    }
    // Reopened: the first page is all there, the fenced one nowhere.
    let store = place.open().await;
    assert_eq!(store.cursor("f").await.unwrap(), Some(cursor(100)));
    let asked = vec![
        ("1".to_string(), "100".to_string()),
        ("1".to_string(), "200".to_string()),
        ("3".to_string(), "1".to_string()),
    ];
    assert_eq!(
        store.delivered("f", &asked).await.unwrap(),
        [("1".to_string(), "100".to_string())].into_iter().collect()
    );
    let runs = store.runs(Some("f"), 10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].counts,
        Counts {
            read: 2,
            succeeded: 1,
            failed: 1,
            skipped: 0,
            api_calls: 3,
            filtered: 4,
            unchanged: 5,
        }
    );
    // What was written is there (the last of repeats); the fenced page's is not.
    let keys = strings(&["email:a@example.com", "email:b@example.com"]);
    let found = store.written("f", 0, &keys).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found["email:a@example.com"],
        written(&[("city", "h2")], Some("77"))
    );
    assert!(store.written("f", 1, &keys).await.unwrap().is_empty());
    assert_eq!(store.forget_written("f").await.unwrap(), 1);
    assert!(store.written("f", 0, &keys).await.unwrap().is_empty());
    assert_eq!(runs[0].status, RunStatus::Running);
    assert_eq!(runs[0].started_at, "2026-01-01T00:00:00.000Z");
    let failures = store
        .failures(Some("f"), FailureStatus::Failed, 10)
        .await
        .unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].failure.error, "bad");
    assert_eq!(failures[0].failure.origin, "contact 2");
    assert_eq!(failures[0].failure.action, Some(0));
    assert_eq!(failures[0].failure.record, Some(json!({"id": "2"})));
    assert_eq!(
        serde_json::to_string(failures[0].failure.sent.as_ref().unwrap()).unwrap(),
        r#"{"email":"a@example.com","zeta":1,"alpha":2}"#,
        "the payload keeps its key order"
    );
    assert_eq!(failures[0].failed_at, "2026-01-01T00:00:00.000Z");
    assert_eq!(failures[0].run_id, runs[0].id);
    assert_eq!(store.undo_marks("f").await.unwrap(), vec![mark]);
    let ledger = store.ledger("f", 0, &strings(&["5"])).await.unwrap();
    assert_eq!(ledger["5"].state, LedgerState::Pending);
    store
        .set_failure_status(&[failures[0].id], FailureStatus::Replayed)
        .await
        .unwrap();
    assert!(
        store
            .failures(Some("f"), FailureStatus::Failed, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.prune_delivered("f", 150).await.unwrap(), 1);
    assert!(store.delivered("f", &asked).await.unwrap().is_empty());
}

async fn ledger_and_undo_marks(place: Place) {
    let clock = manual("2026-02-01T10:00:00Z");
    let store = place.open_with(clock.clone()).await;
    store
        .ledger_pending("f", 0, &strings(&["a", "b", "c", "c"]))
        .await
        .unwrap();
    let mark = |action: usize, len: i64| UndoMark {
        action,
        kind: "file".into(),
        mark: json!({"path": "out.jsonl", "len": len}),
    };
    store.mark_undo("f", &mark(2, 7)).await.unwrap();
    store.mark_undo("f", &mark(1, 42)).await.unwrap();
    store.mark_undo("f", &mark(2, 8)).await.unwrap();
    store.mark_undo("g", &mark(0, 1)).await.unwrap();
    assert_eq!(
        store.undo_marks("f").await.unwrap(),
        vec![mark(1, 42), mark(2, 8)],
        "by action, the latest mark of each"
    );
    let pending = store
        .ledger("f", 0, &strings(&["a", "b", "c", "z"]))
        .await
        .unwrap();
    assert_eq!(pending.len(), 3);
    assert_eq!(
        pending["c"],
        LedgerEntry {
            state: LedgerState::Pending,
            target_id: None,
            at: Some(at("2026-02-01T10:00:00Z")),
        }
    );
    clock.advance(Duration::from_secs(60));
    let run = store.start_run("f", clock.now()).await.unwrap();
    store
        .commit(
            "f",
            &Commit {
                run_id: run,
                ledger_done: vec![
                    (0, "a".into(), Some("900".into())),
                    (0, "a".into(), Some("901".into())),
                    (0, "c".into(), None),
                ],
                ledger_clear: vec![(0, "b".into()), (3, "a".into())],
                clear_undo_marks: true,
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    let l = store
        .ledger("f", 0, &strings(&["a", "b", "c"]))
        .await
        .unwrap();
    assert_eq!(
        l["a"],
        LedgerEntry {
            state: LedgerState::Done,
            target_id: Some("901".into()),
            at: Some(at("2026-02-01T10:01:00Z")),
        },
        "the last of repeated entries wins"
    );
    assert_eq!(l["c"].state, LedgerState::Done);
    assert!(!l.contains_key("b"));
    assert!(store.undo_marks("f").await.unwrap().is_empty());
    assert_eq!(store.undo_marks("g").await.unwrap(), vec![mark(0, 1)]);
    // Announced again (a retry), it is pending once more and keeps the id it got.
    clock.advance(Duration::from_secs(60));
    store
        .ledger_pending("f", 0, &strings(&["a"]))
        .await
        .unwrap();
    assert_eq!(
        store.ledger("f", 0, &strings(&["a"])).await.unwrap()["a"],
        LedgerEntry {
            state: LedgerState::Pending,
            target_id: Some("901".into()),
            at: Some(at("2026-02-01T10:02:00Z")),
        }
    );
    // Other actions and flows have ledgers of their own.
    assert!(
        store
            .ledger("f", 1, &strings(&["a"]))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .ledger("g", 0, &strings(&["a"]))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.ledger("f", 0, &[]).await.unwrap().is_empty());
    store.ledger_pending("f", 0, &[]).await.unwrap();
}

async fn lookups_take_a_whole_page_at_once(place: Place) {
    let store = place.open().await;
    let run = store.start_run("f", Utc::now()).await.unwrap();
    let delivered: Vec<(String, String, i64)> = (0..500)
        .map(|i| (format!("k{i}"), "v".to_string(), i))
        .collect();
    store
        .commit(
            "f",
            &Commit {
                run_id: run,
                delivered: delivered.clone(),
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    // Recorded again (a replayed page): nothing doubles, nothing fails.
    store
        .commit(
            "f",
            &Commit {
                run_id: run,
                delivered,
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    let asked: Vec<(String, String)> = (250..750)
        .map(|i| (format!("k{i}"), "v".to_string()))
        .collect();
    let found = store.delivered("f", &asked).await.unwrap();
    assert_eq!(found.len(), 250);
    assert!(found.contains(&("k499".to_string(), "v".to_string())));
    assert!(!found.contains(&("k500".to_string(), "v".to_string())));
    assert!(store.delivered("other", &asked).await.unwrap().is_empty());
    assert!(
        store
            .delivered("f", &pairs(&["k1"], "w"))
            .await
            .unwrap()
            .is_empty(),
        "another version is not delivered"
    );
    assert!(store.delivered("f", &[]).await.unwrap().is_empty());

    let keys: Vec<String> = (0..500).map(|i| format!("k{i}")).collect();
    store.ledger_pending("f", 2, &keys).await.unwrap();
    let asked: Vec<String> = (250..750).map(|i| format!("k{i}")).collect();
    let ledger = store.ledger("f", 2, &asked).await.unwrap();
    assert_eq!(ledger.len(), 250);
    assert!(ledger.values().all(|e| e.state == LedgerState::Pending));
    assert_eq!(store.prune_delivered("f", 100).await.unwrap(), 100);
    assert_eq!(
        store
            .delivered("f", &asked_pairs(0..500))
            .await
            .unwrap()
            .len(),
        400
    );
}

fn asked_pairs(range: std::ops::Range<i32>) -> Vec<(String, String)> {
    range.map(|i| (format!("k{i}"), "v".to_string())).collect()
}

async fn one_holder_per_lease_with_growing_fencing_tokens(place: Place) {
    let clock = manual("2026-01-01T00:00:00Z");
    let store = place.open_with(clock.clone()).await;
    // Other hosts: liveness cannot be checked, so only expiry frees the lease.
    let a = holder("a", 1, "elsewhere-a");
    let b = holder("b", 2, "elsewhere-b");
    let first = store
        .acquire_lease("runner", &a, TTL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.token, 1);
    assert_eq!(first.expires_at, at("2026-01-01T00:00:15Z"));
    let held = store
        .acquire_lease("runner", &b, TTL)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(held.holder, a);
    assert_eq!(held.token, 1);
    // The holder may take it again (a restart of the same runner keeps its token).
    assert_eq!(
        store
            .acquire_lease("runner", &a, TTL)
            .await
            .unwrap()
            .unwrap()
            .token,
        1
    );
    // Another lease is another matter.
    assert_eq!(
        store
            .acquire_lease("group:contacts", &b, TTL)
            .await
            .unwrap()
            .unwrap()
            .token,
        1
    );
    // Renewed in time, it stays; lapsed, another takes it with a larger token.
    clock.advance(Duration::from_secs(10));
    let renewed = store.renew_lease(&first, TTL).await.unwrap();
    assert_eq!(renewed.expires_at, at("2026-01-01T00:00:25Z"));
    clock.advance(Duration::from_secs(10));
    assert!(
        store
            .acquire_lease("runner", &b, TTL)
            .await
            .unwrap()
            .is_err()
    );
    clock.advance(Duration::from_secs(6));
    let second = store
        .acquire_lease("runner", &b, TTL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.token, 2);
    // The old holder is fenced off: it can neither renew nor commit.
    assert!(matches!(
        store.renew_lease(&renewed, TTL).await,
        Err(StateError::Fenced {
            held: 1,
            current: 2,
            ..
        })
    ));
    let run = store.start_run("f", clock.now()).await.unwrap();
    let late = Commit {
        run_id: run,
        fence: Some(Fence {
            name: "runner".into(),
            token: 1,
        }),
        cursor: Some(cursor(1)),
        delivered: vec![("k".into(), "v".into(), 1)],
        counts: Counts {
            read: 1,
            ..Counts::default()
        },
        ..Commit::default()
    };
    assert!(matches!(
        store.commit("f", &late).await,
        Err(StateError::Fenced {
            held: 1,
            current: 2,
            ..
        })
    ));
    assert!(
        store.cursor("f").await.unwrap().is_none(),
        "nothing recorded"
    );
    assert!(
        store
            .delivered("f", &pairs(&["k"], "v"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.run(run).await.unwrap().unwrap().counts,
        Counts::default()
    );
    let current = Commit {
        fence: Some(Fence {
            name: "runner".into(),
            token: 2,
        }),
        ..late
    };
    store.commit("f", &current).await.unwrap();
    assert!(store.cursor("f").await.unwrap().is_some());
    // A page under a lease nobody ever took is not fenced.
    store
        .commit(
            "g",
            &Commit {
                run_id: run,
                fence: Some(Fence {
                    name: "never-taken".into(),
                    token: 7,
                }),
                cursor: Some(cursor(2)),
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    // Every lease is listed.
    let leases = store.leases().await.unwrap();
    let names: Vec<&str> = leases.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["group:contacts", "runner"]);
    assert_eq!(leases[1].holder, b);
    assert_eq!(leases[1].token, 2);
    // Released, it is free at once, and its row stays (tokens only grow).
    store.release_lease(&renewed).await.unwrap(); // not the holder: a no-op
    assert!(
        store
            .acquire_lease("runner", &a, TTL)
            .await
            .unwrap()
            .is_err()
    );
    store.release_lease(&second).await.unwrap();
    let lapsed = store.leases().await.unwrap();
    assert_eq!(lapsed.len(), 2);
    assert!(lapsed[1].expires_at <= clock.now());
    let third = store
        .acquire_lease("runner", &a, TTL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(third.token, 3);
    assert!(matches!(
        store.renew_lease(&second, TTL).await,
        Err(StateError::Fenced {
            held: 2,
            current: 3,
            ..
        })
    ));
}

async fn a_crashed_holder_on_this_host_is_taken_over_at_once(place: Place) {
    let store = place.open().await;
    let me = Holder::this_process(Utc::now());
    // A pid that cannot be running (above the kernel's pid_max).
    let dead = holder("dead", 4_194_305, &me.host);
    let ttl = Duration::from_secs(600);
    store
        .acquire_lease("runner", &dead, ttl)
        .await
        .unwrap()
        .unwrap();
    let taken = store.acquire_lease("runner", &me, ttl).await.unwrap();
    assert_eq!(taken.unwrap().token, 2);
    // A live process on this host keeps its lease.
    let other = Holder {
        id: "another runner of this process".into(),
        ..me.clone()
    };
    let held = store
        .acquire_lease("runner", &other, ttl)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(held.holder.id, me.id);
}

async fn stale_runs_are_interrupted_and_later_successes_resolve_failures(place: Place) {
    let store = place.open().await;
    let run = store
        .start_run("f", at("2026-03-01T00:00:00Z"))
        .await
        .unwrap();
    let other = store
        .start_run("g", at("2026-03-01T00:00:00Z"))
        .await
        .unwrap();
    store
        .commit(
            "f",
            &Commit {
                run_id: run,
                failed: vec![failed("k1", "refused"), failed("k2", "refused")],
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    store
        .commit(
            "g",
            &Commit {
                run_id: other,
                failed: vec![failed("k1", "refused")],
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    let only_g = ["g".to_string()];
    assert_eq!(
        store
            .interrupt_runs(Some(&only_g), at("2026-03-01T00:05:00Z"), "gone")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.run(run).await.unwrap().unwrap().status,
        RunStatus::Running
    );
    assert_eq!(
        store
            .interrupt_runs(None, at("2026-03-01T00:06:00Z"), "gone")
            .await
            .unwrap(),
        1
    );
    let interrupted = store.run(run).await.unwrap().unwrap();
    assert_eq!(interrupted.status, RunStatus::Interrupted);
    assert_eq!(
        interrupted.finished_at.as_deref(),
        Some("2026-03-01T00:06:00.000Z")
    );
    assert_eq!(interrupted.error.as_deref(), Some("gone"));
    assert_eq!(
        store
            .interrupt_runs(None, Utc::now(), "gone")
            .await
            .unwrap(),
        0,
        "finished runs stay as they are"
    );
    // k2 was replayed; a success of k1 and k2 resolves both, in this flow only.
    let k2 = store
        .find_failures(&FailureFilter {
            flow: Some("f".into()),
            limit: 10,
            ..FailureFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.failure.key == "k2")
        .unwrap();
    store
        .set_failure_status(&[k2.id], FailureStatus::Replayed)
        .await
        .unwrap();
    let next = store.start_run("f", Utc::now()).await.unwrap();
    store
        .commit(
            "f",
            &Commit {
                run_id: next,
                succeeded_keys: strings(&["k1", "k2"]),
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    assert!(
        store
            .failures(Some("f"), FailureStatus::Failed, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .failures(Some("f"), FailureStatus::Resolved, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store
            .failures(Some("g"), FailureStatus::Failed, 10)
            .await
            .unwrap()
            .len(),
        1,
        "another flow's failure of the same key stays"
    );
    // A discarded failure is an operator's decision: a later success leaves it.
    let g = store
        .failures(Some("g"), FailureStatus::Failed, 10)
        .await
        .unwrap();
    store
        .set_failure_status(&[g[0].id], FailureStatus::Discarded)
        .await
        .unwrap();
    store
        .commit(
            "g",
            &Commit {
                run_id: other,
                succeeded_keys: strings(&["k1"]),
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .failures(Some("g"), FailureStatus::Discarded, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn failures_are_found_by_flow_status_run_and_id(place: Place) {
    let store = place.open().await;
    let r1 = store.start_run("f", Utc::now()).await.unwrap();
    let r2 = store.start_run("g", Utc::now()).await.unwrap();
    store
        .commit(
            "f",
            &Commit {
                run_id: r1,
                failed: vec![
                    failed("a", "e1"),
                    failed("b", "e2"),
                    FailedRecord {
                        action: None,
                        record: None,
                        ..failed("c", "mapping")
                    },
                ],
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    store
        .commit(
            "g",
            &Commit {
                run_id: r2,
                failed: vec![failed("d", "e4")],
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    let find = |filter: FailureFilter| {
        let store = store.clone();
        async move {
            store
                .find_failures(&filter)
                .await
                .unwrap()
                .into_iter()
                .map(|f| f.failure.key)
                .collect::<Vec<_>>()
        }
    };
    let all = FailureFilter {
        limit: usize::MAX,
        ..FailureFilter::default()
    };
    assert_eq!(
        find(all.clone()).await,
        ["a", "b", "c", "d"],
        "oldest first"
    );
    assert_eq!(
        find(FailureFilter {
            flow: Some("f".into()),
            ..all.clone()
        })
        .await,
        ["a", "b", "c"]
    );
    assert_eq!(
        find(FailureFilter {
            run_id: Some(r2),
            ..all.clone()
        })
        .await,
        ["d"]
    );
    assert_eq!(
        find(FailureFilter {
            limit: 2,
            ..all.clone()
        })
        .await,
        ["a", "b"]
    );
    assert!(
        find(FailureFilter {
            limit: 0,
            ..all.clone()
        })
        .await
        .is_empty()
    );
    let stored = store.find_failures(&all).await.unwrap();
    let c = &stored[2];
    assert_eq!((c.failure.action, &c.failure.record), (None, &None));
    assert_eq!(c.flow, "f");
    assert_eq!(c.status, FailureStatus::Failed);
    let ids = vec![stored[1].id, stored[3].id];
    assert_eq!(
        find(FailureFilter {
            ids: Some(ids.clone()),
            ..all.clone()
        })
        .await,
        ["b", "d"]
    );
    assert!(
        find(FailureFilter {
            ids: Some(vec![]),
            ..all.clone()
        })
        .await
        .is_empty()
    );
    store
        .set_failure_status(&ids, FailureStatus::Discarded)
        .await
        .unwrap();
    assert_eq!(
        find(FailureFilter {
            status: Some(FailureStatus::Discarded),
            ..all.clone()
        })
        .await,
        ["b", "d"]
    );
    assert_eq!(
        find(FailureFilter {
            flow: Some("f".into()),
            status: Some(FailureStatus::Failed),
            run_id: Some(r1),
            ids: Some(vec![stored[0].id, stored[1].id]),
            limit: 10,
        })
        .await,
        ["a"]
    );
    let listed = store
        .failures(None, FailureStatus::Failed, 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
}

async fn secrets_are_scrubbed_before_they_are_stored(place: Place) {
    let secret = "conformance-secret-4711-do-not-store";
    rivulet_http::secrets::register(secret);
    let store = place.open().await;
    let run = store.start_run("f", Utc::now()).await.unwrap();
    store
        .commit(
            "f",
            &Commit {
                run_id: run,
                failed: vec![FailedRecord {
                    record: Some(json!({"token": secret})),
                    sent: Some(json!({"auth": format!("Bearer {secret}")})),
                    ..failed("a", &format!("401: bad token {secret}"))
                }],
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    store
        .finish_run(
            run,
            Utc::now(),
            RunStatus::Error,
            Some(&format!("refused {secret}")),
        )
        .await
        .unwrap();
    let other = store.start_run("f", Utc::now()).await.unwrap();
    store
        .interrupt_runs(None, Utc::now(), &format!("stopped with {secret}"))
        .await
        .unwrap();
    let f = &store
        .failures(Some("f"), FailureStatus::Failed, 10)
        .await
        .unwrap()[0];
    let text = format!(
        "{} {} {}",
        f.failure.error,
        f.failure.record.as_ref().unwrap(),
        f.failure.sent.as_ref().unwrap()
    );
    assert!(!text.contains(secret), "{text}");
    assert!(f.failure.error.contains("[REDACTED]"), "{text}");
    for id in [run, other] {
        let error = store.run(id).await.unwrap().unwrap().error.unwrap();
        assert!(!error.contains(secret), "{error}");
        assert!(error.contains("[REDACTED]"), "{error}");
    }
}

async fn cursors_are_listed_and_deleted(place: Place) {
    let clock = manual("2026-04-01T12:00:00Z");
    let store = place.open_with(clock.clone()).await;
    assert!(store.cursor("f").await.unwrap().is_none());
    assert!(store.cursors(None).await.unwrap().is_empty());
    store.set_cursor("g", &cursor(1)).await.unwrap();
    clock.advance(Duration::from_millis(1500));
    store.set_cursor("f", &cursor(2)).await.unwrap();
    let listed = store.cursors(None).await.unwrap();
    let flows: Vec<&str> = listed.iter().map(|c| c.flow.as_str()).collect();
    assert_eq!(flows, ["f", "g"]);
    assert_eq!(listed[0].cursor, cursor(2));
    assert_eq!(listed[0].updated_at, "2026-04-01T12:00:01.500Z");
    assert_eq!(listed[1].updated_at, "2026-04-01T12:00:00.000Z");
    let only = store.cursors(Some("g")).await.unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].cursor, cursor(1));
    // Replaced outright.
    let other = Cursor {
        identity: "company/updated".into(),
        state: json!({"after": "x", "page": [1, 2]}),
    };
    store.set_cursor("g", &other).await.unwrap();
    assert_eq!(store.cursor("g").await.unwrap(), Some(other));
    store.delete_cursor("g").await.unwrap();
    store.delete_cursor("never").await.unwrap();
    assert!(store.cursor("g").await.unwrap().is_none());
    assert_eq!(store.cursors(None).await.unwrap().len(), 1);
    assert!(store.cursors(Some("g")).await.unwrap().is_empty());
}

async fn runs_are_listed_newest_first_with_their_counts(place: Place) {
    let store = place.open().await;
    let first = store
        .start_run("f", at("2026-05-01T00:00:00Z"))
        .await
        .unwrap();
    let second = store
        .start_run("g", at("2026-05-01T00:01:00Z"))
        .await
        .unwrap();
    let third = store
        .start_run("f", at("2026-05-01T00:02:00Z"))
        .await
        .unwrap();
    assert!(first < second && second < third);
    for calls in [4, 5] {
        store
            .commit(
                "f",
                &Commit {
                    run_id: first,
                    counts: Counts {
                        read: 10,
                        succeeded: 8,
                        failed: 1,
                        skipped: 1,
                        api_calls: calls,
                        ..Counts::default()
                    },
                    ..Commit::default()
                },
            )
            .await
            .unwrap();
    }
    store
        .finish_run(
            first,
            at("2026-05-01T00:03:00Z"),
            RunStatus::Failed,
            Some("2 records failed"),
        )
        .await
        .unwrap();
    store
        .finish_run(second, at("2026-05-01T00:04:00Z"), RunStatus::Waiting, None)
        .await
        .unwrap();
    let ids = |runs: Vec<state::RunRow>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.runs(Some("f"), 10).await.unwrap()),
        [third, first]
    );
    assert_eq!(ids(store.runs(None, 2).await.unwrap()), [third, second]);
    assert_eq!(
        ids(store.runs(None, usize::MAX).await.unwrap()),
        [third, second, first]
    );
    assert!(store.runs(Some("nope"), 10).await.unwrap().is_empty());
    let run = store.run(first).await.unwrap().unwrap();
    assert_eq!(run.flow, "f");
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.started_at, "2026-05-01T00:00:00.000Z");
    assert_eq!(run.finished_at.as_deref(), Some("2026-05-01T00:03:00.000Z"));
    assert_eq!(run.error.as_deref(), Some("2 records failed"));
    assert_eq!(
        run.counts,
        Counts {
            read: 20,
            succeeded: 16,
            failed: 2,
            skipped: 2,
            api_calls: 9,
            ..Counts::default()
        }
    );
    let waiting = store.run(second).await.unwrap().unwrap();
    assert_eq!(waiting.status, RunStatus::Waiting);
    assert_eq!(waiting.error, None);
    assert!(store.run(third + 1000).await.unwrap().is_none());
}

async fn two_stores_racing_for_a_lease_let_exactly_one_win(place: Place) {
    let clock = manual("2026-06-01T00:00:00Z");
    let stores = [
        place.open_with(clock.clone()).await,
        place.open_with(clock.clone()).await,
    ];
    // Holders differ from round to round: a holder taking its own lease again keeps its token.
    let race = |name: String, round: usize| {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = stores[i % 2].clone();
                let who = holder(&format!("r{round}-h{i}"), 1, &format!("host-{i}"));
                let name = name.clone();
                tokio::spawn(async move { store.acquire_lease(&name, &who, TTL).await.unwrap() })
            })
            .collect();
        async move {
            let mut won = Vec::new();
            let mut lost = Vec::new();
            for task in tasks {
                match task.await.unwrap() {
                    Ok(lease) => won.push(lease),
                    Err(held) => lost.push(held),
                }
            }
            (won, lost)
        }
    };
    for round in 0..4 {
        let (won, lost) = race(format!("lease-{round}"), round).await;
        assert_eq!(won.len(), 1, "round {round}: {won:?}");
        assert_eq!(won[0].token, 1);
        assert!(
            lost.iter()
                .all(|l| l.holder == won[0].holder && l.token == 1)
        );
    }
    // Lapsed, it is raced for again: one winner, with the next token.
    clock.advance(TTL + Duration::from_secs(1));
    let (won, lost) = race("lease-0".into(), 4).await;
    assert_eq!(won.len(), 1, "{won:?}");
    assert_eq!(won[0].token, 2);
    assert_eq!(lost.len(), 7);
    let listed = stores[1].leases().await.unwrap();
    assert_eq!(listed.len(), 4);
    assert_eq!(listed[0].holder, won[0].holder);
}

async fn migrations_run_concurrently_end_at_one_version(place: Place) {
    let place = Arc::new(place);
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let place = place.clone();
            tokio::spawn(async move { place.try_open().await.map(|_| ()) })
        })
        .collect();
    for open in opens {
        open.await.unwrap().unwrap();
    }
    let versions = place.versions().await;
    assert_eq!(versions.len(), 1, "{versions:?}");
    let store = place.open().await;
    store.set_cursor("f", &cursor(1)).await.unwrap();
    assert_eq!(place.versions().await, versions);
}

/// `sslmode` and `sslrootcert` as `psql` reads them. The encryption is checked on the server
/// (`pg_stat_ssl` of the store's own connections, found by their application name); the
/// certificate checks against the server's own certificate, read from the file it names
/// (Debian's PostgreSQL has TLS on with a self-signed certificate issued for `localhost`). A
/// server without TLS, or whose certificate file this machine cannot read, runs what it can.
async fn tls_modes_do_what_libpq_promises(place: Place) {
    let admin = pg_connect(&database_url().unwrap()).await;
    let setting = |name: &'static str| {
        let admin = &admin;
        async move {
            let row = admin.query_one(&format!("SHOW {name}"), &[]).await.unwrap();
            row.get::<_, String>(0)
        }
    };
    let with = |extra: &str| format!("{}&{extra}", place.location);
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // Opens the store at `url` (named so its connections can be found) and says whether every
    // one of them is encrypted, as the server sees it.
    let encrypted = |url: String| {
        let admin = &admin;
        async move {
            let name = format!(
                "rivulet_tls_{}_{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let store = state::open(
                &format!("{url}&application_name={name}"),
                rivulet_http::clock::system(),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", shown(&url)));
            store.set_cursor("f", &cursor(1)).await.unwrap();
            let row = admin
                .query_one(
                    "SELECT count(*), coalesce(bool_and(s.ssl), false) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
                    &[&name],
                )
                .await
                .unwrap();
            let (connections, all): (i64, bool) = (row.get(0), row.get(1));
            assert!(connections >= 1, "the store's connections are there");
            drop(store);
            all
        }
    };
    let refused = |url: String| async move {
        state::open(&url, rivulet_http::clock::system())
            .await
            .map(|_| ())
            .expect_err("refused")
            .to_string()
    };

    assert!(!encrypted(with("sslmode=disable")).await, "disable: plain");
    let e = refused(with("sslmode=verify")).await;
    assert!(
        e.contains("disable, prefer, require, verify-ca, verify-full"),
        "{e}"
    );
    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(junk.path(), "not a certificate").unwrap();
    let e = refused(with(&format!(
        "sslmode=verify-ca&sslrootcert={}",
        junk.path().display()
    )))
    .await;
    assert!(e.contains("holds no certificate"), "{e}");

    if setting("ssl").await != "on" {
        eprintln!("state_conformance: the server has TLS off; TLS connections not tested");
        return;
    }
    assert!(
        encrypted(with("sslmode=prefer")).await,
        "prefer: TLS when offered"
    );
    assert!(encrypted(with("sslmode=require")).await, "require");
    assert!(
        encrypted(place.location.clone()).await,
        "prefer is the default"
    );
    // Checked against the system's authorities: a self-signed certificate is refused as
    // unknown, unless the system trusts it (Debian's folder of certificates holds the
    // snakeoil one), and then by address as issued for another name.
    let e = refused(with("sslmode=verify-full")).await;
    assert!(
        e.contains("sslrootcert=PATH") || e.contains("not issued for the host"),
        "{e}"
    );

    let cert = std::path::PathBuf::from(setting("ssl_cert_file").await);
    if std::fs::read(&cert).is_err() {
        eprintln!(
            "state_conformance: the server's certificate {} is not readable here; sslrootcert not tested",
            cert.display()
        );
        return;
    }
    let root = format!("sslrootcert={}", cert.display());
    assert!(
        encrypted(with(&format!("sslmode=verify-ca&{root}"))).await,
        "verify-ca: the chain, whatever the host's name"
    );
    assert!(
        encrypted(with(&format!("sslmode=require&{root}"))).await,
        "require with a root: checked as verify-ca"
    );
    let location = &place.location;
    let by_name = location.replacen("@127.0.0.1:", "@localhost:", 1).replacen(
        "@127.0.0.1/",
        "@localhost/",
        1,
    );
    if by_name != *location {
        // The certificate is issued for `localhost`: by address, verify-full refuses it.
        let e = refused(with(&format!("sslmode=verify-full&{root}"))).await;
        assert!(e.contains("not issued for the host"), "{e}");
        assert!(
            encrypted(format!("{by_name}&sslmode=verify-full&{root}")).await,
            "verify-full by the certificate's name"
        );
    }
}

/// Leases lapse by the runners' clocks, so a store measures how far its host's is from the
/// database's when it connects (and warns past a second).
async fn the_skew_between_this_clock_and_the_databases_is_measured(place: Place) {
    let store = PostgresStore::connect(&place.location, rivulet_http::clock::system())
        .await
        .unwrap();
    let skew = store.clock_skew().expect("measured");
    assert!(
        skew.abs() < chrono::TimeDelta::seconds(1),
        "the same machine: {skew}"
    );
    let ahead = manual("2099-01-01T00:00:00Z");
    let store = PostgresStore::connect(&place.location, ahead)
        .await
        .unwrap();
    let skew = store.clock_skew().expect("measured");
    assert!(skew > chrono::TimeDelta::days(365 * 50), "{skew}");
}

async fn foreign_or_newer_state_is_refused(place: Place) {
    place.sql("CREATE TABLE invoices (id INTEGER)").await;
    let e = place.try_open().await.map(|_| ()).unwrap_err();
    assert!(matches!(e, StateError::Corrupt(_)), "{e:?}");
    assert!(e.to_string().contains("not Rivulet's state"), "{e}");
    place.sql("DROP TABLE invoices").await;
    let store = place.open().await;
    store.set_cursor("f", &cursor(1)).await.unwrap();
    drop(store);
    let version = place.versions().await[0];
    place
        .sql("UPDATE schema_version SET version = version + 1")
        .await;
    match place.try_open().await.map(|_| ()) {
        Err(StateError::TooNew { found, supported }) => {
            assert_eq!((found, supported), (version + 1, version));
        }
        other => panic!("a newer state was not refused: {other:?}"),
    }
}

#[tokio::test]
async fn other_schemes_are_not_state_stores() {
    let e = state::open("mysql://root@127.0.0.1/test", rivulet_http::clock::system())
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(e, StateError::Unsupported(_)), "{e:?}");
}

/// The password of a PostgreSQL URL appears in no error (no server is needed: nothing listens
/// on port 1, and a URL that cannot be read fails before connecting).
#[tokio::test]
async fn postgres_errors_never_show_the_password() {
    let password = "Pg-pa55word-in-a-url";
    let urls = [
        format!("postgres://rivulet:{password}@127.0.0.1:1/test?connect_timeout=5"),
        format!("postgresql://rivulet:{password}@127.0.0.1:1/test?no_such_option=1"),
        format!("postgres://rivulet:{password}@127.0.0.1:1/test?pool_size=1000"),
        format!("postgres://rivulet:{password}@127.0.0.1:1/test?sslmode=require"),
        format!(
            "postgres://rivulet:{}@127.0.0.1:1/test",
            "p%40ss-w%3Ard-longer"
        ),
    ];
    for url in &urls {
        let e = state::open(url, rivulet_http::clock::system())
            .await
            .map(|_| ())
            .unwrap_err();
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains(password), "{text}");
            assert!(!text.contains("p%40ss-w%3Ard-longer"), "{text}");
            assert!(!text.contains("p@ss-w:rd-longer"), "{text}");
        }
    }
    let e = PostgresStore::connect(&urls[0], rivulet_http::clock::system())
        .await
        .unwrap_err();
    assert!(matches!(e, StateError::Backend(_)), "{e:?}");
    assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
    // With a server: its own errors (an unknown database) carry no password either.
    if let Some(url) = database_url() {
        let with_password = url.replacen("://", &format!("://rivulet_nobody:{password}@"), 1);
        let with_password = match with_password.split_once('@') {
            // The URL had a user already: keep ours and drop theirs.
            Some((ours, rest)) if rest.contains('@') => {
                format!("{ours}@{}", rest.split_once('@').unwrap().1)
            }
            _ => with_password,
        };
        let base = with_password.split('?').next().unwrap();
        let (server, _) = base.rsplit_once('/').unwrap();
        let e = state::open(
            &format!("{server}/rivulet_no_such_database"),
            rivulet_http::clock::system(),
        )
        .await
        .map(|_| ())
        .unwrap_err();
        assert!(!e.to_string().contains(password), "{e}");
    }
}
