//! corebank's end-to-end tests: the binary (`up`, `serve`, the CLI) and its crash tests: one test binary (each file below is a module), so that the crate's
//! integration tests link once and share their helpers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    reason = "a test fails loudly, helpers included"
)]

mod cli;
mod common;
mod gateway_replicas;
mod legacy_crash;
mod migration_crash;
mod outbox_cli;
mod outbox_crash;
mod saga_crash;
mod up;
