-- Deposit accounts. Their money is in the ledger (one liability account for the customer's
-- balance, one for interest accrued and not yet posted); this table holds what the ledger
-- does not: product, status, activity, and the interest accrual position.
CREATE TABLE accounts (
    id UUID PRIMARY KEY,
    customer_id TEXT NOT NULL,
    product_code TEXT NOT NULL,
    product_version INT8 NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'dormant', 'frozen', 'closed')),
    ledger_account_id UUID NOT NULL,
    accrued_account_id UUID NOT NULL,
    opened_on DATE NOT NULL,
    last_customer_activity_at TIMESTAMPTZ NOT NULL,
    closed_at TIMESTAMPTZ,
    accrued_through DATE NOT NULL,
    period_precise NUMERIC(28, 12) NOT NULL DEFAULT 0,
    period_posted NUMERIC(28, 6) NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL
);
