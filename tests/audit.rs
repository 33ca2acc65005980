//! `audit:` in orch.yaml, the checks of `orch audit` turned off with a reason: each bad input is
//! refused like a compiler (exit 1, the file and line, what is wrong and how to fix it, nothing
//! rendered), and the valid forms load. Also the usage errors of `orch audit` that are refused
//! before any AWS call (a report path or an account or region it cannot use).

mod common;

use common::Tree;

const ORCH: &str = "live/orch.yaml";

/// The base tree with orch.yaml's `audit:` block written from line 2 on.
fn with_audit(block: &str) -> Tree {
    Tree::new().file(ORCH, &format!("backend: {{type: local}}\n{block}"))
}

fn at(line: usize) -> String {
    format!("{ORCH}:{line}")
}

#[test]
fn checks_turned_off_with_reasons_load() {
    for block in [
        "audit:\n  disable:\n    rotation-off: \"HMAC keys are rotated by the app\"\n    many-grants: the batch jobs hold one grant each\n",
        "audit: {disable: {unmanaged-key: adopted next quarter}}\n",
        "audit:\n",
        "audit: {disable: null}\n",
        "audit: {}\n",
    ] {
        with_audit(block).run(&["validate"]).assert_success();
    }
}

#[test]
fn a_check_that_is_not_one() {
    let out = with_audit("audit:\n  disable:\n    rotation-of: \"rotated by the app\"\n").rejects(
        &[&at(4)],
        &[
            "`rotation-of` is not a check of `orch audit`",
            "did you mean `rotation-off`?",
        ],
    );
    assert_eq!(out.errors().len(), 1, "{}", out.stderr);
}

#[test]
fn a_check_nothing_like_one_lists_them_all() {
    with_audit("audit:\n  disable:\n    frobnicate: why not\n").rejects(
        &[&at(4)],
        &[
            "`frobnicate` is not a check of `orch audit`",
            "the checks are: public-policy, unknown-account, pending-deletion, unconstrained-grant, rotation-off, unmanaged-key, disabled-key, many-grants",
        ],
    );
}

#[test]
fn an_empty_reason() {
    for reason in ["\"\"", "\"   \"", "''"] {
        let out = with_audit(&format!("audit:\n  disable:\n    rotation-off: {reason}\n"))
            .rejects(
                &[&at(4)],
                &[
                    "`rotation-off` is turned off with an empty reason",
                    "say in quotes why the check does not apply, e.g. `rotation-off: \"<why>\"`; the reports print it",
                ],
            );
        assert_eq!(out.errors().len(), 1, "{reason}: {}", out.stderr);
    }
}

#[test]
fn a_missing_or_null_reason() {
    for reason in ["", " null", " ~"] {
        with_audit(&format!("audit:\n  disable:\n    disabled-key:{reason}\n")).rejects(
            &[&at(4)],
            &[
                "`disabled-key` is turned off without a reason (null)",
                "say in quotes why the check does not apply",
            ],
        );
    }
}

#[test]
fn a_reason_that_is_not_text() {
    for (reason, says) in [
        (
            "42",
            "`many-grants` is turned off with `42` for a reason: a reason is text, not a number or a boolean",
        ),
        (
            "true",
            "`many-grants` is turned off with `true` for a reason: a reason is text, not a number or a boolean",
        ),
        (
            "[the app, rotates]",
            "`many-grants` is turned off with a list or a mapping for a reason: a reason is text",
        ),
        (
            "{why: app}",
            "`many-grants` is turned off with a list or a mapping for a reason: a reason is text",
        ),
    ] {
        with_audit(&format!("audit:\n  disable:\n    many-grants: {reason}\n"))
            .rejects(&[&at(4)], &[says]);
    }
    // Quoted, a number is text.
    with_audit("audit:\n  disable:\n    many-grants: \"42\"\n")
        .run(&["validate"])
        .assert_success();
}

#[test]
fn a_reason_that_cannot_be_printed() {
    with_audit("audit:\n  disable:\n    many-grants: \"app\\e[31m\"\n").rejects(
        &[&at(4)],
        &[
            "`many-grants` is turned off with a reason that cannot be printed: `app\\x1b[31m` holds the control or invisible character \\x1b",
        ],
    );
}

#[test]
fn disable_that_is_not_a_mapping() {
    for disable in ["[rotation-off]", "rotation-off"] {
        with_audit(&format!("audit:\n  disable: {disable}\n")).rejects(
            &[&at(3)],
            &[
                "`disable` must be a mapping of check ids to the reason each is off",
                "e.g. `disable: {rotation-off: \"HMAC keys are rotated by the app\"}`",
            ],
        );
    }
}

#[test]
fn audit_that_is_not_a_mapping() {
    for audit in ["[rotation-off]", "rotation-off"] {
        with_audit(&format!("audit: {audit}\n")).rejects(
            &[&at(2)],
            &["`audit` must be a mapping of `field: value` pairs"],
        );
    }
}

#[test]
fn an_unknown_field_of_audit() {
    with_audit("audit:\n  disabled: {rotation-off: rotated by the app}\n").rejects(
        &[&at(3)],
        &[
            "unknown field `disabled` in `audit`",
            "did you mean `disable`?",
        ],
    );
}

/// A usage error of `orch audit`: exit 1, the message, no panic, and no AWS call (no profile
/// points anywhere, and the run ends before reading).
fn refused(args: &[&str], says: &str) {
    let tree = Tree::new();
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    let out = tree.run(&all);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains(says), "lacks {says:?}:\n{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("reading "),
        "it read AWS:\n{}",
        out.stderr
    );
}

#[test]
fn a_report_path_it_cannot_write() {
    let tree = Tree::new().dir("out.md");
    let dir = tree.path("out.md").display().to_string();
    let out = tree.run(&["audit", "--report", &dir]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "`{dir}` is a directory: name a file in it (e.g. {dir}/audit.md)"
        )),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("reading "), "{}", out.stderr);
    refused(
        &["--report", "audit.txt"],
        "`audit.txt`: a report is JSON, HTML or Markdown, chosen by the extension; `.txt` is none of them (name it audit.json, audit.html or audit.md)",
    );
    refused(
        &["--report", "audit"],
        "`audit` has no extension: name the report audit.json (JSON), audit.html (a page) or audit.md (Markdown for a pull request)",
    );
    refused(
        &["--report", "/nonexistent-dir/audit.md"],
        "`/nonexistent-dir/audit.md`: the directory /nonexistent-dir does not exist (orch does not create it)",
    );
}

#[test]
fn an_account_or_region_it_cannot_read() {
    refused(
        &["--account", "nope"],
        "--account nope: no such account in the tree (accounts: dev, prod); audit reads the accounts the tree has: add live/nope/account.yaml first",
    );
    refused(
        &["--region", "mars-1"],
        "--region mars-1: not an AWS region orch knows",
    );
    refused(&["--concurrency", "0"], "0 is not in 1..=64");
}
