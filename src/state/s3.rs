//! The S3 store (DESIGN §10): each state an object `<key_prefix>/<name>/terraform.tfstate` in
//! its account's bucket, locked with `use_lockfile`, reached through the account's `role_arn`
//! (and a profile's endpoint). orch reads and writes it only through terraform, in small
//! backend-only modules under `.orch/remote/` ([`crate::terraform::remote`]): a probe that tells
//! whether a bucket exists and is the account's, a module that reads a state's outputs, and a
//! listing module per prefix whose workspaces are the states one level below it, pulled and
//! pushed as workspaces. backend.tf cannot take variables, so every value here is one the config
//! checked at load, and each is written as an escaped HCL string.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{Open, Place, StateStore, StoreError, Terraform};
use crate::config::{Account, Fleet, Profile, S3Backend};
use crate::render::{hcl, Backend, Templates};
use crate::terraform::redact::Redactor;
use crate::terraform::remote::{self, BucketState, Runner};

/// The oldest terraform whose S3 backend takes `use_lockfile` (OpenTofu's too).
const LOCKFILE_SINCE: (u32, u32) = (1, 10);

pub struct S3 {
    pub(super) fleet: Arc<Fleet>,
    pub(super) templates: Arc<Templates>,
    pub(super) s3: S3Backend,
    profile: Option<Profile>,
    terraform: Result<Terraform, String>,
    redactor: Redactor,
    pub(super) parallelism: usize,
    /// States pulled so far, for what the guard says it cost.
    pulls: AtomicUsize,
}

/// A state bucket and the accounts whose nodes keep their state in it. It is reached, created
/// and checked through the first of them (by name): with `{account_id}` in the template each
/// account has its own.
#[derive(Clone, Debug)]
pub(super) struct Bucket {
    pub name: String,
    pub accounts: Vec<String>,
}

impl S3 {
    pub fn new(open: Open, s3: S3Backend) -> S3 {
        S3 {
            fleet: open.fleet,
            templates: open.templates,
            s3,
            profile: open.profile,
            terraform: open.terraform,
            redactor: Redactor::from_env(),
            parallelism: open.parallelism,
            pulls: AtomicUsize::new(0),
        }
    }

    pub(super) fn endpoint(&self) -> Option<&str> {
        self.profile.as_ref().and_then(|p| p.endpoint.as_deref())
    }

    /// How orch runs terraform on its own modules here.
    pub(super) fn runner(&self) -> Result<Runner<'_>, String> {
        let terraform = self.terraform.as_ref().map_err(Clone::clone)?;
        Ok(Runner {
            binary: &terraform.binary,
            env: &terraform.env,
            redactor: &self.redactor,
        })
    }

    pub(super) fn state_dir(&self) -> PathBuf {
        self.fleet.state_dir()
    }

    /// The `backend.tf` of the state `state` of `account`, for orch's own modules.
    pub(super) fn backend_tf(&self, account: &str, state: &str) -> Result<String, String> {
        render(
            &self.templates,
            self.block(&self.fleet.accounts[account], state),
        )
    }

    /// The `backend.tf` of a module that lists the states under `<key_prefix>/<prefix>/`: the
    /// S3 backend's workspaces, with `workspace_key_prefix` set there and the key every state of
    /// orch ends in, are the names of the states one level below it (`terraform workspace list`
    /// lists the objects `<workspace_key_prefix>/<name>/<key>`). Nothing is read from the
    /// `default` workspace's object, `terraform.tfstate` at the bucket's root.
    fn listing_tf(&self, account: &str, prefix: &str) -> Result<String, String> {
        let mut backend = self.block(&self.fleet.accounts[account], prefix);
        backend["key"] = json!(hcl::string("terraform.tfstate"));
        backend["workspace_key_prefix"] =
            json!(hcl::string(&format!("{}/{prefix}", self.s3.key_prefix)));
        let text = render(&self.templates, backend)?;
        // A customized copy of the templates that predates `workspace_key_prefix` would list the
        // default prefix, where orch keeps nothing, and every check built on the list would pass.
        if !text.contains("workspace_key_prefix") {
            return Err("templates/common/backend.tf does not write `workspace_key_prefix`, which orch needs to list the states in a bucket; copy that block from orch's own templates/common/backend.tf".into());
        }
        Ok(text)
    }

    /// The buckets the accounts of `accounts` need, one per distinct name, by name.
    pub(super) fn buckets<'a>(
        &self,
        accounts: impl IntoIterator<Item = &'a String>,
    ) -> Vec<Bucket> {
        let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for name in accounts {
            let account = &self.fleet.accounts[name];
            let list = by_name.entry(self.s3.bucket_for(account)).or_default();
            if !list.contains(name) {
                list.push(name.clone());
            }
        }
        by_name
            .into_iter()
            .map(|(name, mut accounts)| {
                accounts.sort();
                Bucket { name, accounts }
            })
            .collect()
    }

    /// Where `bucket` is reached from, for messages: its first account and that account's role.
    pub(super) fn through(&self, bucket: &Bucket) -> String {
        let account = &self.fleet.accounts[&bucket.accounts[0]];
        format!(
            "account {}{}",
            bucket.accounts.join(", "),
            account
                .role_arn
                .as_deref()
                .map(|r| format!(", through {r}"))
                .unwrap_or_default()
        )
    }

    /// Each bucket's state, probed at once (a backend-only init each: no provider is loaded).
    pub(super) fn probe(
        &self,
        runner: &Runner,
        buckets: &[Bucket],
    ) -> Vec<Result<BucketState, String>> {
        let state_dir = self.state_dir();
        remote::parallel(buckets, self.parallelism, |bucket| {
            let text = self.backend_tf(&bucket.accounts[0], "_probe")?;
            runner.probe(&remote::dir(&state_dir, "probe", &bucket.name), &text)
        })
    }

    /// Where orch.yaml sets the bucket, as `file:line:col`.
    pub(super) fn bucket_location(&self) -> String {
        self.fleet.sources.locate(self.s3.bucket_span)
    }

    /// The listing module of `prefix` in `account`'s bucket: its directory and backend.tf.
    fn listing(&self, prefix: &str, account: &str) -> Result<(PathBuf, String), String> {
        let text = self.listing_tf(account, prefix)?;
        Ok((remote::dir(&self.state_dir(), "list", prefix), text))
    }

    /// Where a state is pulled and pushed: its prefix's listing module, in the workspace of its
    /// last name; a state named `default` (the default workspace's, at the bucket's root there)
    /// from a module of its own key.
    fn module<'p>(&self, place: &'p Place) -> Result<(PathBuf, String, Option<&'p str>), String> {
        let (prefix, last) = split(place);
        if last == "default" {
            let text = self.backend_tf(&place.account, &place.name)?;
            return Ok((
                remote::dir(&self.state_dir(), "state", &place.name),
                text,
                None,
            ));
        }
        let (dir, text) = self.listing(prefix, &place.account)?;
        Ok((dir, text, Some(last)))
    }
}

/// Renders `common/backend.tf` with `backend` as its context.
fn render(templates: &Templates, backend: Value) -> Result<String, String> {
    let context =
        tera::Context::from_value(json!({ "backend": backend })).expect("the context is an object");
    templates
        .tera
        .render("common/backend.tf", &context)
        .map_err(|e| crate::render::templates::error_chain(&e))
}

/// The object key of a state in its bucket.
fn state_key(s3: &S3Backend, state: &str) -> String {
    format!("{}/{state}/terraform.tfstate", s3.key_prefix)
}

/// A state's prefix and its last name: `dev/us-east-1` and `k1` of `dev/us-east-1/k1`.
fn split(place: &Place) -> (&str, &str) {
    place
        .name
        .rsplit_once('/')
        .expect("a state's name has a prefix")
}

pub(super) fn denied(bucket: &Bucket, through: &str, why: &str, location: &str) -> String {
    format!(
        "the state bucket {} exists but {through} cannot use it (S3 answered 403: {why}); it belongs to another account, or the role may not list it. Bucket names are global: choose another with `bucket` in orch.yaml ({location})",
        bucket.name
    )
}

/// `use_lockfile` needs terraform 1.10 or later.
pub(super) fn check_version(version: &str) -> Result<(), String> {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if found >= LOCKFILE_SINCE {
        Ok(())
    } else {
        Err(format!(
            "the s3 backend locks state with `use_lockfile`, which needs terraform {}.{} or later; this is {version}",
            LOCKFILE_SINCE.0, LOCKFILE_SINCE.1
        ))
    }
}

impl Backend for S3 {
    fn block(&self, account: &Account, state: &str) -> Value {
        json!({
            "type": "s3",
            "bucket": hcl::string(&self.s3.bucket_for(account)),
            "key": hcl::string(&state_key(&self.s3, state)),
            "region": hcl::string(&self.s3.region),
            "role_arn": account.role_arn.as_deref().map(hcl::string),
            "endpoint": self.endpoint().map(hcl::string),
        })
    }

    fn lock_timeout(&self) -> Duration {
        self.s3.lock_timeout
    }
}

impl StateStore for S3 {
    fn is_remote(&self) -> bool {
        true
    }

    /// A push is a terraform run that waits on S3 most of its time.
    fn parallelism(&self) -> usize {
        self.parallelism
    }

    /// The buckets of `accounts`, each checked to exist and to be usable (terraform new enough
    /// for `use_lockfile` first).
    fn check(&self, accounts: &BTreeSet<&String>) -> Result<String, String> {
        let runner = self.runner()?;
        check_version(&runner.binary.version)?;
        let buckets = self.buckets(accounts.iter().copied());
        let mut problems = Vec::new();
        for (bucket, state) in buckets.iter().zip(self.probe(&runner, &buckets)) {
            match state {
                Ok(BucketState::Exists) => {}
                Ok(BucketState::Missing) => problems.push(format!(
                    "the state bucket {} ({}) does not exist in {}: run `orch backend bootstrap` to create it",
                    bucket.name, self.through(bucket), self.s3.region
                )),
                Ok(BucketState::Denied(why)) => problems.push(denied(bucket, &self.through(bucket), &why, &self.bucket_location())),
                Err(why) => problems.push(format!(
                    "cannot reach the state bucket {} ({}): {why}",
                    bucket.name, self.through(bucket)
                )),
            }
        }
        if problems.is_empty() {
            Ok(format!("state in S3: {} bucket(s) checked", buckets.len()))
        } else {
            Err(problems.join("\n"))
        }
    }

    /// Each state's outputs through a backend-only module of its own key: no provider is
    /// installed or loaded.
    fn outputs(&self, places: &[Place]) -> Vec<Result<Option<String>, String>> {
        let runner = match self.runner() {
            Ok(runner) => runner,
            Err(e) => return places.iter().map(|_| Err(e.clone())).collect(),
        };
        let state_dir = self.state_dir();
        remote::parallel(places, self.parallelism, |place| {
            let text = self.backend_tf(&place.account, &place.name)?;
            runner.outputs(&remote::dir(&state_dir, "outputs", &place.name), &text)
        })
    }

    fn show(&self, place: &Place) -> String {
        format!(
            "s3://{}/{}",
            self.s3.bucket_for(&self.fleet.accounts[&place.account]),
            state_key(&self.s3, &place.name)
        )
    }

    /// Listed under its prefix, one `workspace list` per prefix. A state named `default` cannot
    /// be told from the default workspace terraform always lists: it may exist (pulling it
    /// creates nothing).
    /// An object is whatever terraform wrote; nothing to check before it runs.
    fn check_states(&self, _: &[Place]) -> Result<(), StoreError> {
        Ok(())
    }

    fn exists(&self, places: &[Place]) -> Result<Vec<bool>, StoreError> {
        let runner = self.runner().map_err(StoreError::Unreadable)?;
        let prefixes: Vec<(&str, &str)> = places
            .iter()
            .map(|p| (split(p).0, p.account.as_str()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let lists = remote::parallel(&prefixes, self.parallelism, |(prefix, account)| {
            let (dir, text) = self.listing(prefix, account)?;
            runner.workspaces(&dir, &text).map_err(|e| {
                format!(
                    "listing the states under {}/{prefix}/: {e}",
                    self.s3.key_prefix
                )
            })
        });
        let mut found: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for ((prefix, _), list) in prefixes.iter().zip(lists) {
            found.insert(
                prefix,
                list.map_err(StoreError::Unreadable)?.into_iter().collect(),
            );
        }
        Ok(places
            .iter()
            .map(|p| {
                let (prefix, last) = split(p);
                last == "default" || found[prefix].contains(last)
            })
            .collect())
    }

    /// Every state of `places` pulled, at once, each as a workspace of its prefix's listing
    /// module (see [`Runner::pull`] for why not one module per state).
    fn pull(&self, places: &[Place]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let runner = self.runner().map_err(StoreError::Unreadable)?;
        self.pulls.fetch_add(places.len(), Ordering::Relaxed);
        let pulled = remote::parallel(places, self.parallelism, |place| {
            let (dir, text, workspace) = self.module(place)?;
            runner
                .pull(&dir, &text, workspace)
                .map(|t| t.map(String::into_bytes))
        });
        places
            .iter()
            .zip(pulled)
            .map(|(place, r)| {
                r.map_err(|e| StoreError::Unreadable(format!("reading {}: {e}", self.show(place))))
            })
            .collect()
    }

    fn pulls(&self) -> usize {
        self.pulls.load(Ordering::Relaxed)
    }

    /// Terraform takes each state's lock as it pushes, and a lock another run holds fails that
    /// push with the holder named: there is nothing to look at first.
    fn check_locks(&self, _: &[&Place]) -> Result<(), StoreError> {
        Ok(())
    }

    fn write(&self, place: &Place, json: &Map<String, Value>) -> Result<(), String> {
        let text = serde_json::to_string_pretty(json).expect("JSON serializes") + "\n";
        let (dir, backend, workspace) = self.module(place)?;
        self.runner()?
            .push(&dir, &backend, workspace, &text, self.s3.lock_timeout)
    }

    /// Written emptied, as terraform leaves a state after a destroy: terraform has no command
    /// that deletes the object of a state it does not list as a workspace, and the bucket keeps
    /// its versions anyway.
    fn clear(&self, place: &Place, json: &Map<String, Value>) -> Result<(), String> {
        self.write(place, json)
    }

    fn bootstrap(&self, auto_approve: bool) -> Result<(), String> {
        super::bootstrap::bootstrap(self, auto_approve)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Backend as Chosen, Settings};
    use crate::diag::{Sources, Span};

    fn account(name: &str, id: &str, role: Option<&str>) -> Account {
        Account {
            name: name.into(),
            account_id: id.into(),
            environment: "prod".into(),
            role_arn: role.map(String::from),
            regions: vec!["us-east-1".into()],
            id_span: Span::file(0),
            regions_span: Span::file(0),
        }
    }

    fn s3(bucket: &str) -> S3Backend {
        S3Backend {
            bucket: bucket.into(),
            bucket_span: Span::file(0),
            region: "eu-west-1".into(),
            key_prefix: "orch/kms".into(),
            lock_timeout: std::time::Duration::from_secs(5),
        }
    }

    /// What a store of a fleet of `accounts` and no nodes is opened with.
    fn open_with(
        backend: Chosen,
        accounts: Vec<Account>,
        endpoint: Option<&str>,
        templates: Option<Templates>,
    ) -> Open {
        let fleet = Fleet {
            live: "live".into(),
            settings: Settings {
                terraform_binary: None,
                aws_provider: String::new(),
                required_version: String::new(),
                parallelism: None,
                layout: Default::default(),
                layout_span: None,
                backend,
                profiles: Default::default(),
                waves: Vec::new(),
                audit: Default::default(),
            },
            accounts: accounts.into_iter().map(|a| (a.name.clone(), a)).collect(),
            nodes: Vec::new(),
            sources: Sources::default(),
        };
        Open {
            fleet: Arc::new(fleet),
            templates: Arc::new(templates.unwrap_or_else(|| Templates::builtin().unwrap())),
            profile: endpoint.map(|e| Profile {
                endpoint: Some(e.into()),
            }),
            terraform: Err("no terraform in unit tests".into()),
            parallelism: 1,
        }
    }

    fn store(
        backend: Chosen,
        accounts: Vec<Account>,
        endpoint: Option<&str>,
        templates: Option<Templates>,
    ) -> Arc<dyn StateStore> {
        super::super::open(open_with(backend, accounts, endpoint, templates))
    }

    /// The S3 store of one account, `dev`, with its listing modules to look at.
    fn s3_store(templates: Option<Templates>) -> S3 {
        let bucket = s3("tfstate-{account_id}");
        let dev = account("dev", "222222222222", None);
        S3::new(
            open_with(Chosen::S3(bucket.clone()), vec![dev], None, templates),
            bucket,
        )
    }

    #[test]
    fn a_listing_module_lists_one_level_under_its_prefix() {
        let text = s3_store(None)
            .listing_tf("dev", "_stacks/dev/us-east-1")
            .unwrap();
        assert!(
            text.contains("key          = \"terraform.tfstate\"")
                && text.contains("workspace_key_prefix = \"orch/kms/_stacks/dev/us-east-1\"")
                && text.contains("bucket       = \"tfstate-222222222222\""),
            "{text}"
        );
        // A copy of the templates from before workspace_key_prefix would list nothing.
        let mut old = Templates::builtin().unwrap();
        old.tera
            .add_raw_template(
                "common/backend.tf",
                "terraform {\n  backend \"s3\" {\n    key = {{ backend.key }}\n  }\n}\n",
            )
            .unwrap();
        let err = s3_store(Some(old)).listing_tf("dev", "p").unwrap_err();
        assert!(
            err.contains("does not write `workspace_key_prefix`"),
            "{err}"
        );
    }

    #[test]
    fn a_state_of_any_depth_gets_its_key_and_local_path() {
        let prod = account(
            "prod",
            "111111111111",
            Some("arn:aws:iam::111111111111:role/d"),
        );
        let local = store(Chosen::Local, vec![prod.clone()], None, None)
            .block(&prod, "_stacks/prod/us-east-1/keys");
        assert_eq!(
            local["path"],
            "\"../../../../../state/_stacks/prod/us-east-1/keys/terraform.tfstate\""
        );
        let remote = store(
            Chosen::S3(s3("tfstate-{account_id}-{environment}")),
            vec![prod.clone()],
            Some("http://127.0.0.1:5000"),
            None,
        )
        .block(&prod, "prod/us-east-1/k");
        assert_eq!(remote["bucket"], "\"tfstate-111111111111-prod\"");
        assert_eq!(
            remote["key"],
            "\"orch/kms/prod/us-east-1/k/terraform.tfstate\""
        );
        assert_eq!(remote["region"], "\"eu-west-1\"");
        assert_eq!(remote["role_arn"], "\"arn:aws:iam::111111111111:role/d\"");
        assert_eq!(remote["endpoint"], "\"http://127.0.0.1:5000\"");
        let dev = account("dev", "222222222222", None);
        let no_role = store(Chosen::S3(s3("b-{account}")), vec![dev.clone()], None, None)
            .block(&dev, "dev/us-east-1/k");
        assert_eq!(no_role["role_arn"], Value::Null);
        assert_eq!(no_role["endpoint"], Value::Null);
        let five = store(Chosen::S3(s3("b")), vec![dev], None, None);
        assert_eq!(five.lock_timeout().as_secs(), 5);
    }

    #[test]
    fn lockfile_needs_terraform_1_10() {
        assert!(check_version("1.11.4").is_ok());
        assert!(check_version("1.10.0").is_ok());
        assert!(check_version("2.0.0").is_ok());
        assert!(check_version("1.9.8")
            .unwrap_err()
            .contains("1.10 or later"));
    }
}
