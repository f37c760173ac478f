//! Helpers shared by the gateway's integration tests.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use corebank_gateway::auth::dev::{self, Role};
use corebank_gateway::principal::{Principal, RequestContext, Surface};
use corebank_service::internal::component_names::GATEWAY;
use corebank_testkit::{TestApp, TestDatabase};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The route administration scopes of the test principals.
pub const READ: &str = "routes:read";
pub const WRITE: &str = "routes:read routes:write";
pub const APPROVE: &str = "routes:read routes:approve";

/// Stands in for the auth middleware: the principal comes from test headers.
pub async fn test_principal(mut request: Request, next: Next) -> Response {
    let header = |request: &Request, name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(subject) = header(&request, "x-test-subject") {
        let scopes = header(&request, "x-test-scopes").unwrap_or_default();
        let context = RequestContext {
            principal: Principal {
                subject,
                surface: Surface::Admin,
                scopes: scopes.split_whitespace().map(str::to_owned).collect(),
                customer_id: None,
            },
            origin: "127.0.0.1".to_owned(),
            request_id: uuid::Uuid::new_v4().to_string(),
        };
        request.extensions_mut().insert(context);
    }
    next.run(request).await
}

/// Calls one app's public listener as the principal of `test_principal`.
pub struct Http {
    client: reqwest::Client,
    app: TestApp,
}

impl Http {
    /// reqwest here has rustls without a provider of its own: ring is installed as the
    /// process's (never aws-lc).
    pub fn to(app: TestApp) -> Http {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Http {
            client: reqwest::Client::new(),
            app,
        }
    }

    /// The status and body (JSON, or the text as a JSON string) of one call, made as
    /// `who` (subject and scopes) when it is given.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        who: Option<(&str, &str)>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, self.app.url(path));
        if let Some((subject, scopes)) = who {
            request = request
                .header("x-test-subject", subject)
                .header("x-test-scopes", scopes);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    /// A POST of `body` to `path` by `who` (subject and scopes).
    pub async fn post(&self, path: &str, who: (&str, &str), body: Value) -> (StatusCode, Value) {
        self.call("POST", path, Some(who), Some(body)).await
    }

    /// A route change `body` proposed by `author`, which must be taken; answers its id.
    pub async fn propose(&self, author: &str, body: Value) -> String {
        let proposal = self
            .expect(
                StatusCode::CREATED,
                "POST",
                "/admin/v1/routes/proposals",
                Some((author, WRITE)),
                Some(body),
            )
            .await;
        assert_eq!(proposal["status"], "proposed");
        proposal["id"].as_str().unwrap().to_owned()
    }

    /// The approval of the route proposal `id` by `approver` with `scopes`.
    pub async fn approve(&self, approver: &str, scopes: &str, id: &str) -> (StatusCode, Value) {
        let path = format!("/admin/v1/routes/proposals/{id}/approve");
        self.call("POST", &path, Some((approver, scopes)), None)
            .await
    }

    /// A GET of `path` by the reader dave.
    pub async fn read(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, Some(("dave", READ)), None).await
    }

    /// The body of a GET of `path` by the reader dave, which must be answered with `status`.
    pub async fn expect_read(&self, status: StatusCode, path: &str) -> Value {
        self.expect(status, "GET", path, Some(("dave", READ)), None)
            .await
    }

    /// The body of one call that must be answered with `status`.
    pub async fn expect(
        &self,
        status: StatusCode,
        method: &str,
        path: &str,
        who: Option<(&str, &str)>,
        body: Option<Value>,
    ) -> Value {
        let (answered, body) = self.call(method, path, who, body).await;
        assert_eq!(answered, status, "{body}");
        body
    }
}

/// The gateway over `database`'s gateway schema, calling both sides with its certificate.
/// reqwest here has rustls without a provider of its own (ring, never aws-lc).
pub async fn spawn_gateway(
    settings: &corebank_service::Settings,
    database: &TestDatabase,
    legacy_url: String,
    modern_url: String,
    shutdown: &CancellationToken,
) -> TestApp {
    let gateway = TestApp::spawn(
        corebank_gateway::app::component(
            settings,
            database.db_for("gateway"),
            &corebank_gateway::app::Upstream {
                legacy_url,
                modern_url,
                clients: corebank_testkit::clients(GATEWAY),
            },
            shutdown.clone(),
        )
        .await
        .unwrap(),
    )
    .await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    gateway
}

/// Development mode in a home of its own under the temporary folder (`corebank-{name}-…`):
/// the gateway trusts the development keys made there, which are returned.
pub fn dev_home(settings: &mut corebank_service::Settings, name: &str) -> dev::DevKeys {
    settings.home = std::env::temp_dir().join(format!("corebank-{name}-{}", uuid::Uuid::new_v4()));
    settings.dev = true;
    dev::ensure_dev_keys(&settings.home).unwrap()
}

/// The text of `field` in each element of the JSON array `list`, in order.
pub fn each<'v>(list: &'v Value, field: &str) -> Vec<&'v str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|element| element[field].as_str().unwrap())
        .collect()
}

/// A development token for `subject` in `role` (for `customer` where given), valid for ten
/// minutes.
pub fn token(keys: &dev::DevKeys, role: Role, subject: &str, customer: Option<&str>) -> String {
    dev::mint(
        keys,
        "corebank-dev",
        role,
        subject,
        customer,
        std::time::Duration::from_secs(600),
    )
    .unwrap()
}

/// What the gateway answered: the status, the JSON body (null when there is none) and the
/// headers.
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    /// This answer, which must have `status` (the body says why when it has not).
    pub fn expect(self, status: u16) -> Answer {
        assert_eq!(self.status, status, "{}", self.body);
        self
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// Calls one gateway's admin API with bearer tokens (and no idempotency key: the admin API
/// takes none).
pub struct Admin {
    http: reqwest::Client,
    pub gateway: TestApp,
}

impl Admin {
    pub fn to(gateway: TestApp) -> Admin {
        Admin {
            http: reqwest::Client::new(),
            gateway,
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        let url = self.gateway.url(path);
        send(&self.http, method, url, Some(token), None, body).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    /// The answer to deciding the proposal `approval` (`approve` or `reject`) with `reason`.
    pub async fn decide(&self, approval: &str, verdict: &str, token: &str, reason: &str) -> Answer {
        let path = format!("/admin/v1/approvals/{approval}/{verdict}");
        self.post(&path, token, json!({ "reason": reason })).await
    }
}

/// One call to `url`, with a bearer `token` and an `idempotency-key` where given.
pub async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    key: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut request = http.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        body,
        headers,
    }
}

/// An ES256 signing key and its public JWK.
#[derive(Clone)]
pub struct EcKey {
    pub kid: String,
    pub pkcs8: Vec<u8>,
    pub jwk: Value,
}

impl EcKey {
    pub fn generate(kid: &str) -> EcKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref();
        EcKey {
            kid: kid.to_owned(),
            pkcs8: pkcs8.as_ref().to_vec(),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            }),
        }
    }

    /// `claims` signed with this key, its kid in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
    }
}
