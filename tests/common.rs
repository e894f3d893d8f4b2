//! Helpers shared by the end-to-end tests of the `rivulet` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository root (tests run from `crates/cli`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// `rivulet` with a clean, predictable environment, run from the repository root.
pub fn rivulet() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("rivulet").expect("binary builds");
    cmd.current_dir(root())
        .env("NO_COLOR", "1")
        .env_remove("HUBSPOT_TOKEN");
    cmd
}

/// One `# expect: LINE:COL CODE MESSAGE` line of a fixture.
#[derive(Debug, Clone)]
pub struct Expect {
    pub line: u64,
    pub column: u64,
    pub code: String,
    pub message: String,
}

/// The expectations written at the top of a fixture file (or of the files in a fixture folder).
pub fn expectations(path: &Path) -> Vec<Expect> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<_> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    let mut out = Vec::new();
    for file in files {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        for line in text.lines().filter_map(|l| l.strip_prefix("# expect: ")) {
            let (pos, rest) = line.split_once(' ').unwrap();
            let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
            let (l, c) = pos.split_once(':').unwrap();
            out.push(Expect {
                line: l.parse().unwrap(),
                column: c.parse().unwrap(),
                code: code.to_string(),
                message: message.to_string(),
            });
        }
    }
    out
}

/// Copies a folder tree (the example flows into a scratch folder, say).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
