//! `corebank serve <component>`: one component in this process, as in production.

use anyhow::Context as _;
use corebank_components::{
    clients_as, deposits, gateway, ledger, legacy_adapter, migration, payments, relay,
};
#[cfg(feature = "mocks")]
use corebank_components::{demo, legacy_core, rail_sim};
use corebank_db::Db;
use corebank_service::internal::{self, component_names};
use corebank_service::{ServeOptions, Settings};
use tokio_util::sync::CancellationToken;

/// `corebank serve <component>`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ComponentName {
    /// The ledger: gRPC `corebank.ledger.v1.Ledger`.
    Ledger,
    /// Deposits: gRPC `corebank.deposits.v1.Deposits` (products, accounts, cash, holds,
    /// interest), moving money through the ledger at `COREBANK_LEDGER_URL`.
    Deposits,
    /// Payments: gRPC `corebank.payments.v1.Payments` (internal transfers, outbound payments
    /// as sagas, `corebank.saga.v1.SagaAdmin` over them) and the rail's callbacks under
    /// `/payments/rail/v1`; needs `COREBANK_DEPOSITS_URL` and `COREBANK_RAIL_URL`.
    Payments,
    #[cfg(feature = "mocks")]
    /// The clearing rail simulator under `/rail-sim/v1`, delivering to
    /// `COREBANK_RAIL_BANK_URL`.
    RailSim,
    #[cfg(feature = "mocks")]
    /// The demo saga's executor (schema `demo`), with gRPC `corebank.saga.v1.SagaAdmin`
    /// over its sagas: a working example of the saga library, and what the crash tests kill.
    Demo,
    /// The outbox relay: publishes the outboxes of `COREBANK_RELAY_SCHEMAS` to NATS
    /// JetStream (`COREBANK_NATS_URL`), in order per aggregate, at least once.
    Relay,
    #[cfg(feature = "mocks")]
    /// The mock legacy core (schema `legacy_core`): OFS over TCP on
    /// `COREBANK_LEGACY_CORE_ADDR`, health and metrics on `COREBANK_LISTEN_ADDR`; seeds
    /// `COREBANK_LEGACY_SEED_CUSTOMERS` customers when its books are empty.
    LegacyCore,
    /// The legacy adapter: gRPC `corebank.deposits.v1.Deposits`, `corebank.payments.v1.Payments`
    /// (the same contracts as the modern modules) and `corebank.legacy.v1.LegacyExport`, in
    /// front of the core at `COREBANK_LEGACY_CORE_ADDR`.
    LegacyAdapter,
    /// The account migration: gRPC `corebank.migration.v1.Migrations` and the sagas that
    /// move accounts from the legacy core to the modern one, through the gateway at
    /// `COREBANK_MIGRATION_GATEWAY_URL`, the adapter at `COREBANK_MIGRATION_LEGACY_URL` and
    /// deposits at `COREBANK_DEPOSITS_URL`.
    Migration,
    /// The strangler-fig gateway: the channel API `/v1` and the migration teams' `/admin/v1`,
    /// routing to the legacy adapter (`COREBANK_GATEWAY_LEGACY_URL`) and the modern modules
    /// (`COREBANK_GATEWAY_MODERN_URL`).
    Gateway,
}

impl ComponentName {
    /// The name on this component's certificate (its SPIFFE id).
    pub fn certificate_name(self) -> &'static str {
        match self {
            ComponentName::Ledger => component_names::LEDGER,
            ComponentName::Deposits => component_names::DEPOSITS,
            ComponentName::Migration => component_names::MIGRATION,
            ComponentName::Payments => component_names::PAYMENTS,
            #[cfg(feature = "mocks")]
            ComponentName::RailSim => component_names::RAIL,
            #[cfg(feature = "mocks")]
            ComponentName::Demo => component_names::DEMO,
            ComponentName::Relay => component_names::RELAY,
            #[cfg(feature = "mocks")]
            ComponentName::LegacyCore => component_names::LEGACY_CORE,
            ComponentName::LegacyAdapter => component_names::LEGACY_ADAPTER,
            ComponentName::Gateway => component_names::GATEWAY,
        }
    }
}

impl ComponentName {
    /// The schema of a mock this component is, which `corebank migrate` leaves out and
    /// `serve` therefore applies itself.
    fn mock_schema(self) -> Option<&'static str> {
        match self {
            #[cfg(feature = "mocks")]
            ComponentName::LegacyCore => Some("legacy_core"),
            #[cfg(feature = "mocks")]
            ComponentName::Demo => Some("demo"),
            #[cfg(feature = "mocks")]
            ComponentName::RailSim => None,
            ComponentName::Ledger
            | ComponentName::Deposits
            | ComponentName::Payments
            | ComponentName::Relay
            | ComponentName::Migration
            | ComponentName::LegacyAdapter
            | ComponentName::Gateway => None,
        }
    }
}

/// Applies the migrations of one mock's schema (`serve legacy-core`, `serve demo`): a mock
/// is never in a production database unless something that runs it put it there.
async fn apply_mock_migrations(settings: &Settings, url: &str, schema: &str) -> anyhow::Result<()> {
    use corebank_db::migrate::{Mocks, apply, embedded_for};
    let migrations: Vec<_> = embedded_for(Mocks::Include)?
        .into_iter()
        .filter(|migration| migration.component == schema)
        .collect();
    let db = Db::connect_lazy(&settings.db_settings(url, "migrate"))?;
    let report = apply(&db, &migrations)
        .await
        .with_context(|| format!("applying the migrations of the mock schema {schema}"))?;
    println!("mock schema {schema}: {report}");
    db.close();
    Ok(())
}

/// `serve` runs components as in production: plain-text internal calls, and a certificate
/// directory holding its CA's private key (what `corebank certs` and `up` make), need
/// `COREBANK_DEV=true`. Whoever reads a CA key can issue themselves any component's
/// certificate; a bank's CA key never sits beside the certificates it signed.
fn refuse_development_trust(settings: &Settings) -> anyhow::Result<()> {
    if settings.dev {
        return Ok(());
    }
    anyhow::ensure!(
        !settings.insecure_internal,
        "COREBANK_INSECURE_INTERNAL=true makes internal calls plain text and unauthenticated: \
         it needs COREBANK_DEV=true too (development only)"
    );
    if settings.tls_ca.is_none() {
        let dir = internal::certs_dir(settings);
        anyhow::ensure!(
            !dir.join("ca.key").exists(),
            "{} holds a CA's private key (a development CA made by `corebank certs` or `up`): \
             set COREBANK_TLS_CA, COREBANK_TLS_CERT and COREBANK_TLS_KEY to the bank's \
             certificates, or COREBANK_DEV=true for development",
            dir.display()
        );
    }
    Ok(())
}

pub async fn serve(name: ComponentName, settings: &Settings) -> anyhow::Result<()> {
    let url = settings.database_url.as_deref().context(
        "DATABASE_URL is not set; `serve` runs against a database you migrated with `corebank migrate` \
         (use `corebank up` for a private one)",
    )?;
    refuse_development_trust(settings)?;
    let mode = internal::mode_from_settings(settings, &[name.certificate_name()]).with_context(
        || {
            format!(
                "loading the internal certificate of {} (run `corebank certs` for development ones, \
                 or set COREBANK_TLS_CA, COREBANK_TLS_CERT and COREBANK_TLS_KEY; \
                 COREBANK_INSECURE_INTERNAL=true for plain text, development only)",
                name.certificate_name()
            )
        },
    )?;
    let shutdown = CancellationToken::new();
    tokio::spawn(corebank_service::shutdown::cancel_on_signal(
        shutdown.clone(),
    ));
    if let Some(schema) = name.mock_schema() {
        apply_mock_migrations(settings, url, schema).await?;
    }
    let components_shutdown = CancellationToken::new();
    let mut relay_task = None;
    #[cfg(feature = "mocks")]
    let mut core_task = None;
    let component = match name {
        #[cfg(feature = "mocks")]
        ComponentName::LegacyCore => {
            let (component, task, addr) =
                legacy_core(settings, url, 0, components_shutdown.clone()).await?;
            println!("legacy core speaking OFS on {addr}");
            core_task = Some(task);
            component
        }
        ComponentName::Gateway => {
            let legacy_url = settings.gateway_legacy_url.clone().context(
                "COREBANK_GATEWAY_LEGACY_URL is not set: where the legacy adapter serves gRPC, \
                 e.g. http://127.0.0.1:8091",
            )?;
            let modern_url = settings.gateway_modern_url.clone().context(
                "COREBANK_GATEWAY_MODERN_URL is not set: where the deposits and payments modules \
                 serve gRPC, e.g. http://127.0.0.1:8081",
            )?;
            gateway(
                settings,
                url,
                &corebank_gateway::app::Upstream {
                    legacy_url,
                    modern_url,
                    clients: clients_as(&mode, component_names::GATEWAY)?,
                },
                components_shutdown.clone(),
            )
            .await?
        }
        ComponentName::LegacyAdapter => {
            legacy_adapter(settings, url, settings.legacy_core_addr).await?
        }
        ComponentName::Ledger => ledger(settings, url, components_shutdown.clone())?,
        #[cfg(feature = "mocks")]
        ComponentName::Demo => demo(settings, url, components_shutdown.clone(), true)?,
        ComponentName::Payments => {
            let deposits_url = settings.deposits_url.as_deref().context(
                "COREBANK_DEPOSITS_URL is not set: payments moves money through the deposits gRPC API",
            )?;
            let rail_url = settings.rail_url.as_deref().context(
                "COREBANK_RAIL_URL is not set: where the clearing rail (or `corebank serve rail-sim`) \
                 takes pacs.008, e.g. http://127.0.0.1:8082/rail-sim/v1",
            )?;
            payments(
                settings,
                url,
                deposits_url,
                rail_url,
                &mode,
                components_shutdown.clone(),
            )?
        }
        #[cfg(feature = "mocks")]
        ComponentName::RailSim => {
            let bank_url = settings.rail_bank_url.as_deref().context(
                "COREBANK_RAIL_BANK_URL is not set: where the payments component takes the rail's \
                 messages, e.g. http://127.0.0.1:8081/payments/rail/v1",
            )?;
            rail_sim(settings, bank_url, &mode)?
        }
        ComponentName::Deposits => {
            let ledger_url = settings.ledger_url.as_deref().context(
                "COREBANK_LEDGER_URL is not set: deposits moves money through the ledger's gRPC API \
                 (e.g. http://127.0.0.1:8081, where `corebank serve ledger` listens)",
            )?;
            deposits(
                settings,
                url,
                ledger_url,
                &mode,
                components_shutdown.clone(),
            )?
        }
        ComponentName::Migration => {
            let gateway_url = settings.migration_gateway_url.as_deref().context(
                "COREBANK_MIGRATION_GATEWAY_URL is not set: the gateway's internal gRPC URL, \
                 where the migration marks accounts moving and switches their home",
            )?;
            let legacy_url = settings.migration_legacy_url.as_deref().context(
                "COREBANK_MIGRATION_LEGACY_URL is not set: the legacy adapter's gRPC URL, e.g. \
                 http://127.0.0.1:8091",
            )?;
            let deposits_url = settings.deposits_url.as_deref().context(
                "COREBANK_DEPOSITS_URL is not set: modern deposits imports the accounts moved",
            )?;
            migration(
                settings,
                url,
                gateway_url,
                legacy_url,
                deposits_url,
                &mode,
                components_shutdown.clone(),
            )?
        }
        ComponentName::Relay => {
            let (component, task) = relay(settings, url, None, components_shutdown.clone()).await?;
            relay_task = Some(task);
            component
        }
    };
    let server = corebank_service::serve(
        component,
        settings.http_addr,
        settings.internal_addr,
        ServeOptions::from_settings(settings, mode),
        shutdown.clone(),
    )
    .await?;
    println!(
        "{} serving: public http://{} (health), internal {}",
        server.component,
        settings.http_addr,
        server.internal_url()
    );
    shutdown.cancelled().await;
    server
        .stopped()
        .await
        .context("the server failed while stopping")?;
    components_shutdown.cancel();
    if let Some(task) = relay_task {
        task.await.context("the outbox relay task failed")?;
    }
    #[cfg(feature = "mocks")]
    if let Some(task) = core_task {
        task.await.context("the legacy core task failed")?;
    }
    Ok(())
}
