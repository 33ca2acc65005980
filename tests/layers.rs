//! The direction of knowledge in `src/` (DESIGN §11): every use of `crate::<module>` goes to the
//! module's own layer or one below it in `layers.txt`, every module is in a layer, and no
//! modules use each other in a circle. A module is a file of `src/` or a folder of it (its files
//! are one module), as `../shared/tools/modgraph` counts them; comments are not uses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Module name -> the modules it uses.
fn uses(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let module_of = |f: &Path| {
        let rel = f.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first.trim_end_matches(".rs").to_string()
    };
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(f))
        .filter(|m| m != "main" && m != "lib")
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let from = module_of(file);
        if !modules.contains(&from) {
            continue;
        }
        let text: String = std::fs::read_to_string(file)
            .unwrap()
            .lines()
            .map(|l| l.split("//").next().unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let mut names = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                for part in group.split(',') {
                    names.insert(part.trim().split("::").next().unwrap().to_string());
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                names.insert(name);
            }
        }
        let entry = edges.entry(from.clone()).or_default();
        for name in names {
            if modules.contains(&name) && name != from {
                entry.insert(name);
            }
        }
    }
    for m in modules {
        edges.entry(m).or_default();
    }
    edges
}

/// A circle of modules that use each other, if there is one.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            return Some(path[at..].to_vec());
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for next in &edges[m] {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|m| visit(m, edges, &mut Vec::new(), &mut done))
}

fn layers() -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(root().join("layers.txt")).unwrap();
    let mut level = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        for name in line.split('#').next().unwrap().split_whitespace() {
            assert!(
                level.insert(name.to_string(), i).is_none(),
                "layers.txt names {name} twice"
            );
        }
    }
    level
}

#[test]
fn every_use_goes_down_the_layers_and_no_module_cycle() {
    let edges = uses(&root().join("src"));
    let level = layers();
    let mut problems = Vec::new();
    for m in edges.keys() {
        if !level.contains_key(m) {
            problems.push(format!("src/{m} is in no layer of layers.txt"));
        }
    }
    for (from, tos) in &edges {
        for to in tos {
            if let (Some(a), Some(b)) = (level.get(from), level.get(to)) {
                if b > a {
                    problems.push(format!(
                        "{from} (layer {}) uses {to} (layer {}), which is above it",
                        a + 1,
                        b + 1
                    ));
                }
            }
        }
    }
    if let Some(c) = cycle(&edges) {
        problems.push(format!("modules in a circle: {}", c.join(" -> ")));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The check itself finds what it is for: a use up the layers, and a circle.
#[test]
fn the_check_finds_a_use_up_the_layers_and_a_circle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "mod a; mod b;").unwrap();
    std::fs::write(
        src.join("a.rs"),
        "use crate::b::X; // crate::c is a comment",
    )
    .unwrap();
    std::fs::create_dir(src.join("b")).unwrap();
    std::fs::write(src.join("b/mod.rs"), "use crate::{a::Y, b::Z};").unwrap();
    let edges = uses(src);
    assert_eq!(edges["a"], BTreeSet::from(["b".to_string()]));
    assert_eq!(edges["b"], BTreeSet::from(["a".to_string()]));
    assert!(cycle(&edges).is_some());
    std::fs::write(src.join("b/mod.rs"), "pub struct X;").unwrap();
    assert!(cycle(&uses(src)).is_none());
}
