//! `orch explain`: a node's effective configuration as YAML, each value followed by the file and
//! line it came from, then what orch computed from it. Text from the tree is never printed raw:
//! a key or value with a control or bidi character is printed quoted, with it escaped.

use std::fmt::Write as _;

use marked_yaml::Node as YamlNode;

use super::context::{print, AppError, Loaded};
use crate::config::{Fleet, Node, NodeKind};
use crate::diag::{escape, needs_escape, Sources};

/// `orch explain ADDRESS`.
pub fn exec(loaded: &Loaded, address: &str) -> Result<(), AppError> {
    let i = loaded.find(address)?;
    let deps: Vec<String> = loaded
        .dag
        .dependencies(i)
        .map(|d| loaded.fleet.nodes[d].address.to_string())
        .collect();
    print(&explain(&loaded.fleet, &loaded.fleet.nodes[i], &deps));
    Ok(())
}

fn explain(fleet: &Fleet, node: &Node, dependencies: &[String]) -> String {
    let account = fleet.account_of(node);
    let mut out = String::new();
    let _ = writeln!(out, "# {} ({})", node.address, escape(node.kind_name()));
    let _ = writeln!(
        out,
        "# account {} ({}), environment {}",
        escape(&account.name),
        escape(&account.account_id),
        escape(&account.environment)
    );
    let mut lines = Vec::new();
    mapping_lines(&node.effective, 0, &fleet.sources, &mut lines);
    let width = lines
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0)
        .min(72);
    for (line, origin) in lines {
        match origin {
            Some(origin) => {
                let _ = writeln!(out, "{line:<width$}  # {origin}");
            }
            None => {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    let _ = writeln!(out, "\n# computed by orch");
    match &node.kind {
        NodeKind::Key(k) => {
            let _ = writeln!(
                out,
                "# spec {} usage {}; rotation {}",
                k.spec.name(),
                k.usage.name(),
                rotation_text(k.rotation.enabled, k.rotation.period_days)
            );
            let _ = writeln!(out, "# replicas: {}", list_or_none(&k.replica_regions));
        }
        NodeKind::Replica(r) => {
            let _ = writeln!(
                out,
                "# replica of {} ({})",
                r.primary.value,
                if r.explicit {
                    "declared with replica_of"
                } else {
                    "synthesized from replicas:"
                }
            );
        }
        _ => {}
    }
    let _ = writeln!(out, "# depends on: {}", list_or_none(dependencies));
    if let Some(line) = crate::layout::current(fleet).explain(node) {
        let _ = writeln!(out, "# {line}");
    }
    out
}

fn rotation_text(enabled: bool, period: Option<u32>) -> String {
    match (enabled, period) {
        (false, _) => "off".into(),
        (true, None) => "every 365 days (AWS default)".into(),
        (true, Some(days)) => format!("every {days} days"),
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

type Line = (String, Option<String>);

fn mapping_lines(
    map: &marked_yaml::types::MarkedMappingNode,
    indent: usize,
    sources: &Sources,
    lines: &mut Vec<Line>,
) {
    let pad = "  ".repeat(indent);
    let mut keys: Vec<_> = map.iter().collect();
    keys.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    for (key, value) in keys {
        match value {
            YamlNode::Scalar(s) => lines.push((
                format!("{pad}{}: {}", name(key), scalar(s, false)),
                origin(value, sources),
            )),
            YamlNode::Sequence(seq) if seq.iter().all(|i| i.as_scalar().is_some()) => {
                let items: Vec<String> = seq
                    .iter()
                    .filter_map(|i| i.as_scalar())
                    .map(|s| scalar(s, true))
                    .collect();
                lines.push((
                    format!("{pad}{}: [{}]", name(key), items.join(", ")),
                    origin(value, sources),
                ));
            }
            YamlNode::Sequence(seq) => {
                lines.push((format!("{pad}{}:", name(key)), origin(value, sources)));
                for item in seq.iter() {
                    match item {
                        YamlNode::Mapping(m) => {
                            lines.push((format!("{pad}  -"), origin(item, sources)));
                            mapping_lines(m, indent + 2, sources, lines);
                        }
                        other => lines.push((
                            format!(
                                "{pad}  - {}",
                                other
                                    .as_scalar()
                                    .map(|s| scalar(s, false))
                                    .unwrap_or_default()
                            ),
                            origin(other, sources),
                        )),
                    }
                }
            }
            YamlNode::Mapping(m) => {
                lines.push((format!("{pad}{}:", name(key)), None));
                mapping_lines(m, indent + 1, sources, lines);
            }
        }
    }
}

/// A scalar as YAML that reads back as the same string: plain when it can be, else quoted (as
/// JSON, which YAML reads as a double-quoted string). `in_flow` is for items of a `[...]` list,
/// where `,`, `[`, `]`, `{` and `}` end a plain scalar.
fn scalar(s: &marked_yaml::types::MarkedScalarNode, in_flow: bool) -> String {
    let text = s.as_str();
    if s.may_coerce() && reads_back_plain(text, in_flow) && !text.chars().any(needs_escape) {
        text.to_string()
    } else {
        quoted(text)
    }
}

/// A mapping key, quoted when written plain it would not read back or would reach the terminal
/// raw.
fn name(key: &marked_yaml::types::MarkedScalarNode) -> String {
    let text = key.as_str();
    if reads_back_plain(text, false) && !text.is_empty() && !text.chars().any(needs_escape) {
        text.to_string()
    } else {
        quoted(text)
    }
}

/// `text` as a double-quoted string (JSON, which YAML reads too), with every character that
/// could act on a terminal written as a `\uXXXX` escape. JSON escapes only control characters
/// below U+0020; DEL, C1 controls and bidi characters it leaves raw.
fn quoted(text: &str) -> String {
    let json = serde_json::to_string(text).expect("a string serializes");
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if needs_escape(c) {
            for unit in c.encode_utf16(&mut [0; 2]) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `text` written plain parses back as that same string: it must not start with a YAML
/// indicator (`"*"` would be an alias, `"&x"` an anchor, `"[a]"` a list), nor hold a `: ` or ` #`
/// that would make it a mapping or cut it at a comment.
fn reads_back_plain(text: &str, in_flow: bool) -> bool {
    let mut chars = text.chars();
    let Some(first) = chars.next() else {
        return true;
    };
    let second = chars.next();
    let starts_with_indicator = "*&!{}[]|>%@`#,'\"".contains(first)
        || ("-?:".contains(first) && second.is_none_or(char::is_whitespace));
    let breaks_flow = in_flow && text.contains([',', '[', ']', '{', '}']);
    !starts_with_indicator
        && !breaks_flow
        && !text.contains(": ")
        && !text.contains(" #")
        && !text.ends_with(':')
        && !text.contains('\n')
        && text.trim() == text
}

fn origin(node: &YamlNode, sources: &Sources) -> Option<String> {
    node.span().start().map(|m| {
        let at = sources.locate(crate::diag::Span::new(m.source(), m.line(), m.column()));
        escape(&at).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::{quoted, reads_back_plain};

    #[test]
    fn quoted_text_escapes_terminal_characters() {
        assert_eq!(quoted("a\x1b[31mb"), "\"a\\u001b[31mb\"");
        assert_eq!(quoted("x\u{202e}y\u{7f}"), "\"x\\u202ey\\u007f\"");
    }

    #[test]
    fn scalars_that_need_quotes() {
        for plain in [
            "prod/s3-data",
            "arn:aws:iam::1:role/x",
            "-1",
            "a-b",
            "30",
            "",
        ] {
            assert!(reads_back_plain(plain, false), "{plain}");
        }
        for quoted in [
            "*", "&x", "!x", "{a}", "[a]", "| x", "> x", "%x", "@x", "`x", "- x", "a: b", "a #b",
            "a:", " a",
        ] {
            assert!(!reads_back_plain(quoted, false), "{quoted}");
        }
        assert!(reads_back_plain("a, b", false));
        assert!(!reads_back_plain("a, b", true));
    }
}
