//! The API reference: `/openapi.json` is an OpenAPI 3 document of every route the routers
//! serve (read from the routers' own source), with the idempotency header, the routing
//! headers, the security schemes and the one error envelope; answer schemas agree with the
//! answer builders; `/openapi.json` and `/docs` (vendored Swagger UI) are served by the real
//! gateway without a token, and every documented operation is a route there.

use std::collections::BTreeSet;

use crate::common::spawn_gateway;
use corebank_api::deposits::v1 as dpb;
use corebank_api::payments::v1 as ppb;
use corebank_gateway::channel::json;
use corebank_gateway::openapi;
use corebank_testkit::{TestApp, TestDatabase};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The sources whose `.route(...)` calls make the `/v1` and `/admin/v1` routers.
const ROUTER_SOURCES: &[(&str, &str)] = &[
    ("channel/mod.rs", include_str!("../../src/channel/mod.rs")),
    (
        "routing/admin.rs",
        include_str!("../../src/routing/admin.rs"),
    ),
    ("shadow/admin.rs", include_str!("../../src/shadow/admin.rs")),
    ("sagas.rs", include_str!("../../src/sagas.rs")),
    (
        "approvals/admin.rs",
        include_str!("../../src/approvals/admin.rs"),
    ),
    ("products/mod.rs", include_str!("../../src/products/mod.rs")),
    ("migrations.rs", include_str!("../../src/migrations.rs")),
    (
        "reconciliation.rs",
        include_str!("../../src/reconciliation.rs"),
    ),
];

/// A floor for the parser below: the operations there were when this test was written.
const KNOWN: &[(&str, &str)] = &[
    ("POST", "/v1/accounts"),
    ("GET", "/v1/accounts/{account_id}"),
    ("GET", "/v1/accounts/{account_id}/balance"),
    ("GET", "/v1/accounts/{account_id}/statement"),
    ("POST", "/v1/accounts/{account_id}/deposits"),
    ("POST", "/v1/accounts/{account_id}/withdrawals"),
    ("POST", "/v1/accounts/{account_id}/holds"),
    ("POST", "/v1/accounts/{account_id}/holds/{hold_id}/release"),
    ("POST", "/v1/accounts/{account_id}/close"),
    ("GET", "/v1/customers/{customer_id}/accounts"),
    ("POST", "/v1/transfers"),
    ("GET", "/v1/transfers/{transfer_id}"),
    ("POST", "/v1/payments"),
    ("GET", "/v1/payments/{payment_id}"),
    ("POST", "/v1/payments/{payment_id}/cancel"),
    ("GET", "/admin/v1/routes"),
    ("GET", "/admin/v1/routes/versions"),
    ("GET", "/admin/v1/routes/versions/{version}"),
    ("GET", "/admin/v1/routes/proposals"),
    ("POST", "/admin/v1/routes/proposals"),
    ("POST", "/admin/v1/routes/proposals/{id}/approve"),
    ("POST", "/admin/v1/routes/proposals/{id}/reject"),
    ("POST", "/admin/v1/routes/rollback"),
    ("GET", "/admin/v1/routes/decide"),
    ("GET", "/admin/v1/shadow"),
    ("GET", "/admin/v1/sagas"),
    ("GET", "/admin/v1/sagas/{saga_id}"),
    ("POST", "/admin/v1/sagas/{saga_id}/retry"),
    ("POST", "/admin/v1/sagas/{saga_id}/resume"),
    ("POST", "/admin/v1/sagas/{saga_id}/force-compensate"),
    ("POST", "/admin/v1/sagas/{saga_id}/mark-resolved"),
    ("GET", "/admin/v1/approvals"),
    ("GET", "/admin/v1/approvals/{id}"),
    ("POST", "/admin/v1/approvals/{id}/approve"),
    ("POST", "/admin/v1/approvals/{id}/reject"),
    ("POST", "/admin/v1/payments/{payment_id}/screening-review"),
    ("POST", "/admin/v1/migrations"),
    ("GET", "/admin/v1/migrations"),
    ("GET", "/admin/v1/migrations/{migration_id}"),
    (
        "POST",
        "/admin/v1/migrations/{migration_id}/accounts/{account_id}/rollback",
    ),
    ("POST", "/admin/v1/reconciliation"),
    ("GET", "/admin/v1/reconciliation/{run_id}"),
];

/// `(METHOD, path)` of every `.route("path", get(..).post(..))` call in `source`.
fn routes_in(source: &str) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find(".route(") {
        let call = &rest[at + ".route(".len()..];
        // The call's arguments: up to its closing parenthesis.
        let mut depth = 1_usize;
        let mut end = call.len();
        for (index, c) in call.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = index;
                        break;
                    }
                }
                _ => {}
            }
        }
        let arguments = &call[..end];
        rest = &call[end..];
        // Router::route takes a path literal; other `.route(` calls (the gateway's routing
        // of a request to a side) do not.
        let Some(path) = arguments
            .trim_start()
            .strip_prefix('"')
            .and_then(|text| text.split('"').next())
        else {
            continue;
        };
        let handlers = &arguments[arguments.find(',').expect("a method router")..];
        for method in ["get", "post", "put", "patch", "delete"] {
            let mut from = 0;
            while let Some(position) = handlers[from..].find(&format!("{method}(")) {
                let position = from + position;
                let before = handlers[..position].chars().last().unwrap_or(' ');
                if !(before.is_alphanumeric() || before == '_') {
                    found.insert((method.to_uppercase(), path.to_owned()));
                }
                from = position + method.len();
            }
        }
    }
    found
}

fn served_routes() -> BTreeSet<(String, String)> {
    let mut served = BTreeSet::new();
    for (name, source) in ROUTER_SOURCES {
        let routes = routes_in(source);
        assert!(!routes.is_empty(), "no routes found in {name}");
        served.extend(routes);
    }
    served
}

fn document() -> Value {
    let text = serde_json::to_string(&openapi::document()).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `(METHOD, path, operation)` of every documented operation.
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                operations.push((method.to_uppercase(), path.clone(), operation.clone()));
            }
        }
    }
    operations
}

fn schema<'a>(document: &'a Value, name: &str) -> &'a Value {
    let schema = &document["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name}");
    schema
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn the_document_describes_every_served_route() {
    let document = document();
    let version = document["openapi"].as_str().unwrap();
    assert!(version.starts_with("3."), "openapi {version}");
    assert!(document["info"]["title"].is_string());

    let served = served_routes();
    for (method, path) in KNOWN {
        assert!(
            served.contains(&((*method).to_owned(), (*path).to_owned())),
            "the route parser missed {method} {path}"
        );
    }
    let documented: BTreeSet<(String, String)> = operations(&document)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served, not documented: {undocumented:?}"
    );
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(unserved.is_empty(), "documented, not served: {unserved:?}");
    let ids: BTreeSet<&str> = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    assert_eq!(ids.len(), served.len(), "operation ids are unique");
}

#[test]
fn every_operation_has_its_parameters_security_and_error_envelope() {
    let document = document();
    let schemes = &document["components"]["securitySchemes"];
    for name in [openapi::CHANNEL_SECURITY, openapi::ADMIN_SECURITY] {
        assert_eq!(schemes[name]["type"], "http", "{name}");
        assert_eq!(schemes[name]["scheme"], "bearer", "{name}");
        assert_eq!(schemes[name]["bearerFormat"], "JWT", "{name}");
    }
    assert!(
        schemes[openapi::CHANNEL_SECURITY]["description"]
            .as_str()
            .unwrap()
            .contains("corebank-channel")
    );
    assert!(
        schemes[openapi::ADMIN_SECURITY]["description"]
            .as_str()
            .unwrap()
            .contains("corebank-admin")
    );
    let envelope = schema(&document, openapi::ERROR_SCHEMA);
    assert_eq!(
        keys(&envelope["properties"]),
        ["code", "message", "retry_safe"].map(str::to_owned).into()
    );
    let error_ref = format!("#/components/schemas/{}", openapi::ERROR_SCHEMA);
    let mut channel_statuses = BTreeSet::new();
    for (method, path, operation) in operations(&document) {
        let what = format!("{method} {path}");
        let channel = path.starts_with("/v1/");
        let parameters = operation["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let parameter = |name: &str, place: &str| {
            parameters
                .iter()
                .find(|p| p["name"] == name && p["in"] == place)
                .cloned()
        };
        // Every path parameter is described.
        for segment in path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let described = parameter(name, "path")
                    .unwrap_or_else(|| panic!("{what}: path parameter {name} is not described"));
                assert_eq!(described["required"], true, "{what}: {name}");
            }
        }
        // The surface's token.
        let security = operation["security"].as_array().expect(&what);
        let scheme = if channel {
            openapi::CHANNEL_SECURITY
        } else {
            openapi::ADMIN_SECURITY
        };
        assert!(
            security[0][scheme].is_array(),
            "{what}: security {security:?}"
        );
        // Mutating channel operations need an Idempotency-Key.
        if channel && method == "POST" {
            let key = parameter("Idempotency-Key", "header")
                .unwrap_or_else(|| panic!("{what}: no Idempotency-Key"));
            assert_eq!(key["required"], true, "{what}");
            let body = &operation["requestBody"]["content"]["application/json"]["schema"];
            assert!(body["$ref"].is_string(), "{what}: request body {body}");
        } else {
            assert!(parameter("Idempotency-Key", "header").is_none(), "{what}");
        }
        if method == "POST" {
            assert!(
                operation["requestBody"].is_object(),
                "{what}: no request body"
            );
        }
        let responses = operation["responses"].as_object().unwrap();
        let mut succeeded = false;
        for (status, response) in responses {
            let schema = &response["content"]["application/json"]["schema"];
            if status.starts_with('2') {
                succeeded = true;
                assert!(schema.is_object(), "{what} {status}: no answer schema");
                if channel {
                    assert!(schema["$ref"].is_string(), "{what} {status}: {schema}");
                    // The routing headers, where the request is routed.
                    let routed = !matches!(
                        path.as_str(),
                        "/v1/customers/{customer_id}/accounts"
                            | "/v1/payments/{payment_id}"
                            | "/v1/payments/{payment_id}/cancel"
                    );
                    for header in ["X-Served-By", "X-Route-Version", "X-Route-Reason"] {
                        assert_eq!(
                            response["headers"][header].is_object(),
                            routed,
                            "{what} {status}: {header}"
                        );
                    }
                }
            } else {
                assert_eq!(schema["$ref"], error_ref.as_str(), "{what} {status}");
                let description = response["description"].as_str().unwrap();
                assert!(description.contains('`'), "{what} {status}: no codes");
                if channel {
                    channel_statuses.insert(status.clone());
                }
            }
        }
        assert!(succeeded, "{what}: no success response");
        for status in ["400", "401", "403", "503"] {
            assert!(responses.contains_key(status), "{what}: no {status}");
        }
        if channel && method == "POST" {
            for status in ["409", "422"] {
                assert!(responses.contains_key(status), "{what}: no {status}");
            }
        }
    }
    for status in ["400", "401", "403", "404", "409", "422", "503"] {
        assert!(channel_statuses.contains(status), "no /v1 {status}");
    }
}

/// The keys of an answer the builder made, against its schema's properties (recursively
/// through objects and arrays of objects).
fn same_shape(document: &Value, answer: &Value, schema_name: &str) {
    let schema = schema(document, schema_name);
    let properties = &schema["properties"];
    assert_eq!(keys(answer), keys(properties), "{schema_name}");
    for (key, value) in answer.as_object().unwrap() {
        let property = &properties[key];
        let nested = property["$ref"]
            .as_str()
            .or_else(|| property["items"]["$ref"].as_str())
            .and_then(|r| r.strip_prefix("#/components/schemas/"));
        match (value, nested) {
            (Value::Object(_), Some(name)) => same_shape(document, value, name),
            (Value::Array(items), Some(name)) => {
                for item in items {
                    same_shape(document, item, name);
                }
            }
            (Value::Object(_) | Value::Array(_), None) => {
                panic!("{schema_name}.{key}: no schema for {value}")
            }
            _ => {}
        }
    }
}

#[test]
fn answer_schemas_agree_with_the_answer_builders() {
    let document = document();
    let balances = dpb::Balances::default();
    let account = dpb::Account {
        balances: Some(balances.clone()),
        ..dpb::Account::default()
    };
    same_shape(&document, &json::account(&account, "a"), "AccountAnswer");
    same_shape(
        &document,
        &json::balances(Some(&balances)),
        "BalancesAnswer",
    );
    same_shape(
        &document,
        &json::movement(&dpb::Movement::default(), "a"),
        "MovementAnswer",
    );
    same_shape(
        &document,
        &json::hold(&dpb::Hold::default(), "a"),
        "HoldAnswer",
    );
    same_shape(
        &document,
        &json::transfer(&ppb::InternalTransferResult::default(), "a", "b"),
        "TransferAnswer",
    );
    let statement = dpb::Statement {
        lines: vec![dpb::StatementLine::default()],
        ..dpb::Statement::default()
    };
    same_shape(
        &document,
        &json::statement(&statement, "a"),
        "StatementAnswer",
    );
    let payment = ppb::Payment {
        steps: vec![ppb::PaymentStep::default()],
        ..ppb::Payment::default()
    };
    same_shape(&document, &json::payment(&payment, "a"), "PaymentAnswer");
}

/// What the gateway answers to one request.
/// `GET` of `path` on `gateway`: the status, the content type and the body.
async fn get(http: &reqwest::Client, gateway: &TestApp, path: &str) -> (u16, String, String) {
    fetch(http, reqwest::Method::GET, &gateway.url(path)).await
}

async fn fetch(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
) -> (u16, String, String) {
    let response = http.request(method, url).send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.unwrap())
}

/// A gateway with no core behind it (nothing here reaches one), and its dev settings.
struct Served {
    gateway: TestApp,
    settings: corebank_service::Settings,
    shutdown: CancellationToken,
    _database: TestDatabase,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&self.settings.home);
    }
}

async fn serve() -> Served {
    let database = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    let mut settings = corebank_service::Settings::defaults().unwrap();
    settings.home =
        std::env::temp_dir().join(format!("corebank-gateway-openapi-{}", uuid::Uuid::new_v4()));
    settings.dev = true;
    corebank_gateway::auth::dev::ensure_dev_keys(&settings.home).unwrap();
    let gateway = spawn_gateway(
        &settings,
        &database,
        "https://127.0.0.1:9".to_owned(),
        "https://127.0.0.1:9".to_owned(),
        &shutdown,
    )
    .await;
    Served {
        gateway,
        settings,
        shutdown,
        _database: database,
    }
}

#[tokio::test]
async fn the_gateway_serves_the_reference_without_a_token_and_every_operation_is_a_route() {
    let served = serve().await;
    let gateway = &served.gateway;
    let http = reqwest::Client::new();

    let (status, content_type, body) = get(&http, gateway, openapi::DOCUMENT_PATH).await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let served: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(served, document());

    // `/docs` leads to the Swagger UI page (redirects followed), which loads the document.
    let (status, content_type, body) = get(&http, gateway, openapi::DOCS_PATH).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(body.contains("swagger-ui"), "{body}");
    let (status, _, body) = get(&http, gateway, "/docs/swagger-initializer.js").await;
    assert_eq!(status, 200);
    assert!(body.contains(openapi::DOCUMENT_PATH), "{body}");
    let (status, _, _) = get(&http, gateway, "/docs/swagger-ui-bundle.js").await;
    assert_eq!(status, 200, "the vendored bundle");

    // Every documented operation is a route behind its surface's authentication.
    for (method, path, _) in operations(&document()) {
        let concrete = path
            .replace("{version}", "1")
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "00000000-0000-4000-8000-000000000001"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let (status, _, body) = fetch(&http, method.clone(), &gateway.url(&concrete)).await;
        assert_eq!(status, 401, "{method} {concrete}: {body}");
        let envelope: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(envelope["code"], "unauthenticated");
    }
    let (status, _, _) = get(&http, gateway, "/v1/nowhere").await;
    assert_eq!(status, 404);
}

/// Found by fuzzing the served document: PostgreSQL stores no U+0000, so such text reached
/// the audit trail or the directory and failed there (500), or a core (502). The document
/// says no text holds it, and the gateway refuses it first.
#[tokio::test]
async fn text_with_a_nul_is_refused_as_invalid_not_failed_on() {
    let served = serve().await;
    let keys = corebank_gateway::auth::dev::ensure_dev_keys(&served.settings.home).unwrap();
    let token = |role| {
        corebank_gateway::auth::dev::mint(
            &keys,
            &served.settings.jwt_issuer,
            role,
            "fuzzer",
            None,
            std::time::Duration::from_secs(600),
        )
        .unwrap()
    };
    let channel = token(corebank_gateway::auth::dev::Role::Channel);
    let operator = token(corebank_gateway::auth::dev::Role::Operator);
    let http = reqwest::Client::new();
    let requests = [
        (
            reqwest::Method::POST,
            "/v1/accounts",
            &channel,
            Some(r#"{"customer_id": "a\u0000b", "product_code": "CURRENT-EUR"}"#),
        ),
        (
            reqwest::Method::GET,
            "/v1/customers/a%00b/accounts",
            &channel,
            None,
        ),
        (
            reqwest::Method::GET,
            "/admin/v1/shadow?product=a%00b",
            &operator,
            None,
        ),
        (
            reqwest::Method::POST,
            "/admin/v1/routes/proposals",
            &operator,
            Some(r#"{"ownership": [{"account_id": "x", "side": "modern"}], "reason": "\u0000"}"#),
        ),
    ];
    for (method, path, token, body) in requests {
        let mut request = http
            .request(method.clone(), served.gateway.url(path))
            .bearer_auth(token)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .header("Content-Type", "application/json");
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let envelope: Value = response.json().await.unwrap();
        assert_eq!(status, 400, "{method} {path}: {envelope}");
        assert_eq!(envelope["code"], "invalid_argument", "{method} {path}");
        assert!(
            envelope["message"].as_str().unwrap().contains("U+0000"),
            "{envelope}"
        );
    }
    // The document says so: text it describes without another pattern admits no NUL.
    let document = document();
    let body = schema(&document, "OpenAccountBody");
    let product = &body["properties"]["product_code"]["pattern"];
    assert_eq!(product, "^[^\\u0000]*$");
}

#[test]
fn the_four_eyes_endpoints_document_their_bodies_kinds_and_refusals() {
    let document = document();
    let paths = &document["paths"];
    let body_of = |path: &str| {
        paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    // The request bodies are the serde types the handlers parse.
    assert_eq!(
        body_of("/admin/v1/approvals/{id}/approve"),
        "#/components/schemas/ApprovalDecisionBody"
    );
    assert_eq!(
        body_of("/admin/v1/approvals/{id}/reject"),
        "#/components/schemas/ApprovalDecisionBody"
    );
    assert_eq!(
        body_of("/admin/v1/payments/{payment_id}/screening-review"),
        "#/components/schemas/ScreeningReviewBody"
    );
    assert_eq!(
        keys(&schema(&document, "ApprovalDecisionBody")["properties"]),
        ["reason"].map(str::to_owned).into()
    );
    assert_eq!(
        keys(&schema(&document, "ScreeningReviewBody")["properties"]),
        ["decision", "reason"].map(str::to_owned).into()
    );
    let kinds: BTreeSet<&str> = schema(&document, "ApprovalKind")["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        kinds,
        [
            "saga_force_compensate",
            "saga_mark_resolved",
            "payment_screening_release",
            "payment_screening_refuse",
            "product_define",
            "migration_start",
            "migration_rollback",
            "migration_resume",
        ]
        .into()
    );
    let approval = keys(&schema(&document, "Approval")["properties"]);
    for field in [
        "id",
        "kind",
        "target",
        "proposed_by",
        "status",
        "decided_by",
        "expires_at",
        "outcome",
    ] {
        assert!(approval.contains(field), "Approval.{field}");
    }
    let approve = paths["/admin/v1/approvals/{id}/approve"]["post"]["description"]
        .as_str()
        .unwrap();
    for needed in [
        "sagas:approve",
        "payments:approve",
        "products:approve",
        "migrations:approve",
        "four_eyes_required",
        "proposal_expired",
    ] {
        assert!(approve.contains(needed), "{needed}: {approve}");
    }
    // Force-compensate and mark-resolved answer 202 with the proposal; only mark-resolved
    // names a resolution.
    for action in ["force-compensate", "mark-resolved"] {
        let proposed = &paths[format!("/admin/v1/sagas/{{saga_id}}/{action}").as_str()]["post"]["responses"]
            ["202"];
        assert!(proposed.is_object(), "{action}: {proposed}");
    }
    assert_eq!(
        body_of("/admin/v1/sagas/{saga_id}/mark-resolved"),
        "#/components/schemas/SagaResolutionBody"
    );
    assert_eq!(
        keys(&schema(&document, "SagaResolutionBody")["properties"]),
        ["reason", "resolution"].map(str::to_owned).into()
    );
    for action in ["retry", "resume", "force-compensate"] {
        assert_eq!(
            body_of(&format!("/admin/v1/sagas/{{saga_id}}/{action}")),
            "#/components/schemas/SagaActionBody"
        );
    }
    assert_eq!(
        keys(&schema(&document, "SagaActionBody")["properties"]),
        ["reason"].map(str::to_owned).into()
    );
}

/// Every `"$ref"` string under `value`, with where it stands.
fn references(value: &Value, at: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let here = format!("{at}/{key}");
                match (key.as_str(), inner) {
                    ("$ref", Value::String(target)) => found.push((here, target.clone())),
                    _ => references(inner, &here, found),
                }
            }
        }
        Value::Array(items) => {
            for (index, inner) in items.iter().enumerate() {
                references(inner, &format!("{at}/{index}"), found);
            }
        }
        _ => {}
    }
}

/// The value a local reference (`#/components/schemas/Name`) points at, by its JSON pointer.
fn resolve<'a>(document: &'a Value, target: &str) -> Option<&'a Value> {
    document.pointer(target.strip_prefix('#')?)
}

#[test]
fn every_reference_in_the_document_resolves() {
    let document = document();
    let mut found = Vec::new();
    references(&document, "#", &mut found);
    assert!(found.len() > 100, "only {} references found", found.len());
    let unresolved: Vec<_> = found
        .iter()
        .filter(|(_, target)| resolve(&document, target).is_none())
        .collect();
    assert!(
        unresolved.is_empty(),
        "references that resolve to nothing (a generated client fails on them): {unresolved:#?}"
    );
}
