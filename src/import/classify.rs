//! What of an account's keys orch adopts, and what it leaves alone and why: the read regions
//! sorted into key families (a multi-region primary with its replicas is one key), their aliases
//! and the grants people made, with AWS-managed keys, keys pending deletion, disabled keys, keys
//! whose material orch cannot create, and grants made by AWS services left out and counted.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::aws::{LiveGrant, LiveKey, Region, Unknown};
use crate::config::KeySpec;

/// What discovery may adopt beyond what it adopts by default.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Adopt disabled keys (as `is_enabled: false`).
    pub include_disabled: bool,
}

/// A key to adopt: a key, or a multi-region primary with its replicas.
#[derive(Clone, Debug)]
pub struct Family {
    /// The tree account (its name) and the primary's region.
    pub account: String,
    pub region: String,
    pub primary: LiveKey,
    /// Each replica's region and the replica as read; `None` when its region was not read.
    pub replicas: Vec<(String, Option<LiveKey>)>,
    /// Aliases of the key in its own region, without `alias/`, sorted.
    pub aliases: Vec<String>,
    /// Aliases each replica region holds for the key.
    pub replica_aliases: BTreeMap<String, Vec<String>>,
    /// Grants made by people (not by AWS services for AWS resources), with the region of the
    /// family member they are on.
    pub grants: Vec<(String, LiveGrant)>,
}

impl Family {
    /// Every region the key is in, sorted: its own and its replicas'.
    pub fn regions(&self) -> Vec<String> {
        let mut regions: Vec<String> = std::iter::once(self.region.clone())
            .chain(self.replicas.iter().map(|(r, _)| r.clone()))
            .collect();
        regions.sort();
        regions.dedup();
        regions
    }
}

/// A key discovery left alone, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub account: String,
    pub region: String,
    pub key_id: String,
    pub why: String,
}

/// Everything discovery found.
#[derive(Debug, Default)]
pub struct Estate {
    pub families: Vec<Family>,
    pub skipped: Vec<Skipped>,
    pub aws_managed: usize,
    /// Grants AWS services made for AWS resources (EBS volumes, RDS databases): theirs to manage.
    pub service_grants: usize,
    pub unknown: Vec<Unknown>,
    /// API calls made, by operation.
    pub calls: BTreeMap<String, u64>,
    /// Customer-managed keys read.
    pub keys_read: usize,
}

/// A grant AWS made on behalf of a service, for an AWS resource: the grantee (or the retiring
/// principal) is a service principal (`ec2.us-east-1.amazonaws.com`) or a service-linked role
/// (`role/aws-service-role/...`), or its encryption-context constraint names the resource with
/// AWS's `aws:<service>:` keys (EBS: `aws:ebs:id`). KMS does not mark such grants
/// (`kms:GrantIsForAWSResource` is a condition of the request, not a property of the grant);
/// AWS retires them with their resource.
pub fn is_service_grant(grant: &LiveGrant) -> bool {
    let service = |p: &str| p.ends_with(".amazonaws.com") || p.contains(":role/aws-service-role/");
    let aws_context = grant
        .encryption_context_equals
        .keys()
        .chain(grant.encryption_context_subset.keys())
        .any(|k| k.starts_with("aws:"));
    service(&grant.grantee)
        || grant.retiring_principal.as_deref().is_some_and(service)
        || aws_context
}

/// Sorts what was read into families, skipped keys and counts. `regions` are keyed by the tree
/// account they belong to.
pub fn classify(read: Vec<Result<Region, Unknown>>, options: Options) -> Estate {
    let mut estate = Estate::default();
    let mut regions = Vec::new();
    for r in read {
        match r {
            Ok(region) => regions.push(region),
            Err(unknown) => estate.unknown.push(unknown),
        }
    }
    // (account, region, key id) -> the key, for replicas; (account, region, key id) -> aliases.
    let mut by_id: BTreeMap<(String, String, String), &LiveKey> = BTreeMap::new();
    let mut aliases: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    for region in &regions {
        let t = &region.target;
        for (op, n) in &region.calls {
            *estate.calls.entry(op.clone()).or_default() += n;
        }
        estate.aws_managed += region.aws_managed;
        estate.keys_read += region.keys.len();
        for key in &region.keys {
            by_id.insert(
                (t.account.clone(), t.region.clone(), key.key_id.clone()),
                key,
            );
        }
        for alias in &region.aliases {
            let (Some(target), Some(name)) =
                (&alias.target_key_id, alias.name.strip_prefix("alias/"))
            else {
                continue;
            };
            aliases
                .entry((t.account.clone(), t.region.clone(), target.clone()))
                .or_default()
                .push(name.to_string());
        }
    }
    for list in aliases.values_mut() {
        list.sort();
    }
    let aliases_of = |account: &str, region: &str, id: &str| {
        aliases
            .get(&(account.to_string(), region.to_string(), id.to_string()))
            .cloned()
            .unwrap_or_default()
    };
    for region in &regions {
        let (account, here) = (&region.target.account, &region.target.region);
        for key in &region.keys {
            let skip = |why: String| Skipped {
                account: account.clone(),
                region: here.clone(),
                key_id: key.key_id.clone(),
                why,
            };
            if let Some(mr) = &key.multi_region {
                if mr.kind == "REPLICA" {
                    // Adopted with its primary; said only when the primary cannot be.
                    let primary_id = mr.primary_arn.rsplit('/').next().unwrap_or_default();
                    let key_of = (
                        account.clone(),
                        mr.primary_region.clone(),
                        primary_id.to_string(),
                    );
                    if !by_id.contains_key(&key_of) {
                        estate.skipped.push(skip(format!(
                            "a replica of {}, whose region {} was not read: discover {} too to adopt the key with its replicas",
                            mr.primary_arn, mr.primary_region, mr.primary_region
                        )));
                    }
                    continue;
                }
            }
            if let Some(why) = left_alone(key, options) {
                estate.skipped.push(skip(why));
                continue;
            }
            let mut family = Family {
                account: account.clone(),
                region: here.clone(),
                primary: key.clone(),
                replicas: Vec::new(),
                aliases: aliases_of(account, here, &key.key_id),
                replica_aliases: BTreeMap::new(),
                grants: Vec::new(),
            };
            let mut trouble = None;
            for replica in key.multi_region.iter().flat_map(|m| &m.replicas) {
                let live = by_id
                    .get(&(account.clone(), replica.region.clone(), key.key_id.clone()))
                    .copied();
                if let Some(r) = live {
                    if let Some(why) = left_alone(r, options) {
                        trouble = Some(format!("its replica in {}: {why}", replica.region));
                    }
                    family.replica_aliases.insert(
                        replica.region.clone(),
                        aliases_of(account, &replica.region, &key.key_id),
                    );
                }
                family
                    .replicas
                    .push((replica.region.clone(), live.cloned()));
            }
            if let Some(why) = trouble {
                estate.skipped.push(skip(why));
                continue;
            }
            let members = std::iter::once((here.clone(), Some(key)))
                .chain(family.replicas.iter().map(|(r, k)| (r.clone(), k.as_ref())));
            let mut grants = Vec::new();
            for (member_region, member) in members {
                for grant in member.iter().flat_map(|m| &m.grants) {
                    if is_service_grant(grant) {
                        estate.service_grants += 1;
                    } else {
                        grants.push((member_region.clone(), grant.clone()));
                    }
                }
            }
            family.grants = grants;
            estate.families.push(family);
        }
    }
    estate
}

/// Why a key is not adopted as it is, if it is not.
fn left_alone(key: &LiveKey, options: Options) -> Option<String> {
    if !key.unreadable.is_empty() {
        return Some(format!(
            "could not be read whole ({}); discover again once these calls are allowed",
            key.unreadable.join("; ")
        ));
    }
    match key.state.as_str() {
        "Enabled" => {}
        "Disabled" if options.include_disabled => {}
        "Disabled" => {
            return Some(
                "disabled: pass --include-disabled to adopt it as `is_enabled: false`".into(),
            )
        }
        "PendingDeletion" | "PendingReplicaDeletion" => {
            return Some(format!(
                "pending deletion{}: cancel the deletion first to adopt it",
                key.deletion_date
                    .as_deref()
                    .map(|d| format!(" (deleted on {d})"))
                    .unwrap_or_default()
            ))
        }
        other => return Some(format!("in state {other}: adopt it once it is Enabled")),
    }
    if let Some(store) = &key.custom_key_store_id {
        return Some(format!(
            "in custom key store {store}: orch creates keys with AWS KMS key material only"
        ));
    }
    if key.origin != "AWS_KMS" {
        return Some(format!(
            "its key material comes from {} (not AWS KMS): orch cannot create or re-create such a key",
            key.origin
        ));
    }
    if KeySpec::parse(&key.spec).is_none() {
        return Some(format!("its key spec {} is not one orch manages", key.spec));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::{LiveAlias, MultiRegion, ReplicaRef, Target};

    fn target(region: &str) -> Target {
        Target {
            account: "prod".into(),
            account_id: "111111111111".into(),
            role_arn: None,
            region: region.into(),
        }
    }

    fn key(id: &str, region: &str) -> LiveKey {
        LiveKey {
            key_id: id.into(),
            arn: format!("arn:aws:kms:{region}:111111111111:key/{id}"),
            description: String::new(),
            spec: "SYMMETRIC_DEFAULT".into(),
            usage: "ENCRYPT_DECRYPT".into(),
            state: "Enabled".into(),
            origin: "AWS_KMS".into(),
            custom_key_store_id: None,
            deletion_date: None,
            multi_region: None,
            rotation: None,
            policy: None,
            tags: BTreeMap::new(),
            grants: Vec::new(),
            unreadable: Vec::new(),
        }
    }

    fn region(name: &str, keys: Vec<LiveKey>, aliases: Vec<(&str, &str)>) -> Region {
        Region {
            target: target(name),
            keys,
            aws_managed: 1,
            aliases: aliases
                .into_iter()
                .map(|(n, k)| LiveAlias {
                    name: format!("alias/{n}"),
                    arn: String::new(),
                    target_key_id: Some(k.into()),
                })
                .collect(),
            calls: BTreeMap::from([("ListKeys".to_string(), 1)]),
        }
    }

    fn grant(id: &str, grantee: &str) -> LiveGrant {
        LiveGrant {
            grant_id: id.into(),
            name: String::new(),
            grantee: grantee.into(),
            retiring_principal: None,
            issuing_account: "arn:aws:iam::111111111111:root".into(),
            operations: vec!["Decrypt".into()],
            encryption_context_equals: BTreeMap::new(),
            encryption_context_subset: BTreeMap::new(),
        }
    }

    #[test]
    fn a_multi_region_key_is_one_family_and_its_replica_no_key_of_its_own() {
        let id = "mrk-1234abcd12ab34cd56ef1234567890ab";
        let mr = |kind: &str| MultiRegion {
            kind: kind.into(),
            primary_arn: format!("arn:aws:kms:us-east-1:111111111111:key/{id}"),
            primary_region: "us-east-1".into(),
            replicas: vec![ReplicaRef {
                arn: format!("arn:aws:kms:eu-west-1:111111111111:key/{id}"),
                region: "eu-west-1".into(),
            }],
        };
        let mut primary = key(id, "us-east-1");
        primary.multi_region = Some(mr("PRIMARY"));
        let mut replica = key(id, "eu-west-1");
        replica.multi_region = Some(mr("REPLICA"));
        replica
            .grants
            .push(grant("g1", "arn:aws:iam::111111111111:role/app"));
        replica
            .grants
            .push(grant("g2", "ec2.eu-west-1.amazonaws.com"));
        let estate = classify(
            vec![
                Ok(region("us-east-1", vec![primary], vec![("data", id)])),
                Ok(region("eu-west-1", vec![replica], vec![("data", id)])),
            ],
            Options::default(),
        );
        assert_eq!(estate.families.len(), 1);
        let f = &estate.families[0];
        assert_eq!(f.regions(), ["eu-west-1", "us-east-1"]);
        assert_eq!(f.aliases, ["data"]);
        assert_eq!(f.replica_aliases["eu-west-1"], ["data"]);
        assert_eq!(f.grants.len(), 1, "the service's grant is not adopted");
        assert_eq!(estate.service_grants, 1);
        assert_eq!(estate.aws_managed, 2);
        assert_eq!(estate.calls["ListKeys"], 2);
        assert!(estate.skipped.is_empty());
    }

    #[test]
    fn a_replica_whose_primary_was_not_read_is_reported() {
        let id = "mrk-1234abcd12ab34cd56ef1234567890ab";
        let mut replica = key(id, "eu-west-1");
        replica.multi_region = Some(MultiRegion {
            kind: "REPLICA".into(),
            primary_arn: format!("arn:aws:kms:us-east-1:111111111111:key/{id}"),
            primary_region: "us-east-1".into(),
            replicas: Vec::new(),
        });
        let estate = classify(
            vec![Ok(region("eu-west-1", vec![replica], vec![]))],
            Options::default(),
        );
        assert!(estate.families.is_empty());
        assert!(estate.skipped[0].why.contains("us-east-1 was not read"));
    }

    #[test]
    fn keys_orch_cannot_adopt_as_they_are_are_left_alone_with_the_reason() {
        let mut pending = key("00000000-0000-0000-0000-000000000001", "us-east-1");
        pending.state = "PendingDeletion".into();
        let mut disabled = key("00000000-0000-0000-0000-000000000002", "us-east-1");
        disabled.state = "Disabled".into();
        let mut external = key("00000000-0000-0000-0000-000000000003", "us-east-1");
        external.origin = "EXTERNAL".into();
        let mut store = key("00000000-0000-0000-0000-000000000004", "us-east-1");
        store.custom_key_store_id = Some("cks-1".into());
        let mut unreadable = key("00000000-0000-0000-0000-000000000005", "us-east-1");
        unreadable
            .unreadable
            .push("GetKeyPolicy: AccessDenied".into());
        let keys = vec![pending, disabled, external, store, unreadable];
        let estate = classify(
            vec![Ok(region("us-east-1", keys.clone(), vec![]))],
            Options::default(),
        );
        let why: Vec<&str> = estate.skipped.iter().map(|s| s.why.as_str()).collect();
        assert!(why[0].starts_with("pending deletion"), "{why:?}");
        assert!(why[1].contains("--include-disabled"), "{why:?}");
        assert!(why[2].contains("EXTERNAL"), "{why:?}");
        assert!(why[3].contains("custom key store"), "{why:?}");
        assert!(why[4].contains("GetKeyPolicy"), "{why:?}");
        let with_disabled = classify(
            vec![Ok(region("us-east-1", keys, vec![]))],
            Options {
                include_disabled: true,
            },
        );
        assert_eq!(with_disabled.families.len(), 1);
    }

    #[test]
    fn an_unknown_region_is_kept_as_unknown() {
        let estate = classify(
            vec![Err(Unknown {
                target: target("us-east-1"),
                reason: "AccessDenied".into(),
            })],
            Options::default(),
        );
        assert_eq!(estate.unknown.len(), 1);
        assert!(estate.families.is_empty());
    }
}
