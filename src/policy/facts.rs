//! What the policy of one key (or replica) is computed from: [`KeyFacts`], read off its node.

use crate::config::{partition_of, Access, Account, Fleet, KeySpec, KeyUsage, Node, NodeKind};
use crate::diag::Span;

/// What the policy of one key (or replica) is computed from.
pub struct KeyFacts<'a> {
    pub account: &'a Account,
    /// The partition of the key's region (`aws`, `aws-us-gov`, `aws-cn`), for the ARNs it writes.
    pub partition: &'static str,
    /// Every region the key is in: its own, and for a multi-region key those of the primary and
    /// all replicas. A key family shares one policy, so `kms:ViaService` names them all.
    pub regions: Vec<String>,
    pub spec: KeySpec,
    pub usage: KeyUsage,
    pub multi_region: bool,
    pub access: &'a Access,
    pub bypass_lockout_check: bool,
    /// A `policy:` override and where `policy:` is written.
    pub policy_override: Option<(&'a str, Span)>,
    /// A replica: it shares its primary's policy, so the primary's checks cover it.
    pub replica: bool,
}

impl<'a> KeyFacts<'a> {
    /// The facts of a key or replica node; `None` for consumers.
    pub fn of(fleet: &'a Fleet, node: &'a Node) -> Option<KeyFacts<'a>> {
        let account = fleet.account_of(node);
        let partition = partition_of(&node.address.region);
        let family = |primary: &Node| -> Vec<String> {
            let mut regions = vec![primary.address.region.clone()];
            if let NodeKind::Key(k) = &primary.kind {
                regions.extend(k.replica_regions.iter().cloned());
            }
            regions.sort();
            regions
        };
        match &node.kind {
            NodeKind::Key(k) => Some(KeyFacts {
                account,
                partition,
                regions: family(node),
                spec: k.spec,
                usage: k.usage,
                multi_region: k.multi_region,
                access: &k.access,
                bypass_lockout_check: k.bypass_policy_lockout_safety_check,
                policy_override: k
                    .policy_override
                    .as_ref()
                    .map(|p| (p.value.as_str(), p.span)),
                replica: false,
            }),
            NodeKind::Replica(r) => Some(KeyFacts {
                account,
                partition,
                regions: fleet
                    .node(&r.primary.value)
                    .map_or_else(|| vec![node.address.region.clone()], family),
                spec: r.spec,
                usage: r.usage,
                multi_region: true,
                access: &r.access,
                bypass_lockout_check: r.bypass_policy_lockout_safety_check,
                policy_override: r
                    .policy_override
                    .as_ref()
                    .map(|p| (p.value.as_str(), p.span)),
                replica: true,
            }),
            _ => None,
        }
    }

    pub(super) fn symmetric_encryption(&self) -> bool {
        self.spec == KeySpec::SymmetricDefault && self.usage == KeyUsage::EncryptDecrypt
    }

    /// What names the capabilities of this key in an access review.
    pub fn shape(&self) -> super::KeyShape {
        super::KeyShape {
            spec: self.spec,
            usage: self.usage,
            multi_region: self.multi_region,
            partition: self.partition,
        }
    }
}
