//! `Reader`: reads what targets (one account and region each) hold, through the AWS SDK, with
//! at most a bound of calls in flight. Only read calls: List*, Describe*, Get*.

use std::future::Future;

use aws_sdk_kms::types::{GrantListEntry, KeyListEntry, KeyManagerType, KeyMetadata};
use aws_sdk_kms::types::{KeySpec, OriginType};
use aws_smithy_types::date_time::Format;
use futures_util::stream::{self, StreamExt};
use tokio::sync::Semaphore;

use super::failure;
use super::inventory::{
    LiveAlias, LiveGrant, LiveKey, LiveRotation, MultiRegion, Region, ReplicaRef, Target, Unknown,
};
use super::paging::{self, Page};
use super::session::{Base, Session};

/// Reads targets through one endpoint (a profile's, or AWS's own), with at most `bound` API
/// calls in flight across everything it reads at once.
pub struct Reader {
    base: Base,
    bound: usize,
    permits: Semaphore,
    page_size: Option<i32>,
}

/// What ListKeys named and DescribeKey then said.
enum Read {
    Customer(Box<LiveKey>),
    AwsManaged,
    /// Deleted between ListKeys and DescribeKey.
    Gone,
}

impl Reader {
    /// `endpoint`: the profile's (every call goes there, with the emulator's credentials), or
    /// `None` for AWS. `bound`: the most calls in flight at once (at least 1).
    pub fn new(endpoint: Option<String>, bound: usize) -> Reader {
        let bound = bound.max(1);
        Reader {
            base: Base::new(endpoint),
            bound,
            permits: Semaphore::new(bound),
            page_size: None,
        }
    }

    /// Asks each list call for at most `size` items a page instead of the most AWS allows
    /// (1000 keys, 100 aliases or grants, 50 tags): more pages, for tests of paging.
    pub fn page_size(mut self, size: u16) -> Reader {
        self.page_size = Some(i32::from(size.max(1)));
        self
    }

    /// Everything in `target`: every key ListKeys names (AWS-managed ones only counted), each
    /// with its policy, rotation, tags and grants, and every alias. A target whose keys or
    /// aliases cannot be listed (its role not assumable, access denied, the region not enabled,
    /// the endpoint down) is `Unknown`; a key whose own calls fail is listed with what failed
    /// in `LiveKey::unreadable`.
    pub async fn read(&self, target: &Target) -> Result<Region, Unknown> {
        let unknown = |reason: String| Unknown {
            target: target.clone(),
            reason,
        };
        let session = self.base.session(target).await;
        let listed = self
            .list_keys(&session)
            .await
            .map_err(|reason| unknown(format!("ListKeys: {reason}")))?;
        let keys = stream::iter(listed)
            .map(|entry| self.key(&session, entry))
            .buffer_unordered(self.bound)
            .collect::<Vec<_>>();
        let (aliases, read) = tokio::join!(self.list_aliases(&session), keys);
        let aliases = aliases.map_err(|reason| unknown(format!("ListAliases: {reason}")))?;
        let mut keys = Vec::new();
        let mut aws_managed = 0;
        for key in read {
            match key {
                Read::Customer(key) => keys.push(*key),
                Read::AwsManaged => aws_managed += 1,
                Read::Gone => {}
            }
        }
        keys.sort_by(|a, b| a.key_id.cmp(&b.key_id));
        Ok(Region {
            target: target.clone(),
            keys,
            aws_managed,
            aliases,
            calls: session.calls.snapshot(),
        })
    }

    /// [`Reader::read`] of every target, `bound` targets at a time, in the order given.
    pub async fn read_all(&self, targets: Vec<Target>) -> Vec<Result<Region, Unknown>> {
        stream::iter(targets)
            .map(|target| async move { self.read(&target).await })
            .buffered(self.bound)
            .collect()
            .await
    }

    /// The account the credentials of `target` reach (STS GetCallerIdentity).
    pub async fn caller_account(&self, target: &Target) -> Result<String, Unknown> {
        let unknown = |reason: String| Unknown {
            target: target.clone(),
            reason: format!("GetCallerIdentity: {reason}"),
        };
        let session = self.base.session(target).await;
        let out = self
            .call(session.sts.get_caller_identity().send())
            .await
            .map_err(|err| unknown(failure::reason(&err)))?;
        out.account
            .ok_or_else(|| unknown("no account in the answer".to_string()))
    }

    /// Whether the credentials of `target` reach its `account_id`, as the provider's
    /// `allowed_account_ids` checks (a `role_arn` of another account is a misconfiguration).
    /// Through an endpoint the provider checks nothing, and neither does this.
    pub async fn check_account(&self, target: &Target) -> Result<(), Unknown> {
        if self.base.endpoint().is_some() {
            return Ok(());
        }
        let reached = self.caller_account(target).await?;
        match mismatch(&target.account_id, &reached) {
            None => Ok(()),
            Some(reason) => Err(Unknown {
                target: target.clone(),
                reason,
            }),
        }
    }

    /// `call`, once one of the `bound` permits is free.
    async fn call<T>(&self, call: impl Future<Output = T>) -> T {
        let _permit = self.permits.acquire().await.expect("never closed");
        call.await
    }

    /// The `Limit` of a list call whose AWS maximum is `max`.
    fn limit(&self, max: i32) -> Option<i32> {
        Some(self.page_size.map_or(max, |size| size.min(max)))
    }

    async fn list_keys(&self, s: &Session) -> Result<Vec<KeyListEntry>, String> {
        paging::all(|marker| async move {
            let call = s
                .kms
                .list_keys()
                .set_limit(self.limit(1000))
                .set_marker(marker);
            let out = self
                .call(call.send())
                .await
                .map_err(|err| failure::reason(&err))?;
            Ok(Page {
                items: out.keys.unwrap_or_default(),
                truncated: out.truncated,
                marker: out.next_marker,
            })
        })
        .await
    }

    async fn list_aliases(&self, s: &Session) -> Result<Vec<LiveAlias>, String> {
        let aliases = paging::all(|marker| async move {
            let call = s
                .kms
                .list_aliases()
                .set_limit(self.limit(100))
                .set_marker(marker);
            let out = self
                .call(call.send())
                .await
                .map_err(|err| failure::reason(&err))?;
            Ok(Page {
                items: out.aliases.unwrap_or_default(),
                truncated: out.truncated,
                marker: out.next_marker,
            })
        })
        .await?;
        Ok(aliases
            .into_iter()
            .map(|a| LiveAlias {
                name: a.alias_name.unwrap_or_default(),
                arn: a.alias_arn.unwrap_or_default(),
                target_key_id: a.target_key_id,
            })
            .collect())
    }

    async fn key(&self, s: &Session, entry: KeyListEntry) -> Read {
        let key_id = entry.key_id.unwrap_or_default();
        let arn = entry.key_arn.unwrap_or_default();
        let described = self.call(s.kms.describe_key().key_id(&key_id).send()).await;
        let metadata = match described {
            Ok(out) => out.key_metadata,
            Err(err) if failure::is_not_found(&err) => return Read::Gone,
            Err(err) => {
                let why = format!("DescribeKey: {}", failure::reason(&err));
                return Read::Customer(Box::new(unread(key_id, arn, why)));
            }
        };
        let Some(metadata) = metadata else {
            let why = "DescribeKey: no KeyMetadata in the answer".to_string();
            return Read::Customer(Box::new(unread(key_id, arn, why)));
        };
        if metadata.key_manager == Some(KeyManagerType::Aws) {
            return Read::AwsManaged;
        }
        let mut key = described_key(&metadata, arn);
        self.details(s, &mut key, rotates(&metadata)).await;
        Read::Customer(Box::new(key))
    }

    /// The calls about one customer key after DescribeKey, one after another (keys are read
    /// side by side).
    async fn details(&self, s: &Session, key: &mut LiveKey, rotates: bool) {
        let id = key.key_id.clone();
        let policy = self
            .call(
                s.kms
                    .get_key_policy()
                    .key_id(&id)
                    .policy_name("default")
                    .send(),
            )
            .await;
        match policy {
            Ok(out) => key.policy = out.policy,
            Err(err) => failed(key, "GetKeyPolicy", failure::reason(&err)),
        }
        if rotates {
            let rotation = self
                .call(s.kms.get_key_rotation_status().key_id(&id).send())
                .await;
            match rotation {
                Ok(out) => {
                    key.rotation = Some(LiveRotation {
                        enabled: out.key_rotation_enabled,
                        period_days: out
                            .rotation_period_in_days
                            .and_then(|d| u32::try_from(d).ok()),
                    });
                }
                Err(err) => failed(key, "GetKeyRotationStatus", failure::reason(&err)),
            }
        }
        let tags = paging::all(|marker| {
            let call = s
                .kms
                .list_resource_tags()
                .key_id(&id)
                .set_limit(self.limit(50))
                .set_marker(marker);
            async move {
                let out = self
                    .call(call.send())
                    .await
                    .map_err(|err| failure::reason(&err))?;
                Ok(Page {
                    items: out.tags.unwrap_or_default(),
                    truncated: out.truncated,
                    marker: out.next_marker,
                })
            }
        })
        .await;
        match tags {
            Ok(tags) => {
                key.tags = tags.into_iter().map(|t| (t.tag_key, t.tag_value)).collect();
            }
            Err(reason) => failed(key, "ListResourceTags", reason),
        }
        let grants = paging::all(|marker| {
            let call = s
                .kms
                .list_grants()
                .key_id(&id)
                .set_limit(self.limit(100))
                .set_marker(marker);
            async move {
                let out = self
                    .call(call.send())
                    .await
                    .map_err(|err| failure::reason(&err))?;
                Ok(Page {
                    items: out.grants.unwrap_or_default(),
                    truncated: out.truncated,
                    marker: out.next_marker,
                })
            }
        })
        .await;
        match grants {
            Ok(grants) => key.grants = grants.into_iter().map(grant).collect(),
            Err(reason) => failed(key, "ListGrants", reason),
        }
    }
}

/// Why credentials that reach `reached` are wrong for an account with id `expected`.
fn mismatch(expected: &str, reached: &str) -> Option<String> {
    (expected != reached).then(|| {
        format!(
            "the credentials reach account {reached}, not {expected} (the account's account_id): \
             is role_arn a role of another account?"
        )
    })
}

/// Whether AWS rotates the key's material, so GetKeyRotationStatus applies: symmetric
/// encryption keys with material KMS made. Asymmetric and HMAC keys, imported material and
/// custom key stores have no automatic rotation (the call would fail).
fn rotates(metadata: &KeyMetadata) -> bool {
    metadata.key_spec == Some(KeySpec::SymmetricDefault)
        && metadata.origin == Some(OriginType::AwsKms)
}

fn failed(key: &mut LiveKey, operation: &str, reason: String) {
    key.unreadable.push(format!("{operation}: {reason}"));
}

/// A key whose DescribeKey failed: only what ListKeys said of it.
fn unread(key_id: String, arn: String, why: String) -> LiveKey {
    LiveKey {
        key_id,
        arn,
        description: String::new(),
        spec: String::new(),
        usage: String::new(),
        state: String::new(),
        origin: String::new(),
        custom_key_store_id: None,
        deletion_date: None,
        multi_region: None,
        rotation: None,
        policy: None,
        tags: Default::default(),
        grants: Vec::new(),
        unreadable: vec![why],
    }
}

/// A key as DescribeKey says it is; the other calls fill in the rest.
fn described_key(m: &KeyMetadata, listed_arn: String) -> LiveKey {
    let name = |s: Option<&str>| s.unwrap_or_default().to_string();
    LiveKey {
        key_id: m.key_id.clone(),
        arn: m.arn.clone().unwrap_or(listed_arn),
        description: m.description.clone().unwrap_or_default(),
        spec: name(m.key_spec.as_ref().map(KeySpec::as_str)),
        usage: name(m.key_usage.as_ref().map(|u| u.as_str())),
        state: name(m.key_state.as_ref().map(|s| s.as_str())),
        origin: name(m.origin.as_ref().map(OriginType::as_str)),
        custom_key_store_id: m.custom_key_store_id.clone(),
        deletion_date: m
            .deletion_date
            .as_ref()
            .and_then(|d| d.fmt(Format::DateTime).ok()),
        multi_region: multi_region(m),
        rotation: None,
        policy: None,
        tags: Default::default(),
        grants: Vec::new(),
        unreadable: Vec::new(),
    }
}

fn multi_region(m: &KeyMetadata) -> Option<MultiRegion> {
    if m.multi_region != Some(true) {
        return None;
    }
    let config = m.multi_region_configuration.as_ref()?;
    let primary = config.primary_key.as_ref();
    Some(MultiRegion {
        kind: config
            .multi_region_key_type
            .as_ref()
            .map(|k| k.as_str().to_string())
            .unwrap_or_default(),
        primary_arn: primary.and_then(|p| p.arn.clone()).unwrap_or_default(),
        primary_region: primary.and_then(|p| p.region.clone()).unwrap_or_default(),
        replicas: config
            .replica_keys()
            .iter()
            .map(|r| ReplicaRef {
                arn: r.arn.clone().unwrap_or_default(),
                region: r.region.clone().unwrap_or_default(),
            })
            .collect(),
    })
}

fn grant(g: GrantListEntry) -> LiveGrant {
    let context = |c: Option<&std::collections::HashMap<String, String>>| {
        c.map(|c| c.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    };
    let constraints = g.constraints.as_ref();
    LiveGrant {
        grant_id: g.grant_id.clone().unwrap_or_default(),
        name: g.name.clone().unwrap_or_default(),
        grantee: g
            .grantee_principal
            .clone()
            .or_else(|| g.grantee_service_principal.clone())
            .unwrap_or_default(),
        retiring_principal: g
            .retiring_principal
            .clone()
            .or_else(|| g.retiring_service_principal.clone()),
        issuing_account: g.issuing_account.clone().unwrap_or_default(),
        operations: g
            .operations()
            .iter()
            .map(|o| o.as_str().to_string())
            .collect(),
        encryption_context_equals: context(constraints.and_then(|c| c.encryption_context_equals())),
        encryption_context_subset: context(constraints.and_then(|c| c.encryption_context_subset())),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_kms::types::{MultiRegionConfiguration, MultiRegionKey, MultiRegionKeyType};

    use super::*;

    #[test]
    fn an_account_reached_by_other_credentials_names_both() {
        assert_eq!(mismatch("111111111111", "111111111111"), None);
        assert_eq!(
            mismatch("111111111111", "222222222222").as_deref(),
            Some(
                "the credentials reach account 222222222222, not 111111111111 (the account's \
                 account_id): is role_arn a role of another account?"
            )
        );
    }

    fn metadata(spec: KeySpec, origin: OriginType) -> KeyMetadata {
        KeyMetadata::builder()
            .key_id("k")
            .key_spec(spec)
            .origin(origin)
            .build()
            .unwrap()
    }

    #[test]
    fn only_symmetric_keys_with_kms_material_rotate() {
        assert!(rotates(&metadata(
            KeySpec::SymmetricDefault,
            OriginType::AwsKms
        )));
        assert!(!rotates(&metadata(
            KeySpec::SymmetricDefault,
            OriginType::External
        )));
        assert!(!rotates(&metadata(
            KeySpec::SymmetricDefault,
            OriginType::AwsCloudhsm
        )));
        assert!(!rotates(&metadata(KeySpec::Rsa2048, OriginType::AwsKms)));
        assert!(!rotates(&metadata(KeySpec::Hmac256, OriginType::AwsKms)));
    }

    #[test]
    fn a_replica_names_its_primary_and_family() {
        let key =
            |arn: &str, region: &str| MultiRegionKey::builder().arn(arn).region(region).build();
        let m = KeyMetadata::builder()
            .key_id("mrk-1")
            .multi_region(true)
            .multi_region_configuration(
                MultiRegionConfiguration::builder()
                    .multi_region_key_type(MultiRegionKeyType::Replica)
                    .primary_key(key("arn:p", "us-east-1"))
                    .replica_keys(key("arn:r", "eu-west-1"))
                    .build(),
            )
            .build()
            .unwrap();
        assert_eq!(
            multi_region(&m),
            Some(MultiRegion {
                kind: "REPLICA".to_string(),
                primary_arn: "arn:p".to_string(),
                primary_region: "us-east-1".to_string(),
                replicas: vec![ReplicaRef {
                    arn: "arn:r".to_string(),
                    region: "eu-west-1".to_string(),
                }],
            })
        );
        let single = KeyMetadata::builder().key_id("k").build().unwrap();
        assert_eq!(multi_region(&single), None);
    }
}
