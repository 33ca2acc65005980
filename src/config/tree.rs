//! Discovery of the `live/` tree on disk: which accounts, regions and nodes exist, and their files
//! parsed. Names and the kinds of entries are checked here; what the files say is checked later.
//!
//! A tree holds only directories and regular files. Symbolic links are refused wherever they are
//! (one could lead outside the tree, or show one node at two addresses), and so are FIFOs,
//! sockets and devices, which are reported without being opened: opening a FIFO blocks. Entries
//! whose names start with `.` (`.git`, `.terraform`) are not part of the tree.

use std::collections::BTreeSet;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::address::{ascii_spelling, check_name, Address};
use super::regions;
use super::yaml::{self, YamlFile};
use crate::diag::{did_you_mean, Diagnostic, Diagnostics, Sources, Span};

#[derive(Default)]
pub struct RawTree {
    pub fleet: Option<YamlFile>,
    pub accounts: Vec<RawAccount>,
    pub unloaded: Unloaded,
}

pub struct RawAccount {
    pub name: String,
    pub file: Option<YamlFile>,
    pub regions: Vec<RawRegion>,
}

pub struct RawRegion {
    pub name: String,
    pub file: Option<YamlFile>,
    pub nodes: Vec<RawNode>,
}

pub struct RawNode {
    pub name: String,
    pub file: YamlFile,
}

/// Parts of the tree that exist but could not be loaded (each with its error reported already):
/// a reference to a node under one of them is not also reported as "not a node of this tree".
#[derive(Default)]
pub struct Unloaded {
    pub nodes: BTreeSet<Address>,
    pub regions: BTreeSet<(String, String)>,
    pub accounts: BTreeSet<String>,
}

impl Unloaded {
    pub fn contains(&self, address: &Address) -> bool {
        self.nodes.contains(address)
            || self
                .regions
                .contains(&(address.account.clone(), address.region.clone()))
            || self.accounts.contains(&address.account)
    }
}

/// Reads the tree under `live`, collecting every problem rather than stopping at the first; but a
/// directory without an orch.yaml is not a tree, and only that is reported (`--live /` would
/// otherwise bury it under an error for every directory of the disk).
pub fn discover(live: &Path, sources: &mut Sources, diags: &mut Diagnostics) -> RawTree {
    let mut tree = RawTree::default();
    // Checked before the directory is listed, which reports what it finds.
    if std::fs::symlink_metadata(live.join("orch.yaml"))
        .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    {
        diags.push(
            Diagnostic::at_path(live, format!("no orch.yaml in {}", live.display()))
                .with_help("every live/ tree starts with an orch.yaml (it may be empty); pass --live DIR if the tree is elsewhere"),
        );
        return tree;
    }
    let Some(root) = Listing::read(live, diags) else {
        return tree;
    };
    tree.fleet = root.own_file("orch.yaml", sources, diags).loaded();
    root.check_stray_files(&["orch.yaml"], diags);
    for (name, dir) in root.subdirs() {
        let (listing, file) = Listing::open(&dir, "account.yaml", sources, diags);
        if !named_ok(&name, &dir, file.anchor(), "account", diags) {
            continue;
        }
        let Some(listing) = listing else {
            tree.unloaded.accounts.insert(name);
            continue;
        };
        if matches!(file, Own::Missing) {
            diags.push(
                Diagnostic::at_path(
                    dir.join("account.yaml"),
                    format!("account `{name}` has no account.yaml"),
                )
                .with_help(
                    "add account.yaml with at least `account_id`, `environment` and `regions`",
                ),
            );
        }
        listing.check_stray_files(&["account.yaml"], diags);
        let mut regions_found = Vec::new();
        for (region, region_dir) in listing.subdirs() {
            if let Some(found) = read_region(&name, &region, &region_dir, &mut tree, sources, diags)
            {
                regions_found.push(found);
            }
        }
        tree.accounts.push(RawAccount {
            name,
            file: file.loaded(),
            regions: regions_found,
        });
    }
    tree
}

/// One region directory and its nodes; `None` when it is not a region of the tree (reported).
fn read_region(
    account: &str,
    region: &str,
    dir: &Path,
    tree: &mut RawTree,
    sources: &mut Sources,
    diags: &mut Diagnostics,
) -> Option<RawRegion> {
    let (listing, file) = Listing::open(dir, "region.yaml", sources, diags);
    let anchor = file.anchor();
    // Whatever is wrong with the directory, references to nodes under it are not dangling.
    tree.unloaded
        .regions
        .insert((account.to_string(), region.to_string()));
    if !region.is_ascii() {
        let mut d = anchored(
            anchor,
            dir,
            format!(
                "bad region directory name: {}",
                check_name(region).unwrap_err()
            ),
        );
        let ascii = ascii_spelling(region).filter(|a| regions::is_known(a));
        d = match ascii {
            Some(ascii) => {
                d.with_help(format!("rename the directory to `{ascii}`, typed in ASCII"))
            }
            None => match did_you_mean(region, regions::REGIONS.iter().copied()) {
                Some(near) => d.with_help(format!("did you mean `{near}`? rename the directory")),
                None => {
                    d.with_help("region directories are named after AWS regions, e.g. us-east-1")
                }
            },
        };
        diags.push(d);
        return None;
    }
    if !named_ok(region, dir, anchor, "region", diags) {
        return None;
    }
    if !regions::is_known(region) {
        let mut d = anchored(anchor, dir, format!("`{region}` is not an AWS region"));
        d = match did_you_mean(region, regions::REGIONS.iter().copied()) {
            Some(near) => d.with_help(format!("did you mean `{near}`? rename the directory")),
            None => d.with_help("region directories are named after AWS regions, e.g. us-east-1"),
        };
        diags.push(d);
        return None;
    }
    let listing = listing?;
    tree.unloaded
        .regions
        .remove(&(account.to_string(), region.to_string()));
    listing.check_stray_files(&["region.yaml"], diags);
    let mut nodes = Vec::new();
    for (node, node_dir) in listing.subdirs() {
        let (listing, file) = Listing::open(&node_dir, "node.yaml", sources, diags);
        if !named_ok(&node, &node_dir, file.anchor(), "node", diags) {
            continue;
        }
        if let Some(listing) = &listing {
            listing.check_stray_files(&["node.yaml"], diags);
            listing.check_nested_nodes(diags);
        }
        match file {
            Own::Loaded(file) => nodes.push(RawNode { name: node, file }),
            Own::Missing => diags.push(
                Diagnostic::at_path(
                    &node_dir,
                    format!("node directory `{node}` has no node.yaml"),
                )
                .with_help("add a node.yaml, or remove the directory"),
            ),
            Own::Broken => {
                tree.unloaded
                    .nodes
                    .insert(Address::new(account, region, &node));
            }
        }
    }
    Some(RawRegion {
        name: region.to_string(),
        file: file.loaded(),
        nodes,
    })
}

/// The YAML file a directory holds by name (`node.yaml`).
enum Own {
    Loaded(YamlFile),
    Missing,
    /// There, but not readable as YAML (a directory, a link, a parse error): reported already.
    Broken,
}

impl Own {
    /// Where errors about the directory point: its own file, when it has one.
    fn anchor(&self) -> Option<Span> {
        match self {
            Own::Loaded(file) => Some(Span::file(file.source)),
            _ => None,
        }
    }

    fn loaded(self) -> Option<YamlFile> {
        match self {
            Own::Loaded(file) => Some(file),
            _ => None,
        }
    }
}

/// The entries of one directory, sorted by name: its regular files and sub-directories. Anything
/// else has been reported when it was listed.
struct Listing {
    dir: PathBuf,
    files: Vec<String>,
    dirs: Vec<String>,
    refused: Vec<String>,
}

impl Listing {
    /// Lists `dir` without opening any entry; `None` (reported) when it cannot be listed.
    fn read(dir: &Path, diags: &mut Diagnostics) -> Option<Listing> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) => {
                diags.push(cannot_read(dir, &err));
                return None;
            }
        };
        let mut listing = Listing {
            dir: dir.to_path_buf(),
            files: Vec::new(),
            dirs: Vec::new(),
            refused: Vec::new(),
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => {
                    diags.push(cannot_read(dir, &err));
                    return None;
                }
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            // `DirEntry::file_type` does not follow links, so a link is seen as a link.
            let kind = match entry.file_type() {
                Ok(t) if t.is_file() => {
                    listing.files.push(name);
                    continue;
                }
                Ok(t) if t.is_dir() => {
                    listing.dirs.push(name);
                    continue;
                }
                Ok(t) if t.is_symlink() => {
                    diags.push(
                        Diagnostic::at_path(
                            entry.path(),
                            format!("`{name}` is a symbolic link"),
                        )
                        .with_help("orch does not follow links in the live/ tree (one could lead outside it, or show a node at two addresses); put the directory or file itself here"),
                    );
                    listing.refused.push(name);
                    continue;
                }
                Ok(t) if t.is_fifo() => "a FIFO (named pipe)",
                Ok(t) if t.is_socket() => "a socket",
                Ok(t) if t.is_block_device() || t.is_char_device() => "a device",
                Ok(_) => "neither a file nor a directory",
                Err(err) => {
                    diags.push(cannot_read(&entry.path(), &err));
                    listing.refused.push(name);
                    continue;
                }
            };
            diags.push(
                Diagnostic::at_path(
                    entry.path(),
                    format!("`{name}` is {kind}, not a file or directory"),
                )
                .with_help("remove it: a live/ tree holds only directories and files"),
            );
            listing.refused.push(name);
        }
        listing.files.sort();
        listing.dirs.sort();
        Some(listing)
    }

    /// Lists `dir` and loads its own file `own` (`node.yaml`).
    fn open(
        dir: &Path,
        own: &str,
        sources: &mut Sources,
        diags: &mut Diagnostics,
    ) -> (Option<Listing>, Own) {
        let listing = Listing::read(dir, diags);
        let file = listing
            .as_ref()
            .map_or(Own::Broken, |l| l.own_file(own, sources, diags));
        (listing, file)
    }

    /// Loads the file the directory holds by `name`, reporting it when it is a directory.
    fn own_file(&self, name: &str, sources: &mut Sources, diags: &mut Diagnostics) -> Own {
        let path = self.dir.join(name);
        if self.files.iter().any(|f| f == name) {
            return match yaml::load(&path, sources) {
                Ok(file) => Own::Loaded(file),
                Err(d) => {
                    diags.push(d);
                    Own::Broken
                }
            };
        }
        if self.dirs.iter().any(|d| d == name) {
            diags.push(
                Diagnostic::at_path(&path, format!("`{name}` is a directory, not a file"))
                    .with_help(format!(
                        "{name} must be a file; remove the directory and write {name} in its place"
                    )),
            );
            return Own::Broken;
        }
        if self.refused.iter().any(|r| r == name) {
            return Own::Broken;
        }
        Own::Missing
    }

    /// Sub-directories, but not those named like YAML files (reported by
    /// [`Listing::own_file`] and [`Listing::check_stray_files`]).
    fn subdirs(&self) -> Vec<(String, PathBuf)> {
        self.dirs
            .iter()
            .filter(|d| !is_yaml_name(d))
            .map(|d| (d.clone(), self.dir.join(d)))
            .collect()
    }

    /// YAML files other than the one a directory may hold are typos (`nodes.yaml`, `node.yml`);
    /// a directory named like a YAML file is a file gone wrong.
    fn check_stray_files(&self, allowed: &[&str], diags: &mut Diagnostics) {
        for name in &self.dirs {
            if is_yaml_name(name) && !allowed.contains(&name.as_str()) {
                diags.push(
                    Diagnostic::at_path(
                        self.dir.join(name),
                        format!("`{name}` is a directory, not a file"),
                    )
                    .with_help(format!(
                        "this directory may hold only {} and sub-directories; remove it",
                        allowed.join(", ")
                    )),
                );
            }
        }
        for name in &self.files {
            if is_yaml_name(name) && !allowed.contains(&name.as_str()) {
                diags.push(
                    Diagnostic::at_path(self.dir.join(name), format!("unexpected file `{name}`"))
                        .with_help(format!(
                            "this directory may hold only {}; rename or remove the file",
                            allowed.join(", ")
                        )),
                );
            }
        }
    }

    /// A node directory inside a node directory would never be read: nodes do not nest.
    fn check_nested_nodes(&self, diags: &mut Diagnostics) {
        for (name, dir) in self.subdirs() {
            if std::fs::symlink_metadata(dir.join("node.yaml")).is_ok() {
                diags.push(
                    Diagnostic::at_path(
                        dir.join("node.yaml"),
                        format!("node `{name}` is inside another node's directory"),
                    )
                    .with_help("nodes do not nest: move its directory up, beside the other nodes of the region"),
                );
            }
        }
    }
}

fn is_yaml_name(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

fn cannot_read(path: &Path, err: &std::io::Error) -> Diagnostic {
    let (why, help) = match err.kind() {
        std::io::ErrorKind::PermissionDenied => (
            "permission denied".to_string(),
            "orch must be able to list and read every directory of the tree; check its permissions",
        ),
        _ => (
            err.to_string(),
            "check that the directory exists and is readable",
        ),
    };
    Diagnostic::at_path(path, format!("cannot read {}: {why}", path.display())).with_help(help)
}

/// Checks a directory name; errors point at the directory's own YAML file when it has one.
fn named_ok(
    name: &str,
    dir: &Path,
    file: Option<Span>,
    what: &str,
    diags: &mut Diagnostics,
) -> bool {
    match check_name(name) {
        Ok(()) => true,
        Err(why) => {
            let rename = ascii_spelling(name)
                .filter(|ascii| check_name(ascii).is_ok())
                .unwrap_or_else(|| suggest_name(name));
            let d = anchored(file, dir, format!("bad {what} directory name: {why}"))
                .with_help(format!("rename the directory to `{rename}`"));
            diags.push(d);
            false
        }
    }
}

fn anchored(span: Option<Span>, dir: &Path, message: String) -> Diagnostic {
    match span {
        Some(span) => Diagnostic::error(span, message),
        None => Diagnostic::at_path(dir, message),
    }
}

fn suggest_name(name: &str) -> String {
    let cleaned: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(super::address::MAX_NAME)
        .collect();
    let trimmed = cleaned.trim_start_matches(['-', '_']).to_string();
    if trimmed.is_empty() {
        "node".to_string()
    } else {
        trimmed
    }
}
