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
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{
    make_estate, measure_orch, number_env, one_account_tree, preflight, print_checks,
    print_machine, work_dir, Emulator, Measured,
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
    let (base, _tmp) = work_dir("orch-bench-audit-");
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
    one_account_tree(&root, &emulator.endpoint, (ACCOUNT_ID, REGION), "");
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
            "   {:<12} {:>7.1} {:>10.1} {:>14.1} {:>13.1} {:>6} {:>9} {:>5} {:>9}",
            r.name,
            r.run.wall,
            r.run.cpu,
            r.run.emulator_cpu,
            r.run.others_cpu,
            shown(r.calls),
            r.calls
                .map_or("-".into(), |c| format!("{:.2}", c as f64 / keys as f64)),
            r.run.exit,
            shown(r.findings),
        );
    }
    for r in &runs {
        checks.push((
            r.run.exit == 2,
            format!("{}: exit {} (2: findings)", r.name, r.run.exit),
        ));
        checks.push((
            r.keys_read == Some(keys as u64),
            format!("{}: {} of {keys} keys read", r.name, shown(r.keys_read)),
        ));
        checks.push((
            r.findings == Some(2 * keys),
            format!(
                "{}: {} findings, 2 per key (unmanaged-key, rotation-off)",
                r.name,
                shown(r.findings)
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
        markdown.run.exit == 2 && chars > 0 && chars <= GITHUB_LIMIT,
        format!(
            "audit.md: exit {}, {chars} characters (GitHub takes {GITHUB_LIMIT}){}",
            markdown.run.exit,
            if md.contains("**Cut to fit: ") {
                ", cut to fit"
            } else {
                ""
            }
        ),
    ));
    print_checks(&checks, started);
}

/// A figure of a JSON report, or `-` where the report has none.
fn shown<T: ToString>(figure: Option<T>) -> String {
    figure.map_or("-".into(), |f| f.to_string())
}

/// One measured `orch audit`, and what its JSON report says (nothing for a Markdown run but
/// the exit code).
struct Run {
    name: String,
    run: Measured,
    calls: Option<u64>,
    keys_read: Option<u64>,
    findings: Option<usize>,
}

/// `orch --profile sandbox audit --report ROOT/NAME`.
fn audit(orch: &Path, root: &Path, name: &str, emulator: &Emulator, timeout: Duration) -> Run {
    let run = measure_orch(orch, root, name, &["audit".to_string()], emulator, timeout);
    let json = &run.report;
    Run {
        name: name.to_string(),
        calls: json["calls"]
            .as_object()
            .map(|o| o.values().filter_map(Value::as_u64).sum()),
        keys_read: json["keys_read"].as_u64(),
        findings: json["findings"].as_array().map(Vec::len),
        run,
    }
}
