//! Shard benchmark (`cargo bench --bench shards`): a 1,000-node plan split over 4 shards.
//!
//! A synthetic `live/` tree of 1,000 nodes (10 accounts; in each, 20 multi-region keys in
//! us-east-1 with their replicas in eu-west-1, 30 grants on those keys and 30 single-region keys
//! in eu-west-1) is planned with the test suite's fake terraform (tests/fake/terraform, `plan`
//! sleeping 50 ms) at `--parallelism 8`: once whole, then as `--shard 1/4` ... `4/4`. Each run
//! starts from no `.orch/` (a CI runner's fresh checkout: every node inits). The four runners of
//! a CI matrix are simulated one after the other on this one machine, so each shard has the
//! machine to itself, as a runner would. Reported: each shard's nodes and wall time against 1/4
//! of the unsharded run's. Trees live on tmpfs (/dev/shm) when there is one.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const ACCOUNTS: usize = 10;
const SHARDS: u32 = 4;
const PARALLELISM: &str = "8";
const SLEEP: &str = "0.05";
/// A shard may take this much longer than an even quarter of the whole run: the hash split is
/// only about even, and every shard loads and validates the whole tree.
const TARGET_RATIO: f64 = 1.25;

fn main() {
    let orch = PathBuf::from(env!("CARGO_BIN_EXE_orch"));
    let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake/terraform");
    let mut builder = tempfile::Builder::new();
    builder.prefix("orch-bench-shards-");
    let shm = Path::new("/dev/shm");
    let tmp = if shm.is_dir() {
        builder.tempdir_in(shm).or_else(|_| builder.tempdir())
    } else {
        builder.tempdir()
    }
    .expect("temp dir");
    let live = tmp.path().join("live");
    let nodes = generate(&live);
    println!(
        "shards: {nodes} nodes, fake terraform (plan {SLEEP} s), --parallelism {PARALLELISM}, \
         {} cores, runners simulated one after the other on this machine",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let whole = plan(&orch, &fake, tmp.path(), None);
    assert_eq!(whole.nodes, nodes, "the unsharded plan planned every node");
    let quarter = whole.wall / f64::from(SHARDS);
    println!(
        "  unsharded   {:>5} nodes  {:>6.2} s   (1/{SHARDS}: {quarter:.2} s)",
        whole.nodes, whole.wall
    );
    let mut total = 0;
    let mut worst: f64 = 0.0;
    let mut table = String::new();
    for i in 1..=SHARDS {
        let shard = format!("{i}/{SHARDS}");
        let run = plan(&orch, &fake, tmp.path(), Some(&shard));
        total += run.nodes;
        let ratio = run.wall / quarter;
        worst = worst.max(ratio);
        let _ = writeln!(
            table,
            "  shard {shard}   {:>5} nodes  {:>6.2} s   {ratio:.2}x of 1/{SHARDS}",
            run.nodes, run.wall
        );
    }
    print!("{table}");
    assert_eq!(total, nodes, "the shards together planned every node once");
    println!(
        "  slowest shard {worst:.2}x of 1/{SHARDS} of the unsharded wall time (target <= \
         {TARGET_RATIO:.2}x): {}",
        if worst <= TARGET_RATIO {
            "PASS"
        } else {
            "MISS"
        }
    );
}

struct Planned {
    nodes: usize,
    wall: f64,
}

/// One cold `orch plan --all [--shard S]`: `.orch/` removed first.
fn plan(orch: &Path, fake: &Path, root: &Path, shard: Option<&str>) -> Planned {
    let _ = fs::remove_dir_all(root.join(".orch"));
    let report = root.join("report.json");
    let mut cmd = Command::new(orch);
    cmd.arg("--live")
        .arg(root.join("live"))
        .args(["plan", "--all", "--parallelism", PARALLELISM, "--report"])
        .arg(&report)
        .arg("--terraform-bin")
        .arg(fake)
        .args(shard.map(|s| ["--shard", s]).into_iter().flatten())
        .current_dir(root)
        .env("FAKE_TF_SLEEP", SLEEP)
        .env_remove("FAKE_TF_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let out = cmd.output().expect("run orch");
    let wall = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "orch plan failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&report).expect("report")).expect("JSON");
    Planned {
        nodes: report["nodes"].as_array().map_or(0, Vec::len),
        wall,
    }
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    fs::write(path, text).expect("write");
}

/// The 1,000-node tree; returns its node count.
fn generate(live: &Path) -> usize {
    write(
        &live.join("orch.yaml"),
        "defaults:\n  deletion_window_days: 30\n  tags: {ManagedBy: orch}\n",
    );
    let mut nodes = 0;
    for a in 0..ACCOUNTS {
        let id = format!("{:012}", 100_000_000_000u64 + a as u64);
        let account = live.join(format!("acct{a}"));
        write(
            &account.join("account.yaml"),
            &format!(
                "account_id: \"{id}\"\nenvironment: prod\nrole_arn: arn:aws:iam::{id}:role/orch-deployer\nregions: [us-east-1, eu-west-1]\ndefaults:\n  key_administrators: [arn:aws:iam::{id}:role/admin]\n"
            ),
        );
        for k in 0..20 {
            write(
                &account.join(format!("us-east-1/key{k}/node.yaml")),
                &format!("multi_region: true\nreplicas: [eu-west-1]\nkey_users: [arn:aws:iam::{id}:role/app]\n"),
            );
            nodes += 2;
        }
        for g in 0..30 {
            write(
                &account.join(format!("us-east-1/grant{g}/node.yaml")),
                &format!(
                    "kind: grant\nkey: acct{a}/us-east-1/key{}\ngrantee: arn:aws:iam::{id}:role/reader\noperations: [Decrypt]\n",
                    g % 20
                ),
            );
            nodes += 1;
        }
        for s in 0..30 {
            write(
                &account.join(format!("eu-west-1/single{s}/node.yaml")),
                &format!("key_users: [arn:aws:iam::{id}:role/app]\n"),
            );
            nodes += 1;
        }
    }
    nodes
}
