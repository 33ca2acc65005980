//! Layout benchmark of the `orch` binary (`cargo bench --bench layouts`): `layout: per-node`
//! against `layout: stacks` on the same fleets of 20, 200 and 1,000 nodes, with real terraform and
//! the hashicorp/aws provider against the local emulator (scripts/emulator.py).
//!
//! A fleet is made of groups of 10 nodes, each group in one account (round robin over 2, 4 or 5
//! accounts, all reached through assume_role, regions us-east-1 and eu-west-1): 4 keys in
//! us-east-1 (in an account's first group the fourth is an S3 bucket instead), a multi-region key
//! there with its replica in eu-west-1, 2 keys in eu-west-1, a grant on the group's first key and
//! a key-access to a key of the next group, which lives in the next account (so accounts reach
//! each other both ways, the case stacks split by tier). In stacks that is four stacks per
//! account (keys per region, the replicas, the consumers), of up to 100 nodes at 1,000 nodes.
//!
//! For each fleet size and layout, on a fresh emulator and a fresh tree: `orch plan`, `orch apply
//! --auto-approve`, then `orch plan` again (the re-plan of the applied fleet, which must show no
//! changes), then `orch drift` (a refresh-only plan of the same fleet, which must find every node
//! in sync; its CPU against the re-plan's is a goal line). Reported per run, in one table: CPU seconds per node (orch + terraform + providers:
//! getrusage(RUSAGE_CHILDREN) of this process around the run, so every process orch started and
//! reaped counts, and nothing else does), wall time, and the peak memory of orch's whole process
//! tree (the sum of the proportional set size, Pss of /proc/PID/smaps_rollup, over orch and every
//! process below it, sampled every 0.25 s: shared pages such as one binary's text mapped by many
//! processes count once, which a sum of RSS would not). The sampler also splits the CPU by what
//! ran (terraform init, plan, apply, ... and the providers each of them started, by the last
//! sample of each process: a lower bound) for the profile lines under the table.
//!
//! The per-node layout costs about 8 CPU-s per node and run, the same at any fleet size (every
//! node is its own root), so on 200 and 1,000 nodes it runs on a sample: one whole group (`g010`,
//! `g050`: not an account's first, which has the bucket) `--with-deps`, which adds the key its
//! key-access names, 11 nodes. The table says so, and scales the sample's wall time by nodes for
//! the whole fleet. `ORCH_BENCH_FULL=1` runs every node instead.
//!
//! Knobs: `ORCH_BENCH_SIZES=20,200` (default 20,200,1000), `ORCH_BENCH_LAYOUTS=stacks` (default
//! both), `ORCH_BENCH_KEEP=DIR` keeps the trees (logs under DIR/*/.orch/logs). Needs terraform on
//! PATH, TF_CLI_CONFIG_FILE and ORCH_TOOLS_VENV: `scripts/just bench-layouts` after `scripts/just
//! setup`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{
    children_cpu, fail, loadavg, machine_busy, orch_command, preflight, print_machine, settle,
    verdict, work_dir, write, Emulator, Tools,
};

const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
/// Goals of issue 9, checked at the end.
const GOAL_RATIO_AT_200: f64 = 10.0;
const GOAL_PLAN_1000_WALL: f64 = 300.0;
const GOAL_PEAK_MB: f64 = 4096.0;
/// `orch drift` of an applied fleet against its re-plan, in CPU-s (issue 17).
const GOAL_DRIFT_RATIO: f64 = 1.2;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Layout {
    PerNode,
    Stacks,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::PerNode => "per-node",
            Layout::Stacks => "stacks",
        }
    }
}

fn main() {
    let orch = PathBuf::from(env!("CARGO_BIN_EXE_orch"));
    let sizes = list_env("ORCH_BENCH_SIZES", "20,200,1000", |s| {
        s.parse::<usize>().ok().filter(|n| *n >= 20 && n % 10 == 0)
    });
    let layouts = list_env("ORCH_BENCH_LAYOUTS", "per-node,stacks", |s| match s {
        "per-node" => Some(Layout::PerNode),
        "stacks" => Some(Layout::Stacks),
        _ => None,
    });
    let full = std::env::var_os("ORCH_BENCH_FULL").is_some_and(|v| v == "1");
    let tools = preflight();
    print_machine(&orch, Some(&tools));
    let (base, _tmp) = work_dir("orch-bench-layouts-");
    let started = Instant::now();
    let mut results = Vec::new();
    // Stacks first: on a busy machine the run may be cut short, and its figures are the new ones.
    for layout in [Layout::Stacks, Layout::PerNode] {
        if !layouts.contains(&layout) {
            continue;
        }
        for &size in &sizes {
            let root = base.join(format!("{}-{size}", layout.name()));
            results.push(bench_fleet(&orch, &tools, &root, size, layout, full));
        }
    }
    print_table(&results);
    goals(&results);
    println!(
        "\nbench took {:.0} s; load average at the end: {}",
        started.elapsed().as_secs_f64(),
        loadavg()
    );
}

/// A comma-separated list from the environment (or `default`), every item checked by `parse`.
fn list_env<T>(name: &str, default: &str, parse: impl Fn(&str) -> Option<T>) -> Vec<T> {
    let text = std::env::var(name).unwrap_or_else(|_| default.to_string());
    text.split(',')
        .map(|item| {
            parse(item.trim()).unwrap_or_else(|| {
                fail(&format!(
                    "{name}={text:?}: {:?} is not valid (default {default})",
                    item.trim()
                ))
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The fleet

struct Fleet {
    nodes: usize,
    /// Every role a key-access node attaches its policy to: they must exist before the apply.
    roles: Vec<String>,
}

fn account_id(a: usize) -> String {
    format!("1111111111{a:02}")
}

/// Writes `live/` of `size` nodes (a multiple of 10) in `layout`; see the module comment.
fn generate(live: &Path, size: usize, layout: Layout) -> Fleet {
    let groups = size / 10;
    let accounts = match size {
        ..=99 => 2,
        100..=499 => 4,
        _ => 5,
    };
    write(
        live,
        "orch.yaml",
        &format!(
            "{}backend: {{type: local}}\nprofiles:\n  sandbox: {{endpoint: \"http://127.0.0.1:1\"}}\n\
             defaults:\n  deletion_window_days: 7\n  tags: {{ManagedBy: orch, CostCenter: platform}}\n",
            // per-node is the default: the tree is one a per-node user already has.
            match layout {
                Layout::PerNode => "",
                Layout::Stacks => "layout: stacks\n",
            }
        ),
    );
    let mut roles = Vec::new();
    for a in 0..accounts {
        let id = account_id(a);
        write(
            live,
            &format!("acct{a}/account.yaml"),
            &format!(
                "account_id: \"{id}\"\nenvironment: acct{a}\nrole_arn: arn:aws:iam::{id}:role/orch-deployer\n\
                 regions: [{}]\ndefaults:\n  key_administrators: [arn:aws:iam::{id}:role/admin]\n  \
                 tags: {{Environment: acct{a}}}\n",
                REGIONS.join(", ")
            ),
        );
        roles.push(format!("arn:aws:iam::{id}:role/reader"));
    }
    for g in 0..groups {
        let a = g % accounts;
        let (acct, id) = (format!("acct{a}"), account_id(a));
        let users = format!("key_users: [arn:aws:iam::{id}:role/app]\n");
        let node = |region: &str, name: &str, text: String| {
            write(
                live,
                &format!("{acct}/{region}/g{g:03}-{name}/node.yaml"),
                &text,
            );
        };
        for k in 0..4 {
            let text = if k == 3 && g < accounts {
                format!(
                    "kind: s3-bucket\nkey: {acct}/us-east-1/g{g:03}-k2\nbucket: orch-bench-{g:03}\nforce_destroy: true\n"
                )
            } else {
                format!("description: group {g} key {k}\naliases: [{acct}/g{g:03}-k{k}]\n{users}")
            };
            node("us-east-1", &format!("k{k}"), text);
        }
        node(
            "us-east-1",
            "m0",
            format!(
                "description: group {g} multi-region\naliases: [{acct}/g{g:03}-m0]\nmulti_region: true\n\
                 replicas: [eu-west-1]\n{users}"
            ),
        );
        for k in 0..2 {
            node(
                "eu-west-1",
                &format!("e{k}"),
                format!(
                    "description: group {g} eu key {k}\naliases: [{acct}/g{g:03}-e{k}]\n{users}"
                ),
            );
        }
        node(
            "us-east-1",
            "grant",
            format!(
                "kind: grant\nkey: {acct}/us-east-1/g{g:03}-k0\ngrantee: arn:aws:iam::{id}:role/reader\n\
                 operations: [Decrypt, DescribeKey]\n"
            ),
        );
        let next = (g + 1) % groups;
        node(
            "us-east-1",
            "access",
            format!(
                "kind: key-access\nkey: acct{}/us-east-1/g{next:03}-k1\nroles: [arn:aws:iam::{id}:role/reader]\n\
                 capabilities: [read-config, read-data]\n",
                next % accounts
            ),
        );
    }
    // Ten nodes a group, counting the replica orch adds for the multi-region key.
    Fleet {
        nodes: groups * 10,
        roles,
    }
}

/// What a per-node run on this fleet selects: every node, or a sample of whole groups (see the
/// module comment) with what they depend on.
fn selection(size: usize, layout: Layout, full: bool) -> Vec<String> {
    let sample: &[&str] = match (layout, size) {
        (Layout::Stacks, _) => &[],
        _ if full || size <= 20 => &[],
        (_, ..=500) => &["*/*/g010-*"],
        _ => &["*/*/g050-*"],
    };
    if sample.is_empty() {
        vec!["--all".into()]
    } else {
        let mut args: Vec<String> = sample.iter().map(|s| s.to_string()).collect();
        args.push("--with-deps".into());
        args
    }
}

// ---------------------------------------------------------------------------------------------
// One fleet: plan, apply, re-plan

struct Measured {
    phase: &'static str,
    /// Nodes in orch's report (the sample, when sampled).
    nodes: usize,
    /// Terraform roots initialized under .orch/work after the run.
    roots: usize,
    cpu: f64,
    orch_cpu: f64,
    wall: f64,
    peak_mb: f64,
    /// CPU seconds other processes took on this machine meanwhile.
    others_cpu: f64,
    /// Rows whose status is not what the phase should end in ("changes", "ok", "no changes").
    unexpected: Vec<String>,
    exit: i32,
    profile: BTreeMap<String, f64>,
}

struct FleetResult {
    size: usize,
    layout: Layout,
    nodes: usize,
    sampled: bool,
    runs: Vec<Measured>,
}

fn bench_fleet(
    orch: &Path,
    tools: &Tools,
    root: &Path,
    size: usize,
    layout: Layout,
    full: bool,
) -> FleetResult {
    println!("\n== {} fleet of {size} nodes", layout.name());
    let fleet = generate(&root.join("live"), size, layout);
    let emulator = Emulator::start(&tools.python);
    let setup = Command::new(&tools.python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/setup_roles.py"))
        .arg(&emulator.endpoint)
        .args(&fleet.roles)
        .status()
        .unwrap_or_else(|e| fail(&format!("tests/e2e/setup_roles.py: {e}")));
    if !setup.success() {
        fail("tests/e2e/setup_roles.py could not create the consumers' roles");
    }
    let select = selection(size, layout, full);
    let phases: [(&str, &[&str], &str); 4] = [
        ("plan", &["plan"], "changes"),
        ("apply", &["apply", "--auto-approve"], "ok"),
        ("re-plan", &["plan"], "no changes"),
        ("drift", &["drift"], "in sync"),
    ];
    let mut runs = Vec::new();
    for (phase, command, expected) in phases {
        let mut args: Vec<String> = [
            "--profile",
            "sandbox",
            "--endpoint",
            emulator.endpoint.as_str(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(command.iter().map(|s| s.to_string()));
        args.extend(select.iter().cloned());
        let run = run_orch(orch, root, phase, &args, expected);
        println!(
            "   {phase:<8} {} nodes, {} roots: {:.1} CPU-s ({:.2} per node), wall {:.1} s, peak {:.0} MB, \
             others {:.0} CPU-s, exit {}{}\n            {}",
            run.nodes,
            run.roots,
            run.cpu,
            run.cpu / run.nodes.max(1) as f64,
            run.wall,
            run.peak_mb,
            run.others_cpu,
            run.exit,
            if run.unexpected.is_empty() {
                String::new()
            } else {
                format!(", {} unexpected: {}", run.unexpected.len(), run.unexpected[..run.unexpected.len().min(5)].join(", "))
            },
            profile(&run)
        );
        let failed = run.exit != 0;
        runs.push(run);
        if failed {
            println!("   (orch failed: the later phases of this fleet are not run)");
            break;
        }
    }
    FleetResult {
        size,
        layout,
        nodes: fleet.nodes,
        sampled: select[0] != "--all",
        runs,
    }
}

/// Runs `orch --no-color --live ROOT/live ARGS... --report ROOT/PHASE.json` in ROOT, measuring it
/// (see the module comment). orch's stderr is kept as ROOT/PHASE.stderr.
fn run_orch(
    orch: &Path,
    root: &Path,
    phase: &'static str,
    args: &[String],
    expected: &str,
) -> Measured {
    let report_path = root.join(format!("{phase}.json"));
    let mut cmd = orch_command(orch, root, args, &report_path);
    cmd.stdout(Stdio::null())
        .stderr(fs::File::create(root.join(format!("{phase}.stderr"))).expect("stderr file"));
    settle();
    let cpu_before = children_cpu();
    let busy_before = machine_busy();
    let start = Instant::now();
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| fail(&format!("spawn orch: {e}")));
    let sampler = Sampler::start(child.id());
    let status = child
        .wait_with_output()
        .unwrap_or_else(|e| fail(&format!("wait for orch: {e}")))
        .status;
    let wall = start.elapsed().as_secs_f64();
    let cpu = children_cpu() - cpu_before;
    let others_cpu = (machine_busy() - busy_before - cpu).max(0.0);
    let (peak_mb, profile) = sampler.stop();
    let report: Value = fs::read_to_string(&report_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let rows = report["nodes"].as_array().cloned().unwrap_or_default();
    let unexpected = rows
        .iter()
        .filter(|n| n["status"].as_str() != Some(expected))
        .map(|n| {
            format!(
                "{} {}",
                n["address"].as_str().unwrap_or("?"),
                n["status"].as_str().unwrap_or("?")
            )
        })
        .collect();
    Measured {
        phase,
        nodes: rows.len(),
        roots: initialized_roots(&root.join(".orch/work")),
        cpu,
        orch_cpu: report["orch_cpu_seconds"].as_f64().unwrap_or(f64::NAN),
        wall,
        peak_mb,
        others_cpu,
        unexpected,
        exit: status.code().unwrap_or(-1),
        profile,
    }
}

/// Directories under `work` that terraform initialized (they hold `.terraform/`).
fn initialized_roots(work: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![work.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if entry.file_name() == ".terraform" {
                count += 1;
            } else {
                stack.push(entry.path());
            }
        }
    }
    count
}

// ---------------------------------------------------------------------------------------------
// Sampling orch's process tree

/// A thread that samples orch's process tree every 0.25 s: the peak of its summed Pss, and each
/// process's CPU by what it was (see [`kind`]).
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(f64, BTreeMap<String, f64>)>,
}

struct Seen {
    kind: String,
    cpu: f64,
}

impl Sampler {
    fn start(root: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut peak_kb = 0u64;
            let mut seen: HashMap<u32, Seen> = HashMap::new();
            while !flag.load(Ordering::Relaxed) {
                let procs = processes();
                let tree = descendants(root, &procs);
                let mut total_kb = 0;
                for &pid in &tree {
                    total_kb += pss_kb(pid);
                    let Some(p) = procs.get(&pid) else { continue };
                    let entry = seen.entry(pid).or_insert_with(|| Seen {
                        kind: kind(pid, root, &procs),
                        cpu: 0.0,
                    });
                    entry.cpu = entry.cpu.max(p.cpu);
                }
                peak_kb = peak_kb.max(total_kb);
                std::thread::sleep(Duration::from_millis(250));
            }
            let mut profile = BTreeMap::new();
            for s in seen.into_values() {
                *profile.entry(s.kind).or_insert(0.0) += s.cpu;
            }
            (peak_kb as f64 / 1024.0, profile)
        });
        Sampler { stop, thread }
    }

    /// Peak MB of the tree and CPU seconds by kind of process.
    fn stop(self) -> (f64, BTreeMap<String, f64>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the sampler thread")
    }
}

struct Proc {
    ppid: u32,
    cpu: f64,
}

/// Every process: parent and CPU seconds so far, from /proc/PID/stat.
fn processes() -> HashMap<u32, Proc> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut out = HashMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // After "pid (comm) ": state, ppid, ... utime and stime are the 12th and 13th fields.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        out.insert(
            pid,
            Proc {
                ppid: num(1) as u32,
                cpu: (num(11) + num(12)) / hz,
            },
        );
    }
    out
}

/// `root` and every process below it.
fn descendants(root: u32, procs: &HashMap<u32, Proc>) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&pid, p) in procs {
        children.entry(p.ppid).or_default().push(pid);
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c);
        }
        i += 1;
    }
    out
}

fn pss_kb(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// What a process of orch's tree is: `orch`, `terraform <command>`, or `provider (<command>)`
/// for a provider the terraform of that command started.
fn kind(pid: u32, root: u32, procs: &HashMap<u32, Proc>) -> String {
    if pid == root {
        return "orch".into();
    }
    let argv = |pid: u32| -> Vec<String> {
        fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                b.split(|&c| c == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let command = |args: &[String]| {
        args.iter()
            .skip(1)
            .find(|a| !a.starts_with('-'))
            .cloned()
            .unwrap_or_else(|| "?".into())
    };
    let args = argv(pid);
    let program = args
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
        .unwrap_or_default();
    if program.starts_with("terraform-provider") {
        let parent = procs.get(&pid).map_or(0, |p| p.ppid);
        format!("provider ({})", command(&argv(parent)))
    } else if program == "terraform" || program == "tofu" {
        format!("terraform {}", command(&args))
    } else {
        program
    }
}

// ---------------------------------------------------------------------------------------------
// The table

fn print_table(results: &[FleetResult]) {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\n== per-node vs stacks: CPU-s per node = orch + terraform + providers (rusage of orch's children), \
         peak = Pss of orch's process tree\n"
    );
    let _ = writeln!(
        t,
        "| fleet | layout | run | nodes run | terraform roots | CPU-s | CPU-s per node | wall | wall, whole fleet | peak MB | others' CPU-s | notes |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in results {
        for m in &r.runs {
            let per_node = m.cpu / m.nodes.max(1) as f64;
            let whole = if r.sampled {
                format!(
                    "{:.0} s (est., sample x {:.1})",
                    m.wall * r.nodes as f64 / m.nodes.max(1) as f64,
                    r.nodes as f64 / m.nodes.max(1) as f64
                )
            } else {
                format!("{:.1} s", m.wall)
            };
            let mut notes = Vec::new();
            if r.sampled {
                notes.push(format!("sample of {} of {} nodes", m.nodes, r.nodes));
            }
            if m.exit != 0 {
                notes.push(format!("orch exit {}", m.exit));
            }
            if !m.unexpected.is_empty() {
                notes.push(format!("{} nodes not as expected", m.unexpected.len()));
            }
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {:.1} | **{:.2}** | {:.1} s | {} | {:.0} | {:.0} | {} |",
                r.size,
                r.layout.name(),
                m.phase,
                m.nodes,
                m.roots,
                m.cpu,
                per_node,
                m.wall,
                whole,
                m.peak_mb,
                m.others_cpu,
                notes.join("; ")
            );
        }
    }
    print!("{t}");
    println!(
        "\n== where the CPU went (sampled per process, a lower bound; orch's own from its report)"
    );
    for r in results {
        for m in &r.runs {
            println!(
                "   {} {} {}: {}",
                r.size,
                r.layout.name(),
                m.phase,
                profile(m)
            );
        }
    }
}

/// CPU seconds by kind of process (those over 5 % of the sampled total), and orch's own.
fn profile(m: &Measured) -> String {
    let sampled: f64 = m.profile.values().sum();
    let parts: Vec<String> = m
        .profile
        .iter()
        .filter(|(_, v)| **v >= 0.05 * sampled.max(0.001))
        .map(|(k, v)| format!("{k} {v:.1}"))
        .collect();
    format!("{} (orch's report: {:.2})", parts.join(", "), m.orch_cpu)
}

fn find<'a>(
    results: &'a [FleetResult],
    size: usize,
    layout: Layout,
    phase: &str,
) -> Option<&'a Measured> {
    results
        .iter()
        .find(|r| r.size == size && r.layout == layout)
        .and_then(|r| r.runs.iter().find(|m| m.phase == phase))
}

fn goals(results: &[FleetResult]) {
    println!("\n== goals (issue 9)");
    let per_node_cpu = |m: &Measured| m.cpu / m.nodes.max(1) as f64;
    for phase in ["plan", "apply", "re-plan"] {
        if let (Some(p), Some(s)) = (
            find(results, 200, Layout::PerNode, phase),
            find(results, 200, Layout::Stacks, phase),
        ) {
            let ratio = per_node_cpu(p) / per_node_cpu(s);
            println!(
                "   {} 200 nodes, {phase}: stacks use {ratio:.1}x less CPU per node than per-node (goal >= {GOAL_RATIO_AT_200}x)",
                verdict(ratio >= GOAL_RATIO_AT_200 && s.exit == 0)
            );
        }
    }
    if let Some(s) = find(results, 1000, Layout::Stacks, "plan") {
        println!(
            "   {} 1,000 nodes, stacks plan: {:.0} s wall (goal < {GOAL_PLAN_1000_WALL:.0} s)",
            verdict(s.wall < GOAL_PLAN_1000_WALL && s.exit == 0),
            s.wall
        );
    }
    for r in results {
        if let (Some(replan), Some(drift)) = (
            find(results, r.size, r.layout, "re-plan"),
            find(results, r.size, r.layout, "drift"),
        ) {
            let ratio = drift.cpu / replan.cpu.max(0.001);
            println!(
                "   {} {} nodes, {}: drift costs {ratio:.2}x the CPU of the re-plan (goal <= {GOAL_DRIFT_RATIO}x)",
                verdict(ratio <= GOAL_DRIFT_RATIO && drift.exit == 0),
                r.size,
                r.layout.name()
            );
        }
    }
    let peak = results
        .iter()
        .flat_map(|r| r.runs.iter().map(move |m| (m.peak_mb, r, m.phase)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((mb, r, phase)) = peak {
        println!(
            "   {} peak memory of any run: {mb:.0} MB ({} {} {phase}; goal < {GOAL_PEAK_MB:.0} MB)",
            verdict(mb < GOAL_PEAK_MB),
            r.size,
            r.layout.name()
        );
    }
}
