//! Decoding one node's effective (layered) configuration into its kind: a key, an explicit
//! replica, a consumer, or a user-defined kind. Cross-node rules live in `link.rs`.
//!
//! Each kind is read in its own file: `key` a key and an explicit replica, `access` a key's
//! access model, `consumers` the built-in kinds that use a key (grant, key-access, s3-bucket),
//! `custom` a user-defined kind; `tags` the tags every node carries.

mod access;
mod consumers;
mod custom;
mod import;
mod key;
mod tags;

use std::collections::{BTreeMap, BTreeSet};

use marked_yaml::types::MarkedMappingNode;

use super::address::{check_name, Address};
use super::decode::{Fields, Spanned};
use super::model::{Account, Custom, Grant, Key, KeyAccess, S3Bucket};
use crate::diag::{did_you_mean, Diagnostics, Span};
pub use consumers::{grant_mismatches, GRANT_OPERATIONS};
use consumers::{read_grant, read_key_access, read_s3_bucket};
use custom::read_custom;
use key::{read_key, read_replica};
pub use tags::{read_tags, K9_TAGS};

pub const BUILTIN_KINDS: &[&str] = &["key", "replica", "grant", "key-access", "s3-bucket"];

/// A node as declared, before links to other nodes are checked.
pub struct Declared {
    pub address: Address,
    /// The node.yaml's own source: fields from other files are defaults.
    pub source: u32,
    pub span: Span,
    pub effective: MarkedMappingNode,
    pub tags: BTreeMap<String, String>,
    pub depends_on: Vec<Spanned<Address>>,
    pub body: Body,
}

pub enum Body {
    Key(Box<KeyDecl>),
    Replica(ReplicaDecl),
    Grant(Grant),
    KeyAccess(KeyAccess),
    S3Bucket(S3Bucket),
    Custom(Custom),
}

pub struct KeyDecl {
    pub key: Key,
    pub aliases: Vec<Spanned<String>>,
    pub replicas: Option<Spanned<Replicas>>,
    pub multi_region_span: Option<Span>,
}

pub enum Replicas {
    /// `"*"`: every enabled region of the account but the key's own.
    All,
    Regions(Vec<Spanned<String>>),
}

/// An explicit replica (`replica_of`); unset fields are taken from the primary.
pub struct ReplicaDecl {
    pub primary: Spanned<Address>,
    pub description: Option<String>,
    pub deletion_window_days: Option<u32>,
    pub is_enabled: Option<bool>,
    pub prevent_destroy: Option<bool>,
}

/// Decodes a node of `account` from its effective configuration; `None` when it has errors (all
/// recorded).
pub fn decode(
    address: Address,
    account: &Account,
    source: u32,
    effective: MarkedMappingNode,
    custom_kinds: &BTreeSet<String>,
    diags: &mut Diagnostics,
) -> Option<Declared> {
    let mut f = Fields::new(&effective, "node.yaml").at_file_start(source as usize);
    let span = Span::file(source as usize);
    let kind = f.string("kind");
    // `has`, not a getter: `replica_of` is a field of replicas only, and must not be offered in
    // the list of fields of other kinds.
    let replica_of = f.has("replica_of");
    if !replica_of && f.key_span("replica_of").is_some() {
        // `replica_of: ~` is not set, like any null field; reading it marks it known.
        f.node("replica_of");
    }
    let kind_name = match (&kind, replica_of) {
        (Some(k), _) => k.value.clone(),
        (None, true) => "replica".to_string(),
        (None, false) => "key".to_string(),
    };
    if let Some(k) = &kind {
        // A kind is printed as it is (`orch graph`), so it must be a plain name.
        if let Err(why) = check_name(&k.value) {
            f.error(k.span, format!("bad kind: {why}"));
            diags.extend(f.diags);
            return None;
        }
        if !BUILTIN_KINDS.contains(&k.value.as_str()) && !custom_kinds.contains(&k.value) {
            let all: Vec<&str> = BUILTIN_KINDS
                .iter()
                .copied()
                .chain(custom_kinds.iter().map(String::as_str))
                .collect();
            let d = f.error(k.span, format!("unknown kind `{}`", k.value));
            d.help = Some(match did_you_mean(&k.value, all.iter().copied()) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!("kinds are the folders under templates/: {}", all.join(", ")),
            });
            // Without a kind there is no list of fields to hold the others against: reporting
            // each of them as unknown would bury the one real mistake.
            diags.extend(f.diags);
            return None;
        }
        if k.value == "replica" && !replica_of {
            f.error(k.span, "a replica needs `replica_of: account/region/node`");
        }
        if k.value != "replica" && replica_of {
            f.node("replica_of");
            let at = f.key_span("replica_of").unwrap_or(span);
            f.error(
                at,
                format!(
                    "`replica_of` declares a replica, but this node is `kind: {}`",
                    k.value
                ),
            )
            .help = Some("remove `kind` to declare a replica, or remove `replica_of`".into());
        }
    }
    let tags = read_tags(&mut f, &account.environment, (&address, span));
    let depends_on = read_addresses(&mut f, "depends_on");
    let body = match kind_name.as_str() {
        "key" => read_key(&mut f, source, &address.region).map(|k| Body::Key(Box::new(k))),
        "replica" => read_replica(&mut f).map(Body::Replica),
        "grant" => read_grant(&mut f, &address, source).map(Body::Grant),
        "key-access" => read_key_access(&mut f, &address, account).map(Body::KeyAccess),
        "s3-bucket" => read_s3_bucket(&mut f).map(Body::S3Bucket),
        custom => read_custom(&mut f, custom).map(Body::Custom),
    };
    let ok = !f.diags.has_errors();
    f.finish(diags, Some(source));
    let body = body.filter(|_| ok)?;
    Some(Declared {
        address,
        source,
        span,
        effective,
        tags,
        depends_on,
        body,
    })
}

fn read_addresses(f: &mut Fields, name: &'static str) -> Vec<Spanned<Address>> {
    let mut out = Vec::new();
    for item in f.strings(name).map(|s| s.value).unwrap_or_default() {
        match Address::parse(&item.value) {
            Ok(a) => out.push(Spanned::new(a, item.span)),
            Err(why) => {
                f.error(item.span, why);
            }
        }
    }
    out
}

fn read_address(f: &mut Fields, name: &'static str) -> Option<Spanned<Address>> {
    let text = f.required_string(name)?;
    match Address::parse(&text.value) {
        Ok(a) => Some(Spanned::new(a, text.span)),
        Err(why) => {
            f.error(text.span, why);
            None
        }
    }
}
