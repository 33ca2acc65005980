//! `orch policy ADDRESS [--explain]`: the key policy orch renders for a key or replica, as JSON
//! or explained statement by statement.

use super::context::{print, AppError, Loaded};
use crate::policy::{self, KeyFacts};

pub fn exec(loaded: &Loaded, address: &str, explain: bool) -> Result<(), AppError> {
    let node = &loaded.fleet.nodes[loaded.find(address)?];
    let facts = KeyFacts::of(&loaded.fleet, node).ok_or_else(|| {
        AppError::Usage(format!(
            "{address} is a {}, not a key: it has no key policy",
            node.kind_name()
        ))
    })?;
    let built = policy::build(&facts);
    if explain {
        print(&policy::explain(&facts, &built));
        print(&policy::reaching(&loaded.fleet, node, &facts));
    } else {
        print(&(built.to_pretty_json() + "\n"));
    }
    Ok(())
}
