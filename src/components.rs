//! The components this binary can run, and how each is built from settings.

use std::sync::Arc;

use anyhow::Context as _;
use corebank_db::Db;
use corebank_kernel::SystemClock;
use corebank_service::{Component, ServeOptions, Settings};
use tokio_util::sync::CancellationToken;

/// `corebank serve <component>`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ComponentName {
    /// The ledger: gRPC `corebank.ledger.v1.Ledger`.
    Ledger,
}

/// The ledger component on `url`; its batcher and expirer stop with `shutdown`.
pub fn ledger(
    settings: &Settings,
    url: &str,
    shutdown: CancellationToken,
) -> anyhow::Result<Component> {
    let db = Db::connect_lazy(
        &settings
            .db_settings(url, "ledger")
            .with_search_path("ledger"),
    )?;
    Ok(corebank_ledger::grpc::component(
        db,
        Arc::new(SystemClock),
        corebank_ledger::LedgerConfig::default(),
        shutdown,
    ))
}

pub async fn serve(name: ComponentName, settings: &Settings) -> anyhow::Result<()> {
    let url = settings.database_url.as_deref().context(
        "DATABASE_URL is not set; `serve` runs against a database you migrated with `corebank migrate` \
         (use `corebank up` for a private one)",
    )?;
    let shutdown = CancellationToken::new();
    tokio::spawn(corebank_service::shutdown::cancel_on_signal(
        shutdown.clone(),
    ));
    let components_shutdown = CancellationToken::new();
    let component = match name {
        ComponentName::Ledger => ledger(settings, url, components_shutdown.clone())?,
    };
    let server = corebank_service::serve(
        component,
        settings.listen_addr,
        ServeOptions::from_settings(settings),
        shutdown.clone(),
    )
    .await?;
    println!(
        "{} serving on http://{}",
        server.component, server.local_addr
    );
    shutdown.cancelled().await;
    server
        .stopped()
        .await
        .context("the server failed while stopping")?;
    components_shutdown.cancel();
    Ok(())
}
