//! A 20-field mapping (15 simple paths, 5 templates with helpers) applied to one record.
//! Target (issue #4): at least 100,000 records/s on one core.

use chrono::{TimeZone, Utc};
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use indexmap::IndexMap;
use rivulet_mapping::{Context, FieldSpec, Mapping, OutputMode};
use serde_json::json;
use std::hint::black_box;

fn mapping() -> Mapping {
    subset(|_| true)
}

fn subset(keep: impl Fn(&FieldSpec) -> bool) -> Mapping {
    let spec = json!({
        // 15 paths of various types
        "name": { "path": "$.company_name" },
        "domain": { "path": "$.website", "trim": true },
        "phone": { "path": "$.contact.phone" },
        "city": { "path": "$.address.city" },
        "zip": { "path": "$.address.zip" },
        "country": { "path": "$.address.country" },
        "numberofemployees": { "path": "$.employees", "type": "integer" },
        "annualrevenue": { "path": "$.revenue", "type": "number" },
        "is_customer": { "path": "$.active", "type": "bool" },
        "founded": { "path": "$.founded", "type": "date" },
        "erp_updated": { "path": "$.updated_at", "type": "datetime" },
        "company_category": {
            "path": "$.segment", "type": "enumeration",
            "map": { "SMB": "small_business", "ENT": "enterprise" }
        },
        "industries": { "path": "$.industries", "type": "multi_enumeration" },
        "erp_id": { "path": "$.id" },
        "first_sku": { "path": "$.lines[0].sku" },
        // 5 templates with helpers
        "display_name": "{{uppercase record.company_name}} ({{record.address.country}})",
        "slug": "{{lowercase (replace record.company_name \" \" \"-\")}}",
        "contact_first": "{{first (split record.contact.name \" \")}}",
        "created_day": { "template": "{{date_format record.updated_at \"%Y-%m-%d\"}}", "type": "date" },
        "price": { "template": "{{number_format record.revenue 2}}", "type": "number" },
    });
    let mut fields: IndexMap<String, FieldSpec> = serde_json::from_value(spec).unwrap();
    assert_eq!(fields.len(), 20);
    fields.retain(|_, f| keep(f));
    Mapping::compile(&fields).unwrap()
}

fn record() -> serde_json::Value {
    json!({
        "id": "C-10042",
        "company_name": "Acme Tools GmbH",
        "website": " acme-tools.example ",
        "contact": { "name": "Ada Lovelace", "phone": "+44 20 7946 0000" },
        "address": { "city": "Berlin", "zip": "10115", "country": "DE" },
        "employees": 250,
        "revenue": 12500000.5,
        "active": "yes",
        "founded": "1999-04-01",
        "updated_at": "2024-05-01T10:30:00Z",
        "segment": "SMB",
        "industries": ["manufacturing", "retail"],
        "lines": [{ "sku": "A-1", "qty": 2 }, { "sku": "B-2", "qty": 1 }]
    })
}

fn bench(c: &mut Criterion) {
    let m = mapping();
    let rec = record();
    let ctx = Context::new(
        "bench",
        "run-1",
        Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap(),
    );
    assert!(m.apply(&rec, &ctx, OutputMode::Wire).is_ok());
    let mut g = c.benchmark_group("mapping");
    g.throughput(Throughput::Elements(1));
    g.bench_function("20_fields_wire", |b| {
        b.iter(|| m.apply(black_box(&rec), &ctx, OutputMode::Wire).unwrap())
    });
    g.bench_function("20_fields_native", |b| {
        b.iter(|| m.apply(black_box(&rec), &ctx, OutputMode::Native).unwrap())
    });
    let is_template = |f: &FieldSpec| match f {
        FieldSpec::Template(_) => true,
        FieldSpec::Detailed(d) => d.template.is_some(),
    };
    let paths = subset(|f| !is_template(f));
    g.bench_function("15_paths_only", |b| {
        b.iter(|| {
            paths
                .apply(black_box(&rec), &ctx, OutputMode::Wire)
                .unwrap()
        })
    });
    let templates = subset(is_template);
    g.bench_function("5_templates_only", |b| {
        b.iter(|| {
            templates
                .apply(black_box(&rec), &ctx, OutputMode::Wire)
                .unwrap()
        })
    });
    g.finish();
}

/// On-CPU time of the benchmark thread (Linux `/proc/thread-self/schedstat`), so that other
/// processes sharing the machine do not count: "records/s on one core". Falls back to wall
/// time where schedstat is unavailable.
struct ThreadCpu;

fn cpu_ns() -> Option<u64> {
    // sched_yield makes the kernel account the running thread's time up to now.
    std::thread::yield_now();
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

impl Measurement for ThreadCpu {
    type Intermediate = (Option<u64>, std::time::Instant);
    type Value = f64;
    fn start(&self) -> Self::Intermediate {
        (cpu_ns(), std::time::Instant::now())
    }
    fn end(&self, (cpu, wall): Self::Intermediate) -> f64 {
        match (cpu, cpu_ns()) {
            (Some(a), Some(b)) => (b - a) as f64,
            _ => wall.elapsed().as_nanos() as f64,
        }
    }
    fn add(&self, a: &f64, b: &f64) -> f64 {
        a + b
    }
    fn zero(&self) -> f64 {
        0.0
    }
    fn to_f64(&self, v: &f64) -> f64 {
        *v
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, _typical: f64, values: &mut [f64]) -> &'static str {
        values.iter_mut().for_each(|v| *v /= 1e3);
        "µs (cpu)"
    }
    fn scale_throughputs(&self, typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let n = match t {
            Throughput::Elements(n) => *n as f64,
            _ => 1.0,
        };
        let _ = typical;
        values.iter_mut().for_each(|v| *v = n * 1e9 / *v);
        "records/s (cpu)"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn bench_cpu(c: &mut Criterion<ThreadCpu>) {
    let m = mapping();
    let rec = record();
    let ctx = Context::new(
        "bench",
        "run-1",
        Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap(),
    );
    let mut g = c.benchmark_group("mapping_cpu");
    g.throughput(Throughput::Elements(1));
    g.bench_function("20_fields_wire", |b| {
        b.iter(|| m.apply(black_box(&rec), &ctx, OutputMode::Wire).unwrap())
    });
    g.finish();
}

/// Compile times of hostile and large templates (printed; `limits` bounds them): refusals are
/// decided by a linear scan before Handlebars parses anything, and Handlebars' own compile time
/// (placeholders × length) is bounded by the size limits.
fn compile_times(_: &mut Criterion) {
    use rivulet_mapping::limits::{
        MAX_TEMPLATE_BYTES, MAX_TEMPLATE_DEPTH, MAX_TEMPLATE_PLACEHOLDERS,
    };
    let one = "{{record.a}} ";
    let pad = "x".repeat(MAX_TEMPLATE_BYTES - one.len() * MAX_TEMPLATE_PLACEHOLDERS);
    let cases = [
        ("16,000 placeholders", one.repeat(16_000), false),
        ("100,000 placeholders", one.repeat(100_000), false),
        (
            "10,000 nested {{#if}}",
            format!(
                "{}x{}",
                "{{#if a}}".repeat(10_000),
                "{{/if}}".repeat(10_000)
            ),
            false,
        ),
        (
            "3,000 nested subexpressions",
            format!("{{{{x {}y{}}}}}", "(x ".repeat(3_000), ")".repeat(3_000)),
            false,
        ),
        (
            "256 placeholders after 13 KiB of text (largest allowed)",
            format!("{pad}{}", one.repeat(MAX_TEMPLATE_PLACEHOLDERS)),
            true,
        ),
        (
            "64 nested {{#if}} (deepest allowed)",
            format!(
                "{}x{}",
                "{{#if record.a}}".repeat(MAX_TEMPLATE_DEPTH),
                "{{/if}}".repeat(MAX_TEMPLATE_DEPTH)
            ),
            true,
        ),
    ];
    println!("\ncompile times (best of 5):");
    for (what, template, allowed) in cases {
        let mut fields = IndexMap::new();
        fields.insert("f".to_owned(), FieldSpec::template(template));
        let mut best = std::time::Duration::MAX;
        for _ in 0..5 {
            let t0 = std::time::Instant::now();
            let r = Mapping::compile(black_box(&fields));
            best = best.min(t0.elapsed());
            assert_eq!(r.is_ok(), allowed, "{what}");
        }
        let verdict = if allowed { "compiled" } else { "refused" };
        println!("  {what:<58} {verdict} in {best:?}");
    }
}

criterion_group!(benches, bench, compile_times);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = bench_cpu
}
criterion_main!(benches, cpu);
