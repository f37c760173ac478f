//! corebank-gateway's integration tests: one test binary (each file below is a module), so that the crate's
//! integration tests link once and share their helpers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly, helpers included"
)]

mod approvals;
mod auth;
mod channel;
mod common;
mod crossings;
mod homes;
mod idempotency;
mod jwks_https;
mod migration;
mod openapi;
mod routing;
mod shadow;
