//! What both fuzz targets share: a scratch directory that holds one `live/` tree at a time, and
//! the run of `orch validate` (then `orch graph` when the tree is valid) in process, exactly as
//! the binary runs them.

use std::path::{Path, PathBuf};

use clap::Parser as _;

/// The built-in kinds and the custom kind the scratch templates add.
pub const KINDS: [&str; 6] = [
    "key",
    "replica",
    "grant",
    "key-access",
    "s3-bucket",
    "app-role",
];

/// One scratch directory per fuzzing process, in memory (`/dev/shm`) when the machine has it.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        };
        let scratch = Scratch {
            dir: dir.expect("create a scratch directory"),
        };
        scratch.stub_templates();
        scratch
    }

    /// Empty templates for every built-in kind and one custom kind, `app-role`, beside `live/`:
    /// validation only needs to know which kinds exist, and parsing the real built-in templates
    /// would take most of each run.
    fn stub_templates(&self) {
        let templates = self.dir.path().join("templates");
        let files = ["versions.tf", "providers.tf", "backend.tf", "variables.tf"]
            .map(|f| format!("common/{f}"))
            .into_iter()
            .chain(KINDS.into_iter().flat_map(|kind| {
                ["main.tf", "variables.tf", "outputs.tf"].map(|f| format!("{kind}/{f}"))
            }));
        for file in files {
            let path = templates.join(file);
            std::fs::create_dir_all(path.parent().expect("a file has a parent"))
                .expect("create a template folder");
            std::fs::write(path, "").expect("write a stub template");
        }
    }

    pub fn live(&self) -> PathBuf {
        self.dir.path().join("live")
    }

    /// Replaces the tree with `files` (paths relative to `live/`). A file whose path clashes with
    /// one written before (a directory named `node.yaml` in a generated tree) is left out.
    pub fn write(&self, files: &[(String, Vec<u8>)]) {
        let live = self.live();
        if live.exists() {
            std::fs::remove_dir_all(&live).expect("clear the scratch tree");
        }
        std::fs::create_dir_all(&live).expect("create live/");
        for (path, bytes) in files {
            let full = live.join(path);
            let parent = full.parent().expect("a file has a parent");
            let _ = std::fs::create_dir_all(parent).and_then(|()| std::fs::write(&full, bytes));
        }
    }

    /// `orch validate`, then `orch graph` when the tree is valid. A panic, a crash or a hang in
    /// either is what the fuzzer looks for; an error exit is the expected answer to most inputs.
    pub fn validate(&self) {
        let live = self.live();
        let live = live.to_str().expect("a UTF-8 scratch path");
        let valid = run(&["orch", "--live", live, "validate"]);
        if valid {
            run(&["orch", "--live", live, "graph"]);
        }
    }
}

fn run(args: &[&str]) -> bool {
    let cli = orch::cli::Cli::try_parse_from(args).expect("the harness passes valid arguments");
    orch::app::run(cli).is_ok()
}
