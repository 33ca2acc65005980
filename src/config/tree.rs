//! Discovery of the `live/` tree on disk: which accounts, regions and nodes exist, and their files
//! parsed. Names are checked here; what the files say is checked in `resolve.rs`.

use std::path::{Path, PathBuf};

use super::address::check_name;
use super::regions;
use super::yaml::{self, YamlFile};
use crate::diag::{did_you_mean, Diagnostic, Diagnostics, Sources, Span};

pub struct RawTree {
    pub fleet: Option<YamlFile>,
    pub accounts: Vec<RawAccount>,
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
    /// Nodes whose node.yaml exists but does not parse (the error is reported already).
    pub broken: Vec<String>,
}

pub struct RawNode {
    pub name: String,
    pub file: YamlFile,
}

/// Reads the tree under `live`, collecting every problem rather than stopping at the first.
pub fn discover(live: &Path, sources: &mut Sources, diags: &mut Diagnostics) -> RawTree {
    let fleet = load_optional(&live.join("orch.yaml"), sources, diags);
    if fleet.is_none() && !live.join("orch.yaml").exists() {
        diags.push(
            Diagnostic::at_path(live, format!("no orch.yaml in {}", live.display()))
                .with_help("every live/ tree starts with an orch.yaml (it may be empty); pass --live DIR if the tree is elsewhere"),
        );
    }
    check_stray_files(live, &["orch.yaml"], diags);
    let mut accounts = Vec::new();
    for (name, dir) in subdirs(live, diags) {
        let file = load_optional(&dir.join("account.yaml"), sources, diags);
        if !named_ok(&name, &dir, file.as_ref(), "account", diags) {
            continue;
        }
        if file.is_none() && !dir.join("account.yaml").exists() {
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
        check_stray_files(&dir, &["account.yaml"], diags);
        let mut regions_found = Vec::new();
        for (region, region_dir) in subdirs(&dir, diags) {
            let file = load_optional(&region_dir.join("region.yaml"), sources, diags);
            let anchor = file.as_ref().map(|f| Span::file(f.source));
            if !named_ok(&region, &region_dir, file.as_ref(), "region", diags) {
                continue;
            }
            if !regions::is_known(&region) {
                let mut d = anchored(
                    anchor,
                    &region_dir,
                    format!("`{region}` is not an AWS region"),
                );
                d = match did_you_mean(&region, regions::REGIONS.iter().copied()) {
                    Some(near) => {
                        d.with_help(format!("did you mean `{near}`? rename the directory"))
                    }
                    None => d.with_help(
                        "region directories are named after AWS regions, e.g. us-east-1",
                    ),
                };
                diags.push(d);
                continue;
            }
            check_stray_files(&region_dir, &["region.yaml"], diags);
            let mut nodes = Vec::new();
            let mut broken = Vec::new();
            for (node, node_dir) in subdirs(&region_dir, diags) {
                let path = node_dir.join("node.yaml");
                let file = load_optional(&path, sources, diags);
                if !named_ok(&node, &node_dir, file.as_ref(), "node", diags) {
                    continue;
                }
                check_stray_files(&node_dir, &["node.yaml"], diags);
                match file {
                    Some(file) => nodes.push(RawNode { name: node, file }),
                    None if !path.exists() => diags.push(
                        Diagnostic::at_path(
                            &node_dir,
                            format!("node directory `{node}` has no node.yaml"),
                        )
                        .with_help("add a node.yaml, or remove the directory"),
                    ),
                    None => broken.push(node),
                }
            }
            regions_found.push(RawRegion {
                name: region,
                file,
                nodes,
                broken,
            });
        }
        accounts.push(RawAccount {
            name,
            file,
            regions: regions_found,
        });
    }
    RawTree { fleet, accounts }
}

fn load_optional(path: &Path, sources: &mut Sources, diags: &mut Diagnostics) -> Option<YamlFile> {
    if !path.is_file() {
        return None;
    }
    match yaml::load(path, sources) {
        Ok(file) => Some(file),
        Err(d) => {
            diags.push(d);
            None
        }
    }
}

/// Sub-directories in name order; hidden ones (`.terraform`, `.git`) are not part of the tree.
fn subdirs(dir: &Path, diags: &mut Diagnostics) -> Vec<(String, PathBuf)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            diags.push(Diagnostic::at_path(
                dir,
                format!("cannot read directory {}: {err}", dir.display()),
            ));
            return Vec::new();
        }
    };
    let mut found: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(name, _)| !name.starts_with('.'))
        .collect();
    found.sort();
    found
}

/// Checks a directory name; errors point at the directory's own YAML file when it has one.
fn named_ok(
    name: &str,
    dir: &Path,
    file: Option<&YamlFile>,
    what: &str,
    diags: &mut Diagnostics,
) -> bool {
    match check_name(name) {
        Ok(()) => true,
        Err(why) => {
            let d = anchored(
                file.map(|f| Span::file(f.source)),
                dir,
                format!("bad {what} directory name: {why}"),
            )
            .with_help(format!("rename the directory to `{}`", suggest_name(name)));
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
        .collect();
    let trimmed = cleaned.trim_start_matches(['-', '_']).to_string();
    if trimmed.is_empty() {
        "node".to_string()
    } else {
        trimmed
    }
}

/// YAML files other than the one a directory may hold are typos (`nodes.yaml`, `node.yml`).
fn check_stray_files(dir: &Path, allowed: &[&str], diags: &mut Diagnostics) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut stray: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| (n.ends_with(".yaml") || n.ends_with(".yml")) && !allowed.contains(&n.as_str()))
        .collect();
    stray.sort();
    for name in stray {
        diags.push(
            Diagnostic::at_path(dir.join(&name), format!("unexpected file `{name}`")).with_help(
                format!(
                    "this directory may hold only {}; rename or remove the file",
                    allowed.join(", ")
                ),
            ),
        );
    }
}
