//! Change detection (`--changed`): a node's fingerprint covers everything that shapes its
//! terraform run (the rendered module files, tfvars included, so layering, templates and orch's
//! own version are covered; the terraform binary's version; the lock file of the root module it
//! runs in, its own or its stack's; its own recorded outputs, which its dependents read; the
//! recorded outputs of its dependencies). It is recorded in `.orch/outputs/<address>.fingerprint`
//! after a successful apply and forgotten before an apply starts, so a node whose apply failed or
//! was cut short stays changed. Computing it never runs terraform.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::config::{Address, Fleet, Node};
use crate::graph::Dag;

/// Bumped when what goes into a fingerprint changes, so old records read as changed.
const SCHEME: &str = "orch-fingerprint-2";

/// 128-bit FNV-1a: stable across Rust releases and platforms (the standard library's hasher is
/// not), and fast enough to hash every rendered file of a 10,000-node fleet in a blink. Not a
/// defence against a forger: it detects changes, it does not authenticate them.
struct Fnv(u128);

impl Fnv {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;

    fn new() -> Self {
        Fnv(Self::OFFSET)
    }

    /// Adds a length-prefixed field, so ("ab", "c") and ("a", "bc") differ.
    fn field(&mut self, bytes: &[u8]) {
        for b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.0 ^= u128::from(*b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    fn hex(&self) -> String {
        format!("{:032x}", self.0)
    }
}

fn outputs_dir(fleet: &Fleet) -> PathBuf {
    fleet.state_dir().join("outputs")
}

fn record_path(fleet: &Fleet, address: &Address) -> PathBuf {
    outputs_dir(fleet).join(format!("{address}.fingerprint"))
}

/// The addresses a node's inputs come from: its key (replicas and consumers) and `depends_on`,
/// the same edges the DAG has.
fn dependencies(node: &Node) -> BTreeSet<&Address> {
    node.key_ref()
        .into_iter()
        .chain(node.depends_on.iter())
        .map(|d| &d.value)
        .collect()
}

/// The fingerprint of a node rendered to `files`, run in the root module at `root` (its own work
/// directory, or its stack's: the lock file there names the providers terraform installed), for
/// terraform `version`, with the outputs it and its dependencies have recorded now. A stack's
/// other files are not in it: they hold every member's inputs, and each member's own are in
/// `files` already.
pub fn compute(
    fleet: &Fleet,
    node: &Node,
    files: &[(&str, String)],
    root: &Path,
    version: &str,
) -> String {
    let mut h = Fnv::new();
    h.field(SCHEME.as_bytes());
    for (name, text) in files {
        h.field(name.as_bytes());
        h.field(text.as_bytes());
    }
    h.field(version.as_bytes());
    h.field(&read_or_empty(&root.join(".terraform.lock.hcl")));
    // Its own outputs: gone or edited, its dependents would read something else than what its
    // apply recorded, so it runs again and records them anew.
    h.field(&read_or_empty(
        &outputs_dir(fleet).join(format!("{}.json", node.address)),
    ));
    for dep in dependencies(node) {
        h.field(dep.to_string().as_bytes());
        h.field(&read_or_empty(
            &outputs_dir(fleet).join(format!("{dep}.json")),
        ));
    }
    h.hex()
}

fn read_or_empty(path: &Path) -> Vec<u8> {
    crate::files::read(path).unwrap_or_default()
}

/// The fingerprint recorded at the node's last successful apply, if any.
pub fn recorded(fleet: &Fleet, address: &Address) -> Option<String> {
    crate::files::read_to_string(record_path(fleet, address))
        .ok()
        .map(|t| t.trim().to_string())
}

/// Records a successful apply (written to a temporary name and renamed: never half a record).
pub fn record(fleet: &Fleet, address: &Address, fingerprint: &str) -> std::io::Result<()> {
    let path = record_path(fleet, address);
    let dir = path.parent().expect("a record path has a parent");
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("fingerprint.tmp");
    std::fs::write(&tmp, format!("{fingerprint}\n"))?;
    std::fs::rename(&tmp, &path)
}

/// Forgets the record: the node is about to change (or be destroyed), so until that succeeds
/// it must read as changed.
pub fn forget(fleet: &Fleet, address: &Address) -> std::io::Result<()> {
    match std::fs::remove_file(record_path(fleet, address)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// What `--changed` selects among `candidates`: every node whose fingerprint differs from its
/// record, plus every dependent of one (within `candidates`). `current` gives the fingerprints of
/// the nodes that have a record, as the layout runs them now. A dependent's inputs may change
/// only once its dependency is applied, so it is decided again when it runs, and skipped then if
/// its fingerprint still matches ([`crate::terraform::workflow::Context::skip_unchanged`]).
pub fn changed<E>(
    fleet: &Fleet,
    dag: &Dag,
    candidates: &BTreeSet<usize>,
    current: impl FnOnce(&BTreeSet<usize>) -> Result<BTreeMap<usize, String>, E>,
) -> Result<BTreeSet<usize>, E> {
    let records: BTreeMap<usize, String> = candidates
        .iter()
        .filter_map(|&i| Some((i, recorded(fleet, &fleet.nodes[i].address)?)))
        .collect();
    let now = current(&records.keys().copied().collect())?;
    let mut changed: BTreeSet<usize> = candidates
        .iter()
        .copied()
        .filter(|i| {
            records
                .get(i)
                .is_none_or(|record| now.get(i) != Some(record))
        })
        .collect();
    let mut stack: Vec<usize> = changed.iter().copied().collect();
    while let Some(i) = stack.pop() {
        for d in dag.dependents(i) {
            if candidates.contains(&d) && changed.insert(d) {
                stack.push(d);
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::Fnv;

    #[test]
    fn fields_are_length_prefixed_and_the_hash_is_stable() {
        let hash = |parts: &[&str]| {
            let mut h = Fnv::new();
            parts.iter().for_each(|p| h.field(p.as_bytes()));
            h.hex()
        };
        assert_ne!(hash(&["ab", "c"]), hash(&["a", "bc"]));
        assert_eq!(hash(&[]), format!("{:032x}", Fnv::OFFSET));
        assert_eq!(hash(&["x"]), hash(&["x"]));
        assert_ne!(hash(&["x"]), hash(&["y"]));
    }
}
