//! What orch reads from one account and region of AWS: the keys, their aliases, policies,
//! rotation, tags and grants, as the read path (`aws::Reader`) returns them. Plain data: the
//! import (and later drift and audit) classify it; nothing here decides what to adopt.

use std::collections::BTreeMap;

use serde::Serialize;

/// Where a read goes: one region of one account of the tree (or named on the command line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The account's name in the tree (`prod`), or its id when named with `--account` alone.
    pub account: String,
    pub account_id: String,
    /// Assumed for every call, as the provider assumes it (`session_name = "orch"`).
    pub role_arn: Option<String>,
    pub region: String,
}

/// Everything read from one target. A target that could not be listed is `Unknown`, never an
/// empty `Region`.
#[derive(Clone, Debug, Serialize)]
pub struct Region {
    pub target: Target,
    /// Customer-managed keys, every field read (each key's own calls may still have failed: see
    /// `LiveKey::unreadable`).
    pub keys: Vec<LiveKey>,
    /// AWS-managed keys seen in ListKeys and skipped (DescribeKey said `KeyManager: AWS`).
    pub aws_managed: usize,
    /// Every alias of the region, those of AWS-managed keys and unattached ones included.
    pub aliases: Vec<LiveAlias>,
    /// Requests sent, by operation name (`AssumeRole`, `ListKeys`, `DescribeKey`, ...): each
    /// attempt counts, so a retried call counts more than once.
    pub calls: BTreeMap<String, u64>,
}

/// A target that could not be listed, and why (access denied, region not enabled, endpoint
/// down, role not assumable).
#[derive(Clone, Debug, Serialize)]
pub struct Unknown {
    pub target: Target,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LiveKey {
    pub key_id: String,
    pub arn: String,
    pub description: String,
    /// `KeySpec` as AWS names it (`SYMMETRIC_DEFAULT`, `RSA_2048`, ...).
    pub spec: String,
    /// `KeyUsage` as AWS names it (`ENCRYPT_DECRYPT`, ...).
    pub usage: String,
    /// `KeyState`: `Enabled`, `Disabled`, `PendingDeletion`, `PendingImport`,
    /// `PendingReplicaDeletion`, `Unavailable`, `Creating`, `Updating`.
    pub state: String,
    /// `Origin`: `AWS_KMS`, `EXTERNAL` (imported key material), `AWS_CLOUDHSM`,
    /// `EXTERNAL_KEY_STORE`.
    pub origin: String,
    /// Set for keys in a custom key store.
    pub custom_key_store_id: Option<String>,
    /// When a key pending deletion will be deleted (RFC 3339).
    pub deletion_date: Option<String>,
    pub multi_region: Option<MultiRegion>,
    /// `None` where AWS has no rotation for the key (asymmetric, HMAC, imported material) or it
    /// could not be read.
    pub rotation: Option<LiveRotation>,
    /// The `default` key policy, as AWS returns it (JSON text).
    pub policy: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub grants: Vec<LiveGrant>,
    /// Calls about this key that failed (operation and why): the key is then not adopted whole.
    pub unreadable: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MultiRegion {
    /// `PRIMARY` or `REPLICA`.
    pub kind: String,
    pub primary_arn: String,
    pub primary_region: String,
    /// Every replica of the family (AWS lists them on the primary; on a replica, possibly too).
    pub replicas: Vec<ReplicaRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReplicaRef {
    pub arn: String,
    pub region: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LiveRotation {
    pub enabled: bool,
    /// `RotationPeriodInDays`, when AWS returns it.
    pub period_days: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LiveAlias {
    /// With its `alias/` prefix, as AWS returns it.
    pub name: String,
    pub arn: String,
    /// `None` for an alias that points at nothing.
    pub target_key_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LiveGrant {
    pub grant_id: String,
    /// Empty when the grant has no name.
    pub name: String,
    pub grantee: String,
    pub retiring_principal: Option<String>,
    pub issuing_account: String,
    pub operations: Vec<String>,
    pub encryption_context_equals: BTreeMap<String, String>,
    pub encryption_context_subset: BTreeMap<String, String>,
}
