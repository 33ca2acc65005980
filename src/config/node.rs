//! Decoding one node's effective (layered) configuration into its kind: a key, an explicit
//! replica, a consumer, or a user-defined kind. Cross-node rules live in `link.rs`.

use std::collections::{BTreeMap, BTreeSet};

use marked_yaml::types::MarkedMappingNode;

use super::address::{check_name, Address};
use super::decode::{to_json, Fields, Spanned};
use super::model::{
    Access, Account, Capability, Custom, Grant, Key, KeyAccess, KeySpec, KeyUsage, Rotation,
    S3Bucket, ServiceAccess,
};
use super::principal::{check_principal_in, check_role_in, check_service};
use crate::diag::{did_you_mean, Diagnostics, Span};

pub const BUILTIN_KINDS: &[&str] = &["key", "replica", "grant", "key-access", "s3-bucket"];

/// Operations an `aws_kms_grant` may allow.
pub const GRANT_OPERATIONS: &[&str] = &[
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "Sign",
    "Verify",
    "GetPublicKey",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateMac",
    "VerifyMac",
    "DeriveSharedSecret",
];

/// A node as declared, before links to other nodes are checked.
pub struct Declared {
    pub address: Address,
    /// The node.yaml's own source: fields from other files are defaults.
    pub source: u32,
    pub span: Span,
    pub effective: MarkedMappingNode,
    pub tags: BTreeMap<String, String>,
    pub depends_on: Vec<Spanned<Address>>,
    pub body: Body,
}

pub enum Body {
    Key(Box<KeyDecl>),
    Replica(ReplicaDecl),
    Grant(Grant),
    KeyAccess(KeyAccess),
    S3Bucket(S3Bucket),
    Custom(Custom),
}

pub struct KeyDecl {
    pub key: Key,
    pub aliases: Vec<Spanned<String>>,
    pub replicas: Option<Spanned<Replicas>>,
    pub multi_region_span: Option<Span>,
}

pub enum Replicas {
    /// `"*"`: every enabled region of the account but the key's own.
    All,
    Regions(Vec<Spanned<String>>),
}

/// An explicit replica (`replica_of`); unset fields are taken from the primary.
pub struct ReplicaDecl {
    pub primary: Spanned<Address>,
    pub description: Option<String>,
    pub deletion_window_days: Option<u32>,
    pub is_enabled: Option<bool>,
    pub prevent_destroy: Option<bool>,
}

/// Decodes a node of `account` from its effective configuration; `None` when it has errors (all
/// recorded).
pub fn decode(
    address: Address,
    account: &Account,
    source: u32,
    effective: MarkedMappingNode,
    custom_kinds: &BTreeSet<String>,
    diags: &mut Diagnostics,
) -> Option<Declared> {
    let mut f = Fields::new(&effective, "node.yaml").at_file_start(source as usize);
    let span = Span::file(source as usize);
    let kind = f.string("kind");
    // `has`, not a getter: `replica_of` is a field of replicas only, and must not be offered in
    // the list of fields of other kinds.
    let replica_of = f.has("replica_of");
    if !replica_of && f.key_span("replica_of").is_some() {
        // `replica_of: ~` is not set, like any null field; reading it marks it known.
        f.node("replica_of");
    }
    let kind_name = match (&kind, replica_of) {
        (Some(k), _) => k.value.clone(),
        (None, true) => "replica".to_string(),
        (None, false) => "key".to_string(),
    };
    if let Some(k) = &kind {
        // A kind is printed as it is (`orch graph`), so it must be a plain name.
        if let Err(why) = check_name(&k.value) {
            f.error(k.span, format!("bad kind: {why}"));
            diags.extend(f.diags);
            return None;
        }
        if !BUILTIN_KINDS.contains(&k.value.as_str()) && !custom_kinds.contains(&k.value) {
            let all: Vec<&str> = BUILTIN_KINDS
                .iter()
                .copied()
                .chain(custom_kinds.iter().map(String::as_str))
                .collect();
            let d = f.error(k.span, format!("unknown kind `{}`", k.value));
            d.help = Some(match did_you_mean(&k.value, all.iter().copied()) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!("kinds are the folders under templates/: {}", all.join(", ")),
            });
            // Without a kind there is no list of fields to hold the others against: reporting
            // each of them as unknown would bury the one real mistake.
            diags.extend(f.diags);
            return None;
        }
        if k.value == "replica" && !replica_of {
            f.error(k.span, "a replica needs `replica_of: account/region/node`");
        }
        if k.value != "replica" && replica_of {
            f.node("replica_of");
            let at = f.key_span("replica_of").unwrap_or(span);
            f.error(
                at,
                format!(
                    "`replica_of` declares a replica, but this node is `kind: {}`",
                    k.value
                ),
            )
            .help = Some("remove `kind` to declare a replica, or remove `replica_of`".into());
        }
    }
    let tags = read_tags(&mut f, &account.environment, (&address, span));
    let depends_on = read_addresses(&mut f, "depends_on");
    let body = match kind_name.as_str() {
        "key" => read_key(&mut f, source, &address.region).map(|k| Body::Key(Box::new(k))),
        "replica" => read_replica(&mut f).map(Body::Replica),
        "grant" => read_grant(&mut f, &address).map(Body::Grant),
        "key-access" => read_key_access(&mut f, &address, account).map(Body::KeyAccess),
        "s3-bucket" => read_s3_bucket(&mut f).map(Body::S3Bucket),
        custom => read_custom(&mut f, custom).map(Body::Custom),
    };
    let ok = !f.diags.has_errors();
    f.finish(diags, Some(source));
    let body = body.filter(|_| ok)?;
    Some(Declared {
        address,
        source,
        span,
        effective,
        tags,
        depends_on,
        body,
    })
}

/// k9 Security's tagging model: named fields for the tags every resource should carry.
pub const K9_TAGS: [(&str, &str); 9] = [
    ("owner", "Owner"),
    ("application", "Application"),
    ("business_unit", "BusinessUnit"),
    ("business_process", "BusinessProcess"),
    ("cost_center", "CostCenter"),
    ("compliance_scheme", "ComplianceScheme"),
    ("confidentiality", "Confidentiality"),
    ("integrity", "Integrity"),
    ("availability", "Availability"),
];

/// A node's tags: `tags:` merged down the tree, then the k9 named fields (`owner: alice` is the
/// tag `Owner`, and wins over the same tag in `tags:`), then `Environment` (the account's) and
/// `ManagedBy: orch` unless set already. Checked against AWS's rules for tags, 50 at most.
/// `node` is the node (its address and where it is declared), for the error about too many tags.
pub fn read_tags(
    f: &mut Fields,
    environment: &str,
    node: (&Address, Span),
) -> BTreeMap<String, String> {
    // Where each tag was set, to say where too many tags came from.
    let mut origins: BTreeMap<String, Span> = BTreeMap::new();
    let mut tags = BTreeMap::new();
    for (k, v) in f.string_map("tags").unwrap_or_default() {
        if let Err(why) = check_tag_key(&k.value) {
            f.error(k.span, why).help = Some(
                "a tag key is 1-128 letters, digits, spaces and _ . : / = + - @, and does not start with aws:".into(),
            );
        } else if let Err(why) = check_tag_value(&v.value) {
            f.error(v.span, format!("the value of tag `{}` {why}", k.value))
                .help =
                Some("a tag value is 0-256 letters, digits, spaces and _ . : / = + - @".into());
        }
        origins.insert(k.value.clone(), k.span);
        tags.insert(k.value, v.value);
    }
    for (field, tag) in K9_TAGS {
        if let Some(v) = f.string(field) {
            if v.value.is_empty() {
                f.error(v.span, format!("`{field}` (the tag {tag}) is empty"));
            } else if let Err(why) = check_tag_value(&v.value) {
                f.error(v.span, format!("`{field}` (the tag {tag}) {why}"))
                    .help =
                    Some("a tag value is 1-256 letters, digits, spaces and _ . : / = + - @".into());
            }
            origins.insert(tag.to_string(), v.span);
            tags.insert(tag.to_string(), v.value);
        }
    }
    let mut added = Vec::new();
    if !environment.is_empty() && !tags.contains_key("Environment") {
        tags.insert("Environment".into(), environment.to_string());
        added.push("Environment");
    }
    if !tags.contains_key("ManagedBy") {
        tags.insert("ManagedBy".into(), "orch".into());
        added.push("ManagedBy");
    }
    if tags.len() > MAX_TAGS {
        too_many_tags(f, node, tags.len(), &origins, &added);
    }
    tags
}

/// AWS allows 50 tags on a key (and on a bucket or an IAM policy).
const MAX_TAGS: usize = 50;

/// Too many tags, at the `tags:` that sets the last layer of them. The message leaves the node
/// out, so when a default is to blame, every node that inherits it gives the same error and
/// `Diagnostics::dedup` reports it once (with one node to start looking from).
fn too_many_tags(
    f: &mut Fields,
    (address, declared): (&Address, Span),
    count: usize,
    origins: &BTreeMap<String, Span>,
    added: &[&str],
) {
    let at = f.key_span("tags").unwrap_or(declared);
    let mut message =
        format!("a node would have {count} tags; AWS allows at most {MAX_TAGS} on a resource");
    if !added.is_empty() {
        message.push_str(&format!(" (orch adds {})", added.join(" and ")));
    }
    let d = f.error(at, message);
    d.help = Some(
        "remove tags here or from the defaults they are layered from (orch explain shows where each comes from)"
            .into(),
    );
    // One note per file, at its first tag: the layers the count adds up from.
    let mut by_source: BTreeMap<u32, (Span, usize)> = BTreeMap::new();
    for span in origins.values() {
        let entry = by_source.entry(span.source).or_insert((*span, 0));
        entry.0 = entry.0.min(*span);
        entry.1 += 1;
    }
    d.notes
        .push((declared, format!("{address} is a node with these tags")));
    for (span, n) in by_source.values() {
        d.notes
            .push((*span, format!("{n} tag(s) set in this file")));
    }
}

/// The characters AWS allows in tag keys and values: letters, digits, white space (not control
/// characters) and `_ . : / = + - @`.
fn tag_char(c: char) -> bool {
    c.is_alphanumeric() || (c.is_whitespace() && !c.is_control()) || "_.:/=+-@".contains(c)
}

fn check_tag_key(key: &str) -> Result<(), String> {
    let length = key.chars().count();
    let why = if !(1..=128).contains(&length) {
        format!("it is {length} characters long, not 1-128")
    } else if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
        "it starts with aws:, which AWS reserves".to_string()
    } else if let Some(c) = key.chars().find(|c| !tag_char(*c)) {
        format!(
            "AWS does not allow the character {} in tags",
            crate::diag::escape(&c.to_string())
        )
    } else {
        return Ok(());
    };
    Err(format!("`{key}` is not a valid tag key: {why}"))
}

fn check_tag_value(value: &str) -> Result<(), String> {
    let length = value.chars().count();
    if length > 256 {
        Err(format!(
            "is {length} characters long; AWS takes at most 256"
        ))
    } else if let Some(c) = value.chars().find(|c| !tag_char(*c)) {
        Err(format!(
            "has a character AWS does not allow in tags: {}",
            crate::diag::escape(&c.to_string())
        ))
    } else {
        Ok(())
    }
}

fn read_addresses(f: &mut Fields, name: &'static str) -> Vec<Spanned<Address>> {
    let mut out = Vec::new();
    for item in f.strings(name).map(|s| s.value).unwrap_or_default() {
        match Address::parse(&item.value) {
            Ok(a) => out.push(Spanned::new(a, item.span)),
            Err(why) => {
                f.error(item.span, why);
            }
        }
    }
    out
}

fn read_address(f: &mut Fields, name: &'static str) -> Option<Spanned<Address>> {
    let text = f.required_string(name)?;
    match Address::parse(&text.value) {
        Ok(a) => Some(Spanned::new(a, text.span)),
        Err(why) => {
            f.error(text.span, why);
            None
        }
    }
}

/// True when a field's value was written in the node's own file rather than layered in.
fn own(span: Span, source: u32) -> bool {
    span.source == source
}

fn read_key(f: &mut Fields, source: u32, region: &str) -> Option<KeyDecl> {
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
                            super::yaml::span_of(node),
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
                super::yaml::span_of(node),
                "`policy` must be a JSON object (a key policy document)",
            );
            return None;
        }
        Some(Spanned::new(json.to_string(), policy_span?))
    });
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
    let span = super::yaml::span_of(node);
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

/// The access model: `access:` capabilities, the admin/user sugar, and `services:`, for a key in
/// `region` (its principals must be of that region's partition).
fn read_access(f: &mut Fields, region: &str) -> Access {
    let mut access = Access {
        root_access: true,
        ..Access::default()
    };
    access.encryption_context = f.plain_map("encryption_context");
    if let Some(a) = f.map("access", "`access`") {
        let entries: Vec<_> = a.entries().collect();
        for (name, node) in entries {
            let Some(cap) = Capability::parse(name.value) else {
                let d = f.error(name.span, format!("unknown capability `{}`", name.value));
                d.help = Some(match did_you_mean(name.value, Capability::ALL.iter().map(|c| c.name())) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => "capabilities are administer-resource, read-config, read-data, write-data, delete-data".into(),
                });
                continue;
            };
            let list = super::decode::strings_of(node, name.value, &mut f.diags);
            if let Some(list) = list {
                add_principals(
                    f,
                    &mut access,
                    &[cap],
                    (list, name.span),
                    name.value,
                    region,
                );
            }
        }
    }
    let sugar: [(&'static str, &[Capability]); 4] = [
        (
            "key_administrators",
            &[Capability::AdministerResource, Capability::ReadConfig],
        ),
        (
            "key_users",
            &[
                Capability::ReadConfig,
                Capability::ReadData,
                Capability::WriteData,
            ],
        ),
        ("decrypt_only", &[Capability::ReadData]),
        ("describe_only", &[Capability::ReadConfig]),
    ];
    for (field, caps) in sugar {
        if let Some(list) = f.strings(field) {
            let key = f.key_span(field).unwrap_or(list.span);
            add_principals(f, &mut access, caps, (list, key), field, region);
        }
    }
    // Sorted and deduplicated once, at the end: per insertion it made 100,000 principals take
    // minutes.
    for principals in access.grants.values_mut() {
        principals.sort_unstable();
        principals.dedup();
    }
    if let Some(root) = f.bool("root_access") {
        access.root_access = root.value;
        access.root_access_span = Some(root.span);
    }
    if let Some(node) = f.node("services") {
        access.services = read_services(f, node);
        // A service's statements are a few hundred bytes before their regions.
        let weight = access.services.len() * 400;
        let key = f.key_span("services").unwrap_or(super::yaml::span_of(node));
        note_list(&mut access, key, weight);
    }
    access
}

/// A service's statement admits every principal of the account (`Principal: "*"`), pinned only
/// by `kms:ViaService`: it may read and write data, nothing else.
fn service_capability(cap: Capability) -> Result<(), (String, String)> {
    if cap.is_data() {
        return Ok(());
    }
    Err((
        format!("a service cannot be given `{cap}`: its statement admits every principal of the account (`Principal: \"*\"`), pinned only by kms:ViaService"),
        format!("services get read-data and write-data (and kms:DescribeKey with them); give `{cap}` to a named role under `access:`"),
    ))
}

/// Records a list as the largest so far if it adds more bytes to the policy than any before.
fn note_list(access: &mut Access, span: Span, weight: usize) {
    if access.largest_list.is_none_or(|(_, most)| weight > most) {
        access.largest_list = Some((span, weight));
    }
}

fn add_principals(
    f: &mut Fields,
    access: &mut Access,
    caps: &[Capability],
    (list, key): (Spanned<Vec<Spanned<String>>>, Span),
    field: &str,
    region: &str,
) {
    if list.value.is_empty() {
        f.error(list.span, format!("`{field}` has an empty principal list"))
            .help = Some("name at least one principal, or remove the entry".into());
        return;
    }
    // Each principal is a quoted string and a comma in every statement of its capabilities.
    let weight = caps.len() * list.value.iter().map(|p| p.value.len() + 3).sum::<usize>();
    note_list(access, key, weight);
    for p in list.value {
        if let Err(why) = check_principal_in(&p.value, region) {
            f.error(p.span, why);
            continue;
        }
        for cap in caps {
            access.grants.entry(*cap).or_default().push(p.value.clone());
        }
    }
}

/// `services:`: AWS services that may use the key on behalf of the key's account, pinned by
/// `kms:ViaService` and `kms:CallerAccount`. Its statements name `Principal: "*"`, so a service
/// gets data capabilities only; each service is listed once, and no two may share a Sid.
fn read_services(f: &mut Fields, node: &marked_yaml::Node) -> Vec<ServiceAccess> {
    let marked_yaml::Node::Sequence(seq) = node else {
        f.error(
            super::yaml::span_of(node),
            "`services` must be a list of {service, capabilities}",
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut stems: BTreeMap<String, (String, Span)> = BTreeMap::new();
    for item in seq.iter() {
        let Some(mut s) = Fields::of(item, "a service entry", &mut f.diags) else {
            continue;
        };
        let service = s.required_string("service");
        let caps = if s.has("capabilities") {
            read_capabilities(&mut s, "capabilities", service_capability)
        } else {
            vec![Capability::ReadData, Capability::WriteData]
        };
        let Some(svc) = service else {
            s.finish(&mut f.diags, None);
            continue;
        };
        if let Err(why) = check_service(&svc.value) {
            s.error(svc.span, why);
        } else {
            let entry = ServiceAccess {
                service: svc.value.clone(),
                capabilities: caps,
            };
            let stem = entry.sid_stem();
            match stems.get(&stem) {
                Some((first, at)) if *first == svc.value => {
                    let at = *at;
                    let d = s.error(svc.span, format!("the service `{first}` is listed twice"));
                    d.notes.push((at, "first listed here".into()));
                    d.help = Some("list each service once, with all its capabilities".into());
                }
                Some((first, at)) => {
                    let (first, at) = (first.clone(), *at);
                    let d = s.error(
                        svc.span,
                        format!("the services `{first}` and `{}` would share the statement id ViaService{stem}", svc.value),
                    );
                    d.notes.push((at, format!("`{first}` is listed here")));
                    d.help = Some(format!("AWS refuses a policy with two statements of one Sid; keep one of them (the ViaService names are `{first}.<region>.amazonaws.com` and `{}.<region>.amazonaws.com`)", svc.value));
                }
                None => {
                    stems.insert(stem, (svc.value.clone(), svc.span));
                    out.push(entry);
                }
            }
        }
        s.finish(&mut f.diags, None);
    }
    out
}

/// A list of capabilities, each checked by `allowed` (an error message and help when refused).
fn read_capabilities(
    f: &mut Fields,
    field: &'static str,
    allowed: fn(Capability) -> Result<(), (String, String)>,
) -> Vec<Capability> {
    let Some(list) = f.required_strings(field) else {
        return Vec::new();
    };
    if list.value.is_empty() {
        f.error(list.span, format!("`{field}` is empty"));
    }
    let mut caps = Vec::new();
    for c in list.value {
        match Capability::parse(&c.value) {
            Some(cap) => {
                if let Err((why, help)) = allowed(cap) {
                    f.error(c.span, why).help = Some(help);
                } else if !caps.contains(&cap) {
                    caps.push(cap);
                }
            }
            None => {
                let d = f.error(c.span, format!("unknown capability `{}`", c.value));
                d.help = did_you_mean(&c.value, Capability::ALL.iter().map(|c| c.name()))
                    .map(|near| format!("did you mean `{near}`?"));
            }
        }
    }
    caps.sort();
    caps
}

fn read_replica(f: &mut Fields) -> Option<ReplicaDecl> {
    let primary = read_address(f, "replica_of");
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

fn read_grant(f: &mut Fields, address: &Address) -> Option<Grant> {
    let key = read_address(f, "key");
    let grantee = f.required_string("grantee");
    if let Some(g) = &grantee {
        if let Err(why) = check_principal_in(&g.value, &address.region) {
            f.error(g.span, why);
        }
    }
    let retiring = f.string("retiring_principal");
    if let Some(r) = &retiring {
        if let Err(why) = check_principal_in(&r.value, &address.region) {
            f.error(r.span, why);
        }
    }
    let mut operations = Vec::new();
    match f.required_strings("operations") {
        None => {}
        Some(list) if list.value.is_empty() => {
            f.error(
                list.span,
                "`operations` is empty: a grant must allow at least one operation",
            );
        }
        Some(list) => {
            for op in list.value {
                if !GRANT_OPERATIONS.contains(&op.value.as_str()) {
                    let d = f.error(op.span, format!("`{}` is not a grant operation", op.value));
                    d.help = did_you_mean(&op.value, GRANT_OPERATIONS.iter().copied())
                        .map(|near| format!("did you mean `{near}`?"));
                } else if !operations.contains(&op.value) {
                    operations.push(op.value);
                }
            }
        }
    }
    let equals = f.plain_map("encryption_context_equals");
    let subset = f.plain_map("encryption_context_subset");
    if !equals.is_empty() && !subset.is_empty() {
        let span = f.key_span("encryption_context_subset").unwrap_or(f.span());
        f.error(
            span,
            "a grant takes either encryption_context_equals or encryption_context_subset, not both",
        );
    }
    let grant_name =
        aws_name(f, "name", 256, ":/_-", "grant name").unwrap_or_else(|| address.name.clone());
    Some(Grant {
        key: key?,
        grantee: grantee?.value,
        operations,
        retiring_principal: retiring.map(|r| r.value),
        encryption_context_equals: equals,
        encryption_context_subset: subset,
        grant_name,
    })
}

fn read_key_access(f: &mut Fields, address: &Address, account: &Account) -> Option<KeyAccess> {
    let key = read_address(f, "key");
    let mut roles = Vec::new();
    match f.required_strings("roles") {
        None => {}
        Some(list) if list.value.is_empty() => {
            f.error(list.span, "`roles` has an empty principal list")
                .help = Some("name the roles of this account that use the key".into());
        }
        Some(list) => {
            for r in list.value {
                match check_role_in(&r.value, &address.region) {
                    // An account without a valid id has had its error; there is nothing to
                    // compare against.
                    Ok(role_account)
                        if !account.account_id.is_empty() && role_account != account.account_id =>
                    {
                        f.error(
                            r.span,
                            format!(
                                "`{}` is a role of account {role_account}, but {address} is in account {} ({})",
                                r.value, account.name, account.account_id
                            ),
                        )
                        .help = Some(format!(
                            "key-access is an IAM policy in the consumer's own account, so it can only name that account's roles; declare it under the account of {role_account}"
                        ));
                    }
                    Ok(_) => roles.push(r.value),
                    Err(why) => {
                        f.error(r.span, why);
                    }
                }
            }
        }
    }
    let capabilities = read_capabilities(f, "capabilities", |_| Ok(()));
    for cap in &capabilities {
        if matches!(cap, Capability::AdministerResource | Capability::DeleteData) {
            let span = f.key_span("capabilities").unwrap_or(f.span());
            f.error(span, format!("key-access cannot grant `{cap}`"))
                .help = Some("another account may read config and use the key (read-config, read-data, write-data), not administer it".into());
        }
    }
    let policy_name = aws_name(f, "policy_name", 128, "_+=,.@-", "IAM policy name")
        .unwrap_or_else(|| format!("orch-key-access-{}", address.name));
    Some(KeyAccess {
        key: key?,
        roles,
        capabilities,
        policy_name,
    })
}

/// A name AWS checks against its own pattern: 1 to `max` ASCII letters, digits and `extra`.
fn aws_name(
    f: &mut Fields,
    field: &'static str,
    max: usize,
    extra: &str,
    what: &str,
) -> Option<String> {
    let n = f.string(field)?;
    let ok = (1..=max).contains(&n.value.len())
        && n.value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c));
    if !ok {
        let allowed: Vec<String> = extra.chars().map(String::from).collect();
        f.error(n.span, format!("`{}` is not a valid {what}", n.value))
            .help = Some(format!(
            "AWS takes 1-{max} letters, digits, and {} in a {what}",
            allowed.join(" ")
        ));
    }
    Some(n.value)
}

fn read_s3_bucket(f: &mut Fields) -> Option<S3Bucket> {
    let key = read_address(f, "key");
    let bucket = f.required_string("bucket");
    if let Some(b) = &bucket {
        if let Err(why) = check_bucket_name(&b.value) {
            f.error(b.span, why);
        }
    }
    let versioning = f.bool("versioning").map(|b| b.value).unwrap_or(true);
    let force_destroy = f.bool("force_destroy").map(|b| b.value).unwrap_or(false);
    Some(S3Bucket {
        key: key?,
        bucket: bucket?.value,
        versioning,
        force_destroy,
    })
}

fn check_bucket_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let ends_ok = name
        .chars()
        .next()
        .zip(name.chars().last())
        .is_some_and(|(a, z)| a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric());
    let looks_like_ip =
        name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok());
    if (3..=63).contains(&name.len())
        && ok_chars
        && ends_ok
        && !name.contains("..")
        && !looks_like_ip
    {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid S3 bucket name (3-63 lower-case letters, digits, dots and hyphens)"
        ))
    }
}

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

fn read_custom(f: &mut Fields, kind: &str) -> Option<Custom> {
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
            let span = super::yaml::marker_span(name.span().start());
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
            } else if matches!(value, marked_yaml::Node::Scalar(s) if super::decode::is_null(s)) {
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
        let common = include_str!("../../templates/common/variables.tf");
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

    #[test]
    fn bucket_names() {
        assert!(check_bucket_name("acme-prod-data").is_ok());
        for bad in [
            "ab",
            "Acme",
            "-acme",
            "acme-",
            "a..b",
            "192.168.1.1",
            "acme_data",
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }
}
