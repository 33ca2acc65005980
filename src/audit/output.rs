//! An audit's findings for the terminal, and `--report FILE` as JSON, a self-contained HTML page
//! or Markdown for a pull request, chosen by the file's extension and checked when the command
//! line is read, before any AWS call. Text from AWS (descriptions, tags, aliases, principals,
//! grant names) is untrusted: escaped for the terminal (`diag::escape`), the page
//! (`report::html::escape`) and Markdown (`report::markdown::text`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::finding::{rules, Finding, Outcome, Rule};
use crate::diag::escape;
use crate::report::html::escape as html;
use crate::report::{format_of, markdown, Format};

/// Checks `--report FILE` of an audit (the checks of a run's report, examples named `audit.*`).
pub fn parse_report_path(text: &str) -> Result<PathBuf, String> {
    crate::report::parse_path_named(text, "audit")
}

/// Writes the report to `path` (whole or not at all), as its extension says.
pub fn write(path: &Path, outcome: &Outcome) -> std::io::Result<()> {
    let text = match format_of(path, "audit").map_err(std::io::Error::other)? {
        Format::Json => {
            serde_json::to_string_pretty(&document(outcome)).expect("JSON serializes") + "\n"
        }
        Format::Html => page(outcome),
        Format::Markdown => markdown::fit(
            &markdown_of(outcome),
            markdown::GITHUB_LIMIT,
            "`orch audit --report audit.json` writes every finding",
        ),
    };
    crate::render::write_atomic(path, text.as_bytes())
}

/// The JSON report: the outcome, its exit code, and every check with its mapping and whether it
/// is turned off.
fn document(outcome: &Outcome) -> serde_json::Value {
    let checks: Vec<serde_json::Value> = rules()
        .into_iter()
        .map(|r| {
            let off = outcome.turned_off.iter().find(|t| t.check == r.check);
            json!({
                "id": r.check.id(),
                "severity": r.severity,
                "title": r.title,
                "config_rule": r.config_rule,
                "prowler": r.prowler,
                "turned_off": off.map(|t| &t.reason),
            })
        })
        .collect();
    json!({
        "exit_code": outcome.exit_code(),
        "checks": checks,
        "findings": outcome.findings,
        "not_read": outcome.not_read,
        "partly_read": outcome.partly_read,
        "turned_off": outcome.turned_off,
        "regions_read": outcome.regions_read,
        "keys_read": outcome.keys_read,
        "aws_managed": outcome.aws_managed,
        "calls": outcome.calls,
        "seconds": outcome.seconds,
    })
}

/// `AWS Config kms-...; Prowler kms_...`, or `none` for each without one.
fn mapping(rule: &Rule) -> String {
    format!(
        "AWS Config: {}; Prowler: {}",
        rule.config_rule.unwrap_or("none"),
        rule.prowler.unwrap_or("none")
    )
}

/// `prod/us-east-1`.
fn place(f: &Finding) -> String {
    format!("{}/{}", f.account, f.region)
}

/// What the terminal shows: what was read, what was not, the findings by check (most severe
/// first), the checks turned off with why, and a closing count.
pub fn text(outcome: &Outcome) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "read {} customer-managed key(s) in {} account/region pair(s) in {:.1}s with {} API call(s); {} AWS-managed key(s) are AWS's own and not checked",
        outcome.keys_read,
        outcome.regions_read,
        outcome.seconds,
        outcome.total_calls(),
        outcome.aws_managed
    );
    for u in &outcome.not_read {
        let _ = writeln!(
            out,
            "NOT READ {}/{} ({}): {}: its keys were not audited",
            u.target.account,
            u.target.region,
            u.target.account_id,
            escape(&u.reason)
        );
    }
    for p in &outcome.partly_read {
        let _ = writeln!(
            out,
            "READ IN PART {}/{} {}: {}: the checks that need it were not run",
            p.account,
            p.region,
            escape(&p.key_id),
            escape(&p.why.join("; "))
        );
    }
    for (rule, findings) in outcome.by_check() {
        let _ = writeln!(
            out,
            "\n{} {} ({}): {}\n    {}",
            rule.severity.name().to_uppercase(),
            rule.check.id(),
            findings.len(),
            rule.title,
            mapping(&rule)
        );
        for f in findings {
            let aliases = if f.aliases.is_empty() {
                String::new()
            } else {
                format!(" ({})", escape(&f.aliases.join(", ")))
            };
            let description = if f.description.is_empty() {
                String::new()
            } else {
                format!(" \"{}\"", escape(&f.description))
            };
            let _ = writeln!(
                out,
                "  {} {}{aliases}{description}: {}",
                place(f),
                escape(&f.key_id),
                escape(&f.found)
            );
        }
    }
    if !outcome.findings.is_empty() || !outcome.turned_off.is_empty() {
        out.push('\n');
    }
    for t in &outcome.turned_off {
        let _ = writeln!(
            out,
            "turned off in orch.yaml: {}: {}",
            t.check.id(),
            escape(&t.reason)
        );
    }
    let _ = writeln!(out, "{}", closing(outcome));
    out
}

/// `3 finding(s): 1 critical, 2 low; exit 2`, and why the exit code is what it is.
fn closing(outcome: &Outcome) -> String {
    let found = if outcome.findings.is_empty() {
        "no findings".to_string()
    } else {
        format!(
            "{} finding(s): {}",
            outcome.findings.len(),
            outcome.counts()
        )
    };
    let why = match outcome.exit_code() {
        0 => "everything read, nothing found",
        2 => "findings",
        _ => "something could not be read: the audit is incomplete",
    };
    format!("{found}; exit {} ({why})", outcome.exit_code())
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.meta{color:#556;margin:0 0 12px}
table{border-collapse:collapse}th,td{border:1px solid #d5d9e0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f5f8;font-weight:600}
.sev{display:inline-block;padding:1px 7px;border-radius:10px;border:1px solid;font-size:12px}
.critical{background:#fde7e7;border-color:#d93025}.high{background:#fff0e0;border-color:#e8710a}
.medium{background:#fff4d6;border-color:#e0a800}.low{background:#eef0f3;border-color:#9aa0a6}
.err{color:#b3261e}
";

/// The self-contained page: no script, nothing fetched.
fn page(outcome: &Outcome) -> String {
    let mut out = String::with_capacity(4096 + outcome.findings.len() * 512);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>orch audit</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>orch audit</h1>\n"
    );
    let _ = writeln!(
        out,
        "<p class=\"meta\">{}; {} customer-managed key(s) read in {} account/region pair(s), {} API call(s), {:.1} s</p>",
        html(&closing(outcome)),
        outcome.keys_read,
        outcome.regions_read,
        outcome.total_calls(),
        outcome.seconds
    );
    if !outcome.not_read.is_empty() || !outcome.partly_read.is_empty() {
        out.push_str("<h2>Not read</h2>\n<ul class=\"err\">\n");
        for u in &outcome.not_read {
            let _ = writeln!(
                out,
                "<li>{}/{} ({}): {}: its keys were not audited</li>",
                html(&u.target.account),
                html(&u.target.region),
                html(&u.target.account_id),
                html(&u.reason)
            );
        }
        for p in &outcome.partly_read {
            let _ = writeln!(
                out,
                "<li>{}/{} key {}: {}: the checks that need it were not run</li>",
                html(&p.account),
                html(&p.region),
                html(&p.key_id),
                html(&p.why.join("; "))
            );
        }
        out.push_str("</ul>\n");
    }
    for (rule, findings) in outcome.by_check() {
        let _ = writeln!(
            out,
            "<h2 id=\"{id}\"><span class=\"sev {sev}\">{sev}</span> {id} ({n})</h2>\n<p>{}. {}</p>",
            html(rule.title),
            html(&mapping(&rule)),
            id = rule.check.id(),
            sev = rule.severity.name(),
            n = findings.len()
        );
        out.push_str("<table>\n<tr><th>account/region</th><th>key</th><th>aliases</th><th>description</th><th>tags</th><th>found</th></tr>\n");
        for f in findings {
            let _ = writeln!(
                out,
                "<tr data-check=\"{}\" data-key=\"{}\"><td>{}</td><td title=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                rule.check.id(),
                html(&f.key_id),
                html(&place(f)),
                html(&f.arn),
                html(&f.key_id),
                html(&f.aliases.join(", ")),
                html(&f.description),
                html(&tags(f)),
                html(&f.found)
            );
        }
        out.push_str("</table>\n");
    }
    checks_table(&mut out, outcome);
    out.push_str("</body>\n</html>\n");
    out
}

/// Every check with its severity and mapping, and the reason of each turned off.
fn checks_table(out: &mut String, outcome: &Outcome) {
    out.push_str("<h2>Checks</h2>\n<table>\n<tr><th>check</th><th>severity</th><th>finds</th><th>AWS Config</th><th>Prowler</th><th>turned off</th></tr>\n");
    for rule in rules() {
        let off = outcome.turned_off.iter().find(|t| t.check == rule.check);
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td><span class=\"sev {sev}\">{sev}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            rule.check.id(),
            html(rule.title),
            rule.config_rule.unwrap_or("none"),
            rule.prowler.unwrap_or("none"),
            off.map_or("-".to_string(), |t| html(&t.reason)),
            sev = rule.severity.name()
        );
    }
    out.push_str("</table>\n");
}

/// `Team=data, Owner=x`.
fn tags(f: &Finding) -> String {
    f.tags
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Markdown report, before it is cut to fit a pull-request comment.
fn markdown_of(outcome: &Outcome) -> String {
    let t = markdown::text;
    let mut out = format!("# orch audit\n\n{}\n\n", t(&closing(outcome)));
    let _ = writeln!(
        out,
        "{} customer\\-managed key(s) read in {} account/region pair(s), {} API call(s).\n",
        outcome.keys_read,
        outcome.regions_read,
        outcome.total_calls()
    );
    if !outcome.not_read.is_empty() || !outcome.partly_read.is_empty() {
        out.push_str("## Not read\n\n");
        for u in &outcome.not_read {
            let _ = writeln!(
                out,
                "- {}: its keys were not audited",
                t(&format!(
                    "{}/{} ({}): {}",
                    u.target.account, u.target.region, u.target.account_id, u.reason
                ))
            );
        }
        for p in &outcome.partly_read {
            let _ = writeln!(
                out,
                "- {}: the checks that need it were not run",
                t(&format!(
                    "{}/{} key {}: {}",
                    p.account,
                    p.region,
                    p.key_id,
                    p.why.join("; ")
                ))
            );
        }
        out.push('\n');
    }
    for (rule, findings) in outcome.by_check() {
        let _ = writeln!(
            out,
            "## {} `{}` ({})\n\n{}\\. {}\n",
            rule.severity.name().to_uppercase(),
            rule.check.id(),
            findings.len(),
            t(rule.title),
            t(&mapping(&rule))
        );
        let rows: Vec<Vec<String>> = findings
            .iter()
            .map(|f| {
                vec![
                    t(&place(f)),
                    t(&f.key_id),
                    t(&f.aliases.join(", ")),
                    t(&f.description),
                    t(&tags(f)),
                    t(&f.found),
                ]
            })
            .collect();
        out.push_str(&markdown::table(
            &[
                "account/region",
                "key",
                "aliases",
                "description",
                "tags",
                "found",
            ],
            &rows,
        ));
        out.push('\n');
    }
    if !outcome.turned_off.is_empty() {
        out.push_str("## Turned off in orch.yaml\n\n");
        for off in &outcome.turned_off {
            let _ = writeln!(out, "- `{}`: {}", off.check.id(), t(&off.reason));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::finding::{rule, PartlyRead, TurnedOff};
    use super::*;
    use crate::config::AuditCheck;

    fn outcome() -> Outcome {
        let r = rule(AuditCheck::PublicPolicy);
        let finding = Finding {
            check: AuditCheck::PublicPolicy,
            severity: r.severity,
            account: "prod".into(),
            account_id: "111111111111".into(),
            region: "us-east-1".into(),
            key_id: "k-1".into(),
            arn: "arn:aws:kms:us-east-1:111111111111:key/k-1".into(),
            aliases: vec!["alias/**bold**|x".into()],
            description: "<script>alert(1)</script>".into(),
            tags: BTreeMap::from([("Team".into(), "a|b\u{1b}[31m".into())]),
            found: "Allow *: kms:Decrypt".into(),
            config_rule: r.config_rule,
            prowler: r.prowler,
        };
        Outcome {
            findings: vec![finding],
            partly_read: vec![PartlyRead {
                account: "prod".into(),
                region: "us-east-1".into(),
                key_id: "k-2".into(),
                arn: String::new(),
                why: vec!["GetKeyPolicy: <denied>".into()],
            }],
            turned_off: vec![TurnedOff {
                check: AuditCheck::RotationOff,
                reason: "rotated by <b>the app</b>".into(),
            }],
            keys_read: 2,
            regions_read: 1,
            ..Outcome::default()
        }
    }

    #[test]
    fn markup_from_aws_stays_text_in_every_format() {
        let o = outcome();
        let md = markdown_of(&o);
        for raw in ["<script>", "**bold**", "<b>", "\u{1b}"] {
            assert!(!md.contains(raw), "{raw:?} in:\n{md}");
        }
        assert!(
            md.contains("&lt;script&gt;alert\\(1\\)&lt;/script&gt;"),
            "{md}"
        );
        assert!(md.contains("\\*\\*bold\\*\\*\\|x"), "{md}");
        assert!(md.contains("## CRITICAL `public-policy` (1)"), "{md}");
        assert!(
            md.contains("- `rotation-off`: rotated by &lt;b&gt;the app&lt;/b&gt;"),
            "{md}"
        );
        let page = page(&o);
        for raw in ["<script>", "<b>", "<denied>", "\u{1b}"] {
            assert!(!page.contains(raw), "{raw:?} in:\n{page}");
        }
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("rotated by &lt;b&gt;the app&lt;/b&gt;"));
        let text = text(&o);
        assert!(!text.contains('\u{1b}'));
        assert!(
            text.contains("CRITICAL public-policy (1): the key policy lets anyone"),
            "{text}"
        );
        assert!(text.contains("AWS Config: kms-key-policy-no-public-access; Prowler: kms_key_not_publicly_accessible"), "{text}");
        assert!(
            text.contains("turned off in orch.yaml: rotation-off: rotated by <b>the app</b>"),
            "{text}"
        );
        assert!(text.ends_with("1 finding(s): 1 critical; exit 1 (something could not be read: the audit is incomplete)\n"), "{text}");
    }

    #[test]
    fn the_json_report_lists_every_check_and_what_is_off() {
        let doc = document(&outcome());
        assert_eq!(doc["exit_code"], 1);
        assert_eq!(doc["findings"][0]["check"], "public-policy");
        assert_eq!(doc["findings"][0]["severity"], "critical");
        let checks = doc["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 8);
        assert_eq!(checks[0]["id"], "public-policy");
        let off = checks.iter().find(|c| c["id"] == "rotation-off").unwrap();
        assert_eq!(off["turned_off"], "rotated by <b>the app</b>");
        assert_eq!(off["config_rule"], "cmk-backing-key-rotation-enabled");
        let unmanaged = checks.iter().find(|c| c["id"] == "unmanaged-key").unwrap();
        assert!(unmanaged["prowler"].is_null());
    }

    #[test]
    fn report_paths_by_extension_directory_and_parent() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        for ok in ["a.json", "a.HTML", "a.htm", "a.md", "a.markdown"] {
            assert!(parse_report_path(&format!("{d}/{ok}")).is_ok(), "{ok}");
        }
        assert!(
            parse_report_path("audit.md").is_ok(),
            "the current directory"
        );
        assert!(parse_report_path(&format!("{d}/a.txt"))
            .unwrap_err()
            .contains("`.txt` is none of them"));
        assert!(parse_report_path(&format!("{d}/a"))
            .unwrap_err()
            .contains("has no extension"));
        std::fs::create_dir(dir.path().join("x.md")).unwrap();
        assert!(parse_report_path(&format!("{d}/x.md"))
            .unwrap_err()
            .contains("is a directory"));
        assert!(parse_report_path(&format!("{d}/nope/a.md"))
            .unwrap_err()
            .contains("does not exist"));
    }
}
