//! Arbitrary bytes as one file of a valid tree: the first byte picks the kind of file (modulo 4:
//! orch.yaml, account.yaml, region.yaml, node.yaml), the rest replaces the first file of that kind
//! in `BASE`. `orch validate` must answer every input with a clean exit, never a panic, a crash or
//! a hang. `tests/hostile_yaml.rs` replays the seeds (`fuzz/seeds/files/`) in the same format.

#![no_main]

mod common;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

const KINDS: [&str; 4] = ["orch.yaml", "account.yaml", "region.yaml", "node.yaml"];

static SCRATCH: OnceLock<common::Scratch> = OnceLock::new();

/// A small valid fleet with one file of each kind: `orch.yaml`, two `account.yaml`, a
/// `region.yaml` and three `node.yaml` (a multi-region key, a grant on it, and a plain key).
const BASE: &[(&str, &str)] = &[
    (
        "orch.yaml",
        "defaults:\n  deletion_window_days: 30\n  tags: {ManagedBy: orch}\nwaves:\n  - {name: all, match: [\"**\"]}\n",
    ),
    (
        "prod/account.yaml",
        "account_id: \"111111111111\"\nenvironment: prod\nrole_arn: arn:aws:iam::111111111111:role/orch-deployer\nregions: [us-east-1, eu-west-1]\ndefaults:\n  access:\n    administer-resource: [arn:aws:iam::111111111111:role/admin]\n",
    ),
    ("prod/us-east-1/region.yaml", "defaults:\n  tags: {Region: use1}\n"),
    (
        "prod/us-east-1/data/node.yaml",
        "description: Encrypts prod data\naliases: [prod/data]\nmulti_region: true\nreplicas: [eu-west-1]\naccess:\n  read-data: [arn:aws:iam::111111111111:role/app]\n",
    ),
    (
        "prod/us-east-1/reader/node.yaml",
        "kind: grant\nkey: prod/us-east-1/data\ngrantee: arn:aws:iam::222222222222:role/reader\noperations: [Decrypt]\n",
    ),
    (
        "dev/account.yaml",
        "account_id: \"222222222222\"\nenvironment: dev\nrole_arn: arn:aws:iam::222222222222:role/orch-deployer\nregions: [us-east-1]\ndefaults:\n  key_administrators: [arn:aws:iam::222222222222:role/admin]\n",
    ),
    (
        "dev/us-east-1/app/node.yaml",
        "description: Encrypts dev app data\naliases: [dev/app]\nkey_users: [arn:aws:iam::222222222222:role/app]\n",
    ),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, content)) = data.split_first() else {
        return;
    };
    let scratch = SCRATCH.get_or_init(common::Scratch::new);
    let kind = KINDS[usize::from(pick) % KINDS.len()];
    let index = BASE
        .iter()
        .position(|(path, _)| path.ends_with(kind))
        .expect("BASE has a file of every kind");
    scratch.write(&base_with(index, content));
    scratch.validate();
});

/// The base tree with the file at `index` (in [`BASE`] order) replaced by `bytes`.
fn base_with(index: usize, bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    BASE.iter()
        .enumerate()
        .map(|(i, (path, text))| {
            let content = if i == index {
                bytes.to_vec()
            } else {
                text.as_bytes().to_vec()
            };
            (path.to_string(), content)
        })
        .collect()
}
