//! Reading one YAML file into a tree of nodes that remember their file, line and column.
//!
//! `serde_yaml` drops positions once a document is parsed, and every effective value of the fleet
//! has to name where it came from, so the tree is built from yaml-rust2's events into
//! `marked-yaml` nodes, and decoded by hand in `decode.rs`. The tree is built here, not by
//! `marked-yaml`'s own loader, because that loader recurses once per level of nesting (a
//! block-style list 10,000 deep overflowed the stack), reads only the first of several documents
//! and drops everything after a NUL byte without a word. Here a file is read whole or refused.

use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode, MarkedSequenceNode};
use marked_yaml::Node;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;
use yaml_rust2::ScanError;

use crate::diag::{Diagnostic, Sources, Span};

/// The deepest nesting of lists and mappings a file may have. orch's own fields need five or
/// six levels (a policy override's conditions); the limit keeps every recursive walk over a
/// value (layering, decoding, dropping it) far from the end of the stack.
pub const MAX_DEPTH: usize = 64;

/// The largest file orch reads: far above any real file (a generated list of 100,000 principals
/// is under 5 MB, and is refused for the policy it would make), low enough that a huge file
/// cannot exhaust memory.
pub const MAX_BYTES: usize = 8 << 20;

/// The span of a YAML node (its first character).
pub fn span_of(node: &Node) -> Span {
    marker_span(node.span().start())
}

pub fn marker_span(marker: Option<&marked_yaml::Marker>) -> Span {
    marker
        .map(|m| Span::new(m.source(), m.line(), m.column()))
        .unwrap_or(Span::new(0, 1, 1))
}

/// A parsed file: its index in [`Sources`] and its top-level mapping.
#[derive(Debug)]
pub struct YamlFile {
    pub source: usize,
    pub root: Node,
}

/// Reads and parses `path`. A file that holds only comments or blank lines is an empty mapping.
pub fn load(path: &Path, sources: &mut Sources) -> Result<YamlFile, Diagnostic> {
    let bytes = read_whole(path)?;
    let (text, invalid) = decode(&bytes);
    let text: Arc<str> = text.into();
    let source = sources.add(path.to_path_buf(), text.clone());
    if let Some((line, col, byte)) = invalid {
        return Err(Diagnostic::error(
            Span::new(source, line, col),
            format!("{} is not valid UTF-8 (byte 0x{byte:02X})", path.display()),
        )
        .with_help(
            if matches!(bytes.get(..2), Some([0xFF, 0xFE] | [0xFE, 0xFF])) {
                "the file is UTF-16; save it as UTF-8"
            } else {
                "save the file as UTF-8"
            },
        ));
    }
    check_characters(source, &text)?;
    let root = parse(source, &text)?;
    Ok(YamlFile { source, root })
}

fn read_whole(path: &Path) -> Result<Vec<u8>, Diagnostic> {
    let cannot = |err: std::io::Error| {
        Diagnostic::at_path(path, format!("cannot read {}: {err}", path.display()))
    };
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    // One byte more than the limit tells a file at the limit from a larger one without reading
    // (or allocating) all of a huge file.
    file.take(MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() > MAX_BYTES {
        return Err(Diagnostic::at_path(
            path,
            format!(
                "{} is larger than {} KiB, the most orch reads from one file",
                path.display(),
                MAX_BYTES / 1024
            ),
        )
        .with_help(
            "orch's files hold settings; move large values (a policy) out, or split the node",
        ));
    }
    Ok(bytes)
}

/// The text of a file without its byte-order mark and with every line ending (`\r\n`, a lone
/// `\r`) made `\n`, as YAML reads them, so a span's line is the same line `Sources` quotes.
/// Bytes that are not UTF-8 become U+FFFD, and the first one's line, column and value come back.
fn decode(bytes: &[u8]) -> (String, Option<(usize, usize, u8)>) {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let (text, invalid) = match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), None),
        Err(err) => {
            let (line, col) = position(&String::from_utf8_lossy(&bytes[..err.valid_up_to()]));
            (
                String::from_utf8_lossy(bytes).into_owned(),
                Some((line, col, bytes[err.valid_up_to()])),
            )
        }
    };
    let text = if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text
    };
    (text, invalid)
}

/// The 1-based line and column just after `prefix`.
fn position(prefix: &str) -> (usize, usize) {
    let line = prefix.matches('\n').count() + 1;
    let last = prefix.rsplit('\n').next().unwrap_or("");
    (line, last.chars().count() + 1)
}

/// Refuses characters YAML does not allow in a file: those outside its printable set, and a
/// byte-order mark anywhere but at the start (`decode` has removed that one). A NUL byte in
/// particular ends yaml-rust2's input, so everything after it would silently be ignored.
fn check_characters(source: usize, text: &str) -> Result<(), Diagnostic> {
    let Some((at, c)) = text
        .char_indices()
        .find(|&(_, c)| !is_printable(c) || c == '\u{FEFF}')
    else {
        return Ok(());
    };
    let (line, col) = position(&text[..at]);
    let span = Span::new(source, line, col);
    Err(if c == '\u{FEFF}' {
        // Invisible in most editors, and a field name that holds one is never found.
        Diagnostic::error(span, "a byte-order mark (U+FEFF) inside the file").with_help(
            "remove it: only the very start of a file may hold one (were two files joined?)",
        )
    } else if c == '\0' {
        Diagnostic::error(span, "a NUL byte in the file")
            .with_help("remove it; a file full of NUL bytes was saved as UTF-16: save it as UTF-8")
    } else {
        Diagnostic::error(
            span,
            format!("control character U+{:04X} in the file", u32::from(c)),
        )
        .with_help(
            "remove it; to put one in a value, write it as an escape in double quotes (\"\\t\")",
        )
    })
}

/// YAML 1.2's printable characters (`c-printable`), less `\r`, which `decode` has replaced.
fn is_printable(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | ' '..='~' | '\u{85}' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}'
        | '\u{10000}'..)
}

/// A list or mapping whose end has not been read yet.
enum Open {
    Sequence(marked_yaml::Marker, Vec<Node>),
    /// A mapping and the key read last, waiting for its value.
    Mapping(MarkedMappingNode, Option<MarkedScalarNode>),
}

/// Parses the text of one file (`source` in [`Sources`]) into its top-level mapping. The tree is
/// built from the parser's events with an explicit stack, so no nesting can exhaust the call
/// stack, and nesting deeper than [`MAX_DEPTH`] is an error.
pub fn parse(source: usize, text: &str) -> Result<Node, Diagnostic> {
    let mut parser = Parser::new_from_str(text);
    let mut open: Vec<Open> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0;
    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|err| scan_error(source, text, &err))?;
        let at = marker(source, &mark);
        let span = marker_span(Some(&at));
        let done = match event {
            Event::StreamEnd => break,
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => None,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(Diagnostic::error(span, "a second YAML document in the file")
                        .with_help("orch reads one document per file: remove the `---` line and merge the two, or move the second into its own file"));
                }
                None
            }
            Event::Alias(_) => return Err(anchor_error(span)),
            Event::Scalar(value, style, anchor, tag) => {
                refuse_anchor_or_tag(span, anchor, tag.is_some())?;
                let mut scalar = MarkedScalarNode::new(marked_yaml::Span::new_start(at), value);
                // Only a plain scalar may be read as null, a number or a boolean: `"30"` is a
                // string.
                scalar.set_coerce(style == TScalarStyle::Plain);
                Some(Node::Scalar(scalar))
            }
            Event::SequenceStart(anchor, ref tag) | Event::MappingStart(anchor, ref tag) => {
                refuse_anchor_or_tag(span, anchor, tag.is_some())?;
                if let Some(Open::Mapping(_, None)) = open.last() {
                    return Err(
                        Diagnostic::error(span, "a mapping key must be a plain name").with_help(
                            "write the key as a name, e.g. `tags:`, not a list or mapping",
                        ),
                    );
                }
                if open.len() >= MAX_DEPTH {
                    return Err(depth_error(span));
                }
                open.push(if matches!(event, Event::SequenceStart(..)) {
                    Open::Sequence(at, Vec::new())
                } else {
                    Open::Mapping(
                        MarkedMappingNode::new_empty(marked_yaml::Span::new_start(at)),
                        None,
                    )
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match open.pop() {
                Some(Open::Sequence(start, items)) => Some(Node::Sequence(
                    MarkedSequenceNode::new(marked_yaml::Span::new_with_marks(start, at), items),
                )),
                Some(Open::Mapping(mut map, _)) => {
                    let start = *map.span().start().expect("set when the mapping opened");
                    *map.span_mut() = marked_yaml::Span::new_with_marks(start, at);
                    Some(Node::Mapping(map))
                }
                None => None,
            },
        };
        if let Some(node) = done {
            match open.last_mut() {
                None => root = Some(node),
                Some(Open::Sequence(_, items)) => items.push(node),
                Some(Open::Mapping(map, key @ None)) => {
                    let Node::Scalar(name) = node else {
                        unreachable!("a list or mapping as a key is refused when it opens")
                    };
                    *key = Some(check_key(map, name)?);
                }
                Some(Open::Mapping(map, key)) => {
                    let name = key.take().expect("matched above");
                    map.insert(name, node);
                }
            }
        }
    }
    match root {
        Some(node @ Node::Mapping(_)) => Ok(node),
        None => Ok(empty(source)),
        Some(Node::Scalar(_)) if is_blank(text) => Ok(empty(source)),
        Some(node) => Err(Diagnostic::error(
            span_of(&node),
            "expected a mapping of `field: value` pairs at the top of the file",
        )
        .with_help("each orch file is a YAML mapping, e.g. `description: ...`")),
    }
}

fn empty(source: usize) -> Node {
    Node::Mapping(MarkedMappingNode::new_empty(marked_yaml::Span::new_start(
        marked_yaml::Marker::new(source, 0, 1, 1),
    )))
}

fn marker(source: usize, mark: &yaml_rust2::scanner::Marker) -> marked_yaml::Marker {
    marked_yaml::Marker::new(source, mark.index(), mark.line(), mark.col() + 1)
}

/// A key must be a name: not null (an empty key, `~`), not YAML 1.1's merge key `<<`, and not
/// set twice in one mapping.
fn check_key(
    map: &MarkedMappingNode,
    key: MarkedScalarNode,
) -> Result<MarkedScalarNode, Diagnostic> {
    let span = marker_span(key.span().start());
    if key.may_coerce() && matches!(key.as_str(), "" | "~" | "null" | "Null" | "NULL") {
        return Err(
            Diagnostic::error(span, "a mapping key is empty (null)").with_help(
                "write the field's name before the `:`; quote it if the name really is `null`",
            ),
        );
    }
    if key.may_coerce() && key.as_str() == "<<" {
        return Err(
            Diagnostic::error(span, "YAML merge keys (`<<`) are not supported").with_help(
                "put shared values in `defaults:` of orch.yaml, account.yaml or region.yaml",
            ),
        );
    }
    if map.get_node(key.as_str()).is_some() {
        let first = map
            .keys()
            .find(|k| k.as_str() == key.as_str())
            .map(|k| marker_span(k.span().start()))
            .unwrap_or(span);
        return Err(Diagnostic::error(
            span,
            format!("field `{}` is set twice in this mapping", key.as_str()),
        )
        .with_note(first, "first set here")
        .with_help("remove one of the two"));
    }
    Ok(key)
}

fn refuse_anchor_or_tag(span: Span, anchor: usize, tagged: bool) -> Result<(), Diagnostic> {
    if anchor != 0 {
        return Err(anchor_error(span));
    }
    if tagged {
        return Err(
            Diagnostic::error(span, "YAML tags (`!name`) are not supported")
                .with_help("remove the tag; write the value as plain YAML"),
        );
    }
    Ok(())
}

fn anchor_error(span: Span) -> Diagnostic {
    Diagnostic::error(span, "YAML anchors and aliases are not supported")
        .with_help("put shared values in `defaults:` of orch.yaml, account.yaml or region.yaml")
}

fn depth_error(span: Span) -> Diagnostic {
    Diagnostic::error(
        span,
        format!("lists and mappings nested more than {MAX_DEPTH} levels deep"),
    )
    .with_help("no orch field nests this deep; check the indentation, or flatten the value")
}

fn scan_error(source: usize, text: &str, err: &ScanError) -> Diagnostic {
    let span = marker_span(Some(&marker(source, err.marker())));
    // yaml-rust2's own limit on flow nesting (`[[[...`), met before the tree reaches MAX_DEPTH
    // when the scanner looks ahead.
    if err.info() == "recursion limit exceeded" {
        return depth_error(span);
    }
    let after_tab = text
        .split('\n')
        .nth(span.line as usize - 1)
        .and_then(|line| line.chars().nth((span.col as usize).checked_sub(2)?))
        == Some('\t');
    if err.info().starts_with("':' must be followed") && after_tab {
        return Diagnostic::error(span, "a tab after `:`")
            .with_help("separate a field from its value with a space, not a tab");
    }
    if err.info().contains("tab") {
        return Diagnostic::error(tab_span(text, span), "a tab in the indentation")
            .with_help("YAML indents with spaces only: replace the tab with spaces");
    }
    Diagnostic::error(span, format!("malformed YAML: {}", err.info()))
        .with_help("check the indentation and quoting on this line and the one before")
}

/// Where the offending tab is. yaml-rust2 marks some tab errors at the start of the scalar before
/// it (on an earlier line) or just after the tab: the tab is the one under the mark, else the first
/// one in the indentation of the marked line or a later one.
fn tab_span(text: &str, span: Span) -> Span {
    let mut lines = text.split('\n').enumerate().skip(span.line as usize - 1);
    if let Some((_, line)) = lines.clone().next() {
        if line.chars().nth(span.col as usize - 1) == Some('\t') {
            return span;
        }
    }
    lines
        .find_map(|(i, line)| {
            let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
            let col = line[..indent].find('\t')?;
            Some(Span {
                line: i as u32 + 1,
                col: col as u32 + 1,
                ..span
            })
        })
        .unwrap_or(span)
}

fn is_blank(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with('#') || l == "---")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        // The top-level mapping is level 1; each `[` opens one more.
        format!("a: {}x{}\n", "[".repeat(depth - 1), "]".repeat(depth - 1))
    }

    #[test]
    fn depth_limit_is_exact() {
        assert!(parse(0, &nested(MAX_DEPTH)).is_ok());
        let err = parse(0, &nested(MAX_DEPTH + 1)).unwrap_err();
        assert_eq!(err.span, Some(Span::new(0, 1, 4 + MAX_DEPTH - 1)));
    }

    #[test]
    fn scalar_style_decides_coercion() {
        let root = parse(0, "a: 30\nb: \"30\"\nc: '30'\nd: |\n  30\n").unwrap();
        let map = root.as_mapping().unwrap();
        let coerces = |k: &str| map.get_scalar(k).unwrap().may_coerce();
        assert!(coerces("a"));
        assert!(!coerces("b") && !coerces("c") && !coerces("d"));
    }

    #[test]
    fn blank_files_are_empty_mappings() {
        for text in ["", "# only a comment\n", "---\n", "\n\n"] {
            let root = parse(0, text).unwrap();
            assert!(root.as_mapping().unwrap().is_empty(), "{text:?}");
        }
    }

    #[test]
    fn decode_skips_the_bom_and_unifies_line_ends() {
        let (text, invalid) = decode(b"\xEF\xBB\xBFa: 1\r\nb: 2\rc: 3\n");
        assert_eq!(text, "a: 1\nb: 2\nc: 3\n");
        assert_eq!(invalid, None);
        let (_, invalid) = decode(b"a: 1\nb: \xC3x\n");
        assert_eq!(invalid, Some((2, 4, 0xC3)));
    }

    #[test]
    fn tab_is_found_on_a_later_line() {
        let text = "a: x\n  \tb: y\n";
        assert_eq!(tab_span(text, Span::new(0, 1, 4)), Span::new(0, 2, 3));
        // A tab under the mark is the one.
        assert_eq!(tab_span("a:\tb\n", Span::new(0, 1, 3)), Span::new(0, 1, 3));
    }
}
