//! Rules across nodes: replicas expanded and checked against their primaries, consumers against
//! their keys, `depends_on` and aliases; key policies widened for key-access consumers. Produces
//! the final node list of the fleet.

use std::collections::BTreeMap;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::Node as YamlNode;

use super::address::Address;
use super::decode::Spanned;
use super::layer::merge;
use super::model::{Access, Account, Node, NodeKind, Replica};
use super::node::{grant_mismatches, Body, Declared, KeyDecl, ReplicaDecl, Replicas};
use super::principal::partition_of;
use super::regions;
use super::tree::Unloaded;
use crate::diag::{did_you_mean, Diagnostic, Diagnostics, Span};

/// Fields of a primary's node.yaml that its synthesized replicas carry over, with the k9 tag
/// fields (see `replicated`).
const REPLICATED_FIELDS: &[&str] = &[
    "description",
    "tags",
    "deletion_window_days",
    "is_enabled",
    "prevent_destroy",
];

pub struct Linker<'a> {
    pub accounts: &'a BTreeMap<String, Account>,
    /// The layered defaults of every (account, region), for synthesized replicas.
    pub layers: &'a BTreeMap<(String, String), MarkedMappingNode>,
    /// Nodes that exist but did not load; references to them are not dangling.
    pub broken: &'a Unloaded,
}

impl Linker<'_> {
    pub fn link(&self, declared: Vec<Declared>, diags: &mut Diagnostics) -> Vec<Node> {
        let by_address: BTreeMap<Address, &Declared> =
            declared.iter().map(|d| (d.address.clone(), d)).collect();
        let mut replicas = self.plan_replicas(&declared, &by_address, diags);
        // Replica address -> primary, and primary -> replica regions: one pass, so that large
        // fleets with many replicas and key-access nodes link in linear time.
        let primary_of: BTreeMap<Address, Address> = replicas
            .iter()
            .map(|r| (r.address.clone(), r.primary.clone()))
            .collect();
        let mut replica_regions: BTreeMap<Address, Vec<String>> = BTreeMap::new();
        for r in &replicas {
            replica_regions
                .entry(r.primary.clone())
                .or_default()
                .push(r.address.region.clone());
        }
        self.check_references(&declared, &by_address, &primary_of, diags);
        let widening = self.widening(&declared, &primary_of);

        let mut nodes = Vec::new();
        for d in &declared {
            let kind = match &d.body {
                Body::Key(k) => {
                    let mut key = k.key.clone();
                    key.replica_regions = replica_regions.remove(&d.address).unwrap_or_default();
                    widen(&mut key.access, widening.get(&d.address));
                    NodeKind::Key(key)
                }
                // Explicit replicas are built below with the synthesized ones.
                Body::Replica(_) => continue,
                Body::Grant(g) => NodeKind::Grant(g.clone()),
                Body::KeyAccess(k) => NodeKind::KeyAccess(k.clone()),
                Body::S3Bucket(b) => NodeKind::S3Bucket(b.clone()),
                Body::Custom(c) => NodeKind::Custom(c.clone()),
            };
            nodes.push(Node {
                address: d.address.clone(),
                span: d.span,
                kind,
                tags: d.tags.clone(),
                depends_on: d.depends_on.clone(),
                effective: d.effective.clone(),
            });
        }
        for planned in replicas.drain(..) {
            let primary_decl = by_address.get(&planned.primary).copied();
            let Some(Body::Key(primary)) = primary_decl.map(|d| &d.body) else {
                continue;
            };
            let mut access = primary.key.access.clone();
            widen(&mut access, widening.get(&planned.primary));
            nodes.push(self.replica_node(planned, primary_decl, primary, access, diags));
        }
        nodes.sort_by(|a, b| a.address.cmp(&b.address));
        self.check_aliases(&nodes, &declared, diags);
        check_imports(&nodes, diags);
        nodes
    }

    /// Every replica the tree asks for, synthesized or explicit, with the checks that bind them.
    fn plan_replicas<'d>(
        &self,
        declared: &'d [Declared],
        by_address: &BTreeMap<Address, &'d Declared>,
        diags: &mut Diagnostics,
    ) -> Vec<PlannedReplica<'d>> {
        let mut planned: Vec<PlannedReplica> = Vec::new();
        for d in declared {
            let Body::Key(key) = &d.body else { continue };
            let Some(spec) = &key.replicas else { continue };
            let account = &self.accounts[&d.address.account];
            let regions: Vec<Spanned<String>> = match &spec.value {
                Replicas::All => account
                    .regions
                    .iter()
                    .filter(|r| **r != d.address.region)
                    .map(|r| Spanned::new(r.clone(), spec.span))
                    .collect(),
                Replicas::Regions(list) => list.clone(),
            };
            // A `replicas:` default reaches every key below it but is one mistake: its messages
            // leave the key's address out, so they read the same for each key and
            // `Diagnostics::dedup` reports them once.
            let inherited = spec.span.source != d.source;
            let subject = if inherited {
                "the key".to_string()
            } else {
                d.address.to_string()
            };
            if !regions.is_empty() && !key.key.multi_region {
                let message = if inherited {
                    "a key inheriting this `replicas` default is not a multi-region key".to_string()
                } else {
                    format!("{} has replicas but is not a multi-region key", d.address)
                };
                let mut e = Diagnostic::error(spec.span, message).with_help(
                    "set `multi_region: true` (it cannot be changed after the key is created)",
                );
                // A note at one key's own `multi_region` would single out whichever key is
                // reported first among those that share the default.
                if let Some(span) = key
                    .multi_region_span
                    .filter(|span| !inherited || span.source != d.source)
                {
                    e = e.with_note(span, "multi_region set here");
                }
                // Kept only on the copy dedup keeps: one key to start looking from.
                if inherited {
                    e = e.with_note(d.span, format!("{} is one such key", d.address));
                }
                diags.push(e);
                continue;
            }
            let mut seen: BTreeMap<String, Span> = BTreeMap::new();
            for region in regions {
                if let Some(first) = seen.get(&region.value) {
                    diags.push(
                        Diagnostic::error(
                            region.span,
                            format!("two replicas of {subject} in {}", region.value),
                        )
                        .with_note(*first, "first listed here"),
                    );
                    continue;
                }
                seen.insert(region.value.clone(), region.span);
                if !self.check_replica_region(&subject, &d.address.region, account, &region, diags)
                {
                    continue;
                }
                planned.push(PlannedReplica {
                    address: Address::new(&d.address.account, &region.value, &d.address.name),
                    primary: d.address.clone(),
                    span: region.span,
                    explicit: None,
                });
            }
        }
        for d in declared {
            let Body::Replica(r) = &d.body else { continue };
            if let Some(synthesized) = planned.iter().find(|p| p.address == r.primary.value) {
                diags.push(replica_of_a_replica(&r.primary, &synthesized.primary));
                continue;
            }
            let Some(primary) =
                lookup_key(by_address, self.broken, &r.primary, "replica_of", diags)
            else {
                continue;
            };
            let account = &self.accounts[&d.address.account];
            if !primary.key.multi_region {
                diags.push(
                    Diagnostic::error(
                        r.primary.span,
                        format!(
                            "{} is a replica of {}, which is not a multi-region key",
                            d.address, r.primary.value
                        ),
                    )
                    .with_help(format!("set `multi_region: true` on {}", r.primary.value)),
                );
                continue;
            }
            if r.primary.value.account != d.address.account {
                diags.push(
                    Diagnostic::error(
                        r.primary.span,
                        format!(
                            "{} is in account {}, its primary in {}",
                            d.address, d.address.account, r.primary.value.account
                        ),
                    )
                    .with_help("a multi-region replica lives in the same account as its primary"),
                );
                continue;
            }
            let region = Spanned::new(d.address.region.clone(), r.primary.span);
            if !self.check_replica_region(
                &r.primary.value.to_string(),
                &r.primary.value.region,
                account,
                &region,
                diags,
            ) {
                continue;
            }
            // An explicit replica at the address a `replicas:` entry would synthesize refines it.
            if let Some(existing) = planned.iter_mut().find(|p| p.address == d.address) {
                existing.explicit = Some((d, r));
                continue;
            }
            if let Some(other) = planned
                .iter()
                .find(|p| p.primary == r.primary.value && p.address.region == d.address.region)
            {
                diags.push(
                    Diagnostic::error(
                        r.primary.span,
                        format!(
                            "two replicas of {} in {}",
                            r.primary.value, d.address.region
                        ),
                    )
                    .with_note(other.span, format!("{} is declared here", other.address)),
                );
                continue;
            }
            planned.push(PlannedReplica {
                address: d.address.clone(),
                primary: r.primary.value.clone(),
                span: r.primary.span,
                explicit: Some((d, r)),
            });
        }
        // A synthesized replica must not take the address of an unrelated node.
        planned.retain(|p| {
            if p.explicit.is_some() {
                return true;
            }
            match by_address.get(&p.address) {
                Some(other) => {
                    diags.push(
                        Diagnostic::error(
                            p.span,
                            format!(
                                "the replica of {} in {} would be {}, which is already a node",
                                p.primary, p.address.region, p.address
                            ),
                        )
                        .with_note(other.span, "that node is declared here")
                        .with_help(
                            "rename one of them, or declare the replica there with `replica_of`",
                        ),
                    );
                    false
                }
                None => true,
            }
        });
        planned
    }

    /// Checks the region of a replica of `subject` (the primary, as messages name it), whose own
    /// region is `primary_region`.
    fn check_replica_region(
        &self,
        subject: &str,
        primary_region: &str,
        account: &Account,
        region: &Spanned<String>,
        diags: &mut Diagnostics,
    ) -> bool {
        if region.value == primary_region {
            diags.push(
                Diagnostic::error(region.span, format!("a replica of {subject} in its own region {}", region.value))
                    .with_help("a multi-region key already exists in its primary region; list only other regions"),
            );
            return false;
        }
        if !regions::is_known(&region.value) {
            let mut d = Diagnostic::error(
                region.span,
                format!("`{}` is not an AWS region", region.value),
            );
            if let Some(near) = did_you_mean(&region.value, regions::REGIONS.iter().copied()) {
                d = d.with_help(format!("did you mean `{near}`?"));
            }
            diags.push(d);
            return false;
        }
        if !account.regions.contains(&region.value) {
            diags.push(
                Diagnostic::error(
                    region.span,
                    format!(
                        "region {} is not enabled for account {}",
                        region.value, account.name
                    ),
                )
                .with_note(
                    account.regions_span,
                    "the account's regions are listed here",
                )
                .with_help(format!("add {} to `regions` in account.yaml", region.value)),
            );
            return false;
        }
        true
    }

    fn replica_node(
        &self,
        planned: PlannedReplica,
        primary_decl: Option<&Declared>,
        primary: &KeyDecl,
        access: Access,
        diags: &mut Diagnostics,
    ) -> Node {
        let layer = self
            .layers
            .get(&(
                planned.address.account.clone(),
                planned.address.region.clone(),
            ))
            .cloned()
            .unwrap_or_else(super::settings::empty_mapping);
        let (effective, tags, depends_on, decl) = match planned.explicit {
            Some((d, r)) => (
                d.effective.clone(),
                d.tags.clone(),
                d.depends_on.clone(),
                Some(r),
            ),
            None => {
                let primary_own = own_fields(
                    primary_decl.map(|d| &d.effective),
                    primary_decl.map_or(u32::MAX, |d| d.source),
                );
                let mut effective = merge(&layer, &primary_own);
                let marker = marked_yaml::Marker::new(
                    planned.span.source as usize,
                    0,
                    planned.span.line as usize,
                    planned.span.col as usize,
                );
                effective.insert(
                    MarkedScalarNode::new(marked_yaml::Span::new_start(marker), "replica_of"),
                    YamlNode::Scalar(MarkedScalarNode::new(
                        marked_yaml::Span::new_start(marker),
                        planned.primary.to_string(),
                    )),
                );
                // The primary's own fields were checked already, but the replica's region may
                // layer in tags of its own (and too many): those findings are the replica's.
                // Repeats of the primary's are dropped by `Diagnostics::dedup`.
                let environment = &self.accounts[&planned.address.account].environment;
                let mut fields = super::decode::Fields::new(&effective, "node.yaml");
                let tags = super::node::read_tags(
                    &mut fields,
                    environment,
                    (&planned.address, planned.span),
                );
                diags.extend(std::mem::take(&mut fields.diags));
                (effective, tags, Vec::new(), None)
            }
        };
        let key = &primary.key;
        let own = decl;
        Node {
            address: planned.address,
            span: planned.span,
            kind: NodeKind::Replica(Replica {
                primary: Spanned::new(planned.primary, planned.span),
                description: own
                    .and_then(|r| r.description.clone())
                    .unwrap_or_else(|| key.description.clone()),
                deletion_window_days: own
                    .and_then(|r| r.deletion_window_days)
                    .unwrap_or(key.deletion_window_days),
                is_enabled: own.and_then(|r| r.is_enabled).unwrap_or(key.is_enabled),
                prevent_destroy: own
                    .and_then(|r| r.prevent_destroy)
                    .unwrap_or(key.prevent_destroy),
                aliases: key.aliases.clone(),
                access,
                spec: key.spec,
                usage: key.usage,
                bypass_policy_lockout_safety_check: key.bypass_policy_lockout_safety_check,
                policy_override: key.policy_override.clone(),
                explicit: own.is_some(),
                import: key.import.clone(),
            }),
            tags,
            depends_on,
            effective,
        }
    }

    fn check_references(
        &self,
        declared: &[Declared],
        by_address: &BTreeMap<Address, &Declared>,
        primary_of: &BTreeMap<Address, Address>,
        diags: &mut Diagnostics,
    ) {
        let exists = |a: &Address| by_address.contains_key(a) || primary_of.contains_key(a);
        let all: Vec<String> = by_address
            .keys()
            .chain(primary_of.keys())
            .map(|a| a.to_string())
            .collect();
        for d in declared {
            for dep in &d.depends_on {
                if dep.value == d.address {
                    diags.push(Diagnostic::error(
                        dep.span,
                        format!("{} depends on itself", d.address),
                    ));
                } else if !exists(&dep.value) && !self.broken.contains(&dep.value) {
                    diags.push(dangling(dep, "depends_on", &all));
                }
            }
            let key_ref = match &d.body {
                Body::Grant(g) => Some(&g.key),
                Body::KeyAccess(k) => Some(&k.key),
                Body::S3Bucket(b) => Some(&b.key),
                Body::Custom(c) => c.key.as_ref(),
                Body::Key(_) | Body::Replica(_) => None,
            };
            let Some(key) = key_ref else { continue };
            let is_key = matches!(
                by_address.get(&key.value).map(|t| &t.body),
                Some(Body::Key(_)) | Some(Body::Replica(_))
            ) || primary_of.contains_key(&key.value);
            if !exists(&key.value) {
                if !self.broken.contains(&key.value) {
                    diags.push(dangling(key, "key", &all));
                }
                continue;
            }
            if !is_key {
                diags.push(
                    Diagnostic::error(key.span, format!("{} is not a key", key.value))
                        .with_help("`key` names a key or a replica; consumers cannot chain"),
                );
                continue;
            }
            let same_place =
                key.value.account == d.address.account && key.value.region == d.address.region;
            match &d.body {
                Body::Grant(_) if !same_place => diags.push(
                    Diagnostic::error(key.span, format!("the grant {} is not in the account and region of its key {}", d.address, key.value))
                        .with_help(format!("move the grant under {}/{}/; the grantee may be in any account", key.value.account, key.value.region)),
                ),
                Body::S3Bucket(_) if !same_place => diags.push(
                    Diagnostic::error(key.span, format!("the bucket {} is not in the account and region of its key {}", d.address, key.value))
                        .with_help("SSE-KMS needs a key in the bucket's own region; use the key's replica in that region"),
                ),
                Body::KeyAccess(_) if partition_of(&key.value.region) != partition_of(&d.address.region) => diags.push(
                    Diagnostic::error(key.span, format!("{} is in the partition `{}`, but its key {} is in `{}`", d.address, partition_of(&d.address.region), key.value, partition_of(&key.value.region)))
                        .with_help("AWS partitions are separate worlds: a role of one cannot use a key of another"),
                ),
                Body::KeyAccess(_) if key.value.account == d.address.account => diags.push(
                    Diagnostic::error(key.span, format!("{} gives access to {} within the same account", d.address, key.value))
                        .with_help("key-access is for another account; in the key's own account use `access:` on the key"),
                ),
                _ => {}
            }
            if let Body::Grant(grant) = &d.body {
                let primary = primary_of.get(&key.value).unwrap_or(&key.value);
                if let Some(Body::Key(k)) = by_address.get(primary).map(|t| &t.body) {
                    for (span, message, help) in grant_mismatches(grant, k.key.spec, k.key.usage) {
                        diags.push(Diagnostic::error(span, message).with_help(help));
                    }
                }
            }
        }
    }

    /// External accounts each key's policy must admit: primary address -> account id ->
    /// capabilities. A multi-region key and its replicas share one policy (a key-access to any
    /// of them widens them all), so who may use the key reads the same in every region.
    fn widening(
        &self,
        declared: &[Declared],
        primary_of: &BTreeMap<Address, Address>,
    ) -> BTreeMap<Address, BTreeMap<String, Vec<super::model::Capability>>> {
        let mut out: BTreeMap<Address, BTreeMap<String, Vec<_>>> = BTreeMap::new();
        for d in declared {
            let Body::KeyAccess(k) = &d.body else {
                continue;
            };
            let account_id = self.accounts[&d.address.account].account_id.clone();
            let family = primary_of.get(&k.key.value).unwrap_or(&k.key.value);
            let caps = out
                .entry(family.clone())
                .or_default()
                .entry(account_id)
                .or_default();
            for cap in &k.capabilities {
                if !caps.contains(cap) {
                    caps.push(*cap);
                }
            }
            caps.sort();
        }
        out
    }

    /// An alias is unique per account and region; replicas carry their primary's aliases.
    fn check_aliases(&self, nodes: &[Node], declared: &[Declared], diags: &mut Diagnostics) {
        let spans: BTreeMap<(&Address, &str), Span> = declared
            .iter()
            .filter_map(|d| match &d.body {
                Body::Key(k) => Some((d, k)),
                _ => None,
            })
            .flat_map(|(d, k)| {
                k.aliases
                    .iter()
                    .map(move |a| ((&d.address, a.value.as_str()), a.span))
            })
            .collect();
        let mut seen: BTreeMap<(&str, &str, &str), (&Address, Span)> = BTreeMap::new();
        for node in nodes {
            let (aliases, primary) = match &node.kind {
                NodeKind::Key(k) => (&k.aliases, &node.address),
                NodeKind::Replica(r) => (&r.aliases, &r.primary.value),
                _ => continue,
            };
            for alias in aliases {
                let span = spans
                    .get(&(primary, alias.as_str()))
                    .copied()
                    .unwrap_or(node.span);
                let slot = (
                    node.address.account.as_str(),
                    node.address.region.as_str(),
                    alias.as_str(),
                );
                if let Some((other, other_span)) = seen.get(&slot) {
                    diags.push(
                        Diagnostic::error(
                            span,
                            format!(
                                "alias `{alias}` is used by both {other} and {} in {}/{}",
                                node.address, slot.0, slot.1
                            ),
                        )
                        .with_note(*other_span, format!("{other} declares it here"))
                        .with_help("an alias names one key per account and region; rename one"),
                    );
                } else {
                    seen.insert(slot, (&node.address, span));
                }
            }
        }
    }
}

/// One AWS key or grant is adopted by one node: two nodes importing it would both manage it.
/// (Replicas share their primary's key id, so only keys and grants count.)
fn check_imports(nodes: &[Node], diags: &mut Diagnostics) {
    let mut seen: BTreeMap<(&str, &str, &str), (&Address, Span)> = BTreeMap::new();
    for node in nodes {
        let import = match &node.kind {
            NodeKind::Key(k) => k.import.as_ref(),
            NodeKind::Grant(g) => g.import.as_ref(),
            _ => None,
        };
        let Some(import) = import else { continue };
        let slot = (
            node.address.account.as_str(),
            node.address.region.as_str(),
            import.id.as_str(),
        );
        match seen.get(&slot) {
            Some((other, other_span)) => diags.push(
                Diagnostic::error(
                    import.span,
                    format!("{} and {other} both import `{}`", node.address, import.id),
                )
                .with_note(*other_span, format!("{other} imports it here"))
                .with_help("one node adopts one AWS resource; remove one of the `import:` entries"),
            ),
            None => {
                seen.insert(slot, (&node.address, import.span));
            }
        }
    }
}

struct PlannedReplica<'d> {
    address: Address,
    primary: Address,
    span: Span,
    explicit: Option<(&'d Declared, &'d ReplicaDecl)>,
}

fn lookup_key<'d>(
    by_address: &BTreeMap<Address, &'d Declared>,
    broken: &Unloaded,
    target: &Spanned<Address>,
    field: &str,
    diags: &mut Diagnostics,
) -> Option<&'d KeyDecl> {
    match by_address.get(&target.value).map(|d| &d.body) {
        Some(Body::Key(k)) => Some(k),
        Some(Body::Replica(r)) => {
            diags.push(replica_of_a_replica(target, &r.primary.value));
            None
        }
        Some(_) => {
            diags.push(Diagnostic::error(
                target.span,
                format!("{} is not a primary key", target.value),
            ));
            None
        }
        None if broken.contains(&target.value) => None,
        None => {
            let all: Vec<String> = by_address.keys().map(|a| a.to_string()).collect();
            diags.push(dangling(target, field, &all));
            None
        }
    }
}

/// `replica_of` naming a replica: replicas hang off their primary, never off each other.
fn replica_of_a_replica(target: &Spanned<Address>, primary: &Address) -> Diagnostic {
    Diagnostic::error(
        target.span,
        format!(
            "{} is not a primary key: it is itself a replica of {primary}",
            target.value
        ),
    )
    .with_help(format!("name the primary: `replica_of: {primary}`"))
}

fn dangling(target: &Spanned<Address>, field: &str, all: &[String]) -> Diagnostic {
    let text = target.value.to_string();
    let d = Diagnostic::error(
        target.span,
        format!("`{field}` names {text}, which is not a node of this tree"),
    );
    match did_you_mean(&text, all.iter().map(String::as_str)) {
        Some(near) => d.with_help(format!("did you mean `{near}`?")),
        None => d.with_help("check the address: account/region/node, as in `orch graph`"),
    }
}

fn widen(access: &mut Access, accounts: Option<&BTreeMap<String, Vec<super::model::Capability>>>) {
    if let Some(accounts) = accounts {
        access
            .external_accounts
            .extend(accounts.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

fn replicated(field: &str) -> bool {
    REPLICATED_FIELDS.contains(&field) || super::node::K9_TAGS.iter().any(|(f, _)| *f == field)
}

/// The replicated fields that a node's own file sets (not its defaults), all the way
/// down, so a synthesized replica takes the primary's own values over its own region's defaults.
fn own_fields(effective: Option<&MarkedMappingNode>, source: u32) -> MarkedMappingNode {
    let mut out = super::settings::empty_mapping();
    let Some(effective) = effective else {
        return out;
    };
    for (key, value) in effective.iter() {
        if replicated(key.as_str()) {
            if let Some(kept) = keep_source(value, source) {
                out.insert(key.clone(), kept);
            }
        }
    }
    out
}

fn keep_source(node: &YamlNode, source: u32) -> Option<YamlNode> {
    match node {
        YamlNode::Mapping(map) => {
            let mut kept = super::settings::empty_mapping();
            for (k, v) in map.iter() {
                if let Some(v) = keep_source(v, source) {
                    kept.insert(k.clone(), v);
                }
            }
            (!kept.is_empty()).then_some(YamlNode::Mapping(kept))
        }
        other => (super::yaml::span_of(other).source == source).then(|| other.clone()),
    }
}
