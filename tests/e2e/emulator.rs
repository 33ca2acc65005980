//! The local AWS emulator for end-to-end tests (scripts/emulator.py on a free loopback port),
//! reading back what a fleet created through the AWS API, and finding processes left behind.
//! Also runs orch against it the way a user would (`orch`, `command`, `finish`). Shared by the
//! end-to-end test files through `#[path]`.
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
        Emulator::start_with(venv, &[])
    }

    /// [`Emulator::start`] with `env` added to the emulator's environment: the fault switches
    /// scripts/emulator.py reads at start (`ORCH_EMULATOR_THROTTLE`, ...).
    pub fn start_with(venv: &Path, env: &[(&str, &str)]) -> Emulator {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/emulator.py");
        let child = Command::new(venv.join("bin/python"))
            .arg(script)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
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

/// What an end-to-end test runs in: terraform checked, the emulator started, an empty
/// temporary directory for the fleet. Everything is stopped and removed when dropped.
pub struct Sandbox {
    pub venv: PathBuf,
    pub emulator: Emulator,
    pub tmp: tempfile::TempDir,
}

impl Sandbox {
    /// The venv, the emulator's endpoint and the temporary directory.
    pub fn parts(&self) -> (&Path, &str, &Path) {
        (&self.venv, &self.emulator.endpoint, self.tmp.path())
    }

    /// Creates the IAM roles `arns` in the emulator (tests/e2e/setup_roles.py), as the owners of
    /// the consumers a fleet names would have before orch runs.
    pub fn roles(&self, arns: &[&str]) {
        let setup = Command::new(self.venv.join("bin/python"))
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/setup_roles.py"))
            .arg(&self.emulator.endpoint)
            .args(arns)
            .status()
            .unwrap();
        assert!(setup.success(), "creating the roles {arns:?} failed");
    }

    pub fn start() -> Sandbox {
        Sandbox::start_with(&[])
    }

    /// [`Sandbox::start`] with the emulator's fault switches in `env` ([`Emulator::start_with`]).
    pub fn start_with(env: &[(&str, &str)]) -> Sandbox {
        crate::common::require_terraform();
        let venv = venv();
        let emulator = Emulator::start_with(&venv, env);
        Sandbox {
            venv,
            emulator,
            tmp: tempfile::tempdir().unwrap(),
        }
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

/// The KMS keys and aliases of `account` in each of `regions`, by region: what a move between
/// layouts must leave exactly as it was.
pub fn kms_keys(venv: &Path, endpoint: &str, account: &str, regions: &[&str]) -> Value {
    let all = readback(venv, endpoint, account, regions);
    let mut out = serde_json::Map::new();
    for region in regions {
        let kms = &all["kms"][region];
        out.insert(
            region.to_string(),
            serde_json::json!({"keys": kms["keys"], "aliases": kms["aliases"]}),
        );
    }
    Value::Object(out)
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

/// Writes `text` to `root/path`, creating its directories.
pub fn write(root: &Path, path: &str, text: &str) {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, text).unwrap();
}

/// One finished orch run: exit code, stderr and the JSON report it wrote.
pub struct Run {
    pub code: i32,
    pub stderr: String,
    pub report: Value,
}

impl Run {
    /// (address, status, provisional) of every node in the report.
    pub fn statuses(&self) -> Vec<(String, String, bool)> {
        self.report["nodes"]
            .as_array()
            .unwrap_or_else(|| panic!("no report:\n{}", self.stderr))
            .iter()
            .map(|n| {
                (
                    n["address"].as_str().unwrap().to_string(),
                    n["status"].as_str().unwrap().to_string(),
                    n["provisional"].as_bool().unwrap(),
                )
            })
            .collect()
    }
}

/// `orch --live ROOT/live --profile sandbox --endpoint ENDPOINT --no-color ARGS --report
/// ROOT/report.json`, run in ROOT without a terminal.
pub fn command(root: &Path, endpoint: &str, args: &[&str]) -> Command {
    let mut cmd = sandboxed(root, endpoint, args);
    cmd.arg("--report").arg(root.join("report.json"));
    cmd
}

/// orch on `root/live` through the sandbox profile at `endpoint`, running `args`.
pub fn sandboxed(root: &Path, endpoint: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orch"));
    cmd.arg("--live")
        .arg(root.join("live"))
        .args(["--profile", "sandbox", "--endpoint", endpoint, "--no-color"])
        .args(args)
        .current_dir(root)
        .env_remove("ORCH_TERRAFORM")
        .stdin(Stdio::null());
    cmd
}

/// `orch layout migrate --auto-approve`, which plans nothing and so takes no --report: the
/// [`Run`] has no report. With state in S3 it runs terraform through the sandbox profile.
pub fn layout_migrate(root: &Path, endpoint: &str) -> Run {
    let out = sandboxed(root, endpoint, &["layout", "migrate", "--auto-approve"])
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        report: Value::Null,
    }
}

/// The [`Run`] of a finished [`command`]; the report is read and removed.
pub fn finish(root: &Path, out: std::process::Output) -> Run {
    let path = root.join("report.json");
    let report = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let _ = std::fs::remove_file(&path);
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        report,
    }
}

/// Runs [`command`] to the end.
pub fn orch(root: &Path, endpoint: &str, args: &[&str]) -> Run {
    let out = command(root, endpoint, args).output().unwrap();
    finish(root, out)
}
