//! The components this binary can run, and how each is built from settings.

use std::sync::Arc;

use anyhow::Context as _;
use corebank_db::Db;
use corebank_kernel::SystemClock;
use corebank_service::internal::{self, Allow, InternalClients, allowed_callers, component_names};
use corebank_service::{Component, InternalMode, ServeOptions, Settings};
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
    /// The clearing rail simulator under `/rail-sim/v1`, delivering to
    /// `COREBANK_RAIL_BANK_URL`.
    RailSim,
    /// The demo saga's executor (schema `demo`), with gRPC `corebank.saga.v1.SagaAdmin`
    /// over its sagas: a working example of the saga library, and what the crash tests kill.
    Demo,
    /// The outbox relay: publishes the outboxes of `COREBANK_RELAY_SCHEMAS` to NATS
    /// JetStream (`COREBANK_NATS_URL`), in order per aggregate, at least once.
    Relay,
    /// The mock legacy core (schema `legacy_core`): OFS over TCP on
    /// `COREBANK_LEGACY_CORE_ADDR`, health and metrics on `COREBANK_LISTEN_ADDR`; seeds
    /// `COREBANK_LEGACY_SEED_CUSTOMERS` customers when its books are empty.
    LegacyCore,
    /// The legacy adapter: gRPC `corebank.deposits.v1.Deposits`, `corebank.payments.v1.Payments`
    /// (the same contracts as the modern modules) and `corebank.legacy.v1.LegacyExport`, in
    /// front of the core at `COREBANK_LEGACY_CORE_ADDR`.
    LegacyAdapter,
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
            ComponentName::Payments => component_names::PAYMENTS,
            ComponentName::RailSim => component_names::RAIL,
            ComponentName::Demo => component_names::DEMO,
            ComponentName::Relay => component_names::RELAY,
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
            ComponentName::LegacyCore => Some("legacy_core"),
            ComponentName::Demo => Some("demo"),
            ComponentName::Ledger
            | ComponentName::Deposits
            | ComponentName::Payments
            | ComponentName::RailSim
            | ComponentName::Relay
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

/// The clients `me` calls other components with, in `mode`.
pub fn clients_as(mode: &InternalMode, me: &str) -> anyhow::Result<InternalClients> {
    internal::clients(mode, me).with_context(|| {
        format!("the certificate of {me}: run `corebank certs`, or set COREBANK_TLS_CA/_CERT/_KEY")
    })
}

/// The gateway on `url`, routing between the two sides; its background tasks stop with
/// `shutdown`.
pub async fn gateway(
    settings: &Settings,
    url: &str,
    upstream: &corebank_gateway::app::Upstream,
    shutdown: CancellationToken,
) -> anyhow::Result<Component> {
    let db = Db::connect_lazy(
        &settings
            .db_settings(url, "gateway")
            .with_search_path("gateway"),
    )?;
    corebank_gateway::app::component(settings, db, upstream, shutdown)
        .await
        .map_err(|error| anyhow::anyhow!("starting the gateway: {}", error.message))
}

/// The mock legacy core on `url`: OFS on `COREBANK_LEGACY_CORE_ADDR` until `shutdown`. When
/// `COREBANK_LEGACY_SEED_CUSTOMERS` is 0, `default_seed` customers are seeded instead.
pub async fn legacy_core(
    settings: &Settings,
    url: &str,
    default_seed: u32,
    shutdown: CancellationToken,
) -> anyhow::Result<(Component, tokio::task::JoinHandle<()>, std::net::SocketAddr)> {
    let db = Db::connect_lazy(
        &settings
            .db_settings(url, "legacy_core")
            .with_search_path("legacy_core"),
    )?;
    let mut config =
        corebank_legacy_core::CoreConfig::from_settings(settings).map_err(anyhow::Error::msg)?;
    if config.seed_customers == 0 {
        config.seed_customers = default_seed;
    }
    let listener = tokio::net::TcpListener::bind(settings.legacy_core_addr)
        .await
        .with_context(|| {
            format!(
                "binding the legacy core's OFS port {} (set COREBANK_LEGACY_CORE_ADDR to a free address)",
                settings.legacy_core_addr
            )
        })?;
    let addr = listener.local_addr()?;
    let task = corebank_legacy_core::start(db.clone(), listener, config, shutdown)
        .await
        .context("starting the mock legacy core")?;
    Ok((Component::new("legacy-core").with_db(db), task, addr))
}

/// The legacy adapter on `url`, calling the core at `core_addr`.
pub async fn legacy_adapter(
    settings: &Settings,
    url: &str,
    core_addr: std::net::SocketAddr,
) -> anyhow::Result<Component> {
    let db = Db::connect_lazy(
        &settings
            .db_settings(url, "legacy_adapter")
            .with_search_path("legacy_adapter"),
    )?;
    let mut config = corebank_legacy::adapter::AdapterConfig::from_settings(settings);
    config.client.addr = core_addr;
    corebank_legacy::adapter::component(db, config)
        .await
        .map_err(|error| anyhow::anyhow!("starting the legacy adapter: {error}"))
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

/// A lazy gRPC channel to the ledger at `url` (connects on first use, reconnects after),
/// calling as `clients`' component.
pub fn ledger_client(
    clients: &InternalClients,
    url: &str,
) -> anyhow::Result<corebank_api::ledger::v1::ledger_client::LedgerClient<tonic::transport::Channel>>
{
    let channel = clients
        .endpoint(url, component_names::LEDGER)
        .with_context(|| format!("COREBANK_LEDGER_URL={url:?}"))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect_lazy();
    Ok(corebank_api::ledger::v1::ledger_client::LedgerClient::new(
        channel,
    ))
}

/// The deposits component on `url`, calling the ledger at `ledger_url`; its scheduled job
/// stops with `shutdown`.
pub fn deposits(
    settings: &Settings,
    url: &str,
    ledger_url: &str,
    mode: &InternalMode,
    shutdown: CancellationToken,
) -> anyhow::Result<Component> {
    let db = Db::connect_lazy(
        &settings
            .db_settings(url, "deposits")
            .with_search_path("deposits"),
    )?;
    Ok(corebank_deposits::grpc::component(
        db,
        ledger_client(&clients_as(mode, component_names::DEPOSITS)?, ledger_url)?,
        Arc::new(SystemClock),
        corebank_deposits::grpc::DepositsConfig {
            job_interval: std::time::Duration::from_secs(settings.deposits_job_interval_s),
            in_doubt_window: std::time::Duration::from_secs(settings.deposits_in_doubt_window_s),
            business_tz: settings.business_tz,
        },
        shutdown,
    )?)
}

/// The sanctions lists the settings name (`COREBANK_SANCTIONS_…`): a list that does not
/// parse stops the start, naming the file and line.
fn sanctions_list(
    settings: &Settings,
) -> anyhow::Result<corebank_payments::app::sanctions::SanctionsList> {
    use corebank_payments::app::sanctions::{SanctionsFiles, SanctionsList};
    let thresholds = corebank_payments::domain::sanctions::matching::Thresholds::parse(
        &settings.screening_thresholds,
    )
    .map_err(|message| anyhow::anyhow!("COREBANK_SCREENING_THRESHOLDS: {message}"))?;
    let files = SanctionsFiles {
        un_xml: settings.sanctions_un_xml.as_ref().map(Into::into),
        ofac_sdn_csv: settings.sanctions_ofac_sdn_csv.as_ref().map(Into::into),
        ofac_alt_csv: settings.sanctions_ofac_alt_csv.as_ref().map(Into::into),
    };
    let none_configured = files.un_xml.is_none() && files.ofac_sdn_csv.is_none();
    let list = SanctionsList::load(&files, thresholds)?;
    // A bank runs with lists; `up` and other development runs need none, so say it quietly.
    if none_configured && !settings.dev {
        tracing::warn!(
            "no sanctions list is configured (COREBANK_SANCTIONS_UN_XML, \
             COREBANK_SANCTIONS_OFAC_SDN_CSV): payments are screened against an empty list"
        );
    } else if none_configured {
        tracing::info!("no sanctions list is configured (development run)");
    }
    Ok(list)
}

/// The rail keys from settings (`COREBANK_RAIL_KEYS`).
fn rail_keys(settings: &Settings) -> anyhow::Result<corebank_payments::rail_signature::RailKeys> {
    let text = settings.rail_keys.as_deref().context(
        "COREBANK_RAIL_KEYS is not set: the keys the bank and the clearing rail sign their \
         messages with, as kid:base64secret (32 bytes or more), agreed with the rail",
    )?;
    Ok(corebank_payments::rail_signature::RailKeys::parse(
        "COREBANK_RAIL_KEYS",
        text,
    )?)
}

/// The payments component on `url`, calling deposits at `deposits_url` and the rail at
/// `rail_url`, as payments in `mode`; its saga executor stops with `shutdown`.
pub fn payments(
    settings: &Settings,
    url: &str,
    deposits_url: &str,
    rail_url: &str,
    mode: &InternalMode,
    shutdown: CancellationToken,
) -> anyhow::Result<Component> {
    let db = Db::connect_lazy(
        &settings
            .db_settings(url, "payments")
            .with_search_path("payments"),
    )?;
    let clients = clients_as(mode, component_names::PAYMENTS)?;
    let channel = clients
        .endpoint(deposits_url, component_names::DEPOSITS)
        .with_context(|| format!("COREBANK_DEPOSITS_URL={deposits_url:?}"))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect_lazy();
    let (rail_http, rail_url) = clients
        .http_client_for(
            rail_url.trim_end_matches('/'),
            component_names::RAIL,
            corebank_payments::app::RAIL_CALL_TIMEOUT,
        )
        .with_context(|| format!("COREBANK_RAIL_URL={rail_url:?}"))?;
    let config = corebank_payments::app::PaymentsConfig {
        sanctions: std::sync::Arc::new(sanctions_list(settings)?),
        screening: corebank_payments::domain::screening::ScreeningRules {
            max_amount: rust_decimal::Decimal::from(settings.payments_max_amount),
            max_per_hour: i64::try_from(settings.payments_max_per_hour).unwrap_or(i64::MAX),
        },
        executor: corebank_saga::ExecutorConfig {
            lease: std::time::Duration::from_millis(settings.saga_lease_ms),
            poll_interval: std::time::Duration::from_millis(settings.saga_poll_ms),
            max_in_flight: settings.saga_in_flight_max,
            ..corebank_saga::ExecutorConfig::new()
        },
        ..corebank_payments::app::PaymentsConfig::new(rail_url, rail_keys(settings)?, rail_http)
    };
    let (component, _) = corebank_payments::grpc::component(
        db,
        corebank_api::deposits::v1::deposits_client::DepositsClient::new(channel),
        config,
        shutdown,
    )?;
    Ok(component)
}

/// The rail simulator, delivering to the bank at `bank_url` (`…/payments/rail/v1`) with
/// the rail's certificate in `mode`.
pub fn rail_sim(
    settings: &Settings,
    bank_url: &str,
    mode: &InternalMode,
) -> anyhow::Result<Component> {
    let (http, bank_url) = clients_as(mode, component_names::RAIL)?
        .http_client_for(
            bank_url.trim_end_matches('/'),
            component_names::PAYMENTS,
            corebank_payments::app::RAIL_CALL_TIMEOUT,
        )
        .with_context(|| format!("COREBANK_RAIL_BANK_URL={bank_url:?}"))?;
    let mut config = corebank_payments::rail_sim::RailConfig {
        bank_url,
        delay_ms: settings.rail_delay_ms,
        ..corebank_payments::rail_sim::RailConfig::default()
    };
    config
        .parse_outcomes(&settings.rail_outcomes)
        .map_err(|problem| anyhow::anyhow!("COREBANK_RAIL_OUTCOMES: {problem}"))?;
    Ok(corebank_payments::rail_sim::component(
        config,
        rail_keys(settings)?,
        http,
    ))
}

/// The demo component on `url`: a saga executor running the demo saga until `shutdown`,
/// and the operators' gRPC service over the `demo` schema's sagas.
pub fn demo(
    settings: &Settings,
    url: &str,
    shutdown: CancellationToken,
    with_admin: bool,
) -> anyhow::Result<Component> {
    use corebank_saga::demo::{self as saga_demo, DemoOptions};
    let db = Db::connect_lazy(&settings.db_settings(url, "demo").with_search_path("demo"))?;
    let options = DemoOptions {
        call_delay: std::time::Duration::from_millis(settings.demo_call_delay_ms),
        ..DemoOptions::default()
    };
    let mut registry = corebank_saga::Registry::new();
    registry.register(saga_demo::definition(&db, &options))?;
    let registry = Arc::new(registry);
    let executor = corebank_saga::Executor::new(
        db.clone(),
        Arc::clone(&registry),
        corebank_saga::ExecutorConfig {
            lease: std::time::Duration::from_millis(settings.saga_lease_ms),
            poll_interval: std::time::Duration::from_millis(settings.saga_poll_ms),
            max_in_flight: settings.saga_in_flight_max,
            ..corebank_saga::ExecutorConfig::new()
        },
    );
    executor.spawn(shutdown.clone());
    corebank_saga::executor::spawn_status_gauges(
        db.clone(),
        std::time::Duration::from_secs(15),
        shutdown,
    );
    let component = Component::new("demo").with_db(db.clone());
    // One SagaAdmin per server: inside `up` it is the payments module's.
    Ok(if with_admin {
        component.with_grpc(
            corebank_saga::grpc::SagaAdminService::new(db, registry).into_server(),
            Allow::only(allowed_callers::SAGA_ADMIN),
        )
    } else {
        component
    })
}

/// The outbox relay on `url` (`corebank serve relay`, and inside `corebank up`): publishes
/// the outboxes of `COREBANK_RELAY_SCHEMAS` to NATS JetStream when `COREBANK_NATS_URL` is set,
/// and to `subscribers` (modules in the same process) when given. It stops with `shutdown`;
/// the returned task ends once the relay has given its partition leases back.
pub async fn relay(
    settings: &Settings,
    url: &str,
    subscribers: Option<corebank_outbox::sink::in_process::Subscribers>,
    shutdown: CancellationToken,
) -> anyhow::Result<(Component, tokio::task::JoinHandle<()>)> {
    use corebank_outbox::sink::nats::{NatsSink, NatsSinkConfig};
    use corebank_outbox::{FanOut, Relay, RelayConfig, SchemaName, Sink};
    let mut sinks: Vec<Arc<dyn Sink>> = Vec::new();
    if let Some(nats_url) = &settings.nats_url {
        let mut config = NatsSinkConfig::new(nats_url);
        config.subject_prefix = settings.nats_subject_prefix.clone();
        config.timeout_ms = settings.relay_publish_timeout_ms;
        config.tls = corebank_outbox::sink::nats::NatsTls::from_files(
            settings.nats_tls_ca.clone(),
            settings.nats_tls_cert.clone(),
            settings.nats_tls_key.clone(),
        );
        // The relay starts while NATS is down and publishes once it is up.
        sinks.push(Arc::new(NatsSink::connect(config, true).await?));
    }
    if let Some(subscribers) = subscribers {
        sinks.push(Arc::new(subscribers));
    }
    if sinks.is_empty() {
        anyhow::bail!(
            "COREBANK_NATS_URL is not set, so this relay has nowhere to publish: set it to a NATS \
             server with JetStream, e.g. COREBANK_NATS_URL=nats://127.0.0.1:4222"
        );
    }
    let schemas = settings
        .relay_schemas
        .iter()
        .map(|schema| SchemaName::new(schema))
        .collect::<Result<Vec<_>, _>>()?;
    let mut config = RelayConfig::new(schemas);
    config.batch_size_max = settings.relay_batch_size_max;
    config.lease_duration_ms = settings.relay_lease_ms;
    config.poll_interval_ms = settings.relay_poll_ms;
    config.publish_timeout_ms = settings.relay_publish_timeout_ms;
    let db = Db::connect_lazy(&settings.db_settings(url, "relay"))?;
    let relay = Relay::new(db.clone(), Arc::new(FanOut::new(sinks)), config)?;
    let task = tokio::spawn(relay.run(shutdown));
    Ok((Component::new("relay").with_db(db), task))
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
    let mut core_task = None;
    let component = match name {
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
    if let Some(task) = core_task {
        task.await.context("the legacy core task failed")?;
    }
    Ok(())
}
