//! The routing's SQL (`gateway.route_versions`, `route_rules`, `route_ownership`,
//! `route_active`, `route_proposals`). Every function runs inside the caller's `run_tx`
//! transaction; none has a side effect outside it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use corebank_db::{Transaction, TxError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::table::{Canary, RouteRule, RouteTable, Side};
use crate::error::ApiError;

pub(crate) type TxResult<T> = Result<T, TxError<ApiError>>;

/// A row that breaks the schema's invariants: refused on the read path too.
fn corrupt(what: impl std::fmt::Display) -> TxError<ApiError> {
    TxError::Abort(ApiError::internal(format!(
        "route table data is inconsistent: {what}"
    )))
}

/// One entry of a proposal's ownership changes: `side` null removes the explicit ownership,
/// so the rules decide for that account again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnershipChange {
    pub account_id: String,
    pub side: Option<Side>,
}

/// The active version and when it became active.
pub(crate) async fn active(tx: &Transaction<'_>, lock: bool) -> TxResult<(i64, DateTime<Utc>)> {
    let sql = if lock {
        "SELECT version, activated_at FROM route_active WHERE id = 1 FOR UPDATE"
    } else {
        "SELECT version, activated_at FROM route_active WHERE id = 1"
    };
    let row = tx
        .query_opt(sql, &[])
        .await?
        .ok_or_else(|| corrupt("route_active has no row (is migration 0009 applied?)"))?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

pub(crate) async fn rules_of(tx: &Transaction<'_>, version: i64) -> TxResult<Vec<RouteRule>> {
    let rows = tx
        .query(
            "SELECT product, operation, default_side, canary_side, canary_percent, salt, shadow \
             FROM route_rules WHERE version = $1 ORDER BY product, operation",
            &[&version],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let default_side: String = row.try_get("default_side")?;
            let canary_side: Option<String> = row.try_get("canary_side")?;
            let canary_percent: Option<i64> = row.try_get("canary_percent")?;
            let default_side = Side::parse(&default_side)
                .ok_or_else(|| corrupt(format!("default_side {default_side:?}")))?;
            let canary = match (canary_side, canary_percent) {
                (None, None) => None,
                (Some(side), Some(percent)) => Some(Canary {
                    side: Side::parse(&side)
                        .ok_or_else(|| corrupt(format!("canary_side {side:?}")))?,
                    percent: u8::try_from(percent)
                        .map_err(|_| corrupt(format!("canary_percent {percent}")))?,
                }),
                _ => return Err(corrupt("a canary side without a percentage")),
            };
            Ok(RouteRule {
                product: row.try_get("product")?,
                operation: row.try_get("operation")?,
                default_side,
                canary,
                salt: row.try_get("salt")?,
                shadow: row.try_get("shadow")?,
            })
        })
        .collect()
}

pub(crate) async fn ownership_of(
    tx: &Transaction<'_>,
    version: i64,
) -> TxResult<HashMap<String, Side>> {
    let rows = tx
        .query(
            "SELECT account_id, side FROM route_ownership WHERE version = $1",
            &[&version],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let side: String = row.try_get(1)?;
            let side =
                Side::parse(&side).ok_or_else(|| corrupt(format!("ownership side {side:?}")))?;
            Ok((row.try_get(0)?, side))
        })
        .collect()
}

pub(crate) async fn ownership_count(tx: &Transaction<'_>, version: i64) -> TxResult<i64> {
    Ok(tx
        .query_one(
            "SELECT count(*) FROM route_ownership WHERE version = $1",
            &[&version],
        )
        .await?
        .try_get(0)?)
}

/// The full table of `version`, checked again as it is read.
pub(crate) async fn table_of(tx: &Transaction<'_>, version: i64) -> TxResult<RouteTable> {
    let rules = rules_of(tx, version).await?;
    let ownership = ownership_of(tx, version).await?;
    RouteTable::new(version, rules, ownership).map_err(corrupt)
}

pub(crate) async fn version_exists(tx: &Transaction<'_>, version: i64) -> TxResult<bool> {
    Ok(tx
        .query_opt(
            "SELECT version FROM route_versions WHERE version = $1",
            &[&version],
        )
        .await?
        .is_some())
}

/// Who and why of a version, as stored in `route_versions`.
#[derive(Debug, Clone, Serialize)]
pub struct VersionMeta {
    pub version: i64,
    pub based_on: Option<i64>,
    /// `initial`, `change`, `rollback` or `automatic_rollback`.
    pub kind: String,
    pub proposal_id: Option<Uuid>,
    pub rolled_back_to: Option<i64>,
    pub proposed_by: String,
    pub approved_by: String,
    pub reason: String,
    pub activated_at: DateTime<Utc>,
}

const VERSION_COLUMNS: &str = "version, based_on, kind, proposal_id, rolled_back_to, \
                               proposed_by, approved_by, reason, activated_at";

fn version_meta(row: &corebank_db::tokio_postgres::Row) -> TxResult<VersionMeta> {
    Ok(VersionMeta {
        version: row.try_get("version")?,
        based_on: row.try_get("based_on")?,
        kind: row.try_get("kind")?,
        proposal_id: row.try_get("proposal_id")?,
        rolled_back_to: row.try_get("rolled_back_to")?,
        proposed_by: row.try_get("proposed_by")?,
        approved_by: row.try_get("approved_by")?,
        reason: row.try_get("reason")?,
        activated_at: row.try_get("activated_at")?,
    })
}

pub(crate) async fn version_meta_of(
    tx: &Transaction<'_>,
    version: i64,
) -> TxResult<Option<VersionMeta>> {
    let sql = format!("SELECT {VERSION_COLUMNS} FROM route_versions WHERE version = $1");
    tx.query_opt(&sql, &[&version])
        .await?
        .as_ref()
        .map(version_meta)
        .transpose()
}

/// Versions newest first, at most `limit`, older than `before` when given.
pub(crate) async fn versions(
    tx: &Transaction<'_>,
    before: Option<i64>,
    limit: i64,
) -> TxResult<Vec<VersionMeta>> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM route_versions \
         WHERE ($1::INT8 IS NULL OR version < $1) ORDER BY version DESC LIMIT $2"
    );
    tx.query(&sql, &[&before, &limit])
        .await?
        .iter()
        .map(version_meta)
        .collect()
}

/// What a new version contains.
#[derive(Debug, Clone)]
pub(crate) enum Content {
    /// A proposal: its complete rule set (none: the base's rules) and ownership changes
    /// applied to the base's ownership.
    Change {
        rules: Option<Vec<RouteRule>>,
        ownership: Vec<OwnershipChange>,
    },
    /// The snapshot (rules and ownership) of an earlier version.
    Rollback { to_version: i64 },
    /// New rules; the base's ownership unchanged.
    Rules { rules: Vec<RouteRule> },
}

/// Who and why of a version about to be written.
#[derive(Debug, Clone)]
pub(crate) struct NewVersion<'a> {
    pub kind: &'a str,
    pub proposal_id: Option<Uuid>,
    pub proposed_by: &'a str,
    pub approved_by: &'a str,
    pub reason: &'a str,
    pub at: DateTime<Utc>,
}

/// Writes a new version with `content` on top of `base` and makes it active, unless `base`
/// is no longer the active version: then nothing is written and `None` comes back (the
/// caller marks its proposal stale). A newer version is never overwritten.
pub(crate) async fn activate(
    tx: &Transaction<'_>,
    base: i64,
    content: &Content,
    meta: &NewVersion<'_>,
) -> TxResult<Option<i64>> {
    let (active_version, _) = active(tx, true).await?;
    if active_version != base {
        return Ok(None);
    }
    let version: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM route_versions",
            &[],
        )
        .await?
        .try_get(0)?;
    let rolled_back_to = match content {
        Content::Rollback { to_version } => Some(*to_version),
        Content::Change { .. } | Content::Rules { .. } => None,
    };
    let rules = match content {
        Content::Change {
            rules: Some(rules), ..
        }
        | Content::Rules { rules } => rules.clone(),
        Content::Change { rules: None, .. } => rules_of(tx, base).await?,
        Content::Rollback { to_version } => rules_of(tx, *to_version).await?,
    };
    // Checked again on the write path: nothing invalid becomes active.
    super::table::validate_rules(&rules).map_err(corrupt)?;
    tx.execute(
        "INSERT INTO route_versions (version, based_on, kind, proposal_id, rolled_back_to, \
         proposed_by, approved_by, reason, activated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &version,
            &base,
            &meta.kind,
            &meta.proposal_id,
            &rolled_back_to,
            &meta.proposed_by,
            &meta.approved_by,
            &meta.reason,
            &meta.at,
        ],
    )
    .await?;
    for rule in &rules {
        let canary_side = rule.canary.map(|canary| canary.side.as_str());
        let canary_percent = rule.canary.map(|canary| i64::from(canary.percent));
        tx.execute(
            "INSERT INTO route_rules (version, product, operation, default_side, canary_side, \
             canary_percent, salt, shadow) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &version,
                &rule.product,
                &rule.operation,
                &rule.default_side.as_str(),
                &canary_side,
                &canary_percent,
                &rule.salt,
                &rule.shadow,
            ],
        )
        .await?;
    }
    match content {
        Content::Change { ownership, .. } => {
            let changed: Vec<&str> = ownership
                .iter()
                .map(|change| change.account_id.as_str())
                .collect();
            tx.execute(
                "INSERT INTO route_ownership (version, account_id, side) \
                 SELECT $1, account_id, side FROM route_ownership \
                 WHERE version = $2 AND NOT (account_id = ANY($3))",
                &[&version, &base, &changed],
            )
            .await?;
            let (accounts, sides): (Vec<&str>, Vec<&str>) = ownership
                .iter()
                .filter_map(|change| {
                    change
                        .side
                        .map(|side| (change.account_id.as_str(), side.as_str()))
                })
                .unzip();
            tx.execute(
                "INSERT INTO route_ownership (version, account_id, side) \
                 SELECT $1, account_id, side FROM UNNEST($2::TEXT[], $3::TEXT[]) \
                 AS owned (account_id, side)",
                &[&version, &accounts, &sides],
            )
            .await?;
        }
        Content::Rollback { to_version } => {
            copy_ownership(tx, *to_version, version).await?;
        }
        Content::Rules { .. } => copy_ownership(tx, base, version).await?,
    }
    tx.execute(
        "UPDATE route_active SET version = $1, activated_at = $2 WHERE id = 1",
        &[&version, &meta.at],
    )
    .await?;
    Ok(Some(version))
}

async fn copy_ownership(tx: &Transaction<'_>, from: i64, to: i64) -> TxResult<()> {
    tx.execute(
        "INSERT INTO route_ownership (version, account_id, side) \
         SELECT $1, account_id, side FROM route_ownership WHERE version = $2",
        &[&to, &from],
    )
    .await?;
    Ok(())
}

/// A four-eyes proposal, as stored and as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Proposal {
    pub id: Uuid,
    /// `change` or `rollback`.
    pub kind: String,
    pub base_version: i64,
    /// The complete rule set proposed; null keeps the base's rules.
    pub rules: Option<Vec<RouteRule>>,
    pub ownership: Vec<OwnershipChange>,
    pub rollback_to: Option<i64>,
    pub activate_at: Option<DateTime<Utc>>,
    pub reason: String,
    pub author: String,
    pub created_at: DateTime<Utc>,
    /// `proposed`, `scheduled`, `active`, `rejected` or `stale`.
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_reason: Option<String>,
    pub activated_version: Option<i64>,
    pub activated_at: Option<DateTime<Utc>>,
}

impl Proposal {
    /// What activating this proposal writes.
    pub(crate) fn content(&self) -> TxResult<Content> {
        match (self.kind.as_str(), self.rollback_to) {
            ("rollback", Some(to_version)) => Ok(Content::Rollback { to_version }),
            ("change", None) => Ok(Content::Change {
                rules: self.rules.clone(),
                ownership: self.ownership.clone(),
            }),
            (kind, _) => Err(corrupt(format!("proposal {} of kind {kind:?}", self.id))),
        }
    }
}

const PROPOSAL_COLUMNS: &str = "id, kind, base_version, rules, ownership, rollback_to, \
                                activate_at, reason, author, created_at, status, decided_by, \
                                decided_at, decision_reason, activated_version, activated_at";

fn proposal(row: &corebank_db::tokio_postgres::Row) -> TxResult<Proposal> {
    let rules: Option<serde_json::Value> = row.try_get("rules")?;
    let rules = rules
        .map(serde_json::from_value::<Vec<RouteRule>>)
        .transpose()
        .map_err(|error| corrupt(format!("proposal rules: {error}")))?;
    let ownership: serde_json::Value = row.try_get("ownership")?;
    let ownership = serde_json::from_value::<Vec<OwnershipChange>>(ownership)
        .map_err(|error| corrupt(format!("proposal ownership: {error}")))?;
    Ok(Proposal {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        base_version: row.try_get("base_version")?,
        rules,
        ownership,
        rollback_to: row.try_get("rollback_to")?,
        activate_at: row.try_get("activate_at")?,
        reason: row.try_get("reason")?,
        author: row.try_get("author")?,
        created_at: row.try_get("created_at")?,
        status: row.try_get("status")?,
        decided_by: row.try_get("decided_by")?,
        decided_at: row.try_get("decided_at")?,
        decision_reason: row.try_get("decision_reason")?,
        activated_version: row.try_get("activated_version")?,
        activated_at: row.try_get("activated_at")?,
    })
}

pub(crate) async fn insert_proposal(tx: &Transaction<'_>, p: &Proposal) -> TxResult<()> {
    let rules = p
        .rules
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(ApiError::internal)
        .map_err(TxError::Abort)?;
    let ownership = serde_json::to_value(&p.ownership)
        .map_err(ApiError::internal)
        .map_err(TxError::Abort)?;
    tx.execute(
        "INSERT INTO route_proposals (id, kind, base_version, rules, ownership, rollback_to, \
         activate_at, reason, author, created_at, status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &p.id,
            &p.kind,
            &p.base_version,
            &rules,
            &ownership,
            &p.rollback_to,
            &p.activate_at,
            &p.reason,
            &p.author,
            &p.created_at,
            &p.status,
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn proposal_for_update(
    tx: &Transaction<'_>,
    id: Uuid,
) -> TxResult<Option<Proposal>> {
    let sql = format!("SELECT {PROPOSAL_COLUMNS} FROM route_proposals WHERE id = $1 FOR UPDATE");
    tx.query_opt(&sql, &[&id])
        .await?
        .as_ref()
        .map(proposal)
        .transpose()
}

/// Proposals newest first, at most `limit`, of one status when given.
pub(crate) async fn proposals(
    tx: &Transaction<'_>,
    status: Option<&str>,
    limit: i64,
) -> TxResult<Vec<Proposal>> {
    let sql = format!(
        "SELECT {PROPOSAL_COLUMNS} FROM route_proposals \
         WHERE ($1::TEXT IS NULL OR status = $1) ORDER BY created_at DESC, id LIMIT $2"
    );
    tx.query(&sql, &[&status, &limit])
        .await?
        .iter()
        .map(proposal)
        .collect()
}

/// Ids of scheduled proposals due at `now`, earliest first.
pub(crate) async fn due_proposals(
    tx: &Transaction<'_>,
    now: DateTime<Utc>,
    limit: i64,
) -> TxResult<Vec<Uuid>> {
    let rows = tx
        .query(
            "SELECT id FROM route_proposals WHERE status = 'scheduled' AND activate_at <= $1 \
             ORDER BY activate_at, id LIMIT $2",
            &[&now, &limit],
        )
        .await?;
    rows.iter()
        .map(|row| row.try_get(0).map_err(TxError::from))
        .collect()
}

/// Records a proposal's new status.
pub(crate) async fn set_status(
    tx: &Transaction<'_>,
    id: Uuid,
    status: &str,
    decided: Option<(&str, DateTime<Utc>, Option<&str>)>,
    activated: Option<(i64, DateTime<Utc>)>,
) -> TxResult<()> {
    let (decided_by, decided_at, decision_reason) = match decided {
        Some((by, at, reason)) => (Some(by), Some(at), reason),
        None => (None, None, None),
    };
    let (activated_version, activated_at) = match activated {
        Some((version, at)) => (Some(version), Some(at)),
        None => (None, None),
    };
    tx.execute(
        "UPDATE route_proposals SET status = $2, \
         decided_by = COALESCE($3, decided_by), decided_at = COALESCE($4, decided_at), \
         decision_reason = COALESCE($5, decision_reason), \
         activated_version = COALESCE($6, activated_version), \
         activated_at = COALESCE($7, activated_at) WHERE id = $1",
        &[
            &id,
            &status,
            &decided_by,
            &decided_at,
            &decision_reason,
            &activated_version,
            &activated_at,
        ],
    )
    .await?;
    Ok(())
}
