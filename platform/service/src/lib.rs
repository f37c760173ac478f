//! What every corebank process shares: settings from `COREBANK_*` variables, structured
//! logs, Prometheus metrics, liveness and readiness, request ids, graceful shutdown, the
//! server that carries a component's public routes and internal services on two listeners,
//! and the internal network's mutual TLS (`internal`).

pub mod contract;
pub mod internal;
pub mod metrics;
mod readiness;
pub mod refusal;
mod server;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
mod version;

pub use readiness::ReadinessCheck;
pub use server::{
    BoundListeners, Component, InternalMode, RunningServer, ServeError, ServeOptions, serve,
    serve_on,
};
pub use settings::{LogFormat, Settings, SettingsError};
pub use version::VersionService;
