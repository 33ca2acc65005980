//! Where a root module keeps its state: the `backend.tf` context for one state (a node's, or a
//! stack's), and the state buckets a fleet needs. backend.tf cannot take variables, so every
//! value here is one the config checked at load, and each is written as an escaped HCL string.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::config::{Account, Backend, Fleet, S3Backend, Settings};
use crate::render::{hcl, Templates};

/// The `backend` context of `common/backend.tf` for the state named `state`: a node's address,
/// or any other `/`-separated path of plain names (`_stacks/<account>/<region>/<tier>`). The
/// module's work dir is `.orch/work/<state>/`; the state lives at `.orch/state/<state>/` (local)
/// or `<key_prefix>/<state>/terraform.tfstate` in the account's bucket (s3).
pub fn context(
    settings: &Settings,
    account: &Account,
    endpoint: Option<&str>,
    state: &str,
) -> Value {
    match &settings.backend {
        Backend::Local => {
            // Relative to the work dir, so the tree can move as a whole.
            let up = "../".repeat(1 + state.split('/').count());
            json!({
                "type": "local",
                "path": hcl::string(&format!("{up}state/{state}/terraform.tfstate")),
            })
        }
        Backend::S3(s3) => json!({
            "type": "s3",
            "bucket": hcl::string(&s3.bucket_for(account)),
            "key": hcl::string(&state_key(s3, state)),
            "region": hcl::string(&s3.region),
            "role_arn": account.role_arn.as_deref().map(hcl::string),
            "endpoint": endpoint.map(hcl::string),
        }),
    }
}

/// The object key of a state in its bucket.
pub fn state_key(s3: &S3Backend, state: &str) -> String {
    format!("{}/{state}/terraform.tfstate", s3.key_prefix)
}

/// A state bucket and the accounts whose nodes keep their state in it. It is reached, created
/// and checked through the first of them (by name): with `{account_id}` in the template each
/// account has its own.
#[derive(Clone, Debug)]
pub struct Bucket {
    pub name: String,
    pub accounts: Vec<String>,
}

/// The buckets the accounts of `accounts` need, one per distinct name, by name.
pub fn buckets<'a>(
    fleet: &Fleet,
    s3: &S3Backend,
    accounts: impl IntoIterator<Item = &'a String>,
) -> Vec<Bucket> {
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in accounts {
        let account = &fleet.accounts[name];
        let list = by_name.entry(s3.bucket_for(account)).or_default();
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

/// How long terraform waits for a state lock held by another run.
pub fn lock_timeout(settings: &Settings) -> std::time::Duration {
    match &settings.backend {
        Backend::S3(s3) => s3.lock_timeout,
        Backend::Local => crate::config::DEFAULT_LOCK_TIMEOUT,
    }
}

/// The `backend.tf` of the state `state` (see [`context`]), for orch's own modules.
pub fn backend_tf(
    templates: &Templates,
    settings: &Settings,
    account: &Account,
    endpoint: Option<&str>,
    state: &str,
) -> Result<String, String> {
    render(templates, context(settings, account, endpoint, state))
}

fn render(templates: &Templates, backend: Value) -> Result<String, String> {
    let context =
        tera::Context::from_value(json!({ "backend": backend })).expect("the context is an object");
    templates
        .tera
        .render("common/backend.tf", &context)
        .map_err(|e| crate::render::templates::error_chain(&e))
}

/// The `backend.tf` of a module that lists the states under `<key_prefix>/<prefix>/`: the S3
/// backend's workspaces, with `workspace_key_prefix` set there and the key every state of orch
/// ends in, are the names of the states one level below it (`terraform workspace list` lists
/// the objects `<workspace_key_prefix>/<name>/<key>`). Nothing is read from the `default`
/// workspace's object, `terraform.tfstate` at the bucket's root.
pub fn listing_tf(
    templates: &Templates,
    settings: &Settings,
    s3: &S3Backend,
    account: &Account,
    endpoint: Option<&str>,
    prefix: &str,
) -> Result<String, String> {
    let mut backend = context(settings, account, endpoint, prefix);
    backend["key"] = json!(hcl::string("terraform.tfstate"));
    backend["workspace_key_prefix"] = json!(hcl::string(&format!("{}/{prefix}", s3.key_prefix)));
    let text = render(templates, backend)?;
    // A customized copy of the templates that predates `workspace_key_prefix` would list the
    // default prefix, where orch keeps nothing, and every check built on the list would pass.
    if !text.contains("workspace_key_prefix") {
        return Err("templates/common/backend.tf does not write `workspace_key_prefix`, which orch needs to list the states in a bucket; copy that block from orch's own templates/common/backend.tf".into());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Span;

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

    fn settings(backend: Backend) -> Settings {
        Settings {
            terraform_binary: None,
            aws_provider: String::new(),
            required_version: String::new(),
            parallelism: None,
            layout: Default::default(),
            backend,
            profiles: Default::default(),
            waves: Vec::new(),
        }
    }

    #[test]
    fn a_listing_module_lists_one_level_under_its_prefix() {
        let templates = Templates::builtin().unwrap();
        let dev = account("dev", "222222222222", None);
        let s3 = s3("tfstate-{account_id}");
        let text = listing_tf(
            &templates,
            &settings(Backend::S3(s3.clone())),
            &s3,
            &dev,
            None,
            "_stacks/dev/us-east-1",
        )
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
        let err = listing_tf(
            &old,
            &settings(Backend::S3(s3.clone())),
            &s3,
            &dev,
            None,
            "p",
        )
        .unwrap_err();
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
        let local = context(
            &settings(Backend::Local),
            &prod,
            None,
            "_stacks/prod/us-east-1/keys",
        );
        assert_eq!(
            local["path"],
            "\"../../../../../state/_stacks/prod/us-east-1/keys/terraform.tfstate\""
        );
        let remote = context(
            &settings(Backend::S3(s3("tfstate-{account_id}-{environment}"))),
            &prod,
            Some("http://127.0.0.1:5000"),
            "prod/us-east-1/k",
        );
        assert_eq!(remote["bucket"], "\"tfstate-111111111111-prod\"");
        assert_eq!(
            remote["key"],
            "\"orch/kms/prod/us-east-1/k/terraform.tfstate\""
        );
        assert_eq!(remote["region"], "\"eu-west-1\"");
        assert_eq!(remote["role_arn"], "\"arn:aws:iam::111111111111:role/d\"");
        assert_eq!(remote["endpoint"], "\"http://127.0.0.1:5000\"");
        let no_role = context(
            &settings(Backend::S3(s3("b-{account}"))),
            &account("dev", "222222222222", None),
            None,
            "dev/us-east-1/k",
        );
        assert_eq!(no_role["role_arn"], Value::Null);
        assert_eq!(no_role["endpoint"], Value::Null);
        assert_eq!(lock_timeout(&settings(Backend::S3(s3("b")))).as_secs(), 5);
    }
}
