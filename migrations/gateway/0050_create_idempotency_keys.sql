-- Idempotency-Key records per client: the request's method, path and body hash, who owns
-- it while in flight (and until when), and the answer once completed (kept until
-- `expires_at`).
CREATE TABLE idempotency_keys (
    client TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('in_flight', 'completed')),
    owner UUID NOT NULL,
    lease_until TIMESTAMPTZ NOT NULL,
    status INT8,
    response JSONB,
    created_at TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ,
    expires_at TIMESTAMPTZ,
    PRIMARY KEY (client, idempotency_key)
);
