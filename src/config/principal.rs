//! Checks of the principals a tree names: ARNs in key policies, grantees, roles to assume, and
//! the AWS services a key admits through `kms:ViaService`.

/// IAM's limits on a role or user name and on its path (IAM quotas).
const MAX_NAME: usize = 64;
const MAX_PATH: usize = 512;

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
    let path_and_name = resource
        .strip_prefix("role/")
        .or_else(|| resource.strip_prefix("user/"))
        .ok_or_else(|| format!("`{arn}` is neither an account root, a role nor a user"))?;
    let valid = !path_and_name.is_empty()
        && !path_and_name.ends_with('/')
        && path_and_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c));
    if !valid {
        return Err(format!("`{arn}` has an invalid role or user name"));
    }
    let (path, name) = path_and_name
        .rsplit_once('/')
        .unwrap_or(("", path_and_name));
    if name.len() > MAX_NAME {
        return Err(format!(
            "`{arn}`: the role or user name is {} characters, over IAM's limit of {MAX_NAME}",
            name.len()
        ));
    }
    // The path as IAM writes it, with its leading and trailing slash.
    if path.len() + 2 > MAX_PATH {
        return Err(format!(
            "`{arn}`: the path is {} characters, over IAM's limit of {MAX_PATH}",
            path.len() + 2
        ));
    }
    Ok(account.to_string())
}

/// The partition an ARN names, for an ARN [`check_principal`] accepted.
fn partition_of_arn(arn: &str) -> &str {
    arn.split(':').nth(1).unwrap_or_default()
}

/// The AWS partition a region belongs to: a key there can only admit principals of it.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("cn-") {
        "aws-cn"
    } else {
        "aws"
    }
}

/// [`check_principal`] for a node in `region`: AWS refuses a principal of another partition in a
/// key policy, a grant or an IAM policy (partitions are separate worlds, with separate accounts).
pub fn check_principal_in(arn: &str, region: &str) -> Result<String, String> {
    let account = check_principal(arn)?;
    check_partition(arn, region)?;
    Ok(account)
}

/// [`check_role`] for a node in `region`.
pub fn check_role_in(arn: &str, region: &str) -> Result<String, String> {
    let account = check_role(arn)?;
    check_partition(arn, region)?;
    Ok(account)
}

/// An ARN of `region`'s partition; any other is refused, as AWS refuses it.
pub fn check_partition(arn: &str, region: &str) -> Result<(), String> {
    let expected = partition_of(region);
    match partition_of_arn(arn) {
        found if found == expected => Ok(()),
        found => Err(format!(
            "`{arn}` is in the partition `{found}`, but {region} is in the partition `{expected}`: AWS refuses principals of another partition"
        )),
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

/// A service name as `kms:ViaService` spells it (`s3` in `s3.us-east-1.amazonaws.com`):
/// lowercase letters and digits, words joined by single hyphens.
pub fn check_service(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.split('-').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not an AWS service name (e.g. s3, rds, secretsmanager)"
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
        assert!(check_principal(&format!(
            "arn:aws:iam::111111111111:role/{}",
            "r".repeat(64)
        ))
        .is_ok());
        assert!(check_principal(&format!(
            "arn:aws:iam::111111111111:role/{}/app",
            "p".repeat(510)
        ))
        .is_ok());
        for bad in [
            "*",
            "arn:aws:iam::111111111111:group/admins",
            "arn:aws:sts::111111111111:assumed-role/app/session",
            "arn:aws:iam::11111111111:role/app",
            "arn:aws:iam::1111111111111:role/app",
            "arn:aws:iam::11111111111a:role/app",
            "arn:aws:iam::111111111111:role/",
            "arn:aws:iam::111111111111:role/app/",
            "arn:aws:iam:us-east-1:111111111111:role/app",
            "arn:aws:s3:::bucket",
            "arn:aws-xx:iam::111111111111:role/app",
            "role/app",
            "s3.amazonaws.com",
            &format!("arn:aws:iam::111111111111:role/{}", "r".repeat(65)),
            &format!("arn:aws:iam::111111111111:user/{}", "u".repeat(65)),
            &format!("arn:aws:iam::111111111111:role/{}/app", "p".repeat(511)),
        ] {
            assert!(check_principal(bad).is_err(), "{bad}");
        }
        assert!(check_role("arn:aws:iam::111111111111:user/alice").is_err());
    }

    #[test]
    fn partitions_follow_the_region() {
        assert_eq!(partition_of("us-east-1"), "aws");
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
        assert!(check_partition("arn:aws:iam::111111111111:role/app", "eu-west-1").is_ok());
        assert!(
            check_partition("arn:aws-us-gov:iam::111111111111:role/app", "us-gov-east-1").is_ok()
        );
        let err = check_principal_in("arn:aws-cn:iam::111111111111:role/app", "us-east-1");
        assert!(err.unwrap_err().contains("`aws-cn`"));
        assert!(check_principal_in("arn:aws:iam::111111111111:root", "us-gov-west-1").is_err());
        assert!(check_role_in("arn:aws-us-gov:iam::111111111111:role/app", "eu-west-1").is_err());
        assert_eq!(
            check_role_in("arn:aws:iam::111111111111:role/app", "eu-west-1").unwrap(),
            "111111111111"
        );
    }

    #[test]
    fn service_names() {
        for good in ["s3", "rds", "secretsmanager", "ssm-incidents", "ec2"] {
            assert!(check_service(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "S3",
            "s3.amazonaws.com",
            "-s3",
            "s3-",
            "s--3",
            "s 3",
            "s3*",
        ] {
            assert!(check_service(bad).is_err(), "{bad}");
        }
    }
}
