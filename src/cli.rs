//! The command line.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use corebank_db::Db;
use corebank_service::{Settings, settings};

#[derive(Debug, Parser)]
#[command(name = "corebank", version, about = "Composable core banking platform", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole platform in one process: a private PostgreSQL unless DATABASE_URL is
    /// set, migrations, every component. Ctrl-C stops it all cleanly.
    #[cfg(feature = "mocks")]
    Up,
    /// Run one component in this process, against DATABASE_URL (already migrated), as in
    /// production. Several replicas of a component may run against one database.
    Serve {
        #[arg(value_enum)]
        component: crate::serve::ComponentName,
    },
    /// Accrue deposit interest for every open account up to and including a day, posting
    /// it at each period end on the way. Safe to run again: each (account, day) has one
    /// entry. Needs DATABASE_URL and COREBANK_LEDGER_URL.
    Accrue {
        /// The last day to accrue, e.g. 2026-11-24.
        #[arg(long)]
        as_of: chrono::NaiveDate,
    },
    /// Apply every pending migration of the real components to DATABASE_URL, then exit.
    Migrate {
        /// Also the mocks' schemas (the mock legacy core's `legacy_core` and the demo saga's
        /// `demo`), which `up`, `serve legacy-core` and `serve demo` need.
        #[arg(long)]
        with_mocks: bool,
    },
    /// Make a development CA and one certificate per component for the internal network's
    /// mutual TLS (what `up` makes on its first run). Production uses the bank's PKI
    /// through COREBANK_TLS_CA, COREBANK_TLS_CERT and COREBANK_TLS_KEY.
    Certs {
        /// Where to write them (default: COREBANK_TLS_DIR, else COREBANK_HOME/certs).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// Run a benchmark suite against a baseline measured in the same run.
    #[cfg(feature = "mocks")]
    Bench {
        #[command(subcommand)]
        suite: corebank_bench::BenchSuite,
    },
    /// Look at and replay the dead letters of a schema's transactional outbox.
    Outbox {
        #[command(subcommand)]
        command: crate::outbox::OutboxCommand,
    },
    /// Print a dev token (a JWT signed with the dev key under COREBANK_HOME/dev-keys, which
    /// the gateway trusts when COREBANK_JWT_JWKS is not set).
    Token {
        #[arg(long, value_enum)]
        role: crate::token::RoleArg,
        /// Bind a channel token to one customer: it may touch only that customer's accounts.
        #[arg(long)]
        customer: Option<String>,
        /// The token's subject (default: dev-<role>); the approver of a route change must
        /// differ from its author.
        #[arg(long)]
        subject: Option<String>,
        /// Validity in seconds.
        #[arg(long, default_value_t = 43_200)]
        ttl_s: u64,
    },
    /// Move a product's accounts from the legacy core to the modern side, through the
    /// gateway's admin API: a dry run prints the plan; otherwise the migration is proposed,
    /// starts once another operator approves it, and is followed with a progress bar.
    MigrateAccounts {
        /// The product code, e.g. LEGACY-CURRENT.
        #[arg(long)]
        product: String,
        /// Only the accounts whose stable hash falls below this (0 < fraction <= 1): a
        /// canary of accounts.
        #[arg(long)]
        fraction: Option<String>,
        /// Print the plan (each account planned or refused, with its reason); move nothing.
        #[arg(long)]
        dry_run: bool,
        /// Start at most this many moves a second (default: as many as the in-flight window
        /// of 64 moves lets).
        #[arg(long)]
        rate_per_s: Option<u32>,
        /// Stop by itself once failed or mismatched moves pass this share of those settled
        /// (0 to 1, taken over at least 20 moves; default 0.05).
        #[arg(long)]
        max_error_ratio: Option<String>,
        /// Keep at most this many moves under way at once (1 to 64; default 64): smaller
        /// shortens each account's time answering 503 when the cores are busy.
        #[arg(long)]
        in_flight_max: Option<u32>,
        /// Why, for the audit trail.
        #[arg(long, default_value = "migrate-accounts")]
        reason: String,
        #[command(flatten)]
        gateway: crate::migrate_accounts::GatewayArgs,
    },
    /// Reconcile the two books now through the gateway's admin API; exits non-zero on a
    /// break.
    Reconcile {
        /// Why, for the audit trail.
        #[arg(long, default_value = "reconcile")]
        reason: String,
        #[command(flatten)]
        gateway: crate::migrate_accounts::GatewayArgs,
    },
    /// Work with the legacy core through its adapter (the export for migration).
    Legacy {
        #[command(subcommand)]
        command: crate::legacy::LegacyCommand,
    },
    /// List every setting (COREBANK_* variables) with its value in force and its meaning.
    Config {
        /// Print the table as Markdown (the source of docs/CONFIGURATION.md).
        #[arg(long)]
        markdown: bool,
    },
}

pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        #[cfg(feature = "mocks")]
        Command::Up => {
            let settings = Settings::from_env()?;
            corebank_service::telemetry::init(settings.log_format, &settings.log_filter);
            crate::up::run(settings).await
        }
        Command::Serve { component } => {
            let settings = Settings::from_env()?;
            corebank_service::telemetry::init(settings.log_format, &settings.log_filter);
            crate::serve::serve(component, &settings).await
        }
        Command::Accrue { as_of } => {
            let settings = Settings::from_env()?;
            corebank_service::telemetry::init(settings.log_format, "warn");
            accrue(&settings, as_of).await
        }
        Command::Token {
            role,
            customer,
            subject,
            ttl_s,
        } => {
            let settings = Settings::from_env()?;
            let token = crate::token::mint(
                &settings,
                role,
                subject.as_deref(),
                customer.as_deref(),
                std::time::Duration::from_secs(ttl_s),
            )?;
            println!("{token}");
            Ok(())
        }
        Command::MigrateAccounts {
            product,
            fraction,
            dry_run,
            rate_per_s,
            max_error_ratio,
            in_flight_max,
            reason,
            gateway,
        } => {
            crate::migrate_accounts::migrate(
                &gateway,
                &product,
                fraction.as_deref(),
                dry_run,
                &reason,
                (rate_per_s, max_error_ratio.as_deref(), in_flight_max),
            )
            .await
        }
        Command::Reconcile { reason, gateway } => {
            crate::migrate_accounts::reconcile(&gateway, &reason).await
        }
        Command::Legacy { command } => {
            let settings = Settings::from_env()?;
            corebank_service::telemetry::init(settings.log_format, "warn");
            crate::legacy::run(command, &settings).await
        }
        Command::Migrate { with_mocks } => {
            let settings = Settings::from_env()?;
            corebank_service::telemetry::init(settings.log_format, &settings.log_filter);
            migrate(&settings, with_mocks).await
        }
        Command::Certs { dir } => {
            let settings = Settings::from_env()?;
            certs(&settings, dir)
        }
        #[cfg(feature = "mocks")]
        Command::Bench { suite } => {
            let settings = Settings::from_env()?;
            corebank_service::telemetry::init(settings.log_format, "warn");
            corebank_bench::run(&settings, &suite).await
        }
        Command::Outbox { command } => {
            let settings = Settings::from_env()?;
            corebank_service::telemetry::init(settings.log_format, "warn");
            crate::outbox::run(&settings, command).await
        }
        Command::Config { markdown } => {
            if markdown {
                print!("{}", settings::render_markdown());
            } else {
                print_config()?;
            }
            Ok(())
        }
    }
}

/// `corebank certs`: a development CA and a certificate for every component.
fn certs(settings: &Settings, dir: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    use corebank_service::internal::{self, component_names};
    let dir = dir.unwrap_or_else(|| internal::certs_dir(settings));
    let written =
        internal::pki::dev::ensure_dir(&dir, &settings.tls_trust_domain, component_names::ALL)
            .with_context(|| format!("writing certificates in {}", dir.display()))?;
    if written.created_ca {
        println!("made a development CA: {}", dir.join("ca.crt").display());
    }
    for name in &written.issued {
        println!(
            "issued {name}: {} (spiffe://{}/{name})",
            dir.join(format!("{name}.crt")).display(),
            settings.tls_trust_domain
        );
    }
    if written.issued.is_empty() {
        println!(
            "{} already holds a CA and every component's certificate",
            dir.display()
        );
    }
    println!("private keys are readable by their owner only (mode 0600)");
    Ok(())
}

async fn migrate(settings: &Settings, with_mocks: bool) -> anyhow::Result<()> {
    let url = settings.database_url.as_deref().context(
        "DATABASE_URL is not set; set it to the database to migrate, \
         e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/corebank",
    )?;
    let db = Db::connect_lazy(&settings.db_settings(url, "migrate"))?;
    use corebank_db::migrate::{MOCK_SCHEMAS, Mocks, embedded_for};
    let migrations = embedded_for(if with_mocks {
        Mocks::Include
    } else {
        Mocks::Exclude
    })?;
    println!(
        "applying {} migrations to {}{}",
        migrations.len(),
        corebank_db::url::redact(url),
        if with_mocks {
            String::new()
        } else {
            format!(
                " (the mocks' schemas {} left out: --with-mocks adds them)",
                MOCK_SCHEMAS.join(", ")
            )
        }
    );
    let report = corebank_db::migrate::apply(&db, &migrations).await?;
    for path in &report.applied {
        println!("  applied {path}");
    }
    println!("migrations: {report}");
    Ok(())
}

fn print_config() -> anyhow::Result<()> {
    Settings::from_env()?;
    for spec in settings::SETTINGS {
        let value = std::env::var(spec.name).ok();
        let secret = ["KEYS", "PASSWORD", "SECRET"]
            .iter()
            .any(|word| spec.name.contains(word));
        let shown = match (&value, spec.name) {
            (Some(_), _) if secret => "(set; not shown)".to_owned(),
            (Some(url), "DATABASE_URL") => corebank_db::url::redact(url),
            (Some(value), _) => value.clone(),
            (None, _) if spec.default.is_empty() => "(unset)".to_owned(),
            (None, _) => format!("{} (default)", spec.default),
        };
        println!("{:<36} {}", spec.name, shown);
    }
    Ok(())
}

/// `corebank accrue --as-of`: the accrual run with a progress bar on stderr.
async fn accrue(settings: &Settings, as_of: chrono::NaiveDate) -> anyhow::Result<()> {
    use std::io::Write as _;
    let url = settings
        .database_url
        .as_deref()
        .context("DATABASE_URL is not set: point it at the database deposits lives in")?;
    let ledger_url = settings.ledger_url.as_deref().context(
        "COREBANK_LEDGER_URL is not set: accrual posts through the ledger's gRPC API \
         (e.g. http://127.0.0.1:8080 for `corebank up`)",
    )?;
    let db = Db::connect_lazy(
        &settings
            .db_settings(url, "accrue")
            .with_search_path("deposits"),
    )?;
    let deposits = corebank_deposits::app::Deposits::new(
        db.clone(),
        corebank_components::ledger_client(
            &corebank_components::clients_as(
                &corebank_service::internal::mode_from_settings(
                    settings,
                    &[corebank_service::internal::component_names::DEPOSITS],
                )?,
                corebank_service::internal::component_names::DEPOSITS,
            )?,
            ledger_url,
        )?,
        std::sync::Arc::new(corebank_kernel::SystemClock),
    )?;
    let started = std::time::Instant::now();
    let progress = |done: u64, total: u64| {
        let bar = crate::migrate_accounts::bar(done, total);
        eprint!("\raccruing through {as_of} {bar} {done}/{total} accounts");
        let _ = std::io::stderr().flush();
    };
    let report = deposits.accrue(as_of, &progress).await?;
    eprintln!();
    println!(
        "accrued through {as_of}: {} accounts, {} accrual entries, {} postings, {} failed, in {:.1} s",
        report.accounts,
        report.accrual_entries,
        report.postings,
        report.failed,
        started.elapsed().as_secs_f64()
    );
    db.close();
    anyhow::ensure!(
        report.failed == 0,
        "{} accounts could not be accrued (see the warnings above); run again to retry them",
        report.failed
    );
    Ok(())
}
