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
enum BenchSuite {
    /// pgbench TPC-B, then two-leg transfers over gRPC among many accounts (uniform) and
    /// into one account (hot_account).
    Ledger(crate::bench::LedgerBenchOptions),
    /// pgbench TPC-B, then three-step demo sagas with database steps, driven by one
    /// executor (replicas_1) and by two (replicas_2).
    Saga(crate::bench_saga::SagaBenchOptions),
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole platform in one process: a private PostgreSQL unless DATABASE_URL is
    /// set, migrations, every component. Ctrl-C stops it all cleanly.
    Up,
    /// Run one component in this process, against DATABASE_URL (already migrated), as in
    /// production. Several replicas of a component may run against one database.
    Serve {
        #[arg(value_enum)]
        component: crate::components::ComponentName,
    },
    /// Apply every pending migration to DATABASE_URL, then exit.
    Migrate,
    /// Run a benchmark suite against a baseline measured in the same run.
    Bench {
        #[command(subcommand)]
        suite: BenchSuite,
    },
    /// Look at and replay the dead letters of a schema's transactional outbox.
    Outbox {
        #[command(subcommand)]
        command: crate::outbox::OutboxCommand,
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
        Command::Up => {
            let settings = Settings::from_env()?;
            corebank_service::telemetry::init(settings.log_format, &settings.log_filter);
            crate::up::run(settings).await
        }
        Command::Serve { component } => {
            let settings = Settings::from_env()?;
            corebank_service::telemetry::init(settings.log_format, &settings.log_filter);
            crate::components::serve(component, &settings).await
        }
        Command::Migrate => {
            let settings = Settings::from_env()?;
            corebank_service::telemetry::init(settings.log_format, &settings.log_filter);
            migrate(&settings).await
        }
        Command::Bench { suite } => {
            let settings = Settings::from_env()?;
            corebank_service::telemetry::init(settings.log_format, "warn");
            match suite {
                BenchSuite::Ledger(options) => crate::bench::ledger(&settings, &options).await,
                BenchSuite::Saga(options) => crate::bench_saga::saga(&settings, &options).await,
            }
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

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let url = settings.database_url.as_deref().context(
        "DATABASE_URL is not set; set it to the database to migrate, \
         e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/corebank",
    )?;
    let db = Db::connect_lazy(&settings.db_settings(url, "migrate"))?;
    let migrations = corebank_db::migrate::embedded()?;
    println!(
        "applying {} migrations to {}",
        migrations.len(),
        redact(url)
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
        let shown = match (&value, spec.name) {
            (Some(url), "DATABASE_URL") => redact(url),
            (Some(value), _) => value.clone(),
            (None, _) if spec.default.is_empty() => "(unset)".to_owned(),
            (None, _) => format!("{} (default)", spec.default),
        };
        println!("{:<36} {}", spec.name, shown);
    }
    Ok(())
}

/// The URL without its password, for printing.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _password)) => {
                    format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
