//! The reporter owns the terminal: the runner hands it events, and only it prints. On a TTY it
//! draws an overall progress bar with one line per running node (indicatif); otherwise, or with
//! `--no-color`/`NO_COLOR`, plain lines prefixed with the node's address. A node's captured output
//! is printed whole when the node ends (never interleaved), for failures and for plans with
//! changes; then a summary table, and the same data as JSON with `--report FILE`. Text that did
//! not come from orch itself (terraform's output, error messages quoting it) is printed through
//! `diag::escape`, so no control or bidi character reaches the terminal raw.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::diag::{escape, escape_lines};
use crate::scheduler::Event;
use crate::terraform::access::KeyAccess;
use crate::terraform::drift::NodeDrift;
use crate::terraform::workflow::{Action, NodeRun, Status};

/// One row of the summary.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub address: String,
    pub action: Action,
    pub status: String,
    pub add: Option<u32>,
    pub change: Option<u32>,
    pub destroy: Option<u32>,
    pub provisional: bool,
    pub duration_seconds: f64,
    pub attempts: u32,
    pub error: Option<String>,
    pub log: Option<String>,
    /// Who gains and who loses what, per key whose policy the plan changes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<KeyAccess>,
    /// `orch drift`: what changed outside orch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<NodeDrift>,
}

impl Row {
    /// The row of a node that ran no terraform: skipped, not started, unchanged.
    pub fn not_run(address: String, action: Action, status: String) -> Row {
        Row {
            address,
            action,
            status,
            add: None,
            change: None,
            destroy: None,
            provisional: false,
            duration_seconds: 0.0,
            attempts: 0,
            error: None,
            log: None,
            access: Vec::new(),
            drift: None,
        }
    }
}

pub struct Reporter {
    addresses: Vec<String>,
    action: Action,
    progress: Option<Progress>,
    rows: Vec<Row>,
    started: Instant,
}

struct Progress {
    multi: MultiProgress,
    overall: ProgressBar,
    running: HashMap<usize, ProgressBar>,
}

impl Reporter {
    /// `fancy`: a TTY with colors allowed.
    pub fn new(addresses: Vec<String>, action: Action, total: usize, fancy: bool) -> Self {
        let progress = fancy.then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = multi.add(ProgressBar::new(total as u64));
            overall.set_style(
                ProgressStyle::with_template(
                    "{prefix:>8} [{bar:30}] {pos}/{len} nodes  {elapsed_precise}",
                )
                .expect("template is valid")
                .progress_chars("=> "),
            );
            overall.set_prefix(action.name());
            overall.enable_steady_tick(Duration::from_millis(200));
            Progress {
                multi,
                overall,
                running: HashMap::new(),
            }
        });
        Reporter {
            addresses,
            action,
            progress,
            rows: Vec::new(),
            started: Instant::now(),
        }
    }

    pub fn handle(&mut self, event: Event<NodeRun>) {
        match event {
            Event::Started { node } => {
                let address = &self.addresses[node];
                match &mut self.progress {
                    Some(p) => {
                        let bar = p.multi.add(ProgressBar::new_spinner());
                        bar.set_style(
                            ProgressStyle::with_template("  {spinner} {msg} {elapsed}")
                                .expect("template is valid"),
                        );
                        bar.set_message(address.clone());
                        bar.enable_steady_tick(Duration::from_millis(120));
                        p.running.insert(node, bar);
                    }
                    None => say!("[{address}] {} started", self.action.name()),
                }
            }
            Event::Finished { node, output } => {
                let line = finished_line(&output);
                let show_output = matches!(
                    output.status,
                    Status::Failed | Status::Changes | Status::NotApplied
                );
                self.print(node, &line, show_output.then_some(output.output.as_str()));
                self.rows.push(row(&output));
            }
            Event::Skipped { node, cause } => {
                let line = format!(
                    "[{}] skipped: depends on {}, which did not succeed",
                    self.addresses[node], self.addresses[cause]
                );
                self.print(node, &line, None);
                self.rows.push(self.unrun(
                    node,
                    format!("skipped ({} did not succeed)", self.addresses[cause]),
                ));
            }
            Event::NotStarted { node } => {
                self.rows.push(self.unrun(node, "not started".into()));
            }
        }
    }

    fn unrun(&self, node: usize, status: String) -> Row {
        Row::not_run(self.addresses[node].clone(), self.action, status)
    }

    /// Prints a finished node's line (and its whole output) above the progress bars.
    fn print(&mut self, node: usize, line: &str, output: Option<&str>) {
        let mut text = String::new();
        if let Some(output) = output {
            text.push_str(&format!(
                "──── {} ────\n{}",
                escape(&self.addresses[node]),
                escape_lines(output)
            ));
            if !output.ends_with('\n') {
                text.push('\n');
            }
        }
        text.push_str(line);
        match &mut self.progress {
            Some(p) => {
                if let Some(bar) = p.running.remove(&node) {
                    bar.finish_and_clear();
                    p.multi.remove(&bar);
                }
                p.overall.inc(1);
                let _ = p.multi.suspend(|| writeln!(std::io::stderr(), "{text}"));
            }
            None => say!("{text}"),
        }
    }

    /// Clears the bars and returns the rows, sorted by address.
    pub fn finish(mut self) -> (Vec<Row>, Duration) {
        if let Some(p) = &self.progress {
            p.overall.finish_and_clear();
            let _ = p.multi.clear();
        }
        self.rows.sort_by(|a, b| a.address.cmp(&b.address));
        (self.rows, self.started.elapsed())
    }
}

fn finished_line(run: &NodeRun) -> String {
    let counts = run
        .counts
        .map(|c| {
            let imported = if c.import > 0 {
                format!(" ({} imported)", c.import)
            } else {
                String::new()
            };
            format!(" +{} ~{} -{}{imported}", c.add, c.change, c.destroy)
        })
        .unwrap_or_default();
    let what = match run.status {
        Status::NoChanges => "no changes".to_string(),
        Status::Changes => "changes".to_string(),
        Status::Done => format!("{} done", run.action.name()),
        Status::Failed => format!("FAILED: {}", escape(run.error.as_deref().unwrap_or(""))),
        Status::Interrupted => "interrupted".to_string(),
        Status::Unchanged => "unchanged since its last apply".to_string(),
        Status::NotApplied => format!(
            "{}: {}",
            not_applied(run.action),
            escape(run.error.as_deref().unwrap_or(""))
        ),
        Status::InSync => "in sync".to_string(),
        Status::Drifted => match &run.drift {
            Some(d) if d.deleted => "deleted or pending deletion outside orch".to_string(),
            Some(d) => {
                let words: Vec<&str> = d.findings.iter().map(|f| f.words.as_str()).collect();
                format!("drifted: {}", escape(&words.join("; ")))
            }
            None => "drifted".to_string(),
        },
    };
    let provisional = if run.provisional {
        " (provisional)"
    } else {
        ""
    };
    format!(
        "[{}] {what}{counts}{provisional} in {:.1}s",
        escape(&run.address),
        run.duration.as_secs_f64()
    )
}

fn row(run: &NodeRun) -> Row {
    let status = match run.status {
        Status::NoChanges => "no changes",
        Status::Changes => "changes",
        Status::Done => "ok",
        Status::Failed => "failed",
        Status::Interrupted => "interrupted",
        Status::Unchanged => "unchanged",
        Status::NotApplied => not_applied(run.action),
        Status::InSync => "in sync",
        Status::Drifted if run.drift.as_ref().is_some_and(|d| d.deleted) => "deleted",
        Status::Drifted => "drifted",
    };
    Row {
        address: run.address.clone(),
        action: run.action,
        status: status.to_string(),
        add: run.counts.map(|c| c.add),
        change: run.counts.map(|c| c.change),
        destroy: run.counts.map(|c| c.destroy),
        provisional: run.provisional,
        duration_seconds: (run.duration.as_secs_f64() * 1000.0).round() / 1000.0,
        attempts: run.attempts,
        error: run.error.clone(),
        log: Some(run.log.display().to_string()),
        access: run.access.clone(),
        drift: run.drift.clone(),
    }
}

/// A node of a stack that terraform stopped on another node before it got to this one.
pub fn not_applied(action: Action) -> &'static str {
    match action {
        Action::Plan => "not planned",
        Action::Apply => "not applied",
        Action::Destroy => "not destroyed",
    }
}

/// The summary table printed at the end of a run.
pub fn table(rows: &[Row]) -> String {
    let width = rows
        .iter()
        .map(|r| escape(&r.address).chars().count())
        .max()
        .unwrap_or(7)
        .max(7);
    let mut out = format!(
        "{:<width$}  {:<7}  {:>5} {:>5} {:>5}  {:>8}  status\n",
        "address", "action", "+add", "~chg", "-del", "time"
    );
    for r in rows {
        let n = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
        let status = if r.provisional {
            format!("{} (provisional)", escape(&r.status))
        } else {
            escape(&r.status).into_owned()
        };
        out.push_str(&format!(
            "{:<width$}  {:<7}  {:>5} {:>5} {:>5}  {:>7.1}s  {status}\n",
            escape(&r.address),
            r.action.name(),
            n(r.add),
            n(r.change),
            n(r.destroy),
            r.duration_seconds
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(address: &str, status: &str) -> Row {
        Row {
            address: address.into(),
            action: Action::Plan,
            status: status.into(),
            add: Some(1),
            change: None,
            destroy: None,
            provisional: false,
            duration_seconds: 1.0,
            attempts: 1,
            error: None,
            log: None,
            access: Vec::new(),
            drift: None,
        }
    }

    #[test]
    fn the_table_prints_no_control_or_bidi_character_raw() {
        let text = table(&[
            row("prod/us-east-1/a", "failed \x1b[2Jcleared"),
            row("prod/us-east-1/b\u{202e}", "ok"),
        ]);
        assert!(
            !text.contains('\x1b') && !text.contains('\u{202e}'),
            "{text}"
        );
        assert!(text.contains("failed \\x1b[2Jcleared"), "{text}");
        assert!(text.contains("prod/us-east-1/b\\u{202e}"), "{text}");
        let widths: Vec<usize> = text.lines().map(|l| l.find("plan").unwrap_or(0)).collect();
        assert_eq!(widths[1], widths[2], "columns stay aligned:\n{text}");
    }
}
