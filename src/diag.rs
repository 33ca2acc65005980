//! Diagnostics: errors and warnings that point at a file, a line and a column, rendered the way a
//! compiler renders them, with the offending line quoted and a `help:` that says how to fix it.
//! Also [`escape`], which every printer of text from the tree uses: names and values reach the
//! terminal with their control and bidi characters written out, never raw.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a value came from: a source file (an index into [`Sources`]), a 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub source: u32,
    pub line: u32,
    pub col: u32,
}

impl Span {
    pub fn new(source: usize, line: usize, col: usize) -> Self {
        Span {
            source: source as u32,
            line: line as u32,
            col: col as u32,
        }
    }

    /// The start of a file, for errors about a file as a whole (a missing field, a bad name).
    pub fn file(source: usize) -> Self {
        Span::new(source, 1, 1)
    }
}

/// The files of one tree, so a [`Span`] can be turned back into a path and a quoted line.
#[derive(Debug, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
}

#[derive(Debug)]
struct SourceFile {
    path: PathBuf,
    text: Arc<str>,
}

impl Sources {
    pub fn add(&mut self, path: PathBuf, text: Arc<str>) -> usize {
        self.files.push(SourceFile { path, text });
        self.files.len() - 1
    }

    pub fn path(&self, source: u32) -> &Path {
        &self.files[source as usize].path
    }

    pub fn text(&self, source: u32) -> &str {
        &self.files[source as usize].text
    }

    /// `path:line` of a span, the form every message and `orch explain` use.
    pub fn locate(&self, span: Span) -> String {
        format!("{}:{}", self.path(span.source).display(), span.line)
    }

    fn line_text(&self, span: Span) -> Option<&str> {
        self.text(span.source)
            .lines()
            .nth(span.line.checked_sub(1)? as usize)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about the tree.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    /// The primary location; `None` for findings about the tree as a whole (no `live/` at all).
    pub span: Option<Span>,
    /// Further locations with a short label each, e.g. every edge of a cycle.
    pub notes: Vec<(Span, String)>,
    pub help: Option<String>,
    /// A location outside the tree (a directory), for errors that have no YAML file to point at.
    pub path: Option<PathBuf>,
}

impl Diagnostic {
    pub fn error(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span: Some(span),
            notes: Vec::new(),
            help: None,
            path: None,
        }
    }

    pub fn warning(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(span, message)
        }
    }

    /// An error about a path that is not a YAML file (a directory with a bad name, a missing file).
    pub fn at_path(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span: None,
            notes: Vec::new(),
            help: None,
            path: Some(path.into()),
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_note(mut self, span: Span, label: impl Into<String>) -> Self {
        self.notes.push((span, label.into()));
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the finding like a compiler: headline, location, quoted line with a caret, notes, help.
    pub fn render(&self, sources: &Sources) -> String {
        let mut out = String::new();
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{label}: {}", escape(&self.message));
        if let Some(span) = self.span {
            quote(&mut out, sources, span, None);
        } else if let Some(path) = &self.path {
            let _ = writeln!(out, "  --> {}", escape(&path.display().to_string()));
        }
        for (span, note) in &self.notes {
            quote(&mut out, sources, *span, Some(note));
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "  = help: {}", escape(help));
        }
        out
    }
}

fn quote(out: &mut String, sources: &Sources, span: Span, note: Option<&str>) {
    let _ = writeln!(
        out,
        "  --> {}:{}:{}{}",
        escape(&sources.path(span.source).display().to_string()),
        span.line,
        span.col,
        note.map(|n| format!(" ({})", escape(n)))
            .unwrap_or_default()
    );
    if let Some(text) = sources.line_text(span) {
        let gutter = span.line.to_string();
        let pad = " ".repeat(gutter.len());
        // Columns count characters; the caret goes under the escaped text as printed.
        let (text, col) = excerpt(text, span.col as usize);
        let chars: Vec<char> = text.chars().collect();
        let start = col.saturating_sub(1).min(chars.len());
        let before: String = chars[..start].iter().collect();
        let rest: String = chars[start..].iter().collect();
        let token: String = rest.chars().take(token_width(&rest)).collect();
        let caret_at = " ".repeat(escape(&before).chars().count());
        let width = escape(&token).chars().count().clamp(1, 60);
        let _ = writeln!(out, "   {pad}|");
        let _ = writeln!(out, "   {gutter}| {}", escape(&text));
        let _ = writeln!(out, "   {pad}| {caret_at}{}", "^".repeat(width));
    }
}

/// `text` as it may be printed on a terminal: control characters (ESC starts an ANSI sequence,
/// CR rewrites the line) written as `\x1b`, `\r`, ..., and the invisible format characters that
/// reorder or hide text (bidi overrides and isolates, zero-width characters) as `\u{202e}`.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// [`escape`] for multi-line text (terraform's captured output): line breaks and tabs stay.
pub fn escape_lines(text: &str) -> Cow<'_, str> {
    if !text
        .chars()
        .any(|c| needs_escape(c) && c != '\n' && c != '\t')
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c => push_escaped(&mut out, c),
        }
    }
    Cow::Owned(out)
}

/// Whether `c` could act on a terminal, or hide or reorder the text around it.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        c if !needs_escape(c) => out.push(c),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// The part of a long line (a minified policy, a huge flow list) around column `col`, marked `…`
/// where cut, and the column within it: a diagnostic quotes a line, never a megabyte.
fn excerpt(line: &str, col: usize) -> (String, usize) {
    const WIDTH: usize = 160;
    const BEFORE: usize = 60;
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= WIDTH {
        return (line.to_string(), col);
    }
    let start = col.saturating_sub(1 + BEFORE).min(chars.len() - WIDTH);
    let end = start + WIDTH;
    let mut shown: String = if start > 0 {
        "…".into()
    } else {
        String::new()
    };
    shown.extend(&chars[start..end]);
    if end < chars.len() {
        shown.push('…');
    }
    (shown, col - start + usize::from(start > 0))
}

/// The width in characters of the YAML token at the start of `rest`, so the underline covers the
/// offending value and not the rest of its line: a quoted string or a flow list or mapping whole,
/// a plain scalar up to the `,`, `]` or `}` that ends it in a flow list, the `: ` after a key, or
/// a ` #` comment.
fn token_width(rest: &str) -> usize {
    let chars: Vec<char> = rest.chars().collect();
    match chars.first() {
        Some(&quote @ ('"' | '\'')) => {
            let mut i = 1;
            while i < chars.len() {
                match chars[i] {
                    '\\' if quote == '"' => i += 1,
                    // '' is an escaped quote inside a single-quoted string.
                    '\'' if quote == '\'' && chars.get(i + 1) == Some(&'\'') => i += 1,
                    c if c == quote => return i + 1,
                    _ => {}
                }
                i += 1;
            }
            chars.len()
        }
        Some('[' | '{') => {
            let mut depth = 0;
            let mut quote = None;
            for (i, &c) in chars.iter().enumerate() {
                match (quote, c) {
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), _) => {}
                    (None, '"' | '\'') => quote = Some(c),
                    (None, '[' | '{') => depth += 1,
                    (None, ']' | '}') => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
            }
            chars.len()
        }
        _ => {
            let end = (0..chars.len())
                .find(|&i| {
                    let next = chars.get(i + 1);
                    match chars[i] {
                        ',' | ']' | '}' => true,
                        ':' => next.is_none_or(|c| c.is_whitespace()),
                        c if c.is_whitespace() => next == Some(&'#'),
                        _ => false,
                    }
                })
                .unwrap_or(chars.len());
            chars[..end]
                .iter()
                .rposition(|c| !c.is_whitespace())
                .map_or(0, |last| last + 1)
        }
    }
}

/// The most findings one report prints; the rest are counted. A generated file with 100,000
/// mistakes would otherwise take minutes to print and bury the first one.
const MAX_SHOWN: usize = 200;

/// The findings of one stage; a stage that produced any error stops the pipeline, but only after
/// collecting every error it can find.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    /// The finding pushed last, to attach a help or a note to it.
    pub fn last_mut(&mut self) -> &mut Diagnostic {
        self.items.last_mut().expect("a diagnostic was just pushed")
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    /// Drops repeats: a bad default is met by every node that inherits it, but is one mistake.
    pub fn dedup(&mut self) {
        let mut seen = std::collections::HashSet::new();
        self.items
            .retain(|d| seen.insert((d.span, d.path.clone(), d.message.clone())));
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| d.is_error()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Sorted by file and line so the report reads top to bottom like the tree.
    pub fn render(&self, sources: &Sources) -> String {
        let mut items: Vec<&Diagnostic> = self.items.iter().collect();
        items.sort_by_key(|d| (d.span.is_some(), d.span, d.path.clone()));
        let mut out: String = items
            .iter()
            .take(MAX_SHOWN)
            .map(|d| d.render(sources) + "\n")
            .collect();
        if items.len() > MAX_SHOWN {
            let _ = writeln!(
                out,
                "... and {} more finding(s) not shown; fix the ones above and run again\n",
                items.len() - MAX_SHOWN
            );
        }
        out
    }
}

/// The closest candidate to `word`, for "did you mean" hints; `None` when nothing is close.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `n` things in words: `1 node`, `2 nodes`, `0 nodes`: `one` is the singular, and the plural
/// adds an `s`, or is `many` when given (`dependencies`).
pub fn count(n: usize, one: &str) -> String {
    count_of(n, one, &format!("{one}s"))
}

/// [`count`] with its own plural.
pub fn count_of(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::{count, count_of, escape, escape_lines, excerpt, token_width};

    #[test]
    fn one_thing_is_singular_and_any_other_number_plural() {
        assert_eq!(count(1, "node"), "1 node");
        assert_eq!(count(0, "node"), "0 nodes");
        assert_eq!(count(13, "node"), "13 nodes");
        assert_eq!(count_of(1, "dependency", "dependencies"), "1 dependency");
        assert_eq!(count_of(7, "dependency", "dependencies"), "7 dependencies");
    }

    #[test]
    fn escapes_what_would_act_on_a_terminal() {
        assert_eq!(escape("plain text, é, ü"), "plain text, é, ü");
        assert_eq!(escape("\x1b[31mred"), "\\x1b[31mred");
        assert_eq!(escape("a\rb\nc\td\x7f"), "a\\rb\\nc\\td\\x7f");
        assert_eq!(escape("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(
            escape("\u{85}\u{200b}\u{2066}\u{feff}"),
            "\\u{85}\\u{200b}\\u{2066}\\u{feff}"
        );
        assert_eq!(escape_lines("a\n\tb\x1b\n"), "a\n\tb\\x1b\n");
    }

    #[test]
    fn long_lines_are_quoted_around_the_column() {
        let line = "x".repeat(1_000);
        let (shown, col) = excerpt(&line, 500);
        assert_eq!(shown.chars().count(), 162);
        assert!(shown.starts_with('…') && shown.ends_with('…'));
        assert_eq!(col, 62);
        assert_eq!(excerpt("short", 3), ("short".to_string(), 3));
    }

    #[test]
    fn underline_stops_at_the_end_of_the_token() {
        assert_eq!(token_width("eu-wset-1, us-east-1]"), "eu-wset-1".len());
        assert_eq!(token_width("eu-wset-1]"), "eu-wset-1".len());
        assert_eq!(token_width("45   # days"), 2);
        assert_eq!(token_width("alaises: [prod/data]"), "alaises".len());
        assert_eq!(
            token_width("arn:aws:iam::1:role/x}"),
            "arn:aws:iam::1:role/x".len()
        );
        assert_eq!(token_width("\"a, b\" # c"), "\"a, b\"".len());
        assert_eq!(token_width("'it''s', x"), "'it''s'".len());
        assert_eq!(token_width("[a, [b]] # c"), "[a, [b]]".len());
        assert_eq!(token_width("Encrypts data  "), "Encrypts data".len());
    }
}
