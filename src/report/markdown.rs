//! Markdown for pull requests and `GITHUB_STEP_SUMMARY`: text from users and from AWS (a key's
//! description, a tag, a principal) made inert, and a document cut to fit where it is posted.
//! GitHub renders the HTML inside Markdown, so `<` is never let through; a table cell keeps to one
//! line; control and bidi characters are shown escaped as on the terminal.

use std::collections::BTreeMap;

use super::review::{self, Group};
use super::{Entry, Report};
use crate::reporter::Row;

/// The most characters GitHub takes in one pull-request comment or issue body.
pub const GITHUB_LIMIT: usize = 65_536;

/// `text` as literal Markdown inline text: every character Markdown or GitHub could read as
/// markup escaped (backslash for punctuation, entities for `<`, `>` and `&`), line breaks as
/// spaces, control characters written out (`\x1b`).
pub fn text(text: &str) -> String {
    let flat = text.replace(['\n', '\t'], " ");
    let shown = crate::diag::escape(&flat);
    let mut out = String::with_capacity(shown.len() + 8);
    for c in shown.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '{' | '}' | '#' | '|' | '~' | '!'
            | '+' | '-' | '.' | ':' | '@' | '"' | '\'' | '=' | '$' | '%' | '^' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// A table: a header row and rows of cells already made inline text (with [`text`]).
pub fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|{}\n", head.join(" | "), "---|".repeat(head.len()));
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// `doc` cut to at most `limit` characters at a line boundary, ending with a line that says how
/// much was left out and where the whole of it is. Unchanged when it fits.
pub fn fit(doc: &str, limit: usize, whole: &str) -> String {
    if doc.chars().count() <= limit {
        return doc.to_string();
    }
    let total = doc.lines().count();
    let note = |left: usize| {
        format!("\n\n**Cut to fit: {left} of {total} lines left out.** The whole report: {whole}\n")
    };
    // The note's length for the most lines it could report, so what is kept plus the note fits.
    const CLOSE: &str = "</details>\n";
    let room = limit.saturating_sub(note(total).chars().count() + CLOSE.len());
    let mut kept = String::new();
    let mut lines = 0;
    let mut used = 0;
    for line in doc.lines() {
        let n = line.chars().count() + 1;
        if used + n > room {
            break;
        }
        used += n;
        lines += 1;
        kept.push_str(line);
        kept.push('\n');
    }
    // A table or a fold left open by the cut is closed, so the note renders as text.
    if kept.matches("<details>").count() > kept.matches("</details>").count() {
        kept.push_str(CLOSE);
    }
    kept.push_str(&note(total - lines));
    kept
}

/// A run as Markdown for a pull request: the counts, the access review and the drift grouped,
/// then the nodes that changed or failed, the rest folded; cut to [`GITHUB_LIMIT`].
pub fn run(report: &Report, whole: &str) -> String {
    let entries = report.entries();
    let rows: Vec<Row> = entries.iter().map(|e| e.row.clone()).collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        *counts.entry(r.status.as_str()).or_default() += 1;
    }
    let counted: Vec<String> = counts
        .iter()
        .map(|(s, n)| format!("{n} {}", text(s)))
        .collect();
    let mut doc = format!(
        "## orch {}: {}\n\n{} · exit code {} · run {}\n",
        text(&report.action),
        crate::diag::count(rows.len(), "node"),
        counted.join(", "),
        report.exit_code,
        text(&report.run)
    );
    let groups = |title: &str, groups: Vec<Group>| -> String {
        if groups.is_empty() {
            return String::new();
        }
        let rows: Vec<Vec<String>> = groups
            .iter()
            .map(|g| vec![g.kind.to_string(), text(&g.words), text(&g.place())])
            .collect();
        format!("\n### {title}\n\n{}", table(&["", "what", "where"], &rows))
    };
    doc.push_str(&groups(
        "Access review: who gains and who loses what",
        review::access_groups(&rows),
    ));
    doc.push_str(&groups("Changed outside orch", review::drift_groups(&rows)));
    let quiet = |r: &Row| {
        matches!(
            r.status.as_str(),
            "no changes" | "in sync" | "unchanged" | "ok"
        )
    };
    let line = |e: &&Entry| {
        let n = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
        vec![
            text(&e.row.address),
            e.wave.map(text).unwrap_or_default(),
            text(&e.row.status),
            n(e.row.add),
            n(e.row.change),
            n(e.row.destroy),
            text(e.row.error.as_deref().unwrap_or("")),
        ]
    };
    let head = ["node", "wave", "status", "+add", "~chg", "-del", "error"];
    let (loud, calm): (Vec<&Entry>, Vec<&Entry>) = entries.iter().partition(|e| !quiet(e.row));
    if !loud.is_empty() {
        doc.push_str(&format!(
            "\n### Changed or failed\n\n{}",
            table(&head, &loud.iter().map(line).collect::<Vec<_>>())
        ));
    }
    if !calm.is_empty() {
        doc.push_str(&format!(
            "\n<details><summary>{} other nodes</summary>\n\n{}\n</details>\n",
            calm.len(),
            table(&head, &calm.iter().map(line).collect::<Vec<_>>())
        ));
    }
    fit(&doc, GITHUB_LIMIT, whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_user_text_stays_text() {
        assert_eq!(
            text("<img src=x onerror=alert(1)>"),
            "&lt;img src\\=x onerror\\=alert\\(1\\)&gt;"
        );
        assert_eq!(
            text("**bold** | [x](http://e)"),
            "\\*\\*bold\\*\\* \\| \\[x\\]\\(http\\://e\\)"
        );
        assert_eq!(text("a\nb\tc"), "a b c");
        assert_eq!(text("\u{1b}[31mred"), "\\\\x1b\\[31mred");
        assert_eq!(text("plain words"), "plain words");
    }

    #[test]
    fn a_long_document_is_cut_at_a_line_with_a_note_and_fits() {
        let doc: String = (0..10_000)
            .map(|i| format!("line {i} of the report\n"))
            .collect();
        let cut = fit(&doc, GITHUB_LIMIT, "plan.md");
        assert!(cut.chars().count() <= GITHUB_LIMIT, "{}", cut.len());
        assert!(cut.starts_with("line 0 of the report\n"));
        assert!(
            cut.contains("lines left out.** The whole report: plan.md"),
            "{}",
            &cut[cut.len() - 200..]
        );
        let kept = cut.lines().filter(|l| l.starts_with("line ")).count();
        assert!(cut.contains(&format!("{} of 10000 lines left out", 10_000 - kept)));
        assert_eq!(fit("short\n", GITHUB_LIMIT, "x"), "short\n");
    }

    #[test]
    fn a_fold_cut_open_is_closed() {
        let doc = format!("<details>\n{}", "x\n".repeat(100));
        let cut = fit(&doc, 150, "r.md");
        assert!(cut.chars().count() <= 150);
        assert!(cut.contains("</details>\n"), "{cut}");
    }
}
