//! The rendered modules of the shipped live/ tree pass checkov's Terraform checks: no failed
//! check, and every skipped check carries a written reason (`# checkov:skip=ID:reason` inside the
//! resource). One checkov run per render variant (the sandbox profile, real AWS), offline.
//!
//! Needs checkov in the project venv (ORCH_TOOLS_VENV); `scripts/just test` sets it up. A
//! missing tool fails the test, it is never skipped.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{shipped_live, Tree};
use serde_json::Value;

/// What checkov prints for a skip without a reason.
const NO_REASON: &str = "No comment provided";

fn checkov() -> PathBuf {
    common::venv_program("checkov")
}

/// One check on one resource, as checkov reports it.
struct Finding {
    check_id: String,
    check_name: String,
    resource: String,
    /// Relative to the scanned directory: `/<account>/<region>/<node>/main.tf`.
    file: String,
    /// The reason written next to a skip.
    reason: Option<String>,
}

impl Finding {
    fn from_json(check: &Value) -> Finding {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Finding {
            check_id: text(&check["check_id"]),
            check_name: text(&check["check_name"]),
            resource: text(&check["resource"]),
            file: text(&check["file_path"]),
            reason: check["check_result"]["suppress_comment"]
                .as_str()
                .map(String::from),
        }
    }

    /// The node's address, from the file path.
    fn address(&self) -> String {
        let path = self.file.trim_start_matches('/');
        path.rsplit_once('/')
            .map_or(path, |(dir, _)| dir)
            .to_string()
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} ({}) in {}",
            self.check_id, self.resource, self.check_name, self.file
        )
    }
}

struct Scan {
    passed: Vec<Finding>,
    failed: Vec<Finding>,
    skipped: Vec<Finding>,
    parsing_errors: Vec<String>,
}

/// Runs checkov once over `work` and parses its JSON report.
fn scan(work: &Path) -> Scan {
    let out = Command::new(checkov())
        .args(["--skip-download", "--framework", "terraform", "--compact"])
        .args(["--output", "json", "-d"])
        .arg(work)
        .current_dir(work)
        .output()
        .expect("run checkov");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "checkov printed no JSON report ({e}); exit {:?}, stderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    // One framework gives one report object, several a list of them.
    let reports = match report {
        Value::Array(reports) => reports,
        one => vec![one],
    };
    let mut scan = Scan {
        passed: Vec::new(),
        failed: Vec::new(),
        skipped: Vec::new(),
        parsing_errors: Vec::new(),
    };
    for report in &reports {
        let results = &report["results"];
        let checks = |name: &str| -> Vec<Finding> {
            results[name]
                .as_array()
                .into_iter()
                .flatten()
                .map(Finding::from_json)
                .collect()
        };
        scan.passed.extend(checks("passed_checks"));
        scan.failed.extend(checks("failed_checks"));
        scan.skipped.extend(checks("skipped_checks"));
        scan.parsing_errors.extend(
            results["parsing_errors"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| e.to_string()),
        );
    }
    scan
}

/// Renders a copy of the shipped tree and templates with `args`, scans it, and asserts that no
/// check failed, every skip has a reason, and checkov saw every node.
fn assert_passes_checkov(args: &[&str]) {
    checkov();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tree = Tree::empty()
        .copy(&shipped_live(), "live")
        .copy(&repo.join("templates"), "templates");
    tree.run(args).assert_success();
    let scan = scan(&tree.path(".orch/work"));

    assert!(
        scan.parsing_errors.is_empty(),
        "checkov could not parse: {:?}",
        scan.parsing_errors
    );
    let list = |findings: &[Finding]| {
        findings
            .iter()
            .map(|f| format!("  {f}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        scan.failed.is_empty(),
        "{} checkov check(s) failed; fix the template or write `# checkov:skip=ID:reason` inside the \
         resource:\n{}",
        scan.failed.len(),
        list(&scan.failed)
    );
    let unexplained: Vec<Finding> = scan
        .skipped
        .into_iter()
        .filter(|f| {
            f.reason
                .as_deref()
                .is_none_or(|r| r.trim().is_empty() || r == NO_REASON)
        })
        .collect();
    assert!(
        unexplained.is_empty(),
        "checkov check(s) skipped without a reason; write it as `# checkov:skip=ID:reason`:\n{}",
        list(&unexplained)
    );
    let scanned: BTreeSet<String> = scan.passed.iter().map(Finding::address).collect();
    let rendered: BTreeSet<String> = tree.work_dirs().into_iter().collect();
    assert_eq!(
        scanned, rendered,
        "checkov passed checks on other nodes than the rendered ones"
    );
}

#[test]
fn shipped_tree_passes_checkov_for_the_sandbox_profile() {
    assert_passes_checkov(&["--profile", "sandbox", "render", "--all"]);
}

#[test]
fn shipped_tree_passes_checkov_for_real_aws() {
    assert_passes_checkov(&["render", "--all"]);
}
