//! File source and file sink: formats, bad rows, globs, checkpoints, after-read actions,
//! bounded memory, appends without partial lines.

use std::io::Write;
use std::path::Path;

use indexmap::IndexMap;
use rivulet_runtime::connector::{Source, SourcePage as Page};
use rivulet_runtime::connectors::file::{FileReader, FileWriter, truncate_to};
use rivulet_runtime::{ActionOutcome, Item, Prepared, Record};
use rivulet_spec::model::{AfterRead, FileFormat, FileSink, FileSource, SinkFormat};
use serde_json::{Value, json};

fn source(path: &str) -> FileSource {
    FileSource {
        path: path.into(),
        format: None,
        delimiter: None,
        after_read: AfterRead::Keep,
        move_to: None,
    }
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Reads everything, pages of `max`, committing each page; returns items and last checkpoint.
async fn read_all(reader: &mut FileReader, max: usize) -> (Vec<Item>, Option<Value>) {
    let mut items = Vec::new();
    let mut checkpoint = None;
    while let Some(page) = reader.next_page(max).await.unwrap() {
        assert!(page.items.len() <= max);
        reader.committed(&page.checkpoint).await.unwrap();
        checkpoint = Some(page.checkpoint.clone());
        items.extend(page.items);
    }
    (items, checkpoint)
}

fn rec(item: &Item) -> &Record {
    match item {
        Item::Record(r) => r,
        Item::Bad { message, .. } => panic!("expected a record, got bad item: {message}"),
    }
}

fn keys(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .map(|i| match i {
            Item::Record(r) => r.key.clone(),
            Item::Bad { key, .. } => key.clone(),
        })
        .collect()
}

#[tokio::test]
async fn csv_quotes_delimiter_and_embedded_newlines() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "data/in.csv",
        "name;note;n\n\"Acme; Inc\";\"said \"\"hi\"\"\";1\n\"Multi\nLine\";plain;2\nlast;;3\n",
    );
    let mut cfg = source("data/in.csv");
    cfg.delimiter = Some(";".into());
    let mut r = FileReader::new(&cfg, dir.path(), None).unwrap();
    let (items, _) = read_all(&mut r, 10).await;
    assert_eq!(items.len(), 3);
    let a = rec(&items[0]);
    assert_eq!(
        a.data,
        json!({"name": "Acme; Inc", "note": "said \"hi\"", "n": "1"})
    );
    assert_eq!(a.key, "data/in.csv:2");
    assert_eq!(a.origin, "data/in.csv line 2");
    let b = rec(&items[1]);
    assert_eq!(b.data["name"], json!("Multi\nLine"));
    assert_eq!(b.key, "data/in.csv:3");
    // The embedded newline pushes the next row to line 5.
    let c = rec(&items[2]);
    assert_eq!(c.key, "data/in.csv:5");
    assert_eq!(c.data, json!({"name": "last", "note": "", "n": "3"}));
    assert!(!c.version.is_empty());
}

#[tokio::test]
async fn malformed_csv_row_fails_alone_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.csv", "a,b\n1,2\n3,4,5\n6,7\nonly\n8,9\n");
    let mut r = FileReader::new(&source("in.csv"), dir.path(), None).unwrap();
    let (items, _) = read_all(&mut r, 100).await;
    assert_eq!(
        keys(&items),
        ["in.csv:2", "in.csv:3", "in.csv:4", "in.csv:5", "in.csv:6"]
    );
    match &items[1] {
        Item::Bad {
            key,
            origin,
            message,
            raw,
        } => {
            assert_eq!(key, "in.csv:3");
            assert_eq!(origin, "in.csv line 3");
            assert!(message.contains("3 fields"), "{message}");
            assert_eq!(raw.as_deref(), Some("3,4,5"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&items[3], Item::Bad { raw: Some(raw), .. } if raw == "only"));
    assert_eq!(rec(&items[4]).data, json!({"a": "8", "b": "9"}));
}

#[tokio::test]
async fn jsonl_bad_line_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "in.jsonl",
        "{\"id\":1}\nnot json\n\n[1,2]\n{\"id\":2}",
    );
    let mut r = FileReader::new(&source("in.jsonl"), dir.path(), None).unwrap();
    let (items, _) = read_all(&mut r, 2).await;
    assert_eq!(
        keys(&items),
        ["in.jsonl:1", "in.jsonl:2", "in.jsonl:4", "in.jsonl:5"]
    );
    assert!(
        matches!(&items[1], Item::Bad { raw: Some(raw), origin, .. } if raw == "not json" && origin == "in.jsonl line 2")
    );
    assert!(matches!(&items[2], Item::Bad { message, .. } if message.contains("not an object")));
    assert_eq!(rec(&items[3]).data, json!({"id": 2}));
}

#[tokio::test]
async fn json_array_element_by_element() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "in.json",
        "[\n {\"id\": 1, \"s\": \"a ] } , \\\" x\"},\n 7,\n {\"id\": 3, \"nested\": {\"k\": [1, {\"z\": 2}]}},\n {\"id\": tru},\n {\"id\": 5}\n]\n",
    );
    let mut r = FileReader::new(&source("in.json"), dir.path(), None).unwrap();
    let (items, cp) = read_all(&mut r, 2).await;
    assert_eq!(
        keys(&items),
        [
            "in.json#1",
            "in.json#2",
            "in.json#3",
            "in.json#4",
            "in.json#5"
        ]
    );
    assert_eq!(rec(&items[0]).data["s"], json!("a ] } , \" x"));
    assert!(matches!(&items[1], Item::Bad { message, .. } if message.contains("not an object")));
    assert_eq!(rec(&items[2]).data["nested"]["k"][1]["z"], json!(2));
    assert!(matches!(&items[3], Item::Bad { raw: Some(raw), .. } if raw == "{\"id\": tru}"));
    assert_eq!(rec(&items[4]).data, json!({"id": 5}));
    assert_eq!(cp.unwrap()["files"]["in.json"]["done"], json!(true));

    // A broken array: what came before is kept, the rest is one bad item.
    write(dir.path(), "broken.json", "[{\"id\":1} {\"id\":2}]");
    let mut r = FileReader::new(&source("broken.json"), dir.path(), None).unwrap();
    let (items, _) = read_all(&mut r, 10).await;
    assert_eq!(items.len(), 2);
    assert!(
        matches!(&items[1], Item::Bad { message, .. } if message.contains("expected `,` or `]`"))
    );
}

#[tokio::test]
async fn globs_relative_to_the_flow_folder() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "data/b.csv", "x\n2\n");
    write(dir.path(), "data/a.csv", "x\n1\n");
    write(dir.path(), "data/c.txt", "x\n3\n");
    write(dir.path(), "data/sub/d.csv", "x\n4\n");
    let mut r = FileReader::new(&source("data/*.csv"), dir.path(), None).unwrap();
    let (items, _) = read_all(&mut r, 10).await;
    assert_eq!(keys(&items), ["data/a.csv:2", "data/b.csv:2"]);
    let mut r = FileReader::new(&source("data/**/*.csv"), dir.path(), None).unwrap();
    let (items, _) = read_all(&mut r, 10).await;
    assert_eq!(
        keys(&items),
        ["data/a.csv:2", "data/b.csv:2", "data/sub/d.csv:2"]
    );
}

#[tokio::test]
async fn resumes_mid_file_without_repeating_rows() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "d/1.csv", "n\n1\n2\n3\n4\n5\n");
    write(dir.path(), "d/2.jsonl", "{\"n\":6}\n{\"n\":7}\n{\"n\":8}\n");
    write(
        dir.path(),
        "d/3.json",
        "[{\"n\":9},{\"n\":10},\n{\"n\":11}]",
    );
    let cfg = |p: &str| FileSource {
        format: Some(FileFormat::from_path(p).unwrap()),
        ..source(p)
    };
    for path in ["d/1.csv", "d/2.jsonl", "d/3.json"] {
        let mut all = Vec::new();
        let mut checkpoint = None;
        // A new reader (a "restart") after every page of 1 or 2 items.
        for round in 0.. {
            let mut r = FileReader::new(&cfg(path), dir.path(), checkpoint.clone()).unwrap();
            let Some(page) = r.next_page(1 + round % 2).await.unwrap() else {
                break;
            };
            checkpoint = Some(page.checkpoint.clone());
            all.extend(page.items);
            assert!(round < 20);
        }
        let ns: Vec<Value> = all.iter().map(|i| rec(i).data["n"].clone()).collect();
        let expected: Vec<Value> = match path {
            "d/1.csv" => (1..=5).map(|n| json!(n.to_string())).collect(),
            "d/2.jsonl" => (6..=8).map(|n| json!(n)).collect(),
            _ => (9..=11).map(|n| json!(n)).collect(),
        };
        assert_eq!(ns, expected, "{path}");
        let k = keys(&all);
        let mut dedup = k.clone();
        dedup.dedup();
        assert_eq!(k, dedup);
    }
}

#[tokio::test]
async fn a_finished_file_is_not_read_again_until_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.csv", "n\n1\n2\n");
    let cfg = source("in.csv");
    let mut r = FileReader::new(&cfg, dir.path(), None).unwrap();
    let (items, cp) = read_all(&mut r, 2).await;
    assert_eq!(items.len(), 2);
    // The page with the last row already records the file as done.
    let cp = cp.unwrap();
    assert_eq!(cp["files"]["in.csv"]["done"], json!(true));

    let mut r = FileReader::new(&cfg, dir.path(), Some(cp.clone())).unwrap();
    assert!(r.next_page(10).await.unwrap().is_none());

    write(dir.path(), "in.csv", "n\n1\n2\n3\n");
    let mut r = FileReader::new(&cfg, dir.path(), Some(cp)).unwrap();
    let (items, _) = read_all(&mut r, 10).await;
    assert_eq!(items.len(), 3);
}

#[tokio::test]
async fn move_and_delete_happen_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in/a.csv", "n\n1\n");
    write(dir.path(), "in/b.csv", "n\n2\n");
    let mut cfg = source("in/*.csv");
    cfg.after_read = AfterRead::Move;
    cfg.move_to = Some("done".into());
    let mut r = FileReader::new(&cfg, dir.path(), None).unwrap();
    let page = r.next_page(1).await.unwrap().unwrap();
    assert_eq!(keys(&page.items), ["in/a.csv:2"]);
    assert!(dir.path().join("in/a.csv").exists(), "not before commit");
    r.committed(&page.checkpoint).await.unwrap();
    assert!(!dir.path().join("in/a.csv").exists());
    assert!(dir.path().join("done/a.csv").exists());
    let page = r.next_page(1).await.unwrap().unwrap();
    // A crash before this commit: the file stays, a new reader finishes the job.
    drop(r);
    assert!(dir.path().join("in/b.csv").exists());
    let mut r = FileReader::new(&cfg, dir.path(), Some(page.checkpoint.clone())).unwrap();
    let page2: Page = r.next_page(10).await.unwrap().unwrap();
    assert!(page2.items.is_empty());
    r.committed(&page2.checkpoint).await.unwrap();
    assert!(dir.path().join("done/b.csv").exists());
    assert!(r.next_page(10).await.unwrap().is_none());

    write(dir.path(), "del/x.jsonl", "{\"a\":1}\n");
    let mut cfg = source("del/x.jsonl");
    cfg.after_read = AfterRead::Delete;
    let mut r = FileReader::new(&cfg, dir.path(), None).unwrap();
    let (items, _) = read_all(&mut r, 10).await;
    assert_eq!(items.len(), 1);
    assert!(!dir.path().join("del/x.jsonl").exists());
}

#[tokio::test]
async fn bad_settings_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = source("in.csv");
    cfg.delimiter = Some(";;".into());
    assert!(FileReader::new(&cfg, dir.path(), None).is_err());
    assert!(FileReader::new(&source("data/*"), dir.path(), None).is_err());
    let mut cfg = source("in.csv");
    cfg.after_read = AfterRead::Move;
    assert!(FileReader::new(&cfg, dir.path(), None).is_err());
    assert!(FileReader::new(&source("in.csv"), dir.path(), Some(json!("x"))).is_err());
}

fn rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn a_large_csv_is_read_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.csv");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        writeln!(f, "id,name,email,city,note").unwrap();
        let pad = "x".repeat(60);
        for i in 0..300_000u32 {
            writeln!(f, "{i},Name {i},user{i}@example.com,City,{pad}").unwrap();
        }
    }
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size > 30_000_000, "{size}");
    let Some(before) = rss_kb() else {
        return; // not Linux
    };
    let mut r = FileReader::new(&source("big.csv"), dir.path(), None).unwrap();
    let mut count = 0usize;
    let mut peak = before;
    while let Some(page) = r.next_page(1000).await.unwrap() {
        count += page.items.len();
        if let Some(now) = rss_kb() {
            peak = peak.max(now);
        }
    }
    assert_eq!(count, 300_000);
    let grown_mb = (peak.saturating_sub(before)) / 1024;
    assert!(
        grown_mb < 20,
        "reading a {} MB file grew RSS by {grown_mb} MB",
        size / 1_000_000
    );
}

fn prepared_records(n: usize) -> (Vec<Record>, Vec<IndexMap<String, Value>>) {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            key: format!("k{i}"),
            version: String::new(),
            data: json!({}),
            origin: format!("test {i}"),
        })
        .collect();
    let fields = (0..n)
        .map(|i| {
            let mut m = IndexMap::new();
            m.insert("name".to_string(), json!(format!("n, \"{i}\"")));
            m.insert("count".to_string(), json!(i));
            m.insert("tags".to_string(), json!(["a", "b"]));
            m
        })
        .collect();
    (records, fields)
}

#[tokio::test]
async fn file_sink_appends_whole_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (records, fields) = prepared_records(3);
    let batch: Vec<Prepared<'_>> = records
        .iter()
        .zip(&fields)
        .map(|(record, fields)| Prepared { record, fields })
        .collect();
    let columns = vec!["name".to_string(), "count".to_string(), "tags".to_string()];

    // JSON Lines, in mapping order, folders created.
    let jsonl = FileWriter::new(
        &FileSink {
            path: "out/x/records.jsonl".into(),
            format: SinkFormat::Jsonl,
            backoff: Default::default(),
            when: None,
            name: None,
            prerequisites: None,
        },
        dir.path(),
        columns.clone(),
    );
    assert_eq!(jsonl.len().unwrap(), 0);
    let outcomes = jsonl.append(&batch[..2]).await;
    assert_eq!(outcomes, vec![ActionOutcome::Done { id: None }; 2]);
    let recorded = jsonl.len().unwrap();
    jsonl.append(&batch[2..]).await;
    let text = std::fs::read_to_string(jsonl.path()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0],
        r#"{"name":"n, \"0\"","count":0,"tags":["a","b"]}"#
    );

    // A crash mid-write leaves a partial line; truncating to the recorded length drops it
    // (and the unrecorded batch), so re-sending gives whole lines only.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(jsonl.path())
        .unwrap();
    f.write_all(b"{\"name\":\"half").unwrap();
    drop(f);
    truncate_to(jsonl.path(), recorded).unwrap();
    jsonl.append(&batch[2..]).await;
    let text = std::fs::read_to_string(jsonl.path()).unwrap();
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        serde_json::from_str::<Value>(line).unwrap();
    }
    assert_eq!(text.lines().count(), 3);

    // CSV: the header once, values as strings, nested values as JSON, quoting.
    let csv = FileWriter::new(
        &FileSink {
            path: "out/records.csv".into(),
            format: SinkFormat::Csv,
            backoff: Default::default(),
            when: None,
            name: None,
            prerequisites: None,
        },
        dir.path(),
        columns,
    );
    csv.append(&batch[..1]).await;
    csv.append(&batch[1..]).await;
    let text = std::fs::read_to_string(csv.path()).unwrap();
    assert_eq!(
        text,
        "name,count,tags\n\"n, \"\"0\"\"\",0,\"[\"\"a\"\",\"\"b\"\"]\"\n\"n, \"\"1\"\"\",1,\"[\"\"a\"\",\"\"b\"\"]\"\n\"n, \"\"2\"\"\",2,\"[\"\"a\"\",\"\"b\"\"]\"\n"
    );

    // An unwritable path is the destination failing, not the records: every record of the
    // batch is transient (the page is tried again later), none is failed.
    std::fs::write(dir.path().join("blocker"), "").unwrap();
    let bad = FileWriter::new(
        &FileSink {
            path: "blocker/x.jsonl".into(),
            format: SinkFormat::Jsonl,
            backoff: Default::default(),
            when: None,
            name: None,
            prerequisites: None,
        },
        dir.path(),
        vec![],
    );
    let outcomes = bad.append(&batch).await;
    assert_eq!(outcomes.len(), 3);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, ActionOutcome::Transient { .. }))
    );
}
