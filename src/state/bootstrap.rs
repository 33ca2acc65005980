//! `orch backend bootstrap` for state in S3: lists the state buckets the fleet needs, says which
//! exist and what it will create, asks (or takes `--auto-approve`), then creates the missing
//! ones, each with a small module of its own under `.orch/remote/bootstrap/<bucket>/`.

use std::io::IsTerminal as _;

use serde_json::json;

use super::s3::{check_version, denied, Bucket, S3};
use crate::terraform::remote::{self, BucketState, Runner};

pub(super) fn bootstrap(store: &S3, auto_approve: bool) -> Result<(), String> {
    let runner = store.runner()?;
    check_version(&runner.binary.version)?;
    let s3 = &store.s3;
    let buckets = store.buckets(store.fleet.accounts.keys());
    let states = store.probe(&runner, &buckets);
    let mut missing = Vec::new();
    let mut problems = Vec::new();
    say!(
        "state buckets in {} ({} accounts):",
        s3.region,
        store.fleet.accounts.len()
    );
    for (bucket, state) in buckets.iter().zip(states) {
        let through = store.through(bucket);
        match state {
            Ok(BucketState::Exists) => say!("  {} ({through}): exists", bucket.name),
            Ok(BucketState::Missing) => {
                say!("  {} ({through}): missing, to create", bucket.name);
                missing.push(bucket.clone());
            }
            Ok(BucketState::Denied(why)) => {
                say!("  {} ({through}): not usable", bucket.name);
                problems.push(denied(bucket, &through, &why, &store.bucket_location()));
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
        if tls_only(store) {
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
        if !crate::prompt::ask(&format!(
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
    let mut results = vec![create(store, &runner, first)];
    results.extend(remote::parallel(rest, store.parallelism, |b| {
        create(store, &runner, b)
    }));
    let mut failed = Vec::new();
    for (bucket, result) in missing.iter().zip(results) {
        match result {
            Ok(()) => say!("created {}", bucket.name),
            Err(e) => failed.push(format!(
                "creating {} ({}): {e}",
                bucket.name,
                store.through(bucket)
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

/// Whether buckets get the TLS-only policy: not under a profile whose endpoint is plain http
/// (an emulator), where it would refuse orch's own requests.
fn tls_only(store: &S3) -> bool {
    !store.endpoint().is_some_and(|e| e.starts_with("http://"))
}

/// The bootstrap module of one bucket under `.orch/remote/bootstrap/<bucket>/`: the nodes' own
/// provider settings (region, assume_role, endpoint) and a local state of its own.
fn create(store: &S3, runner: &Runner, bucket: &Bucket) -> Result<(), String> {
    let account = &store.fleet.accounts[&bucket.accounts[0]];
    let settings = &store.fleet.settings;
    let common = json!({
        "required_version": settings.required_version,
        "aws_provider": settings.aws_provider,
        "has_role": account.role_arn.is_some(),
        "endpoint": store.endpoint().is_some(),
    });
    let render = |name: &str| {
        let context = tera::Context::from_value(common.clone()).expect("an object");
        store
            .templates
            .tera
            .render(name, &context)
            .map_err(|e| crate::render::templates::error_chain(&e))
    };
    let mut vars = serde_json::Map::new();
    vars.insert("region".into(), json!(store.s3.region));
    vars.insert("account_id".into(), json!(account.account_id));
    if let Some(role) = &account.role_arn {
        vars.insert("role_arn".into(), json!(role));
    }
    if let Some(endpoint) = store.endpoint() {
        vars.insert("endpoint".into(), json!(endpoint));
    }
    vars.insert("default_tags".into(), json!({"ManagedBy": "orch"}));
    vars.insert("bucket".into(), json!(bucket.name));
    vars.insert("tls_only".into(), json!(tls_only(store)));
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
    let dir = remote::dir(&store.state_dir(), "bootstrap", &bucket.name);
    runner.apply(&dir, &files)
}
