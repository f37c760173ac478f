//! The two sides behind the gateway, both serving the same canonical gRPC contracts
//! (`corebank.deposits.v1.Deposits`, `corebank.payments.v1.Payments`): the modern modules
//! and the legacy adapter. And how their refusals become the gateway's HTTP errors.

use std::time::Duration;

use axum::http::StatusCode;
use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_api::payments::v1::payments_client::PaymentsClient;
use corebank_api::payments::v1::payments_review_client::PaymentsReviewClient;
use corebank_service::internal::InternalClients;
use tonic::transport::Channel;

use crate::error::ApiError;
use crate::routing::Side;

/// One side's clients (cheap to clone: they share the connection).
#[derive(Debug, Clone)]
pub struct SideClients {
    pub deposits: DepositsClient<Channel>,
    pub payments: PaymentsClient<Channel>,
}

/// Both sides.
#[derive(Debug, Clone)]
pub struct Upstreams {
    legacy: SideClients,
    modern: SideClients,
    /// `corebank.payments.v1.PaymentsReview`: the modern payments module only (the legacy
    /// core has no screening review); called for approved screening decisions.
    payments_review: PaymentsReviewClient<Channel>,
}

/// Lazy channels to one side at `url`: Deposits served by `deposits_server`, Payments by
/// `payments_server` (component names, checked against the certificates that answer).
fn side_clients(
    clients: &InternalClients,
    url: &str,
    (deposits_server, payments_server): (&str, &str),
    timeout: Duration,
    setting: &str,
) -> Result<SideClients, ApiError> {
    let channel = |server: &str| {
        clients
            .endpoint(url, server)
            .map(|endpoint| {
                endpoint
                    .connect_timeout(Duration::from_secs(5))
                    .timeout(timeout)
                    .connect_lazy()
            })
            .map_err(|error| ApiError::internal(format!("{setting}: {error}")))
    };
    Ok(SideClients {
        deposits: DepositsClient::new(channel(deposits_server)?),
        payments: PaymentsClient::new(channel(payments_server)?),
    })
}

impl Upstreams {
    /// Lazy channels to both sides, as the gateway (`clients`); `timeout` bounds every call.
    pub fn new(
        clients: &InternalClients,
        legacy_url: &str,
        modern_url: &str,
        timeout: Duration,
    ) -> Result<Upstreams, ApiError> {
        use corebank_service::internal::component_names::{DEPOSITS, LEGACY_ADAPTER, PAYMENTS};
        let payments_review = clients
            .endpoint(modern_url, PAYMENTS)
            .map(|endpoint| {
                PaymentsReviewClient::new(
                    endpoint
                        .connect_timeout(Duration::from_secs(5))
                        .timeout(timeout)
                        .connect_lazy(),
                )
            })
            .map_err(|error| ApiError::internal(format!("COREBANK_GATEWAY_MODERN_URL: {error}")))?;
        Ok(Upstreams {
            payments_review,
            legacy: side_clients(
                clients,
                legacy_url,
                (LEGACY_ADAPTER, LEGACY_ADAPTER),
                timeout,
                "COREBANK_GATEWAY_LEGACY_URL",
            )?,
            modern: side_clients(
                clients,
                modern_url,
                (DEPOSITS, PAYMENTS),
                timeout,
                "COREBANK_GATEWAY_MODERN_URL",
            )?,
        })
    }

    /// The modern payments module's screening review.
    pub fn payments_review(&self) -> PaymentsReviewClient<Channel> {
        self.payments_review.clone()
    }

    pub fn side(&self, side: Side) -> SideClients {
        match side {
            Side::Legacy => self.legacy.clone(),
            Side::Modern => self.modern.clone(),
        }
    }
}

/// A module's refusal as the gateway's HTTP error: the module's stable code is kept; the
/// status follows the gRPC code.
/// When a channel may send a request again that a side answered `unavailable`, in seconds.
const UNAVAILABLE_RETRY_AFTER_S: u32 = 1;

/// The legacy core's refusal of a posting to an account it handed over to the modern side.
const MIGRATED_CODE: &str = "account_migrated";

pub fn api_error_of(status: &tonic::Status, side: Side) -> ApiError {
    let code = corebank_service::contract::error_code(status);
    let http = match status.code() {
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => StatusCode::BAD_REQUEST,
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::AlreadyExists | tonic::Code::FailedPrecondition | tonic::Code::Aborted => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => StatusCode::BAD_GATEWAY,
        tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        tonic::Code::Unavailable | tonic::Code::Cancelled => StatusCode::SERVICE_UNAVAILABLE,
        tonic::Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        tonic::Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        tonic::Code::Ok | tonic::Code::Unknown | tonic::Code::Internal | tonic::Code::DataLoss => {
            StatusCode::BAD_GATEWAY
        }
    };
    if http == StatusCode::BAD_GATEWAY {
        tracing::error!(
            route.side = side.as_str(),
            grpc.code = ?status.code(),
            error = status.message(),
            "the upstream failed"
        );
        return ApiError::new(
            http,
            "upstream_error",
            format!(
                "the {} side failed; retry later with the same Idempotency-Key",
                side.as_str()
            ),
        );
    }
    let code = if code.is_empty() {
        match http {
            StatusCode::SERVICE_UNAVAILABLE => "unavailable".to_owned(),
            StatusCode::GATEWAY_TIMEOUT => "timeout".to_owned(),
            _ => "refused".to_owned(),
        }
    } else {
        code
    };
    if code == crate::homes::MOVING_CODE {
        // The core refused a posting to an account it is handing over: like the gateway's
        // own answer for a moving account, retry shortly with the same key.
        return ApiError::new(http, &code, status.message().to_owned())
            .with_retry_after(crate::homes::MOVING_RETRY_AFTER_S);
    }
    if code == MIGRATED_CODE {
        // A request that reached the legacy core after its account was emptied there (it
        // was routed before the home switched, and waited): nothing was applied, and the
        // account's new home takes the same key once the switch reaches this replica.
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            crate::homes::MOVING_CODE,
            format!(
                "the account has just moved to the other core; retry with the same \
                 Idempotency-Key ({})",
                status.message()
            ),
        )
        .with_retry_after(crate::homes::MOVING_RETRY_AFTER_S);
    }
    if http == StatusCode::SERVICE_UNAVAILABLE {
        // A side that is down or busy for a moment (the legacy core's timeouts under load, a
        // restart): the same key may be sent again, and the answer says when.
        return ApiError::new(http, &code, status.message().to_owned())
            .with_retry_after(UNAVAILABLE_RETRY_AFTER_S);
    }
    if code == "cannot_cancel" {
        // The saga is busy with a step: a later attempt may succeed.
        let mut error = ApiError::new(StatusCode::CONFLICT, &code, status.message().to_owned());
        error.retry_safe = true;
        return error;
    }
    ApiError::new(http, &code, status.message().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: tonic::Code, error_code: &str) -> ApiError {
        let status = corebank_service::refusal::status_of(
            "legacy-adapter",
            code,
            error_code,
            &"refused by the core",
            None,
        );
        api_error_of(&status, Side::Legacy)
    }

    #[test]
    fn a_posting_that_reached_the_core_after_its_account_moved_is_retried_on_its_new_home() {
        let error = refused(tonic::Code::FailedPrecondition, "account_migrated");
        assert_eq!(
            (error.status, error.code.as_str(), error.retry_after_s),
            (StatusCode::SERVICE_UNAVAILABLE, "account_moving", Some(1))
        );
        assert!(error.retry_safe, "the key is freed for the retry");
        // A side that is down for a moment says when to try again.
        let down = refused(tonic::Code::Unavailable, "unavailable");
        assert_eq!(
            (down.status, down.retry_after_s, down.retry_safe),
            (StatusCode::SERVICE_UNAVAILABLE, Some(1), true)
        );
        // Other refusals stay what they are.
        let frozen = refused(tonic::Code::FailedPrecondition, "account_frozen");
        assert_eq!(
            (frozen.status, frozen.code.as_str(), frozen.retry_after_s),
            (StatusCode::UNPROCESSABLE_ENTITY, "account_frozen", None)
        );
    }
}
