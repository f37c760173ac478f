//! `corebank up`: the whole platform in one process, for a newcomer's first run.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use anyhow::Context as _;
use corebank_db::Db;
use corebank_db::local::{LocalPostgres, PgBinaries, ServerTuning, free_port};
use corebank_service::internal::{self, component_names};
use corebank_service::{
    BoundListeners, Component, InternalMode, RunningServer, ServeOptions, Settings,
};
use tokio_util::sync::CancellationToken;

/// The database `up` creates on its private server.
const DATABASE_NAME: &str = "corebank";

pub async fn run(mut settings: Settings) -> anyhow::Result<()> {
    // Development conveniences belong to `up` alone: the gateway trusts the dev signing
    // keys, and the rail and the bank share a key made for this run.
    settings.dev = true;
    if settings.rail_keys.is_none() {
        settings.rail_keys =
            Some(corebank_payments::rail_signature::RailKeys::generate_setting("up")?);
    }
    let mode = internal_mode(&settings)?;
    let shutdown = CancellationToken::new();
    tokio::spawn(corebank_service::shutdown::cancel_on_signal(
        shutdown.clone(),
    ));

    let (url, private) = match &settings.database_url {
        Some(url) => (url.clone(), None),
        None => {
            let (url, server) = start_private_postgres(&settings).await?;
            (url, Some(server))
        }
    };
    let outcome = serve_until_shutdown(&settings, &url, private.is_some(), &mode, shutdown).await;
    if let Some(server) = private {
        println!("stopping PostgreSQL");
        tokio::task::spawn_blocking(move || server.stop())
            .await
            .context("the PostgreSQL stop task failed")?
            .context("stopping the private PostgreSQL")?;
    }
    outcome?;
    println!("corebank stopped");
    Ok(())
}

/// The internal network of `up`: development certificates for every component under
/// `<COREBANK_HOME>/certs` (made on the first run), or plain text when asked for.
fn internal_mode(settings: &Settings) -> anyhow::Result<InternalMode> {
    if settings.insecure_internal {
        return Ok(InternalMode::Insecure);
    }
    anyhow::ensure!(
        settings.tls_ca.is_none(),
        "`corebank up` runs every component, so it needs every component's certificate: point \
         COREBANK_TLS_DIR at a directory laid out as `corebank certs` writes it, and unset \
         COREBANK_TLS_CA, COREBANK_TLS_CERT and COREBANK_TLS_KEY"
    );
    let dir = internal::certs_dir(settings);
    let written =
        internal::pki::dev::ensure_dir(&dir, &settings.tls_trust_domain, component_names::ALL)
            .with_context(|| format!("making development certificates in {}", dir.display()))?;
    if written.created_ca {
        println!(
            "made a development CA and certificates for {} components in {}",
            written.issued.len(),
            dir.display()
        );
    }
    Ok(internal::mode_from_settings(
        settings,
        component_names::ALL,
    )?)
}

/// Gives the modern side an equivalent of each legacy product it lacks (a development
/// convenience of `up`: a bank defines its modern products under four eyes, through
/// `/admin/v1/products/proposals`).
async fn seed_modern_products(
    mode: &InternalMode,
    legacy_url: &str,
    modern_url: &str,
) -> anyhow::Result<Vec<(String, bool)>> {
    let clients = corebank_components::clients_as(mode, component_names::MIGRATION)?;
    corebank_gateway::products::seed_modern_equivalents(&clients, legacy_url, modern_url)
        .await
        .context("giving the modern side the legacy core's products")
}

/// Customers the mock legacy core seeds under `corebank up` when
/// `COREBANK_LEGACY_SEED_CUSTOMERS` does not say.
const UP_LEGACY_SEED_CUSTOMERS: u32 = 50;

/// The components `up` serves on its main server (each presents its own certificate).
const MAIN_SERVER_COMPONENTS: &[&str] = &[
    component_names::GATEWAY,
    component_names::LEDGER,
    component_names::DEPOSITS,
    component_names::PAYMENTS,
    component_names::DEMO,
    component_names::RELAY,
    component_names::LEGACY_CORE,
    component_names::MIGRATION,
];

/// A server's share of `mode`: only the certificates of `components`.
fn mode_for(mode: &InternalMode, components: &[&str]) -> anyhow::Result<InternalMode> {
    Ok(match mode {
        InternalMode::MutualTls(pki) => InternalMode::MutualTls(pki.only(components)?),
        InternalMode::Insecure => InternalMode::Insecure,
    })
}

fn scheme(mode: &InternalMode) -> &'static str {
    match mode {
        InternalMode::MutualTls(_) => "https",
        InternalMode::Insecure => "http",
    }
}

async fn serve_until_shutdown(
    settings: &Settings,
    url: &str,
    private: bool,
    mode: &InternalMode,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let db = Db::connect_lazy(&settings.db_settings(url, "up"))?;
    let migrations = corebank_db::migrate::embedded()?;
    println!("applying {} migrations", migrations.len());
    let report = corebank_db::migrate::apply(&db, &migrations)
        .await
        .context("applying migrations (is the database reachable? check DATABASE_URL)")?;
    println!("migrations: {report}");

    // Every component that exists is mounted here, on one pair of listeners; each module
    // issue adds its own. Components stop after the server, so requests in flight get their
    // answers. Bound first, so that components calling each other (deposits → ledger) know
    // where.
    let components_shutdown = CancellationToken::new();
    let listeners = BoundListeners::bind(settings.http_addr, settings.internal_addr).await?;
    let scheme = scheme(mode);
    let own_url = format!("{scheme}://{}", listeners.internal_addr()?);
    // The rail simulator stands for the clearing system outside the bank: a server of its
    // own, with the rail's certificate.
    let rail_listeners = BoundListeners::bind_internal(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        "COREBANK_INTERNAL_ADDR",
    )
    .await?;
    let rail_url = format!("{scheme}://{}", rail_listeners.internal_addr()?);
    let component = Component::new("corebank")
        .with_db(db.clone())
        .merge(corebank_components::ledger(
            settings,
            url,
            components_shutdown.clone(),
        )?)
        .merge(corebank_components::demo(
            settings,
            url,
            components_shutdown.clone(),
            false,
        )?)
        .merge(corebank_components::deposits(
            settings,
            url,
            &own_url,
            mode,
            components_shutdown.clone(),
        )?)
        .merge(corebank_components::payments(
            settings,
            url,
            &own_url,
            &format!("{rail_url}{}", corebank_payments::rail_sim::BASE),
            mode,
            components_shutdown.clone(),
        )?);
    let rail_server = corebank_service::serve_on(
        rail_listeners,
        corebank_components::rail_sim(
            settings,
            &format!("{own_url}{}", corebank_payments::http::BASE),
            mode,
        )?,
        ServeOptions::from_settings(settings, mode_for(mode, &[component_names::RAIL])?),
        shutdown.clone(),
    )
    .await?;
    // The relay delivers to NATS when COREBANK_NATS_URL is set, and to modules of this
    // process that subscribe.
    let subscribers = corebank_outbox::sink::in_process::Subscribers::new();
    let (relay, relay_task) = corebank_components::relay(
        settings,
        url,
        Some(subscribers),
        components_shutdown.clone(),
    )
    .await?;
    let component = component.merge(relay);
    // The legacy core speaks OFS on a port of its own; the adapter serves the same gRPC
    // contracts as deposits and payments, so it needs a server of its own too.
    let (legacy_core, legacy_core_task, legacy_core_addr) = corebank_components::legacy_core(
        settings,
        url,
        UP_LEGACY_SEED_CUSTOMERS,
        components_shutdown.clone(),
    )
    .await?;
    let component = component.merge(legacy_core);
    let adapter_server = corebank_service::serve_on(
        BoundListeners::bind_internal(settings.legacy_adapter_addr, "COREBANK_LEGACY_ADAPTER_ADDR")
            .await?,
        corebank_components::legacy_adapter(settings, url, legacy_core_addr).await?,
        ServeOptions::from_settings(
            settings,
            mode_for(mode, &[component_names::LEGACY_ADAPTER])?,
        ),
        shutdown.clone(),
    )
    .await?;
    // The gateway is the one door: on the main server's public listener, routing to the
    // legacy adapter's server and to the modern modules on this one's internal listener.
    let component = component.merge(
        corebank_components::gateway(
            settings,
            url,
            &corebank_gateway::app::Upstream {
                legacy_url: adapter_server.internal_url(),
                modern_url: own_url.clone(),
                clients: corebank_components::clients_as(mode, component_names::GATEWAY)?,
            },
            components_shutdown.clone(),
        )
        .await?,
    );
    // The migration moves accounts through the gateway's directory (this server), the
    // adapter's server and modern deposits (this server).
    let component = component.merge(corebank_components::migration(
        settings,
        url,
        &own_url,
        &adapter_server.internal_url(),
        &own_url,
        mode,
        components_shutdown.clone(),
    )?);
    let server = corebank_service::serve_on(
        listeners,
        component,
        ServeOptions::from_settings(settings, mode_for(mode, MAIN_SERVER_COMPONENTS)?),
        shutdown.clone(),
    )
    .await?;
    let seeded = seed_modern_products(mode, &adapter_server.internal_url(), &own_url).await?;
    let base = format!("http://{}", settings_public_addr(&server)?);
    let internal = server.internal_url();
    println!();
    println!("corebank is ready");
    println!("  public         {base}");
    println!("  internal       {internal}");
    println!("  channel API    {base}/v1 (gateway; admin API {base}/admin/v1)");
    println!("  API reference  {base}/docs ({base}/openapi.json)");
    println!("  liveness       {base}/healthz");
    println!("  readiness      {base}/readyz");
    if settings.metrics_public {
        println!("  metrics        {base}/metrics");
    } else {
        println!(
            "  metrics        {internal}/metrics (internal; COREBANK_METRICS_PUBLIC=true adds it to the public listener)"
        );
    }
    println!(
        "  gRPC services  corebank.ledger.v1.Ledger, corebank.deposits.v1.Deposits, corebank.deposits.v1.DepositsMigration, corebank.payments.v1.Payments, corebank.payments.v1.PaymentsReview, corebank.saga.v1.SagaAdmin, corebank.gateway.v1.AccountHomes, corebank.migration.v1.Migrations, grpc.health.v1.Health, corebank.platform.v1.PlatformInfo (internal)"
    );
    match mode {
        InternalMode::MutualTls(_) => println!(
            "  certificates   {} (development CA; every internal call is mutual TLS)",
            internal::certs_dir(settings).display()
        ),
        InternalMode::Insecure => println!(
            "  certificates   none: COREBANK_INSECURE_INTERNAL=true, internal calls are plain text"
        ),
    }
    let where_db = if private {
        format!(
            "private PostgreSQL in {}",
            settings.home.join("pg").display()
        )
    } else {
        "DATABASE_URL".to_owned()
    };
    println!(
        "  legacy core    OFS on {legacy_core_addr} (the mock T24-style core; seeded with {} customers when empty)",
        if settings.legacy_seed_customers == 0 {
            UP_LEGACY_SEED_CUSTOMERS
        } else {
            settings.legacy_seed_customers
        }
    );
    println!(
        "  legacy adapter gRPC on {} (internal: Deposits, Payments, LegacyExport, LegacyMigration in front of the core)",
        adapter_server.internal_url()
    );
    let codes: Vec<&str> = seeded.iter().map(|(code, _)| code.as_str()).collect();
    let defined: Vec<&str> = seeded
        .iter()
        .filter(|(_, defined)| *defined)
        .map(|(code, _)| code.as_str())
        .collect();
    println!(
        "  products       {} on both sides (modern equivalents of the legacy core's{}; {base}/admin/v1/products)",
        codes.join(", "),
        if defined.is_empty() {
            String::new()
        } else {
            format!(", defined now: {}", defined.join(", "))
        }
    );
    println!(
        "  rail simulator {}{} (internal, with the rail's certificate)",
        rail_server.internal_url(),
        corebank_payments::rail_sim::BASE
    );
    println!(
        "  database       {} ({where_db})",
        corebank_db::url::redact(url)
    );
    println!(
        "  outbox relay   {} -> {}",
        settings.relay_schemas.join(", "),
        settings.nats_url.as_deref().map_or_else(
            || "in-process subscribers (set COREBANK_NATS_URL for NATS JetStream)".to_owned(),
            |nats| format!("NATS JetStream at {nats} and in-process subscribers")
        )
    );
    println!("dev tokens (12 h; more with `corebank token --role …`):");
    for (name, role) in [
        ("channel ", crate::token::RoleArg::Channel),
        ("operator", crate::token::RoleArg::Operator),
        ("approver", crate::token::RoleArg::Approver),
        ("auditor ", crate::token::RoleArg::Auditor),
    ] {
        let token = crate::token::mint(settings, role, None, None, crate::token::DEV_TOKEN_TTL)?;
        println!("  {name}  {token}");
    }
    println!("Press Ctrl-C to stop.");

    shutdown.cancelled().await;
    println!("stopping corebank");
    server
        .stopped()
        .await
        .context("the server failed while stopping")?;
    adapter_server
        .stopped()
        .await
        .context("the legacy adapter's server failed while stopping")?;
    rail_server
        .stopped()
        .await
        .context("the rail simulator's server failed while stopping")?;
    components_shutdown.cancel();
    relay_task.await.context("the outbox relay task failed")?;
    legacy_core_task
        .await
        .context("the legacy core task failed")?;
    db.close();
    Ok(())
}

fn settings_public_addr(server: &RunningServer) -> anyhow::Result<std::net::SocketAddr> {
    server
        .public_addr
        .context("the main server has no public listener")
}

/// Where `up` keeps its private PostgreSQL's data: `<home>/pg`, unless corebank runs as root
/// and the server user cannot enter the home (a home directory is usually 0700); then under
/// [`SHARED_DATA_DIR`], named after the home, so each project keeps its own database.
fn data_dir(settings: &Settings) -> anyhow::Result<PathBuf> {
    let wanted = settings.home.join("pg");
    let blocked = corebank_db::local::running_as_root()
        .then(|| corebank_db::local::first_unreachable_ancestor(&wanted))
        .flatten();
    let Some(blocked) = blocked else {
        return Ok(wanted);
    };
    let home = std::path::absolute(&settings.home)
        .with_context(|| format!("resolving {}", settings.home.display()))?;
    let name: String = home
        .to_string_lossy()
        .trim_start_matches('/')
        .chars()
        .map(|c| if c == '/' { '-' } else { c })
        .collect();
    let base = PathBuf::from(SHARED_DATA_DIR);
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    // Others may pass through (to their own directory) but not list it.
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o711))
        .with_context(|| format!("opening {} to the server user", base.display()))?;
    let dir = base.join(name).join("pg");
    println!(
        "the {user} user cannot enter {blocked}, so PostgreSQL keeps its data in {dir} \
         (set COREBANK_HOME to a directory {user} can reach to keep it there)",
        user = corebank_db::local::SERVER_USER_WHEN_ROOT,
        blocked = blocked.display(),
        dir = dir.display(),
    );
    Ok(dir)
}

/// Where a root `up` keeps PostgreSQL's data when the server user cannot reach the home.
pub const SHARED_DATA_DIR: &str = "/var/lib/corebank";

async fn start_private_postgres(settings: &Settings) -> anyhow::Result<(String, LocalPostgres)> {
    let binaries = match &settings.pg_bin_dir {
        Some(dir) => PgBinaries::in_dir(dir)?,
        None => PgBinaries::find()?,
    };
    let server = LocalPostgres::new(binaries, data_dir(settings)?);
    let port = if settings.up_pg_port == 0 {
        free_port()?
    } else {
        settings.up_pg_port
    };
    let prepared = server.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        if prepared.is_running() {
            // Left running by an `up` that was killed: restart it on the port chosen now.
            println!(
                "stopping a PostgreSQL left running in {}",
                prepared.data_dir().display()
            );
            prepared.stop()?;
        }
        if !prepared.is_initialized() {
            println!(
                "initializing PostgreSQL in {} (first run only){}",
                prepared.data_dir().display(),
                prepared
                    .run_as()
                    .map(|user| format!(", run as the user {user}"))
                    .unwrap_or_default()
            );
            prepared.init(&ServerTuning::durable())?;
        }
        println!("starting PostgreSQL on 127.0.0.1:{port}");
        prepared.start(port)?;
        Ok(())
    })
    .await
    .context("the PostgreSQL start-up task failed")??;

    if let Err(error) = create_database(port).await {
        let _ = tokio::task::spawn_blocking({
            let server = server.clone();
            move || server.stop()
        })
        .await;
        return Err(error);
    }
    Ok((LocalPostgres::url(port, DATABASE_NAME), server))
}

async fn create_database(port: u16) -> anyhow::Result<()> {
    let url = LocalPostgres::url(port, "postgres");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to the private PostgreSQL at {url}"))?;
    tokio::spawn(connection);
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = $1",
            &[&DATABASE_NAME],
        )
        .await?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("CREATE DATABASE {DATABASE_NAME}"))
            .await?;
    }
    Ok(())
}
