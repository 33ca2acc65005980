//! Faults, end to end (issue 7, points 21-24): orch killed with `kill -9` in the middle of a real
//! apply, the AWS endpoint going away mid-run (real terraform against the emulator, behind a
//! proxy this test can stop and start), terraform crashing or printing garbage (the fake
//! terraform, since that is terraform's own behaviour), a work directory deleted between runs,
//! a read-only or full `.orch/` (mounts in a user and mount namespace, `unshare -rm`, since root
//! ignores permissions), and secrets from the environment kept out of everything orch writes.
//!
//! Every run of orch here has a deadline: a hang fails the test instead of stalling CI.

mod common;
#[path = "e2e/emulator.rs"]
mod emulator;

use std::io::Read as _;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{require_terraform, Tree};
use emulator::{processes_in, readback, venv, Emulator};
use serde_json::Value;

/// What one bounded run of orch left.
struct Run {
    code: i32,
    stderr: String,
    report: Value,
}

impl Run {
    fn node(&self, address: &str) -> &Value {
        self.report["nodes"]
            .as_array()
            .unwrap_or_else(|| panic!("no report:\n{}", self.stderr))
            .iter()
            .find(|n| n["address"] == address)
            .unwrap_or_else(|| panic!("{address} not in the report:\n{}", self.stderr))
    }

    fn status(&self, address: &str) -> &str {
        self.node(address)["status"].as_str().unwrap()
    }

    fn error(&self, address: &str) -> &str {
        self.node(address)["error"].as_str().unwrap_or("")
    }
}

/// Waits for `child` at most `limit`; past it, kills it and fails the test.
fn wait_bounded(mut child: Child, limit: Duration, what: &str) -> (i32, String) {
    let started = Instant::now();
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let stderr = reader.join().unwrap();
            assert!(!stderr.contains("panicked"), "orch panicked:\n{stderr}");
            return (status.code().unwrap_or(-1), stderr);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `orch --live <root>/live ARGS --report <root>/report.json` with extra environment.
fn command(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orch"));
    cmd.arg("--live")
        .arg(root.join("live"))
        .arg("--no-color")
        .args(args)
        .arg("--report")
        .arg(root.join("report.json"))
        .current_dir(root)
        .env("ORCH_RETRY_BACKOFF_MS", "10")
        .env_remove("ORCH_TERRAFORM")
        .env_remove("ORCH_PROFILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn bounded(mut cmd: Command, root: &Path, limit: Duration) -> Run {
    let report = root.join("report.json");
    let _ = std::fs::remove_file(&report);
    let (code, stderr) = wait_bounded(cmd.spawn().unwrap(), limit, "orch");
    let report = std::fs::read_to_string(&report)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    Run {
        code,
        stderr,
        report,
    }
}

fn fake_terraform() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake/terraform")
}

/// orch with the fake terraform, recording its calls in `<root>/fake.log`.
fn fake(tree: &Tree, args: &[&str], env: &[(&str, &str)]) -> Run {
    let state = tree.path("fake-state");
    std::fs::create_dir_all(&state).unwrap();
    let mut cmd = command(tree.root(), args, env);
    cmd.arg("--terraform-bin")
        .arg(fake_terraform())
        .env("FAKE_TF_LOG", tree.path("fake.log"))
        .env("FAKE_TF_STATE", &state);
    bounded(cmd, tree.root(), Duration::from_secs(60))
}

/// The fake's calls since the last time this was called: `address command` per line.
fn calls(tree: &Tree) -> Vec<String> {
    let log = tree.path("fake.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    text.lines()
        .map(|l| l.splitn(3, ' ').nth(2).unwrap().to_string())
        .collect()
}

/// Every file and directory under `dir` (symlinks not followed).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        found.push(path.clone());
        if entry.file_type().unwrap().is_dir() {
            found.extend(walk(&path));
        }
    }
    found
}

/// The `<n>.proc` record of a running `terraform <command>` under `.orch/runs/`, once one appears.
fn wait_for_step(root: &Path, command: &str, limit: Duration) {
    let started = Instant::now();
    loop {
        let running = walk(&root.join(".orch/runs")).iter().any(|p| {
            p.extension().is_some_and(|x| x == "proc")
                && std::fs::read_to_string(p).is_ok_and(|t| t.lines().nth(2) == Some(command))
        });
        if running {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "no `terraform {command}` started within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A one-account, one-region fleet of real keys for the emulator's sandbox profile.
fn real_fleet(keys: &[&str]) -> Tree {
    let mut tree = Tree::empty()
        .file(
            "live/orch.yaml",
            "profiles:\n  sandbox: {endpoint: \"http://127.0.0.1:1\"}\n",
        )
        .file(
            "live/prod/account.yaml",
            "account_id: \"111111111111\"\nenvironment: prod\nrole_arn: arn:aws:iam::111111111111:role/orch-deployer\nregions: [us-east-1]\n",
        );
    for key in keys {
        tree = tree.file(
            &format!("live/prod/us-east-1/{key}/node.yaml"),
            &format!("aliases: [prod/{key}]\nkey_users: [arn:aws:iam::111111111111:role/app]\n"),
        );
    }
    tree
}

fn real(root: &Path, endpoint: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut full = vec!["--profile", "sandbox", "--endpoint", endpoint];
    full.extend_from_slice(args);
    command(root, &full, env)
}

/// The live (not pending deletion) keys of us-east-1 in account 111111111111, and its aliases.
fn keys_in_emulator(venv: &Path, endpoint: &str) -> (Vec<String>, Value) {
    let kms = &readback(venv, endpoint, "111111111111", &["us-east-1"])["kms"]["us-east-1"];
    let keys = kms["keys"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, k)| k["state"] == "Enabled")
        .map(|(id, _)| id.clone())
        .collect();
    (keys, kms["aliases"].clone())
}

const REAL_RUN: Duration = Duration::from_secs(300);

#[test]
fn kill_9_during_a_real_apply_then_a_rerun_waits_for_the_leftover_terraform_and_nothing_is_lost() {
    require_terraform();
    let venv = venv();
    let emulator = Emulator::start(&venv);
    let tree = real_fleet(&["one"]);
    let root = tree.root();
    let child = real(
        root,
        &emulator.endpoint,
        &["apply", "--all", "--auto-approve"],
        &[],
    )
    .spawn()
    .unwrap();
    wait_for_step(root, "apply", REAL_RUN);
    std::thread::sleep(Duration::from_millis(1000));
    // SAFETY: kills the orch this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let (code, _) = wait_bounded(child, Duration::from_secs(10), "the killed orch");
    assert_eq!(code, -1, "orch was killed by the signal");
    assert!(
        root.join(".orch/lock").exists(),
        "a killed orch leaves its lock"
    );
    assert!(
        !processes_in(root).is_empty(),
        "terraform apply outlives the killed orch"
    );
    let dead_run = std::fs::read_dir(root.join(".orch/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();

    // The next run takes over the stale lock, waits for the leftover apply, then finds nothing
    // left to do.
    let again = bounded(
        real(
            root,
            &emulator.endpoint,
            &["apply", "--all", "--auto-approve"],
            &[],
        ),
        root,
        REAL_RUN,
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again
            .stderr
            .contains("was killed while terraform was running; waiting for it to finish"),
        "{}",
        again.stderr
    );
    assert!(
        again
            .stderr
            .contains("prod/us-east-1/one: terraform apply (pid"),
        "{}",
        again.stderr
    );
    assert_eq!(again.status("prod/us-east-1/one"), "ok");
    assert_eq!(again.node("prod/us-east-1/one")["add"], 0);
    let recovered = std::fs::read_to_string(
        root.join(".orch/logs")
            .join(&dead_run)
            .join("prod/us-east-1/one.log"),
    )
    .unwrap();
    assert!(
        recovered.contains("orch was killed during `terraform apply`")
            && recovered.contains("Apply complete!"),
        "the leftover apply's output is kept in the killed run's log:\n{recovered}"
    );
    assert!(
        !root.join(".orch/runs").join(&dead_run).exists(),
        "the dead run's record is cleared"
    );

    let plan = bounded(
        real(
            root,
            &emulator.endpoint,
            &["plan", "--all", "--detailed-exitcode"],
            &[],
        ),
        root,
        REAL_RUN,
    );
    assert_eq!(
        plan.code, 0,
        "a plan after recovery shows changes:\n{}",
        plan.stderr
    );
    let (keys, aliases) = keys_in_emulator(&venv, &emulator.endpoint);
    assert_eq!(keys.len(), 1, "exactly one key, created once: {keys:?}");
    assert_eq!(aliases["alias/prod/one"], keys[0].as_str());
    assert!(processes_in(root).is_empty(), "{:?}", processes_in(root));
    assert!(!root
        .join(".orch/state/prod/us-east-1/one/.terraform.tfstate.lock.info")
        .exists());
    assert!(!root.join(".orch/lock").exists());
}

/// A TCP proxy to the emulator that can stop accepting (connections are then refused, as by an
/// emulator that is down, while the emulator keeps its state) and start again on the same port.
struct Proxy {
    port: u16,
    upstream: u16,
    running: Mutex<Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn new(upstream: u16) -> Proxy {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let proxy = Proxy {
            port,
            upstream,
            running: Mutex::new(None),
            connections: Arc::new(Mutex::new(Vec::new())),
        };
        proxy.up();
        proxy
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn up(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("rebind the proxy port");
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, upstream, connections) = (stop.clone(), self.upstream, self.connections.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let mut kept = connections.lock().unwrap();
                kept.push(client.try_clone().unwrap());
                kept.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        *self.running.lock().unwrap() = Some((stop, thread));
    }

    /// Stops listening and cuts every open connection.
    fn down(&self) {
        if let Some((stop, thread)) = self.running.lock().unwrap().take() {
            stop.store(true, Ordering::SeqCst);
            thread.join().unwrap();
        }
        for c in self.connections.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.down();
    }
}

#[test]
fn the_endpoint_going_down_mid_run_fails_the_node_clearly_and_a_rerun_converges() {
    require_terraform();
    let venv = venv();
    let emulator = Emulator::start(&venv);
    let proxy = Proxy::new(emulator.port);
    let endpoint = proxy.endpoint();
    let tree = real_fleet(&["one"]);
    let root = tree.root();
    // The AWS provider retries a refused connection itself: 25 attempts by default (7 minutes
    // measured here), 3 with the emulator's profile.
    let env: [(&str, &str); 0] = [];
    let child = real(root, &endpoint, &["apply", "--all", "--auto-approve"], &env)
        .spawn()
        .unwrap();
    wait_for_step(root, "apply", REAL_RUN);
    proxy.down();
    let started = Instant::now();
    let report = root.join("report.json");
    let (code, stderr) = wait_bounded(child, REAL_RUN, "orch with its endpoint down");
    let failed = Run {
        code,
        stderr,
        report: serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap(),
    };
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert_eq!(failed.status("prod/us-east-1/one"), "failed");
    let error = failed.error("prod/us-east-1/one");
    assert!(
        error.contains("`terraform apply` failed (exit 1)")
            && error.contains("connect: connection refused")
            && error.contains("after the AWS provider's 3 attempts")
            && error.contains("is the endpoint up?"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the failure took {:?}",
        started.elapsed()
    );
    assert!(!root
        .join(".orch/state/prod/us-east-1/one/.terraform.tfstate.lock.info")
        .exists());

    proxy.up();
    let again = bounded(
        real(root, &endpoint, &["apply", "--all", "--auto-approve"], &env),
        root,
        REAL_RUN,
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    let plan = bounded(
        real(
            root,
            &endpoint,
            &["plan", "--all", "--detailed-exitcode"],
            &env,
        ),
        root,
        REAL_RUN,
    );
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let (keys, aliases) = keys_in_emulator(&venv, &emulator.endpoint);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(aliases["alias/prod/one"], keys[0].as_str());
}

#[test]
fn a_refused_endpoint_fails_only_the_nodes_that_reach_it_once_each() {
    // The base fleet: prod/us-east-1/data -> prod/eu-west-1/data (replica); dev/us-east-1/app.
    let tree = Tree::new();
    let run = fake(
        &tree,
        &["apply", "--all", "--auto-approve"],
        &[("FAKE_TF_MISBEHAVE", "prod/us-east-1/data:refused")],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.status("prod/us-east-1/data"), "failed");
    assert!(run.status("prod/eu-west-1/data").starts_with("skipped"));
    assert_eq!(run.status("dev/us-east-1/app"), "ok");
    let error = run.error("prod/us-east-1/data");
    assert!(
        error.contains("Cannot assume IAM Role (dial tcp 127.0.0.1:9: connect: connection refused, after the AWS provider's 25 attempts"),
        "{error}"
    );
    // The provider has retried already; orch does not multiply its 25 attempts: one try.
    assert_eq!(run.node("prod/us-east-1/data")["attempts"], 1);
    let calls = calls(&tree);
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.as_str() == "prod/us-east-1/data plan-refused")
            .count(),
        1,
        "{calls:?}"
    );
    assert!(
        run.stderr.contains("1 ok,") && run.stderr.contains("1 failed, 1 skipped"),
        "{}",
        run.stderr
    );
}

#[test]
fn terraform_crashing_or_printing_garbage_gives_clear_per_node_errors() {
    let mut tree = Tree::empty().file("live/orch.yaml", "defaults:\n  tags: {ManagedBy: orch}\n").file(
        "live/dev/account.yaml",
        "account_id: \"222222222222\"\nenvironment: dev\nrole_arn: arn:aws:iam::222222222222:role/orch-deployer\nregions: [us-east-1]\n",
    );
    let hows = ["panic", "signal", "noise", "huge", "nosummary", "healthy"];
    for how in hows {
        tree = tree.file(
            &format!("live/dev/us-east-1/{how}/node.yaml"),
            "key_users: [arn:aws:iam::222222222222:role/app]\n",
        );
    }
    let misbehave = hows[..5]
        .iter()
        .map(|h| format!("dev/us-east-1/{h}:{h}"))
        .collect::<Vec<_>>()
        .join(" ");
    let run = fake(
        &tree,
        &["apply", "--all", "--auto-approve", "--parallelism", "3"],
        &[("FAKE_TF_MISBEHAVE", &misbehave)],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let expect = [
        (
            "panic",
            "failed",
            "`terraform plan` crashed: panic: runtime error: invalid memory address",
        ),
        (
            "signal",
            "failed",
            "`terraform plan` failed (killed by signal 9 (SIGKILL))",
        ),
        ("noise", "failed", "`terraform plan` failed (exit 1)"),
        ("huge", "ok", ""),
        ("nosummary", "ok", ""),
        ("healthy", "ok", ""),
    ];
    for (how, status, error) in expect {
        let address = format!("dev/us-east-1/{how}");
        assert_eq!(run.status(&address), status, "{how}: {}", run.stderr);
        assert!(
            run.error(&address).starts_with(error),
            "{how}: {}",
            run.error(&address)
        );
    }
    assert_eq!(
        run.node("dev/us-east-1/huge")["add"],
        1,
        "the summary after 30 MB is read"
    );
    assert_eq!(
        run.node("dev/us-east-1/nosummary")["add"],
        Value::Null,
        "no summary line: no counts made up"
    );
    // Nothing of a failed plan is applied: no partial state.
    let calls = calls(&tree);
    let applied: Vec<&String> = calls.iter().filter(|c| c.ends_with(" apply")).collect();
    assert_eq!(applied.len(), 3, "{calls:?}");
    for how in ["panic", "signal", "noise"] {
        assert!(
            !calls.contains(&format!("dev/us-east-1/{how} apply")),
            "{how} was applied"
        );
        assert!(!tree
            .path(&format!(".orch/outputs/dev/us-east-1/{how}.json"))
            .exists());
    }
    assert!(
        run.stderr
            .contains("6 nodes: 3 ok, 0 with changes, 0 without, 3 failed, 0 skipped"),
        "{}",
        run.stderr
    );
    // No terminal escapes from the noise reach the terminal through the summary.
    let summary = run.stderr.rsplit("address").next().unwrap();
    assert!(!summary.contains('\u{1b}'), "{summary:?}");
    // The huge output is in the log whole, and not held whole in the report or on the terminal.
    let log = walk(&tree.path(".orch/logs"))
        .into_iter()
        .find(|p| p.ends_with("dev/us-east-1/huge.log"))
        .unwrap();
    assert!(std::fs::metadata(&log).unwrap().len() > 29_000_000);
    assert!(
        run.stderr.len() < 2_000_000,
        "{} bytes on stderr",
        run.stderr.len()
    );
}

#[test]
fn a_version_that_is_not_a_version_is_one_clear_error() {
    let tree = Tree::new();
    for (answer, says) in [
        (
            "banana",
            "does not answer `version -json` like terraform or tofu: \"banana\"",
        ),
        (
            "{\"terraform_version\":\"x.y\\\\u001b[2J\"}",
            "it reports version \"x.y\\u{1b}[2J\", which is not MAJOR.MINOR.PATCH",
        ),
        (
            "{\"terraform_version\":\"1.2.0\"}",
            "is version 1.2.0; orch needs terraform or tofu 1.5 or later",
        ),
    ] {
        let run = fake(&tree, &["plan", "--all"], &[("FAKE_TF_VERSION", answer)]);
        assert_eq!(run.code, 1, "{answer}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{answer}: {}", run.stderr);
        assert!(calls(&tree).is_empty(), "{answer}: nothing runs");
    }
}

#[test]
fn a_work_dir_or_its_terraform_dir_deleted_between_runs_is_initialized_again() {
    let tree = Tree::new();
    let first = fake(&tree, &["plan", "--all"], &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        calls(&tree).iter().filter(|c| c.ends_with(" init")).count(),
        3
    );
    let tree = tree
        .remove(".orch/work/dev/us-east-1/app")
        .remove(".orch/work/prod/us-east-1/data/.terraform");
    let second = fake(&tree, &["plan", "--all"], &[]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let mut inits: Vec<String> = calls(&tree)
        .into_iter()
        .filter(|c| c.ends_with(" init"))
        .collect();
    inits.sort();
    assert_eq!(
        inits,
        ["dev/us-east-1/app init", "prod/us-east-1/data init"]
    );
    for address in [
        "dev/us-east-1/app",
        "prod/us-east-1/data",
        "prod/eu-west-1/data",
    ] {
        assert_eq!(second.status(address), "changes", "{address}");
    }
}

/// Runs orch with the fake terraform in a user and mount namespace where `dir` (under the tree)
/// is `mount`: "ro" (read-only) or "full" (a tmpfs with no space left).
fn with_mount(tree: &Tree, dir: &str, mount: &str, args: &[&str]) -> Run {
    let target = tree.path(dir);
    std::fs::create_dir_all(&target).unwrap();
    let setup = match mount {
        "ro" => "mount --bind \"$d\" \"$d\" && mount -o remount,ro,bind \"$d\"",
        _ => "mount -t tmpfs -o size=4k tmpfs \"$d\" && (head -c 8192 /dev/zero >\"$d/filler\" || true)",
    };
    let mut orch = command(tree.root(), args, &[]);
    orch.arg("--terraform-bin").arg(fake_terraform());
    let mut cmd = Command::new("unshare");
    cmd.args(["-rm", "sh", "-ec"])
        .arg(format!("d=$1; shift; {setup}; exec \"$@\""))
        .arg("sh")
        .arg(&target)
        .arg(orch.get_program())
        .args(orch.get_args())
        .current_dir(tree.root())
        .env("FAKE_TF_LOG", tree.path("fake.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let run = bounded(cmd, tree.root(), Duration::from_secs(60));
    assert!(
        !run.stderr.contains("unshare:") && !run.stderr.contains("mount:"),
        "this test needs `unshare -rm` (util-linux) and user namespaces to mount a read-only or full directory:\n{}",
        run.stderr
    );
    run
}

#[test]
fn a_read_only_or_full_orch_dir_is_a_clear_error_naming_the_path() {
    // Read-only: found before any terraform runs.
    for dir in [".orch/logs", ".orch/outputs", ".orch/state", ".orch/runs"] {
        let tree = Tree::new();
        let run = with_mount(&tree, dir, "ro", &["apply", "--all", "--auto-approve"]);
        assert_eq!(run.code, 1, "{dir}: {}", run.stderr);
        let path = tree.path(dir).display().to_string();
        assert!(
            run.stderr.contains(&path) && run.stderr.contains("Read-only file system"),
            "{dir}: {}",
            run.stderr
        );
        assert!(calls(&tree).is_empty(), "{dir}: terraform ran");
        assert!(!tree.path(".orch/lock").exists());
    }
    // Full, where the log goes: each node fails, naming its log, before its terraform runs.
    let tree = Tree::new();
    let run = with_mount(
        &tree,
        ".orch/logs",
        "full",
        &["apply", "--all", "--auto-approve"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let error = run.error("dev/us-east-1/app");
    assert!(
        error.starts_with("cannot write the log ")
            && error.contains("/.orch/logs/")
            && error.ends_with("No space left on device (os error 28)"),
        "{error}"
    );
    assert!(calls(&tree).is_empty(), "terraform ran without a log");
    // Full, where outputs go: the apply is done and logged, the outputs are not half-written.
    let tree = Tree::new();
    let run = with_mount(
        &tree,
        ".orch/outputs",
        "full",
        &["apply", "dev/us-east-1/app", "--auto-approve"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let error = run.error("dev/us-east-1/app");
    let path = tree
        .path(".orch/outputs/dev/us-east-1/app.json")
        .display()
        .to_string();
    assert!(
        error.starts_with(&format!(
            "cannot record the outputs in {path}: No space left on device"
        )),
        "{error}"
    );
    assert!(calls(&tree).contains(&"dev/us-east-1/app apply".to_string()));
    assert!(!tree.path(".orch/outputs/dev/us-east-1/app.json").exists());
    assert!(!tree
        .path(".orch/outputs/dev/us-east-1/.app.json.tmp")
        .exists());
}

#[test]
fn secrets_from_the_environment_never_reach_a_file_or_the_terminal_and_orch_files_are_private() {
    let secrets = [
        ("AWS_SECRET_ACCESS_KEY", "sentinel-secret-4f1d9c2b7e"),
        ("AWS_SESSION_TOKEN", "sentinel-token-8a3e5d1f6c"),
        ("AWS_ACCESS_KEY_ID", "AKIAORCHSENTINEL0042"),
        ("TF_VAR_db_password", "sentinel-password-2b9f"),
        ("GITHUB_TOKEN", "sentinel-github-7d4e"),
    ];
    // An `.orch/` an older orch created open to everyone is closed.
    let tree = Tree::new().dir(".orch");
    std::fs::set_permissions(tree.path(".orch"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut env: Vec<(&str, &str)> = secrets.to_vec();
    env.push((
        "FAKE_TF_MISBEHAVE",
        "dev/us-east-1/app:panic prod/us-east-1/data:env",
    ));
    let run = fake(&tree, &["apply", "--all", "--auto-approve"], &env);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.status("prod/us-east-1/data"), "ok");
    assert_eq!(run.status("dev/us-east-1/app"), "failed");
    assert!(
        run.stderr
            .contains("AWS_SECRET_ACCESS_KEY=[redacted AWS_SECRET_ACCESS_KEY]"),
        "the crash dump is shown, redacted:\n{}",
        run.stderr
    );
    let mut checked = 0;
    let files: Vec<PathBuf> = walk(&tree.path(".orch"))
        .into_iter()
        .chain([tree.path("report.json")])
        .collect();
    for path in &files {
        let meta = std::fs::symlink_metadata(path).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", path.display());
        if meta.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
            for (name, value) in secrets {
                assert!(!text.contains(value), "{name} in {}", path.display());
            }
            checked += 1;
        }
    }
    assert!(checked > 10, "only {checked} files checked");
    let logs = walk(&tree.path(".orch/logs"))
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<String>();
    for name in [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "TF_VAR_db_password",
        "GITHUB_TOKEN",
    ] {
        assert!(
            logs.contains(&format!("[redacted {name}]")),
            "{name} not redacted in the logs"
        );
    }
    assert_eq!(
        std::fs::metadata(tree.path(".orch"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    for (name, value) in secrets {
        assert!(!run.stderr.contains(value), "{name} on the terminal");
    }
}

#[test]
fn a_killed_runs_leftovers_are_recovered_and_only_provably_stale_state_locks_cleared() {
    let tree = Tree::new();
    assert_eq!(fake(&tree, &["plan", "--all"], &[]).code, 0);
    calls(&tree);
    // What an orch killed during two applies leaves (its terraform gone too, say by OOM): the run
    // record, the raw output files, and a state lock file per node.
    let dead = ".orch/runs/20260101T000000Z-999999999";
    let tree = tree
        .file(&format!("{dead}/orch"), "999999999 1\n")
        .file(
            &format!("{dead}/0.proc"),
            "999999998 1\ndev/us-east-1/app\napply\n",
        )
        .file(
            &format!("{dead}/0.out"),
            "aws_kms_key.this: Creating...\nsecret sentinel-leftover-5c2a\n",
        )
        .file(
            &format!("{dead}/1.proc"),
            "999999997 1\nprod/us-east-1/data\napply\n",
        )
        .file(
            &format!("{dead}/1.out"),
            "Apply complete! Resources: 1 added, 0 changed, 0 destroyed.\n",
        );
    let lock_info = |address: &str| {
        tree.path(&format!(
            ".orch/state/{address}/.terraform.tfstate.lock.info"
        ))
    };
    for address in ["dev/us-east-1/app", "prod/us-east-1/data"] {
        let state = tree.path(&format!(".orch/state/{address}"));
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(state.join("terraform.tfstate"), "{}").unwrap();
        std::fs::write(lock_info(address), "{\"ID\":\"stale\"}").unwrap();
    }
    // prod/us-east-1/data's state is really locked, by a live process (as terraform locks it:
    // fcntl on the state file).
    let python = common::venv_program("python");
    let mut holder = Command::new(python)
        .args(["-c", "import fcntl,sys,time\nf=open(sys.argv[1],'r+')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\ntime.sleep(120)"])
        .arg(tree.path(".orch/state/prod/us-east-1/data/terraform.tfstate"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = [0u8; 6];
    holder
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut line)
        .unwrap();
    let run = fake(
        &tree,
        &["plan", "dev/us-east-1/app", "prod/us-east-1/data"],
        &[("MY_SECRET", "sentinel-leftover-5c2a")],
    );
    let holder_pid = holder.id();
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("removed the stale state lock")
            && run
                .stderr
                .contains("no process holds a lock on terraform.tfstate"),
        "{}",
        run.stderr
    );
    assert!(!lock_info("dev/us-east-1/app").exists(), "stale: removed");
    assert!(
        run.stderr.contains(&format!(
            "prod/us-east-1/data: the state is locked by pid {holder_pid}"
        )),
        "{}",
        run.stderr
    );
    assert!(lock_info("prod/us-east-1/data").exists(), "held: kept");
    assert!(
        run.stderr
            .contains("`terraform apply` of dev/us-east-1/app did not finish"),
        "the cut-off apply is pointed out:\n{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("of prod/us-east-1/data did not finish"),
        "{}",
        run.stderr
    );
    let recovered = tree.read(".orch/logs/20260101T000000Z-999999999/dev/us-east-1/app.log");
    assert!(
        recovered.contains("aws_kms_key.this: Creating..."),
        "{recovered}"
    );
    assert!(recovered.contains("[redacted MY_SECRET]"), "{recovered}");
    assert!(!tree.path(dead).exists());
}
