//! `.orch/runs/<run>/`: what a run has running, so that a later run can find what a killed orch
//! (`kill -9`, OOM, a lost machine) left behind. Terraform runs in its own process group and
//! writes its output to a file here rather than to a pipe, so it outlives orch and finishes its
//! step (writing its state, releasing its state lock) instead of dying of a broken pipe halfway
//! through an apply. The next run waits for such leftovers before it starts anything, recovers
//! their output into the dead run's logs, and clears state locks it can prove stale.
//!
//! Files: `orch` (the owner's pid and start time), and per running terraform `<n>.proc`
//! (pid, start time, node address, command) beside `<n>.out` (its stdout and stderr).

use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::redact::Redactor;
use crate::signal::{signal_group, Level};

/// One run's directory; removed when the run ends normally.
#[derive(Debug)]
pub struct RunDir {
    pub dir: PathBuf,
    next: AtomicU64,
}

/// A process as the kernel knows it: a pid alone may have been reused by the time it is read
/// back, the pid with its start time may not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub pid: u32,
    pub start: u64,
}

impl Identity {
    pub fn of(pid: u32) -> Option<Identity> {
        Some(Identity {
            pid,
            start: start_time(pid)?,
        })
    }

    /// Still the same process, not a later one that got its pid.
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

/// Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The files of one terraform step while it runs.
pub struct Step {
    pub out: PathBuf,
    proc_file: PathBuf,
}

impl RunDir {
    /// Creates `.orch/runs/<run>/` and records orch itself in it.
    pub fn create(state_dir: &Path, run_id: &str) -> std::io::Result<RunDir> {
        let dir = state_dir.join("runs").join(run_id);
        std::fs::create_dir_all(&dir).map_err(|e| with_path(e, &dir))?;
        let me = Identity::of(std::process::id()).unwrap_or(Identity {
            pid: std::process::id(),
            start: 0,
        });
        let file = dir.join("orch");
        std::fs::write(&file, format!("{} {}\n", me.pid, me.start))
            .map_err(|e| with_path(e, &file))?;
        Ok(RunDir {
            dir,
            next: AtomicU64::new(0),
        })
    }

    /// A new output file for one terraform step, opened for the process to write.
    pub fn step(&self) -> std::io::Result<(Step, File)> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let out = self.dir.join(format!("{n}.out"));
        let file = File::create(&out).map_err(|e| with_path(e, &out))?;
        let proc_file = self.dir.join(format!("{n}.proc"));
        Ok((Step { out, proc_file }, file))
    }

    /// Removes the run's directory once nothing of it is running any more.
    pub fn finish(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Step {
    /// Records the started process: after this, a killed orch's successor can find it.
    pub fn started(&self, pid: u32, address: &str, command: &str) -> std::io::Result<()> {
        let id = Identity::of(pid).unwrap_or(Identity { pid, start: 0 });
        let mut f = File::create(&self.proc_file).map_err(|e| with_path(e, &self.proc_file))?;
        writeln!(f, "{} {}\n{address}\n{command}", id.pid, id.start)
            .map_err(|e| with_path(e, &self.proc_file))
    }

    /// Forgets the step once its output has been taken into the node's log.
    pub fn done(self) {
        let _ = std::fs::remove_file(&self.proc_file);
        let _ = std::fs::remove_file(&self.out);
    }
}

pub fn with_path(e: std::io::Error, path: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// A terraform step of a dead run.
struct Leftover {
    process: Identity,
    address: String,
    command: String,
    out: PathBuf,
}

/// Finds the runs of orch processes that are gone (the caller holds the tree lock, so no other
/// orch runs here), waits for the terraform they left running, moves each step's output into the
/// dead run's log of that node, and removes state lock files proven stale, saying so on stderr.
/// A Ctrl-C while waiting is passed on to the leftover terraform, escalating like a Ctrl-C during
/// a run; returns true when that happened.
pub async fn recover(
    state_dir: &Path,
    own_run: &str,
    redactor: &Redactor,
    mut interrupt: watch::Receiver<Level>,
) -> bool {
    let mut interrupted = false;
    let Ok(entries) = std::fs::read_dir(state_dir.join("runs")) else {
        return interrupted;
    };
    let mut dead: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n != own_run))
        .filter(|p| !owner(p).is_some_and(|o| o.alive()))
        .collect();
    dead.sort();
    for run in dead {
        let run_id = run
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let pid = owner(&run).map_or("?".to_string(), |o| o.pid.to_string());
        let leftovers = leftovers(&run);
        let running: Vec<&Leftover> = leftovers.iter().filter(|l| l.process.alive()).collect();
        if !running.is_empty() {
            let mut note = format!(
                "orch (pid {pid}, run {run_id}) was killed while terraform was running; waiting for it to finish, so that the state it writes is whole (Ctrl-C to interrupt it):"
            );
            for l in &running {
                note.push_str(&format!(
                    "\n  {}: terraform {} (pid {})",
                    l.address, l.command, l.process.pid
                ));
            }
            say!("{note}");
            interrupted |= wait_for(&running, &mut interrupt).await;
        }
        let logs = state_dir.join("logs").join(&run_id);
        for l in &leftovers {
            let log = logs.join(format!("{}.log", l.address));
            let header = format!(
                "# orch was killed during `terraform {}`; its output, recovered by the next run:\n",
                l.command
            );
            if let Err(e) = append_redacted(&l.out, &log, &header, redactor) {
                say!(
                    "warning: could not recover the output of {}: {e}",
                    l.address
                );
                continue;
            }
            let finished =
                crate::files::read_to_string(&log).is_ok_and(|t| finished_cleanly(&l.command, &t));
            if !finished {
                say!(
                    "warning: `terraform {}` of {} did not finish (its process is gone and its output ends early): \
                     what it was creating may exist without being in the state; read {} before applying again",
                    l.command,
                    l.address,
                    log.display()
                );
            }
            if let Some(note) = clear_stale_state_lock(&state_dir.join("state").join(&l.address)) {
                say!("{}: {note}", l.address);
            }
        }
        let _ = std::fs::remove_dir_all(&run);
    }
    interrupted
}

fn owner(run: &Path) -> Option<Identity> {
    let text = crate::files::read_to_string(run.join("orch")).ok()?;
    let mut words = text.split_whitespace();
    Some(Identity {
        pid: words.next()?.parse().ok()?,
        start: words.next()?.parse().ok()?,
    })
}

fn leftovers(run: &Path) -> Vec<Leftover> {
    let Ok(entries) = std::fs::read_dir(run) else {
        return Vec::new();
    };
    let mut found: Vec<Leftover> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "proc"))
        .filter_map(|p| {
            let text = crate::files::read_to_string(&p).ok()?;
            let mut lines = text.lines();
            let mut id = lines.next()?.split_whitespace();
            let process = Identity {
                pid: id.next()?.parse().ok()?,
                start: id.next()?.parse().ok()?,
            };
            let address = lines.next()?.to_string();
            // Only a node address: the line is joined to paths below.
            if address
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
            {
                return None;
            }
            Some(Leftover {
                process,
                address,
                command: lines.next().unwrap_or("?").to_string(),
                out: p.with_extension("out"),
            })
        })
        .collect();
    found.sort_by(|a, b| a.address.cmp(&b.address));
    found
}

/// Polls until every leftover and its process group (provider plugins) are gone. True when the
/// user interrupted.
async fn wait_for(running: &[&Leftover], interrupt: &mut watch::Receiver<Level>) -> bool {
    interrupt.borrow_and_update();
    let mut interrupted = false;
    while running.iter().any(|l| l.process.alive()) {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            changed = interrupt.changed() => {
                if changed.is_ok() {
                    interrupted = true;
                    let level = *interrupt.borrow();
                    for l in running.iter().filter(|l| l.process.alive()) {
                        signal_group(l.process.pid, if level >= 3 { libc::SIGKILL } else { libc::SIGINT });
                    }
                }
            }
        }
    }
    // Plugins leave when terraform does; give them a moment, then end the stragglers. While a
    // group has members its id is not handed to a new process, so this signals only them.
    for l in running {
        for _ in 0..50 {
            if !group_exists(l.process.pid) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if group_exists(l.process.pid) {
            signal_group(l.process.pid, libc::SIGKILL);
        }
    }
    interrupted
}

fn group_exists(pgid: u32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the group has a member.
    let r = unsafe { libc::kill(-(pgid as libc::pid_t), 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether a step's output shows it ran to its end (a plan or an apply that completed, or
/// failed with terraform's own error, not one cut off).
fn finished_cleanly(command: &str, text: &str) -> bool {
    match command {
        "apply" => {
            text.contains("Apply complete!")
                || text.contains("Destroy complete!")
                || text.contains("Error: ")
        }
        _ => true,
    }
}

/// Appends `from` (a step's raw output) to `log`, redacted line by line, after `header`.
pub fn append_redacted(
    from: &Path,
    log: &Path,
    header: &str,
    redactor: &Redactor,
) -> std::io::Result<()> {
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent).map_err(|e| with_path(e, parent))?;
    }
    let mut sink = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| with_path(e, log))?;
    let mut write = |text: &str| {
        sink.write_all(text.as_bytes())
            .map_err(|e| with_path(e, log))
    };
    write(header)?;
    let mut reader = BufReader::new(crate::files::open(from).map_err(|e| with_path(e, from))?);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader
            .read_until(b'\n', &mut line)
            .map_err(|e| with_path(e, from))?
            == 0
        {
            break;
        }
        write(&redactor.redact(&String::from_utf8_lossy(&line)))?;
    }
    Ok(())
}

/// The local backend's state lock is an fcntl lock on `terraform.tfstate`, which the kernel
/// releases when its holder dies, however it dies; `.terraform.tfstate.lock.info` beside it only
/// describes the lock. So a lock-info file is provably stale when no process holds a lock on the
/// state file: then it is removed (terraform would overwrite it, but a stale one misleads
/// whoever reads it). Remote backends' locks have no such proof; orch never unlocks them.
pub fn clear_stale_state_lock(state: &Path) -> Option<String> {
    let info = state.join(".terraform.tfstate.lock.info");
    if !info.exists() {
        return None;
    }
    match lock_holder(&state.join("terraform.tfstate")) {
        Some(Holder::Process(pid)) => Some(format!(
            "the state is locked by pid {pid}, a running process; terraform waits for it (-lock-timeout)"
        )),
        Some(Holder::Unknown) => None,
        None => match std::fs::remove_file(&info) {
            Ok(()) => Some(format!(
                "removed the stale state lock {} (no process holds a lock on terraform.tfstate)",
                info.display()
            )),
            Err(e) => Some(format!("cannot remove the stale state lock {}: {e}", info.display())),
        },
    }
}

enum Holder {
    Process(i32),
    /// The lock could not be queried: assume it is held.
    Unknown,
}

/// Who holds an fcntl lock on any byte of `path` (None: nobody).
fn lock_holder(path: &Path) -> Option<Holder> {
    let file = match crate::files::open(path) {
        Ok(f) => f,
        // No state file: terraform died before writing one, so nothing can lock it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(_) => return Some(Holder::Unknown),
    };
    // SAFETY: a zeroed flock is a valid request; F_GETLK only fills it in.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    use std::os::fd::AsRawFd as _;
    // SAFETY: the fd is open for the duration of the call and `lock` is ours.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut lock) };
    if r != 0 {
        return Some(Holder::Unknown);
    }
    (lock.l_type != libc::F_UNLCK as libc::c_short).then_some(Holder::Process(lock.l_pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_known_by_pid_and_start_time() {
        let me = Identity::of(std::process::id()).unwrap();
        assert!(me.alive());
        let reused = Identity {
            start: me.start + 1,
            ..me
        };
        assert!(
            !reused.alive(),
            "a pid with another start time is another process"
        );
    }

    #[test]
    fn a_lock_info_without_a_lock_holder_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let info = dir.path().join(".terraform.tfstate.lock.info");
        std::fs::write(dir.path().join("terraform.tfstate"), "{}").unwrap();
        std::fs::write(&info, "{\"ID\":\"x\"}").unwrap();
        let note = clear_stale_state_lock(dir.path()).unwrap();
        assert!(note.contains("removed the stale state lock"), "{note}");
        assert!(!info.exists());
        assert_eq!(clear_stale_state_lock(dir.path()), None);
    }
}
