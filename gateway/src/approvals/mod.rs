//! Four eyes on operator actions other than route changes (ADR 0012): saga
//! force-compensate and mark-resolved, and the release or refusal of a payment held by
//! screening, and the definition of a modern product. One operator proposes (stored in `gateway.approvals`, audited); another
//! operator, holding the kind's approve scope, approves or rejects; only an approval makes
//! the gateway call the owner (SagaAdmin, PaymentsReview, Deposits) with the approver as the asserted
//! operator and the proposer in `proposed_by`. Proposals expire
//! (`COREBANK_GATEWAY_APPROVAL_TTL_S`).
//!
//! - [`store`]: the SQL.
//! - [`admin`]: the `/admin/v1/approvals` routes and proposing.
//! - [`execute`]: the approved call to the owner.

pub mod admin;
pub mod execute;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_api::migration::v1::migrations_client::MigrationsClient;
use corebank_api::payments::v1::payments_review_client::PaymentsReviewClient;
use corebank_api::saga::v1::saga_admin_client::SagaAdminClient;
use corebank_db::Db;
use corebank_service::internal::assertion::AssertionSigner;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::principal::scope;

/// Proposals shown with one saga at most.
const TARGET_APPROVALS_MAX: i64 = 100;

/// What a proposal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalKind {
    /// SagaAdmin `ForceCompensate` on the saga `target`.
    SagaForceCompensate,
    /// SagaAdmin `MarkResolved` on the saga `target` (`parameters.resolution`).
    SagaMarkResolved,
    /// PaymentsReview `DecideScreening` releasing the payment `target`.
    PaymentScreeningRelease,
    /// PaymentsReview `DecideScreening` refusing the payment `target`.
    PaymentScreeningRefuse,
    /// Deposits `CreateProduct` of the modern product `target` (a product code): a new code
    /// or its next version, as `parameters` define it.
    ProductDefine,
    /// Migrations `StartMigration` of the product `target`'s legacy accounts
    /// (`parameters`: `migration_id`, `fraction`).
    MigrationStart,
    /// Migrations `ReturnAccount` of the account `target` (`parameters`: `migration_id`):
    /// moving one moved account back to the legacy core.
    MigrationRollback,
    /// Migrations `ResumeMigration` of the migration `target`: starting a paused or
    /// stopped migration's planned moves again.
    MigrationResume,
}

impl ApprovalKind {
    pub const ALL: [ApprovalKind; 8] = [
        ApprovalKind::SagaForceCompensate,
        ApprovalKind::SagaMarkResolved,
        ApprovalKind::PaymentScreeningRelease,
        ApprovalKind::PaymentScreeningRefuse,
        ApprovalKind::ProductDefine,
        ApprovalKind::MigrationStart,
        ApprovalKind::MigrationRollback,
        ApprovalKind::MigrationResume,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ApprovalKind::SagaForceCompensate => "saga_force_compensate",
            ApprovalKind::SagaMarkResolved => "saga_mark_resolved",
            ApprovalKind::PaymentScreeningRelease => "payment_screening_release",
            ApprovalKind::PaymentScreeningRefuse => "payment_screening_refuse",
            ApprovalKind::ProductDefine => "product_define",
            ApprovalKind::MigrationStart => "migration_start",
            ApprovalKind::MigrationRollback => "migration_rollback",
            ApprovalKind::MigrationResume => "migration_resume",
        }
    }

    pub fn parse(name: &str) -> Option<ApprovalKind> {
        ApprovalKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
    }

    /// The scope that approves or rejects a proposal of this kind. Proposing any kind
    /// needs `routes:write`, the admin surface's operator scope.
    pub fn approve_scope(self) -> &'static str {
        match self {
            ApprovalKind::SagaForceCompensate | ApprovalKind::SagaMarkResolved => {
                scope::SAGAS_APPROVE
            }
            ApprovalKind::PaymentScreeningRelease | ApprovalKind::PaymentScreeningRefuse => {
                scope::PAYMENTS_APPROVE
            }
            ApprovalKind::ProductDefine => scope::PRODUCTS_APPROVE,
            ApprovalKind::MigrationStart
            | ApprovalKind::MigrationRollback
            | ApprovalKind::MigrationResume => scope::MIGRATIONS_APPROVE,
        }
    }

    /// What `target` names, for the audit trail's resource.
    fn target_kind(self) -> &'static str {
        match self {
            ApprovalKind::SagaForceCompensate | ApprovalKind::SagaMarkResolved => "saga",
            ApprovalKind::PaymentScreeningRelease | ApprovalKind::PaymentScreeningRefuse => {
                "payment"
            }
            ApprovalKind::ProductDefine | ApprovalKind::MigrationStart => "product",
            ApprovalKind::MigrationRollback => "account",
            ApprovalKind::MigrationResume => "migration",
        }
    }

    /// Whether `target` names what this kind acts on: a UUID for a saga or a payment, a
    /// product code for a product.
    fn is_target(self, target: &str) -> bool {
        match self {
            ApprovalKind::ProductDefine | ApprovalKind::MigrationStart => {
                crate::products::definition::is_code(target)
            }
            ApprovalKind::SagaForceCompensate
            | ApprovalKind::SagaMarkResolved
            | ApprovalKind::PaymentScreeningRelease
            | ApprovalKind::PaymentScreeningRefuse
            | ApprovalKind::MigrationRollback
            | ApprovalKind::MigrationResume => Uuid::parse_str(target).is_ok(),
        }
    }
}

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for a second operator.
    Pending,
    /// Approved: the owner was called (`outcome` says how it answered; empty while the call
    /// is in flight, or when the gateway stopped before the answer was recorded).
    Approved,
    Rejected,
    /// Nobody decided within `COREBANK_GATEWAY_APPROVAL_TTL_S`.
    Expired,
}

impl ApprovalStatus {
    pub const ALL: [ApprovalStatus; 4] = [
        ApprovalStatus::Pending,
        ApprovalStatus::Approved,
        ApprovalStatus::Rejected,
        ApprovalStatus::Expired,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::Expired => "expired",
        }
    }

    pub fn parse(name: &str) -> Option<ApprovalStatus> {
        ApprovalStatus::ALL
            .into_iter()
            .find(|status| status.name() == name)
    }
}

/// One proposal, as stored and as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Approval {
    #[schema(value_type = String)]
    pub id: Uuid,
    pub kind: ApprovalKind,
    /// The saga's or the payment's id, or the product's code.
    pub target: String,
    /// The kind's parameters: `{"resolution"}` for `saga_mark_resolved`, the product's
    /// definition for `product_define`, `{"migration_id", "fraction"}` for
    /// `migration_start`, `{"migration_id"}` for `migration_rollback`, else `{}`.
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    /// The proposer's reason.
    pub reason: String,
    pub proposed_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub proposed_at: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: DateTime<Utc>,
    pub status: ApprovalStatus,
    pub decided_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_reason: Option<String>,
    /// The owner's answer to the approved call: `done`, or its stable refusal code.
    pub outcome: Option<String>,
}

impl Approval {
    /// As it stands at `now`: a pending proposal past its expiry is expired.
    pub fn as_of(mut self, now: DateTime<Utc>) -> Approval {
        if self.status == ApprovalStatus::Pending && self.expires_at <= now {
            self.status = ApprovalStatus::Expired;
        }
        self
    }

    fn resource(&self) -> String {
        format!("approval:{}", self.id)
    }
}

/// The approvals' shared state: the store, how long proposals live, and the owners'
/// clients the approved calls go to.
#[derive(Debug, Clone)]
pub struct Approvals {
    db: Db,
    ttl: Duration,
    sagas: SagaAdminClient<Channel>,
    review: PaymentsReviewClient<Channel>,
    /// The modern side's Deposits, for approved product definitions.
    products: DepositsClient<Channel>,
    /// The migration component, for approved migrations.
    migrations: MigrationsClient<Channel>,
    /// Signs the approver for each call; `None` with plain-text internal calls.
    signer: Option<Arc<AssertionSigner>>,
}

impl Approvals {
    /// The gateway's database (the audit trail, the proposals).
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// The proposals on `target` (a saga's or a payment's id) as they stand now, oldest
    /// first: the four-eyes side of its history (who proposed, who decided).
    pub async fn on_target(&self, target: &str) -> Result<Vec<Approval>, crate::error::ApiError> {
        let listed = self
            .db
            .run_tx("gateway_approval_on_target", |tx| {
                Box::pin(async move {
                    Ok::<_, corebank_db::TxError<crate::error::ApiError>>(
                        store::for_target(&tx, target, TARGET_APPROVALS_MAX).await?,
                    )
                })
            })
            .await?;
        let now = Utc::now();
        Ok(listed.into_iter().map(|a| a.as_of(now)).collect())
    }

    pub fn new(
        db: Db,
        ttl: Duration,
        sagas: SagaAdminClient<Channel>,
        review: PaymentsReviewClient<Channel>,
        products: DepositsClient<Channel>,
        migrations: MigrationsClient<Channel>,
        signer: Option<Arc<AssertionSigner>>,
    ) -> Arc<Approvals> {
        Arc::new(Approvals {
            db,
            ttl,
            sagas,
            review,
            products,
            migrations,
            signer,
        })
    }
}
