-- Holds (liens): each is a pending entry in the ledger with the same id.
CREATE TABLE holds (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL,
    amount NUMERIC(28, 6) NOT NULL,
    currency TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('held', 'released', 'expired', 'captured')),
    expires_at TIMESTAMPTZ,
    placed_at TIMESTAMPTZ NOT NULL
);
