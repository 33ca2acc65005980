//! The clients of one target, with the credentials the terraform provider would use
//! (`templates/common/providers.tf`): with a profile `endpoint`, the emulator's static
//! `orch-sandbox` credentials and every call sent to it; with a `role_arn`, that role assumed
//! (session name `orch`) with those credentials; otherwise the SDK's default chain (environment,
//! shared config and SSO, web identity, ECS and EC2 metadata).

use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_kms::config::retry::{RetryConfig, RetryPartition};
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{Region, SharedHttpClient};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use tokio::sync::OnceCell;

use super::calls::Calls;
use super::failure::{self, Unassumable};
use super::inventory::Target;

/// What every target of a read shares: the endpoint, and the SDK configuration (HTTP client,
/// base credentials, retries) loaded once.
pub(super) struct Base {
    endpoint: Option<String>,
    config: OnceCell<SdkConfig>,
}

/// The clients of one target, counting their calls into `calls`.
pub(super) struct Session {
    pub kms: aws_sdk_kms::Client,
    pub sts: aws_sdk_sts::Client,
    pub calls: Calls,
}

impl Base {
    pub(super) fn new(endpoint: Option<String>) -> Base {
        Base {
            endpoint,
            config: OnceCell::new(),
        }
    }

    /// The profile's endpoint, when every call goes to one.
    pub(super) fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    pub(super) async fn session(&self, target: &Target) -> Session {
        let base = self
            .config
            .get_or_init(|| load(self.endpoint.as_deref()))
            .await;
        let calls = Calls::default();
        let region = Region::new(target.region.clone());
        // A retry partition holds the retry quota that throttling drains; KMS throttles per
        // account and region, so one target's throttling must not stop another's retries.
        let partition = |service: &str| {
            RetryPartition::new(format!(
                "orch-{service}-{}-{}",
                target.account_id, target.region
            ))
        };
        let sts = |credentials: Option<SharedCredentialsProvider>| {
            let mut config = aws_sdk_sts::config::Builder::from(base)
                .region(region.clone())
                .retry_partition(partition("sts"))
                .interceptor(calls.clone());
            if let Some(credentials) = credentials {
                config = config.credentials_provider(credentials);
            }
            aws_sdk_sts::Client::from_conf(config.build())
        };
        let assumed = target.role_arn.as_ref().map(|role_arn| {
            SharedCredentialsProvider::new(AssumedRole {
                sts: sts(None),
                role_arn: role_arn.clone(),
            })
        });
        let mut kms = aws_sdk_kms::config::Builder::from(base)
            .region(region.clone())
            .retry_partition(partition("kms"))
            .interceptor(calls.clone());
        if let Some(credentials) = &assumed {
            kms = kms.credentials_provider(credentials.clone());
        }
        Session {
            kms: aws_sdk_kms::Client::from_conf(kms.build()),
            sts: sts(assumed),
            calls,
        }
    }
}

async fn load(endpoint: Option<&str>) -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .retry_config(retries(endpoint.is_some()))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(60))
                .build(),
        );
    match endpoint {
        // The region only names the emulator's partition of its data here; each client gets
        // its target's.
        Some(endpoint) => loader
            .endpoint_url(endpoint)
            .region(Region::from_static("us-east-1"))
            .credentials_provider(Credentials::new(
                "orch-sandbox",
                "orch-sandbox",
                None,
                None,
                "orch-sandbox",
            )),
        None => loader,
    }
    .load()
    .await
}

/// HTTPS through rustls with ring's crypto (aws-lc-rs, the SDK's default, compiles the aws-lc C
/// library: minutes of CI for no gain here; see Cargo.toml), and plain HTTP for an emulator's
/// endpoint.
fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The SDK's standard retry mode, which retries throttling, transient and connection errors
/// with exponential backoff and jitter. Against AWS, 10 attempts (the default is 3): KMS
/// throttles per account and region, and a read of a large region makes thousands of calls.
/// Against an emulator, 3 (as the provider's `max_retries = 3` in the sandbox profile): it
/// answers at once or is down, and a refused connection must not take minutes to report.
fn retries(emulator: bool) -> RetryConfig {
    let attempts = if emulator { 3 } else { 10 };
    RetryConfig::standard().with_max_attempts(attempts)
}

/// A role assumed with the base credentials, as the provider's `assume_role` block does. Written
/// out rather than aws-config's `AssumeRoleProvider` so that AssumeRole goes through the target's
/// own STS client: counted with its calls, and its failure named in the error of the call that
/// needed the credentials (see `failure::Unassumable`).
#[derive(Debug)]
struct AssumedRole {
    sts: aws_sdk_sts::Client,
    role_arn: String,
}

impl AssumedRole {
    async fn assume(&self) -> Result<Credentials, CredentialsError> {
        let unassumable = |reason: String| {
            CredentialsError::provider_error(Unassumable {
                role_arn: self.role_arn.clone(),
                reason,
            })
        };
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name("orch")
            .send()
            .await
            .map_err(|err| unassumable(failure::reason(&err)))?;
        let given = out
            .credentials()
            .ok_or_else(|| unassumable("AssumeRole returned no credentials".to_string()))?;
        Ok(Credentials::new(
            given.access_key_id(),
            given.secret_access_key(),
            Some(given.session_token().to_string()),
            SystemTime::try_from(*given.expiration()).ok(),
            "orch-assume-role",
        ))
    }
}

impl ProvideCredentials for AssumedRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.assume())
    }
}
