//! `rivulet test` and `rivulet map` end to end: passing and failing tests, diffs, the summary
//! line, JSON output, malformed test files, and mapping records from files and stdin.

mod common;

use common::rivulet;
use predicates::prelude::*;
use serde_json::{Value, json};

const FIXTURES: &str = "tests/fixtures/mapping";

fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json_of(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout_of(output)))
}

fn lines_of(output: &std::process::Output) -> Vec<Value> {
    stdout_of(output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// rivulet test

#[test]
fn example_flow_tests_pass() {
    let out = rivulet().args(["test", "flows"]).output().unwrap();
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    // Every example flow has tests.
    for flow in [
        "new-contacts-to-file",
        "companies-from-erp",
        "companies-to-webhook",
        "customers-to-contacts",
    ] {
        let prefix = format!("ok   flows/{flow}.test.yaml: ");
        assert!(
            text.lines().filter(|l| l.starts_with(&prefix)).count() >= 3,
            "{flow}: {text}"
        );
    }
    let summary = text.lines().last().unwrap();
    let passed = text.lines().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(summary, format!("{passed} passed, 0 failed"));
}

#[test]
fn default_path_is_flows() {
    rivulet()
        .arg("test")
        .assert()
        .success()
        .stdout(predicate::str::contains(", 0 failed\n"));
}

#[test]
fn validate_still_skips_test_files() {
    rivulet()
        .args(["validate", "flows"])
        .env("HUBSPOT_TOKEN", "x")
        .assert()
        .success();
}

#[test]
fn passing_tests_cover_modes_context_and_exact() {
    let out = rivulet()
        .args(["test", &format!("{FIXTURES}/pass")])
        .output()
        .unwrap();
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(
        "ok   tests/fixtures/mapping/pass/contacts.test.yaml: maps in wire mode by default\n"
    ));
    assert!(text.ends_with("\n6 passed, 0 failed\n"), "{text}");
}

#[test]
fn a_flow_file_runs_its_tests() {
    rivulet()
        .args(["test", &format!("{FIXTURES}/pass/contacts.yaml")])
        .assert()
        .success()
        .stdout(predicate::str::contains("6 passed, 0 failed"));
}

#[test]
fn failures_show_a_diff_and_exit_1() {
    let out = rivulet()
        .args(["test", &format!("{FIXTURES}/fail/orders.test.yaml")])
        .output()
        .unwrap();
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let file = "tests/fixtures/mapping/fail/orders.test.yaml";
    assert!(text.contains(&format!("ok   {file}: passes\n")), "{text}");
    // A changed value: expected vs got, field by field; 12.0 equals 12; a missing field.
    assert!(
        text.contains(&format!(
            "FAIL {file}:6: differs\n    customer:\n      expected: \"ACME\"\n      got:      \"acme\"\n    shipping: missing from the output (expected \"express\")\n"
        )),
        "{text}"
    );
    assert!(!text.contains("    total:\n      expected: 12"), "{text}");
    // exact: fields not listed.
    assert!(
        text.contains("    total: not expected (got 1; `exact: true` lists every field)"),
        "{text}"
    );
    // expect_error that does not come, or is another error.
    assert!(text.contains("expected an error containing \"total\", but the record mapped"));
    assert!(text.contains(
        "expected an error containing \"placed\", but the errors were:\n    field total: \"lots\" is not a number (from $.total)"
    ));
    // A record that fails while fields were expected.
    assert!(text.contains(
        "the record failed to map:\n    field customer: missing variable record.customer"
    ));
    // Wire mode compares strings: a hint explains.
    assert!(
        text.contains("in wire mode every value is a string"),
        "{text}"
    );
    assert!(text.ends_with("\n1 passed, 6 failed\n"), "{text}");
}

#[test]
fn json_format_is_stable() {
    let out = rivulet()
        .args([
            "test",
            &format!("{FIXTURES}/fail"),
            &format!("{FIXTURES}/pass"),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = json_of(&out);
    assert_eq!(report["version"], 1);
    assert_eq!(report["passed"], 7);
    assert_eq!(report["failed"], 6);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 13);
    let differs = results.iter().find(|r| r["name"] == "differs").unwrap();
    assert_eq!(
        differs,
        &json!({
            "file": "tests/fixtures/mapping/fail/orders.test.yaml",
            "name": "differs",
            "line": 6,
            "status": "failed",
            "diff": [
                { "field": "customer", "kind": "changed", "expected": "ACME", "got": "acme" },
                { "field": "shipping", "kind": "missing", "expected": "express" },
            ],
            "errors": [],
        })
    );
    let unexpected = results
        .iter()
        .find(|r| r["name"] == "has unexpected fields")
        .unwrap();
    assert_eq!(
        unexpected["diff"],
        json!([{ "field": "total", "kind": "unexpected", "got": 1 }])
    );
    let other_error = results
        .iter()
        .find(|r| r["name"] == "expects another error")
        .unwrap();
    assert_eq!(
        other_error["errors"][1],
        "field total: \"lots\" is not a number (from $.total)"
    );
    let passed = results.iter().find(|r| r["name"] == "passes").unwrap();
    assert_eq!(passed["status"], "passed");
    assert_eq!(passed["diff"], json!([]));
    assert_eq!(passed["errors"], json!([]));
}

#[test]
fn malformed_test_files_get_located_errors() {
    let out = rivulet()
        .args(["test", &format!("{FIXTURES}/malformed")])
        .output()
        .unwrap();
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = "tests/fixtures/mapping/malformed";
    for expected in [
        // The good test of a file still runs.
        format!("ok   {dir}/keys.test.yaml: good"),
        format!(
            "{dir}/keys.test.yaml:7:5: error: unknown key `expct` in `tests[1]` (hint: did you mean `expect`?)"
        ),
        format!(
            "{dir}/keys.test.yaml:10:11: error: `tests[2].mode` is `wires`, which is not one of: wire, native (hint: did you mean `wire`?)"
        ),
        format!("FAIL {dir}/keys.test.yaml:12: (test 4, without a name)"),
        format!("{dir}/keys.test.yaml:12:5: error: `tests[3]` is missing the required key `name`"),
        format!("{dir}/keys.test.yaml:14:12: error: `tests[3].exact` must be true or false"),
        format!("{dir}/keys.test.yaml:15:5: error: `tests[4]` must be a mapping, found a string"),
        format!(
            "{dir}/shape.test.yaml:1:1: error: unknown key `test` (hint: did you mean `tests`?)"
        ),
        format!("{dir}/syntax.test.yaml:4:11: error: "),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    assert!(text.ends_with("\n1 passed, 6 failed\n"), "{text}");
}

#[test]
fn an_invalid_flow_fails_its_tests_with_its_diagnostics() {
    let out = rivulet()
        .args([
            "test",
            &format!("{FIXTURES}/invalid-flow"),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = json_of(&out);
    assert_eq!(report["failed"], 2);
    for result in report["results"].as_array().unwrap() {
        let error = result["errors"][0].as_str().unwrap();
        assert!(
            error.starts_with("tests/fixtures/mapping/invalid-flow/broken.yaml:6:9: error:")
                && error.contains("lowercse"),
            "{error}"
        );
    }
    // Human output shows the diagnostics once.
    let out = rivulet()
        .args(["test", &format!("{FIXTURES}/invalid-flow")])
        .output()
        .unwrap();
    let text = stdout_of(&out);
    assert_eq!(text.matches("lowercse").count(), 1, "{text}");
    assert!(text.contains("the flow is invalid (see above)"), "{text}");
}

#[test]
fn a_test_file_without_its_flow_fails() {
    rivulet()
        .args(["test", &format!("{FIXTURES}/orphan")])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "no flow tests/fixtures/mapping/orphan/lonely.yaml beside this test file",
        ));
}

#[test]
fn no_test_files_or_missing_paths_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    rivulet()
        .arg("test")
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no mapping tests found in"));
    rivulet()
        .args(["test", "no/such/dir"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no/such/dir"));
    rivulet()
        .args(["test", "flows/connections.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a test file"));
}

#[test]
fn hostile_test_files_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("f.yaml"),
        std::fs::read(common::root().join(FIXTURES).join("malformed/keys.yaml")).unwrap(),
    )
    .unwrap();
    let cases: [&[u8]; 9] = [
        b"",
        b"tests:\n",
        b"tests: []\n",
        b"tests: 3\n",
        b"- a\n- b\n",
        b"tests:\n  - name: x\n    input: 3\n    expect: [1]\n",
        b"tests:\n  - name: x\n    input: {}\n    expect: {}\n    expect_error: 1\n    now: yesterday\n",
        b"\xff\xfe binary",
        b"tests:\n  - &a [*a]\n",
    ];
    for text in cases {
        std::fs::write(dir.path().join("f.test.yaml"), text).unwrap();
        let out = rivulet().arg("test").arg(dir.path()).output().unwrap();
        let stdout = stdout_of(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{:?}: {stdout}{}",
            String::from_utf8_lossy(text),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("FAIL"), "{stdout}");
        assert!(stdout.contains("f.test.yaml:"), "{stdout}");
        assert!(stdout.ends_with(" failed\n"), "{stdout}");
    }
}

// ---------------------------------------------------------------------------------------------
// rivulet map

#[test]
fn map_a_file_of_json_lines_in_wire_mode() {
    let out = rivulet()
        .args([
            "map",
            &format!("{FIXTURES}/pass/contacts.yaml"),
            "--input",
            &format!("{FIXTURES}/pass/contacts.jsonl"),
            "--now",
            "2026-01-01T00:00:00Z",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let records = lines_of(&out);
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[0],
        json!({
            "email": "ada@example.com",
            "firstname": "Ada",
            "employees": "12",
            "vip": "true",
            "signed_up": "1714521600000",
            "stamp": "fixture-contacts/map/2026-01-01T00:00:00Z",
        })
    );
    assert_eq!(records[1]["email"], "grace@example.com");
    assert_eq!(records[1]["employees"], "0");
}

#[test]
fn map_native_mode_and_json_array_input() {
    let out = rivulet()
        .args([
            "map",
            &format!("{FIXTURES}/pass/contacts.yaml"),
            "--input",
            &format!("{FIXTURES}/pass/contacts-array.json"),
            "--mode",
            "native",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let records = lines_of(&out);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["employees"], 0);
    assert_eq!(records[0]["vip"], false);
    assert_eq!(records[1]["employees"], 3);
}

#[test]
fn map_reads_json_lines_on_stdin_by_flow_name() {
    let out = rivulet()
        .args(["map", "customers-to-contacts"])
        .write_stdin(
            "{\"email\": \" Ada@Example.COM\", \"name\": \"Ada Lovelace\"}\n\n{\"email\": \"g@x.org\", \"name\": \"Grace\"}\n",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let records = lines_of(&out);
    assert_eq!(
        records,
        vec![
            json!({"email": "ada@example.com", "firstname": "Ada", "lastname": "Lovelace", "phone": "", "lifecyclestage": "customer"}),
            json!({"email": "g@x.org", "firstname": "Grace", "lastname": "Grace", "phone": "", "lifecyclestage": "customer"}),
        ]
    );
    // `-` is stdin too; a flow writing a file maps natively by default.
    let out = rivulet()
        .args(["map", "new-contacts-to-file", "--input", "-"])
        .write_stdin(
            r#"{"id": "1", "properties": {"email": "a@b.c", "firstname": "A", "lastname": "B"}, "createdAt": "1700000000000"}"#,
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(lines_of(&out)[0]["created"], "2023-11-14T22:13:20Z");
}

#[test]
fn map_pretty_prints() {
    rivulet()
        .args(["map", "companies-to-webhook", "--pretty"])
        .write_stdin(r#"{"id": "7", "properties": {"name": "Acme"}, "updatedAt": "2026-01-02"}"#)
        .assert()
        .success()
        .stdout("{\n  \"hubspot_id\": \"7\",\n  \"name\": \"Acme\",\n  \"domain\": \"\",\n  \"updated_at\": \"2026-01-02T00:00:00Z\"\n}\n");
}

#[test]
fn map_reports_failed_records_and_exits_1() {
    let out = rivulet()
        .args([
            "map",
            &format!("{FIXTURES}/pass/contacts.yaml"),
            "--input",
            &format!("{FIXTURES}/pass/bad-record.jsonl"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let records = lines_of(&out);
    assert_eq!(records.len(), 2, "the good records are still mapped");
    assert_eq!(records[1]["email"], "cy@example.com");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("record 2: field employees: \"many\" is not an integer (from $.employees)\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("record 3 (line 3): not a JSON object"),
        "{stderr}"
    );
    // Invalid JSON on stdin.
    rivulet()
        .args(["map", &format!("{FIXTURES}/pass/contacts.yaml")])
        .write_stdin("{\"email\": \"a@b.c\", \"name\": \"A\"}\nnot json\n")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("record 2 (line 2): invalid JSON"));
}

#[test]
fn map_usage_errors_exit_2_and_invalid_flows_exit_1() {
    rivulet()
        .args(["map", "companies-from-erb"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no flow named `companies-from-erb` in flows (did you mean `companies-from-erp`?)",
        ));
    rivulet().args(["map", "flows/nope.yaml"]).assert().code(2);
    rivulet()
        .args(["map", "new-contacts-to-file", "--input", "no/such.jsonl"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no/such.jsonl"));
    rivulet()
        .args(["map", "new-contacts-to-file", "--mode", "wired"])
        .assert()
        .code(2);
    rivulet()
        .args(["map", &format!("{FIXTURES}/invalid-flow/broken.yaml")])
        .write_stdin("{}\n")
        .assert()
        .code(1)
        .stdout("")
        .stderr(
            predicate::str::contains("lowercse")
                .and(predicate::str::contains("the flow is invalid")),
        );
}
