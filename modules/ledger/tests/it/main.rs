//! The ledger's integration tests: one test binary (each file below is a module), so that the crate's
//! integration tests link once and share their helpers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly, helpers included"
)]

mod common;
mod ledger_bank_charge;
mod ledger_batcher_supervision;
mod ledger_concurrency;
mod ledger_grpc;
mod ledger_model;
mod ledger_rules;
mod ledger_sweep;
mod wire;
