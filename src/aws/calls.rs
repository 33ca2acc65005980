//! Counting the API calls of a read, by operation: an interceptor on every client of a target
//! adds one each time the SDK sends a request, so retries count too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_kms::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_kms::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

/// Requests sent, by operation name (`ListKeys`, `AssumeRole`, ...).
#[derive(Clone, Debug, Default)]
pub(super) struct Calls(Arc<Mutex<BTreeMap<String, u64>>>);

impl Calls {
    pub(super) fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn add(&self, operation: &str) {
        let mut calls = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *calls.entry(operation.to_string()).or_default() += 1;
    }
}

/// Runs just before each attempt goes on the wire: an attempt that fails before it (no
/// credentials) is not a call AWS saw, and is not counted.
impl Intercept for Calls {
    fn name(&self) -> &'static str {
        "orch::aws::Calls"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(metadata) = cfg.load::<Metadata>() {
            self.add(metadata.name());
        }
        Ok(())
    }
}
