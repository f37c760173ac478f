//! The payment rules and messages, free of I/O.
