//! `corebank.migration.v1.Migrations` and the migration component: the service (for the
//! gateway) and the executor of the `account_move`, `account_return` and
//! `cross_side_transfer` sagas.

use std::sync::Arc;

use corebank_api::migration::v1 as pb;
use corebank_api::migration::v1::migrations_server::{
    Migrations as MigrationsApi, MigrationsServer,
};
use corebank_db::Db;
use corebank_saga::{Executor, ExecutorConfig, Registry};
use corebank_service::internal::{Allow, allowed_callers};
use corebank_service::{Component, refusal};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::MigrationError;
use crate::app::{MigrationView, Migrations, StartRequest, time};
use crate::crossings::SagaOptions;
use crate::moves;
use crate::peers::Peers;

/// The component: the service and the saga executor (stopped by `shutdown`); also the use
/// cases, for tests that look inside.
pub fn component(
    db: Db,
    peers: Peers,
    executor: ExecutorConfig,
    shutdown: CancellationToken,
) -> Result<(Component, Migrations), MigrationError> {
    component_with(db, peers, executor, SagaOptions::default(), shutdown)
}

/// [`component`] with the cross-side transfer saga's test switches.
pub fn component_with(
    db: Db,
    peers: Peers,
    executor: ExecutorConfig,
    options: SagaOptions,
    shutdown: CancellationToken,
) -> Result<(Component, Migrations), MigrationError> {
    let peers = Arc::new(peers);
    let mut single = Registry::new();
    for definition in moves::definitions(&peers) {
        single
            .register(definition)
            .map_err(MigrationError::internal)?;
    }
    let mut registry = Registry::new();
    for definition in moves::definitions(&peers)
        .into_iter()
        .chain([crate::chunks::definition(&peers, Arc::new(single))])
        .chain(crate::returns::definitions(&peers))
        .chain([crate::crossings::definition(&peers, options)])
    {
        registry
            .register(definition)
            .map_err(MigrationError::internal)?;
    }
    let registry = Arc::new(registry);
    let executor = Executor::new(db.clone(), Arc::clone(&registry), executor);
    executor.spawn(shutdown.clone());
    let migrations = Migrations::new(db.clone(), peers, registry, executor);
    migrations.spawn_feeder(shutdown);
    let component = Component::new("migration").with_db(db).with_grpc(
        MigrationsServer::new(MigrationsService {
            migrations: migrations.clone(),
        }),
        Allow::only(allowed_callers::MIGRATIONS),
    );
    Ok((component, migrations))
}

/// A refusal as a gRPC status; internal details stay in the log.
pub fn status_of(error: &MigrationError) -> Status {
    let code = match error {
        MigrationError::InvalidArgument { .. } => tonic::Code::InvalidArgument,
        MigrationError::UnknownMigration { .. }
        | MigrationError::UnknownRun { .. }
        | MigrationError::UnknownAlert { .. }
        | MigrationError::UnknownTransfer { .. } => tonic::Code::NotFound,
        MigrationError::ExistsWithDifferent { .. } => tonic::Code::AlreadyExists,
        MigrationError::AccountNotMoved { .. }
        | MigrationError::MigrationNotRunning { .. }
        | MigrationError::AlertClosed { .. } => tonic::Code::FailedPrecondition,
        MigrationError::Unavailable { .. } | MigrationError::AccountMoving { .. } => {
            tonic::Code::Unavailable
        }
        MigrationError::Internal { .. } => tonic::Code::Internal,
    };
    let detail = match error {
        MigrationError::Internal { message } => Some(message.as_str()),
        _ => None,
    };
    refusal::status_of("migration", code, error.code(), error, detail)
}

fn cross_transfer(view: &crate::crossings::CrossView) -> pb::CrossTransfer {
    let input = &view.input;
    pb::CrossTransfer {
        transfer_id: input.transfer_id.to_string(),
        status: view.status.to_owned(),
        from_side: input.from_side.clone(),
        from_reference: input.from_reference.to_string(),
        to_side: input.to_side.clone(),
        to_reference: input.to_reference.to_string(),
        amount: input.amount.clone(),
        currency: input.currency.clone(),
        description: input.description.clone(),
        failure_code: view.failure_code.clone(),
        failure_message: view.failure_message.clone(),
        attention: view.attention.clone(),
        created_at: time(view.created_at),
        updated_at: time(view.updated_at),
    }
}

fn account_move(account: &crate::app::MoveView) -> pb::AccountMove {
    pb::AccountMove {
        account_id: account.account_id.to_string(),
        legacy_account_number: account.legacy_account_number.clone(),
        state: account.state.clone(),
        reason: account.reason.clone(),
        posted: account.posted.clone(),
        held: account.held.clone(),
        holds: u32::try_from(account.holds).unwrap_or(u32::MAX),
        modern_id: account.modern_id.clone(),
        saga_id: account.saga_id.map(|id| id.to_string()).unwrap_or_default(),
    }
}

fn migration(view: &MigrationView) -> pb::Migration {
    let row = &view.migration;
    pb::Migration {
        migration_id: row.id.to_string(),
        product_code: row.product_code.clone(),
        fraction: row.fraction.clone(),
        dry_run: row.dry_run,
        requested_by: row.requested_by.clone(),
        status: view.status.to_owned(),
        journal: u64::try_from(row.journal).unwrap_or_default(),
        planned: view.count("planned"),
        moving: view.count("moving"),
        moved: view.count("moved"),
        refused: view.count("refused"),
        failed: view.count("failed"),
        accounts: view.accounts.iter().map(account_move).collect(),
        created_at: time(row.created_at),
        customers: u32::try_from(row.customers.len()).unwrap_or(u32::MAX),
        control: view
            .control
            .as_ref()
            .map(|c| c.state.clone())
            .unwrap_or_default(),
        control_reason: view
            .control
            .as_ref()
            .map(|c| c.reason.clone())
            .unwrap_or_default(),
        control_changed_by: view
            .control
            .as_ref()
            .map(|c| c.changed_by.clone())
            .unwrap_or_default(),
        control_changed_at: view
            .control
            .as_ref()
            .map(|c| time(c.changed_at))
            .unwrap_or_default(),
        rate_per_s: view
            .control
            .as_ref()
            .and_then(|c| u32::try_from(c.rate_per_s).ok())
            .unwrap_or_default(),
        max_error_ratio: view
            .control
            .as_ref()
            .map(|c| c.max_error_ratio.clone())
            .unwrap_or_default(),
        in_flight_max: view
            .control
            .as_ref()
            .and_then(|c| u32::try_from(c.in_flight_max).ok())
            .unwrap_or_default(),
    }
}

fn alert(alert: &crate::alerts::Alert) -> pb::Alert {
    pb::Alert {
        alert_id: alert.id.to_string(),
        rule: alert.rule.clone(),
        subject: alert.subject.clone(),
        state: alert.state.clone(),
        run_id: alert.run_id.to_string(),
        last_run_id: alert.last_run_id.to_string(),
        expected: alert.expected.clone(),
        actual: alert.actual.clone(),
        raised_at: time(alert.raised_at),
        changed_by: alert.changed_by.clone(),
        changed_at: time(alert.changed_at),
        note: alert.note.clone(),
        correcting_entry: alert.correcting_entry.clone(),
        events: alert
            .events
            .iter()
            .map(|event| pb::AlertEvent {
                state: event.state.clone(),
                changed_by: event.changed_by.clone(),
                changed_at: time(event.changed_at),
                note: event.note.clone(),
                correcting_entry: event.correcting_entry.clone(),
            })
            .collect(),
    }
}

/// The tonic service.
#[derive(Debug, Clone)]
pub struct MigrationsService {
    migrations: Migrations,
}

fn reconciliation(run: &crate::reconcile::RunView) -> pb::Reconciliation {
    pb::Reconciliation {
        run_id: run.run_id.to_string(),
        requested_by: run.requested_by.clone(),
        started_at: time(run.started_at),
        checked: u64::try_from(run.results.len()).unwrap_or(u64::MAX),
        breaks: u64::try_from(run.breaks()).unwrap_or(u64::MAX),
        results: run
            .results
            .iter()
            .map(|result| pb::ReconciliationResult {
                rule: result.rule.clone(),
                subject: result.subject.clone(),
                ok: result.ok,
                expected: result.expected.clone(),
                actual: result.actual.clone(),
                evidence: result.evidence.to_string(),
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl MigrationsApi for MigrationsService {
    async fn list_migrations(
        &self,
        request: Request<pb::ListMigrationsRequest>,
    ) -> Result<Response<pb::ListMigrationsResponse>, Status> {
        let limit = request.into_inner().limit;
        self.migrations
            .list(limit)
            .await
            .map(|views| {
                Response::new(pb::ListMigrationsResponse {
                    migrations: views.iter().map(migration).collect(),
                })
            })
            .map_err(|error| status_of(&error))
    }

    async fn return_account(
        &self,
        request: Request<pb::ReturnAccountRequest>,
    ) -> Result<Response<pb::AccountMove>, Status> {
        let r = request.into_inner();
        self.migrations
            .return_account(&r.migration_id, &r.account_id, &r.requested_by)
            .await
            .map(|account| Response::new(account_move(&account)))
            .map_err(|error| status_of(&error))
    }

    async fn reconcile(
        &self,
        request: Request<pb::ReconcileRequest>,
    ) -> Result<Response<pb::Reconciliation>, Status> {
        let r = request.into_inner();
        self.migrations
            .reconcile(&r.run_id, &r.requested_by)
            .await
            .map(|run| Response::new(reconciliation(&run)))
            .map_err(|error| status_of(&error))
    }

    async fn get_reconciliation(
        &self,
        request: Request<pb::GetReconciliationRequest>,
    ) -> Result<Response<pb::Reconciliation>, Status> {
        let run_id = request.into_inner().run_id;
        self.migrations
            .reconciliation(&run_id)
            .await
            .map(|run| Response::new(reconciliation(&run)))
            .map_err(|error| status_of(&error))
    }

    async fn start_migration(
        &self,
        request: Request<pb::StartMigrationRequest>,
    ) -> Result<Response<pb::Migration>, Status> {
        let r = request.into_inner();
        let started = self
            .migrations
            .start(&StartRequest {
                migration_id: r.migration_id,
                product_code: r.product_code,
                fraction: r.fraction,
                dry_run: r.dry_run,
                requested_by: r.requested_by,
                customer_ids: r.customer_ids,
                rate_per_s: r.rate_per_s,
                in_flight_max: r.in_flight_max,
                max_error_ratio: r.max_error_ratio,
            })
            .await;
        started
            .map(|view| Response::new(migration(&view)))
            .map_err(|error| status_of(&error))
    }

    async fn list_alerts(
        &self,
        request: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::ListAlertsResponse>, Status> {
        let r = request.into_inner();
        self.migrations
            .alerts(&r.state, r.limit)
            .await
            .map(|alerts| {
                Response::new(pb::ListAlertsResponse {
                    alerts: alerts.iter().map(alert).collect(),
                })
            })
            .map_err(|error| status_of(&error))
    }

    async fn change_alert(
        &self,
        request: Request<pb::ChangeAlertRequest>,
    ) -> Result<Response<pb::Alert>, Status> {
        let r = request.into_inner();
        self.migrations
            .change_alert(
                &r.alert_id,
                &r.action,
                &r.requested_by,
                &r.note,
                &r.correcting_entry,
            )
            .await
            .map(|changed| Response::new(alert(&changed)))
            .map_err(|error| status_of(&error))
    }

    async fn transfer_across(
        &self,
        request: Request<pb::TransferAcrossRequest>,
    ) -> Result<Response<pb::CrossTransfer>, Status> {
        let r = request.into_inner();
        let id = |field: &'static str, text: &str| {
            uuid::Uuid::parse_str(text)
                .map_err(|_| status_of(&MigrationError::invalid(field, "a UUID")))
        };
        if r.wait_ms > crate::crossings::WAIT_MAX_MS {
            return Err(status_of(&MigrationError::invalid(
                "wait_ms",
                "at most 30000",
            )));
        }
        let input = crate::crossings::CrossInput {
            transfer_id: id("transfer_id", &r.transfer_id)?,
            from_side: r.from_side,
            from_account_id: id("from_account_id", &r.from_account_id)?,
            from_reference: id("from_reference", &r.from_reference)?,
            to_side: r.to_side,
            to_account_id: id("to_account_id", &r.to_account_id)?,
            to_reference: id("to_reference", &r.to_reference)?,
            amount: r.amount,
            currency: r.currency,
            description: r.description,
        };
        self.migrations
            .transfer_across(
                input,
                std::time::Duration::from_millis(u64::from(r.wait_ms)),
            )
            .await
            .map(|view| Response::new(cross_transfer(&view)))
            .map_err(|error| status_of(&error))
    }

    async fn get_cross_transfer(
        &self,
        request: Request<pb::GetCrossTransferRequest>,
    ) -> Result<Response<pb::CrossTransfer>, Status> {
        let r = request.into_inner();
        let id = uuid::Uuid::parse_str(&r.transfer_id)
            .map_err(|_| status_of(&MigrationError::invalid("transfer_id", "a UUID")))?;
        self.migrations
            .cross_transfer(id)
            .await
            .map(|view| Response::new(cross_transfer(&view)))
            .map_err(|error| status_of(&error))
    }

    async fn pause_migration(
        &self,
        request: Request<pb::ControlMigrationRequest>,
    ) -> Result<Response<pb::Migration>, Status> {
        let r = request.into_inner();
        self.migrations
            .pause(&r.migration_id, &r.requested_by, &r.reason)
            .await
            .map(|view| Response::new(migration(&view)))
            .map_err(|error| status_of(&error))
    }

    async fn resume_migration(
        &self,
        request: Request<pb::ControlMigrationRequest>,
    ) -> Result<Response<pb::Migration>, Status> {
        let r = request.into_inner();
        self.migrations
            .resume(&r.migration_id, &r.requested_by, &r.reason)
            .await
            .map(|view| Response::new(migration(&view)))
            .map_err(|error| status_of(&error))
    }

    async fn get_migration(
        &self,
        request: Request<pb::GetMigrationRequest>,
    ) -> Result<Response<pb::Migration>, Status> {
        let id = request.into_inner().migration_id;
        self.migrations
            .get(&id)
            .await
            .map(|view| Response::new(migration(&view)))
            .map_err(|error| status_of(&error))
    }
}
