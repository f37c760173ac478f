-- Requests that went to the ledger and have no local answer yet (ADR 0010): written before
-- the ledger call, removed with the answer (same transaction) or on a definite refusal. A
-- row older than the in-doubt window is settled by the scheduled job: the ledger entry
-- exists (complete the request, its event included) or not (forget it, give back its
-- daily-limit reservation).
CREATE TABLE requests_in_doubt (
    request_id UUID PRIMARY KEY,
    kind TEXT NOT NULL,
    content JSONB NOT NULL,
    entry_id UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
