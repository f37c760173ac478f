//! The ledger over the wire: the gRPC service on port 0, a tonic client, stable error codes
//! in the status metadata, and per-item outcomes in batches.

use crate::wire::*;
use corebank_api::ledger::v1 as pb;

/// The ids of accounts created, each of which must have been.
fn ids_of(results: &[pb::AccountResult]) -> Vec<String> {
    results
        .iter()
        .map(|r| match &r.outcome {
            Some(pb::account_result::Outcome::Account(account)) => account.id.clone(),
            other => panic!("expected an account, got {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn the_ledger_answers_over_grpc_with_stable_error_codes() {
    let served = serve().await;
    // The ledger takes calls only from the modules that move money: call as deposits.
    let mut client = served.client_as("deposits");

    let created = client
        .create_accounts(pb::CreateAccountsRequest {
            accounts: vec![
                account("cash", pb::AccountType::Asset, pb::LimitKind::None, ""),
                account(
                    "alice",
                    pb::AccountType::Liability,
                    pb::LimitKind::DebitsMustNotExceedCredits,
                    "",
                ),
                account(
                    "bob",
                    pb::AccountType::Liability,
                    pb::LimitKind::DebitsMustNotExceedCredits,
                    "",
                ),
                account("alice", pb::AccountType::Liability, pb::LimitKind::None, ""),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    let ids = ids_of(&created.results[..3]);
    match &created.results[3].outcome {
        Some(pb::account_result::Outcome::Failure(failure)) => {
            assert_eq!(failure.code, "code_taken")
        }
        other => panic!("a taken code must be refused, got {other:?}"),
    }
    let (cash, alice, bob) = (&ids[0], &ids[1], &ids[2]);

    let funded = client
        .create_transfer(transfer(cash, alice, "100.00"))
        .await
        .unwrap()
        .into_inner();
    let Some(pb::entry_result::Outcome::Entry(entry)) = funded.outcome else {
        panic!("funding failed")
    };
    assert_eq!(entry.legs.len(), 2);
    assert_eq!(entry.hash.len(), 64);

    let refused = client
        .create_transfer(transfer(alice, bob, "100.01"))
        .await
        .unwrap_err();
    assert_refused(&refused, tonic::Code::FailedPrecondition, "limit_exceeded");
    assert_eq!(
        refused.metadata().get("corebank-retry-safe").unwrap(),
        "true"
    );

    let bad = client
        .create_transfer(transfer(alice, bob, "1.001"))
        .await
        .unwrap_err();
    assert_refused(&bad, tonic::Code::InvalidArgument, "invalid_amount");

    let batch = client
        .create_transfers(pb::CreateTransfersRequest {
            transfers: vec![
                transfer(alice, bob, "60.00"),
                transfer(alice, bob, "60.00"),
                transfer(alice, bob, "40.00"),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    let codes: Vec<String> = batch
        .results
        .iter()
        .map(|r| match &r.outcome {
            Some(pb::entry_result::Outcome::Entry(_)) => "ok".to_owned(),
            Some(pb::entry_result::Outcome::Failure(f)) => f.code.clone(),
            None => "none".to_owned(),
        })
        .collect();
    assert_eq!(
        codes,
        vec!["ok", "limit_exceeded", "ok"],
        "a refused item does not fail its neighbours"
    );

    assert_eq!(posted_balance(&mut client, bob).await, "100.00");
    let trial = client
        .get_trial_balance(pb::GetTrialBalanceRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        trial.difference_by_currency.get("EUR").map(String::as_str),
        Some("0")
    );
    let verify = client
        .verify(pb::VerifyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(verify.intact);
    assert_eq!(verify.entries_checked, 3);

    // The gateway has no business with the ledger: refused before the handler runs.
    let refused = served
        .client_as("gateway")
        .create_transfer(transfer(alice, bob, "1.00"))
        .await
        .unwrap_err();
    assert_refused(&refused, tonic::Code::PermissionDenied, "permission_denied");

    served.app.stop().await;
    served.shutdown.cancel();
}

#[tokio::test]
async fn several_accounts_are_read_at_once_in_the_order_asked() {
    let served = serve().await;
    let mut client = served.client_as("deposits");
    let created = client
        .create_accounts(pb::CreateAccountsRequest {
            accounts: vec![
                account("till", pb::AccountType::Asset, pb::LimitKind::None, ""),
                account(
                    "carol",
                    pb::AccountType::Liability,
                    pb::LimitKind::DebitsMustNotExceedCredits,
                    "",
                ),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    let ids = ids_of(&created.results);
    let (till, carol) = (&ids[0], &ids[1]);
    client
        .create_transfer(transfer(till, carol, "25.00"))
        .await
        .unwrap();

    let read = client
        .get_accounts(pb::GetAccountsRequest {
            account_ids: vec![carol.clone(), till.clone(), carol.clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .accounts;
    let seen: Vec<(&str, &str)> = read
        .iter()
        .map(|a| (a.id.as_str(), a.balance.as_ref().unwrap().posted.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (carol.as_str(), "25.00"),
            (till.as_str(), "25.00"),
            (carol.as_str(), "25.00")
        ],
        "in the order asked, an id asked twice answered twice, each with its balance"
    );
    assert_eq!(read[0].code, "carol");

    let unknown = uuid::Uuid::new_v4().to_string();
    let refused = client
        .get_accounts(pb::GetAccountsRequest {
            account_ids: vec![carol.clone(), unknown.clone()],
        })
        .await
        .unwrap_err();
    assert_refused(&refused, tonic::Code::NotFound, "unknown_account");
    assert!(refused.message().contains(&unknown), "{refused:?}");
    let bad = client
        .get_accounts(pb::GetAccountsRequest {
            account_ids: vec!["not-an-id".to_owned()],
        })
        .await
        .unwrap_err();
    assert_refused(&bad, tonic::Code::InvalidArgument, "invalid_request");
    assert!(bad.message().contains("account_ids[0]"), "{bad:?}");

    served.app.stop().await;
    served.shutdown.cancel();
}
