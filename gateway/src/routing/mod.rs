//! Routing: route rules per (product, operation), the decision which side (legacy or modern)
//! is primary for a request, versioned route tables hot-reloaded by every replica, and
//! their four-eyes admin API (`/admin/v1/routes`).
//!
//! Every change is a full snapshot (rules and ownership) stored as a new version; one row
//! (`route_active`) names the active version, and every replica polls it (no
//! LISTEN/NOTIFY). A change is proposed by its author against the version it was based on
//! and approved by a different operator with `routes:approve`; a rollback to an earlier
//! version is such a proposal too, whose content is that version's snapshot, so it needs a
//! second pair of eyes like any other change. Only the automatic rollback (the system
//! falling back to legacy when the modern side misbehaves) writes a version without
//! approval, and it only ever moves traffic back to the legacy core. A proposal whose base
//! version is no longer active when it would activate becomes stale: nothing ever silently
//! overwrites a newer version.

mod admin;
mod bodies;
mod store;
mod table;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use corebank_db::{Db, Transaction, TxError};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::ApiError;
use crate::operator::Actor;

pub use store::{OwnershipChange, Proposal, VersionMeta};
pub use table::{
    ANY_PRODUCT, CANARY_BUCKETS, Canary, Decision, InvalidRoute, OPERATIONS, Reason, RouteRule,
    RouteTable, Side, canary_bucket, validate_rules,
};

/// The actor of automatic rollbacks in versions and the audit trail.
pub const AUTOMATIC_ROLLBACK_ACTOR: &str = "system:auto-rollback";
/// The actor that activates scheduled proposals (their approver is recorded on the version).
pub const SCHEDULER_ACTOR: &str = "system:route-scheduler";
/// Scheduled proposals activated per poll at most; the rest wait for the next poll.
const DUE_PROPOSALS_PER_POLL_MAX: i64 = 16;

/// The routing of this gateway replica: the active route table (swapped whole on reload)
/// and the database it comes from. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Db,
    current: RwLock<Arc<RouteTable>>,
}

fn set_version_gauge(version: i64) {
    metrics::gauge!("corebank_gateway_route_version")
        .set(f64::from(u32::try_from(version).unwrap_or(u32::MAX)));
}

impl Router {
    /// Loads the active version. `db`'s search path must be the gateway's schema.
    pub async fn load(db: Db) -> Result<Router, ApiError> {
        let table = db
            .run_tx("gateway_route_load", |tx| {
                Box::pin(async move {
                    let (version, _) = store::active(&tx, false).await?;
                    store::table_of(&tx, version).await
                })
            })
            .await?;
        set_version_gauge(table.version());
        tracing::info!(
            route.version = table.version(),
            route.rules = table.rules().len(),
            "route table loaded"
        );
        Ok(Router {
            inner: Arc::new(Inner {
                db,
                current: RwLock::new(Arc::new(table)),
            }),
        })
    }

    /// The active route table of this replica.
    pub fn table(&self) -> Arc<RouteTable> {
        // A poisoned lock still holds a whole table: the write is a single assignment.
        match self.inner.current.read() {
            Ok(table) => Arc::clone(&table),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Reloads the route table when the active version changed; answers the version this
    /// replica now routes with. Versions only grow (a rollback is a new version), so an
    /// older table never replaces a newer one.
    pub async fn refresh(&self) -> Result<i64, ApiError> {
        let known = self.table().version();
        let loaded = self
            .inner
            .db
            .run_tx("gateway_route_poll", |tx| {
                Box::pin(async move {
                    let (version, _) = store::active(&tx, false).await?;
                    if version == known {
                        return Ok(None);
                    }
                    store::table_of(&tx, version).await.map(Some)
                })
            })
            .await?;
        let Some(table) = loaded else {
            return Ok(known);
        };
        let version = table.version();
        let mut current = match self.inner.current.write() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        if version > current.version() {
            tracing::info!(
                route.version = version,
                route.previous_version = current.version(),
                "route table reloaded"
            );
            *current = Arc::new(table);
            metrics::counter!("corebank_gateway_route_reloads_total").increment(1);
            set_version_gauge(version);
        }
        Ok(current.version())
    }

    /// Polls the active version every `poll` until `shutdown`: reloads the table when it
    /// changed, and activates approved proposals whose scheduled time has come (whichever
    /// replica gets there first; the others find them active already).
    pub fn spawn_poller(&self, poll: Duration, shutdown: CancellationToken) {
        let router = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(poll);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = interval.tick() => {}
                }
                if let Err(error) = router.activate_due_proposals().await {
                    tracing::warn!(error = %error, "scheduled route proposals could not be activated");
                }
                if let Err(error) = router.refresh().await {
                    tracing::warn!(error = %error, "route table could not be reloaded");
                }
            }
        });
    }

    /// Activates every scheduled proposal that is due (at most a bounded number per call).
    pub async fn activate_due_proposals(&self) -> Result<(), ApiError> {
        let now = Utc::now();
        let due = self
            .inner
            .db
            .run_tx("gateway_route_due", |tx| {
                Box::pin(
                    async move { store::due_proposals(&tx, now, DUE_PROPOSALS_PER_POLL_MAX).await },
                )
            })
            .await?;
        for id in due {
            self.activate_scheduled(id).await?;
        }
        Ok(())
    }

    async fn activate_scheduled(&self, id: Uuid) -> Result<(), ApiError> {
        let actor = Actor::system(SCHEDULER_ACTOR);
        let actor = &actor;
        self.inner
            .db
            .run_tx("gateway_route_activate_scheduled", |tx| {
                Box::pin(async move {
                    let Some(proposal) = store::proposal_for_update(&tx, id).await? else {
                        return Ok(());
                    };
                    if proposal.status != "scheduled" {
                        // Another replica activated it (or it was rejected) meanwhile.
                        return Ok(());
                    }
                    let now = Utc::now();
                    let approved_by = proposal.decided_by.clone().unwrap_or_default();
                    let activated = activate_proposal(&tx, &proposal, &approved_by, now).await?;
                    let resource = format!("route_proposal:{id}");
                    match activated {
                        Some(version) => {
                            actor
                                .audit(
                                    &tx,
                                    "routes.activate",
                                    &resource,
                                    "active",
                                    serde_json::json!({
                                        "version": version,
                                        "base_version": proposal.base_version,
                                        "approved_by": approved_by,
                                        "activate_at": proposal.activate_at,
                                    }),
                                )
                                .await
                        }
                        None => {
                            actor
                                .audit(
                                    &tx,
                                    "routes.activate",
                                    &resource,
                                    "stale_proposal",
                                    serde_json::json!({ "base_version": proposal.base_version }),
                                )
                                .await
                        }
                    }
                })
            })
            .await?;
        Ok(())
    }

    /// The system falls back to legacy for (product, operation): a new version where that
    /// rule's primary is legacy for every account (its canary removed; explicit ownership
    /// untouched), without approval, audited with `reason`. When only a `*` rule applies, a
    /// rule of the product's own is added so other products keep their routing. Nothing to
    /// change (already legacy, or no rule at all) writes no version, is audited as
    /// `unchanged`, and answers the active version.
    pub async fn automatic_rollback(
        &self,
        product: &str,
        operation: &str,
        reason: &str,
    ) -> Result<i64, ApiError> {
        if product.is_empty() {
            return Err(ApiError::invalid("product: must not be empty"));
        }
        if !OPERATIONS.contains(&operation) {
            return Err(ApiError::invalid(format!(
                "operation: unknown operation {operation:?}"
            )));
        }
        let actor = Actor::system(AUTOMATIC_ROLLBACK_ACTOR);
        let actor = &actor;
        let version = self
            .inner
            .db
            .run_tx("gateway_route_automatic_rollback", |tx| {
                Box::pin(async move {
                    let (active, _) = store::active(&tx, true).await?;
                    let mut rules = store::rules_of(&tx, active).await?;
                    let exact = rules
                        .iter()
                        .position(|rule| rule.product == product && rule.operation == operation);
                    let wildcard = rules
                        .iter()
                        .find(|rule| rule.product == ANY_PRODUCT && rule.operation == operation)
                        .cloned();
                    let is_legacy = |rule: &RouteRule| {
                        rule.default_side == Side::Legacy && rule.canary.is_none()
                    };
                    let before = match (exact, wildcard) {
                        (Some(position), _) => rules.get_mut(position).and_then(|rule| {
                            (!is_legacy(rule)).then(|| {
                                let before = rule.clone();
                                rule.default_side = Side::Legacy;
                                rule.canary = None;
                                before
                            })
                        }),
                        (None, Some(wildcard)) if !is_legacy(&wildcard) => {
                            rules.push(RouteRule {
                                product: product.to_owned(),
                                operation: operation.to_owned(),
                                default_side: Side::Legacy,
                                canary: None,
                                salt: wildcard.salt.clone(),
                                shadow: wildcard.shadow,
                            });
                            Some(wildcard)
                        }
                        (None, _) => None,
                    };
                    let resource = format!("route_rule:{product}/{operation}");
                    let Some(before) = before else {
                        actor
                            .audit(
                                &tx,
                                "routes.automatic_rollback",
                                &resource,
                                "unchanged",
                                serde_json::json!({ "reason": reason, "version": active }),
                            )
                            .await?;
                        return Ok(active);
                    };
                    let meta = store::NewVersion {
                        kind: "automatic_rollback",
                        proposal_id: None,
                        proposed_by: AUTOMATIC_ROLLBACK_ACTOR,
                        approved_by: AUTOMATIC_ROLLBACK_ACTOR,
                        reason,
                        at: Utc::now(),
                    };
                    let Some(version) =
                        store::activate(&tx, active, &store::Content::Rules { rules }, &meta)
                            .await?
                    else {
                        return Err(TxError::Abort(ApiError::internal(
                            "the active route version changed under its row lock",
                        )));
                    };
                    actor
                        .audit(
                            &tx,
                            "routes.automatic_rollback",
                            &resource,
                            "active",
                            serde_json::json!({
                                "reason": reason,
                                "version": version,
                                "previous_version": active,
                                "rule_before": before,
                            }),
                        )
                        .await?;
                    Ok(version)
                })
            })
            .await?;
        tracing::warn!(
            route.product = product,
            route.operation = operation,
            route.version = version,
            reason,
            "automatic rollback to legacy"
        );
        self.refresh().await?;
        Ok(version)
    }

    /// The `/admin/v1/routes` endpoints, with this router as their state.
    pub fn admin_router(&self) -> axum::Router {
        admin::routes(self.clone())
    }
}

/// Activates an approved proposal on top of its base version: answers the new version, or
/// `None` after marking the proposal stale when its base is no longer active.
pub(crate) async fn activate_proposal(
    tx: &Transaction<'_>,
    proposal: &Proposal,
    approved_by: &str,
    now: chrono::DateTime<Utc>,
) -> Result<Option<i64>, TxError<ApiError>> {
    let meta = store::NewVersion {
        kind: &proposal.kind,
        proposal_id: Some(proposal.id),
        proposed_by: &proposal.author,
        approved_by,
        reason: &proposal.reason,
        at: now,
    };
    let activated = store::activate(tx, proposal.base_version, &proposal.content()?, &meta).await?;
    match activated {
        Some(version) => {
            store::set_status(tx, proposal.id, "active", None, Some((version, now))).await?;
        }
        None => store::set_status(tx, proposal.id, "stale", None, None).await?,
    }
    Ok(activated)
}
