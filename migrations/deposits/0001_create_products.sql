-- Deposit products, versioned: a change is a new version; accounts keep the version they
-- were opened on. Rates are fractions (0.025 is 2.5 % a year).
CREATE TABLE products (
    code TEXT NOT NULL,
    version INT8 NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('current', 'savings')),
    currency TEXT NOT NULL,
    rate_tiers JSONB NOT NULL,
    day_count TEXT NOT NULL CHECK (day_count IN ('act_365_fixed', 'act_360', 'act_act_isda', 'thirty_360')),
    posting_frequency TEXT NOT NULL CHECK (posting_frequency IN ('monthly', 'quarterly', 'annually')),
    minimum_balance NUMERIC(28, 6) NOT NULL,
    overdraft_limit NUMERIC(28, 6) NOT NULL,
    overdraft_rate NUMERIC(14, 10) NOT NULL,
    dormancy_days INT8 NOT NULL,
    per_transfer_limit NUMERIC(28, 6),
    daily_transfer_limit NUMERIC(28, 6),
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (code, version)
);
