//! `orch audit` against the emulator: keys made through the AWS API with each problem the audit
//! looks for, beside keys the tree manages cleanly (adopted by `import:` key ids, so no
//! terraform runs), an AWS-managed key, and a second account whose role cannot be assumed.
//! The audit finds exactly what was planted, prints the reason of a check turned off, exits 1
//! with the other account still audited when an account cannot be read, and keeps markup from
//! AWS as text in its Markdown and HTML reports.

mod common;
#[path = "e2e/emulator.rs"]
mod emulator;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use emulator::{sandboxed, venv, write, Emulator};
use serde_json::Value;

const PROD: &str = "111111111111";
const DENIED: &str = "arn:aws:iam::222222222222:role/orch-denied";
const MARKUP: &str = "<script>alert(1)</script> **bold** | pipe";

/// Makes the keys in PROD us-east-1 through boto3 (the harness's role, as the e2e tests reach an
/// account) and prints {name: key id}. Every key is rotated unless its problem is rotation.
const PLANT: &str = r#"
import json, sys, boto3
endpoint, markup = sys.argv[1:3]
base = dict(endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="orch-sandbox", aws_secret_access_key="orch-sandbox")
c = boto3.client("sts", **base).assume_role(
    RoleArn="arn:aws:iam::111111111111:role/orch-brownfield", RoleSessionName="audit")["Credentials"]
kms = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=c["AccessKeyId"],
                   aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])
root = {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"}, "Action": "kms:*", "Resource": "*"}
def policy(*more):
    return json.dumps({"Version": "2012-10-17", "Statement": [root, *more]})
out = {}
def key(name, description=None, rotate=True, **kw):
    k = kms.create_key(Description=description or name, **kw)["KeyMetadata"]["KeyId"]
    if rotate:
        kms.enable_key_rotation(KeyId=k)
    kms.create_alias(AliasName=f"alias/audit/{name}", TargetKeyId=k)
    out[name] = k
    return k
key("clean-one")
key("clean-two", Policy=policy({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:role/app"},
                                "Action": "kms:Decrypt", "Resource": "*"}))
key("unmanaged", description=markup, Tags=[{"TagKey": "Team", "TagValue": markup}])
key("rotation-off", rotate=False)
kms.schedule_key_deletion(KeyId=key("pending"), PendingWindowInDays=7)
kms.disable_key(KeyId=key("disabled"))
key("public", Policy=policy({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"},
                            {"Effect": "Allow", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*",
                             "Condition": {"StringEquals": {"kms:CallerAccount": "111111111111"}}}))
key("foreign", Policy=policy({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:role/partner"},
                              "Action": ["kms:Decrypt", "kms:DescribeKey"], "Resource": "*"}))
kms.create_grant(KeyId=key("grant"), GranteePrincipal="arn:aws:iam::111111111111:role/app", Operations=["Decrypt"])
many = key("many-grants")
for i in range(11):
    kms.create_grant(KeyId=many, GranteePrincipal=f"arn:aws:iam::111111111111:role/batch-{i}", Operations=["Decrypt"],
                     Constraints={"EncryptionContextEquals": {"job": str(i)}})
kms.describe_key(KeyId="alias/aws/ebs")  # the AWS-managed key, made on first use as AWS does
print(json.dumps(out))
"#;

/// The keys the tree adopts by `import:` key id: all but `unmanaged`.
const MANAGED: [&str; 9] = [
    "clean-one",
    "clean-two",
    "rotation-off",
    "pending",
    "disabled",
    "public",
    "foreign",
    "grant",
    "many-grants",
];

/// The tree: `prod` (PROD, us-east-1) adopting every planted key but `unmanaged`, and `data`
/// (222222222222), reached through a role the emulator refuses; `audit` ends orch.yaml.
fn tree(root: &Path, endpoint: &str, keys: &BTreeMap<String, String>, audit: &str) {
    write(
        root,
        "live/orch.yaml",
        &format!(
            "backend: {{type: local}}\nprofiles: {{sandbox: {{endpoint: \"{endpoint}\"}}}}\n{audit}"
        ),
    );
    write(
        root,
        "live/prod/account.yaml",
        &format!("account_id: \"{PROD}\"\nenvironment: prod\nrole_arn: arn:aws:iam::{PROD}:role/orch-brownfield\nregions: [us-east-1]\n"),
    );
    write(
        root,
        "live/data/account.yaml",
        &format!("account_id: \"222222222222\"\nenvironment: data\nrole_arn: {DENIED}\nregions: [us-east-1]\n"),
    );
    for name in MANAGED {
        write(
            root,
            &format!("live/prod/us-east-1/{name}/node.yaml"),
            &format!("description: {name}\nimport: {{key_id: {}}}\n", keys[name]),
        );
    }
}

struct Audit {
    code: i32,
    stderr: String,
}

/// `orch audit ARGS` on `root/live` through the sandbox profile.
fn audit(root: &Path, endpoint: &str, args: &[&str]) -> Audit {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    let out = sandboxed(root, endpoint, &all).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    Audit {
        code: out.status.code().unwrap_or(-1),
        stderr,
    }
}

fn report(root: &Path, name: &str) -> String {
    std::fs::read_to_string(root.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// (check id, the planted key's name) of each finding of a JSON report, sorted.
fn findings(json: &Value, keys: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let name = |id: &str| {
        keys.iter()
            .find(|(_, k)| *k == id)
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| format!("a key not planted: {id}"))
    };
    let mut found: Vec<(String, String)> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_string(),
                name(f["key_id"].as_str().unwrap()),
            )
        })
        .collect();
    found.sort();
    found
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = list
        .iter()
        .map(|(c, k)| (c.to_string(), k.to_string()))
        .collect();
    out.sort();
    out
}

#[test]
fn audit_finds_what_was_planted() {
    let venv = venv();
    let emulator = Emulator::start_with(&venv, &[("ORCH_EMULATOR_DENY_ASSUME_ROLE", DENIED)]);
    let endpoint = emulator.endpoint.as_str();
    let planted = Command::new(venv.join("bin/python"))
        .args(["-c", PLANT, endpoint, MARKUP])
        .output()
        .unwrap();
    assert!(
        planted.status.success(),
        "planting failed: {}",
        String::from_utf8_lossy(&planted.stderr)
    );
    let keys: BTreeMap<String, String> = serde_json::from_slice(&planted.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, endpoint, &keys, "");
    let expected = pairs(&[
        ("unmanaged-key", "unmanaged"),
        ("rotation-off", "rotation-off"),
        ("pending-deletion", "pending"),
        ("disabled-key", "disabled"),
        ("public-policy", "public"),
        ("unknown-account", "foreign"),
        ("unconstrained-grant", "grant"),
        ("many-grants", "many-grants"),
    ]);

    // ---- one account cannot be read: exit 1, the other audited all the same ----------------
    let run = audit(root, endpoint, &["--report", "all.json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let not_read = run
        .stderr
        .lines()
        .find(|l| l.starts_with("NOT READ data/us-east-1 (222222222222): "))
        .unwrap_or_else(|| panic!("{}", run.stderr));
    assert!(not_read.contains("could not be assumed"), "{not_read}");
    assert!(
        run.stderr.contains("its keys were not audited"),
        "{}",
        run.stderr
    );
    let json: Value = serde_json::from_str(&report(root, "all.json")).unwrap();
    assert_eq!(json["exit_code"], 1);
    assert_eq!(json["not_read"][0]["target"]["account"], "data");
    assert_eq!(findings(&json, &keys), expected);

    // ---- the readable account alone: exactly what was planted, exit 2 ----------------------
    let run = audit(
        root,
        endpoint,
        &["--account", "prod", "--report", "audit.json"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    let json: Value = serde_json::from_str(&report(root, "audit.json")).unwrap();
    assert_eq!(findings(&json, &keys), expected, "{}", run.stderr);
    assert_eq!(json["keys_read"], 10, "the AWS-managed key is not read");
    assert_eq!(json["aws_managed"], 1);
    assert!(json["not_read"].as_array().unwrap().is_empty());
    assert!(json["partly_read"].as_array().unwrap().is_empty(), "{json}");
    let first = &json["findings"][0];
    assert_eq!(first["check"], "public-policy", "most severe first");
    assert_eq!(first["severity"], "critical");
    assert_eq!(first["found"], "Allow *: kms:Decrypt");
    assert_eq!(first["aliases"][0], "alias/audit/public");
    assert!(run
        .stderr
        .contains("CRITICAL public-policy (1): the key policy lets anyone (`*`) use the key, without a condition"));
    assert!(run.stderr.contains(
        "account 999999999999: Allow arn:aws:iam::999999999999:role/partner: kms:Decrypt, kms:DescribeKey"
    ), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("8 finding(s): 1 critical, 2 high, 3 medium, 2 low; exit 2 (findings)"),
        "{}",
        run.stderr
    );

    // ---- markup from AWS stays text in the Markdown and HTML reports ------------------------
    for name in ["audit.md", "audit.html"] {
        let run = audit(root, endpoint, &["--account", "prod", "--report", name]);
        assert_eq!(run.code, 2, "{}", run.stderr);
    }
    let md = report(root, "audit.md");
    assert!(!md.contains("<script>"), "{md}");
    assert!(!md.contains("**bold**"), "{md}");
    assert!(
        md.contains("&lt;script&gt;alert\\(1\\)&lt;/script&gt; \\*\\*bold\\*\\* \\| pipe"),
        "{md}"
    );
    let rows = md
        .lines()
        .filter(|l| l.contains("alert"))
        .collect::<Vec<_>>();
    assert_eq!(rows.len(), 1, "{md}");
    assert_eq!(
        rows[0].matches(" | ").count(),
        5,
        "a pipe from AWS made a cell: {}",
        rows[0]
    );
    let html = report(root, "audit.html");
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; **bold** | pipe"));
    assert!(!has_raw_control(&html));

    // ---- a check turned off is not reported, and its reason is printed ----------------------
    tree(
        root,
        endpoint,
        &keys,
        "audit:\n  disable:\n    rotation-off: \"keys of the batch app are rotated by the app\"\n",
    );
    let run = audit(root, endpoint, &["--account", "prod", "--report", "off.md"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(!run.stderr.contains("rotation-off ("), "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "turned off in orch.yaml: rotation-off: keys of the batch app are rotated by the app"
        ),
        "{}",
        run.stderr
    );
    let md = report(root, "off.md");
    assert!(
        md.contains("- `rotation-off`: keys of the batch app are rotated by the app"),
        "{md}"
    );
    assert!(!md.contains("`rotation-off` ("), "{md}");

    // ---- a Markdown report path that is a directory: refused before any AWS call ------------
    std::fs::create_dir(root.join("dir.md")).unwrap();
    let run = audit(root, endpoint, &["--report", "dir.md"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("`dir.md` is a directory"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("reading "), "{}", run.stderr);
}

/// Whether `text` holds a raw control character (an escape sequence from AWS text).
fn has_raw_control(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
}
