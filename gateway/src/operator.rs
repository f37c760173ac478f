//! The operator behind an admin call (`/admin/v1`): who calls, whether they hold the scope
//! the call needs, the audit record of what they do, and the body and reason they send.
//! Every admin handler (approvals, routes, sagas, shadow, products) starts here.

use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::Utc;
use corebank_db::{Db, Transaction, TxError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::audit::{self, AuditRecord};
use crate::error::ApiError;
use crate::principal::{RequestContext, Surface};

/// The request context an admin handler is given (absent when nobody authenticated).
pub(crate) type Context = Option<Extension<RequestContext>>;
/// An admin handler's answer: a status and a JSON body, or the refusal.
pub(crate) type Reply = Result<(StatusCode, Json<Value>), ApiError>;

/// A required reason is at most this long, in characters.
pub(crate) const REASON_LENGTH_MAX: usize = 2_000;

/// The authenticated caller.
pub(crate) fn authenticated(context: Context) -> Result<RequestContext, ApiError> {
    context
        .map(|Extension(context)| context)
        .ok_or_else(|| ApiError::unauthenticated("no authenticated principal"))
}

/// The caller, if it holds `needed` (for reads and calls that record nothing themselves: a
/// refusal is not audited).
pub(crate) fn reader(context: Context, needed: &str) -> Result<RequestContext, ApiError> {
    let context = authenticated(context)?;
    crate::auth::require_scope(&context.principal, needed).map_err(|error| error.api_error())?;
    Ok(context)
}

/// Refuses, and audits the refusal in a transaction of its own, when the caller lacks
/// `needed`.
pub(crate) async fn require(
    db: &Db,
    context: &RequestContext,
    needed: &str,
    action: &str,
    resource: &str,
) -> Result<(), ApiError> {
    if context.principal.has_scope(needed) {
        return Ok(());
    }
    let refusal = ApiError::forbidden(format!("this needs the scope {needed}"));
    let refused = Actor::of(context).record(
        action,
        resource,
        &refusal.code,
        json!({ "missing_scope": needed }),
    );
    audit::append_alone(db, &refused).await?;
    Err(refusal)
}

/// Who does something, for the audit trail: an operator, or the system itself.
#[derive(Debug, Clone)]
pub(crate) struct Actor {
    pub subject: String,
    pub origin: String,
    pub request_id: String,
}

impl Actor {
    /// The authenticated caller of `context`.
    pub(crate) fn of(context: &RequestContext) -> Actor {
        Actor {
            subject: context.principal.subject.clone(),
            origin: context.origin.clone(),
            request_id: context.request_id.clone(),
        }
    }

    /// The gateway acting on its own, as `subject`.
    pub(crate) fn system(subject: &str) -> Actor {
        Actor {
            subject: subject.to_owned(),
            origin: "gateway".to_owned(),
            request_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// The admin-surface audit record of `action` on `resource`.
    pub(crate) fn record(
        &self,
        action: &str,
        resource: &str,
        outcome: &str,
        details: Value,
    ) -> AuditRecord {
        AuditRecord {
            at: Utc::now(),
            actor: self.subject.clone(),
            surface: Surface::Admin.name().to_owned(),
            action: action.to_owned(),
            resource: resource.to_owned(),
            origin: self.origin.clone(),
            outcome: outcome.to_owned(),
            request_id: self.request_id.clone(),
            route: None,
            details,
        }
    }

    /// Appends the record in `tx`.
    pub(crate) async fn audit(
        &self,
        tx: &Transaction<'_>,
        action: &str,
        resource: &str,
        outcome: &str,
        details: Value,
    ) -> Result<(), TxError<ApiError>> {
        audit::append(tx, &self.record(action, resource, outcome, details)).await?;
        Ok(())
    }
}

/// The JSON body of an admin call; `shape` tells a caller who sent something else what
/// it must be.
pub(crate) fn parse_body<'a, T: Deserialize<'a>>(
    body: &'a [u8],
    shape: &str,
) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::invalid(format!("the body must be {shape}: {error}")))
}

/// A required reason: not blank, at most [`REASON_LENGTH_MAX`] characters.
pub(crate) fn checked_reason(reason: &str) -> Result<String, ApiError> {
    // The limit is on the text as sent (as the API reference's `maxLength` is), then the
    // blanks around it go.
    let too_long = reason.chars().count() > REASON_LENGTH_MAX;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ApiError::invalid("reason is required"));
    }
    if too_long {
        return Err(ApiError::invalid(format!(
            "reason: at most {REASON_LENGTH_MAX} characters"
        )));
    }
    Ok(reason.to_owned())
}

/// The API reference's schema of a required reason, as [`checked_reason`] takes it.
pub(crate) fn reason_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::openapi::formats::text(REASON_LENGTH_MAX)
}

/// `value` as a JSON answer body.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(ApiError::internal)
}
