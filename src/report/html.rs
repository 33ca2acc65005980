//! The HTML report (`--report run.html`): one self-contained page, inline CSS, no script and
//! nothing fetched, readable offline and from a CI artifact. An accounts x regions grid coloured
//! by status, the waves of a rollout when there are any, a table of every node (counts, duration,
//! attempts), and each node's terraform output folded under `<details>`. Every string from the
//! tree or from terraform goes through [`escape`]: terraform's output is untrusted text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::review::{self, Group};
use super::{Entry, Report};
use crate::reporter::Row;

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.meta{color:#556;margin:0 0 12px}
table{border-collapse:collapse}th,td{border:1px solid #d5d9e0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f5f8;font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.grid td{min-width:180px}.grid th[scope=row]{white-space:nowrap}
.chip{display:inline-block;margin:2px 4px 2px 0;padding:1px 7px;border-radius:10px;border:1px solid;font-size:12px;text-decoration:none;color:inherit}
.s-ok{background:#e6f4ea;border-color:#34a853}.s-changes{background:#fff4d6;border-color:#e0a800}
.s-failed{background:#fde7e7;border-color:#d93025}.s-skipped{background:#eef0f3;border-color:#9aa0a6}
.s-other{background:#eef0f3;border-color:#5f6368}
.prov{border-style:dashed}
tr.node td.status{font-weight:600}
.legend .chip{cursor:default}
details{margin:4px 0;border:1px solid #d5d9e0;border-radius:4px}
details>summary{padding:4px 8px;cursor:pointer;background:#f8f9fb}
pre{margin:0;padding:8px;overflow-x:auto;white-space:pre-wrap;word-break:break-word;font:12px/1.4 ui-monospace,'DejaVu Sans Mono',monospace}
.err{color:#b3261e}
";

/// The page for `report`, whose nodes are `entries`.
pub fn page(report: &Report, entries: &[Entry]) -> String {
    let mut out = String::with_capacity(4096 + entries.len() * 1024);
    let title = format!("orch {} {}", report.action, report.run);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&title)
    );
    let _ = writeln!(out, "<h1>{}</h1>", escape(&title));
    let _ = writeln!(
        out,
        "<p class=\"meta\">exit code {}; {}: {}; orch {:.1} CPU-s, terraform {:.1} CPU-s</p>",
        report.exit_code,
        crate::diag::count(entries.len(), "node"),
        status_counts(entries),
        report.orch_cpu_seconds,
        report.terraform_cpu_seconds
    );
    out.push_str(
        "<p class=\"legend\"><span class=\"chip s-ok\">ok / no changes</span><span class=\"chip s-changes\">changes</span>\
         <span class=\"chip s-failed\">failed</span><span class=\"chip s-skipped\">skipped / not started</span>\
         <span class=\"chip s-ok prov\">dashed: provisional (placeholders for outputs not applied yet)</span></p>\n",
    );
    grid(&mut out, entries);
    if !report.waves.is_empty() {
        waves(&mut out, report, entries);
    }
    let rows: Vec<Row> = entries.iter().map(|e| e.row.clone()).collect();
    groups(
        &mut out,
        "Access review: who gains and who loses what",
        &review::access_groups(&rows),
    );
    groups(
        &mut out,
        "Changed outside orch",
        &review::drift_groups(&rows),
    );
    nodes(&mut out, entries);
    outputs(&mut out, entries);
    out.push_str("</body>\n</html>\n");
    out
}

/// `3 changes, 1 failed`, in a fixed order of statuses.
fn status_counts(entries: &[Entry]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for e in entries {
        *counts.entry(e.row.status.as_str()).or_default() += 1;
    }
    if counts.is_empty() {
        return "none".to_string();
    }
    counts
        .iter()
        .map(|(status, n)| format!("{n} {}", escape(status)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Accounts down, regions across; each cell holds its nodes as chips linking to their output.
fn grid(out: &mut String, entries: &[Entry]) {
    let mut cells: BTreeMap<(&str, &str), Vec<&Entry>> = BTreeMap::new();
    let mut regions = BTreeSet::new();
    for e in entries {
        let (account, region, _) = split(&e.row.address);
        regions.insert(region);
        cells.entry((account, region)).or_default().push(e);
    }
    let accounts: BTreeSet<&str> = cells.keys().map(|(a, _)| *a).collect();
    out.push_str("<h2>Accounts x regions</h2>\n<table class=\"grid\">\n<tr><th>account</th>");
    for region in &regions {
        let _ = write!(out, "<th scope=\"col\">{}</th>", escape(region));
    }
    out.push_str("</tr>\n");
    for account in &accounts {
        let _ = write!(out, "<tr><th scope=\"row\">{}</th>", escape(account));
        for region in &regions {
            out.push_str("<td>");
            for e in cells.get(&(*account, *region)).into_iter().flatten() {
                let (_, _, name) = split(&e.row.address);
                chip(out, e.row, name);
            }
            out.push_str("</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

fn chip(out: &mut String, row: &Row, label: &str) {
    let _ = write!(
        out,
        "<a class=\"chip {}{}\" href=\"#{}\" data-address=\"{}\" data-status=\"{}\" title=\"{}: {}\">{}</a>",
        class(&row.status),
        if row.provisional { " prov" } else { "" },
        escape(&anchor(&row.address)),
        escape(&row.address),
        escape(&row.status),
        escape(&row.address),
        escape(&row.status),
        escape(label)
    );
}

fn waves(out: &mut String, report: &Report, entries: &[Entry]) {
    out.push_str("<h2>Waves</h2>\n<table class=\"waves\">\n<tr><th>wave</th><th>status</th><th>gate</th><th>nodes</th></tr>\n");
    for wave in &report.waves {
        let _ = write!(
            out,
            "<tr class=\"wave\" data-wave=\"{}\"><td>{}</td><td class=\"{}\">{}</td><td>{}{}</td><td>",
            escape(&wave.name),
            escape(&wave.name),
            class(&wave.status),
            escape(&wave.status),
            escape(wave.gate.as_deref().unwrap_or("-")),
            wave.gate_output.as_deref().map_or_else(String::new, |text| format!(
                "<details><summary>its output</summary><pre>{}</pre></details>",
                escape(text)
            ))
        );
        for e in entries
            .iter()
            .filter(|e| e.wave == Some(wave.name.as_str()))
        {
            chip(out, e.row, &e.row.address);
        }
        out.push_str("</td></tr>\n");
    }
    out.push_str("</table>\n");
}

/// The access review or the drift, one row per change with where it is seen.
fn groups(out: &mut String, title: &str, groups: &[Group]) {
    if groups.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "<h2>{}</h2>\n<table class=\"review\">\n<tr><th></th><th>what</th><th>where</th></tr>",
        escape(title)
    );
    for g in groups {
        let _ = writeln!(
            out,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(g.kind),
            escape(g.kind),
            escape(&g.words),
            escape(&g.place())
        );
    }
    out.push_str("</table>\n");
}

fn nodes(out: &mut String, entries: &[Entry]) {
    let with_waves = entries.iter().any(|e| e.wave.is_some());
    out.push_str("<h2>Nodes</h2>\n<table class=\"nodes\">\n<tr><th>address</th>");
    if with_waves {
        out.push_str("<th>wave</th>");
    }
    out.push_str("<th>action</th><th>+add</th><th>~change</th><th>-destroy</th><th>time</th><th>attempts</th><th>status</th></tr>\n");
    for e in entries {
        let r = e.row;
        let n = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
        let _ = write!(
            out,
            "<tr class=\"node\" data-address=\"{}\" data-status=\"{}\"><td><a href=\"#{}\">{}</a></td>",
            escape(&r.address),
            escape(&r.status),
            escape(&anchor(&r.address)),
            escape(&r.address)
        );
        if with_waves {
            let _ = write!(out, "<td>{}</td>", escape(e.wave.unwrap_or("-")));
        }
        let _ = writeln!(
            out,
            "<td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1} s</td><td class=\"n\">{}</td><td class=\"status {}{}\">{}{}</td></tr>",
            r.action.name(),
            n(r.add),
            n(r.change),
            n(r.destroy),
            r.duration_seconds,
            r.attempts,
            class(&r.status),
            if r.provisional { " prov" } else { "" },
            escape(&r.status),
            if r.provisional { " (provisional)" } else { "" }
        );
    }
    out.push_str("</table>\n");
}

/// Each node's terraform output, folded; failed nodes open, with their error first.
fn outputs(out: &mut String, entries: &[Entry]) {
    out.push_str("<h2>Terraform output</h2>\n");
    for e in entries {
        let r = e.row;
        let failed = class(&r.status) == "s-failed";
        let _ = write!(
            out,
            "<details id=\"{}\"{}><summary><span class=\"chip {}\">{}</span> {}</summary>",
            escape(&anchor(&r.address)),
            if failed { " open" } else { "" },
            class(&r.status),
            escape(&r.status),
            escape(&r.address)
        );
        if let Some(error) = &r.error {
            let _ = write!(out, "<pre class=\"err\">{}</pre>", escape(error));
        }
        let text = if e.text.is_empty() {
            "(no terraform output: the node did not run)"
        } else {
            &e.text
        };
        let _ = writeln!(out, "<pre>{}</pre></details>", escape(text));
    }
}

/// The CSS class of a status: its colour in the grid, the table and the legend.
fn class(status: &str) -> &'static str {
    match status {
        "ok" | "no changes" | "unchanged" | "applied earlier" | "passed" | "done" | "in sync" => {
            "s-ok"
        }
        "changes" | "drifted" | "deleted" => "s-changes",
        "failed" | "interrupted" => "s-failed",
        // "not applied" and the like: a node of a stack whose run stopped on another node.
        s if s.starts_with("skipped") || s.starts_with("not ") => "s-skipped",
        _ => "s-other",
    }
}

/// (account, region, node) of an address; an address that does not split (never from orch)
/// shows whole, under an empty region.
fn split(address: &str) -> (&str, &str, &str) {
    let mut parts = address.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(r), Some(n)) => (a, r, n),
        _ => (address, "", address),
    }
}

fn anchor(address: &str) -> String {
    format!("node-{address}")
}

/// HTML-escapes text for element content and quoted attributes alike. Control characters other
/// than newline and tab become their visible Unicode pictures (ESC as U+241B): a page must show
/// what terraform printed, not let it steer the terminal-less reader's eye or the parser.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            '\u{0}'..='\u{1f}' => {
                out.push(char::from_u32(0x2400 + c as u32).expect("control picture"))
            }
            '\u{7f}' => out.push('\u{2421}'),
            '\u{80}'..='\u{9f}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Wave;
    use super::*;
    use crate::terraform::workflow::Action;

    fn row(address: &str, status: &str) -> Row {
        Row {
            address: address.to_string(),
            action: Action::Plan,
            status: status.to_string(),
            add: Some(1),
            change: Some(0),
            destroy: Some(2),
            provisional: false,
            duration_seconds: 1.25,
            attempts: 1,
            error: None,
            log: None,
            access: Vec::new(),
            drift: None,
        }
    }

    /// A drifted row whose finding and access change carry markup from AWS.
    fn hostile_row() -> Row {
        use crate::policy::Review;
        use crate::terraform::access::KeyAccess;
        use crate::terraform::drift::{Finding, NodeDrift};
        let mut r = row("prod/us-east-1/a", "drifted");
        r.drift = Some(NodeDrift {
            deleted: false,
            findings: vec![Finding {
                resource: "aws_kms_key.this".into(),
                attribute: "description".into(),
                words: "description: \"a\" -> \"<script>x</script> | **b**\"".into(),
            }],
        });
        let review = Review::default();
        r.access = vec![KeyAccess {
            resource: "aws_kms_key.this".into(),
            review,
            note: Some("<img src=x onerror=y>".into()),
        }];
        r
    }

    #[test]
    fn drift_and_access_review_markup_stays_text() {
        let report = Report {
            run: "r".into(),
            action: "drift".into(),
            exit_code: 2,
            orch_cpu_seconds: 0.0,
            terraform_cpu_seconds: 0.0,
            nodes: vec![hostile_row()],
            waves: Vec::new(),
        };
        let page = page(&report, &report.entries());
        assert!(page.contains("<h2>Changed outside orch</h2>"), "{page}");
        assert!(
            page.contains("&lt;script&gt;x&lt;/script&gt; | **b**"),
            "{page}"
        );
        assert!(page.contains("&lt;img src=x onerror=y&gt;"), "{page}");
        assert!(
            !page.contains("<script>") && !page.contains("<img"),
            "{page}"
        );
        let md = super::super::markdown::run(&report, "r.md");
        assert!(
            md.contains("&lt;script&gt;x&lt;/script&gt; \\| \\*\\*b\\*\\*"),
            "{md}"
        );
        assert!(!md.contains("<script>") && !md.contains("<img"), "{md}");
    }

    #[test]
    fn escapes_markup_quotes_and_control_characters() {
        assert_eq!(
            escape("<script>alert(\"x\")</script> & 'y'"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(
            escape("a\u{1b}[31mb\u{0}\u{7f}\n\t"),
            "a\u{241b}[31mb\u{2400}\u{2421}\n\t"
        );
        assert_eq!(escape("\u{85}"), "\\u{85}");
    }

    #[test]
    fn hostile_strings_stay_text_everywhere_on_the_page() {
        let hostile = "a\"><script>x()</script>/r'<img src=x onerror=y()>/n\u{1b}";
        let mut bad = row(hostile, "failed\"><script>s()</script>");
        bad.error = Some("<script>e()</script>".into());
        let report = Report {
            run: "<script>run()</script>".into(),
            action: "plan".into(),
            exit_code: 1,
            orch_cpu_seconds: 0.0,
            terraform_cpu_seconds: 0.0,
            nodes: vec![],
            waves: vec![Wave {
                name: "w<script>".into(),
                status: "gate\"failed".into(),
                gate: Some("<b>".into()),
                gate_output: None,
                nodes: vec![bad],
            }],
        };
        let mut entries = report.entries();
        entries[0].text = "</pre><script>t()</script>".into();
        let html = page(&report, &entries);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains('\u{1b}'));
        // The address shows only escaped, in attributes and text alike.
        assert!(!html.contains(&hostile[..4]));
        assert!(html
            .contains("data-address=\"a&quot;&gt;&lt;script&gt;x()&lt;/script&gt;/r&#39;&lt;img"));
    }

    #[test]
    fn the_page_has_the_grid_the_waves_and_every_node() {
        let report = Report {
            run: "r1".into(),
            action: "plan".into(),
            exit_code: 0,
            orch_cpu_seconds: 0.5,
            terraform_cpu_seconds: 2.0,
            nodes: vec![],
            waves: vec![
                Wave {
                    name: "canary".into(),
                    status: "passed".into(),
                    gate: Some("passed".into()),
                    gate_output: None,
                    nodes: vec![row("dev/us-east-1/app", "ok")],
                },
                Wave {
                    name: "prod".into(),
                    status: "not started".into(),
                    gate: None,
                    gate_output: None,
                    nodes: vec![row("prod/eu-west-1/data", "not started")],
                },
            ],
        };
        let html = page(&report, &report.entries());
        assert!(html.contains("<th scope=\"row\">dev</th>"));
        assert!(html.contains("<th scope=\"col\">eu-west-1</th>"));
        assert!(html.contains("<tr class=\"wave\" data-wave=\"canary\">"));
        assert!(html.contains("<th>wave</th>"));
        assert!(html.contains(
            "<tr class=\"node\" data-address=\"prod/eu-west-1/data\" data-status=\"not started\">"
        ));
        assert!(html.contains("<details id=\"node-dev/us-east-1/app\">"));
        assert!(html.contains("+add"));
        assert_eq!(class("skipped (a/b/c did not succeed)"), "s-skipped");
    }
}
