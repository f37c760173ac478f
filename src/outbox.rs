//! `corebank outbox …`: what operators do with an outbox's dead letters (see
//! docs/RUNBOOK.md): list them, and replay them into the outbox once the cause is fixed.

use anyhow::Context as _;
use corebank_db::Db;
use corebank_outbox::{AggregateRef, DeadLetterStatus, SchemaName};
use corebank_service::Settings;

/// Dead letters listed when `--limit` is not given.
const LIST_LIMIT_DEFAULT: usize = 100;

#[derive(Debug, clap::Subcommand)]
pub enum OutboxCommand {
    /// List the dead letters of a schema's outbox: events a sink refused for good, and the
    /// later events of their aggregates parked behind them.
    DeadLetters {
        #[command(flatten)]
        selection: Selection,
        /// List at most this many (1000 at most).
        #[arg(long, default_value_t = LIST_LIMIT_DEFAULT)]
        limit: usize,
    },
    /// Move dead letters back into the outbox, whole aggregates at a time, so the relay
    /// publishes them again in their order. Fix what made the sink refuse them first.
    Replay {
        #[command(flatten)]
        selection: Selection,
        /// Replay the dead letters of every aggregate.
        #[arg(long, conflicts_with_all = ["aggregate_type", "aggregate_id"])]
        all: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct Selection {
    /// The schema whose outbox, e.g. `ledger`.
    #[arg(long)]
    schema: String,
    /// Only this aggregate: its type (e.g. `journal_entry`), with --aggregate-id.
    #[arg(long, requires = "aggregate_id")]
    aggregate_type: Option<String>,
    /// Only this aggregate: its id, with --aggregate-type.
    #[arg(long, requires = "aggregate_type")]
    aggregate_id: Option<String>,
}

impl Selection {
    fn parse(&self) -> anyhow::Result<(SchemaName, Option<AggregateRef>)> {
        let schema = SchemaName::new(&self.schema)?;
        let aggregate = match (&self.aggregate_type, &self.aggregate_id) {
            (Some(aggregatetype), Some(aggregateid)) => Some(AggregateRef::new(
                aggregatetype.as_str(),
                aggregateid.as_str(),
            )?),
            _ => None,
        };
        Ok((schema, aggregate))
    }
}

pub async fn run(settings: &Settings, command: OutboxCommand) -> anyhow::Result<()> {
    let url = settings.database_url.as_deref().context(
        "DATABASE_URL is not set; set it to the database whose outbox to look at, \
         e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/corebank",
    )?;
    let db = Db::connect_lazy(&settings.db_settings(url, "outbox-cli"))?;
    match command {
        OutboxCommand::DeadLetters { selection, limit } => {
            let (schema, aggregate) = selection.parse()?;
            let letters =
                corebank_outbox::dead_letters(&db, &schema, aggregate.as_ref(), limit).await?;
            for letter in &letters {
                let status = match letter.status {
                    DeadLetterStatus::Refused => "refused",
                    DeadLetterStatus::Parked => "parked ",
                };
                println!(
                    "{}  {status}  {}  {}  {}  {}",
                    letter.event.describe(),
                    letter.event.id,
                    letter.event.event_type,
                    letter.dead_lettered_at.format("%Y-%m-%dT%H:%M:%SZ"),
                    letter.reason
                );
            }
            println!(
                "{} dead letters in {schema}.outbox_dead_letters",
                letters.len()
            );
        }
        OutboxCommand::Replay { selection, all } => {
            let (schema, aggregate) = selection.parse()?;
            if aggregate.is_none() && !all {
                anyhow::bail!(
                    "name the aggregate to replay (--aggregate-type and --aggregate-id), or pass --all"
                );
            }
            let moved =
                corebank_outbox::replay_dead_letters(&db, &schema, aggregate.as_ref()).await?;
            println!("replayed {moved} events into {schema}.outbox; the relay publishes them next");
        }
    }
    db.close();
    Ok(())
}
