//! `orch import` against a brownfield estate (scripts/brownfield.py) in the emulator, with the
//! faults of issue 16 point 7: an account whose role cannot be assumed, throttling, a key
//! deleted between discover and apply, node names that collide, AWS-managed keys, a tree that
//! already holds some of the keys, a `live/` that cannot be written, and a plan that would add
//! something. Imports are slow (a stack's plan takes tens of seconds here), so only small
//! selections are applied, and one estate serves every case of `estate_faults`.

mod common;
#[path = "e2e/emulator.rs"]
mod emulator;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::require_terraform;
use emulator::{orch, venv, write, Emulator, Run};
use serde_json::Value;

const CORE: &str = "111111111111";
const DATA: &str = "222222222222";
/// A role of the data account the emulator refuses to let anyone assume. The estate itself is
/// made through `orch-brownfield`, which a refusal of the whole account would stop too.
const DENIED: &str = "arn:aws:iam::222222222222:role/orch-denied";

/// boto3 in one account and region, through the harness's own role: `python -c BOOTO ENDPOINT
/// ACCOUNT REGION CODE` runs CODE with `kms` bound and prints what CODE leaves in `out`.
const BOTO: &str = r#"
import json, sys, boto3
endpoint, account, region, code = sys.argv[1:5]
base = dict(endpoint_url=endpoint, region_name=region,
            aws_access_key_id="orch-sandbox", aws_secret_access_key="orch-sandbox")
c = boto3.client("sts", **base).assume_role(
    RoleArn=f"arn:aws:iam::{account}:role/orch-brownfield", RoleSessionName="import-faults")["Credentials"]
kms = boto3.client("kms", endpoint_url=endpoint, region_name=region, aws_access_key_id=c["AccessKeyId"],
                   aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])
out = None
exec(code)
print(json.dumps(out))
"#;

/// The emulator with the brownfield estate in it, and the estate's manifest.
struct Estate {
    venv: PathBuf,
    emulator: Emulator,
    manifest: Value,
}

impl Estate {
    /// Starts the emulator with `env` (its fault switches) and builds the estate in it.
    fn build(env: &[(&str, &str)]) -> Estate {
        let venv = venv();
        let emulator = Emulator::start_with(&venv, env);
        let out = Command::new(venv.join("bin/python"))
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/brownfield.py"))
            .arg(&emulator.endpoint)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "brownfield.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let manifest = serde_json::from_slice(&out.stdout).expect("the manifest is JSON");
        Estate {
            venv,
            emulator,
            manifest,
        }
    }

    fn endpoint(&self) -> &str {
        &self.emulator.endpoint
    }

    /// The manifest's key named `name`.
    fn key(&self, name: &str) -> &Value {
        self.keys()
            .iter()
            .find(|k| k["name"] == name)
            .unwrap_or_else(|| panic!("no key {name} in the manifest"))
    }

    fn keys(&self) -> &Vec<Value> {
        self.manifest["keys"].as_array().expect("keys")
    }

    /// Runs `code` with boto3's `kms` client of `account` in `region`; returns its `out`.
    fn kms(&self, account: &str, region: &str, code: &str) -> Value {
        let out = Command::new(self.venv.join("bin/python"))
            .args(["-c", BOTO, self.endpoint(), account, region, code])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "boto3 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The state of every key of the manifest, as KMS now says (key id -> KeyState).
    fn key_states(&self) -> BTreeMap<String, String> {
        let mut states = BTreeMap::new();
        for (account, region) in [
            (CORE, "us-east-1"),
            (CORE, "eu-west-1"),
            (DATA, "us-east-1"),
            (DATA, "eu-west-1"),
        ] {
            let found = self.kms(
                account,
                region,
                "out = {k['KeyId']: kms.describe_key(KeyId=k['KeyId'])['KeyMetadata']['KeyState'] for k in kms.list_keys()['Keys']}",
            );
            for (id, state) in found.as_object().unwrap() {
                states.insert(id.clone(), state.as_str().unwrap().to_string());
            }
        }
        states
    }
}

/// A tree of the estate's two accounts in `root`: `core` (111111111111) and `data`
/// (222222222222, reached through `data_role`), each in us-east-1 and eu-west-1.
fn tree(root: &Path, endpoint: &str, data_role: &str) {
    write(
        root,
        "live/orch.yaml",
        &format!(
            "backend: {{type: local}}\nlayout: stacks\nprofiles: {{sandbox: {{endpoint: \"{endpoint}\"}}}}\n"
        ),
    );
    write(
        root,
        "live/core/account.yaml",
        &account(CORE, &format!("arn:aws:iam::{CORE}:role/orch-brownfield")),
    );
    write(root, "live/data/account.yaml", &account(DATA, data_role));
}

fn account(id: &str, role: &str) -> String {
    format!(
        "account_id: \"{id}\"\nenvironment: prod\nrole_arn: {role}\nregions: [us-east-1, eu-west-1]\n"
    )
}

/// Every file under `root/live`, by path relative to `root`.
fn files(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            } else {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let name = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(name, text);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, &root.join("live"), &mut out);
    out
}

/// The addresses of a discover report's `adopted` entries.
fn adopted(run: &Run) -> Vec<String> {
    run.report["adopted"]
        .as_array()
        .unwrap_or_else(|| panic!("no discover report:\n{}", run.stderr))
        .iter()
        .map(|a| a["address"].as_str().unwrap().to_string())
        .collect()
}

/// How many node.yaml files under `root/live` adopt `key_id`.
fn adopters(files: &BTreeMap<String, String>, key_id: &str) -> usize {
    files
        .values()
        .filter(|text| text.contains(&format!("key_id: {key_id}\n")))
        .count()
}

/// What is in the terraform state of a stack: the resource addresses (none when no state).
fn state_resources(root: &Path, stack: &str) -> Vec<String> {
    let path = root
        .join(".orch/state/_stacks")
        .join(stack)
        .join("terraform.tfstate");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    let state: Value = serde_json::from_str(&text).unwrap();
    state["resources"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| format!("{}.{}", r["module"].as_str().unwrap_or(""), r["name"]))
                .collect()
        })
        .unwrap_or_default()
}

fn assert_contains(text: &str, fragment: &str) {
    assert!(text.contains(fragment), "lacks {fragment:?}:\n{text}");
}

/// Removes the immutable attribute again however the test ends, so the tree can be deleted.
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: PathBuf) -> Immutable {
        let ok = Command::new("chattr").arg("+i").arg(&path).status();
        assert!(
            ok.is_ok_and(|s| s.success()),
            "chattr +i {} failed: this test needs chattr (e2fsprogs) and a file system with the immutable attribute (ext4, xfs, btrfs)",
            path.display()
        );
        Immutable(path)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn estate_faults() {
    require_terraform();
    let estate = Estate::build(&[("ORCH_EMULATOR_DENY_ASSUME_ROLE", DENIED)]);
    let endpoint = estate.endpoint().to_string();
    // Two keys whose aliases make one node name (`team-shared`) in one region.
    for alias in ["alias/Team/Shared", "alias/team-shared"] {
        estate.kms(
            CORE,
            "eu-west-1",
            &format!("k = kms.create_key(Description='shared')['KeyMetadata']['KeyId']; kms.create_alias(AliasName='{alias}', TargetKeyId=k); out = k"),
        );
    }

    // ---- an account whose role cannot be assumed: the other account is still adopted -------
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, &endpoint, DENIED);
    let first = orch(root, &endpoint, &["import", "discover"]);
    assert_eq!(
        first.code, 2,
        "a region unknown is a partial discovery:\n{}",
        first.stderr
    );
    for region in ["us-east-1", "eu-west-1"] {
        assert_contains(
            &first.stderr,
            &format!("UNKNOWN data/{region} ({DATA}): ListKeys: role {DENIED} could not be assumed: access denied"),
        );
    }
    assert_contains(&first.stderr, "(its keys are not known, not absent)");
    assert_eq!(first.report["unknown"].as_array().unwrap().len(), 2);
    let core_nodes = adopted(&first);
    assert!(!core_nodes.is_empty(), "{}", first.stderr);
    assert!(
        core_nodes.iter().all(|a| a.starts_with("core/")),
        "{core_nodes:?}"
    );
    assert!(!root.join("live/data/us-east-1").exists());
    let after_first = files(root);

    // ---- the role fixed: the tree holds core's keys already; nothing is duplicated ----------
    write(
        root,
        "live/data/account.yaml",
        &account(DATA, &format!("arn:aws:iam::{DATA}:role/orch-brownfield")),
    );
    let second = orch(root, &endpoint, &["import", "discover"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let data_nodes = adopted(&second);
    assert!(!data_nodes.is_empty(), "{}", second.stderr);
    assert!(
        data_nodes.iter().all(|a| a.starts_with("data/")),
        "{data_nodes:?}"
    );
    for address in &core_nodes {
        assert_contains(&second.stderr, &format!(" is {address} (by "));
    }
    let after_second = files(root);
    for (path, text) in &after_first {
        if path != "live/data/account.yaml" {
            assert_eq!(after_second.get(path), Some(text), "{path} changed");
        }
    }
    for key in estate.keys() {
        // A replica has its primary's key id, written once, on the primary.
        let expected = match (key["manager"].as_str(), key["state"].as_str()) {
            (Some("CUSTOMER"), Some("Enabled")) => 1,
            _ => 0,
        };
        let id = key["key_id"].as_str().unwrap();
        assert_eq!(
            adopters(&after_second, id),
            expected,
            "key {} ({id}) is adopted by the wrong number of nodes",
            key["name"]
        );
    }

    // ---- AWS-managed keys: skipped and counted, never a node ---------------------------------
    let aws_managed = estate.manifest["aws_managed"].as_array().unwrap().len();
    assert_eq!(aws_managed, 2);
    assert_eq!(second.report["aws_managed"], aws_managed);
    assert_contains(
        &second.stderr,
        &format!("skipped {aws_managed} AWS-managed key(s)"),
    );
    assert!(!after_second.values().any(|t| t.contains("aws/ebs")));

    // ---- names that collide: distinct nodes, and the report says why a name changed ---------
    for (name, path) in [
        ("app_data", "live/core/us-east-1/app_data/node.yaml"),
        ("app-data", "live/core/us-east-1/app-data/node.yaml"),
        ("App-Data", "live/data/us-east-1/app-data/node.yaml"),
    ] {
        let id = estate.key(name)["key_id"].as_str().unwrap();
        assert_contains(&after_second[path], &format!("key_id: {id}\n"));
    }
    assert!(after_second.contains_key("live/core/eu-west-1/team-shared/node.yaml"));
    assert!(after_second.contains_key("live/core/eu-west-1/team-shared-2/node.yaml"));
    assert_contains(
        &first.stderr,
        "note: named `team-shared-2`: `team-shared` is taken in core/eu-west-1",
    );
    let noted = first.report["adopted"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["address"] == "core/eu-west-1/team-shared-2")
        .expect("team-shared-2 adopted");
    assert_contains(
        &noted["notes"].to_string(),
        "`team-shared` is taken in core/eu-west-1",
    );

    // ---- a live/ that cannot be written: a clear message, nothing half-written ---------------
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(
        root,
        &endpoint,
        &format!("arn:aws:iam::{DATA}:role/orch-brownfield"),
    );
    let core_only = orch(
        root,
        &endpoint,
        &["import", "discover", "--account", "core"],
    );
    assert_eq!(core_only.code, 0, "{}", core_only.stderr);
    let before = files(root);
    let locked = Immutable::set(root.join("live/data"));
    let refused = orch(root, &endpoint, &["import", "discover"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert_contains(
        &refused.stderr,
        &format!("cannot write {}", root.join("live/data/").display()),
    );
    assert_contains(
        &refused.stderr,
        ": Operation not permitted (os error 1); nothing was written",
    );
    drop(locked);
    assert_eq!(files(root), before, "a failed write left files behind");
    let again = orch(root, &endpoint, &["import", "discover"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(adopted(&again).iter().all(|a| a.starts_with("data/")));
    assert_eq!(
        again.report["matched"].as_array().unwrap().len(),
        core_only.report["adopted"].as_array().unwrap().len()
            + core_only.report["adopted"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["grants"].as_array().unwrap().len())
                .sum::<usize>(),
        "every key and grant written by the first run is in the tree already:\n{}",
        again.stderr
    );

    // ---- a plan that would add: `import apply` refuses before importing anything ------------
    let billing = "live/core/us-east-1/app-billing/node.yaml";
    let text = std::fs::read_to_string(root.join(billing)).unwrap();
    assert_contains(&text, "aliases:\n- app/billing\n");
    write(
        root,
        billing,
        &text.replace(
            "aliases:\n- app/billing\n",
            "aliases:\n- app/billing\n- app/billing-new\n",
        ),
    );
    let states = estate.key_states();
    let adds = orch(
        root,
        &endpoint,
        &[
            "import",
            "apply",
            "core/us-east-1/app-billing",
            "--auto-approve",
        ],
    );
    assert_eq!(adds.code, 1, "{}", adds.stderr);
    let row = common::report_row(&adds.report, "core/us-east-1/app-billing");
    assert_eq!(row["status"], "failed", "{}", adds.stderr);
    assert_contains(
        row["error"].as_str().unwrap(),
        "adopting must create and destroy nothing, and this plan adds 1 and destroys 0",
    );
    assert_contains(&adds.stderr, "core/us-east-1/app-billing");
    assert_eq!(
        state_resources(root, "core/us-east-1/keys"),
        Vec::<String>::new()
    );

    // ---- plain `orch apply` refuses a plan that imports ---------------------------------------
    let plain = orch(
        root,
        &endpoint,
        &["apply", "core/us-east-1/app-billing", "--auto-approve"],
    );
    assert_eq!(plain.code, 1, "{}", plain.stderr);
    let row = common::report_row(&plain.report, "core/us-east-1/app-billing");
    assert_eq!(row["status"], "failed", "{}", plain.stderr);
    assert_contains(
        row["error"].as_str().unwrap(),
        "adopting is `orch import apply`'s, which first checks that nothing is created or destroyed",
    );
    assert_eq!(
        state_resources(root, "core/us-east-1/keys"),
        Vec::<String>::new()
    );
    write(root, billing, &text);

    // ---- a key deleted between discover and apply: its node fails, saying what to do; ------
    // nothing of its stack is imported (terraform plans a stack as one); nothing is destroyed.
    let scratch = estate.key("untagged")["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    estate.kms(
        CORE,
        "us-east-1",
        &format!("kms.schedule_key_deletion(KeyId='{scratch}', PendingWindowInDays=7)"),
    );
    let gone = orch(
        root,
        &endpoint,
        &[
            "import",
            "apply",
            "core/us-east-1/scratch",
            "core/us-east-1/app-billing",
            "--auto-approve",
        ],
    );
    // orch reads each adopted key before it runs anything: the one gone is named, with what to
    // do, and nothing is imported (terraform would say only "Cannot import non-existent remote
    // object"; a key deleted after this check gets that, with the node named: plan_text.rs).
    assert_eq!(gone.code, 1, "{}", gone.stderr);
    assert_contains(
        &gone.stderr,
        &format!(
            "core/us-east-1/scratch: key {scratch} is not in AWS any more (deleted, or pending deletion): remove the node, or its `import:` to have orch create a new key"
        ),
    );
    assert_contains(&gone.stderr, "nothing was imported");
    assert_eq!(
        state_resources(root, "core/us-east-1/keys"),
        Vec::<String>::new()
    );
    let mut expected = states;
    expected.insert(scratch, "PendingDeletion".into());
    assert_eq!(
        estate.key_states(),
        expected,
        "orch changed the state of a key"
    );
}

/// Normalizes a drafted tree of one estate so that another estate's reads compare equal:
/// every key and grant id (and the short forms names use) becomes the manifest's name for it,
/// unquoted, and the date of adoption goes.
fn normalized(estate: &Estate, files: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut ids: Vec<(String, String)> = Vec::new();
    for key in estate.keys() {
        let name = key["name"].as_str().unwrap();
        ids.push((key["key_id"].as_str().unwrap().into(), format!("<{name}>")));
        for (n, grant) in key["grants"].as_array().unwrap().iter().enumerate() {
            ids.push((
                grant["grant_id"].as_str().unwrap().into(),
                format!("<{name}:grant{n}>"),
            ));
        }
    }
    let short: Vec<(String, String)> = ids
        .iter()
        .map(|(id, name)| {
            (
                id.trim_start_matches("mrk-").chars().take(8).collect(),
                name.clone(),
            )
        })
        .collect();
    let fix = |text: &str| {
        let mut text = text.to_string();
        for (id, name) in ids.iter().chain(&short) {
            text = text.replace(id.as_str(), name);
        }
        // YAML quotes an id that would read as a number (`'1234e567...'`), by chance.
        let text = text.replace("'<", "<").replace(">'", ">");
        text.lines()
            .map(|l| match l.strip_prefix("# Adopted by `orch import` on ") {
                Some(rest) => format!("# Adopted by `orch import` on <date>{}", &rest[10..]),
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    files.iter().map(|(p, t)| (fix(p), fix(t))).collect()
}

/// Throttling on the reads discover makes: every key is still read, and the drafted tree is the
/// one an unthrottled read of the same estate drafts. One call in flight at a time
/// (`--concurrency 1`) makes which calls are throttled deterministic: the retry of a throttled
/// call is the next call of its action, never itself throttled.
#[test]
fn throttled_discover_misses_nothing() {
    let throttle = "kms:GetKeyPolicy=3,kms:ListGrants=2,kms:ListResourceTags=2";
    let throttled =
        std::thread::spawn(move || Estate::build(&[("ORCH_EMULATOR_THROTTLE", throttle)]));
    let plain = Estate::build(&[]);
    let throttled = throttled.join().expect("the throttled estate");
    let mut drafted = Vec::new();
    for estate in [&plain, &throttled] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let endpoint = estate.endpoint();
        tree(
            root,
            endpoint,
            &format!("arn:aws:iam::{DATA}:role/orch-brownfield"),
        );
        let run = orch(
            root,
            endpoint,
            &["import", "discover", "--concurrency", "1"],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(!run.stderr.contains("UNKNOWN"), "{}", run.stderr);
        assert!(!run.stderr.contains("unreadable"), "{}", run.stderr);
        let mut written = files(root);
        written.remove("live/orch.yaml");
        drafted.push((normalized(estate, &written), run));
    }
    let (plain_files, plain_run) = &drafted[0];
    let (throttled_files, throttled_run) = &drafted[1];
    assert_eq!(
        plain_run.report["keys_read"],
        throttled_run.report["keys_read"]
    );
    assert_eq!(
        plain_files.keys().collect::<Vec<_>>(),
        throttled_files.keys().collect::<Vec<_>>()
    );
    for (path, text) in plain_files {
        assert_eq!(
            &throttled_files[path], text,
            "{path} differs when throttled"
        );
    }
    // Retries count as calls: every throttled action was retried, and answered.
    for action in ["GetKeyPolicy", "ListGrants", "ListResourceTags"] {
        let calls = |run: &Run| run.report["calls"][action].as_u64().unwrap();
        assert!(
            calls(throttled_run) > calls(plain_run),
            "{action}: {} calls throttled, {} without",
            calls(throttled_run),
            calls(plain_run)
        );
    }
}
