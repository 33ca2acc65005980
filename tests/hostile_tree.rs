//! Hostile trees: what a careless or malicious user can put in `live/` beyond a typo. Each case
//! checks that orch refuses it like a compiler (exit 1, no panic, the file and line, what is wrong
//! and how to fix it, nothing rendered), or, where the tree is valid, that nothing in it was
//! silently dropped or coerced. Grouped by the class of defect they guard against.

mod common;

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Output, Tree};

const ORCH: &str = "live/orch.yaml";
const DEV: &str = "live/dev/account.yaml";
const APP: &str = "live/dev/us-east-1/app/node.yaml";
const GRANT: &str = "live/prod/us-east-1/reader/node.yaml";
const WIDGET: &str = "live/dev/us-east-1/widget/node.yaml";

/// `orch --live <tmp>/live ARGS`, killed (and the test failed) if it runs for more than 20 s: a
/// FIFO opened for reading would block forever. With `as_nobody`, orch runs as the unprivileged
/// user `nobody` (through `setpriv` when the tests run as root, which ignores permissions).
fn run_bounded(tree: &Tree, args: &[&str], as_nobody: bool) -> Output {
    let orch = env!("CARGO_BIN_EXE_orch");
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mut command = if as_nobody && root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", orch]);
        c
    } else {
        Command::new(orch)
    };
    let mut child = command
        .arg("--live")
        .arg(tree.path("live"))
        .args(args)
        .current_dir(tree.root())
        .env_remove("ORCH_LIVE")
        .env_remove("ORCH_PROFILE")
        .env_remove("ORCH_TERRAFORM")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "run orch (as nobody, setpriv from util-linux is needed when the tests run as root)",
        );
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for orch") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("orch {args:?} did not finish in 20 s (blocked on a FIFO?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        stdout: out_reader.join().expect("reader"),
        stderr: err_reader.join().expect("reader"),
        code: status.code().expect("orch exited, not killed by a signal"),
    }
}

/// [`Tree::rejects`], with every run bounded in time (and optionally as `nobody`).
fn rejects_bounded(tree: &Tree, as_nobody: bool, at: &[&str], says: &[&str]) -> Output {
    let out = run_bounded(tree, &["validate"], as_nobody);
    out.assert_rejects(at, says);
    run_bounded(tree, &["render", "--all"], as_nobody).assert_invalid();
    assert!(!tree.path(".orch").exists(), "an invalid tree rendered");
    out
}

fn mkfifo(tree: Tree, path: &str) -> Tree {
    let full = tree.path(path);
    std::fs::create_dir_all(full.parent().expect("a parent")).unwrap();
    let c = std::ffi::CString::new(full.to_str().expect("UTF-8 path")).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o644) },
        0,
        "mkfifo {path}"
    );
    tree
}

fn symlink(tree: Tree, target: &str, link: &str) -> Tree {
    let full = tree.path(link);
    std::fs::create_dir_all(full.parent().expect("a parent")).unwrap();
    std::os::unix::fs::symlink(target, full).unwrap();
    tree
}

/// A grant in prod/us-east-1 with the given fields after `kind: grant`.
fn grant(body: &str) -> Tree {
    Tree::new().file(GRANT, &format!("kind: grant\n{body}"))
}

/// The base tree with a `widget` kind (a folder under templates/) and a node of it.
fn widget(inputs: &str) -> Tree {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    Tree::new()
        .copy(&repo.join("templates"), "templates")
        .file("templates/widget/main.tf", "# a user's kind\n")
        .file(
            "templates/widget/variables.tf",
            "variable \"settings\" {\n  type = any\n  default = null\n}\n",
        )
        .file("templates/widget/outputs.tf", "")
        .file(WIDGET, &format!("kind: widget\ninputs:\n{inputs}"))
}

/// The rendered `terraform.tfvars.json` of a node of a valid tree.
fn tfvars(tree: &Tree, address: &str) -> serde_json::Value {
    tree.run(&["render", address]).assert_success();
    let text = tree.read(&format!(".orch/work/{address}/terraform.tfvars.json"));
    serde_json::from_str(&text).expect("tfvars are JSON")
}

fn assert_no_raw_terminal_characters(text: &str) {
    for c in ['\x1b', '\u{202e}', '\u{2066}', '\x07', '\r'] {
        assert!(
            !text.contains(c),
            "raw {:?} reached the terminal:\n{text}",
            c
        );
    }
}

// ---- files on disk: only directories and regular files, read whole or reported -------------
// FIFOs are reported without being opened (every run here is bounded in time); symbolic links
// are refused wherever they are; a directory where a YAML file belongs says so.

#[test]
fn fifo_as_node_yaml() {
    let tree = mkfifo(Tree::new(), "live/prod/us-east-1/audit/node.yaml");
    rejects_bounded(
        &tree,
        false,
        &["live/prod/us-east-1/audit/node.yaml"],
        &["`node.yaml` is a FIFO (named pipe), not a file or directory"],
    );
}

#[test]
fn fifo_as_account_yaml() {
    let tree = mkfifo(Tree::new().remove(DEV), DEV);
    let out = rejects_bounded(
        &tree,
        false,
        &[DEV],
        &["`account.yaml` is a FIFO (named pipe)"],
    );
    assert!(
        !out.stderr.contains("has no account.yaml"),
        "{}",
        out.stderr
    );
}

#[test]
fn fifo_as_region_yaml() {
    let tree = mkfifo(Tree::new(), "live/prod/us-east-1/region.yaml");
    rejects_bounded(
        &tree,
        false,
        &["live/prod/us-east-1/region.yaml"],
        &["`region.yaml` is a FIFO (named pipe)"],
    );
}

#[test]
fn fifo_as_orch_yaml() {
    let tree = mkfifo(Tree::new().remove(ORCH), ORCH);
    let out = rejects_bounded(&tree, false, &[ORCH], &["`orch.yaml` is a FIFO"]);
    assert!(!out.stderr.contains("no orch.yaml"), "{}", out.stderr);
}

#[test]
fn fifo_beside_a_node_yaml() {
    let tree = mkfifo(Tree::new(), "live/dev/us-east-1/app/notes");
    rejects_bounded(
        &tree,
        false,
        &["live/dev/us-east-1/app/notes"],
        &["`notes` is a FIFO (named pipe), not a file or directory"],
    );
}

#[test]
fn socket_in_a_region_directory() {
    let tree = Tree::new();
    let _listener =
        std::os::unix::net::UnixListener::bind(tree.path("live/prod/us-east-1/agent")).unwrap();
    rejects_bounded(
        &tree,
        false,
        &["live/prod/us-east-1/agent"],
        &["`agent` is a socket, not a file or directory"],
    );
}

#[test]
fn directory_named_node_yaml() {
    let tree = Tree::new().dir("live/prod/us-east-1/audit/node.yaml");
    let out = rejects_bounded(
        &tree,
        false,
        &["live/prod/us-east-1/audit/node.yaml"],
        &[
            "`node.yaml` is a directory, not a file",
            "node.yaml must be a file",
        ],
    );
    assert_eq!(out.errors().len(), 1, "{}", out.stderr);
}

#[test]
fn directory_named_account_yaml_is_not_a_bad_region_name() {
    let tree = Tree::new().remove(DEV).dir(DEV);
    let out = rejects_bounded(
        &tree,
        false,
        &[DEV],
        &["`account.yaml` is a directory, not a file"],
    );
    assert!(!out.stderr.contains("region"), "{}", out.stderr);
    assert_eq!(out.errors().len(), 1, "{}", out.stderr);
}

#[test]
fn directory_named_account_yaml_in_a_region_directory() {
    let tree = Tree::new().dir("live/prod/us-east-1/account.yaml");
    let out = rejects_bounded(
        &tree,
        false,
        &["live/prod/us-east-1/account.yaml"],
        &[
            "`account.yaml` is a directory, not a file",
            "may hold only region.yaml",
        ],
    );
    assert!(
        !out.stderr.contains("bad node directory name"),
        "{}",
        out.stderr
    );
}

#[test]
fn directory_named_region_yaml() {
    let tree = Tree::new().dir("live/dev/us-east-1/region.yaml");
    rejects_bounded(
        &tree,
        false,
        &["live/dev/us-east-1/region.yaml"],
        &["`region.yaml` is a directory, not a file"],
    );
}

#[test]
fn directory_named_orch_yaml() {
    let tree = Tree::new().remove(ORCH).dir(ORCH);
    let out = rejects_bounded(
        &tree,
        false,
        &[ORCH],
        &["`orch.yaml` is a directory, not a file"],
    );
    assert!(!out.stderr.contains("bad account"), "{}", out.stderr);
}

#[test]
fn symlinked_node_directory_inside_the_tree() {
    let tree = symlink(
        Tree::new(),
        "../../../dev/us-east-1/app",
        "live/prod/eu-west-1/app",
    );
    rejects_bounded(
        &tree,
        false,
        &["live/prod/eu-west-1/app"],
        &["`app` is a symbolic link", "orch does not follow links"],
    );
}

#[test]
fn symlinked_region_directory() {
    let tree = symlink(Tree::new(), "us-east-1", "live/prod/eu-west-1");
    rejects_bounded(
        &tree,
        false,
        &["live/prod/eu-west-1"],
        &["`eu-west-1` is a symbolic link"],
    );
}

#[test]
fn symlinked_account_directory_leaving_the_tree() {
    let tree = Tree::new()
        .file("elsewhere/account.yaml", "account_id: \"333333333333\"\n")
        .dir("elsewhere/us-east-1");
    let tree = symlink(tree, "../elsewhere", "live/shared");
    rejects_bounded(
        &tree,
        false,
        &["live/shared"],
        &["`shared` is a symbolic link"],
    );
}

#[test]
fn symlinked_node_yaml() {
    let tree = Tree::new().file("shared/node.yaml", "description: shared\n");
    let tree = symlink(
        tree,
        "../../../../shared/node.yaml",
        "live/dev/us-east-1/other/node.yaml",
    );
    let out = rejects_bounded(
        &tree,
        false,
        &["live/dev/us-east-1/other/node.yaml"],
        &["`node.yaml` is a symbolic link"],
    );
    assert!(!out.stderr.contains("has no node.yaml"), "{}", out.stderr);
}

#[test]
fn node_directory_inside_a_node_directory() {
    Tree::new()
        .file("live/dev/us-east-1/app/inner/node.yaml", "description: x\n")
        .rejects(
            &["live/dev/us-east-1/app/inner/node.yaml"],
            &[
                "node `inner` is inside another node's directory",
                "nodes do not nest",
            ],
        );
}

// ---- messages that mislead: permissions, cascades, --live /, homoglyphs ---------------------

#[test]
fn unreadable_node_directory_says_permission_denied() {
    let tree = Tree::new().file("live/dev/us-east-1/locked/node.yaml", "description: x\n");
    set_mode(tree.root(), 0o755);
    set_mode(&tree.path("live/dev/us-east-1/locked"), 0o000);
    let out = rejects_bounded(
        &tree,
        true,
        &["live/dev/us-east-1/locked"],
        &["permission denied", "check its permissions"],
    );
    assert!(!out.stderr.contains("has no node.yaml"), "{}", out.stderr);
    set_mode(&tree.path("live/dev/us-east-1/locked"), 0o755);
}

#[test]
fn unreadable_region_directory_is_one_error_not_a_cascade() {
    let tree = Tree::new()
        .file(
            "live/dev/us-east-1/reader/node.yaml",
            "kind: key-access\nkey: prod/eu-west-1/data\nroles: [arn:aws:iam::222222222222:role/app]\ncapabilities: [read-data]\n",
        )
        .file("live/prod/eu-west-1/other/node.yaml", "description: x\n")
        .file(
            "live/dev/us-east-1/late/node.yaml",
            "description: x\ndepends_on: [prod/eu-west-1/other]\n",
        );
    set_mode(tree.root(), 0o755);
    set_mode(&tree.path("live/prod/eu-west-1"), 0o000);
    let out = rejects_bounded(
        &tree,
        true,
        &["live/prod/eu-west-1"],
        &["cannot read", "permission denied"],
    );
    assert_eq!(out.errors().len(), 1, "{}", out.stderr);
    set_mode(&tree.path("live/prod/eu-west-1"), 0o755);
}

#[test]
fn unreadable_node_yaml_says_permission_denied() {
    let tree = Tree::new();
    set_mode(tree.root(), 0o755);
    set_mode(&tree.path(APP), 0o000);
    let out = rejects_bounded(&tree, true, &[APP], &["Permission denied"]);
    assert_eq!(out.errors().len(), 1, "{}", out.stderr);
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn live_without_orch_yaml_reports_only_that() {
    // Like `--live /`: many directories, none of them a tree.
    let mut tree = Tree::empty();
    for dir in ["bin", "etc/ssl", "home/alice/src", "usr/lib", "Var"] {
        tree = tree.file(&format!("live/{dir}/config.yml"), "x: 1\n");
    }
    let tree = mkfifo(symlink(tree, "usr/lib", "live/lib"), "live/initctl");
    let out = run_bounded(&tree, &["validate"], false);
    out.assert_invalid();
    out.assert_points_at("live");
    assert_eq!(
        out.errors(),
        vec![format!("no orch.yaml in {}", tree.path("live").display())]
    );
}

#[test]
fn homoglyph_region_directory() {
    let tree = Tree::new().file(
        "live/prod/us-\u{435}ast-1/key/node.yaml",
        "description: x\n",
    );
    let out = tree.rejects(
        &["live/prod/us-\u{435}ast-1"],
        &[
            "has a non-ASCII character at position 4: `\u{435}` (U+0435), which looks like `e`",
            "rename the directory to `us-east-1`, typed in ASCII",
        ],
    );
    assert_eq!(out.errors().len(), 1, "{}", out.stderr);
}

#[test]
fn homoglyph_in_a_key_reference() {
    grant("key: prod/us-east-1/d\u{430}ta\ngrantee: arn:aws:iam::222222222222:role/r\noperations: [Decrypt]\n")
        .rejects(
            &[&format!("{GRANT}:2")],
            &["non-ASCII character at position 2: `\u{430}` (U+0430), which looks like `a`"],
        );
}

// ---- null and empty values: an error where a value is required, absent where optional -------

#[test]
fn null_account_id() {
    Tree::new()
        .file(
            DEV,
            "account_id: ~\nenvironment: dev\nregions: [us-east-1]\n",
        )
        .rejects(
            &[&format!("{DEV}:1")],
            &["`account_id` is required, but it is null"],
        );
}

#[test]
fn empty_account_id() {
    Tree::new()
        .file(
            DEV,
            "account_id: \"\"\nenvironment: dev\nregions: [us-east-1]\n",
        )
        .rejects(
            &[&format!("{DEV}:1")],
            &["`account_id` is required, but it is empty"],
        );
}

#[test]
fn null_environment_and_regions() {
    Tree::new()
        .file(
            DEV,
            "account_id: \"222222222222\"\nenvironment:\nregions: null\n",
        )
        .rejects(
            &[&format!("{DEV}:2"), &format!("{DEV}:3")],
            &[
                "`environment` is required, but it is null",
                "`regions` is required, but it is null",
            ],
        );
}

#[test]
fn null_key_of_a_grant() {
    grant("key: null\ngrantee: arn:aws:iam::222222222222:role/r\noperations: [Decrypt]\n").rejects(
        &[&format!("{GRANT}:2")],
        &["`key` is required, but it is null"],
    );
}

#[test]
fn empty_key_of_a_grant() {
    grant("key: \"\"\ngrantee: arn:aws:iam::222222222222:role/r\noperations: [Decrypt]\n").rejects(
        &[&format!("{GRANT}:2")],
        &["`key` is required, but it is empty"],
    );
}

#[test]
fn null_grantee() {
    grant("key: prod/us-east-1/data\ngrantee: ~\noperations: [Decrypt]\n").rejects(
        &[&format!("{GRANT}:3")],
        &["`grantee` is required, but it is null"],
    );
}

#[test]
fn null_bucket() {
    let node = "live/prod/us-east-1/bucket/node.yaml";
    Tree::new()
        .file(
            node,
            "kind: s3-bucket\nkey: prod/us-east-1/data\nbucket: null\n",
        )
        .rejects(
            &[&format!("{node}:3")],
            &["`bucket` is required, but it is null"],
        );
}

#[test]
fn null_roles_and_capabilities_of_key_access() {
    let node = "live/dev/us-east-1/reader/node.yaml";
    Tree::new()
        .file(
            node,
            "kind: key-access\nkey: prod/us-east-1/data\nroles:\ncapabilities: ~\n",
        )
        .rejects(
            &[&format!("{node}:3"), &format!("{node}:4")],
            &[
                "`roles` is required, but it is null",
                "`capabilities` is required, but it is null",
            ],
        );
}

#[test]
fn null_service_name() {
    Tree::new()
        .file(
            APP,
            "description: a\nkey_users: [arn:aws:iam::222222222222:role/app]\nservices:\n  - {service: ~, capabilities: [read-data]}\n",
        )
        .rejects(&[&format!("{APP}:4")], &["`service` is required, but it is null"]);
}

#[test]
fn null_backend_type_and_wave_name() {
    Tree::new()
        .file(
            ORCH,
            "backend:\n  type: ~\nwaves:\n  - name:\n    match: [\"**\"]\n",
        )
        .rejects(
            &[&format!("{ORCH}:2"), &format!("{ORCH}:4")],
            &[
                "`type` is required, but it is null",
                "`name` is required, but it is null",
            ],
        );
}

#[test]
fn null_item_in_a_principal_list() {
    Tree::new()
        .file(
            APP,
            "description: a\nkey_users: [arn:aws:iam::222222222222:role/app, ~]\n",
        )
        .rejects(&[&format!("{APP}:2")], &["an item of `key_users` is null"]);
}

#[test]
fn null_tag_value_is_an_error() {
    let out = Tree::new()
        .file(APP, "description: a\nkey_users: [arn:aws:iam::222222222222:role/app]\ntags:\n  Team: null\n")
        .rejects(
            &[&format!("{APP}:4")],
            &["`Team` in `tags` has no value (null)", "write `Team: \"\"` for an empty value"],
        );
    assert!(!out.stderr.contains("\"null\""), "{}", out.stderr);
}

#[test]
fn null_encryption_context_value() {
    Tree::new()
        .file(
            APP,
            "description: a\nkey_users: [arn:aws:iam::222222222222:role/app]\nencryption_context:\n  Department:\n",
        )
        .rejects(&[&format!("{APP}:4")], &["`Department` in `encryption_context` has no value"]);
}

#[test]
fn null_custom_input() {
    widget("  settings: ~\n").rejects(
        &[&format!("{WIDGET}:3")],
        &["input `settings` has no value (null)"],
    );
}

#[test]
fn s3_backend_setting_under_a_local_backend() {
    Tree::new()
        .file(ORCH, "backend:\n  type: local\n  bucket: acme-tfstate\n")
        .rejects(
            &[&format!("{ORCH}:3")],
            &["`bucket` is a setting of the s3 backend, not of `type: local`"],
        );
}

#[test]
fn empty_terraform_binary() {
    Tree::new()
        .file(ORCH, "terraform:\n  binary: \"\"\n")
        .rejects(&[&format!("{ORCH}:2")], &["`binary` is empty"]);
}

#[test]
fn null_optional_fields_are_absent() {
    let tree = Tree::new().file(
        APP,
        "description: ~\naliases: [dev/app]\nkey_users: [arn:aws:iam::222222222222:role/app]\nrotation:\ndeletion_window_days: null\nowner: ~\n",
    );
    tree.run(&["validate"]).assert_success();
    let vars = tfvars(&tree, "dev/us-east-1/app");
    assert_eq!(vars["description"], "");
    assert_eq!(vars["enable_key_rotation"], true);
    // The default of orch.yaml is hidden by the null: orch's own default applies.
    assert_eq!(vars["deletion_window_in_days"], 30);
    assert!(vars["default_tags"].get("Owner").is_none(), "{vars}");
}

// ---- quoting: a quoted value is text, a value is taken as written --------------------------

#[test]
fn quoted_null_description_is_text() {
    let tree = Tree::new().file(
        APP,
        "description: \"null\"\nkey_users: [arn:aws:iam::222222222222:role/app]\nowner: 'null'\n",
    );
    let vars = tfvars(&tree, "dev/us-east-1/app");
    assert_eq!(vars["description"], "null");
    assert_eq!(vars["default_tags"]["Owner"], "null");
}

#[test]
fn quoted_custom_inputs_stay_strings() {
    let tree = widget(
        "  settings:\n    zip: \"01234\"\n    flag: \"true\"\n    version: \"1.10\"\n    none: 'null'\n    count: 3\n    on: true\n",
    );
    let vars = tfvars(&tree, "dev/us-east-1/widget");
    let settings = &vars["settings"];
    assert_eq!(settings["zip"], "01234", "{vars}");
    assert_eq!(settings["flag"], "true", "{vars}");
    assert_eq!(settings["version"], "1.10", "{vars}");
    assert_eq!(settings["none"], "null", "{vars}");
    assert_eq!(settings["count"], 3, "{vars}");
    assert_eq!(settings["on"], true, "{vars}");
}

#[test]
fn quoted_boolean_is_an_error() {
    Tree::new()
        .file(APP, "description: a\nkey_users: [arn:aws:iam::222222222222:role/app]\nis_enabled: \"false\"\n")
        .rejects(
            &[&format!("{APP}:3")],
            &["`is_enabled` must be true or false, not the quoted text \"false\"", "remove the quotes"],
        );
}

#[test]
fn quoted_number_is_an_error() {
    Tree::new()
        .file(APP, "description: a\nkey_users: [arn:aws:iam::222222222222:role/app]\ndeletion_window_days: '7'\n")
        .rejects(
            &[&format!("{APP}:3")],
            &["`deletion_window_days` must be a whole number, not the quoted text \"7\""],
        );
}

#[test]
fn unquoted_account_id_keeps_its_leading_zero() {
    let tree = Tree::new().file(
        DEV,
        "account_id: 022222222222\nenvironment: dev\nregions: [us-east-1]\ndefaults:\n  key_administrators: [arn:aws:iam::022222222222:role/admin]\n",
    )
    .file(APP, "description: yes\nkey_users: [arn:aws:iam::022222222222:role/app]\ntags: {Version: 1.10}\n");
    let vars = tfvars(&tree, "dev/us-east-1/app");
    assert_eq!(vars["account_id"], "022222222222");
    assert_eq!(vars["description"], "yes");
    assert_eq!(vars["default_tags"]["Version"], "1.10");
    assert!(vars["policy"]
        .as_str()
        .unwrap()
        .contains("arn:aws:iam::022222222222:root"));
}

// ---- terminal injection: control and bidi characters are printed escaped ------------------

#[test]
fn directory_name_with_escape_and_bidi_characters() {
    let name = "app\x1b[2J\u{202e}x";
    let tree = Tree::new().file(
        &format!("live/dev/us-east-1/{name}/node.yaml"),
        "description: x\n",
    );
    let out = tree.rejects(&[], &["bad node directory name", "app\\x1b[2J\\u{202e}x"]);
    assert_no_raw_terminal_characters(&out.stderr);
}

#[test]
fn value_with_escape_and_bidi_characters_in_a_diagnostic() {
    // The bidi override is written raw in the file (YAML allows it), so the quoted source line
    // carries it too; the ESC comes from a YAML escape.
    let out = Tree::new()
        .file(APP, "description: a\naliases: [\"dev/\u{202e}ppa\", \"\\e[31mred\"]\nkey_users: [arn:aws:iam::222222222222:role/app]\n")
        .rejects(
            &[&format!("{APP}:2")],
            &["`dev/\\u{202e}ppa` is not a valid alias name", "`\\x1b[31mred` is not a valid alias name"],
        );
    assert_no_raw_terminal_characters(&out.stderr);
    assert!(
        out.stderr.contains("2| aliases: [\"dev/\\u{202e}ppa\""),
        "{}",
        out.stderr
    );
}

#[test]
fn caret_stays_under_the_value_after_escaping() {
    // Line 4 holds a raw U+2066 (printed as 8 characters) before the value the second error is
    // about: the caret must still be under that value as printed.
    let out = Tree::new()
        .file(
            APP,
            "description: a\nkey_users: [arn:aws:iam::222222222222:role/app]\naliases: [dev/app]\ntags: {Team: \"\u{2066}\", Other: \"a\\rb\"}\n",
        )
        .rejects(
            &[&format!("{APP}:4")],
            &[
                "the value of tag `Team` has a character AWS does not allow in tags: \\u{2066}",
                "the value of tag `Other` has a character AWS does not allow in tags: \\r",
            ],
        );
    assert_no_raw_terminal_characters(&out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    let underlined: Vec<&str> = lines
        .windows(2)
        .filter(|w| w[0].contains("4| tags:"))
        .map(|w| {
            let start = w[1].find('^').expect("a caret");
            let width = w[1].matches('^').count();
            &w[0][start..start + width]
        })
        .collect();
    assert_eq!(underlined, ["\"\\u{2066}\"", "\"a\\rb\""], "{}", out.stderr);
}

#[test]
fn explain_and_graph_print_no_raw_control_characters() {
    let tree = Tree::new().file(
        APP,
        "description: \"\\e]0;pwned\\a\\u202e\"\nkey_users: [arn:aws:iam::222222222222:role/app]\n",
    );
    let explain = tree.run(&["explain", "dev/us-east-1/app"]);
    explain.assert_success();
    assert_no_raw_terminal_characters(&explain.stdout);
    assert!(
        explain
            .stdout
            .contains("description: \"\\u001b]0;pwned\\u0007\\u202e\""),
        "{}",
        explain.stdout
    );
    let graph = tree.run(&["graph", "--format", "text"]);
    graph.assert_success();
    assert_no_raw_terminal_characters(&graph.stdout);
}

#[test]
fn encryption_context_with_control_characters() {
    // `orch policy --explain` prints encryption contexts: they are refused at validate.
    let out = Tree::new()
        .file(
            APP,
            "description: a\nkey_users: [arn:aws:iam::222222222222:role/app]\nencryption_context:\n  Dept: \"fin\\e[0m\"\n",
        )
        .rejects(
            &[&format!("{APP}:4")],
            &["`encryption_context`: `fin\\x1b[0m` holds the control or invisible character \\x1b"],
        );
    assert_no_raw_terminal_characters(&out.stderr);
}

#[test]
fn endpoint_and_wave_name_with_invisible_characters() {
    let out = Tree::new()
        .file(
            ORCH,
            "profiles:\n  sandbox:\n    endpoint: \"http://127.0.0.1:5000/\\u202e\"\nwaves:\n  - {name: \"canary\\u2066\", match: [\"**\"]}\n",
        )
        .rejects(
            &[&format!("{ORCH}:3"), &format!("{ORCH}:5")],
            &[
                "holds the control or invisible character \\u{202e}",
                "`canary\\u{2066}` holds the control or invisible character \\u{2066}",
            ],
        );
    assert_no_raw_terminal_characters(&out.stderr);
}

#[test]
fn kind_with_control_characters() {
    let out = Tree::new().file(APP, "kind: \"key\\e[8m\"\n").rejects(
        &[&format!("{APP}:1")],
        &["bad kind: `key\\x1b[8m` is not a valid name"],
    );
    assert_no_raw_terminal_characters(&out.stderr);
}

// ---- a custom kind's inputs cannot set orch's own variables -------------------------------

#[test]
fn inputs_cannot_set_orch_variables() {
    for name in [
        "account_id",
        "region",
        "role_arn",
        "endpoint",
        "default_tags",
        "key_arn",
    ] {
        widget(&format!("  settings: 1\n  {name}: \"999999999999\"\n")).rejects(
            &[&format!("{WIDGET}:4")],
            &[&format!("input `{name}` is a variable orch sets itself")],
        );
    }
}

#[test]
fn input_that_is_not_a_variable_name() {
    widget("  \"two words\": 1\n").rejects(
        &[&format!("{WIDGET}:3")],
        &["`two words` is not a Terraform variable name"],
    );
}

// ---- AWS limits: tags, descriptions, grant and policy names --------------------------------

#[test]
fn more_than_50_tags_after_layering() {
    let fleet_tags: String = (0..30).map(|i| format!("    Fleet{i}: x\n")).collect();
    let node_tags: String = (0..19).map(|i| format!("  Node{i}: y\n")).collect();
    let out = Tree::new()
        .file(ORCH, &format!("defaults:\n  tags:\n{fleet_tags}"))
        .file(
            APP,
            &format!("description: a\nkey_users: [arn:aws:iam::222222222222:role/app]\ntags:\n{node_tags}"),
        )
        .rejects(
            &[&format!("{APP}:3"), &format!("{ORCH}:3"), &format!("{APP}:4")],
            &[
                "a node would have 51 tags; AWS allows at most 50 on a resource (orch adds Environment and ManagedBy)",
                "dev/us-east-1/app is a node with these tags",
                "30 tag(s) set in this file",
                "19 tag(s) set in this file",
            ],
        );
    assert_eq!(out.errors().len(), 1, "{}", out.stderr);
}

#[test]
fn too_many_tags_from_a_default_is_one_error() {
    let account_tags: String = (0..49).map(|i| format!("    Team{i}: x\n")).collect();
    let out = Tree::new()
        .file(
            DEV,
            &format!("account_id: \"222222222222\"\nenvironment: dev\nregions: [us-east-1]\ndefaults:\n  key_administrators: [arn:aws:iam::222222222222:role/admin]\n  tags:\n{account_tags}"),
        )
        .file("live/dev/us-east-1/other/node.yaml", "description: b\n")
        .rejects(
            &[&format!("{DEV}:6")],
            &["a node would have 51 tags", "49 tag(s) set in this file"],
        );
    assert_eq!(out.errors().len(), 1, "{}", out.stderr);
}

#[test]
fn too_many_tags_on_a_synthesized_replica() {
    let region_tags: String = (0..49).map(|i| format!("    Region{i}: x\n")).collect();
    Tree::new()
        .file(
            "live/prod/eu-west-1/region.yaml",
            &format!("defaults:\n  tags:\n{region_tags}"),
        )
        .rejects(
            &["live/prod/eu-west-1/region.yaml:3"],
            &[
                "a node would have 51 tags",
                "prod/eu-west-1/data is a node with these tags",
            ],
        );
}

#[test]
fn replica_description_over_8192_characters() {
    let node = "live/prod/eu-west-1/data/node.yaml";
    Tree::new()
        .file(
            node,
            &format!(
                "replica_of: prod/us-east-1/data\ndescription: {}\n",
                "d".repeat(8193)
            ),
        )
        .rejects(
            &[&format!("{node}:2")],
            &["a key description is at most 8192 characters; this one has 8193"],
        );
}

#[test]
fn grant_names_aws_refuses() {
    for (name, line) in [("\"two words\"", 5), ("\"it's\"", 5), ("\"a\\nb\"", 5)] {
        grant(&format!("key: prod/us-east-1/data\ngrantee: arn:aws:iam::222222222222:role/r\noperations: [Decrypt]\nname: {name}\n"))
            .rejects(&[&format!("{GRANT}:{line}")], &["is not a valid grant name", "1-256 letters"]);
    }
    grant(&format!("key: prod/us-east-1/data\ngrantee: arn:aws:iam::222222222222:role/r\noperations: [Decrypt]\nname: {}\n", "g".repeat(257)))
        .rejects(&[&format!("{GRANT}:5")], &["is not a valid grant name"]);
}

#[test]
fn key_access_policy_names_aws_refuses() {
    let node = "live/dev/us-east-1/reader/node.yaml";
    for name in ["\"read \\\"data\\\"\"".to_string(), "p".repeat(129)] {
        Tree::new()
            .file(
                node,
                &format!("kind: key-access\nkey: prod/us-east-1/data\nroles: [arn:aws:iam::222222222222:role/app]\ncapabilities: [read-data]\npolicy_name: {name}\n"),
            )
            .rejects(&[&format!("{node}:5")], &["is not a valid IAM policy name", "1-128 letters"]);
    }
}

#[test]
fn tag_keys_aws_refuses() {
    for (key, says) in [
        (
            "AWS:team".to_string(),
            "it starts with aws:, which AWS reserves",
        ),
        ("k".repeat(129), "it is 129 characters long, not 1-128"),
        (
            "\"a;b\"".to_string(),
            "AWS does not allow the character ; in tags",
        ),
    ] {
        Tree::new()
            .file(APP, &format!("description: a\nkey_users: [arn:aws:iam::222222222222:role/app]\ntags:\n  {key}: x\n"))
            .rejects(&[&format!("{APP}:4")], &["is not a valid tag key", says]);
    }
}

#[test]
fn tag_values_aws_refuses() {
    Tree::new()
        .file(APP, &format!("description: a\nkey_users: [arn:aws:iam::222222222222:role/app]\ntags:\n  Team: {}\n", "v".repeat(257)))
        .rejects(&[&format!("{APP}:4")], &["the value of tag `Team` is 257 characters long; AWS takes at most 256"]);
    Tree::new()
        .file(APP, "description: a\nkey_users: [arn:aws:iam::222222222222:role/app]\nowner: \"alice\\tbob\"\n")
        .rejects(&[&format!("{APP}:3")], &["`owner` (the tag Owner) has a character AWS does not allow in tags: \\t"]);
}

// ---- name lengths: checked at validate, before anything is written -------------------------

#[test]
fn node_name_of_255_characters() {
    let name = "n".repeat(255);
    Tree::new()
        .file(
            &format!("live/dev/us-east-1/{name}/node.yaml"),
            "description: x\nkey_users: [arn:aws:iam::222222222222:role/app]\n",
        )
        .rejects(
            &[&format!("live/dev/us-east-1/{name}/node.yaml:1")],
            &["is 255 characters long; a name is at most 64"],
        );
}

#[test]
fn account_name_of_65_characters() {
    let name = "a".repeat(65);
    Tree::new()
        .file(
            &format!("live/{name}/account.yaml"),
            "account_id: \"333333333333\"\nenvironment: x\nregions: [us-east-1]\n",
        )
        .rejects(
            &[&format!("live/{name}/account.yaml:1")],
            &["is 65 characters long", "rename the directory"],
        );
}

#[test]
fn address_with_a_long_name_in_depends_on() {
    Tree::new()
        .file(APP, &format!("description: a\nkey_users: [arn:aws:iam::222222222222:role/app]\ndepends_on: [prod/us-east-1/{}]\n", "x".repeat(70)))
        .rejects(&[&format!("{APP}:3")], &["is 70 characters long; a name is at most 64"]);
}

#[test]
fn a_name_of_64_characters_renders() {
    let name = "k".repeat(64);
    let tree = Tree::new().file(
        &format!("live/dev/us-east-1/{name}/node.yaml"),
        "description: x\nkey_users: [arn:aws:iam::222222222222:role/app]\n",
    );
    let vars = tfvars(&tree, &format!("dev/us-east-1/{name}"));
    assert_eq!(vars["description"], "x");
}
