//! Dev keys and dev tokens: an ES256 key pair under `<COREBANK_HOME>/dev-keys/` (the
//! private key as PKCS#8 DER, the public key as a JWKS the gateway reads by default) and
//! tokens signed with it for each role, so `corebank up` and `corebank token` work without
//! an identity provider.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use corebank_service::internal::pki::dev::create_private_dir;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use sha2::{Digest as _, Sha256};

use super::AuthError;
use crate::principal::{Surface, scope};

const DIRECTORY: &str = "dev-keys";
const PRIVATE_KEY_FILE: &str = "es256.pk8";
const JWKS_FILE: &str = "jwks.json";
/// Files under `dev-keys` are readable and writable by their owner only.
const PRIVATE_FILE_MODE: u32 = 0o600;
/// An uncompressed P-256 point: 0x04, x, y.
const P256_POINT_BYTES: usize = 65;
const P256_COORDINATE_BYTES: usize = 32;

/// `<home>/dev-keys`.
pub fn directory(home: &Path) -> PathBuf {
    home.join(DIRECTORY)
}

/// `<home>/dev-keys/jwks.json`: where the gateway reads its keys when `COREBANK_JWT_JWKS`
/// is empty.
pub fn jwks_path(home: &Path) -> PathBuf {
    directory(home).join(JWKS_FILE)
}

/// The dev signing key. Its `Debug` shows the `kid` and paths, never the key.
pub struct DevKeys {
    kid: String,
    pkcs8: Vec<u8>,
    private_key_path: PathBuf,
    jwks_path: PathBuf,
}

impl fmt::Debug for DevKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevKeys")
            .field("kid", &self.kid)
            .field("private_key_path", &self.private_key_path)
            .field("jwks_path", &self.jwks_path)
            .finish_non_exhaustive()
    }
}

impl DevKeys {
    /// The RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `<home>/dev-keys/es256.pk8`.
    pub fn private_key_path(&self) -> &Path {
        &self.private_key_path
    }

    /// `<home>/dev-keys/jwks.json`.
    pub fn jwks_path(&self) -> &Path {
        &self.jwks_path
    }
}

/// Who a dev token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A bank's channel: `/v1`.
    Channel,
    /// A migration team member who proposes route changes.
    Operator,
    /// A second operator who approves them, and saga and payment-screening actions.
    Approver,
    /// A regulator's auditor.
    Auditor,
}

impl Role {
    /// The surface, hence the audience, the role's tokens are for.
    pub fn surface(self) -> Surface {
        match self {
            Role::Channel => Surface::Channel,
            Role::Operator | Role::Approver => Surface::Admin,
            Role::Auditor => Surface::Audit,
        }
    }

    /// The scopes the role's tokens grant.
    pub fn scopes(self) -> &'static [&'static str] {
        match self {
            Role::Channel => &[
                scope::ACCOUNTS_READ,
                scope::ACCOUNTS_WRITE,
                scope::PAYMENTS_WRITE,
            ],
            Role::Operator => &[scope::ROUTES_READ, scope::ROUTES_WRITE],
            Role::Approver => &[
                scope::ROUTES_READ,
                scope::ROUTES_APPROVE,
                scope::SAGAS_APPROVE,
                scope::PAYMENTS_APPROVE,
                scope::PRODUCTS_APPROVE,
                scope::MIGRATIONS_APPROVE,
            ],
            Role::Auditor => &[scope::AUDIT_READ],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Channel => "channel",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Auditor => "auditor",
        }
    }
}

/// Creates, if missing, an ES256 key pair under `<home>/dev-keys/` and makes sure
/// `jwks.json` publishes its public key (other keys in that file are kept). Safe to call
/// from several processes at once: the private key is created at most once.
pub fn ensure_dev_keys(home: &Path) -> Result<DevKeys, AuthError> {
    let directory = directory(home);
    let failed = |path: &Path, reason: String| AuthError::DevKeys {
        path: path.to_path_buf(),
        reason,
    };
    // Owner-only, also when the directory was made earlier by hand or by an older version.
    create_private_dir(&directory).map_err(|error| failed(&directory, error.to_string()))?;
    let private_key_path = directory.join(PRIVATE_KEY_FILE);
    let pkcs8 = match std::fs::read(&private_key_path) {
        Ok(pkcs8) => {
            restrict_to_owner(&private_key_path)
                .map_err(|reason| failed(&private_key_path, reason))?;
            pkcs8
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            create_private_key(&private_key_path)
                .map_err(|reason| failed(&private_key_path, reason))?
        }
        Err(error) => {
            return Err(failed(
                &private_key_path,
                format!("cannot read the private key ({error})"),
            ));
        }
    };
    let jwk = public_jwk(&pkcs8).map_err(|reason| {
        failed(
            &private_key_path,
            format!("{reason}; remove the file to have a new key pair created"),
        )
    })?;
    let kid = jwk
        .get("kid")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let jwks_path = directory.join(JWKS_FILE);
    publish(&jwks_path, &kid, jwk).map_err(|reason| failed(&jwks_path, reason))?;
    Ok(DevKeys {
        kid,
        pkcs8,
        private_key_path,
        jwks_path,
    })
}

/// Makes an existing private key that others may read owner-only (mode 0600): a key copied
/// in by hand, or left by an older version, may be.
fn restrict_to_owner(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .map_err(|error| format!("cannot read the private key's mode ({error})"))?
        .permissions()
        .mode();
    let others_may_read = mode & 0o077 != 0;
    if !others_may_read {
        return Ok(());
    }
    tracing::warn!(
        path = %path.display(),
        mode = format!("{:o}", mode & 0o777),
        "the dev private key was readable by others; it is now 0600"
    );
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(PRIVATE_FILE_MODE))
        .map_err(|error| format!("cannot make the private key owner-only ({error})"))
}

/// A file next to `path` only this call writes to.
fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ))
}

/// Writes `contents` to a fresh temporary file beside `path`, created with mode 0600 so it
/// is never readable by others, not even for a moment. (Not `pki::dev::write_file`: that
/// writes text in place, while the key is DER and must appear whole, by a link, to other
/// processes creating it at the same time.)
fn write_temporary(path: &Path, contents: &[u8]) -> std::io::Result<PathBuf> {
    let temporary = temporary_path(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, PRIVATE_FILE_MODE);
    let result = options.open(&temporary).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    match result {
        Ok(()) => Ok(temporary),
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            Err(error)
        }
    }
}

/// Generates a key pair and stores it at `path` unless another process got there first
/// (then that key is used): the hard link appears complete or not at all.
fn create_private_key(path: &Path) -> Result<Vec<u8>, String> {
    let generated =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| "cannot generate a P-256 key pair".to_owned())?;
    let temporary = write_temporary(path, generated.as_ref())
        .map_err(|error| format!("cannot write the private key ({error})"))?;
    let linked = std::fs::hard_link(&temporary, path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(generated.as_ref().to_vec()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read(path).map_err(|error| format!("cannot read the private key ({error})"))
        }
        Err(error) => Err(format!("cannot store the private key ({error})")),
    }
}

/// The public JWK of a PKCS#8 P-256 key, `kid` = its RFC 7638 thumbprint.
fn public_jwk(pkcs8: &[u8]) -> Result<serde_json::Value, String> {
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8,
        &SystemRandom::new(),
    )
    .map_err(|_| "not a PKCS#8 P-256 private key".to_owned())?;
    let point = pair.public_key().as_ref();
    let (Some(x), Some(y)) = (
        point.get(1..=P256_COORDINATE_BYTES),
        point.get(P256_COORDINATE_BYTES + 1..P256_POINT_BYTES),
    ) else {
        return Err("unexpected public key encoding".to_owned());
    };
    let encode = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (x, y) = (encode.encode(x), encode.encode(y));
    // RFC 7638: the required members in lexicographic order, no whitespace.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let kid = encode.encode(Sha256::digest(canonical.as_bytes()));
    Ok(serde_json::json!({
        "kty": "EC",
        "crv": "P-256",
        "x": x,
        "y": y,
        "kid": kid,
        "alg": "ES256",
        "use": "sig",
    }))
}

/// Adds `jwk` to the key set at `path` (created if missing) unless `kid` is already there.
/// The file is replaced by a rename, so a gateway reading it never sees half a file.
fn publish(path: &Path, kid: &str, jwk: serde_json::Value) -> Result<(), String> {
    let mut set = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .filter(|set| set.get("keys").is_some_and(serde_json::Value::is_array))
            .ok_or("not a JWKS; remove it to have it recreated")?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            serde_json::json!({ "keys": [] })
        }
        Err(error) => return Err(format!("cannot read the key set ({error})")),
    };
    let Some(keys) = set
        .get_mut("keys")
        .and_then(serde_json::Value::as_array_mut)
    else {
        return Err("not a JWKS; remove it to have it recreated".to_owned());
    };
    if keys
        .iter()
        .any(|key| key.get("kid").and_then(serde_json::Value::as_str) == Some(kid))
    {
        return Ok(());
    }
    keys.push(jwk);
    let contents = serde_json::to_vec_pretty(&set).map_err(|error| error.to_string())?;
    let temporary = write_temporary(path, &contents)
        .map_err(|error| format!("cannot write the key set ({error})"))?;
    std::fs::rename(&temporary, path).map_err(|error| {
        let _ = std::fs::remove_file(&temporary);
        format!("cannot replace the key set ({error})")
    })
}

/// A dev token signed with the dev key (ES256, `kid` in the header): `iss`, `aud` (the
/// role's surface), `sub`, `iat`, `nbf` (now), `exp` (now + `ttl`), `jti`, `scope` (the
/// role's scopes, space-separated) and `customer_id` when given.
pub fn mint(
    keys: &DevKeys,
    issuer: &str,
    role: Role,
    subject: &str,
    customer_id: Option<&str>,
    ttl: Duration,
) -> Result<String, AuthError> {
    let refused = |reason: &str| AuthError::Mint {
        reason: reason.to_owned(),
    };
    if subject.trim().is_empty() {
        return Err(refused("the subject must not be empty"));
    }
    if customer_id.is_some_and(|id| id.trim().is_empty()) {
        return Err(refused("the customer id must not be empty"));
    }
    let now = chrono::Utc::now().timestamp();
    let expires = i64::try_from(ttl.as_secs())
        .ok()
        .and_then(|ttl| now.checked_add(ttl))
        .ok_or_else(|| refused("the lifetime is too long"))?;
    let mut claims = serde_json::json!({
        "iss": issuer,
        "aud": role.surface().audience(),
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": expires,
        "jti": uuid::Uuid::new_v4().to_string(),
        "scope": role.scopes().join(" "),
    });
    if let (Some(customer_id), Some(object)) = (customer_id, claims.as_object_mut()) {
        object.insert("customer_id".to_owned(), customer_id.into());
    }
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(keys.kid.clone());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&keys.pkcs8))
        .map_err(|error| refused(&error.to_string()))
}
