-- Reconciliation runs (ADR 0013): who asked and when.
CREATE TABLE reconciliation_runs (
    id UUID PRIMARY KEY,
    requested_by TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL
);
