//! `Idempotency-Key` on every mutating request, stored per client with the method, the path
//! and a hash of the canonical body. A completed request answers again with the same status
//! and body (`Idempotent-Replayed: true`); one still in flight answers 409 with
//! `Retry-After`; the same key with another request is 422; a key whose owner crashed is
//! taken over once its lease has passed; records are kept for the retention period. The
//! key also travels down to the module as its request id ([`request_id_for`]), so the
//! module applies the effect once even if the gateway crashes between the two.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use corebank_db::tokio_postgres::types::ToSql;
use corebank_db::{Db, TxError};
use corebank_kernel::{IdempotencyKey, IdempotencyKeyError};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::audit::{self, AuditRecord};
use crate::error::ApiError;

/// The longest `Idempotency-Key` accepted (the kernel's rule).
pub const KEY_LENGTH_MAX: usize = IdempotencyKey::LENGTH_MAX;

/// What the gateway should do with a request, given its key.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// Carry it out; `owner` proves ownership when completing.
    Proceed { owner: Uuid, reclaimed: bool },
    /// It was done: answer this again.
    Replay {
        status: u16,
        body: serde_json::Value,
        /// The route decision that served it, when one was made.
        route: Option<serde_json::Value>,
    },
    /// Another request with this key is in flight.
    InFlight { retry_after_s: u64 },
    /// The key was used for another request.
    Mismatch,
}

/// The request a key stands for.
#[derive(Debug, Clone, Copy)]
pub struct Fingerprint<'a> {
    pub client: &'a str,
    pub key: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub body_hash: &'a str,
}

/// A hash of the canonical body: JSON written with object keys sorted and no whitespace, so
/// spacing and key order do not make two equal requests differ.
pub fn body_hash(body: &serde_json::Value) -> String {
    let mut canonical = String::new();
    write_canonical(body, &mut canonical);
    hex(&Sha256::digest(canonical.as_bytes()))
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (n, (key, value)) in entries.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        serde_json::Value::Array(values) => {
            out.push('[');
            for (n, value) in values.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_canonical(value, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The module's request id for a client's key: a UUID (version 4 layout) derived from both,
/// the same on every replica and every retry.
pub fn request_id_for(client: &str, key: &str) -> Uuid {
    // Length-prefixed, so no (client, key) pair can be spelt like another.
    let digest = Sha256::digest(
        format!(
            "corebank-gateway:{}:{client}:{}:{key}",
            client.len(),
            key.len()
        )
        .as_bytes(),
    );
    let mut bytes = [0_u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Checks an `Idempotency-Key` header value by the kernel's [`IdempotencyKey`] rules (the
/// one rule set for idempotency keys); whitespace around a header value is not part of it.
pub fn parse_key(value: Option<&str>) -> Result<String, ApiError> {
    let Some(value) = value else {
        return Err(key_required());
    };
    match IdempotencyKey::parse(value.trim()) {
        Ok(key) => Ok(key.as_str().to_owned()),
        Err(IdempotencyKeyError::Empty) => Err(key_required()),
        Err(error) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            error.code(),
            format!(
                "Idempotency-Key must be 1 to {KEY_LENGTH_MAX} printable ASCII characters: {error}"
            ),
        )),
    }
}

fn key_required() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        IdempotencyKeyError::Empty.code(),
        "every mutating request needs an Idempotency-Key header (a unique value per \
         request, e.g. a UUID; send the same value again to retry safely)",
    )
}

/// The store over `gateway.idempotency_keys`.
#[derive(Debug, Clone)]
pub struct IdempotencyStore {
    db: Db,
    lease: Duration,
    retention: Duration,
}

fn chrono_of(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

impl IdempotencyStore {
    pub fn new(db: Db, lease: Duration, retention: Duration) -> IdempotencyStore {
        IdempotencyStore {
            db,
            lease,
            retention,
        }
    }

    /// Claims the key for this request, or says why not.
    pub async fn begin(&self, request: Fingerprint<'_>) -> Result<Begin, ApiError> {
        let lease = chrono_of(self.lease);
        // Whether the key this request takes over was given up by its owner (set by the
        // transaction's last attempt, the one that counts).
        let given_up = AtomicBool::new(false);
        let given_up = &given_up;
        let begin = self
            .db
            .run_tx("gateway_idempotency_begin", |tx| {
                Box::pin(async move {
                    let now = Utc::now();
                    let row = tx
                        .query_opt(
                            "SELECT method, path, body_hash, state, owner, lease_until, status, \
                             response, expires_at, route FROM idempotency_keys \
                             WHERE client = $1 AND idempotency_key = $2 FOR UPDATE",
                            &[&request.client, &request.key],
                        )
                        .await?;
                    let owner = Uuid::new_v4();
                    let claim = |reclaimed: bool| Begin::Proceed { owner, reclaimed };
                    let claimed_until = now + lease;
                    // The key's row as this request claims it: $1 to $8 of either statement.
                    let claimed: [&(dyn ToSql + Sync); 8] = [
                        &request.client,
                        &request.key,
                        &request.method,
                        &request.path,
                        &request.body_hash,
                        &owner,
                        &claimed_until,
                        &now,
                    ];
                    let Some(row) = row else {
                        tx.execute(
                            "INSERT INTO idempotency_keys (client, idempotency_key, method, path, \
                             body_hash, state, owner, lease_until, created_at) \
                             VALUES ($1, $2, $3, $4, $5, 'in_flight', $6, $7, $8)",
                            &claimed,
                        )
                        .await?;
                        return Ok(claim(false));
                    };
                    let expires_at: Option<DateTime<Utc>> = row.get("expires_at");
                    let state: String = row.get("state");
                    if state == "completed" && expires_at.is_some_and(|at| at <= now) {
                        // Past retention: the key is free again.
                        tx.execute(
                            "UPDATE idempotency_keys SET method = $3, path = $4, body_hash = $5, \
                             state = 'in_flight', owner = $6, lease_until = $7, status = NULL, \
                             response = NULL, created_at = $8, completed_at = NULL, expires_at = NULL \
                             WHERE client = $1 AND idempotency_key = $2",
                            &claimed,
                        )
                        .await?;
                        return Ok(claim(false));
                    }
                    let same = row.get::<_, String>("method") == request.method
                        && row.get::<_, String>("path") == request.path
                        && row.get::<_, String>("body_hash") == request.body_hash;
                    if !same {
                        return Ok(Begin::Mismatch);
                    }
                    if state == "completed" {
                        let status: i64 = row.get::<_, Option<i64>>("status").unwrap_or(500);
                        return Ok(Begin::Replay {
                            status: u16::try_from(status).unwrap_or(500),
                            body: row
                                .get::<_, Option<serde_json::Value>>("response")
                                .unwrap_or(serde_json::Value::Null),
                            route: row.get("route"),
                        });
                    }
                    let lease_until: DateTime<Utc> = row.get("lease_until");
                    if lease_until > now {
                        let left = (lease_until - now).num_seconds().max(1);
                        return Ok(Begin::InFlight {
                            retry_after_s: u64::try_from(left).unwrap_or(1),
                        });
                    }
                    // The owner gave the key up ([`IdempotencyStore::abandon`]: no owner), or its
                    // lease passed (it crashed, or hung): take the key over. The module applies
                    // the effect once, by the derived request id.
                    given_up.store(row.get::<_, Uuid>("owner").is_nil(), Ordering::Relaxed);
                    tx.execute(
                        "UPDATE idempotency_keys SET owner = $3, lease_until = $4 \
                         WHERE client = $1 AND idempotency_key = $2",
                        &[&request.client, &request.key, &owner, &claimed_until],
                    )
                    .await?;
                    Ok::<_, TxError<ApiError>>(claim(true))
                })
            })
            .await?;
        if let Begin::Proceed {
            reclaimed: true, ..
        } = &begin
        {
            if given_up.load(Ordering::Relaxed) {
                // A retry of an attempt that failed safely: the expected path, not an incident.
                tracing::debug!(
                    client = request.client,
                    idempotency.key = request.key,
                    "idempotency key claimed again after its owner gave it up"
                );
            } else {
                tracing::warn!(
                    client = request.client,
                    idempotency.key = request.key,
                    "idempotency key taken over after its owner's lease passed"
                );
                metrics::counter!("corebank_gateway_idempotency_reclaimed_total").increment(1);
            }
        }
        Ok(begin)
    }

    /// Stores the answer and its audit record in one transaction, if this request still
    /// owns the key; answers whether it did (a request whose lease was taken over stores
    /// nothing: the one that took over answers).
    pub async fn complete(
        &self,
        request: Fingerprint<'_>,
        owner: Uuid,
        status: u16,
        body: &serde_json::Value,
        audit_record: &AuditRecord,
    ) -> Result<bool, ApiError> {
        let retention = chrono_of(self.retention);
        let status = i64::from(status);
        Ok(self
            .db
            .run_tx("gateway_idempotency_complete", |tx| {
                Box::pin(async move {
                    let now = Utc::now();
                    let updated = tx
                        .execute(
                            "UPDATE idempotency_keys SET state = 'completed', status = $4, \
                             response = $5, completed_at = $6, expires_at = $7, route = $8 \
                             WHERE client = $1 AND idempotency_key = $2 AND owner = $3 \
                             AND state = 'in_flight'",
                            &[
                                &request.client,
                                &request.key,
                                &owner,
                                &status,
                                body,
                                &now,
                                &(now + retention),
                                &audit_record.route,
                            ],
                        )
                        .await?;
                    audit::append(&tx, audit_record).await?;
                    Ok::<_, TxError<ApiError>>(updated == 1)
                })
            })
            .await?)
    }

    /// Gives the key up (the request failed in a way that is safe to retry): the record
    /// stays, with its lease ended and no owner (the nil id), so the retry takes it over at
    /// once and keeps what was pinned (the side it was sent to); the attempt is recorded in
    /// the audit trail.
    pub async fn abandon(
        &self,
        request: Fingerprint<'_>,
        owner: Uuid,
        audit_record: &AuditRecord,
    ) -> Result<(), ApiError> {
        self.db
            .run_tx("gateway_idempotency_abandon", |tx| {
                Box::pin(async move {
                    tx.execute(
                        "UPDATE idempotency_keys SET lease_until = $4, owner = $5 \
                         WHERE client = $1 AND idempotency_key = $2 AND owner = $3 AND state = 'in_flight'",
                        &[
                            &request.client,
                            &request.key,
                            &owner,
                            &(Utc::now() - chrono::Duration::milliseconds(1)),
                            &Uuid::nil(),
                        ],
                    )
                    .await?;
                    audit::append(&tx, audit_record).await?;
                    Ok::<_, TxError<ApiError>>(())
                })
            })
            .await?;
        Ok(())
    }

    /// Pins the side a request is sent to, the first time; answers the pinned side (an
    /// earlier attempt's, when there was one), or an error if this request no longer owns
    /// the key.
    pub async fn pin_side(
        &self,
        request: Fingerprint<'_>,
        owner: Uuid,
        side: &'static str,
    ) -> Result<String, ApiError> {
        Ok(self
            .db
            .run_tx("gateway_idempotency_pin_side", |tx| {
                Box::pin(async move {
                    let row = tx
                        .query_opt(
                            "UPDATE idempotency_keys SET side = COALESCE(side, $4) \
                             WHERE client = $1 AND idempotency_key = $2 AND owner = $3 \
                             AND state = 'in_flight' RETURNING side",
                            &[&request.client, &request.key, &owner, &side],
                        )
                        .await?;
                    match row {
                        Some(row) => Ok(row.get::<_, String>(0)),
                        None => Err(TxError::Abort(ApiError::new(
                            StatusCode::CONFLICT,
                            "request_in_flight",
                            "another request took this Idempotency-Key over; retry later",
                        ))),
                    }
                })
            })
            .await?)
    }

    /// Deletes up to `limit` records past retention; answers how many.
    pub async fn purge_expired(&self, limit: i64) -> Result<u64, ApiError> {
        Ok(self
            .db
            .run_tx("gateway_idempotency_purge", |tx| {
                Box::pin(async move {
                    let deleted = tx
                        .execute(
                            "DELETE FROM idempotency_keys WHERE (client, idempotency_key) IN \
                             (SELECT client, idempotency_key FROM idempotency_keys \
                              WHERE expires_at <= now() LIMIT $1)",
                            &[&limit],
                        )
                        .await?;
                    Ok::<_, TxError<ApiError>>(deleted)
                })
            })
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_bodies_hash_equal_whatever_their_key_order_or_spacing() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a": 1, "b": "x"}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{ "b":"x","a":1 }"#).unwrap();
        let nested: serde_json::Value =
            serde_json::from_str(r#"{"n": {"z": [1, {"y": 2, "x": 3}], "a": null}}"#).unwrap();
        let reordered: serde_json::Value =
            serde_json::from_str(r#"{"n": {"a": null, "z": [1, {"x": 3, "y": 2}]}}"#).unwrap();
        assert_eq!(body_hash(&nested), body_hash(&reordered));
        assert_eq!(body_hash(&a), body_hash(&b));
        let c: serde_json::Value = serde_json::from_str(r#"{"a": 2, "b": "x"}"#).unwrap();
        assert_ne!(body_hash(&a), body_hash(&c));
    }

    #[test]
    fn keys_are_checked_and_request_ids_derived_per_client() {
        assert_eq!(
            parse_key(None).unwrap_err().code,
            "idempotency_key_required"
        );
        assert_eq!(
            parse_key(Some(" ")).unwrap_err().code,
            "idempotency_key_required"
        );
        assert_eq!(
            parse_key(Some("has space")).unwrap_err().code,
            "invalid_idempotency_key"
        );
        assert_eq!(
            parse_key(Some(&"k".repeat(256))).unwrap_err().code,
            "invalid_idempotency_key"
        );
        assert_eq!(parse_key(Some("abc-123")).unwrap(), "abc-123");
        assert_eq!(parse_key(Some(" abc-123 ")).unwrap(), "abc-123");
        assert_eq!(
            parse_key(Some("caf\u{e9}")).unwrap_err().code,
            "invalid_idempotency_key"
        );
        assert_eq!(parse_key(Some(&"k".repeat(255))).unwrap().len(), 255);
        let id = request_id_for("client-a", "k1");
        assert_eq!(id, request_id_for("client-a", "k1"));
        assert_eq!(id.get_version_num(), 4);
        assert_ne!(id, request_id_for("client-b", "k1"));
    }
}
