//! The mock legacy core against a real PostgreSQL, driven over TCP in OFS as the adapter
//! drives it: every application, the error texts, faults and close of business, and the
//! seed. After every scenario that writes, the books must balance.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::net::SocketAddr;
use std::time::Duration;

use corebank_legacy_core::{CoreConfig, Faults};
use corebank_legacy_ofs::formats;
use corebank_legacy_ofs::{Field, Function, Indicator, Process, Request, Response};
use corebank_testkit::TestDatabase;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::sync::CancellationToken;

const ADMIN_PASSWORD: &str = "admin-secret";

struct Core {
    addr: SocketAddr,
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<()>>,
    _database: TestDatabase,
}

impl Drop for Core {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

fn config() -> CoreConfig {
    CoreConfig {
        admin_password: ADMIN_PASSWORD.to_owned(),
        faults: Faults::default(),
        cob_window: None,
        seed_customers: 0,
        idle_timeout: corebank_legacy_core::IDLE_TIMEOUT,
        write_timeout: corebank_legacy_core::WRITE_TIMEOUT,
    }
}

async fn start_core(config: CoreConfig) -> Core {
    let database = TestDatabase::create().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let handle = corebank_legacy_core::start(
        database.db_for("legacy_core"),
        listener,
        config,
        shutdown.clone(),
    )
    .await
    .unwrap();
    Core {
        addr,
        shutdown,
        handle: Some(handle),
        _database: database,
    }
}

struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    async fn connect(core: &Core) -> Client {
        let (read, writer) = TcpStream::connect(core.addr).await.unwrap().into_split();
        Client {
            reader: BufReader::new(read),
            writer,
        }
    }

    /// Sends a raw line; `None` when the core closed the connection without answering.
    async fn raw(&mut self, line: &str) -> Option<String> {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .await
            .ok()?;
        let mut answer = String::new();
        let read =
            tokio::time::timeout(Duration::from_secs(20), self.reader.read_line(&mut answer))
                .await
                .expect("the core did not answer in time");
        match read {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(answer),
        }
    }

    async fn try_call(&mut self, request: &Request) -> Option<Response> {
        let line = self.raw(&request.to_line()).await?;
        Some(Response::parse(&line).unwrap())
    }

    async fn call(&mut self, request: &Request) -> Response {
        self.try_call(request)
            .await
            .expect("the core closed the connection")
    }

    /// Sends `requests` as one bulk and reads their answers.
    async fn bulk(&mut self, requests: &[Request]) -> Vec<Response> {
        let mut lines = corebank_legacy_ofs::bulk::bulk_header(requests.len());
        for request in requests {
            lines.push('\n');
            lines.push_str(&request.to_line());
        }
        let first = self
            .raw(&lines)
            .await
            .expect("the core closed the connection");
        let mut answers = vec![Response::parse(first.trim_end()).unwrap()];
        for _ in 1..requests.len() {
            let mut line = String::new();
            self.reader.read_line(&mut line).await.unwrap();
            answers.push(Response::parse(line.trim_end()).unwrap());
        }
        answers
    }
}

fn request_as(
    user: &str,
    password: &str,
    application: &str,
    function: Function,
    id: &str,
    fields: &[(&str, &str)],
) -> Request {
    Request {
        application: application.to_owned(),
        version: String::new(),
        function,
        process: Process::Process,
        authorisers: Some(0),
        user: user.to_owned(),
        password: password.to_owned(),
        transaction_id: id.to_owned(),
        fields: fields
            .iter()
            .map(|(name, value)| {
                let (name, position) = name.split_once(':').unwrap_or((name, "1"));
                Field {
                    name: name.to_owned(),
                    multi_value: position.parse().unwrap(),
                    sub_value: 1,
                    value: (*value).to_owned(),
                }
            })
            .collect(),
    }
}

fn request(application: &str, function: Function, id: &str, fields: &[(&str, &str)]) -> Request {
    request_as("INPUTT", "123456", application, function, id, fields)
}

fn input(application: &str, id: &str, fields: &[(&str, &str)]) -> Request {
    request(application, Function::Input, id, fields)
}

fn see(application: &str, id: &str) -> Request {
    request(application, Function::See, id, &[])
}

fn enquiry(name: &str, fields: &[(&str, &str)]) -> Request {
    request("ENQUIRY.SELECT", Function::Input, name, fields)
}

fn admin(fields: &[(&str, &str)]) -> Request {
    request_as(
        "ADMIN",
        ADMIN_PASSWORD,
        "ADMIN.FAULTS",
        Function::Input,
        "",
        fields,
    )
}

/// The values of a multi-valued field in order.
fn values(response: &Response, name: &str) -> Vec<String> {
    let mut fields: Vec<&Field> = response
        .fields
        .iter()
        .filter(|f| f.name == name && f.sub_value == 1)
        .collect();
    fields.sort_by_key(|f| f.multi_value);
    fields.into_iter().map(|f| f.value.clone()).collect()
}

#[track_caller]
fn assert_done(response: &Response) {
    assert_eq!(response.indicator, Indicator::Done, "{response:?}");
}

#[track_caller]
fn assert_refused(response: &Response, field: &str, text: &str) {
    assert_eq!(response.indicator, Indicator::Error, "{response:?}");
    let value = response
        .field(field)
        .unwrap_or_else(|| panic!("no {field} in {response:?}"));
    assert!(value.starts_with(text), "{field}={value}, expected {text}");
}

/// A core with the default configuration and one client connected to it.
async fn connected() -> (Core, Client) {
    let core = start_core(config()).await;
    let client = Client::connect(&core).await;
    (core, client)
}

/// A connected core with ALICE's and BOB's accounts, funded with the amounts given.
async fn alice_and_bob(alice: &str, bob: &str) -> (Core, Client, String, String) {
    let (core, mut client) = connected().await;
    let alice = funded_account(&mut client, "ALICE", alice).await;
    let bob = funded_account(&mut client, "BOB", bob).await;
    (core, client, alice, bob)
}

fn reverse_lock(id: &str) -> Request {
    request("AC.LOCKED.EVENTS", Function::Reverse, id, &[])
}

fn cash(currency: &str) -> String {
    formats::account_number(currency, 10_001).unwrap()
}

async fn open_customer(client: &mut Client, mnemonic: &str) -> String {
    let response = client
        .call(&input(
            "CUSTOMER",
            "",
            &[("MNEMONIC", mnemonic), ("SHORT.NAME", "A CUSTOMER")],
        ))
        .await;
    assert_done(&response);
    response.transaction_id
}

async fn open_account(client: &mut Client, customer: &str, fields: &[(&str, &str)]) -> String {
    let mut all = vec![("CUSTOMER", customer), ("CURRENCY", "EUR")];
    all.extend_from_slice(fields);
    let response = client.call(&input("ACCOUNT", "", &all)).await;
    assert_done(&response);
    response.transaction_id
}

/// A customer with one EUR account holding `amount` from the till.
async fn funded_account(client: &mut Client, mnemonic: &str, amount: &str) -> String {
    let customer = open_customer(client, mnemonic).await;
    let account = open_account(client, &customer, &[("PRODUCT.CODE", "CURRENT")]).await;
    let response = transfer(client, "", &cash("EUR"), &account, amount, &[]).await;
    assert_done(&response);
    account
}

async fn transfer(
    client: &mut Client,
    id: &str,
    debit: &str,
    credit: &str,
    amount: &str,
    extra: &[(&str, &str)],
) -> Response {
    let mut fields = vec![
        ("DEBIT.ACCT.NO", debit),
        ("CREDIT.ACCT.NO", credit),
        ("DEBIT.CURRENCY", "EUR"),
        ("DEBIT.AMOUNT", amount),
    ];
    fields.extend_from_slice(extra);
    client.call(&input("FUNDS.TRANSFER", id, &fields)).await
}

/// A transfer that captures the lock `lock`.
async fn capture(client: &mut Client, from: &str, to: &str, amount: &str, lock: &str) -> Response {
    transfer(client, "", from, to, amount, &[("LOCKED.EVENT.ID", lock)]).await
}

async fn balance(client: &mut Client, account: &str) -> (String, String) {
    let response = client
        .call(&enquiry("ACCT.BALANCE", &[("ACCOUNT", account)]))
        .await;
    assert_done(&response);
    (
        response.field("WORKING.BALANCE").unwrap().to_owned(),
        response.field("AVAILABLE.BALANCE").unwrap().to_owned(),
    )
}

/// Every currency's balances and entries sum to zero; returns the answer.
async fn assert_books_balance(client: &mut Client) -> Response {
    let response = client.call(&enquiry("BOOKS.BALANCE", &[])).await;
    assert_done(&response);
    let totals = values(&response, "TOTAL");
    assert!(!totals.is_empty());
    assert!(totals.iter().all(|t| t == "0.00"), "{response:?}");
    assert!(
        values(&response, "ENTRIES.TOTAL")
            .iter()
            .all(|t| t == "0.00"),
        "{response:?}"
    );
    response
}

#[tokio::test]
async fn a_wrong_sign_on_is_refused_as_a_security_violation() {
    let (_core, mut client) = connected().await;
    for (user, password) in [
        ("INPUTT", "654321"),
        ("NOBODY", "123456"),
        ("ADMIN", "wrong"),
    ] {
        let response = client
            .call(&request_as(
                user,
                password,
                "CUSTOMER",
                Function::See,
                "1000039",
                &[],
            ))
            .await;
        assert_refused(&response, "USER", "SECURITY VIOLATION");
    }
    let response = client
        .call(&request_as(
            "INPUTT",
            "123456",
            "ADMIN.FAULTS",
            Function::See,
            "",
            &[],
        ))
        .await;
    assert_refused(&response, "USER", "SECURITY VIOLATION");
}

#[tokio::test]
async fn a_customer_and_an_account_are_opened_and_read_back() {
    let (_core, mut client) = connected().await;
    let customer = open_customer(&mut client, "ALICE.1").await;
    assert!(formats::parse_customer_number(&customer).is_ok());
    let seen = client.call(&see("CUSTOMER", &customer)).await;
    assert_done(&seen);
    assert_eq!(seen.field("MNEMONIC"), Some("ALICE.1"));
    assert_eq!(seen.field("SECTOR"), Some("1001"));
    let again = client
        .call(&input(
            "CUSTOMER",
            "",
            &[("MNEMONIC", "ALICE.1"), ("SHORT.NAME", "X")],
        ))
        .await;
    assert_refused(&again, "MNEMONIC", "DUPLICATE");
    let missing = client
        .call(&input("CUSTOMER", "", &[("MNEMONIC", "BOB")]))
        .await;
    assert_refused(&missing, "SHORT.NAME", "MANDATORY INPUT");

    let account = open_account(
        &mut client,
        &customer,
        &[
            ("CATEGORY", "6001"),
            ("ALT.ACCT.ID", "DEP-1"),
            ("PRODUCT.CODE", "savings-basic"),
        ],
    )
    .await;
    assert_eq!(account, formats::account_number("EUR", 10_000_001).unwrap());
    let seen = client.call(&see("ACCOUNT", &account)).await;
    assert_done(&seen);
    assert_eq!(seen.field("CATEGORY"), Some("6001"));
    assert_eq!(seen.field("WORKING.BALANCE"), Some("0.00"));
    assert_eq!(seen.field("CLOSURE.DATE"), Some(""));
    let by_alt = client
        .call(&enquiry("ACCT.BY.ALT.ID", &[("ALT.ACCT.ID", "DEP-1")]))
        .await;
    assert_eq!(by_alt.field("ACCOUNT"), Some(account.as_str()));
    let by_customer = client
        .call(&enquiry("ACCTS.BY.CUSTOMER", &[("CUSTOMER", &customer)]))
        .await;
    assert_eq!(values(&by_customer, "ACCOUNT"), vec![account.clone()]);
    let by_mnemonic = client
        .call(&enquiry("CUSTOMER.BY.MNEMONIC", &[("MNEMONIC", "ALICE.1")]))
        .await;
    assert_eq!(by_mnemonic.field("CUSTOMER"), Some(customer.as_str()));

    let customer = customer.as_str();
    // The fields of each account refused, with the field named and the text.
    type Fields<'a> = &'a [(&'a str, &'a str)];
    let refusals: [(Fields<'_>, &str, &str); 3] = [
        (
            &[
                ("CUSTOMER", customer),
                ("CURRENCY", "EUR"),
                ("ALT.ACCT.ID", "DEP-1"),
            ],
            "ALT.ACCT.ID",
            "DUPLICATE",
        ),
        (
            &[("CUSTOMER", customer), ("CURRENCY", "JPY")],
            "CURRENCY",
            "CURRENCY NOT ALLOWED",
        ),
        (
            &[("CUSTOMER", customer), ("COLOUR", "RED")],
            "COLOUR",
            "FIELD NOT ALLOWED",
        ),
    ];
    for (fields, field, text) in refusals {
        let refused = client.call(&input("ACCOUNT", "", fields)).await;
        assert_refused(&refused, field, text);
    }
    let unknown_application = client.call(&see("TELLER", "TT1")).await;
    assert_refused(&unknown_application, "APPLICATION", "UNKNOWN APPLICATION");
    let unknown_account = client
        .call(&see("ACCOUNT", &cash("EUR").replace("EUR", "USD")))
        .await;
    assert_eq!(unknown_account.indicator, Indicator::Error);
}

#[tokio::test]
async fn a_transfer_moves_money_and_the_books_balance() {
    let (_core, mut client, alice, bob) = alice_and_bob("500.00", "10.00").await;
    let response = transfer(
        &mut client,
        "",
        &alice,
        &bob,
        "150.25",
        &[
            ("PAYMENT.DETAILS:1", "RENT"),
            ("PAYMENT.DETAILS:2", "MARCH"),
        ],
    )
    .await;
    assert_done(&response);
    assert!(response.transaction_id.starts_with("FT"));
    assert_eq!(response.transaction_id.len(), 12);
    assert_eq!(response.field("RECORD.STATUS"), Some("AUTH"));
    assert_eq!(values(&response, "STMT.NOS").len(), 2);
    assert_eq!(values(&response, "PAYMENT.DETAILS"), vec!["RENT", "MARCH"]);
    assert_eq!(balance(&mut client, &alice).await.0, "349.75");
    assert_eq!(balance(&mut client, &bob).await.0, "160.25");
    let seen = client
        .call(&see("FUNDS.TRANSFER", &response.transaction_id))
        .await;
    assert_eq!(seen.fields, response.fields);
    let by_id = client
        .call(&enquiry("TXN.BY.ID", &[("ID", &response.transaction_id)]))
        .await;
    assert_eq!(by_id.field("APPLICATION"), Some("FUNDS.TRANSFER"));

    // Outward payment to the clearing account.
    let outward = client
        .call(&input(
            "FUNDS.TRANSFER",
            "",
            &[
                ("TRANSACTION.TYPE", "OT"),
                ("DEBIT.ACCT.NO", &alice),
                ("DEBIT.CURRENCY", "EUR"),
                ("DEBIT.AMOUNT", "49.75"),
                ("BEN.ACCT.NO", "DE89370400440532013000"),
                ("BEN.BANK", "COBADEFFXXX"),
            ],
        ))
        .await;
    assert_done(&outward);
    assert_eq!(
        outward.field("CREDIT.ACCT.NO"),
        Some(formats::account_number("EUR", 12_810).unwrap().as_str())
    );
    assert_eq!(balance(&mut client, &alice).await.0, "300.00");
    let books = assert_books_balance(&mut client).await;
    assert!(values(&books, "CURRENCY").contains(&"EUR".to_owned()));
}

#[tokio::test]
async fn a_transfer_without_funds_is_refused_and_changes_nothing() {
    let (_core, mut client, alice, bob) = alice_and_bob("12.00", "1.00").await;
    let response = transfer(&mut client, "FTNOFUNDS1", &alice, &bob, "12.01", &[]).await;
    assert_refused(
        &response,
        "DEBIT.AMOUNT",
        "INSUFFICIENT FUNDS, AVAILABLE 12.00",
    );
    assert_eq!(balance(&mut client, &alice).await.0, "12.00");
    assert_eq!(balance(&mut client, &bob).await.0, "1.00");
    let seen = client.call(&see("FUNDS.TRANSFER", "FTNOFUNDS1")).await;
    assert_refused(&seen, "ID", "RECORD NOT FOUND");
    let wrong = transfer(&mut client, "", &alice, "EUR1234567890", "1.00", &[]).await;
    assert_refused(&wrong, "CREDIT.ACCT.NO", "INVALID ACCOUNT NUMBER");
    let missing = transfer(
        &mut client,
        "",
        &alice,
        &formats::account_number("EUR", 10_009_999).unwrap(),
        "1.00",
        &[],
    )
    .await;
    assert_refused(&missing, "CREDIT.ACCT.NO", "MISSING ACCOUNT");
    let bad_amount = transfer(&mut client, "", &alice, &bob, "1.5", &[]).await;
    assert_refused(&bad_amount, "DEBIT.AMOUNT", "INVALID AMOUNT");
    assert_books_balance(&mut client).await;
}

#[tokio::test]
async fn a_caller_assigned_transfer_id_is_applied_once() {
    let (core, mut client, alice, bob) = alice_and_bob("100.00", "0.01").await;
    let first = transfer(&mut client, "FTREQ42", &alice, &bob, "30.00", &[]).await;
    assert_done(&first);
    assert_eq!(first.transaction_id, "FTREQ42");
    let second = transfer(&mut client, "FTREQ42", &alice, &bob, "30.00", &[]).await;
    assert_refused(&second, "ID", "LIVE RECORD EXISTS");
    assert_eq!(balance(&mut client, &alice).await.0, "70.00");
    let seen = client.call(&see("FUNDS.TRANSFER", "FTREQ42")).await;
    assert_done(&seen);
    assert_eq!(seen.field("DEBIT.AMOUNT"), Some("30.00"));
    let missing = client.call(&see("FUNDS.TRANSFER", "FTNEVER")).await;
    assert_refused(&missing, "ID", "RECORD NOT FOUND");
    let bad_id = transfer(&mut client, "XX1", &alice, &bob, "1.00", &[]).await;
    assert_refused(&bad_id, "ID", "INVALID VALUE");

    // The same caller id raced on several connections: applied exactly once.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let mut racer = Client::connect(&core).await;
        let (alice, bob) = (alice.clone(), bob.clone());
        tasks.push(tokio::spawn(async move {
            transfer(&mut racer, "FTRACE1", &alice, &bob, "5.00", &[])
                .await
                .indicator
        }));
    }
    let mut done = 0;
    for task in tasks {
        if task.await.unwrap() == Indicator::Done {
            done += 1;
        }
    }
    assert_eq!(done, 1);
    assert_eq!(balance(&mut client, &alice).await.0, "65.00");
    assert_books_balance(&mut client).await;
}

#[tokio::test]
async fn a_lock_is_reversed_once_and_a_lock_is_captured_by_a_transfer() {
    let (_core, mut client, alice, bob) = alice_and_bob("100.00", "0.01").await;
    let lock = client.call(&lock_on(&alice, "40.00", None)).await;
    assert_done(&lock);
    assert!(lock.transaction_id.starts_with("ACLK"));
    assert_eq!(lock.field("STATUS"), Some("LIVE"));
    assert_eq!(
        balance(&mut client, &alice).await,
        ("100.00".to_owned(), "60.00".to_owned())
    );
    let too_much = transfer(&mut client, "", &alice, &bob, "60.01", &[]).await;
    assert_refused(
        &too_much,
        "DEBIT.AMOUNT",
        "INSUFFICIENT FUNDS, AVAILABLE 60.00",
    );
    let too_big_lock = client.call(&lock_on(&alice, "60.01", None)).await;
    assert_refused(
        &too_big_lock,
        "LOCKED.AMOUNT",
        "INSUFFICIENT FUNDS, AVAILABLE 60.00",
    );

    let reverse = reverse_lock(&lock.transaction_id);
    let reversed = client.call(&reverse).await;
    assert_done(&reversed);
    assert_eq!(reversed.field("STATUS"), Some("REVERSED"));
    let again = client.call(&reverse).await;
    assert_refused(&again, "ID", "LOCK NOT LIVE, STATUS REVERSED");
    assert_eq!(balance(&mut client, &alice).await.1, "100.00");

    // Capture: a caller-assigned lock taken by the transfer that debits it.
    let hold = client
        .call(&input(
            "AC.LOCKED.EVENTS",
            "ACLKCARD7",
            &[
                ("ACCOUNT.NUMBER", &alice),
                ("LOCKED.AMOUNT", "25.00"),
                ("DESCRIPTION", "CARD AUTH"),
            ],
        ))
        .await;
    assert_done(&hold);
    let wrong_amount = capture(&mut client, &alice, &bob, "24.00", "ACLKCARD7").await;
    assert_refused(&wrong_amount, "DEBIT.AMOUNT", "INVALID AMOUNT");
    let captured = capture(&mut client, &alice, &bob, "25.00", "ACLKCARD7").await;
    assert_done(&captured);
    let seen = client.call(&see("AC.LOCKED.EVENTS", "ACLKCARD7")).await;
    assert_eq!(seen.field("STATUS"), Some("CAPTURED"));
    assert_eq!(
        balance(&mut client, &alice).await,
        ("75.00".to_owned(), "75.00".to_owned())
    );
    let twice = capture(&mut client, &alice, &bob, "25.00", "ACLKCARD7").await;
    assert_refused(&twice, "LOCKED.EVENT.ID", "LOCK NOT LIVE, STATUS CAPTURED");
    assert_books_balance(&mut client).await;
}

#[tokio::test]
async fn a_posting_restriction_blocks_postings_until_it_is_lifted() {
    let (_core, mut client, alice, bob) = alice_and_bob("100.00", "100.00").await;
    let frozen = client
        .call(&input("ACCOUNT", &alice, &[("POSTING.RESTRICT", "3")]))
        .await;
    assert_done(&frozen);
    assert_eq!(frozen.field("POSTING.RESTRICT"), Some("3"));
    let out = transfer(&mut client, "", &alice, &bob, "1.00", &[]).await;
    assert_refused(&out, "DEBIT.ACCT.NO", "POSTING RESTRICTED");
    let into = transfer(&mut client, "", &bob, &alice, "1.00", &[]).await;
    assert_refused(&into, "CREDIT.ACCT.NO", "POSTING RESTRICTED");
    let not_amendable = client
        .call(&input("ACCOUNT", &alice, &[("CURRENCY", "USD")]))
        .await;
    assert_refused(&not_amendable, "CURRENCY", "FIELD NOT ALLOWED");
    let lifted = client
        .call(&input("ACCOUNT", &alice, &[("POSTING.RESTRICT", "")]))
        .await;
    assert_done(&lifted);
    assert_done(&transfer(&mut client, "", &alice, &bob, "1.00", &[]).await);
    assert_books_balance(&mut client).await;
}

fn migration(account: &str, action: &str) -> Request {
    input("AC.ACCOUNT.MIGRATION", account, &[("ACTION", action)])
}

#[tokio::test]
async fn an_account_moved_away_is_frozen_read_emptied_into_suspense_and_then_refuses_postings() {
    let (_core, mut client, alice, bob) = alice_and_bob("100.00", "10.00").await;
    let tomorrow = formats::legacy_date(chrono::Utc::now().date_naive().succ_opt().unwrap());
    let card = client
        .call(&lock_on(&alice, "30.00", Some(&tomorrow)))
        .await;
    assert_done(&card);
    let suspense = formats::account_number("EUR", 12_900).unwrap();

    // Emptying needs a freeze first; a freeze answers the authoritative read.
    let early = client.call(&migration(&alice, "EMPTY")).await;
    assert_refused(&early, "ID", "ACCOUNT NOT MIGRATING");
    let frozen = client.call(&migration(&alice, "FREEZE")).await;
    assert_done(&frozen);
    assert_eq!(frozen.field("STATUS"), Some("MIGRATING"));
    assert_eq!(frozen.field("WORKING.BALANCE"), Some("100.00"));
    assert_eq!(
        values(&frozen, "LOCK.ID"),
        vec![card.transaction_id.clone()]
    );
    assert_eq!(values(&frozen, "LOCK.AMOUNT"), vec!["30.00".to_owned()]);
    assert_eq!(values(&frozen, "LOCK.TO.DATE"), vec![tomorrow.clone()]);
    assert_eq!(
        client
            .call(&migration(&alice, "FREEZE"))
            .await
            .field("STATUS"),
        Some("MIGRATING")
    );

    // While it moves, nothing posts to it, in or out, and nobody else may amend it.
    let out = transfer(&mut client, "", &alice, &bob, "1.00", &[]).await;
    assert_refused(&out, "DEBIT.ACCT.NO", "ACCOUNT MIGRATING");
    let into = transfer(&mut client, "", &bob, &alice, "1.00", &[]).await;
    assert_refused(&into, "CREDIT.ACCT.NO", "ACCOUNT MIGRATING");
    let lock = client.call(&lock_on(&alice, "1.00", None)).await;
    assert_refused(&lock, "ACCOUNT.NUMBER", "ACCOUNT MIGRATING");
    let unfreeze = client
        .call(&input("ACCOUNT", &alice, &[("POSTING.RESTRICT", "")]))
        .await;
    assert_refused(&unfreeze, "ID", "ACCOUNT MIGRATING");
    // Its locks are the move's too: a release that raced the freeze is refused as the
    // account is (the snapshot has the lock, and the other core places it again).
    let release = client.call(&reverse_lock(&card.transaction_id)).await;
    assert_refused(&release, "ID", "ACCOUNT MIGRATING");

    // A thaw gives the move up; freezing again resumes it.
    assert_eq!(
        client
            .call(&migration(&alice, "THAW"))
            .await
            .field("STATUS"),
        Some("OPEN")
    );
    assert_done(&transfer(&mut client, "", &bob, &alice, "5.00", &[]).await);
    assert_done(&client.call(&migration(&alice, "FREEZE")).await);

    let emptied = client.call(&migration(&alice, "EMPTY")).await;
    assert_done(&emptied);
    assert_eq!(emptied.field("STATUS"), Some("MIGRATED"));
    assert_eq!(emptied.field("WORKING.BALANCE"), Some("0.00"));
    assert_eq!(emptied.field("MOVED.AMOUNT"), Some("105.00"));
    assert_eq!(emptied.field("SUSPENSE.ACCT"), Some(suspense.as_str()));
    assert_eq!(
        values(&emptied, "RELEASED.LOCK"),
        vec![card.transaction_id.clone()]
    );
    assert!(values(&emptied, "LOCK.ID").is_empty(), "{emptied:?}");
    // A release that arrives once the lock moved away with the account is refused as the
    // account is, not as a lock that is no longer live: its caller retries on the new home.
    let late = client.call(&reverse_lock(&card.transaction_id)).await;
    assert_refused(&late, "ID", "ACCOUNT MIGRATED");
    let lock_now = client
        .call(&see("AC.LOCKED.EVENTS", &card.transaction_id))
        .await;
    assert_eq!(lock_now.field("STATUS"), Some("REVERSED"));
    assert_eq!(balance(&mut client, &suspense).await.0, "105.00");

    // Asked again, it answers the first emptying; the account refuses postings for good.
    let again = client.call(&migration(&alice, "EMPTY")).await;
    assert_eq!(again.field("MOVED.AMOUNT"), Some("105.00"));
    assert_eq!(
        again.field("EMPTIED.JOURNAL"),
        emptied.field("EMPTIED.JOURNAL")
    );
    assert_eq!(balance(&mut client, &suspense).await.0, "105.00");
    let after = transfer(&mut client, "", &bob, &alice, "1.00", &[]).await;
    assert_refused(&after, "CREDIT.ACCT.NO", "ACCOUNT MIGRATED");
    for action in ["FREEZE", "THAW"] {
        let refused = client.call(&migration(&alice, action)).await;
        assert_refused(&refused, "ID", "ACCOUNT MIGRATED");
    }
    let seen = client.call(&see("AC.ACCOUNT.MIGRATION", &alice)).await;
    assert_eq!(seen.field("MOVED.AMOUNT"), Some("105.00"));

    // Moving back: the balance the other core holds now comes back from suspense, with its
    // holds as new locks; the account stays frozen until thawed. Once only.
    let restore = input(
        "AC.ACCOUNT.MIGRATION",
        &alice,
        &[
            ("ACTION", "RESTORE"),
            ("AMOUNT", "100.00"),
            ("LOCK.AMOUNT", "20.00"),
            ("LOCK.TO.DATE", &tomorrow),
            ("LOCK.DESCRIPTION", "CARD"),
        ],
    );
    let restored = client.call(&restore).await;
    assert_done(&restored);
    assert_eq!(restored.field("STATUS"), Some("MIGRATING"));
    assert_eq!(restored.field("WORKING.BALANCE"), Some("100.00"));
    assert_eq!(values(&restored, "LOCK.AMOUNT"), vec!["20.00".to_owned()]);
    assert_eq!(restored.field("MOVED.AMOUNT"), None);
    let again = client.call(&restore).await;
    assert_eq!(again.field("WORKING.BALANCE"), Some("100.00"));
    assert_eq!(values(&again, "LOCK.ID"), values(&restored, "LOCK.ID"));
    assert_eq!(balance(&mut client, &suspense).await.0, "5.00");
    assert_eq!(
        client
            .call(&migration(&alice, "THAW"))
            .await
            .field("STATUS"),
        Some("OPEN")
    );
    assert_done(&transfer(&mut client, "", &alice, &bob, "80.00", &[]).await);
    let over = transfer(&mut client, "", &alice, &bob, "0.01", &[]).await;
    assert_refused(&over, "DEBIT.AMOUNT", "INSUFFICIENT FUNDS, AVAILABLE 0.00");
    let not_moved = client.call(&restore).await;
    assert_refused(&not_moved, "ID", "ACCOUNT NOT MIGRATED");
    let stray = client
        .call(&input(
            "AC.ACCOUNT.MIGRATION",
            &bob,
            &[("ACTION", "FREEZE"), ("AMOUNT", "1.00")],
        ))
        .await;
    assert_refused(&stray, "AMOUNT", "FIELD NOT ALLOWED");

    // What cannot move: internal accounts, unknown ones, a bad action.
    let internal = client.call(&migration(&cash("EUR"), "FREEZE")).await;
    assert_refused(&internal, "ID", "INVALID VALUE");
    let bad = client.call(&migration(&bob, "SHRED")).await;
    assert_refused(&bad, "ACTION", "INVALID VALUE");
    assert_books_balance(&mut client).await;
}

#[tokio::test]
async fn a_bulk_of_migration_actions_answers_each_in_order_and_a_refusal_undoes_only_its_own() {
    let (_core, mut client, alice, bob) = alice_and_bob("100.00", "10.00").await;
    let nobody = formats::account_number("EUR", 99_999).unwrap();
    let mut stranger = migration(&bob, "THAW");
    stranger.password = "wrong".to_owned();
    let frozen = client
        .bulk(&[
            migration(&alice, "FREEZE"),
            migration(&nobody, "FREEZE"),
            input("FUNDS.TRANSFER", "", &[("DEBIT.ACCT.NO", &alice)]),
            stranger,
            migration(&bob, "FREEZE"),
        ])
        .await;
    assert_eq!(frozen.len(), 5);
    assert_done(&frozen[0]);
    assert_eq!(frozen[0].transaction_id, alice);
    assert_eq!(frozen[0].field("STATUS"), Some("MIGRATING"));
    assert_eq!(frozen[0].field("WORKING.BALANCE"), Some("100.00"));
    assert_refused(&frozen[1], "ID", "RECORD NOT FOUND");
    assert_refused(&frozen[2], "APPLICATION", "NOT ALLOWED IN A BULK");
    assert_refused(&frozen[3], "USER", "SECURITY VIOLATION");
    assert_done(&frozen[4]);
    assert_eq!(frozen[4].field("WORKING.BALANCE"), Some("10.00"));

    // Both froze (the refusals between them undid nothing of theirs), and the connection
    // goes on serving single messages.
    let out = transfer(&mut client, "", &alice, &bob, "1.00", &[]).await;
    assert_refused(&out, "DEBIT.ACCT.NO", "ACCOUNT MIGRATING");
    let emptied = client
        .bulk(&[migration(&alice, "EMPTY"), migration(&bob, "EMPTY")])
        .await;
    assert_eq!(emptied[0].field("MOVED.AMOUNT"), Some("100.00"));
    assert_eq!(emptied[1].field("MOVED.AMOUNT"), Some("10.00"));
    // A bulk repeated answers as the first did: each action is idempotent by the state.
    let again = client
        .bulk(&[migration(&alice, "EMPTY"), migration(&bob, "EMPTY")])
        .await;
    assert_eq!(
        again[0].field("EMPTIED.JOURNAL"),
        emptied[0].field("EMPTIED.JOURNAL")
    );
    assert_eq!(again[1].field("MOVED.AMOUNT"), Some("10.00"));
    assert_books_balance(&mut client).await;

    // A header that counts nothing, or too many, is refused as malformed.
    for header in ["OFS.BULK,0", "OFS.BULK,65", "OFS.BULK,many"] {
        let answer = Response::parse(client.raw(header).await.unwrap().trim_end()).unwrap();
        assert_eq!(answer.field("CODE"), Some("ofs_malformed"), "{header}");
    }
    assert_done(&client.call(&see("AC.ACCOUNT.MIGRATION", &alice)).await);
}

#[tokio::test]
async fn a_closure_pays_out_the_balance_and_the_closed_account_takes_no_postings() {
    let (_core, mut client, alice, bob) = alice_and_bob("80.00", "5.00").await;
    let lock = client.call(&lock_on(&alice, "1.00", None)).await;
    let refused = client
        .call(&input(
            "ACCOUNT.CLOSURE",
            &alice,
            &[("SETTLEMENT.ACCT", &bob)],
        ))
        .await;
    assert_refused(&refused, "ID", "LOCKED EVENTS OPEN");
    client.call(&reverse_lock(&lock.transaction_id)).await;
    let closed = client
        .call(&input(
            "ACCOUNT.CLOSURE",
            &alice,
            &[("SETTLEMENT.ACCT", &bob)],
        ))
        .await;
    assert_done(&closed);
    assert_eq!(closed.field("TOTAL.BALANCE"), Some("80.00"));
    assert_eq!(values(&closed, "STMT.NOS").len(), 2);
    assert_ne!(closed.field("CLOSURE.DATE"), Some(""));
    assert_eq!(balance(&mut client, &bob).await.0, "85.00");
    assert_eq!(balance(&mut client, &alice).await.0, "0.00");
    let into = transfer(&mut client, "", &bob, &alice, "1.00", &[]).await;
    assert_refused(&into, "CREDIT.ACCT.NO", "ACCOUNT CLOSED");
    let again = client.call(&input("ACCOUNT.CLOSURE", &alice, &[])).await;
    assert_refused(&again, "ID", "ACCOUNT CLOSED");
    let amend = client
        .call(&input("ACCOUNT", &alice, &[("ACCOUNT.TITLE.1", "X")]))
        .await;
    assert_refused(&amend, "ID", "ACCOUNT CLOSED");
    assert_books_balance(&mut client).await;
}

#[tokio::test]
async fn a_large_transfer_needs_the_override_accepted() {
    let (_core, mut client, alice, bob) = alice_and_bob("9000.00", "1.00").await;
    let big = transfer(&mut client, "", &cash("EUR"), &alice, "10000.01", &[]).await;
    assert_eq!(big.indicator, Indicator::Override, "{big:?}");
    assert_eq!(
        big.field("OVERRIDE"),
        Some("AMOUNT ABOVE 10000.00 NEEDS APPROVAL")
    );
    assert_eq!(balance(&mut client, &alice).await.0, "9000.00");
    let exactly = transfer(&mut client, "", &alice, &bob, "10000.00", &[]).await;
    assert_refused(&exactly, "DEBIT.AMOUNT", "INSUFFICIENT FUNDS");
    let accepted = transfer(
        &mut client,
        "",
        &cash("EUR"),
        &alice,
        "10000.01",
        &[("OVERRIDE.ACCEPTED", "YES")],
    )
    .await;
    assert_done(&accepted);
    assert_eq!(balance(&mut client, &alice).await.0, "19000.01");
    assert_books_balance(&mut client).await;
}

#[tokio::test]
async fn a_loan_is_paid_out_with_its_schedule_and_repaid_through_lr_transfers() {
    let (_core, mut client) = connected().await;
    let customer = open_customer(&mut client, "BORROWER").await;
    let account = open_account(&mut client, &customer, &[]).await;
    let loan = client
        .call(&input(
            "LD.LOANS.AND.DEPOSITS",
            "",
            &[
                ("CUSTOMER.ID", &customer),
                ("CURRENCY", "EUR"),
                ("AMOUNT", "10000.00"),
                ("INTEREST.RATE", "7.50"),
                ("TERM", "12"),
                ("DRAWDOWN.ACCOUNT", &account),
            ],
        ))
        .await;
    assert_done(&loan);
    assert!(loan.transaction_id.starts_with("LD"));
    let principals: Vec<rust_decimal::Decimal> = values(&loan, "SCHED.PRINCIPAL")
        .iter()
        .map(|p| formats::parse_legacy_amount(p).unwrap())
        .collect();
    assert_eq!(principals.len(), 12);
    assert_eq!(
        principals.iter().copied().sum::<rust_decimal::Decimal>(),
        rust_decimal::Decimal::new(1_000_000, 2)
    );
    assert_eq!(values(&loan, "SCHED.INTEREST")[0], "62.50");
    assert_eq!(loan.field("OUTSTANDING.PRINCIPAL"), Some("10000.00"));
    assert_eq!(loan.field("STATUS"), Some("CURRENT"));
    assert_eq!(balance(&mut client, &account).await.0, "10000.00");

    // The first instalment (867.57) and 100.00 more: interest first, oldest first.
    let repay = |amount: &'static str| {
        input(
            "FUNDS.TRANSFER",
            "",
            &[
                ("TRANSACTION.TYPE", "LR"),
                ("DEBIT.ACCT.NO", &account),
                ("CREDIT.ACCT.NO", &loan.transaction_id),
                ("DEBIT.CURRENCY", "EUR"),
                ("DEBIT.AMOUNT", amount),
            ],
        )
    };
    assert_done(&client.call(&repay("967.57")).await);
    let seen = client
        .call(&see("LD.LOANS.AND.DEPOSITS", &loan.transaction_id))
        .await;
    assert_done(&seen);
    let paid = values(&seen, "SCHED.PAID");
    assert_eq!(paid[0], "867.57");
    assert_eq!(paid[1], "100.00");
    // Principal repaid: 805.07 of the first instalment, 100.00 - 57.47 interest of the second.
    let first_principal =
        formats::parse_legacy_amount(&values(&seen, "SCHED.PRINCIPAL")[0]).unwrap();
    let second_interest =
        formats::parse_legacy_amount(&values(&seen, "SCHED.INTEREST")[1]).unwrap();
    let expected = rust_decimal::Decimal::new(1_000_000, 2)
        - first_principal
        - (rust_decimal::Decimal::new(10_000, 2) - second_interest);
    assert_eq!(
        seen.field("OUTSTANDING.PRINCIPAL").unwrap(),
        expected.to_string()
    );
    assert_eq!(balance(&mut client, &account).await.0, "9032.43");
    let too_much = client.call(&repay("99999.00")).await;
    assert_refused(&too_much, "DEBIT.AMOUNT", "INVALID AMOUNT");
    assert_books_balance(&mut client).await;
}

#[tokio::test]
async fn a_statement_pages_with_a_running_balance() {
    let (_core, mut client, alice, bob) = alice_and_bob("100.00", "100.00").await;
    for _ in 0..4 {
        assert_done(&transfer(&mut client, "", &alice, &bob, "10.00", &[]).await);
    }
    let first = client
        .call(&enquiry(
            "STMT.ENT.BOOK",
            &[("ACCOUNT", &alice), ("LIMIT", "3")],
        ))
        .await;
    assert_done(&first);
    assert_eq!(values(&first, "AMOUNT"), vec!["100.00", "-10.00", "-10.00"]);
    assert_eq!(values(&first, "BALANCE"), vec!["100.00", "90.00", "80.00"]);
    assert_eq!(first.field("MORE"), Some("Y"));
    let last_id = values(&first, "ENTRY.ID").pop().unwrap();
    let second = client
        .call(&enquiry(
            "STMT.ENT.BOOK",
            &[("ACCOUNT", &alice), ("LIMIT", "3"), ("AFTER", &last_id)],
        ))
        .await;
    assert_eq!(values(&second, "AMOUNT"), vec!["-10.00", "-10.00"]);
    assert_eq!(values(&second, "BALANCE"), vec!["70.00", "60.00"]);
    assert_eq!(second.field("MORE"), Some("N"));
    let journals = values(&first, "JOURNAL");
    let up_to = client
        .call(&enquiry(
            "STMT.ENT.BOOK",
            &[("ACCOUNT", &alice), ("UP.TO.JOURNAL", &journals[1])],
        ))
        .await;
    assert_eq!(values(&up_to, "BALANCE"), vec!["100.00", "90.00"]);
    let bad_limit = client
        .call(&enquiry(
            "STMT.ENT.BOOK",
            &[("ACCOUNT", &alice), ("LIMIT", "201")],
        ))
        .await;
    assert_refused(&bad_limit, "LIMIT", "INVALID VALUE");
}

#[tokio::test]
async fn an_export_answers_the_books_as_of_one_journal_number_across_pages() {
    let (_core, mut client) = connected().await;
    let mut accounts = Vec::new();
    for k in 0..5 {
        accounts.push(funded_account(&mut client, &format!("C{k}"), "100.00").await);
    }
    let lock = client.call(&lock_on(&accounts[3], "7.00", None)).await;
    assert_done(&lock);
    let first = client
        .call(&enquiry(
            "ACCT.EXPORT",
            &[("PRODUCT.CODE", "CURRENT"), ("LIMIT", "2")],
        ))
        .await;
    assert_done(&first);
    let journal = first.field("JOURNAL").unwrap().to_owned();
    assert_eq!(first.field("MORE"), Some("Y"));
    let mut exported = values(&first, "ACCOUNT");
    let mut balances = values(&first, "WORKING.BALANCE");

    // Writes between pages: money moves, a lock ends, a new account opens.
    assert_done(&transfer(&mut client, "", &accounts[0], &accounts[4], "60.00", &[]).await);
    assert_done(&transfer(&mut client, "", &accounts[2], &accounts[3], "30.00", &[]).await);
    client.call(&reverse_lock(&lock.transaction_id)).await;
    funded_account(&mut client, "LATE", "1.00").await;

    let mut after = exported.last().unwrap().clone();
    let mut lock_ids = Vec::new();
    loop {
        let page = client
            .call(&enquiry(
                "ACCT.EXPORT",
                &[
                    ("PRODUCT.CODE", "CURRENT"),
                    ("LIMIT", "2"),
                    ("AFTER", &after),
                    ("JOURNAL", &journal),
                ],
            ))
            .await;
        assert_done(&page);
        assert_eq!(page.field("JOURNAL"), Some(journal.as_str()));
        lock_ids.extend(
            page.fields
                .iter()
                .filter(|f| f.name == "LOCK.ID")
                .map(|f| f.value.clone()),
        );
        exported.extend(values(&page, "ACCOUNT"));
        balances.extend(values(&page, "WORKING.BALANCE"));
        if page.field("MORE") != Some("Y") {
            break;
        }
        after = exported.last().unwrap().clone();
    }
    assert_eq!(exported, accounts);
    assert!(balances.iter().all(|b| b == "100.00"), "{balances:?}");
    assert_eq!(lock_ids, vec![lock.transaction_id.clone()]);
    // Each balance equals the statement up to the same journal number.
    for account in &accounts {
        let statement = client
            .call(&enquiry(
                "STMT.ENT.BOOK",
                &[("ACCOUNT", account), ("UP.TO.JOURNAL", &journal)],
            ))
            .await;
        assert_eq!(values(&statement, "BALANCE").last().unwrap(), "100.00");
    }
    let future = client
        .call(&enquiry("ACCT.EXPORT", &[("JOURNAL", "999999999")]))
        .await;
    assert_refused(&future, "JOURNAL", "INVALID VALUE");
    assert_books_balance(&mut client).await;
}

#[tokio::test]
async fn close_of_business_answers_offline_until_it_is_turned_off() {
    let (_core, mut client) = connected().await;
    let on = client.call(&admin(&[("COB", "ON")])).await;
    assert_done(&on);
    assert_eq!(on.field("CLOSED"), Some("YES"));
    let offline = client.call(&see("CUSTOMER", "1000039")).await;
    assert_eq!(offline.indicator, Indicator::Offline);
    assert_eq!(
        offline.field("STATUS"),
        Some("CLOSE OF BUSINESS IN PROGRESS")
    );
    let shown = client
        .call(&request_as(
            "ADMIN",
            ADMIN_PASSWORD,
            "ADMIN.FAULTS",
            Function::See,
            "",
            &[],
        ))
        .await;
    assert_eq!(shown.field("COB"), Some("ON"));
    assert_done(&client.call(&admin(&[("COB", "OFF")])).await);
    let open = client.call(&see("CUSTOMER", "1000039")).await;
    assert_refused(&open, "ID", "RECORD NOT FOUND");
    let bad = client.call(&admin(&[("ERROR.RATE", "1.5")])).await;
    assert_refused(&bad, "ERROR.RATE", "INVALID VALUE");
}

#[tokio::test]
async fn a_dropped_answer_leaves_the_transfer_committed() {
    let (core, mut client, alice, bob) = alice_and_bob("100.00", "0.01").await;
    assert_done(
        &client
            .call(&admin(&[("DROP.AFTER.COMMIT.RATE", "1")]))
            .await,
    );
    let request = input(
        "FUNDS.TRANSFER",
        "FTDROPPED1",
        &[
            ("DEBIT.ACCT.NO", &alice),
            ("CREDIT.ACCT.NO", &bob),
            ("DEBIT.CURRENCY", "EUR"),
            ("DEBIT.AMOUNT", "40.00"),
        ],
    );
    assert!(client.try_call(&request).await.is_none());
    // Reads are never dropped; a new connection settles the outcome.
    let mut client = Client::connect(&core).await;
    let seen = client.call(&see("FUNDS.TRANSFER", "FTDROPPED1")).await;
    assert_done(&seen);
    assert_eq!(balance(&mut client, &alice).await.0, "60.00");
    assert_done(
        &client
            .call(&admin(&[("DROP.AFTER.COMMIT.RATE", "0")]))
            .await,
    );
    assert_books_balance(&mut client).await;
}

#[tokio::test]
async fn an_injected_error_changes_nothing() {
    let (_core, mut client, alice, bob) = alice_and_bob("100.00", "0.01").await;
    assert_done(&client.call(&admin(&[("ERROR.RATE", "1")])).await);
    let response = transfer(&mut client, "FTFAULT1", &alice, &bob, "10.00", &[]).await;
    assert_refused(&response, "ID", "SYSTEM ERROR, TRY AGAIN");
    assert_done(&client.call(&admin(&[("ERROR.RATE", "0")])).await);
    let seen = client.call(&see("FUNDS.TRANSFER", "FTFAULT1")).await;
    assert_refused(&seen, "ID", "RECORD NOT FOUND");
    assert_eq!(balance(&mut client, &alice).await.0, "100.00");
}

#[tokio::test]
async fn latency_and_timeouts_delay_but_still_do_the_work() {
    let mut config = config();
    config.faults = Faults::parse("latency_ms=20-30,timeout_rate=1,timeout_ms=100").unwrap();
    let core = start_core(config).await;
    let mut client = Client::connect(&core).await;
    let started = std::time::Instant::now();
    let customer = open_customer(&mut client, "SLOW").await;
    assert!(started.elapsed() >= Duration::from_millis(120));
    assert_done(&client.call(&see("CUSTOMER", &customer)).await);
}

async fn seeded_books(customers: u32) -> (Vec<String>, Response, Vec<String>) {
    let mut config = config();
    config.seed_customers = customers;
    let core = start_core(config).await;
    let mut client = Client::connect(&core).await;
    let books = assert_books_balance(&mut client).await;
    let export = client
        .call(&enquiry("ACCT.EXPORT", &[("LIMIT", "100")]))
        .await;
    assert_done(&export);
    let accounts = values(&export, "ACCOUNT");
    let balances = values(&export, "WORKING.BALANCE");
    let mut rows: Vec<String> = accounts
        .iter()
        .zip(&balances)
        .map(|(a, b)| format!("{a}={b}"))
        .collect();
    rows.extend(
        export
            .fields
            .iter()
            .filter(|f| f.name == "LOCK.ID" || f.name == "LOCK.AMOUNT")
            .map(|f| format!("{}:{}={}", f.name, f.multi_value, f.value)),
    );
    let loan_customer = client
        .call(&enquiry(
            "CUSTOMER.BY.MNEMONIC",
            &[("MNEMONIC", "SEED000005")],
        ))
        .await;
    assert_done(&loan_customer);
    (rows, books, values(&export, "CUSTOMER"))
}

#[tokio::test]
async fn the_seed_is_deterministic_and_balanced() {
    let (first_rows, first_books, first_customers) = seeded_books(7).await;
    let (second_rows, second_books, second_customers) = seeded_books(7).await;
    assert_eq!(first_rows, second_rows);
    assert_eq!(first_books.fields, second_books.fields);
    assert_eq!(first_customers, second_customers);
    assert_eq!(first_customers.len(), 14);
    // Customer 5 has a hold; customer 7 a loan paid into the current account.
    assert!(first_rows.iter().any(|r| r.starts_with("LOCK.ID")));
    let started = std::time::Instant::now();
    seeded_books(50).await;
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn malformed_lines_are_answered_and_the_core_keeps_serving() {
    let (core, mut client) = connected().await;
    for line in [
        "",
        "garbage",
        "CUSTOMER,/X/PROCESS,INPUTT/123456,",
        "customer,/S/PROCESS,INPUTT/123456,1",
        "CUSTOMER,/S/PROCESS,INPUTT/123456,\\q",
        "CUSTOMER,/I/PROCESS,INPUTT/123456,,MNEMONIC:0=A",
    ] {
        let answer = client.raw(line).await.expect("answered");
        let response = Response::parse(&answer).unwrap();
        assert_eq!(response.indicator, Indicator::Error, "{line:?}: {answer}");
        assert!(response.field("MESSAGE").is_some());
    }
    // CRLF works too.
    let answer = client
        .raw(&format!("{}\r", see("CUSTOMER", "1000039").to_line()))
        .await
        .unwrap();
    assert_refused(&Response::parse(&answer).unwrap(), "ID", "RECORD NOT FOUND");
    // A line over the limit is refused and the connection closed; others keep working.
    let mut long = Client::connect(&core).await;
    let too_long = format!(
        "CUSTOMER,/I/PROCESS,INPUTT/123456,,SHORT.NAME={}",
        "x".repeat(corebank_legacy_ofs::LINE_BYTES_MAX)
    );
    let answer = long.raw(&too_long).await.expect("answered before closing");
    assert_eq!(
        Response::parse(&answer).unwrap().indicator,
        Indicator::Error
    );
    assert!(long.raw("garbage").await.is_none());
    let customer = open_customer(&mut client, "STILL.HERE").await;
    assert!(!customer.is_empty());
}

#[tokio::test]
async fn validate_checks_without_doing_and_the_core_stops_on_shutdown() {
    let mut core = start_core(config()).await;
    let mut client = Client::connect(&core).await;
    let mut validate = input(
        "CUSTOMER",
        "",
        &[("MNEMONIC", "ONLY.CHECKED"), ("SHORT.NAME", "X")],
    );
    validate.process = Process::Validate;
    assert_done(&client.call(&validate).await);
    let lookup = client
        .call(&enquiry(
            "CUSTOMER.BY.MNEMONIC",
            &[("MNEMONIC", "ONLY.CHECKED")],
        ))
        .await;
    assert_refused(&lookup, "MNEMONIC", "RECORD NOT FOUND");
    core.shutdown.cancel();
    let handle = core.handle.take().unwrap();
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("the core stops after shutdown")
        .unwrap();
    assert!(
        client
            .raw(&see("CUSTOMER", "1000039").to_line())
            .await
            .is_none()
    );
}

/// Reads answers until the core closes the connection (`true`) or `quiet` passes with
/// nothing to read (`false`).
async fn closed_by_core(reader: &mut BufReader<OwnedReadHalf>, quiet: Duration) -> bool {
    let mut line = String::new();
    loop {
        line.clear();
        match tokio::time::timeout(quiet, reader.read_line(&mut line)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends malformed lines for ever without reading the answers (until the socket fails).
fn pipeline_without_reading(writer: OwnedWriteHalf) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut writer = writer;
        let batch = "garbage\n".repeat(10_000);
        while writer.write_all(batch.as_bytes()).await.is_ok() {}
    })
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let mut config = config();
    config.idle_timeout = Duration::from_millis(500);
    let core = start_core(config).await;
    let mut silent = Client::connect(&core).await;
    let mut half_line = Client::connect(&core).await;
    half_line.writer.write_all(b"CUSTOMER,/S/").await.unwrap();
    let mut busy = Client::connect(&core).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_refused(
            &busy.call(&see("CUSTOMER", "1000039")).await,
            "ID",
            "RECORD NOT FOUND",
        );
    }
    assert!(closed_by_core(&mut silent.reader, Duration::from_secs(5)).await);
    assert!(closed_by_core(&mut half_line.reader, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_after_the_write_timeout() {
    let mut config = config();
    config.write_timeout = Duration::from_millis(500);
    let core = start_core(config).await;
    let Client { mut reader, writer } = Client::connect(&core).await;
    let flood = pipeline_without_reading(writer);
    // The answers fill both sockets' buffers; the core gives up on the blocked write.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let closed = tokio::time::timeout(
        Duration::from_secs(60),
        closed_by_core(&mut reader, Duration::from_secs(5)),
    )
    .await
    .expect("the core kept answering a client that never read");
    assert!(closed);
    flood.abort();
    // The core still serves others.
    let mut client = Client::connect(&core).await;
    assert_done(&client.call(&enquiry("BOOKS.BALANCE", &[])).await);
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_client_that_never_reads() {
    let mut core = start_core(config()).await;
    let Client { reader, writer } = Client::connect(&core).await;
    let flood = pipeline_without_reading(writer);
    tokio::time::sleep(Duration::from_secs(2)).await;
    core.shutdown.cancel();
    let handle = core.handle.take().unwrap();
    tokio::time::timeout(Duration::from_secs(15), handle)
        .await
        .expect("the core stops although a client never reads its answers")
        .unwrap();
    flood.abort();
    drop(reader);
}

#[tokio::test]
async fn a_last_line_cut_off_without_a_line_feed_is_not_carried_out() {
    let (core, mut client, alice, bob) = alice_and_bob("100.00", "0.01").await;
    let lock = client.call(&lock_on(&alice, "60.00", None)).await;
    assert_done(&lock);
    // A capture cut off before its LOCKED.EVENT.ID would otherwise debit the money the lock
    // holds, and leave the lock live.
    let line = input(
        "FUNDS.TRANSFER",
        "FTCUT1",
        &[
            ("DEBIT.ACCT.NO", &alice),
            ("CREDIT.ACCT.NO", &bob),
            ("DEBIT.CURRENCY", "EUR"),
            ("DEBIT.AMOUNT", "40.00"),
            ("LOCKED.EVENT.ID", &lock.transaction_id),
        ],
    )
    .to_line();
    let cut = &line[..line.find(",LOCKED.EVENT.ID").unwrap()];
    let mut cut_off = Client::connect(&core).await;
    cut_off.writer.write_all(cut.as_bytes()).await.unwrap();
    cut_off.writer.shutdown().await.unwrap();
    let mut answer = String::new();
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        cut_off.reader.read_line(&mut answer),
    )
    .await
    .expect("the core closes the connection");
    assert_eq!(read.unwrap_or(0), 0, "answered: {answer}");
    assert_refused(
        &client.call(&see("FUNDS.TRANSFER", "FTCUT1")).await,
        "ID",
        "RECORD NOT FOUND",
    );
    assert_eq!(
        balance(&mut client, &alice).await,
        ("100.00".to_owned(), "40.00".to_owned())
    );
}

#[tokio::test]
async fn a_loan_term_is_at_most_240_months_so_its_answer_always_fits() {
    let (_core, mut client) = connected().await;
    let customer = open_customer(&mut client, "LONG.LOAN").await;
    let account = open_account(&mut client, &customer, &[]).await;
    let loan = |term: &str| {
        input(
            "LD.LOANS.AND.DEPOSITS",
            "",
            &[
                ("CUSTOMER.ID", &customer),
                ("CURRENCY", "EUR"),
                ("AMOUNT", "999999.99"),
                ("INTEREST.RATE", "99.999999"),
                ("TERM", term),
                ("DRAWDOWN.ACCOUNT", &account),
            ],
        )
    };
    for term in ["241", "248", "360"] {
        assert_refused(&client.call(&loan(term)).await, "TERM", "INVALID VALUE");
    }
    let longest = client.call(&loan("240")).await;
    assert_done(&longest);
    assert_eq!(values(&longest, "SCHED.DATE").len(), 240);
    let found = client
        .call(&enquiry("TXN.BY.ID", &[("ID", &longest.transaction_id)]))
        .await;
    assert_done(&found);
    assert!(found.fields.len() <= corebank_legacy_ofs::FIELDS_MAX);
    assert_eq!(values(&found, "SCHED.PAID").len(), 240);
    assert_books_balance(&mut client).await;
}

/// The sub-values of `name` at multi-value `n`, in order.
fn subs(response: &Response, name: &str, n: u16) -> Vec<String> {
    let mut fields: Vec<&Field> = response
        .fields
        .iter()
        .filter(|f| f.name == name && f.multi_value == n)
        .collect();
    fields.sort_by_key(|f| f.sub_value);
    fields.into_iter().map(|f| f.value.clone()).collect()
}

fn lock_on(account: &str, amount: &str, to_date: Option<&str>) -> Request {
    let mut fields = vec![("ACCOUNT.NUMBER", account), ("LOCKED.AMOUNT", amount)];
    if let Some(to_date) = to_date {
        fields.push(("TO.DATE", to_date));
    }
    input("AC.LOCKED.EVENTS", "", &fields)
}

#[tokio::test]
async fn an_export_always_carries_an_account_and_pages_locks_that_do_not_fit() {
    let (_core, mut client) = connected().await;
    let today = chrono::Utc::now().date_naive();
    let today_text = formats::legacy_date(today);
    let tomorrow_text = formats::legacy_date(today.succ_opt().unwrap());
    let small = funded_account(&mut client, "SMALL", "100.00").await;
    let busy = funded_account(&mut client, "BUSY", "1000.00").await;
    let last = funded_account(&mut client, "LAST", "100.00").await;
    // SMALL: a lock without an end date between two that end today.
    let mut small_locks = Vec::new();
    for to_date in [Some(today_text.as_str()), None, Some(today_text.as_str())] {
        let lock = client.call(&lock_on(&small, "1.00", to_date)).await;
        assert_done(&lock);
        small_locks.push(lock.transaction_id);
    }
    // BUSY: 400 locks, more than one answer can hold.
    let mut busy_locks = Vec::new();
    for _ in 0..400 {
        let lock = client.call(&lock_on(&busy, "0.01", None)).await;
        assert_done(&lock);
        busy_locks.push(lock.transaction_id);
    }
    busy_locks.sort();

    let first = client
        .call(&enquiry("ACCT.EXPORT", &[("PRODUCT.CODE", "CURRENT")]))
        .await;
    assert_done(&first);
    let journal = first.field("JOURNAL").unwrap().to_owned();
    assert_eq!(first.field("AS.OF.DATE"), Some(today_text.as_str()));
    assert_eq!(values(&first, "ACCOUNT"), vec![small.clone()]);
    assert_eq!(first.field("MORE"), Some("Y"));
    assert_eq!(subs(&first, "LOCK.ID", 1), small_locks);
    assert_eq!(
        subs(&first, "LOCK.TO.DATE", 1),
        vec![today_text.clone(), String::new(), today_text.clone()]
    );
    assert_eq!(subs(&first, "LOCKS.MORE", 1), vec!["N"]);

    // A lock of BUSY ends after the export's journal number: still in the export.
    assert_done(&client.call(&reverse_lock(&busy_locks[0])).await);

    let page = |after: &str, as_of: &str| {
        enquiry(
            "ACCT.EXPORT",
            &[
                ("PRODUCT.CODE", "CURRENT"),
                ("AFTER", after),
                ("JOURNAL", &journal),
                ("AS.OF.DATE", as_of),
            ],
        )
    };
    let second = client.call(&page(&small, &today_text)).await;
    assert_done(&second);
    assert!(second.to_line().len() <= corebank_legacy_ofs::LINE_BYTES_MAX);
    assert_eq!(values(&second, "ACCOUNT"), vec![busy.clone()]);
    assert_eq!(second.field("MORE"), Some("Y"));
    assert_eq!(subs(&second, "LOCKS.MORE", 1), vec!["Y"]);
    let mut exported = subs(&second, "LOCK.ID", 1);
    assert!(exported.len() > 100, "{}", exported.len());
    assert_eq!(subs(&second, "LOCK.AMOUNT", 1).len(), exported.len());
    assert_eq!(subs(&second, "LOCK.TO.DATE", 1).len(), exported.len());
    loop {
        let after = exported.last().unwrap().clone();
        let rest = client
            .call(&enquiry(
                "ACCT.LOCKS",
                &[
                    ("ACCOUNT", &busy),
                    ("JOURNAL", &journal),
                    ("AS.OF.DATE", &today_text),
                    ("AFTER", &after),
                    ("LIMIT", "30"),
                ],
            ))
            .await;
        assert_done(&rest);
        let ids = values(&rest, "LOCK.ID");
        assert!(ids.len() <= 30);
        assert_eq!(values(&rest, "LOCK.AMOUNT").len(), ids.len());
        assert!(values(&rest, "LOCK.TO.DATE").iter().all(String::is_empty));
        exported.extend(ids);
        if rest.field("MORE") != Some("Y") {
            break;
        }
    }
    assert_eq!(exported, busy_locks);

    let third = client.call(&page(&busy, &today_text)).await;
    assert_eq!(values(&third, "ACCOUNT"), vec![last.clone()]);
    assert_eq!(third.field("MORE"), Some("N"));

    // Expiry is judged on the export's date: a page read the next day still counts the
    // locks that end today when it is given the first page's date.
    let next_day = client.call(&page("", &tomorrow_text)).await;
    assert_eq!(subs(&next_day, "LOCK.ID", 1), vec![small_locks[1].clone()]);
    assert_eq!(subs(&next_day, "LOCK.TO.DATE", 1), vec![String::new()]);
    let same_day = client.call(&page("", &today_text)).await;
    assert_eq!(subs(&same_day, "LOCK.ID", 1), small_locks);
    let small_at_tomorrow = client
        .call(&enquiry(
            "ACCT.LOCKS",
            &[
                ("ACCOUNT", &small),
                ("JOURNAL", &journal),
                ("AS.OF.DATE", &tomorrow_text),
            ],
        ))
        .await;
    assert_eq!(
        values(&small_at_tomorrow, "LOCK.ID"),
        vec![small_locks[1].clone()]
    );
    let no_journal = client
        .call(&enquiry("ACCT.LOCKS", &[("ACCOUNT", &small)]))
        .await;
    assert_refused(&no_journal, "JOURNAL", "MANDATORY INPUT");
    let bad_limit = client
        .call(&enquiry(
            "ACCT.LOCKS",
            &[("ACCOUNT", &small), ("JOURNAL", &journal), ("LIMIT", "201")],
        ))
        .await;
    assert_refused(&bad_limit, "LIMIT", "INVALID VALUE");
    assert_books_balance(&mut client).await;
}

#[tokio::test]
async fn the_accounts_of_a_customer_page_with_a_cursor() {
    let (_core, mut client) = connected().await;
    let customer = open_customer(&mut client, "MANY").await;
    let mut accounts = Vec::new();
    for _ in 0..3 {
        accounts.push(open_account(&mut client, &customer, &[]).await);
    }
    let first = client
        .call(&enquiry(
            "ACCTS.BY.CUSTOMER",
            &[("CUSTOMER", &customer), ("LIMIT", "2")],
        ))
        .await;
    assert_done(&first);
    assert_eq!(values(&first, "ACCOUNT"), accounts[..2]);
    assert_eq!(first.field("MORE"), Some("Y"));
    let second = client
        .call(&enquiry(
            "ACCTS.BY.CUSTOMER",
            &[
                ("CUSTOMER", &customer),
                ("LIMIT", "2"),
                ("AFTER", &accounts[1]),
            ],
        ))
        .await;
    assert_eq!(values(&second, "ACCOUNT"), accounts[2..]);
    assert_eq!(second.field("MORE"), Some("N"));
    let all = client
        .call(&enquiry("ACCTS.BY.CUSTOMER", &[("CUSTOMER", &customer)]))
        .await;
    assert_eq!(values(&all, "ACCOUNT"), accounts);
    assert_eq!(all.field("MORE"), Some("N"));
}

#[tokio::test]
async fn a_statement_page_of_long_narratives_stays_within_the_protocol() {
    let (_core, mut client, alice, bob) = alice_and_bob("1000.00", "0.01").await;
    // Commas double when escaped: the longest line a narrative can make.
    let narrative = ",".repeat(256);
    for _ in 0..130 {
        let response = transfer(
            &mut client,
            "",
            &alice,
            &bob,
            "0.01",
            &[("PAYMENT.DETAILS", &narrative)],
        )
        .await;
        assert_done(&response);
    }
    let mut after = String::new();
    let mut amounts = Vec::new();
    loop {
        let page = client
            .call(&enquiry(
                "STMT.ENT.BOOK",
                &[("ACCOUNT", &alice), ("AFTER", &after), ("LIMIT", "200")],
            ))
            .await;
        assert_done(&page);
        assert!(page.fields.len() <= corebank_legacy_ofs::FIELDS_MAX);
        assert!(page.to_line().len() <= corebank_legacy_ofs::LINE_BYTES_MAX);
        let ids = values(&page, "ENTRY.ID");
        assert!(!ids.is_empty());
        amounts.extend(values(&page, "AMOUNT"));
        after = ids.last().unwrap().clone();
        if page.field("MORE") != Some("Y") {
            break;
        }
    }
    assert_eq!(amounts.len(), 131);
}
