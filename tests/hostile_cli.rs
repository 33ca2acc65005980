//! Hostile uses of the command line and of the files orch writes, through the real binary:
//! pathological globs, `generate tfvars` into a directory that is not orch's, `--live` paths that
//! lead into the tree, concurrent renders, closed pipes, foreign `templates/` folders and bad
//! `--live` targets, and an `.orch/` that is read-only, not creatable or on a full disk. Each
//! case checks the exit, the absence of a panic, a message that names the path, and that nothing
//! was half-written.

mod common;

use std::os::fd::{FromRawFd as _, OwnedFd};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Tree;

/// Longer than any of these runs takes on a loaded machine, so a hang fails instead of blocking
/// the suite; the tests assert results, never times.
const HANG: Duration = Duration::from_secs(60);

/// How one run of `orch` ended.
#[derive(Debug)]
struct Ended {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ended {
    fn no_panic(&self) -> &Self {
        for bad in ["panicked", "failed printing", "RUST_BACKTRACE"] {
            assert!(
                !self.stderr.contains(bad),
                "orch printed {bad:?}:\n{}",
                self.stderr
            );
        }
        assert_ne!(self.code, Some(101), "orch panicked:\n{}", self.stderr);
        self
    }

    fn ok(&self) -> &Self {
        self.no_panic();
        assert_eq!(self.code, Some(0), "orch failed:\n{}", self.stderr);
        self
    }

    /// Exit 1 with every fragment in stderr.
    fn fails_with(&self, says: &[&str]) -> &Self {
        self.no_panic();
        assert_eq!(
            self.code,
            Some(1),
            "expected exit 1\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        for fragment in says {
            assert!(
                self.stderr.contains(fragment),
                "stderr lacks {fragment:?}:\n{}",
                self.stderr
            );
        }
        self
    }

    /// Ended the way a Unix filter ends on a closed pipe: by SIGPIPE, or normally when it had
    /// nothing left to print.
    fn quiet_on_closed_pipe(&self) -> &Self {
        self.no_panic();
        assert!(
            self.signal == Some(libc::SIGPIPE) || self.code == Some(0),
            "expected SIGPIPE or exit 0, got {self:?}"
        );
        assert_eq!(self.stderr, "", "orch complained about the closed pipe");
        self
    }
}

/// Starts a command without orch's environment variables and with no stdin.
fn start(cmd: &mut Command, stdout: Stdio, stderr: Stdio) -> std::process::Child {
    cmd.env_remove("ORCH_LIVE")
        .env_remove("ORCH_PROFILE")
        .env_remove("ORCH_TERRAFORM")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("start orch")
}

/// Runs a command to its end, killing it and failing after [`HANG`].
fn finish(mut cmd: Command) -> Ended {
    wait(start(&mut cmd, Stdio::piped(), Stdio::piped()))
}

fn wait(mut child: std::process::Child) -> Ended {
    let start = Instant::now();
    // Drained on threads, so a child that prints much never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for orch") {
            break status;
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("orch did not finish within {HANG:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ended {
        code: status.code(),
        signal: status.signal(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn orch_cmd(live: &Path, cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orch"));
    cmd.arg("--live").arg(live).args(args).current_dir(cwd);
    cmd
}

/// `orch --live <tmp>/live ARGS` in the tree's directory.
fn run(tree: &Tree, args: &[&str]) -> Ended {
    finish(orch_cmd(&tree.path("live"), tree.root(), args))
}

/// Every regular file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// No temporary file or directory of orch's is left anywhere under `dir`.
fn assert_no_temporaries(dir: &Path) {
    fn walk(dir: &Path) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                !name.contains("orch-tmp") && !name.ends_with(".tmp"),
                "a temporary {} was left behind",
                entry.path().display()
            );
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path());
            }
        }
    }
    walk(dir);
}

/// The base fleet plus `count` more keys in dev, so renders and listings take a while.
fn big_tree(count: usize) -> Tree {
    (0..count).fold(Tree::new(), |tree, i| {
        tree.file(
            &format!("live/dev/us-east-1/key-{i:04}/node.yaml"),
            "description: one of many\nkey_users: [arn:aws:iam::222222222222:role/app]\n",
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Globs: address filters and wave `match` patterns run in linear time, and are bounded.

/// `*a*a*a…*b` against a long name of `a`s: exponential for a backtracking matcher.
fn many_stars(n: usize) -> String {
    "*a".repeat(n) + "*b"
}

#[test]
fn a_filter_with_many_stars_against_a_long_name_finishes() {
    // The longest name a tree may have (64); 30 stars against it are C(64, 30) ways for a
    // backtracking matcher.
    let long = "a".repeat(64);
    let tree = Tree::new().file(
        &format!("live/dev/us-east-1/{long}/node.yaml"),
        "description: long\nkey_users: [arn:aws:iam::222222222222:role/app]\n",
    );
    let pattern = format!("dev/us-east-1/{}", many_stars(30));
    run(&tree, &["render", &pattern]).fails_with(&["matches no node of this tree"]);
    assert!(!tree.path(".orch").exists());
    // The same shape that does match selects exactly that node.
    let matching = format!("dev/us-east-1/{}", "*a".repeat(60) + "*");
    run(&tree, &["render", &matching]).ok();
    assert_eq!(tree.work_dirs(), [format!("dev/us-east-1/{long}")]);
}

#[test]
fn hundreds_of_double_star_segments_finish() {
    let tree = Tree::new();
    let pattern = "**/".repeat(300) + "data";
    run(&tree, &["render", &pattern]).ok();
    assert_eq!(
        tree.work_dirs(),
        ["prod/eu-west-1/data", "prod/us-east-1/data"]
    );
    let none = "**/".repeat(300) + "nothing";
    run(&tree, &["plan", &none]).fails_with(&["matches no node of this tree"]);
}

#[test]
fn a_pathological_wave_pattern_is_checked_quickly() {
    let tree = Tree::new().file(
        "live/orch.yaml",
        &format!(
            "waves:\n  - {{name: odd, match: [\"{}\"]}}\n  - {{name: rest, match: [\"**\"]}}\n",
            "**/".repeat(100) + &many_stars(100)
        ),
    );
    let out = run(&tree, &["validate"]);
    // A wave that gets no node is an error (a rollout would have nothing to do in it).
    out.fails_with(&["wave `odd`", "matches no node", "wave `odd` gets no node"]);
}

#[test]
fn a_glob_over_the_length_limit_is_refused_before_matching() {
    let tree = Tree::new();
    let pattern = "*".repeat(5000);
    let out = run(&tree, &["render", &pattern]);
    out.fails_with(&["the address glob is 5000 characters long; the limit is 1024"]);
    assert!(
        out.stderr.len() < 1000,
        "the error quotes the whole pattern:\n{}",
        out.stderr
    );
    assert!(!tree.path(".orch").exists());
}

#[test]
fn a_wave_pattern_over_the_length_limit_is_an_error_at_its_line() {
    let tree = Tree::new().file(
        "live/orch.yaml",
        &format!(
            "defaults: {{}}\nwaves:\n  - {{name: long, match: [\"{}\"]}}\n",
            "a/".repeat(700)
        ),
    );
    let out = run(&tree, &["validate"]);
    out.fails_with(&[
        "wave `long`: the address glob is 1400 characters long; the limit is 1024",
        "nothing was run",
    ]);
    assert!(out.stderr.contains("live/orch.yaml:3"), "{}", out.stderr);
}

#[test]
fn more_globs_than_the_limit_are_refused() {
    let tree = Tree::new();
    let patterns: Vec<String> = (0..1001).map(|i| format!("dev/us-east-1/n{i}")).collect();
    let mut args = vec!["render"];
    args.extend(patterns.iter().map(String::as_str));
    run(&tree, &args).fails_with(&["1001 address globs; the limit is 1000"]);
    assert!(!tree.path(".orch").exists());
}

#[test]
fn glob_semantics_are_unchanged() {
    for (pattern, selected) in [
        (
            "prod/*/data",
            &["prod/eu-west-1/data", "prod/us-east-1/data"][..],
        ),
        ("**/app", &["dev/us-east-1/app"][..]),
        (
            "*/us-east-?/*",
            &["dev/us-east-1/app", "prod/us-east-1/data"][..],
        ),
        ("dev/**", &["dev/us-east-1/app"][..]),
    ] {
        let tree = Tree::new();
        run(&tree, &["render", pattern]).ok();
        assert_eq!(tree.work_dirs(), selected, "{pattern}");
    }
    // `*` stays inside one segment.
    run(&Tree::new(), &["render", "prod/*"]).fails_with(&["`prod/*` matches no node"]);
}

// ---------------------------------------------------------------------------------------------
// `generate tfvars --out DIR`: exactly its own files, atomically, never anything else.

const PROD_TFVARS: [&str; 2] = [
    "prod/eu-west-1/data.tfvars.json",
    "prod/us-east-1/data.tfvars.json",
];

fn generate(tree: &Tree, env: &str, extra: &[&str]) -> Ended {
    let mut args = vec!["generate", "tfvars", "--env", env, "--out", "tv"];
    args.extend_from_slice(extra);
    run(tree, &args)
}

#[test]
fn generate_leaves_files_it_did_not_write_and_counts_truly() {
    let tree = Tree::new()
        .file("tv/prod/us-east-1/main.tf", "# the user's own module\n")
        .file("tv/prod/us-east-1/other.tfvars.json", "{\"mine\": true}\n")
        .file("tv/README", "notes\n");
    let out = generate(&tree, "prod", &[]);
    out.ok();
    assert!(
        out.stdout.contains("wrote tfvars of 2 nodes of environment prod (prod) into tv: 2 files written, 0 unchanged, 0 removed"),
        "{}",
        out.stdout
    );
    let mut expected: Vec<String> = PROD_TFVARS.iter().map(|s| s.to_string()).collect();
    expected.extend([
        ".orch-generated".to_string(),
        "README".into(),
        "prod/us-east-1/main.tf".into(),
        "prod/us-east-1/other.tfvars.json".into(),
    ]);
    expected.sort();
    assert_eq!(files_under(&tree.path("tv")), expected);
    assert_eq!(
        tree.read("tv/prod/us-east-1/main.tf"),
        "# the user's own module\n"
    );
    assert_eq!(
        tree.read("tv/prod/us-east-1/other.tfvars.json"),
        "{\"mine\": true}\n"
    );
    // A second run finds its own files unchanged.
    let again = generate(&tree, "prod", &[]);
    assert!(
        again
            .ok()
            .stdout
            .contains("0 files written, 2 unchanged, 0 removed"),
        "{}",
        again.stdout
    );
    assert_no_temporaries(&tree.path("tv"));
}

#[test]
fn generate_refuses_to_overwrite_a_file_it_did_not_write() {
    let tree = Tree::new().file("tv/prod/us-east-1/data.tfvars.json", "{\"hand\": 1}\n");
    generate(&tree, "prod", &[]).fails_with(&[
        "tv/prod/us-east-1/data.tfvars.json exists and orch did not write it",
        "nothing was written",
    ]);
    assert_eq!(
        tree.read("tv/prod/us-east-1/data.tfvars.json"),
        "{\"hand\": 1}\n"
    );
    assert_eq!(
        files_under(&tree.path("tv")),
        ["prod/us-east-1/data.tfvars.json"]
    );
}

#[test]
fn generate_removes_only_its_own_stale_files() {
    let tree = Tree::new().file("tv/prod/us-east-1/keep.tfvars.json", "{}\n");
    generate(&tree, "prod", &[]).ok();
    // The same set in HCL: the JSON files of the first run are stale, the user's file is not.
    let out = generate(&tree, "prod", &["--format", "hcl"]);
    assert!(
        out.ok()
            .stdout
            .contains("2 files written, 0 unchanged, 2 removed"),
        "{}",
        out.stdout
    );
    assert_eq!(
        files_under(&tree.path("tv")),
        [
            ".orch-generated",
            "prod/eu-west-1/data.tfvars",
            "prod/us-east-1/data.tfvars",
            "prod/us-east-1/keep.tfvars.json",
        ]
    );
    // A node that leaves the tree takes its file along.
    let tree = tree.remove("live/prod/us-east-1/data/node.yaml").file(
        "live/prod/us-east-1/data/node.yaml",
        "description: single region now\n",
    );
    let out = generate(&tree, "prod", &["--format", "hcl"]);
    out.ok();
    assert!(tree.path("tv/prod/us-east-1/data.tfvars").exists());
    assert!(!tree.path("tv/prod/eu-west-1/data.tfvars").exists());
    assert!(tree.path("tv/prod/us-east-1/keep.tfvars.json").exists());
}

#[test]
fn generate_of_another_environment_keeps_the_first() {
    let tree = Tree::new();
    generate(&tree, "prod", &[]).ok();
    generate(&tree, "dev", &[]).ok();
    let mut expected: Vec<&str> = PROD_TFVARS.to_vec();
    expected.extend([".orch-generated", "dev/us-east-1/app.tfvars.json"]);
    expected.sort();
    assert_eq!(files_under(&tree.path("tv")), expected);
}

#[test]
fn two_generations_into_one_directory_at_once_both_stay_listed() {
    // Two trees, one shared DIR: each run reads the manifest, writes its files and writes the
    // manifest back; without the directory's lock one run's set is lost now and then.
    let (prod, dev) = (Tree::new(), Tree::new());
    for round in 0..12 {
        let out = prod.path(&format!("shared-{round}"));
        let out = out.to_str().unwrap();
        std::thread::scope(|s| {
            for (tree, env) in [(&prod, "prod"), (&dev, "dev")] {
                s.spawn(move || {
                    run(tree, &["generate", "tfvars", "--env", env, "--out", out]).ok();
                });
            }
        });
        let manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{out}/.orch-generated")).unwrap(),
        )
        .unwrap();
        let sets: Vec<&String> = manifest["sets"].as_object().unwrap().keys().collect();
        assert_eq!(sets, ["dev", "prod"], "round {round}");
    }
}

#[test]
fn generate_checks_name_limits_before_writing_anything() {
    // A 255-character node name is a valid directory; its tfvars file name is not.
    let long = "k".repeat(255);
    let tree = Tree::new().file(
        &format!("live/prod/us-east-1/{long}/node.yaml"),
        "description: long name\n",
    );
    let out = generate(&tree, "prod", &[]);
    out.no_panic();
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&long) || out.stderr.contains("too long"),
        "the error does not name the node:\n{}",
        out.stderr
    );
    assert_eq!(files_under(&tree.path("tv")), Vec::<String>::new());
}

#[test]
fn generate_refuses_a_directory_where_a_file_goes() {
    let tree = Tree::new().dir("tv/prod/us-east-1/data.tfvars.json");
    generate(&tree, "prod", &[]).fails_with(&[
        "tv/prod/us-east-1/data.tfvars.json is a directory where orch would write a file",
    ]);
    assert_eq!(files_under(&tree.path("tv")), Vec::<String>::new());
}

#[test]
fn generate_refuses_a_file_where_a_directory_goes() {
    let tree = Tree::new().file("tv/prod", "a file\n");
    generate(&tree, "prod", &[]).fails_with(&[
        "tv/prod exists and is not a directory",
        "nothing was written",
    ]);
    assert_eq!(files_under(&tree.path("tv")), ["prod"]);

    let tree = Tree::new().file("tv", "a file\n");
    generate(&tree, "prod", &[]).fails_with(&["tv exists and is not a directory"]);
    assert_eq!(tree.read("tv"), "a file\n");
}

#[test]
fn generate_refuses_an_out_dir_inside_the_tree() {
    let tree = Tree::new();
    run(
        &tree,
        &[
            "generate",
            "tfvars",
            "--env",
            "prod",
            "--out",
            "live/prod/x/..",
        ],
    )
    .fails_with(&["is inside the live/ tree"]);
    assert!(!tree.path("live/prod/x").exists());
    assert!(!tree.path("live/prod/.orch-generated").exists());
}

#[test]
fn generate_never_removes_what_a_tampered_manifest_names() {
    let tree = Tree::new().file("precious", "keep me\n").file(
        "tv/.orch-generated",
        "{\"version\": 1, \"sets\": {\"prod\": [\"../precious\"]}}\n",
    );
    generate(&tree, "prod", &[]).fails_with(&[
        "tv/.orch-generated is not a manifest orch can read",
        "`../precious`",
    ]);
    assert_eq!(tree.read("precious"), "keep me\n");
    assert_eq!(files_under(&tree.path("tv")), [".orch-generated"]);
}

// ---------------------------------------------------------------------------------------------
// `.orch/` is always beside the real live/ directory, whatever path names it.

#[test]
fn a_live_path_through_dot_dot_keeps_orch_beside_live() {
    let tree = Tree::new();
    let out = finish(orch_cmd(
        Path::new("live/prod/.."),
        tree.root(),
        &["render", "--all"],
    ));
    out.ok();
    assert!(tree
        .path(".orch/work/prod/us-east-1/data/main.tf")
        .is_file());
    assert!(!tree.path("live/.orch").exists());
    assert!(!tree.path("live/prod/.orch").exists());
}

#[test]
fn live_dot_from_inside_the_tree_keeps_orch_beside_live() {
    let tree = Tree::new();
    finish(orch_cmd(
        Path::new("."),
        &tree.path("live"),
        &["render", "--all"],
    ))
    .ok();
    assert!(tree.path(".orch/work/dev/us-east-1/app/main.tf").is_file());
    assert!(!tree.path("live/.orch").exists());
    // From a region directory, two levels up.
    finish(orch_cmd(
        Path::new("../.."),
        &tree.path("live/prod/us-east-1"),
        &["render", "--all"],
    ))
    .ok();
    assert!(!tree.path("live/prod/.orch").exists());
    assert!(!tree.path("live/prod/us-east-1/.orch").exists());
}

#[test]
fn a_live_path_through_a_link_keeps_orch_beside_the_real_tree() {
    let tree = Tree::new().dir("elsewhere");
    std::os::unix::fs::symlink(tree.path("live"), tree.path("elsewhere/link")).unwrap();
    finish(orch_cmd(
        &tree.path("elsewhere/link"),
        tree.root(),
        &["render", "--all"],
    ))
    .ok();
    assert!(tree.path(".orch/work/prod/us-east-1/data").is_dir());
    assert!(!tree.path("elsewhere/.orch").exists());
}

// ---------------------------------------------------------------------------------------------
// Concurrent renders: both succeed (the second waits for the tree lock); a run is not waited for.

#[test]
fn concurrent_renders_all_succeed() {
    let tree = big_tree(300);
    for round in 0..3 {
        let children: Vec<_> = (0..4)
            .map(|_| {
                start(
                    &mut orch_cmd(&tree.path("live"), tree.root(), &["render", "--all"]),
                    Stdio::piped(),
                    Stdio::piped(),
                )
            })
            .collect();
        for child in children {
            let out = wait(child);
            assert_eq!(out.code, Some(0), "round {round}: {}", out.stderr);
        }
        // Each round changes every dev node, so the next renders have work to race on.
        std::fs::write(
            tree.path("live/dev/us-east-1/region.yaml"),
            format!("defaults:\n  tags: {{Round: \"{round}\"}}\n"),
        )
        .unwrap();
    }
    assert_eq!(tree.work_dirs().len(), 303);
    assert!(!tree.path(".orch/lock").exists());
    assert_no_temporaries(&tree.path(".orch"));
}

/// Holds `.orch/lock` the way an orch does (flock, then pid and command) until dropped.
struct HeldLock {
    path: PathBuf,
    _file: std::fs::File,
}

impl HeldLock {
    fn take(tree: &Tree, command: &str) -> HeldLock {
        use std::io::Write as _;
        use std::os::fd::AsRawFd as _;
        std::fs::create_dir_all(tree.path(".orch")).unwrap();
        let path = tree.path(".orch/lock");
        let mut file = std::fs::File::create(&path).unwrap();
        // SAFETY: flock(2) on a descriptor this test owns.
        assert_eq!(
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
            0
        );
        write!(file, "{}\n{command}\n", std::process::id()).unwrap();
        HeldLock { path, _file: file }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[test]
fn a_render_is_refused_while_a_run_holds_the_lock() {
    let tree = Tree::new();
    let lock = HeldLock::take(&tree, "run");
    run(&tree, &["render", "--all"]).fails_with(&[&format!(
        "another orch (pid {}) is running on this tree",
        std::process::id()
    )]);
    assert!(!tree.path(".orch/work").exists());
    drop(lock);
    run(&tree, &["render", "--all"]).ok();
}

#[test]
fn a_render_waits_for_another_render() {
    let tree = Tree::new();
    let lock = HeldLock::take(&tree, "render");
    let child = start(
        &mut orch_cmd(&tree.path("live"), tree.root(), &["render", "--all"]),
        Stdio::piped(),
        Stdio::piped(),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !tree.path(".orch/work").exists(),
        "the render did not wait for the lock"
    );
    drop(lock);
    wait(child).ok();
    assert_eq!(tree.work_dirs().len(), 3);
}

// ---------------------------------------------------------------------------------------------
// A closed stdout or stderr (`orch graph | head -1`) ends a printing command quietly.

/// A pipe whose reading end is already closed: every write to it fails with EPIPE.
fn closed_pipe() -> OwnedFd {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills two new descriptors, which are owned from here on.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    write
}

fn with_closed_stdout(tree: &Tree, args: &[&str]) -> Ended {
    let mut cmd = orch_cmd(&tree.path("live"), tree.root(), args);
    wait(start(&mut cmd, Stdio::from(closed_pipe()), Stdio::piped()))
}

#[test]
fn every_printing_command_ends_quietly_on_a_closed_stdout() {
    let tree = Tree::new().file(
        ".orch/outputs/prod/us-east-1/data.json",
        "{\"key_arn\": {\"value\": \"arn:aws:kms:us-east-1:111111111111:key/x\"}}\n",
    );
    for args in [
        &["validate"][..],
        &["graph"],
        &["graph", "--format", "dot"],
        &["graph", "--format", "json"],
        &["explain", "prod/us-east-1/data"],
        &["policy", "prod/us-east-1/data"],
        &["policy", "prod/us-east-1/data", "--explain"],
        &["output", "prod/us-east-1/data"],
        &["render", "--all"],
        &["generate", "tfvars", "--env", "prod", "--out", "tv"],
        &["--help"],
        &["--version"],
    ] {
        let out = with_closed_stdout(&tree, args);
        assert!(
            out.signal == Some(libc::SIGPIPE) || out.code == Some(0),
            "{args:?}: {out:?}"
        );
        out.quiet_on_closed_pipe();
    }
    // The files were written whole before the summary failed to print.
    assert_eq!(tree.work_dirs().len(), 3);
    assert_eq!(files_under(&tree.path("tv")).len(), 3);
    assert!(!tree.path(".orch/lock").exists());
}

/// `orch ARGS --no-color --terraform-bin <the fake terraform>` on `tree`, its state in the tree.
fn run_with_the_fake(tree: &Tree, args: &[&str]) -> Command {
    let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake/terraform");
    let state = tree.path("fake-state");
    std::fs::create_dir_all(&state).unwrap();
    let mut all = args.to_vec();
    all.extend(["--no-color", "--terraform-bin"]);
    let mut cmd = orch_cmd(&tree.path("live"), tree.root(), &all);
    cmd.arg(&fake).env("FAKE_TF_STATE", &state);
    cmd
}

#[test]
fn a_run_is_not_killed_by_a_closed_stdout() {
    let tree = Tree::new();
    let mut cmd = run_with_the_fake(&tree, &["plan", "--all"]);
    cmd.env("FAKE_TF_NO_CHANGES", "1");
    let out = wait(start(&mut cmd, Stdio::from(closed_pipe()), Stdio::piped()));
    out.ok();
    assert!(out.stderr.contains("prod/us-east-1/data"), "{}", out.stderr);
}

#[test]
fn an_apply_with_a_closed_stderr_finishes_every_node() {
    // `orch apply --all 2>&1 | head -1`: the progress lines fail to print, the run goes on.
    let tree = Tree::new();
    let report = tree.path("run.json");
    let mut cmd = run_with_the_fake(
        &tree,
        &[
            "apply",
            "--all",
            "--auto-approve",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    let out = wait(start(&mut cmd, Stdio::piped(), Stdio::from(closed_pipe())));
    out.ok();
    let report: serde_json::Value = serde_json::from_str(&tree.read("run.json")).unwrap();
    let nodes = report["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{report}");
    for node in nodes {
        assert_eq!(node["status"], "ok", "{report}");
    }
}

#[test]
fn head_dash_one_on_a_long_listing_is_quiet() {
    let tree = big_tree(1000);
    let orch = env!("CARGO_BIN_EXE_orch");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("\"$ORCH\" --live live graph --format json | head -1; \"$ORCH\" --live live graph | head -0")
        .env("ORCH", orch)
        .current_dir(tree.root());
    let out = finish(cmd);
    out.ok();
    assert_eq!(out.stdout, "{\n");
    assert_eq!(out.stderr, "", "orch complained about the closed pipe");
}

#[test]
fn a_closed_stderr_ends_an_invalid_tree_quietly() {
    let tree = Tree::new().file("live/dev/us-east-1/app/node.yaml", "descriptoin: typo\n");
    let mut cmd = orch_cmd(&tree.path("live"), tree.root(), &["validate"]);
    let out = wait(start(&mut cmd, Stdio::piped(), Stdio::from(closed_pipe())));
    assert_eq!(out.signal, Some(libc::SIGPIPE), "{out:?}");
    assert_eq!(out.stdout, "");
}

// ---------------------------------------------------------------------------------------------
// Messages: a foreign templates/ folder and bad --live targets name the path and the fix.

#[test]
fn a_templates_folder_that_is_not_orchs_is_named_with_the_fix() {
    let tree = Tree::new().file("templates/site/index.html", "<html></html>\n");
    let dir = tree.path("templates");
    for args in [&["validate"][..], &["graph"], &["render", "--all"]] {
        run(&tree, args).fails_with(&[
            &format!(
                "{}/ is not a folder of orch templates: it has no common/",
                dir.display()
            ),
            "move it away and orch uses its built-in templates",
        ]);
    }
    assert!(!tree.path(".orch").exists());
}

#[test]
fn a_template_kind_missing_a_file_is_named_with_its_folder() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tree = Tree::new()
        .copy(&repo.join("templates"), "templates")
        .file("templates/extra/main.tf", "# half a kind\n");
    let dir = tree.path("templates");
    run(&tree, &["validate"]).fails_with(&[
        &format!(
            "template folder {}/extra/ lacks variables.tf",
            dir.display()
        ),
        "or move extra/ out of",
    ]);
}

#[test]
fn a_live_path_that_is_missing_or_a_file_is_one_clear_error() {
    let tree = Tree::new();
    let out = finish(orch_cmd(Path::new("nowhere"), tree.root(), &["validate"]));
    out.fails_with(&["error: nowhere does not exist", "pass --live DIR"]);
    assert_eq!(out.reported_errors(), 1);

    let out = finish(orch_cmd(
        Path::new("live/orch.yaml"),
        tree.root(),
        &["render", "--all"],
    ));
    out.fails_with(&[
        "error: live/orch.yaml is a file, not a directory",
        "pass --live live",
    ]);
    assert_eq!(out.reported_errors(), 1);
    assert!(!tree.path(".orch").exists());
}

impl Ended {
    /// Headlines of the errors, without the closing summary line.
    fn reported_errors(&self) -> usize {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("error: ") && !l.ends_with("nothing was run"))
            .count()
    }
}

/// Runs `cmd` without the capabilities that let root ignore file permissions, so permission
/// tests mean the same as root (CI) and as a user. Needs `setpriv` (util-linux) when root.
fn unprivileged(cmd: &Command) -> Command {
    let mut wrapped = Command::new(cmd.get_program());
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let found = Command::new("setpriv").arg("--version").output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "setpriv is not on PATH: install util-linux (apt-get install util-linux)"
        );
        wrapped = Command::new("setpriv");
        wrapped
            .arg("--bounding-set=-dac_override,-dac_read_search,-fowner")
            .arg("--")
            .arg(cmd.get_program());
    }
    wrapped.args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_live_dir_without_permission_is_one_clear_error() {
    let tree = Tree::new();
    chmod(&tree.path("live"), 0o000);
    let out = finish(unprivileged(&orch_cmd(
        &tree.path("live"),
        tree.root(),
        &["validate"],
    )));
    chmod(&tree.path("live"), 0o755);
    out.fails_with(&[
        "cannot read",
        "Permission denied",
        "permission to list and enter",
    ]);
    assert_eq!(out.reported_errors(), 1, "{}", out.stderr);
    assert!(!out.stderr.contains("no orch.yaml"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------------
// Faults of .orch/: not creatable, read-only, a full disk. A clear error naming the path, and
// every file either whole or absent.

#[test]
fn an_orch_that_is_a_file_is_named() {
    let tree = Tree::new().file(".orch", "not a directory\n");
    run(&tree, &["render", "--all"]).fails_with(&[
        &format!(
            "cannot create the lock {}",
            tree.path(".orch/lock").display()
        ),
        "make it a writable directory",
    ]);
    assert_eq!(tree.read(".orch"), "not a directory\n");
}

#[test]
fn an_orch_that_cannot_be_created_is_named() {
    let tree = Tree::new();
    chmod(tree.root(), 0o555);
    let render = finish(unprivileged(&orch_cmd(
        &tree.path("live"),
        tree.root(),
        &["render", "--all"],
    )));
    let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake/terraform");
    let fake = fake.to_str().expect("the repository path is UTF-8");
    let plan = finish(unprivileged(&orch_cmd(
        &tree.path("live"),
        tree.root(),
        &["plan", "--all", "--terraform-bin", fake],
    )));
    chmod(tree.root(), 0o755);
    for out in [render, plan] {
        out.fails_with(&[
            &format!(
                "cannot create the lock {}",
                tree.path(".orch/lock").display()
            ),
            "Permission denied",
        ]);
    }
    assert!(!tree.path(".orch").exists());
}

/// Runs `script` with `sh` in a private mount namespace (so its mounts vanish with it), as root
/// or in a user namespace. `$ORCH` is the binary, `$ROOT` the tree.
fn in_mount_namespace(tree: &Tree, script: &str) -> Ended {
    let mut cmd = Command::new("unshare");
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        cmd.arg("--user").arg("--map-root-user");
    }
    cmd.arg("--mount")
        .arg("sh")
        .arg("-c")
        .arg(script)
        .env("ORCH", env!("CARGO_BIN_EXE_orch"))
        .env("ROOT", tree.root())
        .current_dir(tree.root());
    let out = finish(cmd);
    assert!(
        !out.stderr.contains("unshare: ") && !out.stderr.contains("mount: "),
        "cannot make a private mount namespace (needs root or user namespaces, and unshare from util-linux):\n{}",
        out.stderr
    );
    out
}

#[test]
fn a_read_only_orch_is_named_and_nothing_is_written() {
    let tree = Tree::new().dir(".orch");
    let out = in_mount_namespace(
        &tree,
        r#"mount -t tmpfs -o ro tmpfs "$ROOT/.orch" || exit 99
"$ORCH" --live "$ROOT/live" render --all"#,
    );
    out.fails_with(&[
        &format!(
            "cannot create the lock {}",
            tree.path(".orch/lock").display()
        ),
        "Read-only file system",
    ]);
    // With only the work directory read-only, the lock is taken and the render names it.
    let out = in_mount_namespace(
        &tree,
        r#"mkdir -p "$ROOT/.orch/work" && mount -t tmpfs -o ro tmpfs "$ROOT/.orch/work" || exit 99
"$ORCH" --live "$ROOT/live" render --all"#,
    );
    out.fails_with(&[
        &format!("writing {}", tree.path(".orch/work/").display()),
        "Read-only file system",
    ]);
    assert!(!tree.path(".orch/lock").exists());
}

#[test]
fn a_render_removes_the_temporaries_of_a_killed_one() {
    let tree = Tree::new();
    run(&tree, &["render", "--all"]).ok();
    let leftover = tree.path(".orch/work/dev/us-east-1/app/.orch-tmp-999999-0");
    std::fs::write(&leftover, "half a file").unwrap();
    std::fs::write(tree.path(".orch/work/dev/us-east-1/app/notes.txt"), "mine").unwrap();
    run(&tree, &["render", "--all"]).ok();
    assert!(!leftover.exists());
    assert!(tree.path(".orch/work/dev/us-east-1/app/notes.txt").exists());
}

/// A render of the base tree in a fresh directory: what each work file must hold.
fn good_render(tree_with: impl Fn(Tree) -> Tree) -> Tree {
    let good = tree_with(Tree::new());
    run(&good, &["render", "--all"]).ok();
    good
}

/// Every file under `after/work` is byte for byte the one a good render writes.
fn assert_whole(after: &Path, good: &Tree) {
    for file in files_under(after) {
        let got = std::fs::read(after.join(&file)).unwrap();
        let want = std::fs::read(good.path(".orch/work").join(&file))
            .unwrap_or_else(|e| panic!("{file} is not a file a render writes: {e}"));
        assert!(got == want, "{file} is not whole after the failed write");
    }
    assert_no_temporaries(after);
}

#[test]
fn a_full_disk_during_render_leaves_whole_files_and_a_clear_error() {
    let tree = big_tree(40).dir(".orch");
    // Room for the lock and a few nodes, not for 43.
    let out = in_mount_namespace(
        &tree,
        r#"mount -t tmpfs -o size=64k tmpfs "$ROOT/.orch" || exit 99
"$ORCH" --live "$ROOT/live" render --all; rc=$?
cp -a "$ROOT/.orch/work" "$ROOT/after" 2>/dev/null || mkdir "$ROOT/after"
exit $rc"#,
    );
    out.fails_with(&[
        "No space left on device",
        &tree.path(".orch/work").display().to_string(),
    ]);
    let good = good_render(|_| big_tree(40));
    assert_whole(&tree.path("after"), &good);
}

#[test]
fn a_full_disk_during_a_rerender_keeps_the_old_files() {
    let tree = Tree::new()
        .dir(".orch")
        .file(
            "changed.yaml",
            &format!(
                "description: {}\naliases: [dev/app]\nkey_users: [arn:aws:iam::222222222222:role/app]\n",
                "x".repeat(8000)
            ),
        );
    // Render, fill the disk but for the page the lock takes, change a node, render again: the
    // second render fails, and the first render's files stay as they were.
    let out = in_mount_namespace(
        &tree,
        r#"mount -t tmpfs -o size=1m tmpfs "$ROOT/.orch" || exit 99
"$ORCH" --live "$ROOT/live" render --all || exit 98
dd if=/dev/zero of="$ROOT/.orch/reserve" bs=4k count=1 2>/dev/null
dd if=/dev/zero of="$ROOT/.orch/filler" bs=4k 2>/dev/null
rm "$ROOT/.orch/reserve"
cp "$ROOT/changed.yaml" "$ROOT/live/dev/us-east-1/app/node.yaml"
"$ORCH" --live "$ROOT/live" render --all; rc=$?
cp -a "$ROOT/.orch/work" "$ROOT/after"
exit $rc"#,
    );
    out.fails_with(&[
        "No space left on device",
        &tree
            .path(".orch/work/dev/us-east-1/app/terraform.tfvars.json")
            .display()
            .to_string(),
    ]);
    assert_whole(&tree.path("after"), &good_render(|t| t));
}

#[test]
fn a_full_disk_during_generate_leaves_whole_files() {
    let tree = big_tree(40).dir("tv");
    let out = in_mount_namespace(
        &tree,
        r#"mount -t tmpfs -o size=32k tmpfs "$ROOT/tv" || exit 99
"$ORCH" --live "$ROOT/live" generate tfvars --env dev --out "$ROOT/tv"; rc=$?
cp -a "$ROOT/tv" "$ROOT/after"
exit $rc"#,
    );
    out.fails_with(&[
        "No space left on device",
        &tree.path("tv").display().to_string(),
    ]);
    let good = big_tree(40);
    generate(&good, "dev", &[]).ok();
    let after = tree.path("after");
    for file in files_under(&after) {
        if file == ".orch-generated" {
            continue;
        }
        assert_eq!(
            std::fs::read(after.join(&file)).unwrap(),
            std::fs::read(good.path("tv").join(&file)).unwrap(),
            "{file} is not whole"
        );
    }
    assert_no_temporaries(&after);
}
