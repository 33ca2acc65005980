//! Writing a draft into `live/`: all of it or none of it, and never over a file. Every file is
//! first written beside its place under a temporary name, then linked to its name (a link fails
//! when the name exists: nothing is overwritten, even by a file that appeared since discovery
//! looked); on any failure every file and directory this write made is removed again.

use std::path::{Path, PathBuf};

/// Why a draft was not written; nothing of it is on disk.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}; nothing was written")]
pub struct WriteError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Writes `files` (paths relative to `live`); returns the paths written.
pub fn write_all(live: &Path, files: &[(PathBuf, String)]) -> Result<Vec<PathBuf>, WriteError> {
    let mut made_dirs: Vec<PathBuf> = Vec::new();
    let mut made_files: Vec<PathBuf> = Vec::new();
    let mut temps: Vec<(PathBuf, PathBuf)> = Vec::new();
    let result = (|| {
        for (relative, text) in files {
            let path = live.join(relative);
            let fail = |source| WriteError {
                path: path.clone(),
                source,
            };
            if path.symlink_metadata().is_ok() {
                return Err(fail(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the file exists (orch never writes over a file)",
                )));
            }
            let dir = path.parent().expect("a file under live/");
            let mut missing = Vec::new();
            let mut d = dir.to_path_buf();
            while d.symlink_metadata().is_err() && d.starts_with(live) && d != live {
                missing.push(d.clone());
                d.pop();
            }
            for m in missing.into_iter().rev() {
                std::fs::create_dir(&m).map_err(|e| WriteError {
                    path: m.clone(),
                    source: e,
                })?;
                made_dirs.push(m);
            }
            let temp = dir.join(format!(
                ".{}.orch-import-{}",
                path.file_name().unwrap_or_default().to_string_lossy(),
                std::process::id()
            ));
            std::fs::write(&temp, text).map_err(fail)?;
            temps.push((temp, path));
        }
        for (temp, path) in &temps {
            std::fs::hard_link(temp, path).map_err(|source| WriteError {
                path: path.clone(),
                source,
            })?;
            made_files.push(path.clone());
        }
        Ok(())
    })();
    for (temp, _) in &temps {
        let _ = std::fs::remove_file(temp);
    }
    if let Err(e) = result {
        for f in made_files.iter().rev() {
            let _ = std::fs::remove_file(f);
        }
        for d in made_dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        return Err(e);
    }
    Ok(made_files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_everything_or_nothing_and_never_over_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let live = tmp.path().join("live");
        std::fs::create_dir_all(live.join("prod/us-east-1/kept")).unwrap();
        std::fs::write(live.join("prod/us-east-1/kept/node.yaml"), "mine").unwrap();
        let files = vec![
            (
                PathBuf::from("prod/us-east-1/new/node.yaml"),
                "a".to_string(),
            ),
            (
                PathBuf::from("prod/us-east-1/kept/node.yaml"),
                "b".to_string(),
            ),
        ];
        let err = write_all(&live, &files).unwrap_err();
        assert!(
            err.to_string().contains("never writes over a file"),
            "{err}"
        );
        assert!(
            !live.join("prod/us-east-1/new").exists(),
            "nothing half-written"
        );
        assert_eq!(
            std::fs::read_to_string(live.join("prod/us-east-1/kept/node.yaml")).unwrap(),
            "mine"
        );
        let written = write_all(&live, &files[..1]).unwrap();
        assert_eq!(written.len(), 1);
        assert_eq!(
            std::fs::read_to_string(live.join("prod/us-east-1/new/node.yaml")).unwrap(),
            "a"
        );
        let leftovers: Vec<_> = std::fs::read_dir(live.join("prod/us-east-1/new"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
    }

    #[test]
    fn a_failure_half_way_undoes_what_was_written() {
        let tmp = tempfile::tempdir().unwrap();
        let live = tmp.path().join("live");
        std::fs::create_dir_all(live.join("prod")).unwrap();
        // A file where a directory must go: no directory can be made under it (even by root,
        // which a read-only mode would not stop).
        std::fs::write(live.join("prod/eu-west-1"), "").unwrap();
        let files = vec![
            (PathBuf::from("prod/us-east-1/a/node.yaml"), "a".to_string()),
            (PathBuf::from("prod/eu-west-1/b/node.yaml"), "b".to_string()),
        ];
        let err = write_all(&live, &files).unwrap_err();
        assert!(err.to_string().contains("nothing was written"), "{err}");
        assert!(
            !live.join("prod/us-east-1").exists(),
            "the first file is undone"
        );
    }
}
