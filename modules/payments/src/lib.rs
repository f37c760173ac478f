//! Payments: internal transfers, outbound payments as sagas, inbound payments, and the
//! clearing rail simulator.

pub mod app;
pub mod contract;
pub mod domain;
pub mod grpc;
pub mod http;
pub mod rail_signature;
#[cfg(feature = "rail-sim")]
pub mod rail_sim;
pub mod store;
