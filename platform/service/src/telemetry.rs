//! Structured logs through `tracing`: readable text in a terminal, one JSON object per line
//! with `COREBANK_LOG_FORMAT=json`. Fields are dotted (`account.id`, `saga.id`). Text is
//! coloured only when stderr is a terminal and `NO_COLOR` is not set (no-color.org).

use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// Installs the process's log subscriber. A second call (tests start many components in
/// one process) keeps the first subscriber.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _already_installed = match format {
        LogFormat::Text => builder.with_target(true).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
}
