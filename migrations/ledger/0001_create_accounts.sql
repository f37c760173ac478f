-- Ledger accounts: what never changes per posting. Balances live in account_balances.
CREATE TABLE accounts (
    id UUID PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    currency TEXT NOT NULL,
    account_type TEXT NOT NULL CHECK (account_type IN ('asset', 'liability', 'equity', 'income', 'expense')),
    limit_kind TEXT NOT NULL CHECK (limit_kind IN ('none', 'debits_must_not_exceed_credits', 'credits_must_not_exceed_debits')),
    limit_amount NUMERIC(28, 6) NOT NULL DEFAULT 0 CHECK (limit_amount >= 0),
    status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    debits_frozen BOOL NOT NULL DEFAULT false,
    credits_frozen BOOL NOT NULL DEFAULT false,
    external_ref TEXT NOT NULL DEFAULT '',
    metadata JSONB NOT NULL,
    balance_shards INT8 NOT NULL CHECK (balance_shards BETWEEN 1 AND 64),
    request JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
