//! Helpers shared by the gateway's integration tests.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use corebank_gateway::principal::{Principal, RequestContext, Surface};
use corebank_service::internal::component_names::GATEWAY;
use corebank_testkit::{TestApp, TestDatabase};
use reqwest::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

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
