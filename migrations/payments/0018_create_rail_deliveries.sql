-- The rail's signed deliveries the bank has taken, by delivery id: a delivery id seen before
-- is a replay and is refused (modules/payments/src/rail_signature.rs). Rows older than twice
-- the signature window are purged: a replay that old is refused as expired anyway.
CREATE TABLE rail_deliveries (
    delivery_id UUID PRIMARY KEY,
    key_id TEXT NOT NULL,
    signed_at TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    path TEXT NOT NULL
);
