//! Snapshots (insta) of what orch renders for the shipped live/ tree: each node's inputs (with its
//! computed key policy), one full module per kind, and the plain-words policy explanation. A
//! change to a template or to the policy engine shows up here as a reviewed diff.

use std::path::Path;
use std::process::Command;

fn orch(live: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .arg("--live")
        .arg(live)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "orch {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn shipped_tree_rendered() -> tempfile::TempDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(repo.join("live"))
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(status.success());
    orch(
        &tmp.path().join("live"),
        &["--profile", "sandbox", "render", "--all"],
    );
    tmp
}

#[test]
fn tfvars_of_every_node() {
    let tmp = shipped_tree_rendered();
    let graph: serde_json::Value = serde_json::from_str(&orch(
        &tmp.path().join("live"),
        &["graph", "--format", "json"],
    ))
    .unwrap();
    for node in graph["nodes"].as_array().unwrap() {
        let address = node["address"].as_str().unwrap();
        let text = std::fs::read_to_string(
            tmp.path()
                .join(".orch/work")
                .join(address)
                .join("terraform.tfvars.json"),
        )
        .unwrap();
        let mut vars: serde_json::Value = serde_json::from_str(&text).unwrap();
        // The policy travels as a JSON string; expand it so the snapshot reads as a document.
        if let Some(policy) = vars.get("policy").and_then(|p| p.as_str()) {
            vars["policy"] = serde_json::from_str(policy).unwrap();
        }
        insta::assert_json_snapshot!(format!("tfvars__{}", address.replace('/', "__")), vars);
    }
}

#[test]
fn one_module_of_each_kind() {
    let tmp = shipped_tree_rendered();
    for address in [
        "prod/us-east-1/s3-data",
        "prod/eu-west-1/s3-data",
        "prod/eu-west-1/reporting-grant",
        "analytics/us-west-2/prod-data-reader",
        "prod/us-east-1/s3-data-bucket",
    ] {
        let dir = tmp.path().join(".orch/work").join(address);
        let mut text = String::new();
        for file in [
            "versions.tf",
            "providers.tf",
            "backend.tf",
            "variables.tf",
            "main.tf",
            "outputs.tf",
        ] {
            text.push_str(&format!(
                "### {file}\n{}\n",
                std::fs::read_to_string(dir.join(file)).unwrap()
            ));
        }
        insta::assert_snapshot!(format!("module__{}", address.replace('/', "__")), text);
    }
}

#[test]
fn policies_explained() {
    let live = Path::new(env!("CARGO_MANIFEST_DIR")).join("live");
    // s3-data: a key-access node of another account reaches it; app-secrets in eu-west-1 (a
    // replica): a grant.
    for address in [
        "prod/us-east-1/s3-data",
        "prod/eu-west-1/app-secrets",
        "prod/us-east-1/payments-signing",
        "staging/us-east-1/tokens-hmac",
    ] {
        insta::assert_snapshot!(
            format!("explain__{}", address.replace('/', "__")),
            orch(&live, &["policy", address, "--explain"])
        );
    }
}
