//! The ledger: the only writer of money. Accounts with balance limits, double-entry journal
//! entries balanced per currency, two-phase holds, reversals, idempotency by entry id,
//! balances as of any time, statements, the trial balance, hash-chained tamper evidence, and
//! group commit. Served over gRPC (`corebank.ledger.v1.Ledger`).

pub mod app;
pub mod domain;
pub mod grpc;
pub mod store;

pub use app::{Ledger, LedgerConfig};
