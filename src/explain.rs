//! `orch explain`: a node's effective configuration as YAML, each value followed by the file and
//! line it came from, then what orch computed from it.

use std::fmt::Write as _;

use marked_yaml::Node as YamlNode;

use crate::config::{Fleet, Node, NodeKind};
use crate::diag::Sources;

pub fn explain(fleet: &Fleet, node: &Node, dependencies: &[String]) -> String {
    let account = fleet.account_of(node);
    let mut out = String::new();
    let _ = writeln!(out, "# {} ({})", node.address, node.kind_name());
    let _ = writeln!(
        out,
        "# account {} ({}), environment {}",
        account.name, account.account_id, account.environment
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
                format!("{pad}{}: {}", key.as_str(), scalar(s, false)),
                origin(value, sources),
            )),
            YamlNode::Sequence(seq) if seq.iter().all(|i| i.as_scalar().is_some()) => {
                let items: Vec<String> = seq
                    .iter()
                    .filter_map(|i| i.as_scalar())
                    .map(|s| scalar(s, true))
                    .collect();
                lines.push((
                    format!("{pad}{}: [{}]", key.as_str(), items.join(", ")),
                    origin(value, sources),
                ));
            }
            YamlNode::Sequence(seq) => {
                lines.push((format!("{pad}{}:", key.as_str()), origin(value, sources)));
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
                lines.push((format!("{pad}{}:", key.as_str()), None));
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
    if s.may_coerce() && reads_back_plain(text, in_flow) {
        text.to_string()
    } else {
        serde_json::to_string(text).expect("a string serializes")
    }
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
    node.span()
        .start()
        .map(|m| sources.locate(crate::diag::Span::new(m.source(), m.line(), m.column())))
}

#[cfg(test)]
mod tests {
    use super::reads_back_plain;

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
