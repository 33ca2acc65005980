//! The JSON form of a key policy: its [`Statement`]s, and the document (generated or the user's
//! override) that terraform is given.

use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    pub sid: String,
    pub effect: &'static str,
    pub principal: Value,
    pub action: Vec<String>,
    pub resource: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<Value>,
}

/// A generated policy, or the user's override.
pub enum KeyPolicy {
    Generated(Vec<Statement>),
    Override(String),
}

impl KeyPolicy {
    pub fn to_json(&self) -> String {
        match self {
            KeyPolicy::Generated(statements) => json!({
                "Version": "2012-10-17",
                "Statement": statements,
            })
            .to_string(),
            KeyPolicy::Override(text) => text.clone(),
        }
    }

    pub fn to_pretty_json(&self) -> String {
        let value: Value = serde_json::from_str(&self.to_json()).expect("policy JSON is valid");
        serde_json::to_string_pretty(&value).expect("a JSON value serializes")
    }
}
