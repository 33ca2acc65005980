//! A node's tags: `tags:` merged down the tree, k9's named tag fields, the tags orch adds, and
//! AWS's rules for tags.

use std::collections::BTreeMap;

use crate::config::address::Address;
use crate::config::decode::Fields;
use crate::diag::Span;

/// k9 Security's tagging model: named fields for the tags every resource should carry.
pub const K9_TAGS: [(&str, &str); 9] = [
    ("owner", "Owner"),
    ("application", "Application"),
    ("business_unit", "BusinessUnit"),
    ("business_process", "BusinessProcess"),
    ("cost_center", "CostCenter"),
    ("compliance_scheme", "ComplianceScheme"),
    ("confidentiality", "Confidentiality"),
    ("integrity", "Integrity"),
    ("availability", "Availability"),
];

/// A node's tags: `tags:` merged down the tree, then the k9 named fields (`owner: alice` is the
/// tag `Owner`, and wins over the same tag in `tags:`), then `Environment` (the account's) and
/// `ManagedBy: orch` unless set already. Checked against AWS's rules for tags, 50 at most.
/// `node` is the node (its address and where it is declared), for the error about too many tags.
pub fn read_tags(
    f: &mut Fields,
    environment: &str,
    node: (&Address, Span),
) -> BTreeMap<String, String> {
    // Where each tag was set, to say where too many tags came from.
    let mut origins: BTreeMap<String, Span> = BTreeMap::new();
    let mut tags = BTreeMap::new();
    for (k, v) in f.string_map("tags").unwrap_or_default() {
        if let Err(why) = check_tag_key(&k.value) {
            f.error(k.span, why).help = Some(
                "a tag key is 1-128 letters, digits, spaces and _ . : / = + - @, and does not start with aws:".into(),
            );
        } else if let Err(why) = check_tag_value(&v.value) {
            f.error(v.span, format!("the value of tag `{}` {why}", k.value))
                .help =
                Some("a tag value is 0-256 letters, digits, spaces and _ . : / = + - @".into());
        }
        origins.insert(k.value.clone(), k.span);
        tags.insert(k.value, v.value);
    }
    for (field, tag) in K9_TAGS {
        if let Some(v) = f.string(field) {
            if v.value.is_empty() {
                f.error(v.span, format!("`{field}` (the tag {tag}) is empty"));
            } else if let Err(why) = check_tag_value(&v.value) {
                f.error(v.span, format!("`{field}` (the tag {tag}) {why}"))
                    .help =
                    Some("a tag value is 1-256 letters, digits, spaces and _ . : / = + - @".into());
            }
            origins.insert(tag.to_string(), v.span);
            tags.insert(tag.to_string(), v.value);
        }
    }
    let mut added = Vec::new();
    if !environment.is_empty() && !tags.contains_key("Environment") {
        tags.insert("Environment".into(), environment.to_string());
        added.push("Environment");
    }
    if !tags.contains_key("ManagedBy") {
        tags.insert("ManagedBy".into(), "orch".into());
        added.push("ManagedBy");
    }
    if tags.len() > MAX_TAGS {
        too_many_tags(f, node, tags.len(), &origins, &added);
    }
    tags
}

/// AWS allows 50 tags on a key (and on a bucket or an IAM policy).
const MAX_TAGS: usize = 50;

/// Too many tags, at the `tags:` that sets the last layer of them. The message leaves the node
/// out, so when a default is to blame, every node that inherits it gives the same error and
/// `Diagnostics::dedup` reports it once (with one node to start looking from).
fn too_many_tags(
    f: &mut Fields,
    (address, declared): (&Address, Span),
    count: usize,
    origins: &BTreeMap<String, Span>,
    added: &[&str],
) {
    let at = f.key_span("tags").unwrap_or(declared);
    let mut message =
        format!("a node would have {count} tags; AWS allows at most {MAX_TAGS} on a resource");
    if !added.is_empty() {
        message.push_str(&format!(" (orch adds {})", added.join(" and ")));
    }
    let d = f.error(at, message);
    d.help = Some(
        "remove tags here or from the defaults they are layered from (orch explain shows where each comes from)"
            .into(),
    );
    // One note per file, at its first tag: the layers the count adds up from.
    let mut by_source: BTreeMap<u32, (Span, usize)> = BTreeMap::new();
    for span in origins.values() {
        let entry = by_source.entry(span.source).or_insert((*span, 0));
        entry.0 = entry.0.min(*span);
        entry.1 += 1;
    }
    d.notes
        .push((declared, format!("{address} is a node with these tags")));
    for (span, n) in by_source.values() {
        d.notes
            .push((*span, format!("{n} tag(s) set in this file")));
    }
}

/// The characters AWS allows in tag keys and values: letters, digits, white space (not control
/// characters) and `_ . : / = + - @`.
fn tag_char(c: char) -> bool {
    c.is_alphanumeric() || (c.is_whitespace() && !c.is_control()) || "_.:/=+-@".contains(c)
}

fn check_tag_key(key: &str) -> Result<(), String> {
    let length = key.chars().count();
    let why = if !(1..=128).contains(&length) {
        format!("it is {length} characters long, not 1-128")
    } else if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
        "it starts with aws:, which AWS reserves".to_string()
    } else if let Some(c) = key.chars().find(|c| !tag_char(*c)) {
        format!(
            "AWS does not allow the character {} in tags",
            crate::diag::escape(&c.to_string())
        )
    } else {
        return Ok(());
    };
    Err(format!("`{key}` is not a valid tag key: {why}"))
}

fn check_tag_value(value: &str) -> Result<(), String> {
    let length = value.chars().count();
    if length > 256 {
        Err(format!(
            "is {length} characters long; AWS takes at most 256"
        ))
    } else if let Some(c) = value.chars().find(|c| !tag_char(*c)) {
        Err(format!(
            "has a character AWS does not allow in tags: {}",
            crate::diag::escape(&c.to_string())
        ))
    } else {
        Ok(())
    }
}
