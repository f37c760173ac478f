//! The signatures on every message between the bank and the clearing rail, on top of mutual
//! TLS: the TLS connection proves which component sent a message, the signature proves that
//! the holder of a shared rail key wrote these exact bytes, for this path, recently, once.
//!
//! # The scheme (`v1`)
//!
//! A signed message carries one header:
//!
//! ```text
//! Rail-Signature: v1;kid=<key id>;ts=<unix ms>;delivery=<UUIDv4>;sig=<base64url, no padding>
//! ```
//!
//! `sig` is HMAC-SHA256, under the key named by `kid`, of the canonical string (lines joined
//! by `\n`, no trailing newline):
//!
//! ```text
//! corebank-rail-signature-v1
//! <key id>
//! <ts, unix milliseconds>
//! <delivery id, hyphenated lowercase>
//! request | response
//! <method, e.g. POST> | <the answer's HTTP status, e.g. 200>
//! <the request's path, e.g. /payments/rail/v1/pacs008>
//! <SHA-256 of the body, lowercase hex>
//! ```
//!
//! So a signature binds the key, the time, the delivery, which way the message goes, the
//! method (or status), the path and every byte of the body: a request's signature cannot
//! be replayed as an answer, nor a pacs.002's as a pacs.008. The receiver refuses, before
//! it parses anything:
//!
//! - `signature_missing`: no header;
//! - `signature_malformed`: a header that does not read as above (wrong version, a field
//!   missing, twice or unknown, a delivery id that is not a UUIDv4, …);
//! - `unknown_key`: a `kid` it does not hold;
//! - `signature_invalid`: the HMAC does not match (another key, another body, another path);
//! - `signature_expired`: `ts` more than [`SIGNATURE_WINDOW_MS`] (5 minutes) away from its
//!   clock, either way;
//! - `replayed`: a delivery id it has taken before. The bank remembers delivery ids in
//!   `payments.rail_deliveries` for [`DELIVERY_MEMORY_MS`] (twice the window: a delivery
//!   older than that is refused as expired anyway); the simulator in memory.
//!
//! A delivery id names one *attempt*: a sender that tries again signs again, with a new
//! delivery id. Delivering the same payment twice is the business of the UETR, not of the
//! signature.
//!
//! # Keys and rotation
//!
//! Both sides hold the same key set, one setting (`COREBANK_RAIL_KEYS`):
//! `kid1:<base64 secret>,kid2:<base64 secret>`, each secret at least
//! [`SECRET_BYTES_MIN`] bytes (`openssl rand -base64 32`). The first key signs; every listed
//! key verifies. To rotate: add the new key second on both sides; then put it first on both
//! sides (each side now signs with it, and still takes the old one); then remove the old key.

use std::fmt;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use ring::rand::SecureRandom as _;
use ring::{digest, hmac};
use uuid::Uuid;

use crate::domain::error::PaymentsError;

/// The header a signature travels in (HTTP header names are case-insensitive).
pub const HEADER: &str = "rail-signature";
/// The version tag that opens the header.
pub const VERSION: &str = "v1";
/// The first line of the canonical string: what is signed is a v1 rail signature and
/// nothing else this key could ever sign.
const CANONICAL_TAG: &str = "corebank-rail-signature-v1";
/// How far a signature's timestamp may be from the receiver's clock, either way.
pub const SIGNATURE_WINDOW_MS: u64 = 300_000;
/// How long a receiver must remember a delivery id: twice the window, so that a delivery it
/// has forgotten is refused as expired (the window also absorbs the senders' clock skew).
pub const DELIVERY_MEMORY_MS: u64 = 2 * SIGNATURE_WINDOW_MS;
/// At most this many keys in a key set (rotation needs two, a spare makes three).
pub const KEYS_MAX: usize = 8;
/// A secret shorter than SHA-256's output would weaken the HMAC.
pub const SECRET_BYTES_MIN: usize = 32;
/// HMAC-SHA256 hashes a key longer than its 64-byte block down to 32 bytes: more adds nothing.
pub const SECRET_BYTES_MAX: usize = 64;
/// A key id: 1 to this many characters of `a-z A-Z 0-9 - _ .`.
pub const KEY_ID_CHARS_MAX: usize = 32;
/// A header longer than this is refused unread.
pub const HEADER_BYTES_MAX: usize = 512;
/// HMAC-SHA256's output.
const SIGNATURE_BYTES: usize = 32;
/// A millisecond timestamp has 13 digits until the year 2286.
const TIMESTAMP_DIGITS_MAX: usize = 15;

/// What a signature covers besides the body: a request, or the answer to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange<'a> {
    /// A request, by method (`POST`) and path (`/payments/rail/v1/pacs008`).
    Request { method: &'a str, path: &'a str },
    /// The answer to the request on `path`, by its HTTP status.
    Response { status: u16, path: &'a str },
}

impl Exchange<'_> {
    pub fn path(&self) -> &str {
        match self {
            Exchange::Request { path, .. } | Exchange::Response { path, .. } => path,
        }
    }
}

/// Why a signed message was refused. Each has a stable code; none is worth retrying as is
/// (a sender that tries again signs again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Malformed { detail: String },
    UnknownKey { key_id: String },
    Invalid,
    Expired { signed_at_ms: i64, now_ms: i64 },
    Replayed { delivery_id: Uuid },
}

impl Refusal {
    /// The stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Missing => "signature_missing",
            Refusal::Malformed { .. } => "signature_malformed",
            Refusal::UnknownKey { .. } => "unknown_key",
            Refusal::Invalid => "signature_invalid",
            Refusal::Expired { .. } => "signature_expired",
            Refusal::Replayed { .. } => "replayed",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Missing => write!(f, "the message carries no {HEADER} header"),
            Refusal::Malformed { detail } => {
                write!(f, "the {HEADER} header is malformed: {detail}")
            }
            Refusal::UnknownKey { key_id } => write!(f, "no rail key is named {key_id:?}"),
            Refusal::Invalid => write!(
                f,
                "the signature does not match this message (its key, path or body differ)"
            ),
            Refusal::Expired {
                signed_at_ms,
                now_ms,
            } => write!(
                f,
                "the message was signed at {signed_at_ms} ms, {} s from now ({now_ms} ms); at \
                 most {} s are allowed",
                now_ms.abs_diff(*signed_at_ms) / 1_000,
                SIGNATURE_WINDOW_MS / 1_000
            ),
            Refusal::Replayed { delivery_id } => {
                write!(f, "delivery {delivery_id} was taken before")
            }
        }
    }
}

/// A message whose signature checked out (key, body, path, time). Only
/// [`RailKeys::verify`] makes one, so whatever takes it knows the check ran; whether the
/// delivery is new is for the receiver's memory to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDelivery {
    delivery_id: Uuid,
    key_id: String,
    signed_at_ms: i64,
    path: String,
}

impl VerifiedDelivery {
    pub fn delivery_id(&self) -> Uuid {
        self.delivery_id
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn signed_at_ms(&self) -> i64 {
        self.signed_at_ms
    }

    /// When the sender signed, by its clock.
    pub fn signed_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.signed_at_ms).unwrap_or_default()
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

#[derive(Clone)]
struct RailKey {
    id: String,
    key: hmac::Key,
}

/// The keys shared by the bank and the rail: the first signs, every one verifies. A key set
/// always holds its signing key.
#[derive(Clone)]
pub struct RailKeys {
    signing: RailKey,
    /// Keys that only verify (the previous one, during a rotation).
    verifying_only: Arc<[RailKey]>,
}

/// Secrets never appear in logs: only the key ids do.
impl fmt::Debug for RailKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RailKeys")
            .field("key_ids", &self.key_ids().collect::<Vec<_>>())
            .finish()
    }
}

/// Standard or URL-safe base64, padded or not: whatever `openssl rand -base64` or a secret
/// manager hands out.
const SECRET_ENGINES: [GeneralPurpose; 2] = [
    GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    ),
    GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    ),
];

/// A fresh random secret for a key named `key_id` (checked first).
fn random_secret(key_id: &str) -> Result<[u8; SECRET_BYTES_MIN], PaymentsError> {
    if !is_valid_key_id(key_id) {
        return Err(PaymentsError::invalid(
            "key_id",
            format!("1 to {KEY_ID_CHARS_MAX} characters of a-z A-Z 0-9 - _ ."),
        ));
    }
    let mut secret = [0_u8; SECRET_BYTES_MIN];
    ring::rand::SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| PaymentsError::Internal {
            message: "the system's random number generator failed".to_owned(),
        })?;
    Ok(secret)
}

fn is_valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= KEY_ID_CHARS_MAX
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl RailKeys {
    /// Reads a key set from the setting `setting` (named in every error):
    /// `kid1:<base64 secret>,kid2:<base64 secret>`. Errors never repeat a secret.
    pub fn parse(setting: &str, value: &str) -> Result<RailKeys, PaymentsError> {
        let refuse = |message: String| PaymentsError::invalid(setting, message);
        let entries: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .collect();
        if entries.is_empty() {
            return Err(refuse(
                "no rail key: write key_id:base64_secret[,key_id:base64_secret…] (the first \
                 signs, every one verifies), e.g. a secret from `openssl rand -base64 32`"
                    .to_owned(),
            ));
        }
        if entries.len() > KEYS_MAX {
            return Err(refuse(format!(
                "{} keys; at most {KEYS_MAX} are taken",
                entries.len()
            )));
        }
        let mut keys: Vec<RailKey> = Vec::with_capacity(entries.len());
        for (position, entry) in (1_usize..).zip(entries) {
            let Some((id, secret)) = entry.split_once(':') else {
                return Err(refuse(format!(
                    "key {position} has no key id: write key_id:base64_secret"
                )));
            };
            let id = id.trim();
            if !is_valid_key_id(id) {
                return Err(refuse(format!(
                    "key {position}: a key id is 1 to {KEY_ID_CHARS_MAX} characters of \
                     a-z A-Z 0-9 - _ ."
                )));
            }
            if keys.iter().any(|key| key.id == id) {
                return Err(refuse(format!("the key id {id:?} is listed twice")));
            }
            let secret = SECRET_ENGINES
                .iter()
                .find_map(|engine| engine.decode(secret.trim()).ok())
                .ok_or_else(|| refuse(format!("the secret of key {id:?} is not base64")))?;
            if !(SECRET_BYTES_MIN..=SECRET_BYTES_MAX).contains(&secret.len()) {
                return Err(refuse(format!(
                    "the secret of key {id:?} is {} bytes; {SECRET_BYTES_MIN} to \
                     {SECRET_BYTES_MAX} are needed (`openssl rand -base64 32`)",
                    secret.len()
                )));
            }
            keys.push(RailKey {
                id: id.to_owned(),
                key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            });
        }
        let mut keys = keys.into_iter();
        let signing = keys
            .next()
            .ok_or_else(|| refuse("no rail key".to_owned()))?;
        Ok(RailKeys {
            signing,
            verifying_only: keys.collect(),
        })
    }

    /// One fresh random key named `key_id`, as the text `COREBANK_RAIL_KEYS` takes
    /// (`kid:base64secret`): for `corebank up` and the benchmarks, which run both the bank
    /// and the simulator and pass the same key to both.
    pub fn generate_setting(key_id: &str) -> Result<String, PaymentsError> {
        use base64::Engine as _;
        let secret = random_secret(key_id)?;
        Ok(format!(
            "{key_id}:{}",
            base64::engine::general_purpose::STANDARD.encode(secret)
        ))
    }

    /// One fresh random key named `key_id`: for a process that runs both the bank and the
    /// simulator (`corebank up`), and for tests.
    pub fn generate(key_id: &str) -> Result<RailKeys, PaymentsError> {
        let secret = random_secret(key_id)?;
        Ok(RailKeys {
            signing: RailKey {
                id: key_id.to_owned(),
                key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            },
            verifying_only: Arc::new([]),
        })
    }

    /// The key that signs.
    pub fn signing_key_id(&self) -> &str {
        &self.signing.id
    }

    /// Every key that verifies, the signing one first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys().map(|key| key.id.as_str())
    }

    fn keys(&self) -> impl Iterator<Item = &RailKey> {
        std::iter::once(&self.signing).chain(self.verifying_only.iter())
    }

    /// The header value signing `body` for `exchange` now, as a new delivery.
    pub fn sign(&self, exchange: Exchange<'_>, body: &[u8]) -> String {
        self.sign_at(
            exchange,
            body,
            Utc::now().timestamp_millis(),
            Uuid::new_v4(),
        )
    }

    /// The header value signing `body` for `exchange` at `signed_at_ms` as `delivery_id`
    /// (tests and clocks of one's own; [`RailKeys::sign`] otherwise).
    pub fn sign_at(
        &self,
        exchange: Exchange<'_>,
        body: &[u8],
        signed_at_ms: i64,
        delivery_id: Uuid,
    ) -> String {
        let key = &self.signing;
        let canonical = canonical(&key.id, signed_at_ms, delivery_id, exchange, body);
        let tag = hmac::sign(&key.key, canonical.as_bytes());
        format!(
            "{VERSION};kid={};ts={signed_at_ms};delivery={delivery_id};sig={}",
            key.id,
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// Checks the signature in `headers` over `body` for `exchange`, against the clock
    /// `now_ms`. Nothing of the body is read but its bytes' hash.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        exchange: Exchange<'_>,
        body: &[u8],
        now_ms: i64,
    ) -> Result<VerifiedDelivery, Refusal> {
        let mut values = headers.get_all(HEADER).iter();
        let value = values.next().ok_or(Refusal::Missing)?;
        if values.next().is_some() {
            return Err(malformed("it is given more than once"));
        }
        let text = value
            .to_str()
            .map_err(|_| malformed("it is not visible ASCII"))?;
        let header = parse_header(text)?;
        let key = self
            .keys()
            .find(|key| key.id == header.key_id)
            .ok_or_else(|| Refusal::UnknownKey {
                key_id: header.key_id.to_owned(),
            })?;
        let canonical = canonical(
            &key.id,
            header.signed_at_ms,
            header.delivery_id,
            exchange,
            body,
        );
        // `hmac::verify` compares in constant time.
        hmac::verify(&key.key, canonical.as_bytes(), &header.signature)
            .map_err(|_| Refusal::Invalid)?;
        // The time is checked once the signature holds, so that an expired answer speaks
        // only of messages the key's holder really sent.
        if now_ms.abs_diff(header.signed_at_ms) > SIGNATURE_WINDOW_MS {
            return Err(Refusal::Expired {
                signed_at_ms: header.signed_at_ms,
                now_ms,
            });
        }
        Ok(VerifiedDelivery {
            delivery_id: header.delivery_id,
            key_id: key.id.clone(),
            signed_at_ms: header.signed_at_ms,
            path: exchange.path().to_owned(),
        })
    }
}

fn malformed(detail: &str) -> Refusal {
    Refusal::Malformed {
        detail: detail.to_owned(),
    }
}

/// The fields of a `Rail-Signature` header, read but not yet checked against a key.
#[derive(Debug)]
struct Header<'a> {
    key_id: &'a str,
    signed_at_ms: i64,
    delivery_id: Uuid,
    signature: [u8; SIGNATURE_BYTES],
}

fn parse_header(text: &str) -> Result<Header<'_>, Refusal> {
    if text.len() > HEADER_BYTES_MAX {
        return Err(malformed("it is longer than 512 bytes"));
    }
    let mut fields = text.split(';').map(str::trim);
    if fields.next() != Some(VERSION) {
        return Err(malformed(
            "it does not start with v1, the only version taken",
        ));
    }
    let (mut key_id, mut signed_at, mut delivery, mut signature) = (None, None, None, None);
    for field in fields {
        let (name, value) = field
            .split_once('=')
            .ok_or_else(|| malformed("a field is not name=value"))?;
        let slot = match name {
            "kid" => &mut key_id,
            "ts" => &mut signed_at,
            "delivery" => &mut delivery,
            "sig" => &mut signature,
            _ => {
                return Err(malformed(
                    "it has a field other than kid, ts, delivery and sig",
                ));
            }
        };
        if slot.replace(value).is_some() {
            return Err(malformed("a field is given twice"));
        }
    }
    let (Some(key_id), Some(signed_at), Some(delivery), Some(signature)) =
        (key_id, signed_at, delivery, signature)
    else {
        return Err(malformed("kid, ts, delivery and sig are all needed"));
    };
    if !is_valid_key_id(key_id) {
        return Err(malformed("the key id is not 1 to 32 of a-z A-Z 0-9 - _ ."));
    }
    if signed_at.is_empty()
        || signed_at.len() > TIMESTAMP_DIGITS_MAX
        || !signed_at.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(malformed("ts is not a unix time in milliseconds"));
    }
    let signed_at_ms: i64 = signed_at
        .parse()
        .map_err(|_| malformed("ts is not a unix time in milliseconds"))?;
    let delivery_id = Uuid::try_parse(delivery)
        .ok()
        .filter(|id| id.get_version_num() == 4)
        .ok_or_else(|| malformed("delivery is not a UUIDv4"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .ok()
        .and_then(|bytes| <[u8; SIGNATURE_BYTES]>::try_from(bytes).ok())
        .ok_or_else(|| malformed("sig is not 32 bytes of unpadded base64url"))?;
    Ok(Header {
        key_id,
        signed_at_ms,
        delivery_id,
        signature,
    })
}

/// The string a signature is computed over (see the module's documentation).
fn canonical(
    key_id: &str,
    signed_at_ms: i64,
    delivery_id: Uuid,
    exchange: Exchange<'_>,
    body: &[u8],
) -> String {
    let (direction, verb, path) = match exchange {
        Exchange::Request { method, path } => ("request", method.to_owned(), path),
        Exchange::Response { status, path } => ("response", status.to_string(), path),
    };
    let mut body_hash = String::with_capacity(2 * SIGNATURE_BYTES);
    for byte in digest::digest(&digest::SHA256, body).as_ref() {
        // Writing to a String cannot fail.
        let _ = write!(body_hash, "{byte:02x}");
    }
    format!(
        "{CANONICAL_TAG}\n{key_id}\n{signed_at_ms}\n{delivery_id}\n{direction}\n{verb}\n{path}\n{body_hash}"
    )
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const OLD: &str = "old:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const NEW: &str = "new:bmV3LXNlY3JldC1uZXctc2VjcmV0LW5ldy1zZWNyZXQtISE=";
    const NOW_MS: i64 = 1_760_000_000_000;
    const PACS008: Exchange<'static> = Exchange::Request {
        method: "POST",
        path: "/payments/rail/v1/pacs008",
    };

    fn keys(setting: &str) -> RailKeys {
        RailKeys::parse("COREBANK_RAIL_KEYS", setting).unwrap()
    }

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn signed(keys: &RailKeys, exchange: Exchange<'_>, body: &[u8]) -> HeaderMap {
        headers(&keys.sign_at(exchange, body, NOW_MS, Uuid::new_v4()))
    }

    fn refusal_code(result: Result<VerifiedDelivery, Refusal>) -> &'static str {
        result.unwrap_err().code()
    }

    /// Why the holder of the `OLD` key refuses a message `signer` signed.
    fn refusal_of_a_message_signed_by(signer: &RailKeys) -> &'static str {
        let message = signed(signer, PACS008, b"body");
        refusal_code(keys(OLD).verify(&message, PACS008, b"body", NOW_MS))
    }

    #[test]
    fn a_generated_setting_parses_back_into_keys() {
        let text = RailKeys::generate_setting("up").unwrap();
        let keys = RailKeys::parse("COREBANK_RAIL_KEYS", &text).unwrap();
        assert_eq!(keys.signing_key_id(), "up");
    }

    #[test]
    fn a_signed_message_verifies_and_names_its_delivery_and_key() {
        let keys = keys(OLD);
        let delivery_id = Uuid::new_v4();
        let header = keys.sign_at(PACS008, b"<xml/>", NOW_MS, delivery_id);
        assert!(
            header.starts_with("v1;kid=old;ts=1760000000000;delivery="),
            "{header}"
        );
        let verified = keys
            .verify(&headers(&header), PACS008, b"<xml/>", NOW_MS + 1_000)
            .unwrap();
        assert_eq!(verified.delivery_id(), delivery_id);
        assert_eq!(verified.key_id(), "old");
        assert_eq!(verified.signed_at_ms(), NOW_MS);
        assert_eq!(verified.path(), "/payments/rail/v1/pacs008");
    }

    #[test]
    fn a_message_signed_with_the_old_key_verifies_while_the_old_key_is_listed() {
        let before_rotation = keys(OLD);
        let during_rotation = keys(&format!("{NEW},{OLD}"));
        assert_eq!(during_rotation.signing_key_id(), "new");
        let by_old = signed(&before_rotation, PACS008, b"body");
        assert!(
            during_rotation
                .verify(&by_old, PACS008, b"body", NOW_MS)
                .is_ok()
        );
        // The new signer's messages verify where the new key is listed, even second.
        let by_new = signed(&during_rotation, PACS008, b"body");
        let other_side = keys(&format!("{OLD},{NEW}"));
        assert!(other_side.verify(&by_new, PACS008, b"body", NOW_MS).is_ok());
        // Once the old key is removed, its messages are refused by key id.
        let after_rotation = keys(NEW);
        assert_eq!(
            refusal_code(after_rotation.verify(&by_old, PACS008, b"body", NOW_MS)),
            "unknown_key"
        );
    }

    #[test]
    fn an_unlisted_key_id_is_refused_as_an_unknown_key() {
        let stranger = keys("someone:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");
        assert_eq!(refusal_of_a_message_signed_by(&stranger), "unknown_key");
    }

    #[test]
    fn a_forged_signature_under_a_known_key_id_is_invalid() {
        let forger = RailKeys::generate("old").unwrap();
        assert_eq!(refusal_of_a_message_signed_by(&forger), "signature_invalid");
    }

    #[test]
    fn another_body_path_method_or_direction_breaks_the_signature() {
        let keys = keys(OLD);
        let message = signed(&keys, PACS008, b"<amount>10</amount>");
        for (exchange, body) in [
            (PACS008, &b"<amount>99</amount>"[..]),
            (
                Exchange::Request {
                    method: "POST",
                    path: "/payments/rail/v1/pacs002",
                },
                &b"<amount>10</amount>"[..],
            ),
            (
                Exchange::Request {
                    method: "PUT",
                    path: "/payments/rail/v1/pacs008",
                },
                &b"<amount>10</amount>"[..],
            ),
            (
                Exchange::Response {
                    status: 200,
                    path: "/payments/rail/v1/pacs008",
                },
                &b"<amount>10</amount>"[..],
            ),
        ] {
            assert_eq!(
                refusal_code(keys.verify(&message, exchange, body, NOW_MS)),
                "signature_invalid",
                "{exchange:?}"
            );
        }
    }

    #[test]
    fn a_timestamp_outside_the_window_either_way_is_expired() {
        let keys = keys(OLD);
        let message = signed(&keys, PACS008, b"body");
        let window = i64::try_from(SIGNATURE_WINDOW_MS).unwrap();
        assert!(
            keys.verify(&message, PACS008, b"body", NOW_MS + window)
                .is_ok()
        );
        assert!(
            keys.verify(&message, PACS008, b"body", NOW_MS - window)
                .is_ok()
        );
        for now in [NOW_MS + window + 1, NOW_MS - window - 1] {
            assert_eq!(
                refusal_code(keys.verify(&message, PACS008, b"body", now)),
                "signature_expired"
            );
        }
    }

    #[test]
    fn a_missing_or_malformed_header_is_refused_before_any_key_is_used() {
        let keys = keys(OLD);
        assert_eq!(
            refusal_code(keys.verify(&HeaderMap::new(), PACS008, b"", NOW_MS)),
            "signature_missing"
        );
        let good = keys.sign_at(PACS008, b"", NOW_MS, Uuid::new_v4());
        let sig = good.rsplit_once("sig=").unwrap().1;
        let delivery = Uuid::new_v4();
        for bad in [
            String::new(),
            "v2;kid=old;ts=1;delivery=x;sig=y".to_owned(),
            format!("v1;kid=old;ts={NOW_MS};sig={sig}"),
            format!("v1;kid=old;kid=old;ts={NOW_MS};delivery={delivery};sig={sig}"),
            format!("v1;kid=old;ts={NOW_MS};delivery={delivery};sig={sig};extra=1"),
            format!("v1;kid=old;ts=-5;delivery={delivery};sig={sig}"),
            format!("v1;kid=old;ts={NOW_MS};delivery={};sig={sig}", Uuid::nil()),
            format!("v1;kid=old;ts={NOW_MS};delivery={delivery};sig=c2hvcnQ"),
            format!("v1;kid=o:ld;ts={NOW_MS};delivery={delivery};sig={sig}"),
            format!(
                "v1;kid=old;ts={NOW_MS};delivery={delivery};sig={}",
                "A".repeat(600)
            ),
        ] {
            assert_eq!(
                refusal_code(keys.verify(&headers(&bad), PACS008, b"", NOW_MS)),
                "signature_malformed",
                "{bad}"
            );
        }
        let mut twice = headers(&good);
        twice.append(HEADER, HeaderValue::from_str(&good).unwrap());
        assert_eq!(
            refusal_code(keys.verify(&twice, PACS008, b"", NOW_MS)),
            "signature_malformed"
        );
    }

    #[test]
    fn a_key_setting_is_refused_with_the_setting_named_and_no_secret_repeated() {
        let short = "k:c2hvcnQtc2VjcmV0";
        for (setting, expected) in [
            ("", "no rail key"),
            ("  , ", "no rail key"),
            ("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "no key id"),
            (short, "is 12 bytes"),
            ("k:not base64!", "not base64"),
            (
                "bad id:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
                "a key id is",
            ),
            (&format!("{OLD},{OLD}"), "listed twice"),
        ] {
            let message = RailKeys::parse("COREBANK_RAIL_KEYS", setting)
                .unwrap_err()
                .to_string();
            assert!(message.starts_with("COREBANK_RAIL_KEYS: "), "{message}");
            assert!(message.contains(expected), "{setting:?}: {message}");
            assert!(!message.contains("c2hvcnQtc2VjcmV0"), "{message}");
        }
        let many = (0..=KEYS_MAX)
            .map(|i| format!("k{i}:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="))
            .collect::<Vec<_>>()
            .join(",");
        assert!(RailKeys::parse("COREBANK_RAIL_KEYS", &many).is_err());
        // URL-safe and unpadded secrets are taken too.
        assert!(RailKeys::parse("S", "k:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY").is_ok());
        assert_eq!(
            format!("{:?}", keys(OLD)),
            "RailKeys { key_ids: [\"old\"] }"
        );
    }
}
