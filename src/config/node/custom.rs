//! A user-defined kind (a folder under templates/): the key it may name and the inputs its
//! module is given, none of them a variable orch sets itself.

use super::read_address;
use crate::config::decode::{self, to_json, Fields};
use crate::config::model::Custom;
use crate::config::yaml;

/// The variables orch gives every module (templates/common/variables.tf, and `key_arn` for a
/// node that names a key). A node's `inputs` may not set them: `account_id` or `role_arn` from an
/// input would deploy the node into another account.
pub const ORCH_VARIABLES: &[&str] = &[
    "account_id",
    "default_tags",
    "endpoint",
    "key_arn",
    "region",
    "role_arn",
];

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub(super) fn read_custom(f: &mut Fields, kind: &str) -> Option<Custom> {
    let key = match f.node("key") {
        Some(_) => Some(read_address(f, "key")?),
        None => None,
    };
    let mut inputs = serde_json::Map::new();
    if let Some(node) = f.node("inputs") {
        let marked_yaml::Node::Mapping(map) = node else {
            let span = f.key_span("inputs").unwrap_or(f.span());
            f.error(
                span,
                "`inputs` must be a mapping of variable names to values",
            );
            return None;
        };
        for (name, value) in map.iter() {
            let span = yaml::marker_span(name.span().start());
            let name = name.as_str();
            if ORCH_VARIABLES.contains(&name) {
                f.error(span, format!("input `{name}` is a variable orch sets itself"))
                    .help = Some(format!(
                    "orch passes {} to every module; a node cannot set them (they decide where it deploys). Rename the input",
                    ORCH_VARIABLES.join(", ")
                ));
            } else if !is_variable_name(name) {
                f.error(span, format!("`{name}` is not a Terraform variable name"))
                    .help = Some(
                    "a variable name is a letter or _ followed by letters, digits, _ and -".into(),
                );
            } else if matches!(value, marked_yaml::Node::Scalar(s) if decode::is_null(s)) {
                f.error(span, format!("input `{name}` has no value (null)"))
                    .help = Some("remove the input to use the module's default".into());
            } else {
                inputs.insert(name.to_string(), to_json(value));
            }
        }
    }
    Some(Custom {
        kind: kind.to_string(),
        key,
        inputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orch_variables_cover_the_common_templates() {
        let common = include_str!("../../../templates/common/variables.tf");
        let declared: Vec<&str> = common
            .lines()
            .filter_map(|l| l.strip_prefix("variable \""))
            .filter_map(|l| l.split('"').next())
            .collect();
        assert!(!declared.is_empty());
        for name in declared {
            assert!(ORCH_VARIABLES.contains(&name), "{name} is not reserved");
        }
    }
}
