//! The strangler-fig gateway (`corebank serve gateway`): the one door for channels
//! (`/v1`, REST/JSON) and migration teams (`/admin/v1`). It authenticates (JWT), makes
//! mutating requests idempotent, routes each request per product and account to the legacy
//! adapter or the modern modules (both serve the same gRPC contracts), shadows to the other
//! side and compares, and writes the audit trail. Routing model: DESIGN.md, "Strangler-fig
//! routing"; decisions: docs/adr/0008-gateway.md.

pub mod app;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod channel;
pub mod directory;
pub mod error;
pub mod homes;
pub mod idempotency;
pub mod json_integer;
pub mod migrations;
pub mod move_hold;
pub mod nul_text;
pub mod openapi;
pub mod operator;
pub mod principal;
pub mod products;
pub mod reconciliation;
pub mod routing;
pub mod sagas;
pub mod shadow;
pub mod upstream;
