//! The authentication matrix: every way a token is refused, with its exact code, and the
//! ways keys are found, pinned, rotated and served. No database; each test writes its key
//! set to a directory of its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::EcKey;
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use corebank_gateway::auth::dev::{self, Role};
use corebank_gateway::auth::{
    AuthConfig, AuthError, Authenticator, DEV_HS256_KID, JwksSource, require_customer,
    require_scope,
};
use corebank_gateway::principal::{Principal, Surface, scope};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const ISSUER: &str = "corebank-test";
const LEEWAY_S: u64 = 30;
const DEV_SECRET: &str = "a dev secret that is long enough for HS256";

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "corebank-auth-test-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An RS256 signing key (made by `openssl`, ring cannot generate RSA keys) and its JWK.
struct RsaKey {
    kid: String,
    private_pem: Vec<u8>,
    public_pem: Vec<u8>,
    jwk: Value,
}

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| {
            panic!("the RS256 tests need `openssl` on PATH to make an RSA test key: {error}")
        });
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

impl RsaKey {
    fn generate(dir: &Path, kid: &str) -> RsaKey {
        openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "rsa.pem",
            ],
        );
        let public_pem = openssl(dir, &["pkey", "-in", "rsa.pem", "-pubout"]);
        let modulus = String::from_utf8(openssl(
            dir,
            &["rsa", "-in", "rsa.pem", "-noout", "-modulus"],
        ))
        .unwrap();
        let hex = modulus.trim().strip_prefix("Modulus=").unwrap();
        let n: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        RsaKey {
            kid: kid.to_owned(),
            private_pem: std::fs::read(dir.join("rsa.pem")).unwrap(),
            public_pem,
            jwk: json!({
                "kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(&n), "e": "AQAB",
            }),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(
            &header,
            claims,
            &EncodingKey::from_rsa_pem(&self.private_pem).unwrap(),
        )
        .unwrap()
    }
}

/// A key set on disk with one EC and one RSA key.
struct Fixture {
    dir: TempDir,
    ec: EcKey,
    rsa: RsaKey,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = TempDir::new();
        let ec = EcKey::generate("ec-1");
        let rsa = RsaKey::generate(&dir.0, "rsa-1");
        let fixture = Fixture { dir, ec, rsa };
        fixture.publish(&[&fixture.ec.jwk, &fixture.rsa.jwk]);
        fixture
    }

    fn jwks_path(&self) -> PathBuf {
        self.dir.0.join("jwks.json")
    }

    /// Replaces the key set file atomically, as an operator's deploy would.
    fn publish(&self, keys: &[&Value]) {
        let temporary = self.dir.0.join("jwks.json.tmp");
        std::fs::write(
            &temporary,
            serde_json::to_vec(&json!({ "keys": keys })).unwrap(),
        )
        .unwrap();
        std::fs::rename(&temporary, self.jwks_path()).unwrap();
    }

    fn config(&self) -> AuthConfig {
        AuthConfig {
            issuer: ISSUER.to_owned(),
            jwks: JwksSource::File(self.jwks_path()),
            refresh: Duration::from_secs(300),
            leeway_s: LEEWAY_S,
            dev_hs256_secret: None,
            dev_allowed: false,
            jwks_ca: None,
        }
    }

    async fn authenticator(&self) -> Authenticator {
        Authenticator::new(self.config()).await.unwrap()
    }

    async fn dev_mode_authenticator(&self) -> Authenticator {
        Authenticator::new(AuthConfig {
            dev_hs256_secret: Some(DEV_SECRET.to_owned()),
            dev_allowed: true,
            ..self.config()
        })
        .await
        .unwrap()
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Valid claims for a channel client bound to customer `C-1`.
fn channel_claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": "corebank-channel",
        "sub": "mobile-app",
        "iat": now(),
        "nbf": now(),
        "exp": now() + 300,
        "scope": "accounts:read accounts:write payments:write",
        "customer_id": "C-1",
    })
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let message = format!("{}.{}", b64(header), b64(claims));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, message.as_bytes());
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn refused(authenticator: &Authenticator, token: &str, surface: Surface) -> AuthError {
    authenticator
        .authenticate(Some(&bearer(token)), surface)
        .await
        .expect_err("the token must be refused")
}

async fn accepted(authenticator: &Authenticator, token: &str, surface: Surface) -> Principal {
    authenticator
        .authenticate(Some(&bearer(token)), surface)
        .await
        .unwrap_or_else(|error| panic!("the token must be accepted, was refused: {error}"))
}

/// A fixture and an authenticator that trusts its published keys.
async fn started() -> (Fixture, Authenticator) {
    let fixture = Fixture::new();
    let authenticator = fixture.authenticator().await;
    (fixture, authenticator)
}

/// The refusal of `token` on `surface`, which must be an `unauthenticated` one with `code`.
async fn unauthenticated_on(
    authenticator: &Authenticator,
    token: &str,
    surface: Surface,
    code: &str,
) -> AuthError {
    let error = refused(authenticator, token, surface).await;
    assert_unauthenticated(&error, code);
    error
}

/// The refusal of `token` on the channel surface, which must be an `unauthenticated` one
/// with `code`.
async fn unauthenticated(authenticator: &Authenticator, token: &str, code: &str) -> AuthError {
    unauthenticated_on(authenticator, token, Surface::Channel, code).await
}

fn assert_unauthenticated(error: &AuthError, code: &str) {
    assert_eq!(error.code(), code, "{error}");
    let api = error.api_error();
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.code, "unauthenticated");
}

#[tokio::test]
async fn an_es256_token_yields_its_principal() {
    let (fixture, authenticator) = started().await;
    let principal = accepted(
        &authenticator,
        &fixture.ec.sign(&channel_claims()),
        Surface::Channel,
    )
    .await;
    assert_eq!(principal.subject, "mobile-app");
    assert_eq!(principal.surface, Surface::Channel);
    assert_eq!(principal.customer_id.as_deref(), Some("C-1"));
    assert!(principal.has_scope(scope::ACCOUNTS_READ));
    assert!(principal.has_scope(scope::PAYMENTS_WRITE));
    assert!(!principal.has_scope(scope::ROUTES_WRITE));
}

#[tokio::test]
async fn an_rs256_token_is_accepted() {
    let (fixture, authenticator) = started().await;
    accepted(
        &authenticator,
        &fixture.rsa.sign(&channel_claims()),
        Surface::Channel,
    )
    .await;
}

#[tokio::test]
async fn scopes_are_read_from_an_scp_array_too() {
    let (fixture, authenticator) = started().await;
    let claims = with(
        without(channel_claims(), "scope"),
        "scp",
        json!(["accounts:read", "payments:write"]),
    );
    let principal = accepted(&authenticator, &fixture.ec.sign(&claims), Surface::Channel).await;
    assert!(principal.has_scope(scope::ACCOUNTS_READ));
    assert!(principal.has_scope(scope::PAYMENTS_WRITE));
    assert!(!principal.has_scope(scope::ACCOUNTS_WRITE));
}

#[tokio::test]
async fn a_request_without_a_bearer_token_is_refused() {
    let (fixture, authenticator) = started().await;
    let error = authenticator
        .authenticate(None, Surface::Channel)
        .await
        .unwrap_err();
    assert_unauthenticated(&error, "missing_token");
    let error = authenticator
        .authenticate(Some("Bearer "), Surface::Channel)
        .await
        .unwrap_err();
    assert_unauthenticated(&error, "missing_token");
    let token = fixture.ec.sign(&channel_claims());
    let error = authenticator
        .authenticate(Some(&format!("Basic {token}")), Surface::Channel)
        .await
        .unwrap_err();
    assert_unauthenticated(&error, "malformed_token");
    let error = authenticator
        .authenticate(Some("Bearer not-a-jwt"), Surface::Channel)
        .await
        .unwrap_err();
    assert_unauthenticated(&error, "malformed_token");
}

#[tokio::test]
async fn an_unsigned_token_alg_none_is_refused() {
    let fixture = Fixture::new();
    let authenticator = fixture.dev_mode_authenticator().await;
    for alg in ["none", "None", "NONE"] {
        let token = format!(
            "{}.{}.",
            b64(&json!({ "alg": alg, "typ": "JWT", "kid": fixture.ec.kid })),
            b64(&channel_claims())
        );
        unauthenticated(&authenticator, &token, "algorithm_not_allowed").await;
    }
}

#[tokio::test]
async fn an_hs256_token_signed_with_the_rsa_public_key_is_refused() {
    let fixture = Fixture::new();
    let header = json!({ "alg": "HS256", "typ": "JWT", "kid": fixture.rsa.kid });
    let token = hs256(&header, &channel_claims(), &fixture.rsa.public_pem);
    unauthenticated(
        &fixture.authenticator().await,
        &token,
        "algorithm_not_allowed",
    )
    .await;
    // Dev mode does not open the door either: HS256 is pinned to the dev kid.
    unauthenticated(
        &fixture.dev_mode_authenticator().await,
        &token,
        "algorithm_not_allowed",
    )
    .await;
    // Nor does the EC key's public JWK used as an HMAC secret.
    let header = json!({ "alg": "HS256", "typ": "JWT", "kid": fixture.ec.kid });
    let secret = serde_json::to_vec(&fixture.ec.jwk).unwrap();
    let token = hs256(&header, &channel_claims(), &secret);
    unauthenticated(
        &fixture.dev_mode_authenticator().await,
        &token,
        "algorithm_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn an_es256_token_presented_as_rs256_is_refused() {
    let (fixture, authenticator) = started().await;
    let token = fixture.ec.sign(&channel_claims());
    let (_, rest) = token.split_once('.').unwrap();
    let relabelled = format!(
        "{}.{rest}",
        b64(&json!({ "alg": "RS256", "typ": "JWT", "kid": fixture.ec.kid }))
    );
    unauthenticated(&authenticator, &relabelled, "algorithm_not_allowed").await;
    // And the other way round: the RSA key is pinned to RS256.
    let token = fixture.rsa.sign(&channel_claims());
    let (_, rest) = token.split_once('.').unwrap();
    let relabelled = format!(
        "{}.{rest}",
        b64(&json!({ "alg": "ES256", "typ": "JWT", "kid": fixture.rsa.kid }))
    );
    unauthenticated(&authenticator, &relabelled, "algorithm_not_allowed").await;
}

#[tokio::test]
async fn a_token_expired_beyond_the_leeway_is_refused() {
    let (fixture, authenticator) = started().await;
    let claims = with(
        channel_claims(),
        "exp",
        json!(now() - 2 * i64::try_from(LEEWAY_S).unwrap()),
    );
    unauthenticated(&authenticator, &fixture.ec.sign(&claims), "expired").await;
}

#[tokio::test]
async fn a_token_expired_within_the_leeway_is_accepted() {
    let (fixture, authenticator) = started().await;
    let claims = with(
        channel_claims(),
        "exp",
        json!(now() - i64::try_from(LEEWAY_S / 3).unwrap()),
    );
    accepted(&authenticator, &fixture.ec.sign(&claims), Surface::Channel).await;
}

#[tokio::test]
async fn a_token_not_yet_valid_is_refused() {
    let (fixture, authenticator) = started().await;
    let claims = with(
        channel_claims(),
        "nbf",
        json!(now() + 2 * i64::try_from(LEEWAY_S).unwrap()),
    );
    unauthenticated(&authenticator, &fixture.ec.sign(&claims), "not_yet_valid").await;
}

#[tokio::test]
async fn a_channel_token_is_refused_on_the_admin_surface() {
    let (fixture, authenticator) = started().await;
    let token = fixture.ec.sign(&channel_claims());
    unauthenticated_on(&authenticator, &token, Surface::Admin, "wrong_audience").await;
    unauthenticated_on(&authenticator, &token, Surface::Audit, "wrong_audience").await;
}

#[tokio::test]
async fn a_token_from_another_issuer_is_refused() {
    let (fixture, authenticator) = started().await;
    let claims = with(channel_claims(), "iss", json!("someone-else"));
    unauthenticated(&authenticator, &fixture.ec.sign(&claims), "wrong_issuer").await;
}

#[tokio::test]
async fn a_token_signed_with_an_unknown_key_is_refused() {
    let (fixture, authenticator) = started().await;
    let stranger = EcKey::generate("not-published");
    unauthenticated(
        &authenticator,
        &stranger.sign(&channel_claims()),
        "unknown_key",
    )
    .await;
    // A stranger's key under a published kid fails on the signature.
    let impostor = EcKey {
        kid: fixture.ec.kid.clone(),
        ..stranger
    };
    unauthenticated(
        &authenticator,
        &impostor.sign(&channel_claims()),
        "bad_signature",
    )
    .await;
}

#[tokio::test]
async fn a_token_without_a_kid_is_refused() {
    let (fixture, authenticator) = started().await;
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &channel_claims(),
        &EncodingKey::from_ec_der(&fixture.ec.pkcs8),
    )
    .unwrap();
    unauthenticated(&authenticator, &token, "malformed_token").await;
}

#[tokio::test]
async fn a_token_with_a_tampered_signature_is_refused() {
    let (fixture, authenticator) = started().await;
    for token in [
        fixture.ec.sign(&channel_claims()),
        fixture.rsa.sign(&channel_claims()),
    ] {
        let (message, signature) = token.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        bytes[10] ^= 0x01;
        let tampered = format!("{message}.{}", URL_SAFE_NO_PAD.encode(&bytes));
        unauthenticated(&authenticator, &tampered, "bad_signature").await;
    }
}

#[tokio::test]
async fn a_token_with_a_tampered_payload_is_refused() {
    let (fixture, authenticator) = started().await;
    let token = fixture.ec.sign(&channel_claims());
    let parts: Vec<&str> = token.split('.').collect();
    let widened = b64(&with(channel_claims(), "customer_id", json!("C-2")));
    let tampered = format!("{}.{widened}.{}", parts[0], parts[2]);
    unauthenticated(&authenticator, &tampered, "bad_signature").await;
}

#[tokio::test]
async fn a_token_without_sub_or_exp_or_nbf_is_refused() {
    let (fixture, authenticator) = started().await;
    for claim in ["sub", "exp", "nbf", "iss", "aud"] {
        let token = fixture.ec.sign(&without(channel_claims(), claim));
        let error = unauthenticated(&authenticator, &token, "missing_claim").await;
        assert!(error.to_string().contains(claim), "{error}");
    }
    let token = fixture.ec.sign(&with(channel_claims(), "sub", json!("  ")));
    unauthenticated(&authenticator, &token, "missing_claim").await;
}

#[tokio::test]
async fn a_token_without_the_scope_is_forbidden() {
    let (fixture, authenticator) = started().await;
    let claims = with(channel_claims(), "scope", json!("accounts:read"));
    let principal = accepted(&authenticator, &fixture.ec.sign(&claims), Surface::Channel).await;
    require_scope(&principal, scope::ACCOUNTS_READ).unwrap();
    let error = require_scope(&principal, scope::PAYMENTS_WRITE).unwrap_err();
    assert_eq!(error.code(), "missing_scope");
    let api = error.api_error();
    assert_eq!(api.status, StatusCode::FORBIDDEN);
    assert_eq!(api.code, "forbidden");
    assert!(
        api.message.contains(scope::PAYMENTS_WRITE),
        "{}",
        api.message
    );
}

#[tokio::test]
async fn a_customer_bound_token_may_not_touch_another_customer() {
    let (fixture, authenticator) = started().await;
    let principal = accepted(
        &authenticator,
        &fixture.ec.sign(&channel_claims()),
        Surface::Channel,
    )
    .await;
    require_customer(&principal, "C-1").unwrap();
    let error = require_customer(&principal, "C-2").unwrap_err();
    assert_eq!(error.code(), "other_customer");
    assert_eq!(error.api_error().status, StatusCode::FORBIDDEN);
    // A channel token bound to no customer acts for any.
    let unbound = fixture.ec.sign(&without(channel_claims(), "customer_id"));
    let principal = accepted(&authenticator, &unbound, Surface::Channel).await;
    require_customer(&principal, "C-2").unwrap();
    // An empty binding is not read as "unbound".
    let empty = fixture
        .ec
        .sign(&with(channel_claims(), "customer_id", json!("")));
    unauthenticated(&authenticator, &empty, "malformed_token").await;
}

#[tokio::test]
async fn hs256_is_refused_without_dev_mode_and_accepted_with_it_for_the_dev_kid_only() {
    let fixture = Fixture::new();
    let header = json!({ "alg": "HS256", "typ": "JWT", "kid": DEV_HS256_KID });
    let token = hs256(&header, &channel_claims(), DEV_SECRET.as_bytes());

    unauthenticated(
        &fixture.authenticator().await,
        &token,
        "algorithm_not_allowed",
    )
    .await;

    let dev = fixture.dev_mode_authenticator().await;
    let principal = accepted(&dev, &token, Surface::Channel).await;
    assert_eq!(principal.subject, "mobile-app");

    let other_kid = json!({ "alg": "HS256", "typ": "JWT", "kid": "my-key" });
    unauthenticated(
        &dev,
        &hs256(&other_kid, &channel_claims(), DEV_SECRET.as_bytes()),
        "algorithm_not_allowed",
    )
    .await;

    let wrong_secret = hs256(
        &header,
        &channel_claims(),
        b"another secret entirely, also long",
    );
    unauthenticated(&dev, &wrong_secret, "bad_signature").await;

    // The dev kid cannot be borrowed by an asymmetric token either.
    let impostor = EcKey {
        kid: DEV_HS256_KID.to_owned(),
        ..EcKey::generate("x")
    };
    unauthenticated(
        &dev,
        &impostor.sign(&channel_claims()),
        "algorithm_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn refusals_never_carry_key_material() {
    let fixture = Fixture::new();
    let authenticator = fixture.dev_mode_authenticator().await;
    let header = json!({ "alg": "HS256", "typ": "JWT", "kid": DEV_HS256_KID });
    let token = hs256(&header, &channel_claims(), b"guessing the secret, wrongly");
    let error = refused(&authenticator, &token, Surface::Channel).await;
    let message = error.api_error().message;
    assert!(!message.contains(DEV_SECRET));
    assert!(!message.contains(fixture.ec.jwk["x"].as_str().unwrap()));
    assert!(!format!("{authenticator:?}").contains(DEV_SECRET));
    assert!(!format!("{:?}", fixture.config()).contains(DEV_SECRET));
}

#[tokio::test]
async fn an_unknown_kid_reloads_the_key_set_at_most_once_per_interval() {
    let (fixture, authenticator) = started().await;
    let second = EcKey::generate("ec-2");
    let third = EcKey::generate("ec-3");

    fixture.publish(&[&fixture.ec.jwk, &second.jwk]);
    accepted(
        &authenticator,
        &second.sign(&channel_claims()),
        Surface::Channel,
    )
    .await;

    // Within the interval, another unknown kid does not reload: refused although published.
    fixture.publish(&[&fixture.ec.jwk, &second.jwk, &third.jwk]);
    unauthenticated(
        &authenticator,
        &third.sign(&channel_claims()),
        "unknown_key",
    )
    .await;

    // A refresh picks it up.
    assert_eq!(authenticator.refresh().await.unwrap(), 3);
    accepted(
        &authenticator,
        &third.sign(&channel_claims()),
        Surface::Channel,
    )
    .await;
}

async fn eventually_accepted(authenticator: &Authenticator, token: &str) {
    for _ in 0..100 {
        if authenticator
            .authenticate(Some(&bearer(token)), Surface::Channel)
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the token was never accepted");
}

async fn eventually_refused(authenticator: &Authenticator, token: &str) -> AuthError {
    for _ in 0..100 {
        if let Err(error) = authenticator
            .authenticate(Some(&bearer(token)), Surface::Channel)
            .await
        {
            return error;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the token was never refused");
}

#[tokio::test]
async fn keys_rotate_without_a_restart() {
    let fixture = Fixture::new();
    let authenticator = Authenticator::new(AuthConfig {
        refresh: Duration::from_millis(100),
        ..fixture.config()
    })
    .await
    .unwrap();
    let shutdown = CancellationToken::new();
    authenticator.spawn_refresh(shutdown.clone());
    let old_token = fixture.ec.sign(&channel_claims());
    let rotated = EcKey::generate("ec-rotated");
    let new_token = rotated.sign(&channel_claims());

    // Not published yet; this also spends the on-demand reload, so what follows is the
    // periodic refresh's doing.
    unauthenticated(&authenticator, &new_token, "unknown_key").await;

    fixture.publish(&[&fixture.ec.jwk, &rotated.jwk]);
    eventually_accepted(&authenticator, &new_token).await;
    accepted(&authenticator, &old_token, Surface::Channel).await;

    fixture.publish(&[&rotated.jwk]);
    let error = eventually_refused(&authenticator, &old_token).await;
    assert_unauthenticated(&error, "unknown_key");
    accepted(&authenticator, &new_token, Surface::Channel).await;

    // A key set that cannot be read keeps the cached keys.
    std::fs::write(fixture.jwks_path(), b"{ half a file").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    accepted(&authenticator, &new_token, Surface::Channel).await;
    shutdown.cancel();
}

#[tokio::test]
async fn a_jwks_served_over_plain_http_is_refused_outside_dev_mode_and_used_in_it() {
    let fixture = Fixture::new();
    let jwks = json!({ "keys": [fixture.ec.jwk, fixture.rsa.jwk] });
    let router = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    // In clear text the key set could be swapped on the way: refused outside dev mode.
    let refused = Authenticator::new(AuthConfig {
        jwks: JwksSource::Url(format!("http://{address}/.well-known/jwks.json")),
        dev_allowed: false,
        ..fixture.config()
    })
    .await
    .unwrap_err();
    assert_eq!(refused.code(), "dev_mode_required", "{refused}");
    assert!(refused.to_string().contains("https://"), "{refused}");

    let authenticator = Authenticator::new(AuthConfig {
        jwks: JwksSource::Url(format!("http://{address}/.well-known/jwks.json")),
        dev_allowed: true,
        ..fixture.config()
    })
    .await
    .unwrap();
    accepted(
        &authenticator,
        &fixture.ec.sign(&channel_claims()),
        Surface::Channel,
    )
    .await;
    accepted(
        &authenticator,
        &fixture.rsa.sign(&channel_claims()),
        Surface::Channel,
    )
    .await;

    let error = Authenticator::new(AuthConfig {
        jwks: JwksSource::Url(format!("http://{address}/missing")),
        dev_allowed: true,
        ..fixture.config()
    })
    .await
    .unwrap_err();
    assert_eq!(error.code(), "jwks_unavailable");
    assert!(error.to_string().contains("404"), "{error}");
    server.abort();
}

#[tokio::test]
async fn a_missing_configured_key_set_is_an_error_naming_the_setting() {
    let dir = TempDir::new();
    let error = Authenticator::new(AuthConfig {
        issuer: ISSUER.to_owned(),
        jwks: JwksSource::File(dir.0.join("nowhere.json")),
        refresh: Duration::from_secs(300),
        leeway_s: LEEWAY_S,
        dev_hs256_secret: None,
        dev_allowed: false,
        jwks_ca: None,
    })
    .await
    .unwrap_err();
    assert_eq!(error.code(), "jwks_unavailable");
    let message = error.to_string();
    assert!(message.contains("COREBANK_JWT_JWKS"), "{message}");
    assert!(message.contains("nowhere.json"), "{message}");
    assert!(!dir.0.join("nowhere.json").exists());
}

#[tokio::test]
async fn symmetric_and_weak_keys_in_a_jwks_are_ignored() {
    let fixture = Fixture::new();
    let weak_rsa = json!({ "kty": "RSA", "kid": "weak", "n": URL_SAFE_NO_PAD.encode([0xC5u8; 128]), "e": "AQAB" });
    let oct = json!({ "kty": "oct", "kid": "shared", "k": URL_SAFE_NO_PAD.encode(DEV_SECRET) });
    fixture.publish(&[&fixture.ec.jwk, &weak_rsa, &oct]);
    let authenticator = fixture.authenticator().await;
    accepted(
        &authenticator,
        &fixture.ec.sign(&channel_claims()),
        Surface::Channel,
    )
    .await;
    let header = json!({ "alg": "HS256", "typ": "JWT", "kid": "shared" });
    let token = hs256(&header, &channel_claims(), DEV_SECRET.as_bytes());
    unauthenticated(&authenticator, &token, "algorithm_not_allowed").await;
}

#[tokio::test]
async fn dev_keys_are_created_once_and_dev_tokens_authenticate_per_role() {
    let home = TempDir::new();
    let authenticator = Authenticator::new(AuthConfig {
        issuer: ISSUER.to_owned(),
        jwks: JwksSource::DevHome(home.0.clone()),
        refresh: Duration::from_secs(300),
        leeway_s: LEEWAY_S,
        dev_hs256_secret: None,
        dev_allowed: true,
        jwks_ca: None,
    })
    .await
    .unwrap();
    let keys = dev::ensure_dev_keys(&home.0).unwrap();
    assert_eq!(keys.private_key_path(), home.0.join("dev-keys/es256.pk8"));
    assert_eq!(keys.jwks_path(), home.0.join("dev-keys/jwks.json"));
    let again = dev::ensure_dev_keys(&home.0).unwrap();
    assert_eq!(keys.kid(), again.kid(), "the dev key pair is made once");
    assert!(!format!("{keys:?}").contains("pkcs8: ["));
    let jwks: Value = serde_json::from_slice(&std::fs::read(keys.jwks_path()).unwrap()).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwks["keys"][0]["kid"], keys.kid());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(keys.private_key_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the private key is readable by its owner only"
        );
    }

    let ttl = Duration::from_secs(600);
    let cases = [
        (
            Role::Channel,
            Surface::Channel,
            vec![
                scope::ACCOUNTS_READ,
                scope::ACCOUNTS_WRITE,
                scope::PAYMENTS_WRITE,
            ],
        ),
        (
            Role::Operator,
            Surface::Admin,
            vec![scope::ROUTES_READ, scope::ROUTES_WRITE],
        ),
        (
            Role::Approver,
            Surface::Admin,
            vec![
                scope::ROUTES_READ,
                scope::ROUTES_APPROVE,
                scope::SAGAS_APPROVE,
                scope::PAYMENTS_APPROVE,
                scope::PRODUCTS_APPROVE,
                scope::MIGRATIONS_APPROVE,
            ],
        ),
        (Role::Auditor, Surface::Audit, vec![scope::AUDIT_READ]),
    ];
    for (role, surface, scopes) in cases {
        let token = dev::mint(&keys, ISSUER, role, "someone", None, ttl).unwrap();
        let principal = accepted(&authenticator, &token, surface).await;
        assert_eq!(principal.subject, "someone");
        assert_eq!(
            principal.scopes,
            scopes.iter().map(|s| (*s).to_owned()).collect()
        );
        assert_eq!(principal.customer_id, None);
        let elsewhere = if surface == Surface::Channel {
            Surface::Admin
        } else {
            Surface::Channel
        };
        unauthenticated_on(&authenticator, &token, elsewhere, "wrong_audience").await;
    }
    let bound = dev::mint(&keys, ISSUER, Role::Channel, "app", Some("C-9"), ttl).unwrap();
    let principal = accepted(&authenticator, &bound, Surface::Channel).await;
    assert_eq!(principal.customer_id.as_deref(), Some("C-9"));
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(bound.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], keys.kid());
}

#[tokio::test]
async fn dev_keys_keep_other_keys_in_the_dev_jwks() {
    let home = TempDir::new();
    let other = EcKey::generate("added-by-hand");
    std::fs::create_dir_all(home.0.join("dev-keys")).unwrap();
    std::fs::write(
        home.0.join("dev-keys/jwks.json"),
        serde_json::to_vec(&json!({ "keys": [other.jwk] })).unwrap(),
    )
    .unwrap();
    let keys = dev::ensure_dev_keys(&home.0).unwrap();
    let jwks: Value = serde_json::from_slice(&std::fs::read(keys.jwks_path()).unwrap()).unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["added-by-hand", keys.kid()]);
}

#[test]
fn the_configuration_follows_the_settings() {
    let lookup = |jwks: &'static str| {
        move |name: &str| match name {
            "COREBANK_JWT_JWKS" => Some(jwks.to_owned()),
            "COREBANK_HOME" => Some("/srv/corebank".to_owned()),
            _ => None,
        }
    };
    let settings = corebank_service::Settings::from_lookup(lookup("")).unwrap();
    let config = AuthConfig::from_settings(&settings);
    assert_eq!(
        config.jwks,
        JwksSource::DevHome(PathBuf::from("/srv/corebank"))
    );
    assert_eq!(config.issuer, settings.jwt_issuer);
    assert_eq!(config.leeway_s, settings.jwt_leeway_s);
    assert_eq!(
        config.refresh,
        Duration::from_secs(settings.jwt_jwks_refresh_s)
    );
    let settings =
        corebank_service::Settings::from_lookup(lookup("https://idp.example/jwks")).unwrap();
    assert_eq!(
        AuthConfig::from_settings(&settings).jwks,
        JwksSource::Url("https://idp.example/jwks".to_owned())
    );
    let settings =
        corebank_service::Settings::from_lookup(lookup("/etc/corebank/jwks.json")).unwrap();
    assert_eq!(
        AuthConfig::from_settings(&settings).jwks,
        JwksSource::File(PathBuf::from("/etc/corebank/jwks.json"))
    );
    assert!(
        !config.dev_allowed,
        "development keys are refused by default"
    );
    assert_eq!(config.jwks_ca, None);
    let settings = corebank_service::Settings::from_lookup(|name| match name {
        "COREBANK_DEV" => Some("true".to_owned()),
        "COREBANK_JWT_JWKS_CA" => Some("/etc/corebank/idp-ca.pem".to_owned()),
        _ => None,
    })
    .unwrap();
    let config = AuthConfig::from_settings(&settings);
    assert!(config.dev_allowed);
    assert_eq!(
        config.jwks_ca,
        Some(PathBuf::from("/etc/corebank/idp-ca.pem"))
    );
}

/// What the gateway is configured with when `COREBANK_JWT_JWKS` is empty.
fn dev_home_config(home: &Path, dev_allowed: bool) -> AuthConfig {
    AuthConfig {
        issuer: ISSUER.to_owned(),
        jwks: JwksSource::DevHome(home.to_path_buf()),
        refresh: Duration::from_secs(300),
        leeway_s: LEEWAY_S,
        dev_hs256_secret: None,
        dev_allowed,
        jwks_ca: None,
    }
}

#[tokio::test]
async fn the_dev_keys_are_refused_outside_dev_mode_with_the_settings_to_fix_it() {
    let home = TempDir::new();
    let error = Authenticator::new(dev_home_config(&home.0, false))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "dev_mode_required");
    let message = error.to_string();
    assert!(
        message.contains("COREBANK_JWT_JWKS=<your IdP's JWKS>"),
        "{message}"
    );
    assert!(message.contains("COREBANK_DEV=true"), "{message}");
    assert!(message.contains("dev-keys"), "{message}");
    assert!(
        !home.0.join("dev-keys").exists(),
        "no key is made for a gateway that refuses to use it"
    );

    let keys_in_dev_mode = Authenticator::new(dev_home_config(&home.0, true)).await;
    assert!(keys_in_dev_mode.is_ok(), "{keys_in_dev_mode:?}");
}

#[tokio::test]
async fn the_hs256_dev_secret_is_refused_outside_dev_mode_with_the_settings_to_fix_it() {
    let fixture = Fixture::new();
    let error = Authenticator::new(AuthConfig {
        dev_hs256_secret: Some(DEV_SECRET.to_owned()),
        ..fixture.config()
    })
    .await
    .unwrap_err();
    assert_eq!(error.code(), "dev_mode_required");
    let message = error.to_string();
    assert!(
        message.contains("COREBANK_JWT_DEV_HS256_SECRET"),
        "{message}"
    );
    assert!(message.contains("COREBANK_DEV=true"), "{message}");
    assert!(!message.contains(DEV_SECRET), "the secret is never shown");
    fixture.dev_mode_authenticator().await;
}

#[tokio::test]
async fn the_gateway_component_does_not_start_on_dev_keys_unless_in_dev_mode() {
    let home = TempDir::new();
    let mut settings = corebank_service::Settings::defaults().unwrap();
    settings.home = home.0.clone();
    assert!(!settings.dev);
    // Nothing listens there: the refusal comes before the gateway touches its database.
    let db = corebank_db::Db::connect_lazy(&corebank_db::DbSettings::new(
        "postgres://corebank@127.0.0.1:9/gateway",
    ))
    .unwrap();
    let upstream = corebank_gateway::app::Upstream {
        legacy_url: "http://127.0.0.1:9".to_owned(),
        modern_url: "http://127.0.0.1:9".to_owned(),
        clients: corebank_service::internal::InternalClients::insecure("gateway"),
    };
    let started =
        corebank_gateway::app::component(&settings, db, &upstream, CancellationToken::new()).await;
    let Err(error) = started else {
        panic!("the gateway must refuse to start on dev keys outside dev mode");
    };
    assert_eq!(error.code, "dev_mode_required");
    assert!(
        error
            .message
            .contains("COREBANK_JWT_JWKS=<your IdP's JWKS>")
            && error.message.contains("COREBANK_DEV=true"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn dev_keys_are_owner_only_even_where_they_were_not_before() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let home = TempDir::new();
    let keys = dev::ensure_dev_keys(&home.0).unwrap();
    let directory = home.0.join("dev-keys");
    assert_eq!(mode(keys.private_key_path()), 0o600);
    assert_eq!(mode(&directory), 0o700);

    // A key copied in carelessly, in a directory anyone can list.
    std::fs::set_permissions(
        keys.private_key_path(),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::set_permissions(&directory, std::fs::Permissions::from_mode(0o755)).unwrap();
    let again = dev::ensure_dev_keys(&home.0).unwrap();
    assert_eq!(
        again.kid(),
        keys.kid(),
        "the key is kept, only its mode changes"
    );
    assert_eq!(mode(keys.private_key_path()), 0o600);
    assert_eq!(mode(&directory), 0o700);
}

#[tokio::test]
async fn claims_of_the_wrong_type_are_refused_after_the_standard_checks() {
    let (fixture, authenticator) = started().await;
    let odd = with(channel_claims(), "scope", json!(42));
    unauthenticated(&authenticator, &fixture.ec.sign(&odd), "malformed_token").await;
    let odd = with(channel_claims(), "customer_id", json!(7));
    unauthenticated(&authenticator, &fixture.ec.sign(&odd), "malformed_token").await;
    // The refusal names the failed check, not a type.
    let expired = with(odd, "exp", json!(now() - 3600));
    unauthenticated(&authenticator, &fixture.ec.sign(&expired), "expired").await;
    let numeric_sub = with(channel_claims(), "sub", json!(12));
    unauthenticated(
        &authenticator,
        &fixture.ec.sign(&numeric_sub),
        "missing_claim",
    )
    .await;
}

#[tokio::test]
async fn the_dev_key_set_named_as_a_file_is_refused_outside_dev_mode() {
    let fixture = Fixture::new();
    let home = TempDir::new();
    dev::ensure_dev_keys(&home.0).unwrap();
    let error = Authenticator::new(AuthConfig {
        jwks: JwksSource::File(dev::directory(&home.0).join("jwks.json")),
        dev_allowed: false,
        ..fixture.config()
    })
    .await
    .unwrap_err();
    assert_eq!(error.code(), "dev_mode_required", "{error}");
    assert!(error.to_string().contains("COREBANK_JWT_JWKS"), "{error}");
}
