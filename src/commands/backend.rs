//! The S3 backend's commands: `orch backend bootstrap`, which creates the state buckets a fleet
//! needs, and the check every run (and `orch layout migrate`) makes first when state is in S3:
//! the buckets of the selected nodes exist and are their accounts', and the outputs of the
//! nodes' dependencies are read from remote state into `.orch/outputs/` (a cache of it), so a
//! fresh checkout plans with real values.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal as _;
use std::path::Path;
use std::time::Instant;

use serde_json::json;

use crate::backend::{self, Bucket};
use crate::config::{Backend, Fleet, Layout, Profile, S3Backend};
use crate::graph::Dag;
use crate::render::Templates;
use crate::stacks::module_name;
use crate::terraform::binary::Binary;
use crate::terraform::redact::Redactor;
use crate::terraform::remote::{self, BucketState, Runner};

/// The oldest terraform whose S3 backend takes `use_lockfile` (OpenTofu's too).
const LOCKFILE_SINCE: (u32, u32) = (1, 10);

/// What reaching the buckets takes: the fleet, its templates, the profile's endpoint, terraform.
pub struct Remote<'a> {
    pub fleet: &'a Fleet,
    pub templates: &'a Templates,
    pub profile: Option<&'a Profile>,
    pub binary: &'a Binary,
    pub env: &'a [(String, String)],
    pub parallelism: usize,
}

impl Remote<'_> {
    pub(crate) fn s3(&self) -> Option<&S3Backend> {
        match &self.fleet.settings.backend {
            Backend::S3(s3) => Some(s3),
            Backend::Local => None,
        }
    }

    pub(crate) fn endpoint(&self) -> Option<&str> {
        self.profile.and_then(|p| p.endpoint.as_deref())
    }

    /// Whether buckets get the TLS-only policy: not under a profile whose endpoint is plain
    /// http (an emulator), where it would refuse orch's own requests.
    fn tls_only(&self) -> bool {
        !self.endpoint().is_some_and(|e| e.starts_with("http://"))
    }

    pub(crate) fn backend_tf(&self, account: &str, state: &str) -> Result<String, String> {
        backend::backend_tf(
            self.templates,
            &self.fleet.settings,
            &self.fleet.accounts[account],
            self.endpoint(),
            state,
        )
    }

    /// Where `bucket` is reached from, for messages: its first account and that account's role.
    fn through(&self, bucket: &Bucket) -> String {
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
    fn probe(&self, runner: &Runner, buckets: &[Bucket]) -> Vec<Result<BucketState, String>> {
        let state_dir = self.fleet.state_dir();
        remote::parallel(buckets, self.parallelism, |bucket| {
            let text = self.backend_tf(&bucket.accounts[0], "_probe")?;
            runner.probe(&remote::dir(&state_dir, "probe", &bucket.name), &text)
        })
    }

    /// Where orch.yaml sets the bucket, as `file:line:col`.
    fn bucket_location(&self, s3: &S3Backend) -> String {
        self.fleet.sources.locate(s3.bucket_span)
    }

    /// How orch runs terraform on its own modules here.
    pub(crate) fn runner<'r>(&'r self, redactor: &'r Redactor) -> Runner<'r> {
        Runner {
            binary: self.binary,
            env: self.env,
            redactor,
        }
    }

    /// The buckets of `accounts`, each checked to exist and to be usable (terraform new enough
    /// for `use_lockfile` first): Err with every problem found, and what to do about each.
    pub(crate) fn check_buckets<'b>(
        &self,
        runner: &Runner,
        accounts: impl IntoIterator<Item = &'b String>,
    ) -> Result<Vec<Bucket>, String> {
        let Some(s3) = self.s3() else {
            return Ok(Vec::new());
        };
        check_version(&self.binary.version)?;
        let buckets = backend::buckets(self.fleet, s3, accounts);
        let mut problems = Vec::new();
        for (bucket, state) in buckets.iter().zip(self.probe(runner, &buckets)) {
            match state {
                Ok(BucketState::Exists) => {}
                Ok(BucketState::Missing) => problems.push(format!(
                    "the state bucket {} ({}) does not exist in {}: run `orch backend bootstrap` to create it",
                    bucket.name, self.through(bucket), s3.region
                )),
                Ok(BucketState::Denied(why)) => problems.push(denied(bucket, &self.through(bucket), &why, &self.bucket_location(s3))),
                Err(why) => problems.push(format!(
                    "cannot reach the state bucket {} ({}): {why}",
                    bucket.name, self.through(bucket)
                )),
            }
        }
        if problems.is_empty() {
            Ok(buckets)
        } else {
            Err(problems.join("\n"))
        }
    }

    /// Before a run: every bucket the selected nodes use exists and is usable, then the outputs
    /// of their dependencies come from remote state. An error here means nothing ran.
    pub fn preflight(&self, dag: &Dag, selected: &BTreeSet<usize>) -> Result<(), String> {
        if self.s3().is_none() || selected.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let redactor = Redactor::from_env();
        let runner = self.runner(&redactor);
        let accounts: BTreeSet<&String> = selected
            .iter()
            .map(|&i| &self.fleet.nodes[i].address.account)
            .collect();
        let buckets = self.check_buckets(&runner, accounts)?;
        let dependencies: BTreeSet<usize> =
            selected.iter().flat_map(|&i| dag.dependencies(i)).collect();
        // The states to read: one per dependency, or in the stacks layout one per stack holding
        // a dependency (its module outputs are the nodes' outputs).
        let mut states: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for &i in &dependencies {
            let node = &self.fleet.nodes[i];
            let state = match self.fleet.settings.layout {
                Layout::Stacks => crate::stacks::state_name(node),
                Layout::PerNode => node.address.to_string(),
            };
            states.entry(state).or_default().push(i);
        }
        let states: Vec<(String, Vec<usize>)> = states.into_iter().collect();
        let outputs_dir = self.fleet.state_dir().join("outputs");
        let state_dir = self.fleet.state_dir();
        let read = remote::parallel(&states, self.parallelism, |(state, nodes)| {
            let account = &self.fleet.nodes[nodes[0]].address.account;
            let text = self.backend_tf(account, state)?;
            let outputs = runner.outputs(&remote::dir(&state_dir, "outputs", state), &text)?;
            for &i in nodes {
                let node = &self.fleet.nodes[i];
                let own = match self.fleet.settings.layout {
                    Layout::PerNode => outputs.clone(),
                    Layout::Stacks => module_outputs(outputs.as_deref(), &module_name(node)),
                };
                record(&outputs_dir, &node.address.to_string(), own.as_deref())?;
            }
            Ok::<(), String>(())
        });
        let failed: Vec<String> = states
            .iter()
            .zip(read)
            .filter_map(|((state, nodes), r)| {
                r.err().map(|e| {
                    format!(
                        "cannot read the outputs of {} from the remote state {state}: {e}",
                        nodes
                            .iter()
                            .map(|&i| self.fleet.nodes[i].address.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
            })
            .collect();
        if !failed.is_empty() {
            return Err(failed.join("\n"));
        }
        say!(
            "state in S3: {} bucket(s) checked, outputs of {} dependenc{} read from remote state in {:.1}s",
            buckets.len(),
            dependencies.len(),
            if dependencies.len() == 1 { "y" } else { "ies" },
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// `orch backend bootstrap`: lists the buckets, says which exist and what it will create,
    /// asks (or takes `--auto-approve`), then creates the missing ones.
    pub fn bootstrap(&self, auto_approve: bool) -> Result<(), String> {
        let Some(s3) = self.s3() else {
            return Err("orch.yaml's backend is local (state under .orch/state); `orch backend bootstrap` creates the buckets of `backend: {type: s3, ...}`".into());
        };
        check_version(&self.binary.version)?;
        let redactor = Redactor::from_env();
        let runner = Runner {
            binary: self.binary,
            env: self.env,
            redactor: &redactor,
        };
        let buckets = backend::buckets(self.fleet, s3, self.fleet.accounts.keys());
        let states = self.probe(&runner, &buckets);
        let mut missing = Vec::new();
        let mut problems = Vec::new();
        say!(
            "state buckets in {} ({} accounts):",
            s3.region,
            self.fleet.accounts.len()
        );
        for (bucket, state) in buckets.iter().zip(states) {
            let through = self.through(bucket);
            match state {
                Ok(BucketState::Exists) => say!("  {} ({through}): exists", bucket.name),
                Ok(BucketState::Missing) => {
                    say!("  {} ({through}): missing, to create", bucket.name);
                    missing.push(bucket.clone());
                }
                Ok(BucketState::Denied(why)) => {
                    say!("  {} ({through}): not usable", bucket.name);
                    problems.push(denied(bucket, &through, &why, &self.bucket_location(s3)));
                }
                Err(why) => {
                    say!("  {} ({through}): cannot be reached", bucket.name);
                    problems.push(format!(
                        "cannot reach the state bucket {} ({through}): {why}",
                        bucket.name
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(format!("{}\nnothing was created", problems.join("\n")));
        }
        if missing.is_empty() {
            say!("every state bucket exists; nothing to create");
            return Ok(());
        }
        say!(
            "each bucket created: versioning on, default encryption SSE-S3 (AES256), all public access blocked, {}, prevent_destroy",
            if self.tls_only() {
                "a bucket policy that denies every request without TLS (aws:SecureTransport = false)"
            } else {
                "no TLS-only bucket policy (the profile's endpoint is plain http, which it would refuse)"
            }
        );
        if !auto_approve {
            if !std::io::stdin().is_terminal() {
                return Err(format!(
                    "{} bucket(s) to create and there is no terminal to confirm on; pass --auto-approve",
                    missing.len()
                ));
            }
            if !crate::run::ask(&format!(
                "create {} bucket(s)? Only 'yes' is accepted: ",
                missing.len()
            ))
            .map_err(|e| e.to_string())?
            {
                return Err("nothing was created".into());
            }
        }
        // The first bucket alone: its init fills the provider cache the others link from.
        let (first, rest) = missing.split_first().expect("one is missing");
        let mut results = vec![self.create(&runner, s3, first)];
        results.extend(remote::parallel(rest, self.parallelism, |b| {
            self.create(&runner, s3, b)
        }));
        let mut failed = Vec::new();
        for (bucket, result) in missing.iter().zip(results) {
            match result {
                Ok(()) => say!("created {}", bucket.name),
                Err(e) => failed.push(format!(
                    "creating {} ({}): {e}",
                    bucket.name,
                    self.through(bucket)
                )),
            }
        }
        if failed.is_empty() {
            say!("{} bucket(s) created", missing.len());
            Ok(())
        } else {
            Err(failed.join("\n"))
        }
    }

    /// The bootstrap module of one bucket under `.orch/remote/bootstrap/<bucket>/`: the nodes'
    /// own provider settings (region, assume_role, endpoint) and a local state of its own.
    fn create(&self, runner: &Runner, s3: &S3Backend, bucket: &Bucket) -> Result<(), String> {
        let account = &self.fleet.accounts[&bucket.accounts[0]];
        let settings = &self.fleet.settings;
        let common = json!({
            "required_version": settings.required_version,
            "aws_provider": settings.aws_provider,
            "has_role": account.role_arn.is_some(),
            "endpoint": self.endpoint().is_some(),
        });
        let render = |name: &str| {
            let context = tera::Context::from_value(common.clone()).expect("an object");
            self.templates
                .tera
                .render(name, &context)
                .map_err(|e| crate::render::templates::error_chain(&e))
        };
        let mut vars = serde_json::Map::new();
        vars.insert("region".into(), json!(s3.region));
        vars.insert("account_id".into(), json!(account.account_id));
        if let Some(role) = &account.role_arn {
            vars.insert("role_arn".into(), json!(role));
        }
        if let Some(endpoint) = self.endpoint() {
            vars.insert("endpoint".into(), json!(endpoint));
        }
        vars.insert("default_tags".into(), json!({"ManagedBy": "orch"}));
        vars.insert("bucket".into(), json!(bucket.name));
        vars.insert("tls_only".into(), json!(self.tls_only()));
        let files = [
            ("versions.tf", render("common/versions.tf")?),
            ("providers.tf", render("common/providers.tf")?),
            ("variables.tf", render("common/variables.tf")?),
            ("main.tf", include_str!("bootstrap.tf").to_string()),
            (
                "terraform.tfvars.json",
                serde_json::to_string_pretty(&vars).expect("JSON serializes") + "\n",
            ),
        ];
        let dir = remote::dir(&self.fleet.state_dir(), "bootstrap", &bucket.name);
        runner.apply(&dir, &files)
    }
}

fn denied(bucket: &Bucket, through: &str, why: &str, location: &str) -> String {
    format!(
        "the state bucket {} exists but {through} cannot use it (S3 answered 403: {why}); it belongs to another account, or the role may not list it. Bucket names are global: choose another with `bucket` in orch.yaml ({location})",
        bucket.name
    )
}

/// `use_lockfile` needs terraform 1.10 or later.
fn check_version(version: &str) -> Result<(), String> {
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

/// `.orch/outputs/<address>.json` as the remote state says: written when it has outputs,
/// removed when it has none (the node is not applied, whatever this checkout recorded).
/// A node's outputs in the `terraform output -json` form, from its stack's outputs: the stack
/// has one output per module block, whose value holds the node's outputs. None when the stack's
/// state lacks the node (not applied yet).
fn module_outputs(stack: Option<&str>, module: &str) -> Option<String> {
    let all: serde_json::Value = serde_json::from_str(stack?).ok()?;
    let own: serde_json::Map<String, serde_json::Value> = all[module]["value"]
        .as_object()?
        .iter()
        .map(|(k, v)| (k.clone(), json!({ "value": v })))
        .collect();
    (!own.is_empty()).then(|| serde_json::Value::Object(own).to_string() + "\n")
}

fn record(dir: &Path, address: &str, outputs: Option<&str>) -> Result<(), String> {
    let path = dir.join(format!("{address}.json"));
    match outputs {
        Some(text) => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            crate::render::write_atomic(&path, text.as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
        None => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("cannot remove {}: {e}", path.display()))
            }
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::{check_version, module_outputs};

    #[test]
    fn a_node_reads_its_own_module_block_of_its_stacks_outputs() {
        let stack = r#"{"data": {"sensitive": true, "type": ["object", {}], "value": {"key_arn": "arn:aws:kms:us-east-1:111111111111:key/k", "key_id": "k"}},
                        "_2fa": {"sensitive": true, "value": {"key_id": "j"}}}"#;
        let data: serde_json::Value =
            serde_json::from_str(&module_outputs(Some(stack), "data").unwrap()).unwrap();
        assert_eq!(
            data,
            serde_json::json!({"key_arn": {"value": "arn:aws:kms:us-east-1:111111111111:key/k"}, "key_id": {"value": "k"}})
        );
        assert!(module_outputs(Some(stack), "_2fa")
            .unwrap()
            .contains("\"j\""));
        // Not in the stack's state yet, or no state at all: not applied.
        assert_eq!(module_outputs(Some(stack), "other"), None);
        assert_eq!(module_outputs(None, "data"), None);
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
