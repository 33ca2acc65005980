//! The check of a draft against the tree it makes: loaded and validated like any tree, each
//! adopted key's policy as orch would render it must have the live policy's effect, and its
//! settings must be the live key's. A key whose capabilities the tree's defaults widen keeps its
//! policy verbatim; a setting the tree's defaults change is written on the node. A second draft
//! made with those choices must then pass whole: an import never changes who can do what.

use std::collections::BTreeMap;

use serde_json::Value;

use super::classify::{Estate, Family};
use super::draft::{Draft, Overrides, PolicyChoice};
use crate::config::{partition_of, Address, Fleet, NodeKind};
use crate::policy::{self, describe, KeyFacts, Permissions};

/// What the tree made from a draft does differently from AWS, per key id.
#[derive(Debug, Default)]
pub struct Findings {
    /// Choices for the next draft.
    pub overrides: Overrides,
    /// Differences no choice removes: a bug or a tree orch cannot adopt into; per key id.
    pub problems: BTreeMap<String, Vec<String>>,
    /// Tags the tree adds to an adopted key (its defaults): adoption drift, said in the report.
    pub added_tags: BTreeMap<String, Vec<String>>,
}

pub fn check(fleet: &Fleet, draft: &Draft, estate: &Estate, earlier: &Overrides) -> Findings {
    let mut out = Findings {
        overrides: earlier.clone(),
        ..Findings::default()
    };
    let families: BTreeMap<&str, &Family> = estate
        .families
        .iter()
        .map(|f| (f.primary.key_id.as_str(), f))
        .collect();
    for adopted in &draft.adopted {
        let Some(family) = families.get(adopted.key_id.as_str()) else {
            continue;
        };
        let id = &adopted.key_id;
        let problem = |out: &mut Findings, what: String| {
            out.problems.entry(id.clone()).or_default().push(what)
        };
        let node = Address::parse(&adopted.address)
            .ok()
            .and_then(|a| fleet.node(&a));
        let Some(node) = node else {
            problem(
                &mut out,
                format!("{} is not a node of the tree made", adopted.address),
            );
            continue;
        };
        let NodeKind::Key(key) = &node.kind else {
            problem(
                &mut out,
                format!("{} is not a key in the tree made", adopted.address),
            );
            continue;
        };
        let live = &family.primary;
        let facts = KeyFacts::of(fleet, node).expect("a key has key facts");
        let rendered: Value =
            serde_json::from_str(&policy::build(&facts).to_json()).unwrap_or(Value::Null);
        let partition = partition_of(&family.region);
        let live_policy = live
            .policy
            .as_deref()
            .and_then(|t| serde_json::from_str::<Value>(t).ok());
        match (
            live_policy.as_ref().map(|p| Permissions::of(p, partition)),
            Permissions::of(&rendered, partition),
        ) {
            (Some(Ok(want)), Ok(got)) if want != got => {
                let diff = want.diff(&got);
                let mut why =
                    vec!["the tree's defaults change what its capabilities render:".to_string()];
                why.extend(
                    describe(&diff.gained)
                        .into_iter()
                        .map(|l| format!("would add {l}")),
                );
                why.extend(
                    describe(&diff.lost)
                        .into_iter()
                        .map(|l| format!("would drop {l}")),
                );
                match adopted.policy {
                    PolicyChoice::Capabilities => {
                        out.overrides.keep_policy.insert(id.clone(), why);
                    }
                    PolicyChoice::Kept { .. } => problem(&mut out, why.join(" ")),
                }
            }
            (Some(Err(why)), _) | (_, Err(why)) => {
                problem(&mut out, format!("its policy cannot be compared: {why}"))
            }
            _ => {}
        }
        let mut explicit = |field: &'static str| {
            out.overrides
                .explicit
                .entry(id.clone())
                .or_default()
                .insert(field)
        };
        let mut changed = Vec::new();
        if key.spec.name() != live.spec {
            changed.push(explicit("spec"));
        }
        if key.usage.name() != live.usage {
            changed.push(explicit("usage"));
        }
        if let Some(r) = live.rotation {
            let same = key.rotation.enabled == r.enabled
                && (!r.enabled
                    || key.rotation.period_days.unwrap_or(365) == r.period_days.unwrap_or(365));
            if !same {
                changed.push(explicit("rotation"));
            }
        }
        if key.is_enabled != (live.state != "Disabled") {
            changed.push(explicit("is_enabled"));
        }
        if changed.iter().any(|fresh| !fresh) {
            problem(
                &mut out,
                "a setting differs from AWS's even written on the node".into(),
            );
        }
        if key.description != live.description {
            problem(&mut out, "its description differs from AWS's".into());
        }
        let mut aliases = key.aliases.clone();
        aliases.sort();
        if aliases != family.aliases {
            problem(&mut out, "its aliases differ from AWS's".into());
        }
        let mut added = Vec::new();
        for (k, v) in &node.tags {
            match live.tags.get(k) {
                Some(live_v) if live_v == v => {}
                Some(live_v) => problem(
                    &mut out,
                    format!("tag {k} would change from `{live_v}` to `{v}`"),
                ),
                None => added.push(format!("{k}={v}")),
            }
        }
        for k in live.tags.keys() {
            let ours = !k.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:"));
            if ours && !node.tags.contains_key(k) {
                problem(&mut out, format!("tag {k} would be removed"));
            }
        }
        if !added.is_empty() {
            out.added_tags.insert(id.clone(), added);
        }
    }
    out
}
