-- Cross-side transfers (ADR 0014): each transfer between an account the legacy core keeps
-- and one the modern side keeps, run as the saga of the same id (`cross_side_transfer`).
-- The accounts are named twice: on their cores (`*_account_id`) and as the gateway knows
-- them (`*_reference`), by which a move finds the transfers it must wait for.
CREATE TABLE crossings (
    transfer_id UUID PRIMARY KEY,
    from_side TEXT NOT NULL CHECK (from_side IN ('legacy', 'modern')),
    from_account_id UUID NOT NULL,
    from_reference UUID NOT NULL,
    to_side TEXT NOT NULL CHECK (to_side IN ('legacy', 'modern')),
    to_account_id UUID NOT NULL,
    to_reference UUID NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL
);
