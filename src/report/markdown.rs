//! Markdown for pull requests and `GITHUB_STEP_SUMMARY`: text from users and from AWS (a key's
//! description, a tag, a principal) made inert, and a document cut to fit where it is posted.
//! GitHub renders the HTML inside Markdown, so `<` is never let through; a table cell keeps to one
//! line; control and bidi characters are shown escaped as on the terminal.

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
