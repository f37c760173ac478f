//! The door to the internal network (ADR 0009): a component's internal listener admits only
//! callers holding a certificate from the internal CA, serves each service only to the
//! components allowed to call it, and its clients reach only the component they meant. The
//! public listener serves health and nothing internal. With `COREBANK_INSECURE_INTERNAL`
//! callers only name themselves, and the allow lists still apply.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use corebank_api::payments::v1 as pb;
use corebank_api::payments::v1::payments_client::PaymentsClient;
use corebank_api::payments::v1::payments_server::{Payments, PaymentsServer};
use corebank_service::internal::pki::dev::DevCa;
use corebank_service::internal::pki::provider;
use corebank_service::internal::{Allow, Caller, ComponentIdentity, InternalClients};
use corebank_service::{Component, InternalMode, ServeOptions};
use corebank_testkit::health::assert_serving;
use corebank_testkit::{TRUST_DOMAIN, TestApp, clients, test_pki};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Response, Status};

/// The component the tests serve.
const SERVER: &str = "payments";
/// The one component the test service admits.
const ALLOWED_CALLER: &str = "gateway";
/// Another component of the same PKI, with no business calling the test service.
const OTHER_CALLER: &str = "deposits";
/// A refused connection must fail well within this (the listener's own handshake timeout is
/// 10 s; a refusal is immediate).
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(15);

/// A client for plain-HTTP endpoints. reqwest is built without a crypto provider of its own
/// (internal clients pass theirs) and panics without one, even for `http://`: install ring,
/// the one every TLS object here uses (a no-op once installed).
fn plain_http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A `Payments` service that answers `GetPayment` with who called it, as the access layer
/// told the handler: `reason` is `<component> verified` or `<component> claimed`.
#[derive(Debug, Clone, Copy)]
struct WhoCalls;

#[tonic::async_trait]
impl Payments for WhoCalls {
    async fn internal_transfer(
        &self,
        _request: Request<pb::InternalTransferRequest>,
    ) -> Result<Response<pb::InternalTransferResult>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }

    async fn initiate_payment(
        &self,
        _request: Request<pb::InitiatePaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }

    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let caller = Caller::of(&request)
            .ok_or_else(|| Status::internal("the access layer recorded no caller"))?;
        let how = if caller.is_verified() {
            "verified"
        } else {
            "claimed"
        };
        let reason = format!("{} {how}", caller.component());
        Ok(Response::new(pb::Payment {
            id: request.into_inner().payment_id,
            reason,
            ..Default::default()
        }))
    }

    async fn cancel_payment(
        &self,
        _request: Request<pb::CancelPaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }
}

fn component() -> Component {
    Component::new(SERVER).with_grpc(
        PaymentsServer::new(WhoCalls),
        Allow::only(&[ALLOWED_CALLER]),
    )
}

async fn get_payment(channel: Channel) -> Result<pb::Payment, Status> {
    get_payment_with(channel, Request::new(get_request())).await
}

fn get_request() -> pb::GetPaymentRequest {
    pb::GetPaymentRequest {
        payment_id: "p-1".to_owned(),
    }
}

async fn get_payment_with(
    channel: Channel,
    request: Request<pb::GetPaymentRequest>,
) -> Result<pb::Payment, Status> {
    let mut client = PaymentsClient::new(channel);
    tokio::time::timeout(REFUSAL_TIMEOUT, client.get_payment(request))
        .await
        .expect("the call neither succeeded nor failed in time")
        .map(Response::into_inner)
}

fn assert_permission_denied(status: &Status) {
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert_eq!(
        status.metadata().get("corebank-error-code").unwrap(),
        "permission_denied"
    );
}

/// Over raw TLS (tokio-rustls), trusting the test CA and presenting `identity` if any:
/// `GET /healthz` on the internal listener, and the whole answer. An error (or no answer)
/// means the listener refused the connection.
async fn raw_healthz(
    addr: SocketAddr,
    identity: Option<&ComponentIdentity>,
) -> std::io::Result<String> {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(test_pki().roots());
    let mut config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(identity.chain().to_vec(), identity.key().clone_key())
            .map_err(std::io::Error::other)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let server_name =
        ServerName::try_from(format!("{SERVER}.{TRUST_DOMAIN}")).map_err(std::io::Error::other)?;
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(server_name, tcp)
            .await?;
        tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: internal\r\nconnection: close\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        tls.read_to_end(&mut answer).await?;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    };
    tokio::time::timeout(REFUSAL_TIMEOUT, exchange)
        .await
        .expect("the internal listener neither answered nor refused in time")
}

fn assert_refused(outcome: &std::io::Result<String>) {
    match outcome {
        Err(_) => {}
        Ok(answer) => assert!(
            answer.is_empty(),
            "the internal listener answered a client it should have refused: {answer}"
        ),
    }
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_during_the_handshake() {
    let app = TestApp::spawn(component()).await;
    let without = raw_healthz(app.internal_addr, None).await;
    assert_refused(&without);

    // The same client with a certificate is answered: the refusal was the missing
    // certificate, not the client.
    let with = raw_healthz(
        app.internal_addr,
        Some(&test_pki().identity(OTHER_CALLER).unwrap()),
    )
    .await
    .unwrap();
    assert!(with.starts_with("HTTP/1.1 200"), "{with}");
    app.stop().await;
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused_even_for_an_allowed_name() {
    let app = TestApp::spawn(component()).await;
    let foreign = DevCa::generate(TRUST_DOMAIN, "foreign")
        .unwrap()
        .pki(&[ALLOWED_CALLER])
        .unwrap();
    let impostor = foreign.identity(ALLOWED_CALLER).unwrap();

    assert_refused(&raw_healthz(app.internal_addr, Some(&impostor)).await);

    // Over gRPC too: the call fails at the door, before any access rule could answer.
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(test_pki().ca_pem()))
        .identity(Identity::from_pem(impostor.cert_pem(), impostor.key_pem()))
        .domain_name(format!("{SERVER}.{TRUST_DOMAIN}"))
        .assume_http2(true);
    let channel = Endpoint::from_shared(app.internal_url(""))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_lazy();
    let refused = get_payment(channel).await.unwrap_err();
    assert_ne!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.metadata().get("corebank-error-code").is_none(),
        "no server answered: {refused:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_component_that_may_not_call_a_service_gets_permission_denied() {
    let app = TestApp::spawn(component()).await;
    let channel = app.channel(OTHER_CALLER, SERVER);
    let refused = get_payment(channel.clone()).await.unwrap_err();
    assert_permission_denied(&refused);

    // Naming another component in the header changes nothing: with mutual TLS the caller is
    // the one its certificate names.
    let mut disguised = Request::new(get_request());
    disguised
        .metadata_mut()
        .insert("x-corebank-caller", ALLOWED_CALLER.parse().unwrap());
    let refused = get_payment_with(channel.clone(), disguised)
        .await
        .unwrap_err();
    assert_permission_denied(&refused);

    // What is open to every component still answers it on the same connection.
    assert_serving(channel, "corebank.payments.v1.Payments").await;
    app.stop().await;
}

#[tokio::test]
async fn the_allowed_component_is_served_and_its_handler_sees_the_verified_caller() {
    let app = TestApp::spawn(component()).await;
    let payment = get_payment(app.channel(ALLOWED_CALLER, SERVER))
        .await
        .unwrap();
    assert_eq!(payment.id, "p-1");
    assert_eq!(payment.reason, format!("{ALLOWED_CALLER} verified"));
    app.stop().await;
}

#[tokio::test]
async fn the_public_listener_serves_health_and_nothing_internal() {
    let app = TestApp::spawn(component()).await;
    let http = plain_http();

    let alive = http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(alive.status(), 200);
    let ready = http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    for path in [
        "/corebank.payments.v1.Payments/GetPayment",
        "/grpc.health.v1.Health/Check",
        "/corebank.platform.v1.PlatformInfo/GetVersion",
    ] {
        let response = http
            .post(app.url(path))
            .header("content-type", "application/grpc")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    let metrics = http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(
        metrics.status(),
        404,
        "metrics are internal unless COREBANK_METRICS_PUBLIC=true"
    );

    // A gRPC client on the public port (plain HTTP/2) finds no such service.
    let public = Endpoint::from_shared(app.url("")).unwrap().connect_lazy();
    let missing = get_payment(public).await.unwrap_err();
    assert!(missing.message().contains("404"), "{missing:?}");

    // The same call on the internal listener is served.
    get_payment(app.channel(ALLOWED_CALLER, SERVER))
        .await
        .unwrap();
    app.stop().await;
}

#[tokio::test]
async fn metrics_public_serves_metrics_on_the_public_listener_too() {
    let shutdown = CancellationToken::new();
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let options = ServeOptions {
        requests_in_flight_max: 64,
        shutdown_grace: Duration::from_secs(1),
        metrics_public: true,
        // One identity, as a process serving one component holds: an HTTP client dialling
        // an IP address sends no server name to choose among several.
        internal: InternalMode::MutualTls(test_pki().only(&[SERVER]).unwrap()),
    };
    let server =
        corebank_service::serve(component(), loopback, loopback, options, shutdown.clone())
            .await
            .unwrap();
    let public = server.public_addr.unwrap();
    let metrics = plain_http()
        .get(format!("http://{public}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let scraped = clients("monitoring")
        .http_client(SERVER, Duration::from_secs(10))
        .unwrap()
        .get(format!("{}/metrics", server.internal_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), 200, "still on the internal listener");
    // Nothing else internal becomes public.
    let grpc = plain_http()
        .post(format!(
            "http://{public}/corebank.payments.v1.Payments/GetPayment"
        ))
        .header("content-type", "application/grpc")
        .send()
        .await
        .unwrap();
    assert_eq!(grpc.status(), 404);
    shutdown.cancel();
    server.stopped().await.unwrap();
}

#[tokio::test]
async fn a_client_refuses_a_server_that_is_not_the_component_it_meant_to_call() {
    // This server holds only the payments certificate.
    let only_payments = test_pki().only(&[SERVER]).unwrap();
    let app = TestApp::spawn_with(component(), InternalMode::MutualTls(only_payments)).await;
    let caller = clients(ALLOWED_CALLER);

    let meant_ledger = caller
        .endpoint(&app.internal_url(""), "ledger")
        .unwrap()
        .connect_lazy();
    let refused = get_payment(meant_ledger).await.unwrap_err();
    assert!(
        refused.metadata().get("corebank-error-code").is_none(),
        "the client must refuse the server before any request is sent: {refused:?}"
    );
    let http = clients("monitoring")
        .http_client("ledger", Duration::from_secs(10))
        .unwrap();
    http.get(app.internal_url("/healthz"))
        .send()
        .await
        .expect_err("an HTTP client that meant the ledger must refuse the payments server");

    // Meaning the component that answers works, with the same trust.
    let meant_payments = caller
        .endpoint(&app.internal_url(""), SERVER)
        .unwrap()
        .connect_lazy();
    let payment = get_payment(meant_payments).await.unwrap();
    assert_eq!(payment.reason, format!("{ALLOWED_CALLER} verified"));
    app.stop().await;
}

#[tokio::test]
async fn in_insecure_mode_callers_name_themselves_in_plain_http_and_the_allow_list_still_applies() {
    // Building even a plain-text reqwest client needs a crypto provider installed in the
    // process (`InternalClients::http_client` passes none in this mode).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let app = TestApp::spawn_with(component(), InternalMode::Insecure).await;
    let url = app.internal_url("");
    assert!(url.starts_with("http://"), "{url}");

    // The caller's name travels in the user agent of its gRPC channel.
    let allowed = InternalClients::insecure(ALLOWED_CALLER)
        .endpoint(&url, SERVER)
        .unwrap()
        .connect_lazy();
    let payment = get_payment(allowed).await.unwrap();
    assert_eq!(payment.reason, format!("{ALLOWED_CALLER} claimed"));

    let other = InternalClients::insecure(OTHER_CALLER)
        .endpoint(&url, SERVER)
        .unwrap()
        .connect_lazy();
    assert_permission_denied(&get_payment(other).await.unwrap_err());

    // A caller that names no component is not let in at all.
    let anonymous = Endpoint::from_shared(url.clone()).unwrap().connect_lazy();
    let refused = get_payment(anonymous).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    assert_eq!(
        refused.metadata().get("corebank-error-code").unwrap(),
        "unauthenticated"
    );

    // HTTP callers name themselves in x-corebank-caller.
    let monitoring = InternalClients::insecure("monitoring")
        .http_client(SERVER, Duration::from_secs(10))
        .unwrap();
    let metrics = monitoring
        .get(app.internal_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let unnamed = plain_http()
        .get(app.internal_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(unnamed.status(), 401);
    let body: serde_json::Value = unnamed.json().await.unwrap();
    assert_eq!(body["code"], "unauthenticated");
    app.stop().await;
}
