//! How each component is built from settings: the one place `corebank up`, `corebank serve`
//! and the benchmarks (`corebank-bench`) assemble the modules, the gateway and the legacy
//! side into `corebank_service::Component`s.

use std::sync::Arc;

use anyhow::Context as _;
use corebank_db::Db;
use corebank_kernel::SystemClock;
use corebank_service::internal::{self, InternalClients, component_names};
#[cfg(feature = "mocks")]
use corebank_service::internal::{Allow, allowed_callers};
use corebank_service::{Component, InternalMode, Settings};
use tokio_util::sync::CancellationToken;

/// The clients `me` calls other components with, in `mode`.
pub fn clients_as(mode: &InternalMode, me: &str) -> anyhow::Result<InternalClients> {
    internal::clients(mode, me).with_context(|| {
        format!("the certificate of {me}: run `corebank certs`, or set COREBANK_TLS_CA/_CERT/_KEY")
    })
}

/// How long a lazy gRPC channel to another component waits for its connection.
const CHANNEL_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A lazy pool on `url` whose connections see `schema` first: each component owns one schema.
fn schema_db(settings: &Settings, url: &str, schema: &str) -> anyhow::Result<Db> {
    Ok(Db::connect_lazy(
        &settings.db_settings(url, schema).with_search_path(schema),
    )?)
}

/// A lazy gRPC channel to the component `server` at `url` (connects on first use, reconnects
/// after); `setting` names where the URL came from, for the error.
fn lazy_channel(
    clients: &InternalClients,
    url: &str,
    server: &str,
    setting: &str,
) -> anyhow::Result<tonic::transport::Channel> {
    Ok(clients
        .endpoint(url, server)
        .with_context(|| format!("{setting}={url:?}"))?
        .connect_timeout(CHANNEL_CONNECT_TIMEOUT)
        .connect_lazy())
}

/// The saga executor's lease, poll interval and concurrency from settings.
fn executor_config(settings: &Settings) -> corebank_saga::ExecutorConfig {
    corebank_saga::ExecutorConfig {
        lease: std::time::Duration::from_millis(settings.saga_lease_ms),
        poll_interval: std::time::Duration::from_millis(settings.saga_poll_ms),
        max_in_flight: settings.saga_in_flight_max,
        ..corebank_saga::ExecutorConfig::new()
    }
}

/// The gateway on `url`, routing between the two sides; its background tasks stop with
/// `shutdown`.
pub async fn gateway(
    settings: &Settings,
    url: &str,
    upstream: &corebank_gateway::app::Upstream,
    shutdown: CancellationToken,
) -> anyhow::Result<Component> {
    let db = schema_db(settings, url, "gateway")?;
    corebank_gateway::app::component(settings, db, upstream, shutdown)
        .await
        .map_err(|error| anyhow::anyhow!("starting the gateway: {}", error.message))
}

#[cfg(feature = "mocks")]
/// The mock legacy core on `url`: OFS on `COREBANK_LEGACY_CORE_ADDR` until `shutdown`. When
/// `COREBANK_LEGACY_SEED_CUSTOMERS` is 0, `default_seed` customers are seeded instead.
pub async fn legacy_core(
    settings: &Settings,
    url: &str,
    default_seed: u32,
    shutdown: CancellationToken,
) -> anyhow::Result<(Component, tokio::task::JoinHandle<()>, std::net::SocketAddr)> {
    let db = schema_db(settings, url, "legacy_core")?;
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
    let db = schema_db(settings, url, "legacy_adapter")?;
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
    // The ledger prepares its statements for generic plans: planning each of them (the
    // pools' default) cost `bench ledger` 15-30%.
    let mut db_settings = settings
        .db_settings(url, "ledger")
        .with_search_path("ledger");
    db_settings.custom_plans = false;
    let db = Db::connect_lazy(&db_settings)?;
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
    let channel = lazy_channel(clients, url, component_names::LEDGER, "COREBANK_LEDGER_URL")?;
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
    let db = schema_db(settings, url, "deposits")?;
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

/// The migration component on `url` (schema `migration`), reaching the gateway's directory
/// at `gateway_url`, the legacy adapter at `legacy_url` and modern deposits at
/// `deposits_url` as `migration`; its saga executor stops with `shutdown`.
pub fn migration(
    settings: &Settings,
    url: &str,
    gateway_url: &str,
    legacy_url: &str,
    deposits_url: &str,
    mode: &InternalMode,
    shutdown: CancellationToken,
) -> anyhow::Result<Component> {
    let db = schema_db(settings, url, "migration")?;
    let clients = clients_as(mode, component_names::MIGRATION)?;
    let peers = corebank_migration::peers::Peers::new(
        lazy_channel(
            &clients,
            gateway_url,
            component_names::GATEWAY,
            "COREBANK_MIGRATION_GATEWAY_URL",
        )?,
        lazy_channel(
            &clients,
            legacy_url,
            component_names::LEGACY_ADAPTER,
            "COREBANK_MIGRATION_LEGACY_URL",
        )?,
        lazy_channel(
            &clients,
            deposits_url,
            component_names::DEPOSITS,
            "COREBANK_DEPOSITS_URL",
        )?,
    );
    let (component, _) =
        corebank_migration::grpc::component(db, peers, executor_config(settings), shutdown)?;
    Ok(component)
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
    let db = schema_db(settings, url, "payments")?;
    let clients = clients_as(mode, component_names::PAYMENTS)?;
    let channel = lazy_channel(
        &clients,
        deposits_url,
        component_names::DEPOSITS,
        "COREBANK_DEPOSITS_URL",
    )?;
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
        executor: executor_config(settings),
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

#[cfg(feature = "mocks")]
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

#[cfg(feature = "mocks")]
/// The demo component on `url`: a saga executor running the demo saga until `shutdown`,
/// and the operators' gRPC service over the `demo` schema's sagas.
pub fn demo(
    settings: &Settings,
    url: &str,
    shutdown: CancellationToken,
    with_admin: bool,
) -> anyhow::Result<Component> {
    use corebank_saga::demo::{self as saga_demo, DemoOptions};
    let db = schema_db(settings, url, "demo")?;
    let options = DemoOptions {
        call_delay: std::time::Duration::from_millis(settings.demo_call_delay_ms),
        ..DemoOptions::default()
    };
    let mut registry = corebank_saga::Registry::new();
    registry.register(saga_demo::definition(&db, &options))?;
    let registry = Arc::new(registry);
    let executor =
        corebank_saga::Executor::new(db.clone(), Arc::clone(&registry), executor_config(settings));
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
