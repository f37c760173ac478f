//! Deposits: versioned products, deposit accounts whose money lives in the ledger, cash
//! movements, holds, dormancy, and interest accrued daily and posted at period end.

pub mod app;
pub mod contract;
pub mod domain;
pub mod grpc;
pub mod store;
