//! What a reviewer reads first: who gains and who loses access (a plan's access review) and what
//! changed outside orch (drift), each change told once with the nodes it is seen on, so the same
//! change on 37 keys is one row ("rotation disabled on 37 keys in data/*"). The terminal, the
//! Markdown and the HTML report all tell these groups.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::reporter::Row;

/// One change and where it is seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Group {
    /// `gains`, `loses` (access review) or `drift`.
    pub kind: &'static str,
    pub words: String,
    /// The addresses it is seen on, sorted.
    pub nodes: Vec<String>,
}

impl Group {
    /// `on data/us-east-1/app`, `on 37 keys in data/*`, `on 3 keys: a, b, c`.
    pub fn place(&self) -> String {
        match self.nodes.as_slice() {
            [one] => format!("on {one}"),
            many => {
                let n = many.len();
                match common_scope(many) {
                    Some(scope) => format!("on {n} nodes in {scope}"),
                    None if n <= 3 => format!("on {n} nodes: {}", many.join(", ")),
                    None => format!("on {n} nodes in {} accounts", accounts(many)),
                }
            }
        }
    }
}

/// `data/us-east-1/*` when every address is in one account and region, `data/*` when in one
/// account.
fn common_scope(addresses: &[String]) -> Option<String> {
    let parts: Vec<Vec<&str>> = addresses.iter().map(|a| a.split('/').collect()).collect();
    let first = parts.first()?;
    let same = |k: usize| parts.iter().all(|p| p.get(k) == first.get(k));
    match (same(0), same(1)) {
        (true, true) => Some(format!("{}/{}/*", first[0], first.get(1)?)),
        (true, false) => Some(format!("{}/*", first[0])),
        _ => None,
    }
}

fn accounts(addresses: &[String]) -> usize {
    addresses
        .iter()
        .filter_map(|a| a.split('/').next())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// The access review of a run: each principal's gain or loss, with the nodes whose key it is on.
pub fn access_groups(rows: &[Row]) -> Vec<Group> {
    let mut groups: BTreeMap<(&'static str, String), Vec<String>> = BTreeMap::new();
    for row in rows {
        for key in &row.access {
            if let Some(note) = &key.note {
                groups
                    .entry(("unknown", note.clone()))
                    .or_default()
                    .push(row.address.clone());
            }
            for (kind, list) in [("gains", &key.review.gained), ("loses", &key.review.lost)] {
                for access in list {
                    groups
                        .entry((kind, access.words()))
                        .or_default()
                        .push(row.address.clone());
                }
            }
        }
    }
    finish(groups)
}

/// The drift of a run: each change with the nodes it is seen on; a node gone is one group.
pub fn drift_groups(rows: &[Row]) -> Vec<Group> {
    let mut groups: BTreeMap<(&'static str, String), Vec<String>> = BTreeMap::new();
    for row in rows {
        let Some(drift) = &row.drift else { continue };
        if drift.deleted {
            groups
                .entry(("drift", "deleted or pending deletion outside orch".into()))
                .or_default()
                .push(row.address.clone());
            continue;
        }
        for finding in &drift.findings {
            groups
                .entry(("drift", finding.words.clone()))
                .or_default()
                .push(row.address.clone());
        }
    }
    finish(groups)
}

/// Groups seen on most nodes first, then by words.
fn finish(groups: BTreeMap<(&'static str, String), Vec<String>>) -> Vec<Group> {
    let mut out: Vec<Group> = groups
        .into_iter()
        .map(|((kind, words), mut nodes)| {
            nodes.sort();
            nodes.dedup();
            Group { kind, words, nodes }
        })
        .collect();
    out.sort_by(|a, b| {
        b.nodes
            .len()
            .cmp(&a.nodes.len())
            .then_with(|| a.kind.cmp(b.kind))
            .then_with(|| a.words.cmp(&b.words))
    });
    out
}

/// The access review and the drift of a run's rows, for the terminal (empty when neither).
pub fn summary(rows: &[Row]) -> String {
    let mut out = String::new();
    for (heading, groups) in [
        (
            "access review (from the policy in state to the policy orch will write):",
            access_groups(rows),
        ),
        ("changed outside orch:", drift_groups(rows)),
    ] {
        if let Some(text) = terminal(heading, &groups) {
            out.push('\n');
            out.push_str(&text);
        }
    }
    out
}

/// The groups as terminal lines under a heading (`None` when there are none), every word
/// escaped for the terminal.
fn terminal(heading: &str, groups: &[Group]) -> Option<String> {
    if groups.is_empty() {
        return None;
    }
    let mut out = format!("{heading}\n");
    for g in groups {
        let lead = match g.kind {
            "gains" => "+ gains ",
            "loses" => "- loses ",
            "unknown" => "? ",
            _ => "~ ",
        };
        out.push_str(&format!(
            "  {lead}{} {}\n",
            crate::diag::escape(&g.words),
            crate::diag::escape(&g.place())
        ));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(nodes: &[&str]) -> Group {
        Group {
            kind: "drift",
            words: "rotation disabled".into(),
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn places_name_the_narrowest_scope() {
        assert_eq!(group(&["data/us-east-1/a"]).place(), "on data/us-east-1/a");
        assert_eq!(
            group(&["data/us-east-1/a", "data/eu-west-1/b"]).place(),
            "on 2 nodes in data/*"
        );
        assert_eq!(
            group(&["data/us-east-1/a", "data/us-east-1/b"]).place(),
            "on 2 nodes in data/us-east-1/*"
        );
        assert_eq!(
            group(&["core/us-east-1/a", "data/us-east-1/b"]).place(),
            "on 2 nodes: core/us-east-1/a, data/us-east-1/b"
        );
        assert_eq!(
            group(&["a/r/1", "b/r/2", "c/r/3", "d/r/4"]).place(),
            "on 4 nodes in 4 accounts"
        );
    }
}
