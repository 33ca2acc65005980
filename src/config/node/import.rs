//! `import:` on a key or a grant: the AWS resources the node adopts (`orch import` writes it).
//! Only the node's own file may say which key or grant a node is: a default layered in from
//! `account.yaml` would make every node of the account claim the same key.

use crate::config::decode::{Fields, Spanned};
use crate::config::model::Import;
use crate::diag::Span;

/// `import: {key_id, aliases}` of a key; `aliases` must be among the key's own.
pub(super) fn read_key_import(
    f: &mut Fields,
    source: u32,
    aliases: &[Spanned<String>],
) -> Option<Import> {
    let span = own_only(f, source)?;
    let mut m = f.map("import", "`import`")?;
    let key_id = m.required_string("key_id");
    if let Some(id) = &key_id {
        if !is_key_id(&id.value) {
            m.error(id.span, format!("`{}` is not a KMS key id", id.value))
                .help = Some(
                "a key id is a UUID (1234abcd-12ab-34cd-56ef-1234567890ab) or, for a multi-region key, mrk- and 32 hex digits".into(),
            );
        }
    }
    let mut adopted = Vec::new();
    for alias in m.strings("aliases").map(|l| l.value).unwrap_or_default() {
        if !aliases.iter().any(|a| a.value == alias.value) {
            m.error(
                alias.span,
                format!(
                    "`import.aliases` names `{}`, which is not in `aliases`",
                    alias.value
                ),
            )
            .help = Some("an adopted alias must be one of the key's aliases".into());
        } else if adopted.contains(&alias.value) {
            m.error(
                alias.span,
                format!("alias `{}` is listed twice", alias.value),
            );
        } else {
            adopted.push(alias.value);
        }
    }
    m.finish(&mut f.diags, Some(source));
    Some(Import {
        id: key_id?.value,
        aliases: adopted,
        span,
    })
}

/// `import: {grant_id}` of a grant.
pub(super) fn read_grant_import(f: &mut Fields, source: u32) -> Option<Import> {
    let span = own_only(f, source)?;
    let mut m = f.map("import", "`import`")?;
    let grant_id = m.required_string("grant_id");
    if let Some(id) = &grant_id {
        let ok = (1..=128).contains(&id.value.len())
            && id.value.chars().all(|c| c.is_ascii_alphanumeric());
        if !ok {
            m.error(id.span, format!("`{}` is not a KMS grant id", id.value))
                .help =
                Some("a grant id is 1-128 letters and digits, as ListGrants shows it".into());
        }
    }
    m.finish(&mut f.diags, Some(source));
    Some(Import {
        id: grant_id?.value,
        aliases: Vec::new(),
        span,
    })
}

/// Where `import:` is written, when the node's own file writes it. One from a default is
/// ignored here: `settings::read_defaults` reports it once, where it is written.
fn own_only(f: &mut Fields, source: u32) -> Option<Span> {
    let span = f.key_span("import")?;
    if span.source != source {
        f.node("import");
        return None;
    }
    Some(span)
}

/// A key id as AWS writes it: a UUID, or `mrk-` and 32 hex digits for a multi-region key.
fn is_key_id(id: &str) -> bool {
    let hex = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    };
    if let Some(rest) = id.strip_prefix("mrk-") {
        return rest.len() == 32 && hex(rest);
    }
    let parts: Vec<&str> = id.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12]) && parts.iter().all(|p| hex(p))
}

#[cfg(test)]
mod tests {
    use super::is_key_id;

    #[test]
    fn key_ids() {
        assert!(is_key_id("1234abcd-12ab-34cd-56ef-1234567890ab"));
        assert!(is_key_id("mrk-1234abcd12ab34cd56ef1234567890ab"));
        assert!(!is_key_id("1234ABCD-12ab-34cd-56ef-1234567890ab"));
        assert!(!is_key_id("mrk-1234"));
        assert!(!is_key_id("../../etc"));
        assert!(!is_key_id("alias/x"));
        assert!(!is_key_id(""));
    }
}
