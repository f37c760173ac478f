//! The SQL of the `migration` schema: migrations, their accounts' moves, and the moves as
//! their sagas (`saga_instances`, same schema) say they stand.

use chrono::{DateTime, Utc};
use corebank_db::tokio_postgres::Row;
use corebank_db::{DbError, Transaction, TxError};
use uuid::Uuid;

use crate::MigrationError;
use crate::moves::MoveInput;

/// A migration as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationRow {
    pub id: Uuid,
    pub product_code: String,
    pub fraction: String,
    pub dry_run: bool,
    pub requested_by: String,
    pub journal: i64,
    pub created_at: DateTime<Utc>,
    /// The customers it was limited to (empty: every customer's accounts).
    pub customers: Vec<String>,
}

/// An account of a migration, with its saga's standing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveRow {
    pub account_id: Uuid,
    pub legacy_account_number: String,
    pub state: String,
    pub reason: String,
    pub posted: String,
    pub held: String,
    pub holds: i64,
    pub modern_id: String,
    pub saga_id: Option<Uuid>,
    /// The saga's status, failure and pause reason (empty without a saga).
    pub saga_status: String,
    pub saga_failure: String,
    pub saga_paused: String,
    /// What came back to legacy (empty unless returned), and the return's saga and status.
    pub returned: String,
    pub return_saga_id: Option<Uuid>,
    pub return_status: String,
    pub return_failure: String,
    pub customer_id: String,
    pub currency: String,
}

/// One account the plan chose, to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMove {
    pub input: MoveInput,
    /// `planned`, or `refused` with `reason`.
    pub state: &'static str,
    pub reason: String,
    pub posted: String,
    pub held: String,
    pub holds: i64,
    pub saga_id: Option<Uuid>,
}

type Result<T> = std::result::Result<T, TxError<MigrationError>>;

const MIGRATION_COLUMNS: &str =
    "id, product_code, fraction, dry_run, requested_by, journal, created_at, customers";

fn migration_row(row: &Row) -> MigrationRow {
    let customers: String = row.get("customers");
    MigrationRow {
        id: row.get("id"),
        product_code: row.get("product_code"),
        fraction: row.get("fraction"),
        dry_run: row.get("dry_run"),
        requested_by: row.get("requested_by"),
        journal: row.get("journal"),
        created_at: row.get("created_at"),
        customers: serde_json::from_str(&customers).unwrap_or_default(),
    }
}

pub async fn migration(tx: &Transaction<'_>, id: Uuid) -> Result<Option<MigrationRow>> {
    let row = tx
        .query_opt(
            &format!("SELECT {MIGRATION_COLUMNS} FROM migrations WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(migration_row))
}

/// The newest `limit` migrations, newest first.
pub async fn migrations(tx: &Transaction<'_>, limit: i64) -> Result<Vec<MigrationRow>> {
    let rows = tx
        .query(
            &format!(
                "SELECT {MIGRATION_COLUMNS} FROM migrations ORDER BY created_at DESC, id LIMIT $1"
            ),
            &[&limit],
        )
        .await?;
    Ok(rows.iter().map(migration_row).collect())
}

/// Stores the migration; false when its id was there already.
pub async fn insert_migration(tx: &Transaction<'_>, migration: &MigrationRow) -> Result<bool> {
    let inserted = tx
        .execute(
            "INSERT INTO migrations (id, product_code, fraction, dry_run, requested_by, journal, \
             created_at, customers) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO NOTHING",
            &[
                &migration.id,
                &migration.product_code,
                &migration.fraction,
                &migration.dry_run,
                &migration.requested_by,
                &migration.journal,
                &migration.created_at,
                &serde_json::to_string(&migration.customers).unwrap_or_default(),
            ],
        )
        .await?;
    Ok(inserted == 1)
}

/// Stores planned moves (again: nothing), once per (migration, account), in one statement.
pub async fn insert_moves(
    tx: &Transaction<'_>,
    migration_id: Uuid,
    moves: &[PlannedMove],
    now: DateTime<Utc>,
) -> Result<()> {
    let mut accounts = Vec::with_capacity(moves.len());
    for planned in moves {
        accounts.push(parse_uuid(&planned.input.account_id)?);
    }
    let column =
        |field: fn(&PlannedMove) -> &str| -> Vec<&str> { moves.iter().map(field).collect() };
    let numbers = column(|planned| &planned.input.legacy_account_number);
    let customers = column(|planned| &planned.input.customer_id);
    let currencies = column(|planned| &planned.input.currency);
    let states = column(|planned| {
        if planned.saga_id.is_some() {
            "moving"
        } else {
            planned.state
        }
    });
    let reasons = column(|planned| &planned.reason);
    let posted = column(|planned| &planned.posted);
    let held = column(|planned| &planned.held);
    let opened = column(|planned| &planned.input.opened_on);
    let holds: Vec<i64> = moves.iter().map(|planned| planned.holds).collect();
    let sagas: Vec<Option<Uuid>> = moves.iter().map(|planned| planned.saga_id).collect();
    tx.execute(
        "INSERT INTO account_moves (migration_id, account_id, legacy_account_number, \
         customer_id, currency, state, reason, posted, held, holds, saga_id, updated_at, \
         opened_on) SELECT $1, a, n, c, y, s, r, p, h, k, g, $2, o FROM UNNEST($3::UUID[], \
         $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::TEXT[], \
         $11::INT8[], $12::UUID[], $13::TEXT[]) AS t (a, n, c, y, s, r, p, h, k, g, o) \
         ON CONFLICT (migration_id, account_id) DO NOTHING",
        &[
            &migration_id,
            &now,
            &accounts,
            &numbers,
            &customers,
            &currencies,
            &states,
            &reasons,
            &posted,
            &held,
            &holds,
            &sagas,
            &opened,
        ],
    )
    .await?;
    Ok(())
}

/// Of `accounts`, those being moved, or moved, by a migration other than `migration_id`.
pub async fn moved_elsewhere(
    tx: &Transaction<'_>,
    accounts: &[Uuid],
    migration_id: Uuid,
) -> Result<std::collections::BTreeSet<Uuid>> {
    Ok(tx
        .query(
            "SELECT DISTINCT account_id FROM account_moves WHERE account_id = ANY($1) \
             AND migration_id <> $2 AND state IN ('moving', 'moved') AND returned = ''",
            &[&accounts, &migration_id],
        )
        .await?
        .iter()
        .map(|row| row.get("account_id"))
        .collect())
}

/// A migration's accounts with their sagas' standing, in account order.
pub async fn moves(tx: &Transaction<'_>, migration_id: Uuid) -> Result<Vec<MoveRow>> {
    let rows = tx
        .query(
            &format!("{MOVE_QUERY} WHERE m.migration_id = $1 ORDER BY m.legacy_account_number"),
            &[&migration_id],
        )
        .await?;
    Ok(rows.iter().map(move_row).collect())
}

/// How a migration's moves stand, grouped: one row per distinct standing (its state, its
/// sagas' status and failure, whether it came back) with how many accounts share it. The
/// rows carry only what decides how a move stands; the per-account fields are empty.
pub async fn move_counts(tx: &Transaction<'_>, migration_id: Uuid) -> Result<Vec<(MoveRow, i64)>> {
    let rows = tx
        .query(
            "SELECT m.state, m.returned <> '' AS came_back, \
             m.return_saga_id IS NOT NULL AS returning, \
             COALESCE(s.status, '') AS saga_status, COALESCE(s.failure, '') AS saga_failure, \
             COALESCE(r.status, '') AS return_status, COALESCE(r.failure, '') AS return_failure, \
             count(*) AS accounts \
             FROM account_moves m LEFT JOIN saga_instances s ON s.id = m.saga_id \
             LEFT JOIN saga_instances r ON r.id = m.return_saga_id \
             WHERE m.migration_id = $1 \
             GROUP BY 1, 2, 3, 4, 5, 6, 7",
            &[&migration_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let standing = MoveRow {
                account_id: Uuid::nil(),
                legacy_account_number: String::new(),
                state: row.get("state"),
                reason: String::new(),
                posted: String::new(),
                held: String::new(),
                holds: 0,
                modern_id: String::new(),
                saga_id: None,
                saga_status: row.get("saga_status"),
                saga_failure: row.get("saga_failure"),
                saga_paused: String::new(),
                returned: if row.get("came_back") {
                    "-".to_owned()
                } else {
                    String::new()
                },
                return_saga_id: row.get::<_, bool>("returning").then(Uuid::nil),
                return_status: row.get("return_status"),
                return_failure: row.get("return_failure"),
                customer_id: String::new(),
                currency: String::new(),
            };
            (standing, row.get("accounts"))
        })
        .collect())
}

/// An account's move in a migration, with its sagas' standing.
pub async fn account_move(
    tx: &Transaction<'_>,
    migration_id: Uuid,
    account_id: Uuid,
) -> Result<Option<MoveRow>> {
    let row = tx
        .query_opt(
            &format!("{MOVE_QUERY} WHERE m.migration_id = $1 AND m.account_id = $2"),
            &[&migration_id, &account_id],
        )
        .await?;
    Ok(row.as_ref().map(move_row))
}

/// Names the saga moving the account back; false when one was named already.
pub async fn set_return_saga(
    tx: &Transaction<'_>,
    migration_id: Uuid,
    account_id: Uuid,
    saga_id: Uuid,
) -> Result<bool> {
    let updated = tx
        .execute(
            "UPDATE account_moves SET return_saga_id = $3, updated_at = $4 \
             WHERE migration_id = $1 AND account_id = $2 AND return_saga_id IS NULL",
            &[&migration_id, &account_id, &saga_id, &Utc::now()],
        )
        .await?;
    Ok(updated == 1)
}

const MOVE_QUERY: &str = "SELECT m.account_id, m.legacy_account_number, m.customer_id, \
     m.currency, m.state, m.reason, m.posted, m.held, m.holds, m.modern_id, m.saga_id, \
     m.returned, m.return_saga_id, \
     COALESCE(s.status, '') AS saga_status, COALESCE(s.failure, '') AS saga_failure, \
     COALESCE(s.paused_reason, '') AS saga_paused, \
     COALESCE(r.status, '') AS return_status, COALESCE(r.failure, '') AS return_failure \
     FROM account_moves m LEFT JOIN saga_instances s ON s.id = m.saga_id \
     LEFT JOIN saga_instances r ON r.id = m.return_saga_id";

fn move_row(row: &Row) -> MoveRow {
    MoveRow {
        account_id: row.get("account_id"),
        legacy_account_number: row.get("legacy_account_number"),
        state: row.get("state"),
        reason: row.get("reason"),
        posted: row.get("posted"),
        held: row.get("held"),
        holds: row.get("holds"),
        modern_id: row.get("modern_id"),
        saga_id: row.get("saga_id"),
        saga_status: row.get("saga_status"),
        saga_failure: row.get("saga_failure"),
        saga_paused: row.get("saga_paused"),
        returned: row.get("returned"),
        return_saga_id: row.get("return_saga_id"),
        return_status: row.get("return_status"),
        return_failure: row.get("return_failure"),
        customer_id: row.get("customer_id"),
        currency: row.get("currency"),
    }
}

/// The move's figures once it is done (the saga's last step).
pub async fn record_moved(
    tx: &Transaction<'_>,
    input: &MoveInput,
    posted: &str,
    held: &str,
    holds: i64,
    modern_id: &str,
) -> std::result::Result<(), DbError> {
    let migration_id = Uuid::parse_str(&input.migration_id).unwrap_or_default();
    let account_id = Uuid::parse_str(&input.account_id).unwrap_or_default();
    tx.execute(
        "UPDATE account_moves SET state = 'moved', posted = $3, held = $4, holds = $5, \
         modern_id = $6, updated_at = $7 WHERE migration_id = $1 AND account_id = $2",
        &[
            &migration_id,
            &account_id,
            &posted,
            &held,
            &holds,
            &modern_id,
            &Utc::now(),
        ],
    )
    .await?;
    Ok(())
}

/// What came back to legacy when the account moved back (the return's last step).
pub async fn record_returned(
    tx: &Transaction<'_>,
    input: &MoveInput,
    returned: &str,
) -> std::result::Result<(), DbError> {
    let migration_id = Uuid::parse_str(&input.migration_id).unwrap_or_default();
    let account_id = Uuid::parse_str(&input.account_id).unwrap_or_default();
    tx.execute(
        "UPDATE account_moves SET returned = $3, updated_at = $4 \
         WHERE migration_id = $1 AND account_id = $2",
        &[&migration_id, &account_id, &returned, &Utc::now()],
    )
    .await?;
    Ok(())
}

/// How a migration's moves are started (`migration_controls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlRow {
    pub migration_id: Uuid,
    /// running | paused | stopped | fed
    pub state: String,
    pub rate_per_s: i64,
    /// Moves under way at once at most.
    pub in_flight_max: i64,
    pub max_error_ratio: String,
    /// The errors and settled moves a resume accepted: the ratio counts those after it.
    pub errors_accepted: i64,
    pub settled_accepted: i64,
    pub reason: String,
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
}

const CONTROL_COLUMNS: &str = "migration_id, state, rate_per_s, max_error_ratio, \
     errors_accepted, settled_accepted, reason, changed_by, changed_at, in_flight_max";

fn control_row(row: &Row) -> ControlRow {
    ControlRow {
        migration_id: row.get("migration_id"),
        state: row.get("state"),
        rate_per_s: row.get("rate_per_s"),
        in_flight_max: row.get("in_flight_max"),
        max_error_ratio: row.get("max_error_ratio"),
        errors_accepted: row.get("errors_accepted"),
        settled_accepted: row.get("settled_accepted"),
        reason: row.get("reason"),
        changed_by: row.get("changed_by"),
        changed_at: row.get("changed_at"),
    }
}

pub async fn insert_control(tx: &Transaction<'_>, control: &ControlRow) -> Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO migration_controls ({CONTROL_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (migration_id) DO NOTHING"
        ),
        &[
            &control.migration_id,
            &control.state,
            &control.rate_per_s,
            &control.max_error_ratio,
            &control.errors_accepted,
            &control.settled_accepted,
            &control.reason,
            &control.changed_by,
            &control.changed_at,
            &control.in_flight_max,
        ],
    )
    .await?;
    Ok(())
}

pub async fn control(tx: &Transaction<'_>, migration_id: Uuid) -> Result<Option<ControlRow>> {
    let row = tx
        .query_opt(
            &format!("SELECT {CONTROL_COLUMNS} FROM migration_controls WHERE migration_id = $1"),
            &[&migration_id],
        )
        .await?;
    Ok(row.as_ref().map(control_row))
}

/// The migrations whose planned moves are being started.
pub async fn running_controls(tx: &Transaction<'_>) -> Result<Vec<ControlRow>> {
    let rows = tx
        .query(
            &format!(
                "SELECT {CONTROL_COLUMNS} FROM migration_controls WHERE state = 'running' \
                 ORDER BY changed_at, migration_id"
            ),
            &[],
        )
        .await?;
    Ok(rows.iter().map(control_row).collect())
}

/// Moves the control from `from` to `to`; false when it was not in `from`.
pub async fn change_control(
    tx: &Transaction<'_>,
    migration_id: Uuid,
    from: &str,
    to: &str,
    reason: &str,
    changed_by: &str,
) -> Result<bool> {
    let changed = tx
        .execute(
            "UPDATE migration_controls SET state = $3, reason = $4, changed_by = $5, \
             changed_at = $6 WHERE migration_id = $1 AND state = $2",
            &[&migration_id, &from, &to, &reason, &changed_by, &Utc::now()],
        )
        .await?;
    Ok(changed == 1)
}

/// A resume accepts the errors and settled moves counted so far.
pub async fn accept_errors(
    tx: &Transaction<'_>,
    migration_id: Uuid,
    errors: i64,
    settled: i64,
) -> Result<()> {
    tx.execute(
        "UPDATE migration_controls SET errors_accepted = $2, settled_accepted = $3 \
         WHERE migration_id = $1",
        &[&migration_id, &errors, &settled],
    )
    .await?;
    Ok(())
}

/// The migration's moves under way or ended without moving (state `moving`), grouped by
/// their saga's status and failure: (status, failure, how many).
pub async fn moving_standings(
    tx: &Transaction<'_>,
    migration_id: Uuid,
) -> Result<Vec<(String, String, i64)>> {
    let rows = tx
        .query(
            "SELECT COALESCE(s.status, '') AS status, COALESCE(s.failure, '') AS failure, \
             count(*) AS moves FROM account_moves m \
             LEFT JOIN saga_instances s ON s.id = m.saga_id \
             WHERE m.migration_id = $1 AND m.state = 'moving' GROUP BY 1, 2",
            &[&migration_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get("status"), row.get("failure"), row.get("moves")))
        .collect())
}

/// How many of the migration's moves are in `state`.
pub async fn count_in_state(tx: &Transaction<'_>, migration_id: Uuid, state: &str) -> Result<i64> {
    Ok(tx
        .query_one(
            "SELECT count(*) AS moves FROM account_moves WHERE migration_id = $1 AND state = $2",
            &[&migration_id, &state],
        )
        .await?
        .get("moves"))
}

/// The migration's next `limit` planned moves, in account order, as their sagas' input.
pub async fn next_planned(
    tx: &Transaction<'_>,
    migration: &MigrationRow,
    limit: i64,
) -> Result<Vec<MoveInput>> {
    let rows = tx
        .query(
            "SELECT account_id, legacy_account_number, customer_id, currency, opened_on \
             FROM account_moves WHERE migration_id = $1 AND state = 'planned' \
             ORDER BY account_id LIMIT $2",
            &[&migration.id, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| MoveInput {
            migration_id: migration.id.to_string(),
            account_id: row.get::<_, Uuid>("account_id").to_string(),
            legacy_account_number: row.get("legacy_account_number"),
            customer_id: row.get("customer_id"),
            product_code: migration.product_code.clone(),
            currency: row.get("currency"),
            opened_on: row.get("opened_on"),
        })
        .collect())
}

/// The planned move of `account_id` is under way in the saga `saga_id`.
pub async fn set_moving(
    tx: &Transaction<'_>,
    migration_id: Uuid,
    account_id: Uuid,
    saga_id: Uuid,
) -> Result<bool> {
    let updated = tx
        .execute(
            "UPDATE account_moves SET state = 'moving', saga_id = $3, updated_at = $4 \
             WHERE migration_id = $1 AND account_id = $2 AND state = 'planned'",
            &[&migration_id, &account_id, &saga_id, &Utc::now()],
        )
        .await?;
    Ok(updated == 1)
}

fn parse_uuid(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text)
        .map_err(|_| TxError::Abort(MigrationError::internal(format!("account id {text:?}"))))
}

/// A cross-side transfer as stored, with its saga's standing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossingRow {
    pub input: crate::crossings::CrossInput,
    pub saga_status: String,
    pub saga_failure: String,
    pub saga_paused: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A cross-side transfer with its saga's standing, if known.
pub async fn crossing(tx: &Transaction<'_>, id: Uuid) -> Result<Option<CrossingRow>> {
    let row = tx
        .query_opt(
            "SELECT c.transfer_id, c.from_side, c.from_account_id, c.from_reference, c.to_side, \
             c.to_account_id, c.to_reference, c.amount, c.currency, c.description, \
             c.created_at, COALESCE(s.status, 'running') AS saga_status, \
             COALESCE(s.failure, '') AS saga_failure, \
             COALESCE(s.paused_reason, '') AS saga_paused, \
             COALESCE(s.updated_at, c.created_at) AS updated_at \
             FROM crossings c LEFT JOIN saga_instances s ON s.id = c.transfer_id \
             WHERE c.transfer_id = $1",
            &[&id],
        )
        .await?;
    Ok(row.map(|row| CrossingRow {
        input: crate::crossings::CrossInput {
            transfer_id: row.get("transfer_id"),
            from_side: row.get("from_side"),
            from_account_id: row.get("from_account_id"),
            from_reference: row.get("from_reference"),
            to_side: row.get("to_side"),
            to_account_id: row.get("to_account_id"),
            to_reference: row.get("to_reference"),
            amount: row.get("amount"),
            currency: row.get("currency"),
            description: row.get("description"),
        },
        saga_status: row.get("saga_status"),
        saga_failure: row.get("saga_failure"),
        saga_paused: row.get("saga_paused"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }))
}

pub async fn insert_crossing(
    tx: &Transaction<'_>,
    input: &crate::crossings::CrossInput,
    at: DateTime<Utc>,
) -> Result<()> {
    tx.execute(
        "INSERT INTO crossings (transfer_id, from_side, from_account_id, from_reference, \
         to_side, to_account_id, to_reference, amount, currency, description, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &input.transfer_id,
            &input.from_side,
            &input.from_account_id,
            &input.from_reference,
            &input.to_side,
            &input.to_account_id,
            &input.to_reference,
            &input.amount,
            &input.currency,
            &input.description,
            &at,
        ],
    )
    .await?;
    Ok(())
}

/// The first of `accounts` with a move or a return under way (its saga not yet ended), or
/// of `on_legacy` (the accounts a transfer names as kept by the legacy core) that a move has
/// taken off it (its home switched). A move whose saga has cleared the gateway's mark
/// (`unmark`) is over for its transfers: the account is at home on modern and only the
/// move's own record is left to write, so a transfer then is not refused unless it names
/// the old home (a request that read the directory before the switch; sent again, it reads
/// the new one).
pub async fn moving_account(
    tx: &Transaction<'_>,
    accounts: &[Uuid],
    on_legacy: &[Uuid],
) -> Result<Option<Uuid>> {
    let row = tx
        .query_opt(
            "SELECT m.account_id FROM account_moves m \
             LEFT JOIN saga_instances s ON s.id = m.saga_id \
             LEFT JOIN saga_instances r ON r.id = m.return_saga_id \
             WHERE m.account_id = ANY($1) AND ( \
               (m.state = 'moving' AND s.status IN ('running', 'compensating', 'paused') \
                AND NOT (s.status = 'running' AND CASE WHEN s.saga_type = 'accounts_move' \
                  THEN s.outputs -> 'unmark' -> 'accounts' -> (m.account_id::text) \
                  ELSE s.outputs -> 'unmark' END IS NOT NULL)) \
               OR r.status IN ('running', 'compensating', 'paused') \
               OR (m.account_id = ANY($2) AND m.returned = '' AND (m.state = 'moved' \
                   OR (m.state = 'moving' AND CASE WHEN s.saga_type = 'accounts_move' \
                     THEN s.outputs -> 'switch' -> 'accounts' -> (m.account_id::text) \
                     ELSE s.outputs -> 'switch' END IS NOT NULL)))) \
             LIMIT 1",
            &[&accounts, &on_legacy],
        )
        .await?;
    Ok(row.map(|row| row.get("account_id")))
}

/// The account's move goes on in the saga `to` (its own move), no longer in the chunk
/// `from`.
pub async fn hand_over(
    tx: &Transaction<'_>,
    input: &MoveInput,
    from: Uuid,
    to: Uuid,
) -> std::result::Result<(), DbError> {
    let migration_id = Uuid::parse_str(&input.migration_id).unwrap_or_default();
    let account_id = Uuid::parse_str(&input.account_id).unwrap_or_default();
    tx.execute(
        "UPDATE account_moves SET saga_id = $4, updated_at = $5 \
         WHERE migration_id = $1 AND account_id = $2 AND saga_id = $3",
        &[&migration_id, &account_id, &from, &to, &Utc::now()],
    )
    .await?;
    Ok(())
}

/// Writes the account's move (its time), so that a transfer that read it while starting
/// conflicts with the step that does this.
pub async fn touch_move(
    tx: &Transaction<'_>,
    input: &MoveInput,
) -> std::result::Result<(), DbError> {
    let migration_id = Uuid::parse_str(&input.migration_id).unwrap_or_default();
    let account_id = Uuid::parse_str(&input.account_id).unwrap_or_default();
    tx.execute(
        "UPDATE account_moves SET updated_at = $3 WHERE migration_id = $1 AND account_id = $2",
        &[&migration_id, &account_id, &Utc::now()],
    )
    .await?;
    Ok(())
}

/// The account's cross-side transfers whose sagas have not ended (either end), with their
/// sagas' status.
pub async fn crossings_under_way(
    tx: &Transaction<'_>,
    account_id: Uuid,
) -> std::result::Result<Vec<(Uuid, String)>, DbError> {
    let rows = tx
        .query(
            "SELECT c.transfer_id, s.status FROM crossings c \
             JOIN saga_instances s ON s.id = c.transfer_id \
             WHERE (c.from_reference = $1 OR c.to_reference = $1) \
             AND s.status IN ('running', 'compensating', 'paused') \
             ORDER BY s.status DESC, c.transfer_id",
            &[&account_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get("transfer_id"), row.get("status")))
        .collect())
}

/// The amounts of the cross-side transfers in `currency` past their pivot (credited on the
/// creditor's core) and not yet captured: by how much the inter-core clearing accounts may
/// differ now, as evidence for reconciliation.
pub async fn crossings_in_flight(tx: &Transaction<'_>, currency: &str) -> Result<Vec<String>> {
    let rows = tx
        .query(
            "SELECT c.amount FROM crossings c \
             JOIN saga_instances s ON s.id = c.transfer_id \
             WHERE c.currency = $1 AND s.status IN ('running', 'compensating', 'paused') \
             AND s.current_step >= 2",
            &[&currency],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get("amount")).collect())
}
