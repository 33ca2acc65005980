//! What discovery would write: a `node.yaml` per adopted key (named from its alias, or its key
//! id), a grant node per grant people made, an explicit replica where a replica differs from
//! its primary, and a `region.yaml` holding the tags every adopted key of a new region shares.
//! Keys the tree already holds (by key id, by the key id recorded at its last apply, or by
//! alias) are matched, not written again. Nothing here touches the disk but the reads of
//! recorded outputs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::classify::{Estate, Family};
use super::held::Held;
use crate::aws::{LiveGrant, LiveKey};
use crate::config::{
    check_principal_in, partition_of, Access, Address, Fleet, KeySpec, KeyUsage, GRANT_OPERATIONS,
};
use crate::policy::{infer, InferContext, Inference};

/// How a key's policy is written.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "as", rename_all = "kebab-case")]
pub enum PolicyChoice {
    /// As capabilities: orch renders a policy with exactly the live one's effect.
    Capabilities,
    /// As the `policy:` override, verbatim, and why it did not map.
    Kept { why: Vec<String> },
}

/// One adopted key, as the report tells it.
#[derive(Clone, Debug, Serialize)]
pub struct Adopted {
    pub address: String,
    pub key_id: String,
    pub arn: String,
    pub policy: PolicyChoice,
    /// Things to know: values AWS cannot return, tags orch does not manage, renames.
    pub notes: Vec<String>,
    pub replicas: Vec<String>,
    pub grants: Vec<String>,
}

/// A key or grant the tree already holds.
#[derive(Clone, Debug, Serialize)]
pub struct Matched {
    pub id: String,
    pub address: String,
    pub by: String,
}

/// A grant people made that orch cannot express, and why.
#[derive(Clone, Debug, Serialize)]
pub struct GrantSkipped {
    pub key_id: String,
    pub grant_id: String,
    pub why: String,
}

/// What discovery would write, relative to `live/`, and the report of it.
#[derive(Debug, Default)]
pub struct Draft {
    pub files: Vec<(PathBuf, String)>,
    pub adopted: Vec<Adopted>,
    pub matched: Vec<Matched>,
    pub grants_skipped: Vec<GrantSkipped>,
}

/// Choices made about single keys after a first draft was checked against the tree it makes.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// Keys whose policy is kept verbatim, and why (the tree's defaults change what the
    /// capabilities would render).
    pub keep_policy: BTreeMap<String, Vec<String>>,
    /// Fields written on the node even where the built-in default is the same, because the
    /// tree's defaults differ: key id -> field names.
    pub explicit: BTreeMap<String, BTreeSet<&'static str>>,
}

/// A file to write: its path, its fields, a policy kept verbatim, its header comment.
type Body = (PathBuf, Map<String, Value>, Option<String>, String);

/// A node name made from an alias or a key id: lower case, `[a-z0-9_-]`, at most 63 characters,
/// starting with a letter or digit.
pub fn node_name(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            c
        } else {
            '-'
        };
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    let trimmed: String = out
        .trim_matches(|c| c == '-' || c == '_')
        .chars()
        .take(63)
        .collect();
    let trimmed = trimmed.trim_end_matches(['-', '_']).to_string();
    if trimmed.is_empty() {
        "key".into()
    } else {
        trimmed
    }
}

/// The draft of everything `estate` adopts into `fleet`'s tree.
pub fn draft(fleet: &Fleet, estate: &Estate, overrides: &Overrides, today: &str) -> Draft {
    let held = Held::of(fleet);
    let mut out = Draft::default();
    let mut taken = held.names.clone();
    let mut families: Vec<&Family> = estate.families.iter().collect();
    families.sort_by_key(|f| {
        (
            f.account.clone(),
            f.region.clone(),
            f.aliases.first().cloned(),
            f.primary.key_id.clone(),
        )
    });
    // Nodes per new region directory, for the tags they all share.
    let mut new_regions: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    let mut bodies: Vec<Body> = Vec::new();
    for family in families {
        let (account, region) = (&family.account, &family.region);
        let key = &family.primary;
        let matched = held.holder(account, region, &key.key_id, &family.aliases);
        let address = match matched {
            Some((address, by)) => {
                out.matched.push(Matched {
                    id: key.key_id.clone(),
                    address: address.clone(),
                    by: by.into(),
                });
                address.clone()
            }
            None => {
                let mut notes = Vec::new();
                let base = family
                    .aliases
                    .iter()
                    .min_by_key(|a| (a.len(), a.to_string()))
                    .map(|a| node_name(a))
                    .unwrap_or_else(|| format!("key-{}", short_id(&key.key_id)));
                let regions = family.regions();
                let name = free_name(&base, account, &regions, &mut taken);
                if name != base {
                    notes.push(format!(
                        "named `{name}`: `{base}` is taken in {account}/{}",
                        regions.join(", ")
                    ));
                }
                let address = format!("{account}/{region}/{name}");
                let (body, policy, choice) = key_body(fleet, family, overrides, &mut notes);
                let header = format!(
                    "# Adopted by `orch import` on {today} from {}{}.\n",
                    key.arn,
                    if family.aliases.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " ({})",
                            family
                                .aliases
                                .iter()
                                .map(|a| format!("alias/{a}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                );
                let dir = PathBuf::from(account).join(region).join(&name);
                let fresh_region = !held.names.contains_key(&(account.clone(), region.clone()))
                    && !fleet.live.join(account).join(region).exists();
                if fresh_region {
                    new_regions
                        .entry((account.clone(), region.clone()))
                        .or_default()
                        .push(bodies.len());
                }
                bodies.push((dir.join("node.yaml"), body, policy, header));
                let mut replicas = Vec::new();
                for (r, live) in &family.replicas {
                    replicas.push(format!("{account}/{r}/{name}"));
                    if let Some(live) = live.as_ref().filter(|l| differs(l, key)) {
                        let mut body = Map::new();
                        body.insert("replica_of".into(), json!(address));
                        body.insert("description".into(), json!(live.description));
                        if live.state == "Disabled" {
                            body.insert("is_enabled".into(), json!(false));
                        }
                        let header = format!(
                            "# Adopted by `orch import` on {today} from {}: a replica that differs from its primary.\n",
                            live.arn
                        );
                        bodies.push((
                            PathBuf::from(account).join(r).join(&name).join("node.yaml"),
                            body,
                            None,
                            header,
                        ));
                    }
                }
                out.adopted.push(Adopted {
                    address: address.clone(),
                    key_id: key.key_id.clone(),
                    arn: key.arn.clone(),
                    policy: choice,
                    notes,
                    replicas,
                    grants: Vec::new(),
                });
                address
            }
        };
        for (member_region, grant) in &family.grants {
            let slot = (
                account.clone(),
                member_region.clone(),
                grant.grant_id.clone(),
            );
            if let Some(a) = held.grants.get(&slot) {
                out.matched.push(Matched {
                    id: grant.grant_id.clone(),
                    address: a.clone(),
                    by: "grant id".into(),
                });
                continue;
            }
            let key_address = Address::parse(&address)
                .map(|a| format!("{}/{member_region}/{}", a.account, a.name))
                .unwrap_or_else(|_| address.clone());
            match grant_body(grant, &key_address, member_region) {
                Err(why) => out.grants_skipped.push(GrantSkipped {
                    key_id: key.key_id.clone(),
                    grant_id: grant.grant_id.clone(),
                    why,
                }),
                Ok(body) => {
                    let key_name = key_address.rsplit('/').next().unwrap_or("key");
                    let base = node_name(&format!(
                        "{key_name}-grant-{}",
                        if grant.name.is_empty() {
                            short_id(&grant.grant_id)
                        } else {
                            grant.name.clone()
                        }
                    ));
                    let name = free_name(
                        &base,
                        account,
                        std::slice::from_ref(member_region),
                        &mut taken,
                    );
                    let grant_address = format!("{account}/{member_region}/{name}");
                    if let Some(a) = out.adopted.iter_mut().find(|a| a.address == address) {
                        a.grants.push(grant_address);
                    }
                    bodies.push((
                        PathBuf::from(account)
                            .join(member_region)
                            .join(&name)
                            .join("node.yaml"),
                        body,
                        None,
                        format!(
                            "# Adopted by `orch import` on {today}: grant {} on {}.\n",
                            grant.grant_id, key.arn
                        ),
                    ));
                }
            }
        }
    }
    lift_region_tags(&mut out, &mut bodies, &new_regions);
    for (path, body, policy, header) in bodies {
        out.files
            .push((path, node_yaml(&header, &body, policy.as_deref())));
    }
    out
}

/// The first 8 characters of a key or grant id that tell it apart (`mrk-` kept).
fn short_id(id: &str) -> String {
    match id.strip_prefix("mrk-") {
        Some(rest) => format!("mrk-{}", &rest[..rest.len().min(8)]),
        None => id.chars().take(8).collect(),
    }
}

/// `base`, or `base-2`, `base-3`, ... : the first name free in every region of `regions`.
fn free_name(
    base: &str,
    account: &str,
    regions: &[String],
    taken: &mut BTreeMap<(String, String), BTreeSet<String>>,
) -> String {
    let free = |name: &str, taken: &BTreeMap<(String, String), BTreeSet<String>>| {
        regions.iter().all(|r| {
            !taken
                .get(&(account.to_string(), r.clone()))
                .is_some_and(|names| names.contains(name))
        })
    };
    let mut name = base.to_string();
    let mut n = 2;
    while !free(&name, taken) {
        name = format!("{base}-{n}");
        n += 1;
    }
    for r in regions {
        taken
            .entry((account.to_string(), r.clone()))
            .or_default()
            .insert(name.clone());
    }
    name
}

/// A replica whose description or state differs from its primary's needs a node of its own.
fn differs(replica: &LiveKey, primary: &LiveKey) -> bool {
    replica.description != primary.description || replica.state != primary.state
}

/// The fields of a key's node.yaml, its policy when kept verbatim, and how it was written.
fn key_body(
    fleet: &Fleet,
    family: &Family,
    overrides: &Overrides,
    notes: &mut Vec<String>,
) -> (Map<String, Value>, Option<String>, PolicyChoice) {
    let key = &family.primary;
    let explicit = overrides.explicit.get(&key.key_id);
    let forced = |field: &str| explicit.is_some_and(|e| e.contains(field));
    let spec = KeySpec::parse(&key.spec).unwrap_or(KeySpec::SymmetricDefault);
    let usage = KeyUsage::parse(&key.usage).unwrap_or(spec.usages()[0]);
    let mut body = Map::new();
    let mut import = Map::new();
    import.insert("key_id".into(), json!(key.key_id));
    if !family.aliases.is_empty() {
        import.insert("aliases".into(), json!(family.aliases));
    }
    body.insert("import".into(), Value::Object(import));
    body.insert("description".into(), json!(key.description));
    if !family.aliases.is_empty() {
        body.insert("aliases".into(), json!(family.aliases));
    }
    if spec != KeySpec::SymmetricDefault || forced("spec") {
        body.insert("spec".into(), json!(spec.name()));
    }
    if usage != spec.usages()[0] || forced("usage") {
        body.insert("usage".into(), json!(usage.name()));
    }
    if let Some(r) = key.rotation {
        let period = r.period_days.filter(|p| *p != 365);
        if !r.enabled || period.is_some() || forced("rotation") {
            let mut rotation = Map::new();
            rotation.insert("enabled".into(), json!(r.enabled));
            if let Some(p) = period.filter(|_| r.enabled) {
                rotation.insert("period_days".into(), json!(p));
            }
            body.insert("rotation".into(), Value::Object(rotation));
        }
    }
    if key.state == "Disabled" || forced("is_enabled") {
        body.insert("is_enabled".into(), json!(key.state != "Disabled"));
    }
    if key.multi_region.is_some() {
        body.insert("multi_region".into(), json!(true));
        let same: Vec<&String> = family
            .replicas
            .iter()
            .filter(|(_, live)| !live.as_ref().is_some_and(|l| differs(l, key)))
            .map(|(r, _)| r)
            .collect();
        if !same.is_empty() {
            body.insert("replicas".into(), json!(same));
        }
        for (r, live) in &family.replicas {
            if live.is_none() {
                notes.push(format!(
                    "its replica in {r} was not read (the account's `regions` do not list {r}): orch assumes it matches the primary"
                ));
            }
            let aliases = family.replica_aliases.get(r).cloned().unwrap_or_default();
            let missing: Vec<&String> = family
                .aliases
                .iter()
                .filter(|a| !aliases.contains(a))
                .collect();
            if live.is_some() && !missing.is_empty() {
                notes.push(format!(
                    "{r} has no alias {} for this key: orch gives a key's aliases to every replica, so adopting it creates them there",
                    missing.iter().map(|a| format!("alias/{a}")).collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    let (policy, choice) = policy_of(fleet, family, spec, usage, overrides, &mut body);
    let mut tags = Map::new();
    for (k, v) in &key.tags {
        if k.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
            notes.push(format!(
                "tag `{k}` is AWS's own (aws: tags are set by AWS services such as CloudFormation): left to them"
            ));
        } else {
            tags.insert(k.clone(), json!(v));
        }
    }
    if !tags.is_empty() {
        body.insert("tags".into(), Value::Object(tags));
    }
    (body, policy, choice)
}

/// The key's access model when its live policy maps exactly (written into `body`), else the
/// live policy to keep and why.
fn policy_of(
    fleet: &Fleet,
    family: &Family,
    spec: KeySpec,
    usage: KeyUsage,
    overrides: &Overrides,
    body: &mut Map<String, Value>,
) -> (Option<String>, PolicyChoice) {
    let key = &family.primary;
    let Some(text) = &key.policy else {
        return (
            None,
            PolicyChoice::Kept {
                why: vec!["no policy was read".into()],
            },
        );
    };
    let keep = |why: Vec<String>| {
        let pretty = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| text.clone());
        (Some(pretty), PolicyChoice::Kept { why })
    };
    if let Some(why) = overrides.keep_policy.get(&key.key_id) {
        return keep(why.clone());
    }
    let Ok(live) = serde_json::from_str::<Value>(text) else {
        return keep(vec!["the live policy is not valid JSON".into()]);
    };
    let Some(account) = fleet.accounts.get(&family.account) else {
        return keep(vec![format!(
            "account {} is not in the tree",
            family.account
        )]);
    };
    let ctx = InferContext {
        account,
        partition: partition_of(&family.region),
        regions: family.regions(),
        spec,
        usage,
        multi_region: key.multi_region.is_some(),
    };
    match infer(&live, &ctx) {
        Inference::Exact(access) if access.external_accounts.is_empty() => {
            write_access(&access, body);
            (None, PolicyChoice::Capabilities)
        }
        Inference::Exact(access) => keep(vec![format!(
            "it grants account(s) {} access: orch writes that for a key-access node in that account, which import does not make",
            access.external_accounts.keys().cloned().collect::<Vec<_>>().join(", ")
        )]),
        Inference::Inexact(misfit) => {
            let mut why: Vec<String> = misfit
                .unmapped
                .iter()
                .map(|u| {
                    format!(
                        "statement {}{}: {}",
                        u.index + 1,
                        u.sid.as_deref().map(|s| format!(" ({s})")).unwrap_or_default(),
                        u.reasons.join("; ")
                    )
                })
                .collect();
            why.extend(misfit.extra.iter().map(|e| format!("capabilities would add: {e}")));
            keep(why)
        }
        Inference::Invalid(why) => keep(vec![why]),
    }
}

/// `root_access`, `access`, `services`, `encryption_context` of an access model.
fn write_access(access: &Access, body: &mut Map<String, Value>) {
    if !access.root_access {
        body.insert("root_access".into(), json!(false));
    }
    if !access.grants.is_empty() {
        let grants: Map<String, Value> = access
            .grants
            .iter()
            .map(|(cap, principals)| (cap.name().to_string(), json!(principals)))
            .collect();
        body.insert("access".into(), Value::Object(grants));
    }
    if !access.services.is_empty() {
        let services: Vec<Value> = access
            .services
            .iter()
            .map(|s| {
                json!({
                    "service": s.service,
                    "capabilities": s.capabilities.iter().map(|c| c.name()).collect::<Vec<_>>(),
                })
            })
            .collect();
        body.insert("services".into(), json!(services));
    }
    if !access.encryption_context.is_empty() {
        body.insert(
            "encryption_context".into(),
            json!(access.encryption_context),
        );
    }
}

/// A grant node's fields, or why orch cannot express the grant.
fn grant_body(grant: &LiveGrant, key: &str, region: &str) -> Result<Map<String, Value>, String> {
    check_principal_in(&grant.grantee, region).map_err(|why| format!("its grantee: {why}"))?;
    if let Some(r) = &grant.retiring_principal {
        check_principal_in(r, region).map_err(|why| format!("its retiring principal: {why}"))?;
    }
    if let Some(op) = grant
        .operations
        .iter()
        .find(|op| !GRANT_OPERATIONS.contains(&op.as_str()))
    {
        return Err(format!("operation {op} is not one a grant node takes"));
    }
    if grant.operations.is_empty() {
        return Err("it allows no operation".into());
    }
    let mut body = Map::new();
    body.insert("kind".into(), json!("grant"));
    body.insert("import".into(), json!({"grant_id": grant.grant_id}));
    body.insert("key".into(), json!(key));
    body.insert("grantee".into(), json!(grant.grantee));
    body.insert("operations".into(), json!(grant.operations));
    body.insert("name".into(), json!(grant.name));
    if let Some(r) = &grant.retiring_principal {
        body.insert("retiring_principal".into(), json!(r));
    }
    if !grant.encryption_context_equals.is_empty() {
        body.insert(
            "encryption_context_equals".into(),
            json!(grant.encryption_context_equals),
        );
    }
    if !grant.encryption_context_subset.is_empty() {
        body.insert(
            "encryption_context_subset".into(),
            json!(grant.encryption_context_subset),
        );
    }
    Ok(body)
}

/// In a region directory the import creates, the tags every adopted key there carries with one
/// value go to a new `region.yaml`'s defaults instead of each node.yaml. Only a new directory:
/// defaults in an existing one would change the tags of the nodes already there.
fn lift_region_tags(
    out: &mut Draft,
    bodies: &mut [Body],
    regions: &BTreeMap<(String, String), Vec<usize>>,
) {
    for ((account, region), members) in regions {
        if members.len() < 2 {
            continue;
        }
        let tags_of = |i: usize| {
            bodies[i]
                .1
                .get("tags")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        let first = tags_of(members[0]);
        let shared: Map<String, Value> = first
            .into_iter()
            .filter(|(k, v)| members.iter().all(|&i| tags_of(i).get(k) == Some(v)))
            .collect();
        if shared.is_empty() {
            continue;
        }
        for &i in members {
            let body = &mut bodies[i].1;
            if let Some(Value::Object(tags)) = body.get_mut("tags") {
                tags.retain(|k, _| !shared.contains_key(k));
                if tags.is_empty() {
                    body.remove("tags");
                }
            }
        }
        let mut defaults = Map::new();
        defaults.insert("tags".into(), Value::Object(shared));
        let mut body = Map::new();
        body.insert("defaults".into(), Value::Object(defaults));
        out.files.push((
            Path::new(account).join(region).join("region.yaml"),
            node_yaml(
                "# Written by `orch import`: the tags every key adopted here shares.\n",
                &body,
                None,
            ),
        ));
    }
}

/// The YAML text of a node (or region) file: `header`, the fields, then a kept policy as a
/// literal block of JSON, byte for byte what AWS returned (pretty-printed).
pub fn node_yaml(header: &str, body: &Map<String, Value>, policy: Option<&str>) -> String {
    let mut text = header.to_string();
    if !body.is_empty() {
        text.push_str(
            &serde_yaml::to_string(&Value::Object(body.clone())).expect("YAML serializes"),
        );
    }
    if let Some(policy) = policy {
        text.push_str("policy: |\n");
        for line in policy.lines() {
            text.push_str("  ");
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_from_aliases_are_valid_addresses() {
        assert_eq!(node_name("Team/App.Key"), "team-app-key");
        assert_eq!(node_name("app_data"), "app_data");
        assert_eq!(node_name("--x--"), "x");
        assert_eq!(node_name("///"), "key");
        assert_eq!(node_name(&"a".repeat(100)).len(), 63);
        for name in ["Team/App.Key", "ü/ß", "a b", "..", "-a"] {
            assert!(
                crate::config::address::check_name(&node_name(name)).is_ok(),
                "{name}"
            );
        }
    }

    #[test]
    fn names_that_collide_get_a_suffix_free_in_every_region() {
        let mut taken = BTreeMap::new();
        taken.insert(
            ("prod".to_string(), "eu-west-1".to_string()),
            BTreeSet::from(["app".to_string()]),
        );
        let regions = ["us-east-1".to_string(), "eu-west-1".to_string()];
        assert_eq!(free_name("app", "prod", &regions, &mut taken), "app-2");
        assert_eq!(free_name("app", "prod", &regions[..1], &mut taken), "app");
        assert_eq!(free_name("app", "prod", &regions[..1], &mut taken), "app-3");
        assert_eq!(free_name("db", "prod", &regions[..1], &mut taken), "db");
    }

    #[test]
    fn yaml_keeps_strings_that_look_like_other_things() {
        let mut body = Map::new();
        body.insert("description".into(), json!("123"));
        body.insert(
            "tags".into(),
            json!({"On": "true", "Zip": "01234", "Null": "null"}),
        );
        let text = node_yaml("# h\n", &body, Some("{\n  \"a\": \"b\"\n}"));
        let back: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(back["description"], serde_yaml::Value::String("123".into()));
        assert_eq!(back["tags"]["On"], serde_yaml::Value::String("true".into()));
        assert_eq!(
            back["tags"]["Zip"],
            serde_yaml::Value::String("01234".into())
        );
        assert_eq!(
            back["tags"]["Null"],
            serde_yaml::Value::String("null".into())
        );
        assert_eq!(
            back["policy"],
            serde_yaml::Value::String("{\n  \"a\": \"b\"\n}\n".into())
        );
    }
}
