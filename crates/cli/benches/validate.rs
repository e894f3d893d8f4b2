//! Benchmark: `rivulet validate` on 1,000 generated flow files (issue goal: under 1 s on a
//! 2-core machine, release build). Prints figures rather than asserting them.
//!
//! `cargo bench -p rivulet --bench validate` — set `RIVULET_BENCH_KEEP=DIR` to keep the
//! generated flows in DIR for a look.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const FLOWS: usize = 1_000;

/// Writes `count` realistic, valid flows (triggers, schedules, sources, mappings with paths,
/// templates and helpers, every kind of action) plus one connections file.
fn generate(dir: &Path, count: usize) {
    std::fs::write(
        dir.join("connections.yaml"),
        "connections:\n  hubspot:\n    hubspot:\n      token: ${HUBSPOT_TOKEN}\n      daily_limit: 100000000\n  erp:\n    http:\n      base_url: https://erp.example.com\n      headers: { Authorization: \"Bearer ${ERP_TOKEN}\" }\n",
    )
    .unwrap();
    for i in 0..count {
        let head = match i % 4 {
            0 => format!("trigger:\n  hubspot:\n    connection: hubspot\n    on: new_record\n    object: contact\n    poll_every: {}s\n    properties: [email, firstname, lastname]\n", 10 + i % 50),
            1 => "trigger:\n  hubspot:\n    connection: hubspot\n    on: new_or_updated_record\n    object: company\n    poll_every: 5m\n".to_string(),
            2 => format!("schedule:\n  cron: \"*/{} * * * *\"\nsource:\n  file: {{ path: data/in-{i}.csv }}\n", 1 + i % 30),
            _ => "schedule:\n  every: 1h\nsource:\n  http:\n    connection: erp\n    path: /customers\n    records: $.data\n    pagination: { cursor: { path: $.next, param: cursor } }\n".to_string(),
        };
        let action = match i % 3 {
            0 => {
                "  - hubspot: { connection: hubspot, operation: upsert, object: contact, match_on: email }\n"
            }
            1 => "  - file: { path: out/x.jsonl }\n",
            _ => "  - http: { connection: erp, path: \"/c/{{record.id}}\", batch_size: 20 }\n",
        };
        let flow = format!(
            "# yaml-language-server: $schema=../schemas/flow.schema.json\nname: flow-{i:04}\ndescription: Generated flow number {i}.\n{head}mapping:\n  email: \"{{{{lowercase record.email}}}}\"\n  firstname: {{ path: $.first_name }}\n  lastname: {{ path: $.last_name, default: \"\" }}\n  full_name: \"{{{{record.first_name}}}} {{{{record.last_name}}}}\"\n  numberofemployees: {{ path: $.size, type: integer }}\n  annualrevenue: {{ path: $.revenue, type: number }}\n  created: {{ path: $.created_at, type: datetime }}\n  tier: {{ path: $.tier, type: enumeration, map: {{ A: gold, B: silver }} }}\n  city: \"{{{{trim record.address.city}}}}\"\n  note: {{ value: imported }}\nactions:\n{action}"
        );
        std::fs::write(dir.join(format!("flow-{i:04}.yaml")), flow).unwrap();
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful either way.
    let dir = tempfile::tempdir().unwrap();
    let keep = std::env::var_os("RIVULET_BENCH_KEEP");
    let flows_dir = keep.as_deref().map(Path::new).unwrap_or(dir.path());
    std::fs::create_dir_all(flows_dir).unwrap();
    generate(flows_dir, FLOWS);

    // In-process: load, parse, check structure and rules, compile every mapping.
    let options = rivulet_spec::validate::Options::default();
    let mut in_process = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let v = rivulet_spec::validate_paths(&[flows_dir.to_path_buf()], &options).unwrap();
        in_process.push(start.elapsed());
        assert_eq!(v.flows.len(), FLOWS);
        assert_eq!(
            v.count(rivulet_spec::Severity::Error),
            0,
            "{:?}",
            v.diagnostics.first()
        );
    }

    // The binary, as CI runs it.
    let exe = env!("CARGO_BIN_EXE_rivulet");
    let mut binary = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let out = Command::new(exe)
            .arg("validate")
            .arg(flows_dir)
            .args(["--format", "json"])
            .env("HUBSPOT_TOKEN", "x")
            .output()
            .unwrap();
        binary.push(start.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    println!("validate {FLOWS} generated flow files + 1 connections file");
    println!(
        "  in-process (median of 5): {:>8.1} ms",
        median(&mut in_process).as_secs_f64() * 1e3
    );
    println!(
        "  rivulet validate --format json (median of 5, wall clock): {:>8.1} ms",
        median(&mut binary).as_secs_f64() * 1e3
    );
}
