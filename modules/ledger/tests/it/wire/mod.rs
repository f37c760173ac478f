//! Helpers shared by the tests that call the ledger over gRPC.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::sync::Arc;

use corebank_api::ledger::v1 as pb;
use corebank_api::ledger::v1::ledger_client::LedgerClient;
use corebank_kernel::{AccountId, JournalEntryId, SystemClock};
use corebank_ledger::LedgerConfig;
use corebank_testkit::{TestApp, TestDatabase};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// The ledger's gRPC component served on port 0 over its own test database.
pub struct Served {
    pub app: TestApp,
    pub shutdown: CancellationToken,
    _database: TestDatabase,
}

impl Served {
    /// A client of the ledger calling as `component`.
    pub fn client_as(&self, component: &str) -> LedgerClient<Channel> {
        LedgerClient::new(self.app.channel(component, "ledger"))
    }
}

pub async fn serve() -> Served {
    let database = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    let component = corebank_ledger::grpc::component(
        database.db_for("ledger"),
        Arc::new(SystemClock),
        LedgerConfig::default(),
        shutdown.clone(),
    );
    let app = TestApp::spawn(component).await;
    Served {
        app,
        shutdown,
        _database: database,
    }
}

/// A new EUR account under a fresh id; `limit_amount` is empty where the limit needs none.
pub fn account(
    code: &str,
    account_type: pb::AccountType,
    limit: pb::LimitKind,
    limit_amount: &str,
) -> pb::CreateAccountRequest {
    pb::CreateAccountRequest {
        id: AccountId::generate().to_string(),
        code: code.to_owned(),
        name: code.to_owned(),
        currency: "EUR".to_owned(),
        r#type: account_type.into(),
        limit: Some(pb::BalanceLimit {
            kind: limit.into(),
            limit_amount: limit_amount.to_owned(),
        }),
        ..Default::default()
    }
}

/// A transfer in EUR under a fresh entry id.
pub fn transfer(debit: &str, credit: &str, amount: &str) -> pb::CreateTransferRequest {
    pb::CreateTransferRequest {
        id: JournalEntryId::generate().to_string(),
        debit_account_id: debit.to_owned(),
        credit_account_id: credit.to_owned(),
        amount: amount.to_owned(),
        currency: "EUR".to_owned(),
        ..Default::default()
    }
}

/// The stable error code a refusal carries in its metadata, empty when it carries none.
pub fn error_code(status: &tonic::Status) -> String {
    status
        .metadata()
        .get("corebank-error-code")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Asserts that `status` is a refusal with the gRPC `code` and the stable `error_code`.
pub fn assert_refused(status: &tonic::Status, code: tonic::Code, error_code_expected: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(error_code(status), error_code_expected, "{status:?}");
}

/// The posted balance of `account` as the ledger answers it now.
pub async fn posted_balance(client: &mut LedgerClient<Channel>, account: &str) -> String {
    let request = pb::GetBalanceRequest {
        account_id: account.to_owned(),
        as_of: None,
    };
    client
        .get_balance(request)
        .await
        .unwrap()
        .into_inner()
        .posted
}
