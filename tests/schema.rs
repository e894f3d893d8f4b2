//! The published JSON Schemas: fresh, accepting every valid fixture, rejecting the invalid
//! fixtures a schema can catch — checked here with the `jsonschema` crate and, independently,
//! with `check-jsonschema` (PyPI), which `.ci/run` installs.

mod common;

use common::{expectations, rivulet, root};
use rivulet_spec::schema;
use std::path::{Path, PathBuf};

#[test]
fn checked_in_schemas_are_fresh() {
    for (file, value) in [
        (schema::FLOW_SCHEMA_FILE, schema::flow_schema()),
        (
            schema::CONNECTIONS_SCHEMA_FILE,
            schema::connections_schema(),
        ),
        (schema::TEST_SCHEMA_FILE, schema::test_schema()),
    ] {
        let on_disk = std::fs::read_to_string(root().join(file)).unwrap_or_default();
        assert!(
            on_disk == schema::to_pretty(value),
            "{file} is stale: run `cargo run -p rivulet -- schema --write schemas`"
        );
    }
    let printed = rivulet().args(["schema", "flow"]).output().unwrap();
    assert_eq!(
        String::from_utf8(printed.stdout).unwrap(),
        schema::to_pretty(schema::flow_schema())
    );
}

#[test]
fn schemas_are_draft_2020_12_with_descriptions() {
    let flow = schema::flow_schema();
    assert_eq!(
        flow["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let poll = &flow["$defs"]["HubSpotTrigger"]["properties"]["poll_every"];
    assert!(
        poll["description"]
            .as_str()
            .unwrap()
            .replace('\n', " ")
            .contains("5,760 calls a day")
    );
}

/// Codes of problems that the structure alone reveals, so a schema validator must see them too.
const STRUCTURAL: &[&str] = &[
    "unknown_key",
    "wrong_type",
    "missing_key",
    "invalid_value",
    "too_few",
    "out_of_range",
    "exactly_one",
    "invalid_duration",
];

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml" || e == "yml")
                && !p.to_string_lossy().contains(".test.")
        })
        .collect();
    v.sort();
    v
}

fn schema_for(node: &rivulet_spec::yaml::Node) -> &'static serde_json::Value {
    if node.get("connections").is_some() {
        schema::connections_schema()
    } else {
        schema::flow_schema()
    }
}

/// Mapping test files that must pass the test schema.
fn test_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [
        "flows",
        "tests/fixtures/mapping/pass",
        "tests/fixtures/mapping/fail",
    ] {
        files.extend(
            std::fs::read_dir(root().join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.to_string_lossy().ends_with(".test.yaml")),
        );
    }
    files.sort();
    files
}

/// The invalid fixtures that are wrong in structure only.
fn structurally_invalid() -> Vec<PathBuf> {
    yaml_files(&root().join("tests/fixtures/invalid"))
        .into_iter()
        .filter(|p| {
            let e = expectations(p);
            !e.is_empty() && e.iter().all(|e| STRUCTURAL.contains(&e.code.as_str()))
        })
        .collect()
}

#[test]
fn jsonschema_crate_agrees_with_the_fixtures() {
    for path in yaml_files(&root().join("tests/fixtures/valid")) {
        let node = rivulet_spec::yaml::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let validator = jsonschema::validator_for(schema_for(&node)).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&node.to_json())
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{} rejected: {errors:?}", path.display());
    }
    let tests = jsonschema::validator_for(schema::test_schema()).unwrap();
    for path in test_files() {
        let node = rivulet_spec::yaml::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let errors: Vec<String> = tests
            .iter_errors(&node.to_json())
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{} rejected: {errors:?}", path.display());
    }
    let malformed = root().join("tests/fixtures/mapping/malformed/keys.test.yaml");
    let node = rivulet_spec::yaml::parse(&std::fs::read_to_string(&malformed).unwrap()).unwrap();
    assert!(
        !tests.is_valid(&node.to_json()),
        "the test schema accepts a malformed test file"
    );
    let invalid = structurally_invalid();
    assert!(
        invalid.len() >= 10,
        "only {} structural fixtures",
        invalid.len()
    );
    for path in invalid {
        let node = rivulet_spec::yaml::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let validator = jsonschema::validator_for(schema_for(&node)).unwrap();
        assert!(
            !validator.is_valid(&node.to_json()),
            "{} accepted by the schema",
            path.display()
        );
    }
}

#[test]
fn check_jsonschema_agrees_with_the_fixtures() {
    let tool = std::env::var("CHECK_JSONSCHEMA").unwrap_or_else(|_| "check-jsonschema".into());
    if std::process::Command::new(&tool)
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install check-jsonschema (see .ci/run)"
        );
        eprintln!("skipping: {tool} is not installed (pip install check-jsonschema)");
        return;
    }
    let run = |schema_file: &str, files: &[PathBuf]| {
        std::process::Command::new(&tool)
            .arg("--schemafile")
            .arg(root().join(schema_file))
            .args(files)
            .output()
            .unwrap()
    };
    let (connections, flows): (Vec<PathBuf>, Vec<PathBuf>) =
        yaml_files(&root().join("tests/fixtures/valid"))
            .into_iter()
            .chain(yaml_files(&root().join("flows")))
            .partition(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .starts_with("connections:")
                    || p.ends_with("connections.yaml")
            });
    for (schema_file, files) in [
        (schema::FLOW_SCHEMA_FILE, &flows),
        (schema::CONNECTIONS_SCHEMA_FILE, &connections),
        (schema::TEST_SCHEMA_FILE, &test_files()),
    ] {
        let out = run(schema_file, files);
        assert!(
            out.status.success(),
            "check-jsonschema rejected valid files: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    for path in structurally_invalid() {
        let text = std::fs::read_to_string(&path).unwrap();
        let schema_file = if text.contains("\nconnections:") {
            schema::CONNECTIONS_SCHEMA_FILE
        } else {
            schema::FLOW_SCHEMA_FILE
        };
        let out = run(schema_file, std::slice::from_ref(&path));
        assert_eq!(
            out.status.code(),
            Some(1),
            "check-jsonschema accepted {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
