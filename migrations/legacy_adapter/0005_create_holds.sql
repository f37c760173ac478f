-- Canonical hold ids and the core's lock ids (AC.LOCKED.EVENTS).
CREATE TABLE holds (
    hold_id UUID PRIMARY KEY,
    lock_id TEXT NOT NULL UNIQUE,
    account_id UUID NOT NULL,
    reason TEXT NOT NULL,
    expires_at TIMESTAMPTZ,
    placed_at TIMESTAMPTZ NOT NULL
);
