//! Why a request was not authenticated or not authorised, with a stable code and the
//! envelope it maps to.

use std::path::PathBuf;

use axum::http::StatusCode;

use crate::error::ApiError;

/// A refused token, a missing permission, or a key set that could not be read.
///
/// Messages say what was wrong and how to fix it; they never carry key material or the
/// token itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "no bearer token: send `Authorization: Bearer <jwt>` (mint a dev token with `corebank token`)"
    )]
    MissingToken,
    #[error("malformed token: {reason}; send `Authorization: Bearer <jwt>` with a compact JWS")]
    MalformedToken { reason: String },
    #[error(
        "unknown signing key `{kid}`: no key with this `kid` in the gateway's key set (COREBANK_JWT_JWKS); \
         sign with a published key or publish the key first"
    )]
    UnknownKey { kid: String },
    #[error("algorithm not allowed: {reason}")]
    AlgorithmNotAllowed { reason: String },
    #[error("bad signature: the token was not signed by key `{kid}` or was altered after signing")]
    BadSignature { kid: String },
    #[error("token expired (beyond the allowed clock skew of {leeway_s} s): mint a new one")]
    Expired { leeway_s: u64 },
    #[error(
        "token not yet valid (`nbf` in the future beyond {leeway_s} s): check the issuer's clock"
    )]
    NotYetValid { leeway_s: u64 },
    #[error("wrong audience: this surface accepts only tokens with `aud` = `{expected}`")]
    WrongAudience { expected: String },
    #[error("wrong issuer: tokens must carry `iss` = `{expected}` (COREBANK_JWT_ISSUER)")]
    WrongIssuer { expected: String },
    #[error(
        "missing claim: the token has no valid `{claim}`; `iss`, `aud`, `exp`, `nbf` and `sub` are required"
    )]
    MissingClaim { claim: String },
    #[error("the signing keys could not be read from {source_name}: {reason}")]
    JwksUnavailable { source_name: String, reason: String },
    #[error(
        "missing scope: this request needs the scope `{scope}`, which the token does not grant"
    )]
    MissingScope { scope: String },
    #[error("other customer: this token is bound to one customer and may not act for another")]
    OtherCustomer,
    #[error(
        "the gateway refuses to start on development keys: {what}. For production, {fix}; \
         for development, set COREBANK_DEV=true (`corebank up` does)"
    )]
    DevModeRequired { what: String, fix: &'static str },
    #[error("dev keys under {}: {reason}", path.display())]
    DevKeys { path: PathBuf, reason: String },
    #[error("could not mint a token: {reason}")]
    Mint { reason: String },
}

impl AuthError {
    /// The stable, snake_case code (metrics label, audit outcome, tests).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::MalformedToken { .. } => "malformed_token",
            AuthError::UnknownKey { .. } => "unknown_key",
            AuthError::AlgorithmNotAllowed { .. } => "algorithm_not_allowed",
            AuthError::BadSignature { .. } => "bad_signature",
            AuthError::Expired { .. } => "expired",
            AuthError::NotYetValid { .. } => "not_yet_valid",
            AuthError::WrongAudience { .. } => "wrong_audience",
            AuthError::WrongIssuer { .. } => "wrong_issuer",
            AuthError::MissingClaim { .. } => "missing_claim",
            AuthError::JwksUnavailable { .. } => "jwks_unavailable",
            AuthError::MissingScope { .. } => "missing_scope",
            AuthError::OtherCustomer => "other_customer",
            AuthError::DevModeRequired { .. } => "dev_mode_required",
            AuthError::DevKeys { .. } => "dev_keys_unavailable",
            AuthError::Mint { .. } => "mint_failed",
        }
    }

    /// The HTTP refusal: 401 for a token the gateway does not accept, 403 for a valid token
    /// that lacks the permission, 503 when the keys to check it with cannot be read.
    pub fn api_error(&self) -> ApiError {
        match self {
            AuthError::MissingToken
            | AuthError::MalformedToken { .. }
            | AuthError::UnknownKey { .. }
            | AuthError::AlgorithmNotAllowed { .. }
            | AuthError::BadSignature { .. }
            | AuthError::Expired { .. }
            | AuthError::NotYetValid { .. }
            | AuthError::WrongAudience { .. }
            | AuthError::WrongIssuer { .. }
            | AuthError::MissingClaim { .. } => ApiError::unauthenticated(self.to_string()),
            AuthError::MissingScope { .. } | AuthError::OtherCustomer => {
                ApiError::forbidden(self.to_string())
            }
            // The caller's token may be fine; the gateway cannot check it right now.
            AuthError::JwksUnavailable { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the gateway cannot read its signing keys right now; retry shortly",
            ),
            AuthError::DevModeRequired { .. }
            | AuthError::DevKeys { .. }
            | AuthError::Mint { .. } => ApiError::internal(self),
        }
    }
}
