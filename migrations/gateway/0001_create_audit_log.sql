-- The audit trail: one row per mutating request, admin action and authentication failure,
-- written in the same transaction as what it records (its idempotency record, its route
-- change). Append-only: the gateway never updates or deletes a row.
CREATE TABLE audit_log (
    id UUID PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    actor TEXT NOT NULL,
    surface TEXT NOT NULL,
    action TEXT NOT NULL,
    resource TEXT NOT NULL,
    origin TEXT NOT NULL,
    outcome TEXT NOT NULL,
    request_id TEXT NOT NULL,
    route JSONB,
    details JSONB NOT NULL
);
