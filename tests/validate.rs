//! `rivulet validate` end to end: every fixture, every output format, every exit code.

mod common;

use common::{expectations, rivulet, root};
use predicates::prelude::*;
use serde_json::Value;

fn json_of(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[test]
fn example_flows_are_valid() {
    rivulet()
        .args(["validate", "flows"])
        .env("HUBSPOT_TOKEN", "x")
        .assert()
        .success();
}

#[test]
fn valid_fixtures_pass_without_warnings() {
    let out = rivulet()
        .args([
            "validate",
            "tests/fixtures/valid",
            "--deny-warnings",
            "--format",
            "json",
        ])
        .env("HUBSPOT_TOKEN", "x")
        .env("HUBSPOT_CLIENT_SECRET", "x")
        .env("HUBSPOT_REFRESH_TOKEN", "x")
        .env("ERP_TOKEN", "x")
        .output()
        .unwrap();
    let report = json_of(&out);
    assert_eq!(report["diagnostics"], Value::Array(vec![]), "{report:#}");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(report["valid"], true);
    let flows = report["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 5);
    // Mapping tests beside flows are not flows.
    assert!(
        report["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| !f["path"].as_str().unwrap().contains(".test."))
    );
}

/// Fixtures whose header cannot carry `# expect:` lines.
fn builtin_expectations(name: &str) -> Option<(u64, &'static str, &'static str)> {
    match name {
        "empty.yaml" => Some((1, "empty_file", "file is empty")),
        "binary.yaml" => Some((1, "yaml_syntax", "not UTF-8 text")),
        _ => None,
    }
}

#[test]
fn every_invalid_fixture_is_rejected_at_the_right_place() {
    let dir = root().join("tests/fixtures/invalid");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    assert!(
        entries.len() >= 30,
        "need at least 30 invalid fixtures, have {}",
        entries.len()
    );
    let mut failures = Vec::new();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let rel = path.strip_prefix(root()).unwrap().to_path_buf();
        let out = rivulet()
            .arg("validate")
            .arg(&rel)
            .arg("tests/fixtures/connections.yaml")
            .args(["--format", "json"])
            .env("HUBSPOT_TOKEN", "x")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(1) || stderr.contains("panicked") {
            failures.push(format!(
                "{name}: exit {:?}, stderr {stderr}",
                out.status.code()
            ));
            continue;
        }
        let report = json_of(&out);
        let diags = report["diagnostics"].as_array().unwrap().clone();
        let mut expected = expectations(&path);
        if let Some((line, code, message)) = builtin_expectations(&name) {
            expected.push(common::Expect {
                line,
                column: 1,
                code: code.into(),
                message: message.into(),
            });
        }
        assert!(!expected.is_empty(), "{name} has no expectations");
        for e in expected {
            let found = diags.iter().any(|d| {
                d["severity"] == "error"
                    && d["line"].as_u64() == Some(e.line)
                    && d["column"].as_u64() == Some(e.column)
                    && d["code"] == e.code.as_str()
                    && format!(
                        "{} (hint: {})",
                        d["message"].as_str().unwrap(),
                        d["hint"].as_str().unwrap_or("")
                    )
                    .contains(&e.message)
            });
            if !found {
                failures.push(format!(
                    "{name}: expected {}:{} {} {:?}; got {:#}",
                    e.line,
                    e.column,
                    e.code,
                    e.message,
                    Value::Array(diags.clone())
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn reports_all_errors_across_files_in_one_run() {
    let out = rivulet()
        .args(["validate", "tests/fixtures/invalid", "--format", "json"])
        .env("HUBSPOT_TOKEN", "x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = json_of(&out);
    let files: std::collections::HashSet<&str> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["file"].as_str().unwrap())
        .collect();
    assert!(files.len() >= 40, "errors from {} files only", files.len());
}

#[test]
fn human_output_shows_the_line_and_a_caret_and_hint() {
    rivulet()
        .args([
            "validate",
            "tests/fixtures/invalid/unknown-key-did-you-mean.yaml",
            "tests/fixtures/connections.yaml",
        ])
        .env("HUBSPOT_TOKEN", "x")
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "error: unknown key `pol_every` in `trigger.hubspot` [unknown_key]",
        ))
        .stdout(predicate::str::contains(
            "--> tests/fixtures/invalid/unknown-key-did-you-mean.yaml:9:5",
        ))
        .stdout(predicate::str::contains("9 |     pol_every: 15s"))
        .stdout(predicate::str::contains("|     ^^^^^^^^^"))
        .stdout(predicate::str::contains(
            "= hint: did you mean `poll_every`?",
        ))
        .stdout(predicate::str::contains("\x1b[").not());
}

#[test]
fn github_format_annotates_file_line_and_column() {
    rivulet()
        .args(["validate", "tests/fixtures/invalid/bad-event.yaml", "tests/fixtures/connections.yaml", "--format", "github"])
        .env("HUBSPOT_TOKEN", "x")
        .assert()
        .code(1)
        .stdout(predicate::str::is_match(r"(?m)^::error file=tests/fixtures/invalid/bad-event.yaml,line=6,col=9,title=rivulet invalid_value::`trigger.hubspot.on` is `new_records`.* \(hint: did you mean `new_record`\?\)$").unwrap());
}

#[test]
fn prints_api_calls_per_day_for_each_trigger() {
    rivulet()
        .args(["validate", "flows"])
        .assert()
        .success()
        .stdout(predicate::str::contains("new-contacts-to-file: polls HubSpot contacts every 15s on `hubspot`: 5,760 search calls/day"));
}

#[test]
fn warns_when_polling_exceeds_the_daily_limit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("connections.yaml"), "connections:\n  hs:\n    hubspot:\n      token: ${HUBSPOT_TOKEN}\n      daily_limit: 10000\n").unwrap();
    for (i, object) in ["contact", "company"].iter().enumerate() {
        std::fs::write(
            dir.path().join(format!("f{i}.yaml")),
            format!("name: f{i}\ntrigger:\n  hubspot: {{connection: hs, on: new_record, object: {object}, poll_every: 10s}}\nactions:\n  - file: {{path: out.jsonl}}\n"),
        )
        .unwrap();
    }
    let out = rivulet()
        .arg("validate")
        .arg(dir.path())
        .args(["--format", "json"])
        .env("HUBSPOT_TOKEN", "x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "a warning alone does not fail");
    let report = json_of(&out);
    let warning = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "daily_limit_exceeded")
        .expect("warning");
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("17,280 times a day"),
        "{warning}"
    );
    assert_eq!(warning["line"], 2);
    rivulet()
        .arg("validate")
        .arg(dir.path())
        .arg("--deny-warnings")
        .env("HUBSPOT_TOKEN", "x")
        .assert()
        .code(1);
}

#[test]
fn unset_env_vars_are_warnings_and_errors_when_strict() {
    let out = rivulet()
        .args(["validate", "flows", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report = json_of(&out);
    let d = &report["diagnostics"][0];
    assert_eq!(d["code"], "unset_env");
    assert_eq!(d["severity"], "warning");
    assert!(d["message"].as_str().unwrap().contains("`HUBSPOT_TOKEN`"));
    rivulet()
        .args(["validate", "flows", "--strict"])
        .assert()
        .code(1);
    rivulet()
        .args(["validate", "flows", "--deny-warnings"])
        .assert()
        .code(1);
}

#[test]
fn a_literal_token_is_never_echoed() {
    for format in ["human", "json", "github"] {
        rivulet()
            .args([
                "validate",
                "tests/fixtures/invalid/literal-token.yaml",
                "--format",
                format,
            ])
            .assert()
            .code(1)
            .stdout(predicate::str::contains("SENTINEL").not())
            .stderr(predicate::str::contains("SENTINEL").not());
    }
}

#[test]
fn usage_and_io_errors_exit_2() {
    rivulet()
        .args(["validate", "no/such/dir"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no/such/dir: no such file or directory",
        ));
    rivulet()
        .args(["validate", "--format", "xml"])
        .assert()
        .code(2);
    rivulet().args(["frobnicate"]).assert().code(2);
}

#[test]
fn a_single_flow_file_brings_its_connections() {
    rivulet()
        .args(["validate", "flows/new-contacts-to-file.yaml"])
        .env("HUBSPOT_TOKEN", "x")
        .env("SHOP_TOKEN", "x")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "checked 2 files (1 flow): 0 errors, 0 warnings",
        ));
}

#[test]
fn hostile_inputs_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("huge.yaml", format!("name: a\ndescription: \"{}\"\n", "x".repeat(5 * 1024 * 1024)).into_bytes()),
        ("bomb.yaml", b"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n".to_vec()),
        ("deep.yaml", ("a:\n".to_string() + &(1..300).map(|i| format!("{}b:\n", "  ".repeat(i))).collect::<String>()).into_bytes()),
        ("tabs.yaml", b"name:\ta\n\tactions: []\n".to_vec()),
        ("multi.yaml", b"name: a\n---\nname: b\n".to_vec()),
        ("scalar.yaml", b"just a string\n".to_vec()),
        ("latin1.yaml", b"name: caf\xe9\n".to_vec()),
        ("keys.yaml", b"? [a, b]\n: 1\n".to_vec()),
        ("anchors.yaml", b"name: &n a\nactions: *n\n".to_vec()),
    ];
    for (name, bytes) in &cases {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let out = rivulet()
        .arg("validate")
        .arg(dir.path())
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json_of(&out);
    for (name, _) in &cases {
        assert!(
            report["diagnostics"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["file"].as_str().unwrap().ends_with(name) && d["severity"] == "error"),
            "no error for {name}: {report:#}"
        );
    }
}
