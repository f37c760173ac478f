//! The payments module's integration tests: one test binary (each file below is a module), so that the crate's
//! integration tests link once and share their helpers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly, helpers included"
)]

mod cancel_requests;
mod common;
mod contract;
mod iso20022_xsd;
mod payments_saga;
mod rail_boundary;
mod sanctions_lists;
mod screening_review;
