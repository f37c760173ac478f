//! The deposits module's integration tests: one test binary (each file below is a module), so that the crate's
//! integration tests link once and share their helpers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly, helpers included"
)]

mod common;
mod contract;
mod deposits_money_path;
mod deposits_rules;
mod import;
