//! The deposit rules, free of I/O.

pub mod error;
pub mod interest;
pub mod model;
