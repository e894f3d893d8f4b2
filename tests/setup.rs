//! The set-up commands end to end, through the binary and against the sandbox: `rivulet init`
//! (a scaffold that validates, passes its tests and runs), `rivulet auth hubspot` (the OAuth
//! authorization-code flow, ending in a 0600 refresh-token file that works in a connection) and
//! `rivulet check` (scopes, reads, category and upsert properties, rate-limit headroom, writes
//! only with `--write`).

mod common;

use rivulet_sandbox::{RateLimit, Sandbox, SandboxConfig};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rivulet"));
    cmd.env("NO_COLOR", "1")
        .env("RIVULET_LOG", "warn")
        .env_remove("HUBSPOT_TOKEN")
        .env_remove("HUBSPOT_CLIENT_SECRET")
        .env_remove("HUBSPOT_REFRESH_TOKEN");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("rivulet runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(out), stderr(out)))
}

/// Runs a blocking closure off the async test's thread (the sandbox serves on the runtime).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

const SCAFFOLD: [&str; 12] = [
    "connections.yaml",
    "companies-from-csv.yaml",
    "companies-from-csv.test.yaml",
    "contacts-from-csv.yaml",
    "contacts-from-csv.test.yaml",
    "hubspot-companies-to-file.yaml",
    "hubspot-companies-to-file.test.yaml",
    "hubspot-contacts-to-file.yaml",
    "hubspot-contacts-to-file.test.yaml",
    "data/companies.csv",
    "data/contacts.csv",
    ".gitignore",
];

// ---------------------------------------------------------------------------------------------
// init

#[test]
fn init_output_validates_passes_its_tests_and_runs_on_the_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(bin().current_dir(tmp.path()).args(["init", "demo"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = stdout(&out);
    for file in SCAFFOLD {
        assert!(tmp.path().join("demo").join(file).is_file(), "{file}");
        assert!(said.contains(&format!("wrote  demo/{file}")), "{said}");
    }
    assert!(
        said.contains("rivulet run demo --sandbox --once") && said.contains("rivulet check demo"),
        "{said}"
    );
    let connections = std::fs::read_to_string(tmp.path().join("demo/connections.yaml")).unwrap();
    assert!(
        connections.contains("token: ${HUBSPOT_TOKEN}")
            && connections.contains("api_version: 2026-03"),
        "{connections}"
    );

    let out = run(bin()
        .current_dir(tmp.path())
        .args(["validate", "demo", "--format", "json"]));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let v = json_of(&out);
    assert_eq!(v["valid"], true);
    assert_eq!(v["flows"].as_array().unwrap().len(), 4, "{v}");
    assert_eq!(v["summary"]["errors"], 0);

    let out = run(bin()
        .current_dir(tmp.path())
        .args(["test", "demo", "--format", "json"]));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let t = json_of(&out);
    assert_eq!(t["failed"], 0, "{t}");
    assert!(t["passed"].as_u64().unwrap() >= 12, "{t}");
    let tested: std::collections::BTreeSet<&str> = t["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["file"].as_str().unwrap())
        .collect();
    assert_eq!(tested.len(), 4, "every flow has its tests: {tested:?}");

    let out = run(bin().current_dir(tmp.path()).args([
        "run",
        "demo",
        "--sandbox",
        "--once",
        "--format",
        "json",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = json_of(&out);
    let flows = summary["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 4, "{summary}");
    for f in flows {
        assert_eq!(f["failed"], 0, "{f}");
        assert!(f["delivered"].as_u64().unwrap() > 0, "{f}");
        if f["flow"].as_str().unwrap().ends_with("-from-csv") {
            assert_eq!(f["delivered"], 5, "every sample row: {f}");
        }
    }
    for file in ["hubspot-companies.jsonl", "hubspot-contacts.jsonl"] {
        let text = std::fs::read_to_string(tmp.path().join("demo/out").join(file)).unwrap();
        let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert!(first["hubspot_id"].is_string(), "{first}");
        assert!(first["updated_at"].is_string(), "{first}");
    }
}

#[test]
fn init_never_overwrites_and_no_defaults_writes_only_the_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("flows");
    std::fs::create_dir_all(&dir).unwrap();
    let mine = "connections:\n  hubspot:\n    hubspot:\n      token: ${MY_TOKEN}\n";
    std::fs::write(dir.join("connections.yaml"), mine).unwrap();

    // `flows` is the default folder
    let out = run(bin()
        .current_dir(tmp.path())
        .args(["init", "--no-defaults"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("kept   flows/connections.yaml (it exists; not overwritten)")
            && stdout(&out).contains("wrote  flows/.schemas/ (the JSON Schemas, for editors)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("connections.yaml")).unwrap(),
        mine
    );
    let mut entries: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, [".schemas", "connections.yaml"], "nothing else");

    // a link where a file would go is left alone, and never written through
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        tmp.path().join("elsewhere.yaml"),
        dir.join("contacts-from-csv.yaml"),
    )
    .unwrap();
    let out = run(bin().current_dir(tmp.path()).args(["init"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains("wrote  flows/companies-from-csv.yaml"),
        "{said}"
    );
    assert!(said.contains("kept   flows/connections.yaml"), "{said}");
    assert!(
        said.contains("the kept flows/connections.yaml must define it"),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("connections.yaml")).unwrap(),
        mine
    );
    #[cfg(unix)]
    {
        assert!(
            said.contains("kept   flows/contacts-from-csv.yaml"),
            "{said}"
        );
        assert!(!tmp.path().join("elsewhere.yaml").exists());
    }

    // a fresh folder with --no-defaults: the connection alone, and it validates
    let out = run(bin()
        .current_dir(tmp.path())
        .args(["init", "only", "--no-defaults"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut names: Vec<_> = std::fs::read_dir(tmp.path().join("only"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [".schemas", "connections.yaml"]);
    let out = run(bin().current_dir(tmp.path()).args(["validate", "only"]));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // a file where the folder should be: a usage error
    std::fs::write(tmp.path().join("plain"), "x").unwrap();
    let out = run(bin().current_dir(tmp.path()).args(["init", "plain"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("plain exists and is not a folder"),
        "{}",
        stderr(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// auth

/// A running `rivulet auth hubspot` against the sandbox, and the authorize URL it printed.
struct AuthRun {
    child: Child,
    url: String,
    head: Vec<String>,
    rest: std::thread::JoinHandle<Vec<String>>,
}

const SECRET: &str = "sandbox-client-secret";

/// Starts the command against the sandbox at `sandbox` and reads its output up to the
/// authorize URL (blocking: call it off the async thread).
fn start_auth(sandbox: &str, out: &Path, scopes: &str) -> AuthRun {
    start_auth_with(sandbox, out, scopes, &[])
}

/// [`start_auth`] with more environment variables.
fn start_auth_with(sandbox: &str, out: &Path, scopes: &str, env: &[(&str, &str)]) -> AuthRun {
    let mut child = bin()
        .args(["auth", "hubspot", "--client-id", "sandbox-client-id"])
        .args([
            "--client-secret-env",
            "SBX_SECRET",
            "--port",
            "0",
            "--timeout",
            "60s",
        ])
        .args(["--scopes", scopes])
        .arg("--out")
        .arg(out)
        .args(["--base-url", sandbox])
        .args(["--authorize-url", &format!("{sandbox}/oauth/authorize")])
        .env("SBX_SECRET", SECRET)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut head = Vec::new();
    let url = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("no authorize URL in {head:?}"))
            .unwrap();
        head.push(line.clone());
        let line = line.trim();
        if line.starts_with(&format!("{sandbox}/oauth/authorize?")) {
            break line.to_string();
        }
    };
    // The command waits for the redirect now; the rest of its output is read as it comes.
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    AuthRun {
        child,
        url,
        head,
        rest,
    }
}

impl AuthRun {
    /// Waits for the command: its exit code, everything it printed, and its stderr.
    fn finish(mut self) -> (Option<i32>, String, String) {
        use std::io::Read;
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(!err.contains("panicked"), "{err}");
        let mut printed = self.head;
        printed.extend(self.rest.join().unwrap());
        (status.code(), printed.join("\n"), err)
    }
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).unwrap();
    parsed
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_stores_a_refresh_token_that_works_in_a_connection() {
    let sb = Sandbox::start(SandboxConfig {
        demo_data: true,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("hubspot-refresh-token");
    let scopes = "oauth,crm.objects.contacts.read,crm.schemas.contacts.read";
    let auth = {
        let (url, token_file) = (sb.url(), token_file.clone());
        blocking(move || start_auth(&url, &token_file, scopes)).await
    };
    assert!(
        auth.url.contains("redirect_uri=http%3A%2F%2Flocalhost%3A")
            && auth.url.contains("scope=oauth+crm.objects.contacts.read"),
        "{}",
        auth.url
    );
    let state = query_param(&auth.url, "state").unwrap();
    assert!(state.len() >= 32, "{state}");
    // the browser: HubSpot's page grants and redirects to the command's listener
    let page = reqwest::get(&auth.url).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Authorized"));
    let (code, printed, err) = blocking(move || auth.finish()).await;
    assert_eq!(code, Some(0), "{printed}\n{err}");

    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(token.starts_with("sbx-refresh-"), "{token}");
    #[cfg(unix)]
    assert_eq!(mode(&token_file), 0o600);
    for said in [&printed, &err] {
        assert!(!said.contains(SECRET), "the client secret leaked: {said}");
        assert!(!said.contains(&token), "the refresh token leaked: {said}");
        assert!(!said.contains("sbx-code-"), "the code leaked: {said}");
    }
    assert!(
        printed.contains("stored the refresh token in")
            && printed.contains("(mode 0600")
            && printed.contains("the refresh token works")
            && printed.contains("oauth:")
            && printed.contains("client_secret: ${SBX_SECRET}")
            && printed.contains("refresh_token_file: "),
        "{printed}"
    );

    // the stored token in a connection: `check` reads with it, and names the scopes it lacks
    let flows = tmp.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(
        flows.join("connections.yaml"),
        format!(
            "connections:\n  hubspot:\n    hubspot:\n      base_url: {url}\n      api_version: 2026-03\n      oauth:\n        client_id: sandbox-client-id\n        client_secret: ${{SBX_SECRET}}\n        refresh_token_file: {file}\n        token_url: {url}/oauth/v1/token\n",
            url = sb.url(),
            file = serde_json::to_string(&token_file.display().to_string()).unwrap()
        ),
    )
    .unwrap();
    std::fs::write(
        flows.join("contacts-out.yaml"),
        "name: contacts-out\ntrigger:\n  hubspot: { connection: hubspot, on: new_record, object: contact, poll_every: 1m, start_from: beginning }\nmapping:\n  email: { path: $.properties.email, default: null }\nactions:\n  - file: { path: out.jsonl }\n",
    )
    .unwrap();
    let flows2 = flows.clone();
    let out = blocking(move || {
        run(bin()
            .args(["check"])
            .arg(&flows2)
            .args(["--format", "json"])
            .env("SBX_SECRET", SECRET))
    })
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let report = json_of(&out);
    let conn = &report["connections"][0];
    assert_eq!(conn["token"]["hub_id"], 1_234_567, "{conn}");
    assert_eq!(
        conn["token"]["scopes"],
        json!([
            "oauth",
            "crm.objects.contacts.read",
            "crm.schemas.contacts.read"
        ])
    );
    assert!(!stdout(&out).contains(&token));

    // and a flow runs on it
    let (flows3, state_db) = (flows.clone(), tmp.path().join("state.db"));
    let out = blocking(move || {
        run(bin()
            .arg("run")
            .arg(&flows3)
            .arg("--state")
            .arg(&state_db)
            .args(["--once", "--format", "json"])
            .env("SBX_SECRET", SECRET))
    })
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_of(&out)["flows"][0]["delivered"], 100);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_refuses_a_redirect_that_carries_another_state() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("token");
    let auth = {
        let (url, token_file) = (sb.url(), token_file.clone());
        blocking(move || start_auth(&url, &token_file, "oauth,crm.objects.contacts.read")).await
    };
    // HubSpot's redirect, as a forged link would carry it: a real code, another state
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let granted = no_redirects.get(&auth.url).send().await.unwrap();
    assert_eq!(granted.status(), 302);
    let location = granted.headers()["location"].to_str().unwrap().to_string();
    let state = query_param(&location, "state").unwrap();
    let forged = location.replace(&state, "0123456789abcdef0123456789abcdef");
    let page = reqwest::get(&forged).await.unwrap();
    assert_eq!(page.status(), 400);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("the state does not match"),
        "a refusal page"
    );
    let (code, printed, err) = blocking(move || auth.finish()).await;
    assert_eq!(code, Some(1), "{printed}\n{err}");
    assert!(
        err.contains("state does not match this authorization")
            && err.contains("nothing was exchanged or stored"),
        "{err}"
    );
    assert!(!token_file.exists());
    // nothing was traded at the token endpoint
    assert_eq!(sb.store().endpoint_count("token"), 0);

    // the person declines: HubSpot sends them back with an error instead of a code
    let auth = {
        let (url, token_file) = (sb.url(), token_file.clone());
        blocking(move || start_auth(&url, &token_file, "oauth")).await
    };
    let back = format!(
        "{}?state={}&error=access_denied&error_description=The+user+declined",
        query_param(&auth.url, "redirect_uri").unwrap(),
        query_param(&auth.url, "state").unwrap()
    );
    let page = reqwest::get(&back).await.unwrap();
    assert_eq!(page.status(), 400);
    let (code, printed, err) = blocking(move || auth.finish()).await;
    assert_eq!(code, Some(1), "{printed}\n{err}");
    assert!(
        err.contains("HubSpot did not authorize the app (access_denied: The user declined); nothing was stored"),
        "{err}"
    );
    assert!(!token_file.exists());

    // the right state but a client secret the token endpoint refuses: a failure page, exit 1
    let auth = {
        let (url, token_file) = (sb.url(), token_file.clone());
        blocking(move || {
            start_auth_with(
                &url,
                &token_file,
                "oauth",
                &[("SBX_SECRET", "not-the-secret-at-all")],
            )
        })
        .await
    };
    let page = reqwest::get(&auth.url).await.unwrap();
    assert_eq!(page.status(), 502);
    let (code, printed, err) = blocking(move || auth.finish()).await;
    assert_eq!(code, Some(1), "{printed}\n{err}");
    assert!(
        err.contains("trading the code for tokens failed: token endpoint answered 400: missing or invalid client secret"),
        "{err}"
    );
    assert!(!err.contains("not-the-secret-at-all") && !printed.contains("not-the-secret-at-all"));
    assert!(!token_file.exists());
    sb.shutdown().await;
}

#[test]
fn auth_refuses_to_start_without_a_secret_or_over_an_existing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(bin().current_dir(tmp.path()).args([
        "auth",
        "hubspot",
        "--client-id",
        "abc",
        "--port",
        "0",
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("HUBSPOT_CLIENT_SECRET holds no client secret"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty(), "no URL printed: {}", stdout(&out));

    std::fs::write(tmp.path().join("hubspot-refresh-token"), "kept\n").unwrap();
    let out = run(bin()
        .current_dir(tmp.path())
        .args(["auth", "hubspot", "--client-id", "abc", "--port", "0"])
        .env("HUBSPOT_CLIENT_SECRET", "a-secret-that-must-not-show"));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("hubspot-refresh-token exists: pass --force"),
        "{err}"
    );
    assert!(!err.contains("a-secret-that-must-not-show"));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("hubspot-refresh-token")).unwrap(),
        "kept\n"
    );

    // nobody comes back from the browser: it gives up after --timeout, storing nothing
    let out = run(bin()
        .current_dir(tmp.path())
        .args(["auth", "hubspot", "--client-id", "abc", "--port", "0"])
        .args(["--timeout", "200ms", "--out", "other-token"])
        .env("HUBSPOT_CLIENT_SECRET", "a-secret-that-must-not-show"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("https://app.hubspot.com/oauth/authorize?client_id=abc&redirect_uri=http%3A%2F%2Flocalhost%3A"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("no redirect came within 200ms; nothing was stored"),
        "{}",
        stderr(&out)
    );
    assert!(!tmp.path().join("other-token").exists());
}

// ---------------------------------------------------------------------------------------------
// check

/// The `init` scaffold with its connection pointed at `sandbox` (token `token`) and `extra`
/// connection settings (and connections) added.
fn scaffold(tmp: &Path, sandbox: &str, extra: &str) -> PathBuf {
    let out = run(bin().current_dir(tmp).args(["init", "flows"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dir = tmp.join("flows");
    std::fs::write(
        dir.join("connections.yaml"),
        format!(
            "connections:\n  hubspot:\n    hubspot:\n      token: ${{HUBSPOT_TOKEN}}\n      base_url: {sandbox}\n      api_version: 2026-03\n      timeout: 5s\n{extra}"
        ),
    )
    .unwrap();
    dir
}

fn check(dir: &Path, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = bin();
    cmd.arg("check").args(args).arg(dir);
    if let Some(token) = token {
        cmd.env("HUBSPOT_TOKEN", token);
    }
    run(&mut cmd)
}

fn find<'a>(report: &'a Value, check: &str, key: &str, value: &str) -> &'a Value {
    report["connections"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == check && c[key] == value)
        .unwrap_or_else(|| panic!("no {check} check with {key} = {value}: {report:#}"))
}

fn named<'a>(report: &'a Value, check: &str) -> &'a Value {
    report["connections"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == check)
        .unwrap_or_else(|| panic!("no {check} check: {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_scopes_reads_properties_and_rate_limit_headroom() {
    let sb = Sandbox::start(SandboxConfig {
        demo_data: true,
        rate_limit: Some(RateLimit::new(100, Duration::from_secs(10))),
        daily_limit: Some(250_000),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = scaffold(
        tmp.path(),
        &sb.url(),
        "      throttle: { limit: 190, per: 10s }\n      company_category_property: company_category\n      contact_category_property: contact_tier\n",
    );
    // a token that may read contacts and read properties, nothing else
    sb.store()
        .restrict_token(
            "limited-token",
            Some(vec![
                "crm.objects.contacts.read".into(),
                "crm.schemas.contacts.read".into(),
                "crm.schemas.companies.read".into(),
            ]),
        )
        .unwrap();
    let out = blocking({
        let dir = dir.clone();
        move || check(&dir, Some("limited-token"), &["--format", "json"])
    })
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json_of(&out);
    assert_eq!(report["version"], 1);
    assert_eq!(report["ok"], false);
    let conn = &report["connections"][0];
    assert_eq!(conn["name"], "hubspot");
    assert_eq!(conn["api_version"], "2026-03");
    assert_eq!(
        conn["missing_scopes"],
        json!([
            "crm.objects.companies.read",
            "crm.objects.companies.write",
            "crm.objects.contacts.write"
        ])
    );
    let scopes = named(&report, "scopes");
    assert_eq!(scopes["status"], "problem");
    assert!(
        scopes["message"]
            .as_str()
            .unwrap()
            .contains("crm.objects.companies.write (companies-from-csv writes companies)"),
        "{scopes}"
    );
    assert_eq!(find(&report, "read", "object", "contacts")["status"], "ok");
    let companies = find(&report, "read", "object", "companies");
    assert_eq!(companies["status"], "problem");
    assert!(
        companies["message"].as_str().unwrap().contains("403"),
        "{companies}"
    );
    let category = find(&report, "category", "property", "company_category");
    assert_eq!(category["status"], "ok");
    assert_eq!(category["dropdown"], true);
    assert_eq!(category["options"].as_array().unwrap().len(), 4);
    let missing = find(&report, "category", "property", "contact_tier");
    assert_eq!(missing["status"], "problem");
    assert_eq!(missing["exists"], false);
    assert!(
        missing["message"]
            .as_str()
            .unwrap()
            .contains("create it as a dropdown"),
        "{missing}"
    );
    assert_eq!(
        find(&report, "match_on", "property", "external_id")["status"],
        "ok"
    );
    let rate = &conn["rate_limit"];
    assert_eq!(rate["max"], 100, "{conn}");
    assert_eq!(rate["interval_ms"], 10_000);
    assert_eq!(rate["daily"], 250_000);
    assert!(rate["remaining"].as_u64().unwrap() < 100);
    let headroom = named(&report, "rate_limit");
    assert_eq!(headroom["status"], "warning", "190/10s is above 100/10s");
    assert!(
        headroom["message"]
            .as_str()
            .unwrap()
            .contains("throttle (190 per 10s) is above HubSpot's limit (100 per 10s)"),
        "{headroom}"
    );
    // the same, for people: one line per check, plain markers without a terminal
    let out = blocking({
        let dir = dir.clone();
        move || check(&dir, Some("limited-token"), &[])
    })
    .await;
    assert_eq!(out.status.code(), Some(1));
    let said = stdout(&out);
    assert!(
        said.starts_with("hubspot (HubSpot, http://127.0.0.1:"),
        "{said}"
    );
    assert!(
        said.contains("\n  [FAIL] scopes: the token lacks"),
        "{said}"
    );
    assert!(
        said.contains("\n  [ok]   read contacts: one record"),
        "{said}"
    );
    assert!(said.contains("\n  [warn] rate limit:"), "{said}");
    assert!(said.contains("\n  [--]   write: not tested"), "{said}");
    assert!(!said.contains('\u{1b}'), "no colour codes: {said}");
    // a property that is no dropdown, and an upsert key that is not unique
    std::fs::write(
        dir.join("connections.yaml"),
        format!(
            "connections:\n  hubspot:\n    hubspot:\n      token: ${{HUBSPOT_TOKEN}}\n      base_url: {}\n      company_category_property: domain\n",
            sb.url()
        ),
    )
    .unwrap();
    let flow = std::fs::read_to_string(dir.join("companies-from-csv.yaml")).unwrap();
    std::fs::write(
        dir.join("companies-from-csv.yaml"),
        flow.replace("match_on: external_id", "match_on: name")
            .replace("  external_id: { path: $.erp_id, required: true }\n", ""),
    )
    .unwrap();
    let out = blocking({
        let dir = dir.clone();
        move || check(&dir, Some("any-token"), &["--format", "json"])
    })
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json_of(&out);
    let domain = find(&report, "category", "property", "domain");
    assert_eq!(
        (domain["exists"].clone(), domain["dropdown"].clone()),
        (json!(true), json!(false))
    );
    let key = find(&report, "match_on", "property", "name");
    assert_eq!(key["status"], "problem");
    assert!(
        key["message"]
            .as_str()
            .unwrap()
            .contains("does not require unique values"),
        "{key}"
    );
    assert_eq!(named(&report, "scopes")["status"], "ok");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_writes_nothing_unless_asked_and_then_archives_what_it_made() {
    let sb = Sandbox::start(SandboxConfig {
        demo_data: true,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = scaffold(tmp.path(), &sb.url(), "");
    let companies = sb.store().count("companies").unwrap();
    let out = blocking({
        let dir = dir.clone();
        move || check(&dir, Some("a-token"), &["hubspot"])
    })
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let writes: Vec<_> = sb
        .store()
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/crm/") && r.method != "GET")
        .collect();
    assert!(writes.is_empty(), "check wrote: {writes:?}");
    assert!(
        stdout(&out).ends_with("1 connection checked: 0 problems, 0 warnings\n"),
        "{}",
        stdout(&out)
    );

    let out = blocking({
        let dir = dir.clone();
        move || check(&dir, Some("a-token"), &["--write", "--format", "json"])
    })
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let report = json_of(&out);
    assert_eq!(report["write"], true);
    let write = named(&report, "write");
    assert_eq!(write["status"], "ok", "{write}");
    assert_eq!(write["object"], "companies");
    assert_eq!(write["archived"], true);
    let id = write["created"].as_str().unwrap();
    let name = write["name"].as_str().unwrap();
    assert!(name.starts_with("rivulet check 20"), "{name}");
    assert!(
        write["message"].as_str().unwrap().contains(&format!(
            "created company \"{name}\" (id {id}) and archived it"
        )),
        "{write}"
    );
    let record = sb.store().get("companies", id).unwrap().unwrap();
    assert_eq!(record["archived"], true, "{record}");
    assert_eq!(record["properties"]["name"], name);
    assert_eq!(sb.store().count("companies").unwrap(), companies);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_http_reachability_unset_secrets_and_usage_errors() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // a port nothing listens on
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = scaffold(
        tmp.path(),
        &sb.url(),
        &format!(
            "  erp:\n    http:\n      base_url: {}/_sandbox\n  gone:\n    http:\n      base_url: http://127.0.0.1:{closed_port}/api\n",
            sb.url()
        ),
    );
    let out = blocking({
        let dir = dir.clone();
        move || check(&dir, None, &["--format", "json"])
    })
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json_of(&out);
    let conns = report["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 3);
    // HUBSPOT_TOKEN is unset: named, not a crash
    assert_eq!(conns[0]["checks"][0]["check"], "connection");
    assert_eq!(conns[0]["checks"][0]["status"], "problem");
    assert!(
        conns[0]["checks"][0]["message"]
            .as_str()
            .unwrap()
            .contains("HUBSPOT_TOKEN"),
        "{report:#}"
    );
    assert_eq!(conns[1]["name"], "erp");
    assert_eq!(conns[1]["checks"][0]["check"], "reachable");
    assert_eq!(conns[1]["checks"][0]["status"], "ok", "any answer counts");
    assert_eq!(conns[1]["checks"][0]["status_code"], 404);
    assert_eq!(conns[2]["checks"][0]["status"], "problem");
    assert_eq!(report["summary"]["problems"], 2);

    // one connection by name; a wrong name is a usage error with a suggestion
    let out = blocking({
        let dir = dir.clone();
        move || check(&dir, None, &["erp"])
    })
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with("erp (HTTP, http://127.0.0.1:"),
        "{}",
        stdout(&out)
    );
    let out = blocking({
        let dir = dir.clone();
        move || check(&dir, None, &["hubspt"])
    })
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no connection `hubspt`")
            && stderr(&out).contains("did you mean `hubspot`?"),
        "{}",
        stderr(&out)
    );
    // invalid flows are not checked
    std::fs::write(dir.join("broken.yaml"), "name: broken\npol_every: 1s\n").unwrap();
    let out = blocking({
        let dir = dir.clone();
        move || check(&dir, Some("t"), &[])
    })
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not checking: the flows are invalid"),
        "{}",
        stderr(&out)
    );
    sb.shutdown().await;
}
