//! Hostile input and hostile servers (issue 11), end to end through the binary: each class of
//! attack ends in a clear error or a survived fault — never a panic, an abort, a hang or a
//! leaked secret, and nothing is lost on the way.
//!
//! Every process runs under a deadline ([`run`] kills it and fails the test if it is still
//! going); where memory matters it runs under `prlimit --as`. Hostile servers are a few lines
//! of tokio in the test: they answer raw bytes, or never answer.

use rivulet_runtime::state::{Cursor, FailureStatus, RunStatus, SqliteStore, StateStore};
use rivulet_sandbox::{OAuthConfig, Sandbox, SandboxConfig, SeedSpec};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest any one process may take before the test calls it a hang.
const LIMIT: Duration = Duration::from_secs(45);

/// Address space for runs under `prlimit`: a few times what a run needs (about 100 MB), far
/// less than what an unbounded record or template would take.
const MEMORY: u64 = 384 << 20;

// ---------------------------------------------------------------------------------------------
// Processes

/// How a process ended.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// Everything it printed.
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Ended by itself with `code`, without a panic or a crash.
    #[track_caller]
    fn exits(&self, code: i32) -> &Ran {
        assert_eq!(self.code, Some(code), "exit code\n{}", self.all());
        for crash in [
            "panicked",
            "stack overflow",
            "memory allocation of",
            "RUST_BACKTRACE",
        ] {
            assert!(!self.all().contains(crash), "{crash}:\n{}", self.all());
        }
        self
    }

    /// Printed `text` (stdout or stderr).
    #[track_caller]
    fn says(&self, text: &str) -> &Ran {
        assert!(self.all().contains(text), "no {text:?} in:\n{}", self.all());
        self
    }
}

/// The binary with a clean environment, run in `dir`.
fn rivulet(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rivulet"));
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env("RIVULET_LOG", "info")
        .env_remove("HUBSPOT_TOKEN")
        .env_remove("RIVULET_STATE_URL")
        .env_remove("RUST_BACKTRACE");
    cmd
}

/// `cmd` under `prlimit --as=bytes` (the limit is inherited by exec, so the binary runs in it).
fn limited(bytes: u64, cmd: &Command) -> Command {
    let mut out = Command::new("/usr/bin/prlimit");
    out.arg(format!("--as={bytes}"))
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        out.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => out.env(k, v),
            None => out.env_remove(k),
        };
    }
    out
}

/// Runs `cmd` to its end, at most `limit`: one still running then is killed (it is our own
/// child) and the test fails — no test waits forever.
fn run(cmd: &mut Command, limit: Duration) -> Ran {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let (out, hung) = match rx.recv_timeout(limit) {
        Ok(out) => (out, false),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            (rx.recv().expect("the killed process is reaped"), true)
        }
    };
    let out = out.expect("the process ends");
    let ran = Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!hung, "still running after {limit:?}:\n{}", ran.all());
    ran
}

// ---------------------------------------------------------------------------------------------
// A scratch folder of flows

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.path().join(rel)
    }

    fn write(&self, rel: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn state(&self) -> PathBuf {
        self.path("state.db")
    }

    /// `rivulet ARGS… --state STATE` in this folder.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = rivulet(self.0.path());
        cmd.args(args).arg("--state").arg(self.state());
        cmd
    }

    /// `rivulet run flows --once ARGS…`.
    fn once(&self, args: &[&str]) -> Command {
        let mut all = vec!["run", "flows", "--once"];
        all.extend_from_slice(args);
        self.cmd(&all)
    }

    /// The JSON lines of a file.
    fn lines(&self, rel: &str) -> Vec<Value> {
        std::fs::read_to_string(self.path(rel))
            .map(|t| {
                t.lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.state()).await.unwrap()
    }
}

/// A scheduled flow reading `source` (a file in `flows/`) into `actions`.
fn file_flow(name: &str, source: &str, mapping: &str, actions: &str) -> String {
    format!(
        "name: {name}\nschedule:\n  every: 1h\nsource:\n  file: {{ path: {source} }}\nmapping:\n{mapping}actions:\n{actions}"
    )
}

fn validate_json(dir: &Dir, path: &str) -> Value {
    let ran = run(
        rivulet(dir.0.path()).args(["validate", "--format", "json", path]),
        LIMIT,
    );
    assert!(matches!(ran.code, Some(0 | 1)), "{}", ran.all());
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {}", ran.all()))
}

/// The diagnostic of `file` with `code`, if any.
fn diagnostic<'a>(report: &'a Value, file: &str, code: &str) -> &'a Value {
    report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["file"].as_str().unwrap().ends_with(file) && d["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {file}: {report:#}"))
}

// ---------------------------------------------------------------------------------------------
// Hostile servers

/// A request as a hostile server saw it.
struct Seen {
    head: String,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// What a hostile server answers: raw response bytes, or `None` to hold the connection open
/// and never answer.
type Answer = dyn Fn(&Seen) -> Option<Vec<u8>> + Send + Sync;

struct Hostile {
    url: String,
    hits: Arc<AtomicUsize>,
}

/// A server on 127.0.0.1 answering every request with `answer` (one request per connection).
async fn hostile(answer: impl Fn(&Seen) -> Option<Vec<u8>> + Send + Sync + 'static) -> Hostile {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let answer: Arc<Answer> = Arc::new(answer);
    let counted = Arc::clone(&hits);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let answer = Arc::clone(&answer);
            let hits = Arc::clone(&counted);
            tokio::spawn(async move {
                let Some(seen) = read_request(&mut stream).await else {
                    return;
                };
                hits.fetch_add(1, Ordering::SeqCst);
                match answer(&seen) {
                    Some(bytes) => {
                        let _ = stream.write_all(&bytes).await;
                        let _ = stream.shutdown().await;
                    }
                    None => {
                        // Holds the connection, answers nothing.
                        let mut sink = [0u8; 1024];
                        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                    }
                }
            });
        }
    });
    Hostile { url, hits }
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut seen = Seen {
        head,
        body: buf[end..].to_vec(),
    };
    let length: usize = seen
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while seen.body.len() < length.min(1 << 20) {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        seen.body.extend_from_slice(&chunk[..n]);
    }
    Some(seen)
}

/// Raw HTTP/1.1 answer bytes.
fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} Hostile\r\nconnection: close\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ));
    out.into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Secrets in the forms servers echo them in

fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `text` percent-encoded, every byte but those in `keep` (and ASCII letters and digits).
fn percent(text: &str, keep: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || keep.as_bytes().contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `secret` as servers echo it: itself; percent-encoded (everything, or all but RFC 3986's
/// unreserved characters); form-encoded (as an OAuth token request carries it); base64
/// (standard and URL-safe, unpadded: a padded echo contains it).
fn forms(secret: &str) -> Vec<String> {
    vec![
        secret.to_string(),
        percent(secret, ""),
        percent(secret, "-._~"),
        percent(secret, "*-._ ").replace(' ', "+"),
        base64(secret.as_bytes(), STANDARD),
        base64(secret.as_bytes(), URL_SAFE),
    ]
}

/// Fails if any form of any secret is in `text` (`what` names where it was found).
#[track_caller]
fn assert_clean(what: &str, text: &[u8], secrets: &[String]) {
    for secret in secrets {
        for form in forms(secret) {
            assert!(
                !text.windows(form.len()).any(|w| w == form.as_bytes()),
                "{what} holds the secret as {form:?}:\n{}",
                String::from_utf8_lossy(text)
            );
        }
    }
}

/// Every byte of the state: the database and its journal files.
fn state_bytes(dir: &Dir) -> Vec<(String, Vec<u8>)> {
    ["", "-wal", "-shm", "-journal"]
        .iter()
        .filter_map(|suffix| {
            let path = PathBuf::from(format!("{}{suffix}", dir.state().display()));
            std::fs::read(&path)
                .ok()
                .map(|b| (path.display().to_string(), b))
        })
        .collect()
}

/// Runs the history commands and checks them, and the state's bytes, for every secret form.
fn assert_history_clean(dir: &Dir, secrets: &[String]) {
    let mut outputs = Vec::new();
    for args in [
        vec!["runs", "--format", "json"],
        vec!["runs"],
        vec!["failures", "--format", "json", "--status", "all"],
        vec!["failures", "--status", "all"],
        vec!["cursor", "show"],
    ] {
        let ran = run(&mut dir.cmd(&args), LIMIT);
        ran.exits(0);
        outputs.push((args.join(" "), ran.all()));
    }
    let runs = dir.cmd(&["runs", "--format", "json"]).output().unwrap();
    let runs: Value = serde_json::from_slice(&runs.stdout).unwrap();
    for r in runs["runs"].as_array().unwrap() {
        let id = r["id"].to_string();
        for format in ["human", "json"] {
            let ran = run(
                &mut dir.cmd(&["runs", "show", &id, "--format", format]),
                LIMIT,
            );
            ran.exits(0);
            outputs.push((format!("runs show {id}"), ran.all()));
        }
    }
    for (what, text) in outputs {
        assert_clean(&what, text.as_bytes(), secrets);
    }
    let files = state_bytes(dir);
    assert!(!files.is_empty());
    for (path, bytes) in files {
        assert_clean(&path, &bytes, secrets);
    }
}

// =============================================================================================
// 1. Panics and aborts

/// `{{trim (trim (… record.x …))}}`, `levels` deep: under the size limit, far over the depth
/// limit.
fn deep_template(levels: usize) -> String {
    format!(
        "{{{{{}trim record.x{}}}}}",
        "trim (".repeat(levels - 1),
        ")".repeat(levels - 1)
    )
}

#[test]
fn deeply_nested_subexpressions_are_a_located_error_in_validate_test_and_run() {
    let dir = Dir::new();
    dir.write(
        "flows/deep.yaml",
        file_flow(
            "deep",
            "in.jsonl",
            &format!("  x: \"{}\"\n", deep_template(2000)),
            "  - file: { path: out.jsonl }\n",
        ),
    );
    dir.write("flows/in.jsonl", "{\"x\": \"a\"}\n");
    dir.write(
        "flows/deep.test.yaml",
        "tests:\n  - name: maps x\n    input: {x: A}\n    expect: {x: a}\n",
    );
    let line = std::fs::read_to_string(dir.path("flows/deep.yaml"))
        .unwrap()
        .lines()
        .nth(6)
        .unwrap()
        .len() as u64;

    let report = validate_json(&dir, "flows");
    let d = diagnostic(&report, "deep.yaml", "invalid_mapping");
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("nests deeper than 64 levels"),
        "{d}"
    );
    assert_eq!(d["line"], 7, "{d}");
    let column = d["column"].as_u64().unwrap();
    assert!(column > 8 && column < line, "{d}: inside the template");

    run(rivulet(dir.0.path()).args(["validate", "flows"]), LIMIT)
        .exits(1)
        .says("nests deeper than 64 levels")
        .says(&format!("flows/deep.yaml:7:{column}"));
    run(
        &mut limited(MEMORY, rivulet(dir.0.path()).args(["test", "flows"])),
        LIMIT,
    )
    .exits(1)
    .says("the flow is invalid")
    .says(&format!("deep.yaml:7:{column}"));
    run(&mut limited(MEMORY, &dir.once(&[])), LIMIT)
        .exits(1)
        .says("nests deeper than 64 levels")
        .says("not starting: the flows are invalid");
    assert!(!dir.path("flows/out.jsonl").exists());
}

#[test]
fn huge_intervals_and_windows_are_validate_errors_with_their_bounds() {
    let dir = Dir::new();
    dir.write(
        "flows/connections.yaml",
        "connections:\n  hubspot:\n    hubspot:\n      token: ${HUBSPOT_TOKEN}\n      api_version: 2026-03\n",
    );
    let action = "  - file: { path: out.jsonl }\n";
    let mapping = "  x: \"{{record.x}}\"\n";
    dir.write(
        "flows/years.yaml",
        file_flow("years", "in.jsonl", mapping, action).replace("every: 1h", "every: 300000y"),
    );
    dir.write(
        "flows/days.yaml",
        file_flow("days", "in.jsonl", mapping, action)
            .replace("every: 1h", "every: 99999999999999d"),
    );
    dir.write(
        "flows/poll.yaml",
        format!(
            "name: poll\ntrigger:\n  hubspot:\n    connection: hubspot\n    on: new_record\n    object: contact\n    poll_every: 30d\n    overlap: 300d\n    settle: 200d\nmapping:\n{mapping}actions:\n{action}"
        ),
    );
    let report = validate_json(&dir, "flows");
    let years = diagnostic(&report, "years.yaml", "invalid_duration");
    assert_eq!(
        (years["line"].as_u64(), years["column"].as_u64()),
        (Some(3), Some(10))
    );
    assert!(
        years["message"]
            .as_str()
            .unwrap()
            .contains("`y` is not a unit here"),
        "{years}"
    );
    let days = diagnostic(&report, "days.yaml", "invalid_duration");
    assert!(
        days["message"]
            .as_str()
            .unwrap()
            .contains("longer than the longest duration allowed (366d)"),
        "{days}"
    );
    let bounds: Vec<(u64, String)> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| {
            d["file"].as_str().unwrap().ends_with("poll.yaml") && d["code"] == "out_of_range"
        })
        .map(|d| {
            (
                d["line"].as_u64().unwrap(),
                d["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        bounds,
        [
            (
                7,
                "`poll_every: 30d` is too long; the longest is 1d".to_string()
            ),
            (
                8,
                "`overlap: 300d` is too long; the longest is 1d".to_string()
            ),
            (
                9,
                "`settle: 200d` is too long; the longest is 1h".to_string()
            ),
        ],
        "{report:#}"
    );
    assert_eq!(report["valid"], false);
}

/// The `Retry-After` values a hostile server sends: past `u64` seconds, a float past any
/// duration, and a day and more.
const HOSTILE_RETRY_AFTER: [&str; 3] = ["18446744073709551615", "1e300", "99999"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_retry_after_on_an_http_connection_is_capped_and_once_gives_up() {
    let dir = Dir::new();
    let mut connections = String::from("connections:\n");
    for (i, after) in HOSTILE_RETRY_AFTER.iter().enumerate() {
        let server = hostile(move |_| {
            Some(response(
                429,
                &[("retry-after", after)],
                "{\"message\":\"slow down\"}",
            ))
        })
        .await;
        connections.push_str(&format!(
            "  api{i}:\n    http:\n      base_url: {}\n      timeout: 2s\n",
            server.url
        ));
        dir.write(
            &format!("flows/push{i}.yaml"),
            file_flow(
                &format!("push{i}"),
                "in.jsonl",
                "  x: \"{{record.x}}\"\n",
                &format!(
                    "  - http: {{ connection: api{i}, path: /hook, backoff: {{ initial: 200ms, max: 1s }} }}\n"
                ),
            ),
        );
    }
    dir.write("flows/connections.yaml", connections);
    dir.write("flows/in.jsonl", "{\"x\": \"a\"}\n");
    let ran = run(&mut dir.once(&["--once-wait", "1s"]), LIMIT);
    ran.exits(3)
        .says("server asked to wait longer than max_retry_after")
        .says("gave up waiting");
    for i in 0..3 {
        assert!(
            ran.stdout
                .lines()
                .any(|l| l.starts_with(&format!("push{i} "))),
            "{}",
            ran.stdout
        );
    }
    let store = dir.store().await;
    for i in 0..3 {
        let runs = store.runs(Some(&format!("push{i}")), 100).await.unwrap();
        assert!(!runs.is_empty());
        assert!(
            runs.iter().all(|r| r.status == RunStatus::Waiting),
            "{runs:?}"
        );
    }
    assert!(
        store
            .failures(None, FailureStatus::Failed, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_retry_after_on_the_hubspot_connection_is_capped_and_once_gives_up() {
    let dir = Dir::new();
    let mut connections = String::from("connections:\n");
    for (i, after) in HOSTILE_RETRY_AFTER.iter().enumerate() {
        let server = hostile(move |_| {
            Some(response(
                429,
                &[("retry-after", after)],
                "{\"status\":\"error\",\"message\":\"You have reached your ten_secondly_rolling limit.\",\"category\":\"RATE_LIMITS\",\"policyName\":\"TEN_SECONDLY_ROLLING\"}",
            ))
        })
        .await;
        connections.push_str(&format!(
            "  hs{i}:\n    hubspot:\n      token: ${{HUBSPOT_TOKEN}}\n      base_url: {}\n      api_version: 2026-03\n      timeout: 2s\n",
            server.url
        ));
        dir.write(
            &format!("flows/watch{i}.yaml"),
            format!(
                "name: watch{i}\ntrigger:\n  hubspot:\n    connection: hs{i}\n    on: new_record\n    object: contact\n    poll_every: 1s\n    start_from: beginning\nmapping:\n  id: \"{{{{record.id}}}}\"\nactions:\n  - file: {{ path: out{i}.jsonl }}\n"
            ),
        );
    }
    dir.write("flows/connections.yaml", connections);
    let ran = run(
        dir.once(&["--once-wait", "1s"])
            .env("HUBSPOT_TOKEN", "hostile-test-token"),
        LIMIT,
    );
    assert!(matches!(ran.code, Some(1 | 3)), "{}", ran.all());
    ran.exits(ran.code.unwrap())
        .says("server asked to wait longer than max_retry_after");
    for i in 0..3 {
        assert!(!dir.path(&format!("flows/out{i}.jsonl")).exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_that_multiplies_its_input_fails_that_record_alone() {
    let dir = Dir::new();
    // Each `replace` puts the 1 KiB field in place of each of its 1,024 `a`s: 1 KiB, 1 MiB,
    // 1 GiB, 1 TiB — unless the output is bounded.
    let template = "{{replace (replace (replace (replace record.s \"a\" record.s) \"a\" record.s) \"a\" record.s) \"a\" record.s}}";
    dir.write(
        "flows/grow.yaml",
        file_flow(
            "grow",
            "in.jsonl",
            &format!("  id: \"{{{{record.id}}}}\"\n  x: '{template}'\n"),
            "  - file: { path: out.jsonl }\n",
        ),
    );
    dir.write(
        "flows/in.jsonl",
        format!(
            "{}\n{}\n",
            json!({"id": "1", "s": "a".repeat(1024)}),
            json!({"id": "2", "s": "b"})
        ),
    );
    run(&mut limited(MEMORY, &dir.once(&[])), LIMIT)
        .exits(1)
        .says("record failed")
        .says("(the limit of a field's value)");
    assert_eq!(dir.lines("flows/out.jsonl"), [json!({"id": "2", "x": "b"})]);
    let store = dir.store().await;
    let failures = store
        .failures(Some("grow"), FailureStatus::Failed, 10)
        .await
        .unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].failure.origin, "in.jsonl line 1");
    assert!(
        failures[0].failure.error.contains("would exceed 1 MiB"),
        "{}",
        failures[0].failure.error
    );
    let runs = store.runs(Some("grow"), 10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Failed, "{runs:?}");
    assert_eq!((runs[0].counts.succeeded, runs[0].counts.failed), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_answers_a_huge_seed_with_a_400_and_goes_on() {
    let dir = Dir::new();
    let mut child = rivulet(dir.0.path())
        .args(["sandbox", "--port", "0", "--no-demo"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let first = rx
        .recv_timeout(LIMIT)
        .expect("the sandbox says where it listens");
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_string();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    for (count, says) in [
        ("1000001", "count must be at most 1000000"),
        ("18446744073709551615", "count must be at most 1000000"),
        ("1e300", "invalid seed spec"),
        ("-1", "invalid seed spec"),
        ("99999999999999999999999999", "invalid seed spec"),
    ] {
        let answer = http
            .post(format!("{url}/_sandbox/seed"))
            .header("content-type", "application/json")
            .body(format!("{{\"objectType\":\"contacts\",\"count\":{count}}}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400, "count {count}");
        let body = answer.text().await.unwrap();
        assert!(body.contains(says), "count {count}: {body}");
    }
    let stats: Value = http
        .get(format!("{url}/_sandbox/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["records"]["contacts"], 0, "{stats}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the sandbox still runs"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

// =============================================================================================
// 2. Hangs

#[test]
fn a_fifo_or_a_device_where_a_flow_file_is_expected_is_refused_at_once() {
    let dir = Dir::new();
    std::fs::create_dir_all(dir.path("flows")).unwrap();
    let status = Command::new("mkfifo")
        .arg(dir.path("flows/pipe.yaml"))
        .status()
        .unwrap();
    assert!(status.success());
    std::os::unix::fs::symlink("/dev/zero", dir.path("flows/zero.yaml")).unwrap();
    std::os::unix::fs::symlink("/dev/urandom", dir.path("flows/random.yaml")).unwrap();
    let status = Command::new("mkfifo")
        .arg(dir.path("flows/pipe.test.yaml"))
        .status()
        .unwrap();
    assert!(status.success());

    let report = validate_json(&dir, "flows");
    for file in ["pipe.yaml", "zero.yaml", "random.yaml"] {
        let d = diagnostic(&report, file, "yaml_syntax");
        assert_eq!(
            d["message"], "not a regular file (a directory, FIFO, socket or device is not read)",
            "{d}"
        );
    }
    assert_eq!(report["summary"]["errors"], 3, "{report:#}");
    for file in ["flows/pipe.yaml", "flows/zero.yaml", "flows/random.yaml"] {
        run(rivulet(dir.0.path()).args(["validate", file]), LIMIT)
            .exits(1)
            .says("not a regular file");
    }
    run(&mut dir.once(&[]), LIMIT)
        .exits(1)
        .says("not starting: the flows are invalid");
    run(
        rivulet(dir.0.path()).args(["test", "flows/pipe.test.yaml"]),
        LIMIT,
    )
    .exits(1)
    .says("not a regular file");

    // A device where a data file is expected is not read (it would never end), and says so.
    let data = Dir::new();
    std::fs::create_dir_all(data.path("flows")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", data.path("flows/zero.csv")).unwrap();
    data.write(
        "flows/zero.yaml",
        file_flow(
            "zero",
            "zero.csv",
            "  x: \"{{record.x}}\"\n",
            "  - file: { path: out.jsonl }\n",
        ),
    );
    run(&mut data.once(&[]), LIMIT)
        .exits(0)
        .says("not a regular file (a FIFO, socket or device): it is not read path=zero.csv");
}

#[test]
fn huge_placeholder_counts_and_nested_blocks_are_refused_in_bounded_time() {
    let dir = Dir::new();
    let cases = [
        // (name, template, what the error says)
        (
            "p16k",
            "{{record.x}}".repeat(16_000),
            "the template is 192000 bytes long; the limit is 16 KiB",
        ),
        (
            "p100k",
            "{{a}}".repeat(100_000),
            "the template is 500000 bytes long; the limit is 16 KiB",
        ),
        (
            "if10k",
            format!(
                "{}y{}",
                "{{#if a}}".repeat(10_000),
                "{{/if}}".repeat(10_000)
            ),
            "the template is 160001 bytes long; the limit is 16 KiB",
        ),
        // Within the size limit, past the others.
        ("p3k", "{{a}}".repeat(3_000), "placeholders"),
        (
            "if1k",
            format!("{}y{}", "{{#if a}}".repeat(1_000), "{{/if}}".repeat(1_000)),
            "nests deeper than 64 levels",
        ),
    ];
    for (name, template, _) in &cases {
        dir.write(
            &format!("flows/{name}.yaml"),
            file_flow(
                name,
                "in.jsonl",
                &format!("  x: '{template}'\n"),
                "  - file: { path: out.jsonl }\n",
            ),
        );
    }
    let report = validate_json(&dir, "flows");
    for (name, _, says) in &cases {
        let d = diagnostic(&report, &format!("{name}.yaml"), "invalid_mapping");
        assert!(d["message"].as_str().unwrap().contains(says), "{name}: {d}");
        assert_eq!(d["line"], 7, "{name}: {d}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out_per_the_connections_timeout() {
    let silent = hostile(|_| None).await;
    let dir = Dir::new();
    dir.write(
        "flows/connections.yaml",
        format!(
            "connections:\n  api:\n    http:\n      base_url: {url}\n      timeout: 1s\n  hubspot:\n    hubspot:\n      token: ${{HUBSPOT_TOKEN}}\n      base_url: {url}\n      api_version: 2026-03\n      timeout: 1s\n",
            url = silent.url
        ),
    );
    dir.write(
        "flows/push.yaml",
        file_flow(
            "push",
            "in.jsonl",
            "  x: \"{{record.x}}\"\n",
            "  - http: { connection: api, path: /hook, backoff: { initial: 200ms, max: 1s } }\n",
        ),
    );
    dir.write("flows/in.jsonl", "{\"x\": \"a\"}\n");
    dir.write(
        "flows/watch.yaml",
        "name: watch\ntrigger:\n  hubspot:\n    connection: hubspot\n    on: new_record\n    object: contact\n    poll_every: 1s\n    start_from: beginning\nmapping:\n  id: \"{{record.id}}\"\nactions:\n  - file: { path: out.jsonl }\n",
    );
    let started = Instant::now();
    let ran = run(
        dir.once(&["--once-wait", "1s"])
            .env("HUBSPOT_TOKEN", "hostile-test-token"),
        LIMIT,
    );
    ran.exits(3).says("gave up waiting");
    for flow in ["push", "watch"] {
        let line = ran
            .stdout
            .lines()
            .skip_while(|l| !l.starts_with(&format!("{flow} ")))
            .nth(1)
            .unwrap_or_default();
        assert!(
            line.contains("gave up waiting") && line.contains("timed out"),
            "{flow}:\n{}",
            ran.all()
        );
    }
    // Bounded by the timeouts, not by the silence: each try gave up after its 1 s.
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(!dir.path("flows/out.jsonl").exists());
}

// =============================================================================================
// 3. Silent loss

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_sink_on_a_full_disk_moves_nothing_and_a_later_run_delivers_everything_once() {
    let dir = Dir::new();
    dir.write("flows/in.csv", "id,name\n1,a\n2,b\n3,c\n");
    dir.write(
        "flows/copy.yaml",
        file_flow(
            "copy",
            "in.csv",
            "  id: \"{{record.id}}\"\n  name: \"{{record.name}}\"\n",
            "  - file: { path: out/copy.jsonl, backoff: { initial: 200ms, max: 1s } }\n",
        ),
    );
    std::fs::create_dir_all(dir.path("flows/out")).unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.path("flows/out/copy.jsonl")).unwrap();

    let ran = run(&mut dir.once(&["--once-wait", "2s"]), LIMIT);
    ran.exits(3)
        .says("gave up waiting: waiting for file")
        .says("No space left on device");
    assert!(
        !ran.all().contains("could not cut a failed append back"),
        "{}",
        ran.all()
    );
    {
        let store = dir.store().await;
        assert_eq!(
            store.cursor("copy").await.unwrap(),
            None,
            "the cursor stays"
        );
        assert!(
            store
                .failures(None, FailureStatus::Failed, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let runs = store.runs(Some("copy"), 100).await.unwrap();
        assert!(!runs.is_empty());
        for r in &runs {
            assert_eq!(r.status, RunStatus::Waiting, "{runs:?}");
            assert_eq!(r.counts.succeeded, 0, "{runs:?}");
        }
    }

    // Space again (a writable file where the device was): every record, once.
    std::fs::remove_file(dir.path("flows/out/copy.jsonl")).unwrap();
    run(&mut dir.once(&[]), LIMIT).exits(0);
    let ids: Vec<Value> = dir
        .lines("flows/out/copy.jsonl")
        .iter()
        .map(|l| l["id"].clone())
        .collect();
    assert_eq!(ids, [json!("1"), json!("2"), json!("3")]);
    run(&mut dir.once(&[]), LIMIT).exits(0);
    assert_eq!(dir.lines("flows/out/copy.jsonl").len(), 3, "nothing twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_cursor_stops_its_flow_naming_cursor_reset() {
    let sb = Sandbox::start(SandboxConfig {
        clock_offset_ms: -10_000,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    sb.store()
        .seed(
            SeedSpec::generated("contacts", 5)
                .at(chrono::Utc::now().timestamp_millis() - 3_600_000)
                .step(1000),
        )
        .unwrap();
    let dir = Dir::new();
    dir.write(
        "flows/connections.yaml",
        format!(
            "connections:\n  hubspot:\n    hubspot:\n      token: ${{HUBSPOT_TOKEN}}\n      base_url: {}\n      api_version: 2026-03\n      search_per_second: 50\n",
            sb.url()
        ),
    );
    dir.write("flows/data/a.csv", "id\n1\n2\n3\n");
    let mapping = "  id: \"{{record.id}}\"\n";
    for name in ["text", "shape", "fine"] {
        dir.write(
            &format!("flows/{name}.yaml"),
            file_flow(
                name,
                "data/*.csv",
                mapping,
                &format!("  - file: {{ path: {name}.jsonl }}\n"),
            ),
        );
    }
    dir.write(
        "flows/watch.yaml",
        format!(
            "name: watch\ntrigger:\n  hubspot:\n    connection: hubspot\n    on: new_record\n    object: contact\n    poll_every: 1s\n    settle: 1s\n    start_from: beginning\nmapping:\n{mapping}actions:\n  - file: {{ path: watch.jsonl }}\n"
        ),
    );
    let once = || {
        let mut cmd = dir.once(&[]);
        cmd.env("HUBSPOT_TOKEN", "test-token");
        cmd
    };
    run(&mut once(), LIMIT).exits(0);
    for (name, n) in [("text", 3), ("shape", 3), ("watch", 5), ("fine", 3)] {
        assert_eq!(dir.lines(&format!("flows/{name}.jsonl")).len(), n);
    }

    // Damage: not JSON at all; JSON that is no file checkpoint; no trigger cursor.
    {
        let db = rusqlite::Connection::open(dir.state()).unwrap();
        db.execute(
            "UPDATE cursors SET state = '{\"files\": [' WHERE flow = 'text'",
            [],
        )
        .unwrap();
    }
    {
        let store = dir.store().await;
        for name in ["shape", "watch"] {
            let identity = store.cursor(name).await.unwrap().unwrap().identity;
            store
                .set_cursor(
                    name,
                    &Cursor {
                        identity,
                        state: json!({"files": 5, "ts": "yesterday"}),
                    },
                )
                .await
                .unwrap();
        }
    }
    dir.write("flows/data/b.csv", "id\n4\n");
    sb.store().seed(SeedSpec::generated("contacts", 2)).unwrap();

    let ran = run(&mut once(), LIMIT);
    ran.exits(1);
    for name in ["text", "shape", "watch"] {
        assert!(
            ran.all().contains(&format!("rivulet cursor reset {name}"))
                || (name == "shape" && ran.all().contains("rivulet cursor reset FLOW")),
            "{name}:\n{}",
            ran.all()
        );
    }
    ran.says("the stored cursor of `text` is not JSON");
    // Nothing delivered again, nothing new taken past a damaged cursor; the flow whose cursor
    // is sound goes on.
    for (name, n) in [("text", 3), ("shape", 3), ("watch", 5), ("fine", 4)] {
        assert_eq!(dir.lines(&format!("flows/{name}.jsonl")).len(), n, "{name}");
    }
    let db = rusqlite::Connection::open(dir.state()).unwrap();
    let text: String = db
        .query_row("SELECT state FROM cursors WHERE flow = 'text'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        text, "{\"files\": [",
        "the damaged cursor is left for a person to look at"
    );
    sb.shutdown().await;
}

#[test]
fn an_empty_or_foreign_state_file_is_refused_with_exit_2() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new();
    dir.write("flows/in.jsonl", "{\"x\": \"a\"}\n");
    dir.write(
        "flows/copy.yaml",
        file_flow(
            "copy",
            "in.jsonl",
            "  x: \"{{record.x}}\"\n",
            "  - file: { path: out.jsonl }\n",
        ),
    );
    let foreign = dir.path("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE invoices (id INTEGER); INSERT INTO invoices VALUES (7);")
        .unwrap();
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cases = [
        ("empty.db", Vec::new(), "is empty (truncated?)"),
        (
            "junk.db",
            b"SQLite format 2\0 but not really a database".repeat(50),
            "cannot be read as Rivulet state",
        ),
        (
            "foreign.db",
            std::fs::read(&foreign).unwrap(),
            "not Rivulet's state (no schema_version table)",
        ),
    ];
    for (name, bytes, says) in &cases {
        let path = dir.write(name, bytes);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let state = path.display().to_string();
        for args in [
            vec!["run", "flows", "--once"],
            vec!["runs"],
            vec!["failures"],
            vec!["cursor", "show"],
        ] {
            let mut cmd = rivulet(dir.0.path());
            cmd.args(&args).args(["--state", &state]);
            run(&mut cmd, LIMIT).exits(2).says(says);
        }
        assert_eq!(
            &std::fs::read(&path).unwrap(),
            bytes,
            "{name} is left as it was"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{name} keeps its mode");
        assert!(!dir.path(&format!("{name}-wal")).exists());
    }
    assert!(!dir.path("flows/out.jsonl").exists(), "nothing ran");
}

#[test]
fn one_huge_csv_record_fails_alone_and_the_others_are_delivered() {
    let dir = Dir::new();
    // 8 MiB on one line; the limit of one record is 1 MiB.
    let mut csv = String::from("id,name\n1,a\n2,");
    csv.push_str(&"x".repeat(8 << 20));
    csv.push_str("\n3,c\n");
    dir.write("flows/in.csv", csv);
    dir.write(
        "flows/copy.yaml",
        file_flow(
            "copy",
            "in.csv",
            "  id: \"{{record.id}}\"\n  name: \"{{record.name}}\"\n",
            "  - file: { path: out.jsonl }\n",
        ),
    );
    run(&mut limited(MEMORY, &dir.once(&[])), LIMIT)
        .exits(1)
        .says("record failed")
        .says("the record is larger than 1024 KiB");
    assert_eq!(
        dir.lines("flows/out.jsonl"),
        [
            json!({"id": "1", "name": "a"}),
            json!({"id": "3", "name": "c"})
        ]
    );
    let ran = run(&mut dir.cmd(&["failures", "--format", "json"]), LIMIT);
    ran.exits(0);
    let failures: Value = serde_json::from_str(&ran.stdout).unwrap();
    let failures = failures["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["origin"], "in.csv line 3");
    assert!(
        failures[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("the record is larger than 1024 KiB"),
        "{}",
        failures[0]["error"]
    );
}

// =============================================================================================
// 4. Leaked secrets

/// A value no output may show, with the characters that encodings change.
const HEADER_SECRET: &str = "hdr-Sentinel+/=&9f3Kq";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_secret_echoed_by_a_server_is_nowhere_in_outputs_or_state() {
    // Echoes the request's headers (and the token in other forms) in its error body; the
    // padding puts the raw token across the 200-character cut of an error snippet.
    let echo = |status: u16, pad: usize| {
        move |seen: &Seen| {
            let auth = seen.header("authorization").unwrap_or_default().to_string();
            let token = auth.trim_start_matches("Bearer ").to_string();
            // In this order (not a JSON map's): the padding decides where the token falls.
            let body = format!(
                "{{\"pad\":\"{}\",\"authorization\":{},\"as_url\":\"{}\",\"as_base64\":\"{}\",\"header_as_base64\":\"{}\",\"head\":{}}}",
                "x".repeat(pad),
                json!(auth),
                percent(&token, ""),
                base64(token.as_bytes(), STANDARD),
                base64(auth.as_bytes(), STANDARD),
                json!(seen.head),
            );
            Some(response(status, &[], &body))
        }
    };
    let refused = hostile(echo(400, 0)).await;
    let down = hostile(echo(503, 0)).await;
    let cut = hostile(echo(422, 158)).await;
    let dir = Dir::new();
    let mut connections = String::from("connections:\n");
    for (name, server) in [("refused", &refused), ("down", &down), ("cut", &cut)] {
        connections.push_str(&format!(
            "  {name}:\n    http:\n      base_url: {}\n      headers: {{ Authorization: \"Bearer ${{API_TOKEN}}\" }}\n      timeout: 5s\n",
            server.url
        ));
        dir.write(
            &format!("flows/{name}.yaml"),
            file_flow(
                name,
                "in.jsonl",
                "  x: \"{{record.x}}\"\n",
                &format!(
                    "  - http: {{ connection: {name}, path: /hook, backoff: {{ initial: 100ms, max: 200ms }} }}\n"
                ),
            ),
        );
    }
    dir.write("flows/connections.yaml", connections);
    dir.write("flows/in.jsonl", "{\"x\": \"a\"}\n{\"x\": \"b\"}\n");

    let secrets = vec![
        HEADER_SECRET.to_string(),
        format!("Bearer {HEADER_SECRET}"),
        HEADER_SECRET[..8].to_string(),
    ];
    let mut outputs = Vec::new();
    for (i, args) in [
        vec!["--once-wait", "500ms"],
        vec![
            "--once-wait",
            "500ms",
            "--log-format",
            "json",
            "--format",
            "json",
        ],
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            // A record the second run reads afresh.
            let mut text = std::fs::read_to_string(dir.path("flows/in.jsonl")).unwrap();
            text.push_str("{\"x\": \"c\"}\n");
            dir.write("flows/in.jsonl", text);
        }
        let ran = run(
            dir.once(&args)
                .env("API_TOKEN", HEADER_SECRET)
                .env("RIVULET_LOG", "debug"),
            LIMIT,
        );
        ran.exits(3).says("HTTP 400").says("[REDACTED]");
        outputs.push((args.join(" "), ran.all()));
    }
    assert!(refused.hits.load(Ordering::SeqCst) >= 2);
    assert!(down.hits.load(Ordering::SeqCst) >= 2);
    assert!(cut.hits.load(Ordering::SeqCst) >= 2);
    for (what, text) in &outputs {
        assert_clean(what, text.as_bytes(), &secrets);
    }
    let store = dir.store().await;
    let failed = store
        .failures(None, FailureStatus::Failed, 100)
        .await
        .unwrap();
    // `refused` and `cut` fail each record they read: 2, then the changed file's 3 afresh.
    assert_eq!(failed.len(), 10, "{failed:?}");
    drop(store);
    assert_history_clean(&dir, &secrets);
}

/// OAuth credentials with the characters form encoding changes.
const CLIENT_SECRET: &str = "oauth-Client+/=&Secret7";
const REFRESH_TOKEN: &str = "oauth-Refresh+/=&Token9";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_secrets_with_url_special_characters_are_nowhere_in_outputs_or_state() {
    let sb = Sandbox::start(SandboxConfig {
        clock_offset_ms: -10_000,
        oauth: OAuthConfig {
            client_id: "hostile-client".into(),
            client_secret: CLIENT_SECRET.into(),
            refresh_token: REFRESH_TOKEN.into(),
            ..OAuthConfig::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    sb.store()
        .seed(
            SeedSpec::generated("contacts", 5)
                .at(chrono::Utc::now().timestamp_millis() - 3_600_000)
                .step(1000),
        )
        .unwrap();
    // A token endpoint that echoes the form it was sent (the secrets, form-encoded).
    let echo = hostile(|seen: &Seen| {
        let body = json!({
            "status": "BAD_CLIENT_SECRET",
            "message": format!("refused: {}", String::from_utf8_lossy(&seen.body)),
        });
        Some(response(400, &[], &body.to_string()))
    })
    .await;
    let dir = Dir::new();
    let oauth = |token_url: &str| {
        format!(
            "      oauth:\n        client_id: hostile-client\n        client_secret: ${{CLIENT_SECRET}}\n        refresh_token: ${{REFRESH_TOKEN}}\n        token_url: {token_url}\n"
        )
    };
    let flow = |name: &str, connection: &str| {
        format!(
            "name: {name}\ntrigger:\n  hubspot:\n    connection: {connection}\n    on: new_record\n    object: contact\n    poll_every: 1s\n    settle: 1s\n    start_from: beginning\nmapping:\n  id: \"{{{{record.id}}}}\"\nactions:\n  - file: {{ path: {name}.jsonl }}\n"
        )
    };
    let env = |cmd: &mut Command| {
        cmd.env("CLIENT_SECRET", CLIENT_SECRET)
            .env("REFRESH_TOKEN", REFRESH_TOKEN)
            .env("RIVULET_LOG", "debug");
    };
    let secrets = vec![CLIENT_SECRET.to_string(), REFRESH_TOKEN.to_string()];
    let mut outputs = Vec::new();

    // The real endpoint: the flow runs on the tokens it gets.
    dir.write(
        "flows/connections.yaml",
        format!(
            "connections:\n  hubspot:\n    hubspot:\n      base_url: {url}\n      api_version: 2026-03\n      search_per_second: 50\n{}",
            oauth(&format!("{}/oauth/v1/token", sb.url())),
            url = sb.url()
        ),
    );
    dir.write("flows/copy.yaml", flow("copy", "hubspot"));
    for args in [vec![], vec!["--log-format", "json", "--format", "json"]] {
        let mut cmd = dir.once(&args);
        env(&mut cmd);
        let ran = run(&mut cmd, LIMIT);
        ran.exits(0);
        outputs.push((format!("copy {}", args.join(" ")), ran.all()));
    }
    assert_eq!(dir.lines("flows/copy.jsonl").len(), 5);
    assert!(sb.store().stats().token_refreshes >= 1);

    // A hostile endpoint that echoes the form: the connection fails, and says so cleanly.
    dir.write(
        "flows/connections.yaml",
        format!(
            "connections:\n  hubspot:\n    hubspot:\n      base_url: {url}\n      api_version: 2026-03\n{}",
            oauth(&format!("{}/oauth/v1/token", echo.url)),
            url = sb.url()
        ),
    );
    for args in [vec![], vec!["--log-format", "json", "--format", "json"]] {
        let mut cmd = dir.once(&["--once-wait", "500ms"]);
        cmd.args(&args);
        env(&mut cmd);
        let ran = run(&mut cmd, LIMIT);
        ran.exits(3)
            .says("HubSpot OAuth token refresh failed: token endpoint answered 400")
            .says("client_secret=[REDACTED]&refresh_token=[REDACTED]");
        outputs.push((format!("echo {}", args.join(" ")), ran.all()));
    }
    assert!(
        echo.hits.load(Ordering::SeqCst) >= 1,
        "the echoing endpoint was asked"
    );
    for (what, text) in &outputs {
        assert_clean(what, text.as_bytes(), &secrets);
    }
    assert_history_clean(&dir, &secrets);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_secret_echoed_across_a_cut_leaves_nothing_behind() {
    // The form starts `grant_type=refresh_token&client_id=hostile-client&client_secret=` (64
    // characters): 426 before it put the secret's first 10 characters before the 500th.
    let echo = hostile(|seen: &Seen| {
        let text = format!("{}{}", "x".repeat(426), String::from_utf8_lossy(&seen.body));
        Some(response(400, &[], &text))
    })
    .await;
    let dir = Dir::new();
    dir.write(
        "flows/connections.yaml",
        format!(
            "connections:\n  hubspot:\n    hubspot:\n      base_url: {url}\n      api_version: 2026-03\n      oauth:\n        client_id: hostile-client\n        client_secret: ${{CLIENT_SECRET}}\n        refresh_token: ${{REFRESH_TOKEN}}\n        token_url: {url}/oauth/v1/token\n",
            url = echo.url
        ),
    );
    dir.write(
        "flows/copy.yaml",
        "name: copy\ntrigger:\n  hubspot:\n    connection: hubspot\n    on: new_record\n    object: contact\n    poll_every: 1s\n    start_from: beginning\nmapping:\n  id: \"{{record.id}}\"\nactions:\n  - file: { path: copy.jsonl }\n",
    );
    let ran = run(
        dir.once(&["--once-wait", "500ms"])
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env("REFRESH_TOKEN", REFRESH_TOKEN),
        LIMIT,
    );
    ran.exits(3).says("token endpoint answered 400");
    assert!(echo.hits.load(Ordering::SeqCst) >= 1);
    let secrets = vec![
        CLIENT_SECRET.to_string(),
        REFRESH_TOKEN.to_string(),
        CLIENT_SECRET[..10].to_string(),
    ];
    assert_clean("run --once", ran.all().as_bytes(), &secrets);
    assert_history_clean(&dir, &secrets);
}

// =============================================================================================
// 5. Smaller ones

fn validate(dir: &Dir, file: &str) -> Ran {
    run(rivulet(dir.0.path()).args(["validate", file]), LIMIT)
}

#[test]
fn several_yaml_documents_in_one_file_get_rivulets_own_message() {
    let dir = Dir::new();
    dir.write(
        "two.yaml",
        format!(
            "{}---\nname: second\n",
            file_flow(
                "first",
                "in.jsonl",
                "  x: \"{{record.x}}\"\n",
                "  - file: { path: o.jsonl }\n"
            )
        ),
    );
    validate(&dir, "two.yaml")
        .exits(1)
        .says("error: the file holds more than one YAML document (a `---` line starts another) [yaml_syntax]")
        .says("--> two.yaml:11:1")
        .says("split it into one file per flow");
}

#[test]
fn a_null_key_is_an_error() {
    let dir = Dir::new();
    dir.write(
        "null.yaml",
        file_flow(
            "null",
            "in.jsonl",
            "  ~: \"{{record.x}}\"\n",
            "  - file: { path: o.jsonl }\n",
        ),
    );
    validate(&dir, "null.yaml")
        .exits(1)
        .says("a key cannot be empty or null (`~`); write the key's name [yaml_syntax]")
        .says("--> null.yaml:7:3");
}

/// A flow whose name YAML's escapes turn into ESC and BEL, and one with raw control bytes in
/// a value; `validate --format FORMAT` on each.
fn validate_escapes(format: &str) -> Vec<(&'static str, Ran)> {
    let dir = Dir::new();
    dir.write(
        "escaped.yaml",
        "name: \"a\\e[2J\\e]0;owned\\a\"\nschedule: { every: 1h }\nsource: { file: { path: in.jsonl } }\nmapping: { x: \"{{record.x}}\" }\nactions: [ { file: { path: o.jsonl } } ]\n",
    );
    dir.write(
        "raw.yaml",
        "name: raw\nschedule: { every: 1h }\nsource: { file: { path: in.jsonl } }\nmapping: { x: \"{{record.x}}\" }\nactions: [ { file: { path: o.jsonl, format: \"\x1b[2J\x1b]0;owned\x07\" } } ]\n",
    );
    ["escaped.yaml", "raw.yaml"]
        .into_iter()
        .map(|file| {
            let ran = run(
                rivulet(dir.0.path()).args(["validate", "--format", format, file]),
                LIMIT,
            );
            ran.exits(1);
            for byte in ['\x1b', '\x07'] {
                assert!(
                    !ran.all().contains(byte),
                    "{file} ({format}) echoes {byte:?} raw:\n{}",
                    ran.all()
                );
            }
            (file, ran)
        })
        .collect()
}

#[test]
fn escape_bytes_from_a_file_are_never_echoed_raw() {
    let human = validate_escapes("human");
    human[0]
        .1
        .says("flow name `a\\u{1b}[2J\\u{1b}]0;owned\\u{7}` is not allowed");
    human[1]
        .1
        .says("unexpected character: `\\u{1b}'")
        .says("--> raw.yaml:5:");
    let json = validate_escapes("json");
    json[0].1.says("\\u001b[2J");
}

#[test]
fn escape_bytes_are_never_echoed_raw_in_github_annotations() {
    validate_escapes("github");
}

#[test]
fn an_empty_expect_error_is_an_error_not_a_pass() {
    let dir = Dir::new();
    dir.write(
        "flows/t.yaml",
        file_flow(
            "t",
            "in.jsonl",
            "  x: \"{{record.x}}\"\n  n: { path: $.n, type: number }\n",
            "  - file: { path: o.jsonl }\n",
        ),
    );
    dir.write(
        "flows/t.test.yaml",
        "tests:\n  - name: anything goes\n    input: {x: a, n: abc}\n    expect_error: \"\"\n  - name: maps\n    input: {x: a, n: \"1\"}\n    expect: {x: a, n: 1}\n",
    );
    run(rivulet(dir.0.path()).args(["test", "flows"]), LIMIT)
        .exits(1)
        .says("FAIL flows/t.test.yaml:2: anything goes")
        .says("flows/t.test.yaml:4:19: error: `expect_error` is empty, so any error would pass")
        .says("1 passed, 1 failed");
}

#[test]
fn a_cron_that_never_fires_is_a_warning() {
    let dir = Dir::new();
    dir.write(
        "feb30.yaml",
        file_flow(
            "feb30",
            "in.jsonl",
            "  x: \"{{record.x}}\"\n",
            "  - file: { path: o.jsonl }\n",
        )
        .replace("every: 1h", "cron: \"0 0 30 2 *\""),
    );
    validate(&dir, "feb30.yaml")
        .exits(0)
        .says("warning: this cron expression never fires (no date matches it) [cron_never_fires]")
        .says("--> feb30.yaml:3:9");
    run(
        rivulet(dir.0.path()).args(["validate", "--deny-warnings", "feb30.yaml"]),
        LIMIT,
    )
    .exits(1);
}

#[test]
fn an_existing_0644_state_file_is_made_private_and_a_shared_folder_is_left_alone() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let dir = Dir::new();
    dir.write("flows/in.jsonl", "{\"x\": \"a\"}\n");
    dir.write(
        "flows/copy.yaml",
        file_flow(
            "copy",
            "in.jsonl",
            "  x: \"{{record.x}}\"\n",
            "  - file: { path: out.jsonl }\n",
        ),
    );
    // A state file in a folder others share (sticky, like /tmp).
    let shared = dir.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let state = shared.join("state.db");
    let once = || {
        let mut cmd = rivulet(dir.0.path());
        cmd.args(["run", "flows", "--once", "--state"]).arg(&state);
        cmd
    };
    run(&mut once(), LIMIT).exits(0);
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o644)).unwrap();
    run(&mut once(), LIMIT).exits(0);
    assert_eq!(mode(&state), 0o600, "the state file is private again");
    assert_eq!(
        mode(&shared),
        0o1777,
        "the shared folder is not the state's to change"
    );
    // The default place, made by the runner: private.
    run(
        rivulet(dir.0.path()).args(["run", "flows", "--once"]),
        LIMIT,
    )
    .exits(0);
    assert_eq!(mode(&dir.path(".rivulet")), 0o700);
    assert_eq!(mode(&dir.path(".rivulet/state.db")), 0o600);
}
