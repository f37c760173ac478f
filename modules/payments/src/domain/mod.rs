//! The payment rules and messages, free of I/O.
pub mod error;
pub mod iso20022;
pub mod payment;
pub mod sanctions;
pub mod screening;
