//! Checks of the ARNs a tree names: principals in key policies, grantees, roles to assume.

/// An IAM principal that may appear in a key policy: an account root, a role or a user.
/// Returns the account id of the principal, or why it is not acceptable.
pub fn check_principal(arn: &str) -> Result<String, String> {
    if arn == "*" {
        return Err("`*` (everyone) is never a principal orch will write into a key policy".into());
    }
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" {
        return Err(format!(
            "`{arn}` is not an ARN; write arn:aws:iam::<account-id>:role/<name>"
        ));
    }
    let (partition, service, region, account, resource) =
        (parts[1], parts[2], parts[3], parts[4], parts[5]);
    if !matches!(partition, "aws" | "aws-us-gov" | "aws-cn") {
        return Err(format!("`{arn}` has an unknown partition `{partition}`"));
    }
    if service == "sts" && resource.starts_with("assumed-role/") {
        return Err(format!(
            "`{arn}` is an assumed-role session, which expires; name the role instead (arn:{partition}:iam::{account}:role/...)"
        ));
    }
    if service != "iam" || !region.is_empty() {
        return Err(format!(
            "`{arn}` is not an IAM ARN (arn:aws:iam::<account-id>:...)"
        ));
    }
    check_account_id(account).map_err(|why| format!("`{arn}`: {why}"))?;
    if resource == "root" {
        return Ok(account.to_string());
    }
    if resource.starts_with("group/") {
        return Err(format!("`{arn}` is an IAM group; groups cannot be principals in a key policy, name its roles or users"));
    }
    let name = resource
        .strip_prefix("role/")
        .or_else(|| resource.strip_prefix("user/"))
        .ok_or_else(|| format!("`{arn}` is neither an account root, a role nor a user"))?;
    let valid = !name.is_empty()
        && !name.ends_with('/')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c));
    if valid {
        Ok(account.to_string())
    } else {
        Err(format!("`{arn}` has an invalid role or user name"))
    }
}

/// A role ARN, such as the one orch assumes in an account.
pub fn check_role(arn: &str) -> Result<String, String> {
    let account = check_principal(arn)?;
    if arn
        .split(':')
        .nth(5)
        .is_some_and(|r| r.starts_with("role/"))
    {
        Ok(account)
    } else {
        Err(format!(
            "`{arn}` is not a role ARN (arn:aws:iam::<account-id>:role/<name>)"
        ))
    }
}

pub fn check_account_id(id: &str) -> Result<(), String> {
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!(
            "`{id}` is not an AWS account id (12 digits, quoted in YAML)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals() {
        assert_eq!(
            check_principal("arn:aws:iam::111111111111:root").unwrap(),
            "111111111111"
        );
        assert!(check_principal("arn:aws:iam::111111111111:role/app").is_ok());
        assert!(check_principal("arn:aws:iam::111111111111:role/path/app").is_ok());
        assert!(check_principal("arn:aws:iam::111111111111:user/alice").is_ok());
        for bad in [
            "*",
            "arn:aws:iam::111111111111:group/admins",
            "arn:aws:sts::111111111111:assumed-role/app/session",
            "arn:aws:iam::11111111111:role/app",
            "arn:aws:iam::111111111111:role/",
            "arn:aws:s3:::bucket",
            "role/app",
        ] {
            assert!(check_principal(bad).is_err(), "{bad}");
        }
        assert!(check_role("arn:aws:iam::111111111111:user/alice").is_err());
    }
}
