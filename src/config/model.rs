//! The fleet: what the rest of orch works from. A fleet without errors has passed every check; a
//! tree with errors yields a partial fleet (the nodes that decoded) so later stages (policy
//! checks, the DAG) can still report theirs, and such a fleet is never rendered or run. Spans are
//! kept only where later stages still report against the source (edges, principals, accounts).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use marked_yaml::types::MarkedMappingNode;

use super::address::Address;
use super::decode::Spanned;
use crate::diag::{Sources, Span};

/// The whole `live/` tree.
pub struct Fleet {
    /// The `live/` directory; orch's own files go to `.orch/` beside it.
    pub live: PathBuf,
    pub settings: Settings,
    pub accounts: BTreeMap<String, Account>,
    /// Every node, synthesized replicas included, sorted by address.
    pub nodes: Vec<Node>,
    pub sources: Sources,
}

impl Fleet {
    pub fn node(&self, address: &Address) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.address.cmp(address))
            .ok()
            .map(|i| &self.nodes[i])
    }

    pub fn account_of(&self, node: &Node) -> &Account {
        &self.accounts[&node.address.account]
    }

    /// `.orch/` beside `live/`.
    pub fn state_dir(&self) -> PathBuf {
        self.live
            .parent()
            .map(|p| p.join(".orch"))
            .unwrap_or_else(|| PathBuf::from(".orch"))
    }
}

/// Tool settings from `orch.yaml`.
#[derive(Clone, Debug)]
pub struct Settings {
    pub terraform_binary: Option<String>,
    /// Version constraint of the hashicorp/aws provider, e.g. `>= 5.0, < 7.0`.
    pub aws_provider: String,
    pub required_version: String,
    pub parallelism: Option<usize>,
    pub layout: Layout,
    /// Where orch.yaml sets `layout:` (None: the default, per-node).
    pub layout_span: Option<Span>,
    pub backend: Backend,
    pub profiles: BTreeMap<String, Profile>,
    pub waves: Vec<Wave>,
    pub audit: Audit,
}

/// `audit:` in orch.yaml: the checks of `orch audit` turned off, each with the reason its
/// reports print.
#[derive(Clone, Debug, Default)]
pub struct Audit {
    pub disabled: BTreeMap<AuditCheck, String>,
}

/// A check of `orch audit`, by the id orch.yaml and the reports name it with, in the order the
/// reports list them. What each finds, its severity and the AWS Config rule or Prowler check it
/// matches are `crate::audit`'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuditCheck {
    PublicPolicy,
    UnknownAccount,
    PendingDeletion,
    UnconstrainedGrant,
    RotationOff,
    UnmanagedKey,
    DisabledKey,
    ManyGrants,
}

impl AuditCheck {
    /// Most severe first: the order of the reports.
    pub const ALL: [AuditCheck; 8] = [
        AuditCheck::PublicPolicy,
        AuditCheck::UnknownAccount,
        AuditCheck::PendingDeletion,
        AuditCheck::UnconstrainedGrant,
        AuditCheck::RotationOff,
        AuditCheck::UnmanagedKey,
        AuditCheck::DisabledKey,
        AuditCheck::ManyGrants,
    ];

    pub fn id(self) -> &'static str {
        match self {
            AuditCheck::UnmanagedKey => "unmanaged-key",
            AuditCheck::RotationOff => "rotation-off",
            AuditCheck::PendingDeletion => "pending-deletion",
            AuditCheck::DisabledKey => "disabled-key",
            AuditCheck::PublicPolicy => "public-policy",
            AuditCheck::UnknownAccount => "unknown-account",
            AuditCheck::UnconstrainedGrant => "unconstrained-grant",
            AuditCheck::ManyGrants => "many-grants",
        }
    }

    pub fn parse(id: &str) -> Option<AuditCheck> {
        AuditCheck::ALL.into_iter().find(|c| c.id() == id)
    }
}

/// How nodes map to terraform root modules and states (DESIGN §9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// One root module and state per node, under `.orch/work/<address>/`.
    #[default]
    PerNode,
    /// One root module and state per stack (account, region, tier), each node a module block.
    Stacks,
}

impl Layout {
    pub const NAMES: [&'static str; 2] = ["per-node", "stacks"];

    pub fn parse(text: &str) -> Option<Layout> {
        match text {
            "per-node" => Some(Layout::PerNode),
            "stacks" => Some(Layout::Stacks),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// State under `.orch/state/<address>/terraform.tfstate`.
    Local,
    /// State in each account's bucket, one object per node (or stack).
    S3(S3Backend),
}

/// `backend: {type: s3, ...}`: every value here is checked at load, since backend.tf cannot take
/// variables and orch writes them into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Backend {
    /// The bucket name template, with placeholders from [`BUCKET_PLACEHOLDERS`].
    pub bucket: String,
    /// Where `bucket` is written, for errors about the name it gives an account.
    pub bucket_span: Span,
    /// The region of every state bucket.
    pub region: String,
    /// State keys are `<key_prefix>/<address>/terraform.tfstate`.
    pub key_prefix: String,
    /// How long terraform waits for a state lock another run holds before it gives up.
    pub lock_timeout: std::time::Duration,
}

/// What a bucket name template may contain, and what each becomes for an account.
pub const BUCKET_PLACEHOLDERS: [&str; 3] = ["{account_id}", "{account}", "{environment}"];

impl S3Backend {
    /// The bucket that holds the state of `account`'s nodes.
    pub fn bucket_for(&self, account: &Account) -> String {
        self.bucket
            .replace("{account_id}", &account.account_id)
            .replace("{account}", &account.name)
            .replace("{environment}", &account.environment)
    }
}

/// A named set of provider settings chosen with `--profile` (e.g. `sandbox`, an emulator).
#[derive(Clone, Debug)]
pub struct Profile {
    /// Every AWS API call goes to this URL.
    pub endpoint: Option<String>,
}

/// A rollout wave: the nodes its globs match that no earlier wave took.
#[derive(Clone, Debug)]
pub struct Wave {
    pub name: String,
    /// The globs of `match:`, each where it is written.
    pub patterns: Vec<Spanned<String>>,
    pub span: Span,
    /// Ask before the wave starts (on a terminal; `--auto-approve` otherwise).
    pub approve: bool,
    pub gate: Option<Gate>,
}

/// What a wave must pass, besides a clean plan and enabled keys, before the next one starts.
#[derive(Clone, Debug)]
pub struct Gate {
    /// Run with `sh -c`; exit 0 passes. Gets the wave's outputs in `ORCH_WAVE_OUTPUTS`.
    pub command: Option<String>,
    /// Waited before the command runs.
    pub bake: std::time::Duration,
    /// How long the command may run before orch stops it and the gate fails.
    pub timeout: std::time::Duration,
}

#[derive(Clone, Debug)]
pub struct Account {
    pub name: String,
    /// Empty when account.yaml has no valid `account_id` (an error already reported).
    pub account_id: String,
    pub environment: String,
    pub role_arn: Option<String>,
    /// Enabled regions: what `replicas: "*"` expands to.
    pub regions: Vec<String>,
    /// The `account_id` value, or the start of account.yaml when it is missing.
    pub id_span: Span,
    /// The `regions` value, or the start of account.yaml when it is missing.
    pub regions_span: Span,
}

/// One node of the fleet: a root module of its own.
#[derive(Clone, Debug)]
pub struct Node {
    pub address: Address,
    /// Where the node is declared: its node.yaml, or the `replicas:` entry that synthesized it.
    pub span: Span,
    pub kind: NodeKind,
    pub tags: BTreeMap<String, String>,
    pub depends_on: Vec<Spanned<Address>>,
    /// The layered configuration, with every value's span, for `orch explain`.
    pub effective: MarkedMappingNode,
}

impl Node {
    /// The template folder this node renders from.
    pub fn kind_name(&self) -> &str {
        match &self.kind {
            NodeKind::Key(_) => "key",
            NodeKind::Replica(_) => "replica",
            NodeKind::Grant(_) => "grant",
            NodeKind::KeyAccess(_) => "key-access",
            NodeKind::S3Bucket(_) => "s3-bucket",
            NodeKind::Custom(c) => &c.kind,
        }
    }

    /// The key this node uses, if it is a replica or a consumer.
    pub fn key_ref(&self) -> Option<&Spanned<Address>> {
        match &self.kind {
            NodeKind::Key(_) => None,
            NodeKind::Replica(r) => Some(&r.primary),
            NodeKind::Grant(g) => Some(&g.key),
            NodeKind::KeyAccess(k) => Some(&k.key),
            NodeKind::S3Bucket(b) => Some(&b.key),
            NodeKind::Custom(c) => c.key.as_ref(),
        }
    }

    /// The AWS resource this node adopts (`import:`; a replica's is its primary's).
    pub fn import(&self) -> Option<&Import> {
        match &self.kind {
            NodeKind::Key(k) => k.import.as_ref(),
            NodeKind::Replica(r) => r.import.as_ref(),
            NodeKind::Grant(g) => g.import.as_ref(),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub enum NodeKind {
    Key(Key),
    Replica(Replica),
    Grant(Grant),
    KeyAccess(KeyAccess),
    S3Bucket(S3Bucket),
    Custom(Custom),
}

/// A primary customer-managed key.
#[derive(Clone, Debug)]
pub struct Key {
    pub description: String,
    pub aliases: Vec<String>,
    pub spec: KeySpec,
    pub usage: KeyUsage,
    pub rotation: Rotation,
    pub deletion_window_days: u32,
    pub is_enabled: bool,
    pub multi_region: bool,
    /// Regions of the replicas this key has (synthesized or explicit), sorted.
    pub replica_regions: Vec<String>,
    pub access: Access,
    pub prevent_destroy: bool,
    pub bypass_policy_lockout_safety_check: bool,
    /// A `policy:` override, as compact JSON, and where `policy:` is written; replaces the
    /// generated policy.
    pub policy_override: Option<Spanned<String>>,
    /// The existing AWS key this node adopts (`import:`), written by `orch import`.
    pub import: Option<Import>,
}

/// An AWS resource a node adopts instead of creating: a key (with the aliases of it to adopt)
/// or a grant. Rendered as terraform `import` blocks, which do nothing once the resource is in
/// state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Import {
    /// The key id (a key or replica) or the grant id (a grant).
    pub id: String,
    /// The aliases to adopt rather than create, without `alias/` (keys and replicas only).
    pub aliases: Vec<String>,
    /// Where `import:` is written.
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub enabled: bool,
    pub period_days: Option<u32>,
}

/// A multi-region replica of a primary key, in another region of the same account.
#[derive(Clone, Debug)]
pub struct Replica {
    pub primary: Spanned<Address>,
    pub description: String,
    pub deletion_window_days: u32,
    pub is_enabled: bool,
    pub prevent_destroy: bool,
    /// The primary's aliases, so an alias resolves in every region the key is in.
    pub aliases: Vec<String>,
    /// The primary's access model, widened by key-access consumers of this replica.
    pub access: Access,
    pub spec: KeySpec,
    pub usage: KeyUsage,
    pub bypass_policy_lockout_safety_check: bool,
    pub policy_override: Option<Spanned<String>>,
    /// Declared by a node.yaml with `replica_of` rather than synthesized from `replicas:`.
    pub explicit: bool,
    /// The primary's `import:`: a multi-region key has one key id in every region.
    pub import: Option<Import>,
}

/// `aws_kms_grant` for a principal, possibly in another account.
#[derive(Clone, Debug)]
pub struct Grant {
    pub key: Spanned<Address>,
    pub grantee: String,
    pub operations: Vec<String>,
    /// Where `operations` is (the node's own span when it is missing).
    pub operations_span: Span,
    /// Where an encryption context constraint is, if the grant has one.
    pub constraint_span: Option<Span>,
    pub retiring_principal: Option<String>,
    pub encryption_context_equals: BTreeMap<String, String>,
    pub encryption_context_subset: BTreeMap<String, String>,
    pub grant_name: String,
    /// The existing grant this node adopts (`import: {grant_id}`).
    pub import: Option<Import>,
}

/// An IAM policy in the consumer's own account that lets its roles use a key of another account;
/// the key's policy is widened for that account automatically.
#[derive(Clone, Debug)]
pub struct KeyAccess {
    pub key: Spanned<Address>,
    pub roles: Vec<String>,
    pub capabilities: Vec<Capability>,
    pub policy_name: String,
}

/// An S3 bucket encrypted with SSE-KMS under the key, with a bucket key, public access blocked.
#[derive(Clone, Debug)]
pub struct S3Bucket {
    pub key: Spanned<Address>,
    pub bucket: String,
    pub versioning: bool,
    pub force_destroy: bool,
}

/// A kind a user added as a folder under `templates/`: its `inputs:` go to the module as they are.
#[derive(Clone, Debug)]
pub struct Custom {
    pub kind: String,
    pub key: Option<Spanned<Address>>,
    pub inputs: serde_json::Map<String, serde_json::Value>,
}

/// The access model of a key: who may do what, by capability.
#[derive(Clone, Debug, Default)]
pub struct Access {
    pub grants: BTreeMap<Capability, Vec<String>>,
    /// AWS services allowed to use the key on behalf of principals of this account.
    pub services: Vec<ServiceAccess>,
    /// Other accounts widened in by key-access consumers: account id -> capabilities.
    pub external_accounts: BTreeMap<String, Vec<Capability>>,
    /// Keep the statement that gives the account root full access (lockout safety).
    pub root_access: bool,
    /// Where `root_access` is set, if anywhere: what a lockout error points at.
    pub root_access_span: Option<Span>,
    /// Encryption context every data operation must carry (`kms:EncryptionContext:<key>`).
    pub encryption_context: BTreeMap<String, String>,
    /// The list (of principals, or `services`) that adds the most bytes to the policy, and that
    /// estimate: what an error about a policy over AWS's size limit points at.
    pub largest_list: Option<(Span, usize)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccess {
    /// Service name as in `kms:ViaService`, e.g. `s3` (becomes `s3.<region>.amazonaws.com`).
    pub service: String,
    pub capabilities: Vec<Capability>,
}

impl ServiceAccess {
    /// The part of its statements' Sids that names the service (`secrets-manager` ->
    /// `SecretsManager`). Two services with one stem would share Sids, which AWS refuses.
    pub fn sid_stem(&self) -> String {
        pascal(&self.service)
    }
}

/// `administer-resource` -> `AdministerResource`: letters and digits only, as Sids are written.
pub fn pascal(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// What a principal may do with a key (k9 Security's access capability model).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    AdministerResource,
    ReadConfig,
    ReadData,
    WriteData,
    DeleteData,
}

impl Capability {
    pub const ALL: [Capability; 5] = [
        Capability::AdministerResource,
        Capability::ReadConfig,
        Capability::ReadData,
        Capability::WriteData,
        Capability::DeleteData,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Capability::AdministerResource => "administer-resource",
            Capability::ReadConfig => "read-config",
            Capability::ReadData => "read-data",
            Capability::WriteData => "write-data",
            Capability::DeleteData => "delete-data",
        }
    }

    pub fn parse(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Reading or writing data: what an encryption-context condition applies to, and all an AWS
    /// service acting through `kms:ViaService` may be given.
    pub fn is_data(self) -> bool {
        matches!(self, Capability::ReadData | Capability::WriteData)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySpec {
    SymmetricDefault,
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EccNistP256,
    EccNistP384,
    EccNistP521,
    EccSecgP256k1,
    Hmac224,
    Hmac256,
    Hmac384,
    Hmac512,
}

impl KeySpec {
    pub const ALL: [KeySpec; 12] = [
        KeySpec::SymmetricDefault,
        KeySpec::Rsa2048,
        KeySpec::Rsa3072,
        KeySpec::Rsa4096,
        KeySpec::EccNistP256,
        KeySpec::EccNistP384,
        KeySpec::EccNistP521,
        KeySpec::EccSecgP256k1,
        KeySpec::Hmac224,
        KeySpec::Hmac256,
        KeySpec::Hmac384,
        KeySpec::Hmac512,
    ];

    pub fn name(self) -> &'static str {
        match self {
            KeySpec::SymmetricDefault => "SYMMETRIC_DEFAULT",
            KeySpec::Rsa2048 => "RSA_2048",
            KeySpec::Rsa3072 => "RSA_3072",
            KeySpec::Rsa4096 => "RSA_4096",
            KeySpec::EccNistP256 => "ECC_NIST_P256",
            KeySpec::EccNistP384 => "ECC_NIST_P384",
            KeySpec::EccNistP521 => "ECC_NIST_P521",
            KeySpec::EccSecgP256k1 => "ECC_SECG_P256K1",
            KeySpec::Hmac224 => "HMAC_224",
            KeySpec::Hmac256 => "HMAC_256",
            KeySpec::Hmac384 => "HMAC_384",
            KeySpec::Hmac512 => "HMAC_512",
        }
    }

    pub fn parse(name: &str) -> Option<KeySpec> {
        KeySpec::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn is_rsa(self) -> bool {
        self.name().starts_with("RSA_")
    }

    pub fn is_ecc(self) -> bool {
        self.name().starts_with("ECC_")
    }

    /// The usages AWS accepts for this spec.
    pub fn usages(self) -> &'static [KeyUsage] {
        use KeyUsage::*;
        match self {
            KeySpec::SymmetricDefault => &[EncryptDecrypt],
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => &[EncryptDecrypt, SignVerify],
            KeySpec::EccNistP256 | KeySpec::EccNistP384 | KeySpec::EccNistP521 => {
                &[SignVerify, KeyAgreement]
            }
            // secp256k1 signs only: AWS offers no key agreement on it.
            KeySpec::EccSecgP256k1 => &[SignVerify],
            KeySpec::Hmac224 | KeySpec::Hmac256 | KeySpec::Hmac384 | KeySpec::Hmac512 => {
                &[GenerateVerifyMac]
            }
        }
    }

    /// AWS rotates key material automatically only for symmetric encryption keys.
    pub fn supports_rotation(self) -> bool {
        self == KeySpec::SymmetricDefault
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyUsage {
    EncryptDecrypt,
    SignVerify,
    GenerateVerifyMac,
    KeyAgreement,
}

impl KeyUsage {
    pub const ALL: [KeyUsage; 4] = [
        KeyUsage::EncryptDecrypt,
        KeyUsage::SignVerify,
        KeyUsage::GenerateVerifyMac,
        KeyUsage::KeyAgreement,
    ];

    pub fn name(self) -> &'static str {
        match self {
            KeyUsage::EncryptDecrypt => "ENCRYPT_DECRYPT",
            KeyUsage::SignVerify => "SIGN_VERIFY",
            KeyUsage::GenerateVerifyMac => "GENERATE_VERIFY_MAC",
            KeyUsage::KeyAgreement => "KEY_AGREEMENT",
        }
    }

    pub fn parse(name: &str) -> Option<KeyUsage> {
        KeyUsage::ALL.into_iter().find(|u| u.name() == name)
    }
}
