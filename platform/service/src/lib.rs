//! What every corebank process shares: settings from `COREBANK_*` variables, structured
//! logs, Prometheus metrics, liveness and readiness, request ids, graceful shutdown, and the
//! server that carries a component's HTTP routes and gRPC services on one port.

pub mod contract;
pub mod metrics;
mod server;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
mod version;

pub use server::{Component, RunningServer, ServeError, ServeOptions, serve, serve_on};
pub use settings::{LogFormat, Settings, SettingsError};
pub use version::VersionService;
