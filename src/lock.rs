//! `.orch/lock`: one orch at a time on a tree. The file holds the owner's pid; a lock whose owner
//! is gone (killed, machine rebooted) is taken over rather than left to block every later run.

use std::io::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another orch (pid {pid}) is running on this tree; wait for it, or remove {path} if it is not running")]
    Held { pid: u32, path: PathBuf },
    #[error("cannot create the lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Held while it lives; removes the lock file when dropped.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

impl Lock {
    pub fn acquire(orch_dir: &Path) -> Result<Lock, LockError> {
        let path = orch_dir.join("lock");
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(orch_dir).map_err(io)?;
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    writeln!(file, "{}", std::process::id()).map_err(io)?;
                    return Ok(Lock { path });
                }
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    let pid = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|t| t.trim().parse::<u32>().ok());
                    match pid {
                        Some(pid) if alive(pid) => return Err(LockError::Held { pid, path }),
                        // Stale: its owner is gone. Remove and try once more.
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(err) => return Err(io(err)),
            }
        }
        Err(LockError::Held { pid: 0, path })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn alive(pid: u32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
