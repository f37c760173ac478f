//! Reconciliation alerts (ADR 0013): every break a run finds becomes an alert that a person
//! acknowledges, then closes: `resolved` with the correcting entry that fixed the books, or
//! `accepted` with a note that says why the difference stands. Every transition is kept
//! (`reconciliation_alert_events`) with who made it and when; the gateway audits the
//! operator's call as well.
//!
//! A break whose alert is still open or acknowledged is not raised again: the run names
//! itself as the alert's `last_run_id` (with the figures it found). A difference accepted is
//! not raised again while it stays exactly the same; any other difference is a new alert.

use chrono::{DateTime, Utc};
use corebank_db::{Transaction, TxError};
use uuid::Uuid;

use crate::MigrationError;
use crate::app::Migrations;
use crate::reconcile::ResultRow;

/// The alerts one list answers at most.
pub const LIST_MAX: i64 = 200;

/// An alert as stored, with its transitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub id: Uuid,
    pub rule: String,
    pub subject: String,
    /// open | acknowledged | resolved | accepted
    pub state: String,
    pub run_id: Uuid,
    pub last_run_id: Uuid,
    pub expected: String,
    pub actual: String,
    pub raised_at: DateTime<Utc>,
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
    pub note: String,
    pub correcting_entry: String,
    pub events: Vec<AlertEvent>,
}

/// One transition of an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertEvent {
    pub state: String,
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
    pub note: String,
    pub correcting_entry: String,
}

/// What a person does to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    Acknowledge,
    Resolve,
    Accept,
}

impl AlertAction {
    pub fn parse(text: &str) -> Option<AlertAction> {
        match text {
            "acknowledge" => Some(AlertAction::Acknowledge),
            "resolve" => Some(AlertAction::Resolve),
            "accept" => Some(AlertAction::Accept),
            _ => None,
        }
    }

    /// The state the action leads to.
    fn state(self) -> &'static str {
        match self {
            AlertAction::Acknowledge => "acknowledged",
            AlertAction::Resolve => "resolved",
            AlertAction::Accept => "accepted",
        }
    }
}

type TxResult<T> = std::result::Result<T, TxError<MigrationError>>;

const ALERT_COLUMNS: &str = "id, rule, subject, state, run_id, last_run_id, expected, actual, \
     raised_at, changed_by, changed_at, note, correcting_entry";

fn alert_row(row: &corebank_db::tokio_postgres::Row) -> Alert {
    Alert {
        id: row.get("id"),
        rule: row.get("rule"),
        subject: row.get("subject"),
        state: row.get("state"),
        run_id: row.get("run_id"),
        last_run_id: row.get("last_run_id"),
        expected: row.get("expected"),
        actual: row.get("actual"),
        raised_at: row.get("raised_at"),
        changed_by: row.get("changed_by"),
        changed_at: row.get("changed_at"),
        note: row.get("note"),
        correcting_entry: row.get("correcting_entry"),
        events: Vec::new(),
    }
}

async fn record_event(tx: &Transaction<'_>, alert: Uuid, event: &AlertEvent) -> TxResult<()> {
    tx.execute(
        "INSERT INTO reconciliation_alert_events (alert_id, state, changed_by, changed_at, \
         note, correcting_entry) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (alert_id, state) DO NOTHING",
        &[
            &alert,
            &event.state,
            &event.changed_by,
            &event.changed_at,
            &event.note,
            &event.correcting_entry,
        ],
    )
    .await?;
    Ok(())
}

/// Raises an alert for each break of run `run_id` that has none (in the run's transaction);
/// answers how many it raised.
pub(crate) async fn raise(
    tx: &Transaction<'_>,
    run_id: Uuid,
    results: &[ResultRow],
    at: DateTime<Utc>,
) -> TxResult<usize> {
    let mut raised = 0;
    for result in results.iter().filter(|result| !result.ok) {
        let latest = tx
            .query_opt(
                &format!(
                    "SELECT {ALERT_COLUMNS} FROM reconciliation_alerts WHERE rule = $1 \
                     AND subject = $2 ORDER BY raised_at DESC LIMIT 1"
                ),
                &[&result.rule, &result.subject],
            )
            .await?
            .as_ref()
            .map(alert_row);
        match latest {
            Some(alert) if alert.state == "open" || alert.state == "acknowledged" => {
                tx.execute(
                    "UPDATE reconciliation_alerts SET last_run_id = $2, actual = $3, \
                     expected = $4 WHERE id = $1",
                    &[&alert.id, &run_id, &result.actual, &result.expected],
                )
                .await?;
            }
            Some(alert)
                if alert.state == "accepted"
                    && alert.expected == result.expected
                    && alert.actual == result.actual => {}
            _ => {
                let id = crate::derived_id(&[
                    "alert",
                    &run_id.to_string(),
                    &result.rule,
                    &result.subject,
                ]);
                let by = format!("reconciliation run {run_id}");
                tx.execute(
                    &format!(
                        "INSERT INTO reconciliation_alerts ({ALERT_COLUMNS}) VALUES ($1, $2, $3, \
                         'open', $4, $4, $5, $6, $7, $8, $7, '', '') ON CONFLICT (id) DO NOTHING"
                    ),
                    &[
                        &id,
                        &result.rule,
                        &result.subject,
                        &run_id,
                        &result.expected,
                        &result.actual,
                        &at,
                        &by,
                    ],
                )
                .await?;
                let event = AlertEvent {
                    state: "open".to_owned(),
                    changed_by: by,
                    changed_at: at,
                    note: String::new(),
                    correcting_entry: String::new(),
                };
                record_event(tx, id, &event).await?;
                raised += 1;
            }
        }
    }
    Ok(raised)
}

async fn with_events(tx: &Transaction<'_>, mut alert: Alert) -> TxResult<Alert> {
    alert.events = tx
        .query(
            "SELECT state, changed_by, changed_at, note, correcting_entry \
             FROM reconciliation_alert_events WHERE alert_id = $1 ORDER BY changed_at, state",
            &[&alert.id],
        )
        .await?
        .iter()
        .map(|row| AlertEvent {
            state: row.get("state"),
            changed_by: row.get("changed_by"),
            changed_at: row.get("changed_at"),
            note: row.get("note"),
            correcting_entry: row.get("correcting_entry"),
        })
        .collect();
    Ok(alert)
}

/// A person's text: trimmed, at most `max` characters; `required` refuses it empty.
fn text(
    field: &'static str,
    value: &str,
    max: usize,
    required: bool,
) -> Result<String, MigrationError> {
    // (Whether an action needs a note or an entry is asked once its alert is known.)
    let trimmed = value.trim();
    if value.chars().count() > max {
        return Err(MigrationError::invalid(
            field,
            format!("at most {max} characters"),
        ));
    }
    if required && trimmed.is_empty() {
        return Err(MigrationError::invalid(field, "required for this action"));
    }
    Ok(trimmed.to_owned())
}

impl Migrations {
    /// The newest alerts, in `state` (empty: every state).
    pub async fn alerts(&self, state: &str, limit: u32) -> Result<Vec<Alert>, MigrationError> {
        if !["", "open", "acknowledged", "resolved", "accepted"].contains(&state) {
            return Err(MigrationError::invalid(
                "state",
                "open, acknowledged, resolved, accepted or empty",
            ));
        }
        let limit = if limit == 0 {
            50
        } else {
            i64::from(limit).min(LIST_MAX)
        };
        Ok(self
            .db()
            .run_tx("migration_alerts", |tx| {
                Box::pin(async move {
                    let rows = tx
                        .query(
                            &format!(
                                "SELECT {ALERT_COLUMNS} FROM reconciliation_alerts \
                                 WHERE $1 = '' OR state = $1 ORDER BY raised_at DESC, id LIMIT $2"
                            ),
                            &[&state, &limit],
                        )
                        .await?;
                    let mut alerts = Vec::with_capacity(rows.len());
                    for row in &rows {
                        alerts.push(with_events(&tx, alert_row(row)).await?);
                    }
                    Ok(alerts)
                })
            })
            .await?)
    }

    /// Moves an alert on: acknowledge (open), resolve with the correcting entry or accept
    /// with a note (open or acknowledged). The same action again answers it as it is.
    pub async fn change_alert(
        &self,
        alert_id: &str,
        action: &str,
        requested_by: &str,
        note: &str,
        correcting_entry: &str,
    ) -> Result<Alert, MigrationError> {
        let id = Uuid::parse_str(alert_id)
            .map_err(|_| MigrationError::invalid("alert_id", "not a UUID"))?;
        let action = AlertAction::parse(action)
            .ok_or_else(|| MigrationError::invalid("action", "acknowledge, resolve or accept"))?;
        let requested_by = text("requested_by", requested_by, 128, true)?;
        let note = text("note", note, 2_000, false)?;
        let entry = text("correcting_entry", correcting_entry, 128, false)?;
        let (requested_by, note, entry) = (&requested_by, &note, &entry);
        let alert = self
            .db()
            .run_tx("migration_alert_change", |tx| {
                Box::pin(async move {
                    let Some(alert) = tx
                        .query_opt(
                            &format!(
                                "SELECT {ALERT_COLUMNS} FROM reconciliation_alerts WHERE id = $1"
                            ),
                            &[&id],
                        )
                        .await?
                        .as_ref()
                        .map(alert_row)
                    else {
                        return Err(TxError::Abort(MigrationError::UnknownAlert {
                            id: id.to_string(),
                        }));
                    };
                    let to = action.state();
                    if alert.state == to {
                        return with_events(&tx, alert).await;
                    }
                    // What the action needs is asked for once the alert is known.
                    let missing = if action == AlertAction::Resolve && entry.is_empty() {
                        Some("correcting_entry")
                    } else if action != AlertAction::Acknowledge && note.is_empty() {
                        Some("note")
                    } else {
                        None
                    };
                    if let Some(field) = missing {
                        return Err(TxError::Abort(MigrationError::invalid(
                            field,
                            "required for this action",
                        )));
                    }
                    let allowed = match action {
                        AlertAction::Acknowledge => alert.state == "open",
                        AlertAction::Resolve | AlertAction::Accept => {
                            alert.state == "open" || alert.state == "acknowledged"
                        }
                    };
                    if !allowed {
                        return Err(TxError::Abort(MigrationError::AlertClosed {
                            id: id.to_string(),
                            state: alert.state.clone(),
                        }));
                    }
                    let now = Utc::now();
                    tx.execute(
                        "UPDATE reconciliation_alerts SET state = $2, changed_by = $3, \
                         changed_at = $4, note = $5, correcting_entry = $6 WHERE id = $1",
                        &[&id, &to, requested_by, &now, note, entry],
                    )
                    .await?;
                    let event = AlertEvent {
                        state: to.to_owned(),
                        changed_by: requested_by.clone(),
                        changed_at: now,
                        note: note.clone(),
                        correcting_entry: entry.clone(),
                    };
                    record_event(&tx, id, &event).await?;
                    let changed = Alert {
                        state: to.to_owned(),
                        changed_by: requested_by.clone(),
                        changed_at: now,
                        note: note.clone(),
                        correcting_entry: entry.clone(),
                        ..alert
                    };
                    with_events(&tx, changed).await
                })
            })
            .await?;
        tracing::info!(alert = %id, state = %alert.state, by = %requested_by, "reconciliation alert changed");
        Ok(alert)
    }
}
