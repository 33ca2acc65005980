//! What the benchmarks that run the orch binary share: the machine and tool checks, CPU and
//! idle accounting from rusage and /proc, the local AWS emulator and estates of keys made in it,
//! running a command with a timeout, and writing a tree's files.
//! Included by each bench with `mod common;`; each uses only part of it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Prints `message` and exits 2: a bench that cannot measure says why and stops.
pub fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2);
}

/// A number from the environment variable `name`, or `default` when it is unset; anything else
/// stops the bench.
pub fn number_env(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| fail(&format!("{name}={text:?} is not a number"))),
        Err(_) => default,
    }
}

/// Where a bench works: `ORCH_BENCH_KEEP=DIR` (a directory that must not exist yet, kept
/// afterwards), else a new temporary directory named `PREFIX...`, removed when the returned
/// guard drops.
pub fn work_dir(prefix: &str) -> (PathBuf, Option<tempfile::TempDir>) {
    let base = match std::env::var_os("ORCH_BENCH_KEEP").map(PathBuf::from) {
        Some(dir) => {
            if dir.exists() {
                fail(&format!(
                    "ORCH_BENCH_KEEP={} exists: name a new directory",
                    dir.display()
                ));
            }
            fs::create_dir_all(&dir).expect("create ORCH_BENCH_KEEP");
            (fs::canonicalize(&dir).expect("ORCH_BENCH_KEEP"), None)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix(prefix)
                .tempdir()
                .expect("temp dir");
            (t.path().to_path_buf(), Some(t))
        }
    };
    println!("   working under {}", base.0.display());
    base
}

/// `ROOT/live` for an estate: one account, `prod` (ACCOUNT, reached through the role
/// brownfield.py uses), in REGION, no node, its `sandbox` profile on the emulator; `settings`
/// are more lines of orch.yaml (`layout: stacks\n`).
pub fn one_account_tree(
    root: &Path,
    endpoint: &str,
    (account, region): (&str, &str),
    settings: &str,
) {
    let live = root.join("live");
    write(
        &live,
        "orch.yaml",
        &format!(
            "backend: {{type: local}}\n{settings}profiles:\n  sandbox: {{endpoint: \"{endpoint}\"}}\n"
        ),
    );
    write(
        &live,
        "prod/account.yaml",
        &format!(
            "account_id: \"{account}\"\nenvironment: prod\nrole_arn: arn:aws:iam::{account}:role/orch-brownfield\n\
             regions: [{region}]\n"
        ),
    );
}

/// One measured orch run.
pub struct Measured {
    pub wall: f64,
    /// orch and every process it started and reaped (rusage of the children).
    pub cpu: f64,
    pub emulator_cpu: f64,
    /// CPU seconds every other process of the machine took meanwhile.
    pub others_cpu: f64,
    pub exit: i32,
    pub report: Value,
}

/// `orch --no-color --live ROOT/live --profile sandbox ARGS... --report ROOT/REPORT`, its stderr
/// kept in ROOT/REPORT.stderr, run once the machine is idle, with what it cost; the report is
/// read back when it is JSON.
pub fn measure_orch(
    orch: &Path,
    root: &Path,
    report: &str,
    args: &[String],
    emulator: &Emulator,
    timeout: Duration,
) -> Measured {
    let report_path = root.join(report);
    let mut all = vec!["--profile".to_string(), "sandbox".to_string()];
    all.extend(args.iter().cloned());
    let mut cmd = orch_command(orch, root, &all, &report_path);
    cmd.stdout(Stdio::null())
        .stderr(fs::File::create(root.join(format!("{report}.stderr"))).expect("stderr file"));
    settle();
    let cpu_before = children_cpu();
    let emulator_before = emulator.cpu();
    let busy_before = machine_busy();
    let (exit, wall) = run(cmd, timeout, &format!("orch {}", args.join(" ")));
    let cpu = children_cpu() - cpu_before;
    let emulator_cpu = emulator.cpu() - emulator_before;
    let others_cpu = (machine_busy() - busy_before - cpu - emulator_cpu).max(0.0);
    let json = report.ends_with(".json");
    let report = fs::read_to_string(&report_path)
        .ok()
        .filter(|_| json)
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    Measured {
        wall,
        cpu,
        emulator_cpu,
        others_cpu,
        exit,
        report,
    }
}

/// The closing of a bench: each check with PASS or MISS, how long the bench took since
/// `started`, and the load average.
pub fn print_checks(checks: &[(bool, String)], started: Instant) {
    println!("\n== checks");
    for (ok, text) in checks {
        println!("   {} {text}", verdict(*ok));
    }
    println!(
        "\nbench took {:.0} s; load average at the end: {}",
        started.elapsed().as_secs_f64(),
        loadavg()
    );
}

/// terraform, the provider mirror config and the venv with the emulator, checked up front.
pub struct Tools {
    pub terraform: PathBuf,
    pub version: String,
    pub config: PathBuf,
    pub python: PathBuf,
}

pub fn preflight() -> Tools {
    let hint = "run `scripts/just setup` once, then `scripts/just bench` (it exports \
                TF_CLI_CONFIG_FILE and ORCH_TOOLS_VENV)";
    let terraform = which("terraform").unwrap_or_else(|| {
        fail(&format!(
            "terraform is not on PATH: install Terraform >= 1.5; {hint}"
        ))
    });
    let version = Command::new(&terraform)
        .arg("version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_else(|| fail(&format!("`{} version` failed", terraform.display())));
    let config = std::env::var_os("TF_CLI_CONFIG_FILE")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .unwrap_or_else(|| {
            fail(&format!(
                "TF_CLI_CONFIG_FILE is unset or names no file ({:?}): the provider mirror config \
                 is written by scripts/setup-terraform; {hint}",
                std::env::var_os("TF_CLI_CONFIG_FILE")
            ))
        });
    let python = std::env::var_os("ORCH_TOOLS_VENV")
        .map(|v| PathBuf::from(v).join("bin/python"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| {
            fail(&format!(
                "ORCH_TOOLS_VENV is unset or has no bin/python ({:?}): the venv with moto is \
                 made by scripts/setup-python; {hint}",
                std::env::var_os("ORCH_TOOLS_VENV")
            ))
        });
    Tools {
        terraform,
        version,
        config,
        python,
    }
}

pub fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn print_machine(orch: &Path, tools: Option<&Tools>) {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown".into(), |m| m.trim().to_string());
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or("?".into(), |kb| format!("{:.1} GB", kb / 1048576.0));
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!("== machine");
    println!(
        "   nproc {}, CPU {model}, memory {mem}, Linux {}, load average {}",
        nproc(),
        kernel.trim(),
        loadavg()
    );
    println!("   orch: {}", orch.display());
    if let Some(t) = tools {
        println!("   terraform: {} ({})", t.terraform.display(), t.version);
        println!("   TF_CLI_CONFIG_FILE={}", t.config.display());
        println!("   python: {}", t.python.display());
    }
}

pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// CPU seconds (user + system) of the children this process has waited for, and of their own
/// waited-for children: orch and every terraform it ran, or the shell loop and its terraforms.
pub fn children_cpu() -> f64 {
    // SAFETY: getrusage fills the struct we own; all-zero is a valid starting value.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// CPU seconds a running process has used so far (from /proc/PID/stat).
pub fn process_cpu(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    // After the command: state is field 3, utime 14 and stime 15 (1-based) of the whole line.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks / hz
}

/// Waits until the machine is nearly idle, at most 30 s a time and 120 s per bench: other
/// processes (a build, tests) would skew every figure here. Says so when it gives up.
pub fn settle() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static WAITED_MS: AtomicU64 = AtomicU64::new(0);
    let start = Instant::now();
    loop {
        let before = machine_busy();
        std::thread::sleep(Duration::from_millis(1000));
        let busy = machine_busy() - before;
        if busy < 0.25 {
            return;
        }
        let waited = WAITED_MS.fetch_add(1000, Ordering::Relaxed);
        if start.elapsed() > Duration::from_secs(30) || waited > 120_000 {
            println!(
                "   (the machine is still busy: {busy:.2} cores used by other processes; measuring anyway)"
            );
            return;
        }
    }
}

/// CPU seconds the whole machine has been busy (every state of /proc/stat's `cpu` line but idle
/// and iowait): against the CPU of what the bench ran, it shows how much other processes took.
pub fn machine_busy() -> f64 {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let busy: f64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| !matches!(i, 3 | 4) && *i < 8)
        .map(|(_, t)| t)
        .sum();
    // SAFETY: sysconf has no preconditions.
    busy / unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}

pub fn write(root: &Path, path: &str, text: &str) {
    let full = root.join(path);
    fs::create_dir_all(full.parent().unwrap()).unwrap();
    fs::write(full, text).unwrap();
}
/// `orch --no-color --live ROOT/live ARGS... --report REPORT` in ROOT, with no terminal and none of
/// the ORCH_* variables of the caller's shell, which would change what it runs.
pub fn orch_command(
    orch: &Path,
    root: &Path,
    args: &[impl AsRef<OsStr>],
    report: &Path,
) -> Command {
    let mut cmd = Command::new(orch);
    cmd.arg("--no-color")
        .arg("--live")
        .arg(root.join("live"))
        .args(args)
        .arg("--report")
        .arg(report)
        .current_dir(root)
        .env_remove("ORCH_TERRAFORM")
        .env_remove("ORCH_PROFILE")
        .env_remove("ORCH_ENDPOINT")
        .env_remove("ORCH_LIVE")
        .stdin(Stdio::null());
    cmd
}

/// `keys` keys made by scripts/brownfield.py on 4 threads in one (account id, region); its
/// output is kept in DIR.
pub fn make_estate(
    tools: &Tools,
    emulator: &Emulator,
    dir: &Path,
    keys: usize,
    (account, region): (&str, &str),
    same_tags: bool,
    timeout: Duration,
) {
    fs::create_dir_all(dir).expect("estate dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/brownfield.py");
    let mut cmd = Command::new(&tools.python);
    cmd.arg(&script)
        .arg(&emulator.endpoint)
        .args(["--scale", &keys.to_string(), "--account", account])
        .args(["--region", region, "--threads", "4", "--out"])
        .arg(dir.join("manifest.json"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(dir.join("brownfield.stderr")).expect("stderr file"));
    if same_tags {
        cmd.arg("--same-tags");
    }
    let emulator_before = emulator.cpu();
    let (exit, wall) = run(cmd, timeout, "brownfield.py");
    let (rss, _) = emulator.memory_mb();
    println!(
        "   made {keys} keys{} with scripts/brownfield.py --threads 4: {wall:.1} s ({:.0} keys/s), \
         emulator {:.1} CPU-s, its memory {rss:.0} MB, exit {exit}, load average {}",
        if same_tags { " (--same-tags)" } else { "" },
        keys as f64 / wall,
        emulator.cpu() - emulator_before,
        loadavg()
    );
    if exit != 0 {
        fail(&format!(
            "brownfield.py failed (exit {exit}): see {}",
            dir.join("brownfield.stderr").display()
        ));
    }
}

/// Runs `cmd`, stopping it past `timeout` (SIGTERM, which orch passes on to terraform, then
/// SIGKILL 120 s later). Exit code (-1 when stopped or killed by a signal) and wall seconds.
pub fn run(mut cmd: Command, timeout: Duration, what: &str) -> (i32, f64) {
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| fail(&format!("spawn {what}: {e}")));
    let mut stopping: Option<Instant> = None;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let exit = if stopping.is_some() {
                -1
            } else {
                status.code().unwrap_or(-1)
            };
            return (exit, start.elapsed().as_secs_f64());
        }
        match stopping {
            None if start.elapsed() > timeout => {
                println!(
                    "   ({what} still running after {} s: stopping it)",
                    timeout.as_secs()
                );
                // SAFETY: kill has no memory preconditions; the pid is our own child's.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                stopping = Some(Instant::now());
            }
            Some(since) if since.elapsed() > Duration::from_secs(120) => {
                let _ = child.kill();
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The emulator on a free loopback port, stopped when dropped.
pub struct Emulator {
    child: Child,
    pub endpoint: String,
}

impl Emulator {
    pub fn start(python: &Path) -> Emulator {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| fail(&format!("no free loopback port: {e}")));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/emulator.py");
        let child = Command::new(python)
            .arg(&script)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| fail(&format!("cannot start the emulator: {e}")));
        let mut emulator = Emulator {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = emulator.child.try_wait() {
                fail(&format!(
                    "the emulator exited ({status}): try `{} {} -H 127.0.0.1 -p {port}`",
                    python.display(),
                    script.display()
                ));
            }
            if started.elapsed() > Duration::from_secs(60) {
                fail(&format!(
                    "the emulator did not listen on {port} within 60 s"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        println!(
            "   emulator: {} {} -H 127.0.0.1 -p {port} (pid {}, listening after {:.1} s)",
            python.display(),
            script.display(),
            emulator.child.id(),
            started.elapsed().as_secs_f64()
        );
        emulator
    }

    pub fn cpu(&self) -> f64 {
        process_cpu(self.child.id())
    }

    /// Resident memory of the emulator now and at its peak (VmRSS, VmHWM), in MB.
    pub fn memory_mb(&self) -> (f64, f64) {
        let status =
            fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(f64::NAN, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}
