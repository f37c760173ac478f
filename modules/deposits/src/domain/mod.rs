//! The deposit rules, free of I/O.

pub mod interest;
