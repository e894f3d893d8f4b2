//! Records checked against their known shape by `rivulet validate` (a HubSpot trigger's fields
//! and fetched properties, a CSV file's columns), and nulls counting as absent in `rivulet map`.

mod common;

use common::rivulet;
use serde_json::{Value, json};
use std::path::Path;

const CONNECTIONS: &str = "connections:\n  hubspot:\n    hubspot:\n      token: ${HUBSPOT_TOKEN}\n      api_version: \"2026-03\"\n";

/// A folder with the connections file and `flow.yaml`.
fn folder(flow: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("connections.yaml"), CONNECTIONS).unwrap();
    std::fs::write(dir.path().join("flow.yaml"), flow).unwrap();
    dir
}

fn flow_path(dir: &Path) -> String {
    dir.join("flow.yaml").to_string_lossy().into_owned()
}

/// `rivulet validate --format json` of the folder's flow: the exit code and the diagnostics of
/// the flow file.
fn validate(dir: &Path, extra: &[&str]) -> (Option<i32>, Vec<Value>) {
    let out = rivulet()
        .arg("validate")
        .arg(flow_path(dir))
        .args(["--format", "json"])
        .args(extra)
        .env("HUBSPOT_TOKEN", "x")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    let diagnostics = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["file"].as_str().unwrap().ends_with("flow.yaml"))
        .cloned()
        .collect();
    (out.status.code(), diagnostics)
}

fn trigger_flow(mapping: &str) -> String {
    format!(
        "name: contacts\ntrigger:\n  hubspot:\n    connection: hubspot\n    on: new_record\n    object: contact\n    poll_every: 15s\n    properties: [email, firstname, phone]\nmapping:\n{mapping}actions:\n  - file: {{ path: out.jsonl }}\n"
    )
}

#[test]
fn a_misspelled_record_field_is_an_error_with_its_place_and_a_did_you_mean() {
    let dir = folder(&trigger_flow("  email: \"{{record.propertes.email}}\"\n"));
    let (code, diags) = validate(dir.path(), &[]);
    assert_eq!(code, Some(1));
    assert_eq!(diags.len(), 1, "{diags:#?}");
    let d = &diags[0];
    assert_eq!(
        (
            &d["severity"],
            &d["code"],
            &d["line"],
            &d["column"],
            &d["hint"]
        ),
        (
            &json!("error"),
            &json!("unknown_record_field"),
            &json!(10),
            &json!(20),
            &json!("did you mean `record.properties.email`?")
        )
    );
    assert_eq!(
        d["message"],
        "mapping `email`: `record.propertes.email` reads `propertes`, which HubSpot records do not have (they have `id`, `createdAt`, `updatedAt`, `archived` and `properties`)"
    );
    // The human format points a caret at the misspelled field.
    let out = rivulet()
        .arg("validate")
        .arg(flow_path(dir.path()))
        .env("HUBSPOT_TOKEN", "x")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("flow.yaml:10:20"), "{text}");
    assert!(
        text.contains(
            "  email: \"{{record.propertes.email}}\"\n     |                    ^^^^^^^^^"
        ),
        "{text}"
    );
    assert!(
        text.contains("= hint: did you mean `record.properties.email`?"),
        "{text}"
    );
}

#[test]
fn a_property_the_trigger_does_not_fetch_is_a_warning_with_a_hint() {
    let dir = folder(&trigger_flow(
        "  email: \"{{record.properties.email}}\"\n  city: { path: $.properties.city, default: \"\" }\n  first: \"{{lowercase record.properties.firstnme}}\"\n",
    ));
    let (code, diags) = validate(dir.path(), &[]);
    assert_eq!(code, Some(0), "{diags:#?}");
    let got: Vec<(&str, &str, u64, u64, &str)> = diags
        .iter()
        .map(|d| {
            (
                d["severity"].as_str().unwrap(),
                d["code"].as_str().unwrap(),
                d["line"].as_u64().unwrap(),
                d["column"].as_u64().unwrap(),
                d["hint"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "warning",
                "unfetched_property",
                11,
                30,
                "add `city` to the trigger's `properties:` (line 8)"
            ),
            (
                "warning",
                "unfetched_property",
                12,
                41,
                "did you mean `firstname`? If not, add `firstnme` to the trigger's `properties:` (line 8)"
            ),
        ]
    );
    assert_eq!(
        diags[0]["message"],
        "mapping `city`: `$.properties.city` reads the property `city`, which the trigger does not fetch"
    );
    // A warning fails CI under --deny-warnings.
    assert_eq!(validate(dir.path(), &["--deny-warnings"]).0, Some(1));
}

#[test]
fn a_csv_source_reading_a_missing_column_gets_a_warning() {
    let dir = folder(
        "name: customers\nschedule: { every: 1h }\nsource:\n  file: { path: data/customers.csv }\nmapping:\n  email: \"{{lowercase record.emial}}\"\n  name: \"{{record.name}}\"\nactions:\n  - file: { path: out.jsonl }\n",
    );
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(
        dir.path().join("data/customers.csv"),
        "email,name,phone\nada@example.com,Ada,1\n",
    )
    .unwrap();
    let (code, diags) = validate(dir.path(), &[]);
    assert_eq!(code, Some(0));
    assert_eq!(diags.len(), 1, "{diags:#?}");
    let d = &diags[0];
    assert_eq!(
        (&d["severity"], &d["code"], &d["line"], &d["column"]),
        (
            &json!("warning"),
            &json!("unknown_column"),
            &json!(6),
            &json!(30)
        )
    );
    assert_eq!(
        d["message"],
        "mapping `email`: `record.emial` reads the column `emial`, which `data/customers.csv` does not have"
    );
    assert_eq!(
        d["hint"],
        "did you mean `email`? (its columns: `email`, `name`, `phone`)"
    );
    // Without the file there is nothing to check against.
    std::fs::remove_file(dir.path().join("data/customers.csv")).unwrap();
    assert_eq!(
        validate(dir.path(), &["--deny-warnings"]),
        (Some(0), vec![])
    );
}

#[test]
fn map_gives_the_default_for_a_null_property() {
    let dir = folder(&trigger_flow(
        "  email: { template: \"{{lowercase record.properties.email}}\", default: unknown@example.com }\n  phone: { path: $.properties.phone, default: none }\n  first: \"{{record.properties.firstname}}\"\n",
    ));
    let out = rivulet()
        .args(["map", &flow_path(dir.path()), "--mode", "native"])
        .write_stdin(
            "{\"id\": \"1\", \"properties\": {\"email\": null, \"phone\": null, \"firstname\": null}}\n{\"id\": \"2\", \"properties\": {\"email\": \"A@B.EXAMPLE\", \"phone\": \"12\", \"firstname\": \"Ada\"}}\n",
        )
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        records,
        [
            // Without a default, a null property is the empty value, as before.
            json!({ "email": "unknown@example.com", "phone": "none", "first": "" }),
            json!({ "email": "a@b.example", "phone": "12", "first": "Ada" }),
        ]
    );
}

#[test]
fn map_fails_a_required_field_whose_property_is_null() {
    let dir = folder(&trigger_flow(
        "  email: { template: \"{{record.properties.email}}\", required: true }\n  phone: { path: $.properties.phone, required: true }\n",
    ));
    let out = rivulet()
        .args(["map", &flow_path(dir.path())])
        .write_stdin("{\"id\": \"1\", \"properties\": {\"email\": null, \"phone\": null}}\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "record 1: field email: is required but record.properties.email is null (from {{record.properties.email}})"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "record 1: field phone: is required but the value is null (from $.properties.phone)"
        ),
        "{stderr}"
    );
}
