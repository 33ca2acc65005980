//! Names and addresses. A node's address is `account/region/node`; every part matches
//! `[a-z0-9][a-z0-9_-]*`, which rules out `..`, absolute paths, upper case and spaces by
//! construction, so an address can never point outside `.orch/work/`.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    pub account: String,
    pub region: String,
    pub name: String,
}

impl Address {
    pub fn new(account: &str, region: &str, name: &str) -> Self {
        Address {
            account: account.to_string(),
            region: region.to_string(),
            name: name.to_string(),
        }
    }

    /// Parses `account/region/node`, saying what is wrong when it is not one.
    pub fn parse(text: &str) -> Result<Address, String> {
        let parts: Vec<&str> = text.split('/').collect();
        if parts.len() != 3 {
            return Err(format!(
                "`{text}` is not an address: write `account/region/node`"
            ));
        }
        for part in &parts {
            check_name(part).map_err(|why| format!("`{text}` is not an address: {why}"))?;
        }
        Ok(Address::new(parts[0], parts[1], parts[2]))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.account, self.region, self.name)
    }
}

/// The longest name: a name is a directory under `.orch/` and part of AWS names (a grant's name,
/// the key-access policy `orch-key-access-<node>`, at most 128), so a long one would pass
/// validation and fail half-way through writing files or calling AWS.
pub const MAX_NAME: usize = 64;

/// Checks one name (an account, region or node directory) against `[a-z0-9][a-z0-9_-]*`, at most
/// [`MAX_NAME`] characters.
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if let Some((i, c)) = name.chars().enumerate().find(|(_, c)| !c.is_ascii()) {
        let like = lookalike(c)
            .map(|a| format!(", which looks like `{a}`"))
            .unwrap_or_default();
        Err(format!(
            "`{name}` has a non-ASCII character at position {}: `{c}` (U+{:04X}){like}; names are ASCII",
            i + 1,
            c as u32
        ))
    } else if first_ok && rest_ok && name.len() <= MAX_NAME {
        Ok(())
    } else if name.is_empty() {
        Err("a name is empty".to_string())
    } else if first_ok && rest_ok {
        Err(format!(
            "`{}...` is {} characters long; a name is at most {MAX_NAME} (it becomes a directory under .orch/ and part of AWS names)",
            &name[..24],
            name.len()
        ))
    } else {
        Err(format!(
            "`{name}` is not a valid name (lower-case letters, digits, `-` and `_`, starting with a letter or digit)"
        ))
    }
}

/// The ASCII letter a Cyrillic or Greek character is mistaken for, for the homoglyphs that turn
/// up in copied names (`us-еast-1` with a Cyrillic `е`).
pub fn lookalike(c: char) -> Option<char> {
    const PAIRS: &[(char, char)] = &[
        ('а', 'a'),
        ('в', 'b'),
        ('с', 'c'),
        ('ԁ', 'd'),
        ('е', 'e'),
        ('һ', 'h'),
        ('і', 'i'),
        ('ј', 'j'),
        ('к', 'k'),
        ('ӏ', 'l'),
        ('м', 'm'),
        ('п', 'n'),
        ('о', 'o'),
        ('р', 'p'),
        ('ԛ', 'q'),
        ('ѕ', 's'),
        ('т', 't'),
        ('ս', 'u'),
        ('ν', 'v'),
        ('ԝ', 'w'),
        ('х', 'x'),
        ('у', 'y'),
        ('α', 'a'),
        ('ε', 'e'),
        ('ι', 'i'),
        ('κ', 'k'),
        ('ο', 'o'),
        ('ρ', 'p'),
        ('τ', 't'),
        ('υ', 'u'),
        ('‐', '-'),
        ('‑', '-'),
        ('‒', '-'),
        ('–', '-'),
        ('—', '-'),
        ('−', '-'),
    ];
    let lower = c.to_lowercase().next().unwrap_or(c);
    PAIRS
        .iter()
        .find(|(from, _)| *from == lower)
        .map(|(_, to)| *to)
}

/// `name` with every lookalike replaced by its ASCII letter, when that leaves it all ASCII.
pub fn ascii_spelling(name: &str) -> Option<String> {
    let spelled: String = name
        .chars()
        .map(|c| if c.is_ascii() { Some(c) } else { lookalike(c) })
        .collect::<Option<String>>()?;
    (spelled != name).then_some(spelled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let a = Address::parse("prod/us-east-1/s3-data").unwrap();
        assert_eq!(a.to_string(), "prod/us-east-1/s3-data");
        for bad in [
            "prod/us-east-1",
            "prod/../x",
            "/prod/us-east-1/x",
            "Prod/us-east-1/x",
            "a/b/c d",
            "a/b/c/d",
            "a//c",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn names_are_short_ascii() {
        assert!(check_name(&"a".repeat(MAX_NAME)).is_ok());
        let long = check_name(&"a".repeat(MAX_NAME + 1)).unwrap_err();
        assert!(long.contains("65 characters long"), "{long}");
        let homoglyph = check_name("us-\u{435}ast-1").unwrap_err();
        assert!(homoglyph.contains("position 4"), "{homoglyph}");
        assert!(homoglyph.contains("U+0435"), "{homoglyph}");
        assert!(homoglyph.contains("looks like `e`"), "{homoglyph}");
        assert_eq!(
            ascii_spelling("us-\u{435}ast-1").as_deref(),
            Some("us-east-1")
        );
        assert_eq!(ascii_spelling("us-east-1"), None);
        assert_eq!(ascii_spelling("d\u{e9}v"), None);
    }
}
