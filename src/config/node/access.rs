//! A key's access model: `access:` capabilities, the admin/user sugar, `root_access`, and the
//! AWS services that use the key through `kms:ViaService`.

use std::collections::BTreeMap;

use crate::config::decode::{self, Fields, Spanned};
use crate::config::model::{Access, Capability, ServiceAccess};
use crate::config::principal::{check_principal_in, check_service};
use crate::config::yaml;
use crate::diag::{did_you_mean, Span};

/// The access model: `access:` capabilities, the admin/user sugar, and `services:`, for a key in
/// `region` (its principals must be of that region's partition).
pub(super) fn read_access(f: &mut Fields, region: &str) -> Access {
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
            let list = decode::strings_of(node, name.value, &mut f.diags);
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
        let key = f.key_span("services").unwrap_or(yaml::span_of(node));
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
            yaml::span_of(node),
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
pub(super) fn read_capabilities(
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
