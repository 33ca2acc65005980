//! orch's read path to AWS (`orch::aws::Reader`) against the local emulator: every key of a
//! region with its aliases, policy, rotation, tags and grants, a multi-region family seen from
//! both regions, lists read in small pages, and the targets that must come back `Unknown` (an
//! endpoint that is down, a role that cannot be assumed) rather than as empty regions.
//!
//! Needs the project venv with moto (ORCH_TOOLS_VENV); a missing one fails the test with what to
//! run, it never skips.
//!
//! What moto 5.2.5 does differently from AWS, and so what is not asserted here: it ignores
//! `Limit` and returns every list in one page (paging itself is tested in `src/aws/paging.rs`;
//! here the small page size must still read everything);
//! it reports the key behind `alias/aws/ebs` as a CUSTOMER key (AWS: KeyManager AWS, skipped and
//! counted in `aws_managed`); it keeps no rotation period; it lets any role be assumed (so the
//! role that fails here is one behind an endpoint that is down).

mod common;
#[path = "e2e/emulator.rs"]
mod emulator;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use emulator::{venv, Emulator};
use orch::aws::{LiveKey, Reader, Target};
use serde_json::Value;

const ACCOUNT: &str = "111111111111";

fn target(region: &str, role: Option<&str>) -> Target {
    Target {
        account: "prod".to_string(),
        account_id: ACCOUNT.to_string(),
        role_arn: role.map(str::to_string),
        region: region.to_string(),
    }
}

fn reader_role() -> Option<&'static str> {
    Some("arn:aws:iam::111111111111:role/orch-reader")
}

/// The keys of tests/e2e/kms_estate.py, made in `ACCOUNT` (us-east-1, a replica in eu-west-1).
fn estate(venv: &Path, endpoint: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/kms_estate.py");
    let out = Command::new(venv.join("bin/python"))
        .arg(script)
        .args([endpoint, ACCOUNT, "us-east-1", "eu-west-1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kms_estate.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn key<'a>(keys: &'a [LiveKey], id: &Value) -> &'a LiveKey {
    let id = id.as_str().unwrap();
    keys.iter()
        .find(|k| k.key_id == id)
        .unwrap_or_else(|| panic!("key {id} not read: {keys:#?}"))
}

#[tokio::test]
async fn reads_every_key_of_both_regions() {
    let venv = venv();
    let emulator = Emulator::start(&venv);
    let made = estate(&venv, &emulator.endpoint);
    let reader = Reader::new(Some(emulator.endpoint.clone()), 4).page_size(2);

    let read = reader
        .read_all(vec![
            target("us-east-1", reader_role()),
            target("eu-west-1", reader_role()),
        ])
        .await;
    let [east, west] = &read[..] else {
        panic!("two targets, {} results", read.len())
    };
    let east = east.as_ref().expect("us-east-1 read");
    let west = west.as_ref().expect("eu-west-1 read");

    // The key behind alias/aws/ebs is skipped and counted (AWS), or listed as a customer key
    // (moto 5.2.5): either way it is seen once.
    let ebs_listed = east.keys.iter().any(|k| k.key_id == made["ebs"]);
    assert_eq!(east.aws_managed + usize::from(ebs_listed), 1);
    assert_eq!(
        east.keys.len(),
        5 + usize::from(ebs_listed),
        "{:#?}",
        east.keys
    );

    let tagged = key(&east.keys, &made["tagged"]);
    assert_eq!(tagged.description, "orders");
    assert_eq!(tagged.spec, "SYMMETRIC_DEFAULT");
    assert_eq!(tagged.usage, "ENCRYPT_DECRYPT");
    assert_eq!(tagged.state, "Enabled");
    assert_eq!(tagged.origin, "AWS_KMS");
    assert!(tagged.rotation.is_some_and(|r| r.enabled));
    assert_eq!(
        tagged.tags.iter().collect::<Vec<_>>(),
        [
            (&"Team".to_string(), &"payments".to_string()),
            (&"Tier".to_string(), &"gold".to_string())
        ]
    );
    let policy: Value = serde_json::from_str(tagged.policy.as_deref().unwrap()).unwrap();
    assert!(policy["Statement"].is_array(), "{policy}");
    assert!(tagged.unreadable.is_empty(), "{:?}", tagged.unreadable);
    let mut aliases: Vec<&str> = east
        .aliases
        .iter()
        .filter(|a| {
            a.target_key_id.as_ref() == made["tagged"].as_str().map(str::to_string).as_ref()
        })
        .map(|a| a.name.as_str())
        .collect();
    aliases.sort_unstable();
    assert_eq!(aliases, ["alias/orders", "alias/orders-legacy"]);

    let granted = key(&east.keys, &made["granted"]);
    let [grant] = &granted.grants[..] else {
        panic!("one grant: {:#?}", granted.grants)
    };
    assert_eq!(grant.grant_id, made["grant"].as_str().unwrap());
    assert_eq!(grant.name, "app");
    assert_eq!(grant.grantee, "arn:aws:iam::111111111111:role/app");
    assert_eq!(grant.operations, ["Encrypt", "Decrypt"]);
    assert_eq!(
        grant
            .encryption_context_equals
            .get("app")
            .map(String::as_str),
        Some("ledger")
    );
    assert_eq!(
        key(&east.keys, &made["plain"]).rotation.map(|r| r.enabled),
        Some(false)
    );

    let rsa = key(&east.keys, &made["rsa"]);
    assert_eq!(
        (rsa.spec.as_str(), rsa.usage.as_str()),
        ("RSA_2048", "SIGN_VERIFY")
    );
    assert_eq!(
        rsa.rotation, None,
        "no GetKeyRotationStatus for an asymmetric key"
    );
    assert!(rsa.unreadable.is_empty(), "{:?}", rsa.unreadable);

    let primary = key(&east.keys, &made["primary"]);
    let family = primary.multi_region.as_ref().expect("multi-region");
    assert_eq!(family.kind, "PRIMARY");
    assert_eq!(family.primary_region, "us-east-1");
    assert!(family
        .replicas
        .iter()
        .any(|r| r.region == "eu-west-1" && r.arn == made["replica_arn"].as_str().unwrap()));

    let [replica] = &west.keys[..] else {
        panic!("only the replica in eu-west-1: {:#?}", west.keys)
    };
    assert_eq!(replica.arn, made["replica_arn"].as_str().unwrap());
    let family = replica.multi_region.as_ref().expect("multi-region");
    assert_eq!(
        (family.kind.as_str(), family.primary_arn.as_str()),
        ("REPLICA", primary.arn.as_str())
    );

    // Every call counted, through the role: one AssumeRole, ListKeys once a page, one
    // DescribeKey per key listed. moto 5.2.5 answers every list in one page whatever the Limit;
    // as AWS pages, it takes one call per page of 2.
    assert_eq!(east.calls.get("AssumeRole"), Some(&1), "{:?}", east.calls);
    let listed = east.keys.len() + east.aws_managed;
    let pages = east.calls["ListKeys"];
    assert!(
        pages == 1 || pages == listed.div_ceil(2) as u64,
        "{pages} ListKeys for {listed} keys"
    );
    assert!(east.calls["ListAliases"] >= 1);
    assert_eq!(east.calls["DescribeKey"], listed as u64, "{:?}", east.calls);
    assert_eq!(east.calls["GetKeyPolicy"], east.keys.len() as u64);
}

#[tokio::test]
async fn the_caller_is_the_role_assumed() {
    let venv = venv();
    let emulator = Emulator::start(&venv);
    let reader = Reader::new(Some(emulator.endpoint.clone()), 2);
    let east = target("us-east-1", reader_role());
    assert_eq!(reader.caller_account(&east).await.unwrap(), ACCOUNT);
    // The emulator's own account, for its credentials without a role.
    let direct = target("us-east-1", None);
    assert_eq!(
        reader.caller_account(&direct).await.unwrap(),
        "123456789012"
    );
    // Through an endpoint the provider checks no account id, and neither does the Reader.
    assert!(reader.check_account(&direct).await.is_ok());
}

/// A closed port: every call is refused. The Reader must say so within seconds (a few quick
/// attempts), not after the minutes of backoff real AWS gets, and for a target with a role name
/// the role it could not assume.
#[tokio::test]
async fn an_endpoint_that_is_down_leaves_every_target_unknown_quickly() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let reader = Reader::new(Some(format!("http://127.0.0.1:{port}")), 4);
    let started = Instant::now();
    let read = reader
        .read_all(vec![
            target("us-east-1", None),
            target("eu-west-1", reader_role()),
        ])
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let reasons: Vec<String> = read
        .into_iter()
        .map(|r| {
            r.expect_err("an endpoint that is down reads nothing")
                .reason
        })
        .collect();
    assert!(
        reasons[0].starts_with("ListKeys: endpoint unreachable: "),
        "{}",
        reasons[0]
    );
    assert!(
        reasons[1].starts_with(
            "ListKeys: role arn:aws:iam::111111111111:role/orch-reader could not be assumed: \
             endpoint unreachable: "
        ),
        "{}",
        reasons[1]
    );
}
