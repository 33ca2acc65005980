//! One terraform process: started in its own process group (so the terminal's Ctrl-C goes to orch
//! alone and orch decides what terraform gets), its stdout and stderr written to a file of the
//! run's directory (so it finishes its step even if orch dies, see [`super::runs`]), interrupts
//! forwarded as the user escalates. The output is then appended, redacted, to the node's log, and
//! kept in memory only up to a bound, whatever terraform printed.

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::Stdio;

use tokio::sync::watch;

use super::redact::Redactor;
use super::runs::{append_redacted, with_path, RunDir, Step};
use crate::signal::{signal_group, Level};

/// How much of a step's output is kept in memory (the start, and as much of the end): enough for
/// every summary and error terraform prints, and for the whole plan of a stack, whose lines orch
/// reads per node (an adopted key prints about 3 KB of plan: 256 KB cut the plan of a 200-key
/// stack in two), while a runaway provider's gigabyte goes to the log only.
const KEEP: usize = 16 * 1024 * 1024;

pub struct Finished {
    pub code: Option<i32>,
    /// The signal that killed terraform, if one did.
    pub signal: Option<i32>,
    /// stdout and stderr as they came, redacted, at most about 2 x [`KEEP`] bytes.
    pub text: String,
}

/// Where a step's output goes besides memory.
pub enum Log<'a> {
    /// Appended, redacted, to this file.
    To(&'a Path),
    /// Kept whole in memory and written nowhere (`output -json`, which is data).
    Quiet,
}

pub struct Spawn<'a> {
    pub bin: &'a Path,
    pub args: &'a [&'a str],
    pub dir: &'a Path,
    pub env: &'a [(String, String)],
    pub address: &'a str,
    pub runs: &'a RunDir,
    pub redactor: &'a Redactor,
    pub log: Log<'a>,
}

/// Why a step could not run or its output could not be kept.
pub enum Error {
    /// Terraform could not be started.
    Spawn(std::io::Error),
    /// A file of orch's (the run record, the output, the log) could not be written; the
    /// message names it.
    Files(std::io::Error),
}

pub async fn run(spawn: Spawn<'_>, interrupt: watch::Receiver<Level>) -> Result<Finished, Error> {
    let (step, out) = spawn.runs.step().map_err(Error::Files)?;
    let err = out.try_clone().map_err(Error::Files)?;
    let result = wait(&spawn, &step, out, err, interrupt).await;
    let text = match spawn.log {
        Log::To(log) => {
            let text = bounded(&step.out, spawn.redactor);
            append_redacted(&step.out, log, "", spawn.redactor).map(|()| text)
        }
        Log::Quiet => crate::files::read(&step.out)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| with_path(e, &step.out)),
    };
    step.done();
    let status = result?;
    Ok(Finished {
        code: status.code(),
        signal: status.signal(),
        text: text.map_err(Error::Files)?,
    })
}

async fn wait(
    spawn: &Spawn<'_>,
    step: &Step,
    out: std::fs::File,
    err: std::fs::File,
    mut interrupt: watch::Receiver<Level>,
) -> Result<std::process::ExitStatus, Error> {
    let mut child = tokio::process::Command::new(spawn.bin)
        .args(spawn.args)
        .current_dir(spawn.dir)
        .envs(spawn.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0)
        .spawn()
        .map_err(Error::Spawn)?;
    let pgid = child.id().unwrap_or(0);
    // Orch cannot go on without the record: a run it cannot recover is worse than no run.
    if let Err(e) = step.started(pgid, spawn.address, spawn.args[0]) {
        signal_group(pgid, libc::SIGKILL);
        let _ = child.wait().await;
        return Err(Error::Files(e));
    }
    // An interrupt that came after the caller's last look (it looks before each spawn) and
    // before this process existed concerns it all the same: it would otherwise run to its end,
    // unsignalled, while orch stops. Later ones arrive through `changed`.
    // Ctrl-C is passed on as SIGINT; the third one kills.
    let pass_on = |level: Level| {
        signal_group(
            pgid,
            if level >= 3 {
                libc::SIGKILL
            } else {
                libc::SIGINT
            },
        );
    };
    let level = *interrupt.borrow_and_update();
    let mut interrupted = level > 0;
    if interrupted {
        pass_on(level);
    }
    loop {
        tokio::select! {
            status = child.wait() => {
                if interrupted {
                    // Whatever plugin outlived terraform goes with it.
                    signal_group(pgid, libc::SIGKILL);
                }
                return status.map_err(Error::Spawn);
            }
            changed = interrupt.changed() => {
                if changed.is_err() {
                    return child.wait().await.map_err(Error::Spawn);
                }
                interrupted = true;
                pass_on(*interrupt.borrow());
            }
        }
    }
}

/// The output's first [`KEEP`] bytes and last [`KEEP`] bytes, whole lines, redacted.
fn bounded(path: &Path, redactor: &Redactor) -> String {
    let Ok(file) = crate::files::open(path) else {
        return String::new();
    };
    let mut reader = BufReader::new(file);
    let mut head = String::new();
    let mut tail = std::collections::VecDeque::new();
    let mut tail_len = 0;
    let mut skipped = 0u64;
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
        let mut text = redactor.redact(&String::from_utf8_lossy(&line));
        line.clear();
        if text.len() > KEEP {
            // One endless line (binary noise): its start is what a reader can use.
            let mut end = KEEP;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str(" [...]\n");
        }
        if head.len() + text.len() <= KEEP && tail.is_empty() {
            head.push_str(&text);
            continue;
        }
        tail_len += text.len();
        tail.push_back(text);
        while tail_len > KEEP && tail.len() > 1 {
            let dropped = tail.pop_front().expect("not empty");
            tail_len -= dropped.len();
            skipped += dropped.len() as u64;
        }
    }
    if skipped > 0 {
        head.push_str(&format!(
            "\n[... {skipped} bytes of output left out here; the log has them all ...]\n\n"
        ));
    }
    head.extend(tail);
    head
}
