-- The gateway's account directory: the id channels use, the account's product and customer
-- (what routing and customer binding need), and its id on each side that holds a copy (the
-- side that opened it, and the shadow side's own books when shadowing opened one there).
CREATE TABLE accounts (
    account_id UUID PRIMARY KEY,
    product_code TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    legacy_id UUID,
    modern_id UUID,
    opened_at TIMESTAMPTZ NOT NULL
);
