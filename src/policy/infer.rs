//! A live key policy mapped back onto orch's access model, for `orch import`: an [`Access`]
//! whose generated policy has exactly the live policy's normal form, or the live statements
//! that do not map and why. Exact or nothing: the access model found is built and compared with
//! the live policy before it is returned, since import keeps a policy it cannot map verbatim
//! and a wrong "exact" would silently change who may use a key.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::actions::{actions, cross_account_actions, SERVICE_DESCRIBE};
use super::build::build;
use super::facts::KeyFacts;
use super::semantic::{
    describe, describe_condition, normalize, Condition, Effect, Name, NormalDocument,
    NormalStatement, Permissions, Target, Tuple, What, Who, KMS_ACTIONS,
};
use crate::config::{
    check_principal_in, check_service, Access, Account, Capability, KeySpec, KeyUsage,
    ServiceAccess,
};

/// What a key's policy is built from besides its access model.
pub struct InferContext<'a> {
    pub account: &'a Account,
    /// The partition of the key's region, for the ARNs orch writes.
    pub partition: &'static str,
    /// Every region of the key family, sorted: `kms:ViaService` names them all.
    pub regions: Vec<String>,
    pub spec: KeySpec,
    pub usage: KeyUsage,
    pub multi_region: bool,
}

/// What a live policy maps to.
#[derive(Debug)]
pub enum Inference {
    /// An access model whose policy has exactly the live policy's normal form.
    Exact(Access),
    /// No access model renders the live policy: why.
    Inexact(Misfit),
    /// The live policy is not a policy document, or the context has no region.
    Invalid(String),
}

/// Why a live policy has no exact access model.
#[derive(Debug, Default)]
pub struct Misfit {
    /// The live statements that did not map, in document order.
    pub unmapped: Vec<Unmapped>,
    /// What the closest access model renders that the live policy lacks, in plain words.
    pub extra: Vec<String>,
}

/// A live statement that did not map, and why.
#[derive(Debug)]
pub struct Unmapped {
    /// Its position in the live policy's `Statement` list.
    pub index: usize,
    pub sid: Option<String>,
    pub reasons: Vec<String>,
}

/// Maps a live key policy onto orch's access model, exactly or not at all.
pub fn infer(live: &Value, ctx: &InferContext) -> Inference {
    let Some(region) = ctx.regions.first() else {
        return Inference::Invalid("the key family has no region".into());
    };
    let doc = match normalize(live, ctx.partition) {
        Ok(doc) => doc,
        Err(why) => return Inference::Invalid(why),
    };
    let mut reasons = Reasons::default();
    let mut sorted = Sorted::default();
    for statement in &doc.statements {
        for why in sort_statement(statement, ctx, region, &mut sorted) {
            reasons.add(statement.index, why);
        }
    }
    let access = resolve(&sorted, ctx, &mut reasons);
    let rendered = rendered(&access, ctx);
    let live_form = Permissions::from(&doc);
    if reasons.0.is_empty() && rendered == live_form {
        return Inference::Exact(access);
    }
    Inference::Inexact(misfit(&doc, &live_form, &rendered, reasons))
}

/// The normal form of the policy orch builds for `access`.
fn rendered(access: &Access, ctx: &InferContext) -> Permissions {
    let facts = KeyFacts {
        account: ctx.account,
        partition: ctx.partition,
        regions: ctx.regions.clone(),
        spec: ctx.spec,
        usage: ctx.usage,
        multi_region: ctx.multi_region,
        access,
        bypass_lockout_check: false,
        policy_override: None,
        replica: false,
    };
    let json: Value =
        serde_json::from_str(&build(&facts).to_json()).expect("orch's policy is valid JSON");
    Permissions::of(&json, ctx.partition).expect("orch's policy is a policy document")
}

/// Reasons, per live statement, deduplicated, in the order found.
#[derive(Default)]
struct Reasons(BTreeMap<usize, Vec<String>>);

impl Reasons {
    fn add(&mut self, index: usize, why: String) {
        let list = self.0.entry(index).or_default();
        if !list.contains(&why) {
            list.push(why);
        }
    }

    fn has(&self, index: usize) -> bool {
        self.0.contains_key(&index)
    }
}

/// Actions given to one principal under one condition, each with the statements that give it.
#[derive(Default)]
struct Held(BTreeMap<Name, BTreeSet<usize>>);

impl Held {
    fn actions(&self) -> BTreeSet<Name> {
        self.0.keys().cloned().collect()
    }

    /// The statements that give any of `actions`.
    fn statements_of(&self, actions: &BTreeSet<Name>) -> BTreeSet<usize> {
        actions
            .iter()
            .filter_map(|a| self.0.get(a))
            .flatten()
            .copied()
            .collect()
    }

    fn statements(&self) -> BTreeSet<usize> {
        self.0.values().flatten().copied().collect()
    }
}

/// An encryption context as a condition writes it: key (without case) -> value.
type Context = BTreeMap<Name, String>;

/// The conditions orch writes on a named principal's statements.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Plain,
    /// `StringEquals kms:EncryptionContext:<key> = <value>`: data statements.
    Context(Context),
    /// `Bool kms:GrantIsForAWSResource = true`: grants data users may create for AWS resources.
    GrantForAws,
}

/// The conditions orch writes, `Principal: "*"` pinned to a service included.
enum Guard {
    Slot(Slot),
    /// `kms:CallerAccount` and `kms:ViaService` pinned to the service in every region of the
    /// key; `grant` adds `kms:GrantIsForAWSResource`.
    Service { name: String, grant: bool },
}

/// Live actions sorted by who gets them under which condition.
#[derive(Default)]
struct Sorted {
    principals: BTreeMap<String, BTreeMap<Slot, Held>>,
    /// Service name -> with `kms:GrantIsForAWSResource` or not.
    services: BTreeMap<String, BTreeMap<bool, Held>>,
}

const DENY: &str = "Deny statements have no counterpart in orch's model, which only allows";

/// Sorts the actions of a statement that orch could have written; the reasons it could not, if
/// any (then none of its actions are sorted: a statement maps whole or not at all).
fn sort_statement(
    statement: &NormalStatement,
    ctx: &InferContext,
    region: &str,
    sorted: &mut Sorted,
) -> Vec<String> {
    let mut reasons: Vec<String> = Vec::new();
    let mut note = |why: String| {
        if !reasons.contains(&why) {
            reasons.push(why);
        }
    };
    let mut placed: Vec<(&Tuple, Guard)> = Vec::new();
    for t in &statement.tuples {
        if t.effect == Effect::Deny {
            note(DENY.into());
            continue;
        }
        let principal = match &t.who {
            Who::NotPrincipal(_) => {
                note(format!(
                    "NotPrincipal ({}) has no counterpart in orch's model, which names principals",
                    t.who
                ));
                continue;
            }
            Who::Principal((kind, v)) if kind != "AWS" => {
                note(format!(
                    "the principal {kind} {v} is not an IAM principal, the only kind orch names"
                ));
                continue;
            }
            Who::Principal((_, v)) => v,
        };
        if let What::NotAction(set) = &t.what {
            let names: Vec<&str> = set.iter().map(Name::as_str).collect();
            note(format!(
                "NotAction (every action but {}) has no counterpart in orch's model, which names actions",
                names.join(", ")
            ));
            continue;
        }
        match &t.target {
            Target::Resource(r) if r == "*" => {}
            Target::Resource(r) => {
                note(format!(
                    "Resource {r} is not written by orch, which writes Resource \"*\" (the key itself)"
                ));
                continue;
            }
            Target::NotResource(_) => {
                note("NotResource has no counterpart in orch's model".into());
                continue;
            }
        }
        let guard = match guard(&t.condition, ctx) {
            Ok(g) => g,
            Err(why) => {
                note(why);
                continue;
            }
        };
        let everyone = principal == "*";
        match (&guard, everyone) {
            (Guard::Service { .. }, true) => {}
            (_, true) if t.condition.is_empty() => {
                note("Principal \"*\" with no condition admits everyone: orch writes \"*\" only for a service, pinned by kms:CallerAccount and kms:ViaService".into());
                continue;
            }
            (_, true) => {
                note(format!(
                    "Principal \"*\" when {} is not a service statement orch writes (kms:CallerAccount and kms:ViaService pinned)",
                    describe_condition(&t.condition)
                ));
                continue;
            }
            (Guard::Service { .. }, false) => {
                note(format!(
                    "kms:ViaService on the named principal {principal} is not a condition orch writes (it pins services, for Principal \"*\")"
                ));
                continue;
            }
            (Guard::Slot(_), false) => {
                if let Err(why) = check_principal_in(principal, region) {
                    let deleted = ["AROA", "AIDA"].iter().any(|p| principal.starts_with(p));
                    note(format!(
                        "the principal {principal} is not an ARN orch accepts: {why}{}",
                        if deleted {
                            " (IAM shows a role's or user's unique id in place of its ARN once it is deleted)"
                        } else {
                            ""
                        }
                    ));
                    continue;
                }
            }
        }
        placed.push((t, guard));
    }
    if reasons.is_empty() {
        for (t, guard) in placed {
            let What::Action(action) = &t.what else {
                continue;
            };
            let held = match guard {
                Guard::Service { name, grant } => sorted
                    .services
                    .entry(name)
                    .or_default()
                    .entry(grant)
                    .or_default(),
                Guard::Slot(slot) => {
                    let Who::Principal((_, principal)) = &t.who else {
                        continue;
                    };
                    sorted
                        .principals
                        .entry(principal.clone())
                        .or_default()
                        .entry(slot)
                        .or_default()
                }
            };
            held.0
                .entry(action.clone())
                .or_default()
                .insert(statement.index);
        }
    }
    reasons
}

const CONTEXT_PREFIX: &str = "kms:encryptioncontext:";

/// Which of orch's conditions `condition` is, or why it is none of them.
fn guard(condition: &Condition, ctx: &InferContext) -> Result<Guard, String> {
    if condition.is_empty() {
        return Ok(Guard::Slot(Slot::Plain));
    }
    let unwritten = || unwritten(condition);
    if condition
        .keys()
        .any(|op| op != "StringEquals" && op != "Bool")
    {
        return Err(unwritten());
    }
    let grant = match condition.get("Bool") {
        None => false,
        Some(keys) => {
            let is_true = keys.len() == 1
                && keys.get(&Name::new("kms:GrantIsForAWSResource"))
                    == Some(&BTreeSet::from(["true".to_string()]));
            if !is_true {
                return Err(unwritten());
            }
            true
        }
    };
    let Some(equals) = condition.get("StringEquals") else {
        return Ok(Guard::Slot(Slot::GrantForAws));
    };
    let context = !equals.is_empty()
        && equals
            .keys()
            .all(|k| k.folded().len() > CONTEXT_PREFIX.len() && k.folded().starts_with(CONTEXT_PREFIX));
    if context && !grant {
        let mut out = Context::new();
        for (key, values) in equals {
            if values.len() != 1 {
                return Err(format!(
                    "the condition {key} allows {} values; orch writes one encryption context, one value per key",
                    values.len()
                ));
            }
            let value = values.iter().next().cloned().unwrap_or_default();
            let name = &key.as_str()[CONTEXT_PREFIX.len()..];
            out.insert(Name::new(name), value);
        }
        return Ok(Guard::Slot(Slot::Context(out)));
    }
    let caller = equals.get(&Name::new("kms:CallerAccount"));
    let via = equals.get(&Name::new("kms:ViaService"));
    let (Some(caller), Some(via), 2) = (caller, via, equals.len()) else {
        return Err(unwritten());
    };
    let own = &ctx.account.account_id;
    if caller.len() != 1 || !caller.contains(own) {
        return Err(format!(
            "kms:CallerAccount is {}, not this key's account {own}",
            Vec::from_iter(caller.iter().map(String::as_str)).join(", ")
        ));
    }
    let mut names = BTreeSet::new();
    let mut regions = BTreeSet::new();
    for value in via {
        let Some((name, region)) = value
            .strip_suffix(".amazonaws.com")
            .and_then(|rest| rest.split_once('.'))
        else {
            return Err(format!(
                "kms:ViaService {value} is not <service>.<region>.amazonaws.com, as orch writes it"
            ));
        };
        names.insert(name);
        regions.insert(region);
    }
    let family: BTreeSet<&str> = ctx.regions.iter().map(String::as_str).collect();
    let mut names = names.into_iter();
    let (Some(name), None) = (names.next(), names.next()) else {
        return Err("kms:ViaService names several services in one statement; orch writes one statement per service".into());
    };
    if regions != family {
        return Err(format!(
            "kms:ViaService for {name} names the regions {}, but orch names every region of the key family: {}",
            Vec::from_iter(regions).join(", "),
            Vec::from_iter(family).join(", ")
        ));
    }
    check_service(name).map_err(|why| format!("kms:ViaService: {why}"))?;
    Ok(Guard::Service {
        name: name.to_string(),
        grant,
    })
}

/// Why a condition is not one orch writes, naming the keys and operators it never writes.
fn unwritten(condition: &Condition) -> String {
    let ours = |key: &Name| {
        let k = key.folded();
        k.starts_with(CONTEXT_PREFIX)
            || ["kms:calleraccount", "kms:viaservice", "kms:grantisforawsresource"].contains(&k)
    };
    let mut parts = Vec::new();
    for (op, keys) in condition {
        for key in keys.keys() {
            if !ours(key) {
                parts.push(format!("condition {key} is not one orch writes"));
            } else if op != "StringEquals" && op != "Bool" {
                parts.push(format!(
                    "condition operator {op} (on {key}) is not one orch writes"
                ));
            }
        }
    }
    if parts.is_empty() {
        format!(
            "the condition {} is not one orch writes",
            describe_condition(condition)
        )
    } else {
        parts.join("; ")
    }
}

fn action_names(list: Vec<&str>) -> BTreeSet<Name> {
    list.into_iter().map(Name::new).collect()
}

fn join(names: &BTreeSet<Name>) -> String {
    Vec::from_iter(names.iter().map(Name::as_str)).join(", ")
}

/// The fewest capabilities among `allowed` whose actions (by `table`) are each held and add up
/// to as much of `held` as any can, and what is left over.
fn cover(
    held: &BTreeSet<Name>,
    allowed: &[Capability],
    table: &dyn Fn(Capability) -> BTreeSet<Name>,
) -> (Vec<Capability>, BTreeSet<Name>) {
    let candidates: Vec<(Capability, BTreeSet<Name>)> = allowed
        .iter()
        .map(|c| (*c, table(*c)))
        .filter(|(_, acts)| !acts.is_empty() && acts.is_subset(held))
        .collect();
    let union_of = |mask: u32| -> BTreeSet<Name> {
        candidates
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .flat_map(|(_, (_, acts))| acts.iter().cloned())
            .collect()
    };
    let all = (1u32 << candidates.len()) - 1;
    let union = union_of(all);
    let leftover = held.difference(&union).cloned().collect();
    // A capability whose actions others already give adds nothing to the policy: the fewest.
    let best = (0..=all)
        .filter(|m| union_of(*m) == union)
        .min_by_key(|m| (m.count_ones(), *m))
        .unwrap_or(all);
    let caps = candidates
        .iter()
        .enumerate()
        .filter(|(i, _)| best & (1 << i) != 0)
        .map(|(_, (c, _))| *c)
        .collect();
    (caps, leftover)
}

/// Why `left` (of `held`, given to `who`) adds up to no capability among `allowed`.
fn leftover_reason(
    who: &str,
    left: &BTreeSet<Name>,
    held: &BTreeSet<Name>,
    allowed: &[Capability],
    table: &dyn Fn(Capability) -> BTreeSet<Name>,
    under: &str,
) -> String {
    let mut parts = Vec::new();
    let mut explained = BTreeSet::new();
    for cap in allowed {
        let acts = table(*cap);
        if acts.is_disjoint(left) {
            continue;
        }
        explained.extend(acts.intersection(left).cloned());
        let missing: BTreeSet<Name> = acts.difference(held).cloned().collect();
        parts.push(format!("{cap} would also need {}", join(&missing)));
    }
    let others: BTreeSet<Name> = Capability::ALL
        .iter()
        .filter(|c| !allowed.contains(c))
        .flat_map(|c| table(*c))
        .filter(|a| left.contains(a) && !explained.contains(a))
        .collect();
    if !others.is_empty() {
        parts.push(format!(
            "{} belong to capabilities orch does not write {under}",
            join(&others)
        ));
        explained.extend(others);
    }
    let none: BTreeSet<Name> = left.difference(&explained).cloned().collect();
    if !none.is_empty() {
        parts.push(format!("no capability holds {}", join(&none)));
    }
    format!(
        "{who} is given actions no set of capabilities adds up to {under}: {} ({})",
        join(left),
        parts.join("; ")
    )
}

const NON_DATA: [Capability; 3] = [
    Capability::AdministerResource,
    Capability::ReadConfig,
    Capability::DeleteData,
];
const DATA: [Capability; 2] = [Capability::ReadData, Capability::WriteData];
/// What key-access consumers may give another account.
const EXTERNAL: [Capability; 3] = [
    Capability::ReadConfig,
    Capability::ReadData,
    Capability::WriteData,
];

/// The access model the sorted actions map to; the reasons what did not map.
fn resolve(sorted: &Sorted, ctx: &InferContext, reasons: &mut Reasons) -> Access {
    let mut access = Access::default();
    let own = &ctx.account.account_id;
    let own_root = format!("arn:{}:iam::{own}:root", ctx.partition);
    let table = |cap| action_names(actions(cap, ctx.spec, ctx.usage, ctx.multi_region));
    let cross = |cap| action_names(cross_account_actions(&[cap], ctx.spec, ctx.usage));
    let everything: BTreeSet<Name> = KMS_ACTIONS.iter().map(|a| Name::new(a)).collect();

    // The model has one encryption context: the first written; any other does not map.
    let mut contexts: Vec<(usize, &Context)> = Vec::new();
    for slots in sorted.principals.values() {
        for (slot, held) in slots {
            if let Slot::Context(c) = slot {
                contexts.extend(held.statements().into_iter().map(|i| (i, c)));
            }
        }
    }
    contexts.sort();
    let context = contexts.first().map(|(_, c)| (*c).clone());
    for (index, c) in &contexts {
        if Some(*c) != context.as_ref() {
            reasons.add(*index, format!(
                "a second encryption context ({}): orch writes one per key, and the first is {}",
                describe_context(c),
                context.as_ref().map(describe_context).unwrap_or_default()
            ));
        }
    }
    if let Some(c) = &context {
        access.encryption_context = c
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.clone()))
            .collect();
    }
    let split = context.is_some();
    let under = if split {
        "with the encryption-context condition"
    } else {
        "without a condition"
    };
    let none = Held::default();

    for (principal, slots) in &sorted.principals {
        let plain_held = slots.get(&Slot::Plain).unwrap_or(&none);
        let data_held = context
            .as_ref()
            .and_then(|c| slots.get(&Slot::Context(c.clone())))
            .unwrap_or(&none);
        let grants = slots.get(&Slot::GrantForAws).unwrap_or(&none);
        let mut plain = plain_held.actions();
        let data = data_held.actions();
        if *principal == own_root && plain == everything {
            access.root_access = true;
            plain.clear();
        }
        let account = principal
            .strip_prefix(&format!("arn:{}:iam::", ctx.partition))
            .and_then(|rest| rest.strip_suffix(":root"))
            .filter(|account| *account != own);
        if let (Some(account), true) = (account, grants.0.is_empty()) {
            // Another account, as key-access consumers widen a key: read-config, read-data,
            // write-data, with only what works across accounts.
            let config_allowed: &[Capability] = if split {
                &[Capability::ReadConfig]
            } else {
                &EXTERNAL
            };
            let (config, config_left) = cover(&plain, config_allowed, &cross);
            let (used, used_left) = cover(&data, &DATA, &cross);
            let mut caps: Vec<Capability> = config.into_iter().chain(used).collect();
            caps.sort();
            caps.dedup();
            if config_left.is_empty() && used_left.is_empty() && !caps.is_empty() {
                access.external_accounts.insert(account.to_string(), caps);
                continue;
            }
        }
        let plain_allowed: &[Capability] = if split { &NON_DATA } else { &Capability::ALL };
        let (mut caps, left) = cover(&plain, plain_allowed, &table);
        if !left.is_empty() {
            let why = leftover_reason(principal, &left, &plain, plain_allowed, &table, under);
            for index in plain_held.statements_of(&left) {
                reasons.add(index, why.clone());
            }
        }
        let (used, left) = cover(&data, &DATA, &table);
        if !left.is_empty() {
            let why = leftover_reason(
                principal,
                &left,
                &data,
                &DATA,
                &table,
                "under the encryption-context condition",
            );
            for index in data_held.statements_of(&left) {
                reasons.add(index, why.clone());
            }
        }
        caps.extend(used);
        if !grants.0.is_empty() && !caps.iter().any(|c| c.is_data()) {
            for index in grants.statements() {
                reasons.add(index, format!(
                    "{principal} may create grants for AWS resources (kms:GrantIsForAWSResource) but neither reads nor writes data: orch gives those grants only with read-data or write-data"
                ));
            }
        }
        for cap in caps {
            access.grants.entry(cap).or_default().push(principal.clone());
        }
    }

    let describe_key: BTreeSet<Name> = BTreeSet::from([Name::new(SERVICE_DESCRIBE)]);
    let mut stems: BTreeMap<String, &str> = BTreeMap::new();
    for (name, slots) in &sorted.services {
        let Some(via) = slots.get(&false) else {
            for index in slots.values().flat_map(Held::statements) {
                reasons.add(index, format!(
                    "the service {name} may create grants for AWS resources but has no statement of its own: orch writes both"
                ));
            }
            continue;
        };
        let acts: BTreeSet<Name> = via.actions().difference(&describe_key).cloned().collect();
        let (caps, left) = cover(&acts, &DATA, &table);
        if !left.is_empty() {
            let why = leftover_reason(
                &format!("the service {name}"),
                &left,
                &acts,
                &DATA,
                &table,
                "for a service",
            );
            for index in via.statements_of(&left) {
                reasons.add(index, why.clone());
            }
            continue;
        }
        if caps.is_empty() {
            for index in via.statements() {
                reasons.add(index, format!(
                    "the service {name} may only describe the key: orch gives a service read-data or write-data, and kms:DescribeKey with them"
                ));
            }
            continue;
        }
        let service = ServiceAccess {
            service: name.clone(),
            capabilities: caps,
        };
        let stem = service.sid_stem();
        if let Some(first) = stems.get(&stem) {
            for index in slots.values().flat_map(Held::statements) {
                reasons.add(index, format!(
                    "the services {first} and {name} would share the Sid ViaService{stem}, which AWS refuses"
                ));
            }
            continue;
        }
        stems.insert(stem, name);
        access.services.push(service);
    }
    access
}

fn describe_context(context: &Context) -> String {
    Vec::from_iter(context.iter().map(|(k, v)| format!("{k} = {v}"))).join(", ")
}

/// Why the access model found is not exact: the reasons found while mapping, then what the
/// comparison of its policy with the live one shows.
fn misfit(
    doc: &NormalDocument,
    live: &Permissions,
    rendered: &Permissions,
    mut reasons: Reasons,
) -> Misfit {
    let diff = live.diff(rendered);
    for statement in &doc.statements {
        if reasons.has(statement.index) {
            continue;
        }
        let missing: BTreeSet<Tuple> = statement
            .tuples
            .intersection(&diff.lost)
            .cloned()
            .collect();
        if !missing.is_empty() {
            reasons.add(
                statement.index,
                format!(
                    "the access model found does not render {}",
                    describe(&missing).join("; ")
                ),
            );
        }
    }
    // What the model adds, on the live statements of the same principal and condition.
    let mut added: BTreeMap<(&Who, &Condition), BTreeSet<Tuple>> = BTreeMap::new();
    for t in &diff.gained {
        added
            .entry((&t.who, &t.condition))
            .or_default()
            .insert(t.clone());
    }
    for ((who, condition), tuples) in &added {
        for statement in &doc.statements {
            let same = statement
                .tuples
                .iter()
                .any(|t| t.who == **who && t.condition == **condition);
            if same && !reasons.has(statement.index) {
                reasons.add(
                    statement.index,
                    format!(
                        "orch would render this statement with more: {}",
                        describe(tuples).join("; ")
                    ),
                );
            }
        }
    }
    let mut extra = describe(&diff.gained);
    if reasons.0.is_empty() && extra.is_empty() {
        extra.push("the live policy's Version reads `${...}` in it differently from the policy orch writes (Version 2012-10-17, where they are policy variables)".into());
    }
    let unmapped = doc
        .statements
        .iter()
        .filter_map(|s| {
            reasons.0.remove(&s.index).map(|reasons| Unmapped {
                index: s.index,
                sid: s.sid.clone(),
                reasons,
            })
        })
        .collect();
    Misfit { unmapped, extra }
}
