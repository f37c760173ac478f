-- Postings: the legs of every entry, one row per account effect. Balances as of any time,
-- statements and the trial balance are sums over these rows.
CREATE TABLE postings (
    entry_id UUID NOT NULL,
    leg INT8 NOT NULL,
    account_id UUID NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('debit', 'credit')),
    bucket TEXT NOT NULL CHECK (bucket IN ('posted', 'pending')),
    amount NUMERIC(28, 6) NOT NULL,
    currency TEXT NOT NULL,
    value_date DATE NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (entry_id, leg)
);
