//! Audit benchmark of the `orch` binary (`cargo bench --bench audit`, `scripts/just
//! bench-audit`): `orch audit` of 1,000 keys in one account/region against the local emulator
//! (scripts/emulator.py), made through the AWS API by `scripts/brownfield.py --scale` (an alias
//! and two tags each, rotation off), into a tree of that one account with no node: every key is
//! found twice, `unmanaged-key` and `rotation-off`.
//!
//! Per run (`ORCH_BENCH_ROUNDS` runs with a JSON report, then one with a Markdown report): wall
//! time, orch's CPU (rusage of the child), the emulator's CPU (/proc/PID/stat before and after),
//! the CPU every other process took meanwhile, and the API calls of the report, in all and per
//! key. Checks: every key read, every key found twice, exit 2, at most 5.1 calls per key (what a
//! plain key needs: DescribeKey, GetKeyPolicy, GetKeyRotationStatus, ListResourceTags,
//! ListGrants; the list calls and AssumeRole add a few per region), and a Markdown report within
//! GitHub's 65,536 characters.
//!
//! Knobs: `ORCH_BENCH_AUDIT_KEYS=1000`, `ORCH_BENCH_ROUNDS=2`, `ORCH_BENCH_TIMEOUT=1800` (seconds,
//! per orch or brownfield.py run), `ORCH_BENCH_KEEP=DIR` keeps the tree, reports and logs. Needs
//! ORCH_TOOLS_VENV (and terraform on PATH, as every emulator bench checks): `scripts/just
//! bench-audit` after `scripts/just setup`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{
    children_cpu, fail, loadavg, machine_busy, make_estate, orch_command, preflight, print_machine,
    run, settle, verdict, write, Emulator,
};

const ACCOUNT_ID: &str = "111111111111";
const REGION: &str = "us-east-1";
/// A plain key's calls (see the module's comment), with room for the list calls.
const MAX_CALLS_PER_KEY: f64 = 5.1;
/// GitHub's limit on a pull-request comment (`report::markdown::GITHUB_LIMIT`).
const GITHUB_LIMIT: usize = 65_536;

fn main() {
    let orch = PathBuf::from(env!("CARGO_BIN_EXE_orch"));
    let keys = number_env("ORCH_BENCH_AUDIT_KEYS", 1000).max(1);
    let rounds = number_env("ORCH_BENCH_ROUNDS", 2).max(1);
    let timeout = Duration::from_secs(number_env("ORCH_BENCH_TIMEOUT", 1800) as u64);
    let tools = preflight();
    print_machine(&orch, Some(&tools));
    let keep = std::env::var_os("ORCH_BENCH_KEEP").map(PathBuf::from);
    let _tmp;
    let base = match &keep {
        Some(dir) => {
            if dir.exists() {
                fail(&format!(
                    "ORCH_BENCH_KEEP={} exists: name a new directory",
                    dir.display()
                ));
            }
            fs::create_dir_all(dir).expect("create ORCH_BENCH_KEEP");
            fs::canonicalize(dir).expect("ORCH_BENCH_KEEP")
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("orch-bench-audit-")
                .tempdir()
                .expect("temp dir");
            let p = t.path().to_path_buf();
            _tmp = t;
            p
        }
    };
    println!("   working under {}", base.display());
    let started = Instant::now();
    println!("\n== audit of {keys} keys in one account/region");
    let emulator = Emulator::start(&tools.python);
    make_estate(
        &tools,
        &emulator,
        &base.join("estate"),
        keys,
        (ACCOUNT_ID, REGION),
        false,
        timeout,
    );
    let root = base.join("audit");
    tree(&root, &emulator.endpoint);
    println!(
        "   {:<12} {:>7} {:>10} {:>14} {:>13} {:>6} {:>9} {:>5} {:>9}",
        "run",
        "wall s",
        "orch CPU-s",
        "emulator CPU-s",
        "others CPU-s",
        "calls",
        "calls/key",
        "exit",
        "findings"
    );
    let mut checks: Vec<(bool, String)> = Vec::new();
    let mut runs = Vec::new();
    for round in 1..=rounds {
        runs.push(audit(
            &orch,
            &root,
            &format!("audit-{round}.json"),
            &emulator,
            timeout,
        ));
    }
    let markdown = audit(&orch, &root, "audit.md", &emulator, timeout);
    for r in runs.iter().chain(std::iter::once(&markdown)) {
        println!(
            "   {:<12} {:>7.1} {:>10.1} {:>14.1} {:>13.1} {:>6} {:>9.2} {:>5} {:>9}",
            r.name,
            r.wall,
            r.cpu,
            r.emulator_cpu,
            r.others_cpu,
            r.calls.map_or("-".into(), |c| c.to_string()),
            r.calls.map_or(f64::NAN, |c| c as f64 / keys as f64),
            r.exit,
            r.findings.map_or("-".into(), |f| f.to_string()),
        );
    }
    for r in &runs {
        checks.push((
            r.exit == 2,
            format!("{}: exit {} (2: findings)", r.name, r.exit),
        ));
        checks.push((
            r.keys_read == Some(keys as u64),
            format!("{}: {:?} of {keys} keys read", r.name, r.keys_read),
        ));
        checks.push((
            r.findings == Some(2 * keys),
            format!(
                "{}: {:?} findings, 2 per key (unmanaged-key, rotation-off)",
                r.name, r.findings
            ),
        ));
        let per_key = r.calls.map_or(f64::INFINITY, |c| c as f64 / keys as f64);
        checks.push((
            per_key <= MAX_CALLS_PER_KEY,
            format!(
                "{}: {per_key:.2} API calls per key (at most {MAX_CALLS_PER_KEY})",
                r.name
            ),
        ));
    }
    let md = fs::read_to_string(root.join("audit.md")).unwrap_or_default();
    let chars = md.chars().count();
    checks.push((
        markdown.exit == 2 && chars > 0 && chars <= GITHUB_LIMIT,
        format!(
            "audit.md: exit {}, {chars} characters (GitHub takes {GITHUB_LIMIT}){}",
            markdown.exit,
            if md.contains("**Cut to fit: ") {
                ", cut to fit"
            } else {
                ""
            }
        ),
    ));
    println!("\n== checks");
    for (ok, text) in &checks {
        println!("   {} {text}", verdict(*ok));
    }
    println!(
        "\nbench took {:.0} s; load average at the end: {}",
        started.elapsed().as_secs_f64(),
        loadavg()
    );
}

fn number_env(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| fail(&format!("{name}={text:?} is not a number"))),
        Err(_) => default,
    }
}

/// `ROOT/live`: the one account (reached through the role brownfield.py uses) in one region, no
/// node, its `sandbox` profile on the emulator.
fn tree(root: &Path, endpoint: &str) {
    let live = root.join("live");
    write(
        &live,
        "orch.yaml",
        &format!("backend: {{type: local}}\nprofiles:\n  sandbox: {{endpoint: \"{endpoint}\"}}\n"),
    );
    write(
        &live,
        "prod/account.yaml",
        &format!(
            "account_id: \"{ACCOUNT_ID}\"\nenvironment: prod\nrole_arn: arn:aws:iam::{ACCOUNT_ID}:role/orch-brownfield\n\
             regions: [{REGION}]\n"
        ),
    );
}

/// One measured `orch audit`, and what its JSON report says (nothing for a Markdown run but
/// the exit code).
struct Run {
    name: String,
    wall: f64,
    cpu: f64,
    emulator_cpu: f64,
    others_cpu: f64,
    exit: i32,
    calls: Option<u64>,
    keys_read: Option<u64>,
    findings: Option<usize>,
}

/// `orch --profile sandbox audit --report ROOT/NAME`, its stderr kept in ROOT/NAME.stderr.
fn audit(orch: &Path, root: &Path, name: &str, emulator: &Emulator, timeout: Duration) -> Run {
    let report = root.join(name);
    let mut cmd = orch_command(orch, root, &["--profile", "sandbox", "audit"], &report);
    cmd.stdout(Stdio::null())
        .stderr(fs::File::create(root.join(format!("{name}.stderr"))).expect("stderr file"));
    settle();
    let cpu_before = children_cpu();
    let emulator_before = emulator.cpu();
    let busy_before = machine_busy();
    let (exit, wall) = run(cmd, timeout, &format!("orch audit --report {name}"));
    let cpu = children_cpu() - cpu_before;
    let emulator_cpu = emulator.cpu() - emulator_before;
    let others_cpu = (machine_busy() - busy_before - cpu - emulator_cpu).max(0.0);
    let json: Option<Value> = name
        .ends_with(".json")
        .then(|| fs::read_to_string(&report).ok())
        .flatten()
        .and_then(|t| serde_json::from_str(&t).ok());
    Run {
        name: name.to_string(),
        wall,
        cpu,
        emulator_cpu,
        others_cpu,
        exit,
        calls: json.as_ref().and_then(|j| {
            j["calls"]
                .as_object()
                .map(|o| o.values().filter_map(Value::as_u64).sum())
        }),
        keys_read: json.as_ref().and_then(|j| j["keys_read"].as_u64()),
        findings: json
            .as_ref()
            .and_then(|j| j["findings"].as_array().map(Vec::len)),
    }
}
