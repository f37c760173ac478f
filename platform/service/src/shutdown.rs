//! Graceful shutdown: SIGINT or SIGTERM cancels one token that every server and background
//! task of the process watches.

use tokio_util::sync::CancellationToken;

/// Cancels `token` at the first SIGINT or SIGTERM (or when the token is cancelled otherwise).
pub async fn cancel_on_signal(token: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops this process");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutting down"),
        () = terminate => tracing::info!(signal = "SIGTERM", "shutting down"),
        () = token.cancelled() => {}
    }
    token.cancel();
}
