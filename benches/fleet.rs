//! Fleet-scale benchmark of the `orch` binary (`cargo bench --bench fleet`).
//!
//! Generates synthetic `live/` trees of about 100, 1,000 and 10,000 nodes (replicas synthesized
//! by `replicas:` included), then times, per size, as separate processes:
//! - `orch validate`: load + validate + DAG;
//! - `orch render --all` #1, on a fresh `.orch/` (every file written);
//! - `orch render --all` #2, again, nothing changed (every file unchanged);
//!
//! and the peak RSS of each (via `/usr/bin/time -f %M`). Prints a table and PASS/MISS against
//! the 10,000-node targets: load+validate+DAG < 1 s, render < 3 s, peak memory < 500 MB.
//!
//! Environment knobs:
//! - `ORCH_BENCH_SIZES=100,1000`: sizes to run (default 100,1000,10000);
//! - `ORCH_BENCH_REPS=3`: repetitions for every size (default 5, and 3 at >= 10,000);
//! - `ORCH_BENCH_KEEP=DIR`: generate the trees under DIR and keep them (for profiling).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const TARGET_VALIDATE: Duration = Duration::from_secs(1);
const TARGET_RENDER: Duration = Duration::from_secs(3);
const TARGET_RSS_MB: f64 = 500.0;
const TARGET_SIZE: usize = 10_000;

const REGION_POOL: &[&str] = &[
    "us-east-1",
    "eu-west-1",
    "ap-southeast-2",
    "us-west-2",
    "eu-central-1",
    "ap-northeast-1",
    "us-east-2",
    "eu-west-2",
    "ca-central-1",
    "ap-south-1",
    "sa-east-1",
    "eu-north-1",
];
const ENVIRONMENTS: &[&str] = &["prod", "staging", "dev", "analytics", "shared"];

fn main() {
    // `cargo bench` passes `--bench`; a filter argument, if any, is ignored.
    let orch = PathBuf::from(env!("CARGO_BIN_EXE_orch"));
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        eprintln!(
            "error: /usr/bin/time is needed to measure peak memory (GNU time, `-f %M`).\n\
             Install it with `apt-get install time` (Debian/Ubuntu) or `dnf install time`."
        );
        std::process::exit(2);
    }
    let sizes: Vec<usize> = std::env::var("ORCH_BENCH_SIZES")
        .ok()
        .map(|s| {
            s.split(',')
                .map(|n| {
                    n.trim()
                        .replace('_', "")
                        .parse()
                        .expect("ORCH_BENCH_SIZES: numbers")
                })
                .collect()
        })
        .unwrap_or_else(|| vec![100, 1_000, 10_000]);
    let reps_override: Option<usize> = std::env::var("ORCH_BENCH_REPS")
        .ok()
        .map(|s| s.parse().expect("ORCH_BENCH_REPS: a number"));

    print_machine(&orch);

    let keep = std::env::var_os("ORCH_BENCH_KEEP").map(PathBuf::from);
    let _tmp; // lives until the end of main
    let base = match &keep {
        Some(dir) => {
            fs::create_dir_all(dir).expect("create ORCH_BENCH_KEEP");
            dir.clone()
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("orch-bench-")
                .tempdir()
                .expect("temp dir");
            let p = t.path().to_path_buf();
            _tmp = t;
            p
        }
    };

    let mut rows = Vec::new();
    let mut trash_dirs = Vec::new();
    for &size in &sizes {
        let root = base.join(format!("fleet-{size}"));
        if root.exists() {
            // Kept from an earlier run: moved aside now and deleted at the end (see `measure`).
            let trash = base.join(format!(".trash-{size}-{}", std::process::id()));
            fs::rename(&root, &trash).expect("move the old tree aside");
            trash_dirs.push(trash);
        }
        let live = root.join("live");
        let t0 = Instant::now();
        let generated = generate(&live, size);
        println!(
            "\n== {size}: generated {} files ({} accounts, {} planned nodes) in {:.2?} under {}",
            generated.files,
            generated.accounts,
            generated.nodes,
            t0.elapsed(),
            live.display()
        );
        let reps = reps_override.unwrap_or(if size >= 10_000 { 3 } else { 5 });
        let row = measure(&orch, time, &live, size, reps);
        rows.push(row);
    }

    print_table(&rows);
    println!("load average at the end: {}", loadavg());
    for t in trash_dirs {
        let _ = fs::remove_dir_all(t);
    }
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

// ---------------------------------------------------------------------------------------------
// Measurement

struct Sample {
    wall: Duration,
    rss_kb: u64,
    user: f64,
    sys: f64,
    stdout: String,
}

struct Stats {
    median: Duration,
    min: Duration,
    peak_rss_kb: u64,
    /// CPU seconds (user, system) of the median run.
    user: f64,
    sys: f64,
}

impl Stats {
    fn of(samples: &[Sample]) -> Stats {
        let mut sorted: Vec<&Sample> = samples.iter().collect();
        sorted.sort_by_key(|s| s.wall);
        let median = sorted[sorted.len() / 2];
        Stats {
            median: median.wall,
            min: sorted[0].wall,
            peak_rss_kb: samples.iter().map(|s| s.rss_kb).max().unwrap_or(0),
            user: median.user,
            sys: median.sys,
        }
    }
}

struct Row {
    size: usize,
    nodes: usize,
    /// Time to create as many directories and files as render #1 writes, with plain
    /// `fs::write`: the file system's floor under a first render, measured just before it.
    fs_floor: Duration,
    fs_files: usize,
    summary: String,
    validate: Stats,
    render_first: Stats,
    render_second: Stats,
}

/// Runs `orch --no-color --live LIVE ARGS...` under `/usr/bin/time -f "%M %U %S"` (peak RSS in
/// KB, user and system CPU seconds); the wall time is measured here. Panics on failure.
fn run(orch: &Path, time: &Path, live: &Path, args: &[&str]) -> Sample {
    let rss_file = live.with_file_name("maxrss.txt");
    let start = Instant::now();
    let out = Command::new(time)
        .arg("-o")
        .arg(&rss_file)
        .args(["-f", "%M %U %S"])
        .arg(orch)
        .arg("--no-color")
        .arg("--live")
        .arg(live)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn /usr/bin/time orch");
    let wall = start.elapsed();
    if !out.status.success() {
        panic!(
            "orch {} failed ({}):\n{}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rss_text = fs::read_to_string(&rss_file).expect("read /usr/bin/time output");
    let fields: Vec<&str> = rss_text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let (rss_kb, user, sys) = match fields[..] {
        [m, u, s] => (m.parse().ok(), u.parse().ok(), s.parse().ok()),
        _ => (None, None, None),
    };
    let (Some(rss_kb), Some(user), Some(sys)) = (rss_kb, user, sys) else {
        panic!("unexpected /usr/bin/time output: {rss_text:?}");
    };
    Sample {
        wall,
        rss_kb,
        user,
        sys,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr),
    }
}

fn measure(orch: &Path, time: &Path, live: &Path, size: usize, reps: usize) -> Row {
    let state = live.with_file_name(".orch");

    // Warm-up (page cache, binary), and the node count as orch sees it.
    let warm = run(orch, time, live, &["validate"]);
    let summary = warm
        .stdout
        .lines()
        .find(|l| l.contains(" nodes "))
        .unwrap_or_else(|| panic!("no `N nodes` line in validate output:\n{}", warm.stdout))
        .trim()
        .to_string();
    let nodes = summary
        .split_whitespace()
        .zip(summary.split_whitespace().skip(1))
        .find(|(_, w)| *w == "nodes")
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the node count from {summary:?}"));
    println!("   orch validate: {summary}");

    let validate: Vec<Sample> = (0..reps)
        .map(|_| run(orch, time, live, &["validate"]))
        .collect();

    let (fs_floor, fs_files) = fs_floor(&live.with_file_name(".fs-floor"), nodes);
    println!(
        "   file-system floor: {fs_files} files in {nodes} new directories take {} s with plain fs::write",
        secs(fs_floor)
    );

    let mut first = Vec::new();
    let mut second = Vec::new();
    for i in 0..reps {
        // A fresh .orch for every first render. The used one is moved aside, not deleted: on
        // ext4, creating ~70,000 files right after deleting as many makes inode allocation scan
        // the recently deleted inodes (`recently_deleted` in the kernel), which at 10,000 nodes
        // costs tens of seconds of system time and would measure the file system, not orch.
        // Everything is deleted when the bench exits.
        if state.exists() {
            fs::rename(&state, live.with_file_name(format!(".orch-used-{i}")))
                .expect("move .orch aside");
        }
        let a = run(orch, time, live, &["render", "--all"]);
        let b = run(orch, time, live, &["render", "--all"]);
        if i == 0 {
            for (label, s) in [("render #1", &a), ("render #2", &b)] {
                if let Some(line) = s.stdout.lines().find(|l| l.starts_with("rendered")) {
                    println!("   {label}: {}", line.trim());
                }
            }
        }
        first.push(a);
        second.push(b);
    }
    let row = Row {
        size,
        nodes,
        fs_floor,
        fs_files,
        summary,
        validate: Stats::of(&validate),
        render_first: Stats::of(&first),
        render_second: Stats::of(&second),
    };
    println!(
        "   validate {} | render #1 {} | render #2 {}",
        fmt_stats(&row.validate),
        fmt_stats(&row.render_first),
        fmt_stats(&row.render_second)
    );
    row
}

/// Creates `nodes` directories (account/region/node deep) of 7 files of 1-2 KB each, like a first
/// render, and returns how long that took. Left in place until the bench exits (see `measure`).
fn fs_floor(dir: &Path, nodes: usize) -> (Duration, usize) {
    let body = "# padding\n".repeat(150);
    let names = [
        "versions.tf",
        "providers.tf",
        "backend.tf",
        "variables.tf",
        "main.tf",
        "outputs.tf",
        "terraform.tfvars.json",
    ];
    let start = Instant::now();
    for n in 0..nodes {
        let d = dir
            .join(format!("a{}", n % 20))
            .join(format!("r{}", (n / 20) % 4))
            .join(format!("n{n}"));
        fs::create_dir_all(&d).expect("mkdir");
        for name in names {
            fs::write(d.join(name), &body).expect("write");
        }
    }
    (start.elapsed(), nodes * names.len())
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn fmt_stats(s: &Stats) -> String {
    format!(
        "median {} s, min {} s, peak {:.1} MB",
        secs(s.median),
        secs(s.min),
        mb(s.peak_rss_kb)
    )
}

fn print_table(rows: &[Row]) {
    println!("\nwall time in seconds (median / min), peak RSS in MB (max over repetitions)\n");
    println!(
        "{:>6} {:>6} | {:>15} | {:>15} | {:>15} | {:>8} {:>8} {:>8}",
        "size", "nodes", "validate", "render #1", "render #2", "MB val", "MB r#1", "MB r#2"
    );
    println!("{}", "-".repeat(98));
    for r in rows {
        let cell = |s: &Stats| format!("{} / {}", secs(s.median), secs(s.min));
        println!(
            "{:>6} {:>6} | {:>15} | {:>15} | {:>15} | {:>8.1} {:>8.1} {:>8.1}",
            r.size,
            r.nodes,
            cell(&r.validate),
            cell(&r.render_first),
            cell(&r.render_second),
            mb(r.validate.peak_rss_kb),
            mb(r.render_first.peak_rss_kb),
            mb(r.render_second.peak_rss_kb),
        );
    }
    println!(
        "\nCPU seconds of the median run, user + system (system is mostly file-system work)\n"
    );
    println!(
        "{:>6} {:>6} | {:>15} | {:>15} | {:>15} | {:>18}",
        "size", "nodes", "validate", "render #1", "render #2", "fs floor (wall s)"
    );
    for r in rows {
        let cpu = |s: &Stats| format!("{:.2} + {:.2}", s.user, s.sys);
        println!(
            "{:>6} {:>6} | {:>15} | {:>15} | {:>15} | {:>18}",
            r.size,
            r.nodes,
            cpu(&r.validate),
            cpu(&r.render_first),
            cpu(&r.render_second),
            secs(r.fs_floor)
        );
    }
    println!();
    for r in rows {
        println!("  {:>6}: {}", r.size, r.summary);
    }

    let Some(r) = rows.iter().find(|r| r.size == TARGET_SIZE) else {
        println!("\n(targets apply at {TARGET_SIZE} nodes, which was not run)");
        return;
    };
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
    let render_worst = r.render_first.median.max(r.render_second.median);
    let peak = mb(r
        .validate
        .peak_rss_kb
        .max(r.render_first.peak_rss_kb)
        .max(r.render_second.peak_rss_kb));
    println!("\ntargets at {} nodes:", r.nodes);
    println!(
        "  {}  load+validate+DAG < {} s: median {} s",
        verdict(r.validate.median < TARGET_VALIDATE),
        TARGET_VALIDATE.as_secs(),
        secs(r.validate.median)
    );
    println!(
        "  {}  render < {} s: first {} s, second {} s (medians)",
        verdict(render_worst < TARGET_RENDER),
        TARGET_RENDER.as_secs(),
        secs(r.render_first.median),
        secs(r.render_second.median)
    );
    println!(
        "        (file-system floor for render #1 here: {} s to create {} files single-threaded)",
        secs(r.fs_floor),
        r.fs_files
    );
    println!(
        "  {}  peak memory < {} MB: {:.1} MB",
        verdict(peak < TARGET_RSS_MB),
        TARGET_RSS_MB,
        peak
    );
}

fn print_machine(orch: &Path) {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| {
            l.starts_with("model name") || l.starts_with("Model") || l.starts_with("cpu model")
        })
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .map(|l| l.trim_start_matches("MemTotal:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    println!("machine: {nproc} CPUs (nproc), {model}, MemTotal {mem}");
    println!(
        "load average at the start: {} (figures are noisy when it exceeds {nproc})",
        loadavg()
    );
    println!("binary:  {}", orch.display());
}

// ---------------------------------------------------------------------------------------------
// Synthetic fleet

struct Generated {
    files: usize,
    accounts: usize,
    nodes: usize,
}

struct AccountPlan {
    name: String,
    id: String,
    env: &'static str,
    regions: Vec<&'static str>,
}

impl AccountPlan {
    fn role(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:role/{name}", self.id)
    }
}

/// What a slot (account, region) offers consumers: keys and replicas located there.
#[derive(Default)]
struct Slot {
    keys: Vec<String>,
    grants: Vec<String>,
}

struct Writer {
    files: usize,
}

impl Writer {
    fn yaml(&mut self, path: &Path, value: &Value) {
        fs::create_dir_all(path.parent().unwrap()).expect("mkdir");
        let text = serde_yaml::to_string(value).expect("YAML serializes");
        fs::write(path, text).expect("write YAML");
        self.files += 1;
    }
}

/// Writes a realistic tree of about `target` nodes (counting synthesized replicas) under `live`.
///
/// Shape: 10-20 accounts (10 at 100 nodes, 15 at 1,000, 20 at 10,000) of rotating environments,
/// 4 enabled regions each, `defaults:` at fleet, account and region level. Nodes are laid out in
/// rounds over every (account, region) slot with a 12-step mix: 4 multi-region keys with
/// `replicas: "*"` (4 nodes each), 2 with a replica list, 1 single-region key (symmetric, RSA,
/// HMAC or ECC), 2 grants, 1 s3-bucket on a key or replica of the slot, 1 key-access on a key of
/// another account, 1 s3-bucket that `depends_on` a grant. About 3 nodes in 4 are keys or
/// replicas. Every 25th `"*"` key has an explicit `replica_of` node refining one replica.
fn generate(live: &Path, target: usize) -> Generated {
    let mut w = Writer { files: 0 };
    let n_accounts = ((5.0 * (target.max(10) as f64).log10()).round() as usize).clamp(10, 20);

    w.yaml(
        &live.join("orch.yaml"),
        &json!({
            "terraform": {"binary": "terraform", "aws_provider": ">= 5.0, < 7.0"},
            "parallelism": 8,
            "backend": {"type": "local"},
            "profiles": {"sandbox": {"endpoint": "http://127.0.0.1:5000"}},
            "defaults": {
                "deletion_window_days": 30,
                "rotation": {"enabled": true},
                "tags": {"ManagedBy": "orch", "CostCenter": "platform", "Repository": "acme/kms-fleet"},
            },
            "waves": [
                {"name": "canary", "match": ["dev-*/**"]},
                {"name": "staging", "match": ["staging-*/**"]},
                {"name": "prod-primary", "match": ["prod-*/us-east-1/**"]},
                {"name": "rest", "match": ["**"]},
            ],
        }),
    );

    let accounts: Vec<AccountPlan> = (0..n_accounts)
        .map(|a| {
            let env = ENVIRONMENTS[a % ENVIRONMENTS.len()];
            AccountPlan {
                name: format!("{env}-{a:02}"),
                id: format!("{}", 100_000_000_000u64 + 7_919 * a as u64 + 11),
                env,
                regions: (0..4)
                    .map(|j| REGION_POOL[(a * 3 + j) % REGION_POOL.len()])
                    .collect(),
            }
        })
        .collect();

    for acct in &accounts {
        let mut defaults = json!({
            "tags": {"Environment": acct.env, "Owner": format!("team-{}", acct.name)},
            "key_administrators": [acct.role("security-admin"), acct.role("platform-admin")],
            "prevent_destroy": acct.env == "prod",
        });
        if acct.env != "prod" {
            defaults["deletion_window_days"] = json!(7);
        }
        w.yaml(
            &live.join(&acct.name).join("account.yaml"),
            &json!({
                "account_id": acct.id,
                "environment": acct.env,
                "role_arn": acct.role("orch-deployer"),
                "regions": acct.regions,
                "defaults": defaults,
            }),
        );
        for (j, region) in acct.regions.iter().enumerate() {
            let residency = region.split('-').next().unwrap().to_string();
            let mut defaults = json!({"tags": {"DataResidency": residency}});
            if j == 0 {
                defaults["rotation"] = json!({"enabled": true, "period_days": 365});
            }
            w.yaml(
                &live.join(&acct.name).join(region).join("region.yaml"),
                &json!({"defaults": defaults}),
            );
        }
    }

    let mut state: BTreeMap<(usize, usize), Slot> = BTreeMap::new();
    let mut account_keys: Vec<Vec<String>> = vec![Vec::new(); n_accounts];
    let mut nodes = 0usize;
    let mut seq = 0usize;
    let mut star_keys = 0usize;

    // Groups go round-robin over accounts; each account walks the 12-step mix from its own offset.
    for g in 0.. {
        if nodes >= target {
            break;
        }
        let a = g % n_accounts;
        let round = g / n_accounts;
        let acct = &accounts[a];
        seq += 1;
        let mut step = (round + a) % 12;
        // Primaries mostly live in the account's first two ("home") regions; consumers go to a
        // region where the account has a key or replica, starting from a rotating one.
        let home = if seq.is_multiple_of(5) {
            2 + seq % 2
        } else {
            round % 2
        };
        let with_key = (0..4)
            .map(|k| (round + k) % 4)
            .find(|&r| state.get(&(a, r)).is_some_and(|s| !s.keys.is_empty()));
        let needs_local_key = matches!(step, 7 | 8 | 9 | 11);
        if needs_local_key && with_key.is_none() {
            step = 6;
        }
        let r = match step {
            7 | 8 | 9 | 11 => with_key.unwrap(),
            10 => (round + 1) % 4,
            _ => home,
        };
        let region = acct.regions[r];
        let dir = live.join(&acct.name).join(region);
        let slot = state.entry((a, r)).or_default();
        {
            let other = (a + 1 + round % (n_accounts - 1)) % n_accounts;
            if step == 10 && account_keys[other].is_empty() {
                step = 6;
            }
            match step {
                0..=5 => {
                    let name = format!(
                        "k{seq:05}-{}",
                        ["data", "app", "logs", "backup", "secrets", "events"][step]
                    );
                    let addr = format!("{}/{}/{}", acct.name, region, name);
                    let others: Vec<&str> = acct
                        .regions
                        .iter()
                        .copied()
                        .filter(|x| *x != region)
                        .collect();
                    let (replicas, replica_regions): (Value, Vec<&str>) = if step < 4 {
                        (json!("*"), others.clone())
                    } else {
                        let list: Vec<&str> = others.iter().copied().take(1 + seq % 2).collect();
                        (json!(list), list)
                    };
                    let mut node = json!({
                        "description": format!("{} {} data for {}", acct.env, name, acct.name),
                        "aliases": [format!("{}/{}", acct.name, name)],
                        "multi_region": true,
                        "replicas": replicas,
                    });
                    if seq.is_multiple_of(3) {
                        node["access"] = json!({
                            "read-data": [acct.role("app"), acct.role("reporting")],
                            "write-data": [acct.role("app")],
                        });
                        node["services"] =
                            json!([{"service": "s3", "capabilities": ["read-data", "write-data"]}]);
                    } else {
                        node["key_users"] = json!([acct.role(&format!("svc-{}", seq % 17))]);
                    }
                    if seq.is_multiple_of(4) {
                        node["tags"] = json!({"DataCategory": "confidential"});
                    }
                    w.yaml(&dir.join(&name).join("node.yaml"), &node);
                    nodes += 1 + replica_regions.len();
                    slot.keys.push(addr.clone());
                    account_keys[a].push(addr.clone());
                    for rr in &replica_regions {
                        let ri = acct.regions.iter().position(|x| x == rr).unwrap();
                        state
                            .entry((a, ri))
                            .or_default()
                            .keys
                            .push(format!("{}/{}/{}", acct.name, rr, name));
                    }
                    if step < 4 {
                        star_keys += 1;
                        if star_keys.is_multiple_of(25) {
                            let rr = others[star_keys % others.len()];
                            w.yaml(
                                &live.join(&acct.name).join(rr).join(&name).join("node.yaml"),
                                &json!({
                                    "replica_of": addr,
                                    "description": format!("{name} replica in {rr}"),
                                    "tags": {"Replica": "explicit"},
                                }),
                            );
                        }
                    }
                }
                6 => {
                    let (spec, usage, suffix) = match seq % 4 {
                        0 => ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "enc"),
                        1 => ("RSA_2048", "SIGN_VERIFY", "sign"),
                        2 => ("HMAC_256", "GENERATE_VERIFY_MAC", "mac"),
                        _ => ("ECC_NIST_P256", "SIGN_VERIFY", "ecsign"),
                    };
                    let name = format!("k{seq:05}-{suffix}");
                    let addr = format!("{}/{}/{}", acct.name, region, name);
                    w.yaml(
                        &dir.join(&name).join("node.yaml"),
                        &json!({
                            "description": format!("{spec} key {name}"),
                            "aliases": [format!("{}/{}", acct.name, name)],
                            "spec": spec,
                            "usage": usage,
                            "access": {
                                "read-data": [acct.role("verifier"), acct.role("auditor")],
                                "write-data": [acct.role("signer")],
                            },
                        }),
                    );
                    nodes += 1;
                    let slot = state.get_mut(&(a, r)).unwrap();
                    slot.keys.push(addr.clone());
                    account_keys[a].push(addr);
                }
                7 | 8 => {
                    // A grant must live in its key's account and region; the grantee is a role of
                    // another account.
                    let key = slot.keys[seq % slot.keys.len()].clone();
                    let name = format!("g{seq:05}-grant");
                    let grantee = &accounts[other];
                    let mut node = json!({
                        "kind": "grant",
                        "key": key,
                        "grantee": grantee.role("reader"),
                        "operations": ["Decrypt", "DescribeKey"],
                    });
                    if step == 8 {
                        node["encryption_context_equals"] = json!({"purpose": "reporting"});
                    }
                    w.yaml(&dir.join(&name).join("node.yaml"), &node);
                    nodes += 1;
                    slot.grants
                        .push(format!("{}/{}/{}", acct.name, region, name));
                }
                9 | 11 => {
                    let key = slot.keys[(seq * 7) % slot.keys.len()].clone();
                    let name = format!("b{seq:05}-bucket");
                    let mut node = json!({
                        "kind": "s3-bucket",
                        "key": key,
                        "bucket": format!("acme-{}-{}-{}", acct.name, region, name),
                    });
                    if step == 11 {
                        if let Some(g) = slot.grants.last() {
                            node["depends_on"] = json!([g]);
                        }
                        node["versioning"] = json!(false);
                    }
                    w.yaml(&dir.join(&name).join("node.yaml"), &node);
                    nodes += 1;
                }
                10 => {
                    let keys = &account_keys[other];
                    let key = keys[seq % keys.len()].clone();
                    let name = format!("a{seq:05}-access");
                    let mut node = json!({
                        "kind": "key-access",
                        "key": key,
                        "roles": [acct.role("reporting"), acct.role(&format!("etl-{}", seq % 5))],
                        "capabilities": ["read-config", "read-data"],
                    });
                    if let Some(local) = account_keys[a].last() {
                        node["depends_on"] = json!([local]);
                    }
                    w.yaml(&dir.join(&name).join("node.yaml"), &node);
                    nodes += 1;
                }
                _ => unreachable!(),
            }
        }
    }
    Generated {
        files: w.files,
        accounts: n_accounts,
        nodes,
    }
}
