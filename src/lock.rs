//! `.orch/lock`: one orch at a time on a tree. The holder keeps an advisory `flock(2)` on the file
//! and writes its pid and command into it. The kernel drops the flock when its holder dies
//! (killed, machine rebooted), so a dead holder's lock is taken over rather than left to block
//! every later run; the pid names the holder in the message, and a file whose pid is alive but
//! holds no flock (written by hand, or by an older orch) is still respected.

use std::io::{Read as _, Seek as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another orch ({}) is running on this tree; wait for it, or remove {path} if it is not running", who(*pid, holder.as_deref()))]
    Held {
        pid: Option<u32>,
        holder: Option<String>,
        path: PathBuf,
    },
    #[error("cannot create the lock {path}: {source}\n  = help: orch keeps its work, state and logs in {dir}, beside the live/ tree; make it a writable directory")]
    Io {
        path: PathBuf,
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// How long a render waits for another render to finish before giving up. A render of 10,000
/// nodes takes about two seconds, so this covers a queue of a few; a run (plan, apply, destroy)
/// holds the lock for minutes and is never waited for.
const RENDER_PATIENCE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);
/// How long a lock may be held before its holder has written its pid into it.
const NAMING: Duration = Duration::from_secs(1);

/// Held while it lives; removes the lock file when dropped.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    /// Keeps the flock; closed after the file is removed.
    _file: std::fs::File,
}

impl Lock {
    /// The lock for a run that changes or reads infrastructure: refused at once when held.
    pub fn acquire(orch_dir: &Path) -> Result<Lock, LockError> {
        Lock::take(orch_dir, "run", Duration::ZERO)
    }

    /// The lock for `orch render`: a render waits a little for another render, so two renders
    /// started together both succeed, but is refused at once while a run holds the lock (the run
    /// renders the same work directories itself).
    pub fn acquire_for_render(orch_dir: &Path) -> Result<Lock, LockError> {
        Lock::take(orch_dir, "render", RENDER_PATIENCE)
    }

    fn take(orch_dir: &Path, command: &str, patience: Duration) -> Result<Lock, LockError> {
        let path = orch_dir.join("lock");
        let io = |source| LockError::Io {
            path: path.clone(),
            dir: orch_dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(orch_dir).map_err(io)?;
        let start = Instant::now();
        loop {
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io)?;
            let (pid, what) = if flock(&file).map_err(io)? {
                if !same_file(&file, &path) {
                    // Locked a file its holder removed on release: a newer one may be in place.
                    continue;
                }
                match holder(&mut file) {
                    (Some(pid), what) if pid != std::process::id() && alive(pid) => {
                        (Some(pid), what)
                    }
                    _ => {
                        let me = format!("{}\n{command}\n", std::process::id());
                        file.set_len(0).map_err(io)?;
                        file.rewind().map_err(io)?;
                        file.write_all(me.as_bytes()).map_err(io)?;
                        return Ok(Lock { path, _file: file });
                    }
                }
            } else {
                holder(&mut file)
            };
            // A holder that has not written its name yet is a moment away from doing so; only
            // another render is worth waiting for longer, since it ends in seconds.
            let waited = start.elapsed();
            let wait = match (&pid, what.as_deref()) {
                (Some(_), Some("render")) => waited < patience,
                (Some(_), _) => false,
                (None, _) => waited < patience.max(NAMING),
            };
            if !wait {
                return Err(LockError::Held {
                    pid,
                    holder: what.filter(|w| w != "run"),
                    path,
                });
            }
            drop(file);
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Removed while the flock is still held, so no one locks the old file after it is gone
        // (`same_file` catches the one who opened it just before).
        let _ = std::fs::remove_file(&self.path);
    }
}

fn who(pid: Option<u32>, holder: Option<&str>) -> String {
    let pid = pid.map_or_else(|| "pid unknown".to_string(), |p| format!("pid {p}"));
    match holder {
        Some(command) => format!("{pid}, `orch {command}`"),
        None => pid,
    }
}

/// An exclusive flock on a directory that is not orch's (the `--out` of `orch generate`), so two
/// runs writing into it take turns on its manifest. Nothing is written into the directory for
/// it, and the kernel drops it when the holder exits. Waits up to `patience`; `Ok(None)` when
/// another process still holds it then.
pub fn lock_dir(dir: &Path, patience: Duration) -> std::io::Result<Option<std::fs::File>> {
    let file = std::fs::File::open(dir)?;
    let start = Instant::now();
    loop {
        if flock(&file)? {
            return Ok(Some(file));
        }
        if start.elapsed() >= patience {
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

/// Tries for the exclusive flock without waiting; `Ok(false)` when another process holds it.
fn flock(file: &std::fs::File) -> std::io::Result<bool> {
    // SAFETY: flock(2) on a file descriptor we own.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// The pid and command a lock file names (`pid\ncommand\n`; older files hold the pid only).
fn holder(file: &mut std::fs::File) -> (Option<u32>, Option<String>) {
    let mut text = String::new();
    if file.rewind().is_err() || file.read_to_string(&mut text).is_err() {
        return (None, None);
    }
    let mut lines = text.lines();
    let pid = lines.next().and_then(|l| l.trim().parse().ok());
    let what = lines
        .next()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty() && l.len() <= 16 && l.bytes().all(|b| b.is_ascii_lowercase()));
    (pid, what)
}

fn same_file(file: &std::fs::File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn alive(pid: u32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
