//! Holds on the legacy core (locked amounts): placing, releasing and capturing one.

use super::*;

impl Adapter {
    pub(in crate::adapter) async fn hold_view(
        &self,
        hold: &HoldRow,
        replayed: bool,
    ) -> Result<pb::Hold> {
        let record = self.lock_of(hold).await?;
        let row = self.store.account(hold.account_id).await?;
        Ok(pb::Hold {
            id: hold.hold_id.to_string(),
            account_id: hold.account_id.to_string(),
            amount: amount_text(record.field("LOCKED.AMOUNT").unwrap_or_default())?,
            currency: row.map(|r| r.currency).unwrap_or_default(),
            reason: hold.reason.clone(),
            status: hold_status(record.field("STATUS").unwrap_or_default()).to_owned(),
            expires_at: hold
                .expires_at
                .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                .unwrap_or_default(),
            placed_at: hold
                .placed_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            replayed,
        })
    }

    pub(in crate::adapter) async fn place_hold(&self, r: pb::PlaceHoldRequest) -> Result<pb::Hold> {
        let request_id = parse_request_id(&r.request_id)?;
        let fp = fingerprint(
            "place_hold",
            &[
                &r.account_id,
                &fingerprint_amount(&r.amount, &r.currency),
                &r.currency,
                &r.reason,
                &r.expires_in_seconds.to_string(),
            ],
        );
        self.once(request_id, fp, async {
            let row = self.account_in(&r.account_id, &r.currency).await?;
            let amount = parse_amount(&r.amount, &row.currency)?;
            let placed_at = Utc::now();
            // The core's locks last whole days: a hold ends at the end of the day its expiry
            // falls on (in UTC).
            let to_date = (r.expires_in_seconds > 0)
                .then(|| (placed_at + Days::seconds(i64::from(r.expires_in_seconds))).date_naive());
            let id = lock_id(request_id);
            let mut fields = vec![
                field("ACCOUNT.NUMBER", row.account_no.clone()),
                field("LOCKED.AMOUNT", legacy_amount(amount)?),
                field(
                    "DESCRIPTION",
                    r.reason.chars().take(200).collect::<String>(),
                ),
            ];
            if let Some(day) = to_date {
                fields.push(field("TO.DATE", formats::legacy_date(day)));
            }
            let done = self
                .legacy
                .input_new("AC.LOCKED.EVENTS", &id, fields)
                .await?;
            let same = done.record.field("ACCOUNT.NUMBER") == Some(row.account_no.as_str())
                && done
                    .record
                    .field("LOCKED.AMOUNT")
                    .and_then(|a| formats::parse_legacy_amount(a).ok())
                    == Some(amount);
            if !same {
                return Err(AdapterError::ExistsWithDifferent {
                    request_id: r.request_id.clone(),
                });
            }
            let hold = HoldRow {
                hold_id: derived_uuid("hold", &id),
                lock_id: id,
                account_id: row.account_id,
                reason: r.reason.clone(),
                expires_at: crate::adapter::lock_lapses(to_date),
                placed_at,
            };
            self.store.map_hold(&hold).await?;
            self.hold_view(&hold, done.existed).await
        })
        .await
    }

    /// The core's lock behind `hold`, which the core must still have.
    async fn lock_of(&self, hold: &HoldRow) -> Result<corebank_legacy_ofs::Response> {
        self.legacy
            .see("AC.LOCKED.EVENTS", &hold.lock_id)
            .await?
            .ok_or_else(|| AdapterError::internal(format!("the core lost lock {}", hold.lock_id)))
    }

    pub(in crate::adapter) async fn hold_row(&self, hold_id: &str) -> Result<HoldRow> {
        let id = parse_uuid(hold_id, "hold_id")?;
        self.store
            .hold(id)
            .await?
            .ok_or_else(|| AdapterError::UnknownHold {
                hold_id: hold_id.to_owned(),
            })
    }

    pub(in crate::adapter) async fn release_hold(
        &self,
        r: pb::ReleaseHoldRequest,
    ) -> Result<pb::Hold> {
        let request_id = parse_request_id(&r.request_id)?;
        let fp = fingerprint("release_hold", &[&r.hold_id]);
        self.once(request_id, fp, async {
            let hold = self.hold_row(&r.hold_id).await?;
            self.legacy
                .input(
                    request(
                        "AC.LOCKED.EVENTS",
                        Function::Reverse,
                        &hold.lock_id,
                        Vec::new(),
                    ),
                    &Probe::field_is(
                        "AC.LOCKED.EVENTS",
                        &hold.lock_id,
                        "STATUS",
                        "REVERSED".to_owned(),
                    ),
                )
                .await?;
            self.hold_view(&hold, false).await
        })
        .await
    }

    pub(in crate::adapter) async fn capture_hold(
        &self,
        r: pb::CaptureHoldRequest,
    ) -> Result<pb::Hold> {
        let request_id = parse_request_id(&r.request_id)?;
        let fp = fingerprint("capture_hold", &[&r.hold_id, &r.destination]);
        self.once(request_id, fp, async {
            let category = match r.destination.as_str() {
                "" | "clearing" => CLEARING_CATEGORY,
                "inter_core" => INTER_CORE_CATEGORY,
                other => {
                    return Err(AdapterError::invalid(format!(
                        "destination {other:?} is not clearing or inter_core"
                    )));
                }
            };
            let hold = self.hold_row(&r.hold_id).await?;
            let row = self
                .store
                .account(hold.account_id)
                .await?
                .ok_or_else(|| AdapterError::internal("a hold's account is not mapped"))?;
            let lock = self.lock_of(&hold).await?;
            let amount =
                crate::adapter::canonical_amount(lock.field("LOCKED.AMOUNT").unwrap_or_default())?;
            let status = lock.field("STATUS").unwrap_or_default();
            // A capture whose answer was lost finds the lock captured by its own transfer.
            let own = self
                .legacy
                .see("FUNDS.TRANSFER", &ft_id(request_id))
                .await?
                .is_some();
            if status != "LIVE" && !own {
                return Err(AdapterError::HoldNotHeld {
                    message: format!("the hold is {}", hold_status(status)),
                });
            }
            let clearing = internal_account(&row.currency, category)?;
            self.transfer_funds(Posting {
                request_id,
                kind: "AC",
                debit: &row.account_no,
                credit: &clearing,
                currency: &row.currency,
                amount,
                extra: vec![field("LOCKED.EVENT.ID", hold.lock_id.clone())],
            })
            .await?;
            self.hold_view(&hold, false).await
        })
        .await
    }
}

pub(in crate::adapter) fn hold_status(legacy: &str) -> &'static str {
    match legacy {
        "LIVE" => "held",
        "REVERSED" => "released",
        "CAPTURED" => "captured",
        _ => "expired",
    }
}
