//! The human explanation of a key's policy: who can do what, in plain words, one line per
//! principal.

use std::collections::HashMap;

use super::facts::KeyFacts;
use super::json::KeyPolicy;
use crate::config::{Address, Capability, Fleet, KeySpec, KeyUsage, Node, NodeKind};

/// Who can do what, in plain words, one line per principal.
pub fn explain(facts: &KeyFacts, policy: &KeyPolicy) -> String {
    if let KeyPolicy::Override(_) = policy {
        return "this key's policy is a `policy:` override written by hand; orch does not interpret it\n".into();
    }
    let mut lines: Vec<(String, Vec<String>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut add = |who: String, what: Vec<String>| match index.get(&who) {
        Some(&i) => lines[i].1.extend(what),
        None => {
            index.insert(who.clone(), lines.len());
            lines.push((who, what));
        }
    };
    if facts.access.root_access {
        add(
            format!("account root of {}", facts.account.account_id),
            vec!["everything, through IAM policies of that account (lockout safety)".into()],
        );
    }
    for cap in Capability::ALL {
        for principal in facts.access.grants.get(&cap).into_iter().flatten() {
            add(short_principal(principal), words(cap, facts));
        }
    }
    let symmetric = facts.symmetric_encryption();
    for principal in [Capability::ReadData, Capability::WriteData]
        .iter()
        .filter_map(|c| facts.access.grants.get(c))
        .flatten()
        .filter(|_| symmetric)
    {
        add(
            short_principal(principal),
            vec!["create grants for AWS services that work on its behalf".into()],
        );
    }
    for service in &facts.access.services {
        let mut what: Vec<String> = service
            .capabilities
            .iter()
            .flat_map(|c| words(*c, facts))
            .collect();
        what.push("describe the key".into());
        if symmetric {
            what.push("create and list grants for the resources it encrypts".into());
        }
        add(
            format!(
                "AWS {} in {} on behalf of {}",
                service.service,
                facts.regions.join(", "),
                facts.account.account_id
            ),
            what,
        );
    }
    for (account, caps) in &facts.access.external_accounts {
        let what = caps.iter().flat_map(|c| words(*c, facts)).collect();
        add(
            format!("account {account} (roles its key-access policy names)"),
            what,
        );
    }
    let mut out = String::new();
    if !facts.access.encryption_context.is_empty() {
        let context: Vec<String> = facts
            .access
            .encryption_context
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        lines.push((
            "every data operation by a principal or another account".into(),
            vec![format!(
                "must carry the encryption context {}",
                context.join(", ")
            )],
        ));
    }
    for (who, mut what) in lines {
        what.dedup();
        out.push_str(&format!("{who}: {}\n", what.join(", ")));
    }
    out
}

/// The nodes of the tree that reach the key besides its policy's own statements: each grant on
/// it, which the policy does not show, and each key-access node of its key family, whose IAM
/// policy in the consumer's account does the granting. Empty when there is none.
pub fn reaching(fleet: &Fleet, node: &Node, facts: &KeyFacts) -> String {
    let primary = match &node.kind {
        NodeKind::Replica(r) => &r.primary.value,
        _ => &node.address,
    };
    let in_family = |a: &Address| {
        a == primary
            || matches!(fleet.node(a).map(|n| &n.kind),
                Some(NodeKind::Replica(r)) if &r.primary.value == primary)
    };
    let mut lines = Vec::new();
    for other in &fleet.nodes {
        match &other.kind {
            NodeKind::Grant(g) if g.key.value == node.address => {
                let when = match (&g.encryption_context_equals, &g.encryption_context_subset) {
                    (equals, _) if !equals.is_empty() => {
                        format!(", when the encryption context is exactly {}", pairs(equals))
                    }
                    (_, subset) if !subset.is_empty() => {
                        format!(", when the encryption context includes {}", pairs(subset))
                    }
                    _ => String::new(),
                };
                lines.push(format!(
                    "grant {}: {} may {}{when}",
                    other.address,
                    short_principal(&g.grantee),
                    g.operations.join(", ")
                ));
            }
            NodeKind::KeyAccess(k) if in_family(&k.key.value) => {
                let roles: Vec<String> = k.roles.iter().map(|r| short_principal(r)).collect();
                let what: Vec<String> = k
                    .capabilities
                    .iter()
                    .flat_map(|c| words(*c, facts))
                    .collect();
                lines.push(format!(
                    "key-access {}: {} may {}, through its IAM policy in {} (this key's policy admits the account)",
                    other.address,
                    roles.join(", "),
                    what.join(", "),
                    fleet.account_of(other).account_id
                ));
            }
            _ => {}
        }
    }
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "\nalso reaching this key, from other nodes:\n{}\n",
        lines.join("\n")
    )
}

fn pairs(context: &std::collections::BTreeMap<String, String>) -> String {
    context
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `arn:aws:iam::111111111111:role/app` -> `role/app in 111111111111`.
fn short_principal(arn: &str) -> String {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        [_, _, _, _, account, "root"] => format!("account root of {account}"),
        [_, _, _, _, account, resource] => format!("{resource} in {account}"),
        _ => arn.to_string(),
    }
}

fn words(cap: Capability, facts: &KeyFacts) -> Vec<String> {
    let symmetric = facts.spec == KeySpec::SymmetricDefault;
    let w: Vec<&str> = match (cap, facts.usage) {
        (Capability::AdministerResource, _) => {
            let mut what = vec!["policy", "aliases", "tags", "enable and disable"];
            if symmetric {
                what.push("rotation");
            }
            if facts.multi_region {
                what.push("replicas and the primary region");
            }
            what.push("schedule and cancel deletion");
            return vec![format!("administer the key ({})", what.join(", "))];
        }
        (Capability::ReadConfig, _) => vec!["read its configuration"],
        (Capability::ReadData, KeyUsage::EncryptDecrypt) if symmetric => {
            vec!["decrypt", "re-encrypt from this key"]
        }
        (Capability::ReadData, KeyUsage::EncryptDecrypt) => vec!["decrypt"],
        (Capability::ReadData, KeyUsage::SignVerify) => {
            vec!["verify signatures", "get the public key"]
        }
        (Capability::ReadData, KeyUsage::GenerateVerifyMac) => vec!["verify MACs"],
        (Capability::ReadData, KeyUsage::KeyAgreement) => vec!["get the public key"],
        (Capability::WriteData, KeyUsage::EncryptDecrypt) if symmetric => {
            vec!["encrypt", "generate data keys", "re-encrypt to this key"]
        }
        (Capability::WriteData, KeyUsage::EncryptDecrypt) => vec!["encrypt"],
        (Capability::WriteData, KeyUsage::SignVerify) => vec!["sign"],
        (Capability::WriteData, KeyUsage::GenerateVerifyMac) => vec!["generate MACs"],
        (Capability::WriteData, KeyUsage::KeyAgreement) => vec!["derive shared secrets"],
        (Capability::DeleteData, _) => {
            vec!["schedule the key's deletion, which destroys all data encrypted under it"]
        }
    };
    w.iter().map(|s| s.to_string()).collect()
}
