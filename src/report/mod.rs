//! `--report FILE`: the run's summary written to a file, JSON, a self-contained HTML page or
//! Markdown, chosen by the file's extension, checked when the command line is read. Owns the report's
//! data and the JSON form; [`html`] owns the page.

pub(crate) mod html;
pub mod markdown;
pub mod review;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::reporter::Row;

/// The most of one node's terraform output the HTML page holds; the rest is in its log.
const MAX_TEXT_BYTES: usize = 256 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Html,
    Markdown,
}

/// Checks `--report FILE` of a run: [`parse_path_named`] with the example names `run.*`.
pub fn parse_path(text: &str) -> Result<PathBuf, String> {
    parse_path_named(text, "run")
}

/// Checks `--report FILE`: `.json`, `.html` (`.htm`) or `.md` (`.markdown`), any case, naming a
/// file that can be made: not a directory, in a directory that exists. `stem` names the examples
/// the errors suggest (`run.json`, `audit.md`).
pub fn parse_path_named(text: &str, stem: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    format_of(&path, stem)?;
    let shown = |p: &Path| crate::diag::escape(&p.display().to_string()).into_owned();
    if path.is_dir() {
        return Err(format!(
            "`{}` is a directory: name a file in it (e.g. {}/{stem}.md)",
            shown(&path),
            crate::diag::escape(text.trim_end_matches('/'))
        ));
    }
    let dir = match path.parent() {
        Some(parent) if parent.as_os_str().is_empty() => Path::new("."),
        Some(parent) if !parent.is_dir() => {
            return Err(format!(
                "`{}`: the directory {} does not exist (orch does not create it)",
                shown(&path),
                shown(parent)
            ))
        }
        Some(parent) => parent,
        None => Path::new("."),
    };
    // The report is written at the end, through a new file in its directory renamed over it:
    // one made and removed now says the run will not end with a lost report.
    let probe = dir.join(format!(".orch-report-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| {
            format!(
                "`{}`: orch cannot write in {} ({e}); name a report in a directory it can write",
                shown(&path),
                shown(dir)
            )
        })?;
    Ok(path)
}

/// The format `path`'s extension names; an Err suggests `stem.json`, `stem.html`, `stem.md`.
pub fn format_of(path: &Path, stem: &str) -> Result<Format, String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let shown = crate::diag::escape(&path.display().to_string()).into_owned();
    match ext.as_deref() {
        Some("json") => Ok(Format::Json),
        Some("html" | "htm") => Ok(Format::Html),
        Some("md" | "markdown") => Ok(Format::Markdown),
        Some(other) => Err(format!(
            "`{shown}`: a report is JSON, HTML or Markdown, chosen by the extension; `.{}` is none of them (name it {stem}.json, {stem}.html or {stem}.md)",
            crate::diag::escape(other)
        )),
        None => Err(format!(
            "`{shown}` has no extension: name the report {stem}.json (JSON), {stem}.html (a page) or {stem}.md (Markdown for a pull request)"
        )),
    }
}

/// The report of one run. Serialized as the JSON report; the HTML page shows the same.
#[derive(Debug, Serialize)]
pub struct Report {
    pub run: String,
    /// `plan`, `apply`, `destroy`, or a rollout's own name for what it did.
    pub action: String,
    pub exit_code: u8,
    pub orch_cpu_seconds: f64,
    pub terraform_cpu_seconds: f64,
    /// The nodes of a run without waves.
    pub nodes: Vec<Row>,
    /// The waves of a rollout, each with its own nodes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<Wave>,
}

/// One wave of a rollout.
#[derive(Debug, Serialize)]
pub struct Wave {
    pub name: String,
    pub status: String,
    pub gate: Option<String>,
    /// What the gate's command printed (redacted, escapes neutralized), when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate_output: Option<String>,
    pub nodes: Vec<Row>,
}

/// A node as the page shows it: its row, its wave, and its terraform output.
pub struct Entry<'a> {
    pub row: &'a Row,
    pub wave: Option<&'a str>,
    pub text: String,
}

impl Report {
    /// Every node with its wave: the nodes of a run without waves, then each wave's.
    pub fn entries(&self) -> Vec<Entry<'_>> {
        let plain = self.nodes.iter().map(|row| (row, None));
        let waved = self
            .waves
            .iter()
            .flat_map(|w| w.nodes.iter().map(move |row| (row, Some(w.name.as_str()))));
        plain
            .chain(waved)
            .map(|(row, wave)| Entry {
                row,
                wave,
                text: row.log.as_deref().map(terraform_text).unwrap_or_default(),
            })
            .collect()
    }
}

/// Writes the report to `path` (whole or not at all), as its extension says.
pub fn write(path: &Path, report: &Report) -> std::io::Result<()> {
    let format = format_of(path, "run").map_err(std::io::Error::other)?;
    let text = match format {
        Format::Json => serde_json::to_string_pretty(report).expect("JSON serializes") + "\n",
        Format::Html => html::page(report, &report.entries()),
        Format::Markdown => markdown::run(report, &path.display().to_string()),
    };
    crate::render::write_atomic(path, text.as_bytes())
}

/// Writes the report to `path` when one was asked for, and when `GITHUB_STEP_SUMMARY` names a
/// file (a GitHub Actions job) appends the run's Markdown to it. Says what could not be written,
/// and returns false then: a run whose report was lost does not exit 0.
pub fn publish(path: Option<&Path>, report: &Report) -> bool {
    let mut ok = true;
    if let Some(path) = path {
        if let Err(e) = write(path, report) {
            say!("error: cannot write the report {}: {e}", path.display());
            ok = false;
        }
    }
    let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|s| !s.is_empty()) else {
        return ok;
    };
    let whole = path.map_or("the job's log".to_string(), |p| p.display().to_string());
    let appended = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&summary)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, (markdown::run(report, &whole) + "\n").as_bytes())
        });
    if let Err(e) = appended {
        say!(
            "error: cannot append the summary to GITHUB_STEP_SUMMARY ({}): {e}",
            Path::new(&summary).display()
        );
        ok = false;
    }
    ok
}

/// What the page folds under a node: its log from the first `terraform plan` on (init's output
/// is noise there), cut at [`MAX_TEXT_BYTES`] with a note naming the whole log.
fn terraform_text(log: &str) -> String {
    let Ok(text) = crate::files::read_to_string(log) else {
        return format!("(no log at {log})");
    };
    let start = text
        .match_indices("\n$ ")
        .map(|(i, _)| i + 1)
        .chain(text.starts_with("$ ").then_some(0))
        .filter(|&i| {
            text[i..]
                .lines()
                .next()
                .is_some_and(|l| l.split(' ').nth(2) == Some("plan"))
        })
        .min()
        .unwrap_or(0);
    let text = &text[start..];
    if text.len() <= MAX_TEXT_BYTES {
        return text.to_string();
    }
    let mut cut = MAX_TEXT_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}\n(cut at {} KiB; the whole output is in {log})\n",
        &text[..cut],
        MAX_TEXT_BYTES / 1024
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format_of_run(path: &Path) -> Result<Format, String> {
        format_of(path, "run")
    }

    #[test]
    fn formats_by_extension() {
        assert_eq!(format_of_run(Path::new("run.json")), Ok(Format::Json));
        assert_eq!(format_of_run(Path::new("out/RUN.HTML")), Ok(Format::Html));
        assert_eq!(format_of_run(Path::new("run.htm")), Ok(Format::Html));
        assert_eq!(format_of_run(Path::new("pr/plan.MD")), Ok(Format::Markdown));
        assert!(format_of_run(Path::new("run.txt"))
            .unwrap_err()
            .contains("`.txt` is none of them"));
        assert!(format_of_run(Path::new("run"))
            .unwrap_err()
            .contains("has no extension"));
        assert!(format_of_run(Path::new(".html"))
            .unwrap_err()
            .contains("has no extension"));
    }

    #[test]
    fn the_text_starts_at_the_plan_and_is_cut_with_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("n.log");
        std::fs::write(
            &log,
            "$ /bin/terraform init -input=false\nInitialized!\n$ /bin/terraform plan -out=tfplan\nPlan: 1 to add\n$ /bin/terraform apply tfplan\nApplied\n",
        )
        .unwrap();
        let text = terraform_text(log.to_str().unwrap());
        assert!(text.starts_with("$ /bin/terraform plan"), "{text}");
        assert!(text.ends_with("Applied\n"));
        std::fs::write(&log, "é".repeat(MAX_TEXT_BYTES)).unwrap();
        let text = terraform_text(log.to_str().unwrap());
        assert!(text.contains("(cut at 256 KiB; the whole output is in "));
        assert!(text.len() < MAX_TEXT_BYTES + 200);
        assert!(terraform_text("/nonexistent/x.log").starts_with("(no log at "));
    }
}
