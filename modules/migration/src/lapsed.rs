//! Reconciliation rule `expired_holds_hold_nothing` (issue 15): no hold whose time ran out
//! still holds funds.
//!
//! On the modern side a hold is a pending ledger entry with a timeout: the ledger voids it
//! when the time passes (its expiry loop) and deposits then marks the hold expired (its
//! job). Two processes, so the rule checks their result: every hold deposits still counts
//! as held although it lapsed more than [`GRACE`] ago is read back from the ledger, and the
//! rule breaks on each the ledger still holds. Those the ledger has let go but deposits has
//! not yet marked are evidence (a late job), not a break: they hold nothing.
//!
//! The legacy core has no such process to check: it counts a lock only through its last day
//! (`TO.DATE`), evaluated at every read of the account, so an expired lock holds nothing by
//! the core's own rule (the mock core's tests cover it).

use std::time::Duration;

use corebank_api::deposits::v1 as dpb;
use serde_json::json;

use crate::MigrationError;
use crate::app::Migrations;
use crate::reconcile::ResultRow;

/// The rule's name.
pub const LAPSED_RULE: &str = "expired_holds_hold_nothing";

/// How long after its time a hold may still be held before it is a break: the ledger's
/// expiry loop and the deposits job each run well within it.
pub const GRACE: Duration = Duration::from_secs(300);

/// The lapsed holds one run reads at most (the longest lapsed first).
const READ_MAX: u32 = 1_000;

impl Migrations {
    /// The rule's result for the modern side.
    pub(crate) async fn lapsed_result(&self) -> Result<ResultRow, MigrationError> {
        let lapsed = self
            .peers()
            .import
            .clone()
            .list_lapsed_holds(dpb::ListLapsedHoldsRequest {
                grace_seconds: u32::try_from(GRACE.as_secs()).unwrap_or(u32::MAX),
                limit: READ_MAX,
            })
            .await
            .map_err(|status| MigrationError::unavailable("modern deposits", &status))?
            .into_inner();
        let (holding, late): (Vec<_>, Vec<_>) = lapsed
            .holds
            .iter()
            .partition(|hold| hold.ledger_status == "held");
        let shown = |holds: &[&dpb::LapsedHold]| {
            holds
                .iter()
                .take(20)
                .map(|hold| {
                    json!({
                        "hold_id": hold.hold_id,
                        "account_id": hold.account_id,
                        "amount": hold.amount,
                        "currency": hold.currency,
                        "expires_at": hold.expires_at,
                        "ledger_status": hold.ledger_status,
                    })
                })
                .collect::<Vec<_>>()
        };
        Ok(ResultRow {
            rule: LAPSED_RULE.to_owned(),
            subject: "modern".to_owned(),
            ok: holding.is_empty(),
            expected: format!(
                "no hold lapsed more than {} s ago still held on the ledger",
                GRACE.as_secs()
            ),
            actual: format!(
                "{} still held on the ledger, {} let go there but not yet marked expired",
                holding.len(),
                late.len()
            ),
            evidence: json!({
                "still_held": shown(&holding),
                "not_yet_marked": shown(&late),
                "read_at": lapsed.read_at,
                "read_max": READ_MAX,
                "via": "corebank.deposits.v1.DepositsMigration/ListLapsedHolds (deposits.holds, then Ledger/GetEntry per hold)",
            }),
        })
    }
}
