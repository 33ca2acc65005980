//! JSON values as HCL `.tfvars`, for `orch generate tfvars --format hcl`. Strings are escaped so
//! that `${` and `%{` stay literal text: a tfvars file is parsed as HCL, where both would start a
//! template.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// A tfvars file: one `name = value` line per variable.
pub fn tfvars(vars: &Map<String, Value>) -> String {
    let width = vars.keys().map(String::len).max().unwrap_or(0);
    let mut out = String::new();
    for (name, value) in vars {
        let _ = writeln!(out, "{name:<width$} = {}", value_text(value, 0));
    }
    out
}

fn value_text(value: &Value, indent: usize) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Array(items) if items.is_empty() => "[]".into(),
        Value::Array(items) => {
            let pad = "  ".repeat(indent + 1);
            let body: Vec<String> = items
                .iter()
                .map(|v| format!("{pad}{},", value_text(v, indent + 1)))
                .collect();
            format!("[\n{}\n{}]", body.join("\n"), "  ".repeat(indent))
        }
        Value::Object(map) if map.is_empty() => "{}".into(),
        Value::Object(map) => {
            let pad = "  ".repeat(indent + 1);
            let body: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{pad}{} = {}", string(k), value_text(v, indent + 1)))
                .collect();
            format!("{{\n{}\n{}}}", body.join("\n"), "  ".repeat(indent))
        }
    }
}

/// An HCL quoted string: JSON-style escapes, plus `$${` and `%%{` for literal template markers.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_templates_and_quotes() {
        assert_eq!(string("a \"b\" ${c} %{d}\n"), r#""a \"b\" $${c} %%{d}\n""#);
    }

    #[test]
    fn renders_nested_values() {
        let vars: Map<String, Value> =
            serde_json::from_str(r#"{"a": 1, "tags": {"K": "v"}, "l": ["x"], "n": null}"#).unwrap();
        let text = tfvars(&vars);
        assert!(text.contains("a    = 1\n"));
        assert!(text.contains("tags = {\n  \"K\" = \"v\"\n}\n"));
        assert!(text.contains("l    = [\n  \"x\",\n]\n"));
        assert!(text.contains("n    = null\n"));
    }
}
