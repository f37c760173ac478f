//! `corebank bench <suite>`: benchmarks measured against a baseline run in the same
//! invocation on the same PostgreSQL server (pgbench's TPC-B), each result measured twice:
//! closed loop (each client sends its next request when the previous answer arrives) and
//! open loop (a fixed arrival rate, latency counted from each request's scheduled send time).
//! The harness (`harness`) does what the suites share; each suite says what a request is and
//! which results it reports. Benchmarks are commands, never timed tests.

mod harness;

mod gateway;
mod ledger;
mod migration;
mod payments;
mod saga;

use corebank_service::Settings;

/// A suite of `corebank bench`.
#[derive(Debug, clap::Subcommand)]
pub enum BenchSuite {
    /// pgbench TPC-B, then two-leg transfers over gRPC among many accounts (uniform) and
    /// into one account (hot_account).
    Ledger(ledger::LedgerBenchOptions),
    /// pgbench TPC-B, then three-step demo sagas with database steps, driven by one
    /// executor (replicas_1) and by two (replicas_2).
    Saga(saga::SagaBenchOptions),
    /// pgbench TPC-B, then internal transfers through the payments gRPC API (payments →
    /// deposits → ledger).
    Payments(payments::PaymentsBenchOptions),
    /// pgbench TPC-B, then the same read and internal transfer directly on the module over
    /// gRPC, through the gateway, and through nginx in front of the gateway.
    Gateway(gateway::GatewayBenchOptions),
    /// pgbench TPC-B, then a whole legacy product's accounts migrated to the modern side
    /// while channel clients call them through the gateway.
    Migration(migration::MigrationBenchOptions),
}

/// Runs one suite with `settings` (DATABASE_URL, when set, is the server to measure on).
pub async fn run(settings: &Settings, suite: &BenchSuite) -> anyhow::Result<()> {
    match suite {
        BenchSuite::Ledger(options) => harness::run_suite(settings, options).await,
        BenchSuite::Saga(options) => harness::run_suite(settings, options).await,
        BenchSuite::Payments(options) => harness::run_suite(settings, options).await,
        BenchSuite::Gateway(options) => gateway::run(settings, options).await,
        BenchSuite::Migration(options) => migration::run(settings, options).await,
    }
}
