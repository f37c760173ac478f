//! Bank charges that may pass a customer's limit: an explicit flag on the entry, recorded
//! with it, and accepted from the deposits module only.

use crate::wire::*;
use corebank_api::ledger::v1 as pb;
use corebank_kernel::JournalEntryId;

fn charge(customer: &str, income: &str, amount: &str, flagged: bool) -> pb::PostEntryRequest {
    let leg = |account: &str, direction: pb::Direction| pb::Leg {
        account_id: account.to_owned(),
        direction: direction.into(),
        amount: amount.to_owned(),
        currency: "EUR".to_owned(),
        bucket: String::new(),
    };
    pb::PostEntryRequest {
        id: JournalEntryId::generate().to_string(),
        legs: vec![
            leg(customer, pb::Direction::Debit),
            leg(income, pb::Direction::Credit),
        ],
        description: "overdraft interest".to_owned(),
        bank_charge_may_exceed_limit: flagged,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_flagged_bank_charge_may_pass_the_limit_is_recorded_and_only_deposits_may_send_it() {
    let served = serve().await;
    let mut deposits = served.client_as("deposits");
    // A customer with an overdraft of 10.00, at its limit already.
    let customer = account(
        "customer",
        pb::AccountType::Liability,
        pb::LimitKind::DebitsMustNotExceedCredits,
        "10.00",
    );
    let income = account("income", pb::AccountType::Income, pb::LimitKind::None, "");
    let (customer, income) = (customer.id.clone(), {
        let id = income.id.clone();
        deposits
            .create_accounts(pb::CreateAccountsRequest {
                accounts: vec![customer, income],
            })
            .await
            .unwrap()
            .into_inner()
            .results
            .iter()
            .for_each(|result| {
                assert!(
                    matches!(
                        result.outcome,
                        Some(pb::account_result::Outcome::Account(_))
                    ),
                    "{result:?}"
                );
            });
        id
    });
    deposits
        .post_entry(charge(&customer, &income, "10.00", false))
        .await
        .unwrap();

    // Without the flag the charge is refused, as any debit past the limit is.
    let refused = deposits
        .post_entry(charge(&customer, &income, "0.50", false))
        .await
        .unwrap_err();
    assert_eq!(error_code(&refused), "limit_exceeded");

    // With it, the charge goes through and the entry says so, hashed with its other facts.
    let flagged = charge(&customer, &income, "0.50", true);
    let id = flagged.id.clone();
    let posted = deposits
        .post_entry(flagged.clone())
        .await
        .unwrap()
        .into_inner();
    let Some(pb::entry_result::Outcome::Entry(entry)) = posted.outcome else {
        panic!("{posted:?}");
    };
    assert_eq!(
        entry
            .metadata
            .get("corebank.bank_charge_may_exceed_limit")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        posted_balance(&mut deposits, &customer)
            .await
            .parse::<rust_decimal::Decimal>()
            .unwrap(),
        "-10.50".parse().unwrap()
    );

    // The same id without the flag is another request.
    let mut unflagged = flagged;
    unflagged.bank_charge_may_exceed_limit = false;
    let refused = deposits.post_entry(unflagged).await.unwrap_err();
    assert_eq!(
        error_code(&refused),
        "exists_with_different_bank_charge_may_exceed_limit"
    );

    // A client cannot write the record itself, and only deposits may send the flag.
    let mut forged = charge(&customer, &income, "0.50", false);
    forged.metadata.insert(
        "corebank.bank_charge_may_exceed_limit".to_owned(),
        "true".to_owned(),
    );
    let refused = deposits.post_entry(forged).await.unwrap_err();
    assert_eq!(error_code(&refused), "invalid_request");
    let mut payments = served.client_as("payments");
    let refused = payments
        .post_entry(charge(&customer, &income, "0.50", true))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let entry = deposits
        .get_entry(pb::GetEntryRequest {
            key: Some(pb::get_entry_request::Key::EntryId(id)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(entry.legs.len(), 2);
    served.shutdown.cancel();
}
