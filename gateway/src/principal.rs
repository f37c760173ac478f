//! Who is calling: the authenticated principal every handler works with, and the surfaces
//! (one token audience each) the gateway serves.

use std::collections::BTreeSet;

/// One API surface; each has its own token audience, so a token for one is refused by the
/// others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Surface {
    /// `/v1`: banks' channels.
    Channel,
    /// `/admin/v1`: migration teams and operators.
    Admin,
    /// The regulators' audit API (a later issue).
    Audit,
}

impl Surface {
    /// The `aud` a token for this surface carries.
    pub fn audience(self) -> &'static str {
        match self {
            Surface::Channel => "corebank-channel",
            Surface::Admin => "corebank-admin",
            Surface::Audit => "corebank-audit",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Surface::Channel => "channel",
            Surface::Admin => "admin",
            Surface::Audit => "audit",
        }
    }
}

/// The scopes, by name.
pub mod scope {
    pub const ACCOUNTS_READ: &str = "accounts:read";
    pub const ACCOUNTS_WRITE: &str = "accounts:write";
    pub const PAYMENTS_WRITE: &str = "payments:write";
    pub const ROUTES_READ: &str = "routes:read";
    pub const ROUTES_WRITE: &str = "routes:write";
    pub const ROUTES_APPROVE: &str = "routes:approve";
    /// Approves or rejects a saga force-compensate or mark-resolved proposed by another
    /// operator (ADR 0012).
    pub const SAGAS_APPROVE: &str = "sagas:approve";
    /// Approves or rejects a screening decision on a payment proposed by another operator.
    pub const PAYMENTS_APPROVE: &str = "payments:approve";
    /// Approves or rejects a modern product's definition proposed by another operator.
    pub const PRODUCTS_APPROVE: &str = "products:approve";
    /// Approves or rejects the start of an account migration proposed by another operator.
    pub const MIGRATIONS_APPROVE: &str = "migrations:approve";
    pub const AUDIT_READ: &str = "audit:read";
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`: the channel client or the operator.
    pub subject: String,
    pub surface: Surface,
    pub scopes: BTreeSet<String>,
    /// A channel token bound to one customer may touch only that customer's accounts.
    pub customer_id: Option<String>,
}

impl Principal {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }
}

/// What every handler knows about the request besides its body: who (the authenticated
/// principal), from where, and its request id. The gateway's authentication middleware
/// inserts it as an `axum::Extension` before any handler runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub principal: Principal,
    /// The client's address (`X-Forwarded-For`'s first entry behind a proxy, else the
    /// peer address), for the audit trail.
    pub origin: String,
    /// `X-Request-ID`, as accepted or generated.
    pub request_id: String,
}
