//! What orch wrote into a node's module, read back from its rendered files: the attributes and
//! nested blocks each `resource` block of `main.tf` sets (what orch manages of a resource, as
//! opposed to what the provider computes), and the policy `terraform.tfvars.json` gives
//! `var.policy`. Read from orch's own text, so a plan's values need no `terraform show`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Arguments terraform takes of every resource block: never attributes of the resource.
const META: [&str; 5] = ["lifecycle", "count", "for_each", "depends_on", "provider"];

/// What a node's rendered module sets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Written {
    /// (resource type, resource name) -> the names its block sets at its first level: the
    /// attributes and the nested blocks (a `dynamic "constraints"` block is `constraints`).
    pub resources: BTreeMap<(String, String), BTreeSet<String>>,
    /// The text of `var.policy` (a key's or replica's key policy, a key-access node's IAM
    /// policy); `None` when the module has none.
    pub policy: Option<String>,
}

impl Written {
    /// From a node's rendered files (name, text): its `main.tf` and `terraform.tfvars.json`.
    pub fn of(files: &[(&str, String)]) -> Written {
        let file = |name: &str| {
            files
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, text)| text.as_str())
        };
        let policy = file("terraform.tfvars.json")
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .and_then(|v| v.get("policy").and_then(Value::as_str).map(str::to_string));
        Written {
            resources: file("main.tf").map(resources).unwrap_or_default(),
            policy,
        }
    }

    /// What the block of resource `kind`.`name` sets; `None` when main.tf has no such block.
    pub fn configured(&self, kind: &str, name: &str) -> Option<&BTreeSet<String>> {
        self.resources.get(&(kind.to_string(), name.to_string()))
    }
}

/// The first-level names of each `resource "TYPE" "NAME" {` block of an HCL text.
fn resources(text: &str) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut scan = Scan::default();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if scan.at_statement() {
            let line = line.trim();
            match (scan.depth, &current) {
                (0, _) => current = resource_labels(line),
                (1, Some(resource)) => {
                    if let Some(name) = first_level_name(line) {
                        out.entry(resource.clone()).or_default().insert(name);
                    }
                }
                _ => {}
            }
            if let (0, Some(resource)) = (scan.depth, &current) {
                out.entry(resource.clone()).or_default();
            }
        }
        scan.line(line);
        if scan.depth == 0 {
            current = None;
        }
    }
    out
}

/// (type, name) of a line `resource "TYPE" "NAME" {`.
fn resource_labels(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix("resource")?.trim_start();
    let (kind, rest) = label(rest)?;
    let (name, rest) = label(rest.trim_start())?;
    rest.trim_start()
        .starts_with('{')
        .then(|| (kind.to_string(), name.to_string()))
}

/// A quoted label at the start of `text`, and what follows it.
fn label(text: &str) -> Option<(&str, &str)> {
    let text = text.strip_prefix('"')?;
    let end = text.find('"')?;
    Some((&text[..end], &text[end + 1..]))
}

/// The attribute (`name = ...`) or block (`name {`, `name "label" {`, `dynamic "name" {`) a
/// line of a resource's first level begins, unless it is a meta-argument.
fn first_level_name(line: &str) -> Option<String> {
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(line.len());
    let (word, rest) = (&line[..end], line[end..].trim_start());
    if word.is_empty() || META.contains(&word) {
        return None;
    }
    if rest.starts_with('=') && !rest.starts_with("==") {
        return Some(word.to_string());
    }
    if word == "dynamic" {
        return label(rest).map(|(name, _)| name.to_string());
    }
    (rest.starts_with('{') || rest.starts_with('"')).then(|| word.to_string())
}

/// Where a scan of HCL text is: the depth of brackets open in code, and whether a heredoc or a
/// comment runs on. Strings, interpolations and comments do not count brackets.
#[derive(Default)]
struct Scan {
    depth: usize,
    /// The line that ends the heredoc being read.
    heredoc: Option<String>,
    in_comment: bool,
}

impl Scan {
    /// Whether the next line begins a statement (not inside a heredoc or a block comment).
    fn at_statement(&self) -> bool {
        self.heredoc.is_none() && !self.in_comment
    }

    fn line(&mut self, line: &str) {
        if let Some(end) = &self.heredoc {
            if line.trim() == end {
                self.heredoc = None;
            }
            return;
        }
        let chars: Vec<char> = line.chars().collect();
        // Open strings (true) and interpolations in them (false, with their open braces).
        let mut nesting: Vec<(bool, usize)> = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let (c, next) = (chars[i], chars.get(i + 1).copied());
            if self.in_comment {
                if c == '*' && next == Some('/') {
                    self.in_comment = false;
                    i += 1;
                }
                i += 1;
                continue;
            }
            match nesting.last_mut() {
                Some((true, _)) => match (c, next) {
                    ('\\', _) => i += 1,
                    ('"', _) => {
                        nesting.pop();
                    }
                    ('$' | '%', Some('{')) => {
                        nesting.push((false, 0));
                        i += 1;
                    }
                    _ => {}
                },
                Some((false, braces)) => match c {
                    '"' => nesting.push((true, 0)),
                    '{' => *braces += 1,
                    '}' if *braces == 0 => {
                        nesting.pop();
                    }
                    '}' => *braces -= 1,
                    _ => {}
                },
                None => match (c, next) {
                    ('#', _) | ('/', Some('/')) => break,
                    ('/', Some('*')) => {
                        self.in_comment = true;
                        i += 1;
                    }
                    ('"', _) => nesting.push((true, 0)),
                    ('<', Some('<')) => {
                        let rest: String = chars[i + 2..].iter().collect();
                        let marker = rest.trim_start_matches('-').trim();
                        if !marker.is_empty()
                            && marker
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                        {
                            self.heredoc = Some(marker.to_string());
                            return;
                        }
                        i += 1;
                    }
                    ('{' | '[' | '(', _) => self.depth += 1,
                    ('}' | ']' | ')', _) => self.depth = self.depth.saturating_sub(1),
                    _ => {}
                },
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(w: &Written, kind: &str) -> Vec<String> {
        w.configured(kind, "this")
            .unwrap_or_else(|| panic!("no {kind}.this in {:?}", w.resources))
            .iter()
            .cloned()
            .collect()
    }

    fn main_tf(text: &str) -> Written {
        Written::of(&[("main.tf", text.to_string())])
    }

    #[test]
    fn attributes_and_blocks_at_the_first_level_without_meta_arguments() {
        let w = main_tf(
            r#"# resource "aws_kms_key" "commented" {
resource "aws_kms_grant" "this" {
  name = "a { b" # a brace in a string, one in a comment {
  count = 1
  tags = {
    Inner = "not first level"
  }
  dynamic "constraints" {
    for_each = [1]
    content {
      encryption_context_equals = { x = "${var.y["z"]}" }
    }
  }
  description = <<-EOT
    policy = "inside a heredoc"
  EOT
  /* retiring_principal = 1 */
  lifecycle {
    prevent_destroy = true
  }
  depends_on = [
    aws_kms_key.this,
  ]
  filter {}
  provider = aws.other
}

resource "aws_kms_alias" "this" {
  for_each = toset(var.aliases)
  name          = "alias/${each.value}"
  target_key_id = aws_kms_key.this.key_id
}

locals {
  grantee_principal = 1
}
"#,
        );
        assert_eq!(
            names(&w, "aws_kms_grant"),
            vec!["constraints", "description", "filter", "name", "tags"]
        );
        assert_eq!(names(&w, "aws_kms_alias"), vec!["name", "target_key_id"]);
        assert_eq!(w.resources.len(), 2);
        assert_eq!(w.policy, None);
    }

    #[test]
    fn the_policy_given_to_var_policy() {
        let w = Written::of(&[(
            "terraform.tfvars.json",
            r#"{"description": "d", "policy": "{\"Version\":\"2012-10-17\"}"}"#.to_string(),
        )]);
        assert_eq!(w.policy.as_deref(), Some(r#"{"Version":"2012-10-17"}"#));
        assert!(w.resources.is_empty());
    }
    /// A backend block for rendering in a test: where state lives matters not here.
    struct LocalState;

    impl crate::render::Backend for LocalState {
        fn block(&self, _: &crate::config::Account, _: &str) -> Value {
            serde_json::json!({"type": "local", "path": "\"terraform.tfstate\""})
        }

        fn lock_timeout(&self) -> std::time::Duration {
            std::time::Duration::from_secs(1)
        }
    }

    /// Every node of the shipped tree, rendered: each resource type with what its block sets.
    #[test]
    fn the_shipped_templates_rendered() {
        let live = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("live");
        let checked = crate::config::load(&live, &BTreeSet::new());
        assert!(!checked.diagnostics.has_errors());
        let fleet = checked.fleet;
        let templates = crate::render::Templates::builtin().unwrap();
        let renderer = crate::render::Renderer::new(&fleet, &templates, None, &LocalState);
        let mut cache = crate::render::TemplateCache::default();
        let mut by_type: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for node in &fleet.nodes {
            let rendered = renderer.render(node, &mut cache).unwrap();
            let w = Written::of(&rendered.files);
            for ((kind, name), set) in &w.resources {
                assert_eq!(name, "this");
                by_type.entry(kind.clone()).or_default().extend(set.clone());
            }
            let facts = crate::policy::KeyFacts::of(&fleet, node);
            if let Some(facts) = facts {
                assert_eq!(w.policy, Some(crate::policy::build(&facts).to_json()));
            }
        }
        let expected = [
            ("aws_kms_key", "bypass_policy_lockout_safety_check customer_master_key_spec deletion_window_in_days description enable_key_rotation is_enabled key_usage multi_region policy rotation_period_in_days"),
            ("aws_kms_replica_key", "bypass_policy_lockout_safety_check deletion_window_in_days description enabled policy primary_key_arn"),
            ("aws_kms_alias", "name target_key_id"),
            ("aws_kms_grant", "constraints grantee_principal key_id name operations retiring_principal"),
            ("aws_iam_policy", "description name policy"),
            ("aws_iam_role_policy_attachment", "policy_arn role"),
            ("aws_s3_bucket", "bucket force_destroy"),
            ("aws_s3_bucket_ownership_controls", "bucket rule"),
            ("aws_s3_bucket_public_access_block", "block_public_acls block_public_policy bucket ignore_public_acls restrict_public_buckets"),
            ("aws_s3_bucket_server_side_encryption_configuration", "bucket rule"),
            ("aws_s3_bucket_versioning", "bucket versioning_configuration"),
            ("aws_s3_bucket_lifecycle_configuration", "bucket rule"),
            ("aws_s3_bucket_notification", "bucket eventbridge"),
        ];
        let expected: BTreeMap<String, BTreeSet<String>> = expected
            .iter()
            .map(|(kind, names)| {
                (
                    kind.to_string(),
                    names.split(' ').map(str::to_string).collect(),
                )
            })
            .collect();
        assert_eq!(by_type, expected);
    }
}
