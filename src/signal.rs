//! Ctrl-C, escalating: the first interrupt stops new work and forwards one SIGINT to every running
//! terraform (each runs in its own process group, so the terminal's own SIGINT never reaches it
//! and terraform sees exactly one per press); the second forwards another; the third kills.
//! SIGTERM counts as an interrupt too.

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// How far the user has escalated: 0 none, 1 stop gracefully, 2 interrupt again, 3 kill.
pub type Level = u8;

/// Listens for SIGINT and SIGTERM and publishes the escalation level.
pub fn listen() -> watch::Receiver<Level> {
    let (tx, rx) = watch::channel(0);
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            let level = (*tx.borrow() + 1).min(3);
            if level == 1 {
                say!("\ninterrupt: starting nothing new, letting running terraform stop cleanly (Ctrl-C again to interrupt it, a third time to kill)");
            } else if level == 3 {
                say!("\ninterrupt: killing running terraform");
            }
            if tx.send(level).is_err() {
                return;
            }
        }
    });
    rx
}

/// Sends `signal` to a whole process group (terraform and its provider plugins).
pub fn signal_group(pgid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) with a negative pid signals a process group; it touches no memory.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), signal);
    }
}
