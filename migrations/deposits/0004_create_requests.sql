-- Idempotency: every mutating request by its client-chosen id, with its canonical content
-- (to name what differs when the id comes back with other content) and its answer.
CREATE TABLE requests (
    request_id UUID PRIMARY KEY,
    kind TEXT NOT NULL,
    content JSONB NOT NULL,
    response JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
