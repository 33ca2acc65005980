//! Layering of defaults: `orch.yaml` <- `account.yaml` <- `region.yaml` <- `node.yaml`, later wins.
//! Mappings merge key by key, all the way down; lists and scalars replace. Every node keeps its own
//! span, so the merged tree still says which file and line each effective value came from.

use marked_yaml::types::MarkedMappingNode;
use marked_yaml::Node;

/// Merges `over` onto `base`: keys of `over` win, nested mappings merge recursively.
pub fn merge(base: &MarkedMappingNode, over: &MarkedMappingNode) -> MarkedMappingNode {
    let mut merged = base.clone();
    for (key, value) in over.iter() {
        let combined = match (merged.get(key.as_str()), value) {
            (Some(Node::Mapping(below)), Node::Mapping(above)) => {
                Node::Mapping(merge(below, above))
            }
            _ => value.clone(),
        };
        // Remove first so the key (and its span) is the one from the upper layer.
        merged.remove(key.as_str());
        merged.insert(key.clone(), combined);
    }
    *merged.span_mut() = *over.span();
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(source: usize, text: &str) -> MarkedMappingNode {
        marked_yaml::parse_yaml(source, text)
            .unwrap()
            .as_mapping()
            .unwrap()
            .clone()
    }

    #[test]
    fn maps_merge_deeply_and_lists_replace() {
        let base = mapping(0, "tags: {A: a, B: b}\naliases: [x, y]\nwindow: 30\n");
        let over = mapping(1, "tags: {B: z}\naliases: [q]\n");
        let merged = merge(&base, &over);
        let tags = merged.get_mapping("tags").unwrap();
        assert_eq!(tags.get_scalar("A").unwrap().as_str(), "a");
        assert_eq!(tags.get_scalar("B").unwrap().as_str(), "z");
        assert_eq!(
            tags.get_node("A").unwrap().span().start().unwrap().source(),
            0
        );
        assert_eq!(
            tags.get_node("B").unwrap().span().start().unwrap().source(),
            1
        );
        assert_eq!(merged.get_sequence("aliases").unwrap().len(), 1);
        assert_eq!(merged.get_scalar("window").unwrap().as_str(), "30");
    }
}
