//! The semantic normal form of a key policy: what it allows and denies, as a set of
//! (effect, principal, action, resource, condition) [`Tuple`]s, so two policies compare by
//! effect and never as text. Sids and statement order are dropped, single values are one-element
//! lists, `Principal: "*"` is `{"AWS": "*"}`, a bare account id is that account's root, action
//! names and condition keys compare without case (as IAM compares them) and action wildcards are
//! expanded over [`KMS_ACTIONS`]. `NotPrincipal`, `NotAction` and `NotResource` stay whole: they
//! never equal a plain form.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::OnceLock;

use serde_json::{Map, Value};

/// Every action of AWS KMS, as the Service Authorization Reference lists them ("Actions defined
/// by AWS Key Management Service", which also lists the permission-only
/// `SynchronizeMultiRegionKey`) and the AWS KMS API Reference documents them. A wildcard such as
/// `kms:Create*` or `kms:*` stands for the actions of this list it matches.
pub const KMS_ACTIONS: [&str; 55] = [
    "kms:CancelKeyDeletion",
    "kms:ConnectCustomKeyStore",
    "kms:CreateAlias",
    "kms:CreateCustomKeyStore",
    "kms:CreateGrant",
    "kms:CreateKey",
    "kms:Decrypt",
    "kms:DeleteAlias",
    "kms:DeleteCustomKeyStore",
    "kms:DeleteImportedKeyMaterial",
    "kms:DeriveSharedSecret",
    "kms:DescribeCustomKeyStores",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:DisconnectCustomKeyStore",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GenerateMac",
    "kms:GenerateRandom",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:GetParametersForImport",
    "kms:GetPublicKey",
    "kms:ImportKeyMaterial",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListKeys",
    "kms:ListResourceTags",
    "kms:ListRetirableGrants",
    "kms:PutKeyPolicy",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:ReplicateKey",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:Sign",
    "kms:SynchronizeMultiRegionKey",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateCustomKeyStore",
    "kms:UpdateKeyDescription",
    "kms:UpdatePrimaryRegion",
    "kms:Verify",
    "kms:VerifyMac",
];

/// [`KMS_ACTIONS`], each with its lowercase form.
fn folded_actions() -> &'static [(String, &'static str)] {
    static FOLDED: OnceLock<Vec<(String, &'static str)>> = OnceLock::new();
    FOLDED.get_or_init(|| KMS_ACTIONS.iter().map(|a| (a.to_lowercase(), *a)).collect())
}

/// The policy language version whose `${...}` are policy variables; IAM reads a policy without
/// `Version` as the older one, where they are literal text.
const VARIABLES_VERSION: &str = "2012-10-17";

/// A name IAM compares without regard to case (an action, a condition key). It compares by its
/// lowercase form and keeps a spelling for messages: the canonical one for a KMS action, the
/// written one otherwise.
#[derive(Clone, Debug)]
pub struct Name {
    folded: String,
    shown: String,
}

impl Name {
    pub fn new(text: &str) -> Name {
        Name {
            folded: text.to_lowercase(),
            shown: text.to_string(),
        }
    }

    /// An action: its canonical spelling when it is a KMS action.
    fn action(text: &str) -> Name {
        let folded = text.to_lowercase();
        let shown = folded_actions()
            .iter()
            .find(|(f, _)| *f == folded)
            .map_or(text, |(_, a)| a);
        Name {
            folded,
            shown: shown.to_string(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.shown
    }

    /// The lowercase form it compares by.
    pub fn folded(&self) -> &str {
        &self.folded
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.folded == other.folded
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Name) -> Ordering {
        self.folded.cmp(&other.folded)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effect {
    Allow,
    Deny,
}

/// A principal: its kind as the policy names it (`AWS`, `Service`, `Federated`,
/// `CanonicalUser`) and its value.
pub type Principal = (String, String);

/// Who a tuple applies to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Who {
    Principal(Principal),
    /// `NotPrincipal`: everyone but these, kept whole (split up it would mean everyone).
    NotPrincipal(BTreeSet<Principal>),
}

/// What a tuple allows or denies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum What {
    Action(Name),
    /// `NotAction`: every action but these, kept whole.
    NotAction(BTreeSet<Name>),
}

/// What a tuple applies to; in a key policy `Resource: "*"` is the key itself.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// Compared literally.
    Resource(String),
    NotResource(BTreeSet<String>),
}

/// A statement's condition: operator (case-sensitive, as IAM compares it) -> key (without
/// case) -> the values, any of which matches. Empty when the statement has none.
pub type Condition = BTreeMap<String, BTreeMap<Name, BTreeSet<String>>>;

/// One thing a policy allows or denies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tuple {
    pub effect: Effect,
    pub who: Who,
    pub what: What,
    pub target: Target,
    pub condition: Condition,
}

/// A statement of a policy document in normal form: where it stands and what it gives.
#[derive(Clone, Debug)]
pub struct NormalStatement {
    /// Its position in the document's `Statement` list (0 for a lone statement object).
    pub index: usize,
    pub sid: Option<String>,
    pub tuples: BTreeSet<Tuple>,
}

/// A policy document's statements in normal form, and its `Version`.
pub struct NormalDocument {
    pub statements: Vec<NormalStatement>,
    pub version: Option<String>,
}

/// Reads a policy document. `partition` is the key's, for the root ARN a bare account id
/// stands for. An Err says why the document is not a policy.
pub fn normalize(policy: &Value, partition: &str) -> Result<NormalDocument, String> {
    let doc = policy
        .as_object()
        .ok_or("the policy is not a JSON object")?;
    for key in doc.keys() {
        if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
            return Err(format!("the policy has an unknown element `{key}`"));
        }
    }
    let version = match doc.get("Version") {
        None => None,
        Some(Value::String(v)) => Some(v.clone()),
        Some(_) => return Err("the policy's `Version` is not a string".into()),
    };
    let statements: Vec<&Value> = match doc.get("Statement") {
        None => return Err("the policy has no `Statement`".into()),
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        Some(_) => return Err("the policy's `Statement` is neither a list nor an object".into()),
    };
    let statements = statements
        .into_iter()
        .enumerate()
        .map(|(index, s)| statement(index, s, partition))
        .collect::<Result<_, _>>()?;
    Ok(NormalDocument {
        statements,
        version,
    })
}

fn statement(index: usize, value: &Value, partition: &str) -> Result<NormalStatement, String> {
    let at = format!("Statement[{index}]");
    let s = value
        .as_object()
        .ok_or_else(|| format!("{at} is not an object"))?;
    for key in s.keys() {
        if !matches!(
            key.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "NotPrincipal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        ) {
            return Err(format!("{at} has an unknown element `{key}`"));
        }
    }
    let sid = match s.get("Sid") {
        None => None,
        Some(Value::String(sid)) => Some(sid.clone()),
        Some(_) => return Err(format!("{at}: `Sid` is not a string")),
    };
    let effect = match s.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        Some(other) => return Err(format!("{at}: `Effect` is `{other}`, not Allow or Deny")),
        None => return Err(format!("{at} has no `Effect` (a string, Allow or Deny)")),
    };
    let who: Vec<Who> = match one_of(s, "Principal", "NotPrincipal", &at)? {
        (false, v) => principals(v, partition, &at)?
            .into_iter()
            .map(Who::Principal)
            .collect(),
        (true, v) => vec![Who::NotPrincipal(principals(v, partition, &at)?)],
    };
    let what: Vec<What> = match one_of(s, "Action", "NotAction", &at)? {
        (false, v) => actions(v, &at)?.into_iter().map(What::Action).collect(),
        (true, v) => vec![What::NotAction(actions(v, &at)?)],
    };
    let target: Vec<Target> = match one_of(s, "Resource", "NotResource", &at)? {
        (false, v) => strings(v, "Resource", &at)?
            .into_iter()
            .map(Target::Resource)
            .collect(),
        (true, v) => vec![Target::NotResource(
            strings(v, "NotResource", &at)?.into_iter().collect(),
        )],
    };
    let condition = match s.get("Condition") {
        None => Condition::new(),
        Some(c) => condition(c, &at)?,
    };
    let mut tuples = BTreeSet::new();
    for w in &who {
        for a in &what {
            for t in &target {
                tuples.insert(Tuple {
                    effect,
                    who: w.clone(),
                    what: a.clone(),
                    target: t.clone(),
                    condition: condition.clone(),
                });
            }
        }
    }
    Ok(NormalStatement { index, sid, tuples })
}

/// The value of `plain` or of `not` (true), whichever the statement has: exactly one.
fn one_of<'v>(
    s: &'v Map<String, Value>,
    plain: &str,
    not: &str,
    at: &str,
) -> Result<(bool, &'v Value), String> {
    match (s.get(plain), s.get(not)) {
        (Some(v), None) => Ok((false, v)),
        (None, Some(v)) => Ok((true, v)),
        (Some(_), Some(_)) => Err(format!("{at} has both `{plain}` and `{not}`")),
        (None, None) => Err(format!("{at} has neither `{plain}` nor `{not}`")),
    }
}

/// A string or a non-empty list of strings.
fn strings(value: &Value, element: &str, at: &str) -> Result<Vec<String>, String> {
    let list: Vec<&Value> = match value {
        Value::Array(list) => list.iter().collect(),
        one => vec![one],
    };
    if list.is_empty() {
        return Err(format!("{at}: `{element}` is an empty list"));
    }
    list.into_iter()
        .map(|v| {
            v.as_str()
                .map(String::from)
                .ok_or_else(|| format!("{at}: `{element}` holds something other than a string"))
        })
        .collect()
}

fn principals(value: &Value, partition: &str, at: &str) -> Result<BTreeSet<Principal>, String> {
    let map = match value {
        Value::String(s) if s == "*" => return Ok(BTreeSet::from([("AWS".into(), "*".into())])),
        Value::Object(map) if !map.is_empty() => map,
        _ => {
            return Err(format!(
                "{at}: a principal is \"*\" or an object such as {{\"AWS\": [...]}}"
            ))
        }
    };
    let mut out = BTreeSet::new();
    for (kind, values) in map {
        for v in strings(values, kind, at)? {
            let v = if kind == "AWS" && v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit()) {
                format!("arn:{partition}:iam::{v}:root")
            } else {
                v
            };
            out.insert((kind.clone(), v));
        }
    }
    Ok(out)
}

fn actions(value: &Value, at: &str) -> Result<BTreeSet<Name>, String> {
    Ok(strings(value, "Action", at)?
        .iter()
        .flat_map(|a| expand(a))
        .collect())
}

/// The KMS actions a pattern stands for; a pattern that names or matches none stays as written.
fn expand(pattern: &str) -> Vec<Name> {
    if !pattern.contains(['*', '?']) {
        return vec![Name::action(pattern)];
    }
    let folded = pattern.to_lowercase();
    let matched: Vec<Name> = folded_actions()
        .iter()
        .filter(|(f, _)| glob(folded.as_bytes(), f.as_bytes()))
        .map(|(f, a)| Name {
            folded: f.clone(),
            shown: a.to_string(),
        })
        .collect();
    if matched.is_empty() {
        vec![Name::new(pattern)]
    } else {
        matched
    }
}

/// IAM's wildcards: `*` any run of characters, `?` any one. Greedy with one backtrack point,
/// so a pattern of many stars stays linear in the text.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

fn condition(value: &Value, at: &str) -> Result<Condition, String> {
    let ops = value
        .as_object()
        .ok_or_else(|| format!("{at}: `Condition` is not an object"))?;
    let mut out = Condition::new();
    for (op, block) in ops {
        let block = block
            .as_object()
            .ok_or_else(|| format!("{at}: the `{op}` condition is not an object"))?;
        let mut keys = BTreeMap::new();
        for (key, values) in block {
            let list: Vec<&Value> = match values {
                Value::Array(list) => list.iter().collect(),
                one => vec![one],
            };
            let values = list
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Bool(b) => Ok(b.to_string()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(format!(
                        "{at}: the value of `{op}` `{key}` is not a string, a boolean or a number"
                    )),
                })
                .collect::<Result<BTreeSet<String>, String>>()?;
            if keys.insert(Name::new(key), values).is_some() {
                return Err(format!(
                    "{at}: `{op}` names the condition key `{key}` twice (keys ignore case)"
                ));
            }
        }
        out.insert(op.clone(), keys);
    }
    Ok(out)
}

/// What a policy allows and denies, in normal form.
#[derive(Clone, Debug)]
pub struct Permissions {
    tuples: BTreeSet<Tuple>,
    /// Whether `${...}` in its values are policy variables (its `Version` is 2012-10-17).
    variables: bool,
}

/// What one policy gives that another does not, and the other way round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// In the second policy only.
    pub gained: BTreeSet<Tuple>,
    /// In the first policy only.
    pub lost: BTreeSet<Tuple>,
}

impl Permissions {
    /// The normal form of a policy document; an Err says why it is not a policy.
    pub fn of(policy: &Value, partition: &str) -> Result<Permissions, String> {
        normalize(policy, partition).map(|doc| Permissions::from(&doc))
    }

    pub fn tuples(&self) -> &BTreeSet<Tuple> {
        &self.tuples
    }

    /// What `to` gives that `self` does not (gained) and what it no longer gives (lost).
    pub fn diff(&self, to: &Permissions) -> Diff {
        Diff {
            gained: to.tuples.difference(&self.tuples).cloned().collect(),
            lost: self.tuples.difference(&to.tuples).cloned().collect(),
        }
    }

    fn mentions_variables(&self) -> bool {
        let variable = |s: &str| s.contains("${");
        self.tuples.iter().any(|t| {
            let who = match &t.who {
                Who::Principal((_, v)) => variable(v),
                Who::NotPrincipal(set) => set.iter().any(|(_, v)| variable(v)),
            };
            let target = match &t.target {
                Target::Resource(r) => variable(r),
                Target::NotResource(set) => set.iter().any(|r| variable(r)),
            };
            let condition = t
                .condition
                .values()
                .flat_map(|keys| keys.iter())
                .any(|(key, values)| variable(key.as_str()) || values.iter().any(|v| variable(v)));
            who || target || condition
        })
    }
}

impl From<&NormalDocument> for Permissions {
    fn from(doc: &NormalDocument) -> Permissions {
        Permissions {
            tuples: doc
                .statements
                .iter()
                .flat_map(|s| s.tuples.iter().cloned())
                .collect(),
            variables: doc.version.as_deref() == Some(VARIABLES_VERSION),
        }
    }
}

/// Equal tuples, read the same way: `${...}` is a variable in both or in neither.
impl PartialEq for Permissions {
    fn eq(&self, other: &Permissions) -> bool {
        self.tuples == other.tuples
            && (self.variables == other.variables || !self.mentions_variables())
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Principal((kind, v)) if kind == "AWS" => f.write_str(v),
            Who::Principal((kind, v)) => write!(f, "{kind} {v}"),
            Who::NotPrincipal(set) => {
                let names: Vec<String> = set.iter().map(|(k, v)| format!("{k} {v}")).collect();
                write!(f, "everyone but {}", names.join(", "))
            }
        }
    }
}

/// `StringEquals kms:ViaService = s3.us-east-1.amazonaws.com`, conditions joined by "and".
pub fn describe_condition(condition: &Condition) -> String {
    let mut parts = Vec::new();
    for (op, keys) in condition {
        for (key, values) in keys {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            parts.push(match values.as_slice() {
                [one] => format!("{op} {key} = {one}"),
                many => format!("{op} {key} in [{}]", many.join(", ")),
            });
        }
    }
    parts.join(" and ")
}

/// Tuples in plain words, one line per effect, principal, resource and condition, its actions
/// joined: what an access review or an import prints.
pub fn describe(tuples: &BTreeSet<Tuple>) -> Vec<String> {
    type Head<'t> = (&'t Effect, &'t Who, &'t Target, &'t Condition);
    let mut groups: BTreeMap<Head, Vec<String>> = BTreeMap::new();
    for t in tuples {
        let action = match &t.what {
            What::Action(a) => a.to_string(),
            What::NotAction(set) => {
                let names: Vec<&str> = set.iter().map(Name::as_str).collect();
                format!("every action but {}", names.join(", "))
            }
        };
        groups
            .entry((&t.effect, &t.who, &t.target, &t.condition))
            .or_default()
            .push(action);
    }
    groups
        .into_iter()
        .map(|((effect, who, target, condition), actions)| {
            let mut line = format!("{effect:?} {who}: {}", actions.join(", "));
            match target {
                Target::Resource(r) if r == "*" => {}
                Target::Resource(r) => line.push_str(&format!(" on {r}")),
                Target::NotResource(set) => {
                    let names: Vec<&str> = set.iter().map(String::as_str).collect();
                    line.push_str(&format!(" on everything but {}", names.join(", ")));
                }
            }
            if !condition.is_empty() {
                line.push_str(&format!(" when {}", describe_condition(condition)));
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const APP: &str = "arn:aws:iam::111111111111:role/app";
    const ROOT: &str = "arn:aws:iam::111111111111:root";

    fn form(policy: Value) -> Permissions {
        Permissions::of(&policy, "aws").unwrap_or_else(|e| panic!("{e}"))
    }

    fn doc(statements: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": statements})
    }

    fn allow(principal: Value, action: Value) -> Value {
        json!({"Effect": "Allow", "Principal": principal, "Action": action, "Resource": "*"})
    }

    fn with_condition(mut statement: Value, condition: Value) -> Value {
        statement["Condition"] = condition;
        statement
    }

    #[test]
    fn sids_order_and_single_values_do_not_matter() {
        let a = doc(json!([
            {"Sid": "App", "Effect": "Allow", "Principal": {"AWS": [APP]},
             "Action": ["kms:Decrypt"], "Resource": ["*"]},
            {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": ROOT},
             "Action": "kms:*", "Resource": "*"},
        ]));
        let b = doc(json!([
            allow(json!({"AWS": ROOT}), json!(["kms:*"])),
            {"Sid": "Other", "Effect": "Allow", "Principal": {"AWS": APP},
             "Action": "kms:Decrypt", "Resource": "*"},
        ]));
        assert_eq!(form(a), form(b));
        let lone = json!({"Version": "2012-10-17",
                          "Statement": allow(json!({"AWS": APP}), json!("kms:Decrypt"))});
        assert_eq!(
            form(lone),
            form(doc(json!([allow(
                json!({"AWS": [APP]}),
                json!(["kms:Decrypt"])
            )])))
        );
    }

    #[test]
    fn actions_ignore_case_and_keep_their_canonical_spelling() {
        let a = form(doc(json!([allow(
            json!({"AWS": APP}),
            json!("KMS:DECRYPT")
        )])));
        let b = form(doc(json!([allow(
            json!({"AWS": APP}),
            json!("kms:Decrypt")
        )])));
        assert_eq!(a, b);
        assert_eq!(
            describe(a.tuples()),
            vec![format!("Allow {APP}: kms:Decrypt")]
        );
    }

    #[test]
    fn wildcards_stand_for_the_kms_actions_they_match() {
        let wild = form(doc(json!([allow(
            json!({"AWS": APP}),
            json!(["kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Verify?ac"])
        )])));
        let listed = form(doc(json!([allow(
            json!({"AWS": APP}),
            json!([
                "kms:ReEncryptFrom",
                "kms:ReEncryptTo",
                "kms:GenerateDataKey",
                "kms:GenerateDataKeyPair",
                "kms:GenerateDataKeyPairWithoutPlaintext",
                "kms:GenerateDataKeyWithoutPlaintext",
                "kms:VerifyMac",
            ])
        )])));
        assert_eq!(wild, listed);
        let star = form(doc(json!([allow(json!({"AWS": ROOT}), json!("kms:*"))])));
        let every = form(doc(json!([allow(
            json!({"AWS": ROOT}),
            json!(KMS_ACTIONS.to_vec())
        )])));
        assert_eq!(star, every);
        assert_eq!(star.tuples().len(), KMS_ACTIONS.len());
        let any = form(doc(json!([allow(json!({"AWS": ROOT}), json!("*"))])));
        assert_eq!(any, star, "in a key policy, `*` is every KMS action");
        // A pattern that matches no KMS action stays as written, equal only to itself.
        let s3 = form(doc(json!([allow(json!({"AWS": APP}), json!("s3:*"))])));
        assert_eq!(describe(s3.tuples()), vec![format!("Allow {APP}: s3:*")]);
    }

    #[test]
    fn many_stars_match_in_linear_time() {
        assert!(glob(b"kms:*e*n*c*r*y*p*t", b"kms:encrypt"));
        assert!(!glob("*a".repeat(40).as_bytes(), "a".repeat(39).as_bytes()));
        assert!(glob(b"kms:?ign", b"kms:sign"));
        assert!(!glob(b"kms:?ign", b"kms:ign"));
    }

    #[test]
    fn principals_star_and_account_ids_have_one_form() {
        assert_eq!(
            form(doc(json!([allow(json!("*"), json!("kms:Decrypt"))]))),
            form(doc(json!([allow(
                json!({"AWS": "*"}),
                json!("kms:Decrypt")
            )])))
        );
        assert_eq!(
            form(doc(json!([allow(
                json!({"AWS": "111111111111"}),
                json!("kms:*")
            )]))),
            form(doc(json!([allow(json!({"AWS": ROOT}), json!("kms:*"))])))
        );
        let gov = Permissions::of(
            &doc(json!([allow(
                json!({"AWS": "111111111111"}),
                json!("kms:*")
            )])),
            "aws-us-gov",
        )
        .unwrap();
        assert_ne!(
            gov,
            form(doc(json!([allow(json!({"AWS": ROOT}), json!("kms:*"))])))
        );
    }

    #[test]
    fn conditions_compare_keys_without_case_and_values_as_sets() {
        let base = allow(json!({"AWS": APP}), json!("kms:CreateGrant"));
        let a = with_condition(
            base.clone(),
            json!({"Bool": {"kms:GrantIsForAWSResource": "true"},
                   "StringEquals": {"kms:ViaService": ["s3.us-east-1.amazonaws.com", "ec2.us-east-1.amazonaws.com"]}}),
        );
        let b = with_condition(
            base.clone(),
            json!({"StringEquals": {"KMS:VIASERVICE": ["ec2.us-east-1.amazonaws.com", "s3.us-east-1.amazonaws.com", "ec2.us-east-1.amazonaws.com"]},
                   "Bool": {"kms:grantisforawsresource": true}}),
        );
        assert_eq!(form(doc(json!([a.clone()]))), form(doc(json!([b]))));
        let operator_case = with_condition(
            base.clone(),
            json!({"bool": {"kms:GrantIsForAWSResource": "true"},
                   "StringEquals": {"kms:ViaService": ["s3.us-east-1.amazonaws.com", "ec2.us-east-1.amazonaws.com"]}}),
        );
        assert_ne!(
            form(doc(json!([a.clone()]))),
            form(doc(json!([operator_case])))
        );
        let value_case = with_condition(
            base.clone(),
            json!({"Bool": {"kms:GrantIsForAWSResource": "true"},
                   "StringEquals": {"kms:ViaService": ["S3.us-east-1.amazonaws.com", "ec2.us-east-1.amazonaws.com"]}}),
        );
        assert_ne!(
            form(doc(json!([a.clone()]))),
            form(doc(json!([value_case])))
        );
        assert_ne!(form(doc(json!([a]))), form(doc(json!([base.clone()]))));
        assert_eq!(
            form(doc(json!([with_condition(base.clone(), json!({}))]))),
            form(doc(json!([base])))
        );
    }

    #[test]
    fn not_forms_never_equal_the_plain_form() {
        let plain = form(doc(json!([allow(
            json!({"AWS": APP}),
            json!("kms:Decrypt")
        )])));
        let not_action = form(doc(json!([
            {"Effect": "Allow", "Principal": {"AWS": APP}, "NotAction": "kms:Decrypt", "Resource": "*"}
        ])));
        let not_principal = form(doc(json!([
            {"Effect": "Allow", "NotPrincipal": {"AWS": APP}, "Action": "kms:Decrypt", "Resource": "*"}
        ])));
        let not_resource = form(doc(json!([
            {"Effect": "Allow", "Principal": {"AWS": APP}, "Action": "kms:Decrypt", "NotResource": "*"}
        ])));
        let deny = form(doc(json!([
            {"Effect": "Deny", "Principal": {"AWS": APP}, "Action": "kms:Decrypt", "Resource": "*"}
        ])));
        let arn = form(doc(json!([
            {"Effect": "Allow", "Principal": {"AWS": APP}, "Action": "kms:Decrypt",
             "Resource": "arn:aws:kms:us-east-1:111111111111:key/1234"}
        ])));
        for other in [not_action, not_principal, not_resource, deny, arn] {
            assert_ne!(plain, other);
        }
        // NotPrincipal of two is one tuple: split, it would mean everyone.
        let two = form(doc(json!([
            {"Effect": "Deny", "NotPrincipal": {"AWS": [APP, ROOT]}, "Action": "kms:Decrypt", "Resource": "*"}
        ])));
        assert_eq!(two.tuples().len(), 1);
    }

    #[test]
    fn policy_variables_only_differ_between_versions_when_used() {
        let statement = |value: &str| {
            with_condition(
                allow(json!({"AWS": APP}), json!("kms:Decrypt")),
                json!({"StringEquals": {"kms:EncryptionContext:user": value}}),
            )
        };
        let old = |value: &str| json!({"Version": "2008-10-17", "Statement": [statement(value)]});
        assert_eq!(form(old("alice")), form(doc(json!([statement("alice")]))));
        assert_ne!(
            form(old("${aws:username}")),
            form(doc(json!([statement("${aws:username}")])))
        );
    }

    #[test]
    fn diff_names_what_is_gained_and_lost() {
        let before = form(doc(json!([
            allow(json!({"AWS": ROOT}), json!("kms:*")),
            allow(
                json!({"AWS": APP}),
                json!(["kms:Decrypt", "kms:DescribeKey"])
            ),
        ])));
        let after = form(doc(json!([
            allow(json!({"AWS": ROOT}), json!("kms:*")),
            allow(
                json!({"AWS": APP}),
                json!(["kms:Encrypt", "kms:DescribeKey"])
            ),
        ])));
        let diff = before.diff(&after);
        assert_eq!(
            describe(&diff.gained),
            vec![format!("Allow {APP}: kms:Encrypt")]
        );
        assert_eq!(
            describe(&diff.lost),
            vec![format!("Allow {APP}: kms:Decrypt")]
        );
        assert_eq!(before.diff(&before), Diff::default());
    }

    #[test]
    fn documents_that_are_not_policies_are_errors() {
        let statement = |s: Value| doc(json!([s]));
        for (policy, why) in [
            (json!("text"), "not a JSON object"),
            (json!([]), "not a JSON object"),
            (json!({"Version": "2012-10-17"}), "no `Statement`"),
            (json!({"Statement": "x"}), "neither a list nor an object"),
            (
                json!({"Statement": [], "Extra": 1}),
                "unknown element `Extra`",
            ),
            (doc(json!(["x"])), "Statement[0] is not an object"),
            (
                statement(json!({"Principal": "*", "Action": "kms:*", "Resource": "*"})),
                "no `Effect`",
            ),
            (
                statement(
                    json!({"Effect": "allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}),
                ),
                "not Allow or Deny",
            ),
            (
                statement(json!({"Effect": "Allow", "Action": "kms:*", "Resource": "*"})),
                "neither `Principal` nor `NotPrincipal`",
            ),
            (
                statement(
                    json!({"Effect": "Allow", "Principal": "*", "Action": "kms:*",
                                 "NotAction": "kms:Decrypt", "Resource": "*"}),
                ),
                "both `Action` and `NotAction`",
            ),
            (
                statement(
                    json!({"Effect": "Allow", "Principal": "*", "Action": [], "Resource": "*"}),
                ),
                "empty list",
            ),
            (
                statement(
                    json!({"Effect": "Allow", "Principal": "someone", "Action": "kms:*", "Resource": "*"}),
                ),
                "a principal is",
            ),
            (
                statement(
                    json!({"Effect": "Allow", "Principal": {"AWS": 1}, "Action": "kms:*", "Resource": "*"}),
                ),
                "other than a string",
            ),
            (
                statement(
                    json!({"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*",
                                 "Condition": {"StringEquals": {"a": 1, "A": 2}}}),
                ),
                "twice",
            ),
            (
                statement(
                    json!({"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*",
                                 "Condition": {"StringEquals": {"a": {"b": 1}}}}),
                ),
                "not a string, a boolean or a number",
            ),
            (
                statement(
                    json!({"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*",
                                 "Condition": []}),
                ),
                "not an object",
            ),
        ] {
            let err = Permissions::of(&policy, "aws").expect_err(&policy.to_string());
            assert!(err.contains(why), "{policy}: {err}");
        }
    }
}
