//! The outbound saga's screening: the rules that refuse outright (amount, velocity,
//! blocklist), the sanctions lists that hold a payment for review, and the review step a held
//! payment waits in until two operators decide (ADR 0011).

use super::steps::{db_error, field, record_outcome};
use corebank_db::Transaction;
use corebank_saga::DbFuture;

use super::*;

pub(super) fn screen_step<'a>(
    tx: &'a Transaction<'a>,
    context: &'a StepContext,
    rules: crate::domain::screening::ScreeningRules,
    sanctions: Option<Arc<SanctionsList>>,
) -> DbFuture<'a> {
    Box::pin(async move {
        let input = &context.input;
        let amount: Decimal = field(input, "amount").parse().unwrap_or_default();
        let debtor = field(input, "debtor_account_id").to_owned();
        let entries = vec![
            field(input, "creditor_account").to_owned(),
            field(input, "creditor_name").to_owned(),
        ];
        let since = Utc::now() - TimeDelta::hours(1);
        let (count, blocked) = tokio::join!(
            store::count_since(tx, &debtor, since),
            store::blocklisted(tx, &entries)
        );
        let count = count.map_err(db_error)?;
        let blocked = blocked.map_err(db_error)?;
        if let Err(reason) = screen(&rules, amount, count, blocked.as_deref()) {
            return Ok(StepOutcome::Failed(reason));
        }
        let Some(sanctions) = sanctions else {
            // Version 1 of the saga, kept for payments started before the lists were read.
            return Ok(StepOutcome::Done(json!({ "screened": true })));
        };
        let name = field(input, "creditor_name");
        let hits = sanctions.screen(name, field(input, "currency"));
        if !hits.is_empty() {
            // A possible hit holds the payment for a four-eyes review (ADR 0011): what was
            // found is kept for the reviewers, and the payment says it waits.
            let found = hits_json(&hits);
            store::reviews::hold(tx, context.saga_id, "outbound", name, &found, Utc::now())
                .await
                .map_err(db_error)?;
            record_outcome(tx, context, "screening_review", &hit_reason(&hits)).await?;
            metrics::counter!("corebank_payments_screening_holds_total", "direction" => "outbound")
                .increment(1);
            return Ok(StepOutcome::Done(
                json!({ "screened": true, "hits": found }),
            ));
        }
        Ok(StepOutcome::Done(json!({ "screened": true, "hits": [] })))
    })
}

/// Possible hits as stored and shown to reviewers.
pub(crate) fn hits_json(hits: &[crate::domain::sanctions::matching::Hit]) -> Value {
    Value::Array(
        hits.iter()
            .map(|hit| {
                json!({
                    "list": hit.list,
                    "id": hit.id,
                    "listed_name": hit.listed_name,
                    "score": (hit.score * 1000.0).round() / 1000.0,
                })
            })
            .collect(),
    )
}

/// Why a payment waits: its best possible hit, and how many more there are.
pub(crate) fn hit_reason(hits: &[crate::domain::sanctions::matching::Hit]) -> String {
    let Some(best) = hits.first() else {
        return String::new();
    };
    let more = match hits.len() - 1 {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    format!(
        "screening: possible sanctions hit on {:?} ({} {}, score {:.3}){more}: awaiting a four-eyes review",
        best.listed_name, best.list, best.id, best.score
    )
}

/// Step `screening_review` (version 2): a payment with a possible hit waits here, paused,
/// until two operators decide (`PaymentsReview/DecideScreening`); a release goes on to the
/// rail, a refusal fails the payment and its hold is released by the compensations.
pub(super) fn review_step<'a>(tx: &'a Transaction<'a>, context: &'a StepContext) -> DbFuture<'a> {
    Box::pin(async move {
        let held = context
            .outputs
            .get("screen")
            .and_then(|o| o.get("hits"))
            .and_then(Value::as_array)
            .is_some_and(|hits| !hits.is_empty());
        if !held {
            return Ok(StepOutcome::Done(json!({ "review": "not_needed" })));
        }
        let review = store::reviews::get(tx, context.saga_id)
            .await
            .map_err(db_error)?;
        Ok(match review {
            Some(r) if r.decision == "release" => StepOutcome::Done(json!({
                "review": "released",
                "proposed_by": r.proposed_by,
                "approved_by": r.approved_by,
                "reason": r.reason,
            })),
            Some(r) if r.decision == "refuse" => StepOutcome::Failed(format!(
                "screening: refused on review by {} (proposed by {}): {}",
                r.approved_by, r.proposed_by, r.reason
            )),
            _ => StepOutcome::Await(format!(
                "{REVIEW_STEP}: a possible sanctions hit awaits a four-eyes decision \
                 (PaymentsReview/DecideScreening)"
            )),
        })
    })
}
