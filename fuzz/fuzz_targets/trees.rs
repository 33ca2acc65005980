//! Arbitrary YAML trees: a whole `live/` tree (orch.yaml, accounts, regions, nodes) generated from
//! the fuzzer's bytes, in block and flow style, with keys and values drawn mostly from orch's own
//! vocabulary (field names, account ids, regions, ARNs, addresses, kinds, capabilities) so the
//! trees get past the parser into layering, decoding, linking, policy checks and the DAG. Each
//! file may start from a valid skeleton so some trees validate. `orch validate` (and `orch graph`
//! when valid) must never panic, crash or hang.

#![no_main]

mod common;

use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

static SCRATCH: OnceLock<common::Scratch> = OnceLock::new();

/// Deeper than the loader's limit (64), so both sides of it are reached.
const MAX_DEPTH: usize = 72;

const FIELDS: &[&str] = &[
    "account_id",
    "environment",
    "role_arn",
    "regions",
    "defaults",
    "terraform",
    "binary",
    "aws_provider",
    "required_version",
    "parallelism",
    "backend",
    "type",
    "profiles",
    "endpoint",
    "waves",
    "name",
    "match",
    "kind",
    "description",
    "aliases",
    "spec",
    "usage",
    "rotation",
    "enabled",
    "period_days",
    "deletion_window_days",
    "is_enabled",
    "multi_region",
    "replicas",
    "replica_of",
    "tags",
    "access",
    "key_administrators",
    "key_users",
    "decrypt_only",
    "describe_only",
    "root_access",
    "services",
    "service",
    "capabilities",
    "prevent_destroy",
    "bypass_policy_lockout_safety_check",
    "policy",
    "encryption_context",
    "depends_on",
    "key",
    "grantee",
    "operations",
    "retiring_principal",
    "encryption_context_equals",
    "encryption_context_subset",
    "roles",
    "bucket",
    "versioning",
    "force_destroy",
    "inputs",
    "owner",
    "application",
    "cost_center",
    "read-data",
    "write-data",
    "administer-resource",
    "delete-data",
    "read-config",
    "Version",
    "Statement",
    "Effect",
    "Principal",
    "Action",
    "Resource",
    "Condition",
    "ManagedBy",
    "Environment",
    "<<",
    "~",
    "null",
    "1",
    "true",
];

const WORDS: &[&str] = &[
    "~",
    "null",
    "",
    "true",
    "false",
    "yes",
    "0",
    "30",
    "7",
    "-1",
    "1e3",
    "0x10",
    "01234",
    "1.10",
    "\"\"",
    "'null'",
    "\"*\"",
    "'01234'",
    "111111111111",
    "222222222222",
    "333333333333",
    "\"111111111111\"",
    "us-east-1",
    "eu-west-1",
    "us-west-2",
    "ap-southeast-2",
    "us-gov-west-1",
    "cn-north-1",
    "prod",
    "dev",
    "prod/us-east-1/data",
    "dev/us-east-1/app",
    "prod/eu-west-1/data",
    "prod/us-east-1/reader",
    "arn:aws:iam::111111111111:role/app",
    "arn:aws:iam::222222222222:role/reader",
    "arn:aws:iam::111111111111:root",
    "arn:aws-cn:iam::111111111111:role/x",
    "read-data",
    "write-data",
    "administer-resource",
    "delete-data",
    "read-config",
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "DescribeKey",
    "SYMMETRIC_DEFAULT",
    "RSA_2048",
    "HMAC_256",
    "ECC_SECG_P256K1",
    "ENCRYPT_DECRYPT",
    "SIGN_VERIFY",
    "GENERATE_VERIFY_MAC",
    "s3",
    "ec2",
    "rds",
    "prod/data",
    "alias/x",
    "\"**\"",
    "\"prod/**\"",
    "http://127.0.0.1:5000",
    "local",
    "terraform",
    "\">= 5.0\"",
    "Allow",
    "Deny",
    "\"kms:*\"",
    "'2012-10-17'",
    "|\n  block text",
    ">-\n  folded text",
    "\"a\\tb\\u00e9\"",
    "x # comment",
];

const ACCOUNTS: &[&str] = &["prod", "dev", "analytics", "Prod", "a b", "templates"];
const REGIONS: &[&str] = &[
    "us-east-1",
    "eu-west-1",
    "us-west-2",
    "ap-southeast-2",
    "us-east-l",
    "account.yaml",
];
const NODES: &[&str] = &[
    "data",
    "app",
    "reader",
    "bucket",
    "x",
    "node.yaml",
    "-x",
    "UPPER",
    "role",
];

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(files) = tree(&mut u) else { return };
    let scratch = SCRATCH.get_or_init(common::Scratch::new);
    scratch.write(&files);
    scratch.validate();
});

fn tree(u: &mut Unstructured) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = vec![("orch.yaml".to_string(), document(u, Skeleton::Fleet)?)];
    for _ in 0..u.int_in_range(0..=3)? {
        let account = name(u, ACCOUNTS)?;
        if u.ratio(7, 8)? {
            files.push((
                format!("{account}/account.yaml"),
                document(u, Skeleton::Account)?,
            ));
        }
        for _ in 0..u.int_in_range(0..=2)? {
            let region = name(u, REGIONS)?;
            if u.ratio(1, 3)? {
                files.push((
                    format!("{account}/{region}/region.yaml"),
                    document(u, Skeleton::Region)?,
                ));
            }
            for _ in 0..u.int_in_range(0..=3)? {
                let node = name(u, NODES)?;
                files.push((
                    format!("{account}/{region}/{node}/node.yaml"),
                    document(u, Skeleton::Node)?,
                ));
            }
        }
    }
    Ok(files)
}

/// A directory name: mostly from `known`, sometimes arbitrary (never a path: no `/`, no NUL, not
/// `.` or `..`, and short enough for any file system).
fn name(u: &mut Unstructured, known: &[&str]) -> Result<String> {
    if u.ratio(5, 6)? {
        return Ok(u.choose(known)?.to_string());
    }
    let raw: String = u
        .arbitrary::<String>()?
        .chars()
        .filter(|c| *c != '/' && *c != '\0')
        .take(40)
        .collect();
    Ok(match raw.as_str() {
        "" | "." | ".." => "x".to_string(),
        _ => raw,
    })
}

#[derive(Clone, Copy)]
enum Skeleton {
    Fleet,
    Account,
    Region,
    Node,
}

/// One file: maybe a valid skeleton for its kind, then arbitrary `field: value` lines.
fn document(u: &mut Unstructured, kind: Skeleton) -> Result<Vec<u8>> {
    let mut out = String::new();
    if u.ratio(2, 3)? {
        out.push_str(match (kind, u.int_in_range(0..=2)?) {
            (Skeleton::Fleet, 0) => "defaults:\n  tags: {ManagedBy: orch}\n",
            (Skeleton::Fleet, _) => "waves:\n  - {name: all, match: [\"**\"]}\n",
            (Skeleton::Account, 0) => "account_id: \"111111111111\"\nenvironment: prod\nrole_arn: arn:aws:iam::111111111111:role/d\nregions: [us-east-1, eu-west-1]\n",
            (Skeleton::Account, _) => "account_id: \"222222222222\"\nenvironment: dev\nrole_arn: arn:aws:iam::222222222222:role/d\nregions: [us-east-1]\ndefaults:\n  key_administrators: [arn:aws:iam::222222222222:role/admin]\n",
            (Skeleton::Region, _) => "defaults:\n  deletion_window_days: 7\n",
            (Skeleton::Node, 0) => "description: a key\nkey_users: [arn:aws:iam::111111111111:role/app]\n",
            (Skeleton::Node, 1) => "kind: grant\nkey: prod/us-east-1/data\ngrantee: arn:aws:iam::222222222222:role/reader\noperations: [Decrypt]\n",
            (Skeleton::Node, _) => "description: multi\nmulti_region: true\nreplicas: [eu-west-1]\naccess:\n  read-data: [arn:aws:iam::111111111111:role/app]\n",
        });
    }
    entries(u, &mut out, 0, 1)?;
    Ok(out.into_bytes())
}

/// Block-style `key: value` lines at `indent`, the mapping being at nesting level `depth`.
fn entries(u: &mut Unstructured, out: &mut String, indent: usize, depth: usize) -> Result<()> {
    for _ in 0..u.int_in_range(0..=5)? {
        out.push_str(&" ".repeat(indent));
        out.push_str(&key(u)?);
        out.push(':');
        after_indicator(u, out, indent, depth)?;
    }
    Ok(())
}

/// What follows a `key:` or a `-`: a scalar or flow value on the same line, or a block list or
/// mapping on the next lines.
fn after_indicator(
    u: &mut Unstructured,
    out: &mut String,
    indent: usize,
    depth: usize,
) -> Result<()> {
    let shape = if depth >= MAX_DEPTH {
        0
    } else {
        u.int_in_range(0..=3)?
    };
    match shape {
        0 => {
            out.push(' ');
            out.push_str(&scalar(u)?);
            out.push('\n');
        }
        1 => {
            out.push(' ');
            flow(u, out, depth + 1)?;
            out.push('\n');
        }
        2 => {
            out.push('\n');
            entries(u, out, indent + 2, depth + 1)?;
        }
        _ => {
            out.push('\n');
            // A list under a key may sit at the key's own indentation.
            let at = if u.arbitrary()? { indent } else { indent + 2 };
            for _ in 0..u.int_in_range(0..=4)? {
                out.push_str(&" ".repeat(at));
                out.push('-');
                after_indicator(u, out, at, depth + 1)?;
            }
        }
    }
    Ok(())
}

fn flow(u: &mut Unstructured, out: &mut String, depth: usize) -> Result<()> {
    let map: bool = u.arbitrary()?;
    out.push(if map { '{' } else { '[' });
    for i in 0..u.int_in_range(0..=4)? {
        if i > 0 {
            out.push_str(", ");
        }
        if map {
            out.push_str(&key(u)?);
            out.push_str(": ");
        }
        if depth < MAX_DEPTH && u.ratio(1, 4)? {
            flow(u, out, depth + 1)?;
        } else {
            out.push_str(&flow_scalar(u)?);
        }
    }
    out.push(if map { '}' } else { ']' });
    Ok(())
}

fn key(u: &mut Unstructured) -> Result<String> {
    if u.ratio(9, 10)? {
        return Ok(u.choose(FIELDS)?.to_string());
    }
    quoted_or_raw(u)
}

fn scalar(u: &mut Unstructured) -> Result<String> {
    match u.int_in_range(0..=9)? {
        0 => quoted_or_raw(u),
        1 => Ok(u.arbitrary::<i64>()?.to_string()),
        // A long value: descriptions, policy names and the like have limits.
        2 => Ok("x".repeat(u.int_in_range(0..=10_000)?)),
        3 => Ok(u.choose(&common::KINDS)?.to_string()),
        _ => Ok(u.choose(WORDS)?.to_string()),
    }
}

/// A scalar safe inside `[...]` or `{...}` (block scalars and comments are not).
fn flow_scalar(u: &mut Unstructured) -> Result<String> {
    let word = scalar(u)?;
    Ok(if word.contains('\n') || word.contains('#') {
        "x".to_string()
    } else {
        word
    })
}

/// Arbitrary text, either double-quoted (any content, escaped) or raw (which may break the YAML
/// around it, as a hostile file would).
fn quoted_or_raw(u: &mut Unstructured) -> Result<String> {
    let text: String = u.arbitrary()?;
    if !u.arbitrary::<bool>()? {
        return Ok(text);
    }
    let mut quoted = String::from('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            c if c.is_control() => quoted.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    Ok(quoted)
}
