//! Every YAML example of the documentation (README.md and docs/**/*.md), checked for real.
//!
//! Each ```yaml fenced block must parse as YAML. Its first line says what else it is:
//!
//! - `# live/<path>`, where the path ends in `orch.yaml`, `account.yaml`, `region.yaml` or
//!   `node.yaml`: a whole file. It is written at that path into a copy of the shipped `live/`
//!   tree (over the shipped file, if there is one) and `orch validate` must accept the tree.
//! - `# live/<path> (orch validate rejects it: MESSAGE)`: a whole file that shows an error on
//!   purpose. `orch validate` must reject the tree, no panic and nothing run, with MESSAGE in
//!   its errors, pointing at the example's file.
//! - `# in live/<path>`: a fragment of that file. Its top-level keys replace the shipped file's
//!   (or start a new file), and `orch validate` must accept the tree.
//! - anything else (a GitHub Actions workflow, say): parsing is the check.
//!
//! The file is written as the example shows it, its first-line comment included, so a line number
//! in an error is the example's own line.
//!
//! The transcripts are checked too: in a ```text or ```sh block, a line `$ orch ARGS` of a
//! command that only reads the tree (validate, graph, explain, policy, render) is run on a copy of
//! the shipped tree, and what it prints must be the lines that follow, up to the next `$ ` line; a
//! line `...` stands for lines left out. An output that shows the `descriptoin` typo is run with
//! that typo made in `prod/us-east-1/s3-data`, as the docs tell the reader to make it.
//!
//! Every other orch command line shown (`$ orch ...`, `target/release/orch ...` in a workflow's
//! `run:`, each row of a command table) must be one orch accepts: its command and options exist.
//!
//! And the links: every relative link of README.md and docs/ names a file, and a `#fragment` one
//! of its headings (mdBook does not check them).

mod common;

use std::path::{Path, PathBuf};

use common::{shipped_live, Tree};

/// One ```yaml block of a Markdown file.
struct Example {
    /// `README.md` or `docs/...`, relative to the repository.
    doc: String,
    /// The line of the opening fence, 1-based.
    line: usize,
    /// The block's text, without the fences and without the fence's indentation.
    text: String,
}

impl Example {
    fn at(&self) -> String {
        format!("{}:{}", self.doc, self.line)
    }

    fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or("").trim()
    }

    fn kind(&self) -> Kind {
        let first = self.first_line();
        if let Some(path) = first.strip_prefix("# in ") {
            if is_tree_file(path) {
                return Kind::Fragment(path.to_string());
            }
        }
        if let Some(rest) = first.strip_prefix("# ") {
            let (path, note) = rest.split_once(' ').unwrap_or((rest, ""));
            if is_tree_file(path) {
                let rejected = note
                    .strip_prefix("(orch validate rejects it: ")
                    .and_then(|n| n.strip_suffix(')'))
                    .map(str::to_string);
                return Kind::Whole {
                    path: path.to_string(),
                    rejected,
                };
            }
        }
        Kind::Other
    }
}

enum Kind {
    Whole {
        path: String,
        rejected: Option<String>,
    },
    Fragment(String),
    Other,
}

/// A path of a file orch reads in a tree: `live/orch.yaml`, `live/<account>/account.yaml`,
/// `live/<account>/<region>/region.yaml`, `live/<account>/<region>/<node>/node.yaml`.
fn is_tree_file(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    parts[0] == "live"
        && parts[1..].iter().all(|p| !p.is_empty() && *p != "..")
        && matches!(
            (parts.len(), parts.last().copied()),
            (2, Some("orch.yaml"))
                | (3, Some("account.yaml"))
                | (4, Some("region.yaml"))
                | (5, Some("node.yaml"))
        )
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every Markdown file under docs/, sorted.
fn documents() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {dir:?}: {e}")) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|x| x == "md") {
                found.push(path);
            }
        }
    }
    let mut found = vec![repo().join("README.md")];
    walk(&repo().join("docs"), &mut found);
    found.sort();
    found
}

/// Every fenced block of `text` in one of `languages`. A fence may be indented (a block inside a
/// list item); that indentation is removed from the block's lines.
fn blocks(doc: &str, text: &str, languages: &[&str]) -> Vec<Example> {
    let mut examples = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let indent = line.len() - line.trim_start().len();
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let language = info.split_whitespace().next().unwrap_or("");
        let mut body = Vec::new();
        let mut closed = false;
        for (_, inner) in lines.by_ref() {
            if inner.trim() == "```" {
                closed = true;
                break;
            }
            body.push(inner.get(indent..).unwrap_or(inner.trim_start()));
        }
        assert!(closed, "{doc}:{}: a code block that never closes", n + 1);
        if languages.contains(&language) {
            examples.push(Example {
                doc: doc.to_string(),
                line: n + 1,
                text: body.join("\n") + "\n",
            });
        }
    }
    examples
}

/// Every ```yaml (or ```yml) block of `text`.
fn yaml_blocks(doc: &str, text: &str) -> Vec<Example> {
    blocks(doc, text, &["yaml", "yml"])
}

fn examples() -> Vec<Example> {
    all_blocks(&["yaml", "yml"])
}

fn all_blocks(languages: &[&str]) -> Vec<Example> {
    documents()
        .iter()
        .flat_map(|path| {
            let doc = path
                .strip_prefix(repo())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {doc}: {e}"));
            blocks(&doc, &text, languages)
        })
        .collect()
}

/// A copy of the shipped tree at `<tmp>/live`.
fn shipped_copy() -> Tree {
    Tree::empty().copy(&shipped_live(), "live")
}

/// Fails with every problem at once, each naming its example.
fn report(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} problem(s) in README.md and docs/:\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

#[test]
fn every_yaml_example_parses() {
    let examples = examples();
    let mut problems = Vec::new();
    for example in &examples {
        if let Err(err) = serde_yaml::from_str::<serde_yaml::Value>(&example.text) {
            problems.push(format!(
                "{}: not YAML: {err}\n{}",
                example.at(),
                example.text
            ));
        }
        if example
            .text
            .trim()
            .lines()
            .all(|l| l.trim_start().starts_with('#'))
        {
            problems.push(format!("{}: an example with nothing in it", example.at()));
        }
    }
    report(problems);
}

#[test]
fn whole_file_examples_load_in_the_shipped_tree() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for example in examples() {
        let Kind::Whole { path, rejected } = example.kind() else {
            continue;
        };
        checked += 1;
        let tree = shipped_copy().file(&path, &example.text);
        let out = tree.run(&["validate"]);
        match rejected {
            None if out.code != 0 => problems.push(format!(
                "{}: orch validate rejects the tree with {path} as the example shows it:\n{}",
                example.at(),
                out.stderr
            )),
            None => {}
            Some(message) => {
                let pointed = out
                    .locations()
                    .iter()
                    .any(|l| l.contains(&format!("/{path}:")));
                let found = out.errors().iter().any(|e| e.contains(&message));
                if out.code != 1
                    || out.stderr.contains("panicked")
                    || !out.stderr.contains("nothing was run")
                    || !pointed
                    || !found
                {
                    problems.push(format!(
                        "{}: expected orch validate to reject {path} with {message:?}, exit {}:\n{}{}",
                        example.at(),
                        out.code,
                        out.stdout,
                        out.stderr
                    ));
                }
            }
        }
    }
    // The docs show every kind of file whole; a count this low means the blocks are no longer
    // found (a changed marker or fence), not that there are fewer examples.
    assert!(
        checked >= 8,
        "only {checked} whole-file examples found in README.md and docs/"
    );
    report(problems);
}

#[test]
fn fragment_examples_merge_into_the_shipped_tree() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for example in examples() {
        let Kind::Fragment(path) = example.kind() else {
            continue;
        };
        checked += 1;
        let shipped = shipped_live().join(path.strip_prefix("live/").unwrap());
        let mut file = match std::fs::read_to_string(&shipped) {
            Ok(text) => serde_yaml::from_str::<serde_yaml::Mapping>(&text)
                .unwrap_or_else(|e| panic!("the shipped {path} is not a mapping: {e}")),
            Err(_) => serde_yaml::Mapping::new(),
        };
        let fragment: serde_yaml::Mapping = match serde_yaml::from_str(&example.text) {
            Ok(mapping) => mapping,
            Err(err) => {
                problems.push(format!(
                    "{}: a fragment of {path} must be a mapping of its top-level keys: {err}",
                    example.at()
                ));
                continue;
            }
        };
        for (key, value) in fragment {
            file.insert(key, value);
        }
        let text = serde_yaml::to_string(&file).unwrap();
        let tree = shipped_copy().file(&path, &text);
        let out = tree.run(&["validate"]);
        if out.code != 0 {
            problems.push(format!(
                "{}: orch validate rejects the shipped tree with this fragment in {path}:\n{}\n{}",
                example.at(),
                text,
                out.stderr
            ));
        }
    }
    assert!(
        checked >= 3,
        "only {checked} fragment examples found in README.md and docs/"
    );
    report(problems);
}

/// The extraction itself: fences in lists, other languages, and the markers.
#[test]
fn yaml_blocks_are_found_as_the_docs_write_them() {
    let text = "intro\n\n```yaml\n# live/orch.yaml\nparallelism: 2\n```\n\n- item:\n\n  ```yaml\n  # in live/prod/account.yaml\n  regions: [us-east-1]\n  ```\n\n```sh\nnot: yaml\n```\n\n```yaml\n# live/a/b/c/node.yaml (orch validate rejects it: boom)\nx: 1\n```\n";
    let blocks = yaml_blocks("t.md", text);
    assert_eq!(blocks.len(), 3);
    assert_eq!(blocks[0].line, 3);
    assert!(
        matches!(blocks[0].kind(), Kind::Whole { ref path, rejected: None } if path == "live/orch.yaml")
    );
    assert_eq!(
        blocks[1].text,
        "# in live/prod/account.yaml\nregions: [us-east-1]\n"
    );
    assert!(matches!(blocks[1].kind(), Kind::Fragment(ref p) if p == "live/prod/account.yaml"));
    assert!(
        matches!(blocks[2].kind(), Kind::Whole { ref rejected, .. } if rejected.as_deref() == Some("boom"))
    );
    assert!(!is_tree_file("live/prod/node.yaml"));
    assert!(!is_tree_file("live/../x/y/node.yaml"));
    assert!(is_tree_file("live/prod/us-east-1/region.yaml"));
}

/// The commands of a transcript whose output the test checks: they read the tree and write at
/// most `.orch/work`.
const READ_ONLY: &[&str] = &["validate", "graph", "explain", "policy", "render"];

/// `(args, expected output lines)` of each checked `$ orch ...` line of a transcript block.
fn transcripts(block: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let mut found = Vec::new();
    let mut lines = block.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(command) = line.strip_prefix("$ orch ") else {
            continue;
        };
        let command = command.split("  #").next().unwrap().trim();
        let mut output = Vec::new();
        while let Some(next) = lines.next_if(|l| !l.starts_with("$ ")) {
            output.push(next.to_string());
        }
        while output.last().is_some_and(|l| l.trim().is_empty()) {
            output.pop();
        }
        let args: Vec<String> = command.split_whitespace().map(str::to_string).collect();
        if READ_ONLY.contains(&args[0].as_str()) {
            found.push((args, output));
        }
    }
    found
}

/// Whether `actual` is `expected`, where a line `...` of `expected` stands for any lines.
fn matches_with_gaps(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first == "..." => {
            (0..=actual.len()).any(|skip| matches_with_gaps(rest, &actual[skip..]))
        }
        Some((first, rest)) => {
            actual.first().is_some_and(|a| a == first) && matches_with_gaps(rest, &actual[1..])
        }
    }
}

#[test]
fn transcripts_match_what_orch_prints() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for block in all_blocks(&["text", "sh", "console"]) {
        for (args, expected) in transcripts(&block.text) {
            checked += 1;
            let mut tree = shipped_copy();
            if expected.iter().any(|l| l.contains("descriptoin")) {
                let node = "live/prod/us-east-1/s3-data/node.yaml";
                let text = tree.read(node).replacen("description:", "descriptoin:", 1);
                tree = tree.file(node, &text);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            // `--live live` from the tree's directory, as the docs run orch from the repository.
            let out = common::orch(Path::new("live"), tree.root(), &args);
            let printed = format!("{}{}", out.stdout, out.stderr);
            let actual: Vec<&str> = printed.trim_end().lines().collect();
            if !matches_with_gaps(&expected, &actual) {
                problems.push(format!(
                    "{}: `orch {}` prints, on the shipped tree:\n{}\n\nbut the docs show:\n{}",
                    block.at(),
                    args.join(" "),
                    printed.trim_end(),
                    expected.join("\n")
                ));
            }
        }
    }
    assert!(
        checked >= 6,
        "only {checked} transcripts of orch found in README.md and docs/"
    );
    report(problems);
}

#[test]
fn transcripts_are_read_as_the_docs_write_them() {
    let block = "$ orch graph\na\nb\n\n$ orch validate          # with a typo\nerror: x\n$ scripts/sandbox orch plan --all\n$ orch plan --all\n";
    let found = transcripts(block);
    assert_eq!(found.len(), 2);
    assert_eq!(
        found[0],
        (vec!["graph".to_string()], vec!["a".into(), "b".into()])
    );
    assert_eq!(
        found[1],
        (vec!["validate".to_string()], vec!["error: x".into()])
    );
    let expected: Vec<String> = ["a", "...", "d"].map(String::from).to_vec();
    assert!(matches_with_gaps(&expected, &["a", "b", "c", "d"]));
    assert!(matches_with_gaps(&expected, &["a", "d"]));
    assert!(!matches_with_gaps(&expected, &["a", "b"]));
    assert!(!matches_with_gaps(&expected, &["a", "d", "e"]));
}

/// The id a heading gets, as GitHub and mdBook make it: lower case, spaces to `-`, punctuation
/// other than `-` and `_` dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The ids of the headings of a Markdown text, outside code blocks.
fn anchors(text: &str) -> Vec<String> {
    let mut in_code = false;
    let mut found = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            found.push(anchor(line.trim_start_matches('#')));
        }
    }
    found
}

/// `(target, line)` of every inline link `[text](target)` of a Markdown text, outside code.
fn links(text: &str) -> Vec<(String, usize)> {
    let mut in_code = false;
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        // Inline code can hold `](`; leave it out.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            if let Some(end) = rest.find(')') {
                found.push((rest[..end].to_string(), n + 1));
                rest = &rest[end..];
            }
        }
    }
    found
}

/// Every relative link of README.md and docs/ names a file that exists, and a `#fragment` names
/// a heading of that file: the README's links into the book and the book's links between pages.
#[test]
fn links_between_pages_resolve() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for path in documents() {
        let doc = path.strip_prefix(repo()).unwrap().display().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        for (target, line) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let target_path = if file.is_empty() {
                path.clone()
            } else {
                path.parent().unwrap().join(file)
            };
            let Ok(target_text) = std::fs::read_to_string(&target_path) else {
                if !target_path.is_dir() {
                    problems.push(format!("{doc}:{line}: `{target}` names no file"));
                }
                continue;
            };
            if !fragment.is_empty() && !anchors(&target_text).iter().any(|a| a == fragment) {
                problems.push(format!(
                    "{doc}:{line}: `{target}`: no heading with the id `{fragment}` in {file}"
                ));
            }
        }
    }
    assert!(checked >= 30, "only {checked} links found");
    report(problems);
}

#[test]
fn command_tables_are_read_as_the_docs_write_them() {
    let text = "| `orch graph --format text\\|dot` | x |\n| `orch render --all` / `orch render 'p/*' --with-deps` | y |\n| `orch rollout [--resume [RUN]] [--shard I/N]` | `orch not-this` |\n";
    let found = table_commands(text);
    let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
    assert_eq!(
        found,
        vec![
            words("graph --format text"),
            words("render --all"),
            words("render p/* --with-deps"),
            words("rollout --resume RUN --shard 1/2"),
        ]
    );
}

#[test]
fn anchors_are_made_as_github_and_mdbook_make_them() {
    assert_eq!(
        anchor(" Provider reattach: measured, not built"),
        "provider-reattach-measured-not-built"
    );
    assert_eq!(
        anchor(" `generate tfvars` and your directory"),
        "generate-tfvars-and-your-directory"
    );
    assert_eq!(
        links("see [a](x.md#b) and `[c](d)` and [e](f.md)\n```\n[g](h)\n```\n"),
        vec![("x.md#b".to_string(), 1), ("f.md".to_string(), 1)]
    );
}

/// The arguments of every orch command line the docs show: `$ orch ...` and
/// `$ scripts/sandbox target/release/orch ...` in transcripts, and `target/release/orch ...` in
/// the `run:` steps of a workflow. A shell comment, `)`, a pipe or a redirection ends them; a
/// `${{ matrix.shard }}` stands for a shard.
fn command_lines(text: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.trim().replace("${{ matrix.shard }}", "1/2");
        let rest = if let Some(command) = line.strip_prefix("$ ") {
            command
                .split_whitespace()
                .position(|w| w == "orch" || w.ends_with("/orch"))
                .map(|i| command.split_whitespace().skip(i + 1).collect::<Vec<_>>())
        } else if line.contains("run: ") {
            line.split_once("target/release/orch ")
                .map(|(_, args)| args.split_whitespace().collect())
        } else {
            None
        };
        let Some(words) = rest else { continue };
        let args: Vec<String> = words
            .iter()
            .take_while(|w| !w.starts_with('#') && !matches!(**w, "|" | ">>" | ">" | "&&"))
            .map(|w| {
                w.trim_matches(|c| matches!(c, '"' | '\'' | ')'))
                    .to_string()
            })
            .collect();
        found.push(args);
    }
    found
}

/// The commands of the command tables (`| `orch validate` | ... |`): each code span of a row's
/// first cell, with `[optional]` parts written out, the first of `a\|b` alternatives, and a
/// shard (`1/2`) and a count (`2`) for the placeholders `I/N` and `N`.
fn table_commands(text: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("| `orch ")) {
        let cell = line[1..].split(" | ").next().unwrap();
        for span in cell.split('`').skip(1).step_by(2) {
            let Some(args) = span.strip_prefix("orch ") else {
                continue;
            };
            let args = args.replace(['[', ']'], "");
            found.push(
                args.split_whitespace()
                    .map(|w| w.split("\\|").next().unwrap().trim_matches('\''))
                    // The placeholders of values orch checks as it parses them.
                    .map(|w| match w {
                        "I/N" => "1/2".to_string(),
                        "N" => "2".to_string(),
                        w => w.to_string(),
                    })
                    .collect(),
            );
        }
    }
    found
}

/// Every orch command line of the docs is one orch accepts: its command and options exist (clap
/// checks them before it prints `--help`).
#[test]
fn every_orch_command_line_is_accepted() {
    let tree = shipped_copy();
    let mut problems = Vec::new();
    let mut checked = 0;
    for block in all_blocks(&["text", "sh", "console", "yaml", ""]) {
        for args in command_lines(&block.text) {
            checked += 1;
            let mut with_help: Vec<&str> = args.iter().map(String::as_str).collect();
            with_help.push("--help");
            let out = common::orch(Path::new("live"), tree.root(), &with_help);
            if out.code != 0 {
                problems.push(format!(
                    "{}: `orch {}` is not a command line orch accepts:\n{}",
                    block.at(),
                    args.join(" "),
                    out.stderr
                ));
            }
        }
    }
    for path in documents() {
        let doc = path.strip_prefix(repo()).unwrap().display().to_string();
        for args in table_commands(&std::fs::read_to_string(&path).unwrap()) {
            checked += 1;
            let mut with_help: Vec<&str> = args.iter().map(String::as_str).collect();
            with_help.push("--help");
            let out = common::orch(Path::new("live"), tree.root(), &with_help);
            if out.code != 0 {
                problems.push(format!(
                    "{doc}: the command table's `orch {}` is not a command line orch accepts:\n{}",
                    args.join(" "),
                    out.stderr
                ));
            }
        }
    }
    assert!(checked >= 50, "only {checked} orch command lines found");
    report(problems);
}
