//! The ledger's rules, free of I/O: accounts and their limits, the commands that write
//! entries, how a batch of commands is applied to balances, idempotency, and hash chains.

pub mod apply;
pub mod command;
pub mod error;
pub mod hash;
pub mod model;
