//! The engine of `orch plan | apply | destroy`, and of each wave of `orch rollout`: a validated
//! fleet driven through terraform in DAG order, in the units its layout runs, with the lock
//! held, the interrupt handler listening, the reporter printing, and one exit code for the whole
//! run (1 > 2 > 0 across nodes, 130 when interrupted). Before any node runs, what a killed
//! earlier run left behind is recovered (see [`crate::terraform::runs`]), and every directory
//! the run writes to is created, so a read-only or full `.orch/` is one clear error naming the
//! path rather than a run that fails half-way.

use std::collections::BTreeSet;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::config::{Fleet, Profile};
use crate::graph::Dag;
use crate::layout::Layout;
use crate::render::Templates;
use crate::reporter::{table, Reporter, Row};
use crate::scheduler::{Direction, Event, Options};
use crate::signal::{self, Level};
use crate::state::StateStore;
use crate::terraform::binary::Binary;
use crate::terraform::redact::Redactor;
use crate::terraform::runs::{self, RunDir};
use crate::terraform::workflow::{Action, Context, Imports, NodeRun};

/// What every terraform run over the fleet works with: the tree, where its states live, and
/// the layout its nodes run in.
pub struct Setup {
    pub fleet: Arc<Fleet>,
    pub dag: Dag,
    pub templates: Arc<Templates>,
    pub profile: Option<Profile>,
    pub binary: Binary,
    /// The environment terraform runs in (`crate::terraform::env`), worked out once a run.
    pub env: Vec<(String, String)>,
    pub store: Arc<dyn StateStore>,
    pub layout: Box<dyn Layout>,
}

impl Setup {
    /// The context of a pass of `action` (`preview`: its plan only), for the nodes' runs.
    pub fn context(
        &self,
        action: Action,
        preview: bool,
        prepared: &Prepared,
        interrupt: &watch::Receiver<Level>,
    ) -> Context {
        Context::new(
            self.fleet.clone(),
            self.templates.clone(),
            self.profile.clone(),
            self.store.clone(),
            self.binary.clone(),
            self.env.clone(),
            action,
            preview,
            prepared.log_dir.clone(),
            prepared.runs.clone(),
            prepared.redactor.clone(),
            interrupt.clone(),
        )
    }

    /// The renderer of the fleet's nodes.
    pub fn renderer(&self) -> crate::render::Renderer<'_> {
        crate::render::Renderer::new(
            &self.fleet,
            &self.templates,
            self.profile.as_ref(),
            &*self.store,
        )
    }

    /// Before any node runs: with state shared by every checkout, the store checked and the
    /// outputs of the dependencies of `selected` read from it (`crate::layout::outputs`).
    pub fn remote_first(&self, selected: &BTreeSet<usize>) -> Result<(), String> {
        tokio::task::block_in_place(|| {
            crate::layout::read_dependency_outputs(
                &*self.store,
                self.layout.placement(),
                &self.fleet,
                &self.dag,
                selected,
            )
        })
    }
}

/// What one command asks for.
pub struct Request {
    pub action: Action,
    pub selected: BTreeSet<usize>,
    pub parallelism: usize,
    pub fail_fast: bool,
    pub detailed_exitcode: bool,
    pub auto_approve: bool,
    pub report: Option<PathBuf>,
    pub fancy: bool,
    /// Nodes that run no terraform when their fingerprint matches the recorded one (`--changed`).
    pub skip_unchanged: BTreeSet<usize>,
    /// Whether applies adopt existing resources (`orch import apply`) or refuse plans that do.
    pub imports: Imports,
    /// `orch drift`: refresh-only plans, read for what changed outside orch.
    pub drift: bool,
}

impl Request {
    /// What the run is called in its summary and report.
    fn action_name(&self) -> &'static str {
        if self.drift {
            "drift"
        } else {
            self.action.name()
        }
    }
}

/// The outcome of a run: its exit code and whether it was stopped by the user.
pub struct Outcome {
    pub code: u8,
}

pub fn execute(setup: &Setup, request: Request) -> std::io::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let fleet = &setup.fleet;
    runtime.block_on(async move {
        let interrupt = signal::listen();
        let run_id = run_id();
        let Some(prepared) = prepare(fleet, &run_id, &interrupt).await? else {
            return Ok(Outcome { code: 130 });
        };
        if let Err(e) = setup.remote_first(&request.selected) {
            say!("error: {e}\nnothing was run");
            return Ok(done(prepared.runs, Outcome { code: 1 }));
        }
        let changes = matches!(request.action, Action::Apply | Action::Destroy)
            && !request.selected.is_empty();
        // An adoption plans every node before it imports anything, also when nobody is asked:
        // one plan that would create or destroy stops it whole.
        let confirm_first = changes && (!request.auto_approve || request.imports == Imports::Adopt);
        let mut rows = Vec::new();
        let context = |action, preview| {
            let mut context = setup.context(action, preview, &prepared, &interrupt);
            context.skip_unchanged = request.skip_unchanged.clone();
            context.imports = request.imports;
            context.drift = request.drift;
            Arc::new(context)
        };
        if confirm_first {
            // Plan everything first, show it, and ask once; the apply below reuses nothing from
            // this plan but its approval, and plans each node again right before applying it,
            // after its dependencies have been applied.
            let planned = phase(
                setup,
                &request,
                context(request.action, true),
                interrupt.clone(),
                &mut |_| {},
            )
            .await;
            say_raw!("{}", table(&planned));
            if interrupted(&interrupt)
                || planned
                    .iter()
                    .any(|r| !matches!(r.status.as_str(), "no changes" | "changes" | "unchanged"))
            {
                say!(
                    "the plan did not succeed for every node; nothing was {}",
                    past(request.action)
                );
                return Ok(done(
                    prepared.runs,
                    finish(&request, planned, &interrupt, fleet, &run_id),
                ));
            }
            if !request.auto_approve
                && !crate::prompt::ask(&format!(
                    "{} {} as planned above? Only 'yes' is accepted: ",
                    request.action.name(),
                    crate::diag::count(planned.len(), "node")
                ))?
            {
                say!("nothing was {}", past(request.action));
                return Ok(done(prepared.runs, Outcome { code: 1 }));
            }
        }
        rows.extend(
            phase(
                setup,
                &request,
                context(request.action, false),
                interrupt.clone(),
                &mut |_| {},
            )
            .await,
        );
        Ok(done(
            prepared.runs,
            finish(&request, rows, &interrupt, fleet, &run_id),
        ))
    })
}

/// What a run sets up before terraform starts.
pub struct Prepared {
    pub runs: Arc<RunDir>,
    pub redactor: Arc<Redactor>,
    pub log_dir: PathBuf,
}

/// A private and writable `.orch/`, the leftovers of a killed run recovered, the run's record and
/// the redactor. `None` when interrupted while waiting for a killed run's terraform.
pub async fn prepare(
    fleet: &Fleet,
    run_id: &str,
    interrupt: &watch::Receiver<Level>,
) -> std::io::Result<Option<Prepared>> {
    let state_dir = fleet.state_dir();
    private(&state_dir)?;
    let redactor = Arc::new(Redactor::from_env());
    if runs::recover(&state_dir, run_id, &redactor, interrupt.clone()).await {
        say!("interrupted while waiting for the terraform of a killed run; nothing was run");
        return Ok(None);
    }
    let log_dir = state_dir.join("logs").join(run_id);
    for dir in [
        &log_dir,
        &state_dir.join("outputs"),
        &state_dir.join("state"),
    ] {
        writable(dir)?;
    }
    let runs = Arc::new(RunDir::create(&state_dir, run_id)?);
    Ok(Some(Prepared {
        runs,
        redactor,
        log_dir,
    }))
}

/// Removes the run's record once every node's process has ended.
fn done(runs: Arc<RunDir>, outcome: Outcome) -> Outcome {
    runs.finish();
    outcome
}

/// Creates `dir` and proves it takes a new file, naming it when it does not (a read-only mount,
/// a permission): a node that fails for this after terraform ran would leave its work half done.
fn writable(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| runs::with_path(e, dir))?;
    let probe = dir.join(format!(".orch-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| runs::with_path(e, dir))?;
    std::fs::remove_file(&probe).map_err(|e| runs::with_path(e, &probe))
}

/// `.orch/` holds state, outputs and logs: its owner's alone, also when an older orch created it
/// open to all (new files are private anyway: main sets the umask).
fn private(state_dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(state_dir).map_err(|e| runs::with_path(e, state_dir))?;
    let mode = std::fs::metadata(state_dir)
        .map_err(|e| runs::with_path(e, state_dir))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(mode & 0o700))
            .map_err(|e| runs::with_path(e, state_dir))?;
    }
    Ok(())
}

/// One pass of the scheduler over the selected nodes; returns the summary rows. `observe` sees
/// every event as it happens (the rollout journal is written from there).
pub(crate) async fn phase(
    setup: &Setup,
    request: &Request,
    context: Arc<Context>,
    interrupt: watch::Receiver<Level>,
    observe: &mut dyn FnMut(&Event<NodeRun>),
) -> Vec<Row> {
    let fleet = &setup.fleet;
    let action = if context.preview {
        Action::Plan
    } else {
        context.action
    };
    let addresses: Vec<String> = fleet.nodes.iter().map(|n| n.address.to_string()).collect();
    let mut reporter = Reporter::new(addresses, action, request.selected.len(), request.fancy);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut interrupt_watch = interrupt.clone();
    let stopper = tokio::spawn(async move {
        while interrupt_watch.changed().await.is_ok() {
            if *interrupt_watch.borrow() > 0 {
                let _ = stop_tx.send(true);
            }
        }
    });
    let options = Options {
        parallelism: request.parallelism,
        fail_fast: request.fail_fast,
        direction: if action == Action::Destroy {
            Direction::Reverse
        } else {
            Direction::Forward
        },
    };
    let scheduling = setup.layout.schedule(
        &setup.dag,
        &request.selected,
        &options,
        context,
        tx,
        stop_rx,
    );
    let reporting = async {
        while let Some(event) = rx.recv().await {
            observe(&event);
            reporter.handle(event);
        }
    };
    tokio::join!(scheduling, reporting);
    stopper.abort();
    reporter.finish().0
}

pub(crate) fn interrupted(interrupt: &watch::Receiver<Level>) -> bool {
    *interrupt.borrow() > 0
}

fn past(action: Action) -> &'static str {
    match action {
        Action::Plan => "planned",
        Action::Apply => "applied",
        Action::Destroy => "destroyed",
    }
}

/// Prints the summary, writes the report, and works out the exit code.
fn finish(
    request: &Request,
    rows: Vec<Row>,
    interrupt: &watch::Receiver<Level>,
    fleet: &Fleet,
    run_id: &str,
) -> Outcome {
    let failed = rows.iter().any(|r| !succeeded(&r.status));
    let changes = rows
        .iter()
        .any(|r| matches!(r.status.as_str(), "changes" | "drifted" | "deleted"));
    let code = if interrupted(interrupt) {
        130
    } else if failed {
        1
    } else if changes && request.detailed_exitcode {
        2
    } else {
        0
    };
    let (own_cpu, children_cpu) = cpu_seconds();
    say_raw!("\n{}", table(&rows));
    say_raw!("{}", crate::report::review::summary(&rows));
    let count = |s: &str| rows.iter().filter(|r| r.status == s).count();
    if request.drift {
        say!(
            "{}: {} in sync, {} drifted, {} deleted or pending deletion outside orch, {} unknown (not read), {} skipped or not started; logs in {}",
            crate::diag::count(rows.len(), "node"),
            count("in sync"),
            count("drifted"),
            count("deleted"),
            count("failed")
                + count("interrupted")
                + rows
                    .iter()
                    .filter(|r| r.status.starts_with("not ") && r.status != "not started")
                    .count(),
            rows.iter().filter(|r| r.status.starts_with("skipped") || r.status == "not started").count(),
            fleet.state_dir().join("logs").join(run_id).display()
        );
    } else {
        say!(
            "{}: {} ok, {} with changes, {} without, {}{} failed{}, {} skipped or not started; logs in {}",
            crate::diag::count(rows.len(), "node"),
            count("ok"),
            count("changes"),
            count("no changes"),
            match count("unchanged") {
                0 => String::new(),
                n => format!("{n} unchanged since their last apply, "),
            },
            count("failed") + count("interrupted"),
            // `layout: stacks`: nodes of a stack whose run terraform stopped on another of them.
            match rows.iter().filter(|r| r.status.starts_with("not ") && r.status != "not started").count() {
                0 => String::new(),
                n => format!(", {n} {}", crate::reporter::not_applied(request.action)),
            },
            rows.iter().filter(|r| r.status.starts_with("skipped") || r.status == "not started").count(),
            fleet.state_dir().join("logs").join(run_id).display()
        );
    }
    let report = crate::report::Report {
        run: run_id.to_string(),
        action: request.action_name().to_string(),
        exit_code: code,
        orch_cpu_seconds: own_cpu,
        terraform_cpu_seconds: children_cpu,
        nodes: rows,
        waves: Vec::new(),
    };
    let published = crate::report::publish(request.report.as_deref(), &report);
    Outcome {
        code: if published || code != 0 { code } else { 1 },
    }
}

/// A node's summary status that is not a failure.
pub(crate) fn succeeded(status: &str) -> bool {
    matches!(
        status,
        "ok" | "changes"
            | "no changes"
            | "unchanged"
            | "applied earlier"
            | "in sync"
            | "drifted"
            | "deleted"
    )
}

/// CPU seconds of orch itself, and of the terraform processes it waited for.
pub(crate) fn cpu_seconds() -> (f64, f64) {
    let usage = |who| {
        // SAFETY: getrusage fills the struct we own; all-zero is a valid starting value.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut u) };
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        ((t(u.ru_utime) + t(u.ru_stime)) * 1000.0).round() / 1000.0
    };
    (usage(libc::RUSAGE_SELF), usage(libc::RUSAGE_CHILDREN))
}

/// `20261122T173000Z-<pid>`: sortable, unique per run.
pub(crate) fn run_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z-{}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        std::process::id()
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Whether the reporter may draw progress bars and colors.
pub fn fancy_output(no_color: bool) -> bool {
    std::io::stderr().is_terminal() && !no_color && std::env::var_os("NO_COLOR").is_none()
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_414), (2025, 11, 22));
    }
}
