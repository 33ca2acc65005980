//! The local AWS emulator (moto's server, with the fix of scripts/emulator.py) on a free loopback
//! port, orch run against it (the `sandbox` profile), and the read-back of what a fleet created
//! in it through the AWS API (tests/e2e/readback.py), for the end-to-end tests.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The project venv, with the emulator's Python.
pub fn venv() -> PathBuf {
    let python = super::venv_program("python");
    python
        .parent()
        .and_then(Path::parent)
        .expect("venv/bin/python")
        .to_path_buf()
}

/// The emulator, stopped when dropped.
pub struct Emulator {
    child: Child,
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

/// One run of orch against the emulator: exit code, stderr and the `--report` JSON.
pub struct Run {
    pub code: i32,
    pub stderr: String,
    pub report: serde_json::Value,
}

/// `orch --live ROOT/live --profile sandbox --endpoint ENDPOINT --no-color ARGS --report
/// ROOT/report.json`, run in ROOT without a terminal.
pub fn command(root: &Path, endpoint: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orch"));
    cmd.arg("--live")
        .arg(root.join("live"))
        .args(["--profile", "sandbox", "--endpoint", endpoint, "--no-color"])
        .args(args)
        .arg("--report")
        .arg(root.join("report.json"))
        .current_dir(root)
        .env_remove("ORCH_TERRAFORM")
        .stdin(Stdio::null());
    cmd
}

/// The [`Run`] of a finished [`command`]; the report is read and removed.
pub fn finish(root: &Path, out: std::process::Output) -> Run {
    let path = root.join("report.json");
    let report = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    let _ = std::fs::remove_file(&path);
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        report,
    }
}

pub fn orch(root: &Path, endpoint: &str, args: &[&str]) -> Run {
    let out = command(root, endpoint, args).output().unwrap();
    finish(root, out)
}

/// What exists in `account` (reached through a role, as orch's provider does) in each region.
pub fn readback(venv: &Path, endpoint: &str, account: &str, regions: &[&str]) -> serde_json::Value {
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

/// Processes whose working directory is inside `root` (not `root` itself): what a run must not
/// leave behind.
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
