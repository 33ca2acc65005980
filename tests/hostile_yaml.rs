//! Hostile YAML: files built to crash, hang or fool the reader of `live/` files. Each test checks
//! exit code 1 without a panic, the exact `file:line` (and column where it matters), the message,
//! and that `render --all` writes nothing (`common::Tree::rejects`); or, for input that is valid
//! YAML in disguise (a byte-order mark, CRLF line ends), that the tree validates.

mod common;

use std::time::{Duration, Instant};

use common::Tree;

const ORCH: &str = "live/orch.yaml";
const PROD: &str = "live/prod/account.yaml";
const REGION: &str = "live/prod/us-east-1/region.yaml";
const APP: &str = "live/dev/us-east-1/app/node.yaml";

/// The base tree's dev/app node, which the tests below rewrite.
const APP_TEXT: &str = "description: Encrypts dev app data
aliases: [dev/app]
key_users: [arn:aws:iam::222222222222:role/app]
";

const DEPTH: &str = "lists and mappings nested more than 64 levels deep";

/// Writes raw bytes (not UTF-8, NUL bytes) to `path` of the tree.
fn bytes(tree: Tree, path: &str, content: &[u8]) -> Tree {
    std::fs::write(tree.path(path), content).unwrap();
    tree
}

/// `- - - ... x`: a block list nested `depth` deep on one line.
fn compact_list(depth: usize) -> String {
    "- ".repeat(depth) + "x\n"
}

// ---- Deep nesting: any style, any file, is a depth error at the level that crosses the limit --

#[test]
fn block_list_10000_deep_in_compact_form() {
    let out = Tree::new()
        .file(
            APP,
            &format!("description: x\naliases:\n{}", compact_list(10_000)),
        )
        .rejects(&[&format!("{APP}:3")], &[DEPTH]);
    // The top-level mapping is level 1 and `aliases` level 2: the 64th `-` opens level 65.
    assert!(out.stderr.contains("node.yaml:3:127"), "{}", out.stderr);
}

#[test]
fn block_list_nested_one_level_per_line() {
    // `-` with nothing after it, then a `-` one column deeper: each line is a list in the last.
    let nested: String = (0..1_000)
        .map(|i| format!("{}-\n", " ".repeat(i)))
        .collect();
    Tree::new()
        .file(APP, &format!("description: x\naliases:\n{nested}"))
        .rejects(&[&format!("{APP}:66")], &[DEPTH]);
}

#[test]
fn block_mapping_1000_deep() {
    let nested: String = (0..1_000)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i + 1)))
        .collect();
    Tree::new()
        .file(APP, &format!("description: x\ntags:\n{nested}"))
        .rejects(&[&format!("{APP}:66")], &[DEPTH]);
}

#[test]
fn lists_of_mappings_of_lists_nested_deep() {
    // `- a:` then `  - a:` ...: every line opens a list and a mapping.
    let nested: String = (0..200)
        .map(|i| format!("{}- a:\n", " ".repeat(2 * i)))
        .collect();
    Tree::new()
        .file(APP, &format!("description: x\naliases:\n{nested}"))
        .rejects(&[&format!("{APP}:34")], &[DEPTH]);
}

#[test]
fn compact_lists_and_flow_mappings_mixed() {
    let text = format!(
        "description: x\naliases:\n{}{}x{}\n",
        "- ".repeat(40),
        "{a: [".repeat(20),
        "]}".repeat(20)
    );
    Tree::new()
        .file(APP, &text)
        .rejects(&[&format!("{APP}:3")], &[DEPTH]);
}

#[test]
fn flow_list_300_deep() {
    let text = format!(
        "description: x\naliases: {}x{}\n",
        "[".repeat(300),
        "]".repeat(300)
    );
    Tree::new()
        .file(APP, &text)
        .rejects(&[&format!("{APP}:2")], &[DEPTH]);
}

#[test]
fn flow_mapping_100_deep_points_at_level_65() {
    let text = format!(
        "description: x\ntags: {}x{}\n",
        "{a: ".repeat(100),
        "}".repeat(100)
    );
    let out = Tree::new()
        .file(APP, &text)
        .rejects(&[&format!("{APP}:2")], &[DEPTH]);
    // `tags: ` is 6 columns and each `{a: ` 4 more; level 2 opens at column 7.
    assert!(
        out.stderr.contains(&format!("node.yaml:2:{}", 7 + 63 * 4)),
        "{}",
        out.stderr
    );
}

#[test]
fn deep_nesting_in_each_kind_of_file() {
    let deep = format!("z:\n{}", compact_list(10_000));
    Tree::new()
        .file(ORCH, &format!("defaults:\n  deletion_window_days: 30\n{deep}"))
        .file(
            PROD,
            &format!(
                "account_id: \"111111111111\"\nenvironment: prod\nrole_arn: arn:aws:iam::111111111111:role/orch-deployer\nregions: [us-east-1, eu-west-1]\n{deep}"
            ),
        )
        .file(REGION, &format!("defaults: {{}}\n{deep}"))
        .file(APP, &format!("{APP_TEXT}{deep}"))
        .rejects(
            &[
                &format!("{ORCH}:4"),
                &format!("{PROD}:6"),
                &format!("{REGION}:3"),
                &format!("{APP}:5"),
            ],
            &[DEPTH],
        );
}

#[test]
fn nesting_at_the_limit_reaches_decoding() {
    // 62 mappings under `tags` (levels 3..=64, `tags` itself level 2): read whole, then refused
    // by the decoder, whose walk over the value must not fail either.
    let value = format!("{}x{}", "{a: ".repeat(62), "}".repeat(62));
    let out = Tree::new()
        .file(APP, &format!("{APP_TEXT}tags: {{k: {value}}}\n"))
        .rejects(&[&format!("{APP}:4")], &["must be a single value"]);
    assert!(!out.stderr.contains(DEPTH), "{}", out.stderr);
}

#[test]
fn deep_defaults_layered_over_deep_defaults() {
    // The same deep mapping in orch.yaml, account.yaml and the node: layering merges them level
    // by level, all 60 levels down.
    let deep = |leaf: &str| format!("{}{leaf}{}", "{a: ".repeat(60), "}".repeat(60));
    Tree::new()
        .file(
            ORCH,
            &format!("defaults:\n  encryption_context: {}\n", deep("x")),
        )
        .file(
            APP,
            &format!("{APP_TEXT}encryption_context: {}\n", deep("y")),
        )
        .rejects(&[&format!("{APP}:4")], &["must be a single value"]);
}

// ---- A file is read whole or refused: NUL bytes, other documents, other encodings, size ------

#[test]
fn nul_byte_in_the_middle_of_a_node() {
    // Before, everything after the NUL was dropped: the typo on line 2 went unnoticed.
    let out = Tree::new()
        .file(
            APP,
            "description: x\0\nkey_usrs: [arn:aws:iam::222222222222:role/app]\n",
        )
        .rejects(&[&format!("{APP}:1")], &["a NUL byte in the file"]);
    assert!(out.stderr.contains("node.yaml:1:15"), "{}", out.stderr);
}

#[test]
fn nul_byte_in_account_yaml_hides_no_region() {
    Tree::new()
        .file(
            PROD,
            "account_id: \"111111111111\"\nenvironment: prod\n\0role_arn: arn:aws:iam::111111111111:role/orch-deployer\nregions: [us-east-1, eu-west-1]\n",
        )
        .rejects(&[&format!("{PROD}:3")], &["a NUL byte in the file"]);
}

#[test]
fn second_document_after_dashes() {
    Tree::new()
        .file(APP, &format!("{APP_TEXT}---\nkey_users: []\n"))
        .rejects(
            &[&format!("{APP}:4")],
            &[
                "a second YAML document in the file",
                "remove the `---` line",
            ],
        );
}

#[test]
fn empty_second_document() {
    Tree::new()
        .file(ORCH, "defaults:\n  deletion_window_days: 30\n---\n")
        .rejects(&[&format!("{ORCH}:3")], &["a second YAML document"]);
}

#[test]
fn document_end_marker_then_more() {
    Tree::new()
        .file(APP, &format!("{APP_TEXT}...\nkey_users: []\n"))
        .rejects(&[&format!("{APP}:5")], &["a second YAML document"]);
}

#[test]
fn invalid_utf8_names_the_line_and_the_byte() {
    let mut text = APP_TEXT.as_bytes().to_vec();
    text.extend_from_slice(b"tags: {Team: caf\xe9}\n");
    let out = bytes(Tree::new(), APP, &text).rejects(
        &[&format!("{APP}:4")],
        &["is not valid UTF-8 (byte 0xE9)", "save the file as UTF-8"],
    );
    assert!(out.stderr.contains("node.yaml:4:17"), "{}", out.stderr);
}

#[test]
fn utf16_file() {
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain("defaults: {}\n".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    bytes(Tree::new(), REGION, &utf16).rejects(
        &[&format!("{REGION}:1")],
        &["is not valid UTF-8", "the file is UTF-16; save it as UTF-8"],
    );
}

#[test]
fn utf16_without_byte_order_mark_is_full_of_nul_bytes() {
    let utf16: Vec<u8> = "defaults: {}\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    bytes(Tree::new(), REGION, &utf16)
        .rejects(&[&format!("{REGION}:1")], &["a NUL byte", "UTF-16"]);
}

#[test]
fn escape_character_in_a_value() {
    Tree::new()
        .file(APP, "description: \"red \x1b[31m text\"\n")
        .rejects(&[&format!("{APP}:1")], &["control character U+001B"]);
}

#[test]
fn delete_character_in_a_key() {
    Tree::new()
        .file(APP, &format!("{APP_TEXT}ta\x7fgs: {{}}\n"))
        .rejects(&[&format!("{APP}:4")], &["control character U+007F"]);
}

#[test]
fn file_over_eight_mebibytes() {
    let padding = "# padding\n".repeat(840_000);
    Tree::new()
        .file(APP, &format!("{APP_TEXT}{padding}"))
        .rejects(&[APP], &["is larger than 8192 KiB"]);
}

// ---- Byte-order mark: skipped, positions unchanged -------------------------------------------

#[test]
fn byte_order_mark_in_every_kind_of_file() {
    let tree = Tree::new()
        .file(REGION, "defaults: {}\n")
        .file(ORCH, "defaults:\n  deletion_window_days: 30\n");
    for path in [ORCH, PROD, REGION, APP] {
        let text = tree.read(path);
        std::fs::write(tree.path(path), format!("\u{feff}{text}")).unwrap();
    }
    let out = tree.run(&["validate"]);
    out.assert_success();
    assert_eq!(out.stderr, "");
}

#[test]
fn byte_order_mark_keeps_line_and_column() {
    let out = Tree::new()
        .file(
            APP,
            "\u{feff}description: x\nkey_usrs: [arn:aws:iam::222222222222:role/app]\n",
        )
        .rejects(&[&format!("{APP}:2")], &["unknown field `key_usrs`"]);
    assert!(out.stderr.contains("node.yaml:2:1"), "{}", out.stderr);
    assert_eq!(out.errors().len(), 1, "{}", out.stderr);
}

#[test]
fn byte_order_mark_inside_the_file() {
    // Two files joined: the second one's mark would hide inside the name `\u{feff}key_users`.
    Tree::new()
        .file(
            APP,
            "description: x\n\u{feff}key_users: [arn:aws:iam::222222222222:role/app]\n",
        )
        .rejects(
            &[&format!("{APP}:2")],
            &["a byte-order mark (U+FEFF) inside the file"],
        );
}

// ---- Tabs: reported on the line and column of the tab ----------------------------------------

#[test]
fn tab_indenting_the_line_after_a_value() {
    // yaml-rust2 marks this at the start of `x` on line 1; the tab is on line 2.
    let out = Tree::new()
        .file(APP, "description: x\n\tkey_users: [a]\n")
        .rejects(&[&format!("{APP}:2")], &["a tab in the indentation"]);
    assert!(out.stderr.contains("node.yaml:2:1"), "{}", out.stderr);
}

#[test]
fn tab_indenting_a_nested_field() {
    let out = Tree::new()
        .file(APP, &format!("{APP_TEXT}tags:\n  Team: a\n \tOwner: b\n"))
        .rejects(&[&format!("{APP}:6")], &["a tab in the indentation"]);
    assert!(out.stderr.contains("node.yaml:6:2"), "{}", out.stderr);
}

#[test]
fn tab_indenting_a_block_scalar() {
    Tree::new()
        .file(APP, "description: |\n\tEncrypts data\n")
        .rejects(&[&format!("{APP}:2")], &["a tab in the indentation"]);
}

#[test]
fn tab_after_a_colon() {
    Tree::new()
        .file(APP, &format!("{APP_TEXT}deletion_window_days:\t7\n"))
        .rejects(&[&format!("{APP}:4")], &["a tab after `:`"]);
}

#[test]
fn tab_inside_a_quoted_value_is_text() {
    Tree::new()
        .file(
            APP,
            "description: \"Encrypts\tdev data\"\naliases: [dev/app]\nkey_users: [arn:aws:iam::222222222222:role/app]\n",
        )
        .run(&["validate"])
        .assert_success();
}

// ---- Line endings: CRLF and a lone CR are line ends, as in YAML ------------------------------

#[test]
fn crlf_tree_is_valid() {
    let tree = Tree::new();
    for path in [ORCH, PROD, APP] {
        let text = tree.read(path).replace('\n', "\r\n");
        std::fs::write(tree.path(path), text).unwrap();
    }
    tree.run(&["validate"]).assert_success();
}

#[test]
fn crlf_error_keeps_line_and_column() {
    let out = Tree::new()
        .file(APP, "description: x\r\n  \r\nkey_usrs: [a]\r\n")
        .rejects(&[&format!("{APP}:3")], &["unknown field `key_usrs`"]);
    assert!(out.stderr.contains("node.yaml:3:1"), "{}", out.stderr);
    assert!(!out.stderr.contains('\r'), "a CR reached the terminal");
}

#[test]
fn lone_cr_line_ends() {
    Tree::new()
        .file(APP, "description: x\rkey_usrs: [a]\r")
        .rejects(&[&format!("{APP}:2")], &["unknown field `key_usrs`"]);
}

// ---- Anchors, aliases, tags and merge keys: refused, never expanded or ignored ---------------

#[test]
fn anchor_and_alias() {
    Tree::new()
        .file(
            APP,
            &format!("{APP_TEXT}tags: &t {{Team: a}}\nencryption_context: *t\n"),
        )
        .rejects(
            &[&format!("{APP}:4")],
            &["YAML anchors and aliases are not supported"],
        );
}

#[test]
fn merge_key() {
    Tree::new()
        .file(APP, &format!("{APP_TEXT}<<: {{deletion_window_days: 7}}\n"))
        .rejects(
            &[&format!("{APP}:4")],
            &["YAML merge keys (`<<`) are not supported"],
        );
}

#[test]
fn standard_tag() {
    Tree::new()
        .file(APP, &format!("{APP_TEXT}deletion_window_days: !!int 7\n"))
        .rejects(
            &[&format!("{APP}:4")],
            &["YAML tags (`!name`) are not supported"],
        );
}

#[test]
fn custom_tag_on_a_mapping() {
    Tree::new()
        .file(APP, &format!("{APP_TEXT}tags: !Ref\n  Team: a\n"))
        .rejects(
            &[&format!("{APP}:5")],
            &["YAML tags (`!name`) are not supported"],
        );
}

// ---- Keys that are not names ----------------------------------------------------------------

#[test]
fn list_as_a_key() {
    Tree::new()
        .file(APP, &format!("{APP_TEXT}? [a, b]\n: c\n"))
        .rejects(
            &[&format!("{APP}:4")],
            &["a mapping key must be a plain name"],
        );
}

#[test]
fn flow_mapping_as_a_key() {
    Tree::new()
        .file(APP, &format!("{APP_TEXT}tags: {{{{a: b}}: c}}\n"))
        .rejects(
            &[&format!("{APP}:4")],
            &["a mapping key must be a plain name"],
        );
}

#[test]
fn null_and_empty_keys() {
    Tree::new()
        .file(APP, &format!("{APP_TEXT}tags:\n  ~: a\n"))
        .rejects(&[&format!("{APP}:5")], &["a mapping key is empty (null)"]);
    Tree::new()
        .file(APP, &format!("{APP_TEXT}: a\n"))
        .rejects(&[&format!("{APP}:4")], &["a mapping key is empty (null)"]);
}

#[test]
fn quoted_and_plain_key_are_the_same_field() {
    Tree::new()
        .file(APP, &format!("{APP_TEXT}\"description\": again\n"))
        .rejects(
            &[&format!("{APP}:4"), &format!("{APP}:1")],
            &["field `description` is set twice in this mapping"],
        );
}

#[test]
fn number_as_a_key_is_an_unknown_field() {
    Tree::new()
        .file(APP, &format!("{APP_TEXT}1: x\n"))
        .rejects(&[&format!("{APP}:4")], &["unknown field `1` in node.yaml"]);
}

// ---- Size: long lines are quoted in part, many findings do not hang --------------------------

#[test]
fn error_far_along_a_200000_character_line() {
    let text = format!(
        "{APP_TEXT}tags: {{{} Bad: [x]}}\n",
        (0..20_000).map(|i| format!("K{i}: v,")).collect::<String>()
    );
    let column = text.lines().nth(3).unwrap().find("[x]").unwrap() + 1;
    let out = Tree::new()
        .file(APP, &text)
        .rejects(&[&format!("{APP}:4")], &["must be a single value"]);
    assert!(
        out.stderr.contains(&format!("node.yaml:4:{column}")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.len() < 2_000,
        "the whole line was quoted: {} bytes of stderr",
        out.stderr.len()
    );
}

#[test]
fn a_hundred_thousand_findings_print_quickly() {
    // Each repeat of `dev/app` is an error of its own, all on line 2.
    let text = format!(
        "description: x\naliases: [{}dev/app]\n",
        "dev/app, ".repeat(100_000)
    );
    let tree = Tree::new().file(APP, &text);
    let started = Instant::now();
    let out = tree.run(&["validate"]);
    let took = started.elapsed();
    out.assert_invalid();
    out.assert_points_at(&format!("{APP}:2"));
    let count = out.reported_count();
    assert!(count >= 100_000, "only {count} errors");
    assert!(
        out.stderr.contains(&format!(
            "... and {} more finding(s) not shown",
            count - 200
        )),
        "{}",
        &out.stderr[out.stderr.len().saturating_sub(500)..]
    );
    assert!(took < Duration::from_secs(20), "validate took {took:?}");
}

// ---- The fuzzer's seeds: every one answered with exit 0 or 1, never a crash ------------------

#[test]
fn fuzz_seeds_never_crash() {
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/files");
    let mut count = 0;
    for entry in std::fs::read_dir(&seeds).expect("fuzz/seeds/files exists") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let Some((&pick, content)) = data.split_first() else {
            continue;
        };
        // The same choice as fuzz/fuzz_targets/files.rs: the first byte picks the kind of file.
        let target = [ORCH, PROD, REGION, APP][usize::from(pick) % 4];
        let tree = bytes(Tree::new().file(REGION, "defaults: {}\n"), target, content);
        let out = tree.run(&["validate"]);
        assert!(
            !out.stderr.contains("panicked") && (out.code == 0 || out.code == 1),
            "seed {} ended with code {}:\n{}",
            path.display(),
            out.code,
            out.stderr
        );
        count += 1;
    }
    assert!(count >= 20, "only {count} seeds in {}", seeds.display());
}
