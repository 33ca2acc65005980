//! One terraform process: started in its own process group (so the terminal's Ctrl-C goes to orch
//! alone and orch decides what terraform gets), stdout and stderr captured whole, and interrupts
//! forwarded as the user escalates.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::signal::{signal_group, Level};

pub struct Finished {
    pub code: Option<i32>,
    /// stdout, then stderr (where terraform writes its diagnostics).
    pub text: String,
}

pub async fn run(
    bin: &Path,
    args: &[&str],
    dir: &Path,
    env: &[(String, String)],
    mut interrupt: watch::Receiver<Level>,
) -> std::io::Result<Finished> {
    let mut child = tokio::process::Command::new(bin)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let pgid = child.id().unwrap_or(0);
    // Only escalations from now on concern this process.
    interrupt.borrow_and_update();
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let read_out = async {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf).await;
        buf
    };
    let read_err = async {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf).await;
        buf
    };
    let wait = async {
        let mut interrupted = false;
        loop {
            tokio::select! {
                status = child.wait() => {
                    if interrupted {
                        // Whatever plugin outlived terraform goes with it.
                        signal_group(pgid, libc::SIGKILL);
                    }
                    return status;
                }
                changed = interrupt.changed() => {
                    if changed.is_err() {
                        return child.wait().await;
                    }
                    interrupted = true;
                    let level = *interrupt.borrow();
                    signal_group(pgid, if level >= 3 { libc::SIGKILL } else { libc::SIGINT });
                }
            }
        }
    };
    let (status, out, err) = tokio::join!(wait, read_out, read_err);
    let mut text = String::from_utf8_lossy(&out).into_owned();
    if !err.is_empty() {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&String::from_utf8_lossy(&err));
    }
    Ok(Finished {
        code: status?.code(),
        text,
    })
}
