//! Fixtures the policy module's unit tests share: an account, the facts of a key in it, and two
//! of its roles.

use super::facts::KeyFacts;
use crate::config::{Access, Account, KeySpec, KeyUsage};
use crate::diag::Span;

pub(super) fn account() -> Account {
    Account {
        name: "prod".into(),
        account_id: "111111111111".into(),
        environment: "prod".into(),
        role_arn: None,
        regions: vec!["us-east-1".into()],
        id_span: Span::new(0, 1, 1),
        regions_span: Span::new(0, 1, 1),
    }
}

pub(super) fn facts<'a>(account: &'a Account, access: &'a Access) -> KeyFacts<'a> {
    KeyFacts {
        account,
        partition: "aws",
        regions: vec!["eu-west-1".into(), "us-east-1".into()],
        spec: KeySpec::SymmetricDefault,
        usage: KeyUsage::EncryptDecrypt,
        multi_region: true,
        access,
        bypass_lockout_check: false,
        policy_override: None,
        replica: false,
    }
}

pub(super) fn with_root() -> Access {
    Access {
        root_access: true,
        ..Access::default()
    }
}

pub(super) const APP: &str = "arn:aws:iam::111111111111:role/app";
pub(super) const ADMIN: &str = "arn:aws:iam::111111111111:role/admin";
