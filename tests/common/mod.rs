//! Test harness: a `live/` tree in a temporary directory, built in code and run through the real
//! `orch` binary, in the style of just's `Test` builder.
//!
//! Each test crate under `tests/` compiles its own copy of this module and uses only part of it.
#![allow(dead_code)]

pub mod fake;

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// The minimal valid fleet every [`Tree::new`] starts from. Tests that edit a file rewrite it
/// whole, so the line numbers they assert are the ones in their own text.
///
/// - `prod` (111111111111) enables us-east-1 and eu-west-1; its `data` key in us-east-1 is
///   multi-region with a replica in eu-west-1, which gives the tree one DAG edge.
/// - `dev` (222222222222) enables us-east-1 and has one single-region key, `app`.
pub const BASE: &[(&str, &str)] = &[
    (
        "live/orch.yaml",
        "defaults:\n  deletion_window_days: 30\n  tags: {ManagedBy: orch}\n",
    ),
    (
        "live/prod/account.yaml",
        r#"account_id: "111111111111"
environment: prod
role_arn: arn:aws:iam::111111111111:role/orch-deployer
regions: [us-east-1, eu-west-1]
defaults:
  access:
    administer-resource: [arn:aws:iam::111111111111:role/admin]
"#,
    ),
    (
        "live/prod/us-east-1/data/node.yaml",
        "description: Encrypts prod data
aliases: [prod/data]
multi_region: true
replicas: [eu-west-1]
access:
  read-data: [arn:aws:iam::111111111111:role/app]
",
    ),
    (
        "live/dev/account.yaml",
        r#"account_id: "222222222222"
environment: dev
role_arn: arn:aws:iam::222222222222:role/orch-deployer
regions: [us-east-1]
defaults:
  key_administrators: [arn:aws:iam::222222222222:role/admin]
"#,
    ),
    (
        "live/dev/us-east-1/app/node.yaml",
        "description: Encrypts dev app data
aliases: [dev/app]
key_users: [arn:aws:iam::222222222222:role/app]
",
    ),
];

/// A tree in a temporary directory: `<tmp>/live/...`, with `.orch/` expected beside `live/`.
pub struct Tree {
    dir: TempDir,
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

impl Tree {
    /// The [`BASE`] fleet.
    pub fn new() -> Self {
        BASE.iter()
            .fold(Tree::empty(), |tree, (path, text)| tree.file(path, text))
    }

    /// An empty temporary directory, for trees built from scratch or copied in.
    pub fn empty() -> Self {
        Tree {
            dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }

    /// A copy of a directory tree (e.g. the shipped `live/`) at `dest` inside the tree.
    pub fn copy(self, from: &Path, dest: &str) -> Self {
        copy_dir(from, &self.path(dest));
        self
    }

    /// Writes `text` to `path` (relative to the temporary directory), creating parent directories.
    pub fn file(self, path: &str, text: &str) -> Self {
        let full = self.path(path);
        std::fs::create_dir_all(full.parent().expect("a file has a parent")).unwrap();
        std::fs::write(&full, text).unwrap_or_else(|e| panic!("write {path}: {e}"));
        self
    }

    /// Creates an empty directory.
    pub fn dir(self, path: &str) -> Self {
        std::fs::create_dir_all(self.path(path)).unwrap();
        self
    }

    /// Removes a file or a whole directory.
    pub fn remove(self, path: &str) -> Self {
        let full = self.path(path);
        if full.is_dir() {
            std::fs::remove_dir_all(&full)
        } else {
            std::fs::remove_file(&full)
        }
        .unwrap_or_else(|e| panic!("remove {path}: {e}"));
        self
    }

    /// Renames a file or directory.
    pub fn rename(self, from: &str, to: &str) -> Self {
        std::fs::rename(self.path(from), self.path(to)).unwrap();
        self
    }

    /// The base fleet's consumers and a `depends_on` chain: a grant and a bucket on
    /// prod/us-east-1/data; dev/us-east-1/late after dev/us-east-1/app.
    pub fn with_consumers(self) -> Self {
        self.file(
            "live/prod/us-east-1/grant/node.yaml",
            "kind: grant\nkey: prod/us-east-1/data\ngrantee: arn:aws:iam::222222222222:role/reader\noperations: [Decrypt]\n",
        )
        .file(
            "live/prod/us-east-1/bucket/node.yaml",
            "kind: s3-bucket\nkey: prod/us-east-1/data\nbucket: acme-test-bucket\n",
        )
        .file(
            "live/dev/us-east-1/late/node.yaml",
            "description: after app\ndepends_on: [dev/us-east-1/app]\nkey_users: [arn:aws:iam::222222222222:role/app]\n",
        )
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, path: &str) -> PathBuf {
        self.root().join(path)
    }

    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.path(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
    }

    /// Runs `orch --live <tmp>/live ARGS` in the temporary directory.
    pub fn run(&self, args: &[&str]) -> Output {
        orch(&self.path("live"), self.root(), args)
    }

    /// The addresses that have a work directory under `.orch/work/`, sorted.
    pub fn work_dirs(&self) -> Vec<String> {
        let work = self.path(".orch/work");
        let mut found = Vec::new();
        for account in subdirs(&work) {
            for region in subdirs(&work.join(&account)) {
                for node in subdirs(&work.join(&account).join(&region)) {
                    found.push(format!("{account}/{region}/{node}"));
                }
            }
        }
        found.sort();
        found
    }

    /// Asserts that the tree is rejected like a compiler would: `validate` exits 1 without
    /// panicking, stderr names every `path:line` in `at` (e.g. `live/dev/account.yaml:3`) and
    /// holds every fragment in `says`; and `render --all` writes nothing (no `.orch/`).
    pub fn rejects(&self, at: &[&str], says: &[&str]) -> Output {
        let out = self.run(&["validate"]);
        out.assert_rejects(at, says);
        let render = self.run(&["render", "--all"]);
        render.assert_invalid();
        assert!(
            !self.path(".orch").exists(),
            "render --all of an invalid tree created .orch/:\n{}",
            render.stdout
        );
        out
    }
}

/// What one run of `orch` printed and how it exited.
#[derive(Debug)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Output {
    pub fn assert_success(&self) -> &Self {
        assert_eq!(self.code, 0, "orch failed:\n{}", self.stderr);
        self
    }

    /// Exit code 1, no panic, nothing on stdout, and the closing "nothing was run" line.
    pub fn assert_invalid(&self) -> &Self {
        assert!(
            !self.stderr.contains("panicked"),
            "orch panicked:\n{}",
            self.stderr
        );
        assert_eq!(
            self.code, 1,
            "expected exit code 1\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert_eq!(self.stdout, "", "an invalid tree printed on stdout");
        assert!(
            self.stderr.contains("nothing was run"),
            "no summary line:\n{}",
            self.stderr
        );
        self
    }

    /// [`Output::assert_invalid`], and stderr names every `path:line` in `at` and holds every
    /// fragment in `says`.
    pub fn assert_rejects(&self, at: &[&str], says: &[&str]) -> &Self {
        self.assert_invalid();
        for location in at {
            self.assert_points_at(location);
        }
        for fragment in says {
            assert!(
                self.stderr.contains(fragment),
                "stderr lacks {fragment:?}:\n{}",
                self.stderr
            );
        }
        self
    }

    /// Asserts a `--> …path:line:col` location. `location` is `path:line` relative to the
    /// temporary directory; orch prints it under the `--live` path, so only the tail must match.
    pub fn assert_points_at(&self, location: &str) -> &Self {
        let found = self
            .locations()
            .iter()
            .any(|l| l.ends_with(location) && is_boundary(l, location));
        assert!(
            found,
            "stderr does not point at {location}:\n{}",
            self.stderr
        );
        self
    }

    /// Every `path:line` a `-->` line names (the column dropped), in order.
    pub fn locations(&self) -> Vec<String> {
        self.stderr
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("--> "))
            .map(|l| {
                let l = l.split(" (").next().unwrap_or(l);
                match l.rsplit_once(':') {
                    Some((path_line, col)) if col.bytes().all(|b| b.is_ascii_digit()) => {
                        path_line.to_string()
                    }
                    _ => l.to_string(),
                }
            })
            .collect()
    }

    /// The headlines of the errors (`error: …`), without the closing summary line.
    pub fn errors(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("error: "))
            .filter(|l| !l.ends_with("nothing was run"))
            .collect()
    }

    /// The count in the closing line, `error: N error(s) in …; nothing was run`.
    pub fn reported_count(&self) -> usize {
        self.stderr
            .lines()
            .filter(|l| l.ends_with("nothing was run"))
            .find_map(|l| l.strip_prefix("error: ")?.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no summary line:\n{}", self.stderr))
    }
}

/// True when `location` is a whole path suffix of `full` (`x/node.yaml:3` must not match
/// `yx/node.yaml:3`).
fn is_boundary(full: &str, location: &str) -> bool {
    full.len() == location.len() || full[..full.len() - location.len()].ends_with('/')
}

/// Runs `orch --live LIVE ARGS` in `cwd`, with none of orch's environment variables set.
pub fn orch(live: &Path, cwd: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .arg("--live")
        .arg(live)
        .args(args)
        .current_dir(cwd)
        .env_remove("ORCH_LIVE")
        .env_remove("ORCH_PROFILE")
        .env_remove("ORCH_TERRAFORM")
        .output()
        .expect("run orch");
    Output {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out
            .status
            .code()
            .expect("orch exited, not killed by a signal"),
    }
}

/// The one rollout journal of the tree at `root` (`.orch/runs/<run>.json`), parsed; `Null` while
/// it cannot be read.
pub fn only_journal(root: &Path) -> serde_json::Value {
    let runs: Vec<PathBuf> = std::fs::read_dir(root.join(".orch/runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    std::fs::read_to_string(&runs[0])
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// The row of `address` in a `--report` JSON.
pub fn report_row<'a>(report: &'a serde_json::Value, address: &str) -> &'a serde_json::Value {
    report["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no report: {report}"))
        .iter()
        .find(|n| n["address"] == address)
        .unwrap_or_else(|| panic!("{address} not in the report: {report}"))
}

/// (address, status) of every row of a `--report` JSON.
pub fn report_statuses(report: &serde_json::Value) -> Vec<(String, String)> {
    report["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no report: {report}"))
        .iter()
        .map(|n| {
            (
                n["address"].as_str().unwrap().to_string(),
                n["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The shipped example tree, `live/` of this repository.
pub fn shipped_live() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("live")
}

fn subdirs(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Fails (never skips) when terraform or the CLI config naming the offline provider mirror is
/// missing, saying what to run.
pub fn require_terraform() {
    let found = Command::new("terraform")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "terraform is not on PATH: install Terraform >= 1.5 (the machine image ships 1.11), then run `scripts/just test`"
    );
    let config = std::env::var_os("TF_CLI_CONFIG_FILE").map(PathBuf::from);
    assert!(
        config.as_deref().is_some_and(Path::is_file),
        "TF_CLI_CONFIG_FILE is unset or names no file ({config:?}): run `scripts/setup-terraform`, which finds the \
         hashicorp/aws provider mirror (override with ORCH_PROVIDER_MIRROR) and writes .tools/terraformrc, \
         or run the suite with `scripts/just test`"
    );
}

/// A program of the project venv (`.tools/venv`, named by ORCH_TOOLS_VENV); fails, saying what to
/// run, when it is missing.
pub fn venv_program(name: &str) -> PathBuf {
    let venv = std::env::var_os("ORCH_TOOLS_VENV").map(PathBuf::from);
    let program = venv.as_ref().map(|v| v.join("bin").join(name));
    assert!(
        program.as_deref().is_some_and(Path::is_file),
        "ORCH_TOOLS_VENV is unset or has no bin/{name} ({venv:?}): run `scripts/setup-python` (installs moto \
         and checkov into .tools/venv) and set ORCH_TOOLS_VENV, or run the suite with `scripts/just test`"
    );
    program.expect("checked above")
}
