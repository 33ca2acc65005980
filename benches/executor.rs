//! Executor benchmark of the `orch` binary (`cargo bench --bench executor`).
//!
//! A. Scheduler overhead, fake terraform. A synthetic `live/` tree of 1,000 nodes with a real DAG
//!    (keys, replicas, grants, buckets, cross-account key-access, `depends_on` chains; critical
//!    path 20 nodes) is planned with `orch plan --all --parallelism 8` against a fake terraform
//!    whose `plan` takes 50 ms. Reported: makespan of a first plan (with init) and a second one
//!    (init skipped), against the ideal at parallelism 8 (lower bound max(critical path x 50 ms,
//!    total work / 8), and a list-scheduling simulation with the per-node times the fake
//!    recorded), and orch's own CPU seconds (`orch_cpu_seconds` of `--report`). The fake is a
//!    lean bash script written by this bench that forks nothing (`$EPOCHREALTIME` for the clock,
//!    a `read -t` on a FIFO for the sleep, no `mkdir .terraform`: the bench makes those between
//!    the two plans); one more first plan with the test suite's tests/fake/terraform shows what
//!    a heavier fake costs on the same tree.
//! B. Real terraform and the hashicorp/aws provider against the emulator (scripts/emulator.py),
//!    12 nodes in 3 accounts reached through assume_role, 3 regions: `orch plan --all` at the
//!    default parallelism (the core count) on fresh work dirs, then a sequential shell loop of
//!    `terraform init && terraform plan -out=tfplan` over copies of the same rendered work dirs,
//!    with the environment orch gives terraform, then `orch plan --all --parallelism 3`.
//!    Reported: speedup over the loop, and orch's wall time against the sum of terraform CPU
//!    seconds / cores (what a perfect use of every core would take). orch runs terraform through
//!    a small recording wrapper (`--terraform-bin`), for a timeline of every init and plan.
//!
//! C. `orch plan --all --changed` on an applied, unchanged fleet of 100 nodes (the stock fake of
//!    tests/fake/terraform applied it): wall time, and terraform calls (there must be none).
//! D. `orch rollout` of 3 waves over the 1,000-node tree of A (without the one cross-account
//!    access that would point from the first wave into the last), lean fake, `--parallelism 8`,
//!    plan and apply 50 ms each: wall time against the ideal schedule of the same waves (per wave,
//!    list scheduling of plan + apply of every node, then of the gate's plan of every node).
//!
//! Every measured run first waits (up to 30 s) for the machine to be idle, and each reports the
//! CPU other processes took meanwhile: on 2 cores a concurrent build or test run skews every
//! figure. Trees live on tmpfs (/dev/shm) by default (see `main` for why not ext4).
//!
//! Needs terraform on PATH, TF_CLI_CONFIG_FILE naming the provider mirror config and the project
//! venv (ORCH_TOOLS_VENV, with moto); `scripts/just bench` sets all of them up after
//! `scripts/just setup`. Knobs: `ORCH_BENCH_PART=A` or `B` runs one part; `ORCH_BENCH_KEEP=DIR`
//! builds the trees under DIR and keeps them (logs under DIR/*/.orch/logs).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;

mod common;
use common::{
    children_cpu, fail, loadavg, machine_busy, nproc, orch_command, preflight, print_machine,
    settle, verdict, write, Emulator, Tools,
};

const A_PARALLELISM: usize = 8;
const A_SLEEP: f64 = 0.05;
const A_ACCOUNTS: usize = 10;
const TARGET_RATIO: f64 = 1.10;
const TARGET_ORCH_CPU: f64 = 2.0;
const TARGET_SPEEDUP: f64 = 1.7;
const TARGET_CPU_BOUND: f64 = 1.15;
const C_TARGET_WALL: f64 = 1.0;

/// The bench's own fake terraform: the calls and outputs orch needs for `plan`, each call
/// recorded as "<start> <end> <address> <command>" (seconds) in $FAKE_TF_LOG, without forking
/// anything.
const LEAN_FAKE: &str = r#"#!/bin/bash
# Written by benches/executor.rs: a lean stand-in for terraform (see tests/fake/terraform for the
# test suite's). `plan` waits $FAKE_TF_SLEEP seconds on a FIFO nobody writes to: a sleep without
# a fork.
s=$EPOCHREALTIME
case $1 in
version)
  echo '{"terraform_version":"1.11.4","platform":"linux_amd64"}'
  exit 0
  ;;
init)
  # No `mkdir .terraform`: its fork would cost more than orch does per node. The bench makes the
  # directories after the first plan, for orch to skip init in the second.
  echo "Terraform has been successfully initialized!"
  r=0
  ;;
plan)
  read -r -t "${FAKE_TF_SLEEP:-0}" _ <>"$FAKE_TF_FIFO"
  : >tfplan
  if [ -e .applied ]; then
    echo "No changes. Your infrastructure matches the configuration."
    r=0
  else
    echo "Plan: 1 to add, 0 to change, 0 to destroy."
    r=2
  fi
  ;;
apply)
  read -r -t "${FAKE_TF_SLEEP:-0}" _ <>"$FAKE_TF_FIFO"
  : >.applied
  echo "Apply complete! Resources: 1 added, 0 changed, 0 destroyed."
  r=0
  ;;
output)
  a=${PWD#*/.orch/work/}
  printf '{"key_arn":{"value":"arn:aws:kms:us-east-1:111111111111:key/fake-%s"},"key_id":{"value":"fake-%s"},"enabled":{"value":true},"rotation_enabled":{"value":true}}\n' "${a##*/}" "${a##*/}"
  r=0
  ;;
*)
  echo "fake terraform: unsupported command $1" >&2
  exit 1
  ;;
esac
printf '%s %s %s %s\n' "$s" "$EPOCHREALTIME" "${PWD#*/.orch/work/}" "$1" >>"$FAKE_TF_LOG"
exit $r
"#;

fn main() {
    let orch = PathBuf::from(env!("CARGO_BIN_EXE_orch"));
    let part = std::env::var("ORCH_BENCH_PART").unwrap_or_default();
    let part = part.to_ascii_uppercase();
    if !part.chars().all(|c| "ABCD".contains(c)) {
        fail(&format!(
            "ORCH_BENCH_PART is {part:?}: one or more of A, B, C, D (e.g. CD), or unset"
        ));
    }
    let runs = |p: char| part.is_empty() || part.contains(p);
    let (run_a, run_b, run_c, run_d) = (runs('A'), runs('B'), runs('C'), runs('D'));
    // Checked before anything runs, so a missing tool fails in seconds, not after part A.
    let tools = if run_b { Some(preflight()) } else { None };
    print_machine(&orch, tools.as_ref());

    // Nothing is deleted before the measurements: on ext4, creating files soon after many were
    // deleted makes inode allocation scan the recently deleted ones (measured here: +2.7 s of
    // system time for orch's first plan of 1,000 nodes right after `rm -rf` of a tree like it,
    // e.g. the fleet bench's). A kept tree from an earlier run is moved aside and deleted at the
    // end; the default place is tmpfs (/dev/shm), which has no such effect.
    let keep = std::env::var_os("ORCH_BENCH_KEEP").map(PathBuf::from);
    let mut trash = None;
    let _tmp;
    let base = match &keep {
        Some(dir) => {
            if dir.exists() {
                let aside = dir.with_extension(format!("old-{}", std::process::id()));
                fs::rename(dir, &aside).expect("move the old ORCH_BENCH_KEEP aside");
                trash = Some(aside);
            }
            fs::create_dir_all(dir).expect("create ORCH_BENCH_KEEP");
            fs::canonicalize(dir).expect("ORCH_BENCH_KEEP")
        }
        None => {
            let mut builder = tempfile::Builder::new();
            builder.prefix("orch-bench-exec-");
            let shm = Path::new("/dev/shm");
            let t = if shm.is_dir() {
                builder.tempdir_in(shm).or_else(|_| builder.tempdir())
            } else {
                builder.tempdir()
            }
            .expect("temp dir");
            let p = t.path().to_path_buf();
            _tmp = t;
            p
        }
    };
    println!("   working under {}", base.display());
    let started = Instant::now();
    let a = run_a.then(|| part_a(&orch, &base.join("a")));
    let b = tools.map(|t| part_b(&orch, &base.join("b"), &t));
    let c = run_c.then(|| part_c(&orch, &base.join("c")));
    let d = run_d.then(|| part_d(&orch, &base.join("d")));
    summary(a.as_ref(), b.as_ref());
    summary_cd(c.as_ref(), d.as_ref());
    println!(
        "\nbench took {:.0} s; load average at the end: {}",
        started.elapsed().as_secs_f64(),
        loadavg()
    );
    if keep.is_some() {
        println!("trees, reports and logs kept under {}", base.display());
    }
    if let Some(old) = trash {
        let _ = fs::remove_dir_all(old);
    }
}

// ---------------------------------------------------------------------------------------------
// Machine and tools

// ---------------------------------------------------------------------------------------------
// Running orch

/// One `orch` run: wall time measured here, the `--report` JSON, CPU of the whole process tree.
struct OrchRun {
    wall: f64,
    /// CPU seconds the machine spent on other processes than this run meanwhile.
    others_cpu: f64,
    /// When it started, in seconds since the epoch (the fakes' clock).
    started_epoch: f64,
    report: Value,
    /// Children CPU seconds (orch and its terraforms) measured by this bench.
    tree_cpu: f64,
}

impl OrchRun {
    fn number(&self, field: &str) -> f64 {
        self.report[field].as_f64().unwrap_or(f64::NAN)
    }

    fn durations(&self) -> BTreeMap<String, f64> {
        self.report["nodes"]
            .as_array()
            .map(|nodes| {
                nodes
                    .iter()
                    .map(|n| {
                        (
                            n["address"].as_str().unwrap_or_default().to_string(),
                            n["duration_seconds"].as_f64().unwrap_or(0.0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Runs `orch --no-color --live ROOT/live ARGS... --report ROOT/NAME.json` in ROOT with `env`
/// added, and panics with orch's output unless it exits 0 with every node planned.
fn run_orch(
    orch: &Path,
    root: &Path,
    name: &str,
    args: &[&str],
    env: &[(&str, String)],
) -> OrchRun {
    run_orch_checked(orch, root, name, args, env, &|report| {
        report["nodes"].as_array().is_some_and(|nodes| {
            nodes
                .iter()
                .all(|n| matches!(n["status"].as_str(), Some("changes" | "no changes")))
        })
    })
}

/// [`run_orch`] with its own test of the report: what "it went as planned" means.
fn run_orch_checked(
    orch: &Path,
    root: &Path,
    name: &str,
    args: &[&str],
    env: &[(&str, String)],
    went_well: &dyn Fn(&Value) -> bool,
) -> OrchRun {
    let report = root.join(format!("{name}.json"));
    let mut cmd = orch_command(orch, root, args, &report);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    settle();
    let cpu_before = children_cpu();
    let busy_before = machine_busy();
    let started_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let start = Instant::now();
    let out = cmd.output().expect("spawn orch");
    let wall = start.elapsed().as_secs_f64();
    let tree_cpu = children_cpu() - cpu_before;
    let others_cpu = machine_busy() - busy_before - tree_cpu;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = fs::write(root.join(format!("{name}.stderr")), stderr.as_bytes());
    let report: Value = fs::read_to_string(&report)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    if !out.status.success() || !went_well(&report) {
        let tail: Vec<&str> = stderr.lines().rev().take(60).collect();
        fail(&format!(
            "orch {} exited with {} (or its report says it did not go as planned):\n{}",
            args.join(" "),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    OrchRun {
        wall,
        others_cpu,
        started_epoch,
        report,
        tree_cpu,
    }
}

/// The DAG as orch sees it (`orch graph --format json`): addresses and, per node, the indexes of
/// its dependencies.
struct Dag {
    addresses: Vec<String>,
    deps: Vec<Vec<usize>>,
}

impl Dag {
    fn load(orch: &Path, live: &Path) -> Dag {
        let out = Command::new(orch)
            .arg("--no-color")
            .arg("--live")
            .arg(live)
            .args(["graph", "--format", "json"])
            .output()
            .expect("spawn orch graph");
        if !out.status.success() {
            fail(&format!(
                "orch graph failed on the generated tree:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let graph: Value = serde_json::from_slice(&out.stdout).expect("graph JSON");
        let nodes = graph["nodes"].as_array().expect("graph nodes");
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| n["address"].as_str().unwrap().to_string())
            .collect();
        let index: HashMap<&str, usize> = addresses
            .iter()
            .enumerate()
            .map(|(i, a)| (a.as_str(), i))
            .collect();
        let deps = nodes
            .iter()
            .map(|n| {
                n["dependencies"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| index[d.as_str().unwrap()])
                    .collect()
            })
            .collect();
        Dag { addresses, deps }
    }

    fn len(&self) -> usize {
        self.addresses.len()
    }

    /// Dependencies before dependents.
    fn topological(&self) -> Vec<usize> {
        let n = self.len();
        let mut waiting: Vec<usize> = self.deps.iter().map(Vec::len).collect();
        let dependents = self.dependents();
        let mut order: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
        let mut k = 0;
        while k < order.len() {
            for &d in &dependents[order[k]] {
                waiting[d] -= 1;
                if waiting[d] == 0 {
                    order.push(d);
                }
            }
            k += 1;
        }
        assert_eq!(order.len(), n, "the graph has a cycle");
        order
    }

    fn dependents(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.len()];
        for (i, deps) in self.deps.iter().enumerate() {
            for &d in deps {
                out[d].push(i);
            }
        }
        out
    }

    /// The longest path weighted by `cost`, from each node to the end of its longest chain
    /// (the node's own cost included).
    fn bottom_levels(&self, cost: &[f64]) -> Vec<f64> {
        let dependents = self.dependents();
        let mut level = vec![0.0; self.len()];
        for &i in self.topological().iter().rev() {
            let tail = dependents[i].iter().map(|&d| level[d]).fold(0.0, f64::max);
            level[i] = cost[i] + tail;
        }
        level
    }

    /// Nodes on the longest chain.
    fn critical_path_nodes(&self) -> usize {
        self.bottom_levels(&vec![1.0; self.len()])
            .into_iter()
            .fold(0.0, f64::max) as usize
    }

    /// Makespan of list scheduling on `workers` with `cost` per node: whenever a worker is free,
    /// it takes the ready node with the longest remaining chain (by cost); no overhead at all.
    fn list_schedule(&self, cost: &[f64], workers: usize) -> f64 {
        let priority = self.bottom_levels(cost);
        let dependents = self.dependents();
        let mut waiting: Vec<usize> = self.deps.iter().map(Vec::len).collect();
        // Max-heap of ready nodes by priority (ties: lowest index first).
        let key = |i: usize| ((priority[i] * 1e9) as u64, Reverse(i));
        let mut ready: BinaryHeap<(u64, Reverse<usize>)> = (0..self.len())
            .filter(|&i| waiting[i] == 0)
            .map(key)
            .collect();
        // Min-heap of running nodes by finish time (in ns, to order f64s).
        let mut running: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
        let mut now = 0u64;
        loop {
            while running.len() < workers {
                let Some((_, Reverse(i))) = ready.pop() else {
                    break;
                };
                running.push(Reverse((now + (cost[i] * 1e9) as u64, i)));
            }
            let Some(Reverse((end, i))) = running.pop() else {
                break;
            };
            now = end;
            for &d in &dependents[i] {
                waiting[d] -= 1;
                if waiting[d] == 0 {
                    ready.push(key(d));
                }
            }
        }
        now as f64 / 1e9
    }
}

/// One call recorded by a fake terraform.
struct Call {
    start: f64,
    end: f64,
    address: String,
    command: String,
}

/// Reads a fake's log: seconds with a fraction (the lean fake) or nanoseconds (the stock one).
fn read_calls(path: &Path) -> Vec<Call> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let time = |s: &str| -> f64 {
        if s.contains('.') {
            s.parse().unwrap_or(0.0)
        } else {
            s.parse::<f64>().unwrap_or(0.0) / 1e9
        }
    };
    text.lines()
        .filter_map(|l| {
            let p: Vec<&str> = l.split(' ').collect();
            (p.len() == 4).then(|| Call {
                start: time(p[0]),
                end: time(p[1]),
                address: p[2].to_string(),
                command: p[3].to_string(),
            })
        })
        .collect()
}

fn secs(s: f64) -> String {
    format!("{s:.3}")
}

/// `K=V ... program args...`, quoted where needed, to paste into a shell.
fn shell_line(env: &[(&str, String)], program: &Path, args: &[String]) -> String {
    let quote = |s: &str| {
        if s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@".contains(c))
        {
            s.to_string()
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    };
    let mut line = String::new();
    for (k, v) in env {
        let _ = write!(line, "{k}={} ", quote(v));
    }
    line.push_str(&quote(&program.display().to_string()));
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    line
}

// ---------------------------------------------------------------------------------------------
// Part A: 1,000 nodes, fake terraform

/// Ten accounts of 100 nodes each (three regions):
/// - a chain of 16 keys in us-east-1 (`depends_on` the previous one), the last one multi-region
///   with a replica in eu-west-1 and a grant, then 3 more keys in a `depends_on` chain after the
///   grant: 21 nodes, the critical path of 20;
/// - 10 multi-region keys with replicas in the two other regions, each with a grant, an S3 bucket
///   and a key-access from the next account: 60 nodes, 2 levels;
/// - 19 keys in us-west-2 in `depends_on` chains of up to 4.
///
/// With `waves`, orch.yaml gets the three waves of part D (a00; a01-a04; the rest), and the
/// key-access from a09 into a00 is left out: it would make a node of the first wave depend on
/// one of the last.
fn generate_a(live: &Path, waves: bool) {
    let waves_yaml = if waves {
        "waves:\n  - {name: canary, match: [\"a00/**\"]}\n  \
         - {name: early, match: [\"a01/**\", \"a02/**\", \"a03/**\", \"a04/**\"]}\n  \
         - {name: rest, match: [\"**\"]}\n"
    } else {
        ""
    };
    write(
        live,
        "orch.yaml",
        &format!(
            "defaults:\n  deletion_window_days: 30\n  tags: {{ManagedBy: orch}}\n{waves_yaml}"
        ),
    );
    let id = |a: usize| format!("{:012}", 100_000_000_000u64 + a as u64);
    for a in 0..A_ACCOUNTS {
        let acct = format!("a{a:02}");
        let me = id(a);
        let next = (a + 1) % A_ACCOUNTS;
        write(
            live,
            &format!("{acct}/account.yaml"),
            &format!(
                "account_id: \"{me}\"\nenvironment: {acct}\nrole_arn: arn:aws:iam::{me}:role/orch-deployer\n\
                 regions: [us-east-1, eu-west-1, us-west-2]\ndefaults:\n  \
                 key_administrators: [arn:aws:iam::{me}:role/admin]\n"
            ),
        );
        let users = format!("key_users: [arn:aws:iam::{me}:role/app]\n");
        for c in 0..16 {
            let mut text = format!("description: chain key {c}\n{users}");
            if c > 0 {
                let _ = writeln!(text, "depends_on: [{acct}/us-east-1/c{:02}]", c - 1);
            }
            if c == 15 {
                text.push_str("multi_region: true\nreplicas: [eu-west-1]\n");
            }
            write(live, &format!("{acct}/us-east-1/c{c:02}/node.yaml"), &text);
        }
        write(
            live,
            &format!("{acct}/us-east-1/chain-grant/node.yaml"),
            &format!(
                "kind: grant\nkey: {acct}/us-east-1/c15\ngrantee: arn:aws:iam::{me}:role/reader\n\
                 operations: [Decrypt]\n"
            ),
        );
        for t in 0..3 {
            let after = if t == 0 {
                format!("{acct}/us-east-1/chain-grant")
            } else {
                format!("{acct}/us-east-1/t{}", t - 1)
            };
            write(
                live,
                &format!("{acct}/us-east-1/t{t}/node.yaml"),
                &format!("description: tail {t}\n{users}depends_on: [{after}]\n"),
            );
        }
        for s in 0..10 {
            let key = format!("{acct}/us-east-1/s{s:02}");
            write(
                live,
                &format!("{key}/node.yaml"),
                &format!(
                    "description: service {s}\n{users}multi_region: true\nreplicas: [eu-west-1, us-west-2]\n"
                ),
            );
            write(
                live,
                &format!("{acct}/us-east-1/s{s:02}-grant/node.yaml"),
                &format!(
                    "kind: grant\nkey: {key}\ngrantee: arn:aws:iam::{me}:role/svc{s}\noperations: [Decrypt, Encrypt]\n"
                ),
            );
            write(
                live,
                &format!("{acct}/us-east-1/s{s:02}-bucket/node.yaml"),
                &format!("kind: s3-bucket\nkey: {key}\nbucket: bench-{acct}-s{s:02}\n"),
            );
            if waves && next == 0 {
                continue;
            }
            write(
                live,
                &format!("a{next:02}/us-east-1/s{s:02}-from-{acct}/node.yaml"),
                &format!(
                    "kind: key-access\nkey: {key}\nroles: [arn:aws:iam::{}:role/reader]\ncapabilities: [read-data]\n",
                    id(next)
                ),
            );
        }
        for m in 0..19 {
            let mut text = format!("description: misc {m}\n{users}");
            if m % 4 != 0 {
                let _ = writeln!(text, "depends_on: [{acct}/us-west-2/m{:02}]", m - 1);
            }
            write(live, &format!("{acct}/us-west-2/m{m:02}/node.yaml"), &text);
        }
    }
}

struct ARow {
    label: String,
    wall: f64,
    orch_cpu: f64,
    tf_cpu: f64,
    lower_bound: f64,
    sim_fake: f64,
    sim_orch: f64,
    first_call: f64,
    after_last: f64,
    overhead_per_node: f64,
    utilization: f64,
    max_concurrent: usize,
    /// CPU seconds of other processes on the machine during the run.
    others_cpu: f64,
    /// Whether the targets apply (the lean fake) or the row is for comparison.
    judged: bool,
}

struct AResult {
    /// Seconds a bare spawn-and-wait of the lean fake's `init` and of its `plan` (no sleep) take.
    floor: (f64, f64),
    nodes: usize,
    critical_path: usize,
    rows: Vec<ARow>,
}

fn part_a(orch: &Path, dir: &Path) -> AResult {
    println!(
        "\n== A. scheduler overhead: 1,000 nodes, fake terraform, --parallelism {A_PARALLELISM}, plan = {} ms; \
         load average {}",
        A_SLEEP * 1000.0,
        loadavg()
    );
    let root = dir.join("lean");
    generate_a(&root.join("live"), false);
    let dag = Dag::load(orch, &root.join("live"));
    let n = dag.len();
    let cp = dag.critical_path_nodes();
    let lower_bound = (cp as f64 * A_SLEEP).max(n as f64 * A_SLEEP / A_PARALLELISM as f64);
    println!(
        "   tree: {n} nodes, critical path {cp} nodes ({} s of plans), total work {} s of plans",
        secs(cp as f64 * A_SLEEP),
        secs(n as f64 * A_SLEEP)
    );
    println!(
        "   ideal (lower bound) = max({cp} x {A_SLEEP}, {n} x {A_SLEEP} / {A_PARALLELISM}) = {} s",
        secs(lower_bound)
    );

    let fake = dir.join("fake-terraform");
    fs::write(&fake, LEAN_FAKE).unwrap();
    let fifo = dir.join("never-written.fifo");
    make_fifo(&fifo);
    set_executable(&fake);
    // The stock fake, on a copy of the tree with fresh work dirs.
    let stock_root = dir.join("stock");
    generate_a(&stock_root.join("live"), false);
    let stock = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake/terraform");
    let floor = fake_floor(dir, &fake, &fifo);
    println!(
        "   the lean fake's own floor, spawned and waited for from this process one at a time: init {:.2} ms, plan without \
         the sleep {:.2} ms (per node {:.2} ms on top of the 50 ms)",
        floor.0 * 1000.0,
        floor.1 * 1000.0,
        (floor.0 + floor.1) * 1000.0
    );

    let runs: [(&str, &Path, &Path, bool); 3] = [
        ("#1 first plan (init + plan)", &root, &fake, true),
        ("#2 second plan (init skipped)", &root, &fake, true),
        ("#1 with tests/fake/terraform", &stock_root, &stock, false),
    ];
    let mut rows = Vec::new();
    for (k, (label, root, fake, judged)) in runs.into_iter().enumerate() {
        let log = dir.join(format!("fake-{k}.log"));
        let env: Vec<(&str, String)> = vec![
            ("FAKE_TF_SLEEP", A_SLEEP.to_string()),
            ("FAKE_TF_FIFO", fifo.display().to_string()),
            ("FAKE_TF_LOG", log.display().to_string()),
            ("LC_ALL", "C".to_string()),
        ];
        let args = [
            "plan",
            "--all",
            "--parallelism",
            &A_PARALLELISM.to_string(),
            "--terraform-bin",
            &fake.display().to_string(),
        ]
        .map(String::from);
        let report = format!("report-{k}");
        let mut shown = vec![
            "--no-color".to_string(),
            "--live".into(),
            root.join("live").display().to_string(),
        ];
        shown.extend(args.iter().cloned());
        shown.extend([
            "--report".into(),
            root.join(format!("{report}.json")).display().to_string(),
        ]);
        println!(
            "\n   {label}:\n   $ cd {} && {}",
            root.display(),
            shell_line(&env, orch, &shown)
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = run_orch(orch, root, &report, &args, &env);
        if k == 0 {
            // What a real init leaves, and orch looks for (with its marker) to skip the next one.
            for address in &dag.addresses {
                fs::create_dir_all(root.join(".orch/work").join(address).join(".terraform"))
                    .unwrap();
            }
        }
        rows.push(analyse_a(
            label,
            &dag,
            &run,
            &read_calls(&log),
            lower_bound,
            judged,
        ));
        let r = rows.last().unwrap();
        println!(
            "   makespan {} s = {:.3} x ideal; simulated with the fake's per-node times {} s, with orch's {} s; \
             orch CPU {} s, terraform (fake) CPU {} s, other processes on the machine {} CPU-s",
            secs(r.wall),
            r.wall / lower_bound,
            secs(r.sim_fake),
            secs(r.sim_orch),
            secs(r.orch_cpu),
            secs(r.tf_cpu),
            secs(r.others_cpu)
        );
        println!(
            "   first fake call {} s after start, exit {} s after the last; per node, orch's \
             duration minus the fake's recorded time (process start-up and exit, orch) {:.1} ms; {} of {} slots busy on average ({:.0}%), at most {} calls at once",
            secs(r.first_call),
            secs(r.after_last),
            r.overhead_per_node * 1000.0,
            format_args!("{:.2}", r.utilization * A_PARALLELISM as f64),
            A_PARALLELISM,
            r.utilization * 100.0,
            r.max_concurrent
        );
    }
    AResult {
        floor,
        nodes: n,
        critical_path: cp,
        rows,
    }
}

/// Mean wall time of spawning the lean fake's `init` (in a fresh dir) and its `plan` (no sleep)
/// and waiting for them, one at a time: the process cost under every node, without orch.
fn fake_floor(dir: &Path, fake: &Path, fifo: &Path) -> (f64, f64) {
    let reps = 200;
    let mut times = (0.0, 0.0);
    for rep in 0..reps {
        let work = dir.join(format!("floor/.orch/work/x/y/z{rep}"));
        fs::create_dir_all(&work).unwrap();
        for (command, slot) in [("init", &mut times.0), ("plan", &mut times.1)] {
            let start = Instant::now();
            let status = Command::new(fake)
                .arg(command)
                .current_dir(&work)
                .env("FAKE_TF_SLEEP", "0")
                .env("FAKE_TF_FIFO", fifo)
                .env("FAKE_TF_LOG", "/dev/null")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output()
                .expect("run the fake")
                .status;
            *slot += start.elapsed().as_secs_f64();
            assert!(status.code().is_some(), "the fake was killed");
        }
    }
    (times.0 / reps as f64, times.1 / reps as f64)
}

fn analyse_a(
    label: &str,
    dag: &Dag,
    run: &OrchRun,
    calls: &[Call],
    lower_bound: f64,
    judged: bool,
) -> ARow {
    let index: HashMap<&str, usize> = dag
        .addresses
        .iter()
        .enumerate()
        .map(|(i, a)| (a.as_str(), i))
        .collect();
    let mut fake_cost = vec![0.0; dag.len()];
    for c in calls {
        if let Some(&i) = index.get(c.address.as_str()) {
            fake_cost[i] += c.end - c.start;
        }
    }
    let durations = run.durations();
    let orch_cost: Vec<f64> = dag
        .addresses
        .iter()
        .map(|a| durations.get(a).copied().unwrap_or(0.0))
        .collect();
    let node_calls: Vec<&Call> = calls
        .iter()
        .filter(|c| c.command == "init" || c.command == "plan")
        .collect();
    let first = node_calls.iter().map(|c| c.start).fold(f64::MAX, f64::min);
    let last = node_calls.iter().map(|c| c.end).fold(0.0, f64::max);
    // Calls of one node run one after another, so concurrency by node = by call.
    let mut edges: Vec<(f64, i32)> = node_calls
        .iter()
        .flat_map(|c| [(c.start, 1), (c.end, -1)])
        .collect();
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut now = 0;
    let mut most = 0;
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    let (orch_sum, fake_sum): (f64, f64) = (orch_cost.iter().sum(), fake_cost.iter().sum());
    ARow {
        label: label.to_string(),
        wall: run.wall,
        orch_cpu: run.number("orch_cpu_seconds"),
        tf_cpu: run.number("terraform_cpu_seconds"),
        lower_bound,
        sim_fake: dag.list_schedule(&fake_cost, A_PARALLELISM),
        sim_orch: dag.list_schedule(&orch_cost, A_PARALLELISM),
        first_call: first - run.started_epoch,
        after_last: run.started_epoch + run.wall - last,
        overhead_per_node: (orch_sum - fake_sum) / dag.len() as f64,
        utilization: orch_sum / (A_PARALLELISM as f64 * run.wall),
        max_concurrent: most.max(0) as usize,
        others_cpu: run.others_cpu,
        judged,
    }
}

fn make_fifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("a path without NUL");
    // SAFETY: a valid NUL-terminated path; mkfifo has no other preconditions.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        fail(&format!(
            "mkfifo {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
}

fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod the fake");
}

// ---------------------------------------------------------------------------------------------
// Part B: 12 nodes, real terraform against the emulator

/// 12 nodes: prod (3 regions) with a multi-region key, its replica, a grant and a bucket, a key
/// in eu-west-1 and a signing key in ap-southeast-2; shared (2 regions) with its own key, a
/// key-access to prod's key and a multi-region key with a replica; analytics (ap-southeast-2)
/// with a key and one that `depends_on` it. Every account through assume_role.
fn generate_b(live: &Path) {
    write(
        live,
        "orch.yaml",
        "profiles:\n  sandbox: {endpoint: \"http://127.0.0.1:1\"}\ndefaults:\n  tags: {ManagedBy: orch}\n",
    );
    let account = |name: &str, id: &str, regions: &str| {
        write(
            live,
            &format!("{name}/account.yaml"),
            &format!(
                "account_id: \"{id}\"\nenvironment: {name}\nrole_arn: arn:aws:iam::{id}:role/orch-deployer\n\
                 regions: [{regions}]\ndefaults:\n  key_administrators: [arn:aws:iam::{id}:role/admin]\n"
            ),
        );
    };
    account(
        "prod",
        "111111111111",
        "us-east-1, eu-west-1, ap-southeast-2",
    );
    account("shared", "222222222222", "us-east-1, eu-west-1");
    account("analytics", "333333333333", "ap-southeast-2");
    let nodes: [(&str, &str); 10] = [
        (
            "prod/us-east-1/data",
            "description: prod data\naliases: [prod/data]\nmulti_region: true\nreplicas: [eu-west-1]\n\
             key_users: [arn:aws:iam::111111111111:role/app]\n",
        ),
        (
            "prod/us-east-1/grant",
            "kind: grant\nkey: prod/us-east-1/data\ngrantee: arn:aws:iam::222222222222:role/reader\n\
             operations: [Decrypt, DescribeKey]\n",
        ),
        (
            "prod/us-east-1/bucket",
            "kind: s3-bucket\nkey: prod/us-east-1/data\nbucket: orch-bench-data\nforce_destroy: true\n",
        ),
        (
            "prod/eu-west-1/secrets",
            "description: prod secrets\naliases: [prod/secrets]\nkey_users: [arn:aws:iam::111111111111:role/app]\n",
        ),
        (
            "prod/ap-southeast-2/signing",
            "description: prod signing\nspec: RSA_2048\nusage: SIGN_VERIFY\n\
             key_users: [arn:aws:iam::111111111111:role/payments]\n",
        ),
        (
            "shared/us-east-1/own",
            "description: shared key\naliases: [shared/own]\nkey_users: [arn:aws:iam::222222222222:role/app]\n",
        ),
        (
            "shared/us-east-1/reader",
            "kind: key-access\nkey: prod/us-east-1/data\nroles: [arn:aws:iam::222222222222:role/reader]\n\
             capabilities: [read-data]\n",
        ),
        (
            "shared/eu-west-1/app",
            "description: shared app\naliases: [shared/app]\nmulti_region: true\nreplicas: [us-east-1]\n\
             key_users: [arn:aws:iam::222222222222:role/app]\n",
        ),
        (
            "analytics/ap-southeast-2/warehouse",
            "description: warehouse\naliases: [analytics/warehouse]\n\
             key_users: [arn:aws:iam::333333333333:role/reporting]\n",
        ),
        (
            "analytics/ap-southeast-2/late",
            "description: after the warehouse\ndepends_on: [analytics/ap-southeast-2/warehouse]\n\
             key_users: [arn:aws:iam::333333333333:role/reporting]\n",
        ),
    ];
    for (address, text) in nodes {
        write(live, &format!("{address}/node.yaml"), text);
    }
}

/// The variables orch adds to terraform's environment (src/run.rs `terraform_env`), for the
/// sequential loop: same automation flags, same GOGC, same plugin cache.
fn orch_terraform_env(orch_root: &Path) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("TF_IN_AUTOMATION", "1".to_string()),
        ("TF_INPUT", "0".to_string()),
        ("CHECKPOINT_DISABLE", "1".to_string()),
    ];
    if std::env::var_os("GOGC").is_none() {
        env.push(("GOGC", "400".to_string()));
    }
    let user_cache = std::env::var_os("TF_PLUGIN_CACHE_DIR").is_some()
        || std::env::var_os("TF_CLI_CONFIG_FILE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".terraformrc")))
            .and_then(|p| fs::read_to_string(p).ok())
            .is_some_and(|t| {
                t.lines()
                    .any(|l| l.trim_start().starts_with("plugin_cache_dir"))
            });
    if !user_cache {
        let cache = orch_root.join(".orch/plugin-cache");
        env.push((
            "TF_PLUGIN_CACHE_DIR",
            fs::canonicalize(&cache)
                .unwrap_or(cache)
                .display()
                .to_string(),
        ));
    }
    env
}

/// Copies a rendered work dir without what init and plan made (`.terraform`, the plan, orch's
/// init marker); the dependency lock file stays, as orch's own inits start from it.
fn copy_work_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if matches!(name.as_ref(), ".terraform" | "tfplan" | ".orch-init")
            || name.ends_with(".tfplan")
        {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_work_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

const LOOP: &str = r#"set -euo pipefail
for d in "$@"; do
  cd "$d"
  t0=$EPOCHREALTIME
  terraform init -input=false >>"$LOOP_LOG" 2>&1
  t1=$EPOCHREALTIME
  terraform plan -input=false -out=tfplan >>"$LOOP_LOG" 2>&1 || { echo "plan failed in $d; see $LOOP_LOG" >&2; exit 1; }
  t2=$EPOCHREALTIME
  printf '%s %s %s init\n%s %s %s plan\n' "$t0" "$t1" "${d#*/.orch/work/}" "$t1" "$t2" "${d#*/.orch/work/}" >>"$LOOP_TIMES"
done
"#;

/// Given to orch as `--terraform-bin` in part B: runs the real terraform and records each call
/// like the fakes do (one bash process more per call, about a millisecond).
const RECORDER: &str = r#"#!/bin/bash
s=$EPOCHREALTIME
"$BENCH_TERRAFORM" "$@"
r=$?
printf '%s %s %s %s\n' "$s" "$EPOCHREALTIME" "${PWD#*/.orch/work/}" "$1" >>"$BENCH_TF_TIMES"
exit $r
"#;

/// Where the wall time of a run went, from the terraform calls' start and end times.
struct Timeline {
    /// Orch's start to its first terraform call (load, validate, version check).
    before_first: f64,
    /// From the first call until `parallelism` calls run at once (the first init running alone
    /// while the plugin cache warms).
    head: f64,
    /// From the last time fewer than `parallelism` calls ran to orch's exit.
    tail: f64,
    /// Slot-seconds no terraform ran: parallelism x wall - the sum of the calls' durations.
    idle_slots: f64,
    mean_init: f64,
    mean_plan: f64,
}

fn timeline(calls: &[Call], started: f64, wall: f64, parallelism: usize) -> Timeline {
    let calls: Vec<&Call> = calls
        .iter()
        .filter(|c| c.command == "init" || c.command == "plan")
        .collect();
    let mut edges: Vec<(f64, i32)> = calls
        .iter()
        .flat_map(|c| [(c.start - started, 1), (c.end - started, -1)])
        .collect();
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let first = edges.first().map_or(0.0, |e| e.0);
    let (mut running, mut full_at, mut last_full_end) = (0i32, None, first);
    for (t, d) in &edges {
        let was_full = running as usize >= parallelism;
        running += d;
        let full = running as usize >= parallelism;
        if full && full_at.is_none() {
            full_at = Some(*t);
        }
        if was_full && !full {
            last_full_end = *t;
        }
    }
    let mean = |cmd: &str| {
        let d: Vec<f64> = calls
            .iter()
            .filter(|c| c.command == cmd)
            .map(|c| c.end - c.start)
            .collect();
        d.iter().sum::<f64>() / d.len().max(1) as f64
    };
    let busy: f64 = calls.iter().map(|c| c.end - c.start).sum();
    Timeline {
        before_first: first,
        head: full_at.unwrap_or(wall) - first,
        tail: wall - last_full_end.max(full_at.unwrap_or(wall)),
        idle_slots: parallelism as f64 * wall - busy,
        mean_init: mean("init"),
        mean_plan: mean("plan"),
    }
}

struct BRun {
    label: String,
    parallelism: usize,
    wall: f64,
    tf_cpu: f64,
    orch_cpu: f64,
    tree_cpu: f64,
    others_cpu: f64,
    emulator_cpu: f64,
    timeline: Timeline,
    /// address -> (init, plan) seconds.
    nodes: BTreeMap<String, (f64, f64)>,
}

impl BRun {
    fn print(&self, cores: usize) {
        let t = &self.timeline;
        println!(
            "   wall {} s; terraform CPU {} s (/ {cores} cores = {} s: wall is {:.3} x that); orch CPU {} s; \
             process tree CPU {} s; emulator CPU {} s; other processes on the machine meanwhile {} CPU-s",
            secs(self.wall),
            secs(self.tf_cpu),
            secs(self.tf_cpu / cores as f64),
            self.wall / (self.tf_cpu / cores as f64),
            secs(self.orch_cpu),
            secs(self.tree_cpu),
            secs(self.emulator_cpu),
            secs(self.others_cpu)
        );
        println!(
            "   timeline: first terraform call at {} s; {} s until {} calls ran at once; {} s of tail with \
             fewer; {} idle slot-seconds of {}; mean init {} s, mean plan {} s",
            secs(t.before_first),
            secs(t.head),
            self.parallelism,
            secs(t.tail),
            secs(t.idle_slots),
            secs(self.parallelism as f64 * self.wall),
            secs(t.mean_init),
            secs(t.mean_plan)
        );
    }
}

fn per_node(calls: &[Call]) -> BTreeMap<String, (f64, f64)> {
    let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for c in calls {
        let e = out.entry(c.address.clone()).or_default();
        match c.command.as_str() {
            "init" => e.0 += c.end - c.start,
            "plan" => e.1 += c.end - c.start,
            _ => {}
        }
    }
    out
}

struct BResult {
    nodes: usize,
    runs: Vec<BRun>,
    sequential: BRun,
}

fn part_b(orch: &Path, dir: &Path, tools: &Tools) -> BResult {
    let cores = nproc();
    println!(
        "\n== B. real terraform against the emulator: 12 nodes, 3 accounts (assume_role), 3 regions; \
         load average {}",
        loadavg()
    );
    let emulator = Emulator::start(&tools.python);
    let url = emulator.endpoint.clone();
    let profile = ["--profile", "sandbox", "--endpoint", url.as_str()];
    let recorder = dir.join("terraform-recorder");
    fs::create_dir_all(dir).unwrap();
    fs::write(&recorder, RECORDER).unwrap();
    set_executable(&recorder);

    // Warm-up, not measured: the provider binary into the page cache, the emulator's services
    // loaded (moto imports each on first use).
    let warm = dir.join("warm-up");
    generate_b(&warm.join("live"));
    let t = Instant::now();
    let mut args: Vec<&str> = profile.to_vec();
    args.extend(["plan", "prod/us-east-1/data", "shared/us-east-1/own"]);
    run_orch(orch, &warm, "report", &args, &[]);
    println!(
        "   warm-up (not measured): orch plan of 2 nodes took {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let orch_run = |name: &str, label: &str, parallelism: Option<usize>| -> BRun {
        let root = dir.join(name);
        generate_b(&root.join("live"));
        let times = root.join("terraform-calls.txt");
        let env: Vec<(&str, String)> = vec![
            ("BENCH_TERRAFORM", tools.terraform.display().to_string()),
            ("BENCH_TF_TIMES", times.display().to_string()),
        ];
        let recorder = recorder.display().to_string();
        let p = parallelism.map(|p| p.to_string());
        let mut args: Vec<&str> = profile.to_vec();
        args.extend(["plan", "--all", "--terraform-bin", &recorder]);
        if let Some(p) = &p {
            args.extend(["--parallelism", p]);
        }
        let mut shown: Vec<String> = vec![
            "--no-color".into(),
            "--live".into(),
            root.join("live").display().to_string(),
        ];
        shown.extend(args.iter().map(|s| s.to_string()));
        shown.extend([
            "--report".into(),
            root.join("report.json").display().to_string(),
        ]);
        println!(
            "\n   {label}:\n   $ cd {} && {}",
            root.display(),
            shell_line(&env, orch, &shown)
        );
        let emulator_before = emulator.cpu();
        let run = run_orch(orch, &root, "report", &args, &env);
        let calls = read_calls(&times);
        let parallelism = parallelism.unwrap_or(cores);
        let r = BRun {
            label: label.to_string(),
            parallelism,
            wall: run.wall,
            tf_cpu: run.number("terraform_cpu_seconds"),
            orch_cpu: run.number("orch_cpu_seconds"),
            tree_cpu: run.tree_cpu,
            others_cpu: run.others_cpu - (emulator.cpu() - emulator_before),
            emulator_cpu: emulator.cpu() - emulator_before,
            timeline: timeline(&calls, run.started_epoch, run.wall, parallelism),
            nodes: per_node(&calls),
        };
        r.print(cores);
        r
    };
    let mut runs = vec![orch_run(
        "orch-default",
        &format!("(1) orch plan --all, default parallelism ({cores} = cores), fresh work dirs"),
        None,
    )];

    // The sequential loop over copies of the work dirs orch rendered in (1).
    let first = dir.join("orch-default");
    let dag = Dag::load(orch, &first.join("live"));
    let seq = dir.join("sequential");
    let mut dirs = Vec::new();
    for i in dag.topological() {
        let address = &dag.addresses[i];
        let to = seq.join(".orch/work").join(address);
        copy_work_dir(&first.join(".orch/work").join(address), &to);
        dirs.push(to.display().to_string());
    }
    let env = orch_terraform_env(&first);
    let log = seq.join("loop.log");
    let times = seq.join("terraform-calls.txt");
    let script = seq.join("loop.sh");
    fs::write(&script, LOOP).unwrap();
    let env_text = env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    println!(
        "\n   (2) sequential loop over the {} work dirs orch rendered in (1), copied without .terraform, \
         tfplan and .orch-init, with the environment orch gives terraform ({env_text}; the same \
         TF_CLI_CONFIG_FILE{}):",
        dirs.len(),
        if env.iter().any(|(k, _)| *k == "TF_PLUGIN_CACHE_DIR") {
            ", TF_PLUGIN_CACHE_DIR = orch's cache"
        } else {
            ", whose plugin_cache_dir orch uses too (it sets no TF_PLUGIN_CACHE_DIR then)"
        }
    );
    println!(
        "   $ {env_text} bash {} DIR...   # per DIR: cd DIR && terraform init -input=false && \
         terraform plan -input=false -out=tfplan",
        script.display()
    );
    settle();
    let emulator_before = emulator.cpu();
    let cpu_before = children_cpu();
    let busy_before = machine_busy();
    let started_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let start = Instant::now();
    let status = Command::new("bash")
        .arg(&script)
        .args(&dirs)
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .env("LOOP_LOG", &log)
        .env("LOOP_TIMES", &times)
        .stdin(Stdio::null())
        .status()
        .expect("spawn bash");
    let wall = start.elapsed().as_secs_f64();
    let loop_cpu = children_cpu() - cpu_before;
    let emulator_cpu = emulator.cpu() - emulator_before;
    let others_cpu = machine_busy() - busy_before - loop_cpu - emulator_cpu;
    if !status.success() {
        let text = fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        fail(&format!(
            "the sequential loop failed ({status}):\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    let calls = read_calls(&times);
    let sequential = BRun {
        label: "(2) sequential loop".into(),
        parallelism: 1,
        wall,
        tf_cpu: loop_cpu,
        orch_cpu: 0.0,
        tree_cpu: loop_cpu,
        others_cpu,
        emulator_cpu,
        timeline: timeline(&calls, started_epoch, wall, 1),
        nodes: per_node(&calls),
    };
    sequential.print(cores);

    runs.push(orch_run(
        "orch-p3",
        "(3) orch plan --all --parallelism 3, fresh work dirs",
        Some(3),
    ));

    println!("\n   per node, seconds of init + plan: orch (1) | loop (2) | orch (3)");
    for i in dag.topological() {
        let a = &dag.addresses[i];
        let cell = |m: &BTreeMap<String, (f64, f64)>| {
            m.get(a)
                .map_or("-".into(), |(i, p)| format!("{i:>5.2} + {p:>5.2}"))
        };
        println!(
            "   {a:<36} {} | {} | {}",
            cell(&runs[0].nodes),
            cell(&sequential.nodes),
            cell(&runs[1].nodes)
        );
    }
    BResult {
        nodes: dag.len(),
        runs,
        sequential,
    }
}

// ---------------------------------------------------------------------------------------------
// Part C: --changed on an unchanged, applied fleet of 100 nodes

/// Two accounts of 50 nodes: 20 multi-region keys with a replica each, and a grant on 10 of them.
fn generate_c(live: &Path) {
    write(
        live,
        "orch.yaml",
        "defaults:\n  deletion_window_days: 30\n  tags: {ManagedBy: orch}\n",
    );
    for a in 0..2 {
        let me = format!("{:012}", 200_000_000_000u64 + a as u64);
        let acct = format!("c{a:02}");
        write(
            live,
            &format!("{acct}/account.yaml"),
            &format!(
                "account_id: \"{me}\"\nenvironment: {acct}\nrole_arn: arn:aws:iam::{me}:role/orch-deployer\n\
                 regions: [us-east-1, eu-west-1]\ndefaults:\n  key_administrators: [arn:aws:iam::{me}:role/admin]\n"
            ),
        );
        for k in 0..20 {
            write(
                live,
                &format!("{acct}/us-east-1/k{k:02}/node.yaml"),
                &format!(
                    "description: key {k}\nkey_users: [arn:aws:iam::{me}:role/app]\nmulti_region: true\nreplicas: [eu-west-1]\n"
                ),
            );
            if k < 10 {
                write(
                    live,
                    &format!("{acct}/us-east-1/k{k:02}-grant/node.yaml"),
                    &format!(
                        "kind: grant\nkey: {acct}/us-east-1/k{k:02}\ngrantee: arn:aws:iam::{me}:role/reader\noperations: [Decrypt]\n"
                    ),
                );
            }
        }
    }
}

struct CResult {
    nodes: usize,
    /// Wall seconds of each measured run.
    walls: Vec<f64>,
    /// Terraform calls the fake recorded during the measured runs (version checks excepted).
    calls: usize,
}

fn part_c(orch: &Path, dir: &Path) -> CResult {
    println!(
        "\n== C. orch plan --all --changed on an applied, unchanged fleet, tests/fake/terraform; load average {}",
        loadavg()
    );
    let root = dir.join("tree");
    generate_c(&root.join("live"));
    let nodes = Dag::load(orch, &root.join("live")).len();
    let stock = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake/terraform");
    let fake = stock.display().to_string();
    let applied = dir.join("apply.log");
    let env = |log: &Path| -> Vec<(&str, String)> {
        vec![
            ("FAKE_TF_LOG", log.display().to_string()),
            ("FAKE_TF_STATE", dir.display().to_string()),
        ]
    };
    run_orch_checked(
        orch,
        &root,
        "apply",
        &["apply", "--all", "--auto-approve", "--terraform-bin", &fake],
        &env(&applied),
        &|report| report["exit_code"] == 0,
    );
    println!(
        "   tree: {nodes} nodes, applied with the fake ({} terraform calls)",
        read_calls(&applied).len()
    );
    let log = dir.join("changed.log");
    let args = ["plan", "--all", "--changed", "--terraform-bin", &fake];
    println!(
        "   $ cd {} && {}",
        root.display(),
        shell_line(
            &env(&log),
            orch,
            &args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
        )
    );
    let mut walls = Vec::new();
    for k in 0..5 {
        let run = run_orch_checked(
            orch,
            &root,
            &format!("changed-{k}"),
            &args,
            &env(&log),
            &|report| report["nodes"].as_array().is_some_and(Vec::is_empty),
        );
        walls.push(run.wall);
    }
    let calls = read_calls(&log).len();
    println!(
        "   wall {} s (runs: {}); terraform calls: {calls}",
        secs(median(&walls)),
        walls
            .iter()
            .map(|w| secs(*w))
            .collect::<Vec<_>>()
            .join(", ")
    );
    CResult {
        nodes,
        walls,
        calls,
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

// ---------------------------------------------------------------------------------------------
// Part D: a 3-wave rollout of 1,000 nodes, fake terraform

struct DResult {
    nodes: usize,
    /// (wave, nodes, critical path) in order.
    waves: Vec<(String, usize, usize)>,
    wall: f64,
    ideal: f64,
    lower_bound: f64,
    orch_cpu: f64,
    others_cpu: f64,
}

fn part_d(orch: &Path, dir: &Path) -> DResult {
    println!(
        "\n== D. orch rollout, 3 waves, lean fake, --parallelism {A_PARALLELISM}, plan = apply = {} ms; load average {}",
        A_SLEEP * 1000.0,
        loadavg()
    );
    let root = dir.join("tree");
    generate_a(&root.join("live"), true);
    let dag = Dag::load(orch, &root.join("live"));
    let n = dag.len();
    let names = ["canary", "early", "rest"];
    let wave_of = |address: &str| match &address[..3] {
        "a00" => 0,
        "a01" | "a02" | "a03" | "a04" => 1,
        _ => 2,
    };
    // The ideal: per wave, list scheduling of every node's plan + apply (in DAG order), then of
    // every node's gate plan, with no overhead at all; the lower bound of each is
    // max(critical path, work / parallelism).
    let mut ideal = 0.0;
    let mut lower_bound = 0.0;
    let mut waves = Vec::new();
    for (w, name) in names.iter().enumerate() {
        let member: Vec<bool> = dag.addresses.iter().map(|a| wave_of(a) == w).collect();
        let count = member.iter().filter(|m| **m).count();
        let unit: Vec<f64> = member.iter().map(|&m| f64::from(u8::from(m))).collect();
        let cp = dag.bottom_levels(&unit).into_iter().fold(0.0, f64::max) as usize;
        for step in [2.0 * A_SLEEP, A_SLEEP] {
            let cost: Vec<f64> = unit.iter().map(|u| u * step).collect();
            ideal += dag.list_schedule(&cost, A_PARALLELISM);
            lower_bound += (cp as f64 * step).max(count as f64 * step / A_PARALLELISM as f64);
        }
        waves.push((name.to_string(), count, cp));
    }
    println!(
        "   tree: {n} nodes; waves {}; ideal schedule {} s (lower bound {} s)",
        waves
            .iter()
            .map(|(w, c, cp)| format!("{w}: {c} nodes, critical path {cp}"))
            .collect::<Vec<_>>()
            .join("; "),
        secs(ideal),
        secs(lower_bound)
    );
    let fake = dir.join("fake-terraform");
    fs::write(&fake, LEAN_FAKE).unwrap();
    set_executable(&fake);
    let fifo = dir.join("never-written.fifo");
    make_fifo(&fifo);
    let env: Vec<(&str, String)> = vec![
        ("FAKE_TF_SLEEP", A_SLEEP.to_string()),
        ("FAKE_TF_FIFO", fifo.display().to_string()),
        ("FAKE_TF_LOG", dir.join("fake.log").display().to_string()),
        ("LC_ALL", "C".to_string()),
    ];
    let fake_arg = fake.display().to_string();
    let parallelism = A_PARALLELISM.to_string();
    // Initialized work dirs, as a real first init leaves them: the rollout measures waves, plans,
    // applies and gates, not inits.
    run_orch(
        orch,
        &root,
        "init",
        &[
            "plan",
            "--all",
            "--parallelism",
            &parallelism,
            "--terraform-bin",
            &fake_arg,
        ],
        &env,
    );
    for address in &dag.addresses {
        fs::create_dir_all(root.join(".orch/work").join(address).join(".terraform")).unwrap();
    }
    let args = [
        "rollout",
        "--parallelism",
        &parallelism,
        "--terraform-bin",
        &fake_arg,
    ];
    println!(
        "   $ cd {} && {}",
        root.display(),
        shell_line(
            &env,
            orch,
            &args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
        )
    );
    let run = run_orch_checked(orch, &root, "rollout", &args, &env, &|report| {
        report["waves"]
            .as_array()
            .is_some_and(|w| w.len() == 3 && w.iter().all(|w| w["status"] == "passed"))
    });
    println!(
        "   wall {} s = {:.3} x ideal; orch CPU {} s; other processes {} CPU-s",
        secs(run.wall),
        run.wall / ideal,
        secs(run.number("orch_cpu_seconds")),
        secs(run.others_cpu)
    );
    DResult {
        nodes: n,
        waves,
        wall: run.wall,
        ideal,
        lower_bound,
        orch_cpu: run.number("orch_cpu_seconds"),
        others_cpu: run.others_cpu,
    }
}

fn summary_cd(c: Option<&CResult>, d: Option<&DResult>) {
    if let Some(c) = c {
        let wall = median(&c.walls);
        println!(
            "\nC. orch plan --all --changed, {} nodes applied and unchanged: wall {} s (median of {}), \
             {} terraform calls -> {} (target < {C_TARGET_WALL} s and 0 calls; the version check's \
             `terraform version` is not counted)",
            c.nodes,
            secs(wall),
            c.walls.len(),
            c.calls,
            verdict(wall < C_TARGET_WALL && c.calls == 0)
        );
    }
    if let Some(d) = d {
        let ratio = d.wall / d.ideal;
        println!(
            "\nD. orch rollout, {} nodes in 3 waves ({}), --parallelism {A_PARALLELISM}, plan and apply {} ms each (fake)",
            d.nodes,
            d.waves
                .iter()
                .map(|(w, c, _)| format!("{w} {c}"))
                .collect::<Vec<_>>()
                .join(", "),
            A_SLEEP * 1000.0
        );
        println!(
            "wall {} s, ideal schedule {} s (lower bound {} s): ratio {ratio:.3} -> {} (target <= {TARGET_RATIO:.2}); \
             orch CPU {} s; others {} CPU-s",
            secs(d.wall),
            secs(d.ideal),
            secs(d.lower_bound),
            verdict(ratio <= TARGET_RATIO),
            secs(d.orch_cpu),
            secs(d.others_cpu)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Summary

fn summary(a: Option<&AResult>, b: Option<&BResult>) {
    println!(
        "\n== summary (nproc {}, load average {})",
        nproc(),
        loadavg()
    );
    if let Some(a) = a {
        println!(
            "\nA. {} nodes, critical path {} nodes, --parallelism {A_PARALLELISM}, plan {} ms (fake)",
            a.nodes,
            a.critical_path,
            A_SLEEP * 1000.0
        );
        println!(
            "{:<32} {:>7} {:>7} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8}  verdict",
            "run",
            "wall s",
            "ideal",
            "ratio",
            "sim-fake",
            "sim-orch",
            "orch CPU",
            "fake CPU",
            "others"
        );
        for r in &a.rows {
            let ratio = r.wall / r.lower_bound;
            let v = if r.judged {
                format!(
                    "ratio {} (<= {TARGET_RATIO:.2}), orch CPU {} (< {TARGET_ORCH_CPU} s)",
                    verdict(ratio <= TARGET_RATIO),
                    verdict(r.orch_cpu < TARGET_ORCH_CPU)
                )
            } else {
                "(comparison)".to_string()
            };
            println!(
                "{:<32} {:>7} {:>7} {:>6.3} {:>8} {:>8} {:>8} {:>8} {:>8}  {v}",
                r.label,
                secs(r.wall),
                secs(r.lower_bound),
                ratio,
                secs(r.sim_fake),
                secs(r.sim_orch),
                secs(r.orch_cpu),
                secs(r.tf_cpu),
                secs(r.others_cpu)
            );
        }
        println!(
            "the lean fake alone costs {:.2} ms per node (spawn + exit of init, and of plan without its sleep)",
            (a.floor.0 + a.floor.1) * 1000.0
        );
        println!(
            "ideal = max(critical path x 50 ms, nodes x 50 ms / {A_PARALLELISM}); sim-fake / sim-orch = list \
             scheduling (longest chain first, no overhead) with the per-node times the fake recorded / \
             orch reported; others = CPU-s of other processes on the machine during the run"
        );
    }
    if let Some(b) = b {
        let cores = nproc() as f64;
        let first = &b.runs[0];
        let speedup = b.sequential.wall / first.wall;
        println!("\nB. {} nodes, real terraform + emulator", b.nodes);
        println!(
            "{:<40} {:>7} {:>8} {:>9} {:>9} {:>9} {:>10} {:>7}",
            "run",
            "wall s",
            "speedup",
            "tf CPU s",
            "CPU/cores",
            "wall/that",
            "idle slots",
            "others"
        );
        for r in b
            .runs
            .iter()
            .take(1)
            .chain([&b.sequential])
            .chain(b.runs.iter().skip(1))
        {
            let bound = r.tf_cpu / cores;
            let name = if r.parallelism == 1 {
                "sequential loop (init && plan per dir)".to_string()
            } else {
                format!("orch plan --all --parallelism {}", r.parallelism)
            };
            println!(
                "{name:<40} {:>7} {:>7.2}x {:>9} {:>9} {:>9.3} {:>10} {:>7}",
                secs(r.wall),
                b.sequential.wall / r.wall,
                secs(r.tf_cpu),
                secs(bound),
                r.wall / bound,
                secs(r.timeline.idle_slots),
                secs(r.others_cpu)
            );
        }
        let bound_ratio = first.wall / (first.tf_cpu / cores);
        println!(
            "speedup of orch (default parallelism) over the loop: {speedup:.2}x -> {} (target >= {TARGET_SPEEDUP}x on 2 cores)",
            verdict(speedup >= TARGET_SPEEDUP)
        );
        println!(
            "orch wall / (terraform CPU / {cores} cores): {bound_ratio:.3} -> {} (target <= {TARGET_CPU_BOUND:.2})",
            verdict(bound_ratio <= TARGET_CPU_BOUND)
        );
        println!(
            "The loop ran with the environment orch gives terraform (TF_IN_AUTOMATION=1, TF_INPUT=0, \
             CHECKPOINT_DISABLE=1, GOGC=400 unless set, the same plugin cache), so the comparison is \
             about orchestration. tf CPU for the loop is the loop's whole process tree; for orch, \
             terraform_cpu_seconds of --report. orch ran terraform through a recording wrapper \
             (+1 bash process per call). idle slots = parallelism x wall - time terraform ran; \
             others = CPU-s of other processes on the machine meanwhile (emulator excluded). {}",
            b.runs
                .iter()
                .chain([&b.sequential])
                .map(|r| format!("{}: emulator {} CPU-s", r.label, secs(r.emulator_cpu)))
                .collect::<Vec<_>>()
                .join("; ")
        );
        if first.others_cpu > 0.1 * cores * first.wall {
            println!(
                "WARNING: other processes took {:.0}% of the machine during (1): the figures are not clean",
                100.0 * first.others_cpu / (cores * first.wall)
            );
        }
    }
}
