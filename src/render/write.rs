//! How rendered files reach the disk: whole or not at all. A file is written under a unique
//! temporary name in its own directory and renamed into place; a new work directory is filled
//! under a temporary name and renamed as a whole. A full disk or a crash therefore leaves either
//! the old file or the new one, never half of one, and two writers never share a temporary name.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{RenderError, WriteStats};

const TEMP_PREFIX: &str = ".orch-tmp-";

/// A name for a temporary file or directory, unique across the threads and processes writing
/// into one directory. Short and fixed-length, so it fits wherever the final name fits.
fn temp_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{TEMP_PREFIX}{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes `content` to `path` atomically: a unique temporary file beside it, then a rename. The
/// temporary file is removed if anything fails.
pub fn write_atomic(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(temp_name());
    let result = std::fs::write(&tmp, content).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes files whose content changed, and removes `.tf`/`.tfvars.json` files a previous render
/// left that this one no longer has. Never touches `.terraform/` or plan files.
pub fn write_files(dir: &Path, files: &[(&str, String)]) -> Result<WriteStats, RenderError> {
    let err = |path: PathBuf| move |source| RenderError::Write { path, source };
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if !meta.is_dir() => {
            return Err(RenderError::Write {
                path: dir.to_path_buf(),
                source: std::io::Error::other(
                    "it exists and is not a directory; orch owns this path, move it away",
                ),
            })
        }
        Ok(_) => {}
        // A directory that did not exist holds nothing to compare or clean up: fill a new one.
        Err(_) => {
            if let Some(stats) = write_new_dir(dir, files)? {
                return Ok(stats);
            }
        }
    }
    let mut stats = WriteStats::default();
    for (name, content) in files {
        let path = dir.join(name);
        match crate::files::read(&path) {
            Ok(existing) if existing == content.as_bytes() => stats.unchanged += 1,
            _ => {
                write_atomic(&path, content.as_bytes()).map_err(err(path.clone()))?;
                stats.written += 1;
            }
        }
    }
    for entry in std::fs::read_dir(dir).map_err(err(dir.to_path_buf()))? {
        let entry = entry.map_err(err(dir.to_path_buf()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.ends_with(".tf") || name.ends_with(".tfvars.json");
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if ours && is_file && !files.iter().any(|(n, _)| *n == name) {
            std::fs::remove_file(entry.path()).map_err(err(entry.path()))?;
            stats.removed += 1;
        } else if is_file && name.starts_with(TEMP_PREFIX) {
            // Left by a writer that was killed mid-write: the tree lock means no other writer is
            // in this directory now, and this one's own temporaries are renamed already.
            std::fs::remove_file(entry.path()).map_err(err(entry.path()))?;
        }
    }
    Ok(stats)
}

/// Fills a temporary directory beside `dir` and renames it to `dir`: one rename per node instead
/// of one per file, and a node's work directory appears whole. `None` when `dir` appeared
/// meanwhile, for the caller to update it file by file.
fn write_new_dir(dir: &Path, files: &[(&str, String)]) -> Result<Option<WriteStats>, RenderError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|source| RenderError::Write {
        path: parent.to_path_buf(),
        source,
    })?;
    let tmp = parent.join(temp_name());
    let filled = std::fs::create_dir(&tmp)
        .map_err(|source| RenderError::Write {
            path: dir.to_path_buf(),
            source,
        })
        .and_then(|()| {
            files.iter().try_for_each(|(name, content)| {
                std::fs::write(tmp.join(name), content).map_err(|source| RenderError::Write {
                    path: dir.join(name),
                    source,
                })
            })
        });
    let renamed = filled.and_then(|()| match std::fs::rename(&tmp, dir) {
        Ok(()) => Ok(true),
        // Another writer created it first (a non-empty directory is not replaced).
        Err(_) if dir.is_dir() => Ok(false),
        Err(source) => Err(RenderError::Write {
            path: dir.to_path_buf(),
            source,
        }),
    });
    if !matches!(renamed, Ok(true)) {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(renamed?.then_some(WriteStats {
        written: files.len(),
        ..WriteStats::default()
    }))
}
