//! The outbox's integration tests: one test binary (each file below is a module), so that the crate's
//! integration tests link once and share their helpers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly, helpers included"
)]

mod common;
mod inbox_and_subscribers;
mod nats_sink;
mod nats_tls;
mod relay;
