//! The rendered modules of the shipped live/ tree are real Terraform: `terraform fmt -check` and
//! `terraform validate` pass on every node, with the hashicorp/aws provider from the offline
//! mirror. Needs terraform on PATH and TF_CLI_CONFIG_FILE pointing at a CLI config that names the
//! mirror; `scripts/just test` sets both up. A missing tool fails the test, it is never skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

fn require_terraform() {
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

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of the shipped tree and templates, rendered with `args`; returns the work dirs.
fn render(root: &Path, args: &[&str]) -> Vec<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&repo.join("live"), &root.join("live"));
    copy_dir(&repo.join("templates"), &root.join("templates"));
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .arg("--live")
        .arg(root.join("live"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "orch render failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut dirs = Vec::new();
    let work = root.join(".orch/work");
    for account in std::fs::read_dir(&work).unwrap() {
        for region in std::fs::read_dir(account.unwrap().path()).unwrap() {
            for node in std::fs::read_dir(region.unwrap().path()).unwrap() {
                dirs.push(node.unwrap().path());
            }
        }
    }
    dirs.sort();
    dirs
}

fn terraform(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("terraform")
        .args(args)
        .current_dir(dir)
        .env("TF_IN_AUTOMATION", "1")
        .output()
        .unwrap()
}

fn fmt_check(work: &Path) {
    let out = terraform(work, &["fmt", "-check", "-recursive", "-diff"]);
    assert!(
        out.status.success(),
        "terraform fmt -check found unformatted files:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// init (no backend: validate needs none) then validate, for one work dir.
fn validate(dir: &Path) -> Result<(), String> {
    let init = terraform(
        dir,
        &["init", "-backend=false", "-input=false", "-no-color"],
    );
    if !init.status.success() {
        return Err(format!(
            "{}: init failed:\n{}",
            dir.display(),
            String::from_utf8_lossy(&init.stderr)
        ));
    }
    let out = terraform(dir, &["validate", "-json", "-no-color"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "{}: validate printed no JSON ({e}): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    if report["valid"] == serde_json::Value::Bool(true) && report["warning_count"] == 0 {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            dir.display(),
            serde_json::to_string_pretty(&report["diagnostics"]).unwrap()
        ))
    }
}

/// Held by whichever test runs a first init, so the tests of this file never race to fill the
/// shared plugin cache: Terraform's cache is not safe for concurrent first installs.
static FIRST_INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Validates every dir: the first alone (it warms the plugin cache), then two at a time (this
/// machine's cores).
fn validate_all(dirs: &[PathBuf]) {
    let (first, rest) = dirs.split_first().expect("the tree renders nodes");
    let first_result = {
        let _warming = FIRST_INIT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        validate(first)
    };
    let mut failures: Vec<String> = first_result.err().into_iter().collect();
    let half = rest.len().div_ceil(2);
    std::thread::scope(|scope| {
        let handles: Vec<_> = rest
            .chunks(half.max(1))
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .filter_map(|d| validate(d).err())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            failures.extend(h.join().unwrap());
        }
    });
    assert!(
        failures.is_empty(),
        "terraform validate failed:\n{}",
        failures.join("\n")
    );
}

#[test]
fn shipped_tree_renders_to_valid_formatted_terraform_for_the_sandbox_profile() {
    require_terraform();
    let tmp = tempfile::tempdir().unwrap();
    let dirs = render(tmp.path(), &["--profile", "sandbox", "render", "--all"]);
    assert_eq!(dirs.len(), 13, "the shipped tree has 13 nodes");
    fmt_check(&tmp.path().join(".orch/work"));
    validate_all(&dirs);
}

#[test]
fn shipped_tree_renders_to_valid_formatted_terraform_for_real_aws() {
    require_terraform();
    let tmp = tempfile::tempdir().unwrap();
    let dirs = render(tmp.path(), &["render", "--all"]);
    fmt_check(&tmp.path().join(".orch/work"));
    // One node of each kind: the provider block differs from the sandbox one, the rest is shared.
    let mut kinds = std::collections::BTreeSet::new();
    let one_per_kind: Vec<PathBuf> = dirs
        .into_iter()
        .filter(|d| {
            let main = std::fs::read_to_string(d.join("main.tf")).unwrap();
            kinds.insert(main.lines().next().unwrap_or_default().to_string())
        })
        .collect();
    assert_eq!(
        one_per_kind.len(),
        5,
        "key, replica, grant, key-access, s3-bucket"
    );
    validate_all(&one_per_kind);
}
