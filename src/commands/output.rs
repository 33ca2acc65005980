//! `orch output ADDRESS`: the outputs recorded at a node's last apply, as JSON.

use super::context::{print, AppError, Loaded};

pub fn exec(loaded: &Loaded, address: &str) -> Result<(), AppError> {
    let node = &loaded.fleet.nodes[loaded.find(address)?];
    let path = loaded
        .fleet
        .state_dir()
        .join("outputs")
        .join(format!("{}.json", node.address));
    let text = crate::files::read_to_string(&path).map_err(|e| {
        AppError::Usage(if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "{address} has no recorded outputs: it is not applied yet (orch apply {address})"
            )
        } else {
            format!("cannot read the recorded outputs {}: {e}", path.display())
        })
    })?;
    let outputs: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        AppError::Usage(format!(
            "{} is not valid JSON ({e}); apply {address} again",
            path.display()
        ))
    })?;
    let values: serde_json::Map<String, serde_json::Value> = outputs
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.get("value").cloned().unwrap_or_default()))
        .collect();
    print(&(serde_json::to_string_pretty(&values).expect("JSON serializes") + "\n"));
    Ok(())
}
