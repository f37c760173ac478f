//! Cross-side transfers (ADR 0014): money between an account the legacy core keeps and one
//! the modern side keeps, as a saga (`cross_side_transfer`) through each core's inter-core
//! clearing account.
//!
//! 1. `hold`: the amount is held on the debtor's core (a hold that never lapses, so that the
//!    capture cannot find it gone); undone by releasing it. A refusal there
//!    (`insufficient_funds`, a frozen account) ends the transfer with nothing moved.
//! 2. `credit` (the pivot): the creditor's core books the amount in from its inter-core
//!    clearing account. Refused (a closed or frozen account, another currency), the hold is
//!    released and the transfer fails with that refusal.
//! 3. `capture`: the hold is taken into the debtor core's inter-core clearing account. Past
//!    the pivot it only goes forward: a capture that keeps failing pauses the saga for an
//!    operator; the transfer stays `pending` (with `attention`) until then.
//!
//! Every call's request id derives from (transfer, step) and every callee is idempotent by
//! it, so a lost answer is settled by asking again with the same id, never by guessing.
//! Once every transfer has settled, the two inter-core clearing accounts net to zero per
//! currency (the modern one's debit balance equals the legacy one's working balance); a
//! transfer between its pivot and its capture is the only difference, and reconciliation
//! counts it.
//!
//! An account's move between the cores and a transfer touching it never overlap: a
//! transfer is refused `account_moving` while either account has a move (until it clears
//! the gateway's mark) or a return under way, or names the legacy core for an account a
//! move took off it (the sender read the directory before the switch, and sends again), and
//! a move or a return first waits for the account's transfers to settle
//! ([`drain_step`]). Both checks read and write in one serializable transaction each, so
//! one of two racing ones is retried and sees the other.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use corebank_api::deposits::v1 as dpb;
use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_saga::{
    Action, BoxFuture, NewSaga, RetryPolicy, SagaDefinition, Status, Step, StepContext, StepOutcome,
};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::moves::{CallFn, PATIENT, outcome, output, refusal_of};
use crate::peers::Peers;
use crate::{MigrationError, derived_id, store};

/// The saga type.
pub const SAGA_TYPE: &str = "cross_side_transfer";

/// The longest a transfer's start waits for its saga to end.
pub const WAIT_MAX_MS: u32 = 30_000;

/// A description's most characters (as a same-side transfer's).
const DESCRIPTION_CHARS_MAX: usize = 140;

/// What a transfer knows from the start: the saga's input and its row in `crossings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossInput {
    pub transfer_id: Uuid,
    pub from_side: String,
    pub from_account_id: Uuid,
    pub from_reference: Uuid,
    pub to_side: String,
    pub to_account_id: Uuid,
    pub to_reference: Uuid,
    pub amount: String,
    pub currency: String,
    pub description: String,
}

impl CrossInput {
    pub fn to_json(&self) -> Value {
        json!({
            "transfer_id": self.transfer_id,
            "from_side": self.from_side,
            "from_account_id": self.from_account_id,
            "from_reference": self.from_reference,
            "to_side": self.to_side,
            "to_account_id": self.to_account_id,
            "to_reference": self.to_reference,
            "amount": self.amount,
            "currency": self.currency,
            "description": self.description,
        })
    }

    fn of(context: &StepContext) -> CrossInput {
        let text = |name: &str| context.input[name].as_str().unwrap_or_default().to_owned();
        let id = |name: &str| Uuid::parse_str(&text(name)).unwrap_or_default();
        CrossInput {
            transfer_id: id("transfer_id"),
            from_side: text("from_side"),
            from_account_id: id("from_account_id"),
            from_reference: id("from_reference"),
            to_side: text("to_side"),
            to_account_id: id("to_account_id"),
            to_reference: id("to_reference"),
            amount: text("amount"),
            currency: text("currency"),
            description: text("description"),
        }
    }

    /// The request id of `step` of this transfer.
    fn request_id(&self, step: &str) -> String {
        derived_id(&["crossing", &self.transfer_id.to_string(), step]).to_string()
    }

    /// Checks a request's fields: each refusal names its field, and nothing is stored.
    pub fn checked(mut self) -> Result<CrossInput, MigrationError> {
        for (field, side) in [("from_side", &self.from_side), ("to_side", &self.to_side)] {
            if side != "legacy" && side != "modern" {
                return Err(MigrationError::invalid(field, "`legacy` or `modern`"));
            }
        }
        if self.from_side == self.to_side {
            return Err(MigrationError::invalid(
                "to_side",
                "the other side than from_side: a transfer on one core is not a crossing",
            ));
        }
        if self.from_reference == self.to_reference {
            return Err(MigrationError::invalid(
                "to_account_id",
                "the source account itself",
            ));
        }
        let amount: Decimal = self
            .amount
            .trim()
            .parse()
            .map_err(|_| MigrationError::invalid("amount", "a decimal amount such as 10.50"))?;
        if amount <= Decimal::ZERO || amount.scale() > 4 {
            return Err(MigrationError::invalid(
                "amount",
                "more than zero, with at most the currency's minor units",
            ));
        }
        self.amount = amount.to_string();
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(MigrationError::invalid(
                "currency",
                "an ISO 4217 code such as EUR",
            ));
        }
        if self.description.chars().count() > DESCRIPTION_CHARS_MAX
            || self.description.chars().any(char::is_control)
        {
            return Err(MigrationError::invalid(
                "description",
                "at most 140 characters, none of them a control character",
            ));
        }
        Ok(self)
    }
}

/// A transfer as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossView {
    pub input: CrossInput,
    /// pending | completed | failed
    pub status: &'static str,
    pub failure_code: String,
    pub failure_message: String,
    /// Why it waits for an operator (its saga paused), else empty.
    pub attention: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CrossView {
    /// A transfer from its row and its saga's standing.
    pub(crate) fn of(row: store::CrossingRow) -> CrossView {
        let (status, failure, attention) = match row.saga_status.as_str() {
            "completed" => ("completed", String::new(), String::new()),
            "compensated" => ("failed", row.saga_failure.clone(), String::new()),
            "paused" => ("pending", String::new(), row.saga_paused.clone()),
            _ => ("pending", String::new(), String::new()),
        };
        let refusal = refusal_of(&failure);
        let (code, message) = refusal.split_once(": ").unwrap_or((refusal, ""));
        CrossView {
            input: row.input,
            status,
            failure_code: code.to_owned(),
            failure_message: message.to_owned(),
            attention,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// The Deposits contract of the core on `side` (the adapter serves it for legacy).
fn deposits(peers: &Peers, side: &str) -> DepositsClient<Channel> {
    if side == "legacy" {
        peers.legacy_deposits.clone()
    } else {
        peers.modern.clone()
    }
}

fn hold(peers: Arc<Peers>, context: StepContext) -> BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let input = CrossInput::of(&context);
        let answer = deposits(&peers, &input.from_side)
            .place_hold(dpb::PlaceHoldRequest {
                request_id: input.request_id("hold"),
                account_id: input.from_account_id.to_string(),
                amount: input.amount.clone(),
                currency: input.currency.clone(),
                reason: format!("cross-side transfer {}", input.transfer_id),
                // Never lapses: the capture must find it.
                expires_in_seconds: 0,
            })
            .await;
        outcome(answer, |hold| {
            StepOutcome::Done(json!({ "hold_id": hold.id }))
        })
    })
}

fn release(peers: Arc<Peers>, context: StepContext) -> BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let input = CrossInput::of(&context);
        let answer = deposits(&peers, &input.from_side)
            .release_hold(dpb::ReleaseHoldRequest {
                request_id: input.request_id("release"),
                hold_id: output(&context, "hold", "hold_id"),
            })
            .await;
        outcome(answer, |hold| {
            StepOutcome::Done(json!({ "status": hold.status }))
        })
    })
}

fn credit(peers: Arc<Peers>, context: StepContext) -> BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let input = CrossInput::of(&context);
        let description = if input.description.is_empty() {
            format!("cross-side transfer {}", input.transfer_id)
        } else {
            input.description.clone()
        };
        let answer = deposits(&peers, &input.to_side)
            .deposit(dpb::CashRequest {
                request_id: input.request_id("credit"),
                account_id: input.to_account_id.to_string(),
                amount: input.amount.clone(),
                currency: input.currency.clone(),
                description,
                channel: "inter_core".to_owned(),
            })
            .await;
        outcome(answer, |movement| {
            StepOutcome::Done(json!({ "entry_id": movement.entry_id }))
        })
    })
}

fn capture(peers: Arc<Peers>, context: StepContext) -> BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let input = CrossInput::of(&context);
        let answer = deposits(&peers, &input.from_side)
            .capture_hold(dpb::CaptureHoldRequest {
                request_id: input.request_id("capture"),
                hold_id: output(&context, "hold", "hold_id"),
                destination: "inter_core".to_owned(),
            })
            .await;
        outcome(answer, |hold| {
            StepOutcome::Done(json!({ "status": hold.status }))
        })
    })
}

/// Test switches for the saga's four tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct SagaOptions {
    /// Run every action twice in a row (each must give the same answer).
    pub actions_twice: bool,
    /// Run every compensation twice in a row.
    pub compensations_twice: bool,
}

/// `run` over `peers`, run twice in a row when `twice`.
fn maybe_twice(peers: &Arc<Peers>, run: CallFn, twice: bool) -> Action {
    let peers = Arc::clone(peers);
    Action::call_twice_if(twice, move |context| run(Arc::clone(&peers), context))
}

/// The `cross_side_transfer` saga over `peers`.
pub fn definition(peers: &Arc<Peers>, options: SagaOptions) -> SagaDefinition {
    let twice = options.actions_twice;
    let step =
        |name: &str, run: CallFn| Step::new(name, maybe_twice(peers, run, twice)).retry(PATIENT);
    SagaDefinition::new(
        SAGA_TYPE,
        1,
        vec![
            step("hold", hold).compensate_with(maybe_twice(
                peers,
                release,
                options.compensations_twice,
            )),
            step("credit", credit).pivot(),
            step("capture", capture),
        ],
    )
}

/// How long a move waits for an account's transfers to settle before it gives the account
/// up (`account_busy`, a refusal: the account stays where it is, for a later migration):
/// about 14 s, looking every 100 ms at most, since the account's new transfers are refused
/// while it waits (and its channels wait with them, before the gateway's mark can hold them).
const DRAIN_POLICY: RetryPolicy = RetryPolicy {
    attempts: 150,
    initial_backoff: Duration::from_millis(10),
    max_backoff: Duration::from_millis(100),
    jitter: 0.2,
};

/// A move's or a return's first step: the account's cross-side transfers have settled.
/// It touches the account's move (so that a transfer starting at the same time conflicts
/// with it and is retried, then refused) and waits, within [`DRAIN_POLICY`], while one is
/// under way; a transfer waiting for an operator gives the account up at once.
pub(crate) fn drain_step() -> Step {
    Step::new(
        "drain",
        Action::db(|tx, context| {
            Box::pin(async move {
                let input = crate::moves::MoveInput::of(context);
                store::touch_move(tx, &input).await?;
                let account = Uuid::parse_str(&input.account_id).unwrap_or_default();
                let busy = store::crossings_under_way(tx, account).await?;
                let Some((transfer, status)) = busy.first() else {
                    return Ok(StepOutcome::Done(json!({})));
                };
                if status == Status::Paused.as_str() {
                    return Ok(StepOutcome::Failed(format!(
                        "account_busy: cross-side transfer {transfer} waits for an operator"
                    )));
                }
                if context.attempt + 1 >= DRAIN_POLICY.attempts {
                    return Ok(StepOutcome::Failed(format!(
                        "account_busy: {} cross-side transfer(s) still under way",
                        busy.len()
                    )));
                }
                Ok(StepOutcome::Transient(format!(
                    "cross-side transfer {transfer} is under way"
                )))
            })
        }),
    )
    .retry(DRAIN_POLICY)
}

impl crate::app::Migrations {
    /// Starts a cross-side transfer (or finds it started), waits up to `wait` for its saga
    /// to end, and answers it as it then stands.
    pub async fn transfer_across(
        &self,
        input: CrossInput,
        wait: Duration,
    ) -> Result<CrossView, MigrationError> {
        let input = input.checked()?;
        let id = input.transfer_id;
        let settled = self.executor().watchers().watch(id);
        let answer = self.start_and_wait(&input, wait, settled).await;
        // Whatever happened (a refusal, a wait that ran out), nobody waits here any more.
        self.executor().watchers().forget(id);
        answer
    }

    async fn start_and_wait(
        &self,
        input: &CrossInput,
        wait: Duration,
        settled: tokio::sync::oneshot::Receiver<Status>,
    ) -> Result<CrossView, MigrationError> {
        let id = input.transfer_id;
        let registry = self.registry();
        let input_ref = input;
        let started = self
            .db()
            .run_tx("migration_transfer_across", |tx| {
                Box::pin(async move {
                    if let Some(row) = store::crossing(&tx, id).await? {
                        if let Some(field) = differs(&row.input, input_ref) {
                            return Err(corebank_db::TxError::Abort(
                                MigrationError::ExistsWithDifferent {
                                    id: id.to_string(),
                                    field,
                                },
                            ));
                        }
                        return Ok(false);
                    }
                    let named = [
                        (&input_ref.from_side, input_ref.from_reference),
                        (&input_ref.to_side, input_ref.to_reference),
                    ];
                    let accounts = named.map(|(_, account)| account);
                    let on_legacy: Vec<Uuid> = named
                        .iter()
                        .filter(|(side, _)| side.as_str() == "legacy")
                        .map(|(_, account)| *account)
                        .collect();
                    if let Some(account) = store::moving_account(&tx, &accounts, &on_legacy).await?
                    {
                        return Err(corebank_db::TxError::Abort(MigrationError::AccountMoving {
                            account_id: account.to_string(),
                        }));
                    }
                    store::insert_crossing(&tx, input_ref, Utc::now()).await?;
                    crate::app::start_saga(
                        &tx,
                        registry,
                        NewSaga {
                            id,
                            saga_type: SAGA_TYPE.to_owned(),
                            input: input_ref.to_json(),
                            business_key: format!("transfer:{id}"),
                        },
                    )
                    .await?;
                    Ok(true)
                })
            })
            .await?;
        if started {
            self.executor().nudge();
            tracing::info!(transfer = %id, from = %input.from_side, to = %input.to_side, amount = %input.amount, currency = %input.currency, "cross-side transfer started");
        }
        let view = self.cross_transfer(id).await?;
        if view.status != "pending" || !view.attention.is_empty() || wait.is_zero() {
            return Ok(view);
        }
        // Ended here (the watcher fires), elsewhere or later (the wait runs out): read it.
        let _ = tokio::time::timeout(wait, settled).await;
        self.cross_transfer(id).await
    }

    /// A cross-side transfer as it stands.
    pub async fn cross_transfer(&self, id: Uuid) -> Result<CrossView, MigrationError> {
        let row = self
            .db()
            .run_tx("migration_cross_transfer", |tx| {
                Box::pin(async move { store::crossing(&tx, id).await })
            })
            .await?;
        row.map(CrossView::of)
            .ok_or_else(|| MigrationError::UnknownTransfer { id: id.to_string() })
    }
}

/// The first field in which a repeated start differs from the stored transfer.
fn differs(stored: &CrossInput, again: &CrossInput) -> Option<&'static str> {
    let fields: [(&'static str, bool); 9] = [
        ("from_side", stored.from_side == again.from_side),
        (
            "from_account_id",
            stored.from_account_id == again.from_account_id,
        ),
        (
            "from_reference",
            stored.from_reference == again.from_reference,
        ),
        ("to_side", stored.to_side == again.to_side),
        ("to_account_id", stored.to_account_id == again.to_account_id),
        ("to_reference", stored.to_reference == again.to_reference),
        ("amount", stored.amount == again.amount),
        ("currency", stored.currency == again.currency),
        ("description", stored.description == again.description),
    ];
    fields
        .iter()
        .find(|(_, same)| !same)
        .map(|(field, _)| *field)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> CrossInput {
        CrossInput {
            transfer_id: Uuid::new_v4(),
            from_side: "legacy".to_owned(),
            from_account_id: Uuid::new_v4(),
            from_reference: Uuid::new_v4(),
            to_side: "modern".to_owned(),
            to_account_id: Uuid::new_v4(),
            to_reference: Uuid::new_v4(),
            amount: "10.50".to_owned(),
            currency: "EUR".to_owned(),
            description: String::new(),
        }
    }

    #[test]
    fn a_request_is_checked_field_by_field() {
        let refused = |change: fn(&mut CrossInput)| {
            let mut bad = input();
            change(&mut bad);
            match bad.checked() {
                Err(MigrationError::InvalidArgument { field, .. }) => field,
                other => panic!("accepted: {other:?}"),
            }
        };
        assert_eq!(refused(|i| i.from_side = "core".to_owned()), "from_side");
        assert_eq!(refused(|i| i.to_side = "legacy".to_owned()), "to_side");
        assert_eq!(
            refused(|i| i.to_reference = i.from_reference),
            "to_account_id"
        );
        assert_eq!(refused(|i| i.amount = "0".to_owned()), "amount");
        assert_eq!(refused(|i| i.amount = "ten".to_owned()), "amount");
        assert_eq!(refused(|i| i.currency = "eur".to_owned()), "currency");
        assert_eq!(
            refused(|i| i.description = "\u{7}".to_owned()),
            "description"
        );
        assert_eq!(input().checked().unwrap().amount, "10.50");
    }

    #[test]
    fn a_repeat_names_the_first_field_that_differs() {
        let first = input();
        assert_eq!(differs(&first, &first.clone()), None);
        let mut again = first.clone();
        again.amount = "11".to_owned();
        assert_eq!(differs(&first, &again), Some("amount"));
    }

    #[test]
    fn every_request_of_a_transfer_is_named_by_transfer_and_step() {
        let transfer = input();
        assert_eq!(transfer.request_id("hold"), transfer.request_id("hold"));
        assert_ne!(transfer.request_id("hold"), transfer.request_id("capture"));
    }
}
