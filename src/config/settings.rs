//! `orch.yaml` and `account.yaml`: fleet settings, accounts, and the `defaults:` each layer adds.

use std::collections::BTreeMap;
use std::time::Duration;

use marked_yaml::types::MarkedMappingNode;
use marked_yaml::Node;

use super::address::check_name;
use super::decode::{printable, Fields};
use super::model::{
    Account, Audit, AuditCheck, Backend, Layout, Profile, S3Backend, Settings, Wave,
    BUCKET_PLACEHOLDERS,
};
use super::node::K9_TAGS;
use super::principal::{check_account_id, check_partition, check_role, partition_of};
use super::regions;
use super::wave::parse_duration;
use super::yaml::{span_of, YamlFile};
use crate::diag::{did_you_mean, Diagnostic, Diagnostics};

/// Node fields that may be given a fleet-, account- or region-wide default. Identity fields
/// (`kind`, `key`, `aliases`, `bucket`, ...) name one thing and make no sense as defaults.
pub const DEFAULTABLE: &[&str] = &[
    "description",
    "spec",
    "usage",
    "rotation",
    "deletion_window_days",
    "is_enabled",
    "multi_region",
    "replicas",
    "access",
    "key_administrators",
    "key_users",
    "decrypt_only",
    "describe_only",
    "services",
    "root_access",
    "prevent_destroy",
    "bypass_policy_lockout_safety_check",
    "tags",
    "versioning",
    "force_destroy",
];

pub const DEFAULT_AWS_PROVIDER: &str = ">= 5.0, < 7.0";
pub const DEFAULT_REQUIRED_VERSION: &str = ">= 1.5.0";

pub fn default_settings() -> Settings {
    Settings {
        terraform_binary: None,
        aws_provider: DEFAULT_AWS_PROVIDER.to_string(),
        required_version: DEFAULT_REQUIRED_VERSION.to_string(),
        parallelism: None,
        layout: Layout::PerNode,
        layout_span: None,
        backend: Backend::Local,
        profiles: BTreeMap::new(),
        waves: Vec::new(),
        audit: Audit::default(),
    }
}

/// Reads `orch.yaml`; returns the settings and the fleet-wide defaults.
pub fn read_orch_yaml(file: &YamlFile, diags: &mut Diagnostics) -> (Settings, MarkedMappingNode) {
    let mut settings = default_settings();
    let Some(mut f) = Fields::of(&file.root, "orch.yaml", diags) else {
        return (settings, empty_mapping());
    };
    f = f.at_file_start(file.source);
    if let Some(mut tf) = f.map("terraform", "`terraform`") {
        if let Some(binary) = tf.printable_string("binary") {
            if binary.value.trim().is_empty() {
                tf.error(binary.span, "`binary` is empty")
                    .help = Some("name the terraform binary, or remove `binary` to use terraform or tofu on PATH".into());
            } else {
                settings.terraform_binary = Some(binary.value);
            }
        }
        if let Some(v) = tf.string("aws_provider") {
            match check_constraint(&v.value) {
                Ok(()) => settings.aws_provider = v.value,
                Err(why) => {
                    tf.error(v.span, why);
                }
            }
        }
        if let Some(v) = tf.string("required_version") {
            match check_constraint(&v.value) {
                Ok(()) => settings.required_version = v.value,
                Err(why) => {
                    tf.error(v.span, why);
                }
            }
        }
        tf.finish(&mut f.diags, None);
    }
    if let Some(p) = f.int("parallelism") {
        if (1..=256).contains(&p.value) {
            settings.parallelism = Some(p.value as usize);
        } else {
            f.error(
                p.span,
                format!("parallelism must be between 1 and 256, not {}", p.value),
            );
        }
    }
    if let Some(layout) = f.string("layout") {
        match Layout::parse(&layout.value) {
            Some(l) => {
                settings.layout = l;
                settings.layout_span = Some(layout.span);
            }
            None => {
                let near = did_you_mean(&layout.value, Layout::NAMES)
                    .map(|n| format!("did you mean `{n}`? "))
                    .unwrap_or_default();
                f.error(
                    layout.span,
                    format!("unknown layout `{}`", crate::diag::escape(&layout.value)),
                )
                .help = Some(format!(
                    "{near}`layout` is `per-node` (one terraform state per node, the default) or `stacks` (one per account, region and tier)"
                ));
            }
        }
    }
    if let Some(b) = f.map("backend", "`backend`") {
        settings.backend = read_backend(b, &mut f.diags);
    }
    if let Some(p) = f.map("profiles", "`profiles`") {
        for (name, node) in p.entries() {
            if let Err(why) = check_name(name.value) {
                f.error(name.span, format!("bad profile name: {why}"));
                continue;
            }
            if let Some(profile) = read_profile(node, &mut f.diags) {
                settings.profiles.insert(name.value.to_string(), profile);
            }
        }
    }
    if let Some(node) = f.node("waves") {
        settings.waves = read_waves(node, &mut f.diags);
    }
    if let Some(a) = f.map("audit", "`audit`") {
        settings.audit = read_audit(a, &mut f.diags);
    }
    let defaults = read_defaults(&mut f);
    f.finish(diags, None);
    (settings, defaults)
}

/// Terraform version constraints are written into `versions.tf`, so only their own characters
/// are allowed through.
fn check_constraint(text: &str) -> Result<(), String> {
    let ok = !text.trim().is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " .,<>=~!-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{text}` is not a version constraint (e.g. \">= 5.0, < 7.0\")"
        ))
    }
}

fn read_backend(mut b: Fields, diags: &mut Diagnostics) -> Backend {
    let kind = b.required_string("type");
    let bucket = b.string("bucket");
    let region = b.string("region");
    let key_prefix = b.string("key_prefix");
    let lock_timeout = b.string("lock_timeout");
    if let Some(span) = b.key_span("dynamodb_table") {
        b.node("dynamodb_table");
        b.error(
            span,
            "`dynamodb_table` is not used: orch locks state with S3 native locking (`use_lockfile`, terraform 1.10 and later), and terraform deprecates DynamoDB locking",
        )
        .help = Some("remove `dynamodb_table`; the lock is an object beside the state in the bucket".into());
    }
    let backend = match kind.as_ref().map(|k| k.value.as_str()) {
        // A missing or null `type` has had its error.
        None => Backend::Local,
        Some("local") => {
            // A setting of the s3 backend under `type: local` would be silently ignored.
            for (field, value) in [
                ("bucket", &bucket),
                ("region", &region),
                ("key_prefix", &key_prefix),
                ("lock_timeout", &lock_timeout),
            ] {
                if let Some(v) = value {
                    b.error(
                        v.span,
                        format!("`{field}` is a setting of the s3 backend, not of `type: local`"),
                    )
                    .help = Some("remove it, or set `type: s3`".into());
                }
            }
            Backend::Local
        }
        Some("s3") => {
            let mut s3 = S3Backend {
                bucket: String::new(),
                bucket_span: b.span(),
                region: String::new(),
                key_prefix: "orch".into(),
                lock_timeout: DEFAULT_LOCK_TIMEOUT,
            };
            match &bucket {
                Some(v) => match check_bucket_template(&v.value) {
                    Ok(()) => {
                        s3.bucket = v.value.clone();
                        s3.bucket_span = v.span;
                    }
                    Err(why) => {
                        b.error(v.span, format!("backend `bucket`: {why}")).help = Some(format!(
                            "a bucket name is 3-63 lower-case letters, digits and hyphens; placeholders: {}",
                            BUCKET_PLACEHOLDERS.join(", ")
                        ));
                    }
                },
                None => {
                    let span = b.span();
                    b.error(span, "an s3 backend needs `bucket`").help = Some(
                        "e.g. bucket: \"tfstate-{account_id}\": one bucket per account".into(),
                    );
                }
            }
            match &region {
                Some(r) if regions::is_known(&r.value) => s3.region = r.value.clone(),
                Some(r) => {
                    b.error(
                        r.span,
                        format!("backend `region`: `{}` is not an AWS region", r.value),
                    )
                    .help = Some("the region of the state buckets, e.g. us-east-1".into());
                }
                None => {
                    let span = b.span();
                    b.error(span, "an s3 backend needs `region`").help =
                        Some("the region of the state buckets, e.g. region: us-east-1".into());
                }
            }
            if let Some(p) = &key_prefix {
                match check_key_prefix(&p.value) {
                    Ok(()) => s3.key_prefix = p.value.clone(),
                    Err(why) => {
                        b.error(p.span, format!("backend `key_prefix`: {why}")).help =
                            Some("e.g. key_prefix: orch/kms; letters, digits and `- _ . /`".into());
                    }
                }
            }
            if let Some(t) = &lock_timeout {
                match parse_duration(&t.value) {
                    Ok(d) if d <= MAX_LOCK_TIMEOUT => s3.lock_timeout = d,
                    Ok(_) => {
                        b.error(t.span, "backend `lock_timeout` is over an hour").help = Some(
                            "a lock held that long belongs to a run that is stuck: find it rather than wait".into(),
                        );
                    }
                    Err(why) => {
                        b.error(t.span, format!("backend `lock_timeout`: {why}"));
                    }
                }
            }
            Backend::S3(s3)
        }
        Some(other) => {
            let span = kind.as_ref().map(|k| k.span).unwrap_or(b.span());
            b.error(span, format!("unknown backend type `{other}`"))
                .help = Some("use `local` or `s3`".into());
            Backend::Local
        }
    };
    b.finish(diags, None);
    backend
}

/// How long terraform waits for a state lock by default (`-lock-timeout`).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_LOCK_TIMEOUT: Duration = Duration::from_secs(3600);

/// A bucket template: known placeholders only, and a valid bucket name once they are filled in
/// with values of their own shape. Each account's own name is checked by [`check_buckets`].
fn check_bucket_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        let tail = &rest[open..];
        let Some(placeholder) = BUCKET_PLACEHOLDERS.iter().find(|p| tail.starts_with(**p)) else {
            let shown: String = tail
                .split_inclusive('}')
                .next()
                .unwrap_or(tail)
                .chars()
                .take(40)
                .collect();
            return Err(format!(
                "`{shown}` in `{template}` is not a placeholder orch knows (known: {})",
                BUCKET_PLACEHOLDERS.join(", ")
            ));
        };
        rest = &tail[placeholder.len()..];
    }
    let sample = template
        .replace("{account_id}", "123456789012")
        .replace("{account}", "a")
        .replace("{environment}", "a");
    bucket_name_problem(&sample).map_or(Ok(()), |why| {
        Err(format!("`{template}` is not a valid S3 bucket name: {why}"))
    })
}

/// Why `name` is not a bucket name S3 accepts, or orch does (no dots: S3 allows them, but a
/// dotted name does not match the certificate of a virtual-hosted HTTPS request).
fn bucket_name_problem(name: &str) -> Option<String> {
    let len = name.chars().count();
    if !(3..=63).contains(&len) {
        return Some(format!("it is {len} characters long; S3 takes 3 to 63"));
    }
    if let Some(c) = name.chars().find(|c| c.is_ascii_uppercase()) {
        return Some(format!("`{c}` is upper case; S3 takes lower case only"));
    }
    if name.contains('.') {
        return Some(
            "it has a dot: S3 allows dots, but a dotted name (or one like an IP address) breaks TLS for the virtual-hosted requests terraform makes, so orch refuses them".into(),
        );
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(format!(
            "`{}` is not allowed; S3 takes lower-case letters, digits and hyphens",
            c.escape_default()
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("it must start and end with a letter or digit".into());
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return Some(format!(
                "names starting with `{prefix}` are reserved by AWS"
            ));
        }
    }
    for suffix in ["-s3alias", "--ol-s3", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return Some(format!("names ending with `{suffix}` are reserved by AWS"));
        }
    }
    None
}

/// A key prefix goes into every state key and into backend.tf: plain path segments only.
fn check_key_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() || prefix.len() > 256 {
        return Err(format!("`{prefix}` must be 1 to 256 characters"));
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_./".contains(*c)))
    {
        return Err(format!(
            "`{}` in `{prefix}` is not allowed",
            c.escape_default()
        ));
    }
    if prefix
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(format!(
            "`{prefix}` has an empty, `.` or `..` segment (or a leading or trailing `/`)"
        ));
    }
    Ok(())
}

/// The bucket name each account's nodes use must be valid: an account name with `_`, or an
/// environment that makes the name too long, shows only here.
pub fn check_buckets(
    settings: &Settings,
    accounts: &BTreeMap<String, Account>,
    diags: &mut Diagnostics,
) {
    let Backend::S3(s3) = &settings.backend else {
        return;
    };
    if s3.bucket.is_empty() {
        return;
    }
    for account in accounts.values() {
        // An account without a valid id has had its error.
        if account.account_id.is_empty() {
            continue;
        }
        let name = s3.bucket_for(account);
        if let Some(why) = bucket_name_problem(&name) {
            diags.push(
                Diagnostic::error(
                    s3.bucket_span,
                    format!(
                        "backend `bucket` `{}` gives account `{}` the bucket `{name}`, which is not a valid S3 bucket name: {why}",
                        s3.bucket, account.name
                    ),
                )
                .with_note(account.id_span, format!("account `{}` is declared here", account.name))
                .with_help("change the template (placeholders: {account_id}, {account}, {environment}), or the account's name or environment"),
            );
        }
    }
}

fn read_profile(node: &Node, diags: &mut Diagnostics) -> Option<Profile> {
    let mut p = Fields::of(node, "a profile", diags)?;
    let endpoint = p.printable_string("endpoint");
    if let Some(e) = &endpoint {
        if !(e.value.starts_with("http://") || e.value.starts_with("https://"))
            || e.value.contains(['"', '\\', '$', ' '])
        {
            p.error(e.span, format!("`{}` is not an http(s) URL", e.value));
        }
    }
    p.finish(diags, None);
    Some(Profile {
        endpoint: endpoint.map(|e| e.value),
    })
}

/// `audit: {disable: {<check id>: <reason>}}`: each check turned off must say why, in text the
/// reports print.
fn read_audit(mut a: Fields, diags: &mut Diagnostics) -> Audit {
    let mut audit = Audit::default();
    let ids = || AuditCheck::ALL.map(AuditCheck::id);
    let example = "e.g. `disable: {rotation-off: \"HMAC keys are rotated by the app\"}`";
    if let Some(node) = a.node("disable") {
        let Node::Mapping(map) = node else {
            a.error(
                span_of(node),
                "`disable` must be a mapping of check ids to the reason each is off",
            )
            .help = Some(example.into());
            a.finish(diags, None);
            return audit;
        };
        for (key, value) in map.iter() {
            let at = super::yaml::marker_span(key.span().start());
            let id = key.as_str();
            let Some(check) = AuditCheck::parse(id) else {
                let shown = crate::diag::escape(id);
                a.error(at, format!("`{shown}` is not a check of `orch audit`"))
                    .help = Some(match did_you_mean(id, ids()) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!("the checks are: {}", ids().join(", ")),
                });
                continue;
            };
            match reason(value) {
                Ok(text) => {
                    audit.disabled.insert(check, text);
                }
                Err(why) => {
                    // A null value may have no text of its own to point at: the key has.
                    let null = matches!(value, Node::Scalar(s) if super::decode::is_null(s));
                    let span = if null { at } else { span_of(value) };
                    a.error(span, format!("`{id}` is turned off {why}"))
                        .help = Some(format!(
                        "say in quotes why the check does not apply, e.g. `{id}: \"<why>\"`; the reports print it"
                    ));
                }
            }
        }
    }
    a.finish(diags, None);
    audit
}

/// The reason a check is off: text that is not blank and prints as it is.
fn reason(node: &Node) -> Result<String, String> {
    let Node::Scalar(s) = node else {
        return Err("with a list or a mapping for a reason: a reason is text".into());
    };
    if super::decode::is_null(s) {
        return Err("without a reason (null)".into());
    }
    if s.may_coerce() && (s.as_bool().is_some() || s.as_f64().is_some()) {
        return Err(format!(
            "with `{}` for a reason: a reason is text, not a number or a boolean",
            s.as_str()
        ));
    }
    if s.as_str().trim().is_empty() {
        return Err("with an empty reason".into());
    }
    printable(s.as_str()).map_err(|why| format!("with a reason that cannot be printed: {why}"))?;
    Ok(s.as_str().to_string())
}

fn read_waves(node: &Node, diags: &mut Diagnostics) -> Vec<Wave> {
    let Node::Sequence(seq) = node else {
        diags.push(Diagnostic::error(
            span_of(node),
            "`waves` must be a list of {name, match}",
        ));
        return Vec::new();
    };
    let mut waves: Vec<Wave> = Vec::new();
    for item in seq.iter() {
        let Some(mut w) = Fields::of(item, "a wave", diags) else {
            continue;
        };
        let name = w.required_string("name");
        let patterns = w.required_strings("match");
        // Rollout prints wave names and patterns as they are.
        let texts = name
            .iter()
            .chain(patterns.iter().flat_map(|p| p.value.iter()));
        for text in texts {
            if let Err(why) = printable(&text.value) {
                w.error(text.span, why);
            }
        }
        // A wave's name names its files under .orch/ (the gate's outputs): a name, not a path.
        if let Some(Err(why)) = name.as_ref().map(|n| check_name(&n.value)) {
            let span = name.as_ref().map_or(w.span(), |n| n.span);
            w.error(span, format!("wave name: {why}")).help = Some(
                "a wave's name becomes a file name under .orch/: lower-case letters, digits, `-` and `_`".into(),
            );
        }
        let (approve, gate) = super::wave::read_extras(&mut w);
        if let (Some(name), Some(patterns)) = (name, patterns) {
            if waves.iter().any(|x| x.name == name.value) {
                w.error(name.span, format!("two waves are named `{}`", name.value));
            }
            waves.push(Wave {
                span: name.span,
                name: name.value,
                patterns: patterns.value,
                approve,
                gate,
            });
        }
        w.finish(diags, None);
    }
    waves
}

/// Every field a default may set: [`DEFAULTABLE`] and the k9 tag fields.
fn defaultable_fields() -> impl Iterator<Item = &'static str> {
    DEFAULTABLE
        .iter()
        .copied()
        .chain(K9_TAGS.iter().map(|(field, _)| *field))
}

fn defaultable(field: &str) -> bool {
    defaultable_fields().any(|f| f == field)
}

/// Reads the `defaults:` mapping of a layer, checking its field names against
/// [`defaultable_fields`].
/// Value types are checked where the defaults land, in every node that reads them.
pub fn read_defaults(f: &mut Fields) -> MarkedMappingNode {
    let Some(node) = f.node("defaults") else {
        return empty_mapping();
    };
    let Node::Mapping(map) = node else {
        f.error(span_of(node), "`defaults` must be a mapping of node fields");
        return empty_mapping();
    };
    for key in map.keys() {
        if defaultable(key.as_str()) {
            continue;
        }
        let span = super::yaml::marker_span(key.span().start());
        if key.as_str() == "import" {
            // Said here, once, even when no node is below to inherit it.
            f.error(
                span,
                "`import` names one AWS resource, so it belongs in a node.yaml, not in defaults",
            )
            .help = Some("move `import` into the node.yaml of the node that adopts the key".into());
            continue;
        }
        let d = f.error(
            span,
            format!("`{}` cannot be set in `defaults`", key.as_str()),
        );
        d.help = Some(match did_you_mean(key.as_str(), defaultable_fields()) {
            Some(near) => format!("did you mean `{near}`?"),
            None => format!(
                "defaults may set: {}",
                defaultable_fields().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    map.clone()
}

pub fn empty_mapping() -> MarkedMappingNode {
    MarkedMappingNode::new_empty(marked_yaml::Span::new_blank())
}

/// Reads `account.yaml`; returns the account and its defaults. An account.yaml with errors still
/// yields an account, with what could be read, so its nodes are checked too; `None` only when the
/// file is not a mapping at all.
pub fn read_account(
    name: &str,
    file: &YamlFile,
    diags: &mut Diagnostics,
) -> Option<(Account, MarkedMappingNode)> {
    let mut f = Fields::of(&file.root, "account.yaml", diags)?.at_file_start(file.source);
    let id = f.required_string("account_id");
    let mut account_id = String::new();
    if let Some(id) = &id {
        match check_account_id(&id.value) {
            Ok(()) => account_id = id.value.clone(),
            Err(why) => {
                f.error(id.span, why);
            }
        }
    }
    let environment = f.required_string("environment");
    if let Some(env) = &environment {
        if let Err(why) = check_name(&env.value) {
            f.error(env.span, format!("bad environment: {why}"));
        }
    }
    let role_arn = f.string("role_arn");
    if let (Some(role), Some(id)) = (&role_arn, &id) {
        match check_role(&role.value) {
            Ok(account) if account != id.value => {
                f.error(
                    role.span,
                    format!(
                        "role_arn is in account {account}, but this account is {}",
                        id.value
                    ),
                )
                .help = Some("orch assumes a role in the account it deploys to".into());
            }
            Ok(_) => {}
            Err(why) => {
                f.error(role.span, why);
            }
        }
    }
    let mut regions_list = Vec::new();
    let missing = !f.has("regions") && f.key_span("regions").is_none();
    let regions_span = match f.strings("regions") {
        Some(list) => {
            for r in list.value {
                if !regions::is_known(&r.value) {
                    let d = f.error(r.span, format!("`{}` is not an AWS region", r.value));
                    d.help = did_you_mean(&r.value, regions::REGIONS.iter().copied())
                        .map(|near| format!("did you mean `{near}`?"));
                } else if regions_list.contains(&r.value) {
                    f.error(r.span, format!("region `{}` is listed twice", r.value));
                } else if let Some(first) = regions_list
                    .first()
                    .filter(|first| partition_of(first) != partition_of(&r.value))
                {
                    f.error(
                        r.span,
                        format!(
                            "{} is in the partition `{}`, but {first} is in `{}`: an AWS account lives in one partition",
                            r.value,
                            partition_of(&r.value),
                            partition_of(first)
                        ),
                    )
                    .help = Some(
                        "a GovCloud or China account is a separate account: give it its own directory under live/"
                            .into(),
                    );
                } else {
                    regions_list.push(r.value);
                }
            }
            list.span
        }
        // Set but not a list: `strings` has said so.
        None if f.has("regions") => f.key_span("regions").unwrap_or(f.span()),
        None => {
            let span = f.key_span("regions").unwrap_or(f.span());
            let message = if missing {
                "account.yaml is missing the required field `regions`"
            } else {
                "`regions` is required, but it is null (empty)"
            };
            f.error(span, message).help = Some(
                "list the regions this account uses, e.g. `regions: [us-east-1, eu-west-1]`".into(),
            );
            span
        }
    };
    if let (Some(role), Some(first)) = (&role_arn, regions_list.first()) {
        if let Err(why) = check_partition(&role.value, first) {
            f.error(role.span, why);
        }
    }
    let defaults = read_defaults(&mut f);
    let id_span = id.map_or(f.span(), |id| id.span);
    f.finish(diags, None);
    Some((
        Account {
            name: name.to_string(),
            account_id,
            environment: environment.map(|e| e.value).unwrap_or_default(),
            role_arn: role_arn.map(|r| r.value),
            regions: regions_list,
            id_span,
            regions_span,
        },
        defaults,
    ))
}

/// Reads `region.yaml`: only `defaults`.
pub fn read_region(file: &YamlFile, diags: &mut Diagnostics) -> MarkedMappingNode {
    let Some(f) = Fields::of(&file.root, "region.yaml", diags) else {
        return empty_mapping();
    };
    let mut f = f.at_file_start(file.source);
    let defaults = read_defaults(&mut f);
    f.finish(diags, None);
    defaults
}
