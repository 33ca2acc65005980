//! A directory of the user's that orch writes generated files into (`orch generate tfvars --out
//! DIR`). DIR is not orch's, so orch writes exactly its own files there and remembers them in a
//! manifest, `DIR/.orch-generated`: a file is orch's to overwrite or remove only when the
//! manifest lists it. The manifest lives in DIR rather than under `.orch/` so it travels with the
//! directory (copied, moved, committed) and one DIR can serve several trees. Every limit is
//! checked before the first write, and every write is atomic, so a refused or failed run leaves
//! no half-written file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::write::write_atomic;

/// The manifest's name inside DIR.
pub const MANIFEST: &str = ".orch-generated";
/// The longest file or directory name Linux file systems take (NAME_MAX).
const NAME_MAX: usize = 255;
/// How long a generation waits for another one writing into the same DIR.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);
/// The longest path the kernel takes (PATH_MAX, less its terminating NUL).
const PATH_MAX: usize = 4095;

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot write {path}: the name `{name}` is {len} bytes long, and file names are limited to {NAME_MAX}\n  = help: shorten the name of the node, account or region it comes from; nothing was written")]
    NameTooLong {
        path: PathBuf,
        name: String,
        len: usize,
    },
    #[error("cannot write {path}: the path is {len} bytes long, and paths are limited to {PATH_MAX}\n  = help: choose a shorter --out; nothing was written")]
    PathTooLong { path: PathBuf, len: usize },
    #[error("{path} exists and is not a directory, so orch cannot write into it\n  = help: move it away or choose another --out; nothing was written")]
    NotADirectory { path: PathBuf },
    #[error("{path} is a directory where orch would write a file\n  = help: move it away or choose another --out; nothing was written")]
    IsADirectory { path: PathBuf },
    #[error("{path} exists and orch did not write it (it is not listed in {manifest})\n  = help: orch never overwrites a file it did not write: move the file away or choose another --out; nothing was written")]
    NotOurs { path: PathBuf, manifest: PathBuf },
    #[error("{path} is not a manifest orch can read: {message}\n  = help: orch records in it which files of this directory it wrote; restore it, or empty the directory and remove it to start over; nothing was written")]
    Manifest { path: PathBuf, message: String },
    #[error("{path} is being written by another `orch generate` (it holds the directory's lock) for over 30 s\n  = help: wait for it to finish and run again; nothing was written")]
    Busy { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a generation changed in DIR.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Generated {
    pub written: usize,
    pub unchanged: usize,
    /// Files of an earlier generation of the same set that this one no longer has.
    pub removed: usize,
}

/// The manifest: for each set (an environment), the files orch wrote, relative to DIR.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    version: u32,
    sets: BTreeMap<String, BTreeSet<PathBuf>>,
}

impl Manifest {
    fn read(path: &Path) -> Result<Manifest, GenerateError> {
        let bad = |message: String| GenerateError::Manifest {
            path: path.to_path_buf(),
            message,
        };
        let text = match crate::files::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Manifest {
                    version: 1,
                    ..Manifest::default()
                })
            }
            Err(e) => return Err(bad(e.to_string())),
        };
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if manifest.version != 1 {
            return Err(bad(format!(
                "version {} (this orch reads version 1)",
                manifest.version
            )));
        }
        // An entry is removed when it goes stale: it must name a file inside DIR.
        for file in manifest.sets.values().flatten() {
            if !is_plain_relative(file) {
                return Err(bad(format!(
                    "it lists `{}`, which is not a path inside the directory",
                    file.display()
                )));
            }
        }
        Ok(manifest)
    }

    fn lists(&self, file: &Path) -> bool {
        self.sets.values().any(|files| files.contains(file))
    }

    fn write(&self, path: &Path) -> Result<(), GenerateError> {
        let text = serde_json::to_string_pretty(self).expect("JSON serializes") + "\n";
        write_atomic(path, text.as_bytes()).map_err(|source| GenerateError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

fn is_plain_relative(path: &Path) -> bool {
    path.components().count() > 0 && path.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Writes `files` (paths relative to `dir`, each with its content) as the set `set` of `dir`:
/// new and changed files are written, files the set had before and no longer has are removed,
/// and nothing the manifest does not list is ever overwritten or removed.
pub fn write_set(
    dir: &Path,
    set: &str,
    files: &[(PathBuf, String)],
) -> Result<Generated, GenerateError> {
    let manifest_path = dir.join(MANIFEST);
    check_dir(dir)?;
    if manifest_path.is_dir() {
        return Err(GenerateError::IsADirectory {
            path: manifest_path,
        });
    }
    let wanted: BTreeSet<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    // Checked once before DIR is created, so a refused run leaves nothing behind, and again
    // under the lock, since another run may have changed the manifest in between.
    check_targets(
        dir,
        &manifest_path,
        &Manifest::read(&manifest_path)?,
        &wanted,
    )?;

    let io = |path: PathBuf| move |source| GenerateError::Io { path, source };
    std::fs::create_dir_all(dir).map_err(io(dir.to_path_buf()))?;
    let _lock = crate::lock::lock_dir(dir, LOCK_PATIENCE)
        .map_err(io(dir.to_path_buf()))?
        .ok_or_else(|| GenerateError::Busy {
            path: dir.to_path_buf(),
        })?;
    let mut manifest = Manifest::read(&manifest_path)?;
    check_targets(dir, &manifest_path, &manifest, &wanted)?;
    // Listed before they are written, so a run cut short still owns what it wrote.
    let before = manifest.sets.remove(set).unwrap_or_default();
    manifest
        .sets
        .insert(set.to_string(), before.union(&wanted).cloned().collect());
    manifest.write(&manifest_path)?;

    let mut done = Generated::default();
    for (file, content) in files {
        let path = dir.join(file);
        if crate::files::read(&path).is_ok_and(|old| old == content.as_bytes()) {
            done.unchanged += 1;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent.to_path_buf()))?;
        }
        write_atomic(&path, content.as_bytes()).map_err(io(path.clone()))?;
        done.written += 1;
    }
    for stale in before.difference(&wanted) {
        let path = dir.join(stale);
        // Only a plain file: a directory or link put there since is not what orch wrote.
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            std::fs::remove_file(&path).map_err(io(path.clone()))?;
            done.removed += 1;
        }
    }
    manifest.sets.insert(set.to_string(), wanted);
    manifest.write(&manifest_path)?;
    Ok(done)
}

/// A directory, a link to one, or nothing yet (it is created); anything else is refused.
fn check_dir(dir: &Path) -> Result<(), GenerateError> {
    let exists = std::fs::symlink_metadata(dir).is_ok();
    if exists && !dir.is_dir() {
        return Err(GenerateError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    Ok(())
}

/// Every limit a write could run into, checked for every file before the first one is written.
fn check_targets(
    dir: &Path,
    manifest_path: &Path,
    manifest: &Manifest,
    wanted: &BTreeSet<PathBuf>,
) -> Result<(), GenerateError> {
    let mut seen_dirs = BTreeSet::new();
    for file in wanted {
        let path = dir.join(file);
        for name in file.iter() {
            let len = name.len();
            if len > NAME_MAX {
                return Err(GenerateError::NameTooLong {
                    path,
                    name: name.to_string_lossy().into_owned(),
                    len,
                });
            }
        }
        let len = path.as_os_str().len();
        if len > PATH_MAX {
            return Err(GenerateError::PathTooLong { path, len });
        }
        for ancestor in file.ancestors().skip(1) {
            if ancestor.as_os_str().is_empty() || !seen_dirs.insert(ancestor.to_path_buf()) {
                continue;
            }
            check_dir(&dir.join(ancestor))?;
        }
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => return Err(GenerateError::IsADirectory { path }),
            Ok(_) if !manifest.lists(file) => {
                return Err(GenerateError::NotOurs {
                    path,
                    manifest: manifest_path.to_path_buf(),
                })
            }
            _ => {}
        }
    }
    Ok(())
}
