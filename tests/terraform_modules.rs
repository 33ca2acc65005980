//! The rendered modules of the shipped live/ tree are real Terraform: `terraform fmt -check` passes
//! on every node and `terraform validate` on every distinct configuration, with the hashicorp/aws provider from the offline
//! mirror. Needs terraform on PATH and TF_CLI_CONFIG_FILE pointing at a CLI config that names the
//! mirror; `scripts/just test` sets both up. A missing tool fails the test, it is never skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{require_terraform, Tree};

/// A copy of the shipped tree and templates, rendered with `args`; returns the work dirs.
fn render(args: &[&str]) -> (Tree, Vec<PathBuf>) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tree = Tree::empty()
        .copy(&repo.join("live"), "live")
        .copy(&repo.join("templates"), "templates");
    let out = tree.run(args);
    assert_eq!(out.code, 0, "orch render failed: {}", out.stderr);
    let dirs = tree
        .work_dirs()
        .iter()
        .map(|a| tree.path(".orch/work").join(a))
        .collect();
    (tree, dirs)
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
/// machine's cores), each starting from the first one's dependency lock file. Without a lock
/// file, concurrent inits race to create the same cache directory even when the cache is warm
/// (orch's executor avoids it by letting later inits trust the warm cache instead).
fn validate_all(dirs: &[PathBuf]) {
    let (first, rest) = dirs.split_first().expect("the tree renders nodes");
    let first_result = {
        let _warming = FIRST_INIT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        validate(first)
    };
    let mut failures: Vec<String> = first_result.err().into_iter().collect();
    for dir in rest {
        std::fs::copy(
            first.join(".terraform.lock.hcl"),
            dir.join(".terraform.lock.hcl"),
        )
        .expect("the first init writes a lock file");
    }
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

/// One work dir of each distinct configuration: `terraform validate` reads the `.tf` files only,
/// and with `-backend=false` not the backend block either, the one file that differs between
/// two nodes of the same kind (its state path). Validating the others again would cost a
/// provider start each and check nothing more.
fn distinct_configurations(dirs: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut seen = std::collections::BTreeSet::new();
    dirs.into_iter()
        .filter(|d| {
            let mut files: Vec<(String, String)> = std::fs::read_dir(d)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".tf") && n != "backend.tf")
                .map(|n| (n.clone(), std::fs::read_to_string(d.join(&n)).unwrap()))
                .collect();
            files.sort();
            seen.insert(files)
        })
        .collect()
}

#[test]
fn shipped_tree_renders_to_valid_formatted_terraform_for_the_sandbox_profile() {
    require_terraform();
    let (tree, dirs) = render(&["--profile", "sandbox", "render", "--all"]);
    assert_eq!(dirs.len(), 13, "the shipped tree has 13 nodes");
    fmt_check(&tree.path(".orch/work"));
    let distinct = distinct_configurations(dirs);
    // Two shapes of key, a grant, a key-access policy, a bucket.
    assert_eq!(distinct.len(), 5, "{distinct:?}");
    validate_all(&distinct);
}

#[test]
fn shipped_tree_renders_to_valid_formatted_terraform_for_real_aws() {
    require_terraform();
    let (tree, dirs) = render(&["render", "--all"]);
    fmt_check(&tree.path(".orch/work"));
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
