//! Shadow comparison: a mismatch is found, stored with both payloads (personal data
//! redacted) and listed with a summary; equal answers after normalisation match; a full
//! queue drops without ever blocking; a failed shadow is a shadow error, not a mismatch;
//! the automatic rollback trips on the modern side's error rate (and not below the minimum
//! of requests) and is audited. Real PostgreSQL, one database per test.

use std::time::{Duration, Instant};

use crate::common::{APPROVE, Http, test_principal};
use corebank_gateway::routing::{Router, Side};
use corebank_gateway::shadow::{
    Answer, NormalizationRules, RollbackPolicy, Shadow, ShadowConfig, ShadowCounts, ShadowJob,
};
use corebank_testkit::{TestApp, TestDatabase};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Harness {
    db: TestDatabase,
    router: Router,
    shadow: Shadow,
    http: Http,
    shutdown: CancellationToken,
}

impl Harness {
    async fn start(config: ShadowConfig) -> Harness {
        let db = TestDatabase::create().await;
        let router = Router::load(db.db_for("gateway")).await.unwrap();
        let shutdown = CancellationToken::new();
        let shadow = Shadow::start(
            db.db_for("gateway"),
            router.clone(),
            config,
            shutdown.clone(),
        );
        let routes = router
            .admin_router()
            .merge(shadow.admin_router())
            .layer(axum::middleware::from_fn(test_principal));
        let app = TestApp::spawn(
            corebank_service::Component::new("gateway-test").with_public_routes(routes),
        )
        .await;
        Harness {
            db,
            router,
            shadow,
            http: Http::to(app),
            shutdown,
        }
    }

    async fn listing(&self, query: &str) -> Value {
        self.http
            .expect_read(StatusCode::OK, &format!("/admin/v1/shadow{query}"))
            .await
    }

    /// The counts of (product, operation) once `done` holds for them (5 s at most).
    async fn counts_when(
        &self,
        product: &str,
        operation: &str,
        done: impl Fn(&ShadowCounts) -> bool,
    ) -> ShadowCounts {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let counts = self
                .shadow
                .counts()
                .get(&(product.to_owned(), operation.to_owned()))
                .copied()
                .unwrap_or_default();
            if done(&counts) {
                return counts;
            }
            assert!(
                Instant::now() < deadline,
                "counts never got there: {counts:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The listing once it holds `count` mismatches (5 s at most: storing follows counting).
    async fn listing_with(&self, query: &str, count: usize) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let listing = self.listing(query).await;
            if listing["mismatches"].as_array().unwrap().len() >= count {
                return listing;
            }
            assert!(Instant::now() < deadline, "never listed {count}: {listing}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stored_mismatches(&self) -> i64 {
        let client = self.db.db().client().await.unwrap();
        client
            .query_one("SELECT count(*) FROM gateway.shadow_mismatches", &[])
            .await
            .unwrap()
            .get(0)
    }

    /// (outcome, reason) of every automatic-rollback audit row, oldest first.
    async fn automatic_rollback_audits(&self) -> Vec<(String, String)> {
        let client = self.db.db().client().await.unwrap();
        client
            .query(
                "SELECT outcome, details->>'reason' FROM gateway.audit_log \
                 WHERE actor = 'system:auto-rollback' AND action = 'routes.automatic_rollback' \
                 ORDER BY at",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect()
    }

    /// A four-eyes change: every `CURRENT` account's transfers go to the modern side, with a
    /// legacy shadow.
    async fn route_transfers_to_modern(&self) {
        let id = self
            .http
            .propose(
                "alice",
                json!({
                    "rules": [{
                        "product": "CURRENT",
                        "operation": "transfers",
                        "default_side": "legacy",
                        "canary": {"side": "modern", "percent": 100},
                        "shadow": true,
                    }],
                    "reason": "transfers canary",
                }),
            )
            .await;
        let (status, approved) = self.http.approve("bob", APPROVE, &id).await;
        assert_eq!(status, StatusCode::OK, "{approved}");
        assert_eq!(self.primary_for_anyone(), Side::Modern);
    }

    /// `times` answers of `side`, as the primary of a `CURRENT` transfer.
    fn observe_transfers(&self, side: Side, times: usize, answer: &Answer) {
        for _ in 0..times {
            self.shadow
                .observe_primary("CURRENT", "transfers", side, answer);
        }
    }

    /// Waits (at most 5 s) until the rule fell back to legacy, then answers the automatic
    /// rollbacks' audit records: exactly one.
    async fn fallen_back_to_legacy(&self) -> Vec<(String, String)> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.primary_for_anyone() != Side::Legacy {
            assert!(
                Instant::now() < deadline,
                "the rule never fell back to legacy"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let audits = self.automatic_rollback_audits().await;
        assert_eq!(audits.len(), 1, "{audits:?}");
        audits
    }

    fn primary_for_anyone(&self) -> Side {
        self.router
            .table()
            .decide("CURRENT", "transfers", Some("anyone"))
            .primary
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn answer(status: u16, body: Value) -> Answer {
    Answer { status, body }
}

fn job(product: &str, request_id: &str, primary: Answer, shadow: Answer) -> ShadowJob {
    ShadowJob {
        product: product.to_owned(),
        operation: "transfers".to_owned(),
        primary_side: Side::Legacy,
        shadow_side: Side::Modern,
        request_id: request_id.to_owned(),
        primary,
        run: Box::pin(async move { shadow }),
    }
}

fn transfer(posted: &str) -> Value {
    json!({
        "id": "t-1",
        "state": "completed",
        "amount": "10.50",
        "creditor_name": "Alice Example",
        "customer_id": "C-42",
        "description": "rent for March",
        "balances_after": {"posted": posted, "available": posted},
        "recorded_at": "2025-03-01T10:00:00Z",
    })
}

fn config(queue_max: usize) -> ShadowConfig {
    ShadowConfig {
        queue_max,
        workers: 2,
        rules: NormalizationRules::default(),
        rollback: RollbackPolicy::default(),
    }
}

#[tokio::test]
async fn a_mismatch_is_stored_redacted_and_listed_with_a_summary() {
    let harness = Harness::start(config(16)).await;
    assert!(harness.shadow.submit(job(
        "CURRENT",
        "req-1",
        answer(201, transfer("59.50")),
        answer(201, transfer("60.00")),
    )));

    let listing = harness.listing_with("", 1).await;
    let mismatch = &listing["mismatches"][0];
    assert_eq!(mismatch["product"], "CURRENT");
    assert_eq!(mismatch["operation"], "transfers");
    assert_eq!(mismatch["primary_side"], "legacy");
    assert_eq!(mismatch["shadow_side"], "modern");
    assert_eq!(mismatch["request_id"], "req-1");
    assert_eq!(
        mismatch["differences"],
        json!([
            "balances_after.available: \"59.50\" vs \"60.00\"",
            "balances_after.posted: \"59.50\" vs \"60.00\"",
        ])
    );
    for payload in ["primary_answer", "shadow_answer"] {
        assert_eq!(mismatch[payload]["creditor_name"], "<redacted>");
        assert_eq!(mismatch[payload]["customer_id"], "<redacted>");
        assert_eq!(mismatch[payload]["description"], "<redacted>");
    }
    assert_eq!(
        mismatch["primary_answer"]["balances_after"]["posted"],
        "59.50"
    );
    assert_eq!(
        mismatch["shadow_answer"]["balances_after"]["posted"],
        "60.00"
    );
    let text = listing.to_string();
    assert!(!text.contains("Alice") && !text.contains("C-42") && !text.contains("rent"));
    assert_eq!(
        listing["summary"],
        json!([{
            "product": "CURRENT", "operation": "transfers", "compared": 1, "matched": 0,
            "mismatched": 1, "dropped": 0, "shadow_errors": 0, "automatic_rollbacks": 0,
        }])
    );

    // Newest first, paged, filtered.
    for request in ["req-2", "req-3"] {
        harness.shadow.submit(job(
            "CURRENT",
            request,
            answer(201, transfer("1.00")),
            answer(200, transfer("1.00")),
        ));
    }
    harness.shadow.submit(job(
        "SAVINGS",
        "req-4",
        answer(201, transfer("1.00")),
        answer(201, transfer("2.00")),
    ));
    harness.listing_with("", 4).await;
    let first = harness.listing("?product=CURRENT&limit=2").await;
    let first_page = first["mismatches"].as_array().unwrap();
    assert_eq!(first_page.len(), 2);
    assert_eq!(first_page[0]["differences"], json!(["status: 201 vs 200"]));
    let before = first["next_before"].as_str().unwrap();
    let second = harness
        .listing(&format!("?product=CURRENT&limit=2&before={before}"))
        .await;
    let requests: Vec<&str> = first_page
        .iter()
        .chain(second["mismatches"].as_array().unwrap())
        .map(|mismatch| mismatch["request_id"].as_str().unwrap())
        .collect();
    let mut sorted = requests.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["req-1", "req-2", "req-3"]);
    assert_eq!(requests.last(), Some(&"req-1"), "the oldest comes last");
    assert!(second["next_before"].is_null());
    let savings = harness
        .listing("?product=SAVINGS&operation=transfers")
        .await;
    assert_eq!(savings["mismatches"].as_array().unwrap().len(), 1);
    assert_eq!(savings["summary"][0]["product"], "SAVINGS");
    assert_eq!(savings["summary"].as_array().unwrap().len(), 1);

    let _ = harness
        .http
        .expect(
            StatusCode::FORBIDDEN,
            "GET",
            "/admin/v1/shadow",
            Some(("eve", "routes:write")),
            None,
        )
        .await;
    let _ = harness
        .http
        .expect(
            StatusCode::UNAUTHORIZED,
            "GET",
            "/admin/v1/shadow",
            None,
            None,
        )
        .await;
    let refusal = harness
        .http
        .expect_read(StatusCode::BAD_REQUEST, "/admin/v1/shadow?limit=0")
        .await;
    assert_eq!(refusal["code"], "invalid_argument");
}

#[tokio::test]
async fn equal_answers_after_normalisation_count_as_a_match() {
    let harness = Harness::start(config(16)).await;
    let legacy = json!({
        "id": "FT25060ABCDE",
        "entry_id": "FT25060ABCDE-1",
        "amount": "10.5",
        "balances_after": {"posted": "59.5", "available": "59.50"},
        "recorded_at": "2025-03-01T10:00:00Z",
        "replayed": false,
        "legs": [{"account": "000123", "amount": "-10.5"}],
    });
    let modern = json!({
        "id": "0195a3b4-7c1d-7e2f-8a9b-0c1d2e3f4a5b",
        "entry_id": "0195a3b4-0000-7000-8000-000000000001",
        "amount": "10.50",
        "balances_after": {"posted": "59.50", "available": "59.50"},
        "recorded_at": "2025-03-01T10:00:00.123456Z",
        "replayed": true,
        "legs": [{"account": "000123", "amount": "-10.50"}],
    });
    assert!(harness.shadow.submit(job(
        "CURRENT",
        "req-1",
        answer(201, legacy),
        answer(201, modern),
    )));
    let counts = harness
        .counts_when("CURRENT", "transfers", |counts| counts.compared == 1)
        .await;
    assert_eq!(
        (counts.matched, counts.mismatched, counts.shadow_errors),
        (1, 0, 0)
    );
    assert_eq!(harness.stored_mismatches().await, 0);
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_without_ever_blocking() {
    let mut config = config(2);
    config.workers = 1;
    let harness = Harness::start(config).await;
    let slow = |index: usize| ShadowJob {
        run: Box::pin(async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            answer(201, transfer("1.00"))
        }),
        ..job(
            "CURRENT",
            &format!("req-{index}"),
            answer(201, transfer("1.00")),
            answer(201, transfer("1.00")),
        )
    };
    let jobs: Vec<ShadowJob> = (0..100).map(slow).collect();

    let started = Instant::now();
    let queued = jobs
        .into_iter()
        .map(|job| harness.shadow.submit(job))
        .filter(|queued| *queued)
        .count();
    let elapsed = started.elapsed();

    assert!(
        elapsed < Duration::from_millis(50),
        "100 submits took {elapsed:?}"
    );
    assert!(
        (2..=3).contains(&queued),
        "the queue holds 2 (and the worker may have taken one): {queued}"
    );
    let dropped = u64::try_from(100 - queued).unwrap();
    let listing = harness.listing("?product=CURRENT").await;
    assert_eq!(listing["summary"][0]["dropped"], dropped);
    assert_eq!(
        harness.shadow.counts()[&("CURRENT".to_owned(), "transfers".to_owned())].dropped,
        dropped
    );
}

#[tokio::test]
async fn a_failed_shadow_is_a_shadow_error_not_a_mismatch() {
    let harness = Harness::start(config(16)).await;
    let unavailable =
        json!({"code": "unavailable", "message": "the modern ledger is down", "retry_safe": true});
    harness.shadow.submit(job(
        "CURRENT",
        "req-1",
        answer(201, transfer("1.00")),
        answer(503, unavailable.clone()),
    ));
    harness.shadow.submit(job(
        "CURRENT",
        "req-2",
        answer(201, transfer("1.00")),
        answer(
            500,
            json!({"code": "internal", "message": "internal error", "retry_safe": true}),
        ),
    ));
    let counts = harness
        .counts_when("CURRENT", "transfers", |counts| counts.shadow_errors == 2)
        .await;
    assert_eq!((counts.compared, counts.mismatched), (0, 0));
    assert_eq!(harness.stored_mismatches().await, 0);
    let listing = harness.listing("").await;
    assert_eq!(listing["summary"][0]["shadow_errors"], 2);
    assert_eq!(listing["mismatches"], json!([]));
}

fn rollback_config(requests_min: u64) -> ShadowConfig {
    ShadowConfig {
        rollback: RollbackPolicy {
            window: Duration::from_secs(60),
            requests_min,
            error_rate_max: 0.5,
            mismatch_rate_max: 0.5,
        },
        ..config(16)
    }
}

fn failure() -> Answer {
    answer(
        503,
        json!({"code": "unavailable", "message": "down", "retry_safe": true}),
    )
}

#[tokio::test]
async fn the_automatic_rollback_trips_on_the_modern_error_rate_and_is_audited() {
    let harness = Harness::start(rollback_config(10)).await;
    harness.route_transfers_to_modern().await;

    // The legacy side's failures never count against the modern side.
    harness.observe_transfers(Side::Legacy, 20, &failure());
    // 4 answers and 6 failures on the modern side: 60 % passes 50 % at the 10th.
    harness.observe_transfers(Side::Modern, 4, &answer(201, transfer("1.00")));
    harness.observe_transfers(Side::Modern, 6, &failure());

    let audits = harness.fallen_back_to_legacy().await;
    assert_eq!(audits[0].0, "active");
    assert_eq!(
        audits[0].1,
        "modern error rate 60.0% (6 of 10 answers) passed the threshold 50.0% over the last 60 s"
    );
    let counts = harness
        .counts_when("CURRENT", "transfers", |counts| {
            counts.automatic_rollbacks == 1
        })
        .await;
    assert_eq!(counts.automatic_rollbacks, 1);

    // The window started again: more failures below the minimum trip nothing.
    harness.observe_transfers(Side::Modern, 9, &failure());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(harness.automatic_rollback_audits().await.len(), 1);
}

#[tokio::test]
async fn the_automatic_rollback_trips_on_the_mismatch_rate_of_shadows() {
    let harness = Harness::start(rollback_config(4)).await;
    harness.route_transfers_to_modern().await;
    for index in 0..4 {
        let shadow = if index == 0 { "1.00" } else { "2.00" };
        harness.shadow.submit(ShadowJob {
            primary_side: Side::Modern,
            shadow_side: Side::Legacy,
            ..job(
                "CURRENT",
                &format!("req-{index}"),
                answer(201, transfer("1.00")),
                answer(201, transfer(shadow)),
            )
        });
    }
    let audits = harness.fallen_back_to_legacy().await;
    assert!(
        audits[0].1.starts_with(
            "shadow mismatch rate 75.0% (3 of 4 comparisons) passed the threshold 50.0%"
        ),
        "{audits:?}"
    );
}

#[tokio::test]
async fn nothing_trips_below_the_minimum_of_requests() {
    let harness = Harness::start(rollback_config(10)).await;
    harness.route_transfers_to_modern().await;
    harness.observe_transfers(Side::Modern, 9, &failure());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(harness.primary_for_anyone(), Side::Modern);
    assert!(harness.automatic_rollback_audits().await.is_empty());
    let counts = harness.shadow.counts();
    let counts = counts.get(&("CURRENT".to_owned(), "transfers".to_owned()));
    assert_eq!(counts.map_or(0, |counts| counts.automatic_rollbacks), 0);
}
