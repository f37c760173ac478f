//! The payment rules and messages, free of I/O.
pub mod iso20022;
