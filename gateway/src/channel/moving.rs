//! Requests on an account that an account migration is moving (ADR 0013,
//! [`crate::move_hold`]): held for a moment, then served on the account's new home, or
//! answered 503 `account_moving` with `Retry-After` before the idempotency key is taken.

use axum::http::StatusCode;

use super::GatewayState;
use crate::directory::AccountEntry;
use crate::error::ApiError;
use crate::homes::MOVING_CODE;

/// The account, once no account migration moves it: a request on a moving account is held
/// until `until` ([`GatewayState::hold_until`]) for the move to end, and is then served on
/// the account's home as it is then; a move that outlasts the hold is [`not_moving`]'s 503.
pub(crate) async fn settled(
    state: &GatewayState,
    account: AccountEntry,
    until: tokio::time::Instant,
) -> Result<AccountEntry, ApiError> {
    crate::move_hold::gated_on(account.account_id);
    let account = state.directory.settled(account, until).await?;
    not_moving(&account)?;
    Ok(account)
}

impl GatewayState {
    /// Until when a request that finds an account moving now is held (`crate::move_hold`):
    /// the hold of the channel request being served, which counts from its arrival, or
    /// [`GatewayState::migration_hold`] from now outside one.
    pub(crate) fn hold_until(&self) -> tokio::time::Instant {
        crate::move_hold::hold_deadline()
            .unwrap_or_else(|| tokio::time::Instant::now() + self.migration_hold)
    }
}

/// Refuses a change to an account while an account migration moves it (`crate::homes`):
/// 503 `account_moving` with `Retry-After`, before the idempotency key is taken, so the same
/// request retried after the move runs once, on the account's new home.
fn not_moving(account: &AccountEntry) -> Result<(), ApiError> {
    match &account.move_id {
        None => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            MOVING_CODE,
            format!(
                "account {} is moving between the cores; retry after the Retry-After seconds \
                 with the same Idempotency-Key",
                account.account_id
            ),
        )
        .with_retry_after(crate::homes::MOVING_RETRY_AFTER_S)),
    }
}
