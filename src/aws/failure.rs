//! Why a call failed, in words a report can show: access denied, a region not enabled, an
//! endpoint that does not answer, a role that cannot be assumed. The SDK's errors are typed by
//! operation; this reads what they share (the error code and message, the dispatch failure, the
//! error chain).

use std::error::Error;
use std::fmt;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// AssumeRole failed: carried through the SDK's credentials error so that the call that needed
/// the credentials (`ListKeys`) reports the role, not a bare "no credentials".
#[derive(Debug)]
pub(super) struct Unassumable {
    pub role_arn: String,
    pub reason: String,
}

impl fmt::Display for Unassumable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "role {} could not be assumed: {}",
            self.role_arn, self.reason
        )
    }
}

impl Error for Unassumable {}

/// Why `err` happened, without the operation's name (the caller adds it).
pub(super) fn reason<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + Error + 'static,
    R: fmt::Debug + 'static,
{
    if let Some(role) = in_chain::<Unassumable>(err) {
        return role.to_string();
    }
    if let Some(missing) = in_chain::<CredentialsError>(err) {
        return format!("no credentials: {}", DisplayErrorContext(missing));
    }
    match err {
        SdkError::ServiceError(service) => by_code(service.err().code(), service.err().message()),
        SdkError::TimeoutError(_) => "timed out (every attempt)".to_string(),
        SdkError::DispatchFailure(dispatch) if dispatch.is_io() || dispatch.is_timeout() => {
            format!(
                "endpoint unreachable: {}",
                DisplayErrorContext(err as &dyn Error)
            )
        }
        _ => DisplayErrorContext(err as &dyn Error).to_string(),
    }
}

/// Whether `err` is AWS saying the resource is gone (`NotFoundException`).
pub(super) fn is_not_found<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(ProvideErrorMetadata::code)
        .is_some_and(|code| code == "NotFoundException")
}

/// The first error of type `T` in `err` and its sources.
fn in_chain<'a, T: Error + 'static>(err: &'a (dyn Error + 'static)) -> Option<&'a T> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        next = err.source();
    }
    None
}

/// A service error in words, from its code and message.
fn by_code(code: Option<&str>, message: Option<&str>) -> String {
    let message = message.unwrap_or("no message");
    match code {
        Some("AccessDeniedException" | "AccessDenied") => format!("access denied: {message}"),
        // What KMS and STS answer in a region the account has not enabled (opted in to): the
        // credentials come from a region where they exist, the region does not know them.
        Some("UnrecognizedClientException" | "InvalidClientTokenId") => format!(
            "the credentials are not recognized here: is the region enabled (opted in) for the \
             account? ({message})"
        ),
        Some("RegionDisabledException" | "OptInRequired") => {
            format!("the region is not enabled (opted in) for the account: {message}")
        }
        Some("ExpiredTokenException" | "ExpiredToken") => {
            format!("the credentials have expired: {message}")
        }
        Some("ThrottlingException" | "Throttling" | "TooManyRequestsException") => {
            format!("throttled, still after every retry: {message}")
        }
        Some(code) => format!("{code}: {message}"),
        None => format!("failed without an error code: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_kms::error::ErrorMetadata;
    use aws_sdk_kms::operation::list_keys::ListKeysError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;

    use super::*;

    type ListKeysFailure = SdkError<ListKeysError, Response>;

    fn service(code: &str, message: &str) -> ListKeysFailure {
        let err =
            ListKeysError::generic(ErrorMetadata::builder().code(code).message(message).build());
        let raw = Response::new(StatusCode::try_from(400).unwrap(), SdkBody::empty());
        SdkError::service_error(err, raw)
    }

    #[test]
    fn access_denied() {
        let err = service("AccessDeniedException", "not allowed kms:ListKeys");
        assert_eq!(reason(&err), "access denied: not allowed kms:ListKeys");
    }

    #[test]
    fn a_region_not_enabled() {
        let err = service(
            "UnrecognizedClientException",
            "The security token is invalid.",
        );
        assert_eq!(
            reason(&err),
            "the credentials are not recognized here: is the region enabled (opted in) for the \
             account? (The security token is invalid.)"
        );
        let err = service(
            "RegionDisabledException",
            "STS is not activated in me-south-1",
        );
        assert_eq!(
            reason(&err),
            "the region is not enabled (opted in) for the account: STS is not activated in me-south-1"
        );
    }

    #[test]
    fn other_codes_are_shown_as_they_are() {
        let err = service("KMSInternalException", "boom");
        assert_eq!(reason(&err), "KMSInternalException: boom");
    }

    #[test]
    fn not_found_is_recognized() {
        assert!(is_not_found(&service("NotFoundException", "gone")));
        assert!(!is_not_found(&service("AccessDeniedException", "no")));
    }

    #[test]
    fn a_refused_connection_is_an_unreachable_endpoint() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err: ListKeysFailure = SdkError::dispatch_failure(ConnectorError::io(refused.into()));
        assert!(
            reason(&err).starts_with("endpoint unreachable: "),
            "{}",
            reason(&err)
        );
    }

    #[test]
    fn a_role_not_assumable_is_named_whatever_wraps_it() {
        let role = Unassumable {
            role_arn: "arn:aws:iam::111111111111:role/orch".to_string(),
            reason: "access denied: not authorized to perform sts:AssumeRole".to_string(),
        };
        let credentials = CredentialsError::provider_error(role);
        let err: ListKeysFailure =
            SdkError::dispatch_failure(ConnectorError::other(credentials.into(), None));
        assert_eq!(
            reason(&err),
            "role arn:aws:iam::111111111111:role/orch could not be assumed: access denied: not \
             authorized to perform sts:AssumeRole"
        );
    }
}
