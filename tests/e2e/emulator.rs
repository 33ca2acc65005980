//! The local AWS emulator for end-to-end tests (scripts/emulator.py on a free loopback port),
//! reading back what a fleet created through the AWS API, and finding processes left behind.
//! Shared by tests/e2e.rs and tests/faults.rs through `#[path]`.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The project venv, with the emulator's Python.
pub fn venv() -> PathBuf {
    let python = crate::common::venv_program("python");
    python
        .parent()
        .and_then(Path::parent)
        .expect("venv/bin/python")
        .to_path_buf()
}

/// The emulator on a free loopback port, stopped when dropped.
pub struct Emulator {
    child: Child,
    pub port: u16,
    pub endpoint: String,
}

impl Emulator {
    pub fn start(venv: &Path) -> Emulator {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/emulator.py");
        let child = Command::new(venv.join("bin/python"))
            .arg(script)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the emulator");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the emulator did not listen on {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Emulator {
            child,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything of `account` in `regions` as JSON (tests/e2e/readback.py).
pub fn readback(venv: &Path, endpoint: &str, account: &str, regions: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/readback.py");
    let out = Command::new(venv.join("bin/python"))
        .arg(script)
        .arg(endpoint)
        .arg(account)
        .args(regions)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "readback failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Processes whose working directory is inside `root` (not `root` itself): terraform or a
/// provider left running.
pub fn processes_in(root: &Path) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let cwd = std::fs::read_link(entry.path().join("cwd")).ok()?;
            (cwd.starts_with(root) && cwd != root)
                .then(|| format!("{} {}", entry.file_name().to_string_lossy(), cwd.display()))
        })
        .collect()
}
