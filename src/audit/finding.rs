//! What `orch audit` reports: each check with its severity, what it finds in words and the AWS
//! Config managed rule and Prowler check it matches (where there is one); a finding, the result
//! of one check on one key; and the outcome of an audit, with what could not be read.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use crate::aws::Unknown;
use crate::config::AuditCheck;

/// How bad a finding is. Ordered most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

/// A check as the reports and docs/audit.md describe it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Rule {
    #[serde(rename = "id", serialize_with = "check_id")]
    pub check: AuditCheck,
    pub severity: Severity,
    /// What a finding of it means, in words.
    pub title: &'static str,
    /// The AWS Config managed rule that finds the same, if any.
    pub config_rule: Option<&'static str>,
    /// The Prowler check that finds the same, if any.
    pub prowler: Option<&'static str>,
}

/// The most grants people made (grants of AWS services left out) a key may have before
/// `many-grants` reports it. Grants are access that the key policy does not show, each one to
/// review on its own; orch makes one grant node per grantee and use, so a key with more than
/// ten is rarely one anyone has reviewed, and often an application that creates grants and never
/// retires them. AWS's own limit is 50,000 grants per key.
pub const MANY_GRANTS: usize = 10;

/// What `check` is. `AuditCheck`'s order (most severe first) is the reports' order.
pub fn rule(check: AuditCheck) -> Rule {
    let (severity, title, config_rule, prowler) = match check {
        AuditCheck::PublicPolicy => (
            Severity::Critical,
            "the key policy lets anyone (`*`) use the key, without a condition",
            Some("kms-key-policy-no-public-access"),
            Some("kms_key_not_publicly_accessible"),
        ),
        AuditCheck::UnknownAccount => (
            Severity::High,
            "a principal of an account the tree does not know is allowed to use the key",
            None,
            None,
        ),
        AuditCheck::PendingDeletion => (
            Severity::High,
            "the key is scheduled for deletion",
            Some("kms-cmk-not-scheduled-for-deletion"),
            Some("kms_cmk_not_deleted_unintentionally"),
        ),
        AuditCheck::UnconstrainedGrant => (
            Severity::Medium,
            "a grant made by people has no encryption-context constraint",
            None,
            None,
        ),
        AuditCheck::RotationOff => (
            Severity::Medium,
            "automatic rotation is off on a key AWS can rotate",
            Some("cmk-backing-key-rotation-enabled"),
            Some("kms_cmk_rotation_enabled"),
        ),
        AuditCheck::UnmanagedKey => (
            Severity::Medium,
            "a customer-managed key that orch does not manage",
            None,
            None,
        ),
        AuditCheck::DisabledKey => (
            Severity::Low,
            "the key is disabled",
            None,
            Some("kms_cmk_are_used"),
        ),
        AuditCheck::ManyGrants => (
            Severity::Low,
            "the key has more grants made by people than one can review",
            None,
            None,
        ),
    };
    Rule {
        check,
        severity,
        title,
        config_rule,
        prowler,
    }
}

/// Every check, most severe first.
pub fn rules() -> Vec<Rule> {
    AuditCheck::ALL.into_iter().map(rule).collect()
}

fn check_id<S: Serializer>(check: &AuditCheck, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(check.id())
}

/// One check's result on one key.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    #[serde(serialize_with = "check_id")]
    pub check: AuditCheck,
    pub severity: Severity,
    /// The account's name in the tree.
    pub account: String,
    pub account_id: String,
    pub region: String,
    pub key_id: String,
    pub arn: String,
    /// With their `alias/` prefix, as AWS returns them.
    pub aliases: Vec<String>,
    pub description: String,
    pub tags: BTreeMap<String, String>,
    /// What was found, in words.
    pub found: String,
    pub config_rule: Option<&'static str>,
    pub prowler: Option<&'static str>,
}

/// A key some of whose calls failed (or whose policy orch could not read as a policy): the
/// checks that need what is missing were not run on it.
#[derive(Clone, Debug, Serialize)]
pub struct PartlyRead {
    pub account: String,
    pub region: String,
    pub key_id: String,
    pub arn: String,
    pub why: Vec<String>,
}

/// A check turned off in orch.yaml, and why.
#[derive(Clone, Debug, Serialize)]
pub struct TurnedOff {
    #[serde(serialize_with = "check_id")]
    pub check: AuditCheck,
    pub reason: String,
}

/// Everything an audit found, and what it could not look at.
#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    /// Most severe first, then by check, account, region and key.
    pub findings: Vec<Finding>,
    /// Account/region pairs that could not be read: their keys are unknown, not clean.
    pub not_read: Vec<Unknown>,
    pub partly_read: Vec<PartlyRead>,
    pub turned_off: Vec<TurnedOff>,
    pub regions_read: usize,
    /// Customer-managed keys read.
    pub keys_read: usize,
    /// AWS-managed keys seen and not checked: AWS's own.
    pub aws_managed: usize,
    /// API calls, by operation.
    pub calls: BTreeMap<String, u64>,
    pub seconds: f64,
}

/// Nothing found, and everything read.
pub const CLEAN: u8 = 0;
/// Something could not be read: the audit is incomplete, whatever it found.
pub const INCOMPLETE: u8 = 1;
/// Findings, on everything read.
pub const FOUND: u8 = 2;

impl Outcome {
    pub fn exit_code(&self) -> u8 {
        if !self.not_read.is_empty() || !self.partly_read.is_empty() {
            INCOMPLETE
        } else if !self.findings.is_empty() {
            FOUND
        } else {
            CLEAN
        }
    }

    /// The findings of each check that found something, most severe first.
    pub fn by_check(&self) -> Vec<(Rule, Vec<&Finding>)> {
        let mut groups: Vec<(Rule, Vec<&Finding>)> = Vec::new();
        for f in &self.findings {
            match groups.last_mut() {
                Some((rule, list)) if rule.check == f.check => list.push(f),
                _ => groups.push((rule(f.check), vec![f])),
            }
        }
        groups
    }

    /// `2 critical, 1 low`: the findings counted by severity, most severe first.
    pub fn counts(&self) -> String {
        let counts: Vec<String> = Severity::ALL
            .into_iter()
            .filter_map(|s| {
                let n = self.findings.iter().filter(|f| f.severity == s).count();
                (n > 0).then(|| format!("{n} {}", s.name()))
            })
            .collect();
        counts.join(", ")
    }

    /// API calls made, in all.
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_listed_most_severe_first() {
        let severities: Vec<Severity> = rules().iter().map(|r| r.severity).collect();
        let mut sorted = severities.clone();
        sorted.sort();
        assert_eq!(severities, sorted);
    }
}
