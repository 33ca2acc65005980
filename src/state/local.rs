//! The local store: each state a file, `.orch/state/<name>/terraform.tfstate`, beside the tree.
//! Terraform's own `local` backend writes them; orch reads them directly, and writes them only
//! in `orch layout migrate`, whole and durably.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{Place, StateStore, StoreError};
use crate::config::{Account, Fleet};
use crate::render::{hcl, Backend};
use crate::terraform::runs;

pub struct Local {
    dir: PathBuf,
}

impl Local {
    pub fn new(fleet: &Fleet) -> Local {
        Local {
            dir: fleet.state_dir().join("state"),
        }
    }

    fn file(&self, place: &Place) -> PathBuf {
        self.dir.join(&place.name).join("terraform.tfstate")
    }
}

impl Backend for Local {
    /// Relative to the work dir (`.orch/work/<state>/`), so the tree can move as a whole.
    fn block(&self, _: &Account, state: &str) -> Value {
        let up = "../".repeat(1 + state.split('/').count());
        json!({
            "type": "local",
            "path": hcl::string(&format!("{up}state/{state}/terraform.tfstate")),
        })
    }

    fn lock_timeout(&self) -> Duration {
        crate::config::DEFAULT_LOCK_TIMEOUT
    }
}

impl StateStore for Local {
    fn is_remote(&self) -> bool {
        false
    }

    /// One: a file is written in a few milliseconds.
    fn parallelism(&self) -> usize {
        1
    }

    fn check(&self, _: &BTreeSet<&String>) -> Result<String, String> {
        Ok(format!("state under {}", self.dir.display()))
    }

    /// The `outputs` of the state file, in the form `terraform output -json` prints.
    fn outputs(&self, places: &[Place]) -> Vec<Result<Option<String>, String>> {
        places
            .iter()
            .map(|place| {
                let file = self.file(place);
                let text = match crate::files::read(&file) {
                    Ok(text) => text,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
                };
                let state: Value = serde_json::from_slice(&text)
                    .map_err(|e| format!("{} is not a terraform state: {e}", file.display()))?;
                Ok(state["outputs"]
                    .as_object()
                    .filter(|o| !o.is_empty())
                    .map(|o| Value::Object(o.clone()).to_string() + "\n"))
            })
            .collect()
    }

    fn show(&self, place: &Place) -> String {
        self.file(place).display().to_string()
    }

    fn exists(&self, places: &[Place]) -> Result<Vec<bool>, StoreError> {
        places
            .iter()
            .map(|p| {
                let path = self.file(p);
                crate::files::is_file(&path).map_err(|source| StoreError::Io { path, source })
            })
            .collect()
    }

    fn check_states(&self, places: &[Place]) -> Result<(), StoreError> {
        self.exists(places).map(drop)
    }

    fn pull(&self, places: &[Place]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        places
            .iter()
            .map(|p| {
                let file = self.file(p);
                match crate::files::read(&file) {
                    Ok(t) => Ok(Some(t)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(StoreError::Io { path: file, source }),
                }
            })
            .collect()
    }

    /// Files are read without terraform: nothing is pulled.
    fn pulls(&self) -> usize {
        0
    }

    fn check_locks(&self, places: &[&Place]) -> Result<(), StoreError> {
        for place in places {
            let file = self.file(place);
            let dir = file.parent().expect("a state file is in a directory");
            if let Some(note) = runs::clear_stale_state_lock(dir) {
                if note.starts_with("the state is locked") {
                    return Err(StoreError::Locked(format!("{}: {note}", dir.display())));
                }
                say!("{note}");
            }
        }
        Ok(())
    }

    fn write(&self, place: &Place, json: &Map<String, Value>) -> Result<(), String> {
        let file = self.file(place);
        write_state(&file, json).map_err(|e| format!("{}: {e}", file.display()))
    }

    /// Removed: the directory keeps nothing of terraform's.
    fn clear(&self, place: &Place, _: &Map<String, Value>) -> Result<(), String> {
        let file = self.file(place);
        std::fs::remove_file(&file).map_err(|e| format!("cannot remove {}: {e}", file.display()))
    }

    fn bootstrap(&self, _: bool) -> Result<(), String> {
        Err("orch.yaml's backend is local (state under .orch/state); `orch backend bootstrap` creates the buckets of `backend: {type: s3, ...}`".into())
    }
}

/// Writes a state whole: a temporary file beside it, flushed to disk, renamed over the old one,
/// and the directory flushed, so a crash or a power cut leaves the old state or the new one.
fn write_state(path: &Path, json: &Map<String, Value>) -> std::io::Result<()> {
    let dir = path.parent().expect("a state file is in a directory");
    std::fs::create_dir_all(dir)?;
    let text = serde_json::to_string_pretty(json).expect("JSON serializes") + "\n";
    let tmp = dir.join(format!(".orch-migrate-{}", std::process::id()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Flushes a directory's entries to disk (a file created or renamed in it).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all())
}
