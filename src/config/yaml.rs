//! Reading one YAML file into a tree of nodes that remember their file, line and column.
//!
//! `serde_yaml` drops positions once a document is parsed, and every effective value of the fleet
//! has to name where it came from, so the loader parses with `marked-yaml` (yaml-rust2 underneath)
//! and decodes by hand in `decode.rs`.

use std::path::Path;
use std::sync::Arc;

use marked_yaml::{LoadError, LoaderOptions, Node};

use crate::diag::{Diagnostic, Sources, Span};

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
    let text: Arc<str> = match std::fs::read_to_string(path) {
        Ok(text) => text.into(),
        Err(err) => {
            return Err(Diagnostic::at_path(
                path,
                format!("cannot read {}: {err}", path.display()),
            ))
        }
    };
    let source = sources.add(path.to_path_buf(), text.clone());
    // A quoted scalar is text: without `prevent_coercion` marked-yaml would read `"true"` as a
    // boolean and `"null"` as null.
    let options = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    match marked_yaml::parse_yaml_with_options(source, &*text, options) {
        Ok(root) => Ok(YamlFile { source, root }),
        Err(LoadError::TopLevelMustBeMapping(_)) if is_blank(&text) => Ok(YamlFile {
            source,
            root: Node::Mapping(marked_yaml::types::MarkedMappingNode::new_empty(
                marked_yaml::Span::new_start(marked_yaml::Marker::new(source, 0, 1, 1)),
            )),
        }),
        Err(err) => {
            // yaml-rust2 marks some scan errors with its own source index; pin them to this file.
            let mut diagnostic = load_error(err);
            if let Some(span) = diagnostic.span.as_mut() {
                span.source = source as u32;
            }
            Err(diagnostic)
        }
    }
}

fn is_blank(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with('#') || l == "---")
}

fn load_error(err: LoadError) -> Diagnostic {
    match err {
        LoadError::TopLevelMustBeMapping(m) => Diagnostic::error(
            marker_span(Some(&m)),
            "expected a mapping of `field: value` pairs at the top of the file",
        )
        .with_help("each orch file is a YAML mapping, e.g. `description: ...`"),
        LoadError::TopLevelMustBeSequence(m) => {
            Diagnostic::error(marker_span(Some(&m)), "unexpected top-level sequence")
        }
        LoadError::UnexpectedAnchor(m) => Diagnostic::error(
            marker_span(Some(&m)),
            "YAML anchors and aliases are not supported",
        )
        .with_help("put shared values in `defaults:` of orch.yaml, account.yaml or region.yaml"),
        LoadError::MappingKeyMustBeScalar(m) => {
            Diagnostic::error(marker_span(Some(&m)), "a mapping key must be a plain name")
        }
        LoadError::UnexpectedTag(m) => Diagnostic::error(
            marker_span(Some(&m)),
            "YAML tags (`!name`) are not supported",
        )
        .with_help("remove the tag; write the value as plain YAML"),
        LoadError::ScanError(m, e) => Diagnostic::error(
            marker_span(Some(&m)),
            format!("malformed YAML: {}", e.info()),
        )
        .with_help("check the indentation and quoting on this line and the one before"),
        LoadError::DuplicateKey(inner) => Diagnostic::error(
            marker_span(inner.key.span().start()),
            format!(
                "field `{}` is set twice in this mapping",
                inner.key.as_str()
            ),
        )
        .with_note(marker_span(inner.prev_key.span().start()), "first set here")
        .with_help("remove one of the two"),
    }
}
