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

/// A `rivulet run` process running as a service, whose log lines (stderr, `RIVULET_LOG=info`)
/// are collected as they come, so a test can wait for one instead of sleeping.
pub struct Service {
    child: std::process::Child,
    log: std::sync::Arc<(std::sync::Mutex<Vec<String>>, std::sync::Condvar)>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Service {
    /// Starts `cmd` (which must log at `info` to stderr) and collects its log lines.
    pub fn start(mut cmd: std::process::Command) -> Service {
        let mut child = cmd
            .env("RIVULET_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the runner starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let log =
            std::sync::Arc::new((std::sync::Mutex::new(Vec::new()), std::sync::Condvar::new()));
        let sink = std::sync::Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let (lines, changed) = &*sink;
                lines.lock().unwrap().push(line);
                changed.notify_all();
            }
        });
        Service {
            child,
            log,
            reader: Some(reader),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most `timeout`) for a log line containing `text`; panics with the log if it
    /// never comes.
    pub fn wait_for(&self, text: &str, timeout: std::time::Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        let (lines, changed) = &*self.log;
        let mut seen = lines.lock().unwrap();
        loop {
            if let Some(line) = seen.iter().find(|l| l.contains(text)) {
                return line.clone();
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                panic!(
                    "no log line with {text:?} within {timeout:?}:\n{}",
                    seen.join("\n")
                );
            }
            seen = changed.wait_timeout(seen, deadline - now).unwrap().0;
        }
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.log.0.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM and waits for the process; returns its exit code and stdout.
    pub fn terminate(self) -> (Option<i32>, String) {
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
        self.finish()
    }

    /// Waits for the process to end by itself; returns its exit code and stdout.
    pub fn finish(mut self) -> (Option<i32>, String) {
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            use std::io::Read;
            let _ = out.read_to_string(&mut stdout);
        }
        let status = self.child.wait().expect("the runner ends");
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        (status.code(), stdout)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `done` every 20 ms until it holds or `timeout` passes; says whether it held. For
/// waiting on an event in another process (a count reaching a mark, a file growing), with a
/// deadline.
pub async fn poll_until(timeout: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// [`poll_until`] with a minute's deadline, panicking with `what` when it passes.
pub async fn until(what: &str, done: impl FnMut() -> bool) {
    assert!(
        poll_until(std::time::Duration::from_secs(60), done).await,
        "timed out waiting for {what}"
    );
}
