//! Authentication: bearer JWTs verified against a JWKS (RS256/ES256, algorithm pinned per
//! key, keys chosen by `kid`, cached and rotated without restart), HS256 in dev mode only,
//! scope and customer checks, and dev keys and tokens ([`dev`]).

pub mod dev;
mod error;
mod jwks;

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use error::AuthError;

use crate::principal::{Principal, Surface};
use jwks::{BASE64URL, KeySet, PinnedKey, shown_kid};

/// The only `kid` an HS256 (dev mode) token may carry.
pub const DEV_HS256_KID: &str = "dev-hs256";
/// An unknown `kid` reloads the key set at most this often, so random `kid`s cannot turn
/// the gateway into a load generator against the identity provider.
pub const UNKNOWN_KID_RELOAD_INTERVAL: Duration = Duration::from_secs(10);
/// Longer bearer tokens are refused before any parsing.
pub const TOKEN_BYTES_MAX: usize = 16 * 1024;
/// The claims every token must carry.
const REQUIRED_CLAIMS: [&str; 5] = ["iss", "aud", "exp", "nbf", "sub"];

/// Where the verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWKS file, re-read on every refresh.
    File(PathBuf),
    /// A JWKS served over HTTP (an identity provider's `jwks_uri`).
    Url(String),
    /// The dev key set `<home>/dev-keys/jwks.json` (`COREBANK_JWT_JWKS` empty), created with
    /// a fresh key pair when missing. The path is `COREBANK_HOME`.
    DevHome(PathBuf),
}

/// How tokens are verified.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The `iss` every token must carry.
    pub issuer: String,
    pub jwks: JwksSource,
    /// How often the key set is reloaded.
    pub refresh: Duration,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway_s: u64,
    /// Dev mode: HS256 tokens with `kid` = [`DEV_HS256_KID`] signed with this secret.
    pub dev_hs256_secret: Option<String>,
    /// Whether development keys may be used: the dev key set ([`JwksSource::DevHome`]) and
    /// the HS256 secret. `COREBANK_DEV=true`, which `corebank up` sets; anything else refuses
    /// to start on them, so a production gateway never trusts keys anyone could have made.
    pub dev_allowed: bool,
    /// The PEM bundle of the only roots an `https://` JWKS server's certificate may chain to
    /// (`COREBANK_JWT_JWKS_CA`, read once at start); `None`: the platform's roots.
    pub jwks_ca: Option<PathBuf>,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("issuer", &self.issuer)
            .field("jwks", &self.jwks)
            .field("refresh", &self.refresh)
            .field("leeway_s", &self.leeway_s)
            .field(
                "dev_hs256_secret",
                &self.dev_hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("dev_allowed", &self.dev_allowed)
            .field("jwks_ca", &self.jwks_ca)
            .finish()
    }
}

impl AuthConfig {
    /// `COREBANK_JWT_*`: an `http://` or `https://` JWKS is fetched, anything else is a
    /// file path, and none means the dev key set under `COREBANK_HOME`.
    pub fn from_settings(settings: &corebank_service::Settings) -> AuthConfig {
        let jwks = match settings.jwt_jwks.as_deref().map(str::trim) {
            None | Some("") => JwksSource::DevHome(settings.home.clone()),
            Some(location) => {
                let lowercase = location.to_ascii_lowercase();
                if lowercase.starts_with("http://") || lowercase.starts_with("https://") {
                    JwksSource::Url(location.to_owned())
                } else {
                    JwksSource::File(PathBuf::from(location))
                }
            }
        };
        AuthConfig {
            issuer: settings.jwt_issuer.clone(),
            jwks,
            refresh: Duration::from_secs(settings.jwt_jwks_refresh_s),
            leeway_s: settings.jwt_leeway_s,
            dev_hs256_secret: settings.jwt_dev_hs256_secret.clone(),
            dev_allowed: settings.dev,
            jwks_ca: settings.jwt_jwks_ca.clone(),
        }
    }

    /// Refuses development keys outside dev mode, naming the settings that fix it.
    fn check_dev_keys(&self) -> Result<(), AuthError> {
        if self.dev_allowed {
            return Ok(());
        }
        if let JwksSource::DevHome(home) = &self.jwks {
            return Err(AuthError::DevModeRequired {
                what: format!(
                    "COREBANK_JWT_JWKS is empty, so tokens would be checked against the dev keys \
                     in {}",
                    dev::directory(home).display()
                ),
                fix: "set COREBANK_JWT_JWKS=<your IdP's JWKS> (a file, or an https:// URL)",
            });
        }
        if let JwksSource::Url(url) = &self.jwks
            && !url.to_ascii_lowercase().starts_with("https://")
        {
            // A key set fetched in clear text can be swapped on the way: whoever does signs
            // their own tokens.
            return Err(AuthError::DevModeRequired {
                what: format!("COREBANK_JWT_JWKS={url} is fetched without TLS"),
                fix: "use the identity provider's https:// JWKS URL (COREBANK_JWT_JWKS_CA for a \
                      private CA), or a file",
            });
        }
        if let JwksSource::File(path) = &self.jwks
            && let Some(home) = dev_home_of(path)
        {
            return Err(AuthError::DevModeRequired {
                what: format!(
                    "COREBANK_JWT_JWKS={} is the dev key set of {}",
                    path.display(),
                    home.display()
                ),
                fix: "set COREBANK_JWT_JWKS=<your IdP's JWKS> (a file, or an https:// URL)",
            });
        }
        if self.dev_hs256_secret.is_some() {
            return Err(AuthError::DevModeRequired {
                what: "COREBANK_JWT_DEV_HS256_SECRET is set, so tokens signed with a shared \
                       secret would be accepted"
                    .to_owned(),
                fix: "unset COREBANK_JWT_DEV_HS256_SECRET",
            });
        }
        Ok(())
    }
}

/// The home whose dev key set `path` lies in (`<home>/dev-keys/…`), if it does.
fn dev_home_of(path: &std::path::Path) -> Option<PathBuf> {
    let parent = path.parent()?;
    let home = parent.parent()?;
    (dev::directory(home) == parent).then(|| home.to_path_buf())
}

/// Verifies bearer tokens. Cheap to clone: clones share the key cache.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    leeway_s: u64,
    refresh: Duration,
    source: JwksSource,
    source_name: String,
    keys: RwLock<Arc<KeySet>>,
    hs256: Option<DecodingKey>,
    /// Held while the key set is being reloaded, so reloads never interleave; remembers
    /// when an unknown `kid` last caused one.
    reload: tokio::sync::Mutex<Option<Instant>>,
    http: reqwest::Client,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("issuer", &self.inner.issuer)
            .field("jwks", &self.inner.source_name)
            .field("keys", &self.current_keys().len())
            .field("dev_hs256", &self.inner.hs256.is_some())
            .finish_non_exhaustive()
    }
}

/// The header members the gateway looks at before choosing a key.
struct TokenHeader {
    alg: String,
    kid: Option<String>,
}

/// The claims read into the principal. Loosely typed on purpose: `jsonwebtoken`
/// deserialises them before it checks `exp`, `aud` and the rest, and a refusal should name
/// the check that failed rather than a type.
#[derive(serde::Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<serde_json::Value>,
    #[serde(default)]
    scope: Option<serde_json::Value>,
    #[serde(default)]
    scp: Option<serde_json::Value>,
    #[serde(default)]
    customer_id: Option<serde_json::Value>,
}

impl Authenticator {
    /// Loads the key set once. With [`JwksSource::DevHome`] a missing dev key pair is
    /// created first; a configured file or URL that cannot be read is an error naming
    /// `COREBANK_JWT_JWKS` and the fix.
    pub async fn new(config: AuthConfig) -> Result<Authenticator, AuthError> {
        config.check_dev_keys()?;
        if let JwksSource::DevHome(home) = &config.jwks {
            let home = home.clone();
            tokio::task::spawn_blocking(move || dev::ensure_dev_keys(&home))
                .await
                .map_err(|error| AuthError::DevKeys {
                    path: PathBuf::new(),
                    reason: error.to_string(),
                })??;
        }
        let source_name = jwks::source_name(&config.jwks);
        let http =
            jwks::http_client(config.jwks_ca.as_deref(), config.dev_allowed).map_err(|reason| {
                AuthError::JwksUnavailable {
                    source_name: source_name.clone(),
                    reason,
                }
            })?;
        let fix = match &config.jwks {
            JwksSource::DevHome(_) => {
                "remove the dev-keys directory to have it recreated, or set COREBANK_JWT_JWKS"
            }
            JwksSource::File(_) | JwksSource::Url(_) => {
                "set COREBANK_JWT_JWKS to your identity provider's JWKS file or https URL \
                 (with COREBANK_JWT_JWKS_CA if its certificate is from a private CA), or, for \
                 development, leave it empty with COREBANK_DEV=true to use the dev keys under \
                 COREBANK_HOME/dev-keys"
            }
        };
        let with_fix = |error: AuthError| match error {
            AuthError::JwksUnavailable {
                source_name,
                reason,
            } => AuthError::JwksUnavailable {
                source_name,
                reason: format!("{reason}; {fix}"),
            },
            other => other,
        };
        let keys = jwks::load(&config.jwks, &http).await.map_err(with_fix)?;
        if keys.len() == 0 && config.dev_hs256_secret.is_none() {
            return Err(with_fix(AuthError::JwksUnavailable {
                source_name,
                reason: "no usable key (RS256, or ES256 on P-256, each with a `kid`)".to_owned(),
            }));
        }
        tracing::info!(
            jwks.source = %source_name,
            jwks.keys = keys.len(),
            dev_hs256 = config.dev_hs256_secret.is_some(),
            "token verification keys loaded"
        );
        metrics::gauge!("corebank_gateway_jwks_keys").set(usize_to_f64(keys.len()));
        Ok(Authenticator {
            inner: Arc::new(Inner {
                issuer: config.issuer,
                leeway_s: config.leeway_s,
                refresh: config.refresh,
                source: config.jwks,
                source_name,
                keys: RwLock::new(Arc::new(keys)),
                hs256: config
                    .dev_hs256_secret
                    .map(|secret| DecodingKey::from_secret(secret.as_bytes())),
                reload: tokio::sync::Mutex::new(None),
                http,
            }),
        })
    }

    /// Verifies the `Authorization` header value (`Bearer <jwt>`) for `surface`.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        surface: Surface,
    ) -> Result<Principal, AuthError> {
        let result = self.verify(authorization, surface).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => {
                tracing::debug!(
                    auth.surface = surface.name(),
                    auth.outcome = error.code(),
                    error = %error,
                    "token refused"
                );
                error.code()
            }
        };
        metrics::counter!(
            "corebank_gateway_auth_total",
            "surface" => surface.name(),
            "outcome" => outcome,
        )
        .increment(1);
        result
    }

    /// Reloads the key set now and replaces the cached one (a removed key stops working at
    /// once). On failure the cached set stays. Returns the number of keys.
    pub async fn refresh(&self) -> Result<usize, AuthError> {
        let _reloading = self.inner.reload.lock().await;
        self.reload_locked().await
    }

    /// Reloads the key set every `refresh` until `shutdown`.
    pub fn spawn_refresh(&self, shutdown: CancellationToken) {
        let authenticator = self.clone();
        let period = self.inner.refresh.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = ticks.tick() => {
                        // Failures are logged and counted in `reload_locked`; the cached
                        // keys keep working until a reload succeeds.
                        let _ = authenticator.refresh().await;
                    }
                }
            }
        });
    }

    fn current_keys(&self) -> Arc<KeySet> {
        Arc::clone(
            &self
                .inner
                .keys
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Must be called with `inner.reload` held.
    async fn reload_locked(&self) -> Result<usize, AuthError> {
        match jwks::load(&self.inner.source, &self.inner.http).await {
            Ok(keys) => {
                let count = keys.len();
                if count == 0 {
                    tracing::warn!(
                        jwks.source = %self.inner.source_name,
                        "the reloaded key set has no usable key: every RS256/ES256 token is now refused"
                    );
                }
                *self
                    .inner
                    .keys
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
                metrics::counter!("corebank_gateway_jwks_reload_total", "outcome" => "ok")
                    .increment(1);
                metrics::gauge!("corebank_gateway_jwks_keys").set(usize_to_f64(count));
                Ok(count)
            }
            Err(error) => {
                tracing::warn!(
                    jwks.source = %self.inner.source_name,
                    error = %error,
                    "key set reload failed; the cached keys stay in use"
                );
                metrics::counter!("corebank_gateway_jwks_reload_total", "outcome" => "failed")
                    .increment(1);
                Err(error)
            }
        }
    }

    async fn verify(
        &self,
        authorization: Option<&str>,
        surface: Surface,
    ) -> Result<Principal, AuthError> {
        let token = bearer(authorization)?;
        let header = parse_header(token)?;
        let (kid, key) = self.key_for(&header).await?;

        let mut validation = Validation::new(key.algorithm);
        validation.algorithms = vec![key.algorithm];
        validation.leeway = self.inner.leeway_s;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&REQUIRED_CLAIMS);
        validation.set_issuer(&[self.inner.issuer.as_str()]);
        validation.set_audience(&[surface.audience()]);

        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|error| self.refusal(error, &kid, surface))?
            .claims;
        principal(claims, surface)
    }

    /// The key the token must be verified with, its algorithm pinned: the header's `alg`
    /// only selects among refusals, never the verification algorithm.
    async fn key_for(&self, header: &TokenHeader) -> Result<(String, PinnedKey), AuthError> {
        let refused = |reason: String| AuthError::AlgorithmNotAllowed { reason };
        let requested = match header.alg.as_str() {
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            "HS256" => {
                let Some(secret) = &self.inner.hs256 else {
                    return Err(refused(
                        "HS256 is accepted only in dev mode (COREBANK_JWT_DEV_HS256_SECRET); \
                         sign with RS256 or ES256"
                            .to_owned(),
                    ));
                };
                if header.kid.as_deref() != Some(DEV_HS256_KID) {
                    return Err(refused(format!(
                        "HS256 is accepted only for the dev key `kid` = `{DEV_HS256_KID}`"
                    )));
                }
                return Ok((
                    DEV_HS256_KID.to_owned(),
                    PinnedKey {
                        algorithm: Algorithm::HS256,
                        key: secret.clone(),
                    },
                ));
            }
            alg if alg.eq_ignore_ascii_case("none") => {
                return Err(refused(
                    "unsigned tokens (`alg: none`) are never accepted".to_owned(),
                ));
            }
            other => {
                return Err(refused(format!(
                    "`{}` is not accepted: RS256 or ES256 only",
                    shown_kid(other)
                )));
            }
        };
        let Some(kid) = header.kid.as_deref().filter(|kid| !kid.is_empty()) else {
            return Err(AuthError::MalformedToken {
                reason: "no `kid` in the header (keys are chosen by kid)".to_owned(),
            });
        };
        if kid == DEV_HS256_KID {
            return Err(refused(format!(
                "the dev key `{DEV_HS256_KID}` is HS256 only"
            )));
        }
        let key = self.lookup(kid).await?;
        if key.algorithm != requested {
            return Err(refused(format!(
                "key `{}` is pinned to {:?}; the token's header says {}",
                shown_kid(kid),
                key.algorithm,
                header.alg
            )));
        }
        Ok((kid.to_owned(), key))
    }

    /// The cached key, or, for an unknown `kid`, the key after a reload (at most one per
    /// [`UNKNOWN_KID_RELOAD_INTERVAL`]; concurrent requests share it).
    async fn lookup(&self, kid: &str) -> Result<PinnedKey, AuthError> {
        if let Some(key) = self.current_keys().get(kid) {
            return Ok(key.clone());
        }
        let unknown = || AuthError::UnknownKey {
            kid: shown_kid(kid),
        };
        let mut last_reload = self.inner.reload.lock().await;
        // Another request may have reloaded while this one waited.
        if let Some(key) = self.current_keys().get(kid) {
            return Ok(key.clone());
        }
        if last_reload.is_some_and(|at| at.elapsed() < UNKNOWN_KID_RELOAD_INTERVAL) {
            return Err(unknown());
        }
        *last_reload = Some(Instant::now());
        tracing::info!(
            jwk.kid = %shown_kid(kid),
            "unknown kid: reloading the key set"
        );
        self.reload_locked().await?;
        self.current_keys().get(kid).cloned().ok_or_else(unknown)
    }

    fn refusal(
        &self,
        error: jsonwebtoken::errors::Error,
        kid: &str,
        surface: Surface,
    ) -> AuthError {
        use jsonwebtoken::errors::ErrorKind;
        let leeway_s = self.inner.leeway_s;
        match error.into_kind() {
            ErrorKind::InvalidSignature => AuthError::BadSignature {
                kid: shown_kid(kid),
            },
            ErrorKind::ExpiredSignature => AuthError::Expired { leeway_s },
            ErrorKind::ImmatureSignature => AuthError::NotYetValid { leeway_s },
            ErrorKind::InvalidAudience => AuthError::WrongAudience {
                expected: surface.audience().to_owned(),
            },
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer {
                expected: self.inner.issuer.clone(),
            },
            ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim { claim },
            ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
                AuthError::AlgorithmNotAllowed {
                    reason: format!("key `{}` does not accept this algorithm", shown_kid(kid)),
                }
            }
            ErrorKind::Json(error) => AuthError::MalformedToken {
                reason: format!("the claims do not have the expected types ({error})"),
            },
            ErrorKind::Base64(_) | ErrorKind::Utf8(_) | ErrorKind::InvalidToken => {
                AuthError::MalformedToken {
                    reason: "not a compact JWS".to_owned(),
                }
            }
            // `ErrorKind` is non-exhaustive; the rest are key-construction and signing
            // errors that verification does not produce.
            other => AuthError::MalformedToken {
                reason: format!("cannot be verified ({other:?})"),
            },
        }
    }
}

/// Requires `scope`.
pub fn require_scope(principal: &Principal, scope: &str) -> Result<(), AuthError> {
    if principal.has_scope(scope) {
        Ok(())
    } else {
        Err(AuthError::MissingScope {
            scope: scope.to_owned(),
        })
    }
}

/// A token bound to a customer may touch only that customer; an unbound token (a channel
/// acting for many customers) may touch any.
pub fn require_customer(principal: &Principal, customer_id: &str) -> Result<(), AuthError> {
    match &principal.customer_id {
        Some(bound) if bound != customer_id => Err(AuthError::OtherCustomer),
        Some(_) | None => Ok(()),
    }
}

fn usize_to_f64(value: usize) -> f64 {
    u32::try_from(value).map_or(f64::from(u32::MAX), f64::from)
}

/// The token from `Bearer <token>` (the scheme is case-insensitive, RFC 7235).
fn bearer(authorization: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or(AuthError::MissingToken)?;
    let malformed = |reason: &str| AuthError::MalformedToken {
        reason: reason.to_owned(),
    };
    if value.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MissingToken);
    }
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| malformed("the Authorization header must be `Bearer <jwt>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed("the Authorization scheme must be Bearer"));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    if token.len() > TOKEN_BYTES_MAX {
        return Err(malformed("longer than 16 KiB"));
    }
    Ok(token)
}

fn parse_header(token: &str) -> Result<TokenHeader, AuthError> {
    let malformed = |reason: &str| AuthError::MalformedToken {
        reason: reason.to_owned(),
    };
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("a JWT has three dot-separated parts"));
    };
    let base64url = |part: &str| {
        part.bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    };
    if header.is_empty()
        || payload.is_empty()
        || ![header, payload, signature].into_iter().all(base64url)
    {
        return Err(malformed("the parts must be unpadded base64url"));
    }
    let bytes = BASE64URL
        .decode(header)
        .map_err(|_| malformed("the header is not base64url"))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| malformed("the header is not JSON"))?;
    let Some(object) = value.as_object() else {
        return Err(malformed("the header is not a JSON object"));
    };
    if object.contains_key("crit") {
        return Err(malformed(
            "critical header extensions (`crit`) are not supported",
        ));
    }
    let alg = object
        .get("alg")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| malformed("no `alg` in the header"))?
        .to_owned();
    let kid = match object.get("kid") {
        None => None,
        Some(serde_json::Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(malformed("`kid` must be a string")),
    };
    Ok(TokenHeader { alg, kid })
}

fn principal(claims: Claims, surface: Surface) -> Result<Principal, AuthError> {
    let malformed = |reason: &str| AuthError::MalformedToken {
        reason: reason.to_owned(),
    };
    let Some(subject) = claims
        .sub
        .as_ref()
        .and_then(serde_json::Value::as_str)
        .filter(|sub| !sub.trim().is_empty())
    else {
        return Err(AuthError::MissingClaim {
            claim: "sub".to_owned(),
        });
    };
    let mut scopes = BTreeSet::new();
    // `scope` is a space-separated string (RFC 8693); `scp` an array or such a string.
    for (name, value) in [("scope", &claims.scope), ("scp", &claims.scp)] {
        match value {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(text)) => {
                scopes.extend(text.split_whitespace().map(str::to_owned));
            }
            Some(serde_json::Value::Array(items)) if name == "scp" => {
                for item in items {
                    let scope = item
                        .as_str()
                        .ok_or_else(|| malformed("`scp` must hold strings"))?;
                    if !scope.is_empty() {
                        scopes.insert(scope.to_owned());
                    }
                }
            }
            Some(_) => {
                return Err(malformed(if name == "scp" {
                    "`scp` must be an array of strings or a string"
                } else {
                    "`scope` must be a space-separated string"
                }));
            }
        }
    }
    let customer_id = match &claims.customer_id {
        None | Some(serde_json::Value::Null) => None,
        // Read as "unbound", an empty binding would widen the token; refuse it instead.
        Some(serde_json::Value::String(id)) if id.trim().is_empty() => {
            return Err(malformed("`customer_id` is empty"));
        }
        Some(serde_json::Value::String(id)) => Some(id.clone()),
        Some(_) => return Err(malformed("`customer_id` must be a string")),
    };
    Ok(Principal {
        subject: subject.to_owned(),
        surface,
        scopes,
        customer_id,
    })
}
