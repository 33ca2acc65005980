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

/// Checks one name (an account, region or node directory) against `[a-z0-9][a-z0-9_-]*`.
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if first_ok && rest_ok {
        Ok(())
    } else if name.is_empty() {
        Err("a name is empty".to_string())
    } else {
        Err(format!(
            "`{name}` is not a valid name (lower-case letters, digits, `-` and `_`, starting with a letter or digit)"
        ))
    }
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
}
