//! Typed reading of a YAML mapping: every getter records the field as known, so `finish` can name
//! each unknown field with a did-you-mean, and every value comes back with its span. Errors are
//! collected, never returned early, so one run reports everything wrong with a file.
//!
//! Values are never coerced. A field that takes text takes it as written, plain or quoted
//! (`account_id: 012345678901` keeps its zero); a quoted value is always text, so `"true"` is not
//! a boolean and `"null"` not null. A plain `null`, `~` or nothing is null: in an optional field
//! that means absent (and it hides a default below it), in a required field, a list or a map of
//! names to values (tags, encryption contexts, inputs) it is an error.

use std::collections::BTreeMap;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::Node;

use super::yaml::{marker_span, span_of};
use crate::diag::{did_you_mean, Diagnostic, Diagnostics, Span};

/// A value and where it was written.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

/// The fields of one mapping, read one by one.
pub struct Fields<'n> {
    map: &'n MarkedMappingNode,
    what: &'static str,
    known: Vec<&'static str>,
    /// Where errors about the mapping as a whole point, when not at the mapping's own marker.
    whole: Option<Span>,
    pub diags: Diagnostics,
}

impl<'n> Fields<'n> {
    pub fn new(map: &'n MarkedMappingNode, what: &'static str) -> Self {
        Fields {
            map,
            what,
            known: Vec::new(),
            whole: None,
            diags: Diagnostics::default(),
        }
    }

    /// Anchors errors about the mapping as a whole (a missing field) at line 1, column 1 of
    /// `source`, for the top-level mapping of a file: the parser marks a block mapping at its
    /// first `:`, which reads as if the first field were wrong.
    pub fn at_file_start(mut self, source: usize) -> Self {
        self.whole = Some(Span::file(source));
        self
    }

    /// Reads `node` as a mapping, or records an error and returns `None`.
    pub fn of(node: &'n Node, what: &'static str, diags: &mut Diagnostics) -> Option<Self> {
        match node {
            Node::Mapping(map) => Some(Fields::new(map, what)),
            _ => {
                diags.push(Diagnostic::error(
                    span_of(node),
                    format!("{what} must be a mapping of `field: value` pairs"),
                ));
                None
            }
        }
    }

    pub fn span(&self) -> Span {
        self.whole
            .unwrap_or_else(|| marker_span(self.map.span().start()))
    }

    pub fn error(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.diags.push(Diagnostic::error(span, message));
        self.diags.last_mut()
    }

    /// The raw node of a field, marking the field as known. Explicit `null` reads as absent.
    pub fn node(&mut self, name: &'static str) -> Option<&'n Node> {
        self.known.push(name);
        match self.map.get_node(name) {
            Some(Node::Scalar(s)) if is_null(s) => None,
            other => other,
        }
    }

    /// Whether a field is set (and not `null`), without marking it as known.
    pub fn has(&self, name: &str) -> bool {
        match self.map.get_node(name) {
            Some(Node::Scalar(s)) => !is_null(s),
            other => other.is_some(),
        }
    }

    /// The span of a field's key, for errors about the field as a whole.
    pub fn key_span(&self, name: &str) -> Option<Span> {
        self.map
            .keys()
            .find(|k| k.as_str() == name)
            .map(|k| marker_span(k.span().start()))
    }

    /// The node of a field that must be set: a missing field and a null one are both errors.
    pub fn required(&mut self, name: &'static str) -> Option<&'n Node> {
        let node = self.node(name);
        if node.is_none() {
            let what = self.what;
            match self.key_span(name) {
                None => {
                    self.error(
                        self.span(),
                        format!("{what} is missing the required field `{name}`"),
                    );
                }
                Some(at) => {
                    self.error(at, format!("`{name}` is required, but it is null (empty)"))
                        .help = Some(format!(
                        "give `{name}` a value; a plain `null`, `~` or nothing after the colon is null in YAML"
                    ));
                }
            }
        }
        node
    }

    pub fn string(&mut self, name: &'static str) -> Option<Spanned<String>> {
        let node = self.node(name)?;
        scalar_string(node, name, &mut self.diags)
    }

    /// A string that must be set and not blank.
    pub fn required_string(&mut self, name: &'static str) -> Option<Spanned<String>> {
        let node = self.required(name)?;
        let found = scalar_string(node, name, &mut self.diags)?;
        if found.value.trim().is_empty() {
            self.error(found.span, format!("`{name}` is required, but it is empty"));
            return None;
        }
        Some(found)
    }

    /// A list of strings that must be set (it may still be empty; callers say whether that is
    /// an error, and why).
    pub fn required_strings(
        &mut self,
        name: &'static str,
    ) -> Option<Spanned<Vec<Spanned<String>>>> {
        let node = self.required(name)?;
        strings_of(node, name, &mut self.diags)
    }

    pub fn bool(&mut self, name: &'static str) -> Option<Spanned<bool>> {
        let node = self.node(name)?;
        match node {
            Node::Scalar(s) => match s.as_bool() {
                Some(b) => Some(Spanned::new(b, span_of(node))),
                None if !s.may_coerce() => {
                    self.error(
                        span_of(node),
                        format!(
                            "`{name}` must be true or false, not the quoted text {:?}",
                            s.as_str()
                        ),
                    )
                    .help = Some("remove the quotes: a quoted value is always text".into());
                    None
                }
                None => {
                    self.error(
                        span_of(node),
                        format!("`{name}` must be true or false, not `{}`", s.as_str()),
                    );
                    None
                }
            },
            _ => {
                self.error(span_of(node), format!("`{name}` must be true or false"));
                None
            }
        }
    }

    pub fn int(&mut self, name: &'static str) -> Option<Spanned<i64>> {
        let node = self.node(name)?;
        match node {
            Node::Scalar(s) if s.may_coerce() => match s.as_str().parse::<i64>() {
                Ok(n) => Some(Spanned::new(n, span_of(node))),
                Err(_) => {
                    self.error(
                        span_of(node),
                        format!("`{name}` must be a whole number, not `{}`", s.as_str()),
                    );
                    None
                }
            },
            Node::Scalar(s) => {
                self.error(
                    span_of(node),
                    format!(
                        "`{name}` must be a whole number, not the quoted text {:?}",
                        s.as_str()
                    ),
                )
                .help = Some("remove the quotes: a quoted value is always text".into());
                None
            }
            _ => {
                self.error(span_of(node), format!("`{name}` must be a whole number"));
                None
            }
        }
    }

    /// A list of strings; a single string is not accepted, so `aliases: x` is caught as a mistake.
    pub fn strings(&mut self, name: &'static str) -> Option<Spanned<Vec<Spanned<String>>>> {
        let node = self.node(name)?;
        strings_of(node, name, &mut self.diags)
    }

    pub fn map(&mut self, name: &'static str, what: &'static str) -> Option<Fields<'n>> {
        let node = self.node(name)?;
        Fields::of(node, what, &mut self.diags)
    }

    /// A mapping of names to strings, such as `tags`.
    pub fn string_map(
        &mut self,
        name: &'static str,
    ) -> Option<Vec<(Spanned<String>, Spanned<String>)>> {
        let node = self.node(name)?;
        let Node::Mapping(map) = node else {
            self.error(
                span_of(node),
                format!("`{name}` must be a mapping of names to values"),
            );
            return None;
        };
        let mut out = Vec::new();
        for (key, value) in map.iter() {
            let key = Spanned::new(key.as_str().to_string(), marker_span(key.span().start()));
            if matches!(value, Node::Scalar(s) if is_null(s)) {
                self.error(
                    key.span,
                    format!("`{}` in `{name}` has no value (null)", key.value),
                )
                .help = Some(format!(
                    "write `{}: \"\"` for an empty value, or remove the entry",
                    key.value
                ));
                continue;
            }
            if let Some(v) = scalar_string(value, name, &mut self.diags) {
                out.push((key, v));
            }
        }
        Some(out)
    }

    /// A mapping of names to strings without their spans (encryption contexts); absent is empty.
    /// Encryption contexts are printed by `orch policy --explain`, so neither their names nor
    /// their values may hold a control or invisible character.
    pub fn plain_map(&mut self, name: &'static str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (k, v) in self.string_map(name).unwrap_or_default() {
            for part in [&k, &v] {
                if let Err(why) = printable(&part.value) {
                    self.error(part.span, format!("`{name}`: {why}"));
                }
            }
            out.insert(k.value, v.value);
        }
        out
    }

    /// [`Fields::string`] for text orch prints as it is (a binary, a URL, a wave's name): it may
    /// not hold a control or invisible character.
    pub fn printable_string(&mut self, name: &'static str) -> Option<Spanned<String>> {
        let found = self.string(name)?;
        if let Err(why) = printable(&found.value) {
            self.error(found.span, format!("`{name}`: {why}"));
        }
        Some(found)
    }

    /// The mapping's own keys with their nodes, for maps keyed by names (profiles, access). An
    /// entry whose value is null is absent, like a null field.
    pub fn entries(&self) -> impl Iterator<Item = (Spanned<&'n str>, &'n Node)> {
        self.map
            .iter()
            .filter(|(_, v)| !matches!(v, Node::Scalar(s) if is_null(s)))
            .map(|(k, v)| (Spanned::new(k.as_str(), marker_span(k.span().start())), v))
    }

    /// Reports every field that no getter asked for. Fields whose key lies in a file other than
    /// `strict_source` (values layered in from defaults meant for other kinds) are let through;
    /// the defaults themselves are checked on their own against every field a node may have.
    pub fn finish(self, diags: &mut Diagnostics, strict_source: Option<u32>) {
        let Fields {
            map,
            what,
            known,
            diags: mine,
            ..
        } = self;
        diags.extend(mine);
        // A getter may be called twice for one field (e.g. `replicas`); name each field once.
        let mut listed: Vec<&str> = Vec::new();
        for name in &known {
            if !listed.contains(name) {
                listed.push(name);
            }
        }
        for key in map.keys() {
            let span = marker_span(key.span().start());
            if known.contains(&key.as_str()) {
                continue;
            }
            if strict_source.is_some_and(|s| s != span.source) {
                continue;
            }
            let mut d =
                Diagnostic::error(span, format!("unknown field `{}` in {what}", key.as_str()));
            d = match did_you_mean(key.as_str(), known.iter().copied()) {
                Some(near) => d.with_help(format!("did you mean `{near}`?")),
                None => d.with_help(format!("the fields of {what} are: {}", listed.join(", "))),
            };
            diags.push(d);
        }
    }
}

/// Text without control characters and the invisible characters that reorder or hide text.
pub fn printable(text: &str) -> Result<(), String> {
    match text.chars().find(|c| crate::diag::needs_escape(*c)) {
        None => Ok(()),
        Some(c) => Err(format!(
            "`{}` holds the control or invisible character {}",
            crate::diag::escape(text),
            crate::diag::escape(&c.to_string())
        )),
    }
}

/// YAML's null: plain `null`, `~` or nothing. A quoted `"null"` is text.
pub fn is_null(s: &MarkedScalarNode) -> bool {
    s.may_coerce() && matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL")
}

/// A scalar as text, exactly as written. Getters filter null fields out first, so a null that
/// reaches here is an item of a list or a value of a map, where it is an error.
pub fn scalar_string(node: &Node, name: &str, diags: &mut Diagnostics) -> Option<Spanned<String>> {
    match node {
        Node::Scalar(s) if is_null(s) => {
            diags.push(
                Diagnostic::error(
                    span_of(node),
                    format!("an item of `{name}` is null (empty)"),
                )
                .with_help("remove the item, or give it a value"),
            );
            None
        }
        Node::Scalar(s) => Some(Spanned::new(s.as_str().to_string(), span_of(node))),
        _ => {
            diags.push(Diagnostic::error(
                span_of(node),
                format!("`{name}` must be a single value, not a list or mapping"),
            ));
            None
        }
    }
}

pub fn strings_of(
    node: &Node,
    name: &str,
    diags: &mut Diagnostics,
) -> Option<Spanned<Vec<Spanned<String>>>> {
    let Node::Sequence(seq) = node else {
        diags.push(
            Diagnostic::error(span_of(node), format!("`{name}` must be a list"))
                .with_help(format!("write `{name}: [value]`")),
        );
        return None;
    };
    let items = seq
        .iter()
        .filter_map(|item| scalar_string(item, name, diags))
        .collect();
    Some(Spanned::new(items, span_of(node)))
}

/// A YAML node as JSON, for values orch passes through untouched (a `policy:` override written as
/// YAML, inputs of a user-defined kind). Scalars keep YAML's plain typing: unquoted numbers and
/// booleans become JSON numbers and booleans, everything else a string.
pub fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value;
    match node {
        Node::Scalar(s) => {
            if is_null(s) {
                Value::Null
            } else if let Some(b) = s.as_bool() {
                Value::Bool(b)
            } else if s.may_coerce() {
                if let Ok(n) = s.as_str().parse::<i64>() {
                    return Value::from(n);
                }
                if let Some(n) = s
                    .as_str()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                {
                    return Value::Number(n);
                }
                Value::String(s.as_str().to_string())
            } else {
                Value::String(s.as_str().to_string())
            }
        }
        Node::Sequence(seq) => Value::Array(seq.iter().map(to_json).collect()),
        Node::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().to_string(), to_json(v)))
                .collect(),
        ),
    }
}
