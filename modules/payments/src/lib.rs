//! Payments: internal transfers, outbound payments as sagas, inbound payments, and the
//! clearing rail simulator.

pub mod domain;
