//! The S3 backend's end-to-end helpers: a fleet whose state lives in the emulator's S3, and
//! tests/e2e/s3.py to look at buckets and hold a state lock as another run would. Shared by
//! tests/s3_e2e.rs and tests/hostile_backend.rs through `#[path]`.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// orch.yaml of an S3-backed fleet: one bucket per account, locks waited for `lock_timeout`.
pub fn orch_yaml(bucket: &str, extra: &str) -> String {
    format!(
        "parallelism: 2\nbackend:\n  type: s3\n  bucket: \"{bucket}\"\n  region: us-east-1\n  key_prefix: orch/e2e\n{extra}\
         profiles:\n  sandbox: {{endpoint: \"http://127.0.0.1:1\"}}\ndefaults:\n  tags: {{ManagedBy: orch}}\n  deletion_window_days: 7\n"
    )
}

pub fn account_yaml(id: &str) -> String {
    format!(
        "account_id: \"{id}\"\nenvironment: e2e\nrole_arn: arn:aws:iam::{id}:role/orch-deployer\nregions: [us-east-1]\n"
    )
}

/// Runs tests/e2e/s3.py; its stdout.
pub fn s3py(venv: &Path, args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/s3.py");
    let out = Command::new(venv.join("bin/python"))
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "s3.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The bucket as `s3.py show` reads it.
pub fn bucket(venv: &Path, endpoint: &str, account: &str, name: &str) -> Value {
    serde_json::from_str(&s3py(venv, &["show", endpoint, account, name])).unwrap()
}

/// Every file under `dir`, at any depth (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() {
                files_under(&p)
            } else {
                vec![p]
            }
        })
        .collect()
}
