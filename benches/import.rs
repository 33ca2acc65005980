//! Import benchmark of the `orch` binary (`cargo bench --bench import`, `scripts/just
//! bench-import`): `orch import discover` and `orch import apply` against the local emulator
//! (scripts/emulator.py), on estates that scripts/brownfield.py makes through the AWS API, as a
//! team would have made them outside orch.
//!
//! Part A, discover: 1,000 keys (an alias and two tags each) in one account/region, made once
//! per run; then `orch import discover` into a fresh tree at each `--concurrency` of the list
//! (the default, 8, first), the whole list twice in turn, so a burst of load from other processes
//! hits one value less than the others. Per run: wall time, and its ratio to the default's in the
//! same round (the machine is shared: ratios carry, absolute times less so), orch's CPU (rusage of
//! the child), the emulator's CPU (/proc/PID/stat before and after), the API calls of the
//! discover report, in all and per key, and whether every key was adopted.
//!
//! Part B, import apply: 200 keys, all with the same tags (`brownfield.py --same-tags`),
//! discovered into a `layout: stacks` tree (one root for the account/region's keys), then `orch
//! import apply --all --auto-approve` and `orch plan --all --detailed-exitcode`. Per run: wall,
//! CPU of orch + terraform + providers (rusage of the children: every process orch started and
//! reaped), the emulator's CPU; PASS when every node is imported, state holds every key and alias,
//! and the plan after exits 0. Why the same tags: a stack has one provider configuration per tag
//! set, and terraform starts a provider process for each, so 200 keys with a tag of their own
//! (brownfield.py's default, `Index=<i>`) make 200 provider processes per terraform command
//! (docs/benchmarks.md, "Import", has what that costs); `ORCH_BENCH_UNIQUE_TAGS=1` runs that case.
//!
//! Knobs: `ORCH_BENCH_DISCOVER_KEYS=1000` (0 skips part A), `ORCH_BENCH_CONCURRENCY=8,2,32`,
//! `ORCH_BENCH_ROUNDS=2`, `ORCH_BENCH_IMPORT_KEYS=200` (0 skips part B), `ORCH_BENCH_UNIQUE_TAGS=1`,
//! `ORCH_BENCH_TIMEOUT=5400` (seconds, per orch or brownfield.py run: SIGTERM, then SIGKILL),
//! `ORCH_BENCH_KEEP=DIR` keeps the trees and logs. Needs terraform on PATH, TF_CLI_CONFIG_FILE and
//! ORCH_TOOLS_VENV: `scripts/just bench-import` after `scripts/just setup`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{
    fail, loadavg, make_estate, measure_orch, number_env, one_account_tree, preflight,
    print_checks, print_machine, work_dir, Emulator, Measured, Tools,
};

const ACCOUNT_ID: &str = "111111111111";
const REGION: &str = "us-east-1";
/// `orch import discover --concurrency`'s default.
const DEFAULT_CONCURRENCY: u16 = 8;
/// What discover calls for a plain key: DescribeKey, GetKeyPolicy, GetKeyRotationStatus,
/// ListResourceTags, ListGrants; the list calls and AssumeRole add a few per region.
const CALLS_PER_KEY: f64 = 5.0;

type Checks = Vec<(bool, String)>;

fn main() {
    let orch = PathBuf::from(env!("CARGO_BIN_EXE_orch"));
    let discover_keys = number_env("ORCH_BENCH_DISCOVER_KEYS", 1000);
    let mut concurrency: Vec<u16> = std::env::var("ORCH_BENCH_CONCURRENCY")
        .unwrap_or_else(|_| "8,2,32".into())
        .split(',')
        .map(|c| {
            c.trim()
                .parse()
                .ok()
                .filter(|c| (1..=64).contains(c))
                .unwrap_or_else(|| fail(&format!("ORCH_BENCH_CONCURRENCY: {c:?} is not 1 to 64")))
        })
        .collect();
    // The default first in each round: the others are compared with it.
    concurrency.retain(|&c| c != DEFAULT_CONCURRENCY);
    concurrency.insert(0, DEFAULT_CONCURRENCY);
    let rounds = number_env("ORCH_BENCH_ROUNDS", 2).max(1);
    let import_keys = number_env("ORCH_BENCH_IMPORT_KEYS", 200);
    let unique_tags = std::env::var_os("ORCH_BENCH_UNIQUE_TAGS").is_some_and(|v| v == "1");
    let timeout = Duration::from_secs(number_env("ORCH_BENCH_TIMEOUT", 5400) as u64);
    let tools = preflight();
    print_machine(&orch, Some(&tools));
    let (base, _tmp) = work_dir("orch-bench-import-");
    let started = Instant::now();
    let mut checks = Checks::new();
    if discover_keys > 0 {
        checks.extend(bench_discover(
            &orch,
            &tools,
            &base,
            discover_keys,
            &concurrency,
            rounds,
            timeout,
        ));
    }
    if import_keys > 0 {
        checks.extend(bench_apply(
            &orch,
            &tools,
            &base,
            import_keys,
            unique_tags,
            timeout,
        ));
    }
    print_checks(&checks, started);
}

// ---------------------------------------------------------------------------------------------
// Estates, trees and runs

/// API calls of a discover report, by operation.
fn calls(report: &Value) -> BTreeMap<String, u64> {
    report["calls"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

fn count(report: &Value, field: &str) -> usize {
    report[field].as_array().map_or(0, Vec::len)
}

// ---------------------------------------------------------------------------------------------
// Part A: discover

struct DiscoverRun {
    concurrency: u16,
    round: usize,
    run: Measured,
    calls: u64,
    keys_read: u64,
    adopted: usize,
}

fn bench_discover(
    orch: &Path,
    tools: &Tools,
    base: &Path,
    keys: usize,
    concurrency: &[u16],
    rounds: usize,
    timeout: Duration,
) -> Checks {
    println!("\n== A. orch import discover of {keys} keys in one account/region");
    let emulator = Emulator::start(&tools.python);
    make_estate(
        tools,
        &emulator,
        &base.join("estate-a"),
        keys,
        (ACCOUNT_ID, REGION),
        false,
        timeout,
    );
    let mut runs = Vec::new();
    for round in 1..=rounds {
        for &c in concurrency {
            let root = base.join(format!("discover-c{c}-r{round}"));
            one_account_tree(
                &root,
                &emulator.endpoint,
                (ACCOUNT_ID, REGION),
                "layout: stacks\n",
            );
            let args = ["import", "discover", "--concurrency", &c.to_string()].map(String::from);
            let run = measure_orch(orch, &root, "discover.json", &args, &emulator, timeout);
            let by_op = calls(&run.report);
            let d = DiscoverRun {
                concurrency: c,
                round,
                calls: by_op.values().sum(),
                keys_read: run.report["keys_read"].as_u64().unwrap_or(0),
                adopted: count(&run.report, "adopted"),
                run,
            };
            println!(
                "   --concurrency {c:<2} round {round}: wall {:.1} s (reading {:.1} s), orch {:.2} CPU-s, \
                 emulator {:.1} CPU-s, others {:.0} CPU-s, {} calls ({:.2} a key), {} adopted, exit {}",
                d.run.wall,
                d.run.report["seconds"].as_f64().unwrap_or(f64::NAN),
                d.run.cpu,
                d.run.emulator_cpu,
                d.run.others_cpu,
                d.calls,
                d.calls as f64 / keys as f64,
                d.adopted,
                d.run.exit
            );
            runs.push(d);
        }
    }
    let (rss, peak) = emulator.memory_mb();
    println!("   emulator memory at the end: {rss:.0} MB (peak {peak:.0} MB)");
    println!(
        "\n   | --concurrency | round | wall | vs default (same round) | reading (report) | orch CPU-s | emulator CPU-s | \
         others' CPU-s | API calls | per key | adopted | exit |"
    );
    println!("   |---|---|---|---|---|---|---|---|---|---|---|---|");
    for d in &runs {
        let default = runs
            .iter()
            .find(|r| r.round == d.round && r.concurrency == DEFAULT_CONCURRENCY)
            .map_or(f64::NAN, |r| r.run.wall);
        println!(
            "   | {}{} | {} | {:.1} s | {:.2} | {:.1} s | {:.2} | {:.1} | {:.0} | {} | {:.2} | {} | {} |",
            d.concurrency,
            if d.concurrency == DEFAULT_CONCURRENCY {
                " (default)"
            } else {
                ""
            },
            d.round,
            d.run.wall,
            d.run.wall / default,
            d.run.report["seconds"].as_f64().unwrap_or(f64::NAN),
            d.run.cpu,
            d.run.emulator_cpu,
            d.run.others_cpu,
            d.calls,
            d.calls as f64 / keys as f64,
            d.adopted,
            d.run.exit
        );
    }
    if let Some(first) = runs.first() {
        let by_op: Vec<String> = calls(&first.run.report)
            .iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect();
        println!("\n   calls by operation: {}", by_op.join(", "));
    }
    let complete = runs
        .iter()
        .all(|d| d.run.exit == 0 && d.adopted == keys && d.keys_read == keys as u64);
    let most_calls = runs.iter().map(|d| d.calls).max().unwrap_or(0);
    vec![
        (
            complete,
            format!(
                "discover read and adopted all {keys} keys, exit 0, in each of {} runs",
                runs.len()
            ),
        ),
        (
            most_calls as f64 <= keys as f64 * CALLS_PER_KEY + 20.0,
            format!(
                "discover made at most {CALLS_PER_KEY} calls a key plus the listing ({most_calls} for {keys} keys)"
            ),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Part B: import apply

fn bench_apply(
    orch: &Path,
    tools: &Tools,
    base: &Path,
    keys: usize,
    unique_tags: bool,
    timeout: Duration,
) -> Checks {
    println!(
        "\n== B. orch import apply of {keys} keys ({}), stacks layout",
        if unique_tags {
            "a tag set per key"
        } else {
            "one tag set"
        }
    );
    let emulator = Emulator::start(&tools.python);
    make_estate(
        tools,
        &emulator,
        &base.join("estate-b"),
        keys,
        (ACCOUNT_ID, REGION),
        !unique_tags,
        timeout,
    );
    let root = base.join("apply");
    one_account_tree(
        &root,
        &emulator.endpoint,
        (ACCOUNT_ID, REGION),
        "layout: stacks\n",
    );
    let phases: [(&str, &[&str]); 3] = [
        ("discover", &["import", "discover"]),
        (
            "import apply",
            &["import", "apply", "--all", "--auto-approve"],
        ),
        ("plan after", &["plan", "--all", "--detailed-exitcode"]),
    ];
    let mut measured = Vec::new();
    for (phase, args) in phases {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let name = phase.replace(' ', "-");
        let run = measure_orch(
            orch,
            &root,
            &format!("{name}.json"),
            &args,
            &emulator,
            timeout,
        );
        let rows = run.report["nodes"].as_array().cloned().unwrap_or_default();
        let statuses = rows.iter().fold(BTreeMap::new(), |mut m, n| {
            *m.entry(n["status"].as_str().unwrap_or("?").to_string())
                .or_insert(0usize) += 1;
            m
        });
        println!(
            "   {phase:<12} wall {:.1} s, {:.1} CPU-s ({:.2} per key), emulator {:.1} CPU-s, others {:.0} CPU-s, \
             exit {}, nodes {statuses:?}, load average {}",
            run.wall,
            run.cpu,
            run.cpu / keys as f64,
            run.emulator_cpu,
            run.others_cpu,
            run.exit,
            loadavg()
        );
        let failed = run.exit != 0;
        measured.push((phase, run, statuses));
        if failed {
            println!(
                "   (orch failed: the later phases are not run; see {}/{name}.stderr)",
                root.display()
            );
            break;
        }
    }
    let (rss, peak) = emulator.memory_mb();
    println!("   emulator memory at the end: {rss:.0} MB (peak {peak:.0} MB)");
    let state = state_resources(&root.join(".orch/state"));
    println!("   in state: {state:?}");
    println!(
        "\n   | run | wall | CPU-s (orch + terraform + providers) | CPU-s per key | emulator CPU-s | others' CPU-s | exit | nodes |"
    );
    println!("   |---|---|---|---|---|---|---|---|");
    for (phase, run, statuses) in &measured {
        println!(
            "   | {phase} | {:.1} s | {:.1} | {:.2} | {:.1} | {:.0} | {} | {statuses:?} |",
            run.wall,
            run.cpu,
            run.cpu / keys as f64,
            run.emulator_cpu,
            run.others_cpu,
            run.exit
        );
    }
    let phase = |name: &str| measured.iter().find(|(p, _, _)| *p == name);
    let adopted = phase("discover").map_or(0, |(_, r, _)| count(&r.report, "adopted"));
    let imported = phase("import apply").map_or(0, |(_, r, s)| {
        if r.exit == 0 {
            s.get("ok").copied().unwrap_or(0)
        } else {
            0
        }
    });
    let plan_exit = phase("plan after").map_or(-1, |(_, r, _)| r.exit);
    let in_state = |kind: &str| state.get(kind).copied().unwrap_or(0);
    vec![
        (
            adopted == keys,
            format!("discover adopted {adopted} of {keys} keys"),
        ),
        (
            imported == keys,
            format!("import apply: {imported} of {keys} nodes ok"),
        ),
        (
            in_state("aws_kms_key") == keys && in_state("aws_kms_alias") == keys,
            format!(
                "state holds {} keys and {} aliases of {keys}",
                in_state("aws_kms_key"),
                in_state("aws_kms_alias")
            ),
        ),
        (
            plan_exit == 0,
            format!("`orch plan --all --detailed-exitcode` after the import exits {plan_exit}"),
        ),
    ]
}

/// Managed resource instances by type over every terraform.tfstate under `dir`.
fn state_resources(dir: &Path) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if entry.file_name() != "terraform.tfstate" {
                continue;
            }
            let state: Value = fs::read_to_string(&path)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null);
            for r in state["resources"].as_array().into_iter().flatten() {
                if r["mode"] == "managed" {
                    *out.entry(r["type"].as_str().unwrap_or("?").to_string())
                        .or_insert(0) += r["instances"].as_array().map_or(0, Vec::len);
                }
            }
        }
    }
    out
}
