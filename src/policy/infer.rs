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
    Service {
        name: String,
        grant: bool,
    },
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
        && equals.keys().all(|k| {
            k.folded().len() > CONTEXT_PREFIX.len() && k.folded().starts_with(CONTEXT_PREFIX)
        });
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
            || [
                "kms:calleraccount",
                "kms:viaservice",
                "kms:grantisforawsresource",
            ]
            .contains(&k)
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
    let union_of = |mask: u32| -> BTreeSet<&Name> {
        candidates
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .flat_map(|(_, (_, acts))| acts.iter())
            .collect()
    };
    let all = (1u32 << candidates.len()) - 1;
    let union = union_of(all);
    let leftover = held
        .iter()
        .filter(|a| !union.contains(a))
        .cloned()
        .collect();
    // A capability whose actions others already give adds nothing to the policy: the fewest,
    // and of as many, the narrowest (a public key read as read-data rather than read-config).
    let width = |mask: u32| -> usize {
        candidates
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, (_, acts))| acts.len())
            .sum()
    };
    let best = (0..=all)
        .filter(|m| union_of(*m) == union)
        .min_by_key(|m| (m.count_ones(), width(*m), *m))
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
    // The capabilities nearest to what is given: those that need the fewest actions more.
    let near: Vec<(Capability, BTreeSet<Name>)> = allowed
        .iter()
        .map(|c| (*c, table(*c)))
        .filter(|(_, acts)| !acts.is_disjoint(left))
        .map(|(c, acts)| {
            explained.extend(acts.intersection(left).cloned());
            (c, acts.difference(held).cloned().collect())
        })
        .collect();
    let fewest = near.iter().map(|(_, missing)| missing.len()).min();
    for (cap, missing) in &near {
        if Some(missing.len()) == fewest {
            parts.push(format!("{cap} would also need {}", join(missing)));
        }
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
            reasons.add(
                *index,
                format!(
                "a second encryption context ({}): orch writes one per key, and the first is {}",
                describe_context(c),
                context.as_ref().map(describe_context).unwrap_or_default()
            ),
            );
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
            access
                .grants
                .entry(cap)
                .or_default()
                .push(principal.clone());
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
        let missing: BTreeSet<Tuple> = statement.tuples.intersection(&diff.lost).cloned().collect();
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::policy::fixtures::{account, with_root, ADMIN, APP};

    const OTHER: &str = "222222222222";
    const ROOT: &str = "arn:aws:iam::111111111111:root";
    const USER: &str = "arn:aws:iam::111111111111:user/alice";

    fn context(account: &Account, spec: KeySpec, usage: KeyUsage) -> InferContext<'_> {
        InferContext {
            account,
            partition: "aws",
            regions: vec!["eu-west-1".into(), "us-east-1".into()],
            spec,
            usage,
            multi_region: true,
        }
    }

    fn symmetric(account: &Account) -> InferContext<'_> {
        context(account, KeySpec::SymmetricDefault, KeyUsage::EncryptDecrypt)
    }

    /// The policy orch writes for `access`, as AWS returns it.
    fn policy_of(access: &Access, ctx: &InferContext) -> Value {
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
        serde_json::from_str(&build(&facts).to_json()).unwrap()
    }

    fn exact(live: &Value, ctx: &InferContext) -> Access {
        match infer(live, ctx) {
            Inference::Exact(access) => access,
            other => panic!("not exact: {other:#?}\n{live:#}"),
        }
    }

    fn inexact(live: &Value, ctx: &InferContext) -> Misfit {
        match infer(live, ctx) {
            Inference::Inexact(misfit) => misfit,
            other => panic!("expected a misfit: {other:#?}"),
        }
    }

    /// The reasons given for the statement at `index`, joined.
    fn reasons_of(misfit: &Misfit, index: usize) -> String {
        misfit
            .unmapped
            .iter()
            .find(|u| u.index == index)
            .map(|u| u.reasons.join(" | "))
            .unwrap_or_else(|| panic!("Statement[{index}] mapped: {misfit:#?}"))
    }

    fn indexes(misfit: &Misfit) -> Vec<usize> {
        misfit.unmapped.iter().map(|u| u.index).collect()
    }

    fn grant(access: &mut Access, cap: Capability, principals: &[&str]) {
        let list = access.grants.entry(cap).or_default();
        list.extend(principals.iter().map(|p| p.to_string()));
        list.sort();
        list.dedup();
    }

    fn service(name: &str, caps: &[Capability]) -> ServiceAccess {
        ServiceAccess {
            service: name.into(),
            capabilities: caps.to_vec(),
        }
    }

    fn with_context(mut access: Access) -> Access {
        access
            .encryption_context
            .insert("Department".into(), "finance".into());
        access
    }

    /// Access models of every shape orch writes.
    fn models() -> Vec<(String, Access)> {
        use Capability::*;
        let mut out = Vec::new();
        for cap in Capability::ALL {
            let mut a = with_root();
            grant(&mut a, cap, &[APP]);
            out.push((format!("{cap} alone"), a.clone()));
            a.root_access = false;
            grant(&mut a, AdministerResource, &[ADMIN]);
            out.push((format!("{cap} without root"), a.clone()));
            out.push((format!("{cap} with a context"), with_context(a)));
        }
        let mut all = with_root();
        for cap in Capability::ALL {
            grant(&mut all, cap, &[APP, USER]);
        }
        out.push(("every capability, two principals".into(), all.clone()));
        out.push(("every capability with a context".into(), with_context(all)));
        let mut sugar = with_root();
        grant(&mut sugar, AdministerResource, &[ADMIN]);
        grant(&mut sugar, ReadConfig, &[ADMIN, APP]);
        grant(&mut sugar, ReadData, &[APP, USER]);
        grant(&mut sugar, WriteData, &[APP]);
        out.push(("administrators and users".into(), sugar.clone()));
        let mut services = sugar.clone();
        services.services = vec![
            service("ec2", &[ReadData]),
            service("s3", &[ReadData, WriteData]),
            service("secretsmanager", &[WriteData]),
        ];
        out.push(("services".into(), services.clone()));
        out.push(("services with a context".into(), with_context(services)));
        let mut external = sugar.clone();
        external
            .external_accounts
            .insert(OTHER.into(), vec![ReadConfig, ReadData]);
        external
            .external_accounts
            .insert("333333333333".into(), vec![WriteData]);
        out.push(("external accounts".into(), external.clone()));
        out.push((
            "external accounts with a context".into(),
            with_context(external.clone()),
        ));
        external.root_access = false;
        external
            .services
            .push(service("s3", &[ReadData, WriteData]));
        out.push(("everything, with a context".into(), with_context(external)));
        let mut root_user = Access::default();
        grant(&mut root_user, AdministerResource, &[ROOT]);
        grant(&mut root_user, ReadData, &[ROOT]);
        out.push(("the root as a principal".into(), root_user));
        out
    }

    /// `build -> JSON -> infer` gives a model with the same policy, whose capabilities are the
    /// original's less those others already give.
    #[test]
    fn orchs_own_policies_map_back_exactly() {
        let account = account();
        let mut trips = 0;
        for spec in KeySpec::ALL {
            for usage in spec.usages() {
                // A multi-region key is in one region until its first replica.
                for (multi_region, regions) in [
                    (false, vec!["us-east-1"]),
                    (true, vec!["us-east-1"]),
                    (true, vec!["eu-west-1", "us-east-1"]),
                ] {
                    let ctx = InferContext {
                        regions: regions.iter().map(|r| r.to_string()).collect(),
                        multi_region,
                        ..context(&account, spec, *usage)
                    };
                    for (name, original) in models() {
                        let at = format!(
                            "{name}, {spec:?} {usage:?} {regions:?} multi-region {multi_region}"
                        );
                        let live = policy_of(&original, &ctx);
                        let found = match infer(&live, &ctx) {
                            Inference::Exact(found) => found,
                            other => panic!("{at}: {other:#?}\n{live:#}"),
                        };
                        assert!(rendered(&found, &ctx) == rendered(&original, &ctx), "{at}");
                        assert_eq!(found.root_access, original.root_access, "{at}");
                        if live.to_string().contains("kms:EncryptionContext:") {
                            assert_eq!(
                                found.encryption_context, original.encryption_context,
                                "{at}"
                            );
                        }
                        assert_eq!(found.services, original.services, "{at}");
                        // Every capability found is within what the original gives
                        // its principal (on a key agreement key, read-data's public key is
                        // also read-config's: either may stand for it).
                        let acts = |cap| actions(cap, spec, *usage, multi_region);
                        for (cap, principals) in &found.grants {
                            for p in principals {
                                let given: BTreeSet<&str> = original
                                    .grants
                                    .iter()
                                    .filter(|(_, o)| o.contains(p))
                                    .flat_map(|(c, _)| acts(*c))
                                    .collect();
                                assert!(
                                    acts(*cap).iter().all(|a| given.contains(a)),
                                    "{at}: {p} was not given {cap}: {found:#?}"
                                );
                            }
                        }
                        for (account, caps) in &found.external_accounts {
                            let given = &original.external_accounts[account];
                            assert!(caps.iter().all(|c| given.contains(c)), "{at}: {found:#?}");
                        }
                        trips += 1;
                    }
                }
            }
        }
        assert!(trips > 1000, "{trips}");
    }

    #[test]
    fn redundant_capabilities_are_dropped_not_invented() {
        let account = account();
        let ctx = symmetric(&account);
        let mut access = with_root();
        grant(&mut access, Capability::AdministerResource, &[ADMIN]);
        grant(&mut access, Capability::ReadConfig, &[ADMIN]);
        grant(&mut access, Capability::DeleteData, &[ADMIN]);
        let found = exact(&policy_of(&access, &ctx), &ctx);
        assert_eq!(
            found.grants,
            BTreeMap::from([(Capability::AdministerResource, vec![ADMIN.to_string()])]),
            "read-config and delete-data are within administer-resource on a symmetric key"
        );
    }

    /// CreateKey's default policy when none is given.
    #[test]
    fn the_default_policy_of_create_key_is_root_access() {
        let account = account();
        let ctx = symmetric(&account);
        let live = json!({
            "Version": "2012-10-17",
            "Id": "key-default-1",
            "Statement": [{
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": ROOT},
                "Action": "kms:*",
                "Resource": "*"
            }]
        });
        let found = exact(&live, &ctx);
        assert!(found.root_access);
        assert!(found.grants.is_empty() && found.services.is_empty());
        assert!(found.external_accounts.is_empty() && found.encryption_context.is_empty());
        let bare = json!({"Statement": {"Effect": "Allow", "Principal": {"AWS": "111111111111"},
                                        "Action": "kms:*", "Resource": "*"}});
        assert!(exact(&bare, &ctx).root_access);
    }

    /// The default key policy of the AWS console, with key administrators and key users.
    #[test]
    fn the_consoles_default_policy_is_not_exact_and_says_why() {
        let account = account();
        let ctx = InferContext {
            multi_region: false,
            ..symmetric(&account)
        };
        let live = json!({
            "Id": "key-consolepolicy-3",
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
                 "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
                {"Sid": "Allow access for Key Administrators", "Effect": "Allow",
                 "Principal": {"AWS": ADMIN},
                 "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*",
                            "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*",
                            "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
                            "kms:CancelKeyDeletion", "kms:RotateKeyOnDemand"],
                 "Resource": "*"},
                {"Sid": "Allow use of the key", "Effect": "Allow",
                 "Principal": {"AWS": APP},
                 "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*",
                            "kms:GenerateDataKey*", "kms:DescribeKey"],
                 "Resource": "*"},
                {"Sid": "Allow attachment of persistent resources", "Effect": "Allow",
                 "Principal": {"AWS": APP},
                 "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
                 "Resource": "*",
                 "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}}
            ]
        });
        let misfit = inexact(&live, &ctx);
        assert_eq!(indexes(&misfit), vec![1, 2], "{misfit:#?}");
        assert_eq!(
            misfit.unmapped[0].sid.as_deref(),
            Some("Allow access for Key Administrators")
        );
        let admin = reasons_of(&misfit, 1);
        for action in [
            "kms:CreateKey",
            "kms:CreateCustomKeyStore",
            "kms:ListAliases",
        ] {
            assert!(admin.contains(action), "{admin}");
        }
        assert!(admin.contains(ADMIN), "{admin}");
        let user = reasons_of(&misfit, 2);
        assert!(user.contains("kms:DescribeKey"), "{user}");
        assert!(user.contains("read-config would also need"), "{user}");
        assert!(user.contains("kms:GetKeyPolicy"), "{user}");
    }

    fn root_and(statement: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
            statement,
        ]})
    }

    /// The reasons for the one statement beside the root's.
    fn second_reasons(statement: Value) -> String {
        let account = account();
        let ctx = symmetric(&account);
        let misfit = inexact(&root_and(statement), &ctx);
        assert_eq!(indexes(&misfit), vec![1], "{misfit:#?}");
        reasons_of(&misfit, 1)
    }

    #[test]
    fn what_orch_never_writes_falls_back_with_its_reason() {
        let deny = second_reasons(
            json!({"Sid": "NoDeletion", "Effect": "Deny", "Principal": "*",
            "Action": "kms:ScheduleKeyDeletion", "Resource": "*"}),
        );
        assert!(
            deny.contains("Deny statements have no counterpart"),
            "{deny}"
        );
        let not_principal = second_reasons(json!({"Effect": "Allow", "NotPrincipal": {"AWS": APP},
            "Action": "kms:Decrypt", "Resource": "*"}));
        assert!(not_principal.contains("NotPrincipal"), "{not_principal}");
        let not_action = second_reasons(json!({"Effect": "Allow", "Principal": {"AWS": APP},
            "NotAction": "kms:Decrypt", "Resource": "*"}));
        assert!(not_action.contains("NotAction"), "{not_action}");
        let ip = second_reasons(json!({"Effect": "Allow", "Principal": {"AWS": APP},
            "Action": ["kms:Decrypt", "kms:ReEncryptFrom"], "Resource": "*",
            "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}));
        assert!(
            ip.contains("condition aws:SourceIp is not one orch writes"),
            "{ip}"
        );
        let deleted = second_reasons(json!({"Effect": "Allow",
            "Principal": {"AWS": "AROAEXAMPLEID1234567"},
            "Action": ["kms:Decrypt", "kms:ReEncryptFrom"], "Resource": "*"}));
        assert!(
            deleted.contains("AROAEXAMPLEID1234567 is not an ARN orch accepts"),
            "{deleted}"
        );
        assert!(deleted.contains("deleted"), "{deleted}");
        let everyone = second_reasons(json!({"Effect": "Allow", "Principal": "*",
            "Action": "kms:Decrypt", "Resource": "*"}));
        assert!(everyone.contains("admits everyone"), "{everyone}");
        let service_principal = second_reasons(json!({"Effect": "Allow",
            "Principal": {"Service": "logs.amazonaws.com"}, "Action": "kms:Decrypt", "Resource": "*"}));
        assert!(
            service_principal.contains("not an IAM principal"),
            "{service_principal}"
        );
        let resource = second_reasons(json!({"Effect": "Allow", "Principal": {"AWS": APP},
            "Action": ["kms:Decrypt", "kms:ReEncryptFrom"],
            "Resource": "arn:aws:kms:us-east-1:111111111111:key/1234"}));
        assert!(resource.contains("Resource arn:aws:kms"), "{resource}");
        let partition = second_reasons(json!({"Effect": "Allow",
            "Principal": {"AWS": "arn:aws-cn:iam::111111111111:role/app"},
            "Action": ["kms:Decrypt", "kms:ReEncryptFrom"], "Resource": "*"}));
        assert!(partition.contains("partition"), "{partition}");
        let wide = second_reasons(json!({"Effect": "Allow", "Principal": {"AWS": APP},
            "Action": "kms:Create*", "Resource": "*"}));
        assert!(
            wide.contains(APP) && wide.contains("kms:CreateKey"),
            "{wide}"
        );
        assert!(wide.contains("no capability holds"), "{wide}");
    }

    #[test]
    fn a_service_must_be_pinned_as_orch_pins_it() {
        let pinned = |via: Value, caller: &str| {
            json!({"Effect": "Allow", "Principal": {"AWS": "*"},
                   "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:ReEncryptFrom"], "Resource": "*",
                   "Condition": {"StringEquals": {"kms:CallerAccount": caller, "kms:ViaService": via}}})
        };
        let one_region =
            second_reasons(pinned(json!("s3.us-east-1.amazonaws.com"), "111111111111"));
        assert!(
            one_region.contains("names the regions us-east-1"),
            "{one_region}"
        );
        let caller = second_reasons(pinned(
            json!(["s3.us-east-1.amazonaws.com", "s3.eu-west-1.amazonaws.com"]),
            OTHER,
        ));
        assert!(caller.contains("not this key's account"), "{caller}");
        let two = second_reasons(pinned(
            json!(["s3.us-east-1.amazonaws.com", "ec2.eu-west-1.amazonaws.com"]),
            "111111111111",
        ));
        assert!(two.contains("several services"), "{two}");
        // Pinned as orch pins it, but without its grant statement: what orch would add.
        let account = account();
        let ctx = symmetric(&account);
        let live = root_and(pinned(
            json!(["s3.us-east-1.amazonaws.com", "s3.eu-west-1.amazonaws.com"]),
            "111111111111",
        ));
        let misfit = inexact(&live, &ctx);
        assert!(misfit.unmapped.is_empty(), "{misfit:#?}");
        assert!(
            misfit
                .extra
                .iter()
                .any(|e| e.contains("kms:CreateGrant") && e.contains("GrantIsForAWSResource")),
            "{misfit:#?}"
        );
    }

    #[test]
    fn what_the_model_would_add_is_named() {
        let account = account();
        let ctx = symmetric(&account);
        let mut access = with_root();
        grant(&mut access, Capability::ReadData, &[APP]);
        grant(&mut access, Capability::ReadConfig, &[APP]);
        let mut live = policy_of(&access, &ctx);
        // The grants statement for AWS resources removed.
        let statements = live["Statement"].as_array_mut().unwrap();
        statements.retain(|s| s["Sid"] != "GrantsForAwsResources");
        // One action less for the read-config statement.
        let config = statements
            .iter_mut()
            .find(|s| s["Sid"] == "ReadConfig")
            .unwrap();
        config["Action"]
            .as_array_mut()
            .unwrap()
            .retain(|a| a != "kms:ListGrants");
        let misfit = inexact(&live, &ctx);
        assert!(
            misfit.extra.iter().any(|e| e.contains("kms:CreateGrant")),
            "{misfit:#?}"
        );
        let why = reasons_of(&misfit, 1);
        assert!(
            why.contains("read-config would also need kms:ListGrants"),
            "{why}"
        );
        assert!(
            !why.contains("administer-resource"),
            "the nearest capability only: {why}"
        );
    }

    #[test]
    fn a_statement_orch_would_widen_says_with_what() {
        let account = account();
        let ctx = symmetric(&account);
        let mut access = with_root();
        access.services.push(service("s3", &[Capability::ReadData]));
        let mut live = policy_of(&access, &ctx);
        let via = live["Statement"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|s| s["Sid"] == "ViaServiceS3")
            .unwrap();
        via["Action"]
            .as_array_mut()
            .unwrap()
            .retain(|a| a != "kms:DescribeKey");
        let misfit = inexact(&live, &ctx);
        let why = reasons_of(&misfit, 1);
        assert!(
            why.contains("orch would render this statement with more")
                && why.contains("kms:DescribeKey"),
            "{why}"
        );
        assert_eq!(misfit.extra.len(), 1, "{misfit:#?}");
    }

    #[test]
    fn one_encryption_context_per_key() {
        let account = account();
        let ctx = symmetric(&account);
        let data = |value: &str| {
            json!({"Effect": "Allow", "Principal": {"AWS": APP},
                   "Action": ["kms:Decrypt", "kms:ReEncryptFrom"], "Resource": "*",
                   "Condition": {"StringEquals": {"kms:EncryptionContext:Department": value}}})
        };
        let grants = json!({"Effect": "Allow", "Principal": {"AWS": APP},
            "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], "Resource": "*",
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": true}}});
        let root = json!({"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"});
        let one = json!({"Statement": [root.clone(), data("finance"), grants.clone()]});
        let found = exact(&one, &ctx);
        assert_eq!(
            found.encryption_context,
            BTreeMap::from([("Department".to_string(), "finance".to_string())])
        );
        let two = json!({"Statement": [root, data("finance"), grants, data("legal")]});
        let misfit = inexact(&two, &ctx);
        assert_eq!(indexes(&misfit), vec![3], "{misfit:#?}");
        assert!(reasons_of(&misfit, 3).contains("a second encryption context"));
    }

    #[test]
    fn other_accounts_map_to_external_accounts() {
        let account = account();
        let ctx = symmetric(&account);
        let live = root_and(json!({"Effect": "Allow", "Principal": {"AWS": OTHER},
            "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:GetKeyRotationStatus",
                       "kms:ListGrants", "kms:ReEncryptFrom"],
            "Resource": "*"}));
        let found = exact(&live, &ctx);
        assert_eq!(
            found.external_accounts,
            BTreeMap::from([(
                OTHER.to_string(),
                vec![Capability::ReadConfig, Capability::ReadData]
            )])
        );
        assert!(found.grants.is_empty());
    }

    /// Whatever the live policy, an exact model renders exactly it.
    #[test]
    fn a_policy_one_action_short_is_never_taken_for_orchs() {
        let account = account();
        let ctx = symmetric(&account);
        let (_, access) = models()
            .into_iter()
            .find(|(name, _)| name == "everything, with a context")
            .unwrap();
        let live = policy_of(&access, &ctx);
        let count = live["Statement"].as_array().unwrap().len();
        for i in 0..count {
            let actions = live["Statement"][i]["Action"].as_array().unwrap().len();
            for j in 0..actions {
                let mut short = live.clone();
                short["Statement"][i]["Action"]
                    .as_array_mut()
                    .unwrap()
                    .remove(j);
                if short["Statement"][i]["Action"]
                    .as_array()
                    .unwrap()
                    .is_empty()
                {
                    short["Statement"].as_array_mut().unwrap().remove(i);
                }
                let form = Permissions::of(&short, "aws").unwrap();
                match infer(&short, &ctx) {
                    Inference::Exact(found) => assert!(rendered(&found, &ctx) == form),
                    Inference::Inexact(misfit) => {
                        assert!(!misfit.unmapped.is_empty() || !misfit.extra.is_empty())
                    }
                    Inference::Invalid(why) => panic!("{why}"),
                }
            }
        }
    }

    #[test]
    fn documents_that_are_not_policies_are_invalid() {
        let account = account();
        let ctx = symmetric(&account);
        for live in [
            json!(null),
            json!("{\"Statement\": []}"),
            json!({"Version": "2012-10-17"}),
            json!({"Statement": [{"Principal": "*", "Action": "kms:*", "Resource": "*"}]}),
        ] {
            assert!(
                matches!(infer(&live, &ctx), Inference::Invalid(_)),
                "{live}"
            );
        }
        let nowhere = InferContext {
            regions: Vec::new(),
            ..symmetric(&account)
        };
        assert!(matches!(
            infer(&json!({"Statement": []}), &nowhere),
            Inference::Invalid(_)
        ));
    }
}
