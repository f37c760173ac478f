//! The database platform's integration tests: one test binary (each file below is a module), so that the crate's
//! integration tests link once and share their helpers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly, helpers included"
)]

mod migrate_packages;
mod plans;
mod portability_lint;
mod run_tx;
mod statements;
