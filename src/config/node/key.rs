//! A key and an explicit replica: spec and usage, description, aliases, rotation, deletion
//! window, replicas, and a `policy:` override.

use std::collections::BTreeMap;

use super::access::read_access;
use super::{read_address, KeyDecl, ReplicaDecl, Replicas};
use crate::config::decode::{to_json, Fields, Spanned};
use crate::config::model::{Key, KeySpec, KeyUsage, Rotation};
use crate::config::yaml;
use crate::diag::{did_you_mean, Span};

/// True when a field's value was written in the node's own file rather than layered in.
fn own(span: Span, source: u32) -> bool {
    span.source == source
}

pub(super) fn read_key(f: &mut Fields, source: u32, region: &str) -> Option<KeyDecl> {
    let description = read_description(f).unwrap_or_default();
    let aliases = read_aliases(f);
    let spec_field = f.string("spec");
    let spec = match &spec_field {
        None => KeySpec::SymmetricDefault,
        Some(s) => match KeySpec::parse(&s.value) {
            Some(spec) => spec,
            None => {
                let d = f.error(s.span, format!("unknown key spec `{}`", s.value));
                d.help = Some(match did_you_mean(&s.value, KeySpec::ALL.iter().map(|k| k.name())) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => "use SYMMETRIC_DEFAULT, RSA_2048/3072/4096, ECC_NIST_P256/384/521, ECC_SECG_P256K1 or HMAC_224/256/384/512".into(),
                });
                KeySpec::SymmetricDefault
            }
        },
    };
    let usage = match f.string("usage") {
        None => spec.usages()[0],
        Some(u) => match KeyUsage::parse(&u.value) {
            Some(usage) if spec.usages().contains(&usage) => usage,
            Some(usage) => {
                let valid: Vec<&str> = spec.usages().iter().map(|u| u.name()).collect();
                // "an RSA_2048 key", "an HMAC_256 key", but "a SYMMETRIC_DEFAULT key".
                let article = if spec == KeySpec::SymmetricDefault {
                    "a"
                } else {
                    "an"
                };
                f.error(
                    u.span,
                    format!(
                        "{article} {} key cannot have usage {}",
                        spec.name(),
                        usage.name()
                    ),
                )
                .help = Some(format!(
                    "{} keys support: {}",
                    spec.name(),
                    valid.join(", ")
                ));
                usage
            }
            None => {
                f.error(u.span, format!("unknown key usage `{}`", u.value))
                    .help = Some(
                    "use ENCRYPT_DECRYPT, SIGN_VERIFY, GENERATE_VERIFY_MAC or KEY_AGREEMENT".into(),
                );
                spec.usages()[0]
            }
        },
    };
    let rotation = read_rotation(f, spec, usage, source);
    let deletion_window_days = read_deletion_window(f).unwrap_or(30);
    let is_enabled = f.bool("is_enabled").map(|b| b.value).unwrap_or(true);
    let multi_region_field = f.bool("multi_region");
    let multi_region = multi_region_field.as_ref().is_some_and(|b| b.value);
    let replicas = read_replicas(f);
    let access = read_access(f, region);
    let symmetric = spec == KeySpec::SymmetricDefault && usage == KeyUsage::EncryptDecrypt;
    if !access.encryption_context.is_empty() && !symmetric {
        let span = f.key_span("encryption_context").unwrap_or(f.span());
        f.error(
            span,
            format!(
                "an encryption context applies to symmetric encryption keys, not to {} keys",
                spec.name()
            ),
        )
        .help = Some("remove `encryption_context`".into());
    }
    let prevent_destroy = f.bool("prevent_destroy").map(|b| b.value).unwrap_or(false);
    let bypass = f
        .bool("bypass_policy_lockout_safety_check")
        .map(|b| b.value)
        .unwrap_or(false);
    let policy_span = f.key_span("policy");
    let policy_override = f.node("policy").and_then(|node| {
        let json = match node {
            marked_yaml::Node::Scalar(s) => {
                match serde_json::from_str::<serde_json::Value>(s.as_str()) {
                    Ok(v) => v,
                    Err(err) => {
                        f.error(
                            yaml::span_of(node),
                            format!("`policy` is not valid JSON: {err}"),
                        );
                        return None;
                    }
                }
            }
            other => to_json(other),
        };
        if !json.is_object() {
            f.error(
                yaml::span_of(node),
                "`policy` must be a JSON object (a key policy document)",
            );
            return None;
        }
        Some(Spanned::new(json.to_string(), policy_span?))
    });
    let import = super::import::read_key_import(f, source, &aliases);
    Some(KeyDecl {
        key: Key {
            description,
            aliases: aliases.iter().map(|a| a.value.clone()).collect(),
            spec,
            usage,
            rotation,
            deletion_window_days,
            is_enabled,
            multi_region,
            replica_regions: Vec::new(),
            access,
            prevent_destroy,
            bypass_policy_lockout_safety_check: bypass,
            policy_override,
            import,
        },
        aliases,
        replicas,
        multi_region_span: multi_region_field.map(|b| b.span),
    })
}

/// A key's or a replica's description: AWS takes at most 8,192 characters.
fn read_description(f: &mut Fields) -> Option<String> {
    let description = f.string("description")?;
    let length = description.value.chars().count();
    if length > 8192 {
        let span = f.key_span("description").unwrap_or(description.span);
        f.error(
            span,
            format!("a key description is at most 8192 characters; this one has {length}"),
        );
    }
    Some(description.value)
}

fn read_aliases(f: &mut Fields) -> Vec<Spanned<String>> {
    let list = f.strings("aliases").map(|l| l.value).unwrap_or_default();
    if list.len() > 50 {
        let span = list[50].span;
        f.error(
            span,
            format!("a key has at most 50 aliases, this one has {}", list.len()),
        );
    }
    let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
    for alias in &list {
        let name = alias.value.as_str();
        if let Some(rest) = name.strip_prefix("alias/") {
            f.error(alias.span, format!("alias `{name}` starts with `alias/`"))
                .help = Some(format!("write `{rest}`; orch adds the alias/ prefix"));
        } else if name.starts_with("aws/") {
            f.error(alias.span, format!("alias `{name}` starts with `aws/`"))
                .help = Some(
                "the aws/ prefix is reserved for AWS managed keys; choose another name".into(),
            );
        } else if name.is_empty()
            || name.len() > 250
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_-".contains(c))
        {
            f.error(alias.span, format!("`{name}` is not a valid alias name"))
                .help = Some("alias names are 1-250 letters, digits, /, _ and -".into());
        } else if let Some(first) = seen.get(name) {
            let first = *first;
            let d = f.error(alias.span, format!("alias `{name}` is listed twice"));
            d.notes.push((first, "first listed here".into()));
        } else {
            seen.insert(name, alias.span);
        }
    }
    list
}

fn read_rotation(f: &mut Fields, spec: KeySpec, usage: KeyUsage, source: u32) -> Rotation {
    let supported = spec.supports_rotation() && usage == KeyUsage::EncryptDecrypt;
    let mut rotation = Rotation {
        enabled: supported,
        period_days: None,
    };
    let Some(mut r) = f.map("rotation", "`rotation`") else {
        return rotation;
    };
    let enabled = r.bool("enabled");
    let period = r.int("period_days");
    // A fleet-wide `rotation:` default meant for symmetric keys does not apply to an HMAC or
    // asymmetric key; only a rotation written on the key itself is a mistake to report.
    if !supported {
        let explicit_on = enabled.as_ref().filter(|e| e.value && own(e.span, source));
        if let Some(e) = explicit_on {
            r.error(e.span, format!("AWS does not rotate {} keys", spec.name()))
                .help = Some("automatic rotation exists only for SYMMETRIC_DEFAULT keys with usage ENCRYPT_DECRYPT; remove `rotation`".into());
        }
        if let Some(p) = period.as_ref().filter(|p| own(p.span, source)) {
            r.error(
                p.span,
                format!(
                    "AWS does not rotate {} keys, so `period_days` has no meaning",
                    spec.name()
                ),
            );
        }
        r.finish(&mut f.diags, Some(source));
        return rotation;
    }
    if let Some(e) = &enabled {
        rotation.enabled = e.value;
    }
    if let Some(p) = period {
        if !(90..=2560).contains(&p.value) {
            r.error(
                p.span,
                format!("rotation period_days must be 90-2560, not {}", p.value),
            );
        } else if !rotation.enabled {
            r.error(p.span, "period_days is set but rotation is disabled")
                .help = Some("remove period_days, or set `enabled: true`".into());
        } else {
            rotation.period_days = Some(p.value as u32);
        }
    }
    r.finish(&mut f.diags, Some(source));
    rotation
}

pub fn read_deletion_window(f: &mut Fields) -> Option<u32> {
    let w = f.int("deletion_window_days")?;
    if (7..=30).contains(&w.value) {
        Some(w.value as u32)
    } else {
        f.error(
            w.span,
            format!("deletion_window_days must be 7-30, not {}", w.value),
        )
        .help = Some("AWS waits 7 to 30 days before deleting a key".into());
        None
    }
}

fn read_replicas(f: &mut Fields) -> Option<Spanned<Replicas>> {
    let node = f.node("replicas")?;
    let span = yaml::span_of(node);
    match node {
        marked_yaml::Node::Scalar(s) if s.as_str() == "*" => {
            Some(Spanned::new(Replicas::All, span))
        }
        marked_yaml::Node::Sequence(_) => f
            .strings("replicas")
            .map(|list| Spanned::new(Replicas::Regions(list.value), span)),
        _ => {
            f.error(span, "`replicas` must be a list of regions or \"*\"");
            None
        }
    }
}

pub(super) fn read_replica(f: &mut Fields) -> Option<ReplicaDecl> {
    let primary = read_address(f, "replica_of");
    let span = f.key_span("import");
    if let (Some(span), Some(_)) = (span, f.node("import")) {
        let on = primary
            .as_ref()
            .map(|p| format!(" ({})", p.value))
            .unwrap_or_default();
        f.error(
            span,
            "a replica is adopted with its primary: a multi-region key has one key id in every region",
        )
        .help = Some(format!(
            "remove `import` here; it belongs in the primary's node.yaml{on}"
        ));
    }
    let description = read_description(f);
    let deletion_window_days = read_deletion_window(f);
    let is_enabled = f.bool("is_enabled").map(|b| b.value);
    let prevent_destroy = f.bool("prevent_destroy").map(|b| b.value);
    Some(ReplicaDecl {
        primary: primary?,
        description,
        deletion_window_days,
        is_enabled,
        prevent_destroy,
    })
}
